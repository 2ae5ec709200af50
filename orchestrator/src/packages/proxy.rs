//! The package proxy of one job: an HTTP forward proxy on an ephemeral
//! host loopback port, which the job's tunnel brings to the guest's
//! `127.0.0.1:8472` (the image's `Acquire::http::Proxy`).
//!
//! - It forwards `GET` and `HEAD` of absolute `http://` URLs below the
//!   image's repositories and refuses everything else (403): the guest
//!   cannot use it to reach any other host or path.
//! - Files that never change under their name (`pool/`, `by-hash/`) are
//!   kept in the host's package cache, shared by every job (one download
//!   for two jobs asking at once, size bound, least recently used first
//!   out: the download cache's rules); package lists pass through.
//! - A repository may be fetched from a mirror of it (`--package-mirror`);
//!   the cache knows files by the repository's URL, so both share copies.

use std::net::SocketAddr;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::thread::JoinHandle;

use axum::body::{Body, Bytes};
use axum::extract::State;
use axum::http::{header, Method, StatusCode, Uri};
use axum::response::{IntoResponse, Response};

use super::Mirror;
use crate::downloads::cache::DownloadCache;

/// Largest package list (or other uncached file) passed through.
pub const MAX_PASS_THROUGH: u64 = 256 * 1024 * 1024;

