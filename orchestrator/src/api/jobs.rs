//! Ferrotron's own API for jobs: records (list, get, create/advance,
//! cancel), the runner's log (followed live until the job ends), and
//! artifacts (listing, download with HTTP ranges, upload). Artifacts are
//! files under `<data dir>/artifacts/<job uuid>/`; the database only
//! references them.

use std::path::{Component, Path as FsPath, PathBuf};

use axum::body::Body;
use axum::extract::rejection::PathRejection;
use axum::extract::{DefaultBodyLimit, Path, RawQuery, Request, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use axum::{Json, Router};
use futures_util::StreamExt;
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};
use tokio::io::AsyncWriteExt;
use utoipa::{OpenApi, ToSchema};
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use super::auth::{Operator, Reader, Reporter};
use super::error::{ApiError, ApiJson, ErrorBody};
use super::{follow, paged, params, segs, AppState, BaseUrl};
use crate::beneath::{BeneathError, Dir};
use crate::store::{format_time, now_micros, parse_time, Artifact, Job, JobUpdate, TransitionRow};

pub(super) fn routes(r: OpenApiRouter<AppState>) -> OpenApiRouter<AppState> {
    r.routes(routes!(list_jobs))
        .routes(routes!(get_job, put_job))
        .routes(routes!(cancel_job))
        .routes(routes!(job_log))
        .routes(routes!(list_artifacts))
}

/// Artifact download and upload take a multi-segment path, which the
/// OpenAPI router cannot express; they are routed here and documented by
/// [`ArtifactDoc`].
pub(super) fn artifact_routes() -> Router<AppState> {
    Router::new().route(
        "/api/v1/jobs/{uuid}/artifacts/{*path}",
        get(get_artifact)
            .put(put_artifact)
            .layer(DefaultBodyLimit::disable()),
    )
}

#[derive(OpenApi)]
#[openapi(
    paths(get_artifact, put_artifact),
    components(schemas(ArtifactJson, ErrorBody))
)]
pub(super) struct ArtifactDoc;

#[derive(Debug, Serialize, ToSchema)]
pub struct TransitionJson {
    pub state: String,
    pub at: String,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct JobJson {
    pub uuid: String,
    /// queued, scheduled, booting, running, reporting, passed, failed, error, cancelled.
    pub state: String,
    pub item: String,
    #[serde(rename = "type")]
    pub item_type: String,
    pub arch: String,
    pub formula: String,
    pub host: Option<String>,
    pub exit_status: Option<i64>,
    pub created_at: String,
    pub started_at: Option<String>,
    pub finished_at: Option<String>,
    /// Why the job ended in error or was last retried.
    pub error: Option<String>,
    /// The commit of the task's git repository this job runs, resolved
    /// from the git cache before its VM booted (none for a local task).
    pub commit: Option<String>,
    pub transitions: Vec<TransitionJson>,
    pub log: String,
    pub artifacts: String,
    /// This job's results (its uuid is their group).
    pub results: String,
    pub href: String,
    /// A reservation's job, or a job whose VM is (or would be) held when
    /// it fails: the reservation, with how to reach its VM.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub reservation: Option<super::reservations::ReservationJson>,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct JobsPage {
    pub prev: Option<String>,
    pub next: Option<String>,
    pub data: Vec<JobJson>,
}

#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct TransitionBody {
    pub state: String,
    /// ISO 8601.
    pub at: String,
}

