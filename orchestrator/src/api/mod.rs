//! The HTTP API (axum): ResultsDB v2.0 under `/api/v2.0` for existing
//! consumers, Ferrotron's own `/api/v1` (jobs, logs, artifacts, images,
//! hosts, search), and the OpenAPI document generated from the handlers at
//! `/api/openapi.json`. Handlers are thin: they parse, call the
//! application layer ([`crate::app::App`]), and shape JSON.

pub mod auth;
mod cache;
mod error;
pub(crate) mod follow;
mod jobs;
pub mod listener;
mod messages;
pub(crate) mod params;
mod reservations;
pub use crate::ratelimit;
pub(crate) mod resultsdb;
mod search;
mod system;

use std::net::SocketAddr;
use std::sync::Arc;

use axum::extract::{DefaultBodyLimit, FromRequestParts};
use axum::http::request::Parts;
use axum::routing::get;
use axum::Router;
use utoipa::openapi::security::{HttpAuthScheme, HttpBuilder, SecurityScheme};
use utoipa::OpenApi;
use utoipa_axum::router::OpenApiRouter;

pub use error::{ApiError, ErrorBody};

use crate::app::App;

/// How the server behaves (beyond [`Settings`]).
#[derive(Debug, Clone)]
pub struct ApiConfig {
    /// Require a token for reads too.
    pub require_token_for_reads: bool,
    /// Base of the URLs in responses (`href`, `prev`, `next`); default:
    /// `http://` + the address the server listens on (never the request's
    /// Host header, which a client chooses).
    pub public_url: Option<String>,
    /// Largest JSON body accepted.
    pub max_body_bytes: usize,
    /// Largest artifact upload accepted.
    pub max_artifact_bytes: u64,
    /// Connections open at once, and how long one may stay silent.
    pub limits: listener::Limits,
    /// Messages one token may post per window.
    pub message_rate: ratelimit::Rate,
    /// Job logs followed at once; more get 503.
    pub max_followers: usize,
}

impl Default for ApiConfig {
    fn default() -> ApiConfig {
        ApiConfig {
            require_token_for_reads: false,
            public_url: None,
            max_body_bytes: 1024 * 1024,
            max_artifact_bytes: 1024 * 1024 * 1024,
            limits: listener::Limits::default(),
            message_rate: ratelimit::Rate::default(),
            max_followers: 256,
        }
    }
}

#[derive(Clone)]
pub struct AppState {
    /// The application layer: the store, the settings and the intake.
    pub app: App,
    pub config: Arc<ApiConfig>,
    /// Becomes true when the server shuts down: long responses (a followed
    /// log) end, so graceful shutdown does not wait for a job to finish.
    pub stopping: tokio::sync::watch::Receiver<bool>,
    /// Messages posted per token (`--message-limit`).
    pub messages: Arc<ratelimit::Limiter>,
    /// Logs followed at once.
    followers: follow::Followers,
    /// List queries (pages of results, the latest results) run at once:
    /// a crowd of large reads waits here instead of taking every database
    /// connection and CPU, so a small write behind them is not starved.
    heavy_reads: Arc<tokio::sync::Semaphore>,
}

/// List queries run at once (the rest wait their turn).
pub const HEAVY_READS: usize = 2;

impl AppState {
    /// A turn for one list query (held until the answer is built).
    pub(crate) async fn heavy_read(&self) -> tokio::sync::SemaphorePermit<'_> {
        match self.heavy_reads.acquire().await {
            Ok(p) => p,
            // Never closed.
            Err(_) => std::future::pending().await,
        }
    }
}

impl AppState {
    /// The state of a server over `app` (whose intake, if any, takes
    /// `POST /api/v1/messages`; none: 503).
    pub fn new(app: App, config: ApiConfig) -> (AppState, Stopper) {
        let (tx, rx) = tokio::sync::watch::channel(false);
        let state = AppState {
            app,
            messages: Arc::new(ratelimit::Limiter::new(config.message_rate)),
            followers: follow::Followers::new(config.max_followers),
            heavy_reads: Arc::new(tokio::sync::Semaphore::new(HEAVY_READS)),
            config: Arc::new(config),
            stopping: rx,
        };
        (state, Stopper(tx))
    }
}

