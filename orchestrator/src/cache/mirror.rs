//! One bare mirror: created, fetched and read with libgit2 (git2). The
//! mirror keeps every ref of its origin (`+refs/*:refs/*`), pruned, so a
//! force-pushed branch or a deleted tag looks in the cache as it does at
//! the origin.

use std::path::{Path, PathBuf};

use git2::{Direction, FetchOptions, FetchPrune, Remote, Repository};

use super::manifest::{self, Entry};
use super::origin::{public_url, scrub};

/// The refspec of a mirror: every ref, forced.
pub const MIRROR_REFSPEC: &str = "+refs/*:refs/*";

#[derive(Debug, thiserror::Error)]
pub enum MirrorError {
    #[error("cannot reach origin {}", public_url(url))]
    Unreachable {
        url: String,
        #[source]
        source: git2::Error,
    },
    #[error("cannot fetch {} into {dir}", public_url(url))]
    Fetch {
        url: String,
        dir: PathBuf,
        #[source]
        source: git2::Error,
    },
    #[error("cannot open mirror {dir}")]
    Open {
        dir: PathBuf,
        #[source]
        source: git2::Error,
    },
    #[error("cannot create mirror {dir}")]
    Create {
        dir: PathBuf,
        #[source]
        source: git2::Error,
    },
    #[error("`{reference}` is not a branch, tag or commit of {dir}")]
    UnknownRef {
        reference: String,
        dir: PathBuf,
        #[source]
        source: git2::Error,
    },
}

/// What an origin advertises: its refs (peeled tag entries left out, as
/// `git show-ref` leaves them out) and where its HEAD points.
#[derive(Debug, Clone, Default)]
pub struct RemoteRefs {
    pub refs: Vec<(String, String)>,
    pub head: Option<String>,
}

impl RemoteRefs {
    pub fn fingerprint(&self) -> Option<String> {
        manifest::fingerprint(self.refs.iter().map(|(n, s)| (n.as_str(), s.as_str())))
    }
}

/// A libgit2 error whose message cannot show `url`'s credentials.
fn scrubbed(e: git2::Error, url: &str) -> git2::Error {
    let clean = scrub(e.message(), url);
    if clean == e.message() {
        return e;
    }
    git2::Error::new(e.code(), e.class(), clean)
}

/// `git ls-remote`: one round trip, no objects transferred.
pub fn ls_remote(url: &str) -> Result<RemoteRefs, MirrorError> {
    let unreachable = |source| MirrorError::Unreachable {
        url: url.to_string(),
        source: scrubbed(source, url),
    };
    let mut remote = Remote::create_detached(url).map_err(unreachable)?;
    let conn = remote
        .connect_auth(Direction::Fetch, None, None)
        .map_err(unreachable)?;
    let mut out = RemoteRefs::default();
    for h in conn.list().map_err(unreachable)? {
        let name = h.name();
        if name == "HEAD" {
            out.head = h.symref_target().map(str::to_string);
        } else if name.starts_with("refs/") && !name.ends_with("^{}") {
            out.refs.push((name.to_string(), h.oid().to_string()));
        }
    }
    Ok(out)
}

/// Creates an empty bare mirror of `url` at `dir`.
pub fn init(dir: &Path, url: &str) -> Result<(), MirrorError> {
    let err = |source| MirrorError::Create {
        dir: dir.to_path_buf(),
        source,
    };
    let repo = Repository::init_bare(dir).map_err(err)?;
    repo.remote_with_fetch("origin", url, MIRROR_REFSPEC)
        .map_err(err)?;
    let mut cfg = repo.config().map_err(err)?;
    cfg.set_bool("remote.origin.mirror", true).map_err(err)?;
    // The origin URL, credentials and all, is readable by the owner only.
    use std::os::unix::fs::PermissionsExt;
    std::fs::set_permissions(dir.join("config"), std::fs::Permissions::from_mode(0o600)).map_err(
        |e| {
            err(git2::Error::from_str(&format!(
                "cannot make the mirror's config private: {e}"
            )))
        },
    )?;
    Ok(())
}

