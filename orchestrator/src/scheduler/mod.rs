//! The scheduler: claims queued jobs from the store (under a lease, so
//! several schedulers on several hosts can share one queue) within this
//! host's capacity, runs each in a fresh VM on a blocking thread, renews
//! its lease while it runs, and records every state, the results (grouped
//! under the job's UUID) and the artifacts in the store.
//!
//! Infrastructure errors (boot, SSH, libvirt) are retried with exponential
//! backoff up to the job's `max_attempts`; a task that ran and failed is
//! final. A job cancelled through the API is seen at the next lease renewal
//! and its VM destroyed through the runner's [`Cancel`].
//!
//! Before a job boots, its task source is settled ([`source`]): a task in
//! a git repository is resolved to a commit through the git cache, the
//! commit recorded on the job, and the formula read at that commit.
//!
//! A job may have a time-out (its own, else the service's `--job-timeout`):
//! a deadline for the whole run (boot + task + collect). When it passes the
//! run is cancelled (the VM destroyed) and the job ends in `error`, not
//! retried. The runner reports `running` and `reporting` as it reaches
//! them, and each is stored then. A run stopped by a service shutdown goes
//! back to the queue without using up one of the job's attempts.

mod libvirt_gate;
mod ready;
mod reservation;
pub mod simhost;
pub mod source;

use std::collections::HashMap;
use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use sha2::{Digest, Sha256};
use tokio::sync::watch;
use tokio::task::JoinSet;

use crate::cancel::Cancel;
use crate::job::{Cause, JobState, Move};
use crate::placement::{Capacity, Ledger, Limits, Needs};
use crate::progress::{Progress, VM_PHASES};
use crate::runner::{self, RunError, RunOutcome, RunRequest};
use crate::settings::Settings;
use crate::store::{
    now_micros, Artifact, ClaimedJob, HostRecord, JobRef, NewResult, Store, StoreError,
    Transitioned,
};

/// The flag (in the store) that stops every host from starting jobs
/// (`ferrotron host idle --all`).
pub const IDLE_FLAG: &str = "idle";

/// How often a scheduler drops the queue's emptied classes.
const PRUNE_EVERY: Duration = Duration::from_secs(60);

/// The flag that stops one host (`ferrotron host idle` there), so an
/// operator drains one hypervisor of a fleet sharing one queue.
pub fn host_idle_flag(host: &str) -> String {
    format!("{IDLE_FLAG}:{host}")
}

/// This machine's name: its row in `hosts`, the prefix of its workers'
/// lease owners (`host:pid:random`) and the scope of `host idle`.
pub fn this_host() -> String {
    std::fs::read_to_string("/proc/sys/kernel/hostname")
        .map(|h| h.trim().to_string())
        .ok()
        .filter(|h| !h.is_empty())
        .unwrap_or_else(|| "localhost".into())
}

/// Whether `host` may not start jobs: idled itself, or every host is.
pub async fn is_idle(store: &Store, host: &str) -> Result<bool, StoreError> {
    Ok(store.get_flag(IDLE_FLAG).await?.is_some()
        || store.get_flag(&host_idle_flag(host)).await?.is_some())
}

#[derive(Debug, Clone)]
pub struct SchedulerConfig {
    /// Most VMs running at once on this host.
    pub capacity: usize,
    /// vCPUs and memory (MiB) the VMs here may have in all; `None`: from
    /// libvirt's node info (see [`crate::placement::Capacity::resolve`]).
    pub max_vcpus: Option<u32>,
    pub max_memory_mib: Option<u64>,
    /// This host's name in the `hosts` table.
    pub host: String,
    /// How long a claim lasts without renewal.
    pub lease: Duration,
    /// How often the queue is looked at when nothing happens.
    pub poll: Duration,
    /// This worker's name in leases (`host:pid:random`).
    pub owner: String,
    /// First retry delay; doubled per attempt, up to `backoff_cap`.
    pub backoff: Duration,
    pub backoff_cap: Duration,
    /// Time-out of a job that has none of its own (boot + task + collect).
    pub job_timeout: Option<Duration>,
    /// VMs to keep restored and waiting, per image (`--ready`); they need
    /// `settings.ready_pool`.
    pub ready: Vec<(String, usize)>,
}

