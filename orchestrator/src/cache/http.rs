//! The cache over git's smart HTTP protocol, read-only: `info/refs` and
//! `git-upload-pack` are answered by `git upload-pack --stateless-rpc` on
//! the bare mirror; anything that would push (`git-receive-pack`) is
//! refused with 403. The manifest is served too (with Last-Modified, and
//! 304 on If-Modified-Since) so another cache can follow this one. Only
//! paths listed in the manifest are served, so no request reaches a file
//! outside the cache.
//!
//! [`router`] is what `ferrotron serve` mounts; `ferrotron cache serve`
//! runs it alone.

use std::io::Read;
use std::sync::Arc;
use std::time::SystemTime;

use axum::body::Bytes;
use axum::extract::{DefaultBodyLimit, Request, State};
use axum::http::{header, HeaderMap, Method, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Json, Router};
use tokio::io::AsyncWriteExt;

use super::manifest::Manifest;
use super::{Cache, RepoPath};

/// What a client is told; details go to the log, not to the client.
#[derive(Debug, thiserror::Error)]
pub enum HttpError {
    #[error("not found")]
    NotFound,
    #[error("this cache is read-only: push is not allowed")]
    Push,
    #[error("bad request: {0}")]
    Bad(String),
    #[error("request too large: {0}")]
    TooLarge(String),
    #[error("unauthorized: {0}")]
    Unauthorized(&'static str),
    #[error("forbidden: {0}")]
    Forbidden(String),
    #[error("internal error")]
    Internal(String),
}

impl IntoResponse for HttpError {
    fn into_response(self) -> Response {
        let status = match &self {
            HttpError::NotFound => StatusCode::NOT_FOUND,
            HttpError::Push => StatusCode::FORBIDDEN,
            HttpError::Bad(_) => StatusCode::BAD_REQUEST,
            HttpError::TooLarge(_) => StatusCode::PAYLOAD_TOO_LARGE,
            HttpError::Unauthorized(_) => StatusCode::UNAUTHORIZED,
            HttpError::Forbidden(_) => StatusCode::FORBIDDEN,
            HttpError::Internal(detail) => {
                tracing::error!("cache http: {detail}");
                StatusCode::INTERNAL_SERVER_ERROR
            }
        };
        (status, format!("{self}\n")).into_response()
    }
}

/// What one server serves: the whole cache, or (a job's tunnel) one
/// repository of it and no manifest.
pub struct Served {
    pub cache: Cache,
    pub only: Option<RepoPath>,
}

type Shared = Arc<Served>;

/// Largest `git-upload-pack` request, as sent and once inflated: a
/// client's wants and haves (a clone of a repository with 100,000 refs
/// sends about 5 MiB). The same code serves a job's tunnel, so this bounds
/// what a guest can make the host hold in memory.
pub const MAX_UPLOAD_REQUEST: usize = 8 << 20;

/// `git upload-pack` processes running at once; more requests wait for
/// one to end (each holds its pack in memory until it is sent).
pub const MAX_UPLOAD_PACKS: usize = 4;

static UPLOAD_PACKS: tokio::sync::Semaphore = tokio::sync::Semaphore::const_new(MAX_UPLOAD_PACKS);

/// The cache's read-only git service and its manifest.
pub fn router(cache: Cache) -> Router {
    served(Served { cache, only: None })
}

/// A job's view of the cache: its repository only (every other path is
/// 404, the manifest too), for the tunnel a guest reaches.
pub fn job_router(cache: Cache, repo: RepoPath) -> Router {
    served(Served {
        cache,
        only: Some(repo),
    })
}

fn served(s: Served) -> Router {
    Router::new()
        .route("/manifest.js.gz", get(manifest))
        .fallback(git)
        .layer(DefaultBodyLimit::max(MAX_UPLOAD_REQUEST))
        .with_state(Arc::new(s))
}

/// `POST /api/v1/cache/notify` with `{"path": "/tasks.git"}`: syncs that
/// repository now (a push hook at the origin calls it). Token checking is
/// the API server's job.
pub fn notify_router(cache: Cache, store: crate::store::Store) -> Router {
    Router::new()
        .route("/api/v1/cache/notify", post(notify))
        .with_state(Arc::new((cache, store)))
}

#[derive(serde::Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Notify {
    pub path: String,
}

