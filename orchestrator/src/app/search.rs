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
    #[error("cannot read {path} to index it")]
    Read {
        path: String,
        #[source]
        source: std::io::Error,
    },
    #[error("indexing {path}")]
    Index {
        path: String,
        #[source]
        source: StoreError,
    },
}

/// What [`App::reindex`] did.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Reindexed {
    /// Jobs with artifacts in this data folder.
    pub jobs: usize,
    /// Their logs and TAP files indexed.
    pub files: usize,
}

impl HasExitStatus for SearchError {
    fn exit_status(&self) -> ExitStatus {
        match self {
            SearchError::Query(_) | SearchError::Filter { .. } | SearchError::Refused { .. } => {
                ExitStatus::BadInput
            }
            SearchError::Store(_) | SearchError::Read { .. } | SearchError::Index { .. } => {
                ExitStatus::Infrastructure
            }
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

    /// Indexes again the logs and TAP files of every job whose artifacts
    /// are in this data folder (`<data dir>/artifacts/<job>/`), as the
    /// store records them: what was stored before the index existed
    /// becomes searchable. Files reached through a symbolic link are
    /// skipped, as the API never serves them.
    pub async fn reindex(&self) -> Result<Reindexed, SearchError> {
        let root = self.settings.artifacts_dir();
        let mut done = Reindexed::default();
        let entries = match std::fs::read_dir(&root) {
            Ok(e) => e,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(done),
            Err(source) => {
                return Err(SearchError::Read {
                    path: root.display().to_string(),
                    source,
                })
            }
        };
        let mut jobs: Vec<String> = entries
            .flatten()
            .filter_map(|e| e.file_name().to_str().map(str::to_string))
            .filter(|n| uuid::Uuid::parse_str(n).is_ok())
            .collect();
        jobs.sort();
        for uuid in jobs {
            let artifacts = self
                .store
                .list_artifacts(&uuid)
                .await
                .map_err(SearchError::Store)?;
            let dir = root.join(&uuid);
            let mut any = false;
            for a in artifacts
                .iter()
                .filter(|a| crate::search::indexed_file(&a.path))
            {
                if !crate::runner::published::publishes(&dir, &a.path) {
                    continue;
                }
                let path = dir.join(&a.path);
                let bytes = read_start(&path).map_err(|source| SearchError::Read {
                    path: path.display().to_string(),
                    source,
                })?;
                self.store
                    .index_job_file(&uuid, &a.path, a.created_at, &bytes)
                    .await
                    .map_err(|source| SearchError::Index {
                        path: path.display().to_string(),
                        source,
                    })?;
                done.files += 1;
                any = true;
            }
            done.jobs += usize::from(any);
        }
        Ok(done)
    }
}

/// The first [`crate::search::MAX_FILE_BYTES`] of a file.
fn read_start(path: &std::path::Path) -> std::io::Result<Vec<u8>> {
    use std::io::Read;
    let mut out = Vec::new();
    std::fs::File::open(path)?
        .take(crate::search::MAX_FILE_BYTES as u64)
        .read_to_end(&mut out)?;
    Ok(out)
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

    /// Files stored before the index existed (here: recorded without
    /// their content) become searchable; a link in a job's folder is not
    /// followed.
    #[tokio::test]
    async fn reindex_indexes_stored_logs() {
        use crate::store::{Artifact, JobUpdate};
        let dir = tempfile::tempdir().expect("tempdir");
        let settings = crate::settings::Settings::new(dir.path().to_path_buf());
        let app = App::open(&settings).await.expect("open");
        let uuid = "6b3c9c51-0d7e-4a57-9b51-3a0e7e3b7c11";
        let job = JobUpdate {
            state: crate::job::JobState::Queued,
            item: "x-1-1".into(),
            item_type: "koji_build".into(),
            arch: "x86_64".into(),
            formula: "t".into(),
            host: None,
            exit_status: None,
            transitions: vec![],
        };
        app.store().put_job(uuid, &job).await.expect("job");
        let folder = dir.path().join("artifacts").join(uuid);
        std::fs::create_dir_all(folder.join("artifacts/actions")).expect("folder");
        std::fs::write(folder.join("runner.log"), "one\nquokka two\n").expect("log");
        std::fs::write(dir.path().join("secret"), "quokka secret\n").expect("secret");
        std::os::unix::fs::symlink(
            dir.path().join("secret"),
            folder.join("artifacts/actions/01-x.log"),
        )
        .expect("link");
        for path in ["runner.log", "artifacts/actions/01-x.log"] {
            let a = Artifact {
                path: path.into(),
                size: 1,
                sha256: String::new(),
                created_at: 5,
            };
            app.store()
                .put_artifact(uuid, &a, None)
                .await
                .expect("artifact");
        }
        let find = || async {
            let args = SearchArgs {
                query: "quokka".into(),
                ..Default::default()
            };
            app.search(&args, Page { page: 0, limit: 10 })
                .await
                .expect("search")
                .0
        };
        assert!(find().await.is_empty());
        let done = app.reindex().await.expect("reindex");
        assert_eq!(done, Reindexed { jobs: 1, files: 1 });
        let hits = find().await;
        assert_eq!(hits.len(), 1, "{hits:?}");
        assert_eq!(
            (hits[0].file.as_deref(), hits[0].line, hits[0].at),
            (Some("runner.log"), 2, 5)
        );
        // Again: the same lines, not twice.
        app.reindex().await.expect("again");
        assert_eq!(find().await.len(), 1);
        app.close().await;
    }

    #[test]
    fn links_name_the_line() {
        let row = SearchRow {
            id: 1,
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
            id: 2,
            result_id: Some(3),
            ..row
        };
        assert_eq!(link(&note), "/api/v2.0/results/3");
    }
}
