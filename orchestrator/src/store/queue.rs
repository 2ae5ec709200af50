//! The durable job queue: jobs enqueued from a message in one transaction
//! (deduplicated on the message id), claimed by workers under a lease that
//! expires, so several workers on several hosts can share one database and
//! a worker that dies gives its jobs back.
//!
//! Claiming is a guarded UPDATE (`WHERE state = 'queued'`): of two workers
//! racing for one job, exactly one changes a row; the other sees 0 rows
//! changed and picks again. That works the same on SQLite and PostgreSQL
//! without `SELECT ... FOR UPDATE SKIP LOCKED`. Which job a claim picks is
//! [`pick`](super::pick)'s business.

use sqlx::any::AnyRow;

use super::jobs::{insert_transition, TransitionRow};
use super::lifecycle::transition_in;
use super::pick::{note_new_classes_in, pick_in};
use super::reservations::RESERVATION_TASK;
use super::{now_micros, row_get, Store, StoreError, WriteTx};
use crate::job::{Actor, JobState, Move, IN_PROGRESS_SQL};
use crate::placement::{Free, Needs};

/// How many times a claim picks again after losing its pick to another
/// worker before it gives up (this time round).
const CLAIM_ROUNDS: usize = 8;

/// One job to put in the queue.
#[derive(Debug, Clone)]
pub struct NewQueuedJob {
    pub item: String,
    pub item_type: String,
    pub arch: String,
    pub task: String,
    pub repo: String,
    pub git_ref: String,
    /// The task's folder inside `repo` (`.` for the root).
    pub path: String,
    pub priority: i64,
    pub image: Option<String>,
    pub max_attempts: i64,
    /// What the job's VM gets (its image's manifest), when known at
    /// enqueue; `None`: the claiming worker's default.
    pub needs: Option<Needs>,
    /// Seconds the whole job (boot + task + collect) may take; `None`: the
    /// service's default.
    pub timeout_secs: Option<i64>,
}

/// What enqueueing a message did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Enqueued {
    pub jobs: Vec<String>,
    /// The message id was seen before: `jobs` are the existing ones.
    pub duplicate: bool,
}

/// A job a worker holds.
#[derive(Debug, Clone)]
pub struct ClaimedJob {
    pub uuid: String,
    pub item: String,
    pub item_type: String,
    pub arch: String,
    pub task: String,
    pub repo: String,
    pub git_ref: String,
    pub path: String,
    pub image: Option<String>,
    pub attempts: i64,
    pub max_attempts: i64,
    pub timeout_secs: Option<i64>,
    /// When the job was created (microseconds since the epoch).
    pub created_at: i64,
}

/// A size as a database integer (sizes past `i64::MAX` mean "no limit").
pub(super) fn to_i64(n: u64) -> i64 {
    i64::try_from(n).unwrap_or(i64::MAX)
}

/// A queue column that is NULL for jobs that did not come through the
/// queue (`run --report`): empty then.
fn text_or_empty(r: &AnyRow, col: &str) -> Result<String, StoreError> {
    Ok(row_get::<Option<String>>(r, col)?.unwrap_or_default())
}

fn claimed_from_row(r: &AnyRow) -> Result<ClaimedJob, StoreError> {
    Ok(ClaimedJob {
        uuid: row_get(r, "uuid")?,
        item: row_get(r, "item")?,
        item_type: row_get(r, "item_type")?,
        arch: row_get(r, "arch")?,
        task: text_or_empty(r, "task")?,
        repo: text_or_empty(r, "repo")?,
        git_ref: text_or_empty(r, "git_ref")?,
        path: text_or_empty(r, "task_path")?,
        image: row_get(r, "image")?,
        attempts: row_get(r, "attempts")?,
        max_attempts: row_get(r, "max_attempts")?,
        timeout_secs: row_get(r, "timeout_secs")?,
        created_at: row_get(r, "created_at")?,
    })
}

/// [`Store::set_flag`] inside a caller's transaction.
pub(super) async fn set_flag_in(
    tx: &mut WriteTx,
    name: &str,
    value: Option<&str>,
) -> Result<(), StoreError> {
    sqlx::query("DELETE FROM host_flags WHERE name = $1")
        .bind(name.to_string())
        .execute(&mut *tx.tx)
        .await?;
    if let Some(v) = value {
        sqlx::query("INSERT INTO host_flags (name, value) VALUES ($1, $2)")
            .bind(name.to_string())
            .bind(v.to_string())
            .execute(&mut *tx.tx)
            .await?;
    }
    Ok(())
}

/// The jobs of one message, as a CSV file or a replay carries them.
#[derive(Debug, Clone)]
pub struct QueuedMessage {
    pub message_id: String,
    pub topic: String,
    pub jobs: Vec<NewQueuedJob>,
}

