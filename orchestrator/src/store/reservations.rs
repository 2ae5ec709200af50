//! Reservations: a root VM kept for a task author until it expires or is
//! released. A `reservation` is a queued job of its own (task
//! [`RESERVATION_TASK`]), so it waits for the same capacity as jobs; a
//! `hold` keeps the VM of a failed job. The row says who asked (their
//! public key, their token's name), how long, and once the VM is up, how
//! to reach it; the scheduler that holds the VM ends it.

use sqlx::any::AnyRow;

use super::queue::{enqueue_in, NewQueuedJob};
use super::{now_micros, row_get, Store, StoreError};
use crate::job::{Actor, JobState, Move};

/// The task name of a reservation's job.
pub const RESERVATION_TASK: &str = "ferrotron.reservation";

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ReservationKind {
    /// Asked for (`ferrotron reserve`, `POST /api/v1/reservations`).
    Reservation,
    /// A failed job's VM kept (`hold_on_failure`).
    Hold,
}

impl ReservationKind {
    pub fn as_str(self) -> &'static str {
        match self {
            ReservationKind::Reservation => "reservation",
            ReservationKind::Hold => "hold",
        }
    }
}

/// One reservation's row.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Reservation {
    pub id: String,
    pub kind: ReservationKind,
    /// A reservation's own job, or the failed job a hold keeps.
    pub job: String,
    /// The token's name that asked (`cli` from the command line).
    pub requester: String,
    /// The requester's public key (one OpenSSH line).
    pub ssh_key: String,
    pub ttl_secs: i64,
    pub created_at: i64,
    /// Set when the VM is ready: then + the TTL (and extensions).
    pub expires_at: Option<i64>,
    pub git_repo: Option<String>,
    pub git_ref: Option<String>,
    /// Where the VM runs and its SSH forward (on that host's loopback).
    pub host: Option<String>,
    pub port: Option<i64>,
    /// The guest's host key (OpenSSH public key line).
    pub host_key: Option<String>,
    pub vm_name: Option<String>,
    /// A hold asked by a rule: VMs its requester may have held at once.
    pub hold_limit: Option<i64>,
    pub release_requested: bool,
    /// Its VM reaches its image's package repositories through a proxy on
    /// its host (`allow: [packages]`).
    pub allow_packages: bool,
    pub ended_at: Option<i64>,
    pub end_reason: Option<String>,
}

impl Reservation {
    /// `waiting` (for capacity or its boot), `ready`, or `ended`.
    pub fn status(&self) -> &'static str {
        match (self.ended_at, self.port) {
            (Some(_), _) => "ended",
            (None, Some(_)) => "ready",
            (None, None) => "waiting",
        }
    }
}

impl Reservation {
    /// Its VM's SSH forward while it is up: the host it runs on, the
    /// port on that host's loopback, the guest's host key.
    pub fn forward(&self) -> Option<(&str, u16, &str)> {
        if self.ended_at.is_some() {
            return None;
        }
        let port = u16::try_from(self.port?).ok()?;
        Some((self.host.as_deref()?, port, self.host_key.as_deref()?))
    }
}

/// The `known_hosts` line that pins a VM's host key on its forward.
pub fn known_hosts_line(port: u16, host_key: &str) -> String {
    format!("[127.0.0.1]:{port} {host_key}")
}

/// `ssh` to a VM's forward on this host, checking its host key in `file`.
pub fn pinned_ssh(file: &str, port: u16) -> String {
    format!(
        "ssh -o StrictHostKeyChecking=yes -o UserKnownHostsFile={file} -p {port} root@127.0.0.1"
    )
}

/// `ssh` to reservation `id`'s VM through its hypervisor `host` (`-J`),
/// with its host key expected in `ferrotron-<id>.known_hosts`.
pub fn jump_command(id: &str, host: &str, port: u16) -> String {
    let pinned = pinned_ssh(&format!("ferrotron-{id}.known_hosts"), port);
    format!("ssh -J {host} {}", pinned.trim_start_matches("ssh "))
}