/// A job record as a runner reports it.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct JobBody {
    pub state: String,
    pub item: String,
    #[serde(rename = "type")]
    pub item_type: String,
    pub arch: String,
    /// The formula's name.
    pub formula: String,
    pub host: Option<String>,
    pub exit_status: Option<i64>,
    /// For a new job: its history from `queued`.
    pub transitions: Option<Vec<TransitionBody>>,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct ArtifactJson {
    pub path: String,
    pub size: i64,
    pub sha256: String,
    pub created_at: String,
    pub href: String,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct ArtifactsList {
    pub data: Vec<ArtifactJson>,
}

fn job_json(base: &str, j: Job) -> JobJson {
    let href = format!("{base}/api/v1/jobs/{}", j.uuid);
    JobJson {
        log: format!("{href}/log"),
        artifacts: format!("{href}/artifacts"),
        results: format!("{base}/api/v2.0/results?groups={}", j.uuid),
        href,
        reservation: None,
        uuid: j.uuid,
        state: j.state.to_string(),
        item: j.item,
        item_type: j.item_type,
        arch: j.arch,
        formula: j.formula,
        host: j.host,
        exit_status: j.exit_status,
        created_at: format_time(j.created_at),
        started_at: j.started_at.map(format_time),
        finished_at: j.finished_at.map(format_time),
        error: j.last_error,
        commit: j.git_commit,
        transitions: j
            .transitions
            .into_iter()
            .map(|t| TransitionJson {
                state: t.state.to_string(),
                at: format_time(t.at),
            })
            .collect(),
    }
}

/// Job ids are UUIDs; anything else is refused before it reaches a path.
fn job_id(s: &str) -> Result<String, ApiError> {
    crate::job::canonical_id(s)
        .ok_or_else(|| ApiError::bad_request("bad_job_id", format!("`{s}` is not a job UUID")))
}

fn artifacts_root(st: &AppState) -> PathBuf {
    st.app.settings().artifacts_dir()
}

/// A relative artifact path with only normal components.
pub(crate) fn safe_relative(p: &str) -> Result<PathBuf, ApiError> {
    let bad = |why: &str| {
        ApiError::bad_request("bad_artifact_path", format!("artifact path `{p}`: {why}"))
    };
    if p.is_empty() || p.len() > 1024 {
        return Err(bad("must be 1 to 1024 characters"));
    }
    if p.contains('\0') || p.contains('\\') {
        return Err(bad("contains a NUL or a backslash"));
    }
    if p.split('/').any(|s| s.len() > 255) {
        return Err(bad("each part of the path must be at most 255 bytes"));
    }
    let path = FsPath::new(p);
    let mut out = PathBuf::new();
    for c in path.components() {
        match c {
            Component::Normal(n) => out.push(n),
            Component::CurDir => {}
            _ => {
                return Err(bad(
                    "must stay inside the job's artifacts (no `..`, no leading `/`)",
                ))
            }
        }
    }
    if out.as_os_str().is_empty() || p.split('/').any(|s| s == "..") {
        return Err(bad(
            "must stay inside the job's artifacts (no `..`, no leading `/`)",
        ));
    }
    Ok(out)
}

#[utoipa::path(
    get, path = "/api/v1/jobs", tag = "jobs",
    params(
        ("page" = Option<i64>, Query, description = "Page number, from 0"),
        ("limit" = Option<i64>, Query, description = "Page size, 1 to 1000 (default 20)"),
        ("state" = Option<String>, Query, description = "Only jobs in this state"),
        ("item" = Option<String>, Query, description = "Only jobs about this item"),
        ("task" = Option<String>, Query, description = "Only jobs of this task (formula name)"),
        ("type" = Option<String>, Query, description = "Only jobs about items of this type"),
        ("host" = Option<String>, Query, description = "Only jobs run on this host"),
        ("since" = Option<String>, Query, description = "Only jobs created at or after this ISO 8601 time"),
        ("until" = Option<String>, Query, description = "Only jobs created before this ISO 8601 time"),
    ),
    responses((status = 200, body = JobsPage), (status = 400, body = ErrorBody))
)]
async fn list_jobs(
    State(st): State<AppState>,
    _r: Reader,
    BaseUrl(base): BaseUrl,
    RawQuery(q): RawQuery,
) -> Result<impl IntoResponse, ApiError> {
    let pairs = params::pairs(q.as_deref())?;
    let page = params::page(&pairs)?;
    let filter = params::job_filter(&pairs, &["page", "limit"])?;
    let (jobs, more) = st.app.store().list_jobs(&filter, page).await?;
    let data: Vec<JobJson> = jobs.into_iter().map(|j| job_json(&base, j)).collect();
    paged(&base, "/api/v1/jobs", &pairs, page, more, data)
}

#[utoipa::path(
    get, path = "/api/v1/jobs/{uuid}", tag = "jobs",
    params(("uuid" = String, Path, description = "Job UUID")),
    responses((status = 200, body = JobJson), (status = 400, body = ErrorBody), (status = 404, body = ErrorBody))
)]
async fn get_job(
    State(st): State<AppState>,
    _r: Reader,
    BaseUrl(base): BaseUrl,
    Path(uuid): Path<String>,
) -> Result<Json<JobJson>, ApiError> {
    let uuid = job_id(&uuid)?;
    let job = st
        .app
        .store()
        .get_job(&uuid)
        .await?
        .ok_or_else(|| ApiError::not_found(format!("job `{uuid}` not found")))?;
    let held = st.app.store().reservation_of_job(&uuid).await?;
    let mut out = job_json(&base, job);
    out.reservation = held.map(|r| super::reservations::reservation_json(&st.app, &base, r));
    Ok(Json(out))
}