/// [`Store::enqueue`] inside a caller's transaction.
pub(super) async fn enqueue_in(
    tx: &mut WriteTx,
    message_id: &str,
    topic: &str,
    jobs: &[NewQueuedJob],
) -> Result<Enqueued, StoreError> {
    let seen = sqlx::query("SELECT message_id FROM messages WHERE message_id = $1")
        .bind(message_id.to_string())
        .fetch_optional(&mut *tx.tx)
        .await?;
    if seen.is_some() {
        let rows =
            sqlx::query("SELECT uuid FROM jobs WHERE message_id = $1 ORDER BY created_at, uuid")
                .bind(message_id.to_string())
                .fetch_all(&mut *tx.tx)
                .await?;
        let jobs = rows
            .iter()
            .map(|r| row_get::<String>(r, "uuid"))
            .collect::<Result<_, _>>()?;
        return Ok(Enqueued {
            jobs,
            duplicate: true,
        });
    }
    let now = now_micros();
    // A racing duplicate fails here on the primary key, rolling back.
    sqlx::query(
        "INSERT INTO messages (message_id, topic, received_at, jobs) VALUES ($1, $2, $3, $4)",
    )
    .bind(message_id.to_string())
    .bind(topic.to_string())
    .bind(now)
    .bind(i64::try_from(jobs.len()).unwrap_or(i64::MAX))
    .execute(&mut *tx.tx)
    .await?;
    let mut out = Vec::new();
    for (i, j) in jobs.iter().enumerate() {
        let uuid = uuid::Uuid::new_v4().to_string();
        // Distinct creation times keep the message's order.
        let created = now + i64::try_from(i).unwrap_or(0);
        sqlx::query(
            "INSERT INTO jobs (uuid, state, item, item_type, arch, formula, created_at, \
             message_id, topic, task, repo, git_ref, task_path, priority, image, \
             max_attempts, timeout_secs, queued, vcpus, memory_mib) \
             VALUES ($1, 'queued', $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14, \
             $15, $16, 1, $17, $18)",
        )
        .bind(uuid.clone())
        .bind(j.item.clone())
        .bind(j.item_type.clone())
        .bind(j.arch.clone())
        .bind(j.task.clone())
        .bind(created)
        .bind(message_id.to_string())
        .bind(topic.to_string())
        .bind(j.task.clone())
        .bind(j.repo.clone())
        .bind(j.git_ref.clone())
        .bind(j.path.clone())
        .bind(j.priority)
        .bind(j.image.clone())
        .bind(j.max_attempts.max(1))
        .bind(j.timeout_secs)
        .bind(j.needs.map(|n| i64::from(n.vcpus)))
        .bind(j.needs.map(|n| to_i64(n.memory_mib)))
        .execute(&mut *tx.tx)
        .await?;
        let t = TransitionRow {
            state: JobState::Queued,
            at: created,
        };
        insert_transition(tx, &uuid, None, &t).await?;
        out.push(uuid);
    }
    note_new_classes_in(tx, jobs).await?;
    Ok(Enqueued {
        jobs: out,
        duplicate: false,
    })
}

impl Store {
    /// Whether a message with this id was stored already (its jobs made).
    pub async fn message_seen(&self, message_id: &str) -> Result<bool, StoreError> {
        Ok(
            sqlx::query("SELECT message_id FROM messages WHERE message_id = $1")
                .bind(message_id.to_string())
                .fetch_optional(&self.pool)
                .await?
                .is_some(),
        )
    }

    /// Stores the jobs of one message, or, when `message_id` was seen
    /// before, returns that message's jobs and stores nothing.
    pub async fn enqueue(
        &self,
        message_id: &str,
        topic: &str,
        jobs: &[NewQueuedJob],
    ) -> Result<Enqueued, StoreError> {
        let mut tx = self.begin().await?;
        let r = enqueue_in(&mut tx, message_id, topic, jobs).await?;
        tx.commit().await?;
        Ok(r)
    }

    /// Stores the jobs of several messages in ONE transaction: all of them
    /// or, on any error, none (`ferrotron jobs replay`). A message id seen
    /// before stores nothing, as in [`Store::enqueue`].
    pub async fn enqueue_batch(
        &self,
        messages: &[QueuedMessage],
    ) -> Result<Vec<Enqueued>, StoreError> {
        let mut tx = self.begin().await?;
        let mut out = Vec::with_capacity(messages.len());
        for m in messages {
            out.push(enqueue_in(&mut tx, &m.message_id, &m.topic, &m.jobs).await?);
        }
        tx.commit().await?;
        Ok(out)
    }

