//! What the dashboard reads that the API's lists do not give: jobs by any
//! of their columns paged by a cursor (fast at any depth), a testcase's
//! outcomes and durations over time, and the queue's history and waiting
//! jobs. Every query is one statement shared by both backends.

use super::query::Binder;
use super::{bind_all, jobs::job_from_row, now_micros, row_get, Job, Store, StoreError};
use crate::job::JobState;

/// Which jobs a list shows (every field optional; all must hold).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct JobFilter {
    pub state: Option<JobState>,
    pub item: Option<String>,
    /// The formula's (task's) name.
    pub task: Option<String>,
    pub item_type: Option<String>,
    pub host: Option<String>,
    /// Created at or after (microseconds).
    pub since: Option<i64>,
    /// Created before (microseconds).
    pub until: Option<i64>,
}

impl JobFilter {
    /// `WHERE ...` over `jobs` (empty when nothing is filtered).
    pub(super) fn where_clause(&self, b: &mut Binder, extra: Option<String>) -> String {
        let mut conds = Vec::new();
        if let Some(s) = self.state {
            conds.push(format!("state = {}", b.text(&s.to_string())));
        }
        for (col, v) in [
            ("item", &self.item),
            ("formula", &self.task),
            ("item_type", &self.item_type),
            ("host", &self.host),
        ] {
            if let Some(v) = v {
                conds.push(format!("{col} = {}", b.text(v)));
            }
        }
        if let Some(t) = self.since {
            conds.push(format!("created_at >= {}", b.int(t)));
        }
        if let Some(t) = self.until {
            conds.push(format!("created_at < {}", b.int(t)));
        }
        conds.extend(extra);
        if conds.is_empty() {
            String::new()
        } else {
            format!("WHERE {}", conds.join(" AND "))
        }
    }
}

/// Where a page of jobs starts: after this job in the list's order
/// (newest first, then by uuid).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct JobCursor {
    pub created_at: i64,
    pub uuid: String,
}

impl JobCursor {
    /// `<created_at>.<uuid>`, as it appears in a link.
    pub fn encode(&self) -> String {
        format!("{}.{}", self.created_at, self.uuid)
    }

    /// A cursor from [`JobCursor::encode`], or `None` if it is not one.
    pub fn decode(s: &str) -> Option<JobCursor> {
        let (t, u) = s.split_once('.')?;
        let uuid = crate::job::canonical_id(u)?;
        Some(JobCursor {
            created_at: t.parse().ok()?,
            uuid,
        })
    }
}

/// One result of a testcase, with the duration of the job that made it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TestcaseRun {
    pub result_id: i64,
    pub outcome: String,
    pub submit_time: i64,
    pub job: Option<String>,
    /// The job's run, start to end (microseconds).
    pub duration: Option<i64>,
}

/// A queued job as the queue page explains it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Waiting {
    pub uuid: String,
    pub item: String,
    pub formula: String,
    pub priority: i64,
    pub vcpus: Option<i64>,
    pub memory_mib: Option<i64>,
    /// Not before this time (a retry's backoff), microseconds.
    pub not_before: i64,
    pub attempts: i64,
    pub last_error: Option<String>,
    pub created_at: i64,
}

/// When a job was queued and when it left the queue (started, or ended
/// without starting), for the queue's history.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct QueueSpan {
    pub queued_at: i64,
    pub left_at: Option<i64>,
    pub started: bool,
}

/// The most jobs in progress the hosts page lists.
pub const ACTIVE_JOBS: i64 = 5000;

/// The most results a testcase's page reads for its plots.
pub const TESTCASE_RUNS: i64 = 20_000;