impl SchedulerConfig {
    pub fn new(capacity: usize) -> SchedulerConfig {
        SchedulerConfig::for_host(capacity, &this_host())
    }

    /// A worker of the host named `host` (`--host-name`).
    pub fn for_host(capacity: usize, host: &str) -> SchedulerConfig {
        let host = host.to_string();
        let rand = uuid::Uuid::new_v4().simple().to_string();
        SchedulerConfig {
            capacity: capacity.max(1),
            max_vcpus: None,
            max_memory_mib: None,
            host: host.clone(),
            lease: Duration::from_secs(30),
            poll: Duration::from_millis(500),
            owner: format!("{host}:{}:{}", std::process::id(), &rand[..8]),
            backoff: Duration::from_secs(5),
            backoff_cap: Duration::from_secs(300),
            job_timeout: None,
            ready: Vec::new(),
        }
    }

    fn retry_delay(&self, attempts: i64) -> Duration {
        let exp = u32::try_from(attempts.saturating_sub(1).clamp(0, 16)).unwrap_or(16);
        self.backoff
            .saturating_mul(2u32.saturating_pow(exp))
            .min(self.backoff_cap)
    }
}

/// Runs the scheduler until `stop` becomes true; running jobs are then
/// cancelled (their VMs destroyed) and put back in the queue.
pub async fn run(
    store: Store,
    settings: Arc<Settings>,
    cfg: SchedulerConfig,
    mut stop: watch::Receiver<bool>,
) {
    let cfg = Arc::new(cfg);
    let mut running: JoinSet<()> = JoinSet::new();
    // Which job each task runs, to give its resources back when it ends.
    let mut running_jobs: HashMap<tokio::task::Id, String> = HashMap::new();
    // What the last "host idle" line said, so it is logged on change only.
    let mut idle_waiting: Option<i64> = None;
    // Started before libvirtd (a reboot): wait for it; its node info
    // gives this host's capacity.
    let mut libvirt = libvirt_gate::LibvirtGate::new(&settings.libvirt_uri);
    while !libvirt.up().await {
        tokio::select! {
            _ = tokio::time::sleep(libvirt.retry_in()) => {}
            _ = stop.changed() => {}
        }
        if *stop.borrow() {
            tracing::info!("scheduler {} stopped before libvirt answered", cfg.owner);
            return;
        }
    }
    let (capacity, default_needs) = host_capacity(&settings, &cfg).await;
    let mut ledger = Ledger::new(capacity);
    // VMs kept for people that a stopped service left running here.
    for a in reservation::adopt(&store, &settings, &cfg, &stop).await {
        if let Err(e) = ledger.reserve(&a.key, a.needs) {
            tracing::warn!("reservation {}: {e}; kept anyway", a.key);
        }
        let task = running.spawn(a.keeping);
        running_jobs.insert(task.id(), a.key);
    }
    let mut filler = match (&settings.ready_pool, cfg.ready.is_empty()) {
        (Some(pool), false) => Some(ready::Filler::new(
            pool.clone(),
            cfg.ready.clone(),
            &settings,
        )),
        _ => None,
    };
    let mut beat = Heartbeat::new(&cfg, capacity);
    // Classes of the queue that emptied are dropped now and then (each costs
    // claims a probe that finds nothing, not a wrong pick).
    let mut last_prune = std::time::Instant::now();
    tracing::info!(
        "scheduler {} started: at most {} VM(s), {} vCPU(s) and {} MiB at once",
        cfg.owner,
        capacity.max_vms,
        capacity.vcpus,
        capacity.memory_mib
    );
    loop {
        if *stop.borrow() {
            break;
        }
        match store.requeue_expired().await {
            Ok((0, 0)) => {}
            Ok((r, e)) => tracing::warn!("expired leases: {r} job(s) requeued, {e} marked error"),
            Err(e) => tracing::error!("requeue: {}", crate::util::full(&e)),
        }
        match store.end_orphaned_reservations().await {
            Ok(0) => {}
            Ok(n) => tracing::warn!("{n} reservation(s) of hosts gone away expired: ended"),
            Err(e) => tracing::error!("reservations: {}", crate::util::full(&e)),
        }
        if last_prune.elapsed() >= PRUNE_EVERY {
            last_prune = std::time::Instant::now();
            if let Err(e) = store.prune_queue_classes().await {
                tracing::error!("queue classes: {}", crate::util::full(&e));
            }
        }
        beat.send(&store, ledger.used()).await;
        match store.fail_unplaceable(default_needs).await {
            Ok(0) => {}
            Ok(n) => tracing::warn!("{n} job(s) larger than every host: marked error"),
            Err(e) => tracing::error!("placement: {}", crate::util::full(&e)),
        }
        let idle = match is_idle(&store, &cfg.host).await {
            Ok(i) => i,
            Err(e) => {
                tracing::error!("reading the idle flag: {}", crate::util::full(&e));
                true
            }
        };
        if idle {
            let waiting = store
                .queue_counts()
                .await
                .ok()
                .and_then(|c| c.into_iter().find(|(s, _)| s == "queued").map(|(_, n)| n))
                .unwrap_or(0);
            if idle_waiting != Some(waiting) {
                tracing::info!("host idle: {waiting} job(s) waiting");
                idle_waiting = Some(waiting);
            }
        } else if idle_waiting.take().is_some() {
            tracing::info!("host resumed");
        }
        let hypervisor_up = idle || libvirt.up().await;
        let claimable = |ledger: &Ledger, filler: &Option<ready::Filler>| match filler {
            Some(f) => f.claimable(ledger),
            None => ledger.free(),
        };
        while !idle && hypervisor_up && claimable(&ledger, &filler).vms > 0 {
            let claim = store
                .claim_fitting(
                    &cfg.owner,
                    micros(cfg.lease),
                    claimable(&ledger, &filler),
                    default_needs,
                )
                .await;
            match claim {
                Ok(Some((job, needs))) => {
                    if job.attempts == 1 {
                        // A first claim: the time since the job was made.
                        let waited = now_micros().saturating_sub(job.created_at).max(0);
                        crate::metrics::global()
                            .queue_wait_seconds
                            .observe(waited as f64 / 1e6);
                    }
                    if let Some(f) = &filler {
                        let spec = job.image.as_deref().unwrap_or(crate::images::DEFAULT_IMAGE);
                        let label = crate::images::resolve(&settings.images_dir, spec)
                            .ok()
                            .map(|i| i.label());
                        f.make_room(&mut ledger, label.as_deref(), &job.uuid, needs)
                            .await;
                    }
                    if let Err(e) = ledger.reserve(&job.uuid, needs) {
                        // The claim took only a job that fits: not expected.
                        tracing::error!("job {}: {e}; giving it back", job.uuid);
                        let back = Move::by_worker(&cfg.owner, JobState::Queued)
                            .uncounted()
                            .because(e.to_string());
                        if let Err(e) = store.transition(&job.uuid, &back).await {
                            tracing::error!("job {}: {}", job.uuid, crate::util::full(&e));
                        }
                        break;
                    }
                    tracing::info!(
                        "job {}: claimed ({} for {}; {} vCPU(s), {} MiB)",
                        job.uuid,
                        job.task,
                        job.item,
                        needs.vcpus,
                        needs.memory_mib
                    );
                    let uuid = job.uuid.clone();
                    let task = if job.task == crate::store::RESERVATION_TASK {
                        running.spawn(reservation::run(
                            store.clone(),
                            settings.clone(),
                            cfg.clone(),
                            job,
                            needs,
                            stop.clone(),
                        ))
                    } else {
                        running.spawn(run_job(
                            store.clone(),
                            settings.clone(),
                            cfg.clone(),
                            job,
                            stop.clone(),
                        ))
                    };
                    running_jobs.insert(task.id(), uuid);
                }
                Ok(None) => break,
                Err(e) => {
                    tracing::error!("claim: {}", crate::util::full(&e));
                    break;
                }
            }
        }
        if let Some(f) = filler.as_mut() {
            if !idle && hypervisor_up && !*stop.borrow() {
                f.fill(&settings, &mut ledger);
            }
        }
        let mut ended = None;
        let mut restored = None;
        tokio::select! {
            _ = tokio::time::sleep(cfg.poll) => {}
            Some(done) = running.join_next_with_id(), if !running.is_empty() => {
                let id = match &done {
                    Ok((id, ())) => *id,
                    Err(e) => e.id(),
                };
                if let Some(uuid) = running_jobs.remove(&id) {
                    ledger.release(&uuid);
                    ended = Some(uuid);
                }
            }
            Some(f) = async { match filler.as_mut() { Some(f) => f.next().await, None => None } }, if filler.is_some() => {
                restored = Some(f);
            }
            _ = stop.changed() => {}
        }
        if let Some(f) = filler.as_mut() {
            if let Some(uuid) = ended {
                f.job_ended(&uuid).await;
            }
            if let Some(done) = restored {
                f.filled(&mut ledger, done);
            }
        }
    }
    while running.join_next().await.is_some() {}
    if let Some(f) = filler.as_mut() {
        f.stop(&mut ledger).await;
    }
    beat.send(&store, crate::placement::Usage::default()).await;
    tracing::info!("scheduler {} stopped", cfg.owner);
}