    /// Jobs in one state with what it takes to queue them again elsewhere
    /// (`ferrotron jobs export`), oldest first.
    pub async fn queued_jobs_in(&self, state: JobState) -> Result<Vec<QueuedMessage>, StoreError> {
        let rows = sqlx::query(
            "SELECT message_id, topic, item, item_type, arch, task, repo, git_ref, task_path, \
             priority, image, max_attempts, timeout_secs FROM jobs \
             WHERE queued = 1 AND state = $1 ORDER BY created_at, uuid",
        )
        .bind(state.to_string())
        .fetch_all(&self.pool)
        .await?;
        let mut out: Vec<QueuedMessage> = Vec::new();
        for r in &rows {
            let message_id = text_or_empty(r, "message_id")?;
            let topic = text_or_empty(r, "topic")?;
            let job = NewQueuedJob {
                item: row_get(r, "item")?,
                item_type: row_get(r, "item_type")?,
                arch: row_get(r, "arch")?,
                task: text_or_empty(r, "task")?,
                repo: text_or_empty(r, "repo")?,
                git_ref: text_or_empty(r, "git_ref")?,
                path: text_or_empty(r, "task_path")?,
                priority: row_get(r, "priority")?,
                image: row_get(r, "image")?,
                max_attempts: row_get(r, "max_attempts")?,
                timeout_secs: row_get(r, "timeout_secs")?,
                needs: None,
            };
            match out.last_mut() {
                Some(m) if m.message_id == message_id => m.jobs.push(job),
                _ => out.push(QueuedMessage {
                    message_id,
                    topic,
                    jobs: vec![job],
                }),
            }
        }
        Ok(out)
    }

    /// Claims the next runnable job for `owner` until now + `lease_micros`,
    /// with no capacity limit (see [`Store::claim_fitting`]).
    pub async fn claim_next(
        &self,
        owner: &str,
        lease_micros: i64,
    ) -> Result<Option<ClaimedJob>, StoreError> {
        Ok(self
            .claim_fitting(owner, lease_micros, Free::UNLIMITED, Needs::FALLBACK)
            .await?
            .map(|(job, _)| job))
    }

    /// Claims the next runnable job for `owner` until now + `lease_micros`
    /// among those whose VM fits `free` (a job without recorded needs
    /// counts as `default`): highest priority first; among equals, the
    /// task with the fewest jobs in progress (so a flood for one task
    /// cannot starve the others), then the oldest. The job becomes
    /// `scheduled`; returned with the needs it was placed with.
    pub async fn claim_fitting(
        &self,
        owner: &str,
        lease_micros: i64,
        free: Free,
        default: Needs,
    ) -> Result<Option<(ClaimedJob, Needs)>, StoreError> {
        if free.vms == 0 {
            return Ok(None);
        }
        // Pick and claim in one transaction; a claim lost to another
        // worker (PostgreSQL) picks again.
        for _round in 0..CLAIM_ROUNDS {
            let now = now_micros();
            let mut tx = self.begin().await?;
            let Some((uuid, needs)) = pick_in(&mut tx, now, free, default).await? else {
                return Ok(None);
            };
            let claim = Move::new(
                JobState::Scheduled,
                Actor::Claim {
                    owner: owner.to_string(),
                    lease_until: now + lease_micros,
                },
            );
            if !transition_in(&mut tx, &uuid, &claim, now).await?.moved() {
                continue;
            }
            let row = sqlx::query(
                "SELECT uuid, item, item_type, arch, task, repo, git_ref, task_path, image, \
                 attempts, max_attempts, timeout_secs, created_at FROM jobs WHERE uuid = $1",
            )
            .bind(uuid.clone())
            .fetch_one(&mut *tx.tx)
            .await?;
            let job = claimed_from_row(&row)?;
            tx.commit().await?;
            return Ok(Some((job, needs)));
        }
        Ok(None)
    }

    /// Extends `owner`'s lease on a job. Returns the job's state, or `None`
    /// when the lease is no longer `owner`'s (expired and taken back).
    pub async fn renew_lease(
        &self,
        uuid: &str,
        owner: &str,
        lease_micros: i64,
    ) -> Result<Option<JobState>, StoreError> {
        let mut tx = self.begin().await?;
        sqlx::query("UPDATE jobs SET lease_expires = $1 WHERE uuid = $2 AND lease_owner = $3")
            .bind(now_micros() + lease_micros)
            .bind(uuid.to_string())
            .bind(owner.to_string())
            .execute(&mut *tx.tx)
            .await?;
        let row = sqlx::query("SELECT state, lease_owner FROM jobs WHERE uuid = $1")
            .bind(uuid.to_string())
            .fetch_optional(&mut *tx.tx)
            .await?;
        tx.commit().await?;
        let Some(row) = row else { return Ok(None) };
        let state: String = row_get(&row, "state")?;
        let state = JobState::parse_stored(uuid, &state)?;
        let lease: Option<String> = row_get(&row, "lease_owner")?;
        Ok((lease.as_deref() == Some(owner) || state.is_final()).then_some(state))
    }