/// The webhook of `cache serve`: an operator token of the installation's
/// store, as for `serve`'s own.
pub async fn notify(
    State(shared): State<Arc<(Cache, crate::store::Store)>>,
    headers: HeaderMap,
    Json(n): Json<Notify>,
) -> Result<Json<serde_json::Value>, HttpError> {
    use super::notify::{sync_one_async, NotifyError};
    let (cache, store) = &*shared;
    let secret = crate::api::auth::bearer(&headers).map_err(HttpError::Unauthorized)?;
    match store.check_token(&secret).await {
        Ok(Some(h)) if h.role >= crate::store::Role::Operator => {}
        Ok(Some(h)) => {
            return Err(HttpError::Forbidden(format!(
                "token `{}` has the role {}; syncing the cache needs operator",
                h.name, h.role
            )))
        }
        Ok(None) => return Err(HttpError::Unauthorized("unknown or revoked token")),
        Err(e) => return Err(HttpError::Internal(crate::util::full(&e))),
    }
    let (path, outcome) = sync_one_async(cache.clone(), n.path)
        .await
        .map_err(|e| match e {
            NotifyError::Path(e) => HttpError::Bad(e.to_string()),
            NotifyError::Unknown(_) => HttpError::NotFound,
            e => HttpError::Internal(crate::util::full(&e)),
        })?;
    Ok(Json(
        serde_json::json!({ "path": path.as_str(), "outcome": outcome }),
    ))
}

async fn manifest(State(served): State<Shared>, headers: HeaderMap) -> Result<Response, HttpError> {
    if served.only.is_some() {
        return Err(HttpError::NotFound);
    }
    let p = served.cache.manifest_path();
    let meta = tokio::fs::metadata(&p)
        .await
        .map_err(|_| HttpError::NotFound)?;
    let mtime = meta.modified().unwrap_or(SystemTime::UNIX_EPOCH);
    // HTTP dates have whole seconds: a manifest written during the current
    // second may be written again within it. It is then dated a second
    // earlier, and never answered 304, so a follower that stores this date
    // asks again and cannot skip the second write. grok-pull needs the
    // header on every answer.
    let fresh = secs(mtime) >= secs(SystemTime::now());
    let dated = if fresh {
        mtime
            .checked_sub(std::time::Duration::from_secs(1))
            .unwrap_or(mtime)
    } else {
        mtime
    };
    let last_modified = httpdate::fmt_http_date(dated);
    if let Some(since) = headers
        .get(header::IF_MODIFIED_SINCE)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| httpdate::parse_http_date(v).ok())
    {
        if !fresh && secs(mtime) <= secs(since) {
            return Ok((
                StatusCode::NOT_MODIFIED,
                [(header::LAST_MODIFIED, last_modified)],
            )
                .into_response());
        }
    }
    // Served without the origins' credentials.
    let body = tokio::task::spawn_blocking(move || {
        // `public()` again: a manifest written before origins were kept
        // apart still has them whole.
        Manifest::load_public(&p)
            .map_err(|e| crate::util::full(&e))
            .and_then(|m| m.public().to_gz().map_err(|e| e.to_string()))
    })
    .await
    .map_err(|e| HttpError::Internal(e.to_string()))?
    .map_err(HttpError::Internal)?;
    Ok((
        [
            (header::CONTENT_TYPE, "application/gzip".to_string()),
            (header::LAST_MODIFIED, last_modified),
        ],
        body,
    )
        .into_response())
}

