//! What a job needs from the cache before its VM boots: the repository is
//! mirrored, brought up to date if its origin answers, and the job's ref
//! resolved to one commit, which the job records and the guest checks out.
//! A repository the cache does not have, or a ref it does not know, is an
//! error now, not a hung job later.

use super::mirror::{self, MirrorError};
use super::sync::{self, Outcome, SyncError, SyncOptions};
use super::{Cache, PathError, RepoPath};

#[derive(Debug, thiserror::Error)]
pub enum CheckoutError {
    #[error(transparent)]
    Path(#[from] PathError),
    #[error("{0} is not in the git cache; add it with `ferrotron cache add URL --path {0}`")]
    NotCached(RepoPath),
    #[error("cannot sync {path} from its origin")]
    Sync {
        path: RepoPath,
        #[source]
        source: Box<SyncError>,
    },
    #[error(transparent)]
    Ref(#[from] MirrorError),
}

/// A job's task source, resolved.
#[derive(Debug, Clone)]
pub struct Checkout {
    pub repo: RepoPath,
    pub reference: String,
    pub commit: String,
    /// Set when the origin could not be reached and the cached copy is used.
    pub stale: Option<String>,
}

impl Checkout {
    /// The clone URL under a cache base URL (`http://127.0.0.1:8471`).
    pub fn url(&self, base: &str) -> String {
        format!("{}{}", base.trim_end_matches('/'), self.repo)
    }
}

/// Syncs `repo` (an unreachable origin is tolerated: the cached copy is the
/// point of a cache) and resolves `reference` to a commit.
pub fn resolve(cache: &Cache, repo: &str, reference: &str) -> Result<Checkout, CheckoutError> {
    let path = RepoPath::parse(repo)?;
    let report = match sync::sync(
        cache,
        std::slice::from_ref(&path),
        &SyncOptions {
            attempts: 1,
            ..SyncOptions::default()
        },
        &|l| tracing::info!("cache: {l}"),
    ) {
        Ok(r) => r,
        Err(SyncError::Unknown(p)) => return Err(CheckoutError::NotCached(p)),
        Err(source) => {
            return Err(CheckoutError::Sync {
                path,
                source: Box::new(source),
            })
        }
    };
    let stale = report.repos.iter().find_map(|(_, o)| match o {
        Outcome::Failed(e) => Some(crate::util::full(e)),
        _ => None,
    });
    let commit = mirror::resolve(&cache.repo_dir(&path), reference)?;
    Ok(Checkout {
        repo: path,
        reference: reference.to_string(),
        commit,
        stale,
    })
}

/// A ref already resolved to `commit` (recorded on a queued job): checks
/// the mirror still has that commit, without syncing.
pub fn pinned(
    cache: &Cache,
    repo: &str,
    reference: &str,
    commit: &str,
) -> Result<Checkout, CheckoutError> {
    let path = RepoPath::parse(repo)?;
    let commit = mirror::resolve(&cache.repo_dir(&path), commit)?;
    Ok(Checkout {
        repo: path,
        reference: reference.to_string(),
        commit,
        stale: None,
    })
}

/// How guests reach the cache.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum CacheAccess {
    /// A reverse tunnel over SSH to the guest's `127.0.0.1:8471` (guests on
    /// `restrict=on` user networking reach nothing else).
    #[default]
    Tunnel,
    /// The guest reaches the cache server itself at `cache_url` (hosts whose
    /// guests sit on a bridge).
    Direct,
}

impl std::str::FromStr for CacheAccess {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        match s {
            "tunnel" => Ok(CacheAccess::Tunnel),
            "direct" => Ok(CacheAccess::Direct),
            _ => Err(format!("`{s}`: cache access is `tunnel` or `direct`")),
        }
    }
}

/// The variables a job with a git source gets: `git_url` (what the guest
/// clones), `git_commit` (what it checks out), `git_repo`, `git_ref`.
pub fn job_vars(
    checkout: &Checkout,
    access: CacheAccess,
    direct_url: Option<&str>,
) -> Result<Vec<(String, String)>, String> {
    let base = match (access, direct_url) {
        (CacheAccess::Tunnel, _) => format!("http://127.0.0.1:{}", super::tunnel::GUEST_PORT),
        (CacheAccess::Direct, Some(u)) => u.to_string(),
        (CacheAccess::Direct, None) => {
            return Err("cache access `direct` needs the cache's URL as the guest sees it (--cache-url or FERROTRON_CACHE_URL)".into())
        }
    };
    Ok(vec![
        ("git_url".into(), checkout.url(&base)),
        ("git_commit".into(), checkout.commit.clone()),
        ("git_repo".into(), checkout.repo.as_str().to_string()),
        ("git_ref".into(), checkout.reference.clone()),
    ])
}