    /// Records the commit `owner`'s claimed job runs (resolved from the git
    /// cache before its VM boots). Returns false when the job is not
    /// `owner`'s any more.
    pub async fn set_commit(
        &self,
        uuid: &str,
        owner: &str,
        commit: &str,
    ) -> Result<bool, StoreError> {
        let done =
            sqlx::query("UPDATE jobs SET git_commit = $1 WHERE uuid = $2 AND lease_owner = $3")
                .bind(commit.to_string())
                .bind(uuid.to_string())
                .bind(owner.to_string())
                .execute(&self.pool)
                .await?;
        Ok(done.rows_affected() == 1)
    }

    /// Takes back jobs whose lease expired (their worker died): back to
    /// `queued` while attempts remain, else `error`. Returns (requeued,
    /// errored) counts. A ready reservation is left to its host, whose
    /// VM outlives a restart of the service (see
    /// [`Store::end_orphaned_reservations`]).
    pub async fn requeue_expired(&self) -> Result<(usize, usize), StoreError> {
        let now = now_micros();
        let sql = format!(
            "SELECT uuid, state, attempts, max_attempts FROM jobs WHERE queued = 1 \
             AND state IN {IN_PROGRESS_SQL} AND lease_expires < $1 \
             AND NOT (COALESCE(task, '') = '{RESERVATION_TASK}' AND state = 'running')"
        );
        let rows = sqlx::query(sqlx::AssertSqlSafe(sql))
            .bind(now)
            .fetch_all(&self.pool)
            .await?;
        let (mut requeued, mut errored) = (0, 0);
        for r in rows {
            let uuid: String = row_get(&r, "uuid")?;
            let from = JobState::parse_stored(&uuid, &row_get::<String>(&r, "state")?)?;
            let attempts: i64 = row_get(&r, "attempts")?;
            let max: i64 = row_get(&r, "max_attempts")?;
            let to = if attempts < max && from.check(&uuid, JobState::Queued).is_ok() {
                JobState::Queued
            } else {
                JobState::Error
            };
            let mv = Move::new(to, Actor::LeaseExpiry { now })
                .because("the worker's lease expired (worker gone)");
            if self.transition(&uuid, &mv).await?.moved() {
                if to == JobState::Queued {
                    requeued += 1;
                } else {
                    errored += 1;
                }
            }
        }
        Ok((requeued, errored))
    }

    /// Jobs in the queue per state (for `ferrotron host status` and tests).
    pub async fn queue_counts(&self) -> Result<Vec<(String, i64)>, StoreError> {
        let rows = sqlx::query(
            "SELECT state, COUNT(*) AS n FROM jobs WHERE queued = 1 GROUP BY state ORDER BY state",
        )
        .fetch_all(&self.pool)
        .await?;
        rows.iter()
            .map(|r| Ok((row_get(r, "state")?, row_get(r, "n")?)))
            .collect()
    }

    /// Jobs in progress (scheduled to reporting) under a lease of a worker
    /// on `host` (lease owners are `host:pid:random`).
    pub async fn in_progress_on(&self, host: &str) -> Result<usize, StoreError> {
        let sql =
            format!("SELECT lease_owner FROM jobs WHERE queued = 1 AND state IN {IN_PROGRESS_SQL}");
        let rows = sqlx::query(sqlx::AssertSqlSafe(sql))
            .fetch_all(&self.pool)
            .await?;
        let prefix = format!("{host}:");
        let mut n = 0;
        for r in &rows {
            let owner: Option<String> = row_get(r, "lease_owner")?;
            n += usize::from(owner.is_some_and(|o| o.starts_with(&prefix)));
        }
        Ok(n)
    }

    /// Messages accepted so far (duplicates not counted).
    pub async fn message_count(&self) -> Result<i64, StoreError> {
        let row = sqlx::query("SELECT COUNT(*) AS n FROM messages")
            .fetch_one(&self.pool)
            .await?;
        row_get(&row, "n")
    }

    /// Sets or clears a host-wide flag.
    pub async fn set_flag(&self, name: &str, value: Option<&str>) -> Result<(), StoreError> {
        let mut tx = self.begin().await?;
        set_flag_in(&mut tx, name, value).await?;
        tx.commit().await
    }

    pub async fn get_flag(&self, name: &str) -> Result<Option<String>, StoreError> {
        let row = sqlx::query("SELECT value FROM host_flags WHERE name = $1")
            .bind(name.to_string())
            .fetch_optional(&self.pool)
            .await?;
        row.map(|r| row_get(&r, "value")).transpose()
    }
}

#[cfg(test)]
pub(super) mod tests {
    use super::*;
    use crate::placement::{Capacity, Usage};
    use crate::store::{HostRecord, Transitioned, HOST_FRESH_MICROS};

    fn job(task: &str, priority: i64) -> NewQueuedJob {
        NewQueuedJob {
            item: format!("{task}-1.0-1.fc40"),
            item_type: "koji_build".into(),
            arch: "x86_64".into(),
            task: task.into(),
            repo: "/srv/tasks".into(),
            git_ref: String::new(),
            path: task.into(),
            priority,
            image: None,
            max_attempts: 2,
            needs: None,
            timeout_secs: None,
        }
    }

