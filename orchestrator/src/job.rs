//! The job lifecycle: an explicit state machine whose every transition is
//! checked and recorded with its time.

use serde::{Deserialize, Serialize};

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

impl JobState {
    pub fn is_final(self) -> bool {
        matches!(
            self,
            JobState::Passed | JobState::Failed | JobState::Error | JobState::Cancelled
        )
    }

    /// The one place that says which transitions exist.
    pub fn can_become(self, to: JobState) -> bool {
        use JobState::*;
        if self.is_final() {
            return false;
        }
        matches!(
            (self, to),
            (_, Cancelled | Error)
                | (Queued, Scheduled)
                | (Scheduled, Booting | Queued)
                // A retry: an infrastructure error (collecting results
                // included), a service shutdown, or a lease that expired
                // because the worker died.
                | (Booting | Running | Reporting, Queued)
                | (Booting, Running)
                | (Running, Reporting)
                | (Reporting, Passed | Failed)
        )
    }
}

impl std::fmt::Display for JobState {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let s = serde_json::to_value(self).ok();
        f.write_str(s.as_ref().and_then(|v| v.as_str()).unwrap_or("?"))
    }
}

#[derive(Debug, thiserror::Error)]
#[error("job {job}: invalid transition {from} -> {to}")]
pub struct InvalidTransition {
    pub job: String,
    pub from: JobState,
    pub to: JobState,
}

#[derive(Debug, Clone, Serialize)]
pub struct Transition {
    pub state: JobState,
    pub at: String,
}

/// A job's state and the history of how it got there.
#[derive(Debug, Clone, Serialize)]
pub struct JobRecord {
    pub id: String,
    pub state: JobState,
    pub transitions: Vec<Transition>,
}

impl JobRecord {
    pub fn new(id: String) -> JobRecord {
        JobRecord {
            id,
            state: JobState::Queued,
            transitions: vec![Transition {
                state: JobState::Queued,
                at: crate::util::now_rfc3339(),
            }],
        }
    }

    pub fn advance(&mut self, to: JobState) -> Result<(), InvalidTransition> {
        if !self.state.can_become(to) {
            return Err(InvalidTransition {
                job: self.id.clone(),
                from: self.state,
                to,
            });
        }
        self.state = to;
        self.transitions.push(Transition {
            state: to,
            at: crate::util::now_rfc3339(),
        });
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn happy_path_and_rejections() {
        let mut j = JobRecord::new("j1".into());
        for s in [
            JobState::Scheduled,
            JobState::Booting,
            JobState::Running,
            JobState::Reporting,
            JobState::Passed,
        ] {
            j.advance(s).expect("valid");
        }
        assert_eq!(j.transitions.len(), 6);
        let err = j.advance(JobState::Running).expect_err("final");
        assert_eq!(
            err.to_string(),
            "job j1: invalid transition passed -> running"
        );
        let mut k = JobRecord::new("j2".into());
        assert!(k.advance(JobState::Running).is_err());
        k.advance(JobState::Cancelled).expect("cancel from queued");
    }
}