/// This host's capacity (the operator's limits, else libvirt's node info
/// minus a reserve) and the size of a job whose needs were not recorded
/// (the default image's). Without node info and limits, only the VM count
/// limits what runs.
async fn host_capacity(settings: &Settings, cfg: &SchedulerConfig) -> (Capacity, Needs) {
    let limits = Limits {
        max_vcpus: cfg.max_vcpus,
        max_memory_mib: cfg.max_memory_mib,
        max_vms: u32::try_from(cfg.capacity).unwrap_or(u32::MAX),
    };
    let uri = settings.libvirt_uri.clone();
    let images = settings.images_dir.clone();
    let probe = tokio::task::spawn_blocking(move || {
        let node = crate::vm::hypervisor::Hypervisor::connect(&uri).and_then(|h| h.node_size());
        let needs = crate::images::needs(&images, crate::images::DEFAULT_IMAGE);
        (node, needs)
    })
    .await;
    let (node, needs) = match probe {
        Ok((node, needs)) => (node, needs),
        Err(e) => {
            tracing::error!("probing the host's size: {e}");
            return (
                Capacity {
                    vcpus: u32::MAX,
                    memory_mib: u64::MAX,
                    max_vms: limits.max_vms.max(1),
                },
                Needs::FALLBACK,
            );
        }
    };
    let node = match node {
        Ok(n) => Some(n),
        Err(e) => {
            tracing::warn!("libvirt's node info: {}", crate::util::full(&e));
            None
        }
    };
    let capacity = Capacity::resolve(node, limits).unwrap_or_else(|e| {
        tracing::warn!("{e}; counting VMs only");
        Capacity {
            vcpus: limits.max_vcpus.unwrap_or(u32::MAX),
            memory_mib: limits.max_memory_mib.unwrap_or(u64::MAX),
            max_vms: limits.max_vms.max(1),
        }
    });
    (capacity, needs.unwrap_or(Needs::FALLBACK))
}

