//! The job lifecycle: the state enum, the one check of which transitions
//! exist, and what each move does to a job's record besides its state
//! (lease, attempts, timestamps, exit status). The store applies a [`Move`]
//! in one function (`Store::transition`), the only code that changes a
//! stored job's state; the runner only reports phase events.

use serde::{Deserialize, Serialize};

use crate::exit::ExitStatus;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum JobState {
    Queued,
    Scheduled,
    Booting,
    Running,
    Reporting,
    Passed,
    Failed,
    Error,
    Cancelled,
}

/// A job id in its canonical form (lower-case, hyphenated), or `None` if
/// `s` is not a UUID: what every path, link and cursor holding one checks.
pub fn canonical_id(s: &str) -> Option<String> {
    uuid::Uuid::parse_str(s)
        .ok()
        .map(|u| u.hyphenated().to_string())
}

/// Every state, in lifecycle order.
pub const ALL_STATES: [JobState; 9] = [
    JobState::Queued,
    JobState::Scheduled,
    JobState::Booting,
    JobState::Running,
    JobState::Reporting,
    JobState::Passed,
    JobState::Failed,
    JobState::Error,
    JobState::Cancelled,
];

/// The states of a job a worker holds under a lease, as SQL (`IN` list).
pub const IN_PROGRESS_SQL: &str = "('scheduled', 'booting', 'running', 'reporting')";

impl JobState {
    pub fn is_final(self) -> bool {
        matches!(
            self,
            JobState::Passed | JobState::Failed | JobState::Error | JobState::Cancelled
        )
    }

    /// Held by a worker: scheduled to reporting.
    pub fn is_in_progress(self) -> bool {
        matches!(
            self,
            JobState::Scheduled | JobState::Booting | JobState::Running | JobState::Reporting
        )
    }

    pub fn as_str(self) -> &'static str {
        match self {
            JobState::Queued => "queued",
            JobState::Scheduled => "scheduled",
            JobState::Booting => "booting",
            JobState::Running => "running",
            JobState::Reporting => "reporting",
            JobState::Passed => "passed",
            JobState::Failed => "failed",
            JobState::Error => "error",
            JobState::Cancelled => "cancelled",
        }
    }

    /// A state by its name; `None` for anything else.
    pub fn from_name(s: &str) -> Option<JobState> {
        ALL_STATES.into_iter().find(|st| st.as_str() == s)
    }

    /// A state read back from the store: an unknown value is an error that
    /// names the job, never silently some other state.
    pub fn parse_stored(job: &str, value: &str) -> Result<JobState, UnknownState> {
        JobState::from_name(value).ok_or_else(|| UnknownState {
            job: job.to_string(),
            value: value.to_string(),
        })
    }

    /// The one place that says which transitions exist.
    pub fn check(self, job: &str, to: JobState) -> Result<(), InvalidTransition> {
        use JobState::*;
        let allowed = !self.is_final()
            && matches!(
                (self, to),
                (_, Cancelled | Error)
                    | (Queued, Scheduled)
                    // A local run has no VM to boot.
                    | (Scheduled, Booting | Running | Queued)
                    // A retry: an infrastructure error (collecting results
                    // included), a service shutdown, or a lease that expired
                    // because the worker died.
                    | (Booting | Running | Reporting, Queued)
                    | (Booting, Running)
                    | (Running, Reporting)
                    | (Reporting, Passed | Failed)
            );
        if allowed {
            Ok(())
        } else {
            Err(InvalidTransition {
                job: job.to_string(),
                from: self,
                to,
            })
        }
    }
}

impl std::fmt::Display for JobState {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("job {job}: invalid transition {from} -> {to}")]
pub struct InvalidTransition {
    pub job: String,
    pub from: JobState,
    pub to: JobState,
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("job {job}: unknown stored state `{value}` (not one of queued, scheduled, booting, running, reporting, passed, failed, error, cancelled)")]
pub struct UnknownState {
    pub job: String,
    pub value: String,
}

