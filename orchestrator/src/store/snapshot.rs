//! What backups and restores ask of the store: a consistent copy of a
//! SQLite database while it is in use, which jobs it holds, whether an
//! installation already has a history, and putting back in the queue the
//! jobs a backup caught in progress.

use std::path::Path;

use sqlx::any::AnyPoolOptions;

use super::{row_get, Backend, Store, StoreError};

/// A worker beats every 5 s: one heard within six beats is running.
pub const LIVE_WITHIN_MICROS: i64 = 30 * 1_000_000;
use crate::job::{Actor, JobState, Move, IN_PROGRESS_SQL};

/// How much history an installation's database holds (restore refuses
/// to overwrite one that has any, unless told to).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Occupancy {
    pub jobs: i64,
    pub results: i64,
    /// Hosts whose worker sent a heartbeat in the last
    /// [`LIVE_WITHIN_MICROS`]: a service is running.
    pub live_hosts: Vec<String>,
}

impl Occupancy {
    pub fn has_history(&self) -> bool {
        self.jobs > 0 || self.results > 0
    }
}

impl Store {
    /// Writes a transactionally consistent copy of this SQLite database to
    /// `dest` (`VACUUM INTO`: one read transaction, so writers carry on
    /// and the copy is the database as of one commit).
    pub async fn snapshot_sqlite(&self, dest: &Path) -> Result<(), StoreError> {
        if self.backend != Backend::Sqlite {
            return Err(StoreError::Conflict(
                "a SQLite snapshot of a PostgreSQL database".into(),
            ));
        }
        sqlx::query("VACUUM INTO $1")
            .bind(dest.display().to_string())
            .execute(&self.pool)
            .await?;
        Ok(())
    }

    /// Every job's UUID.
    pub async fn job_uuids(&self) -> Result<Vec<String>, StoreError> {
        let rows = sqlx::query("SELECT uuid FROM jobs ORDER BY uuid")
            .fetch_all(&self.pool)
            .await?;
        rows.iter().map(|r| row_get(r, "uuid")).collect()
    }

    /// Jobs and results stored.
    pub async fn history_counts(&self) -> Result<(i64, i64), StoreError> {
        let r = sqlx::query(
            "SELECT (SELECT COUNT(*) FROM jobs) AS jobs, (SELECT COUNT(*) FROM results) AS results",
        )
        .fetch_one(&self.pool)
        .await?;
        Ok((row_get(&r, "jobs")?, row_get(&r, "results")?))
    }

    /// Makes a restored database the installation's own: the hosts of the
    /// installation it was copied from are forgotten (workers register
    /// again when they start) and queued jobs that a worker held when the
    /// database was copied (their workers are gone) go back to `queued`
    /// without using up an attempt. Returns those jobs with the state each
    /// was in.
    pub async fn after_restore(&self) -> Result<Vec<(String, JobState)>, StoreError> {
        {
            let mut tx = self.begin().await?;
            sqlx::query("DELETE FROM hosts")
                .execute(&mut *tx.tx)
                .await?;
            tx.commit().await?;
        }
        let sql = format!(
            "SELECT uuid, state FROM jobs WHERE queued = 1 AND state IN {IN_PROGRESS_SQL} \
             ORDER BY uuid"
        );
        let rows = sqlx::query(sqlx::AssertSqlSafe(sql))
            .fetch_all(&self.pool)
            .await?;
        let mut out = Vec::new();
        for r in rows {
            let uuid: String = row_get(&r, "uuid")?;
            let from = JobState::parse_stored(&uuid, &row_get::<String>(&r, "state")?)?;
            let mv = Move::new(JobState::Queued, Actor::Operator)
                .uncounted()
                .only_from(from)
                .because(format!(
                    "restored from a backup taken while it was {from}: run again"
                ));
            if self.transition(&uuid, &mv).await?.moved() {
                out.push((uuid, from));
            }
        }
        Ok(out)
    }
}