/// Writes this host's row in the `hosts` table: on start, when its use
/// changes, and at least every [`Heartbeat::EVERY_MICROS`].
struct Heartbeat {
    record: HostRecord,
    last: Option<(crate::placement::Usage, i64)>,
}

impl Heartbeat {
    const EVERY_MICROS: i64 = 5_000_000;

    fn new(cfg: &SchedulerConfig, capacity: Capacity) -> Heartbeat {
        let now = now_micros();
        Heartbeat {
            record: HostRecord {
                name: cfg.host.clone(),
                worker: cfg.owner.clone(),
                capacity,
                used: crate::placement::Usage::default(),
                started_at: now,
                heartbeat: now,
            },
            last: None,
        }
    }

    async fn send(&mut self, store: &Store, used: crate::placement::Usage) {
        let now = now_micros();
        if let Some((u, at)) = self.last {
            if u == used && now - at < Self::EVERY_MICROS {
                return;
            }
        }
        self.record.used = used;
        self.record.heartbeat = now;
        match store.put_host(&self.record).await {
            Ok(()) => self.last = Some((used, now)),
            Err(e) => tracing::error!("host heartbeat: {}", crate::util::full(&e)),
        }
    }
}

fn micros(d: Duration) -> i64 {
    i64::try_from(d.as_micros()).unwrap_or(i64::MAX)
}

/// Why the scheduler cancelled a job's run.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Stop {
    UserCancel,
    LeaseLost,
    Shutdown,
    TimedOut,
}

