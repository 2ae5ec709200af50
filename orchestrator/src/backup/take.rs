//! Taking a backup while the service runs: the database first (one
//! consistent copy), then the folders of the jobs that copy holds, the
//! git cache's lists, the images' manifests and the configuration. Written
//! under `.<name>.partial-<pid>` beside `DEST` and renamed to `DEST` only
//! when complete, so a folder named `DEST` is always a whole backup.

use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use super::copy::{copy_hashed, files_under, make_dirs, mode_of, slash};
use super::manifest::{DatabaseCopy, Entry, Manifest, FORMAT, MANIFEST};
use super::pg::{self, PgError};
use crate::exit::{ExitStatus, HasExitStatus};
use crate::settings::Settings;
use crate::store::{Backend, Store, StoreError};

/// What `ferrotron backup` is asked for.
#[derive(Debug, Clone)]
pub struct BackupOptions {
    /// The backup folder to write; must not exist.
    pub dest: PathBuf,
    /// Configuration files or folders to include, restored to the same
    /// paths.
    pub config: Vec<PathBuf>,
    /// Whole images, not only their manifests.
    pub include_images: bool,
}

#[derive(Debug, Clone)]
pub struct BackupSummary {
    pub dest: PathBuf,
    pub files: usize,
    pub bytes: u64,
    pub elapsed: Duration,
    pub backend: Backend,
    pub jobs: i64,
    pub results: i64,
    /// Special files (links, sockets) passed over.
    pub skipped: usize,
}