/// Tells long responses that the server is stopping.
pub struct Stopper(tokio::sync::watch::Sender<bool>);

/// `scheme://host[:port]` for URLs in responses: `--public-url`, else the
/// listening address ([`Listening`]). A request's `Host` header is never
/// used: links a client is given must not point where another client said.
pub struct BaseUrl(pub String);

/// The address the server listens on, as a URL base (a layer of
/// [`router`]). An unspecified address (`0.0.0.0`) names the machine by
/// its host name.
#[derive(Clone)]
struct Listening(Arc<str>);

impl Listening {
    fn of(local: SocketAddr) -> Listening {
        let url = if local.ip().is_unspecified() {
            let host = std::fs::read_to_string("/proc/sys/kernel/hostname")
                .map(|h| h.trim().to_string())
                .ok()
                .filter(|h| !h.is_empty())
                .unwrap_or_else(|| "localhost".into());
            format!("http://{host}:{}", local.port())
        } else {
            format!("http://{local}")
        };
        Listening(url.into())
    }
}

impl FromRequestParts<AppState> for BaseUrl {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &AppState) -> Result<Self, ApiError> {
        if let Some(u) = &state.config.public_url {
            return Ok(BaseUrl(u.trim_end_matches('/').to_string()));
        }
        let listening = parts
            .extensions
            .get::<Listening>()
            .map_or("http://localhost", |l| &l.0);
        Ok(BaseUrl(listening.to_string()))
    }
}

#[derive(OpenApi)]
#[openapi(
    info(
        title = "Ferrotron API",
        description = "ResultsDB v2.0 compatible results API plus Ferrotron's jobs, logs, artifacts, images and hosts.",
        license(name = "Apache-2.0")
    ),
    modifiers(&BearerScheme),
    tags(
        (name = "resultsdb", description = "ResultsDB API v2.0"),
        (name = "jobs", description = "Ferrotron jobs, logs and artifacts"),
        (name = "system", description = "Images and hosts"),
        (name = "cache", description = "The git cache of task repositories"),
        (name = "reservations", description = "Root VMs for task authors, and held VMs of failed jobs"),
        (name = "search", description = "Full-text search over job logs, task output and result notes")
    )
)]
struct ApiDoc;

struct BearerScheme;

impl utoipa::Modify for BearerScheme {
    fn modify(&self, openapi: &mut utoipa::openapi::OpenApi) {
        let components = openapi.components.get_or_insert_with(Default::default);
        components.add_security_scheme(
            "bearer",
            SecurityScheme::Http(HttpBuilder::new().scheme(HttpAuthScheme::Bearer).build()),
        );
    }
}

fn parts() -> (Router<AppState>, utoipa::openapi::OpenApi) {
    let r = OpenApiRouter::with_openapi(ApiDoc::openapi());
    let r = resultsdb::routes(r);
    let r = jobs::routes(r);
    let r = messages::routes(r);
    let r = cache::routes(r);
    let r = reservations::routes(r);
    let r = search::routes(r);
    let r = system::routes(r);
    r.split_for_parts()
}

/// The OpenAPI document, as served and as committed in docs/openapi.json.
pub fn openapi() -> utoipa::openapi::OpenApi {
    let (_, mut api) = parts();
    api.merge(jobs::ArtifactDoc::openapi());
    api.merge(resultsdb::TestcaseDoc::openapi());
    api
}

pub fn openapi_json() -> String {
    let mut s = openapi().to_pretty_json().unwrap_or_default();
    s.push('\n');
    s
}