/// The job's whole-run time-out: its own, else the service's default.
fn job_timeout(job: &ClaimedJob, default: Option<Duration>) -> Option<Duration> {
    job.timeout_secs
        .and_then(|s| u64::try_from(s).ok())
        .filter(|s| *s > 0)
        .map(Duration::from_secs)
        .or(default)
}

async fn run_job(
    store: Store,
    settings: Arc<Settings>,
    cfg: Arc<SchedulerConfig>,
    job: ClaimedJob,
    mut stop: watch::Receiver<bool>,
) {
    let owner = cfg.owner.as_str();
    let uuid = job.uuid.clone();
    let worker = |to: JobState| Move::by_worker(owner, to);
    let advance = |mv: Move| {
        let store = store.clone();
        let uuid = uuid.clone();
        async move { apply(&store, &uuid, &mv).await }
    };
    // The prelude: the task's source (git cache: sync, resolve, record the
    // commit, read the formula at it), off the async threads and under a
    // renewed lease (a first clone may outlast a short lease).
    let prelude = {
        let cache = crate::cache::Cache::new(&settings.data_dir);
        let scratch = settings.data_dir.join("tmp");
        let job = job.clone();
        tokio::task::spawn_blocking(move || {
            std::fs::create_dir_all(&scratch).map_err(source::SourceError::Scratch)?;
            source::prepare(&cache, &scratch, &job)
        })
    };
    let src = match renewing(&store, &cfg, &uuid, prelude).await {
        Ok(Ok(s)) => s,
        Ok(Err(e)) => {
            let msg = crate::util::full(&e);
            tracing::warn!("job {uuid}: {msg}");
            advance(
                worker(JobState::Error)
                    .caused_by(Cause::BadInput)
                    .because(msg),
            )
            .await;
            return;
        }
        Err(e) => {
            let msg = format!("the job's prelude ended abnormally: {e}");
            advance(worker(JobState::Error).because(msg)).await;
            return;
        }
    };
    if let Some(commit) = src.git.as_ref().and_then(|g| g.commit.as_deref()) {
        match store.set_commit(&uuid, owner, commit).await {
            Ok(_) => tracing::info!(
                "job {uuid}: {} `{}` is commit {commit}",
                job.repo,
                job.git_ref
            ),
            Err(e) => tracing::error!("job {uuid}: storing its commit: {}", crate::util::full(&e)),
        }
    }
    // Removed after the run (the runner uploads the task's files from it).
    let _scratch = src.scratch;
    advance(worker(JobState::Booting)).await;
    let cancel = Cancel::new();
    let timeout = job_timeout(&job, cfg.job_timeout);
    let deadline = timeout.map(|t| tokio::time::Instant::now() + t);
    let (states_tx, mut states) = tokio::sync::mpsc::unbounded_channel();
    // The last state stored for this run (the runner reports the rest).
    let mut reached = JobState::Booting;
    // A hold asked for: the VM of a failed run is kept for its requester.
    let hold = match store.reservation_of_job(&uuid).await {
        Ok(Some(h))
            if h.kind == crate::store::ReservationKind::Hold
                && h.ended_at.is_none()
                && h.port.is_none() =>
        {
            Some(h)
        }
        _ => None,
    };
    let req = RunRequest {
        job_id: uuid.clone(),
        git: src.git,
        formula: src.formula,
        item: job.item.clone(),
        item_type: job.item_type.clone(),
        arch: job.arch.clone(),
        image: job.image.clone(),
        keep_on_failure: None,
        hold_on_failure: hold.as_ref().map(|h| h.ssh_key.clone()),
        // The task's own deadline; the whole run's is enforced below.
        timeout,
        events: Some(states_tx),
    };
    let run_settings = settings.clone();
    let run_cancel = cancel.clone();
    let mut handle = tokio::task::spawn_blocking(move || {
        let ui = Progress::new(true, VM_PHASES);
        runner::run(&run_settings, &req, &run_cancel, &ui)
    });
    let renew_every = cfg.lease / 3;
    let mut stopped: Option<Stop> = None;
    let mut states_open = true;
    let result = loop {
        tokio::select! {
            r = &mut handle => break r,
            s = states.recv(), if states_open => match s {
                Some(to) if stopped.is_none() => {
                    store_reached(&store, &uuid, owner, &mut reached, to.state).await;
                }
                Some(_) => {}
                None => states_open = false,
            },
            _ = async {
                match deadline {
                    Some(d) => tokio::time::sleep_until(d).await,
                    None => std::future::pending().await,
                }
            }, if stopped.is_none() => {
                let secs = timeout.map_or(0, |t| t.as_secs());
                tracing::warn!("job {uuid}: time-out of {secs} s reached; destroying its VM");
                cancel.cancel(&format!("the job's time-out ({secs} s)"));
                stopped = Some(Stop::TimedOut);
            }
            _ = tokio::time::sleep(renew_every) => {
                match store.renew_lease(&uuid, owner, micros(cfg.lease)).await {
                    Ok(Some(JobState::Cancelled)) if stopped.is_none() => {
                        tracing::info!("job {uuid}: cancelled; destroying its VM");
                        cancel.cancel("a cancel request");
                        stopped = Some(Stop::UserCancel);
                    }
                    Ok(None) if stopped.is_none() => {
                        tracing::warn!("job {uuid}: lease lost; stopping it");
                        cancel.cancel("the loss of its lease");
                        stopped = Some(Stop::LeaseLost);
                    }
                    Ok(_) => {}
                    Err(e) => tracing::error!("job {uuid}: renewing the lease: {}", crate::util::full(&e)),
                }
            }
            _ = async { let _ = stop.wait_for(|v| *v).await; }, if stopped.is_none() => {
                cancel.cancel("service shutdown");
                stopped = Some(Stop::Shutdown);
            }
        }
    };
    // States the runner reported just before it returned.
    while let Ok(to) = states.try_recv() {
        if stopped.is_none() {
            store_reached(&store, &uuid, owner, &mut reached, to.state).await;
        }
    }
    let result = match result {
        Ok(r) => r,
        Err(e) => Err(RunError::infra(
            "scheduler",
            format!("the job's thread ended abnormally: {e}"),
        )),
    };
    let mut hold = hold;
    if result.is_err() && !matches!(stopped, Some(Stop::UserCancel | Stop::LeaseLost)) {
        // What the run left (its runner.log, the console of a boot that
        // failed) is what explains the error: published as a finished
        // job's files are, readable on the job's page and over the API.
        let job_dir = settings.jobs_dir().join(&uuid);
        if job_dir.is_dir() {
            if let Err(e) = store_artifacts(&store, &settings, &uuid, &job_dir).await {
                tracing::warn!(
                    "job {uuid}: publishing the failed run's logs: {}",
                    crate::util::full(&e)
                );
            }
        }
    }
    match (result, stopped) {
        (_, Some(Stop::UserCancel | Stop::LeaseLost)) => {}
        // An infrastructure error after the shutdown's cancel is most
        // likely the cancel itself (a destroyed VM breaks SSH).
        (Err(RunError::Cancelled(_) | RunError::Infra { .. }), Some(Stop::Shutdown)) => {
            // Not the job's fault: it runs again after the restart, and
            // this run does not count as one of its attempts.
            let why = "interrupted by a service shutdown";
            advance(worker(JobState::Queued).uncounted().because(why)).await;
        }
        (Err(_), Some(Stop::TimedOut)) => {
            let secs = timeout.map_or(0, |t| t.as_secs());
            let msg = format!(
                "timed out: the job's time-out of {secs} s (boot + task + collect) passed; \
                 the run was stopped and its VM destroyed"
            );
            advance(worker(JobState::Error).because(msg)).await;
        }
        (Ok(mut outcome), _) => {
            let held = outcome.held.take();
            finish(&store, &settings, owner, &job, reached, &outcome).await;
            match (held, hold.take()) {
                (Some(vm), Some(h)) => {
                    reservation::hold(store.clone(), settings.clone(), cfg.clone(), h, vm, stop)
                        .await;
                }
                (None, Some(h)) => {
                    let why = if outcome.passed() {
                        "the job passed: nothing to hold"
                    } else {
                        "the job failed but its VM could not be kept"
                    };
                    reservation::drop_hold(&store, &h, why).await;
                }
                // Not asked (a VM is held only when asked).
                (Some(_), None) | (None, None) => {}
            }
        }
        (Err(e @ (RunError::Infra { .. } | RunError::Cancelled(_))), _) => {
            let msg = crate::util::full(&e);
            if job.attempts < job.max_attempts {
                let delay = cfg.retry_delay(job.attempts);
                tracing::warn!(
                    "job {uuid}: infrastructure error (attempt {}/{}), retry in {delay:?}: {msg}",
                    job.attempts,
                    job.max_attempts
                );
                let at = now_micros() + micros(delay);
                // By the phase that failed.
                let cause = match &e {
                    RunError::Infra { phase, .. } => phase,
                    _ => "cancelled",
                };
                crate::metrics::global().retry(cause);
                advance(worker(JobState::Queued).retry_at(at).because(msg)).await;
            } else {
                advance(worker(JobState::Error).because(msg)).await;
            }
        }
        (Err(e), _) => {
            advance(
                worker(JobState::Error)
                    .caused_by(e.cause())
                    .because(crate::util::full(&e)),
            )
            .await;
        }
    }
    // A hold still waiting, for a job that will not run again.
    if let Some(h) = hold {
        if let Ok(Some(j)) = store.get_job(&uuid).await {
            if j.state.is_final() {
                let why = format!("the job ended {}: nothing to hold", j.state);
                reservation::drop_hold(&store, &h, &why).await;
            }
        }
    }
}