/// Why a task folder could not be read out of a mirror.
#[derive(Debug, thiserror::Error)]
pub enum ExportError {
    #[error(transparent)]
    Mirror(#[from] MirrorError),
    #[error("no folder `{folder}` in {repo} at commit {commit}")]
    NoFolder {
        repo: RepoPath,
        folder: String,
        commit: String,
        #[source]
        source: git2::Error,
    },
    #[error("cannot read {repo} at commit {commit}")]
    Read {
        repo: RepoPath,
        commit: String,
        #[source]
        source: git2::Error,
    },
    #[error("cannot write {path}")]
    Write {
        path: std::path::PathBuf,
        #[source]
        source: std::io::Error,
    },
}

/// Writes the files of `folder` (`""` for the whole tree) of `commit` in
/// the mirror of `repo` under `dest`: the scheduler reads a job's formula
/// from the cache at the job's commit, never from the origin or from a
/// branch that may have moved. Regular files and folders only (links and
/// submodules are left out, as the upload to the guest leaves them out).
pub fn export(
    cache: &Cache,
    repo: &RepoPath,
    commit: &str,
    folder: &str,
    dest: &std::path::Path,
) -> Result<(), ExportError> {
    let git = mirror::open(&cache.repo_dir(repo))?;
    let read = |source| ExportError::Read {
        repo: repo.clone(),
        commit: commit.to_string(),
        source,
    };
    let oid = git2::Oid::from_str(commit).map_err(read)?;
    let root = git.find_commit(oid).and_then(|c| c.tree()).map_err(read)?;
    let folder = folder.trim_matches('/');
    let tree = if folder.is_empty() || folder == "." {
        root
    } else {
        root.get_path(std::path::Path::new(folder))
            .and_then(|e| e.to_object(&git))
            .and_then(|o| o.peel_to_tree())
            .map_err(|source| ExportError::NoFolder {
                repo: repo.clone(),
                folder: folder.to_string(),
                commit: commit.to_string(),
                source,
            })?
    };
    write_tree(&git, &tree, dest).map_err(|e| match e {
        WriteErr::Git(source) => read(source),
        WriteErr::Io(path, source) => ExportError::Write { path, source },
    })
}

enum WriteErr {
    Git(git2::Error),
    Io(std::path::PathBuf, std::io::Error),
}

fn write_tree(
    git: &git2::Repository,
    tree: &git2::Tree<'_>,
    dest: &std::path::Path,
) -> Result<(), WriteErr> {
    use std::os::unix::fs::PermissionsExt;
    std::fs::create_dir_all(dest).map_err(|e| WriteErr::Io(dest.to_path_buf(), e))?;
    for entry in tree.iter() {
        let Ok(name) = entry.name() else { continue };
        if name == ".git" || name.contains('/') || name == ".." || name == "." {
            continue;
        }
        let path = dest.join(name);
        match entry.kind() {
            Some(git2::ObjectType::Tree) => {
                let sub = git.find_tree(entry.id()).map_err(WriteErr::Git)?;
                write_tree(git, &sub, &path)?;
            }
            Some(git2::ObjectType::Blob) if entry.filemode() != 0o120000 => {
                let blob = git.find_blob(entry.id()).map_err(WriteErr::Git)?;
                std::fs::write(&path, blob.content()).map_err(|e| WriteErr::Io(path.clone(), e))?;
                let mode = if entry.filemode() == 0o100755 {
                    0o755
                } else {
                    0o644
                };
                std::fs::set_permissions(&path, std::fs::Permissions::from_mode(mode))
                    .map_err(|e| WriteErr::Io(path.clone(), e))?;
            }
            _ => {}
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn checkout() -> Checkout {
        Checkout {
            repo: RepoPath::parse("tasks").expect("path"),
            reference: "main".into(),
            commit: "0123456789abcdef0123456789abcdef01234567".into(),
            stale: None,
        }
    }

    fn var(vars: &[(String, String)], name: &str) -> String {
        vars.iter()
            .find(|(k, _)| k == name)
            .map(|(_, v)| v.clone())
            .unwrap_or_default()
    }

    #[test]
    fn the_guest_gets_the_tunnel_or_the_configured_url() {
        let vars = job_vars(&checkout(), CacheAccess::Tunnel, None).expect("tunnel");
        assert_eq!(var(&vars, "git_url"), "http://127.0.0.1:8471/tasks.git");
        assert_eq!(
            var(&vars, "git_commit"),
            "0123456789abcdef0123456789abcdef01234567"
        );
        // Direct: exactly the configured base (here `ferrotron serve`'s
        // `/git` mount on a bridged host), whatever the tunnel would be.
        let vars = job_vars(
            &checkout(),
            CacheAccess::Direct,
            Some("http://cache.example.org:8080/git/"),
        )
        .expect("direct");
        assert_eq!(
            var(&vars, "git_url"),
            "http://cache.example.org:8080/git/tasks.git"
        );
        let e = job_vars(&checkout(), CacheAccess::Direct, None).expect_err("no URL");
        assert!(e.contains("--cache-url"), "{e}");
        assert_eq!("direct".parse::<CacheAccess>(), Ok(CacheAccess::Direct));
        assert!("bridge".parse::<CacheAccess>().is_err());
    }
}
