//! Job records: state, what ran where, every state transition with its
//! time (checked by [`JobState::can_become`]), and the job's artifacts.

use sqlx::any::AnyRow;

use super::lifecycle::{transition_in, Transitioned};
use super::query::Binder;
use super::{bind_all, now_micros, row_get, Page, Store, StoreError, WriteTx};
use crate::job::{Actor, Cause, JobState, Move};

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TransitionRow {
    pub state: JobState,
    pub at: i64,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Job {
    pub uuid: String,
    pub state: JobState,
    pub item: String,
    pub item_type: String,
    pub arch: String,
    pub formula: String,
    pub host: Option<String>,
    pub exit_status: Option<i64>,
    pub created_at: i64,
    pub started_at: Option<i64>,
    pub finished_at: Option<i64>,
    /// Why the last attempt ended in error or was retried (queued jobs).
    pub last_error: Option<String>,
    /// The commit its task was resolved to from the git cache.
    pub git_commit: Option<String>,
    /// The image its VM boots from (none for a local task).
    pub image: Option<String>,
    /// The topic of the message that made it (`ferrotron.submit` when
    /// submitted directly).
    pub topic: Option<String>,
    pub transitions: Vec<TransitionRow>,
}

/// What a runner reports about a job. For a new job, `transitions` (if
/// any) is its history from `queued`; for a known job only `state` counts.
#[derive(Debug, Clone)]
pub struct JobUpdate {
    pub state: JobState,
    pub item: String,
    pub item_type: String,
    pub arch: String,
    pub formula: String,
    pub host: Option<String>,
    pub exit_status: Option<i64>,
    pub transitions: Vec<TransitionRow>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Artifact {
    pub path: String,
    pub size: i64,
    pub sha256: String,
    pub created_at: i64,
}

pub(super) fn job_from_row(r: &AnyRow) -> Result<Job, StoreError> {
    let state: String = row_get(r, "state")?;
    let uuid: String = row_get(r, "uuid")?;
    Ok(Job {
        state: JobState::parse_stored(&uuid, &state)?,
        uuid,
        item: row_get(r, "item")?,
        item_type: row_get(r, "item_type")?,
        arch: row_get(r, "arch")?,
        formula: row_get(r, "formula")?,
        host: row_get(r, "host")?,
        exit_status: row_get(r, "exit_status")?,
        created_at: row_get(r, "created_at")?,
        started_at: row_get(r, "started_at")?,
        finished_at: row_get(r, "finished_at")?,
        last_error: row_get(r, "last_error")?,
        git_commit: row_get(r, "git_commit")?,
        image: row_get(r, "image")?,
        topic: row_get(r, "topic")?,
        transitions: Vec::new(),
    })
}

pub(super) const JOB_COLUMNS: &str = "uuid, state, item, item_type, arch, formula, host, exit_status, \
                           created_at, started_at, finished_at, last_error, git_commit, image, topic";

impl Store {
    /// Creates or advances a job record (a runner reporting a job no queue
    /// holds, `ferrotron run --report`): a new job is inserted `queued` and
    /// its reported history replayed through [`transition_in`], a known one
    /// moved to `u.state`, every step checked by the state machine.
    pub async fn put_job(&self, uuid: &str, u: &JobUpdate) -> Result<Job, StoreError> {
        let mut tx = self.begin().await?;
        let current = match sqlx::query("SELECT state FROM jobs WHERE uuid = $1")
            .bind(uuid.to_string())
            .fetch_optional(&mut *tx.tx)
            .await?
        {
            Some(r) => Some(JobState::parse_stored(
                uuid,
                &row_get::<String>(&r, "state")?,
            )?),
            None => None,
        };
        let now = now_micros();
        let mut steps: Vec<TransitionRow> = Vec::new();
        if current.is_none() {
            let mut history = u.transitions.iter();
            let created = match history.next() {
                None => now,
                Some(t) if t.state == JobState::Queued => t.at,
                Some(t) => {
                    return Err(StoreError::Conflict(format!(
                        "job {uuid}: a new job's history starts with `queued`, not `{}`",
                        t.state
                    )))
                }
            };
            sqlx::query(
                "INSERT INTO jobs (uuid, state, item, item_type, arch, formula, host, created_at) \
                 VALUES ($1, 'queued', $2, $3, $4, $5, $6, $7)",
            )
            .bind(uuid.to_string())
            .bind(u.item.clone())
            .bind(u.item_type.clone())
            .bind(u.arch.clone())
            .bind(u.formula.clone())
            .bind(u.host.clone())
            .bind(created)
            .execute(&mut *tx.tx)
            .await?;
            insert_transition(
                &mut tx,
                uuid,
                None,
                &TransitionRow {
                    state: JobState::Queued,
                    at: created,
                },
            )
            .await?;
            steps.extend(history.cloned());
        }
        let reached = steps
            .last()
            .map_or(current.unwrap_or(JobState::Queued), |t| t.state);
        if reached != u.state {
            steps.push(TransitionRow {
                state: u.state,
                at: now,
            });
        }
        // A reported error's exit status says its cause.
        let cause = match u.exit_status {
            Some(2) => Cause::BadInput,
            _ => Cause::Infrastructure,
        };
        for step in &steps {
            let mv = Move::new(step.state, Actor::Operator).caused_by(cause);
            match transition_in(&mut tx, uuid, &mv, step.at).await? {
                Transitioned::Moved { .. } => {}
                Transitioned::Refused(e) => return Err(StoreError::Conflict(e.to_string())),
                other => {
                    return Err(StoreError::Conflict(format!(
                        "job {uuid}: not moved to {} ({other:?})",
                        step.state
                    )))
                }
            }
        }
        if u.host.is_some() {
            sqlx::query("UPDATE jobs SET host = $1 WHERE uuid = $2")
                .bind(u.host.clone())
                .bind(uuid.to_string())
                .execute(&mut *tx.tx)
                .await?;
        }
        tx.commit().await?;
        self.get_job(uuid)
            .await?
            .ok_or_else(|| StoreError::NotFound {
                what: "job",
                name: uuid.to_string(),
            })
    }

    /// Marks a job cancelled (the scheduler acts on the state).
    /// Cancels a job that has not ended: the state it was in, and the job.
    pub async fn cancel_job(&self, uuid: &str) -> Result<(JobState, Job), StoreError> {
        let not_found = || StoreError::NotFound {
            what: "job",
            name: uuid.to_string(),
        };
        let was = match self
            .transition(uuid, &Move::new(JobState::Cancelled, Actor::Operator))
            .await?
        {
            Transitioned::Moved { from } => from,
            Transitioned::NotFound => return Err(not_found()),
            Transitioned::Refused(e) => {
                return Err(StoreError::Conflict(format!(
                    "job {uuid} has already ended ({}); nothing to cancel",
                    e.from
                )))
            }
            Transitioned::NotHeld { state } => {
                return Err(StoreError::Conflict(format!(
                    "job {uuid} changed state meanwhile (now {state}); try again"
                )))
            }
        };
        Ok((was, self.get_job(uuid).await?.ok_or_else(not_found)?))
    }

    pub async fn get_job(&self, uuid: &str) -> Result<Option<Job>, StoreError> {
        let sql = format!("SELECT {JOB_COLUMNS} FROM jobs WHERE uuid = $1");
        let Some(row) = sqlx::query(sqlx::AssertSqlSafe(sql))
            .bind(uuid.to_string())
            .fetch_optional(&self.pool)
            .await?
        else {
            return Ok(None);
        };
        let mut job = job_from_row(&row)?;
        let rows =
            sqlx::query("SELECT state, at FROM job_transitions WHERE job_uuid = $1 ORDER BY id")
                .bind(uuid.to_string())
                .fetch_all(&self.pool)
                .await?;
        for r in rows {
            let s: String = row_get(&r, "state")?;
            job.transitions.push(TransitionRow {
                state: JobState::parse_stored(uuid, &s)?,
                at: row_get(&r, "at")?,
            });
        }
        Ok(Some(job))
    }

    /// Jobs matching `filter`, newest first, a page of them.
    pub async fn list_jobs(
        &self,
        filter: &super::JobFilter,
        page: Page,
    ) -> Result<(Vec<Job>, bool), StoreError> {
        let mut b = Binder::default();
        let w = filter.where_clause(&mut b, None);
        let limit = b.int(page.limit + 1);
        let offset = b.int(page.page.saturating_mul(page.limit));
        let sql = format!(
            "SELECT {JOB_COLUMNS} FROM jobs {w} ORDER BY created_at DESC, uuid \
             LIMIT {limit} OFFSET {offset}"
        );
        let rows = bind_all(sqlx::query(sqlx::AssertSqlSafe(sql)), &b.params)
            .fetch_all(&self.pool)
            .await?;
        let out = rows
            .iter()
            .map(job_from_row)
            .collect::<Result<Vec<_>, _>>()?;
        Ok(page.cut(out))
    }

    /// Records (or replaces) an artifact file already written under the
    /// data folder; given its `content`, a log or task output
    /// ([`crate::search::indexed_file`]) has its lines (re)indexed for
    /// search in the same transaction.
    pub async fn put_artifact(
        &self,
        uuid: &str,
        a: &Artifact,
        content: Option<&[u8]>,
    ) -> Result<(), StoreError> {
        let mut tx = self.begin().await?;
        sqlx::query(
            "INSERT INTO artifacts (job_uuid, path, size, sha256, created_at) \
             VALUES ($1, $2, $3, $4, $5) ON CONFLICT (job_uuid, path) DO UPDATE SET \
             size = excluded.size, sha256 = excluded.sha256, created_at = excluded.created_at",
        )
        .bind(uuid.to_string())
        .bind(a.path.clone())
        .bind(a.size)
        .bind(a.sha256.clone())
        .bind(a.created_at)
        .execute(&mut *tx.tx)
        .await?;
        if let Some(bytes) = content.filter(|_| crate::search::indexed_file(&a.path)) {
            super::search::index_file(&mut tx, self.backend, uuid, &a.path, a.created_at, bytes)
                .await?;
        }
        tx.commit().await
    }

    pub async fn list_artifacts(&self, uuid: &str) -> Result<Vec<Artifact>, StoreError> {
        let rows = sqlx::query(
            "SELECT path, size, sha256, created_at FROM artifacts WHERE job_uuid = $1 ORDER BY path",
        )
        .bind(uuid.to_string())
        .fetch_all(&self.pool)
        .await?;
        rows.iter()
            .map(|r| {
                Ok(Artifact {
                    path: row_get(r, "path")?,
                    size: row_get(r, "size")?,
                    sha256: row_get(r, "sha256")?,
                    created_at: row_get(r, "created_at")?,
                })
            })
            .collect()
    }
}

/// Records that job `uuid` reached `t.state` (from `from`; none: it was
/// just created), and, when messages are published, its
/// `ferrotron.job.<state>` message.
pub(super) async fn insert_transition(
    tx: &mut WriteTx,
    uuid: &str,
    from: Option<JobState>,
    t: &TransitionRow,
) -> Result<(), StoreError> {
    sqlx::query("INSERT INTO job_transitions (job_uuid, state, at) VALUES ($1, $2, $3)")
        .bind(uuid.to_string())
        .bind(t.state.to_string())
        .bind(t.at)
        .execute(&mut *tx.tx)
        .await?;
    super::outbox::job_moved(tx, uuid, from, t).await
}