/// Awaits `work` while renewing `uuid`'s lease, so a slow prelude does
/// not let the lease expire and the job be claimed twice.
async fn renewing<T>(
    store: &Store,
    cfg: &SchedulerConfig,
    uuid: &str,
    work: tokio::task::JoinHandle<T>,
) -> Result<T, tokio::task::JoinError> {
    tokio::pin!(work);
    loop {
        tokio::select! {
            r = &mut work => return r,
            _ = tokio::time::sleep(cfg.lease / 3) => {
                if let Err(e) = store.renew_lease(uuid, &cfg.owner, micros(cfg.lease)).await {
                    tracing::error!("job {uuid}: renewing the lease: {}", crate::util::full(&e));
                }
            }
        }
    }
}

/// Stores a state the runner reported (`running`, `reporting`) when the
/// state machine allows it from the last one stored.
async fn store_reached(
    store: &Store,
    uuid: &str,
    owner: &str,
    reached: &mut JobState,
    to: JobState,
) {
    if !matches!(to, JobState::Running | JobState::Reporting) || reached.check(uuid, to).is_err() {
        return;
    }
    if apply(store, uuid, &Move::by_worker(owner, to)).await {
        *reached = to;
    }
}

/// Records a job whose task ran: results, artifacts, final state.
async fn finish(
    store: &Store,
    settings: &Settings,
    owner: &str,
    job: &ClaimedJob,
    reached: JobState,
    out: &RunOutcome,
) {
    let uuid = &job.uuid;
    // Normally already stored as the runner reported them; whichever the
    // runner did not report is stored now, in order.
    let mut reached = reached;
    for to in [JobState::Running, JobState::Reporting] {
        store_reached(store, uuid, owner, &mut reached, to).await;
    }
    if reached != JobState::Reporting {
        tracing::warn!("job {uuid}: could not move to reporting (still {reached})");
        return;
    }
    let mut error = None;
    if let Err(e) = store_results(store, job, out).await {
        error = Some(format!("storing results: {}", crate::util::full(&e)));
    }
    if let Err(e) = store_artifacts(store, settings, uuid, &out.job_dir).await {
        error = Some(crate::util::full(&e));
    }
    let to = match (&error, out.passed()) {
        (Some(_), _) => JobState::Error,
        (None, true) => JobState::Passed,
        (None, false) => JobState::Failed,
    };
    let mut mv = Move::by_worker(owner, to);
    mv.reason = error;
    if apply(store, uuid, &mv).await {
        tracing::info!("job {uuid}: {} result(s)", out.results.len());
    }
}