/// What the database at `url` holds, without creating or migrating
/// anything: a SQLite file that does not exist, or a database without
/// Ferrotron's tables, holds nothing.
pub async fn occupancy(url: &str) -> Result<Occupancy, StoreError> {
    sqlx::any::install_default_drivers();
    if Backend::of_url(url) == Backend::Sqlite
        && super::sqlite_path(url).is_none_or(|p| !p.exists())
    {
        return Ok(Occupancy::default());
    }
    let ro = match Backend::of_url(url) {
        // Open without `mode=rwc`: never create the file.
        Backend::Sqlite => match super::sqlite_path(url) {
            Some(p) => format!("sqlite://{}?mode=ro", p.display()),
            None => url.to_string(),
        },
        Backend::Postgres => url.to_string(),
    };
    let pool = AnyPoolOptions::new()
        .max_connections(1)
        .acquire_timeout(std::time::Duration::from_secs(10))
        .connect(&ro)
        .await
        .map_err(|source| StoreError::Connect {
            url: crate::util::redact_url(url),
            source,
        })?;
    let count = |table: &'static str| {
        let pool = pool.clone();
        async move {
            // A missing table (nothing migrated yet) counts as empty.
            let sql = format!("SELECT COUNT(*) AS n FROM {table}");
            match sqlx::query(sqlx::AssertSqlSafe(sql)).fetch_one(&pool).await {
                Ok(r) => row_get::<i64>(&r, "n"),
                Err(_) => Ok(0),
            }
        }
    };
    let jobs = count("jobs").await?;
    let results = count("results").await?;
    let since = super::now_micros() - LIVE_WITHIN_MICROS;
    let live_hosts = match sqlx::query("SELECT name FROM hosts WHERE heartbeat >= $1 ORDER BY name")
        .bind(since)
        .fetch_all(&pool)
        .await
    {
        Ok(rows) => rows
            .iter()
            .map(|r| row_get(r, "name"))
            .collect::<Result<_, _>>()?,
        Err(_) => Vec::new(),
    };
    pool.close().await;
    Ok(Occupancy {
        jobs,
        results,
        live_hosts,
    })
}

/// The database file a SQLite URL names (`None` for PostgreSQL or an
/// in-memory database).
pub fn sqlite_file(url: &str) -> Option<std::path::PathBuf> {
    match Backend::of_url(url) {
        Backend::Sqlite => super::sqlite_path(url),
        Backend::Postgres => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::store::Store;

    #[tokio::test]
    async fn a_snapshot_holds_what_was_committed_and_restored_jobs_requeue() {
        let dir = tempfile::tempdir().expect("tmp");
        let url = crate::store::default_url(dir.path());
        assert_eq!(
            occupancy(&url).await.expect("occupancy"),
            Occupancy::default()
        );
        assert!(
            !dir.path().join("ferrotron.db").exists(),
            "occupancy created it"
        );
        let store = Store::open(&url).await.expect("open");
        let job = crate::store::lifecycle::tests::job();
        let first = store
            .enqueue("m1", "t", std::slice::from_ref(&job))
            .await
            .expect("enqueue");
        let claimed = store
            .claim_next("w", 60_000_000)
            .await
            .expect("claim")
            .expect("a job");
        assert_eq!(claimed.uuid, first.jobs[0]);
        let copy = dir.path().join("copy.db");
        store.snapshot_sqlite(&copy).await.expect("snapshot");
        // Written after the copy: not in it.
        store.enqueue("m2", "t", &[job]).await.expect("enqueue");
        store.close().await;

        let copy_url = format!("sqlite://{}?mode=rwc", copy.display());
        let occ = occupancy(&copy_url).await.expect("occupancy");
        assert_eq!((occ.jobs, occ.results), (1, 0));
        let restored = Store::open(&copy_url).await.expect("open copy");
        assert_eq!(restored.job_uuids().await.expect("uuids"), first.jobs);
        let back = restored.after_restore().await.expect("requeue");
        assert_eq!(back, vec![(first.jobs[0].clone(), JobState::Scheduled)]);
        let j = restored
            .get_job(&first.jobs[0])
            .await
            .expect("get")
            .expect("job");
        assert_eq!(j.state, JobState::Queued);
        assert!(
            j.last_error
                .as_deref()
                .unwrap_or("")
                .contains("restored from a backup"),
            "{j:?}"
        );
        // Nothing more to do a second time.
        assert!(restored.after_restore().await.expect("again").is_empty());
    }
}