    async fn store(dir: &tempfile::TempDir) -> Store {
        let url = format!("sqlite://{}?mode=rwc", dir.path().join("q.db").display());
        Store::open(&url).await.expect("open")
    }

    /// The same queries on PostgreSQL (the role scripts/setup-host.sh
    /// creates): a fresh database per call.
    fn pg_admin() -> String {
        std::env::var("FERROTRON_TEST_PG_URL")
            .unwrap_or_else(|_| "postgres://ferrotron:ferrotron@127.0.0.1:5432/postgres".into())
    }

    pub(in crate::store) async fn pg_drop(s: Store, name: &str) {
        use sqlx::Executor;
        s.close().await;
        let pool = sqlx::AnyPool::connect(&pg_admin()).await.expect("admin");
        // An autovacuum worker (the superuser's) on the database makes
        // FORCE fail for our role until it ends: try again, generously.
        let sql = format!("DROP DATABASE IF EXISTS {name} WITH (FORCE)");
        let mut tries = 0;
        while let Err(e) = pool.execute(sqlx::AssertSqlSafe(sql.clone())).await {
            tries += 1;
            assert!(tries < 120, "drop database {name}: {e}");
            tokio::time::sleep(std::time::Duration::from_millis(500)).await;
        }
        pool.close().await;
    }

    pub(in crate::store) async fn pg_store() -> (Store, String) {
        use sqlx::Executor;
        let admin = pg_admin();
        sqlx::any::install_default_drivers();
        let pool = sqlx::AnyPool::connect(&admin)
            .await
            .expect("PostgreSQL is running");
        let name = format!("ft_queue_{}", uuid::Uuid::new_v4().simple());
        pool.execute(sqlx::AssertSqlSafe(format!("CREATE DATABASE {name}")))
            .await
            .expect("create database");
        pool.close().await;
        let base = admin.rsplit_once('/').map_or(admin.as_str(), |(b, _)| b);
        let s = Store::open(&format!("{base}/{name}")).await.expect("open");
        (s, name)
    }

    #[tokio::test]
    async fn postgres_queue_round_trip() {
        let (s, name) = pg_store().await;
        let e = s
            .enqueue("m1", "t", &[job("a", 0), job("b", 1)])
            .await
            .expect("enqueue");
        assert!(s.enqueue("m1", "t", &[]).await.expect("dup").duplicate);
        let c = s
            .claim_next("w1", 60_000_000)
            .await
            .expect("claim")
            .expect("job");
        assert_eq!(c.task, "b");
        assert_eq!(
            s.renew_lease(&c.uuid, "w1", 60_000_000)
                .await
                .expect("renew"),
            Some(JobState::Scheduled)
        );
        for to in [
            JobState::Booting,
            JobState::Running,
            JobState::Reporting,
            JobState::Passed,
        ] {
            assert!(s
                .transition(&c.uuid, &Move::by_worker("w1", to))
                .await
                .expect("advance")
                .moved());
        }
        let c = s.claim_next("w1", -1).await.expect("claim").expect("job");
        assert_eq!(s.requeue_expired().await.expect("requeue"), (1, 0));
        s.set_flag("idle", Some("1")).await.expect("flag");
        assert_eq!(
            s.get_flag("idle").await.expect("flag").as_deref(),
            Some("1")
        );
        let j = s.get_job(&c.uuid).await.expect("get").expect("job");
        assert_eq!(j.state, JobState::Queued);
        assert_eq!(e.jobs.len(), 2);
        pg_drop(s, &name).await;
    }

    #[tokio::test]
    async fn duplicates_store_nothing_and_return_the_first_jobs() {
        let dir = tempfile::tempdir().expect("tempdir");
        let s = store(&dir).await;
        let first = s
            .enqueue("m1", "t", &[job("a", 0), job("b", 0)])
            .await
            .expect("enqueue");
        assert!(!first.duplicate);
        assert_eq!(first.jobs.len(), 2);
        let again = s.enqueue("m1", "t", &[job("a", 0)]).await.expect("again");
        assert!(again.duplicate);
        assert_eq!(again.jobs, first.jobs);
        assert_eq!(s.message_count().await.expect("count"), 1);
        assert_eq!(
            s.queue_counts().await.expect("counts"),
            [("queued".to_string(), 2)]
        );
    }