/// Stores a move of a job this worker holds, logging what happened;
/// true when the job moved.
async fn apply(store: &Store, uuid: &str, mv: &Move) -> bool {
    let to = mv.to;
    match store.transition(uuid, mv).await {
        Ok(Transitioned::Moved { .. }) => {
            match &mv.reason {
                Some(why) if to == JobState::Queued || to == JobState::Error => {
                    tracing::info!("job {uuid}: {to} ({why})")
                }
                _ => tracing::info!("job {uuid}: {to}"),
            }
            true
        }
        Ok(Transitioned::NotHeld { state }) => {
            tracing::warn!("job {uuid}: not moved to {to}: now {state}, not this worker's (cancelled or lease lost)");
            false
        }
        Ok(Transitioned::Refused(e)) => {
            tracing::warn!("{e}");
            false
        }
        Ok(Transitioned::NotFound) => {
            tracing::warn!("job {uuid}: not moved to {to}: the job is gone");
            false
        }
        Err(e) => {
            tracing::error!("job {uuid}: storing {to}: {}", crate::util::full(&e));
            false
        }
    }
}

/// Stores the job's results the one way `run --report` posts them too
/// ([`NewResult::of_job`]).
async fn store_results(
    store: &Store,
    job: &ClaimedJob,
    out: &RunOutcome,
) -> Result<(), StoreError> {
    let this = JobRef {
        uuid: &job.uuid,
        what: &job.task,
        item: &job.item,
        arch: &job.arch,
    };
    let batch = NewResult::of_job("", this, &out.results, now_micros())?;
    store.create_results_bulk(&batch).await
}

