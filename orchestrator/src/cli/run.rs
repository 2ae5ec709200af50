//! `ferrotron run`: one task, in a VM (`--libvirt`) or on this host, its
//! TAP on stdout; SIGINT/SIGTERM stop the job and end its VM.

use std::path::PathBuf;
use std::time::Duration;

use clap::Args;
use ferrotron::cancel::Cancel;
use ferrotron::exit::ExitStatus;
use ferrotron::progress::Progress;
use ferrotron::runner::{RunError, RunRequest};
use ferrotron::settings::Settings;

use super::{parse_duration, CmdResult, Failure};

#[derive(Args)]
pub struct RunArgs {
    /// Run in a fresh libvirt VM (without it: on this host, in a fresh work
    /// folder, as the current user).
    #[arg(long)]
    libvirt: bool,
    /// The item to check (for example a Koji build NVR).
    #[arg(short, long)]
    item: String,
    /// The item's type (koji_build, bodhi_update, koji_tag, compose,
    /// git_commit, dist_git_commit, docker_image, module_build, item).
    #[arg(short = 't', long = "type")]
    item_type: String,
    /// Architecture.
    #[arg(short, long, default_value = "x86_64")]
    arch: String,
    /// Base image, `name` or `name:version` (default: the formula's
    /// environment.image, else `tiny`).
    #[arg(long)]
    image: Option<String>,
    /// Keep a failed job's VM this long (e.g. 30m, 2h, 90s) and print how to
    /// reach it.
    #[arg(long, value_parser = parse_duration)]
    keep_on_failure: Option<Duration>,
    /// Deadline for the whole task (default: sum of action time-outs + 60 s).
    #[arg(long, value_parser = parse_duration)]
    timeout: Option<Duration>,
    /// Deadline for the guest's SSH server (default: the image's).
    #[arg(long, value_parser = parse_duration)]
    ssh_timeout: Option<Duration>,
    /// Declare the guest hung when the agent says nothing (not even its
    /// 5-second heartbeat) this long.
    #[arg(long, value_parser = parse_duration, default_value = "60s")]
    stall_timeout: Duration,
    /// Extra kernel command-line word for the guest (repeatable; implies
    /// a cold boot).
    #[arg(long = "kernel-arg")]
    kernel_args: Vec<String>,
    /// How the VM starts: `warm` restores it from a template saved once
    /// per image and host (the kernel boot skipped); `cold` boots it.
    #[arg(long, env = "FERROTRON_START", default_value = "warm")]
    start: ferrotron::settings::StartMode,
    /// Clone the task from this repository of the git cache (`ferrotron
    /// cache add`); the guest gets ${git_url} and ${git_commit}.
    #[arg(long, requires = "libvirt")]
    git_repo: Option<String>,
    /// Branch, tag or commit of --git-repo, resolved before the VM boots.
    #[arg(long, default_value = "HEAD", requires = "git_repo")]
    git_ref: String,
    /// Record the job, its artifacts and its results on this Ferrotron
    /// server (results go to its ResultsDB API).
    #[arg(long, value_name = "URL")]
    report: Option<String>,
    /// API token for --report.
    #[arg(long, env = "FERROTRON_TOKEN", hide_env_values = true)]
    token: Option<String>,
    /// Only the TAP on stdout and errors on stderr.
    #[arg(short, long)]
    quiet: bool,
    /// The task formula (runtask.yml).
    formula: PathBuf,
}