/// The whole application, ready to serve on `local` (the base of the URLs
/// in responses unless `--public-url` says otherwise).
pub fn router(state: AppState, local: SocketAddr) -> Router {
    let (r, _) = parts();
    let doc = openapi_json();
    let max_body = state.config.max_body_bytes;
    let git = cache::git_routes(
        crate::cache::Cache::new(&state.app.settings().data_dir),
        state.clone(),
    );
    r.merge(jobs::artifact_routes())
        .merge(resultsdb::slash_routes())
        .merge(crate::web::routes())
        .route(
            "/api/openapi.json",
            get(move || {
                let doc = doc.clone();
                async move {
                    (
                        [(axum::http::header::CONTENT_TYPE, "application/json")],
                        doc,
                    )
                }
            }),
        )
        .route("/metrics", get(system::metrics))
        .fallback(|| async { ApiError::not_found("no such endpoint") })
        .method_not_allowed_fallback(|| async {
            ApiError::Client {
                status: axum::http::StatusCode::METHOD_NOT_ALLOWED,
                code: "method_not_allowed",
                message: "this endpoint does not take that method".into(),
            }
        })
        .layer(axum::middleware::from_fn_with_state(
            max_body,
            auth::body_token,
        ))
        .layer(DefaultBodyLimit::max(max_body))
        .with_state(state)
        // After the API's body limit: a fetch's request may be larger.
        .merge(git)
        .layer(axum::middleware::from_fn(system::track))
        .layer(axum::Extension(Listening::of(local)))
        .layer(tower_http::trace::TraceLayer::new_for_http())
}