    /// Priority first; then the task with fewer jobs in progress, so a
    /// flood for one task does not starve another; never one job twice.
    #[tokio::test]
    async fn claims_follow_priority_then_fairness_and_never_repeat() {
        let dir = tempfile::tempdir().expect("tempdir");
        let s = store(&dir).await;
        let flood: Vec<_> = (0..5).map(|_| job("flood", 0)).collect();
        s.enqueue("m1", "t", &flood).await.expect("flood");
        s.enqueue("m2", "t", &[job("other", 0)])
            .await
            .expect("other");
        s.enqueue("m3", "t", &[job("urgent", 5)])
            .await
            .expect("urgent");
        let lease = 60_000_000;
        let c1 = s
            .claim_next("w1", lease)
            .await
            .expect("claim")
            .expect("job");
        assert_eq!(c1.task, "urgent");
        let c2 = s
            .claim_next("w1", lease)
            .await
            .expect("claim")
            .expect("job");
        assert_eq!(c2.task, "flood");
        let c3 = s
            .claim_next("w2", lease)
            .await
            .expect("claim")
            .expect("job");
        assert_eq!(
            c3.task, "other",
            "one flood job runs: the other task goes first"
        );
        // Two workers racing for the rest get distinct jobs.
        let (a, b) = tokio::join!(s.claim_next("w1", lease), s.claim_next("w2", lease));
        let (a, b) = (a.expect("a").expect("a"), b.expect("b").expect("b"));
        assert_ne!(a.uuid, b.uuid);
        assert_eq!(c2.attempts, 1);
    }

    #[tokio::test]
    async fn expired_leases_requeue_then_error_after_max_attempts() {
        let dir = tempfile::tempdir().expect("tempdir");
        let s = store(&dir).await;
        let e = s.enqueue("m1", "t", &[job("a", 0)]).await.expect("enqueue");
        let uuid = &e.jobs[0];
        // A lease already over: the worker "died".
        let c = s.claim_next("w1", -1).await.expect("claim").expect("job");
        assert_eq!(&c.uuid, uuid);
        assert_eq!(s.requeue_expired().await.expect("requeue"), (1, 0));
        assert_eq!(s.renew_lease(uuid, "w1", 1).await.expect("renew"), None);
        let c = s.claim_next("w2", -1).await.expect("claim").expect("again");
        assert_eq!(c.attempts, 2);
        assert_eq!(s.requeue_expired().await.expect("requeue"), (0, 1));
        let j = s.get_job(uuid).await.expect("get").expect("job");
        assert_eq!(j.state, JobState::Error);
        let st: Vec<_> = j.transitions.iter().map(|t| t.state).collect();
        use JobState::*;
        assert_eq!(st, [Queued, Scheduled, Queued, Scheduled, Error]);
        assert!(s.claim_next("w3", 1).await.expect("claim").is_none());
    }

    fn sized(task: &str, priority: i64, vcpus: u32, memory_mib: u64) -> NewQueuedJob {
        NewQueuedJob {
            needs: Some(Needs { vcpus, memory_mib }),
            ..job(task, priority)
        }
    }

    const DEFAULT: Needs = Needs {
        vcpus: 1,
        memory_mib: 256,
    };

    /// A claim takes only a job whose VM fits the worker's free capacity,
    /// still in priority order among those; a job without recorded needs
    /// counts as the worker's default.
    #[tokio::test]
    async fn claims_take_only_jobs_that_fit() {
        let dir = tempfile::tempdir().expect("tempdir");
        let s = store(&dir).await;
        s.enqueue("m1", "t", &[sized("big", 5, 4, 4096)])
            .await
            .expect("big");
        s.enqueue("m2", "t", &[job("unsized", 1), sized("small", 0, 1, 512)])
            .await
            .expect("others");
        let free = Free {
            vcpus: 2,
            memory_mib: 1024,
            vms: 2,
        };
        let lease = 60_000_000;
        let (a, na) = s
            .claim_fitting("w1", lease, free, DEFAULT)
            .await
            .expect("claim")
            .expect("a job fits");
        assert_eq!((a.task.as_str(), na), ("unsized", DEFAULT));
        let (b, nb) = s
            .claim_fitting("w1", lease, free, DEFAULT)
            .await
            .expect("claim")
            .expect("a job fits");
        assert_eq!(b.task, "small");
        assert_eq!(nb.memory_mib, 512);
        assert!(
            s.claim_fitting("w1", lease, free, DEFAULT)
                .await
                .expect("claim")
                .is_none(),
            "the big job does not fit 2 vCPUs"
        );
        let none_left = Free { vms: 0, ..free };
        let roomy = Free {
            vcpus: 8,
            memory_mib: 8192,
            vms: 1,
        };
        assert!(s
            .claim_fitting("w2", lease, none_left, DEFAULT)
            .await
            .expect("claim")
            .is_none());
        let (c, nc) = s
            .claim_fitting("w2", lease, roomy, DEFAULT)
            .await
            .expect("claim")
            .expect("fits a larger host");
        assert_eq!((c.task.as_str(), nc.vcpus), ("big", 4));
    }

