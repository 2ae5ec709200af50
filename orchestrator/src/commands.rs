//! The command layer: what the CLI calls today and what the HTTP API and
//! the message intake will call, so every transport behaves the same.

use std::path::Path;

use crate::cancel::Cancel;
use crate::formula::{Formula, FormulaError};
use crate::progress::Progress;
use crate::runner::{self, RunError, RunOutcome, RunRequest};
use crate::settings::Settings;
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
    reaped.templates = crate::runner::warm::prune_orphans(settings);
    Ok(reaped)
}
