//! The scheduler's pick: which queued job a claim takes (see
//! [`Store::claim_fitting`]).
//!
//! The order is priority, then fairness (the task with the fewest jobs in
//! progress first), then age; only a job whose VM fits the host's free room
//! counts. Sorting every queued job by that order on each claim costs a
//! scan and a sort of the whole queue (the fairness key is not a column,
//! so no index gives that order). Instead the queued jobs are grouped in
//! classes kept in `queue_classes` (migration 0008): a class is a task, a
//! priority and a recorded size (-1: none, the claiming worker's default).
//! Within a class only age orders jobs and every job fits or none does, so
//! a class's best job is its oldest eligible one (one seek in the index
//! `jobs_queue_class`); the pick reads the heads of the classes that fit and
//! orders those few rows. Its cost grows with the number of classes and of
//! jobs in progress, not with the queue.
//!
//! Every queued job's class has a row: enqueueing and every move back to
//! `queued` add it (in the same transaction). A class whose jobs all left
//! the queue keeps its row (a probe that finds nothing) until
//! [`Store::prune_queue_classes`] removes it.

use super::queue::{to_i64, NewQueuedJob};
use super::{row_get, Backend, Store, StoreError, WriteTx};
use crate::placement::{Free, Needs};

/// The class columns of a job row, as `queue_classes` stores them and
/// `jobs_queue_class` indexes them (the same expressions, CASTs included).
const CLASS_OF_JOB: &str = "CAST(COALESCE(task, '') AS TEXT), priority, \
     CAST(COALESCE(vcpus, -1) AS BIGINT), CAST(COALESCE(memory_mib, -1) AS BIGINT)";

/// `q` is a queued job of class `c` (the columns of `jobs_queue_class`).
const IN_CLASS: &str = "q.queued = 1 AND q.state = 'queued' \
     AND CAST(COALESCE(q.task, '') AS TEXT) = c.task AND q.priority = c.priority \
     AND CAST(COALESCE(q.vcpus, -1) AS BIGINT) = c.vcpus \
     AND CAST(COALESCE(q.memory_mib, -1) AS BIGINT) = c.memory_mib";

/// The class of a job being enqueued: the values [`CLASS_OF_JOB`] gives
/// its row.
pub(super) fn class_of(job: &NewQueuedJob) -> (String, i64, i64, i64) {
    let (vcpus, memory) = job
        .needs
        .map_or((-1, -1), |n| (i64::from(n.vcpus), to_i64(n.memory_mib)));
    (job.task.clone(), job.priority, vcpus, memory)
}

/// Adds the classes of jobs being enqueued to `queue_classes` (a class
/// already there stays as it is). From the values, not by reading the
/// jobs back: SQLite, without statistics, would read them through
/// `jobs_queue_class` (every queued job) rather than `jobs_message`.
pub(super) async fn note_new_classes_in(
    tx: &mut WriteTx,
    jobs: &[NewQueuedJob],
) -> Result<(), StoreError> {
    let mut seen = std::collections::HashSet::new();
    for class in jobs.iter().map(class_of) {
        if !seen.insert(class.clone()) {
            continue;
        }
        let (task, priority, vcpus, memory) = class;
        sqlx::query(
            "INSERT INTO queue_classes (task, priority, vcpus, memory_mib) \
             VALUES ($1, $2, $3, $4) ON CONFLICT DO NOTHING",
        )
        .bind(task)
        .bind(priority)
        .bind(vcpus)
        .bind(memory)
        .execute(&mut *tx.tx)
        .await?;
    }
    Ok(())
}