/// What a new reservation asks for.
#[derive(Debug, Clone)]
pub struct NewReservation {
    pub requester: String,
    pub ssh_key: String,
    pub ttl_secs: i64,
    pub git_repo: Option<String>,
    pub git_ref: Option<String>,
    /// Active reservations (and holds) one requester may have.
    pub limit: i64,
    /// The VM may reach its image's package repositories (a proxy).
    pub allow_packages: bool,
}

const COLUMNS: &str = "id, kind, job, requester, ssh_key, ttl_secs, created_at, expires_at, \
                       git_repo, git_ref, host, port, host_key, vm_name, hold_limit, \
                       release_requested, allow_packages, ended_at, end_reason";

fn from_row(r: &AnyRow) -> Result<Reservation, StoreError> {
    let kind: String = row_get(r, "kind")?;
    Ok(Reservation {
        id: row_get(r, "id")?,
        kind: match kind.as_str() {
            "hold" => ReservationKind::Hold,
            "reservation" => ReservationKind::Reservation,
            other => {
                return Err(StoreError::Corrupt(format!(
                    "reservation kind `{other}` is not reservation or hold"
                )))
            }
        },
        job: row_get(r, "job")?,
        requester: row_get(r, "requester")?,
        ssh_key: row_get(r, "ssh_key")?,
        ttl_secs: row_get(r, "ttl_secs")?,
        created_at: row_get(r, "created_at")?,
        expires_at: row_get(r, "expires_at")?,
        git_repo: row_get(r, "git_repo")?,
        git_ref: row_get(r, "git_ref")?,
        host: row_get(r, "host")?,
        port: row_get(r, "port")?,
        host_key: row_get(r, "host_key")?,
        vm_name: row_get(r, "vm_name")?,
        hold_limit: row_get(r, "hold_limit")?,
        release_requested: row_get::<i64>(r, "release_requested")? != 0,
        allow_packages: row_get::<i64>(r, "allow_packages")? != 0,
        ended_at: row_get(r, "ended_at")?,
        end_reason: row_get(r, "end_reason")?,
    })
}

fn not_found(id: &str) -> StoreError {
    StoreError::NotFound {
        what: "reservation",
        name: id.to_string(),
    }
}

impl Store {
    /// Queues a reservation's job and records the reservation, in one
    /// transaction; refused when the requester already has `limit` active
    /// ones.
    pub async fn create_reservation(
        &self,
        new: &NewReservation,
        job: &NewQueuedJob,
    ) -> Result<Reservation, StoreError> {
        let mut tx = self.begin().await?;
        check_limit(&mut tx, &new.requester, new.limit).await?;
        let id = uuid::Uuid::new_v4().to_string();
        let queued = enqueue_in(
            &mut tx,
            &format!("reservation-{id}"),
            "ferrotron.reservation",
            std::slice::from_ref(job),
        )
        .await?;
        let job_uuid = queued.jobs.into_iter().next().unwrap_or_default();
        insert(&mut tx, &id, ReservationKind::Reservation, &job_uuid, new).await?;
        tx.commit().await?;
        self.reservation(&id).await?.ok_or_else(|| not_found(&id))
    }

    /// Queues `job` with a hold asked for it, in one transaction (the job
    /// cannot fail before its hold exists).
    pub async fn enqueue_held(
        &self,
        message_id: &str,
        topic: &str,
        job: &NewQueuedJob,
        new: &NewReservation,
    ) -> Result<(String, Reservation), StoreError> {
        let mut tx = self.begin().await?;
        let queued = enqueue_in(&mut tx, message_id, topic, std::slice::from_ref(job)).await?;
        let uuid = queued.jobs.into_iter().next().unwrap_or_default();
        let id = uuid::Uuid::new_v4().to_string();
        insert(&mut tx, &id, ReservationKind::Hold, &uuid, new).await?;
        tx.commit().await?;
        let r = self.reservation(&id).await?.ok_or_else(|| not_found(&id))?;
        Ok((uuid, r))
    }

