//! Adding, syncing and removing mirrors. A sync asks each origin for its
//! refs (one round trip), compares their fingerprint with the manifest's,
//! and fetches only the repositories that changed, a few at a time, with
//! retries; an origin whose HEAD moved (its default branch renamed or
//! changed) has the mirror's HEAD moved with it. The manifest is rewritten
//! once at the end. Repositories that come from a followed master are
//! left to [`super::follow::pull`], which knows from the master's manifest
//! what changed without asking.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Mutex;
use std::time::Duration;

use super::manifest::{Manifest, ManifestError};
use super::mirror::{self, MirrorError};
use super::origin::public_url;
use super::{Cache, RepoPath};

#[derive(Debug, thiserror::Error)]
pub enum SyncError {
    #[error("{0} is not in the cache (see `ferrotron cache list`)")]
    Unknown(RepoPath),
    #[error("{0} is already in the cache")]
    Exists(RepoPath),
    #[error("{path} has no origin in the manifest")]
    NoOrigin { path: RepoPath },
    #[error(transparent)]
    Manifest(#[from] ManifestError),
    #[error("cannot lock or change the cache at {path}")]
    Io {
        path: std::path::PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("cannot add {path}")]
    Add {
        path: RepoPath,
        #[source]
        source: MirrorError,
    },
}

/// How hard a sync works.
#[derive(Debug, Clone)]
pub struct SyncOptions {
    /// Repositories fetched at the same time.
    pub concurrency: usize,
    /// Attempts per repository before it is reported as failed.
    pub attempts: u32,
    /// Wait before the second attempt; doubled for each further one.
    pub backoff: Duration,
}

impl Default for SyncOptions {
    fn default() -> Self {
        SyncOptions {
            concurrency: 4,
            attempts: 3,
            backoff: Duration::from_millis(500),
        }
    }
}

/// What happened to one repository.
#[derive(Debug)]
pub enum Outcome {
    Cloned,
    Fetched,
    Unchanged,
    Failed(MirrorError),
}

/// What a sync did, repository by repository.
#[derive(Debug, Default)]
pub struct SyncReport {
    pub repos: Vec<(RepoPath, Outcome)>,
}

impl SyncReport {
    pub fn count(&self, f: impl Fn(&Outcome) -> bool) -> usize {
        self.repos.iter().filter(|(_, o)| f(o)).count()
    }
    pub fn failed(&self) -> usize {
        self.count(|o| matches!(o, Outcome::Failed(_)))
    }
    /// One line: `sync: 1 cloned, 1 fetched, 18 unchanged, 0 failed`.
    pub fn summary(&self) -> String {
        format!(
            "{} cloned, {} fetched, {} unchanged, {} failed",
            self.count(|o| matches!(o, Outcome::Cloned)),
            self.count(|o| matches!(o, Outcome::Fetched)),
            self.count(|o| matches!(o, Outcome::Unchanged)),
            self.failed()
        )
    }
}

fn io(cache: &Cache) -> impl Fn(std::io::Error) -> SyncError + '_ {
    move |source| SyncError::Io {
        path: cache.root.clone(),
        source,
    }
}

/// Mirrors `url` as `path`: checks the origin answers, clones it, and adds
/// it to the manifest. Nothing is left behind when it fails.
pub fn add(cache: &Cache, url: &str, path: &RepoPath) -> Result<(), SyncError> {
    let _lock = cache.lock().map_err(io(cache))?;
    let mpath = cache.manifest_path();
    let mut manifest = Manifest::load(&mpath)?;
    let dir = cache.repo_dir(path);
    if manifest.repos.contains_key(path.as_str()) || dir.exists() {
        return Err(SyncError::Exists(path.clone()));
    }
    let add_err = |source| SyncError::Add {
        path: path.clone(),
        source,
    };
    let remote = mirror::ls_remote(url).map_err(add_err)?;
    let entry = (|| {
        mirror::init(&dir, url)?;
        mirror::fetch(&dir, url, remote.head.as_deref())?;
        mirror::entry(&dir, url)
    })();
    match entry {
        Ok(e) => {
            manifest.repos.insert(path.as_str().to_string(), e);
            manifest.save(&mpath)?;
            Ok(())
        }
        Err(e) => {
            let _ = std::fs::remove_dir_all(&dir);
            Err(add_err(e))
        }
    }
}