/// Who asks for a move, which decides what guards it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Actor {
    /// A worker taking a queued job under a lease until `lease_until`
    /// (microseconds since the epoch); counts an attempt.
    Claim { owner: String, lease_until: i64 },
    /// The worker that holds the job's lease.
    Worker { owner: String },
    /// The scheduler taking back a job whose lease ended before `now`.
    LeaseExpiry { now: i64 },
    /// Anyone allowed to write (the API's cancel and put, placement):
    /// no lease is checked, only the transition.
    Operator,
}

/// Why a job ends in `error`: decides its exit status.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Cause {
    /// The job's input: formula, image, task source, size.
    BadInput,
    /// Libvirt, boot, SSH, the agent, a time-out, an interruption.
    #[default]
    Infrastructure,
}

/// One state change with everything it does to the job's record.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Move {
    pub to: JobState,
    pub actor: Actor,
    /// Stored as the job's `last_error` (why it failed or was retried).
    pub reason: Option<String>,
    /// A move back to `queued`: not before this time (retry back-off).
    pub retry_at: Option<i64>,
    /// A move back to `queued` that gives the attempt back (a service
    /// shutdown stopped the run, not anything the job did).
    pub uncounted: bool,
    /// For `error`: bad input or infrastructure.
    pub cause: Cause,
    /// Only from this state (else the job is not the actor's to move).
    pub only_from: Option<JobState>,
}

impl Move {
    pub fn new(to: JobState, actor: Actor) -> Move {
        Move {
            to,
            actor,
            reason: None,
            retry_at: None,
            uncounted: false,
            cause: Cause::default(),
            only_from: None,
        }
    }

    /// A move by the worker `owner` that holds the job.
    pub fn by_worker(owner: &str, to: JobState) -> Move {
        Move::new(
            to,
            Actor::Worker {
                owner: owner.to_string(),
            },
        )
    }

    pub fn because(mut self, reason: impl Into<String>) -> Move {
        self.reason = Some(reason.into());
        self
    }

    pub fn caused_by(mut self, cause: Cause) -> Move {
        self.cause = cause;
        self
    }

    pub fn retry_at(mut self, at: i64) -> Move {
        self.retry_at = Some(at);
        self
    }

    pub fn only_from(mut self, state: JobState) -> Move {
        self.only_from = Some(state);
        self
    }

    pub fn uncounted(mut self) -> Move {
        self.uncounted = true;
        self
    }

    /// What the move does to the record besides the state: derived here
    /// and nowhere else.
    pub fn effects(&self) -> Effects {
        let to = self.to;
        let lease = match &self.actor {
            Actor::Claim { owner, lease_until } => LeaseEffect::Take {
                owner: owner.clone(),
                until: *lease_until,
            },
            _ if to.is_final() || to == JobState::Queued => LeaseEffect::Release,
            _ => LeaseEffect::Keep,
        };
        let attempts = match (&self.actor, to) {
            (Actor::Claim { .. }, _) => 1,
            (_, JobState::Queued) if self.uncounted => -1,
            _ => 0,
        };
        Effects {
            lease,
            attempts,
            started: matches!(to, JobState::Booting | JobState::Running),
            finished: to.is_final(),
            exit_status: exit_status(to, self.cause).map(|s| i64::from(s.code())),
        }
    }
}

/// What a [`Move`] does to a job's record.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Effects {
    pub lease: LeaseEffect,
    /// Added to the job's attempts (a claim counts one; an uncounted
    /// requeue gives one back).
    pub attempts: i64,
    /// Sets `started_at` unless already set.
    pub started: bool,
    /// Sets `finished_at`.
    pub finished: bool,
    /// The job's exit status, when the move decides it.
    pub exit_status: Option<i64>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum LeaseEffect {
    Take { owner: String, until: i64 },
    Keep,
    Release,
}

