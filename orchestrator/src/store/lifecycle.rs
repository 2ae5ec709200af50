//! The one function that changes a stored job's state: it reads the job,
//! checks the actor's guard (lease, expiry, expected state) and the
//! transition ([`JobState::check`]), applies the move's effects (lease,
//! attempts, timestamps, exit status: [`Move::effects`]) with an UPDATE
//! guarded on the state it read, and records the transition row, all in
//! the caller's transaction. Claims, runner phases, retries, shutdown
//! requeues, lease expiry, placement, the API's cancel and put go through
//! it.

use super::jobs::{insert_transition, TransitionRow};
use super::pick::{add_load_in, note_class_in};
use super::{row_get, Store, StoreError, WriteTx};
use crate::job::{Actor, InvalidTransition, JobState, LeaseEffect, Move};

/// What a [`Store::transition`] did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Transitioned {
    /// The job moved from `from` to the move's state.
    Moved {
        from: JobState,
    },
    /// The actor does not hold the job (its lease is another's or gone,
    /// it has not expired, or the job left the expected state meanwhile).
    NotHeld {
        state: JobState,
    },
    /// The state machine forbids the move from the job's current state.
    Refused(InvalidTransition),
    NotFound,
}

impl Transitioned {
    pub fn moved(&self) -> bool {
        matches!(self, Transitioned::Moved { .. })
    }
}

/// [`Store::transition`] inside a caller's transaction, at time `at`.
pub(super) async fn transition_in(
    tx: &mut WriteTx,
    uuid: &str,
    mv: &Move,
    at: i64,
) -> Result<Transitioned, StoreError> {
    let row = sqlx::query("SELECT state, lease_owner, lease_expires FROM jobs WHERE uuid = $1")
        .bind(uuid.to_string())
        .fetch_optional(&mut *tx.tx)
        .await?;
    let Some(row) = row else {
        return Ok(Transitioned::NotFound);
    };
    let stored: String = row_get(&row, "state")?;
    let from = JobState::parse_stored(uuid, &stored)?;
    let lease: Option<String> = row_get(&row, "lease_owner")?;
    let expires: Option<i64> = row_get(&row, "lease_expires")?;
    let held = match &mv.actor {
        Actor::Worker { owner } => lease.as_deref() == Some(owner.as_str()),
        Actor::LeaseExpiry { now } => from.is_in_progress() && expires.is_some_and(|e| e < *now),
        Actor::Claim { .. } => from == JobState::Queued,
        Actor::Operator => true,
    };
    if !held || mv.only_from.is_some_and(|s| s != from) {
        return Ok(Transitioned::NotHeld { state: from });
    }
    if let Err(e) = from.check(uuid, mv.to) {
        return Ok(Transitioned::Refused(e));
    }
    let fx = mv.effects();
    let (lease_mode, owner, until) = match &fx.lease {
        LeaseEffect::Take { owner, until } => (1i64, Some(owner.clone()), Some(*until)),
        LeaseEffect::Keep => (0, None, None),
        LeaseEffect::Release => (2, None, None),
    };
    let changed = sqlx::query(
        "UPDATE jobs SET state = $1, \
         lease_owner = CASE WHEN $2 = 1 THEN $3 WHEN $2 = 2 THEN NULL ELSE lease_owner END, \
         lease_expires = CASE WHEN $2 = 1 THEN $4 WHEN $2 = 2 THEN NULL ELSE lease_expires END, \
         host = CASE WHEN $2 = 1 THEN $3 ELSE host END, \
         attempts = CASE WHEN attempts + $5 < 0 THEN 0 ELSE attempts + $5 END, \
         started_at = CASE WHEN $6 = 1 THEN COALESCE(started_at, $7) ELSE started_at END, \
         finished_at = CASE WHEN $8 = 1 THEN $7 WHEN $1 = 'queued' THEN NULL \
                       ELSE finished_at END, \
         exit_status = COALESCE($9, exit_status), \
         not_before = COALESCE($10, not_before), last_error = COALESCE($11, last_error) \
         WHERE uuid = $12 AND state = $13",
    )
    .bind(mv.to.as_str().to_string())
    .bind(lease_mode)
    .bind(owner)
    .bind(until)
    .bind(fx.attempts)
    .bind(i64::from(fx.started))
    .bind(at)
    .bind(i64::from(fx.finished))
    .bind(fx.exit_status)
    .bind(mv.retry_at)
    .bind(mv.reason.clone())
    .bind(uuid.to_string())
    .bind(stored)
    .execute(&mut *tx.tx)
    .await?
    .rows_affected();
    if changed != 1 {
        return Ok(Transitioned::NotHeld { state: from });
    }
    insert_transition(tx, uuid, Some(from), &TransitionRow { state: mv.to, at }).await?;
    if mv.to == JobState::Queued {
        note_class_in(tx, uuid).await?;
    }
    let load = i64::from(mv.to.is_in_progress()) - i64::from(from.is_in_progress());
    if load != 0 {
        add_load_in(tx, uuid, load).await?;
    }
    Ok(Transitioned::Moved { from })
}

