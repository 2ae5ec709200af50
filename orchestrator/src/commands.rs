//! The command layer: what the CLI calls today and what the HTTP API and
//! the message intake will call, so every transport behaves the same.

use std::path::Path;

use crate::cancel::Cancel;
use crate::exit::{ExitStatus, HasExitStatus};
use crate::formula::{Formula, FormulaError};
use crate::progress::Progress;
use crate::runner::{self, RunError, RunOutcome, RunRequest};
use crate::settings::Settings;
use crate::store::{Store, StoreError, Token};
use crate::vm::{reaper, Hypervisor};

/// Loads and validates a formula.
pub fn load_formula(path: &Path) -> Result<Formula, FormulaError> {
    Formula::load(path)
}

/// Runs one job in a fresh VM.
pub fn run_in_vm(
    settings: &Settings,
    req: &RunRequest,
    cancel: &Cancel,
    ui: &Progress,
) -> Result<RunOutcome, RunError> {
    runner::run(settings, req, cancel, ui)
}

/// Runs one job on this host (no VM).
pub fn run_local(
    settings: &Settings,
    req: &RunRequest,
    cancel: &Cancel,
    ui: &Progress,
) -> Result<RunOutcome, RunError> {
    runner::local::run(settings, req, cancel, ui)
}

/// Destroys domains and VM folders whose owning process is gone.
pub fn reap(settings: &Settings) -> Result<reaper::Reaped, crate::vm::HypervisorError> {
    let hv = Hypervisor::connect(&settings.libvirt_uri)?;
    let mut reaped = reaper::reap(&hv, &settings.vms_dir())?;
    reaped.templates = crate::vm::warm::prune_orphans(settings);
    Ok(reaped)
}

/// Opens the results store named by the settings (migrating it).
pub async fn open_store(settings: &Settings) -> Result<Store, StoreError> {
    Store::open(&settings.database_url()).await
}

/// What `ferrotron serve` runs besides the HTTP API.
pub struct ServiceConfig {
    /// Rules for message intake (HTTP and AMQP); none: no intake.
    pub intake: Option<crate::intake::enqueue::Intake>,
    /// The scheduler (none: this server only records).
    pub scheduler: Option<crate::scheduler::SchedulerConfig>,
    /// Consume messages from RabbitMQ.
    pub amqp: Option<crate::intake::amqp::AmqpConfig>,
    /// Periodic sync and fsck of the git cache.
    pub cache_upkeep: crate::cache::maintain::Upkeep,
}

/// Serves the HTTP API, the scheduler and the AMQP intake until
/// `shutdown` resolves; then running jobs are stopped and requeued.
pub async fn serve(
    settings: Settings,
    config: crate::api::ApiConfig,
    listen: std::net::SocketAddr,
    service: ServiceConfig,
    shutdown: impl std::future::Future<Output = ()> + Send + 'static,
) -> Result<(), ServeCommandError> {
    let store = open_store(&settings).await?;
    let settings_arc = std::sync::Arc::new(settings.clone());
    let (mut state, stopper) = crate::api::AppState::new(store.clone(), settings, config);
    let cache = crate::cache::Cache::new(&settings_arc.data_dir);
    let intake = service.intake.map(|mut i| {
        i.cache = Some(cache.clone());
        std::sync::Arc::new(i)
    });
    state.intake = intake.clone();
    let (stop_tx, stop_rx) = tokio::sync::watch::channel(false);
    let mut tasks = tokio::task::JoinSet::new();
    if let Some(cfg) = service.scheduler {
        tasks.spawn(crate::scheduler::run(
            store.clone(),
            settings_arc,
            cfg,
            stop_rx.clone(),
        ));
    }
    tasks.spawn(crate::cache::maintain::run(
        cache.clone(),
        service.cache_upkeep,
        stop_rx.clone(),
    ));
    if let Some(intake) = intake.clone() {
        // SIGHUP reloads the rules; a bad file leaves the last good rules.
        let mut stop = stop_rx.clone();
        tasks.spawn(async move {
            let Ok(mut hup) =
                tokio::signal::unix::signal(tokio::signal::unix::SignalKind::hangup())
            else {
                tracing::warn!("cannot listen for SIGHUP: rules reload disabled");
                return;
            };
            loop {
                tokio::select! {
                    _ = hup.recv() => {}
                    _ = stop.changed() => return,
                }
                match intake.reload() {
                    Ok(n) => tracing::info!("rules reloaded: {n} rule(s) in force"),
                    Err(e) => tracing::error!(
                        "rules reload failed, keeping the previous rules: {}",
                        crate::util::full(&e)
                    ),
                }
            }
        });
    }
    if let (Some(cfg), Some(intake)) = (service.amqp, intake) {
        let store = store.clone();
        let stop = stop_rx.clone();
        tasks.spawn(async move {
            let handler = move |msg: crate::rules::Message| {
                let intake = intake.clone();
                let store = store.clone();
                async move {
                    let r = intake.handle(&store, &msg).await?;
                    tracing::info!(
                        "amqp message {:?} ({}): {} job(s){}",
                        msg.id,
                        msg.topic,
                        r.jobs.len(),
                        if r.duplicate { ", a duplicate" } else { "" }
                    );
                    Ok(())
                }
            };
            crate::intake::amqp::run(cfg, handler, stop, |s| tracing::info!("{s}")).await;
        });
    }
    let r = crate::api::serve(state, stopper, listen, shutdown).await;
    let _ = stop_tx.send(true);
    while tasks.join_next().await.is_some() {}
    store.close().await;
    Ok(r?)
}