#[derive(Debug, thiserror::Error)]
pub enum ProxyError {
    #[error("cannot start the package proxy for the job")]
    Start(#[source] std::io::Error),
    #[error("cannot make the package proxy's HTTP client")]
    Client(#[source] reqwest::Error),
}

/// What the proxy did for the job, for its log.
#[derive(Debug, Default)]
pub struct Stats {
    pub requests: AtomicU64,
    pub from_cache: AtomicU64,
    pub fetched_bytes: AtomicU64,
    pub refused: AtomicU64,
    pub failed: AtomicU64,
}

impl Stats {
    pub fn summary(&self) -> String {
        let g = |a: &AtomicU64| a.load(Ordering::Relaxed);
        format!(
            "{} request(s), {} from the host's cache, {} KiB fetched, {} refused, {} failed",
            g(&self.requests),
            g(&self.from_cache),
            g(&self.fetched_bytes) / 1024,
            g(&self.refused),
            g(&self.failed)
        )
    }
}

struct Repo {
    /// As the guest names it, without a trailing `/`.
    url: String,
    /// Where it is fetched from.
    upstream: String,
}

struct Shared {
    repos: Vec<Repo>,
    cache: DownloadCache,
    http: reqwest::blocking::Client,
    stats: Arc<Stats>,
}

/// The proxy, running; stopped (gracefully, then joined) when dropped.
pub struct ProxyServer {
    pub addr: SocketAddr,
    pub stats: Arc<Stats>,
    shutdown: Option<tokio::sync::oneshot::Sender<()>>,
    thread: Option<JoinHandle<()>>,
    // Dropped after the thread: the blocking client must not be dropped
    // inside the runtime.
    _shared: Arc<Shared>,
}

impl ProxyServer {
    /// Serves `repositories` (base URLs), fetched from their `mirrors`
    /// where one is configured, caching in `cache`.
    pub fn start(
        repositories: &[String],
        mirrors: &[Mirror],
        cache: DownloadCache,
    ) -> Result<ProxyServer, ProxyError> {
        let repos = repositories
            .iter()
            .map(|r| {
                let url = r.trim_end_matches('/').to_string();
                let upstream = mirrors
                    .iter()
                    .find(|m| m.from == url)
                    .map_or_else(|| url.clone(), |m| m.to.clone());
                Repo { url, upstream }
            })
            .collect();
        let stats = Arc::new(Stats::default());
        let shared = Arc::new(Shared {
            repos,
            cache,
            http: crate::downloads::http::client().map_err(ProxyError::Client)?,
            stats: stats.clone(),
        });
        let std_listener = std::net::TcpListener::bind("127.0.0.1:0").map_err(ProxyError::Start)?;
        let addr = std_listener.local_addr().map_err(ProxyError::Start)?;
        std_listener
            .set_nonblocking(true)
            .map_err(ProxyError::Start)?;
        let rt = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(2)
            .max_blocking_threads(8)
            .enable_all()
            .build()
            .map_err(ProxyError::Start)?;
        let (tx, rx) = tokio::sync::oneshot::channel::<()>();
        let state = shared.clone();
        let thread = std::thread::Builder::new()
            .name("package-proxy".into())
            .spawn(move || {
                rt.block_on(async move {
                    let Ok(listener) = tokio::net::TcpListener::from_std(std_listener) else {
                        return;
                    };
                    let app = axum::Router::new().fallback(handle).with_state(state);
                    let _ = axum::serve(listener, app)
                        .with_graceful_shutdown(async {
                            let _ = rx.await;
                        })
                        .await;
                });
                // The runtime ends here, outside `block_on`.
                drop(rt);
            })
            .map_err(ProxyError::Start)?;
        Ok(ProxyServer {
            addr,
            stats,
            shutdown: Some(tx),
            thread: Some(thread),
            _shared: shared,
        })
    }
}

impl Drop for ProxyServer {
    fn drop(&mut self) {
        if let Some(tx) = self.shutdown.take() {
            let _ = tx.send(());
        }
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

fn refuse(stats: &Stats, status: StatusCode, why: String) -> Response {
    stats.refused.fetch_add(1, Ordering::Relaxed);
    tracing::info!("package proxy: refused: {why}");
    (status, format!("ferrotron package proxy: {why}\n")).into_response()
}

/// The URL the guest asked for, if it is one the proxy may forward: an
/// absolute `http://` URL with no query, no dot segments (plain or
/// encoded) and no encoded slash, so that it cannot leave its repository.
fn checked_url(uri: &Uri) -> Result<String, String> {
    if uri.scheme_str() != Some("http") || uri.authority().is_none() {
        return Err(format!(
            "`{uri}` is not an absolute http:// URL (this is a proxy for the image's package \
             repositories)"
        ));
    }
    if uri.query().is_some() {
        return Err(format!("`{uri}` has a query"));
    }
    let path = uri.path();
    let lower = path.to_ascii_lowercase();
    let dotty = path
        .split('/')
        .skip(1)
        .any(|seg| seg.is_empty() || seg == "." || seg == "..");
    if dotty || lower.contains("%2e") || lower.contains("%2f") || lower.contains("%5c") {
        return Err(format!("`{uri}` has an empty, dot or encoded path segment"));
    }
    Ok(uri.to_string())
}

/// Whether a repository file never changes under its name.
fn immutable(rest: &str) -> bool {
    rest.starts_with("/pool/") || rest.contains("/by-hash/")
}

async fn handle(State(st): State<Arc<Shared>>, method: Method, uri: Uri) -> Response {
    st.stats.requests.fetch_add(1, Ordering::Relaxed);
    if method != Method::GET && method != Method::HEAD {
        return refuse(
            &st.stats,
            StatusCode::METHOD_NOT_ALLOWED,
            format!("{method} is not allowed"),
        );
    }
    let url = match checked_url(&uri) {
        Ok(u) => u,
        Err(why) => return refuse(&st.stats, StatusCode::FORBIDDEN, why),
    };
    let Some((repo, rest)) = st.repos.iter().find_map(|r| {
        url.strip_prefix(&r.url)
            .filter(|rest| rest.starts_with('/'))
            .map(|rest| (r, rest.to_string()))
    }) else {
        return refuse(
            &st.stats,
            StatusCode::FORBIDDEN,
            format!("`{url}` is not in the image's package repositories"),
        );
    };
    let upstream = format!("{}{rest}", repo.upstream);
    tracing::debug!("package proxy: {method} {url} from {upstream}");
    let head = method == Method::HEAD;
    if immutable(&rest) {
        cached(st.clone(), url, upstream, head).await
    } else {
        pass_through(st.clone(), upstream, head).await
    }
}

fn upstream_failed(stats: &Stats, status: StatusCode, why: String) -> Response {
    stats.failed.fetch_add(1, Ordering::Relaxed);
    tracing::warn!("package proxy: {why}");
    (status, format!("ferrotron package proxy: {why}\n")).into_response()
}

/// A pool file: from the host's cache, fetched into it first if absent.
async fn cached(st: Arc<Shared>, url: String, upstream: String, head: bool) -> Response {
    let s = st.clone();
    let got =
        tokio::task::spawn_blocking(move || s.cache.get_from(&s.http, &url, &upstream, None)).await;
    let entry = match got {
        Ok(Ok(e)) => e,
        Ok(Err(e)) if e.is_not_found() => {
            return upstream_failed(&st.stats, StatusCode::NOT_FOUND, crate::util::full(&e))
        }
        Ok(Err(e)) => {
            return upstream_failed(&st.stats, StatusCode::BAD_GATEWAY, crate::util::full(&e))
        }
        Err(e) => {
            return upstream_failed(&st.stats, StatusCode::INTERNAL_SERVER_ERROR, e.to_string())
        }
    };
    match entry.fetched {
        None => st.stats.from_cache.fetch_add(1, Ordering::Relaxed),
        Some(n) => st.stats.fetched_bytes.fetch_add(n, Ordering::Relaxed),
    };
    let file = match tokio::fs::File::open(&entry.path).await {
        Ok(f) => f,
        Err(e) => {
            return upstream_failed(
                &st.stats,
                StatusCode::INTERNAL_SERVER_ERROR,
                format!("{}: {e}", entry.path.display()),
            )
        }
    };
    let len = file.metadata().await.map(|m| m.len()).unwrap_or(0);
    let builder = Response::builder()
        .status(StatusCode::OK)
        .header(header::CONTENT_LENGTH, len)
        .header(header::CONTENT_TYPE, "application/octet-stream");
    if head {
        return builder.body(Body::empty()).unwrap_or_default();
    }
    // The lease travels with the stream: the file is not evicted while sent.
    let lease = entry.lease;
    let stream = futures_util::stream::unfold(Some((file, lease)), |state| async move {
        use tokio::io::AsyncReadExt;
        let (mut file, lease) = state?;
        let mut buf = vec![0u8; 1 << 16];
        match file.read(&mut buf).await {
            Ok(0) => None,
            Ok(n) => {
                buf.truncate(n);
                Some((Ok(Bytes::from(buf)), Some((file, lease))))
            }
            Err(e) => Some((Err(e), None)),
        }
    });
    builder.body(Body::from_stream(stream)).unwrap_or_default()
}

/// A package list or release file: fetched for this request, not kept.
async fn pass_through(st: Arc<Shared>, upstream: String, head: bool) -> Response {
    let s = st.clone();
    let shown = crate::util::redact_url(&upstream);
    let got = tokio::task::spawn_blocking(move || {
        let req = if head {
            s.http.head(&upstream)
        } else {
            s.http.get(&upstream)
        };
        let resp = req.send()?;
        let status = resp.status().as_u16();
        let headers: Vec<(header::HeaderName, String)> =
            [header::CONTENT_TYPE, header::LAST_MODIFIED]
                .into_iter()
                .filter_map(|h| {
                    let v = resp.headers().get(h.as_str())?.to_str().ok()?.to_string();
                    Some((h, v))
                })
                .collect();
        let body = if head {
            Some(Vec::new())
        } else {
            crate::downloads::http::read_bounded(resp, MAX_PASS_THROUGH).map_err(|e| {
                // Surfaced as a reqwest-free error below.
                std::io::Error::other(e.to_string())
            })?
        };
        Ok::<_, PassError>((status, headers, body))
    })
    .await;
    let (status, headers, body) = match got {
        Ok(Ok(r)) => r,
        Ok(Err(e)) => {
            return upstream_failed(
                &st.stats,
                StatusCode::BAD_GATEWAY,
                format!("{shown}: {}", crate::util::full(&e)),
            )
        }
        Err(e) => {
            return upstream_failed(&st.stats, StatusCode::INTERNAL_SERVER_ERROR, e.to_string())
        }
    };
    let Some(body) = body else {
        return upstream_failed(
            &st.stats,
            StatusCode::BAD_GATEWAY,
            format!("{shown}: larger than {MAX_PASS_THROUGH} bytes"),
        );
    };
    let status = StatusCode::from_u16(status).unwrap_or(StatusCode::BAD_GATEWAY);
    if status.is_server_error() {
        st.stats.failed.fetch_add(1, Ordering::Relaxed);
    } else if status.is_success() {
        st.stats
            .fetched_bytes
            .fetch_add(body.len() as u64, Ordering::Relaxed);
    }
    let mut builder = Response::builder().status(status);
    for (h, v) in headers {
        builder = builder.header(h, v);
    }
    builder.body(Body::from(body)).unwrap_or_default()
}

#[derive(Debug, thiserror::Error)]
enum PassError {
    #[error(transparent)]
    Http(#[from] reqwest::Error),
    #[error(transparent)]
    Read(#[from] std::io::Error),
}

#[cfg(test)]
mod tests {
    use super::*;

    fn uri(s: &str) -> Uri {
        s.parse().expect("uri")
    }

    #[test]
    fn only_plain_absolute_http_urls_pass() {
        assert_eq!(
            checked_url(&uri(
                "http://deb.debian.org/debian/pool/main/h/hello/hello_2.10-3_amd64.deb"
            )),
            Ok("http://deb.debian.org/debian/pool/main/h/hello/hello_2.10-3_amd64.deb".into())
        );
        for bad in [
            "/debian/pool/x.deb",
            "https://deb.debian.org/debian/pool/x.deb",
            "http://deb.debian.org/debian/../secret",
            "http://deb.debian.org/debian/%2e%2e/secret",
            "http://deb.debian.org/debian/pool//x",
            "http://deb.debian.org/debian/pool%2fx",
            "http://deb.debian.org/debian/pool/x?y=1",
        ] {
            assert!(checked_url(&uri(bad)).is_err(), "{bad} passed");
        }
        assert!(immutable("/pool/main/h/hello/hello_2.10-3_amd64.deb"));
        assert!(immutable(
            "/dists/bookworm/main/binary-amd64/by-hash/SHA256/ab"
        ));
        assert!(!immutable("/dists/bookworm/InRelease"));
    }
}
