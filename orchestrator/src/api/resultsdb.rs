//! ResultsDB API v2.0: what dashboards, gating (Greenwave) and release
//! tooling (Bodhi) call. Shapes follow ResultsDB: results carry `href`s,
//! lists are `{prev, next, data}`, POST bodies take the same loose forms
//! (a testcase by name or object, groups by uuid or object, data values as
//! strings or lists).

use axum::extract::{Path, RawQuery, State};
use axum::http::StatusCode;
use axum::response::IntoResponse;
use axum::Json;
use serde::Serialize;
use serde_json::{Map, Value};
use utoipa::ToSchema;
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use super::auth::{Reader, Reporter};
use super::error::{ApiError, ApiJson, ErrorBody};
use super::params::{self, Pairs};
use super::{paged, seg, AppState, BaseUrl};
use crate::store::{format_time, now_micros, parse_time, Group, NewResult, ResultRow, Testcase};

/// `/testcases/<name>` and `/testcases/<name>/results` for names that may
/// hold slashes: one catch-all route (the OpenAPI router cannot express
/// it), documented by [`TestcaseDoc`].
pub(super) fn slash_routes() -> axum::Router<AppState> {
    axum::Router::new()
        .route(
            "/api/v2.0/testcases/{*path}",
            axum::routing::get(testcase_path),
        )
        .route("/api/v2.0", axum::routing::get(landing_page))
        .route("/api/v2.0/", axum::routing::get(landing_page))
}

/// `GET /api/v2.0/`: upstream's landing page, status 300 included (a
/// choice of where to go), which some clients probe.
async fn landing_page(_r: Reader, BaseUrl(base): BaseUrl) -> impl IntoResponse {
    use crate::results::model::Outcome;
    (
        StatusCode::MULTIPLE_CHOICES,
        Json(serde_json::json!({
            "message": "Everything is fine. But choose wisely, for while the true Grail will \
                        bring you life, the false Grail will take it from you.",
            "documentation": format!("{base}/api/openapi.json"),
            "groups": format!("{base}{V2}/groups"),
            "results": format!("{base}{V2}/results"),
            "testcases": format!("{base}{V2}/testcases"),
            "outcomes": Outcome::ALL.map(|o| o.as_str()),
        })),
    )
}

#[derive(utoipa::OpenApi)]
#[openapi(
    paths(get_testcase, testcase_results),
    components(schemas(TestcaseJson, ResultsPage, ErrorBody))
)]
pub(super) struct TestcaseDoc;

pub(super) fn routes(r: OpenApiRouter<AppState>) -> OpenApiRouter<AppState> {
    r.routes(routes!(list_results, create_result))
        .routes(routes!(latest_results))
        .routes(routes!(get_result))
        .routes(routes!(list_testcases, create_testcase))
        .routes(routes!(list_groups, create_group))
        .routes(routes!(get_group))
        .routes(routes!(group_results))
        .routes(routes!(healthcheck))
}

const V2: &str = "/api/v2.0";

