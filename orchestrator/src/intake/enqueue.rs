//! The one handler every intake calls: a message goes through the field
//! mappings and the rules, and the jobs it asks for are stored in the queue
//! in one transaction (a message id seen before stores nothing and returns
//! the jobs it made the first time). With a [`Recorder`], every message
//! newly stored is also appended to a CSV file (`serve --record-csv`).

use std::path::PathBuf;
use std::sync::{Arc, RwLock};

use crate::rules::{JobRequest, Mappings, Message, Rules};
use crate::store::{Enqueued, NewQueuedJob, QueuedMessage, Store, StoreError};
use crate::yaml::FileError;

use super::jobs_csv::Recorder;

use super::HandleError;

/// Rules and mappings in force, plus queue defaults.
pub struct Intake {
    /// Swapped whole by [`Intake::reload`]; a message is evaluated against
    /// one version of the rules, never half of two.
    rules: RwLock<Arc<Rules>>,
    /// Where the rules came from (reloads read it again).
    rules_path: Option<PathBuf>,
    pub mappings: Mappings,
    /// Attempts per job (1 + retries of infrastructure errors).
    pub max_attempts: i64,
    /// The image store, to record each job's VM size at enqueue when its
    /// rule names an image (see [`Intake::with_images`]).
    images_dir: Option<PathBuf>,
    /// The git cache a push message syncs (a mapping filling `cache_repo`).
    pub cache: Option<crate::cache::Cache>,
    /// Where stored messages are recorded as CSV, if anywhere.
    pub recorder: Option<Recorder>,
}

#[derive(Debug, thiserror::Error)]
pub enum EnqueueError {
    #[error(transparent)]
    Store(#[from] StoreError),
}

impl From<EnqueueError> for HandleError {
    fn from(e: EnqueueError) -> HandleError {
        HandleError::Retry(crate::util::full(&e))
    }
}

impl Intake {
    /// A push message (its mapping fills `cache_repo`) syncs that
    /// repository of the git cache before the rules run, through the same
    /// code as the webhook, so jobs it queues see the pushed commit. A
    /// repository the cache does not mirror is ignored; a failed sync is
    /// logged (jobs then sync it again themselves).
    async fn sync_pushed(&self, msg: &Message) {
        let Some(cache) = &self.cache else { return };
        let extracted = self.mappings.extract(msg);
        let Some(repo) = extracted.fields.get("cache_repo") else {
            return;
        };
        use crate::cache::notify::{find, sync_one_async, NotifyError};
        let (c, name) = (cache.clone(), repo.clone());
        let Ok(Some(path)) = tokio::task::spawn_blocking(move || find(&c, &name)).await else {
            tracing::debug!("message {:?}: {repo} is not mirrored", msg.id);
            return;
        };
        match sync_one_async(cache.clone(), path.as_str().to_string()).await {
            Ok((path, outcome)) => {
                tracing::info!("message {:?}: cache sync of {path}: {outcome:?}", msg.id)
            }
            Err(NotifyError::Unknown(p)) => {
                tracing::debug!("message {:?}: {p} is not mirrored", msg.id)
            }
            Err(e) => tracing::warn!(
                "message {:?}: cache sync: {}",
                msg.id,
                crate::util::full(&e)
            ),
        }
    }
}

/// The queue record of a job request.
pub fn queued_job(j: &JobRequest, max_attempts: i64) -> NewQueuedJob {
    NewQueuedJob {
        item: j.item.clone(),
        item_type: j.item_type.clone(),
        arch: j.arch.clone(),
        task: j.task.clone(),
        repo: j.repo.clone(),
        git_ref: j.git_ref.clone(),
        path: j.path.clone(),
        priority: i64::from(j.priority),
        image: j.image.clone(),
        max_attempts,
        needs: None,
        timeout_secs: j.timeout.and_then(|t| i64::try_from(t).ok()),
    }
}

impl Intake {
    pub fn new(
        rules: Rules,
        rules_path: Option<PathBuf>,
        mappings: Mappings,
        max_attempts: i64,
    ) -> Intake {
        Intake {
            rules: RwLock::new(Arc::new(rules)),
            rules_path,
            mappings,
            max_attempts,
            images_dir: None,
            cache: None,
            recorder: None,
        }
    }

