//! `ferrotron host idle|resume|status`, `ferrotron submit` and
//! `ferrotron trigger`: the queue from the command line. The work is in
//! `ferrotron::commands`.

use std::path::{Path, PathBuf};

use clap::{Args, Subcommand};
use ferrotron::exit::ExitStatus;
use ferrotron::intake::enqueue::Intake;
use ferrotron::rules::{Mappings, Message, Rules};
use ferrotron::settings::Settings;
use ferrotron::store::NewQueuedJob;

use super::{CmdResult, Failure};

#[derive(Subcommand)]
pub enum HostCommand {
    /// Stop starting jobs on this host; intake keeps queueing them.
    Idle {
        /// Every host sharing this queue, not only this one.
        #[arg(long)]
        all: bool,
    },
    /// Start jobs again on this host (or lift `idle --all`).
    Resume {
        /// Lift `host idle --all`.
        #[arg(long)]
        all: bool,
    },
    /// Whether this host is idle, the queue's jobs per state, this host's
    /// jobs in progress, the messages accepted, and every host's capacity.
    Status,
}

#[derive(Args)]
pub struct SubmitArgs {
    /// The task's formula (`runtask.yml`) or its folder, on this host.
    formula: PathBuf,
    /// The item under test.
    #[arg(long)]
    item: String,
    /// The item's type.
    #[arg(long = "type", default_value = "koji_build")]
    item_type: String,
    #[arg(long, default_value = "x86_64")]
    arch: String,
    /// Base image (default: the formula's).
    #[arg(long)]
    image: Option<String>,
    /// Higher runs first.
    #[arg(long, default_value_t = 0)]
    priority: i64,
    /// Attempts (infrastructure errors are retried).
    #[arg(long, default_value_t = 3)]
    max_attempts: i64,
    /// Seconds the whole job (boot + task + collect) may take (default:
    /// the service's `--job-timeout`).
    #[arg(long, value_parser = clap::value_parser!(u64).range(1..))]
    timeout: Option<u64>,
}

#[derive(Subcommand)]
pub enum JobsCommand {
    /// Queue the jobs of a CSV file (recorded with `serve --record-csv`
    /// or written by `jobs export`); all rows or, on a bad one, none.
    Replay {
        /// The CSV file.
        file: PathBuf,
    },
    /// Cancel a queued or running job (a running job's VM is destroyed).
    Cancel {
        /// The job's UUID.
        uuid: String,
    },
    /// Write jobs to a CSV file that `jobs replay` reads.
    Export {
        /// Jobs in this state.
        #[arg(long, default_value = "queued")]
        state: String,
        /// The CSV file to write (replaced whole).
        file: PathBuf,
    },
}

#[derive(Args)]
pub struct TriggerArgs {
    /// The message's topic.
    #[arg(long)]
    topic: String,
    /// The message body (JSON file).
    #[arg(long)]
    body: PathBuf,
    /// The message id (for deduplication; default: a fresh one).
    #[arg(long)]
    id: Option<String>,
    /// Trigger rules.
    #[arg(long, env = "FERROTRON_RULES")]
    rules: PathBuf,
    /// Field mappings (default: the built-in ones).
    #[arg(long, env = "FERROTRON_MAPPINGS")]
    mappings: Option<PathBuf>,
    #[arg(long, default_value_t = 3)]
    max_attempts: i64,
    /// Append the jobs this message stores to a CSV file (as `serve
    /// --record-csv` does).
    #[arg(long, env = "FERROTRON_RECORD_CSV")]
    record_csv: Option<PathBuf>,
}

fn runtime() -> Result<tokio::runtime::Runtime, std::io::Error> {
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
}

fn runtime_or_fail() -> Result<tokio::runtime::Runtime, Failure> {
    runtime().map_err(Failure::infra)
}

/// Loads rules and mappings (a bad file is bad input).
pub fn load_intake(
    rules: &Path,
    mappings: Option<&Path>,
    max_attempts: i64,
) -> Result<Intake, Failure> {
    let mappings = match mappings {
        Some(p) => Mappings::load(p),
        None => Mappings::builtin(),
    }?;
    let loaded = Rules::load(rules)?;
    Ok(Intake::new(
        loaded,
        Some(rules.to_path_buf()),
        mappings,
        max_attempts,
    ))
}

pub fn host(settings: &Settings, cmd: HostCommand) -> CmdResult {
    let rt = runtime_or_fail()?;
    match cmd {
        HostCommand::Idle { all } | HostCommand::Resume { all } => {
            let idle = matches!(cmd, HostCommand::Idle { .. });
            rt.block_on(ferrotron::commands::set_idle(settings, idle, all))
                .map_err(Failure::infra)?;
            let word = if idle { "idle" } else { "resumed" };
            if all {
                println!("{word}: every host");
            } else {
                println!("{word}: {}", ferrotron::scheduler::this_host());
            }
            Ok(ExitStatus::Passed)
        }
        HostCommand::Status => {
            let (idle, counts, in_progress, messages, hosts) = rt
                .block_on(async {
                    let store = ferrotron::commands::open_store(settings).await?;
                    let here = ferrotron::scheduler::this_host();
                    let idle = ferrotron::scheduler::is_idle(&store, &here).await?;
                    let counts = store.queue_counts().await?;
                    let in_progress = store.in_progress_on(&here).await?;
                    let messages = store.message_count().await?;
                    let hosts = store.hosts().await?;
                    store.close().await;
                    Ok::<_, ferrotron::store::StoreError>((
                        idle,
                        counts,
                        in_progress,
                        messages,
                        hosts,
                    ))
                })
                .map_err(Failure::infra)?;
            println!("{}", if idle { "idle" } else { "active" });
            for (state, n) in counts {
                println!("{state}\t{n}");
            }
            // What drain.yml waits on: jobs this host is running.
            println!("in progress here\t{in_progress}");
            println!("messages\t{messages}");
            let now = ferrotron::store::now_micros();
            for h in hosts {
                println!("{}", host_line(&h, now));
            }
            Ok(ExitStatus::Passed)
        }
    }
}