#[derive(Debug, Serialize, ToSchema)]
pub struct TestcaseJson {
    pub name: String,
    pub ref_url: Option<String>,
    pub href: String,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct GroupJson {
    pub uuid: String,
    pub description: Option<String>,
    pub ref_url: Option<String>,
    /// This group's results.
    pub results: String,
    /// How many results are in the group.
    pub results_count: i64,
    pub href: String,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct ResultJson {
    pub id: i64,
    pub testcase: TestcaseJson,
    /// PASSED, INFO, FAILED, NEEDS_INSPECTION, ERROR, WAIVED or ABORTED.
    pub outcome: String,
    pub note: Option<String>,
    pub ref_url: Option<String>,
    /// UTC, `2024-01-31T12:00:00.000000`.
    pub submit_time: String,
    /// Group uuids.
    pub groups: Vec<String>,
    /// Every key maps to a list of values.
    #[schema(value_type = Object)]
    pub data: std::collections::BTreeMap<String, Vec<String>>,
    pub href: String,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct ResultsPage {
    pub prev: Option<String>,
    pub next: Option<String>,
    pub data: Vec<ResultJson>,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct LatestResults {
    pub data: Vec<ResultJson>,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct TestcasesPage {
    pub prev: Option<String>,
    pub next: Option<String>,
    pub data: Vec<TestcaseJson>,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct GroupsPage {
    pub prev: Option<String>,
    pub next: Option<String>,
    pub data: Vec<GroupJson>,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct Health {
    pub message: String,
}

/// A result to create (ResultsDB's body).
/// Documentation only: bodies are checked field by field for ResultsDB's loose forms.
#[derive(Debug, ToSchema)]
#[expect(dead_code, reason = "describes the body in the OpenAPI document")]
pub struct CreateResultBody {
    /// Any case; PASSED, INFO, FAILED, NEEDS_INSPECTION, ERROR, WAIVED, ABORTED, CRASHED.
    pub outcome: String,
    /// A name, or `{name, ref_url}`; created when unknown.
    #[schema(value_type = Object)]
    pub testcase: Value,
    /// Uuids or `{uuid, description, ref_url}` objects; created when unknown.
    #[schema(value_type = Option<Vec<Object>>)]
    pub groups: Option<Value>,
    pub note: Option<String>,
    pub ref_url: Option<String>,
    /// Values are strings or numbers, or lists of them; keys may not contain `:`.
    #[schema(value_type = Option<Object>)]
    pub data: Option<Value>,
    /// Epoch milliseconds or ISO 8601 (UTC when no zone); default: now.
    #[schema(value_type = Option<String>)]
    pub submit_time: Option<Value>,
}

/// Documentation only: bodies are checked field by field for ResultsDB's loose forms.
#[derive(Debug, ToSchema)]
#[expect(dead_code, reason = "describes the body in the OpenAPI document")]
pub struct CreateTestcaseBody {
    pub name: String,
    pub ref_url: Option<String>,
}

/// Documentation only: bodies are checked field by field for ResultsDB's loose forms.
#[derive(Debug, ToSchema)]
#[expect(dead_code, reason = "describes the body in the OpenAPI document")]
pub struct CreateGroupBody {
    /// Generated when missing.
    pub uuid: Option<String>,
    pub description: Option<String>,
    pub ref_url: Option<String>,
}

fn testcase_json(base: &str, t: &Testcase) -> TestcaseJson {
    TestcaseJson {
        name: t.name.clone(),
        ref_url: t.ref_url.clone(),
        // As Flask's `path` converter: the slashes of a name stay slashes.
        href: format!("{base}{V2}/testcases/{}", super::segs(&t.name)),
    }
}

fn group_json(base: &str, g: &Group, results_count: i64) -> GroupJson {
    GroupJson {
        results_count,
        uuid: g.uuid.clone(),
        description: g.description.clone(),
        ref_url: g.ref_url.clone(),
        results: format!("{base}{V2}/results?groups={}", seg(&g.uuid)),
        href: format!("{base}{V2}/groups/{}", seg(&g.uuid)),
    }
}

/// A result as `GET /api/v2.0/results/<id>` serves it, links under
/// `base`: the body of its `resultsdb.result.new` message too.
pub fn result_value(base: &str, r: ResultRow) -> Value {
    serde_json::to_value(result_json(base, r)).unwrap_or_default()
}

fn result_json(base: &str, r: ResultRow) -> ResultJson {
    ResultJson {
        id: r.id,
        testcase: testcase_json(base, &r.testcase),
        outcome: r.outcome,
        note: r.note,
        ref_url: r.ref_url,
        submit_time: format_time(r.submit_time),
        groups: r.groups,
        data: r.data,
        href: format!("{base}{V2}/results/{}", r.id),
    }
}

// ---- body validation -------------------------------------------------

fn bad(code: &'static str, message: impl Into<String>) -> ApiError {
    ApiError::bad_request(code, message)
}

fn opt_string(obj: &Map<String, Value>, key: &str, ctx: &str) -> Result<Option<String>, ApiError> {
    match obj.get(key) {
        None | Some(Value::Null) => Ok(None),
        Some(Value::String(s)) => Ok(Some(s.clone())),
        Some(other) => Err(bad(
            "invalid_body",
            format!("{ctx}{key}: expected a string, got {}", kind(other)),
        )),
    }
}

fn kind(v: &Value) -> &'static str {
    match v {
        Value::Null => "null",
        Value::Bool(_) => "a boolean",
        Value::Number(_) => "a number",
        Value::String(_) => "a string",
        Value::Array(_) => "a list",
        Value::Object(_) => "an object",
    }
}

/// Longest group uuid (and other short names) accepted.
const MAX_NAME: usize = 255;
/// Longest testcase name accepted. ResultsDB's column is unbounded text;
/// past about 2.7 kB a PostgreSQL index entry no longer fits, so longer
/// names are refused here (400) rather than failing in the database.
pub const MAX_TESTCASE_NAME: usize = 2048;

fn name_ok(name: &str, what: &str) -> Result<(), ApiError> {
    name_within(name, what, MAX_NAME)
}

fn name_within(name: &str, what: &str, max: usize) -> Result<(), ApiError> {
    if name.trim().is_empty() {
        return Err(bad("invalid_body", format!("{what}: must not be empty")));
    }
    if name.len() > max {
        return Err(bad(
            "invalid_body",
            format!("{what}: must be 1 to {max} bytes"),
        ));
    }
    Ok(())
}

fn testcase_of(v: Option<&Value>) -> Result<Testcase, ApiError> {
    match v {
        None | Some(Value::Null) => Err(bad("invalid_body", "testcase: required")),
        Some(Value::String(name)) => {
            name_within(name, "testcase", MAX_TESTCASE_NAME)?;
            Ok(Testcase {
                name: name.clone(),
                ref_url: None,
            })
        }
        Some(Value::Object(o)) => {
            let name = opt_string(o, "name", "testcase.")?
                .ok_or_else(|| bad("invalid_body", "testcase.name: required"))?;
            name_within(&name, "testcase.name", MAX_TESTCASE_NAME)?;
            Ok(Testcase {
                name,
                ref_url: opt_string(o, "ref_url", "testcase.")?,
            })
        }
        Some(other) => Err(bad(
            "invalid_body",
            format!(
                "testcase: expected a name or an object, got {}",
                kind(other)
            ),
        )),
    }
}

fn group_of(i: usize, v: &Value) -> Result<Group, ApiError> {
    match v {
        Value::String(uuid) => {
            name_ok(uuid, &format!("groups[{i}]"))?;
            Ok(Group {
                uuid: uuid.clone(),
                description: None,
                ref_url: None,
            })
        }
        Value::Object(o) => {
            let ctx = format!("groups[{i}].");
            let uuid =
                opt_string(o, "uuid", &ctx)?.unwrap_or_else(|| uuid::Uuid::new_v4().to_string());
            name_ok(&uuid, &format!("groups[{i}].uuid"))?;
            Ok(Group {
                uuid,
                description: opt_string(o, "description", &ctx)?,
                ref_url: opt_string(o, "ref_url", &ctx)?,
            })
        }
        other => Err(bad(
            "invalid_body",
            format!(
                "groups[{i}]: expected a uuid or an object, got {}",
                kind(other)
            ),
        )),
    }
}

fn data_of(v: Option<&Value>) -> Result<Vec<(String, String)>, ApiError> {
    let obj = match v {
        None | Some(Value::Null) => return Ok(Vec::new()),
        Some(Value::Object(o)) => o,
        Some(other) => {
            return Err(bad(
                "invalid_body",
                format!("data: expected an object, got {}", kind(other)),
            ))
        }
    };
    // Upstream's words, which `resultsdb_api` shows its users: every key
    // with a colon, as a Python list.
    let colons: Vec<Value> = obj
        .keys()
        .filter(|k| k.contains(':'))
        .map(|k| Value::String(k.clone()))
        .collect();
    if !colons.is_empty() {
        return Err(bad(
            "bad_data_key",
            format!(
                "Colon not allowed in key name: {} (`:` is reserved for query operators)",
                crate::results::record::python_repr(&Value::Array(colons))
            ),
        ));
    }
    let mut out = Vec::new();
    for (k, v) in obj {
        if k.is_empty() || k.len() > 255 {
            return Err(bad(
                "bad_data_key",
                "data: keys must be 1 to 255 characters",
            ));
        }
        // As ResultsDB: a list is one value per item, anything else one
        // value; what is not a string is stored as Python's `str()` of it
        // (`None`, `True`, `{'a': 1}`).
        match v {
            Value::Array(items) => {
                for item in items {
                    out.push((k.clone(), crate::results::record::python_str(item)));
                }
            }
            other => out.push((k.clone(), crate::results::record::python_str(other))),
        }
        crate::results::record::check_bounds(k, &out, 0)
            .map_err(|e| bad("too_much_data", format!("data: {e}")))?;
    }
    Ok(out)
}

fn submit_time_of(v: Option<&Value>) -> Result<i64, ApiError> {
    let bad_time = |s: String| {
        bad(
            "bad_submit_time",
            format!("submit_time: `{s}` is neither epoch milliseconds nor an ISO 8601 time"),
        )
    };
    match v {
        None | Some(Value::Null) => Ok(now_micros()),
        Some(Value::Number(n)) => n
            .as_i64()
            .filter(|ms| (0..=253_402_300_799_000).contains(ms))
            .map(|ms| ms * 1000)
            .ok_or_else(|| bad_time(n.to_string())),
        Some(Value::String(s)) => match s.parse::<i64>() {
            Ok(ms) if (0..=253_402_300_799_000).contains(&ms) => Ok(ms * 1000),
            Ok(_) => Err(bad_time(s.clone())),
            Err(_) => parse_time(s).ok_or_else(|| bad_time(s.clone())),
        },
        Some(other) => Err(bad_time(kind(other).to_string())),
    }
}

/// Checks a POST /results body the way ResultsDB does.
pub(crate) fn new_result(body: &Value) -> Result<NewResult, ApiError> {
    let Value::Object(obj) = body else {
        return Err(bad(
            "invalid_body",
            format!("the body must be a JSON object, got {}", kind(body)),
        ));
    };
    let outcome = match obj.get("outcome") {
        Some(Value::String(s)) => params::outcome(s)?,
        None | Some(Value::Null) => return Err(bad("invalid_body", "outcome: required")),
        Some(other) => {
            return Err(bad(
                "invalid_body",
                format!("outcome: expected a string, got {}", kind(other)),
            ))
        }
    };
    let groups = match obj.get("groups") {
        None | Some(Value::Null) => Vec::new(),
        Some(Value::Array(items)) if items.len() > MAX_GROUPS => {
            return Err(bad(
                "too_many_groups",
                format!(
                    "groups: a result may be in at most {MAX_GROUPS} groups; this one lists {}",
                    items.len()
                ),
            ))
        }
        Some(Value::Array(items)) => items
            .iter()
            .enumerate()
            .map(|(i, g)| group_of(i, g))
            .collect::<Result<_, _>>()?,
        Some(other) => {
            return Err(bad(
                "invalid_body",
                format!("groups: expected a list, got {}", kind(other)),
            ))
        }
    };
    Ok(NewResult {
        testcase: testcase_of(obj.get("testcase"))?,
        outcome,
        note: opt_string(obj, "note", "")?,
        ref_url: opt_string(obj, "ref_url", "")?,
        submit_time: submit_time_of(obj.get("submit_time"))?,
        groups,
        data: data_of(obj.get("data"))?,
    })
}

/// Groups one result may be in (each is a row and a lookup).
pub const MAX_GROUPS: usize = 100;

// ---- handlers ----------------------------------------------------------

/// Results, newest first, filtered like ResultsDB.
#[utoipa::path(
    get, path = "/api/v2.0/results", tag = "resultsdb",
    params(
        ("page" = Option<i64>, Query, description = "Page number, from 0"),
        ("limit" = Option<i64>, Query, description = "Page size, 1 to 1000 (default 20)"),
        ("since" = Option<String>, Query, description = "`start[,end]`, ISO 8601"),
        ("outcome" = Option<String>, Query, description = "Comma-separated outcomes"),
        ("testcases" = Option<String>, Query, description = "Comma-separated testcase names"),
        ("testcases:like" = Option<String>, Query, description = "Testcase name patterns with `*`"),
        ("groups" = Option<String>, Query, description = "Comma-separated group uuids"),
    ),
    responses(
        (status = 200, body = ResultsPage),
        (status = 400, body = ErrorBody),
    )
)]
async fn list_results(
    State(st): State<AppState>,
    _r: Reader,
    BaseUrl(base): BaseUrl,
    RawQuery(q): RawQuery,
) -> Result<impl IntoResponse, ApiError> {
    let pairs = params::pairs(q.as_deref())?;
    let filter = params::result_filter(&pairs)?;
    let page = params::page(&pairs)?;
    let _turn = st.heavy_read().await;
    let (rows, more) = st.app.store().list_results(&filter, page).await?;
    let data: Vec<ResultJson> = rows.into_iter().map(|r| result_json(&base, r)).collect();
    paged(&base, &format!("{V2}/results"), &pairs, page, more, data)
}

/// Creates a result (and its testcase and groups when new).
#[utoipa::path(
    post, path = "/api/v2.0/results", tag = "resultsdb",
    request_body = CreateResultBody,
    security(("bearer" = [])),
    responses(
        (status = 201, body = ResultJson),
        (status = 400, body = ErrorBody),
        (status = 401, body = ErrorBody),
        (status = 413, body = ErrorBody),
    )
)]
async fn create_result(
    State(st): State<AppState>,
    _w: Reporter,
    BaseUrl(base): BaseUrl,
    ApiJson(body): ApiJson<Value>,
) -> Result<impl IntoResponse, ApiError> {
    let new = new_result(&body).map_err(ApiError::with_validation)?;
    let row = st.app.store().create_result(&new).await?;
    Ok((StatusCode::CREATED, Json(result_json(&base, row))))
}

/// The newest matching result of each testcase (and, with `_distinct_on`,
/// of each combination of those data values), whatever its outcome.
#[utoipa::path(
    get, path = "/api/v2.0/results/latest", tag = "resultsdb",
    params(
        ("since" = Option<String>, Query, description = "`start[,end]`, ISO 8601"),
        ("outcome" = Option<String>, Query, description = "Accepted and ignored, as upstream does"),
        ("_distinct_on" = Option<String>, Query, description = "Comma-separated data keys: the newest result per testcase and combination of their values (a result lacking a key is its own group); needs another filter"),
        ("testcases" = Option<String>, Query, description = "Comma-separated testcase names"),
        ("testcases:like" = Option<String>, Query, description = "Testcase name patterns with `*`"),
        ("groups" = Option<String>, Query, description = "Comma-separated group uuids"),
    ),
    responses((status = 200, body = LatestResults), (status = 400, body = ErrorBody))
)]
async fn latest_results(
    State(st): State<AppState>,
    _r: Reader,
    BaseUrl(base): BaseUrl,
    RawQuery(q): RawQuery,
) -> Result<impl IntoResponse, ApiError> {
    let pairs = params::pairs(q.as_deref())?;
    let mut filter = params::result_filter(&pairs)?;
    // As upstream: the newest result whatever its outcome.
    filter.outcomes.clear();
    let distinct_on = params::distinct_on(&pairs)?;
    if !distinct_on.is_empty() && filter.is_empty() {
        return Err(ApiError::bad_request(
            "bad_filter",
            "Please, provide at least one filter beside '_distinct_on'",
        ));
    }
    let _turn = st.heavy_read().await;
    let rows = st.app.store().latest_results(&filter, &distinct_on).await?;
    let data: Vec<ResultJson> = rows.into_iter().map(|r| result_json(&base, r)).collect();
    super::list_json(None, None, &data)
}

