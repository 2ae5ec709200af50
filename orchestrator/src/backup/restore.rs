//! Restoring a backup into an installation before its service starts.
//!
//! 1. The manifest is read and checked; the installation must have no
//!    history (no job, no result, no job folder) unless `--force`, and no
//!    service heartbeat.
//! 2. Every file is copied into `<data dir>/.restore-staging`, its
//!    checksum checked as it is copied: one that differs, or is missing,
//!    stops the restore with its name, before anything is put in place.
//! 3. Files go into place (with `--force`, what they replace is set aside
//!    and put back if a later step fails), the database last: SQLite by a
//!    rename, PostgreSQL by `pg_restore` in one transaction.
//! 4. The store is opened (newer migrations apply) and jobs a worker held
//!    at backup time go back to `queued`.

use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use super::copy::{copy_hashed, make_dirs};
use super::manifest::{Entry, Manifest, ManifestError};
use super::pg::{self, PgError};
use super::take::human_bytes;
use crate::exit::{ExitStatus, HasExitStatus};
use crate::job::JobState;
use crate::settings::Settings;
use crate::store::{Backend, Store, StoreError};

#[derive(Debug, Clone)]
pub struct RestoreOptions {
    pub src: PathBuf,
    /// Replace an installation that has a history.
    pub force: bool,
    /// Put configuration under this folder instead of where it was.
    pub config_to: Option<PathBuf>,
}

#[derive(Debug, Clone)]
pub struct RestoreSummary {
    pub files: usize,
    pub bytes: u64,
    pub elapsed: Duration,
    pub jobs: i64,
    pub results: i64,
    /// Jobs held by a worker at backup time, now queued again (and the
    /// state they were in).
    pub requeued: Vec<(String, JobState)>,
    pub config_written: Vec<PathBuf>,
    /// Images the backup's installation had that this one has not.
    pub images_missing: Vec<String>,
    pub cache_repos: usize,
}