/// One host in `host status`: `host NAME VMS VCPUS MEMORY SEEN`, tab
/// separated (used/capacity each).
fn host_line(h: &ferrotron::store::HostRecord, now: i64) -> String {
    let ago = (now - h.heartbeat).max(0) / 1_000_000;
    let seen = if now - h.heartbeat > ferrotron::store::HOST_FRESH_MICROS {
        format!("gone (last seen {ago} s ago)")
    } else {
        format!("seen {ago} s ago")
    };
    format!(
        "host\t{}\t{}/{} VMs\t{}/{} vCPUs\t{}/{} MiB\t{seen}",
        h.name,
        h.used.vms,
        h.capacity.max_vms,
        h.used.vcpus,
        h.capacity.vcpus,
        h.used.memory_mib,
        h.capacity.memory_mib
    )
}

pub fn submit(settings: &Settings, a: SubmitArgs) -> CmdResult {
    let abs = std::path::absolute(&a.formula)
        .map_err(|_| Failure::bad_input(format!("{}: not a usable path", a.formula.display())))?;
    // The formula must load now: bad input never reaches the queue.
    let file = if abs.is_dir() {
        abs.join("runtask.yml")
    } else {
        abs.clone()
    };
    let formula = ferrotron::commands::load_formula(&file)?;
    let (repo, path) = match (file.parent(), file.file_name()) {
        (Some(dir), Some(name)) => (
            dir.display().to_string(),
            name.to_string_lossy().into_owned(),
        ),
        _ => return Err(Failure::bad_input("no formula file name")),
    };
    // The VM's size, for placement: the image the job will boot.
    let spec = a
        .image
        .clone()
        .or_else(|| formula.environment.image.clone())
        .unwrap_or_else(|| ferrotron::images::DEFAULT_IMAGE.to_string());
    let job = NewQueuedJob {
        item: a.item,
        item_type: a.item_type,
        arch: a.arch,
        task: formula.name.clone(),
        repo,
        git_ref: String::new(),
        path,
        priority: a.priority,
        image: a.image,
        max_attempts: a.max_attempts,
        needs: ferrotron::images::needs(&settings.images_dir, &spec),
        timeout_secs: a.timeout.and_then(|t| i64::try_from(t).ok()),
    };
    let rt = runtime_or_fail()?;
    let uuid = rt
        .block_on(ferrotron::commands::submit_job(settings, &job))
        .map_err(Failure::infra)?;
    println!("{uuid}");
    Ok(ExitStatus::Passed)
}

pub fn trigger(settings: &Settings, a: TriggerArgs) -> CmdResult {
    let intake = load_intake(&a.rules, a.mappings.as_deref(), a.max_attempts)?.with_recorder(
        a.record_csv
            .clone()
            .map(ferrotron::intake::jobs_csv::Recorder::new),
    );
    let text = std::fs::read_to_string(&a.body)
        .map_err(|e| Failure::bad_input(format!("cannot read {}: {e}", a.body.display())))?;
    let body: serde_json::Value = serde_json::from_str(&text)
        .map_err(|e| Failure::bad_input(format!("{}: {e}", a.body.display())))?;
    let msg = Message::new(a.id, a.topic, body);
    let rt = runtime_or_fail()?;
    let r = rt
        .block_on(ferrotron::commands::trigger_message(
            settings, &intake, &msg,
        ))
        .map_err(Failure::infra)?;
    for j in &r.jobs {
        println!("{j}");
    }
    if r.duplicate {
        eprintln!("ferrotron: a duplicate message: its jobs were queued before");
    } else {
        eprintln!("ferrotron: {} job(s) queued", r.jobs.len());
    }
    Ok(ExitStatus::Passed)
}

pub fn jobs(settings: &Settings, cmd: JobsCommand) -> CmdResult {
    let rt = runtime_or_fail()?;
    match cmd {
        JobsCommand::Replay { file } => {
            let r = rt.block_on(ferrotron::commands::replay_jobs(settings, &file))?;
            println!(
                "{} message(s), {} job(s) queued; {} message(s) already here",
                r.messages, r.jobs, r.duplicates
            );
        }
        JobsCommand::Cancel { uuid } => {
            // Unknown or finished jobs are bad input; the rest infrastructure.
            let before = rt.block_on(ferrotron::commands::cancel_job(settings, &uuid))?;
            if before.state == ferrotron::job::JobState::Queued {
                println!("job {uuid}: cancelled (it was queued and will not start)");
            } else {
                println!(
                    "job {uuid}: cancelled (it was {}; its scheduler destroys the VM)",
                    before.state
                );
            }
        }
        JobsCommand::Export { state, file } => {
            let state = ferrotron::store::parse_state(&state)
                .ok_or_else(|| Failure::bad_input(format!("--state {state}: not a job state")))?;
            let n = rt.block_on(ferrotron::commands::export_jobs(settings, state, &file))?;
            println!("{n} job(s) written to {}", file.display());
        }
    }
    Ok(ExitStatus::Passed)
}