    /// Queues the jobs of a message (as [`Store::enqueue`]) with the holds
    /// their rules asked for (`holds[i]` for `jobs[i]`), in one
    /// transaction. A message seen before makes nothing new.
    pub async fn enqueue_with_holds(
        &self,
        message_id: &str,
        topic: &str,
        jobs: &[NewQueuedJob],
        holds: &[Option<NewReservation>],
    ) -> Result<super::Enqueued, StoreError> {
        let mut tx = self.begin().await?;
        let queued = enqueue_in(&mut tx, message_id, topic, jobs).await?;
        if !queued.duplicate {
            for (uuid, hold) in queued.jobs.iter().zip(holds) {
                if let Some(new) = hold {
                    let id = uuid::Uuid::new_v4().to_string();
                    insert(&mut tx, &id, ReservationKind::Hold, uuid, new).await?;
                }
            }
        }
        tx.commit().await?;
        Ok(queued)
    }

    /// Whether `requester` may have one more VM held (a hold about to
    /// become ready).
    pub async fn may_hold(&self, requester: &str, limit: i64) -> Result<bool, StoreError> {
        let mut tx = self.begin().await?;
        let ok = check_limit(&mut tx, requester, limit).await.is_ok();
        tx.commit().await?;
        Ok(ok)
    }

    pub async fn reservation(&self, id: &str) -> Result<Option<Reservation>, StoreError> {
        let sql = format!("SELECT {COLUMNS} FROM reservations WHERE id = $1");
        sqlx::query(sqlx::AssertSqlSafe(sql))
            .bind(id.to_string())
            .fetch_optional(&self.pool)
            .await?
            .as_ref()
            .map(from_row)
            .transpose()
    }

    /// The reservation whose job is `job` (a reservation's own job, or the
    /// failed job of a hold), newest first.
    pub async fn reservation_of_job(&self, job: &str) -> Result<Option<Reservation>, StoreError> {
        let sql = format!(
            "SELECT {COLUMNS} FROM reservations WHERE job = $1 ORDER BY created_at DESC, id"
        );
        sqlx::query(sqlx::AssertSqlSafe(sql))
            .bind(job.to_string())
            .fetch_optional(&self.pool)
            .await?
            .as_ref()
            .map(from_row)
            .transpose()
    }

    /// Reservations, newest first: the active ones, or all.
    pub async fn reservations(&self, active_only: bool) -> Result<Vec<Reservation>, StoreError> {
        let filter = if active_only {
            "WHERE ended_at IS NULL"
        } else {
            ""
        };
        let sql = format!(
            "SELECT {COLUMNS} FROM reservations {filter} ORDER BY created_at DESC, id LIMIT 1000"
        );
        let rows = sqlx::query(sqlx::AssertSqlSafe(sql))
            .fetch_all(&self.pool)
            .await?;
        rows.iter().map(from_row).collect()
    }

    /// Active reservations whose VM runs on `host` (for a scheduler that
    /// starts again to take them back).
    pub async fn held_on(&self, host: &str) -> Result<Vec<Reservation>, StoreError> {
        let sql = format!(
            "SELECT {COLUMNS} FROM reservations WHERE ended_at IS NULL AND host = $1 \
             AND port IS NOT NULL ORDER BY created_at, id"
        );
        let rows = sqlx::query(sqlx::AssertSqlSafe(sql))
            .bind(host.to_string())
            .fetch_all(&self.pool)
            .await?;
        rows.iter().map(from_row).collect()
    }

    /// The VM is up: where to reach it; it expires a TTL from now.
    pub async fn reservation_ready(&self, id: &str, reach: &Reach) -> Result<(), StoreError> {
        let mut tx = self.begin().await?;
        let done = sqlx::query(
            "UPDATE reservations SET host = $1, port = $2, host_key = $3, vm_name = $4, \
             expires_at = $5 + ttl_secs * 1000000 WHERE id = $6 AND ended_at IS NULL",
        )
        .bind(reach.host.clone())
        .bind(i64::from(reach.port))
        .bind(reach.host_key.clone())
        .bind(reach.vm_name.clone())
        .bind(now_micros())
        .bind(id.to_string())
        .execute(&mut *tx.tx)
        .await?;
        if done.rows_affected() > 0 {
            announce(&mut tx, "ready", id).await?;
        }
        tx.commit().await
    }