/// Stops (`true`) or resumes the scheduling of jobs on this host, or on
/// every host sharing the store (`all`); intake keeps recording jobs
/// meanwhile. Resuming this host does not lift an `--all` idle.
pub async fn set_idle(settings: &Settings, idle: bool, all: bool) -> Result<(), StoreError> {
    let flag = if all {
        crate::scheduler::IDLE_FLAG.to_string()
    } else {
        crate::scheduler::host_idle_flag(&crate::scheduler::this_host())
    };
    let store = open_store(settings).await?;
    let value = idle.then(|| crate::store::now_micros().to_string());
    let r = store.set_flag(&flag, value.as_deref()).await;
    store.close().await;
    r
}

/// Cancels a queued or running job (as `POST /api/v1/jobs/UUID/cancel`
/// does): a queued job never starts; a running one's VM is destroyed by
/// its scheduler at the next lease renewal. Returns the job as it was
/// before, to say what was stopped.
pub async fn cancel_job(settings: &Settings, uuid: &str) -> Result<crate::store::Job, StoreError> {
    let store = open_store(settings).await?;
    let before = store.get_job(uuid).await;
    let r = match before {
        Ok(Some(before)) => store.cancel_job(uuid).await.map(|_| before),
        Ok(None) => Err(StoreError::NotFound {
            what: "job",
            name: uuid.to_string(),
        }),
        Err(e) => Err(e),
    };
    store.close().await;
    r
}

/// Queues one job directly (no rules); returns its UUID.
pub async fn submit_job(
    settings: &Settings,
    job: &crate::store::NewQueuedJob,
) -> Result<String, StoreError> {
    let store = open_store(settings).await?;
    let id = format!("submit-{}", uuid::Uuid::new_v4());
    let r = store
        .enqueue(&id, "ferrotron.submit", std::slice::from_ref(job))
        .await;
    store.close().await;
    Ok(r?.jobs.into_iter().next().unwrap_or_default())
}

