//! Images in the store and the hosts that run jobs (this host, until the
//! scheduler knows others).

use axum::extract::{Path, State};
use axum::Json;
use serde::Serialize;
use utoipa::ToSchema;
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use super::auth::{Operator, Reader};
use super::error::{ApiError, ErrorBody};
use super::AppState;

pub(super) fn routes(r: OpenApiRouter<AppState>) -> OpenApiRouter<AppState> {
    r.routes(routes!(list_images))
        .routes(routes!(list_hosts))
        .routes(routes!(idle_host))
        .routes(routes!(resume_host))
}

/// `GET /metrics`: Prometheus' scrape (OpenMetrics text), the store's
/// levels read now. Readable as the rest of the API is.
pub(super) async fn metrics(
    State(st): State<AppState>,
    _r: Reader,
) -> Result<impl axum::response::IntoResponse, ApiError> {
    let m = crate::metrics::global();
    m.refresh(st.app.store()).await?;
    Ok((
        [(
            axum::http::header::CONTENT_TYPE,
            crate::metrics::CONTENT_TYPE,
        )],
        m.encode(),
    ))
}

/// Counts every request by method, route (the pattern it matched, never
/// the raw path: names and ids would make a series each) and status, and
/// times it.
pub(super) async fn track(
    req: axum::extract::Request,
    next: axum::middleware::Next,
) -> axum::response::Response {
    let method = req.method().as_str().to_string();
    let route = req
        .extensions()
        .get::<axum::extract::MatchedPath>()
        .map_or_else(|| "unmatched".to_string(), |p| p.as_str().to_string());
    let started = std::time::Instant::now();
    let res = next.run(req).await;
    let m = crate::metrics::global();
    m.http_seconds
        .get_or_create(&crate::metrics::RouteOnlyLabels {
            method: method.clone(),
            route: route.clone(),
        })
        .observe(started.elapsed().as_secs_f64());
    m.http_requests
        .get_or_create(&crate::metrics::RouteLabels {
            method,
            route,
            status: res.status().as_u16().to_string(),
        })
        .inc();
    res
}

#[derive(Debug, Serialize, ToSchema)]
pub struct ImageJson {
    pub name: String,
    pub version: String,
    /// RFC 3339.
    pub created: String,
    pub size_bytes: u64,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct ImagesList {
    pub data: Vec<ImageJson>,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct HostJson {
    pub name: String,
    pub cpus: usize,
    pub libvirt_uri: String,
    /// kvm, tcg or auto.
    pub accel: String,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct HostsList {
    pub data: Vec<HostJson>,
}

#[utoipa::path(
    get, path = "/api/v1/images", tag = "system",
    responses((status = 200, body = ImagesList), (status = 500, body = ErrorBody))
)]
async fn list_images(State(st): State<AppState>, _r: Reader) -> Result<Json<ImagesList>, ApiError> {
    let root = st.app.settings().images_dir.clone();
    let list = tokio::task::spawn_blocking(move || {
        if !root.exists() {
            return Ok(Vec::new());
        }
        ferrotron_imagebuilder::ImageStore::new(root).list()
    })
    .await
    .map_err(|e| ApiError::Internal(e.to_string()))?
    .map_err(|e| ApiError::Internal(crate::util::full(&e)))?;
    Ok(Json(ImagesList {
        data: list
            .into_iter()
            .map(|i| ImageJson {
                name: i.name,
                version: i.version,
                created: i.created,
                size_bytes: i.size_bytes,
            })
            .collect(),
    }))
}

#[utoipa::path(
    get, path = "/api/v1/hosts", tag = "system",
    responses((status = 200, body = HostsList))
)]
async fn list_hosts(State(st): State<AppState>, _r: Reader) -> Json<HostsList> {
    let name = std::fs::read_to_string("/proc/sys/kernel/hostname")
        .map(|h| h.trim().to_string())
        .unwrap_or_else(|_| "localhost".into());
    Json(HostsList {
        data: vec![HostJson {
            name,
            cpus: std::thread::available_parallelism().map_or(1, |n| n.get()),
            libvirt_uri: crate::util::redact_url(&st.app.settings().libvirt_uri),
            accel: match st.app.settings().accel {
                crate::vm::Accel::Auto => "auto",
                crate::vm::Accel::Kvm => "kvm",
                crate::vm::Accel::Tcg => "tcg",
            }
            .into(),
        }],
    })
}

/// Whether a host takes new jobs.
#[derive(Debug, Serialize, ToSchema)]
pub struct HostIdleJson {
    pub name: String,
    pub idle: bool,
}

/// The host's name as a flag's suffix: what `--host-name` accepts.
fn host_name(name: &str) -> Result<String, ApiError> {
    let ok = !name.is_empty()
        && name.len() <= 253
        && name
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '.' | '-' | '_'));
    if ok {
        Ok(name.to_string())
    } else {
        Err(ApiError::bad_request(
            "bad_host_name",
            format!("`{name}` is not a host name (letters, digits, `.`, `-`, `_`)"),
        ))
    }
}

/// Stops scheduling new jobs on one host (its running jobs go on); the
/// same as `ferrotron host idle` there.
#[utoipa::path(
    post, path = "/api/v1/hosts/{name}/idle", tag = "system",
    params(("name" = String, Path, description = "Host name")),
    security(("bearer" = [])),
    responses((status = 200, body = HostIdleJson), (status = 400, body = ErrorBody), (status = 401, body = ErrorBody), (status = 403, body = ErrorBody))
)]
async fn idle_host(
    State(st): State<AppState>,
    _o: Operator,
    Path(name): Path<String>,
) -> Result<Json<HostIdleJson>, ApiError> {
    set_idle(&st, &name, true).await
}

/// Lets one host take new jobs again (an `--all` idle stays).
#[utoipa::path(
    post, path = "/api/v1/hosts/{name}/resume", tag = "system",
    params(("name" = String, Path, description = "Host name")),
    security(("bearer" = [])),
    responses((status = 200, body = HostIdleJson), (status = 400, body = ErrorBody), (status = 401, body = ErrorBody), (status = 403, body = ErrorBody))
)]
async fn resume_host(
    State(st): State<AppState>,
    _o: Operator,
    Path(name): Path<String>,
) -> Result<Json<HostIdleJson>, ApiError> {
    set_idle(&st, &name, false).await
}

async fn set_idle(st: &AppState, name: &str, idle: bool) -> Result<Json<HostIdleJson>, ApiError> {
    let name = host_name(name)?;
    st.app.set_host_idle(&name, idle).await?;
    Ok(Json(HostIdleJson { name, idle }))
}