    /// Adds `secs` to an active reservation's time, up to `max_ttl_secs`
    /// from now; returns it.
    pub async fn extend_reservation(
        &self,
        id: &str,
        secs: i64,
        max_ttl_secs: i64,
    ) -> Result<Reservation, StoreError> {
        let r = self.reservation(id).await?.ok_or_else(|| not_found(id))?;
        if r.ended_at.is_some() {
            return Err(StoreError::Conflict(format!(
                "reservation {id} has ended ({}); nothing to extend",
                r.end_reason.as_deref().unwrap_or("ended")
            )));
        }
        let now = now_micros();
        let mut tx = self.begin().await?;
        match r.expires_at {
            Some(at) => {
                let new = at.max(now) + secs * 1_000_000;
                if new - now > max_ttl_secs * 1_000_000 {
                    return Err(StoreError::Conflict(format!(
                        "reservation {id} would last {} s more, past the longest allowed ({max_ttl_secs} s)",
                        (new - now) / 1_000_000
                    )));
                }
                sqlx::query("UPDATE reservations SET expires_at = $1 WHERE id = $2")
                    .bind(new)
                    .bind(id.to_string())
                    .execute(&mut *tx.tx)
                    .await?;
            }
            // Not up yet: a longer TTL, counted from when it is.
            None => {
                let ttl = r.ttl_secs + secs;
                if ttl > max_ttl_secs {
                    return Err(StoreError::Conflict(format!(
                        "reservation {id} would last {ttl} s, past the longest allowed ({max_ttl_secs} s)"
                    )));
                }
                sqlx::query("UPDATE reservations SET ttl_secs = $1 WHERE id = $2")
                    .bind(ttl)
                    .bind(id.to_string())
                    .execute(&mut *tx.tx)
                    .await?;
            }
        }
        tx.commit().await?;
        self.reservation(id).await?.ok_or_else(|| not_found(id))
    }

    /// Asks for a reservation's end: its holder destroys the VM at its next
    /// look; a reservation still queued is cancelled and ends now.
    pub async fn release_reservation(&self, id: &str) -> Result<Reservation, StoreError> {
        let r = self.reservation(id).await?.ok_or_else(|| not_found(id))?;
        if r.ended_at.is_some() {
            return Err(StoreError::Conflict(format!(
                "reservation {id} has already ended ({})",
                r.end_reason.as_deref().unwrap_or("ended")
            )));
        }
        {
            let mut tx = self.begin().await?;
            sqlx::query("UPDATE reservations SET release_requested = 1 WHERE id = $1")
                .bind(id.to_string())
                .execute(&mut *tx.tx)
                .await?;
            tx.commit().await?;
        }
        if r.kind == ReservationKind::Hold && r.port.is_none() {
            self.end_reservation(id, "released before the job failed")
                .await?;
        }
        if r.kind == ReservationKind::Reservation {
            let cancel = Move::new(JobState::Cancelled, Actor::Operator)
                .only_from(JobState::Queued)
                .because("reservation released before it started");
            if self.transition(&r.job, &cancel).await?.moved() {
                self.end_reservation(id, "released before it started")
                    .await?;
            }
        }
        self.reservation(id).await?.ok_or_else(|| not_found(id))
    }

    /// Makes `owner` the holder of job `uuid`'s lease (a service taking
    /// back a reservation it detached before a restart).
    pub async fn take_lease(
        &self,
        uuid: &str,
        owner: &str,
        lease_micros: i64,
    ) -> Result<(), StoreError> {
        let mut tx = self.begin().await?;
        sqlx::query(
            "UPDATE jobs SET lease_owner = $1, lease_expires = $2 WHERE uuid = $3 \
             AND state = 'running'",
        )
        .bind(owner.to_string())
        .bind(now_micros() + lease_micros)
        .bind(uuid.to_string())
        .execute(&mut *tx.tx)
        .await?;
        tx.commit().await
    }

    /// The VM size recorded for job `uuid` at enqueue, if any.
    pub async fn job_needs(
        &self,
        uuid: &str,
    ) -> Result<Option<crate::placement::Needs>, StoreError> {
        let r = sqlx::query("SELECT vcpus, memory_mib FROM jobs WHERE uuid = $1")
            .bind(uuid.to_string())
            .fetch_optional(&self.pool)
            .await?;
        let Some(r) = r else { return Ok(None) };
        let (v, m): (Option<i64>, Option<i64>) =
            (row_get(&r, "vcpus")?, row_get(&r, "memory_mib")?);
        Ok(match (v, m) {
            (Some(v), Some(m)) => Some(crate::placement::Needs {
                vcpus: u32::try_from(v).unwrap_or(u32::MAX),
                memory_mib: u64::try_from(m).unwrap_or(0),
            }),
            _ => None,
        })
    }