#[utoipa::path(
    get, path = "/api/v2.0/results/{id}", tag = "resultsdb",
    params(("id" = String, Path, description = "Result id")),
    responses((status = 200, body = ResultJson), (status = 404, body = ErrorBody))
)]
async fn get_result(
    State(st): State<AppState>,
    _r: Reader,
    BaseUrl(base): BaseUrl,
    Path(id): Path<String>,
) -> Result<impl IntoResponse, ApiError> {
    let not_found = || ApiError::not_found("Result not found");
    let n: i64 = id.parse().map_err(|_| not_found())?;
    let row = st.app.store().get_result(n).await?.ok_or_else(not_found)?;
    Ok(Json(result_json(&base, row)))
}

#[utoipa::path(
    get, path = "/api/v2.0/testcases", tag = "resultsdb",
    params(
        ("page" = Option<i64>, Query, description = "Page number, from 0"),
        ("limit" = Option<i64>, Query, description = "Page size, 1 to 1000 (default 20)"),
        ("name" = Option<String>, Query, description = "Comma-separated names"),
        ("name:like" = Option<String>, Query, description = "Name patterns with `*`"),
    ),
    responses((status = 200, body = TestcasesPage), (status = 400, body = ErrorBody))
)]
async fn list_testcases(
    State(st): State<AppState>,
    _r: Reader,
    BaseUrl(base): BaseUrl,
    RawQuery(q): RawQuery,
) -> Result<impl IntoResponse, ApiError> {
    let pairs = params::pairs(q.as_deref())?;
    let page = params::page(&pairs)?;
    let (names, like) = name_filters(&pairs, "name")?;
    let (rows, more) = st.app.store().list_testcases(&names, &like, page).await?;
    let data: Vec<TestcaseJson> = rows.iter().map(|t| testcase_json(&base, t)).collect();
    paged(&base, &format!("{V2}/testcases"), &pairs, page, more, data)
}

