//! The search index (migration 0009): one row per line of a job's logs and
//! task output and of each result's note, written in the transaction that
//! stores the file's artifact record or the result, and the query over it,
//! FTS5 `MATCH` on SQLite, `tsvector @@ tsquery` on PostgreSQL.
//!
//! A parsed [`Query`] holds words of letters and digits only; it is
//! rendered into each engine's syntax with every word a bound value
//! (SQLite: the whole `MATCH` text is one; PostgreSQL: each phrase is the
//! argument of `phraseto_tsquery`), never pasted into the statement.

use sqlx::any::AnyRow;

use super::query::Binder;
use super::{bind_all, row_get, Backend, NewResult, Page, Store, StoreError, WriteTx};
use crate::search::{self, Query, Term};

/// Rows per INSERT (8 values each: well under SQLite's 32766).
const ROWS_PER_INSERT: usize = 500;

/// What a search is narrowed to (all optional, all must hold).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct SearchFilter {
    /// Lines of this job (a result's: its first group).
    pub job: Option<String>,
    /// Lines of results of this testcase, and lines of jobs with one.
    pub testcase: Option<String>,
    /// Lines about this item.
    pub item: Option<String>,
    /// Lines of results with this outcome, and lines of jobs with one
    /// (of `testcase`, when given).
    pub outcome: Option<String>,
    /// Stored at or after (microseconds).
    pub since: Option<i64>,
    /// Stored at or before (microseconds).
    pub until: Option<i64>,
}

/// One matching line.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SearchRow {
    /// The line's place in the index: larger is stored later.
    pub id: i64,
    pub job: Option<String>,
    /// The job's file (relative to its artifacts), for a log line.
    pub file: Option<String>,
    /// The result, for a line of its note.
    pub result_id: Option<i64>,
    /// From 1.
    pub line: i64,
    pub item: Option<String>,
    /// When the line was stored (microseconds).
    pub at: i64,
    pub text: String,
}

/// A line to index.
struct NewLine<'a> {
    job: Option<&'a str>,
    file: Option<&'a str>,
    result_id: Option<i64>,
    line: i64,
    item: Option<&'a str>,
    at: i64,
    text: &'a str,
}