    fn host(name: &str, vcpus: u32, memory_mib: u64, heartbeat: i64) -> HostRecord {
        HostRecord {
            name: name.into(),
            worker: format!("{name}:1:abcd"),
            capacity: Capacity {
                vcpus,
                memory_mib,
                max_vms: 2,
            },
            used: Usage::default(),
            started_at: heartbeat,
            heartbeat,
        }
    }

    /// Hosts register and update their row; a queued job no live host can
    /// hold ends in `error` saying why, the others stay queued; a host
    /// long gone does not count.
    async fn unplaceable_jobs_end_in_error(s: &Store) {
        assert_eq!(s.fail_unplaceable(DEFAULT).await.expect("no hosts"), 0);
        let now = now_micros();
        let mut small = host("small", 2, 2048, now);
        s.put_host(&small).await.expect("register");
        small.used = Usage {
            vcpus: 1,
            memory_mib: 256,
            vms: 1,
        };
        s.put_host(&small).await.expect("heartbeat");
        s.put_host(&host("gone", 64, 65536, now - 2 * HOST_FRESH_MICROS))
            .await
            .expect("stale host");
        let hosts = s.hosts().await.expect("hosts");
        assert_eq!(hosts.len(), 2);
        assert_eq!(hosts[1], small, "updated, not duplicated");
        let e = s
            .enqueue(
                "m1",
                "t",
                &[
                    sized("huge", 0, 8, 1024),
                    job("fine", 0),
                    sized("fat", 0, 1, 4096),
                ],
            )
            .await
            .expect("enqueue");
        assert_eq!(s.fail_unplaceable(DEFAULT).await.expect("place"), 2);
        let huge = s.get_job(&e.jobs[0]).await.expect("get").expect("job");
        assert_eq!(huge.state, JobState::Error);
        let why = huge.last_error.unwrap_or_default();
        assert!(
            why.contains("8 vCPU(s) and 1024 MiB")
                && why.contains("at most 2 vCPU(s) and 2048 MiB"),
            "{why}"
        );
        let st: Vec<_> = huge.transitions.iter().map(|t| t.state).collect();
        assert_eq!(st, [JobState::Queued, JobState::Error]);
        let fine = s.get_job(&e.jobs[1]).await.expect("get").expect("job");
        assert_eq!(fine.state, JobState::Queued);
        let fat = s.get_job(&e.jobs[2]).await.expect("get").expect("job");
        assert_eq!(fat.state, JobState::Error);
        assert_eq!(s.fail_unplaceable(DEFAULT).await.expect("again"), 0);
    }

    #[tokio::test]
    async fn unplaceable_jobs_end_in_error_sqlite() {
        let dir = tempfile::tempdir().expect("tempdir");
        unplaceable_jobs_end_in_error(&store(&dir).await).await;
    }

    #[tokio::test]
    async fn unplaceable_jobs_end_in_error_postgres() {
        let (s, name) = pg_store().await;
        unplaceable_jobs_end_in_error(&s).await;
        pg_drop(s, &name).await;
    }

    #[tokio::test]
    async fn postgres_claims_take_only_jobs_that_fit() {
        let (s, name) = pg_store().await;
        s.enqueue(
            "m1",
            "t",
            &[sized("big", 5, 4, 4096), sized("small", 0, 1, 256)],
        )
        .await
        .expect("enqueue");
        let free = Free {
            vcpus: 2,
            memory_mib: 1024,
            vms: 1,
        };
        let (c, n) = s
            .claim_fitting("w1", 60_000_000, free, DEFAULT)
            .await
            .expect("claim")
            .expect("job");
        assert_eq!((c.task.as_str(), n.memory_mib), ("small", 256));
        assert!(s
            .claim_fitting("w1", 60_000_000, free, DEFAULT)
            .await
            .expect("claim")
            .is_none());
        pg_drop(s, &name).await;
    }
    fn batch() -> Vec<QueuedMessage> {
        let mut timed = job("b", 0);
        timed.timeout_secs = Some(90);
        vec![
            QueuedMessage {
                message_id: "r1".into(),
                topic: "t".into(),
                jobs: vec![job("a", 0), timed],
            },
            QueuedMessage {
                message_id: "r2".into(),
                topic: "t".into(),
                jobs: vec![job("c", 1)],
            },
        ]
    }

    async fn replay_twice_makes_no_duplicates(s: &Store) {
        let first = s.enqueue_batch(&batch()).await.expect("replay");
        assert!(first.iter().all(|e| !e.duplicate));
        let again = s.enqueue_batch(&batch()).await.expect("replay again");
        assert!(again.iter().all(|e| e.duplicate));
        assert_eq!(
            again.iter().map(|e| &e.jobs).collect::<Vec<_>>(),
            first.iter().map(|e| &e.jobs).collect::<Vec<_>>()
        );
        assert_eq!(s.message_count().await.expect("count"), 2);
        assert_eq!(
            s.queue_counts().await.expect("counts"),
            [("queued".to_string(), 3)]
        );
        // What export reads back is what was replayed, time-outs included.
        let out = s.queued_jobs_in(JobState::Queued).await.expect("export");
        assert_eq!(out.len(), 2);
        assert_eq!(out[0].message_id, "r1");
        assert_eq!(out[0].jobs.len(), 2);
        assert_eq!(out[0].jobs[1].timeout_secs, Some(90));
        let c = s
            .claim_next("w1", 60_000_000)
            .await
            .expect("claim")
            .expect("job");
        assert_eq!(c.task, "c");
        assert_eq!(c.timeout_secs, None);
    }