/// Creates a job record or moves it to a new state (checked transitions).
#[utoipa::path(
    put, path = "/api/v1/jobs/{uuid}", tag = "jobs",
    params(("uuid" = String, Path, description = "Job UUID")),
    request_body = JobBody,
    security(("bearer" = [])),
    responses(
        (status = 200, body = JobJson),
        (status = 400, body = ErrorBody),
        (status = 401, body = ErrorBody),
        (status = 409, body = ErrorBody),
    )
)]
async fn put_job(
    State(st): State<AppState>,
    _w: Reporter,
    BaseUrl(base): BaseUrl,
    Path(uuid): Path<String>,
    ApiJson(body): ApiJson<JobBody>,
) -> Result<Json<JobJson>, ApiError> {
    let uuid = job_id(&uuid)?;
    let mut transitions = Vec::new();
    for (i, t) in body.transitions.iter().flatten().enumerate() {
        transitions.push(TransitionRow {
            state: params::job_state(&t.state)?,
            at: parse_time(&t.at).ok_or_else(|| {
                ApiError::bad_request(
                    "invalid_body",
                    format!("transitions[{i}].at: `{}` is not an ISO 8601 time", t.at),
                )
            })?,
        });
    }
    let update = JobUpdate {
        state: params::job_state(&body.state)?,
        item: body.item,
        item_type: body.item_type,
        arch: body.arch,
        formula: body.formula,
        host: body.host,
        exit_status: body.exit_status,
        transitions,
    };
    let job = st.app.put_job(&uuid, &update).await?;
    Ok(Json(job_json(&base, job)))
}

/// Marks a job cancelled; the scheduler stops it.
#[utoipa::path(
    post, path = "/api/v1/jobs/{uuid}/cancel", tag = "jobs",
    params(("uuid" = String, Path, description = "Job UUID")),
    security(("bearer" = [])),
    responses(
        (status = 200, body = JobJson),
        (status = 401, body = ErrorBody),
        (status = 404, body = ErrorBody),
        (status = 409, body = ErrorBody),
    )
)]
async fn cancel_job(
    State(st): State<AppState>,
    _w: Operator,
    BaseUrl(base): BaseUrl,
    Path(uuid): Path<String>,
) -> Result<Json<JobJson>, ApiError> {
    let uuid = job_id(&uuid)?;
    let job = st.app.cancel(&uuid).await?.job;
    Ok(Json(job_json(&base, job)))
}

/// The runner's log; while the job runs, the response stays open and
/// follows the file until the job reaches a final state.
#[utoipa::path(
    get, path = "/api/v1/jobs/{uuid}/log", tag = "jobs",
    params(("uuid" = String, Path, description = "Job UUID")),
    responses(
        (status = 200, content_type = "text/plain", body = String),
        (status = 404, body = ErrorBody),
        (status = 503, body = ErrorBody),
    )
)]
async fn job_log(
    State(st): State<AppState>,
    _r: Reader,
    Path(uuid): Path<String>,
) -> Result<Response, ApiError> {
    let uuid = job_id(&uuid)?;
    let job = st
        .app
        .store()
        .get_job(&uuid)
        .await?
        .ok_or_else(|| ApiError::not_found(format!("job `{uuid}` not found")))?;
    let roots = follow::LogRoots::of(st.app.settings());
    let opened = match roots.open(&uuid) {
        Ok(opened) => Some(opened),
        Err(BeneathError::Missing(_)) if !job.state.is_final() => None,
        Err(BeneathError::Missing(_)) => {
            return Err(ApiError::not_found(format!("job `{uuid}` has no log")))
        }
        Err(BeneathError::Link(_)) => {
            return Err(ApiError::not_found(format!(
            "job `{uuid}` has no log (its runner.log is a symbolic link, which is never followed)"
        )))
        }
        Err(e) => return Err(ApiError::Internal(crate::util::full(&e))),
    };
    let stream = follow::follow(st, roots, uuid, opened)?;
    Ok((
        [(
            axum::http::header::CONTENT_TYPE,
            "text/plain; charset=utf-8",
        )],
        Body::from_stream(stream),
    )
        .into_response())
}