#[derive(Debug, thiserror::Error)]
pub enum ServeError {
    #[error("cannot listen on {addr}")]
    Bind {
        addr: SocketAddr,
        #[source]
        source: std::io::Error,
    },
    #[error("the server stopped")]
    Serve(#[source] std::io::Error),
}

/// Serves until `shutdown` resolves, then finishes in-flight requests
/// (followed logs end at once).
pub async fn serve(
    state: AppState,
    stopper: Stopper,
    listen: SocketAddr,
    shutdown: impl std::future::Future<Output = ()> + Send + 'static,
) -> Result<(), ServeError> {
    serve_on(state, stopper, bind(listen).await?, shutdown).await
}

/// The API's listening socket (bound before the service starts, so that
/// what needs the address, such as links in messages, knows the port).
pub async fn bind(listen: SocketAddr) -> Result<tokio::net::TcpListener, ServeError> {
    tokio::net::TcpListener::bind(listen)
        .await
        .map_err(|source| ServeError::Bind {
            addr: listen,
            source,
        })
}

/// [`serve`] on a socket [`bind`] made.
pub async fn serve_on(
    state: AppState,
    stopper: Stopper,
    listener: tokio::net::TcpListener,
    shutdown: impl std::future::Future<Output = ()> + Send + 'static,
) -> Result<(), ServeError> {
    let local = listener.local_addr().map_err(ServeError::Serve)?;
    listener::raise_descriptor_limit(&state.config.limits);
    tracing::info!(%local, "serving");
    // Tests and scripts wait for this line.
    eprintln!("ferrotron: listening on http://{local}");
    let limits = state.config.limits;
    axum::serve(
        listener::Bounded::new(listener, limits),
        router(state, local),
    )
    .with_graceful_shutdown(async move {
        shutdown.await;
        let _ = stopper.0.send(true);
    })
    .await
    .map_err(ServeError::Serve)
}

/// One URL path segment, percent-encoded (testcase names have spaces).
pub(crate) fn seg(s: &str) -> String {
    crate::util::url_segment(s)
}

/// A relative path, each segment percent-encoded.
pub(crate) fn segs(p: &str) -> String {
    p.split('/').map(seg).collect::<Vec<_>>().join("/")
}

/// An artifact's relative path, checked as the API checks it (no `..`,
/// no leading `/`), or what is wrong with it.
pub(crate) fn safe_artifact_path(p: &str) -> Result<std::path::PathBuf, String> {
    jobs::safe_relative(p).map_err(|e| e.to_string())
}

/// The most one list answer may carry: a page of results whose data is
/// near its bound asks the client for a smaller `limit` instead.
pub const MAX_RESPONSE_BYTES: usize = 8 * 1024 * 1024;

/// `{"data": [...]}` (plus `prev`/`next` for pages), serialised item by item
/// so that an answer past [`MAX_RESPONSE_BYTES`] is refused (400
/// `response_too_large`, saying how many items would fit) before it is
/// whole in memory.
pub(crate) fn list_json<T: serde::Serialize>(
    links: Option<(Option<String>, Option<String>)>,
    page_limit: Option<i64>,
    data: &[T],
) -> Result<axum::response::Response, ApiError> {
    use axum::response::IntoResponse;
    let mut out = Vec::with_capacity(4096);
    out.push(b'{');
    if let Some((prev, next)) = &links {
        out.extend_from_slice(b"\"prev\":");
        serde_json::to_writer(&mut out, prev).map_err(|e| ApiError::Internal(e.to_string()))?;
        out.extend_from_slice(b",\"next\":");
        serde_json::to_writer(&mut out, next).map_err(|e| ApiError::Internal(e.to_string()))?;
        out.push(b',');
    }
    out.extend_from_slice(b"\"data\":[");
    for (i, item) in data.iter().enumerate() {
        if i > 0 {
            out.push(b',');
        }
        serde_json::to_writer(&mut out, item).map_err(|e| ApiError::Internal(e.to_string()))?;
        if out.len() > MAX_RESPONSE_BYTES {
            let fit = i.max(1);
            let ask = match page_limit {
                Some(_) => format!("ask for at most limit={fit}"),
                None => "narrow the filters".to_string(),
            };
            return Err(ApiError::bad_request(
                "response_too_large",
                format!(
                    "the answer would be larger than {MAX_RESPONSE_BYTES} bytes after {} of {} \
                     items; {ask}",
                    i + 1,
                    data.len()
                ),
            ));
        }
    }
    out.extend_from_slice(b"]}");
    Ok((
        [(axum::http::header::CONTENT_TYPE, "application/json")],
        out,
    )
        .into_response())
}

/// JSON for `{prev, next, data}` pages, bounded like [`list_json`].
pub(crate) fn paged<T: serde::Serialize>(
    base: &str,
    path: &str,
    pairs: &params::Pairs,
    page: crate::store::Page,
    more: bool,
    data: Vec<T>,
) -> Result<axum::response::Response, ApiError> {
    let prev = (page.page > 0).then(|| params::page_url(base, path, pairs, page.page - 1));
    let next = more.then(|| params::page_url(base, path, pairs, page.page + 1));
    list_json(Some((prev, next)), Some(page.limit), &data)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn list_answers_are_bounded_and_say_how_many_fit() {
        let item = "x".repeat(1024 * 1024);
        let fits: Vec<&str> = vec![&item; 7];
        let r = list_json(Some((None, Some("n".into()))), Some(7), &fits).expect("fits");
        assert_eq!(r.status(), axum::http::StatusCode::OK);
        let too_many: Vec<&str> = vec![&item; 9];
        let msg = |r: Result<axum::response::Response, ApiError>| match r {
            Err(ApiError::Client { code, message, .. }) => format!("{code}: {message}"),
            Err(e) => format!("{e:?}"),
            Ok(_) => "ok".into(),
        };
        assert_eq!(
            msg(list_json(Some((None, None)), Some(9), &too_many)),
            "response_too_large: the answer would be larger than 8388608 bytes after 8 of 9 items; ask for at most limit=7"
        );
        assert_eq!(
            msg(list_json(None, None, &too_many)),
            "response_too_large: the answer would be larger than 8388608 bytes after 8 of 9 items; narrow the filters"
        );
        let small = list_json(Some((None, None)), Some(2), &[1, 2]).expect("small");
        let rt = tokio::runtime::Builder::new_current_thread()
            .build()
            .expect("runtime");
        let body = rt
            .block_on(axum::body::to_bytes(small.into_body(), 1024))
            .expect("body");
        assert_eq!(&body[..], br#"{"prev":null,"next":null,"data":[1,2]}"#);
    }

    #[test]
    fn committed_openapi_matches_the_code() {
        let path = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../docs/openapi.json");
        let committed = std::fs::read_to_string(&path).unwrap_or_default();
        assert!(
            committed == openapi_json(),
            "{} is stale: regenerate it with `ferrotron serve --print-openapi > docs/openapi.json`",
            path.display()
        );
    }
}
