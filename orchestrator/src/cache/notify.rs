//! "This repository changed": a sync of that one repository, now. Called
//! by the webhook (`POST /api/v1/cache/notify`, in `ferrotron serve` and in
//! `ferrotron cache serve`) and by push messages from the bus (a mapping
//! that fills `cache_repo`), so both do exactly the same thing.

use super::mirror::MirrorError;
use super::sync::{self, Outcome, SyncError, SyncOptions};
use super::{Cache, PathError, RepoPath};

#[derive(Debug, thiserror::Error)]
pub enum NotifyError {
    #[error(transparent)]
    Path(#[from] PathError),
    #[error("{0} is not in the git cache")]
    Unknown(RepoPath),
    #[error("cannot sync {path}")]
    Sync {
        path: RepoPath,
        #[source]
        source: Box<SyncError>,
    },
    #[error("cannot sync {path} from its origin")]
    Origin {
        path: RepoPath,
        #[source]
        source: Box<MirrorError>,
    },
    #[error("the sync of {0} ended abnormally")]
    Aborted(RepoPath),
}

/// What the sync did to the repository.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize, utoipa::ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum Synced {
    Cloned,
    Fetched,
    Unchanged,
}

/// Syncs `path` (given as in the manifest, `/tasks.git`, or `tasks`).
/// Blocking; it waits for a sync already running (the cache's lock), so
/// two syncs of one repository never overlap.
pub fn sync_one(cache: &Cache, path: &str) -> Result<(RepoPath, Synced), NotifyError> {
    let path = RepoPath::parse(path)?;
    let report = sync::sync(
        cache,
        std::slice::from_ref(&path),
        &SyncOptions::default(),
        &|l| tracing::info!("cache: {l}"),
    )
    .map_err(|source| match source {
        SyncError::Unknown(p) => NotifyError::Unknown(p),
        source => NotifyError::Sync {
            path: path.clone(),
            source: Box::new(source),
        },
    })?;
    let outcome = match report.repos.into_iter().next().map(|(_, o)| o) {
        Some(Outcome::Cloned) => Synced::Cloned,
        Some(Outcome::Fetched) => Synced::Fetched,
        Some(Outcome::Unchanged) | None => Synced::Unchanged,
        Some(Outcome::Failed(e)) => {
            return Err(NotifyError::Origin {
                path,
                source: Box::new(e),
            })
        }
    };
    Ok((path, outcome))
}

/// The cache path of a repository a push message names: its path in the
/// cache (`/rpms/bash.git`), or else the one mirror whose origin URL ends
/// with that name (`rpms/bash` for `https://src.example.org/rpms/bash.git`,
/// which a job added as `/bash.git`). `None` when the cache does not
/// mirror it.
pub fn find(cache: &Cache, name: &str) -> Option<RepoPath> {
    let manifest = super::manifest::Manifest::load(&cache.manifest_path()).ok()?;
    if let Ok(p) = RepoPath::parse(name) {
        if manifest.repos.contains_key(p.as_str()) {
            return Some(p);
        }
    }
    let want = format!("/{}", name.trim_matches('/').trim_end_matches(".git"));
    let mut found = manifest.repos.iter().filter(|(_, e)| {
        e.origin.as_deref().is_some_and(|o| {
            let o = o.trim_end_matches('/');
            o.strip_suffix(".git").unwrap_or(o).ends_with(&want)
        })
    });
    match (found.next(), found.next()) {
        (Some((k, _)), None) => RepoPath::parse(k).ok(),
        _ => None,
    }
}

/// [`sync_one`] on a blocking thread.
pub async fn sync_one_async(cache: Cache, path: String) -> Result<(RepoPath, Synced), NotifyError> {
    let fallback = RepoPath::parse(&path)?;
    tokio::task::spawn_blocking(move || sync_one(&cache, &path))
        .await
        .unwrap_or(Err(NotifyError::Aborted(fallback)))
}