/// Adds the class of job `uuid` to `queue_classes` when the job is queued
/// (after it moved back to `queued`).
pub(super) async fn note_class_in(tx: &mut WriteTx, uuid: &str) -> Result<(), StoreError> {
    // The WHERE clause also keeps SQLite's parser from reading
    // `ON CONFLICT` as a join constraint.
    let sql = format!(
        "INSERT INTO queue_classes (task, priority, vcpus, memory_mib) \
         SELECT {CLASS_OF_JOB} FROM jobs \
         WHERE uuid = $1 AND queued = 1 AND state = 'queued' ON CONFLICT DO NOTHING"
    );
    sqlx::query(sqlx::AssertSqlSafe(sql))
        .bind(uuid.to_string())
        .execute(&mut *tx.tx)
        .await?;
    Ok(())
}

/// Adds `delta` to the count of jobs in progress of `uuid`'s task (a job
/// of the queue that moved into or out of scheduled..reporting).
pub(super) async fn add_load_in(
    tx: &mut WriteTx,
    uuid: &str,
    delta: i64,
) -> Result<(), StoreError> {
    sqlx::query(
        "INSERT INTO task_load (task, running) \
         SELECT CAST(COALESCE(task, '') AS TEXT), $1 FROM jobs WHERE uuid = $2 AND queued = 1 \
         ON CONFLICT (task) DO UPDATE SET running = task_load.running + excluded.running",
    )
    .bind(delta)
    .bind(uuid.to_string())
    .execute(&mut *tx.tx)
    .await?;
    Ok(())
}

/// The best queued job at `now` that fits `free` (a job without recorded
/// needs counts as `default`), with the needs it is placed with; read in
/// the claim's transaction.
pub(super) async fn pick_in(
    tx: &mut WriteTx,
    now: i64,
    free: Free,
    default: Needs,
) -> Result<Option<(String, Needs)>, StoreError> {
    // Each class's head by two seeks (its uuid and its creation time),
    // never a join back to `jobs`: PostgreSQL's generic plan for that join
    // hashed the whole table. MATERIALIZED: the heads are read once, not
    // once per reference in the outer query.
    let head = |col: &str| {
        format!(
            "(SELECT q.{col} FROM jobs q WHERE {IN_CLASS} AND q.not_before <= $1 \
             ORDER BY q.created_at, q.uuid LIMIT 1)"
        )
    };
    let sql = format!(
        "WITH h AS MATERIALIZED (SELECT c.task, c.priority, \
          CASE WHEN c.vcpus < 0 THEN $2 ELSE c.vcpus END AS need_vcpus, \
          CASE WHEN c.memory_mib < 0 THEN $3 ELSE c.memory_mib END AS need_memory, \
          {} AS uuid, {} AS created_at \
          FROM queue_classes c \
          WHERE CASE WHEN c.vcpus < 0 THEN $2 ELSE c.vcpus END <= $4 \
          AND CASE WHEN c.memory_mib < 0 THEN $3 ELSE c.memory_mib END <= $5) \
         SELECT h.uuid, h.need_vcpus, h.need_memory FROM h \
         LEFT JOIN task_load r ON r.task = h.task WHERE h.uuid IS NOT NULL \
         ORDER BY h.priority DESC, COALESCE(r.running, 0) ASC, h.created_at ASC, h.uuid ASC \
         LIMIT 1",
        head("uuid"),
        head("created_at")
    );
    let row = sqlx::query(sqlx::AssertSqlSafe(sql))
        .bind(now)
        .bind(i64::from(default.vcpus))
        .bind(to_i64(default.memory_mib))
        .bind(i64::from(free.vcpus))
        .bind(to_i64(free.memory_mib))
        .fetch_optional(&mut *tx.tx)
        .await?;
    let Some(row) = row else { return Ok(None) };
    let needs = Needs {
        vcpus: u32::try_from(row_get::<i64>(&row, "need_vcpus")?).unwrap_or(u32::MAX),
        memory_mib: u64::try_from(row_get::<i64>(&row, "need_memory")?).unwrap_or(0),
    };
    Ok(Some((row_get(&row, "uuid")?, needs)))
}