    #[tokio::test]
    async fn sqlite_replay_twice_makes_no_duplicates() {
        let dir = tempfile::tempdir().expect("tempdir");
        let s = store(&dir).await;
        replay_twice_makes_no_duplicates(&s).await;
    }

    #[tokio::test]
    async fn postgres_replay_twice_makes_no_duplicates() {
        let (s, name) = pg_store().await;
        replay_twice_makes_no_duplicates(&s).await;
        pg_drop(s, &name).await;
    }

    /// A service shutdown puts the job back without using an attempt.
    #[tokio::test]
    async fn shutdown_requeue_does_not_count_an_attempt() {
        let dir = tempfile::tempdir().expect("tempdir");
        let s = store(&dir).await;
        let e = s.enqueue("m1", "t", &[job("a", 0)]).await.expect("enqueue");
        let uuid = &e.jobs[0];
        let lease = 60_000_000;
        let c = s
            .claim_next("w1", lease)
            .await
            .expect("claim")
            .expect("job");
        assert_eq!(c.attempts, 1);
        for to in [JobState::Booting, JobState::Running, JobState::Reporting] {
            assert!(s
                .transition(uuid, &Move::by_worker("w1", to))
                .await
                .expect("advance")
                .moved());
        }
        let back = |w: &str| {
            Move::by_worker(w, JobState::Queued)
                .uncounted()
                .because("interrupted by a service shutdown")
        };
        assert_eq!(
            s.transition(uuid, &back("w2")).await.expect("not w2's"),
            Transitioned::NotHeld {
                state: JobState::Reporting
            }
        );
        assert!(s
            .transition(uuid, &back("w1"))
            .await
            .expect("requeue")
            .moved());
        let c = s
            .claim_next("w1", lease)
            .await
            .expect("claim")
            .expect("again");
        assert_eq!(c.attempts, 1, "the interrupted run did not count");
        let j = s.get_job(uuid).await.expect("get").expect("job");
        let st: Vec<_> = j.transitions.iter().map(|t| t.state).collect();
        use JobState::*;
        assert_eq!(
            st,
            [Queued, Scheduled, Booting, Running, Reporting, Queued, Scheduled]
        );
        assert_eq!(
            j.last_error.as_deref(),
            Some("interrupted by a service shutdown")
        );
    }

    /// `host status` counts a host's jobs by its workers' lease owners
    /// (`host:pid:random`): another host, or a name that is a prefix of
    /// this one, does not count.
    #[tokio::test]
    async fn in_progress_counts_this_hosts_leases_only() {
        let dir = tempfile::tempdir().expect("tempdir");
        let s = store(&dir).await;
        s.enqueue("m1", "t", &[job("a", 0), job("b", 0), job("c", 0)])
            .await
            .expect("enqueue");
        for owner in ["hv01:10:aa", "hv01:11:bb", "hv011:12:cc"] {
            s.claim_next(owner, 60_000_000)
                .await
                .expect("claim")
                .expect("job");
        }
        assert_eq!(s.in_progress_on("hv01").await.expect("count"), 2);
        assert_eq!(s.in_progress_on("hv011").await.expect("count"), 1);
        assert_eq!(s.in_progress_on("hv02").await.expect("count"), 0);
    }

    /// Two processes writing one SQLite file (two stores: separate
    /// in-process locks), as `ferrotron submit` beside `serve`: every
    /// write waits for the other instead of failing "database is locked".
    #[tokio::test]
    async fn two_writers_on_one_sqlite_file_wait_for_each_other() {
        let dir = tempfile::tempdir().expect("tempdir");
        let (a, b) = (store(&dir).await, store(&dir).await);
        let submits = async {
            for i in 0..40 {
                a.enqueue(&format!("m{i}"), "t", &[job("a", 0)]).await?;
            }
            Ok::<_, StoreError>(())
        };
        let beats = async {
            for i in 0..40 {
                let mut h = host("w", 2, 2048, now_micros());
                h.used.vms = i % 2;
                b.put_host(&h).await?;
                b.claim_next("w", 60_000_000).await?;
            }
            Ok::<_, StoreError>(())
        };
        let (x, y) = tokio::join!(submits, beats);
        x.expect("every enqueue");
        y.expect("every heartbeat and claim");
        assert_eq!(a.message_count().await.expect("count"), 40);
    }
}
