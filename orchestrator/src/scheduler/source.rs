//! A queued job's task source, settled before its VM boots (the job's
//! prelude): a task in a local folder is read from there; a task in a git
//! repository (a URL, or a local repository the cache mirrors) goes
//! through the git cache:
//!
//! 1. the repository is mirrored on first use (`cache add` done for the
//!    job), otherwise synced (one `ls-remote`; objects are fetched only when
//!    its refs changed). Every job syncs, so a branch pushed a second ago is
//!    seen, and an origin that does not answer is tolerated when a mirror
//!    exists: the job then runs from the cached copy (logged);
//! 2. the job's ref is resolved to a commit in the mirror;
//! 3. the task folder is read from the mirror at that commit (never from
//!    the origin) and its formula loaded from there;
//! 4. the guest gets `git_url`/`git_commit` and clones that commit from the
//!    cache (through the job's SSH tunnel, or directly; see
//!    [`crate::cache::checkout::CacheAccess`]).
//!
//! Every failure names the repository and the ref, and ends the job in
//! `error` at once: a missing repository or ref does not get better by
//! waiting.

use std::path::{Path, PathBuf};

use crate::cache::checkout::{self, CheckoutError, ExportError};
use crate::cache::manifest::Manifest;
use crate::cache::origin::public_url;
use crate::cache::sync::{self, SyncError};
use crate::cache::{mirror, Cache, PathError, RepoPath};
use crate::formula::Formula;
use crate::runner::GitSource;
use crate::store::ClaimedJob;

#[derive(Debug, thiserror::Error)]
pub enum SourceError {
    #[error(
        "task repository {}: cannot read the git cache's manifest",
        public_url(repo)
    )]
    Manifest {
        repo: String,
        #[source]
        source: crate::cache::manifest::ManifestError,
    },
    #[error(
        "task repository {}: no cache path can be made from its URL",
        public_url(repo)
    )]
    Path {
        repo: String,
        #[source]
        source: PathError,
    },
    #[error(
        "task repository {}: the cache path {path} already mirrors another origin ({})",
        public_url(repo),
        public_url(other)
    )]
    Taken {
        repo: String,
        path: RepoPath,
        other: String,
    },
    #[error(
        "task repository {}: cannot mirror it in the git cache",
        public_url(repo)
    )]
    Add {
        repo: String,
        #[source]
        source: Box<SyncError>,
    },
    #[error("task repository {}, ref `{reference}`", public_url(repo))]
    Resolve {
        repo: String,
        reference: String,
        #[source]
        source: Box<CheckoutError>,
    },
    #[error(
        "task repository {}, ref `{reference}` (commit {commit})",
        public_url(repo)
    )]
    Export {
        repo: String,
        reference: String,
        commit: String,
        #[source]
        source: Box<ExportError>,
    },
    #[error("cannot make a folder for the task's files")]
    Scratch(#[source] std::io::Error),
    #[error("task formula {path}: {message}")]
    Formula { path: PathBuf, message: String },
}

/// What a job runs, ready for the runner.
#[derive(Debug)]
pub struct Source {
    pub formula: Formula,
    /// Set for a task from the git cache (with its resolved commit).
    pub git: Option<GitSource>,
    /// The task's files read from the mirror; removed when dropped (after
    /// the run, which uploads them).
    pub scratch: Option<tempfile::TempDir>,
}

/// True for a repository named by URL (`https://`, `file://`, `git@host:`)
/// rather than by a local folder.
pub fn is_url(repo: &str) -> bool {
    repo.contains("://") || repo.starts_with("git@") || !repo.starts_with('/')
}

/// The formula file of a task folder (`<dir>/<path>/runtask.yml`, or the
/// path itself when it names a YAML file).
fn formula_file(dir: &Path, path: &str) -> PathBuf {
    let p = dir.join(if path.is_empty() { "." } else { path });
    if p.extension().is_some_and(|e| e == "yml" || e == "yaml") {
        p
    } else {
        p.join("runtask.yml")
    }
}

fn load(path: PathBuf) -> Result<Formula, SourceError> {
    Formula::load(&path).map_err(|e| SourceError::Formula {
        message: crate::util::full(&e),
        path,
    })
}

/// Settles `job`'s task source. Blocking (git): run it off the async
/// threads.
pub fn prepare(
    cache: &Cache,
    scratch_root: &Path,
    job: &ClaimedJob,
) -> Result<Source, SourceError> {
    let repo = job.repo.as_str();
    let manifest =
        Manifest::load(&cache.manifest_path()).map_err(|source| SourceError::Manifest {
            repo: repo.to_string(),
            source,
        })?;
    let mirrored = manifest
        .repos
        .iter()
        .find(|(_, e)| e.origin.as_deref() == Some(repo))
        .and_then(|(k, _)| RepoPath::parse(k).ok());
    if mirrored.is_none() && !is_url(repo) {
        // A local folder the cache does not mirror: read as it is.
        return Ok(Source {
            formula: load(formula_file(Path::new(repo), &job.path))?,
            git: None,
            scratch: None,
        });
    }
    let reference = if job.git_ref.is_empty() {
        "HEAD"
    } else {
        job.git_ref.as_str()
    };
    let (folder, file) = if Path::new(&job.path)
        .extension()
        .is_some_and(|e| e == "yml" || e == "yaml")
    {
        let p = Path::new(&job.path);
        (
            p.parent()
                .map(|d| d.display().to_string())
                .unwrap_or_default(),
            p.file_name().map(PathBuf::from).unwrap_or_default(),
        )
    } else {
        (job.path.clone(), PathBuf::from("runtask.yml"))
    };
    let (path, commit, scratch) = mirror_export(
        cache,
        scratch_root,
        &manifest,
        mirrored,
        &job.uuid,
        repo,
        reference,
        &folder,
    )?;
    let formula = load(scratch.path().join(file))?;
    Ok(Source {
        formula,
        git: Some(GitSource {
            repo: path.as_str().to_string(),
            reference: reference.to_string(),
            commit: Some(commit),
        }),
        scratch: Some(scratch),
    })
}