impl Store {
    /// Removes the classes that no queued job has any more, and the
    /// counts of tasks with no job in progress (called by the scheduler's
    /// sweep). Returns how many classes went.
    ///
    /// On PostgreSQL the table is locked against inserts first: a
    /// transaction that queued a job of a class but has not committed yet
    /// holds that lock, so the DELETE (a statement of its own, which sees
    /// what committed before it) sees its job and keeps the class.
    pub async fn prune_queue_classes(&self) -> Result<usize, StoreError> {
        let stale = format!(
            "SELECT (SELECT COUNT(*) FROM queue_classes c \
              WHERE NOT EXISTS (SELECT 1 FROM jobs q WHERE {IN_CLASS})) \
             + (SELECT COUNT(*) FROM task_load WHERE running = 0) AS n"
        );
        let row = sqlx::query(sqlx::AssertSqlSafe(stale))
            .fetch_one(&self.pool)
            .await?;
        if row_get::<i64>(&row, "n")? == 0 {
            return Ok(0);
        }
        let mut tx = self.begin().await?;
        if self.backend == Backend::Postgres {
            sqlx::query("LOCK TABLE queue_classes IN EXCLUSIVE MODE")
                .execute(&mut *tx.tx)
                .await?;
        }
        let delete = format!(
            "DELETE FROM queue_classes AS c WHERE NOT EXISTS (SELECT 1 FROM jobs q WHERE {IN_CLASS})"
        );
        let gone = sqlx::query(sqlx::AssertSqlSafe(delete))
            .execute(&mut *tx.tx)
            .await?
            .rows_affected();
        sqlx::query("DELETE FROM task_load WHERE running = 0")
            .execute(&mut *tx.tx)
            .await?;
        tx.commit().await?;
        Ok(usize::try_from(gone).unwrap_or(usize::MAX))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::job::{JobState, Move, IN_PROGRESS_SQL};
    use crate::store::now_micros;
    use crate::store::queue::tests::{pg_drop, pg_store};

    async fn sqlite(dir: &tempfile::TempDir) -> Store {
        let url = format!("sqlite://{}?mode=rwc", dir.path().join("p.db").display());
        Store::open(&url).await.expect("open")
    }

    fn job(task: &str, priority: i64, needs: Option<Needs>) -> NewQueuedJob {
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
            max_attempts: 3,
            needs,
            timeout_secs: None,
        }
    }

    const DEFAULT: Needs = Needs {
        vcpus: 1,
        memory_mib: 384,
    };

    /// The pick as it was before classes (migration 0008): every queued
    /// job sorted by the full order. The reference the classes must match.
    async fn reference(s: &Store, free: Free) -> Option<String> {
        let sql = format!(
            "SELECT j.uuid FROM jobs j \
             LEFT JOIN (SELECT task, COUNT(*) AS n FROM jobs WHERE queued = 1 \
              AND state IN {IN_PROGRESS_SQL} GROUP BY task) r ON r.task = j.task \
             WHERE j.queued = 1 AND j.state = 'queued' AND j.not_before <= $1 \
             AND COALESCE(j.vcpus, $2) <= $4 AND COALESCE(j.memory_mib, $3) <= $5 \
             ORDER BY j.priority DESC, COALESCE(r.n, 0) ASC, j.created_at ASC, j.uuid ASC \
             LIMIT 1"
        );
        sqlx::query(sqlx::AssertSqlSafe(sql))
            .bind(now_micros())
            .bind(i64::from(DEFAULT.vcpus))
            .bind(to_i64(DEFAULT.memory_mib))
            .bind(i64::from(free.vcpus))
            .bind(to_i64(free.memory_mib))
            .fetch_optional(&s.pool)
            .await
            .expect("reference")
            .map(|r| row_get(&r, "uuid").expect("uuid"))
    }

    /// A small deterministic generator (the same sequence on every run).
    struct Lcg(u64);

    impl Lcg {
        fn below(&mut self, n: u64) -> u64 {
            self.0 = self
                .0
                .wrapping_mul(6_364_136_223_846_793_005)
                .wrapping_add(1_442_695_040_888_963_407);
            (self.0 >> 33) % n
        }
    }

