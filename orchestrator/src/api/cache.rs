//! `POST /api/v1/cache/notify`: a push hook at an origin (or anyone with a
//! writer token) asks for a sync of one repository of the git cache now.
//! The cache itself is served read-only under `/git/` (see [`git_routes`]).

use axum::extract::State;
use axum::http::StatusCode;
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use super::auth::Operator;
use super::error::{ApiError, ApiJson, ErrorBody};
use super::AppState;
use crate::cache::notify::{sync_one_async, NotifyError, Synced};
use crate::cache::Cache;

pub(super) fn routes(r: OpenApiRouter<AppState>) -> OpenApiRouter<AppState> {
    r.routes(routes!(notify))
}

/// The cache read-only over git's smart HTTP protocol, at
/// `/git/<path>.git` (what `git clone http://host:port/git/tasks.git`
/// uses), and its manifest at `/git/manifest.js.gz`.
/// Reads of `/git/` follow the API's read rule (`--require-token-for-reads`).
pub(super) fn git_routes(cache: Cache, state: AppState) -> axum::Router {
    axum::Router::new()
        .nest_service("/git", crate::cache::http::router(cache))
        .layer(axum::middleware::from_fn_with_state(state, reads_allowed))
}

async fn reads_allowed(
    State(st): State<AppState>,
    req: axum::extract::Request,
    next: axum::middleware::Next,
) -> axum::response::Response {
    use axum::extract::FromRequestParts;
    use axum::response::IntoResponse;
    let (mut parts, body) = req.into_parts();
    match super::auth::Reader::from_request_parts(&mut parts, &st).await {
        Ok(_) => {
            next.run(axum::extract::Request::from_parts(parts, body))
                .await
        }
        Err(e) => e.into_response(),
    }
}

#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct NotifyBody {
    /// The repository's path in the cache: `/tasks.git`, `tasks` or
    /// `/group/tasks.git`.
    pub path: String,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct NotifyResult {
    /// The repository's path in the cache (`/tasks.git`).
    pub path: String,
    pub outcome: Synced,
}

/// Syncs one repository of the git cache from its origin now (what a push
/// hook calls). Waits for a sync of the cache already running.
#[utoipa::path(
    post, path = "/api/v1/cache/notify", tag = "cache",
    request_body = NotifyBody,
    security(("bearer" = [])),
    responses(
        (status = 200, body = NotifyResult, description = "Synced"),
        (status = 400, body = ErrorBody, description = "Not a repository path"),
        (status = 401, body = ErrorBody),
        (status = 404, body = ErrorBody, description = "The cache does not mirror that repository"),
        (status = 502, body = ErrorBody, description = "Its origin did not answer; the mirror is unchanged"),
    )
)]
async fn notify(
    State(st): State<AppState>,
    _w: Operator,
    ApiJson(body): ApiJson<NotifyBody>,
) -> Result<axum::Json<NotifyResult>, ApiError> {
    let cache = Cache::new(&st.app.settings().data_dir);
    match sync_one_async(cache, body.path).await {
        Ok((path, outcome)) => {
            tracing::info!("cache notify: {path} {outcome:?}");
            Ok(axum::Json(NotifyResult {
                path: path.as_str().to_string(),
                outcome,
            }))
        }
        Err(NotifyError::Path(e)) => Err(ApiError::bad_request("bad_path", e.to_string())),
        Err(e @ NotifyError::Unknown(_)) => Err(ApiError::not_found(e.to_string())),
        Err(e @ NotifyError::Origin { .. }) => {
            tracing::warn!("cache notify: {}", crate::util::full(&e));
            Err(ApiError::Client {
                status: StatusCode::BAD_GATEWAY,
                code: "origin_unreachable",
                message: e.to_string(),
            })
        }
        Err(e) => Err(ApiError::Internal(crate::util::full(&e))),
    }
}