/// `key=a,b` and `key:like=x*` values; other keys are refused.
fn name_filters(pairs: &Pairs, key: &str) -> Result<(Vec<String>, Vec<String>), ApiError> {
    let like_key = format!("{key}:like");
    let mut exact = Vec::new();
    let mut like = Vec::new();
    for (k, v) in pairs {
        let values = v
            .split(',')
            .map(str::trim)
            .filter(|s| !s.is_empty())
            .map(String::from);
        if k == key {
            exact.extend(values);
        } else if *k == like_key {
            like.extend(values);
        } else if !matches!(k.as_str(), "page" | "limit" | "callback") {
            return Err(bad("bad_filter", format!("unknown filter `{k}`")));
        }
    }
    params::check_like_patterns(like.len())?;
    Ok((exact, like))
}

#[utoipa::path(
    post, path = "/api/v2.0/testcases", tag = "resultsdb",
    request_body = CreateTestcaseBody,
    security(("bearer" = [])),
    responses(
        (status = 201, body = TestcaseJson),
        (status = 400, body = ErrorBody),
        (status = 401, body = ErrorBody),
    )
)]
async fn create_testcase(
    State(st): State<AppState>,
    _w: Reporter,
    BaseUrl(base): BaseUrl,
    ApiJson(body): ApiJson<Value>,
) -> Result<impl IntoResponse, ApiError> {
    // The body is the testcase: its fields are named without `testcase.`.
    let tc = testcase_of(Some(&body))
        .map_err(|e| match e {
            ApiError::Client {
                status,
                code,
                message,
            } => ApiError::Client {
                status,
                code,
                message: message.replacen("testcase.", "", 1),
            },
            other => other,
        })
        .map_err(ApiError::with_validation)?;
    let tc = st.app.store().put_testcase(&tc).await?;
    Ok((StatusCode::CREATED, Json(testcase_json(&base, &tc))))
}

