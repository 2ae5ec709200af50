//! `App::search`: full-text search over job logs, task output and result
//! notes, the one function behind `GET /api/v1/search` and `ferrotron
//! search`. Both hand over what the user typed ([`SearchArgs`]); the query
//! and every filter are checked here, so both refuse the same input with
//! the same words.

use super::App;
use crate::exit::{ExitStatus, HasExitStatus};
use crate::results::model::Outcome;
use crate::search::{snippet, Fragment, Query, QueryError};
use crate::store::{parse_time, Page, SearchFilter, SearchRow, StoreError};

/// A search as typed (filters unchecked).
#[derive(Debug, Clone, Default)]
pub struct SearchArgs {
    pub query: String,
    pub job: Option<String>,
    pub testcase: Option<String>,
    pub item: Option<String>,
    pub outcome: Option<String>,
    /// ISO 8601 date or time (a date alone: its midnight, UTC).
    pub since: Option<String>,
    pub until: Option<String>,
}

/// Where a hit is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum HitKind {
    /// A line of a job's file (an artifact).
    Log,
    /// A line of a result's note.
    Note,
}

impl HitKind {
    pub fn as_str(self) -> &'static str {
        match self {
            HitKind::Log => "log",
            HitKind::Note => "note",
        }
    }
}

/// One matching line.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Hit {
    pub kind: HitKind,
    pub job: Option<String>,
    /// The job's file, relative to its artifacts (a log line).
    pub file: Option<String>,
    /// The result (a note's line).
    pub result_id: Option<i64>,
    /// From 1.
    pub line: i64,
    pub item: Option<String>,
    /// When the line was stored (microseconds).
    pub at: i64,
    /// The whole line (at most 2000 characters).
    pub text: String,
    /// The line around its first match, matches apart.
    pub snippet: Vec<Fragment>,
    /// Where the line is, relative to the server: the artifact with
    /// `#L<line>`, or the result.
    pub link: String,
}

#[derive(Debug, thiserror::Error)]
pub enum SearchError {
    #[error(transparent)]
    Query(#[from] QueryError),
    #[error("{name}: `{value}` {why}")]
    Filter {
        name: &'static str,
        value: String,
        why: String,
    },
    /// The engine refused the query: a bad query, named.
    #[error("search query `{query}` cannot be searched for")]
    Refused {
        query: String,
        #[source]
        source: StoreError,
    },
    #[error("searching")]
    Store(#[source] StoreError),
}

impl HasExitStatus for SearchError {
    fn exit_status(&self) -> ExitStatus {
        match self {
            SearchError::Store(_) => ExitStatus::Infrastructure,
            _ => ExitStatus::BadInput,
        }
    }
}

fn time(name: &'static str, v: Option<&str>) -> Result<Option<i64>, SearchError> {
    v.map(|v| {
        parse_time(v).ok_or_else(|| SearchError::Filter {
            name,
            value: v.to_string(),
            why: "is not a date/time like 2024-01-31 or 2024-01-31T12:00:00Z".into(),
        })
    })
    .transpose()
}

/// The filter of `args`, checked.
fn filter(args: &SearchArgs) -> Result<SearchFilter, SearchError> {
    let outcome = args
        .outcome
        .as_deref()
        .map(|o| {
            o.parse::<Outcome>()
                .map(|o| o.as_str().to_string())
                .map_err(|_| SearchError::Filter {
                    name: "outcome",
                    value: o.to_string(),
                    why: format!(
                        "is not one of {}",
                        Outcome::ALL.map(|o| o.as_str()).join(", ")
                    ),
                })
        })
        .transpose()?;
    let job = args
        .job
        .as_deref()
        .map(|j| {
            uuid::Uuid::parse_str(j)
                .map(|u| u.hyphenated().to_string())
                .map_err(|_| SearchError::Filter {
                    name: "job",
                    value: j.to_string(),
                    why: "is not a job UUID".into(),
                })
        })
        .transpose()?;
    let blank = |v: &Option<String>| v.clone().filter(|s| !s.is_empty());
    Ok(SearchFilter {
        job,
        testcase: blank(&args.testcase),
        item: blank(&args.item),
        outcome,
        since: time("since", args.since.as_deref())?,
        until: time("until", args.until.as_deref())?,
    })
}

/// Where a row's line is (relative to the server).
fn link(row: &SearchRow) -> String {
    match (&row.result_id, &row.job, &row.file) {
        (Some(id), _, _) => format!("/api/v2.0/results/{id}"),
        (None, Some(job), Some(file)) => {
            let path = crate::results::record::encoded_path(file).unwrap_or_default();
            format!("/api/v1/jobs/{job}/artifacts/{path}#L{}", row.line)
        }
        _ => String::new(),
    }
}

impl App {
    /// The lines matching `args`, newest first, a page of them; true
    /// when there are more.
    pub async fn search(
        &self,
        args: &SearchArgs,
        page: Page,
    ) -> Result<(Vec<Hit>, bool), SearchError> {
        let query = Query::parse(&args.query)?;
        let filter = filter(args)?;
        let (rows, more) = self
            .store
            .search(&query, &filter, page)
            .await
            .map_err(|e| match e {
                e @ StoreError::Search { .. } => SearchError::Refused {
                    query: args.query.clone(),
                    source: e,
                },
                e => SearchError::Store(e),
            })?;
        let hits = rows
            .into_iter()
            .map(|row| Hit {
                kind: if row.result_id.is_some() {
                    HitKind::Note
                } else {
                    HitKind::Log
                },
                link: link(&row),
                snippet: snippet(&row.text, &query),
                job: row.job,
                file: row.file,
                result_id: row.result_id,
                line: row.line,
                item: row.item,
                at: row.at,
                text: row.text,
            })
            .collect();
        Ok((hits, more))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn filters_are_checked_with_their_names() {
        let bad = |a: SearchArgs| filter(&a).expect_err("bad").to_string();
        assert_eq!(
            bad(SearchArgs {
                since: Some("yesterday".into()),
                ..Default::default()
            }),
            "since: `yesterday` is not a date/time like 2024-01-31 or 2024-01-31T12:00:00Z"
        );
        assert!(bad(SearchArgs {
            outcome: Some("GREAT".into()),
            ..Default::default()
        })
        .starts_with("outcome: `GREAT` is not one of PASSED"));
        assert!(bad(SearchArgs {
            job: Some("../etc".into()),
            ..Default::default()
        })
        .contains("not a job UUID"));
        let f = filter(&SearchArgs {
            outcome: Some("failed".into()),
            until: Some("2024-01-31".into()),
            item: Some(String::new()),
            ..Default::default()
        })
        .expect("good");
        assert_eq!(f.outcome.as_deref(), Some("FAILED"));
        assert!(f.until.is_some() && f.item.is_none());
    }

    #[test]
    fn links_name_the_line() {
        let row = SearchRow {
            job: Some("j".into()),
            file: Some("artifacts/actions/01-a b.log".into()),
            result_id: None,
            line: 7,
            item: None,
            at: 0,
            text: String::new(),
        };
        assert_eq!(
            link(&row),
            "/api/v1/jobs/j/artifacts/artifacts/actions/01-a%20b.log#L7"
        );
        let note = SearchRow {
            result_id: Some(3),
            ..row
        };
        assert_eq!(link(&note), "/api/v2.0/results/3");
    }
}