async fn insert_lines(
    tx: &mut WriteTx,
    backend: Backend,
    lines: &[NewLine<'_>],
) -> Result<(), StoreError> {
    for part in lines.chunks(ROWS_PER_INSERT) {
        let mut b = Binder::default();
        let values = part
            .iter()
            .map(|l| {
                let result_id = match l.result_id {
                    Some(id) => b.int(id),
                    None => "NULL".into(),
                };
                let mut row = vec![
                    b.opt_text(l.job),
                    b.opt_text(l.file),
                    result_id,
                    b.int(l.line),
                    b.opt_text(l.item),
                    b.int(l.at),
                    b.text(l.text),
                ];
                if backend == Backend::Postgres {
                    row.push(format!(
                        "to_tsvector('simple', {})",
                        b.text(&search::query::normalized(l.text))
                    ));
                }
                format!("({})", row.join(", "))
            })
            .collect::<Vec<_>>()
            .join(", ");
        let words = if backend == Backend::Postgres {
            ", words"
        } else {
            ""
        };
        let sql = format!(
            "INSERT INTO search_lines (job_uuid, file, result_id, line, item, at, body{words}) \
             VALUES {values}"
        );
        bind_all(sqlx::query(sqlx::AssertSqlSafe(sql)), &b.params)
            .execute(&mut *tx.tx)
            .await?;
    }
    Ok(())
}

/// (Re)indexes the lines of job `uuid`'s file `file` (an artifact path),
/// in the caller's transaction: the file's earlier lines go, so storing
/// it again replaces them.
pub(super) async fn index_file(
    tx: &mut WriteTx,
    backend: Backend,
    uuid: &str,
    file: &str,
    at: i64,
    bytes: &[u8],
) -> Result<(), StoreError> {
    sqlx::query("DELETE FROM search_lines WHERE job_uuid = $1 AND file = $2 AND result_id IS NULL")
        .bind(uuid.to_string())
        .bind(file.to_string())
        .execute(&mut *tx.tx)
        .await?;
    let item: Option<String> = sqlx::query("SELECT item FROM jobs WHERE uuid = $1")
        .bind(uuid.to_string())
        .fetch_optional(&mut *tx.tx)
        .await?
        .map(|r| row_get(&r, "item"))
        .transpose()?;
    let lines = search::lines(bytes);
    let rows: Vec<NewLine> = lines
        .iter()
        .map(|(n, text)| NewLine {
            job: Some(uuid),
            file: Some(file),
            result_id: None,
            line: *n,
            item: item.as_deref(),
            at,
            text,
        })
        .collect();
    insert_lines(tx, backend, &rows).await
}

/// Indexes the notes of results just stored (`(id, result)`), in the
/// caller's transaction.
pub(super) async fn index_notes(
    tx: &mut WriteTx,
    backend: Backend,
    results: &[(i64, &NewResult)],
) -> Result<(), StoreError> {
    // Each note's lines, numbered, beside its result.
    let notes: Vec<_> = results
        .iter()
        .filter_map(|&(id, r)| {
            let note = r.note.as_deref().filter(|n| !n.trim().is_empty())?;
            Some((id, r, search::lines(note.as_bytes())))
        })
        .collect();
    let mut lines = Vec::new();
    for (id, r, note) in &notes {
        let item = r
            .data
            .iter()
            .find(|(k, _)| k == "item")
            .map(|(_, v)| v.as_str());
        for (n, text) in note {
            lines.push(NewLine {
                job: r.groups.first().map(|g| g.uuid.as_str()),
                file: None,
                result_id: Some(*id),
                line: *n,
                item,
                at: r.submit_time,
                text,
            });
        }
    }
    insert_lines(tx, backend, &lines).await
}

/// FTS5's `MATCH` text of a query: each term a quoted phrase (its words
/// hold letters and digits only).
fn fts5_match(q: &Query) -> String {
    let term = |t: &Term| {
        let phrase = t.words.join(" ").replace('"', "\"\"");
        format!("\"{phrase}\"{}", if t.prefix { "*" } else { "" })
    };
    let any = |terms: &[Term]| {
        format!(
            "({})",
            terms.iter().map(term).collect::<Vec<_>>().join(" OR ")
        )
    };
    let all = q
        .all
        .iter()
        .map(|c| any(c))
        .collect::<Vec<_>>()
        .join(" AND ");
    if q.none.is_empty() {
        all
    } else {
        format!("({all}) NOT {}", any(&q.none))
    }
}

/// PostgreSQL's `tsquery` expression of a query, each term's words bound.
fn pg_tsquery(q: &Query, b: &mut Binder) -> String {
    let mut term = |t: &Term| {
        if t.prefix {
            // Letters and digits only: nothing to_tsquery could parse as
            // an operator.
            let text = format!("{}:*", t.words.join(" <-> "));
            format!("to_tsquery('simple', {})", b.text(&text))
        } else {
            format!("phraseto_tsquery('simple', {})", b.text(&t.words.join(" ")))
        }
    };
    let mut any = |terms: &[Term]| {
        format!(
            "({})",
            terms.iter().map(&mut term).collect::<Vec<_>>().join(" || ")
        )
    };
    let mut parts: Vec<String> = q.all.iter().map(|c| any(c)).collect();
    if !q.none.is_empty() {
        parts.push(format!("!!{}", any(&q.none)));
    }
    parts.join(" && ")
}

/// Whether the engine refused the query itself (FTS5's syntax errors and
/// unterminated strings;
/// PostgreSQL's syntax errors, SQLSTATE 42601, which `tsquery` input
/// raises), not the database failing. [`fts5_match`] and [`pg_tsquery`]
/// never make such a query; should one slip through, it is the query's
/// fault (a 400), not the service's.
fn refused_query(e: &sqlx::Error) -> bool {
    let sqlx::Error::Database(db) = e else {
        return false;
    };
    let message = db.message();
    message.starts_with("fts5:")
        || message == "unterminated string"
        || message.contains("malformed MATCH")
        || db.code().as_deref() == Some("42601")
}

fn row_of(r: &AnyRow) -> Result<SearchRow, StoreError> {
    Ok(SearchRow {
        id: row_get(r, "id")?,
        job: row_get(r, "job_uuid")?,
        file: row_get(r, "file")?,
        result_id: row_get(r, "result_id")?,
        line: row_get(r, "line")?,
        item: row_get(r, "item")?,
        at: row_get(r, "at")?,
        text: row_get(r, "body")?,
    })
}

impl Store {
    /// (Re)indexes job `uuid`'s file `file`, stored at `at` (`ferrotron
    /// store reindex`, for files stored before the index existed).
    pub async fn index_job_file(
        &self,
        uuid: &str,
        file: &str,
        at: i64,
        bytes: &[u8],
    ) -> Result<(), StoreError> {
        let mut tx = self.begin().await?;
        index_file(&mut tx, self.backend, uuid, file, at, bytes).await?;
        tx.commit().await
    }

    /// The lines matching `query` and `filter`, newest stored first, a page
    /// of them (in the page, newest file first and a file's lines in
    /// order); true when there are more.
    pub async fn search(
        &self,
        query: &Query,
        filter: &SearchFilter,
        page: Page,
    ) -> Result<(Vec<SearchRow>, bool), StoreError> {
        let mut b = Binder::default();
        // Newest stored first is the order of ids: the engine reads its
        // matches from the newest and stops at the page's end, instead of
        // sorting every match (a word in one line of 20, over 10 million
        // lines, took seconds; docs/performance.md).
        // About one job or item (a few thousand lines at most), its lines
        // are read newest first and each checked against the query (SQLite:
        // CROSS JOIN keeps that order of the loops).
        let narrow = filter.job.is_some() || filter.item.is_some();
        let (from, order) = match (self.backend, narrow) {
            (Backend::Sqlite, false) => (
                "search_fts JOIN search_lines s ON s.id = search_fts.rowid",
                "search_fts.rowid DESC",
            ),
            (Backend::Sqlite, true) => (
                "search_lines s CROSS JOIN search_fts ON search_fts.rowid = s.id",
                "s.id DESC",
            ),
            (Backend::Postgres, _) => ("search_lines s", "s.id DESC"),
        };
        let mut conds = vec![match self.backend {
            Backend::Sqlite => format!("search_fts MATCH {}", b.text(&fts5_match(query))),
            Backend::Postgres => format!("s.words @@ ({})", pg_tsquery(query, &mut b)),
        }];
        if let Some(job) = &filter.job {
            conds.push(format!("s.job_uuid = {}", b.text(job)));
        }
        if let Some(item) = &filter.item {
            conds.push(format!("s.item = {}", b.text(item)));
        }
        if let Some(t) = filter.since {
            conds.push(format!("s.at >= {}", b.int(t)));
        }
        if let Some(t) = filter.until {
            conds.push(format!("s.at <= {}", b.int(t)));
        }
        if filter.testcase.is_some() || filter.outcome.is_some() {
            let mut of = Vec::new();
            if let Some(tc) = &filter.testcase {
                of.push(format!("t.name = {}", b.text(tc)));
            }
            if let Some(o) = &filter.outcome {
                of.push(format!("r.outcome = {}", b.text(o)));
            }
            conds.push(format!(
                "EXISTS (SELECT 1 FROM results r JOIN testcases t ON t.id = r.testcase_id \
                 WHERE (r.id = s.result_id OR (s.result_id IS NULL AND r.id IN \
                   (SELECT rg.result_id FROM results_groups rg JOIN groups g ON g.id = rg.group_id \
                    WHERE g.uuid = s.job_uuid))) AND {})",
                of.join(" AND ")
            ));
        }
        let limit = b.int(page.limit + 1);
        let offset = b.int(page.page.saturating_mul(page.limit));
        let sql = format!(
            "SELECT s.id, s.job_uuid, s.file, s.result_id, s.line, s.item, s.at, s.body \
             FROM {from} WHERE {} ORDER BY {order} LIMIT {limit} OFFSET {offset}",
            conds.join(" AND ")
        );
        let rows = bind_all(sqlx::query(sqlx::AssertSqlSafe(sql)), &b.params)
            .fetch_all(&self.pool)
            .await
            .map_err(|source| {
                if refused_query(&source) {
                    StoreError::Search {
                        query: fts5_match(query),
                        source,
                    }
                } else {
                    StoreError::Query(source)
                }
            })?;
        let out = rows.iter().map(row_of).collect::<Result<Vec<_>, _>>()?;
        let (mut out, more) = page.cut(out);
        // Within the page, a file's lines read in order.
        out.sort_by(|a, b| b.at.cmp(&a.at).then(a.id.cmp(&b.id)));
        Ok((out, more))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::store::queue::tests::{pg_drop, pg_store};
    use crate::store::{Artifact, JobUpdate, NewGroup, Testcase};

    async fn sqlite(dir: &tempfile::TempDir) -> Store {
        let url = format!("sqlite://{}?mode=rwc", dir.path().join("s.db").display());
        Store::open(&url).await.expect("open")
    }

    const JOB: &str = "6b3c9c51-0d7e-4a57-9b51-3a0e7e3b7c11";
    const OTHER: &str = "0f4e2d6a-5b1c-4c9e-8a7d-2e1f3c4b5a69";

    fn q(s: &str) -> Query {
        Query::parse(s).expect("valid query")
    }

    fn page() -> Page {
        Page {
            page: 0,
            limit: 100,
        }
    }

    async fn job(s: &Store, uuid: &str, item: &str) {
        let u = JobUpdate {
            state: crate::job::JobState::Queued,
            item: item.into(),
            item_type: "koji_build".into(),
            arch: "x86_64".into(),
            formula: "hello".into(),
            host: None,
            exit_status: None,
            transitions: vec![],
        };
        s.put_job(uuid, &u).await.expect("job");
    }

    async fn file(s: &Store, uuid: &str, path: &str, at: i64, text: &str) {
        let a = Artifact {
            path: path.into(),
            size: text.len() as i64,
            sha256: "0".repeat(64),
            created_at: at,
        };
        s.put_artifact(uuid, &a, Some(text.as_bytes()))
            .await
            .expect("artifact");
    }

    fn result(job: &str, tc: &str, outcome: &str, item: &str, note: &str, at: i64) -> NewResult {
        NewResult {
            testcase: Testcase {
                name: tc.into(),
                ref_url: None,
            },
            outcome: outcome.into(),
            note: Some(note.into()),
            ref_url: None,
            submit_time: at,
            groups: vec![NewGroup {
                uuid: job.into(),
                description: None,
                ref_url: None,
            }],
            data: vec![("item".into(), item.into())],
        }
    }

    fn hits(rows: &[SearchRow]) -> Vec<(Option<&str>, Option<&str>, i64)> {
        rows.iter()
            .map(|r| (r.job.as_deref(), r.file.as_deref(), r.line))
            .collect()
    }

    async fn finds_lines_of_files_and_notes(s: &Store) {
        job(s, JOB, "hello-1.0-1.fc40").await;
        job(s, OTHER, "other-2.0-1.fc40").await;
        file(
            s,
            JOB,
            "runner.log",
            10,
            "ferrotron: [1/3] prepare\n\nthe zanzibar word here\nlast line\n",
        )
        .await;
        file(
            s,
            JOB,
            "artifacts/actions/01-run.log",
            10,
            "Zanzibar-Quux printed\nno\n",
        )
        .await;
        // Not indexed: not a log.
        file(s, JOB, "job.json", 10, "{\"zanzibar\": 1}").await;
        file(s, OTHER, "runner.log", 20, "other zanzibar\n").await;
        s.create_result(&result(
            JOB,
            "dist.hello",
            "FAILED",
            "hello-1.0-1.fc40",
            "first line\nzanzibar in a note",
            30,
        ))
        .await
        .expect("result");
        s.create_results_bulk(&[result(
            OTHER,
            "dist.other",
            "PASSED",
            "other-2.0-1.fc40",
            "bulk zanzibar note",
            40,
        )])
        .await
        .expect("bulk");

        let (rows, more) = s
            .search(&q("zanzibar"), &SearchFilter::default(), page())
            .await
            .expect("search");
        assert!(!more);
        assert_eq!(
            hits(&rows),
            vec![
                (Some(OTHER), None, 1),
                (Some(JOB), None, 2),
                (Some(OTHER), Some("runner.log"), 1),
                (Some(JOB), Some("runner.log"), 3),
                (Some(JOB), Some("artifacts/actions/01-run.log"), 1),
            ]
        );
        assert_eq!(rows[3].text, "the zanzibar word here");
        assert_eq!(rows[3].item.as_deref(), Some("hello-1.0-1.fc40"));
        assert!(rows[1].result_id.is_some());

        // Phrases, prefixes, OR, exclusion.
        let found = |query: &'static str, f: SearchFilter| async move {
            hits(&s.search(&q(query), &f, page()).await.expect(query).0)
                .into_iter()
                .map(|(j, f, l)| (j.map(str::to_string), f.map(str::to_string), l))
                .collect::<Vec<_>>()
        };
        let one =
            |j: &str, f: Option<&str>, l| vec![(Some(j.to_string()), f.map(str::to_string), l)];
        assert_eq!(
            found("\"zanzibar quux\"", SearchFilter::default()).await,
            one(JOB, Some("artifacts/actions/01-run.log"), 1)
        );
        assert_eq!(
            found("zanzi* -other -note -quux", SearchFilter::default()).await,
            one(JOB, Some("runner.log"), 3)
        );
        assert_eq!(
            found("prepare OR printed", SearchFilter::default())
                .await
                .len(),
            2
        );
        assert!(found("nowhere", SearchFilter::default()).await.is_empty());

        // Filters: job, item, time, testcase and outcome (a job's logs go
        // with its results).
        let by = |f: SearchFilter| found("zanzibar", f);
        assert_eq!(
            by(SearchFilter {
                item: Some("other-2.0-1.fc40".into()),
                ..Default::default()
            })
            .await
            .len(),
            2
        );
        assert_eq!(
            by(SearchFilter {
                job: Some(JOB.into()),
                since: Some(10),
                until: Some(29),
                ..Default::default()
            })
            .await
            .len(),
            2
        );
        let failed = by(SearchFilter {
            outcome: Some("FAILED".into()),
            ..Default::default()
        })
        .await;
        assert_eq!(failed.len(), 3, "{failed:?}");
        assert!(failed.iter().all(|(j, _, _)| j.as_deref() == Some(JOB)));
        assert_eq!(
            by(SearchFilter {
                testcase: Some("dist.other".into()),
                outcome: Some("PASSED".into()),
                ..Default::default()
            })
            .await
            .len(),
            2
        );

        // Storing a file again replaces its lines.
        file(
            s,
            JOB,
            "runner.log",
            50,
            "zanzibar moved\n\n\nzanzibar twice\n",
        )
        .await;
        let again = by(SearchFilter {
            job: Some(JOB.into()),
            ..Default::default()
        })
        .await;
        assert_eq!(
            again,
            vec![
                (Some(JOB.to_string()), Some("runner.log".to_string()), 1),
                (Some(JOB.to_string()), Some("runner.log".to_string()), 4),
                (Some(JOB.to_string()), None, 2),
                (
                    Some(JOB.to_string()),
                    Some("artifacts/actions/01-run.log".to_string()),
                    1
                ),
            ]
        );

        // Pages.
        let (first, more) = s
            .search(
                &q("zanzibar"),
                &SearchFilter::default(),
                Page { page: 0, limit: 2 },
            )
            .await
            .expect("page");
        assert!(more);
        assert_eq!(first.len(), 2);

        // Hostile text is only words: no error, no injection.
        for hostile in [
            "'; DROP TABLE search_lines; --",
            "zanzibar\" OR 1=1 --\"",
            "NEAR(zanzibar quux) body:zanzibar ^zanzibar",
            "zanzibar AND NOT OR\"\"",
            "\\\" ' ` $1 %s {} :* <-> & | !",
        ] {
            if let Ok(query) = Query::parse(hostile) {
                s.search(&query, &SearchFilter::default(), page())
                    .await
                    .unwrap_or_else(|e| panic!("{hostile}: {e}"));
            }
        }
        assert_eq!(found("zanzibar", SearchFilter::default()).await.len(), 6);
    }

    #[tokio::test]
    async fn finds_lines_of_files_and_notes_sqlite() {
        let dir = tempfile::tempdir().expect("tempdir");
        finds_lines_of_files_and_notes(&sqlite(&dir).await).await;
    }

    #[tokio::test]
    async fn finds_lines_of_files_and_notes_postgres() {
        let (s, name) = pg_store().await;
        finds_lines_of_files_and_notes(&s).await;
        pg_drop(s, &name).await;
    }

    /// What the engine says of a malformed query is told apart from the
    /// database failing.
    async fn engine_syntax_errors_are_the_querys(s: &Store, sql: &str) {
        let e = sqlx::query(sqlx::AssertSqlSafe(sql.to_string()))
            .execute(&s.pool)
            .await
            .expect_err("malformed");
        assert!(refused_query(&e), "{e}");
        let e = sqlx::query("SELECT * FROM no_such_table")
            .execute(&s.pool)
            .await
            .expect_err("no table");
        assert!(!refused_query(&e), "{e}");
    }

    #[tokio::test]
    async fn engine_syntax_errors_are_the_querys_sqlite() {
        let dir = tempfile::tempdir().expect("tempdir");
        let s = sqlite(&dir).await;
        engine_syntax_errors_are_the_querys(
            &s,
            "SELECT rowid FROM search_fts WHERE search_fts MATCH '\"unbalanced'",
        )
        .await;
    }

    #[tokio::test]
    async fn engine_syntax_errors_are_the_querys_postgres() {
        let (s, name) = pg_store().await;
        engine_syntax_errors_are_the_querys(&s, "SELECT to_tsquery('simple', 'a & ')").await;
        pg_drop(s, &name).await;
    }

    #[test]
    fn queries_render_as_quoted_words() {
        let query = q("a \"b c\" d* OR e -f");
        assert_eq!(
            fts5_match(&query),
            "((\"a\") AND (\"b c\") AND (\"d\"* OR \"e\")) NOT (\"f\")"
        );
        let mut b = Binder::default();
        assert_eq!(
            pg_tsquery(&query, &mut b),
            "(phraseto_tsquery('simple', $1)) && (phraseto_tsquery('simple', $2)) && \
             (to_tsquery('simple', $3) || phraseto_tsquery('simple', $4)) && \
             !!(phraseto_tsquery('simple', $5))"
        );
    }
}