/// Fetches every ref of the origin, pruning refs the origin deleted, and
/// points HEAD where the origin's HEAD points.
pub fn fetch(dir: &Path, url: &str, head: Option<&str>) -> Result<(), MirrorError> {
    let repo = open(dir)?;
    let err = |source| MirrorError::Fetch {
        url: url.to_string(),
        dir: dir.to_path_buf(),
        source: scrubbed(source, url),
    };
    let mut remote = repo.remote_anonymous(url).map_err(err)?;
    let mut opts = FetchOptions::new();
    opts.prune(FetchPrune::On);
    opts.download_tags(git2::AutotagOption::None);
    remote
        .fetch(&[MIRROR_REFSPEC], Some(&mut opts), None)
        .map_err(err)?;
    // An anonymous remote does not prune: delete what the origin no longer
    // has ourselves, from the list the fetch just saw.
    let advertised: std::collections::HashSet<String> = remote
        .list()
        .map_err(err)?
        .iter()
        .map(|h| h.name().to_string())
        .collect();
    let stale: Vec<String> = repo
        .references()
        .map_err(err)?
        .filter_map(Result::ok)
        .filter_map(|r| r.name().ok().map(str::to_string))
        .filter(|n| !advertised.contains(n))
        .collect();
    for name in stale {
        if let Ok(mut r) = repo.find_reference(&name) {
            r.delete().map_err(err)?;
        }
    }
    if let Some(h) = head {
        repo.set_head(h).map_err(err)?;
    }
    Ok(())
}

/// Where the mirror's HEAD points (`refs/heads/main`), if it is symbolic.
pub fn head(dir: &Path) -> Result<Option<String>, MirrorError> {
    let repo = open(dir)?;
    let head = repo
        .find_reference("HEAD")
        .ok()
        .and_then(|h| h.symbolic_target().ok().flatten().map(str::to_string));
    Ok(head)
}

/// Points the mirror's HEAD at `target` (`refs/heads/main`), as the origin's
/// points; nothing is fetched.
pub fn set_head(dir: &Path, target: &str) -> Result<(), MirrorError> {
    let repo = open(dir)?;
    repo.set_head(target).map_err(|source| MirrorError::Open {
        dir: dir.to_path_buf(),
        source,
    })
}

pub fn open(dir: &Path) -> Result<Repository, MirrorError> {
    Repository::open_bare(dir).map_err(|source| MirrorError::Open {
        dir: dir.to_path_buf(),
        source,
    })
}

/// The mirror's refs as `git show-ref` lists them.
pub fn local_refs(dir: &Path) -> Result<Vec<(String, String)>, MirrorError> {
    let repo = open(dir)?;
    let err = |source| MirrorError::Open {
        dir: dir.to_path_buf(),
        source,
    };
    let mut out = Vec::new();
    for r in repo.references().map_err(err)? {
        let r = r.map_err(err)?;
        let (Some(name), Ok(resolved)) = (r.name().ok().map(str::to_string), r.resolve()) else {
            continue;
        };
        if let Some(oid) = resolved.target() {
            out.push((name, oid.to_string()));
        }
    }
    Ok(out)
}

/// The mirror's manifest entry, computed from the repository itself.
pub fn entry(dir: &Path, origin: &str) -> Result<Entry, MirrorError> {
    let repo = open(dir)?;
    let refs = local_refs(dir)?;
    let modified = refs
        .iter()
        .filter_map(|(_, sha)| git2::Oid::from_str(sha).ok())
        .filter_map(|oid| repo.find_object(oid, None).ok())
        .filter_map(|o| o.peel_to_commit().ok())
        .map(|c| c.time().seconds())
        .max()
        .unwrap_or(0);
    let head = repo.find_reference("HEAD").ok().and_then(|h| {
        h.symbolic_target()
            .ok()
            .flatten()
            .map(|t| format!("ref: {t}"))
    });
    let description = std::fs::read_to_string(dir.join("description"))
        .ok()
        .map(|d| d.trim().to_string())
        .filter(|d| !d.is_empty() && !d.starts_with("Unnamed repository"));
    let owner = repo
        .config()
        .ok()
        .and_then(|c| c.get_string("gitweb.owner").ok());
    Ok(Entry {
        modified,
        fingerprint: manifest::fingerprint(refs.iter().map(|(n, s)| (n.as_str(), s.as_str()))),
        head,
        description,
        owner,
        origin: Some(origin.to_string()),
    })
}

/// The commit a branch, tag or sha names in the mirror.
pub fn resolve(dir: &Path, reference: &str) -> Result<String, MirrorError> {
    let repo = open(dir)?;
    let unknown = |source| MirrorError::UnknownRef {
        reference: reference.to_string(),
        dir: dir.to_path_buf(),
        source,
    };
    let candidates = [
        reference.to_string(),
        format!("refs/heads/{reference}"),
        format!("refs/tags/{reference}"),
    ];
    let mut last = None;
    for c in &candidates {
        match repo.revparse_single(c).and_then(|o| o.peel_to_commit()) {
            Ok(commit) => return Ok(commit.id().to_string()),
            Err(e) => last = Some(e),
        }
    }
    Err(unknown(
        last.unwrap_or_else(|| git2::Error::from_str("not found")),
    ))
}