#[utoipa::path(
    get, path = "/api/v2.0/testcases/{name}", tag = "resultsdb",
    params(("name" = String, Path, description = "Testcase name; it may hold slashes, given as they are")),
    responses((status = 200, body = TestcaseJson), (status = 404, body = ErrorBody))
)]
#[expect(dead_code, reason = "documents the route `slash_routes` serves")]
fn get_testcase() {}

#[utoipa::path(
    get, path = "/api/v2.0/testcases/{name}/results", tag = "resultsdb",
    params(
        ("name" = String, Path, description = "Testcase name; it may hold slashes, given as they are"),
        ("page" = Option<i64>, Query, description = "Page number, from 0"),
        ("limit" = Option<i64>, Query, description = "Page size, 1 to 1000 (default 20)"),
    ),
    responses((status = 200, body = ResultsPage), (status = 400, body = ErrorBody), (status = 404, body = ErrorBody))
)]
#[expect(dead_code, reason = "documents the route `slash_routes` serves")]
fn testcase_results() {}

/// `/testcases/<path>`: a testcase, or with `/results` at the end its
/// results (as upstream's `<path:testcase_name>` routes: a name may hold
/// slashes, sent raw, and the longer rule wins).
pub(super) async fn testcase_path(
    State(st): State<AppState>,
    _r: Reader,
    BaseUrl(base): BaseUrl,
    Path(path): Path<String>,
    RawQuery(q): RawQuery,
) -> Result<axum::response::Response, ApiError> {
    let not_found = || ApiError::not_found("Testcase not found");
    if let Some(name) = path.strip_suffix("/results").filter(|n| !n.is_empty()) {
        let pairs = params::pairs(q.as_deref())?;
        let mut filter = params::result_filter(&pairs)?;
        let page = params::page(&pairs)?;
        st.app
            .store()
            .get_testcase(name)
            .await?
            .ok_or_else(not_found)?;
        filter.testcases = vec![name.to_string()];
        filter.testcases_like.clear();
        let _turn = st.heavy_read().await;
        let (rows, more) = st.app.store().list_results(&filter, page).await?;
        let data: Vec<ResultJson> = rows.into_iter().map(|r| result_json(&base, r)).collect();
        return paged(
            &base,
            &format!("{V2}/testcases/{}/results", super::segs(name)),
            &pairs,
            page,
            more,
            data,
        );
    }
    let tc = st
        .app
        .store()
        .get_testcase(&path)
        .await?
        .ok_or_else(not_found)?;
    Ok(Json(testcase_json(&base, &tc)).into_response())
}