/// Removes a mirror and its manifest entry.
pub fn remove(cache: &Cache, path: &RepoPath) -> Result<(), SyncError> {
    let _lock = cache.lock().map_err(io(cache))?;
    let mpath = cache.manifest_path();
    let mut manifest = Manifest::load(&mpath)?;
    if manifest.repos.remove(path.as_str()).is_none() {
        return Err(SyncError::Unknown(path.clone()));
    }
    // Manifest first: a reader never sees an entry without its repository.
    manifest.save(&mpath)?;
    // Not while a sync fetches into it.
    let _repo = cache.repo_lock(path).map_err(io(cache))?;
    let dir = cache.repo_dir(path);
    if dir.exists() {
        std::fs::remove_dir_all(&dir).map_err(io(cache))?;
    }
    Ok(())
}

/// Syncs `only` (every repository when empty). `progress` gets one line per
/// repository cloned, fetched or failed.
pub fn sync(
    cache: &Cache,
    only: &[RepoPath],
    opts: &SyncOptions,
    progress: &(dyn Fn(&str) + Sync),
) -> Result<SyncReport, SyncError> {
    let mpath = cache.manifest_path();
    // What to sync, read under the cache's lock; the network work runs
    // without it (each repository under its own lock), so a silent origin
    // holds up nobody else.
    let work = {
        let _lock = cache.lock().map_err(io(cache))?;
        let manifest = Manifest::load(&mpath)?;
        let mut jobs = Vec::new();
        if only.is_empty() {
            // Those of a followed master are the pull's.
            let followed = super::follow::Follow::load(cache).ok().flatten();
            for (k, e) in &manifest.repos {
                if let Ok(p) = RepoPath::parse(k) {
                    if followed
                        .as_ref()
                        .is_some_and(|f| e.origin.as_deref() == Some(f.repo_url(&p).as_str()))
                    {
                        continue;
                    }
                    jobs.push((p, e.origin.clone(), e.fingerprint.clone()));
                }
            }
        } else {
            for p in only {
                let e = manifest
                    .repos
                    .get(p.as_str())
                    .ok_or_else(|| SyncError::Unknown(p.clone()))?;
                jobs.push((p.clone(), e.origin.clone(), e.fingerprint.clone()));
            }
        }
        let mut work = Vec::new();
        for (p, origin, fp) in jobs {
            let origin = origin.ok_or_else(|| SyncError::NoOrigin { path: p.clone() })?;
            work.push(Work {
                path: p,
                origin,
                fingerprint: fp,
                listed: None,
            });
        }
        work
    };
    let results = run(cache, work, opts, progress);
    let _lock = cache.lock().map_err(io(cache))?;
    // Read again: another command may have changed it meanwhile.
    let mut manifest = Manifest::load(&mpath)?;
    let mut report = SyncReport::default();
    for (path, origin, outcome) in results {
        if matches!(outcome, Outcome::Cloned | Outcome::Fetched) {
            if !manifest.repos.contains_key(path.as_str()) {
                // Removed while it was fetched: it stays removed.
                continue;
            }
            match mirror::entry(&cache.repo_dir(&path), &origin) {
                Ok(e) => {
                    manifest.repos.insert(path.as_str().to_string(), e);
                }
                Err(e) => {
                    report.repos.push((path, Outcome::Failed(e)));
                    continue;
                }
            }
        }
        report.repos.push((path, outcome));
    }
    manifest.save(&mpath)?;
    Ok(report)
}

/// One repository to bring up to date.
pub(crate) struct Work {
    pub path: RepoPath,
    pub origin: String,
    /// The fingerprint the manifest has for it.
    pub fingerprint: Option<String>,
    /// What a followed master's manifest says the origin has: then the
    /// origin is not asked (no ls-remote) before the fetch.
    pub listed: Option<Listed>,
}

/// An origin's state as a followed master's manifest lists it.
#[derive(Debug, Clone)]
pub(crate) struct Listed {
    pub fingerprint: Option<String>,
    /// `refs/heads/main` (the manifest's `head` less its `ref: `).
    pub head: Option<String>,
}

