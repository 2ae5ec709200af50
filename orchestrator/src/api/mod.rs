//! The HTTP API (axum): ResultsDB v2.0 under `/api/v2.0` for existing
//! consumers, Ferrotron's own `/api/v1` (jobs, logs, artifacts, images,
//! hosts), and the OpenAPI document generated from the handlers at
//! `/api/openapi.json`. Handlers are thin: they parse, call the
//! application layer ([`crate::app::App`]), and shape JSON.

pub mod auth;
mod cache;
mod error;
mod jobs;
pub mod listener;
mod messages;
mod params;
pub mod ratelimit;
mod resultsdb;
mod system;

use std::net::SocketAddr;
use std::sync::Arc;

use axum::extract::{DefaultBodyLimit, FromRequestParts};
use axum::http::header::HOST;
use axum::http::request::Parts;
use axum::routing::get;
use axum::{Json, Router};
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
    /// `http://` + the request's Host header.
    pub public_url: Option<String>,
    /// Largest JSON body accepted.
    pub max_body_bytes: usize,
    /// Largest artifact upload accepted.
    pub max_artifact_bytes: u64,
    /// Connections open at once, and how long one may stay silent.
    pub limits: listener::Limits,
    /// Messages one token may post per window.
    pub message_rate: ratelimit::Rate,
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
}

impl AppState {
    /// The state of a server over `app` (whose intake, if any, takes
    /// `POST /api/v1/messages`; none: 503).
    pub fn new(app: App, config: ApiConfig) -> (AppState, Stopper) {
        let (tx, rx) = tokio::sync::watch::channel(false);
        let state = AppState {
            app,
            messages: Arc::new(ratelimit::Limiter::new(config.message_rate)),
            config: Arc::new(config),
            stopping: rx,
        };
        (state, Stopper(tx))
    }
}

/// Tells long responses that the server is stopping.
pub struct Stopper(tokio::sync::watch::Sender<bool>);

/// `scheme://host[:port]` for URLs in responses.
pub struct BaseUrl(pub String);

impl FromRequestParts<AppState> for BaseUrl {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &AppState) -> Result<Self, ApiError> {
        if let Some(u) = &state.config.public_url {
            return Ok(BaseUrl(u.trim_end_matches('/').to_string()));
        }
        let host = parts
            .headers
            .get(HOST)
            .and_then(|h| h.to_str().ok())
            .or_else(|| parts.uri.authority().map(|a| a.as_str()))
            .unwrap_or("localhost");
        Ok(BaseUrl(format!("http://{host}")))
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
        (name = "cache", description = "The git cache of task repositories")
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
    let r = system::routes(r);
    r.split_for_parts()
}

/// The OpenAPI document, as served and as committed in docs/openapi.json.
pub fn openapi() -> utoipa::openapi::OpenApi {
    let (_, mut api) = parts();
    api.merge(jobs::ArtifactDoc::openapi());
    api
}

pub fn openapi_json() -> String {
    let mut s = openapi().to_pretty_json().unwrap_or_default();
    s.push('\n');
    s
}

/// The whole application, ready to serve.
pub fn router(state: AppState) -> Router {
    let (r, _) = parts();
    let doc = openapi_json();
    let max_body = state.config.max_body_bytes;
    let git = cache::git_routes(
        crate::cache::Cache::new(&state.app.settings().data_dir),
        state.clone(),
    );
    r.merge(jobs::artifact_routes())
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
        .fallback(|| async { ApiError::not_found("no such endpoint") })
        .method_not_allowed_fallback(|| async {
            ApiError::Client {
                status: axum::http::StatusCode::METHOD_NOT_ALLOWED,
                code: "method_not_allowed",
                message: "this endpoint does not take that method".into(),
            }
        })
        .layer(DefaultBodyLimit::max(max_body))
        .with_state(state)
        // After the API's body limit: a fetch's request may be larger.
        .merge(git)
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
    let listener = tokio::net::TcpListener::bind(listen)
        .await
        .map_err(|source| ServeError::Bind {
            addr: listen,
            source,
        })?;
    let local = listener.local_addr().map_err(ServeError::Serve)?;
    tracing::info!(%local, "serving");
    // Tests and scripts wait for this line.
    eprintln!("ferrotron: listening on http://{local}");
    let limits = state.config.limits;
    axum::serve(listener::Bounded::new(listener, limits), router(state))
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

/// JSON for `{prev, next, data}` pages.
pub(crate) fn paged<T: serde::Serialize>(
    base: &str,
    path: &str,
    pairs: &params::Pairs,
    page: crate::store::Page,
    more: bool,
    data: Vec<T>,
) -> Json<serde_json::Value> {
    let prev = (page.page > 0).then(|| params::page_url(base, path, pairs, page.page - 1));
    let next = more.then(|| params::page_url(base, path, pairs, page.page + 1));
    Json(serde_json::json!({ "prev": prev, "next": next, "data": data }))
}

#[cfg(test)]
mod tests {
    use super::*;

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