    /// Claims through the classes take, one after another, exactly the job
    /// the full sort names, while jobs of four tasks, three priorities and
    /// four sizes (one unrecorded) are claimed, finished, put back, held
    /// back by a retry time, and emptied classes pruned.
    async fn claims_match_the_full_sort(s: &Store) {
        let mut rng = Lcg(20);
        let sizes = [
            None,
            Some(Needs {
                vcpus: 1,
                memory_mib: 256,
            }),
            Some(Needs {
                vcpus: 2,
                memory_mib: 512,
            }),
            Some(Needs {
                vcpus: 4,
                memory_mib: 2048,
            }),
        ];
        let tasks = ["a", "b", "c", "d"];
        let mut next = 0;
        let mut enqueue = |rng: &mut Lcg, n: usize| {
            let jobs: Vec<_> = (0..n)
                .map(|_| {
                    let task = tasks[rng.below(4) as usize];
                    job(task, rng.below(3) as i64, sizes[rng.below(4) as usize])
                })
                .collect();
            next += 1;
            (format!("m{next}"), jobs)
        };
        for _ in 0..6 {
            let (id, jobs) = enqueue(&mut rng, 12);
            s.enqueue(&id, "t", &jobs).await.expect("enqueue");
        }
        let mut held: Vec<(String, String)> = Vec::new();
        let (mut claimed, mut empty) = (0, 0);
        for step in 0..160 {
            let free = Free {
                vcpus: 1 + rng.below(4) as u32,
                memory_mib: 200 + rng.below(2200),
                vms: 1,
            };
            let want = reference(s, free).await;
            let owner = format!("w{}", step % 3);
            let got = s
                .claim_fitting(&owner, 60_000_000, free, DEFAULT)
                .await
                .expect("claim");
            assert_eq!(got.as_ref().map(|(j, _)| &j.uuid), want.as_ref(), "{step}");
            if let Some((j, _)) = got {
                claimed += 1;
                held.push((j.uuid, owner));
            } else {
                empty += 1;
            }
            match rng.below(6) {
                // Finish one: its task's count of jobs in progress drops.
                0 | 1 if !held.is_empty() => {
                    let (uuid, w) = held.remove(rng.below(held.len() as u64) as usize);
                    for to in [JobState::Booting, JobState::Running, JobState::Reporting] {
                        s.transition(&uuid, &Move::by_worker(&w, to))
                            .await
                            .expect("advance");
                    }
                    let done = Move::by_worker(&w, JobState::Passed);
                    assert!(s.transition(&uuid, &done).await.expect("pass").moved());
                }
                // Put one back (its class may have been pruned meanwhile).
                2 if !held.is_empty() => {
                    let (uuid, w) = held.remove(rng.below(held.len() as u64) as usize);
                    let back = Move::by_worker(&w, JobState::Queued).uncounted();
                    assert!(s.transition(&uuid, &back).await.expect("back").moved());
                }
                // A retry time in the future: not eligible until then.
                3 => {
                    sqlx::query(
                        "UPDATE jobs SET not_before = $1 WHERE uuid IN \
                         (SELECT uuid FROM jobs WHERE state = 'queued' \
                          ORDER BY uuid LIMIT 1)",
                    )
                    .bind(now_micros() + 3_600_000_000)
                    .execute(&s.pool)
                    .await
                    .expect("hold back");
                }
                4 => {
                    s.prune_queue_classes().await.expect("prune");
                }
                _ if step % 20 == 0 => {
                    let (id, jobs) = enqueue(&mut rng, 6);
                    s.enqueue(&id, "t", &jobs).await.expect("enqueue more");
                }
                _ => {}
            }
        }
        assert!(
            claimed > 40 && empty > 5,
            "{claimed} claimed, {empty} empty"
        );
        assert_eq!(loads(s, "task_load").await, loads(s, "recount").await);
    }