impl Store {
    /// A page of jobs matching `filter`, newest first, starting after
    /// `after`; and the cursor of the next page if there is one. Each
    /// page is one index range read (migration 0011), however deep.
    pub async fn jobs_page(
        &self,
        filter: &JobFilter,
        after: Option<&JobCursor>,
        limit: i64,
    ) -> Result<(Vec<Job>, Option<JobCursor>), StoreError> {
        let mut b = Binder::default();
        let extra = after.map(|c| {
            let t = b.int(c.created_at);
            let t2 = b.int(c.created_at);
            let u = b.text(&c.uuid);
            // The bound first, alone: the index range starts at the
            // cursor. (Written as one OR, SQLite read both arms through the
            // index and sorted everything newer: a page cost its depth.)
            format!("created_at <= {t} AND (created_at < {t2} OR uuid > {u})")
        });
        let w = filter.where_clause(&mut b, extra);
        let lim = b.int(limit + 1);
        let sql = format!(
            "SELECT {} FROM jobs {w} ORDER BY created_at DESC, uuid LIMIT {lim}",
            super::jobs::JOB_COLUMNS
        );
        let rows = bind_all(sqlx::query(sqlx::AssertSqlSafe(sql)), &b.params)
            .fetch_all(&self.pool)
            .await?;
        let mut jobs = rows
            .iter()
            .map(job_from_row)
            .collect::<Result<Vec<_>, _>>()?;
        let more = jobs.len() as i64 > limit;
        jobs.truncate(usize::try_from(limit).unwrap_or(0));
        let next = more.then(|| jobs.last()).flatten().map(|j| JobCursor {
            created_at: j.created_at,
            uuid: j.uuid.clone(),
        });
        Ok((jobs, next))
    }

    /// Jobs in progress on some host (scheduled to reporting), newest
    /// first: what the hosts page shows running, in one query for every
    /// host (at most [`ACTIVE_JOBS`]).
    pub async fn active_jobs(&self) -> Result<Vec<Job>, StoreError> {
        let sql = format!(
            "SELECT {} FROM jobs WHERE state IN ('scheduled', 'booting', 'running', 'reporting') \
             AND host IS NOT NULL ORDER BY created_at DESC, uuid LIMIT {ACTIVE_JOBS}",
            super::jobs::JOB_COLUMNS
        );
        let rows = sqlx::query(sqlx::AssertSqlSafe(sql))
            .fetch_all(&self.pool)
            .await?;
        rows.iter().map(job_from_row).collect()
    }

    /// The newest [`TESTCASE_RUNS`] results of testcase `name` since
    /// `since`, oldest first, each with its job's duration.
    pub async fn testcase_runs(
        &self,
        name: &str,
        since: i64,
    ) -> Result<Vec<TestcaseRun>, StoreError> {
        let rows = sqlx::query(
            "SELECT r.id, r.outcome, r.submit_time, \
             (SELECT g.uuid FROM results_groups rg JOIN groups g ON g.id = rg.group_id \
              WHERE rg.result_id = r.id ORDER BY g.uuid LIMIT 1) AS job \
             FROM results r JOIN testcases t ON t.id = r.testcase_id \
             WHERE t.name = $1 AND r.submit_time >= $2 \
             ORDER BY r.submit_time DESC, r.id DESC LIMIT $3",
        )
        .bind(name.to_string())
        .bind(since)
        .bind(TESTCASE_RUNS)
        .fetch_all(&self.pool)
        .await?;
        let mut out = Vec::with_capacity(rows.len());
        for r in &rows {
            out.push(TestcaseRun {
                result_id: row_get(r, "id")?,
                outcome: row_get(r, "outcome")?,
                submit_time: row_get(r, "submit_time")?,
                job: row_get(r, "job")?,
                duration: None,
            });
        }
        // Durations: one query for the jobs of the page, by primary key.
        let jobs: Vec<String> = out.iter().filter_map(|r| r.job.clone()).collect();
        let mut durations = std::collections::HashMap::new();
        for chunk in jobs.chunks(500) {
            let mut b = Binder::default();
            let list = chunk
                .iter()
                .map(|u| b.text(u))
                .collect::<Vec<_>>()
                .join(", ");
            let sql = format!(
                "SELECT uuid, started_at, finished_at FROM jobs WHERE uuid IN ({list}) \
                 AND started_at IS NOT NULL AND finished_at IS NOT NULL"
            );
            for r in bind_all(sqlx::query(sqlx::AssertSqlSafe(sql)), &b.params)
                .fetch_all(&self.pool)
                .await?
            {
                let s: i64 = row_get(&r, "started_at")?;
                let f: i64 = row_get(&r, "finished_at")?;
                durations.insert(row_get::<String>(&r, "uuid")?, f - s);
            }
        }
        for r in &mut out {
            r.duration = r.job.as_ref().and_then(|j| durations.get(j).copied());
        }
        out.reverse();
        Ok(out)
    }