/// The exit status a job in `state` has, as `ferrotron run` documents
/// them: passed 0, failed 1, error 2 (bad input) or 3 (infrastructure).
/// A cancelled or unfinished job has none.
pub fn exit_status(state: JobState, cause: Cause) -> Option<ExitStatus> {
    match state {
        JobState::Passed => Some(ExitStatus::Passed),
        JobState::Failed => Some(ExitStatus::TaskFailed),
        JobState::Error => Some(match cause {
            Cause::BadInput => ExitStatus::BadInput,
            Cause::Infrastructure => ExitStatus::Infrastructure,
        }),
        _ => None,
    }
}

/// A state reached at a time (RFC 3339), as a local run's history.
#[derive(Debug, Clone, Serialize)]
pub struct Reached {
    pub state: JobState,
    pub at: String,
}

/// The history of a job no store holds (a local `ferrotron run`, which
/// reports it with `--report`): built from the runner's phase events
/// through the same transition check.
#[derive(Debug, Clone, Serialize)]
pub struct History {
    pub id: String,
    pub state: JobState,
    pub transitions: Vec<Reached>,
}

impl History {
    pub fn new(id: &str) -> History {
        History {
            id: id.to_string(),
            state: JobState::Queued,
            transitions: vec![Reached {
                state: JobState::Queued,
                at: crate::util::now_rfc3339(),
            }],
        }
    }

    /// Records `to`, reached now.
    pub fn reach(&mut self, to: JobState) -> Result<(), InvalidTransition> {
        self.push(Reached {
            state: to,
            at: crate::util::now_rfc3339(),
        })
    }

    /// Records a state reached at the time it carries.
    pub fn push(&mut self, r: Reached) -> Result<(), InvalidTransition> {
        self.state.check(&self.id, r.state)?;
        self.state = r.state;
        self.transitions.push(r);
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn happy_path_and_rejections() {
        let mut j = History::new("j1");
        for s in [
            JobState::Scheduled,
            JobState::Booting,
            JobState::Running,
            JobState::Reporting,
            JobState::Passed,
        ] {
            j.reach(s).expect("valid");
        }
        assert_eq!(j.transitions.len(), 6);
        let err = j.reach(JobState::Running).expect_err("final");
        assert_eq!(
            err.to_string(),
            "job j1: invalid transition passed -> running"
        );
        let mut k = History::new("j2");
        assert!(k.reach(JobState::Running).is_err());
        k.reach(JobState::Cancelled).expect("cancel from queued");
    }

    #[test]
    fn names_round_trip_and_unknown_values_are_errors() {
        for s in ALL_STATES {
            assert_eq!(JobState::from_name(s.as_str()), Some(s));
            let json = serde_json::to_value(s).expect("json");
            assert_eq!(json, s.as_str());
        }
        let e = JobState::parse_stored("abc", "exploded").expect_err("unknown");
        assert!(e
            .to_string()
            .starts_with("job abc: unknown stored state `exploded`"));
    }

    #[test]
    fn effects_are_derived_from_the_move() {
        let claim = Move::new(
            JobState::Scheduled,
            Actor::Claim {
                owner: "h:1:a".into(),
                lease_until: 9,
            },
        );
        let e = claim.effects();
        assert_eq!(e.attempts, 1);
        assert!(matches!(e.lease, LeaseEffect::Take { until: 9, .. }));
        let back = Move::by_worker("h:1:a", JobState::Queued).uncounted();
        assert_eq!(back.effects().attempts, -1);
        assert_eq!(back.effects().lease, LeaseEffect::Release);
        let boot = Move::by_worker("h:1:a", JobState::Booting).effects();
        assert!(boot.started && !boot.finished && boot.lease == LeaseEffect::Keep);
        let bad = Move::new(JobState::Error, Actor::Operator).caused_by(Cause::BadInput);
        assert_eq!(bad.effects().exit_status, Some(2));
        let infra = Move::new(JobState::Error, Actor::Operator);
        assert_eq!(infra.effects().exit_status, Some(3));
        let cancelled = Move::new(JobState::Cancelled, Actor::Operator).effects();
        assert_eq!((cancelled.exit_status, cancelled.finished), (None, true));
        assert_eq!(
            Move::by_worker("w", JobState::Failed).effects().exit_status,
            Some(1)
        );
    }
}
