//! `ferrotron cache ...`: the git cache's command line. Progress goes to
//! stderr, results to stdout; exit 2 for bad input (unknown repository, bad
//! path), 3 when an origin or the disk fails.

use std::net::SocketAddr;

use clap::Subcommand;
use ferrotron::cache::follow::{self, Follow, Pulled};
use ferrotron::cache::fsck::{self, Verdict};
use ferrotron::cache::manifest::Manifest;
use ferrotron::cache::sync::{self, SyncError, SyncOptions};
use ferrotron::cache::{Cache, RepoPath};
use ferrotron::settings::Settings;

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
    /// Follow another cache's (or grokmirror's) manifest URL.
    Follow { url: String },
    /// Serve the cache read-only over git smart HTTP.
    Serve {
        #[arg(long, default_value = "127.0.0.1:8471")]
        listen: SocketAddr,
    },
}

fn fail(code: i32, e: &(dyn std::error::Error + 'static)) -> i32 {
    eprintln!("ferrotron: error: {}", ferrotron::util::full(e));
    code
}

fn parse_path(p: &str) -> Result<RepoPath, i32> {
    RepoPath::parse(p).map_err(|e| fail(2, &e))
}

fn sync_code(e: &SyncError) -> i32 {
    match e {
        SyncError::Unknown(_) | SyncError::Exists(_) => 2,
        _ => 3,
    }
}

pub fn main(settings: &Settings, cmd: CacheCommand) -> i32 {
    let cache = Cache::new(&settings.data_dir);
    let progress = |l: &str| eprintln!("cache: {l}");
    match cmd {
        CacheCommand::Add { url, path } => {
            let path = match path.map_or_else(|| RepoPath::from_url(&url), |p| RepoPath::parse(&p))
            {
                Ok(p) => p,
                Err(e) => return fail(2, &e),
            };
            eprintln!("cache: cloning {path} from {url}");
            match sync::add(&cache, &url, &path) {
                Ok(()) => {
                    println!("added {path}");
                    0
                }
                Err(e) => fail(sync_code(&e), &e),
            }
        }
        CacheCommand::Sync {
            paths,
            jobs,
            max_purge,
            force_purge,
        } => {
            let mut only = Vec::new();
            for p in &paths {
                match parse_path(p) {
                    Ok(p) => only.push(p),
                    Err(code) => return code,
                }
            }
            let opts = SyncOptions {
                concurrency: jobs,
                ..SyncOptions::default()
            };
            let mut failed = 0;
            if only.is_empty() {
                match Follow::load(&cache) {
                    Ok(Some(mut f)) => {
                        match follow::pull(&cache, &mut f, &opts, max_purge, force_purge, &progress)
                        {
                            Ok(Pulled::NotModified) => println!("follow: not modified"),
                            Ok(Pulled::Synced { report, purged }) => {
                                failed += report.failed();
                                println!("follow: {}, {} purged", report.summary(), purged.len());
                            }
                            Err(e) => return fail(3, &e),
                        }
                    }
                    Ok(None) => {}
                    Err(e) => return fail(3, &e),
                }
            }
            match sync::sync(&cache, &only, &opts, &progress) {
                Ok(report) => {
                    failed += report.failed();
                    println!("sync: {}", report.summary());
                    if failed > 0 {
                        3
                    } else {
                        0
                    }
                }
                Err(e) => fail(sync_code(&e), &e),
            }
        }
        CacheCommand::List => match Manifest::load(&cache.manifest_path()) {
            Ok(m) => {
                for (path, e) in &m.repos {
                    println!(
                        "{path}\t{}\t{}\t{}",
                        e.head.as_deref().unwrap_or("-"),
                        e.fingerprint.as_deref().unwrap_or("-"),
                        e.origin.as_deref().unwrap_or("-")
                    );
                }
                0
            }
            Err(e) => fail(3, &e),
        },
        CacheCommand::Fsck => match fsck::fsck(&cache, &progress) {
            Ok(verdicts) => {
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
                if broken > 0 {
                    3
                } else {
                    0
                }
            }
            Err(e) => fail(3, &e),
        },
        CacheCommand::Remove { path } => {
            let path = match parse_path(&path) {
                Ok(p) => p,
                Err(code) => return code,
            };
            match sync::remove(&cache, &path) {
                Ok(()) => {
                    println!("removed {path}");
                    0
                }
                Err(e) => fail(sync_code(&e), &e),
            }
        }
        CacheCommand::Follow { url } => match follow::follow(&cache, &url) {
            Ok(()) => {
                println!("following {url}");
                0
            }
            Err(e) => fail(2, &e),
        },
        CacheCommand::Serve { listen } => {
            let rt = match tokio::runtime::Builder::new_multi_thread()
                .worker_threads(2)
                .enable_all()
                .build()
            {
                Ok(rt) => rt,
                Err(e) => return fail(3, &e),
            };
            match rt.block_on(ferrotron::cache::http::serve(cache, listen)) {
                Ok(()) => 0,
                Err(e) => fail(3, &e),
            }
        }
    }
}