#[utoipa::path(
    get, path = "/api/v1/jobs/{uuid}/artifacts", tag = "jobs",
    params(("uuid" = String, Path, description = "Job UUID")),
    responses((status = 200, body = ArtifactsList), (status = 404, body = ErrorBody))
)]
async fn list_artifacts(
    State(st): State<AppState>,
    _r: Reader,
    BaseUrl(base): BaseUrl,
    Path(uuid): Path<String>,
) -> Result<Json<ArtifactsList>, ApiError> {
    let uuid = job_id(&uuid)?;
    let data = st
        .app
        .job_artifacts(&uuid)
        .await?
        .into_iter()
        .map(|a| ArtifactJson {
            href: format!("{base}/api/v1/jobs/{uuid}/artifacts/{}", segs(&a.path)),
            path: a.path,
            size: a.size,
            sha256: a.sha256,
            created_at: format_time(a.created_at),
        })
        .collect();
    Ok(Json(ArtifactsList { data }))
}

fn path_args(
    p: Result<Path<(String, String)>, PathRejection>,
) -> Result<(String, PathBuf, String), ApiError> {
    let Path((uuid, rel)) =
        p.map_err(|e| ApiError::bad_request("bad_artifact_path", e.body_text()))?;
    let uuid = job_id(&uuid)?;
    let path = safe_relative(&rel)?;
    Ok((uuid, path, rel))
}

/// One artifact file; `Range` requests get `206 Partial Content`.
#[utoipa::path(
    get, path = "/api/v1/jobs/{uuid}/artifacts/{path}", tag = "jobs",
    params(
        ("uuid" = String, Path, description = "Job UUID"),
        ("path" = String, Path, description = "Path inside the job's artifacts"),
    ),
    responses(
        (status = 200, content_type = "application/octet-stream", body = Vec<u8>),
        (status = 206, content_type = "application/octet-stream", body = Vec<u8>),
        (status = 400, body = ErrorBody),
        (status = 404, body = ErrorBody),
    )
)]
async fn get_artifact(
    State(st): State<AppState>,
    _r: Reader,
    p: Result<Path<(String, String)>, PathRejection>,
    req: Request,
) -> Result<Response, ApiError> {
    let (uuid, rel, shown) = path_args(p)?;
    let root = artifacts_root(&st).join(&uuid);
    let full = root.join(&rel);
    let not_found = || ApiError::not_found(format!("job `{uuid}` has no artifact `{shown}`"));
    // Symlinks must not lead out of the job's folder.
    let (Ok(real_root), Ok(real)) = (
        tokio::fs::canonicalize(&root).await,
        tokio::fs::canonicalize(&full).await,
    ) else {
        return Err(not_found());
    };
    if !real.starts_with(&real_root) || !real.is_file() {
        return Err(not_found());
    }
    let resp = tower_http::services::ServeFile::new(real)
        .try_call(req)
        .await
        .map_err(ApiError::Io)?;
    Ok(resp.map(Body::new))
}

