//! The command layer: what the CLI calls today and what the HTTP API and
//! the message intake will call, so every transport behaves the same.

use std::path::Path;

use crate::cancel::Cancel;
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
    reaped.templates = crate::runner::warm::prune_orphans(settings);
    Ok(reaped)
}

/// Opens the results store named by the settings (migrating it).
pub async fn open_store(settings: &Settings) -> Result<Store, StoreError> {
    Store::open(&settings.database_url()).await
}

/// Serves the HTTP API until `shutdown` resolves.
pub async fn serve(
    settings: Settings,
    config: crate::api::ApiConfig,
    listen: std::net::SocketAddr,
    shutdown: impl std::future::Future<Output = ()> + Send + 'static,
) -> Result<(), ServeCommandError> {
    let store = open_store(&settings).await?;
    let (state, stopper) = crate::api::AppState::new(store.clone(), settings, config);
    let r = crate::api::serve(state, stopper, listen, shutdown).await;
    store.close().await;
    Ok(r?)
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