#[utoipa::path(
    get, path = "/api/v2.0/groups", tag = "resultsdb",
    params(
        ("page" = Option<i64>, Query, description = "Page number, from 0"),
        ("limit" = Option<i64>, Query, description = "Page size, 1 to 1000 (default 20)"),
        ("uuid" = Option<String>, Query, description = "Comma-separated uuids"),
        ("description" = Option<String>, Query, description = "Comma-separated descriptions (any of them)"),
        ("description:like" = Option<String>, Query, description = "Comma-separated description patterns with `*` (ignored with `description`)"),
    ),
    responses((status = 200, body = GroupsPage), (status = 400, body = ErrorBody))
)]
async fn list_groups(
    State(st): State<AppState>,
    _r: Reader,
    BaseUrl(base): BaseUrl,
    RawQuery(q): RawQuery,
) -> Result<impl IntoResponse, ApiError> {
    let pairs = params::pairs(q.as_deref())?;
    let page = params::page(&pairs)?;
    let mut uuids = Vec::new();
    let mut exact = Vec::new();
    let mut like = Vec::new();
    let list = |v: &str| -> Vec<String> {
        v.split(',')
            .map(str::trim)
            .filter(|s| !s.is_empty())
            .map(String::from)
            .collect()
    };
    for (k, v) in &pairs {
        match k.as_str() {
            "uuid" => uuids.extend(list(v)),
            // Comma = OR, as upstream; `description` wins over `:like`.
            "description" => exact.extend(list(v)),
            "description:like" => like.extend(list(v)),
            "page" | "limit" | "callback" => {}
            _ => return Err(bad("bad_filter", format!("unknown filter `{k}`"))),
        }
    }
    if !exact.is_empty() {
        like.clear();
    }
    params::check_like_patterns(like.len())?;
    let (rows, more) = st
        .app
        .store()
        .list_groups(&uuids, &exact, &like, page)
        .await?;
    let uuids: Vec<String> = rows.iter().map(|g| g.uuid.clone()).collect();
    let counts = st.app.store().group_result_counts(&uuids).await?;
    let data: Vec<GroupJson> = rows
        .iter()
        .map(|g| group_json(&base, g, counts.get(&g.uuid).copied().unwrap_or(0)))
        .collect();
    paged(&base, &format!("{V2}/groups"), &pairs, page, more, data)
}

#[utoipa::path(
    post, path = "/api/v2.0/groups", tag = "resultsdb",
    request_body = CreateGroupBody,
    security(("bearer" = [])),
    responses(
        (status = 201, body = GroupJson),
        (status = 400, body = ErrorBody),
        (status = 401, body = ErrorBody),
    )
)]
async fn create_group(
    State(st): State<AppState>,
    _w: Reporter,
    BaseUrl(base): BaseUrl,
    ApiJson(body): ApiJson<Value>,
) -> Result<impl IntoResponse, ApiError> {
    let Value::Object(_) = &body else {
        return Err(bad(
            "invalid_body",
            format!("the body must be a JSON object, got {}", kind(&body)),
        ));
    };
    let g = group_of(0, &body).map_err(|e| match e {
        ApiError::Client {
            status,
            code,
            message,
        } => ApiError::Client {
            status,
            code,
            message: message.replacen("groups[0].", "", 1),
        },
        other => other,
    })?;
    // As upstream (`if body.description: ...`): an empty description or
    // ref_url sets nothing, so it never blanks what a group has.
    let g = Group {
        description: g.description.filter(|d| !d.is_empty()),
        ref_url: g.ref_url.filter(|u| !u.is_empty()),
        ..g
    };
    let g = st.app.store().put_group(&g).await?;
    let n = count_of(&st, &g.uuid).await?;
    Ok((StatusCode::CREATED, Json(group_json(&base, &g, n))))
}

