//! Reservations over HTTP: ask for a root VM (a reporter or operator
//! token; the token's name is the requester, its limit counts), list,
//! show, extend and release (the requester's token, or an operator's).
//! A ready reservation says how to reach it: the SSH forward is on its
//! host's loopback, so from elsewhere through that host as a jump host,
//! with the guest's host key pinned.

use axum::extract::{Path, Query, State};
use axum::http::StatusCode;
use axum::Json;
use serde::{Deserialize, Serialize};
use utoipa::{IntoParams, ToSchema};
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use super::auth::{Reader, Reporter};
use super::error::{ApiError, ApiJson, ErrorBody};
use super::{AppState, BaseUrl};
use crate::app::reservations::{Allow, ReservationError, ReserveArgs};
use crate::app::App;
use crate::store::{format_time, Reservation, Role};

pub(super) fn routes(r: OpenApiRouter<AppState>) -> OpenApiRouter<AppState> {
    r.routes(routes!(list_reservations, create_reservation))
        .routes(routes!(get_reservation))
        .routes(routes!(extend_reservation))
        .routes(routes!(release_reservation))
}

/// `POST /api/v1/reservations`.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct ReserveBody {
    /// Your public key (one OpenSSH line): root's login.
    pub ssh_key: String,
    /// `name` or `name:version` (default: the default image).
    pub image: Option<String>,
    /// How long once the VM is up: `90s`, `30m`, `2h`, `1d`.
    pub ttl: Option<String>,
    pub vcpus: Option<u32>,
    pub memory_mib: Option<u64>,
    /// A task repository (URL) to find at `/root/<name>` in the VM.
    pub git_repo: Option<String>,
    /// Its branch, tag or commit (default HEAD).
    pub git_ref: Option<String>,
    /// What else the VM may reach besides the git cache: `packages` (its
    /// image's package repositories, through a proxy on its host).
    #[serde(default)]
    pub allow: Vec<String>,
}

/// `POST /api/v1/reservations/{id}/extend`.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct ExtendBody {
    /// More time: `30m`, `2h`.
    pub by: String,
}

#[derive(Debug, Deserialize, IntoParams)]
pub struct ListQuery {
    /// Ended ones too.
    #[serde(default)]
    pub all: bool,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct ReachJson {
    pub host: String,
    /// The SSH forward, on the host's 127.0.0.1.
    pub port: u16,
    pub user: String,
    /// A known_hosts line with the guest's host key.
    pub known_hosts: String,
    /// Run on the host (its job folder's known_hosts pins the key).
    pub ssh_command: String,
    /// From anywhere you can SSH to the host: save `known_hosts` as the
    /// file named, then run this.
    pub ssh_jump_command: String,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct ReservationJson {
    pub id: String,
    /// `reservation` or `hold` (a failed job's VM).
    pub kind: String,
    /// `waiting`, `ready` or `ended`.
    pub status: String,
    /// The reservation's job, or the failed job a hold keeps.
    pub job: String,
    pub job_href: String,
    pub requester: String,
    pub ttl_secs: i64,
    pub created_at: String,
    pub expires_at: Option<String>,
    pub ended_at: Option<String>,
    pub end_reason: Option<String>,
    pub release_requested: bool,
    /// What the VM may reach besides the git cache (`packages`).
    pub allow: Vec<String>,
    pub reach: Option<ReachJson>,
    pub href: String,
}

pub(super) fn reservation_json(app: &App, base: &str, r: Reservation) -> ReservationJson {
    let reach = app.reach(&r).map(|x| ReachJson {
        host: x.host,
        port: x.port,
        user: x.user,
        known_hosts: x.known_hosts,
        ssh_command: x.ssh_command,
        ssh_jump_command: x.ssh_jump_command,
    });
    ReservationJson {
        href: format!("{base}/api/v1/reservations/{}", r.id),
        job_href: format!("{base}/api/v1/jobs/{}", r.job),
        status: r.status().to_string(),
        kind: r.kind.as_str().to_string(),
        allow: Allow::of(&r)
            .into_iter()
            .map(|a| a.as_str().to_string())
            .collect(),
        created_at: format_time(r.created_at),
        expires_at: r.expires_at.map(format_time),
        ended_at: r.ended_at.map(format_time),
        id: r.id,
        job: r.job,
        requester: r.requester,
        ttl_secs: r.ttl_secs,
        end_reason: r.end_reason,
        release_requested: r.release_requested,
        reach,
    }
}

fn duration(field: &str, s: &str) -> Result<std::time::Duration, ApiError> {
    crate::util::parse_duration(s)
        .map_err(|e| ApiError::bad_request("validation_error", format!("{field}: {e}")))
}

impl From<ReservationError> for ApiError {
    fn from(e: ReservationError) -> ApiError {
        match e {
            ReservationError::Store(e) => e.into(),
            e => ApiError::bad_request("validation_error", e.to_string()),
        }
    }
}

/// The reservation, when `who` may change it (its requester, or an
/// operator).
async fn owned(st: &AppState, id: &str, who: &Reporter) -> Result<Reservation, ApiError> {
    let r = st.app.reservation(id).await?;
    if r.requester != who.token && who.role != Role::Operator {
        return Err(ApiError::Client {
            status: StatusCode::FORBIDDEN,
            code: "forbidden",
            message: format!(
                "reservation {id} belongs to `{}`; only its token or an operator's may change it",
                r.requester
            ),
        });
    }
    Ok(r)
}

/// Asks for a root VM: queued like a job (same capacity), booted for you.
#[utoipa::path(
    post, path = "/api/v1/reservations", tag = "reservations",
    request_body = ReserveBody,
    security(("bearer" = [])),
    responses(
        (status = 201, body = ReservationJson),
        (status = 400, body = ErrorBody),
        (status = 401, body = ErrorBody),
        (status = 409, body = ErrorBody, description = "The token has as many reservations as it may"),
    )
)]
async fn create_reservation(
    State(st): State<AppState>,
    who: Reporter,
    BaseUrl(base): BaseUrl,
    ApiJson(body): ApiJson<ReserveBody>,
) -> Result<(StatusCode, Json<ReservationJson>), ApiError> {
    let ttl = body
        .ttl
        .as_deref()
        .map(|t| duration("ttl", t))
        .transpose()?;
    let allow = body
        .allow
        .iter()
        .map(|w| Allow::parse(w))
        .collect::<Result<Vec<_>, _>>()?;
    let r = st
        .app
        .reserve(&ReserveArgs {
            image: body.image,
            ttl,
            vcpus: body.vcpus,
            memory_mib: body.memory_mib,
            ssh_key: body.ssh_key,
            requester: who.token,
            git_repo: body.git_repo,
            git_ref: body.git_ref,
            allow,
        })
        .await?;
    Ok((
        StatusCode::CREATED,
        Json(reservation_json(&st.app, &base, r)),
    ))
}