    /// Ends a reservation (its VM is gone) with the reason.
    pub async fn end_reservation(&self, id: &str, reason: &str) -> Result<(), StoreError> {
        let mut tx = self.begin().await?;
        let done = sqlx::query(
            "UPDATE reservations SET ended_at = $1, end_reason = $2 \
             WHERE id = $3 AND ended_at IS NULL",
        )
        .bind(now_micros())
        .bind(reason.to_string())
        .bind(id.to_string())
        .execute(&mut *tx.tx)
        .await?;
        if done.rows_affected() > 0 {
            announce(&mut tx, "ended", id).await?;
        }
        tx.commit().await
    }

    /// Reservations whose job is no longer held by any worker (its host's
    /// service has been away past the lease) and whose time is up: ended,
    /// their jobs finished. Their VMs are reaped by that host (the reaper
    /// destroys a held VM once its time is up). Returns how many.
    pub async fn end_orphaned_reservations(&self) -> Result<usize, StoreError> {
        let now = now_micros();
        let sql = format!(
            "SELECT {COLUMNS} FROM reservations WHERE ended_at IS NULL AND expires_at < $1"
        );
        let rows = sqlx::query(sqlx::AssertSqlSafe(sql))
            .bind(now)
            .fetch_all(&self.pool)
            .await?;
        let mut n = 0;
        for r in rows.iter().map(from_row) {
            let r = r?;
            let held = sqlx::query(
                "SELECT uuid FROM jobs WHERE uuid = $1 AND lease_expires >= $2 \
                 AND state IN ('scheduled', 'booting', 'running', 'reporting')",
            )
            .bind(r.job.clone())
            .bind(now)
            .fetch_optional(&self.pool)
            .await?;
            if held.is_some() && r.kind == ReservationKind::Reservation {
                continue;
            }
            if r.kind == ReservationKind::Reservation {
                for to in [JobState::Reporting, JobState::Passed] {
                    let mv = Move::new(to, Actor::Operator)
                        .because("reservation expired while its host's service was away");
                    self.transition(&r.job, &mv).await?;
                }
            }
            self.end_reservation(&r.id, "expired while its host's service was away")
                .await?;
            n += 1;
        }
        Ok(n)
    }
}

/// How to reach a ready VM.
#[derive(Debug, Clone)]
pub struct Reach {
    pub host: String,
    pub port: u16,
    pub host_key: String,
    pub vm_name: String,
}

/// The message of reservation `id`'s `event`, as the row now is in `tx`.
async fn announce(tx: &mut super::WriteTx, event: &str, id: &str) -> Result<(), StoreError> {
    let sql = format!("SELECT {COLUMNS} FROM reservations WHERE id = $1");
    let row = sqlx::query(sqlx::AssertSqlSafe(sql))
        .bind(id.to_string())
        .fetch_one(&mut *tx.tx)
        .await?;
    super::outbox::reservation_moved(tx, event, &from_row(&row)?).await
}

async fn check_limit(
    tx: &mut super::WriteTx,
    requester: &str,
    limit: i64,
) -> Result<(), StoreError> {
    let r = sqlx::query(
        "SELECT COUNT(*) AS n FROM reservations WHERE requester = $1 AND ended_at IS NULL \
         AND (kind = 'reservation' OR port IS NOT NULL)",
    )
    .bind(requester.to_string())
    .fetch_one(&mut *tx.tx)
    .await?;
    let n: i64 = row_get(&r, "n")?;
    if n >= limit {
        return Err(StoreError::Conflict(format!(
            "`{requester}` has {n} active reservation(s), the most one requester may have \
             ({limit}); release one first"
        )));
    }
    Ok(())
}