impl Store {
    /// Applies `mv` to job `uuid` now, in a transaction of its own.
    pub async fn transition(&self, uuid: &str, mv: &Move) -> Result<Transitioned, StoreError> {
        let mut tx = self.begin().await?;
        let done = transition_in(&mut tx, uuid, mv, super::now_micros()).await?;
        if done.moved() {
            tx.commit().await?;
        }
        Ok(done)
    }
}

#[cfg(test)]
pub(super) mod tests {
    use super::*;
    use crate::store::{NewQueuedJob, Page};

    /// A queued job of task `hello` (other store tests use it too).
    pub(in crate::store) fn job() -> NewQueuedJob {
        NewQueuedJob {
            item: "hello-1.0-1.fc40".into(),
            item_type: "koji_build".into(),
            arch: "x86_64".into(),
            task: "hello".into(),
            repo: "/srv/tasks".into(),
            git_ref: String::new(),
            path: "hello".into(),
            priority: 0,
            image: None,
            max_attempts: 1,
            needs: None,
            timeout_secs: None,
        }
    }

    async fn store(dir: &tempfile::TempDir) -> Store {
        let url = format!("sqlite://{}?mode=rwc", dir.path().join("l.db").display());
        Store::open(&url).await.expect("open")
    }

    /// A state the code does not know (a newer version wrote it, or a
    /// hand edit) is reported with the job and the value, by every read
    /// and by a move, never read as `error`.
    #[tokio::test]
    async fn an_unknown_stored_state_is_an_error_naming_job_and_value() {
        let dir = tempfile::tempdir().expect("tempdir");
        let s = store(&dir).await;
        let uuid = s.enqueue("m1", "t", &[job()]).await.expect("enqueue").jobs[0].clone();
        sqlx::query("UPDATE jobs SET state = 'exploded' WHERE uuid = $1")
            .bind(uuid.clone())
            .execute(&s.pool)
            .await
            .expect("corrupt the state");
        let want = format!("job {uuid}: unknown stored state `exploded`");
        let got = s.get_job(&uuid).await.expect_err("get");
        assert!(got.to_string().starts_with(&want), "{got}");
        let listed = s
            .list_jobs(&Default::default(), Page { page: 0, limit: 10 })
            .await
            .expect_err("list");
        assert!(listed.to_string().starts_with(&want), "{listed}");
        let moved = s
            .transition(&uuid, &Move::new(JobState::Cancelled, Actor::Operator))
            .await
            .expect_err("move");
        assert!(moved.to_string().starts_with(&want), "{moved}");
        let cancel = s.cancel_job(&uuid).await.expect_err("cancel");
        assert!(matches!(cancel, StoreError::UnknownState(_)), "{cancel}");
    }

    /// Guards: a worker moves only a job it holds; a lease expiry only an
    /// expired lease; `only_from` only from that state; a refused
    /// transition changes nothing and records no transition row.
    #[tokio::test]
    async fn guards_and_refusals_change_nothing() {
        let dir = tempfile::tempdir().expect("tempdir");
        let s = store(&dir).await;
        let uuid = s.enqueue("m1", "t", &[job()]).await.expect("enqueue").jobs[0].clone();
        let c = s
            .claim_next("w1", 60_000_000)
            .await
            .expect("claim")
            .expect("job");
        assert_eq!(c.uuid, uuid);
        let by = |w: &str, to| Move::by_worker(w, to);
        assert_eq!(
            s.transition(&uuid, &by("w2", JobState::Booting))
                .await
                .expect("w2"),
            Transitioned::NotHeld {
                state: JobState::Scheduled
            }
        );
        let expiry = Move::new(JobState::Queued, Actor::LeaseExpiry { now: 0 });
        assert!(!s.transition(&uuid, &expiry).await.expect("expiry").moved());
        let unplaceable = Move::new(JobState::Error, Actor::Operator).only_from(JobState::Queued);
        assert!(!s
            .transition(&uuid, &unplaceable)
            .await
            .expect("only")
            .moved());
        match s
            .transition(&uuid, &by("w1", JobState::Passed))
            .await
            .expect("skip")
        {
            Transitioned::Refused(e) => {
                assert_eq!(
                    e.to_string(),
                    format!("job {uuid}: invalid transition scheduled -> passed")
                )
            }
            other => panic!("{other:?}"),
        }
        for to in [
            JobState::Booting,
            JobState::Running,
            JobState::Reporting,
            JobState::Passed,
        ] {
            assert!(s
                .transition(&uuid, &by("w1", to))
                .await
                .expect("move")
                .moved());
        }
        let j = s.get_job(&uuid).await.expect("get").expect("job");
        assert_eq!((j.state, j.exit_status), (JobState::Passed, Some(0)));
        assert!(j.started_at.is_some() && j.finished_at.is_some());
        let states: Vec<_> = j.transitions.iter().map(|t| t.state).collect();
        use JobState::*;
        assert_eq!(
            states,
            [Queued, Scheduled, Booting, Running, Reporting, Passed]
        );
        assert_eq!(
            s.transition("nope", &by("w1", Running))
                .await
                .expect("gone"),
            Transitioned::NotFound
        );
    }
}