    #[tokio::test]
    async fn claims_match_the_full_sort_sqlite() {
        let dir = tempfile::tempdir().expect("tempdir");
        claims_match_the_full_sort(&sqlite(&dir).await).await;
    }

    #[tokio::test]
    async fn claims_match_the_full_sort_postgres() {
        let (s, name) = pg_store().await;
        claims_match_the_full_sort(&s).await;
        pg_drop(s, &name).await;
    }

    /// The non-zero counts of jobs in progress per task: as kept, or
    /// counted from the jobs.
    async fn loads(s: &Store, from: &str) -> Vec<(String, i64)> {
        let sql = if from == "task_load" {
            "SELECT task, running AS n FROM task_load WHERE running <> 0 ORDER BY task".to_string()
        } else {
            format!(
                "SELECT task, COUNT(*) AS n FROM jobs WHERE queued = 1 \
                 AND state IN {IN_PROGRESS_SQL} GROUP BY task ORDER BY task"
            )
        };
        let rows = sqlx::query(sqlx::AssertSqlSafe(sql))
            .fetch_all(&s.pool)
            .await
            .expect("loads");
        rows.iter()
            .map(|r| {
                (
                    row_get(r, "task").expect("task"),
                    row_get(r, "n").expect("n"),
                )
            })
            .collect()
    }

    async fn classes(s: &Store) -> i64 {
        let row = sqlx::query("SELECT COUNT(*) AS n FROM queue_classes")
            .fetch_one(&s.pool)
            .await
            .expect("count");
        row_get(&row, "n").expect("n")
    }

    /// Pruning drops only classes without queued jobs (one waiting for its
    /// retry time counts); a job that comes back to the queue brings its
    /// class back and is claimed again.
    async fn pruned_classes_come_back_with_their_jobs(s: &Store) {
        let sized = Some(Needs {
            vcpus: 2,
            memory_mib: 512,
        });
        s.enqueue("m1", "t", &[job("a", 0, None), job("a", 0, sized)])
            .await
            .expect("enqueue");
        s.enqueue("m2", "t", &[job("b", 1, None)])
            .await
            .expect("enqueue");
        assert_eq!(classes(s).await, 3);
        assert_eq!(s.prune_queue_classes().await.expect("prune"), 0);
        let b = s.claim_next("w1", -1).await.expect("claim").expect("b");
        assert_eq!(b.task, "b");
        let a = s.claim_next("w1", 60_000_000).await.expect("claim");
        let a = a.expect("a");
        let retry = Move::by_worker("w1", JobState::Queued).retry_at(now_micros() + 3_600_000_000);
        assert!(s.transition(&a.uuid, &retry).await.expect("retry").moved());
        assert_eq!(s.prune_queue_classes().await.expect("prune"), 1, "b's");
        assert_eq!(classes(s).await, 2);
        assert_eq!(s.requeue_expired().await.expect("requeue"), (1, 0));
        assert_eq!(classes(s).await, 3);
        let again = s.claim_next("w2", 60_000_000).await.expect("claim");
        assert_eq!(again.expect("b again").uuid, b.uuid);
        let last = s.claim_next("w2", 60_000_000).await.expect("claim");
        assert_ne!(last.expect("the other a").uuid, a.uuid, "a waits");
        assert!(s
            .claim_next("w2", 60_000_000)
            .await
            .expect("claim")
            .is_none());
        assert_eq!(s.prune_queue_classes().await.expect("prune"), 2);
        assert_eq!(classes(s).await, 1, "the waiting job's class stays");
    }

    #[tokio::test]
    async fn pruned_classes_come_back_with_their_jobs_sqlite() {
        let dir = tempfile::tempdir().expect("tempdir");
        pruned_classes_come_back_with_their_jobs(&sqlite(&dir).await).await;
    }

    #[tokio::test]
    async fn pruned_classes_come_back_with_their_jobs_postgres() {
        let (s, name) = pg_store().await;
        pruned_classes_come_back_with_their_jobs(&s).await;
        pg_drop(s, &name).await;
    }
}
