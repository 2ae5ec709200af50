//! `ferrotron doctor`: printing the checks of `ferrotron::app::doctor`.

use clap::Args;
use ferrotron::app::doctor::{doctor, DoctorOptions, Status};
use ferrotron::exit::ExitStatus;
use ferrotron::settings::Settings;

use super::{CmdResult, Failure};

#[derive(Args)]
pub struct DoctorArgs {
    /// Also check this broker (what `serve --amqp-url` would use).
    #[arg(long, env = "FERROTRON_AMQP_URL")]
    amqp_url: Option<String>,
    /// Free space the data folder needs, in GiB (less fails).
    #[arg(long, default_value_t = 2)]
    min_free_gib: u64,
}

/// One line per check (`ok`, `warn` or `FAIL`, the item, what was found)
/// and, under a check that is not ok, what to do; exit 0 when nothing
/// failed, 1 otherwise.
pub fn run(settings: &Settings, args: DoctorArgs) -> CmdResult {
    let opts = DoctorOptions {
        amqp_url: args.amqp_url,
        min_free_bytes: args.min_free_gib.saturating_mul(1 << 30),
    };
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .map_err(Failure::infra)?;
    let checks = rt.block_on(doctor(settings, &opts));
    let count = |s: Status| checks.iter().filter(|c| c.status == s).count();
    for c in &checks {
        println!("{:<5} {:<10} {}", c.status.as_str(), c.name, c.detail);
        if let Some(fix) = &c.fix {
            println!("{:<16} fix: {fix}", "");
        }
    }
    let failed = count(Status::Fail);
    println!(
        "doctor: {} ok, {} warning(s), {failed} failure(s){}",
        count(Status::Ok),
        count(Status::Warn),
        if failed == 0 {
            ": this host can run jobs"
        } else {
            ": jobs cannot run here until the failures are fixed"
        }
    );
    Ok(if failed == 0 {
        ExitStatus::Passed
    } else {
        ExitStatus::TaskFailed
    })
}