/// Stores one artifact file (the request body), replacing any previous one.
#[utoipa::path(
    put, path = "/api/v1/jobs/{uuid}/artifacts/{path}", tag = "jobs",
    params(
        ("uuid" = String, Path, description = "Job UUID"),
        ("path" = String, Path, description = "Path inside the job's artifacts"),
    ),
    request_body(content = Vec<u8>, content_type = "application/octet-stream"),
    security(("bearer" = [])),
    responses(
        (status = 201, body = ArtifactJson),
        (status = 400, body = ErrorBody),
        (status = 401, body = ErrorBody),
        (status = 404, body = ErrorBody),
        (status = 413, body = ErrorBody),
    )
)]
async fn put_artifact(
    State(st): State<AppState>,
    _w: Reporter,
    BaseUrl(base): BaseUrl,
    p: Result<Path<(String, String)>, PathRejection>,
    body: Body,
) -> Result<Response, ApiError> {
    let (uuid, rel, shown) = path_args(p)?;
    st.app.job(&uuid).await?;
    let name = rel
        .file_name()
        .and_then(|n| n.to_str())
        .map(str::to_string)
        .ok_or_else(|| ApiError::bad_request("bad_artifact_path", "no file name"))?;
    let folder = rel.parent().unwrap_or(FsPath::new("")).to_path_buf();
    // Below the artifacts folder nothing is followed: a guest may have
    // left links in a job's artifacts.
    let root = artifacts_root(&st);
    let dir = tokio::task::spawn_blocking(move || {
        crate::util::make_dir(&root, crate::util::modes::PRIVATE_DIR)?;
        let root = Dir::open(&root).map_err(std::io::Error::other)?;
        Ok::<_, std::io::Error>(
            root.folder(
                &FsPath::new(&uuid).join(&folder),
                true,
                crate::util::modes::PRIVATE_DIR,
            )
            .map(|d| (uuid, d)),
        )
    })
    .await
    .map_err(|e| ApiError::Internal(e.to_string()))??;
    let (uuid, dir) = dir.map_err(|e| artifact_error(&shown, e))?;
    // Written beside the target, renamed when complete: readers never see
    // half a file, and a failed upload leaves nothing.
    let tmp = format!(".upload-{}", uuid::Uuid::new_v4().simple());
    let std_file = dir
        .create_new(&tmp, crate::util::modes::PRIVATE_FILE)
        .map_err(|e| artifact_error(&shown, e))?;
    let guard = TempFile(Some((&dir, tmp.clone())));
    let mut file = tokio::fs::File::from_std(std_file);
    let mut hasher = Sha256::new();
    let mut size: u64 = 0;
    // A log or task output is kept (its start) for the search index.
    let rel_text = rel.to_string_lossy().into_owned();
    let mut indexed = crate::search::indexed_file(&rel_text).then(Vec::new);
    let mut stream = body.into_data_stream();
    while let Some(chunk) = stream.next().await {
        let chunk = chunk.map_err(|e| {
            ApiError::bad_request("upload_failed", format!("reading the body: {e}"))
        })?;
        size += chunk.len() as u64;
        if size > st.config.max_artifact_bytes {
            return Err(ApiError::too_large(format!(
                "artifact `{shown}` exceeds {} bytes",
                st.config.max_artifact_bytes
            )));
        }
        hasher.update(&chunk);
        if let Some(kept) = indexed.as_mut() {
            let room = crate::search::MAX_FILE_BYTES.saturating_sub(kept.len());
            kept.extend_from_slice(&chunk[..chunk.len().min(room)]);
        }
        file.write_all(&chunk).await?;
    }
    file.sync_all().await?;
    drop(file);
    dir.rename(&tmp, &name)
        .map_err(|e| artifact_error(&shown, e))?;
    guard.keep();
    let a = Artifact {
        path: rel_text,
        size: i64::try_from(size).unwrap_or(i64::MAX),
        sha256: hex::encode(hasher.finalize()),
        created_at: now_micros(),
    };
    st.app.add_artifact(&uuid, &a, indexed.as_deref()).await?;
    Ok((
        StatusCode::CREATED,
        Json(ArtifactJson {
            href: format!("{base}/api/v1/jobs/{uuid}/artifacts/{}", segs(&a.path)),
            path: a.path,
            size: a.size,
            sha256: a.sha256,
            created_at: format_time(a.created_at),
        }),
    )
        .into_response())
}

/// Removes a partial upload unless kept.
struct TempFile<'a>(Option<(&'a Dir, String)>);

impl TempFile<'_> {
    fn keep(mut self) {
        self.0 = None;
    }
}

impl Drop for TempFile<'_> {
    fn drop(&mut self) {
        if let Some((dir, name)) = self.0.take() {
            dir.remove(&name);
        }
    }
}

/// What a client did wrong in an artifact's path (or an internal error).
fn artifact_error(shown: &str, e: BeneathError) -> ApiError {
    let conflict = |why: &str| ApiError::Client {
        status: StatusCode::CONFLICT,
        code: "artifact_conflict",
        message: format!("artifact `{shown}`: {why}"),
    };
    match e {
        BeneathError::Link(_) => ApiError::bad_request(
            "bad_artifact_path",
            format!("artifact `{shown}`: the path passes through a symbolic link"),
        ),
        BeneathError::NotFolder(_) => conflict("a file is where the path needs a folder"),
        BeneathError::Folder(_) => conflict("a folder of that name exists"),
        other => ApiError::Internal(crate::util::full(&other)),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn artifact_paths() {
        assert_eq!(
            safe_relative("task_output/out.log").expect("ok"),
            PathBuf::from("task_output/out.log")
        );
        for bad in [
            "../etc/passwd",
            "/etc/passwd",
            "a/../../b",
            "",
            "a\\b",
            "..",
            "a/..",
        ] {
            assert!(safe_relative(bad).is_err(), "{bad}");
        }
    }
}