/// Runs `work` on `opts.concurrency` threads; results in input order.
pub(crate) fn run(
    cache: &Cache,
    work: Vec<Work>,
    opts: &SyncOptions,
    progress: &(dyn Fn(&str) + Sync),
) -> Vec<(RepoPath, String, Outcome)> {
    let next = AtomicUsize::new(0);
    let results: Mutex<Vec<Option<Outcome>>> = Mutex::new((0..work.len()).map(|_| None).collect());
    std::thread::scope(|s| {
        for _ in 0..opts.concurrency.max(1).min(work.len().max(1)) {
            s.spawn(|| loop {
                let i = next.fetch_add(1, Ordering::SeqCst);
                let Some(w) = work.get(i) else { break };
                let outcome = match cache.repo_lock(&w.path) {
                    Ok(_held) => with_retries(opts, || one(cache, w, progress)),
                    Err(e) => Err(MirrorError::Unreachable {
                        url: w.origin.clone(),
                        source: git2::Error::from_str(&format!("cannot lock the mirror: {e}")),
                    }),
                };
                let outcome = match outcome {
                    Ok(o) => o,
                    Err(e) => {
                        progress(&format!("failed {}: {}", w.path, crate::util::full(&e)));
                        Outcome::Failed(e)
                    }
                };
                if let Ok(mut r) = results.lock() {
                    r[i] = Some(outcome);
                }
            });
        }
    });
    let results = results.into_inner().unwrap_or_default();
    work.into_iter()
        .zip(results)
        .map(|(w, o)| {
            let o = o.unwrap_or(Outcome::Failed(MirrorError::Unreachable {
                url: w.origin.clone(),
                source: git2::Error::from_str("worker stopped"),
            }));
            (w.path, w.origin, o)
        })
        .collect()
}

fn with_retries<T>(
    opts: &SyncOptions,
    mut f: impl FnMut() -> Result<T, MirrorError>,
) -> Result<T, MirrorError> {
    let mut wait = opts.backoff;
    let mut attempt = 1;
    loop {
        match f() {
            Ok(v) => return Ok(v),
            Err(e) if attempt >= opts.attempts => return Err(e),
            Err(e) => {
                tracing::warn!("attempt {attempt} failed: {}", crate::util::full(&e));
                std::thread::sleep(wait);
                wait *= 2;
                attempt += 1;
            }
        }
    }
}

/// Compares the origin's refs with the mirror's and fetches if they differ;
/// moves the mirror's HEAD where the origin's points.
fn one(cache: &Cache, w: &Work, progress: &(dyn Fn(&str) + Sync)) -> Result<Outcome, MirrorError> {
    let dir = cache.repo_dir(&w.path);
    let shown = public_url(&w.origin);
    let (wanted, head) = match &w.listed {
        Some(l) => (l.fingerprint.clone(), l.head.clone()),
        None => {
            let remote = mirror::ls_remote(&w.origin)?;
            (remote.fingerprint(), remote.head)
        }
    };
    if !dir.join("HEAD").exists() {
        progress(&format!("cloning {} from {shown}", w.path));
        if dir.exists() {
            let _ = std::fs::remove_dir_all(&dir);
        }
        mirror::init(&dir, &w.origin)?;
        mirror::fetch(&dir, &w.origin, head.as_deref())?;
        return Ok(Outcome::Cloned);
    }
    let local = mirror::local_refs(&dir)?;
    let have = super::manifest::fingerprint(local.iter().map(|(n, s)| (n.as_str(), s.as_str())));
    if wanted == have && wanted == w.fingerprint {
        let ours = mirror::head(&dir)?;
        return match head {
            Some(h) if ours.as_deref() != Some(h.as_str()) => {
                progress(&format!(
                    "HEAD of {} now {h} (was {}), as at {shown}",
                    w.path,
                    ours.as_deref().unwrap_or("detached")
                ));
                mirror::set_head(&dir, &h)?;
                Ok(Outcome::Fetched)
            }
            _ => Ok(Outcome::Unchanged),
        };
    }
    progress(&format!("fetching {} from {shown}", w.path));
    mirror::fetch(&dir, &w.origin, head.as_deref())?;
    Ok(Outcome::Fetched)
}