    /// Records every message stored from now on to `recorder`'s file.
    pub fn with_recorder(mut self, recorder: Option<Recorder>) -> Intake {
        self.recorder = recorder;
        self
    }

    /// Records the vCPUs and memory of each job whose rule names an image
    /// found in `images_dir` (for placement); others get the worker's
    /// default size.
    pub fn with_images(mut self, images_dir: PathBuf) -> Intake {
        self.images_dir = Some(images_dir);
        self
    }

    /// The rules in force now.
    pub fn rules(&self) -> Arc<Rules> {
        match self.rules.read() {
            Ok(r) => r.clone(),
            Err(poisoned) => poisoned.into_inner().clone(),
        }
    }

    /// Reads the rules file again. On success the new rules replace the
    /// old ones at once (returns how many rules are now in force); on
    /// error nothing changes: the service keeps its last good rules.
    pub fn reload(&self) -> Result<usize, FileError> {
        let Some(path) = &self.rules_path else {
            return Ok(self.rules().len());
        };
        let fresh = Rules::load(path)?;
        let n = fresh.len();
        match self.rules.write() {
            Ok(mut r) => *r = Arc::new(fresh),
            Err(poisoned) => *poisoned.into_inner() = Arc::new(fresh),
        }
        Ok(n)
    }

    /// Evaluates `msg` and stores its jobs. A message without an id gets a
    /// fresh one (it cannot be recognised when sent again).
    pub async fn handle(&self, store: &Store, msg: &Message) -> Result<Enqueued, EnqueueError> {
        // A message sent again (a redelivery) is answered below from what
        // its first delivery stored: its push is not synced again.
        let seen = match &msg.id {
            Some(id) => store.message_seen(id).await?,
            None => false,
        };
        if !seen {
            self.sync_pushed(msg).await;
        }
        let eval = self.rules().evaluate(&self.mappings, msg);
        for s in &eval.skipped {
            tracing::warn!(
                "message {:?}: rule {} task {} skipped: {}",
                msg.id,
                s.rule,
                s.task,
                s.reason
            );
        }
        let jobs: Vec<NewQueuedJob> = eval
            .jobs
            .iter()
            .map(|j| {
                let mut q = queued_job(j, self.max_attempts);
                q.needs = match (&self.images_dir, &q.image) {
                    (Some(dir), Some(image)) => crate::images::needs(dir, image),
                    _ => None,
                };
                q
            })
            .collect();
        let id = msg
            .id
            .clone()
            .unwrap_or_else(|| format!("local-{}", uuid::Uuid::new_v4()));
        // Holds the rules asked for (`hold_on_failure`), job by job.
        let holds: Vec<Option<crate::store::NewReservation>> = eval
            .jobs
            .iter()
            .map(|j| {
                j.hold.as_ref().map(|h| crate::store::NewReservation {
                    requester: h.requester.clone(),
                    ssh_key: h.ssh_key.clone(),
                    ttl_secs: i64::try_from(h.secs).unwrap_or(i64::MAX),
                    git_repo: None,
                    git_ref: None,
                    limit: i64::from(h.count),
                    allow_packages: false,
                })
            })
            .collect();
        let r = if holds.iter().any(Option::is_some) {
            store
                .enqueue_with_holds(&id, &msg.topic, &jobs, &holds)
                .await?
        } else {
            store.enqueue(&id, &msg.topic, &jobs).await?
        };
        if let (Some(rec), false) = (&self.recorder, r.duplicate) {
            // The jobs are stored: a recording failure must not make the
            // message come again (it would be a duplicate, never recorded).
            let m = QueuedMessage {
                message_id: id,
                topic: msg.topic.clone(),
                jobs,
            };
            if let Err(e) = rec.record(&m) {
                tracing::error!(
                    "message {}: not recorded: {}",
                    m.message_id,
                    crate::util::full(&e)
                );
            }
        }
        Ok(r)
    }
}
