//! Following another cache's manifest (a central Ferrotron or a grokmirror
//! master) over HTTP, so a site mirrors from it instead of from every
//! origin. The manifest is fetched with If-Modified-Since: an unchanged
//! master costs one 304. Repositories whose fingerprint differs from ours
//! are synced from `<master>/<path>`; repositories gone from the master are
//! purged, but never more than a configured share at once (a truncated or
//! wrong manifest must not empty the cache).

use std::path::PathBuf;

use serde::{Deserialize, Serialize};

use super::manifest::{Manifest, ManifestError};
use super::sync::{self, Outcome, SyncOptions, SyncReport, Work};
use super::{Cache, RepoPath};

#[derive(Debug, thiserror::Error)]
pub enum FollowError {
    #[error("cannot fetch the followed manifest {url}")]
    Http {
        url: String,
        #[source]
        source: reqwest::Error,
    },
    #[error("the followed manifest {url} answered HTTP {status}")]
    Status { url: String, status: u16 },
    #[error(transparent)]
    Manifest(#[from] ManifestError),
    #[error("refusing to purge {purge} of {total} followed repositories ({share}% > {max}% allowed); check the master, or pass --force-purge")]
    PurgeProtected {
        purge: usize,
        total: usize,
        share: usize,
        max: u32,
    },
    #[error("cannot read or write {path}")]
    Io {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("{url} does not name a manifest (it must end with /manifest.js.gz)")]
    BadUrl { url: String },
}

/// The followed master, kept in `<cache>/follow.json`.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Follow {
    pub url: String,
    /// The master's Last-Modified, sent back as If-Modified-Since.
    #[serde(default)]
    pub last_modified: Option<String>,
}

impl Follow {
    fn path(cache: &Cache) -> PathBuf {
        cache.root.join("follow.json")
    }

    pub fn load(cache: &Cache) -> Result<Option<Follow>, FollowError> {
        let p = Follow::path(cache);
        match std::fs::read(&p) {
            Ok(b) => serde_json::from_slice(&b)
                .map(Some)
                .map_err(|e| FollowError::Io {
                    path: p,
                    source: e.into(),
                }),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
            Err(source) => Err(FollowError::Io { path: p, source }),
        }
    }

    pub fn save(&self, cache: &Cache) -> Result<(), FollowError> {
        let p = Follow::path(cache);
        let err = |source| FollowError::Io {
            path: p.clone(),
            source,
        };
        crate::util::make_dir(&cache.root, crate::util::modes::PRIVATE_DIR).map_err(err)?;
        let json = serde_json::to_vec_pretty(self).map_err(|e| err(e.into()))?;
        let tmp = p.with_extension("json.tmp");
        std::fs::write(&tmp, json).map_err(err)?;
        std::fs::rename(&tmp, &p).map_err(err)
    }

    /// Where repository `path` lives on the master.
    fn repo_url(&self, path: &RepoPath) -> String {
        let base = self
            .url
            .trim_end_matches("manifest.js.gz")
            .trim_end_matches('/');
        format!("{base}{path}")
    }
}

/// Starts following `url`.
pub fn follow(cache: &Cache, url: &str) -> Result<(), FollowError> {
    if !url.ends_with("/manifest.js.gz") {
        return Err(FollowError::BadUrl { url: url.into() });
    }
    Follow {
        url: url.to_string(),
        last_modified: None,
    }
    .save(cache)
}

/// grokmirror's purge protection: deleting `purge` of `total` followed
/// repositories is allowed when it is at most `max_percent` of them.
pub fn purge_allowed(purge: usize, total: usize, max_percent: u32) -> bool {
    purge == 0 || purge * 100 <= total * max_percent as usize
}

/// What a pull did.
#[derive(Debug)]
pub enum Pulled {
    /// The master answered 304.
    NotModified,
    Synced {
        report: SyncReport,
        purged: Vec<RepoPath>,
    },
}

