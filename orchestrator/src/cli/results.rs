//! `ferrotron results ...`: moving results between installations.

use clap::Subcommand;
use ferrotron::exit::ExitStatus;
use ferrotron::settings::Settings;

use super::{with_app, CmdResult, Failure};

#[derive(Subcommand)]
pub enum ResultsCommand {
    /// Copy every result of a ResultsDB v2.0 (its HTTP API) into this
    /// installation: testcases, groups, data, notes, ref URLs and submit
    /// times, oldest first. Resumable after an interruption; run again, it
    /// copies only what is new.
    Import {
        /// The source: `http://host` or `http://host/api/v2.0`.
        url: String,
        /// Results read per request (at most 400).
        #[arg(long, default_value_t = 200)]
        page_size: u32,
    },
}

pub fn run(settings: &Settings, cmd: ResultsCommand) -> CmdResult {
    match cmd {
        ResultsCommand::Import { url, page_size } => {
            let started = std::time::Instant::now();
            let done = with_app(settings, async |app| {
                app.import_results(&url, page_size, &|l| eprintln!("ferrotron: import: {l}"))
                    .await
            })?
            .map_err(|e| match e {
                ferrotron::app::import::ImportError::BadUrl(_) => {
                    Failure::new(ExitStatus::BadInput, e)
                }
                e => Failure::infra(e),
            })?;
            println!(
                "imported {} result(s) ({} page(s), {} group(s) read) from {} in {:.1} s",
                done.results,
                done.pages,
                done.groups,
                ferrotron::util::redact_url(&url),
                started.elapsed().as_secs_f64()
            );
            Ok(ExitStatus::Passed)
        }
    }
}