async fn insert(
    tx: &mut super::WriteTx,
    id: &str,
    kind: ReservationKind,
    job: &str,
    new: &NewReservation,
) -> Result<(), StoreError> {
    sqlx::query(
        "INSERT INTO reservations (id, kind, job, requester, ssh_key, ttl_secs, created_at, \
         git_repo, git_ref, hold_limit, allow_packages) \
         VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11)",
    )
    .bind(id.to_string())
    .bind(kind.as_str())
    .bind(job.to_string())
    .bind(new.requester.clone())
    .bind(new.ssh_key.clone())
    .bind(new.ttl_secs)
    .bind(now_micros())
    .bind(new.git_repo.clone())
    .bind(new.git_ref.clone())
    .bind((kind == ReservationKind::Hold).then_some(new.limit))
    .bind(i64::from(new.allow_packages))
    .execute(&mut *tx.tx)
    .await?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn new(limit: i64) -> NewReservation {
        NewReservation {
            requester: "alice".into(),
            ssh_key: "ssh-ed25519 AAAA alice".into(),
            ttl_secs: 3600,
            git_repo: None,
            git_ref: None,
            limit,
            allow_packages: false,
        }
    }

    fn job() -> NewQueuedJob {
        let mut j = crate::store::lifecycle::tests::job();
        j.task = RESERVATION_TASK.into();
        j
    }

    /// A VM that is up and one that ended each have their message, written
    /// with the change (once: ending twice writes one); no outbox, none.
    #[tokio::test]
    async fn ready_and_ended_reservations_have_messages_sqlite() {
        let dir = tempfile::tempdir().expect("tmp");
        let url = crate::store::default_url(dir.path());
        let store = Store::open(&url).await.expect("open").with_outbox();
        ready_and_ended_reservations_have_messages(&store).await;
        let quiet = Store::open(&url).await.expect("open");
        let r = quiet
            .create_reservation(&new(5), &job())
            .await
            .expect("create");
        quiet.end_reservation(&r.id, "released").await.expect("end");
        let rows = store.outbox_claim(100, 10, 20).await.expect("claim");
        assert!(
            rows.iter()
                .all(|m| !m.topic.starts_with("ferrotron.reservation.")),
            "{rows:?}"
        );
    }

    #[tokio::test]
    async fn ready_and_ended_reservations_have_messages_postgres() {
        let (s, name) = crate::store::queue::tests::pg_store().await;
        let s = s.with_outbox();
        ready_and_ended_reservations_have_messages(&s).await;
        crate::store::queue::tests::pg_drop(s, &name).await;
    }

    /// What a reservation may reach is kept with it (migration 0013), for
    /// the service that takes its VM back.
    #[tokio::test]
    async fn what_a_reservation_may_reach_is_kept() {
        let dir = tempfile::tempdir().expect("tmp");
        let store = Store::open(&crate::store::default_url(dir.path()))
            .await
            .expect("open");
        let (s, name) = crate::store::queue::tests::pg_store().await;
        for store in [&store, &s] {
            let plain = store
                .create_reservation(&new(2), &job())
                .await
                .expect("create");
            let allowed = NewReservation {
                allow_packages: true,
                ..new(2)
            };
            let allowed = store
                .create_reservation(&allowed, &job())
                .await
                .expect("create");
            let read = |id: String| async move {
                store.reservation(&id).await.expect("read").expect("there")
            };
            assert!(!read(plain.id).await.allow_packages);
            assert!(read(allowed.id).await.allow_packages);
        }
        crate::store::queue::tests::pg_drop(s, &name).await;
    }

    async fn ready_and_ended_reservations_have_messages(store: &Store) {
        let r = store
            .create_reservation(&new(1), &job())
            .await
            .expect("create");
        let reach = Reach {
            host: "hv1".into(),
            port: 2222,
            host_key: "ssh-ed25519 BBBB".into(),
            vm_name: format!("ferrotron-{}", r.job),
        };
        store.reservation_ready(&r.id, &reach).await.expect("ready");
        store
            .end_reservation(&r.id, "released by alice")
            .await
            .expect("end");
        store
            .end_reservation(&r.id, "again")
            .await
            .expect("end twice");
        let rows = store.outbox_claim(100, 10, 20).await.expect("claim");
        let mine: Vec<_> = rows
            .iter()
            .filter(|m| m.topic.starts_with("ferrotron.reservation."))
            .collect();
        let topics: Vec<&str> = mine.iter().map(|m| m.topic.as_str()).collect();
        assert_eq!(
            topics,
            ["ferrotron.reservation.ready", "ferrotron.reservation.ended"]
        );
        let up = &mine[0].body["reservation"];
        assert_eq!(up["id"], r.id.as_str());
        assert_eq!(up["job"], r.job.as_str());
        assert_eq!(up["status"], "ready");
        assert_eq!(up["host"], "hv1");
        assert_eq!(up["port"], 2222);
        assert_eq!(up["host_key"], "ssh-ed25519 BBBB");
        assert!(up["expires_at"].is_string(), "{up}");
        assert_eq!(up["known_hosts"], "[127.0.0.1]:2222 ssh-ed25519 BBBB");
        assert_eq!(
            up["ssh_jump_command"],
            format!(
                "ssh -J hv1 -o StrictHostKeyChecking=yes \
                 -o UserKnownHostsFile=ferrotron-{}.known_hosts -p 2222 root@127.0.0.1",
                r.id
            )
        );
        let gone = &mine[1].body["reservation"];
        assert_eq!(gone["status"], "ended");
        assert_eq!(gone["end_reason"], "released by alice");
        assert!(gone.get("ssh_jump_command").is_none(), "{gone}");
        assert!(gone.get("known_hosts").is_none(), "{gone}");
        // The requester's own key is not broadcast.
        assert!(!mine[0].body.to_string().contains("AAAA alice"));
    }

    #[tokio::test]
    async fn reservations_queue_become_ready_extend_and_end_within_limits() {
        let dir = tempfile::tempdir().expect("tmp");
        let store = Store::open(&crate::store::default_url(dir.path()))
            .await
            .expect("open");
        let r = store
            .create_reservation(&new(1), &job())
            .await
            .expect("create");
        assert_eq!(r.status(), "waiting");
        let j = store.get_job(&r.job).await.expect("get").expect("job");
        assert_eq!(j.state, JobState::Queued);
        // One per requester here.
        let e = store
            .create_reservation(&new(1), &job())
            .await
            .expect_err("limit");
        assert!(e.to_string().contains("most one requester"), "{e}");

        // A worker takes it (a queued one is cancelled on release).
        let claimed = store
            .claim_next("w", 60_000_000)
            .await
            .expect("claim")
            .expect("job");
        assert_eq!(claimed.uuid, r.job);
        let reach = Reach {
            host: "h".into(),
            port: 2222,
            host_key: "ssh-ed25519 BBBB".into(),
            vm_name: format!("ferrotron-{}", r.job),
        };
        store.reservation_ready(&r.id, &reach).await.expect("ready");
        let ready = store.reservation(&r.id).await.expect("get").expect("some");
        assert_eq!(ready.status(), "ready");
        let at = ready.expires_at.expect("expiry");
        let longer = store
            .extend_reservation(&r.id, 600, 7200)
            .await
            .expect("extend");
        assert_eq!(longer.expires_at, Some(at + 600_000_000));
        let e = store
            .extend_reservation(&r.id, 86_400, 7200)
            .await
            .expect_err("past the maximum");
        assert!(e.to_string().contains("longest allowed"), "{e}");
        assert_eq!(store.held_on("h").await.expect("held").len(), 1);

        let released = store.release_reservation(&r.id).await.expect("release");
        assert!(released.release_requested);
        assert_eq!(released.status(), "ready", "the holder ends it");
        store.end_reservation(&r.id, "released").await.expect("end");
        let ended = store.reservation(&r.id).await.expect("get").expect("some");
        assert_eq!(ended.status(), "ended");
        assert!(store.release_reservation(&r.id).await.is_err());
        // The limit counts active ones only.
        let queued = store
            .create_reservation(&new(1), &job())
            .await
            .expect("again");
        let gone = store
            .release_reservation(&queued.id)
            .await
            .expect("release");
        assert_eq!(gone.status(), "ended");
        let j = store.get_job(&queued.job).await.expect("get").expect("job");
        assert_eq!(j.state, JobState::Cancelled);
    }
}
