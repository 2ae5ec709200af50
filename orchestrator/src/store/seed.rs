//! Finished jobs in bulk, for benchmarks (`ferrotron store seed --jobs`):
//! a job row and its six transitions per job, inserted a few hundred rows
//! per statement, as a busy installation's history would hold them.
//! Their logs go through the service's own path
//! ([`Store::put_artifact`], indexed for search), not through this one.

use super::query::Binder;
use super::{bind_all, Store, StoreError};
use crate::job::JobState;

/// Jobs per INSERT (12 values each, and 6 transitions of 3 values: well
/// under SQLite's 32766 bound values).
const JOBS_PER_INSERT: usize = 400;

/// One finished job.
#[derive(Debug, Clone)]
pub struct SeedJob {
    pub uuid: String,
    /// `passed`, `failed` or `error`.
    pub state: JobState,
    pub item: String,
    pub item_type: String,
    pub task: String,
    pub host: String,
    pub image: String,
    pub created_at: i64,
    /// Taken by a worker: `scheduled`, then `booting`.
    pub started_at: i64,
    /// The VM up, the task started.
    pub running_at: i64,
    pub finished_at: i64,
}

impl Store {
    /// Inserts `jobs` (new uuids, final states) with their history
    /// `queued → scheduled → booting → running → reporting → state`, one
    /// transaction per [`JOBS_PER_INSERT`] jobs.
    pub async fn seed_jobs(&self, jobs: &[SeedJob]) -> Result<(), StoreError> {
        for part in jobs.chunks(JOBS_PER_INSERT) {
            if let Some(j) = part.iter().find(|j| !j.state.is_final()) {
                return Err(StoreError::Conflict(format!(
                    "seeded job {}: state `{}` is not final",
                    j.uuid, j.state
                )));
            }
            let mut b = Binder::default();
            let rows = part
                .iter()
                .map(|j| {
                    let exit = i64::from(j.state != JobState::Passed);
                    format!(
                        "({}, {}, {}, {}, 'x86_64', {}, {}, {}, {}, {}, {}, {}, {}, 'ferrotron.seed')",
                        b.text(&j.uuid),
                        b.text(j.state.as_str()),
                        b.text(&j.item),
                        b.text(&j.item_type),
                        b.text(&j.task),
                        b.text(&j.host),
                        b.int(exit),
                        b.int(j.created_at),
                        b.int(j.started_at),
                        b.int(j.finished_at),
                        b.text(&j.task),
                        b.text(&j.image),
                    )
                })
                .collect::<Vec<_>>()
                .join(", ");
            let mut tx = self.begin().await?;
            let sql = format!(
                "INSERT INTO jobs (uuid, state, item, item_type, arch, formula, host, exit_status, \
                 created_at, started_at, finished_at, task, image, topic) VALUES {rows}"
            );
            bind_all(sqlx::query(sqlx::AssertSqlSafe(sql)), &b.params)
                .execute(&mut *tx.tx)
                .await?;
            let mut b = Binder::default();
            let steps = part
                .iter()
                .flat_map(|j| {
                    [
                        (j, JobState::Queued, j.created_at),
                        (j, JobState::Scheduled, j.started_at),
                        (j, JobState::Booting, j.started_at),
                        (j, JobState::Running, j.running_at),
                        (j, JobState::Reporting, j.finished_at),
                        (j, j.state, j.finished_at),
                    ]
                })
                .map(|(j, state, at)| {
                    format!(
                        "({}, {}, {})",
                        b.text(&j.uuid),
                        b.text(state.as_str()),
                        b.int(at)
                    )
                })
                .collect::<Vec<_>>()
                .join(", ");
            let sql = format!("INSERT INTO job_transitions (job_uuid, state, at) VALUES {steps}");
            bind_all(sqlx::query(sqlx::AssertSqlSafe(sql)), &b.params)
                .execute(&mut *tx.tx)
                .await?;
            tx.commit().await?;
        }
        Ok(())
    }
}