pub fn run(mut settings: Settings, args: RunArgs) -> CmdResult {
    let formula = ferrotron::app::load_formula(&args.formula)?;
    settings.ssh_timeout = args.ssh_timeout;
    settings.extra_cmdline = args.kernel_args.clone();
    settings.stall_timeout = args.stall_timeout;
    settings.start = args.start;
    let reporter = match &args.report {
        Some(url) => Some(
            ferrotron::report_client::Reporter::new(url, args.token.clone())
                .map_err(|e| Failure::new(ExitStatus::BadInput, e))?,
        ),
        None => None,
    };
    // One id for the job: its domain, its folder, every line and report.
    let job_id = uuid::Uuid::new_v4().to_string();
    let mut history = ferrotron::job::History::new(&job_id);
    let (events, mut reached) = tokio::sync::mpsc::unbounded_channel();
    let mut info = ferrotron::report_client::JobInfo {
        item: args.item.clone(),
        item_type: args.item_type.clone(),
        arch: args.arch.clone(),
        formula: formula.name.clone(),
        exit_status: 0,
        history: history.clone(),
    };
    let req = RunRequest {
        job_id,
        git: args.git_repo.map(|repo| ferrotron::runner::GitSource {
            repo,
            reference: args.git_ref,
            commit: None,
        }),
        formula,
        item: args.item,
        item_type: args.item_type,
        arch: args.arch,
        image: args.image,
        keep_on_failure: args.keep_on_failure,
        hold_on_failure: None,
        timeout: args.timeout,
        events: Some(events),
    };
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .map_err(Failure::infra)?;
    let cancel = Cancel::new();
    let quiet = args.quiet;
    let result = rt.block_on(async {
        let c = cancel.clone();
        let libvirt = args.libvirt;
        let mut job = tokio::task::spawn_blocking(move || {
            if libvirt {
                let ui = Progress::new(quiet, ferrotron::progress::VM_PHASES);
                let r = ferrotron::app::run_in_vm(&settings, &req, &c, &ui);
                (r, ui.elapsed())
            } else {
                let ui = Progress::new(quiet, ferrotron::progress::LOCAL_PHASES);
                let r = ferrotron::app::run_local(&settings, &req, &c, &ui);
                (r, ui.elapsed())
            }
        });
        let mut term =
            match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
                Ok(s) => s,
                Err(e) => return Err(RunError::infra("start", e)),
            };
        let signal = tokio::select! {
            r = &mut job => return r.map_err(|e| RunError::infra("run", e)),
            _ = tokio::signal::ctrl_c() => "SIGINT",
            _ = term.recv() => "SIGTERM",
        };
        let destroyed = cancel.cancel(signal);
        if destroyed.is_empty() {
            eprintln!("ferrotron: {signal} received: stopping the job");
        } else {
            eprintln!(
                "ferrotron: {signal} received: destroying {}",
                destroyed.join(", ")
            );
        }
        // The job thread notices within a fraction of a second and its guard
        // removes the overlay; do not wait forever.
        match tokio::time::timeout(Duration::from_secs(30), job).await {
            Ok(Ok(r)) => Ok(r),
            _ => Err(RunError::Cancelled(signal.to_string())),
        }
    });
    let (outcome, took) = match result {
        Ok((Ok(outcome), took)) => (outcome, took),
        Ok((Err(e), _)) | Err(e) => return Err(e.into()),
    };
    print!("{}", outcome.tap);
    let passed = outcome.passed();
    if !quiet {
        eprintln!(
            "ferrotron: {} in {:.2} s; artifacts: {}",
            if passed { "PASSED" } else { "FAILED" },
            took.as_secs_f64(),
            outcome.job_dir.display()
        );
    }
    let status = ExitStatus::from_passed(passed);
    if let Some(r) = reporter {
        info.exit_status = i32::from(status.code());
        // The job's lifecycle as the runner reported it, then its end.
        while let Ok(r) = reached.try_recv() {
            if let Err(e) = history.push(r) {
                tracing::warn!("{e}");
            }
        }
        let last = if passed {
            ferrotron::job::JobState::Passed
        } else {
            ferrotron::job::JobState::Failed
        };
        if let Err(e) = history.reach(last) {
            tracing::warn!("{e}");
        }
        info.history = history;
        let n = rt
            .block_on(r.report(&info, &outcome))
            .map_err(Failure::infra)?;
        if !quiet {
            eprintln!(
                "ferrotron: reported {} result(s) and {} artifact(s) of job {}",
                n.results, n.artifacts, outcome.job_id
            );
        }
    }
    Ok(status)
}
