//! Following another cache's manifest (a central Ferrotron or a grokmirror
//! master) over HTTP, so a site mirrors from it instead of from every
//! origin. The manifest is fetched with If-Modified-Since: an unchanged
//! master costs one 304 and nothing else. As grok-pull does, only what the
//! manifest says changed is fetched from `<master>/<path>`: a repository we
//! lack, one whose fingerprint differs from ours (or ours from our
//! mirror's), one whose `head` moved (then HEAD is set here, nothing
//! fetched); the others are not asked at all. Repositories gone from the
//! master are purged, but never more than a configured share at once (a
//! truncated or wrong manifest must not empty the cache).
//!
//! libgit2 speaks git's smart HTTP protocol only: a master that serves its
//! repositories as plain files (dumb HTTP) is refused when it is followed,
//! with what to do about it.

use std::path::PathBuf;

use serde::{Deserialize, Serialize};

use super::manifest::{Manifest, ManifestError};
use super::origin::public_url;
use super::sync::{self, Listed, Outcome, SyncOptions, SyncReport, Work};
use super::{Cache, RepoPath};

/// What a smart-HTTP git server answers `info/refs?service=git-upload-pack`
/// with; a dumb one serves the file as it is (`text/plain`, say).
const SMART_ADVERTISEMENT: &str = "application/x-git-upload-pack-advertisement";

#[derive(Debug, thiserror::Error)]
pub enum FollowError {
    /// `url` is shown without credentials; `source` has no URL.
    #[error("cannot fetch {}", public_url(url))]
    Http {
        url: String,
        #[source]
        source: reqwest::Error,
    },
    #[error("{} answered HTTP {status}", public_url(url))]
    Status { url: String, status: u16 },
    #[error(
        "{} serves its repositories as plain files (dumb HTTP: {} answered with Content-Type {content_type:?}, not {SMART_ADVERTISEMENT}); \
         Ferrotron fetches over git's smart HTTP protocol only: serve the master's repositories with `git http-backend` \
         (or `ferrotron cache serve`) and follow it again",
        public_url(manifest), public_url(probe)
    )]
    Dumb {
        manifest: String,
        probe: String,
        content_type: String,
    },
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
    #[error(
        "{} does not name a manifest (it must end with /manifest.js.gz)",
        public_url(url)
    )]
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
        // The master's URL may carry credentials: the owner's only (a
        // NamedTempFile is made 0600).
        let mut tmp = tempfile::NamedTempFile::new_in(&cache.root).map_err(err)?;
        std::io::Write::write_all(tmp.as_file_mut(), &json).map_err(err)?;
        tmp.persist(&p).map_err(|e| err(e.error))?;
        Ok(())
    }

    /// Where repository `path` lives on the master.
    pub(crate) fn repo_url(&self, path: &RepoPath) -> String {
        let base = self
            .url
            .trim_end_matches("manifest.js.gz")
            .trim_end_matches('/');
        format!("{base}{path}")
    }
}

/// Starts following `url`, once the master answered: its manifest is
/// read, and its first repository is asked for its refs the way git's smart
/// HTTP protocol asks (a master serving plain files is refused). Returns
/// how many repositories the master lists.
pub fn follow(cache: &Cache, url: &str) -> Result<usize, FollowError> {
    if !url.ends_with("/manifest.js.gz") {
        return Err(FollowError::BadUrl { url: url.into() });
    }
    let f = Follow {
        url: url.to_string(),
        last_modified: None,
    };
    let client = reqwest::blocking::Client::new();
    let (master, _) = fetch_manifest(&client, &f)?.unwrap_or_default();
    if let Some(p) = master.repos.keys().find_map(|k| RepoPath::parse(k).ok()) {
        probe(&client, url, &f.repo_url(&p))?;
    }
    f.save(cache)?;
    Ok(master.repos.len())
}

/// Asks `repo` for its refs as a smart-HTTP client does: a dumb server
/// answers with the plain file (or not at all).
fn probe(
    client: &reqwest::blocking::Client,
    manifest: &str,
    repo: &str,
) -> Result<(), FollowError> {
    let probe = format!("{repo}/info/refs?service=git-upload-pack");
    let http = |source: reqwest::Error| FollowError::Http {
        url: probe.clone(),
        source: source.without_url(),
    };
    let resp = client.get(&probe).send().map_err(http)?;
    if !resp.status().is_success() {
        return Err(FollowError::Status {
            url: probe.clone(),
            status: resp.status().as_u16(),
        });
    }
    let content_type = resp
        .headers()
        .get(reqwest::header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .unwrap_or("")
        .to_string();
    if content_type.split(';').next().map(str::trim) != Some(SMART_ADVERTISEMENT) {
        return Err(FollowError::Dumb {
            manifest: manifest.to_string(),
            probe,
            content_type,
        });
    }
    Ok(())
}

/// GETs the master's manifest (with If-Modified-Since when a date is
/// known): `None` for 304, else the manifest and its Last-Modified.
fn fetch_manifest(
    client: &reqwest::blocking::Client,
    follow: &Follow,
) -> Result<Option<(Manifest, Option<String>)>, FollowError> {
    let http = |source: reqwest::Error| FollowError::Http {
        url: follow.url.clone(),
        source: source.without_url(),
    };
    let mut req = client.get(&follow.url);
    if let Some(lm) = &follow.last_modified {
        req = req.header("If-Modified-Since", lm);
    }
    let resp = req.send().map_err(http)?;
    if resp.status() == reqwest::StatusCode::NOT_MODIFIED {
        return Ok(None);
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
    let master = Manifest::from_gz(&body, &public_url(&follow.url))?;
    Ok(Some((master, last_modified)))
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
    let client = reqwest::blocking::Client::new();
    let Some((master, last_modified)) = fetch_manifest(&client, follow)? else {
        progress(&format!("{}: not modified", public_url(&follow.url)));
        return Ok(Pulled::NotModified);
    };

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
        let head = e
            .head
            .as_deref()
            .and_then(|h| h.strip_prefix("ref: "))
            .map(str::to_string);
        if let Some(o) = ours {
            let dir = cache.repo_dir(&p);
            // grok-pull's checks, none of which asks the master: the
            // fingerprint listed, ours, and our mirror's own (a mirror
            // changed behind the manifest's back is fetched again).
            let mirrored = super::mirror::local_refs(&dir).ok().map(|refs| {
                super::manifest::fingerprint(refs.iter().map(|(n, s)| (n.as_str(), s.as_str())))
            });
            let head_moved = head.is_some() && super::mirror::head(&dir).ok().flatten() != head;
            if o.fingerprint == e.fingerprint
                && mirrored.as_ref() == Some(&o.fingerprint)
                && !head_moved
            {
                continue;
            }
        }
        work.push(Work {
            origin: followed(&p),
            fingerprint: ours.and_then(|o| o.fingerprint.clone()),
            path: p,
            listed: Some(Listed {
                fingerprint: e.fingerprint.clone(),
                head,
            }),
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