#[derive(Debug, thiserror::Error)]
pub enum BackupError {
    #[error("{0} exists: a backup is written to a new folder")]
    Exists(PathBuf),
    #[error("configuration {0} does not exist")]
    NoConfig(PathBuf),
    #[error("cannot open the results store")]
    Store(#[source] StoreError),
    #[error("cannot copy the SQLite database")]
    Snapshot(#[source] StoreError),
    #[error("cannot dump the PostgreSQL database")]
    Dump(#[source] PgError),
    #[error("cannot copy {path}")]
    Copy {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("cannot write the backup at {path}")]
    Write {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
}

impl HasExitStatus for BackupError {
    fn exit_status(&self) -> ExitStatus {
        match self {
            BackupError::Exists(_) | BackupError::NoConfig(_) => ExitStatus::BadInput,
            _ => ExitStatus::Infrastructure,
        }
    }
}

/// Job files a backup leaves out: the private SSH key of a VM that is
/// gone (a job that runs again gets a new one).
const LEFT_OUT: &[&str] = &["id_ed25519"];

/// The folder being written and what it holds so far.
struct Writer<'a> {
    root: PathBuf,
    files: Vec<Entry>,
    bytes: u64,
    skipped: usize,
    progress: &'a dyn Fn(&str),
    last_report: Instant,
}

impl Writer<'_> {
    /// Copies `src` to `<root>/<rel>` and lists it.
    fn add(
        &mut self,
        src: &Path,
        rel: &str,
        restore_to: Option<PathBuf>,
    ) -> Result<(), BackupError> {
        let copy_err = |source| BackupError::Copy {
            path: src.to_path_buf(),
            source,
        };
        let mode = mode_of(src).map_err(copy_err)?;
        let (size, sha256) = copy_hashed(src, &self.root.join(rel), mode).map_err(copy_err)?;
        self.bytes += size;
        self.files.push(Entry {
            path: rel.to_string(),
            size,
            sha256,
            mode,
            restore_to,
        });
        if self.last_report.elapsed() >= Duration::from_secs(1) {
            self.last_report = Instant::now();
            (self.progress)(&format!(
                "{} file(s), {} copied",
                self.files.len(),
                human_bytes(self.bytes)
            ));
        }
        Ok(())
    }

    /// Every regular file under `dir`, as `<prefix>/<relative path>`.
    fn add_tree(
        &mut self,
        dir: &Path,
        prefix: &str,
        restore_to: Option<&Path>,
    ) -> Result<(), BackupError> {
        let (files, skipped) = files_under(dir).map_err(|source| BackupError::Copy {
            path: dir.to_path_buf(),
            source,
        })?;
        self.skipped += skipped;
        for rel in files {
            if restore_to.is_none()
                && rel
                    .file_name()
                    .is_some_and(|n| LEFT_OUT.iter().any(|l| n == *l))
            {
                continue;
            }
            let to = restore_to.map(|t| t.join(&rel));
            self.add(&dir.join(&rel), &format!("{prefix}/{}", slash(&rel)), to)?;
        }
        Ok(())
    }
}

/// Takes a backup of the installation `settings` describe into
/// `opts.dest`, reporting progress through `progress`.
pub async fn backup(
    settings: &Settings,
    opts: &BackupOptions,
    progress: &dyn Fn(&str),
) -> Result<BackupSummary, BackupError> {
    let started = Instant::now();
    if opts.dest.exists() {
        return Err(BackupError::Exists(opts.dest.clone()));
    }
    for c in &opts.config {
        if !c.exists() {
            return Err(BackupError::NoConfig(c.clone()));
        }
    }
    let name = opts
        .dest
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_else(|| "backup".into());
    let parent = opts
        .dest
        .parent()
        .filter(|p| !p.as_os_str().is_empty())
        .unwrap_or(Path::new("."));
    let partial = parent.join(format!(".{name}.partial-{}", std::process::id()));
    let write_err = |path: &Path| {
        let path = path.to_path_buf();
        move |source| BackupError::Write { path, source }
    };
    make_dirs(&partial.join("database")).map_err(write_err(&partial))?;
    // Removed unless the backup completes.
    let guard = Partial(Some(partial.clone()));
    let mut w = Writer {
        root: partial.clone(),
        files: Vec::new(),
        bytes: 0,
        skipped: 0,
        progress,
        last_report: Instant::now(),
    };

    let url = settings.database_url();
    let store = Store::open(&url).await.map_err(BackupError::Store)?;
    let backend = store.backend();
    let t = Instant::now();
    let (file, method) = match backend {
        Backend::Sqlite => ("database/ferrotron.db", "sqlite VACUUM INTO"),
        Backend::Postgres => ("database/ferrotron.pgdump", "pg_dump --format=custom"),
    };
    let db_copy = partial.join(file);
    match backend {
        Backend::Sqlite => store
            .snapshot_sqlite(&db_copy)
            .await
            .map_err(BackupError::Snapshot)?,
        Backend::Postgres => pg::dump(&url, &db_copy).await.map_err(BackupError::Dump)?,
    }
    // The copy is the one file not copied by `add`: hash it in place.
    let copied = |source| BackupError::Write {
        path: db_copy.clone(),
        source,
    };
    let size = std::fs::metadata(&db_copy).map_err(copied)?.len();
    w.files.push(Entry {
        path: file.to_string(),
        size,
        sha256: crate::util::sha256_file(&db_copy).map_err(copied)?,
        mode: 0o600,
        restore_to: None,
    });
    w.bytes += size;
    progress(&format!(
        "database ({method}): {} in {}",
        human_bytes(size),
        crate::util::secs(t.elapsed())
    ));

    // The jobs the copy holds (and any stored since: their folders are
    // harmless extras). A job's folder copied while it runs holds what it
    // had written so far; the job runs again after a restore.
    let (jobs, results) = store.history_counts().await.map_err(BackupError::Store)?;
    let uuids = store.job_uuids().await.map_err(BackupError::Store)?;
    store.close().await;
    let known: std::collections::BTreeSet<&str> = uuids.iter().map(String::as_str).collect();
    let areas = [
        ("jobs", settings.jobs_dir()),
        ("artifacts", settings.artifacts_dir()),
    ];
    for (area, root) in &areas {
        // `<job>` and the folders of its earlier attempts, `<job>.attempt-N`.
        for name in folder_names(root) {
            let job = name.split(".attempt").next().unwrap_or(&name);
            if known.contains(job) {
                let dir = root.join(&name);
                w.add_tree(&dir, &format!("data/{area}/{name}"), None)?;
            }
        }
    }
    progress(&format!(
        "jobs: {} job folder(s) looked at, {} file(s) so far",
        uuids.len(),
        w.files.len()
    ));

    // The git cache's lists; the mirrors are cloned again.
    let cache = crate::cache::Cache::new(&settings.data_dir);
    for f in ["manifest.js.gz", ".origins.json", "follow.json"] {
        let p = cache.root.join(f);
        if p.is_file() {
            w.add(&p, &format!("data/cache/{f}"), None)?;
        }
    }
    let cache_repos = crate::cache::manifest::Manifest::load(&cache.manifest_path())
        .map(|m| m.repos.keys().cloned().collect())
        .unwrap_or_default();

    // Images: manifests (or everything with --include-images).
    let mut images = Vec::new();
    for (name, version, dir) in image_dirs(&settings.images_dir) {
        images.push(format!("{name}:{version}"));
        let prefix = format!("images/{name}/{version}");
        if opts.include_images {
            w.add_tree(&dir, &prefix, None)?;
        } else {
            w.add(
                &dir.join("manifest.json"),
                &format!("{prefix}/manifest.json"),
                None,
            )?;
        }
    }

    for (i, c) in opts.config.iter().enumerate() {
        let abs = std::path::absolute(c).map_err(|source| BackupError::Copy {
            path: c.clone(),
            source,
        })?;
        if abs.is_dir() {
            w.add_tree(&abs, &format!("config/{i}"), Some(&abs))?;
        } else {
            let base = abs
                .file_name()
                .map(|n| n.to_string_lossy().into_owned())
                .unwrap_or_else(|| "file".into());
            w.add(&abs, &format!("config/{i}/{base}"), Some(abs.clone()))?;
        }
    }

    let manifest = Manifest {
        format: FORMAT,
        ferrotron_version: env!("CARGO_PKG_VERSION").to_string(),
        created_at: crate::util::now_rfc3339(),
        host: std::fs::read_to_string("/proc/sys/kernel/hostname")
            .map(|h| h.trim().to_string())
            .unwrap_or_default(),
        database: DatabaseCopy {
            backend: match backend {
                Backend::Sqlite => "sqlite",
                Backend::Postgres => "postgres",
            }
            .into(),
            method: method.into(),
            file: file.into(),
        },
        jobs,
        results,
        images_included: opts.include_images,
        images,
        cache_repos,
        files: w.files,
    };
    let mpath = partial.join(MANIFEST);
    write_synced(
        &mpath,
        &serde_json::to_vec_pretty(&manifest).expect("manifest serialises"),
    )
    .map_err(write_err(&mpath))?;
    std::fs::rename(&partial, &opts.dest).map_err(write_err(&opts.dest))?;
    guard.keep();
    Ok(BackupSummary {
        dest: opts.dest.clone(),
        files: manifest.files.len(),
        bytes: w.bytes,
        elapsed: started.elapsed(),
        backend,
        jobs,
        results,
        skipped: w.skipped,
    })
}

/// The names of the folders in `dir` (none when it does not exist).
fn folder_names(dir: &Path) -> Vec<String> {
    let mut out: Vec<String> = std::fs::read_dir(dir)
        .map(|d| {
            d.flatten()
                .filter(|e| e.file_type().is_ok_and(|t| t.is_dir()))
                .map(|e| e.file_name().to_string_lossy().into_owned())
                .collect()
        })
        .unwrap_or_default();
    out.sort();
    out
}

/// `(name, version, folder)` of every image with a manifest under `root`.
fn image_dirs(root: &Path) -> Vec<(String, String, PathBuf)> {
    let mut out = Vec::new();
    let Ok(names) = std::fs::read_dir(root) else {
        return out;
    };
    for n in names.flatten() {
        let Ok(versions) = std::fs::read_dir(n.path()) else {
            continue;
        };
        for v in versions.flatten() {
            if v.path().join("manifest.json").is_file() {
                out.push((
                    n.file_name().to_string_lossy().into_owned(),
                    v.file_name().to_string_lossy().into_owned(),
                    v.path(),
                ));
            }
        }
    }
    out.sort();
    out
}

fn write_synced(path: &Path, bytes: &[u8]) -> std::io::Result<()> {
    use std::io::Write;
    use std::os::unix::fs::OpenOptionsExt;
    let mut f = std::fs::OpenOptions::new()
        .create_new(true)
        .write(true)
        .mode(0o600)
        .open(path)?;
    f.write_all(bytes)?;
    f.sync_all()
}

/// `12.3 MiB`.
pub fn human_bytes(n: u64) -> String {
    const UNITS: [&str; 5] = ["B", "KiB", "MiB", "GiB", "TiB"];
    let mut v = n as f64;
    let mut u = 0;
    while v >= 1024.0 && u < UNITS.len() - 1 {
        v /= 1024.0;
        u += 1;
    }
    if u == 0 {
        format!("{n} B")
    } else {
        format!("{v:.1} {}", UNITS[u])
    }
}

/// The partial backup folder, removed when dropped unless kept.
struct Partial(Option<PathBuf>);

impl Partial {
    fn keep(mut self) {
        self.0 = None;
    }
}

impl Drop for Partial {
    fn drop(&mut self) {
        if let Some(p) = self.0.take() {
            let _ = std::fs::remove_dir_all(p);
        }
    }
}
