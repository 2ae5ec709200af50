//! `ferrotron cache ...`: the git cache's command line. Progress goes to
//! stderr, results to stdout; exit 2 for bad input (unknown repository, bad
//! path), 3 when an origin or the disk fails.

use std::net::SocketAddr;

use clap::Subcommand;
use ferrotron::cache::follow::{self, Follow, Pulled};
use ferrotron::cache::fsck::{self, Verdict};
use ferrotron::cache::manifest::Manifest;
use ferrotron::cache::origin::public_url;
use ferrotron::cache::sync::{self, SyncOptions};
use ferrotron::cache::{Cache, RepoPath};
use ferrotron::exit::ExitStatus;
use ferrotron::settings::Settings;

use super::{CmdResult, Failure};

#[derive(Subcommand)]
pub enum CacheCommand {
    /// Mirror a repository (cloned now).
    Add {
        url: String,
        /// Path in the cache (default: the URL's last component).
        #[arg(long)]
        path: Option<String>,
    },
    /// Fetch repositories whose refs changed at their origin (all, or those
    /// named), and pull from the followed master if there is one.
    Sync {
        paths: Vec<String>,
        /// Repositories fetched at the same time.
        #[arg(long, default_value_t = 4)]
        jobs: usize,
        /// Largest share (percent) of followed repositories one pull may
        /// delete.
        #[arg(long, default_value_t = 5)]
        max_purge: u32,
        /// Purge whatever the master no longer lists, however many.
        #[arg(long)]
        force_purge: bool,
    },
    /// List mirrored repositories.
    List,
    /// Check every mirror; repack sound ones, clone corrupt ones again.
    Fsck,
    /// Stop mirroring a repository and delete its mirror.
    Remove { path: String },
    /// Follow another cache's (or grokmirror's) manifest URL (read now:
    /// the master must answer, over git's smart HTTP protocol).
    Follow { url: String },
    /// Serve the cache read-only over git smart HTTP.
    Serve {
        #[arg(long, default_value = "127.0.0.1:8471")]
        listen: SocketAddr,
    },
}

pub fn main(settings: &Settings, cmd: CacheCommand) -> CmdResult {
    let cache = Cache::new(&settings.data_dir);
    let progress = |l: &str| eprintln!("cache: {l}");
    match cmd {
        CacheCommand::Add { url, path } => {
            let path = path.map_or_else(|| RepoPath::from_url(&url), |p| RepoPath::parse(&p))?;
            eprintln!("cache: cloning {path} from {}", public_url(&url));
            sync::add(&cache, &url, &path)?;
            println!("added {path}");
            Ok(ExitStatus::Passed)
        }
        CacheCommand::Sync {
            paths,
            jobs,
            max_purge,
            force_purge,
        } => {
            let only = paths
                .iter()
                .map(|p| RepoPath::parse(p))
                .collect::<Result<Vec<_>, _>>()?;
            let opts = SyncOptions {
                concurrency: jobs,
                ..SyncOptions::default()
            };
            let mut failed = 0;
            if only.is_empty() {
                if let Some(mut f) = Follow::load(&cache).map_err(Failure::infra)? {
                    match follow::pull(&cache, &mut f, &opts, max_purge, force_purge, &progress)
                        .map_err(Failure::infra)?
                    {
                        Pulled::NotModified => println!("follow: not modified"),
                        Pulled::Synced { report, purged } => {
                            failed += report.failed();
                            println!("follow: {}, {} purged", report.summary(), purged.len());
                        }
                    }
                }
            }
            let report = sync::sync(&cache, &only, &opts, &progress)?;
            failed += report.failed();
            println!("sync: {}", report.summary());
            Ok(if failed > 0 {
                ExitStatus::Infrastructure
            } else {
                ExitStatus::Passed
            })
        }
        CacheCommand::List => {
            let m = Manifest::load(&cache.manifest_path())
                .map_err(Failure::infra)?
                .public();
            for (path, e) in &m.repos {
                println!(
                    "{path}\t{}\t{}\t{}",
                    e.head.as_deref().unwrap_or("-"),
                    e.fingerprint.as_deref().unwrap_or("-"),
                    e.origin.as_deref().unwrap_or("-")
                );
            }
            Ok(ExitStatus::Passed)
        }
        CacheCommand::Fsck => {
            let verdicts = fsck::fsck(&cache, &progress).map_err(Failure::infra)?;
            let broken = verdicts
                .iter()
                .filter(|(_, v)| matches!(v, Verdict::Broken { .. }))
                .count();
            let repaired = verdicts
                .iter()
                .filter(|(_, v)| matches!(v, Verdict::Recloned { .. }))
                .count();
            println!(
                "fsck: {} checked, {repaired} repaired, {broken} broken",
                verdicts.len()
            );
            Ok(if broken > 0 {
                ExitStatus::Infrastructure
            } else {
                ExitStatus::Passed
            })
        }
        CacheCommand::Remove { path } => {
            let path = RepoPath::parse(&path)?;
            sync::remove(&cache, &path)?;
            println!("removed {path}");
            Ok(ExitStatus::Passed)
        }
        CacheCommand::Follow { url } => {
            // A master that does not answer is an infrastructure error;
            // a URL that names no manifest, or a master serving plain
            // files, is bad input.
            let listed = follow::follow(&cache, &url).map_err(|e| match e {
                follow::FollowError::Http { .. } | follow::FollowError::Io { .. } => {
                    Failure::infra(e)
                }
                e => Failure::new(ExitStatus::BadInput, e),
            })?;
            println!(
                "following {} ({listed} repositories listed)",
                public_url(&url)
            );
            Ok(ExitStatus::Passed)
        }
        CacheCommand::Serve { listen } => {
            let rt = tokio::runtime::Builder::new_multi_thread()
                .worker_threads(2)
                .enable_all()
                .build()
                .map_err(Failure::infra)?;
            rt.block_on(async {
                let store = ferrotron::store::Store::open(&settings.database_url())
                    .await
                    .map_err(Failure::infra)?;
                ferrotron::cache::http::serve(cache, store, listen)
                    .await
                    .map_err(Failure::infra)
            })?;
            Ok(ExitStatus::Passed)
        }
    }
}