/// Copies the runner's job folder (minus its keys) to
/// `<data dir>/artifacts/<job uuid>/`, where the API serves artifacts.
async fn store_artifacts(
    store: &Store,
    settings: &Settings,
    uuid: &str,
    job_dir: &Path,
) -> Result<(), ArtifactError> {
    let root = settings.artifacts_dir();
    crate::util::make_dir(&root, crate::util::modes::PRIVATE_DIR)
        .map_err(|e| ArtifactError::Write(root.clone(), e))?;
    let dest = root.join(uuid);
    for (rel, path) in crate::runner::published::files(job_dir) {
        let bytes = tokio::fs::read(&path)
            .await
            .map_err(|e| ArtifactError::Read(path.clone(), e))?;
        let target = dest.join(&rel);
        if let Some(parent) = target.parent() {
            tokio::fs::create_dir_all(parent)
                .await
                .map_err(|e| ArtifactError::Write(parent.to_path_buf(), e))?;
        }
        tokio::fs::write(&target, &bytes)
            .await
            .map_err(|e| ArtifactError::Write(target.clone(), e))?;
        let a = Artifact {
            path: rel,
            size: i64::try_from(bytes.len()).unwrap_or(i64::MAX),
            sha256: hex::encode(Sha256::digest(&bytes)),
            created_at: now_micros(),
        };
        let path = a.path.clone();
        store
            .put_artifact(uuid, &a, Some(&bytes))
            .await
            .map_err(|e| ArtifactError::Record(path, e))?;
    }
    Ok(())
}

/// A job's artifact that could not be published.
#[derive(Debug, thiserror::Error)]
enum ArtifactError {
    #[error("cannot read artifact {}", .0.display())]
    Read(std::path::PathBuf, #[source] std::io::Error),
    #[error("cannot write {}", .0.display())]
    Write(std::path::PathBuf, #[source] std::io::Error),
    #[error("recording artifact {0}")]
    Record(String, #[source] StoreError),
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn backoff_doubles_up_to_the_cap() {
        let c = SchedulerConfig::new(2);
        assert_eq!(c.retry_delay(1), Duration::from_secs(5));
        assert_eq!(c.retry_delay(2), Duration::from_secs(10));
        assert_eq!(c.retry_delay(20), Duration::from_secs(300));
    }

    #[test]
    fn a_jobs_own_time_out_wins_over_the_default() {
        let mut j = ClaimedJob {
            uuid: "u".into(),
            item: "i".into(),
            item_type: "t".into(),
            arch: "x86_64".into(),
            task: "hello".into(),
            repo: "/srv/tasks".into(),
            git_ref: "HEAD".into(),
            path: "hello".into(),
            image: None,
            attempts: 1,
            max_attempts: 3,
            timeout_secs: None,
            created_at: 0,
        };
        let default = Some(Duration::from_secs(600));
        assert_eq!(job_timeout(&j, default), default);
        j.timeout_secs = Some(30);
        assert_eq!(job_timeout(&j, default), Some(Duration::from_secs(30)));
        j.timeout_secs = Some(0);
        assert_eq!(job_timeout(&j, None), None);
    }
}