    /// The items testcase `name` ran on, most recent first, with the time
    /// of its last result there.
    pub async fn testcase_items(
        &self,
        name: &str,
        limit: i64,
    ) -> Result<Vec<(String, i64)>, StoreError> {
        let rows = sqlx::query(
            "SELECT d.value AS item, MAX(r.submit_time) AS last FROM results r \
             JOIN testcases t ON t.id = r.testcase_id \
             JOIN result_data d ON d.result_id = r.id AND d.key = 'item' \
             WHERE t.name = $1 GROUP BY d.value ORDER BY last DESC, item LIMIT $2",
        )
        .bind(name.to_string())
        .bind(limit)
        .fetch_all(&self.pool)
        .await?;
        rows.iter()
            .map(|r| Ok((row_get(r, "item")?, row_get(r, "last")?)))
            .collect()
    }

    /// Queued jobs in the order the scheduler takes them (priority, then
    /// age), at most `limit`, and how many are queued in all.
    pub async fn waiting_jobs(&self, limit: i64) -> Result<(Vec<Waiting>, i64), StoreError> {
        let rows = sqlx::query(
            "SELECT uuid, item, formula, priority, vcpus, memory_mib, not_before, attempts, \
             last_error, created_at FROM jobs WHERE queued = 1 AND state = 'queued' \
             ORDER BY priority DESC, created_at, uuid LIMIT $1",
        )
        .bind(limit)
        .fetch_all(&self.pool)
        .await?;
        let waiting = rows
            .iter()
            .map(|r| {
                Ok(Waiting {
                    uuid: row_get(r, "uuid")?,
                    item: row_get(r, "item")?,
                    formula: row_get(r, "formula")?,
                    priority: row_get(r, "priority")?,
                    vcpus: row_get(r, "vcpus")?,
                    memory_mib: row_get(r, "memory_mib")?,
                    not_before: row_get(r, "not_before")?,
                    attempts: row_get(r, "attempts")?,
                    last_error: row_get(r, "last_error")?,
                    created_at: row_get(r, "created_at")?,
                })
            })
            .collect::<Result<Vec<_>, StoreError>>()?;
        let total: i64 = row_get(
            &sqlx::query("SELECT COUNT(*) AS n FROM jobs WHERE queued = 1 AND state = 'queued'")
                .fetch_one(&self.pool)
                .await?,
            "n",
        )?;
        Ok((waiting, total))
    }

    /// The queue spans of jobs that were in the queue at some time since
    /// `since`: created since then, or created before and still queued or
    /// leaving it after.
    pub async fn queue_spans(&self, since: i64) -> Result<Vec<QueueSpan>, StoreError> {
        let rows = sqlx::query(
            "SELECT created_at, started_at, finished_at FROM jobs \
             WHERE created_at >= $1 OR state = 'queued' \
             OR COALESCE(started_at, finished_at, $2) >= $1",
        )
        .bind(since)
        .bind(now_micros())
        .fetch_all(&self.pool)
        .await?;
        rows.iter()
            .map(|r| {
                let started: Option<i64> = row_get(r, "started_at")?;
                let finished: Option<i64> = row_get(r, "finished_at")?;
                Ok(QueueSpan {
                    queued_at: row_get(r, "created_at")?,
                    left_at: started.or(finished),
                    started: started.is_some(),
                })
            })
            .collect()
    }