#[utoipa::path(
    get, path = "/api/v2.0/groups/{uuid}", tag = "resultsdb",
    params(("uuid" = String, Path, description = "Group uuid")),
    responses((status = 200, body = GroupJson), (status = 404, body = ErrorBody))
)]
async fn get_group(
    State(st): State<AppState>,
    _r: Reader,
    BaseUrl(base): BaseUrl,
    Path(uuid): Path<String>,
) -> Result<impl IntoResponse, ApiError> {
    let g = st
        .app
        .store()
        .get_group(&uuid)
        .await?
        .ok_or_else(|| ApiError::not_found("Group not found"))?;
    let n = count_of(&st, &g.uuid).await?;
    Ok(Json(group_json(&base, &g, n)))
}

/// The number of results in one group.
async fn count_of(st: &AppState, uuid: &str) -> Result<i64, ApiError> {
    let counts = st
        .app
        .store()
        .group_result_counts(&[uuid.to_string()])
        .await?;
    Ok(counts.get(uuid).copied().unwrap_or(0))
}

/// The results of one group (same filters and paging as `/results`).
#[utoipa::path(
    get, path = "/api/v2.0/groups/{uuid}/results", tag = "resultsdb",
    params(
        ("uuid" = String, Path, description = "Group uuid"),
        ("page" = Option<i64>, Query, description = "Page number, from 0"),
        ("limit" = Option<i64>, Query, description = "Page size, 1 to 1000 (default 20)"),
    ),
    responses(
        (status = 200, body = ResultsPage),
        (status = 400, body = ErrorBody),
        (status = 404, body = ErrorBody),
    )
)]
async fn group_results(
    State(st): State<AppState>,
    _r: Reader,
    BaseUrl(base): BaseUrl,
    Path(uuid): Path<String>,
    RawQuery(q): RawQuery,
) -> Result<impl IntoResponse, ApiError> {
    let pairs = params::pairs(q.as_deref())?;
    let filter = params::result_filter(&pairs)?;
    let page = params::page(&pairs)?;
    let _turn = st.heavy_read().await;
    let (rows, more) = st
        .app
        .group_results(&uuid, filter, page)
        .await
        .map_err(|e| match e {
            // Upstream's words for this route.
            crate::store::StoreError::NotFound { .. } => {
                ApiError::not_found(format!("Group not found: {uuid}"))
            }
            other => ApiError::from(other),
        })?;
    let data: Vec<ResultJson> = rows.into_iter().map(|r| result_json(&base, r)).collect();
    paged(
        &base,
        &format!("{V2}/groups/{uuid}/results"),
        &pairs,
        page,
        more,
        data,
    )
}

