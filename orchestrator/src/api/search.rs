//! `GET /api/v1/search`: full-text search over job logs, task output and
//! result notes ([`crate::app::search`]), a page of matching lines, each
//! with its highlighted snippet and a link to the line.

use axum::extract::{RawQuery, State};
use axum::response::Response;
use serde::Serialize;
use utoipa::ToSchema;
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use super::auth::Reader;
use super::error::{ApiError, ErrorBody};
use super::{paged, params, AppState, BaseUrl};
use crate::app::search::{Hit, SearchArgs, SearchError};
use crate::search::Fragment;
use crate::store::format_time;

pub(super) fn routes(r: OpenApiRouter<AppState>) -> OpenApiRouter<AppState> {
    r.routes(routes!(search))
}

/// The largest page of hits.
const MAX_SEARCH_LIMIT: i64 = 100;

/// One matching line.
#[derive(Debug, Serialize, ToSchema)]
pub struct HitJson {
    /// `log` (a line of a job's file) or `note` (a line of a result's note).
    pub kind: String,
    /// The job (for a note: its result's first group).
    pub job: Option<String>,
    /// The job's file, relative to its artifacts (`runner.log`,
    /// `artifacts/actions/01-run.log`, `artifacts/results.tap`).
    pub file: Option<String>,
    /// The result whose note this line is.
    pub result_id: Option<i64>,
    /// Line number, from 1.
    pub line: i64,
    pub item: Option<String>,
    /// When the line was stored.
    pub at: String,
    /// The whole line (at most 2000 characters).
    pub text: String,
    /// The line around its first match, as fragments to show as text,
    /// the matches marked.
    pub snippet: Vec<Fragment>,
    /// The line: the artifact with `#L<line>`, or the result.
    pub href: String,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct SearchPage {
    pub prev: Option<String>,
    pub next: Option<String>,
    pub data: Vec<HitJson>,
}

fn hit_json(base: &str, h: Hit) -> HitJson {
    HitJson {
        kind: h.kind.as_str().to_string(),
        href: format!("{base}{}", h.link),
        job: h.job,
        file: h.file,
        result_id: h.result_id,
        line: h.line,
        item: h.item,
        at: format_time(h.at),
        text: h.text,
        snippet: h.snippet,
    }
}

impl From<SearchError> for ApiError {
    fn from(e: SearchError) -> ApiError {
        match e {
            SearchError::Refused { ref source, .. } => {
                tracing::warn!("search refused: {}", crate::util::full(source));
                ApiError::bad_request("bad_query", e.to_string())
            }
            e @ SearchError::Query(_) => ApiError::bad_request("bad_query", e.to_string()),
            e @ SearchError::Filter { .. } => ApiError::bad_request("bad_filter", e.to_string()),
            SearchError::Store(s) => ApiError::Store(s),
            // Not reached from a search; internal like any store failure.
            e @ (SearchError::Read { .. } | SearchError::Index { .. }) => {
                ApiError::Internal(crate::util::full(&e))
            }
        }
    }
}

/// Lines of job logs, task output (TAP) and result notes matching `q`,
/// newest first. `q`: words (all must appear), `"a phrase"`, `word*`,
/// `a OR b`, `-word` (must not appear); a word is letters and digits,
/// case ignored.
#[utoipa::path(
    get, path = "/api/v1/search", tag = "search",
    params(
        ("q" = String, Query, description = "The query: words, \"phrases\", word*, a OR b, -word"),
        ("job" = Option<String>, Query, description = "Only lines of this job (UUID)"),
        ("testcase" = Option<String>, Query, description = "Only notes of results of this testcase, and lines of jobs with one"),
        ("item" = Option<String>, Query, description = "Only lines about this item"),
        ("outcome" = Option<String>, Query, description = "Only notes of results with this outcome, and lines of jobs with one (of `testcase`, if given)"),
        ("since" = Option<String>, Query, description = "Stored at or after (ISO 8601)"),
        ("until" = Option<String>, Query, description = "Stored at or before (ISO 8601)"),
        ("page" = Option<i64>, Query, description = "Page number, from 0"),
        ("limit" = Option<i64>, Query, description = "Page size, 1 to 100 (default 20)"),
    ),
    responses(
        (status = 200, body = SearchPage),
        (status = 400, body = ErrorBody),
        (status = 401, body = ErrorBody),
    )
)]
async fn search(
    State(st): State<AppState>,
    _r: Reader,
    BaseUrl(base): BaseUrl,
    RawQuery(q): RawQuery,
) -> Result<Response, ApiError> {
    let pairs = params::pairs(q.as_deref())?;
    let page = params::page(&pairs)?;
    if page.limit > MAX_SEARCH_LIMIT {
        return Err(ApiError::bad_request(
            "bad_pagination",
            format!("limit: at most {MAX_SEARCH_LIMIT} hits per page"),
        ));
    }
    let mut args = SearchArgs::default();
    let mut query = None;
    for (k, v) in &pairs {
        let slot = match k.as_str() {
            "q" => &mut query,
            "job" => &mut args.job,
            "testcase" => &mut args.testcase,
            "item" => &mut args.item,
            "outcome" => &mut args.outcome,
            "since" => &mut args.since,
            "until" => &mut args.until,
            "page" | "limit" => continue,
            _ => {
                return Err(ApiError::bad_request(
                    "bad_filter",
                    format!("unknown parameter `{k}` (q, job, testcase, item, outcome, since, until, page, limit)"),
                ))
            }
        };
        if slot.is_some() {
            return Err(ApiError::bad_request(
                "bad_filter",
                format!("`{k}` is given more than once"),
            ));
        }
        *slot = Some(v.clone());
    }
    args.query = query.ok_or_else(|| {
        ApiError::bad_request("bad_query", "`q` is required: the words to search for")
    })?;
    let _turn = st.heavy_read().await;
    let (hits, more) = st.app.search(&args, page).await?;
    let data: Vec<HitJson> = hits.into_iter().map(|h| hit_json(&base, h)).collect();
    paged(&base, "/api/v1/search", &pairs, page, more, data)
}
