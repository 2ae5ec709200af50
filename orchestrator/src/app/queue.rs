//! The job queue's commands: submit, trigger, cancel, put, idle/resume,
//! host status, and moving queued jobs between installations as CSV.

use std::path::Path;

use super::App;
use crate::exit::{ExitStatus, HasExitStatus};
use crate::job::JobState;
use crate::rules::Message;
use crate::store::{Enqueued, HostRecord, Job, JobUpdate, NewQueuedJob, StoreError};

/// A cancelled job: its state before, and the job now.
#[derive(Debug, Clone)]
pub struct Cancelled {
    pub was: JobState,
    pub job: Job,
}

/// What `host status` shows.
#[derive(Debug, Clone)]
pub struct HostStatus {
    /// This host (or every host) is idle.
    pub idle: bool,
    /// Jobs per state in the whole queue.
    pub counts: Vec<(String, i64)>,
    /// Jobs this host is running.
    pub in_progress: usize,
    /// Messages accepted.
    pub messages: i64,
    /// Every host's capacity and use.
    pub hosts: Vec<HostRecord>,
}

#[derive(Debug, thiserror::Error)]
pub enum TriggerError {
    #[error("this server has no rules (start it with `ferrotron serve --rules FILE`)")]
    NoRules,
    #[error(transparent)]
    Store(#[from] StoreError),
}

impl HasExitStatus for TriggerError {
    fn exit_status(&self) -> ExitStatus {
        match self {
            TriggerError::NoRules => ExitStatus::BadInput,
            TriggerError::Store(_) => ExitStatus::Infrastructure,
        }
    }
}

/// What `ferrotron jobs replay` did.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Replayed {
    /// Messages stored now, and their jobs.
    pub messages: usize,
    pub jobs: usize,
    /// Messages this installation had already (replayed before, or
    /// recorded here): nothing stored for them.
    pub duplicates: usize,
}

#[derive(Debug, thiserror::Error)]
pub enum JobsFileError {
    #[error(transparent)]
    Csv(#[from] crate::intake::jobs_csv::JobsCsvError),
    #[error(transparent)]
    Store(#[from] StoreError),
    #[error("writing {path}")]
    Write {
        path: String,
        #[source]
        source: std::io::Error,
    },
}

impl HasExitStatus for JobsFileError {
    /// A bad file is bad input; the store or the disk infrastructure.
    fn exit_status(&self) -> ExitStatus {
        match self {
            JobsFileError::Csv(_) => ExitStatus::BadInput,
            JobsFileError::Store(_) | JobsFileError::Write { .. } => ExitStatus::Infrastructure,
        }
    }
}

impl App {
    /// Queues one job directly (no rules); returns its UUID.
    pub async fn submit(&self, job: &NewQueuedJob) -> Result<String, StoreError> {
        let id = format!("submit-{}", uuid::Uuid::new_v4());
        let r = self
            .store
            .enqueue(&id, "ferrotron.submit", std::slice::from_ref(job))
            .await?;
        Ok(r.jobs.into_iter().next().unwrap_or_default())
    }

    /// Puts a message through the rules into the queue (`ferrotron
    /// trigger`, `POST /api/v1/messages`, AMQP).
    pub async fn trigger(&self, msg: &Message) -> Result<Enqueued, TriggerError> {
        let intake = self.intake.as_ref().ok_or(TriggerError::NoRules)?;
        intake
            .handle(&self.store, msg)
            .await
            .map_err(|crate::intake::enqueue::EnqueueError::Store(e)| TriggerError::Store(e))
    }

    /// Cancels a queued or running job: a queued job never starts; a
    /// running one's VM is destroyed by its scheduler at the next lease
    /// renewal. An unknown or finished job is an error.
    pub async fn cancel(&self, uuid: &str) -> Result<Cancelled, StoreError> {
        let (was, job) = self.store.cancel_job(uuid).await?;
        Ok(Cancelled { was, job })
    }

    /// Creates a job record or moves it to a new state (`PUT
    /// /api/v1/jobs/UUID`, `run --report`).
    pub async fn put_job(&self, uuid: &str, update: &JobUpdate) -> Result<Job, StoreError> {
        self.store.put_job(uuid, update).await
    }

    /// The job, or `NotFound`.
    pub async fn job(&self, uuid: &str) -> Result<Job, StoreError> {
        self.store
            .get_job(uuid)
            .await?
            .ok_or_else(|| StoreError::NotFound {
                what: "job",
                name: uuid.to_string(),
            })
    }

    /// Stops (`true`) or resumes the scheduling of jobs on this host, or
    /// on every host sharing the store (`all`); intake keeps recording
    /// jobs meanwhile. Resuming this host does not lift an `--all` idle.
    pub async fn set_idle(&self, idle: bool, all: bool) -> Result<(), StoreError> {
        let flag = if all {
            crate::scheduler::IDLE_FLAG.to_string()
        } else {
            crate::scheduler::host_idle_flag(&self.settings().host_name)
        };
        let value = idle.then(|| crate::store::now_micros().to_string());
        self.store.set_flag(&flag, value.as_deref()).await
    }

    /// Whether this host is idle, the queue's counts, this host's jobs in
    /// progress, the messages accepted and every host.
    pub async fn host_status(&self) -> Result<HostStatus, StoreError> {
        let here = self.settings().host_name.clone();
        Ok(HostStatus {
            idle: crate::scheduler::is_idle(&self.store, &here).await?,
            counts: self.store.queue_counts().await?,
            in_progress: self.store.in_progress_on(&here).await?,
            messages: self.store.message_count().await?,
            hosts: self.store.hosts().await?,
        })
    }

    /// Queues the jobs of a CSV file (see `intake::jobs_csv`) in one
    /// transaction: every row is checked first and a bad one stores
    /// nothing; messages already here (same message id) are skipped, so
    /// replaying a file twice creates no duplicates.
    pub async fn replay_jobs(&self, file: &Path) -> Result<Replayed, JobsFileError> {
        let mut messages = crate::intake::jobs_csv::read_file(file)?;
        // VM sizes come from this installation's images, as at intake.
        for j in messages.iter_mut().flat_map(|m| m.jobs.iter_mut()) {
            j.needs = j
                .image
                .as_deref()
                .and_then(|i| crate::images::needs(&self.settings.images_dir, i));
        }
        let mut out = Replayed::default();
        for e in self.store.enqueue_batch(&messages).await? {
            if e.duplicate {
                out.duplicates += 1;
            } else {
                out.messages += 1;
                out.jobs += e.jobs.len();
            }
        }
        Ok(out)
    }

    /// Writes the jobs in `state` (normally `queued`) to a CSV file that
    /// `jobs replay` reads; returns how many. The file appears whole or
    /// not at all (written beside it, then renamed).
    pub async fn export_jobs(&self, state: JobState, file: &Path) -> Result<usize, JobsFileError> {
        let messages = self.store.queued_jobs_in(state).await?;
        let write = |source| JobsFileError::Write {
            path: file.display().to_string(),
            source,
        };
        let bytes = crate::intake::jobs_csv::to_csv(&messages, true).map_err(write)?;
        let dir = match file.parent() {
            Some(d) if !d.as_os_str().is_empty() => d,
            _ => Path::new("."),
        };
        let mut tmp = tempfile::NamedTempFile::new_in(dir).map_err(write)?;
        std::io::Write::write_all(&mut tmp, &bytes).map_err(write)?;
        tmp.persist(file).map_err(|e| write(e.error))?;
        Ok(messages.iter().map(|m| m.jobs.len()).sum())
    }
}
