//! `ferrotron backup DEST` and `ferrotron restore SRC`.

use std::path::PathBuf;

use clap::Args;
use ferrotron::backup::{self, BackupOptions, RestoreOptions};
use ferrotron::exit::ExitStatus;
use ferrotron::settings::Settings;

use super::{CmdResult, Failure};

#[derive(Args)]
pub struct BackupArgs {
    /// The backup folder to write (must not exist).
    dest: PathBuf,
    /// A configuration file or folder to include, restored to the same
    /// path (repeatable; default /etc/ferrotron when it exists).
    #[arg(long = "config", value_name = "PATH")]
    config: Vec<PathBuf>,
    /// Include no configuration.
    #[arg(long, conflicts_with = "config")]
    no_config: bool,
    /// Include the images themselves (default: their manifests only;
    /// images are rebuilt from their recipes).
    #[arg(long)]
    include_images: bool,
}

#[derive(Args)]
pub struct RestoreArgs {
    /// A folder written by `ferrotron backup`.
    src: PathBuf,
    /// Replace an installation that already has jobs or results.
    #[arg(long)]
    force: bool,
    /// Write the configuration under this folder instead of the paths it
    /// was backed up from.
    #[arg(long, value_name = "DIR")]
    config_to: Option<PathBuf>,
}

fn runtime() -> Result<tokio::runtime::Runtime, Failure> {
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .map_err(Failure::infra)
}

pub fn backup(settings: &Settings, a: BackupArgs) -> CmdResult {
    let config = if a.no_config {
        Vec::new()
    } else if a.config.is_empty() {
        let etc = PathBuf::from("/etc/ferrotron");
        if etc.is_dir() {
            vec![etc]
        } else {
            Vec::new()
        }
    } else {
        a.config
    };
    let opts = BackupOptions {
        dest: a.dest,
        config,
        include_images: a.include_images,
    };
    let say = |l: &str| eprintln!("ferrotron: backup: {l}");
    let s = runtime()?.block_on(backup::backup(settings, &opts, &say))?;
    println!(
        "backup {}: {} file(s), {}, {:.1} s ({} database, {} job(s), {} result(s))",
        s.dest.display(),
        s.files,
        backup::human_bytes(s.bytes),
        s.elapsed.as_secs_f64(),
        match s.backend {
            ferrotron::store::Backend::Sqlite => "SQLite",
            ferrotron::store::Backend::Postgres => "PostgreSQL",
        },
        s.jobs,
        s.results
    );
    if s.skipped > 0 {
        eprintln!(
            "ferrotron: backup: {} special file(s) (links, sockets) were left out",
            s.skipped
        );
    }
    Ok(ExitStatus::Passed)
}

pub fn restore(settings: &Settings, a: RestoreArgs) -> CmdResult {
    let opts = RestoreOptions {
        src: a.src,
        force: a.force,
        config_to: a.config_to,
    };
    let say = |l: &str| eprintln!("ferrotron: restore: {l}");
    let s = runtime()?.block_on(backup::restore(settings, &opts, &say))?;
    for p in &s.config_written {
        eprintln!("ferrotron: restore: wrote {}", p.display());
    }
    for (uuid, from) in &s.requeued {
        eprintln!("ferrotron: restore: job {uuid} was {from} at backup time: queued again");
    }
    for i in &s.images_missing {
        eprintln!(
            "ferrotron: restore: image {i} is not here: build it (ferrotron image build RECIPE) \
             before jobs need it"
        );
    }
    if s.cache_repos > 0 {
        eprintln!(
            "ferrotron: restore: the git cache lists {} repositor(y/ies): `ferrotron cache fsck` \
             clones them again",
            s.cache_repos
        );
    }
    println!(
        "restored {} file(s), {}, {} job(s), {} result(s) in {:.1} s; {} job(s) queued again",
        s.files,
        backup::human_bytes(s.bytes),
        s.jobs,
        s.results,
        s.elapsed.as_secs_f64(),
        s.requeued.len()
    );
    Ok(ExitStatus::Passed)
}