/// Resolves `reference` of `repo` through the git cache (adding the
/// repository when it is not mirrored yet) and exports `folder` of that
/// commit into a fresh scratch folder: (the mirror's path, the commit, the
/// folder). Blocking (git).
#[allow(clippy::too_many_arguments)]
fn mirror_export(
    cache: &Cache,
    scratch_root: &Path,
    manifest: &Manifest,
    mirrored: Option<RepoPath>,
    uuid: &str,
    repo: &str,
    reference: &str,
    folder: &str,
) -> Result<(RepoPath, String, tempfile::TempDir), SourceError> {
    let resolve_err = |source| SourceError::Resolve {
        repo: repo.to_string(),
        reference: reference.to_string(),
        source: Box::new(source),
    };
    let (path, commit) = match mirrored {
        Some(path) => {
            let c = checkout::resolve(cache, path.as_str(), reference).map_err(resolve_err)?;
            if let Some(why) = &c.stale {
                tracing::warn!(
                    "job {}: origin {} did not answer; using the cached copy of {path}: {why}",
                    uuid,
                    public_url(repo)
                );
            }
            (path, c.commit)
        }
        None => {
            let path = RepoPath::from_url(repo).map_err(|source| SourceError::Path {
                repo: repo.to_string(),
                source,
            })?;
            if let Some(other) = manifest.repos.get(path.as_str()) {
                return Err(SourceError::Taken {
                    repo: repo.to_string(),
                    other: other.origin.clone().unwrap_or_else(|| "none".into()),
                    path,
                });
            }
            tracing::info!(
                "job {}: adding {} to the git cache as {path}",
                uuid,
                public_url(repo)
            );
            match sync::add(cache, repo, &path) {
                // Another job added it meanwhile: sync it as usual.
                Ok(()) | Err(SyncError::Exists(_)) => {}
                Err(source) => {
                    return Err(SourceError::Add {
                        repo: repo.to_string(),
                        source: Box::new(source),
                    })
                }
            }
            let commit = mirror::resolve(&cache.repo_dir(&path), reference)
                .map_err(|e| resolve_err(CheckoutError::Ref(e)))?;
            (path, commit)
        }
    };
    let scratch = tempfile::Builder::new()
        .prefix("task-")
        .tempdir_in(scratch_root)
        .map_err(SourceError::Scratch)?;
    checkout::export(cache, &path, &commit, folder, scratch.path()).map_err(|source| {
        SourceError::Export {
            repo: repo.to_string(),
            reference: reference.to_string(),
            commit: commit.clone(),
            source: Box::new(source),
        }
    })?;
    Ok((path, commit, scratch))
}

/// A repository's tree at `reference`, through the git cache, for a
/// reservation to carry into its VM: (the folder, the commit). Only a
/// repository named by URL (`https://`, `file://`): the cache mirrors it.
pub fn export_tree(
    cache: &Cache,
    scratch_root: &Path,
    uuid: &str,
    repo: &str,
    reference: &str,
) -> Result<(tempfile::TempDir, String), SourceError> {
    let manifest =
        Manifest::load(&cache.manifest_path()).map_err(|source| SourceError::Manifest {
            repo: repo.to_string(),
            source,
        })?;
    let mirrored = manifest
        .repos
        .iter()
        .find(|(_, e)| e.origin.as_deref() == Some(repo))
        .and_then(|(k, _)| RepoPath::parse(k).ok());
    let reference = if reference.is_empty() {
        "HEAD"
    } else {
        reference
    };
    let (_, commit, scratch) = mirror_export(
        cache,
        scratch_root,
        &manifest,
        mirrored,
        uuid,
        repo,
        reference,
        ".",
    )?;
    Ok((scratch, commit))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn urls_and_folders() {
        assert!(is_url("https://example.org/x.git"));
        assert!(is_url("file:///srv/x"));
        assert!(is_url("git@host:x.git"));
        assert!(!is_url("/srv/tasks"));
        assert_eq!(
            formula_file(Path::new("/srv/tasks"), "hello"),
            PathBuf::from("/srv/tasks/hello/runtask.yml")
        );
        assert_eq!(
            formula_file(Path::new("/srv/tasks"), "hello/x.yaml"),
            PathBuf::from("/srv/tasks/hello/x.yaml")
        );
    }
}
