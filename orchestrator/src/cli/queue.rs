//! `ferrotron host idle|resume|status`, `ferrotron submit` and
//! `ferrotron trigger`: the queue from the command line. The work is in
//! `ferrotron::app`.

use std::path::{Path, PathBuf};
use std::sync::Arc;

use clap::{Args, Subcommand};
use ferrotron::app::App;
use ferrotron::exit::ExitStatus;
use ferrotron::intake::enqueue::Intake;
use ferrotron::rules::{Mappings, Message, Rules};
use ferrotron::settings::Settings;
use ferrotron::store::NewQueuedJob;

use super::{with_app, with_app_using, CmdResult, Failure};

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
    /// If the job fails, keep its VM this long (e.g. 2h) for the holder
    /// of --ssh-key, as a reservation, instead of destroying it.
    #[arg(long, value_parser = super::parse_duration, requires = "ssh_key")]
    hold_on_failure: Option<std::time::Duration>,
    /// The public key a held VM lets in as root.
    #[arg(long, value_name = "FILE")]
    ssh_key: Option<PathBuf>,
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
    match cmd {
        HostCommand::Idle { all } | HostCommand::Resume { all } => {
            let idle = matches!(cmd, HostCommand::Idle { .. });
            with_app(settings, async |app: &App| app.set_idle(idle, all).await)?
                .map_err(Failure::infra)?;
            let word = if idle { "idle" } else { "resumed" };
            if all {
                println!("{word}: every host");
            } else {
                println!("{word}: {}", settings.host_name);
            }
        }
        HostCommand::Status => {
            let st = with_app(settings, async |app: &App| app.host_status().await)?
                .map_err(Failure::infra)?;
            println!("{}", if st.idle { "idle" } else { "active" });
            for (state, n) in st.counts {
                println!("{state}\t{n}");
            }
            // What drain.yml waits on: jobs this host is running.
            println!("in progress here\t{}", st.in_progress);
            println!("messages\t{}", st.messages);
            let now = ferrotron::store::now_micros();
            for h in st.hosts {
                println!("{}", host_line(&h, now));
            }
        }
    }
    Ok(ExitStatus::Passed)
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
    let formula = ferrotron::app::load_formula(&file)?;
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
    let uuid = match (a.hold_on_failure, a.ssh_key) {
        (Some(ttl), Some(key_file)) => {
            let key = std::fs::read_to_string(&key_file)
                .map_err(|e| Failure::bad_input(format!("{}: {e}", key_file.display())))?;
            let (uuid, hold) = with_app(settings, async |app: &App| {
                app.submit_held(&job, &key, ttl, super::reserve::CLI_REQUESTER)
                    .await
            })?
            .map_err(|e| {
                if e.is_bad_input() {
                    Failure::new(ExitStatus::BadInput, e)
                } else {
                    Failure::infra(e)
                }
            })?;
            eprintln!(
                "ferrotron: if it fails, its VM is held as reservation {} (`ferrotron reservations show {}`)",
                hold.id, hold.id
            );
            uuid
        }
        _ => {
            with_app(settings, async |app: &App| app.submit(&job).await)?.map_err(Failure::infra)?
        }
    };
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
    let r = with_app_using(settings, Some(Arc::new(intake)), async |app: &App| {
        app.trigger(&msg).await
    })?
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
    match cmd {
        JobsCommand::Replay { file } => {
            let r = with_app(settings, async |app: &App| app.replay_jobs(&file).await)??;
            println!(
                "{} message(s), {} job(s) queued; {} message(s) already here",
                r.messages, r.jobs, r.duplicates
            );
        }
        JobsCommand::Cancel { uuid } => {
            // Unknown or finished jobs are bad input; the rest infrastructure.
            let was = with_app(settings, async |app: &App| app.cancel(&uuid).await)??.was;
            if was == ferrotron::job::JobState::Queued {
                println!("job {uuid}: cancelled (it was queued and will not start)");
            } else {
                println!("job {uuid}: cancelled (it was {was}; its scheduler destroys the VM)");
            }
        }
        JobsCommand::Export { state, file } => {
            let state = ferrotron::job::JobState::from_name(&state)
                .ok_or_else(|| Failure::bad_input(format!("--state {state}: not a job state")))?;
            let n = with_app(settings, async |app: &App| {
                app.export_jobs(state, &file).await
            })??;
            println!("{n} job(s) written to {}", file.display());
        }
    }
    Ok(ExitStatus::Passed)
}