/// Puts a message through the rules into the queue (`ferrotron trigger`).
pub async fn trigger_message(
    settings: &Settings,
    intake: &crate::intake::enqueue::Intake,
    msg: &crate::rules::Message,
) -> Result<crate::store::Enqueued, StoreError> {
    let store = open_store(settings).await?;
    let r = intake.handle(&store, msg).await;
    store.close().await;
    r.map_err(|crate::intake::enqueue::EnqueueError::Store(e)| e)
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

/// Queues the jobs of a CSV file (see `intake::jobs_csv`) in one
/// transaction: every row is checked first and a bad one stores nothing;
/// messages already here (same message id) are skipped, so replaying a
/// file twice creates no duplicates.
pub async fn replay_jobs(settings: &Settings, file: &Path) -> Result<Replayed, JobsFileError> {
    let mut messages = crate::intake::jobs_csv::read_file(file)?;
    // VM sizes come from this installation's images, as at intake.
    for j in messages.iter_mut().flat_map(|m| m.jobs.iter_mut()) {
        j.needs = j
            .image
            .as_deref()
            .and_then(|i| crate::images::needs(&settings.images_dir, i));
    }
    let store = open_store(settings).await?;
    let r = store.enqueue_batch(&messages).await;
    store.close().await;
    let mut out = Replayed::default();
    for e in r? {
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
/// `jobs replay` reads; returns how many. The file appears whole or not
/// at all (written beside it, then renamed).
pub async fn export_jobs(
    settings: &Settings,
    state: crate::job::JobState,
    file: &Path,
) -> Result<usize, JobsFileError> {
    let store = open_store(settings).await?;
    let r = store.queued_jobs_in(state).await;
    store.close().await;
    let messages = r?;
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

#[derive(Debug, thiserror::Error)]
pub enum ServeCommandError {
    #[error(transparent)]
    Store(#[from] StoreError),
    #[error(transparent)]
    Serve(#[from] crate::api::ServeError),
}

#[derive(Debug, thiserror::Error)]
pub enum TokenError {
    #[error("token name `{0}`: use 1 to 64 letters, digits, `.`, `_` or `-`")]
    BadName(String),
    #[error(transparent)]
    Store(#[from] StoreError),
}

impl HasExitStatus for TokenError {
    /// A bad, taken or unknown name is bad input.
    fn exit_status(&self) -> ExitStatus {
        match self {
            TokenError::BadName(_) => ExitStatus::BadInput,
            TokenError::Store(e) => e.exit_status(),
        }
    }
}

/// Creates an API token; returns the secret, which is not stored.
pub async fn token_create(settings: &Settings, name: &str) -> Result<String, TokenError> {
    let ok = !name.is_empty()
        && name.len() <= 64
        && name
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '.' | '_' | '-'));
    if !ok {
        return Err(TokenError::BadName(name.to_string()));
    }
    let store = open_store(settings).await?;
    let secret = store.create_token(name).await;
    store.close().await;
    Ok(secret?)
}

pub async fn token_list(settings: &Settings) -> Result<Vec<Token>, TokenError> {
    let store = open_store(settings).await?;
    let list = store.list_tokens().await;
    store.close().await;
    Ok(list?)
}

pub async fn token_revoke(settings: &Settings, name: &str) -> Result<(), TokenError> {
    let store = open_store(settings).await?;
    let r = store.revoke_token(name).await;
    store.close().await;
    Ok(r?)
}

/// Inserts `n` synthetic results (benchmarks): 10 testcases, 1000 items,
/// one group per 100 results, data `item`, `type`, `arch`.
pub async fn seed_results(store: &Store, n: usize) -> Result<(), StoreError> {
    use crate::store::{NewGroup, NewResult, Testcase};
    let start = crate::store::now_micros() - i64::try_from(n).unwrap_or(0) * 1_000_000;
    let outcomes = ["PASSED", "FAILED", "INFO", "NEEDS_INSPECTION"];
    let batch: Vec<NewResult> = (0..n)
        .map(|i| NewResult {
            testcase: Testcase {
                name: format!("dist.check{}", i % 10),
                ref_url: None,
            },
            outcome: outcomes[i % outcomes.len()].to_string(),
            note: Some(format!("synthetic result {i}")),
            ref_url: None,
            submit_time: start + i64::try_from(i).unwrap_or(0) * 1_000_000,
            groups: vec![NewGroup {
                uuid: format!("seed-group-{}", i / 100),
                description: None,
                ref_url: None,
            }],
            data: vec![
                ("item".into(), format!("pkg{}-1.0-1.fc40", i % 1000)),
                ("type".into(), "koji_build".into()),
                ("arch".into(), "x86_64".into()),
            ],
        })
        .collect();
    store.create_results_bulk(&batch).await
}