#[derive(Debug, thiserror::Error)]
pub enum RestoreError {
    #[error(transparent)]
    Manifest(#[from] ManifestError),
    #[error("backup {src} is damaged: {file}: {why}; nothing was restored")]
    Damaged {
        src: PathBuf,
        file: String,
        why: String,
    },
    #[error(
        "this backup holds a {found} database but the installation uses {wanted} \
         (set --database-url / FERROTRON_DATABASE_URL to match)"
    )]
    Backend { found: String, wanted: &'static str },
    #[error(
        "the installation is not empty ({what}); restore into a fresh one, or pass --force \
         to replace it"
    )]
    NotEmpty { what: String },
    #[error(
        "a service seems to run on this installation (heartbeat of {hosts} in the last 30 \
         s): stop it first (--force if it is stopped)"
    )]
    Running { hosts: String },
    #[error("cannot read the installation's database")]
    Inspect(#[source] StoreError),
    #[error("cannot write {path}")]
    Write {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("cannot load the PostgreSQL dump; the database is as it was")]
    Load(#[source] PgError),
    #[error("cannot open the restored store")]
    Store(#[source] StoreError),
}

impl HasExitStatus for RestoreError {
    fn exit_status(&self) -> ExitStatus {
        match self {
            RestoreError::Manifest(_)
            | RestoreError::Damaged { .. }
            | RestoreError::Backend { .. }
            | RestoreError::NotEmpty { .. }
            | RestoreError::Running { .. } => ExitStatus::BadInput,
            _ => ExitStatus::Infrastructure,
        }
    }
}

/// Restores the backup at `opts.src` into the installation `settings`
/// describe.
pub async fn restore(
    settings: &Settings,
    opts: &RestoreOptions,
    progress: &dyn Fn(&str),
) -> Result<RestoreSummary, RestoreError> {
    let started = Instant::now();
    let m = Manifest::load(&opts.src)?;
    let url = settings.database_url();
    let backend = Backend::of_url(&url);
    let wanted = match backend {
        Backend::Sqlite => "sqlite",
        Backend::Postgres => "postgres",
    };
    if m.database.backend != wanted {
        return Err(RestoreError::Backend {
            found: m.database.backend.clone(),
            wanted,
        });
    }
    let targets = Targets::new(settings, opts);
    refuse_occupied(&url, &m, &targets, opts.force).await?;

    // 2. Staging, every checksum checked.
    let staging = settings.data_dir.join(".restore-staging");
    let write_err = |path: &Path| {
        let path = path.to_path_buf();
        move |source| RestoreError::Write { path, source }
    };
    if staging.exists() {
        std::fs::remove_dir_all(&staging).map_err(write_err(&staging))?;
    }
    make_dirs(&staging).map_err(write_err(&staging))?;
    let cleanup = Cleanup(staging.clone());
    let mut bytes = 0u64;
    let mut last = Instant::now();
    for (i, e) in m.files.iter().enumerate() {
        bytes += stage(&opts.src, &staging, e)?;
        if last.elapsed() >= Duration::from_secs(1) {
            last = Instant::now();
            progress(&format!(
                "checked {}/{} file(s), {}",
                i + 1,
                m.files.len(),
                human_bytes(bytes)
            ));
        }
    }
    progress(&format!(
        "all {} file(s) match their checksums ({})",
        m.files.len(),
        human_bytes(bytes)
    ));

    // 3. Into place: files, then the database.
    let mut placed = Placed::default();
    let aside = staging.join(".aside");
    let mut config_written = Vec::new();
    let (data_units, config_units) = units(&staging, &m, &targets);
    let result: Result<(), RestoreError> = async {
        for (from, to) in &data_units {
            placed.put(from, to, &aside)?;
        }
        let db = staging.join(&m.database.file);
        match backend {
            Backend::Sqlite => {
                let target = crate::store::sqlite_file(&url)
                    .unwrap_or_else(|| settings.data_dir.join("ferrotron.db"));
                for ext in ["-wal", "-shm"] {
                    let mut side = target.clone().into_os_string();
                    side.push(ext);
                    let side = PathBuf::from(side);
                    if side.exists() {
                        placed.put_aside(&side, &aside)?;
                    }
                }
                placed.put(&db, &target, &aside)?;
            }
            Backend::Postgres => {
                progress("loading the database (pg_restore, one transaction)");
                pg::restore(&url, &db).await.map_err(RestoreError::Load)?;
            }
        }
        Ok(())
    }
    .await;
    if let Err(e) = result {
        placed.undo();
        return Err(e);
    }
    placed.forget();
    // Configuration last: each file replaced in one rename (a failure
    // here names the file; the data is restored).
    for (from, to) in &config_units {
        write_config(from, to)?;
        config_written.push(to.clone());
    }

    // 4. Open (migrating an older backup) and requeue.
    let store = Store::open(&url).await.map_err(RestoreError::Store)?;
    let requeued = store.after_restore().await.map_err(RestoreError::Store)?;
    let (jobs, results) = store.history_counts().await.map_err(RestoreError::Store)?;
    store.close().await;
    drop(cleanup);

    let images_missing = m
        .images
        .iter()
        .filter(|spec| {
            let (n, v) = spec.split_once(':').unwrap_or((spec, ""));
            !settings
                .images_dir
                .join(n)
                .join(v)
                .join("manifest.json")
                .is_file()
        })
        .cloned()
        .collect();
    Ok(RestoreSummary {
        files: m.files.len(),
        bytes,
        elapsed: started.elapsed(),
        jobs,
        results,
        requeued,
        config_written,
        images_missing,
        cache_repos: m.cache_repos.len(),
    })
}

/// Where each part of a backup goes.
struct Targets {
    data_dir: PathBuf,
    artifacts_dir: PathBuf,
    images_dir: PathBuf,
    config_to: Option<PathBuf>,
}

impl Targets {
    fn new(settings: &Settings, opts: &RestoreOptions) -> Targets {
        Targets {
            data_dir: settings.data_dir.clone(),
            artifacts_dir: settings.artifacts_dir(),
            images_dir: settings.images_dir.clone(),
            config_to: opts.config_to.clone(),
        }
    }

    /// A configuration file's destination.
    fn config(&self, e: &Entry) -> Option<PathBuf> {
        let orig = e.restore_to.as_ref()?;
        Some(match &self.config_to {
            // `config/<n>/<rest>` under the given folder.
            Some(dir) => dir.join(e.path.splitn(3, '/').nth(2).unwrap_or(&e.path)),
            None => orig.clone(),
        })
    }
}

/// Refuses an installation with a history (unless `force`), one whose
/// service seems to run, and configuration that would be overwritten.
async fn refuse_occupied(
    url: &str,
    m: &Manifest,
    t: &Targets,
    force: bool,
) -> Result<(), RestoreError> {
    let occ = crate::store::occupancy(url)
        .await
        .map_err(RestoreError::Inspect)?;
    if !occ.live_hosts.is_empty() && !force {
        return Err(RestoreError::Running {
            hosts: occ.live_hosts.join(", "),
        });
    }
    if force {
        return Ok(());
    }
    let mut what = Vec::new();
    if occ.has_history() {
        what.push(format!(
            "{} job(s), {} result(s) in {}",
            occ.jobs,
            occ.results,
            crate::util::redact_url(url)
        ));
    }
    for dir in [t.data_dir.join("jobs"), t.artifacts_dir.clone()] {
        if std::fs::read_dir(&dir).is_ok_and(|mut d| d.next().is_some()) {
            what.push(format!("{} is not empty", dir.display()));
        }
    }
    for e in &m.files {
        if let Some(to) = t.config(e) {
            if to.exists() && crate::util::sha256_file(&to).ok().as_deref() != Some(&e.sha256) {
                what.push(format!("{} exists and differs", to.display()));
            }
        }
    }
    if what.is_empty() {
        Ok(())
    } else {
        Err(RestoreError::NotEmpty {
            what: what.join("; "),
        })
    }
}

/// Copies one file into staging, checking it; returns its size.
fn stage(src: &Path, staging: &Path, e: &Entry) -> Result<u64, RestoreError> {
    let damaged = |why: String| RestoreError::Damaged {
        src: src.to_path_buf(),
        file: e.path.clone(),
        why,
    };
    let from = src.join(&e.path);
    if !from.is_file() {
        return Err(damaged("missing".into()));
    }
    let (size, sha) = copy_hashed(&from, &staging.join(&e.path), e.mode).map_err(|source| {
        RestoreError::Write {
            path: from.clone(),
            source,
        }
    })?;
    if size != e.size {
        return Err(damaged(format!(
            "{size} bytes, the manifest says {}",
            e.size
        )));
    }
    if sha != e.sha256 {
        return Err(damaged(format!(
            "checksum differs (sha256 {sha}, the manifest says {})",
            e.sha256
        )));
    }
    Ok(size)
}

/// A staged file or folder and where it goes.
type Unit = (PathBuf, PathBuf);

/// What is moved into place, one rename each: a job's folder, a cache
/// file, an image version; and the configuration files.
fn units(staging: &Path, m: &Manifest, t: &Targets) -> (Vec<Unit>, Vec<Unit>) {
    let mut out: Vec<Unit> = Vec::new();
    let mut config: Vec<Unit> = Vec::new();
    let mut seen = std::collections::BTreeSet::new();
    for e in &m.files {
        if e.path == m.database.file {
            continue;
        }
        let parts: Vec<&str> = e.path.split('/').collect();
        if parts.first() == Some(&"config") {
            if let Some(to) = t.config(e) {
                config.push((staging.join(&e.path), to));
            }
            continue;
        }
        let unit: Option<Unit> = match parts.as_slice() {
            ["data", "jobs", uuid, ..] => Some((
                staging.join("data/jobs").join(uuid),
                t.data_dir.join("jobs").join(uuid),
            )),
            ["data", "artifacts", uuid, ..] => Some((
                staging.join("data/artifacts").join(uuid),
                t.artifacts_dir.join(uuid),
            )),
            ["data", "cache", name] => {
                Some((staging.join(&e.path), t.data_dir.join("cache").join(name)))
            }
            ["images", name, version, ..] if m.images_included => Some((
                staging.join("images").join(name).join(version),
                t.images_dir.join(name).join(version),
            )),
            _ => None,
        };
        if let Some(u) = unit {
            if seen.insert(u.1.clone()) {
                out.push(u);
            }
        }
    }
    (out, config)
}

/// Writes a configuration file: a copy beside it, renamed over it.
fn write_config(from: &Path, to: &Path) -> Result<(), RestoreError> {
    let err = |source| RestoreError::Write {
        path: to.to_path_buf(),
        source,
    };
    if let Some(parent) = to.parent() {
        crate::util::make_dir(parent, 0o755).map_err(err)?;
    }
    let mut tmp = to.as_os_str().to_owned();
    tmp.push(".restoring");
    let tmp = PathBuf::from(tmp);
    let _ = std::fs::remove_file(&tmp);
    let mode = super::copy::mode_of(from).map_err(err)?;
    copy_hashed(from, &tmp, mode).map_err(err)?;
    std::fs::rename(&tmp, to).map_err(err)
}

/// Moves done so far, to undo them when a later step fails.
#[derive(Default)]
struct Placed {
    /// (where it went, what it replaced, set aside at)
    moves: Vec<(PathBuf, Option<PathBuf>)>,
    aside: Vec<(PathBuf, PathBuf)>,
}

impl Placed {
    /// Moves `from` to `to` (parents made); an existing `to` is set aside.
    fn put(&mut self, from: &Path, to: &Path, aside: &Path) -> Result<(), RestoreError> {
        let err = |source| RestoreError::Write {
            path: to.to_path_buf(),
            source,
        };
        if let Some(parent) = to.parent() {
            crate::util::make_dir(parent, crate::util::modes::PRIVATE_DIR).map_err(err)?;
        }
        let replaced = if to.exists() {
            Some(self.put_aside(to, aside)?)
        } else {
            None
        };
        match std::fs::rename(from, to) {
            Ok(()) => {}
            // Images kept on another file system than the data folder.
            Err(e) if e.kind() == std::io::ErrorKind::CrossesDevices => {
                copy_tree(from, to).map_err(err)?;
            }
            Err(e) => return Err(err(e)),
        }
        self.moves.push((to.to_path_buf(), replaced));
        Ok(())
    }

    /// Moves `p` under `aside` (to be put back by [`Placed::undo`]).
    fn put_aside(&mut self, p: &Path, aside: &Path) -> Result<PathBuf, RestoreError> {
        let at = aside.join(format!("{}", self.aside.len()));
        make_dirs(aside).map_err(|source| RestoreError::Write {
            path: aside.to_path_buf(),
            source,
        })?;
        std::fs::rename(p, &at).map_err(|source| RestoreError::Write {
            path: p.to_path_buf(),
            source,
        })?;
        self.aside.push((p.to_path_buf(), at.clone()));
        Ok(at)
    }

    /// Takes back every move, newest first, and puts back what was set
    /// aside.
    fn undo(&mut self) {
        for (to, _) in self.moves.drain(..).rev() {
            let _ = if to.is_dir() {
                std::fs::remove_dir_all(&to)
            } else {
                std::fs::remove_file(&to)
            };
        }
        for (orig, at) in self.aside.drain(..).rev() {
            let _ = std::fs::rename(at, orig);
        }
    }

    fn forget(&mut self) {
        self.moves.clear();
        self.aside.clear();
    }
}

/// Copies a staged file or folder to `to` (keeping modes).
fn copy_tree(from: &Path, to: &Path) -> std::io::Result<()> {
    if from.is_file() {
        return copy_hashed(from, to, super::copy::mode_of(from)?).map(|_| ());
    }
    let (files, _) = super::copy::files_under(from)?;
    for rel in files {
        let src = from.join(&rel);
        copy_hashed(&src, &to.join(&rel), super::copy::mode_of(&src)?)?;
    }
    Ok(())
}

/// The staging folder, removed when the restore ends either way.
struct Cleanup(PathBuf);

impl Drop for Cleanup {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}