#[utoipa::path(
    get, path = "/api/v2.0/healthcheck", tag = "resultsdb",
    responses((status = 200, body = Health), (status = 503, body = ErrorBody))
)]
async fn healthcheck(State(st): State<AppState>) -> Result<Json<Health>, ApiError> {
    match st.app.store().ping().await {
        Ok(()) => Ok(Json(Health {
            message: "Health check OK".into(),
        })),
        Err(e) => {
            tracing::error!(error = %crate::util::full(&e), "health check failed");
            Err(ApiError::Client {
                status: StatusCode::SERVICE_UNAVAILABLE,
                code: "database_unavailable",
                message: "Unable to communicate with the database".into(),
            })
        }
    }
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeMap;

    use proptest::prelude::*;

    use super::*;
    use crate::results::{record, CheckResult, Outcome};
    use crate::store::JobRef;

    /// Key -> values, the way the API answers `data`.
    fn multimap(pairs: &[(String, String)]) -> BTreeMap<String, Vec<String>> {
        let mut out: BTreeMap<String, Vec<String>> = BTreeMap::new();
        for (k, v) in pairs {
            out.entry(k.clone()).or_default().push(v.clone());
        }
        out
    }

    fn scalar_value() -> impl Strategy<Value = Value> {
        prop_oneof![
            "\\PC{0,30}".prop_map(Value::String),
            any::<i64>().prop_map(Value::from),
            any::<bool>().prop_map(Value::Bool),
            any::<f64>()
                .prop_filter_map("finite", serde_json::Number::from_f64)
                .prop_map(Value::Number),
        ]
    }

    /// Data values ResultsDB accepts: a scalar, null, or a list of scalars.
    fn resultsdb_value() -> impl Strategy<Value = Value> {
        prop_oneof![
            scalar_value(),
            Just(Value::Null),
            prop::collection::vec(scalar_value(), 0..4).prop_map(Value::Array),
        ]
    }

    /// Any value a task may write, nested.
    fn task_value() -> impl Strategy<Value = Value> {
        prop_oneof![scalar_value(), Just(Value::Null)].prop_recursive(3, 12, 3, |inner| {
            prop_oneof![
                prop::collection::vec(inner.clone(), 0..3).prop_map(Value::Array),
                prop::collection::btree_map("[a-z_.]{1,8}", inner, 0..3)
                    .prop_map(|m| Value::Object(m.into_iter().collect())),
            ]
        })
    }

    fn key() -> impl Strategy<Value = String> {
        "[A-Za-z0-9_. -]{1,12}".prop_filter("not a field", |k| {
            !CheckResult::FIELDS.contains(&k.as_str())
        })
    }

    fn check_result() -> impl Strategy<Value = CheckResult> {
        (
            ("\\PC{1,20}", "[a-z_]{1,10}", "[a-z.]{1,20}"),
            prop::sample::select(Outcome::ALL.to_vec()),
            prop::option::of("\\PC{0,40}"),
            prop::option::of("[a-z/ ]{0,12}"),
            prop::option::of("https://[a-z]{1,8}\\.example/[a-z]{0,8}"),
            prop::collection::btree_map(key(), task_value(), 0..4),
        )
            .prop_map(
                |((item, item_type, checkname), outcome, note, artifact, ref_url, extra)| {
                    CheckResult {
                        item,
                        item_type,
                        checkname,
                        outcome,
                        note,
                        artifact,
                        ref_url,
                        extra,
                    }
                },
            )
    }

    proptest! {
        /// `run --report` posts what the scheduler stores: the API reads a
        /// posted body back into the same result.
        #[test]
        fn posted_results_read_back_as_stored(
            results in prop::collection::vec(check_result(), 1..4),
        ) {
            let job = JobRef { uuid: "u-1", what: "task", item: "foo-1-1", arch: "x86_64" };
            let stored = NewResult::of_job("http://h:1", job, &results, 0).expect("valid keys");
            prop_assert_eq!(stored.len(), results.len());
            for want in &stored {
                let got = new_result(&want.to_resultsdb_json()).expect("the API accepts it");
                prop_assert_eq!(&got.testcase.name, &want.testcase.name);
                prop_assert_eq!(&got.outcome, &want.outcome);
                prop_assert_eq!(&got.note, &want.note);
                prop_assert_eq!(&got.ref_url, &want.ref_url);
                prop_assert_eq!(&got.groups, &want.groups);
                prop_assert_eq!(multimap(&got.data), multimap(&want.data));
            }
        }

        /// For the data ResultsDB itself accepts, a task's keys become the
        /// values a client posting them directly gets.
        #[test]
        fn task_data_is_what_resultsdb_makes_of_it(
            extra in prop::collection::btree_map(key(), resultsdb_value(), 0..6),
        ) {
            let direct = new_result(&serde_json::json!({
                "outcome": "PASSED", "testcase": "t", "data": extra,
            }))
            .expect("the API accepts it");
            let ours = record::pairs(&extra).expect("valid keys");
            prop_assert_eq!(multimap(&direct.data), multimap(&ours));
        }
    }

    fn err(body: Value) -> String {
        match new_result(&body) {
            Err(ApiError::Client { code, message, .. }) => format!("{code}: {message}"),
            other => format!("{other:?}"),
        }
    }

    #[test]
    fn a_result_with_too_much_data_is_refused() {
        let many: Vec<u64> = (0..=crate::results::record::MAX_DATA_VALUES as u64).collect();
        let Err(e) = new_result(&serde_json::json!({
            "outcome": "PASSED", "testcase": "t", "data": {"item": "x", "n": many},
        })) else {
            panic!("too much data was accepted");
        };
        assert!(
            e.to_string()
                .contains("at most 256 data values; with \"n\" it has 258"),
            "{e}"
        );
    }

    #[test]
    fn resultsdb_bodies() {
        let r = new_result(&serde_json::json!({
            "outcome": "passed",
            "testcase": {"name": "dist.rpmdeplint", "ref_url": "http://x"},
            "groups": [{"uuid": "g1", "description": "d"}, "g2"],
            "data": {"item": "x", "type": "koji_build", "arch": ["x86_64", "noarch"], "n": 3},
            "submit_time": 1_700_000_000_000i64
        }))
        .expect("valid");
        assert_eq!(r.outcome, "PASSED");
        assert_eq!(r.groups.len(), 2);
        assert_eq!(r.data.len(), 5);
        assert_eq!(r.submit_time, 1_700_000_000_000_000);
        assert_eq!(
            err(serde_json::json!({"outcome": "OK", "testcase": "t"})),
            "unknown_outcome: outcome `OK` is not one of PASSED, INFO, FAILED, NEEDS_INSPECTION, ERROR, WAIVED, ABORTED, CRASHED"
        );
        assert_eq!(
            err(serde_json::json!({"outcome": "PASSED", "testcase": "t", "data": {"a:b": "x"}})),
            "bad_data_key: Colon not allowed in key name: ['a:b'] (`:` is reserved for query operators)"
        );
        assert_eq!(
            err(serde_json::json!({"outcome": "PASSED"})),
            "invalid_body: testcase: required"
        );
        assert_eq!(
            err(serde_json::json!({"outcome": "PASSED", "testcase": "t", "data": ["k"]})),
            "invalid_body: data: expected an object, got a list"
        );
    }
}
