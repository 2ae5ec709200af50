//! The hosts that run jobs: each worker writes its capacity and use here
//! (at start and on each heartbeat), so `ferrotron host status` shows every
//! host and a job no live host could ever hold ends in `error`.

use super::queue::to_i64;
use super::{now_micros, row_get, Store, StoreError};
use crate::job::{Actor, Cause, JobState, Move};
use crate::placement::{never_fits, Capacity, Needs, Usage};

/// A host counts as live this long after its last heartbeat: long enough
/// that a restart does not make its jobs look unplaceable.
pub const HOST_FRESH_MICROS: i64 = 10 * 60 * 1_000_000;

/// One host's row.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HostRecord {
    pub name: String,
    /// The worker (`host:pid:random`) now running there.
    pub worker: String,
    pub capacity: Capacity,
    pub used: Usage,
    pub started_at: i64,
    pub heartbeat: i64,
}

fn int<T: TryFrom<i64>>(r: &sqlx::any::AnyRow, col: &str, or: T) -> Result<T, StoreError> {
    Ok(T::try_from(row_get::<i64>(r, col)?).unwrap_or(or))
}

impl Store {
    /// Creates or updates `host`'s row (its heartbeat).
    pub async fn put_host(&self, host: &HostRecord) -> Result<(), StoreError> {
        let mut tx = self.begin().await?;
        sqlx::query(
            "INSERT INTO hosts (name, worker, vcpus, memory_mib, max_vms, used_vcpus, \
             used_memory_mib, running, started_at, heartbeat) \
             VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10) \
             ON CONFLICT (name) DO UPDATE SET worker = excluded.worker, vcpus = excluded.vcpus, \
             memory_mib = excluded.memory_mib, max_vms = excluded.max_vms, \
             used_vcpus = excluded.used_vcpus, used_memory_mib = excluded.used_memory_mib, \
             running = excluded.running, started_at = excluded.started_at, \
             heartbeat = excluded.heartbeat",
        )
        .bind(host.name.clone())
        .bind(host.worker.clone())
        .bind(i64::from(host.capacity.vcpus))
        .bind(to_i64(host.capacity.memory_mib))
        .bind(i64::from(host.capacity.max_vms))
        .bind(i64::from(host.used.vcpus))
        .bind(to_i64(host.used.memory_mib))
        .bind(i64::from(host.used.vms))
        .bind(host.started_at)
        .bind(host.heartbeat)
        .execute(&mut *tx.tx)
        .await?;
        tx.commit().await
    }

    /// Every host known, by name.
    pub async fn hosts(&self) -> Result<Vec<HostRecord>, StoreError> {
        let rows = sqlx::query(
            "SELECT name, worker, vcpus, memory_mib, max_vms, used_vcpus, used_memory_mib, \
             running, started_at, heartbeat FROM hosts ORDER BY name",
        )
        .fetch_all(&self.pool)
        .await?;
        rows.iter()
            .map(|r| {
                Ok(HostRecord {
                    name: row_get(r, "name")?,
                    worker: row_get(r, "worker")?,
                    capacity: Capacity {
                        vcpus: int(r, "vcpus", u32::MAX)?,
                        memory_mib: int(r, "memory_mib", u64::MAX)?,
                        max_vms: int(r, "max_vms", u32::MAX)?,
                    },
                    used: Usage {
                        vcpus: int(r, "used_vcpus", 0)?,
                        memory_mib: int(r, "used_memory_mib", 0)?,
                        vms: int(r, "running", 0)?,
                    },
                    started_at: row_get(r, "started_at")?,
                    heartbeat: row_get(r, "heartbeat")?,
                })
            })
            .collect()
    }

    /// Moves to `error` every queued job that no live host (heartbeat
    /// within [`HOST_FRESH_MICROS`]) could ever hold, with a message
    /// saying why; a job without recorded needs counts as `default`.
    /// Returns how many. Nothing happens while no host is live.
    pub async fn fail_unplaceable(&self, default: Needs) -> Result<usize, StoreError> {
        let now = now_micros();
        let live: Vec<Capacity> = self
            .hosts()
            .await?
            .into_iter()
            .filter(|h| h.heartbeat >= now - HOST_FRESH_MICROS)
            .map(|h| h.capacity)
            .collect();
        if live.is_empty() {
            return Ok(0);
        }
        let rows = sqlx::query(
            "SELECT j.uuid, COALESCE(j.vcpus, $2) AS need_vcpus, \
             COALESCE(j.memory_mib, $3) AS need_memory FROM jobs j \
             WHERE j.queued = 1 AND j.state = 'queued' AND NOT EXISTS (SELECT 1 FROM hosts h \
             WHERE h.heartbeat >= $1 AND h.vcpus >= COALESCE(j.vcpus, $2) \
             AND h.memory_mib >= COALESCE(j.memory_mib, $3))",
        )
        .bind(now - HOST_FRESH_MICROS)
        .bind(i64::from(default.vcpus))
        .bind(to_i64(default.memory_mib))
        .fetch_all(&self.pool)
        .await?;
        let mut failed = 0;
        for r in rows {
            let uuid: String = row_get(&r, "uuid")?;
            let needs = Needs {
                vcpus: int(&r, "need_vcpus", u32::MAX)?,
                memory_mib: int(&r, "need_memory", u64::MAX)?,
            };
            let Some(why) = never_fits(needs, &live) else {
                continue;
            };
            // Only a job still queued: one claimed meanwhile runs.
            let mv = Move::new(JobState::Error, Actor::Operator)
                .only_from(JobState::Queued)
                .caused_by(Cause::BadInput)
                .because(why);
            failed += usize::from(self.transition(&uuid, &mv).await?.moved());
        }
        Ok(failed)
    }
}