fn secs(t: SystemTime) -> u64 {
    t.duration_since(SystemTime::UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or(0)
}

/// Splits `/group/name.git/info/refs` into the repository and the rest.
fn split(uri_path: &str) -> Option<(&str, &str)> {
    for suffix in ["/info/refs", "/git-upload-pack", "/git-receive-pack"] {
        if let Some(repo) = uri_path.strip_suffix(suffix) {
            return Some((repo, suffix));
        }
    }
    None
}

/// The mirror behind a request path, if the manifest lists it (and it is
/// the one repository a job's server serves).
async fn lookup(served: &Served, repo: &str) -> Result<std::path::PathBuf, HttpError> {
    let cache = &served.cache;
    let path = RepoPath::parse(repo).map_err(|_| HttpError::NotFound)?;
    if served.only.as_ref().is_some_and(|only| *only != path) {
        return Err(HttpError::NotFound);
    }
    let c = cache.clone();
    let m = tokio::task::spawn_blocking(move || Manifest::load_public(&c.manifest_path()))
        .await
        .map_err(|e| HttpError::Internal(e.to_string()))?
        .map_err(|e| HttpError::Internal(crate::util::full(&e)))?;
    if !m.repos.contains_key(path.as_str()) {
        return Err(HttpError::NotFound);
    }
    Ok(cache.repo_dir(&path))
}

async fn git(State(served): State<Shared>, req: Request) -> Result<Response, HttpError> {
    let uri_path = req.uri().path().to_string();
    let query = req.uri().query().unwrap_or("").to_string();
    let method = req.method().clone();
    let headers = req.headers().clone();
    let (repo, what) = split(&uri_path).ok_or(HttpError::NotFound)?;
    let service = query
        .split('&')
        .find_map(|kv| kv.strip_prefix("service="))
        .unwrap_or("");
    if what == "/git-receive-pack" || service == "git-receive-pack" {
        return Err(HttpError::Push);
    }
    let dir = lookup(&served, repo).await?;
    match (method, what) {
        (Method::GET, "/info/refs") => {
            if service != "git-upload-pack" {
                // Dumb HTTP is not offered: it would serve raw files.
                return Err(HttpError::Bad(
                    "only smart HTTP (service=git-upload-pack) is served".into(),
                ));
            }
            let out = advertise_refs(&dir).await?;
            let mut body = pkt_line("# service=git-upload-pack\n");
            body.extend_from_slice(b"0000");
            body.extend_from_slice(&out);
            Ok((
                [
                    (
                        header::CONTENT_TYPE,
                        "application/x-git-upload-pack-advertisement",
                    ),
                    (header::CACHE_CONTROL, "no-cache"),
                ],
                body,
            )
                .into_response())
        }
        (Method::POST, "/git-upload-pack") => {
            let gzip = headers
                .get(header::CONTENT_ENCODING)
                .is_some_and(|v| v.as_bytes() == b"gzip");
            let too_large = || {
                HttpError::TooLarge(format!(
                    "an upload-pack request may hold at most {} MiB, inflated",
                    MAX_UPLOAD_REQUEST >> 20
                ))
            };
            let body = axum::body::to_bytes(req.into_body(), MAX_UPLOAD_REQUEST)
                .await
                .map_err(|_| too_large())?;
            let body = if gzip {
                let mut plain = Vec::new();
                flate2::read::GzDecoder::new(&body[..])
                    .take(MAX_UPLOAD_REQUEST as u64 + 1)
                    .read_to_end(&mut plain)
                    .map_err(|e| HttpError::Bad(format!("bad gzip body: {e}")))?;
                if plain.len() > MAX_UPLOAD_REQUEST {
                    return Err(too_large());
                }
                Bytes::from(plain)
            } else {
                body
            };
            let out = upload_pack_stream(&dir, body).await?;
            Ok((
                [
                    (header::CONTENT_TYPE, "application/x-git-upload-pack-result"),
                    (header::CACHE_CONTROL, "no-cache"),
                ],
                out,
            )
                .into_response())
        }
        _ => Err(HttpError::NotFound),
    }
}

fn pkt_line(s: &str) -> Vec<u8> {
    let mut v = format!("{:04x}", s.len() + 4).into_bytes();
    v.extend_from_slice(s.as_bytes());
    v
}

/// `git upload-pack --stateless-rpc --advertise-refs DIR`: the refs, small
/// enough to answer whole. The child is killed if the client goes away.
async fn advertise_refs(dir: &std::path::Path) -> Result<Vec<u8>, HttpError> {
    let _running = UPLOAD_PACKS
        .acquire()
        .await
        .map_err(|e| HttpError::Internal(e.to_string()))?;
    let out = tokio::process::Command::new("git")
        .args(["upload-pack", "--stateless-rpc", "--advertise-refs"])
        .arg(dir)
        .stdin(std::process::Stdio::null())
        .kill_on_drop(true)
        .process_group(0)
        .output()
        .await
        .map_err(|e| HttpError::Internal(format!("cannot run git upload-pack: {e}")))?;
    if !out.status.success() {
        return Err(HttpError::Internal(format!(
            "git upload-pack {} exited with {}: {}",
            dir.display(),
            out.status,
            String::from_utf8_lossy(&out.stderr).trim()
        )));
    }
    Ok(out.stdout)
}

/// `git upload-pack --stateless-rpc DIR` answering a clone or fetch: its
/// pack is streamed to the client as git writes it, never held whole in
/// memory. The process (and its slot of [`MAX_UPLOAD_PACKS`]) lives as
/// long as the response; a client that goes away kills it.
async fn upload_pack_stream(
    dir: &std::path::Path,
    input: Bytes,
) -> Result<axum::body::Body, HttpError> {
    use tokio::io::AsyncReadExt;
    let permit = UPLOAD_PACKS
        .acquire()
        .await
        .map_err(|e| HttpError::Internal(e.to_string()))?;
    let mut child = tokio::process::Command::new("git")
        .arg("upload-pack")
        .arg("--stateless-rpc")
        .arg(dir)
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::null())
        .kill_on_drop(true)
        .process_group(0)
        .spawn()
        .map_err(|e| HttpError::Internal(format!("cannot run git upload-pack: {e}")))?;
    let (Some(mut stdin), Some(stdout)) = (child.stdin.take(), child.stdout.take()) else {
        return Err(HttpError::Internal("git upload-pack has no pipes".into()));
    };
    tokio::spawn(async move {
        let _ = stdin.write_all(&input).await;
        let _ = stdin.shutdown().await;
    });
    let dir = dir.to_path_buf();
    let state = Some((stdout, child, permit));
    let stream = futures_util::stream::unfold(state, move |state| {
        let dir = dir.clone();
        async move {
            let (mut stdout, mut child, permit) = state?;
            let mut buf = vec![0u8; 64 * 1024];
            match stdout.read(&mut buf).await {
                Ok(0) => {
                    match child.wait().await {
                        Ok(status) if !status.success() => {
                            tracing::error!(
                                "cache http: git upload-pack {} exited with {status}",
                                dir.display()
                            )
                        }
                        Err(e) => {
                            tracing::error!("cache http: git upload-pack {}: {e}", dir.display())
                        }
                        Ok(_) => {}
                    }
                    drop(permit);
                    None
                }
                Ok(n) => {
                    buf.truncate(n);
                    Some((Ok(Bytes::from(buf)), Some((stdout, child, permit))))
                }
                Err(e) => Some((Err(e), None)),
            }
        }
    });
    Ok(axum::body::Body::from_stream(stream))
}

/// Serves [`router`] (and the notify webhook) on `listen` until SIGINT or
/// SIGTERM. Prints the bound address first, so port 0 can be used.
pub async fn serve(
    cache: Cache,
    store: crate::store::Store,
    listen: std::net::SocketAddr,
) -> std::io::Result<()> {
    let listener = tokio::net::TcpListener::bind(listen).await?;
    eprintln!(
        "serving cache {} on http://{}",
        cache.root.display(),
        listener.local_addr()?
    );
    let app = router(cache.clone()).merge(notify_router(cache, store));
    axum::serve(listener, app)
        .with_graceful_shutdown(async {
            let mut term =
                match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
                    Ok(t) => t,
                    Err(_) => return std::future::pending().await,
                };
            tokio::select! {
                _ = tokio::signal::ctrl_c() => {}
                _ = term.recv() => {}
            }
        })
        .await
}