/// Pulls from the followed master.
pub fn pull(
    cache: &Cache,
    follow: &mut Follow,
    opts: &SyncOptions,
    max_purge_percent: u32,
    force_purge: bool,
    progress: &(dyn Fn(&str) + Sync),
) -> Result<Pulled, FollowError> {
    let http = |source| FollowError::Http {
        url: follow.url.clone(),
        source,
    };
    let client = reqwest::blocking::Client::new();
    let mut req = client.get(&follow.url);
    if let Some(lm) = &follow.last_modified {
        req = req.header("If-Modified-Since", lm);
    }
    let resp = req.send().map_err(http)?;
    if resp.status() == reqwest::StatusCode::NOT_MODIFIED {
        progress(&format!("{}: not modified", follow.url));
        return Ok(Pulled::NotModified);
    }
    if !resp.status().is_success() {
        return Err(FollowError::Status {
            url: follow.url.clone(),
            status: resp.status().as_u16(),
        });
    }
    let last_modified = resp
        .headers()
        .get("Last-Modified")
        .and_then(|v| v.to_str().ok())
        .map(str::to_string);
    let body = resp.bytes().map_err(http)?;
    let master = Manifest::from_gz(&body, &follow.url)?;

    let lock = cache.lock().map_err(|source| FollowError::Io {
        path: cache.root.clone(),
        source,
    })?;
    let mpath = cache.manifest_path();
    let mut manifest = Manifest::load(&mpath)?;
    let followed = |p: &RepoPath| follow.repo_url(p);
    // Ours that came from the master and that it no longer lists.
    let mut mine = 0;
    let mut purge = Vec::new();
    for (k, e) in &manifest.repos {
        let Ok(p) = RepoPath::parse(k) else { continue };
        if e.origin.as_deref() == Some(followed(&p).as_str()) {
            mine += 1;
            if !master.repos.contains_key(k) {
                purge.push(p);
            }
        }
    }
    if !force_purge && !purge_allowed(purge.len(), mine, max_purge_percent) {
        return Err(FollowError::PurgeProtected {
            purge: purge.len(),
            total: mine,
            share: purge.len() * 100 / mine.max(1),
            max: max_purge_percent,
        });
    }
    for p in &purge {
        progress(&format!("purging {p} (gone from the master)"));
        manifest.repos.remove(p.as_str());
    }
    manifest.save(&mpath)?;
    for p in &purge {
        let _ = std::fs::remove_dir_all(cache.repo_dir(p));
    }
    let mut work = Vec::new();
    for (k, e) in &master.repos {
        let Ok(p) = RepoPath::parse(k) else {
            progress(&format!("skipping {k:?}: not a valid repository path"));
            continue;
        };
        let ours = manifest.repos.get(k);
        if ours.is_some_and(|o| o.fingerprint == e.fingerprint) {
            continue;
        }
        work.push(Work {
            origin: followed(&p),
            fingerprint: ours.and_then(|o| o.fingerprint.clone()),
            path: p,
        });
    }
    let results = sync::run(cache, work, opts, progress);
    let mut report = SyncReport::default();
    for (path, origin, outcome) in results {
        if matches!(outcome, Outcome::Cloned | Outcome::Fetched) {
            if let Ok(e) = super::mirror::entry(&cache.repo_dir(&path), &origin) {
                manifest.repos.insert(path.as_str().to_string(), e);
            }
        }
        report.repos.push((path, outcome));
    }
    manifest.save(&mpath)?;
    drop(lock);
    if report.failed() == 0 {
        follow.last_modified = last_modified;
        follow.save(cache)?;
    }
    Ok(Pulled::Synced {
        report,
        purged: purge,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn purge_protection_allows_a_small_share_only() {
        assert!(purge_allowed(0, 0, 5));
        assert!(purge_allowed(1, 20, 5));
        assert!(!purge_allowed(2, 20, 5));
        assert!(!purge_allowed(1, 1, 5));
        assert!(purge_allowed(10, 19, 100));
    }
}
