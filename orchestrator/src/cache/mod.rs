//! A grokmirror-style cache of task repositories: one bare mirror per
//! repository under `<data dir>/cache/<path>.git`, a manifest in
//! grokmirror's format beside them, a sync that fetches only what changed,
//! an fsck that repairs, and a read-only smart-HTTP server for guests.
//!
//! Jobs clone their task from here instead of from its origin, so a job does
//! not depend on the origin being up and does not pay for a full clone over
//! the network each time.

pub mod checkout;
pub mod follow;
pub mod fsck;
pub mod http;
pub mod maintain;
pub mod manifest;
pub mod mirror;
pub mod net;
pub mod notify;
pub mod origin;
pub mod sync;
pub mod tunnel;

use std::path::{Path, PathBuf};

/// Where the cache lives on disk. Cheap to clone; every operation takes the
/// manifest lock it needs.
#[derive(Debug, Clone)]
pub struct Cache {
    pub root: PathBuf,
}

/// Why a repository path is refused.
#[derive(Debug, thiserror::Error)]
pub enum PathError {
    #[error("repository path `{0}` is not a relative path of plain names (letters, digits, `-_.+`) separated by `/`")]
    Invalid(String),
}

/// A validated repository path as the manifest keys it: `/name.git` or
/// `/group/name.git`. Never absolute on disk, never `..`, never hidden.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct RepoPath(String);

impl RepoPath {
    /// Accepts `name`, `name.git`, `/group/name.git`...
    pub fn parse(s: &str) -> Result<RepoPath, PathError> {
        let bad = || PathError::Invalid(s.to_string());
        let trimmed = s.trim_start_matches('/');
        let trimmed = trimmed.strip_suffix(".git").unwrap_or(trimmed);
        if trimmed.is_empty() {
            return Err(bad());
        }
        for part in trimmed.split('/') {
            let ok = !part.is_empty()
                && !part.starts_with('.')
                && part
                    .chars()
                    .all(|c| c.is_ascii_alphanumeric() || "-_.+".contains(c));
            if !ok {
                return Err(bad());
            }
        }
        Ok(RepoPath(format!("/{trimmed}.git")))
    }

    /// The manifest key, `/group/name.git`.
    pub fn as_str(&self) -> &str {
        &self.0
    }

    /// A path relative to the cache root, `group/name.git`.
    pub fn relative(&self) -> &str {
        &self.0[1..]
    }

    /// The default path for an origin URL: its last component.
    pub fn from_url(url: &str) -> Result<RepoPath, PathError> {
        // The URL's path only: a query or fragment never names the mirror
        // (`bash.git#/tasks` is `bash.git`, not `/tasks.git`).
        let path = url.split(['?', '#']).next().unwrap_or_default();
        let last = path
            .trim_end_matches('/')
            .rsplit(['/', ':'])
            .next()
            .unwrap_or_default();
        RepoPath::parse(last)
    }
}

impl std::fmt::Display for RepoPath {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0)
    }
}

impl Cache {
    pub fn new(data_dir: &Path) -> Cache {
        Cache {
            root: data_dir.join("cache"),
        }
    }

    /// The bare mirror of `path`.
    pub fn repo_dir(&self, path: &RepoPath) -> PathBuf {
        self.root.join(path.relative())
    }

    pub fn manifest_path(&self) -> PathBuf {
        self.root.join("manifest.js.gz")
    }

    /// Taken by every command that changes the manifest, so two syncs (or a
    /// sync and a webhook) never interleave their writes.
    pub fn lock(&self) -> std::io::Result<CacheLock> {
        use fs4::fs_std::FileExt;
        crate::util::make_dir(&self.root, crate::util::modes::PRIVATE_DIR)?;
        let f = std::fs::OpenOptions::new()
            .create(true)
            .truncate(false)
            .write(true)
            .open(self.root.join(".lock"))?;
        f.lock_exclusive()?;
        Ok(CacheLock(f))
    }
}

impl Cache {
    /// Taken while one repository's mirror is fetched or removed: two syncs
    /// of it never overlap, while the cache's own lock (the manifest) is
    /// never held across network I/O.
    pub fn repo_lock(&self, path: &RepoPath) -> std::io::Result<CacheLock> {
        use fs4::fs_std::FileExt;
        let dir = self.root.join(".locks");
        std::fs::create_dir_all(&dir)?;
        let name = path.as_str().trim_start_matches('/').replace('/', "%");
        let f = std::fs::OpenOptions::new()
            .create(true)
            .truncate(false)
            .write(true)
            .open(dir.join(format!("{name}.lock")))?;
        f.lock_exclusive()?;
        Ok(CacheLock(f))
    }
}

/// Holds the cache's lock file locked until dropped.
pub struct CacheLock(#[expect(dead_code, reason = "held for its lock")] std::fs::File);

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn paths_are_plain_names() {
        assert_eq!(RepoPath::parse("a").expect("in test").as_str(), "/a.git");
        assert_eq!(
            RepoPath::parse("/g/a.git").expect("in test").as_str(),
            "/g/a.git"
        );
        for bad in [
            "", "/", "../x", "a/../b", ".hidden", "a//b", "a b", "a/.git",
        ] {
            assert!(RepoPath::parse(bad).is_err(), "{bad}");
        }
        assert_eq!(
            RepoPath::from_url("http://h/x/tasks.git")
                .expect("in test")
                .as_str(),
            "/tasks.git"
        );
        assert_eq!(
            RepoPath::from_url("/tmp/o/r1").expect("in test").as_str(),
            "/r1.git"
        );
        for url in [
            "https://h/rpms/bash.git#/tasks",
            "https://h/rpms/bash.git?x=/tasks",
            "https://h/rpms/bash.git/?a#b",
        ] {
            assert_eq!(
                RepoPath::from_url(url).expect("valid").as_str(),
                "/bash.git",
                "{url}"
            );
        }
    }
}
