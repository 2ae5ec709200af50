//! The application layer: what the CLI (`cli/`), the HTTP API (`api/`)
//! and the message intake (`intake/`, AMQP) all call, so every transport
//! behaves the same. Transports parse their input, call an [`App`] method
//! (or one of the functions here that need no store) and render the answer.
//!
//! An [`App`] holds the opened results store, the [`Settings`] and, in a
//! service, the intake's rules. The CLI opens one per command; the API's
//! `AppState` holds one for the server's life.
//!
//! - [`queue`]: submit, trigger (message → jobs), cancel, put, idle/resume,
//!   host status, export/replay of queued jobs;
//! - [`tokens`]: API tokens (create, list, revoke, check);
//! - [`results`]: result and artifact queries that take more than one
//!   store call, and synthetic results for benchmarks;
//! - [`dashboard`]: the hosts and queue pages' views (why a job waits);
//! - [`search`]: full-text search over logs, task output and notes;
//! - [`seed`]: synthetic jobs and logs for benchmarks;
//! - [`serve`]: `ferrotron serve` (API, scheduler, intake, cache upkeep).

pub mod dashboard;
pub mod doctor;
pub mod import;
pub mod queue;
pub mod readiness;
pub mod reservations;
pub mod results;
pub mod search;
pub mod seed;
pub mod serve;
pub mod tokens;

use std::path::Path;
use std::sync::Arc;

use crate::cancel::Cancel;
use crate::formula::{Formula, FormulaError};
use crate::intake::enqueue::Intake;
use crate::progress::Progress;
use crate::runner::{self, RunError, RunOutcome, RunRequest};
use crate::settings::Settings;
use crate::store::{Store, StoreError};
use crate::vm::{reaper, Hypervisor};

pub use queue::{Cancelled, HostStatus, JobsFileError, Replayed, TriggerError};
pub use serve::{serve, ServeCommandError, ServiceConfig};
pub use tokens::TokenError;

/// The opened store and the settings (and a service's intake): the
/// receiver of every command that touches the store.
#[derive(Clone)]
pub struct App {
    store: Store,
    settings: Arc<Settings>,
    intake: Option<Arc<Intake>>,
}

impl App {
    /// Opens (and migrates) the results store the settings name.
    pub async fn open(settings: &Settings) -> Result<App, StoreError> {
        let store = Store::open(&settings.database_url()).await?;
        Ok(App::new(store, Arc::new(settings.clone())))
    }

    /// An application over a store already open.
    pub fn new(store: Store, settings: Arc<Settings>) -> App {
        App {
            store,
            settings,
            intake: None,
        }
    }

    /// This application with an outbox: results and job moves add their
    /// messages to it ([`Store::with_outbox`]), for the publisher.
    pub fn with_outbox(mut self) -> App {
        self.store = self.store.with_outbox();
        self
    }

    /// The rules and mappings [`App::trigger`] uses (none: it refuses).
    pub fn with_intake(mut self, intake: Option<Arc<Intake>>) -> App {
        self.intake = intake;
        self
    }

    /// The store, for the single reads the API renders as they are.
    pub fn store(&self) -> &Store {
        &self.store
    }

    pub fn settings(&self) -> &Settings {
        &self.settings
    }

    /// The settings, shared (the scheduler and the API keep them).
    pub fn settings_arc(&self) -> &Arc<Settings> {
        &self.settings
    }

    pub fn intake(&self) -> Option<&Arc<Intake>> {
        self.intake.as_ref()
    }

    /// Closes the store (every clone of this `App` shares it).
    pub async fn close(self) {
        self.store.close().await;
    }
}

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
    reaped.templates = crate::vm::warm::prune_orphans(&settings.vm());
    Ok(reaped)
}