    /// The idle flags set (`idle`, or `idle:<host>`).
    pub async fn idle_flags(&self) -> Result<Vec<String>, StoreError> {
        let rows = sqlx::query(
            "SELECT name FROM host_flags WHERE name = 'idle' OR name LIKE 'idle:%' ORDER BY name",
        )
        .fetch_all(&self.pool)
        .await?;
        rows.iter().map(|r| row_get(r, "name")).collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Seven jobs about four items: pages by cursor cover each once, a
    /// filter narrows, the queue view counts them, idle flags are listed.
    async fn pages_filters_and_waiting(store: &Store) {
        let mut jobs = Vec::new();
        for i in 0..7 {
            let mut j = crate::store::lifecycle::tests::job();
            j.item = format!("pkg-{}", i % 4);
            jobs.push(j);
        }
        store
            .enqueue(
                "m-dash",
                "org.fedoraproject.prod.buildsys.build.state.change",
                &jobs,
            )
            .await
            .expect("enqueue");
        let mut seen = Vec::new();
        let mut after = None;
        let mut pages = 0;
        loop {
            let (page, next) = store
                .jobs_page(&JobFilter::default(), after.as_ref(), 3)
                .await
                .expect("page");
            pages += 1;
            seen.extend(page.iter().map(|j| j.uuid.clone()));
            assert!(page.iter().all(|j| j.topic.as_deref()
                == Some("org.fedoraproject.prod.buildsys.build.state.change")));
            match next {
                Some(n) => after = Some(n),
                None => break,
            }
        }
        assert_eq!(pages, 3);
        let mut unique = seen.clone();
        unique.sort();
        unique.dedup();
        assert_eq!((seen.len(), unique.len()), (7, 7));
        let one = JobFilter {
            item: Some("pkg-1".into()),
            state: Some(JobState::Queued),
            ..JobFilter::default()
        };
        let (only, next) = store.jobs_page(&one, None, 50).await.expect("filtered");
        assert_eq!(only.len(), 2);
        assert!(next.is_none());
        assert!(only.iter().all(|j| j.item == "pkg-1"));
        let none = JobFilter {
            host: Some("nowhere".into()),
            ..JobFilter::default()
        };
        assert!(store
            .jobs_page(&none, None, 50)
            .await
            .expect("none")
            .0
            .is_empty());
        let (w, total) = store.waiting_jobs(5).await.expect("waiting");
        assert_eq!((w.len(), total), (5, 7));
        let spans = store.queue_spans(0).await.expect("spans");
        assert_eq!(spans.len(), 7);
        assert!(spans.iter().all(|s| s.left_at.is_none() && !s.started));
        // A job a runner reports running on hv1 is what runs there; the
        // queued ones are nowhere yet.
        let t = |state, at| crate::store::TransitionRow { state, at };
        let report = crate::store::JobUpdate {
            state: JobState::Running,
            item: "pkg-9".into(),
            item_type: "koji_build".into(),
            arch: "x86_64".into(),
            formula: "hello".into(),
            host: Some("hv1".into()),
            exit_status: None,
            transitions: vec![
                t(JobState::Queued, 1),
                t(JobState::Scheduled, 2),
                t(JobState::Running, 3),
            ],
        };
        let running = "0f0e0d0c-0000-4000-8000-000000000009";
        store.put_job(running, &report).await.expect("report");
        let active = store.active_jobs().await.expect("active");
        let hosts: Vec<(&str, Option<&str>)> = active
            .iter()
            .map(|j| (j.uuid.as_str(), j.host.as_deref()))
            .collect();
        assert_eq!(hosts, [(running, Some("hv1"))]);
        store.set_flag("idle:hv2", Some("1")).await.expect("flag");
        store.set_flag("other", Some("1")).await.expect("flag");
        assert_eq!(store.idle_flags().await.expect("flags"), ["idle:hv2"]);
    }

    #[tokio::test]
    async fn pages_filters_and_waiting_sqlite() {
        let dir = tempfile::tempdir().expect("tmp");
        let store = Store::open(&crate::store::default_url(dir.path()))
            .await
            .expect("open");
        pages_filters_and_waiting(&store).await;
    }

    #[tokio::test]
    async fn pages_filters_and_waiting_postgres() {
        let (s, name) = crate::store::queue::tests::pg_store().await;
        pages_filters_and_waiting(&s).await;
        crate::store::queue::tests::pg_drop(s, &name).await;
    }

    #[test]
    fn cursors_round_trip_and_refuse_garbage() {
        let c = JobCursor {
            created_at: 1_700_000_000_000_000,
            uuid: "3f2b1c9e-0000-4000-8000-000000000001".into(),
        };
        assert_eq!(JobCursor::decode(&c.encode()), Some(c));
        for bad in [
            "",
            "12",
            "x.3f2b1c9e-0000-4000-8000-000000000001",
            "12.not-a-uuid",
        ] {
            assert_eq!(JobCursor::decode(bad), None, "{bad}");
        }
    }
}