/// Reservations and holds, newest first (active ones unless `all`).
#[utoipa::path(
    get, path = "/api/v1/reservations", tag = "reservations",
    params(ListQuery),
    responses((status = 200, body = Vec<ReservationJson>))
)]
async fn list_reservations(
    State(st): State<AppState>,
    _r: Reader,
    BaseUrl(base): BaseUrl,
    Query(q): Query<ListQuery>,
) -> Result<Json<Vec<ReservationJson>>, ApiError> {
    let all = st.app.reservations(q.all).await?;
    Ok(Json(
        all.into_iter()
            .map(|r| reservation_json(&st.app, &base, r))
            .collect(),
    ))
}

/// One reservation, with how to reach it once ready.
#[utoipa::path(
    get, path = "/api/v1/reservations/{id}", tag = "reservations",
    params(("id" = String, Path, description = "Reservation id")),
    responses((status = 200, body = ReservationJson), (status = 404, body = ErrorBody))
)]
async fn get_reservation(
    State(st): State<AppState>,
    _r: Reader,
    BaseUrl(base): BaseUrl,
    Path(id): Path<String>,
) -> Result<Json<ReservationJson>, ApiError> {
    let r = st.app.reservation(&id).await?;
    Ok(Json(reservation_json(&st.app, &base, r)))
}

/// More time, up to the longest allowed from now.
#[utoipa::path(
    post, path = "/api/v1/reservations/{id}/extend", tag = "reservations",
    params(("id" = String, Path, description = "Reservation id")),
    request_body = ExtendBody,
    security(("bearer" = [])),
    responses(
        (status = 200, body = ReservationJson),
        (status = 400, body = ErrorBody),
        (status = 403, body = ErrorBody),
        (status = 404, body = ErrorBody),
        (status = 409, body = ErrorBody),
    )
)]
async fn extend_reservation(
    State(st): State<AppState>,
    who: Reporter,
    BaseUrl(base): BaseUrl,
    Path(id): Path<String>,
    ApiJson(body): ApiJson<ExtendBody>,
) -> Result<Json<ReservationJson>, ApiError> {
    let by = duration("by", &body.by)?;
    owned(&st, &id, &who).await?;
    let r = st.app.extend_reservation(&id, by).await?;
    Ok(Json(reservation_json(&st.app, &base, r)))
}

/// Ends it now: its VM is destroyed within seconds (the console log stays
/// in the job's folder).
#[utoipa::path(
    post, path = "/api/v1/reservations/{id}/release", tag = "reservations",
    params(("id" = String, Path, description = "Reservation id")),
    security(("bearer" = [])),
    responses(
        (status = 200, body = ReservationJson),
        (status = 403, body = ErrorBody),
        (status = 404, body = ErrorBody),
        (status = 409, body = ErrorBody),
    )
)]
async fn release_reservation(
    State(st): State<AppState>,
    who: Reporter,
    BaseUrl(base): BaseUrl,
    Path(id): Path<String>,
) -> Result<Json<ReservationJson>, ApiError> {
    owned(&st, &id, &who).await?;
    let r = st.app.release_reservation(&id).await?;
    Ok(Json(reservation_json(&st.app, &base, r)))
}
