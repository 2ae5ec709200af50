//! `ferrotron reserve`, `ferrotron reservations ...` and `ferrotron ssh`:
//! root VMs for task authors, on this installation.

use std::path::PathBuf;
use std::time::Duration;

use clap::{Args, Subcommand};
use ferrotron::app::reservations::{summary, Allow, ReservationError, ReserveArgs};
use ferrotron::app::App;
use ferrotron::exit::ExitStatus;
use ferrotron::settings::Settings;
use ferrotron::store::{format_time, Reservation, StoreError};

use super::{with_app, CmdResult, Failure};

/// The requester a reservation made on the command line counts against.
pub const CLI_REQUESTER: &str = "cli";

#[derive(Args)]
pub struct ReserveCmd {
    /// Image (`name` or `name:version`; default the default image).
    #[arg(long)]
    image: Option<String>,
    /// How long the VM is kept once it is up (e.g. 30m, 2h).
    #[arg(long, value_parser = super::parse_duration)]
    ttl: Option<Duration>,
    #[arg(long, value_parser = clap::value_parser!(u32).range(1..))]
    vcpus: Option<u32>,
    /// Memory in MiB.
    #[arg(long, value_parser = clap::value_parser!(u64).range(64..))]
    memory: Option<u64>,
    /// Your public key, for root's login (default ~/.ssh/id_ed25519.pub,
    /// else ~/.ssh/id_rsa.pub).
    #[arg(long, value_name = "FILE")]
    ssh_key: Option<PathBuf>,
    /// A task repository (URL) to find at /root/NAME in the VM.
    #[arg(long)]
    git_repo: Option<String>,
    /// Its branch, tag or commit (default HEAD).
    #[arg(long, requires = "git_repo")]
    git_ref: Option<String>,
    /// What else the VM may reach besides the git cache (repeatable):
    /// `packages`, its image's package repositories through a proxy on
    /// the host (`apt-get install` works; nothing else is reachable).
    #[arg(long, value_name = "WHAT", value_parser = parse_allow)]
    allow: Vec<Allow>,
    /// Return once it is queued, without waiting for the VM.
    #[arg(long)]
    no_wait: bool,
}

#[derive(Subcommand)]
pub enum ReservationsCommand {
    /// Active reservations and holds (`--all`: ended ones too).
    List {
        #[arg(long)]
        all: bool,
    },
    /// One reservation, with how to reach it.
    Show { id: String },
    /// Give a reservation more time.
    Extend {
        id: String,
        #[arg(value_parser = super::parse_duration)]
        by: Duration,
    },
    /// End a reservation now (its VM is destroyed).
    Release { id: String },
}

#[derive(Args)]
pub struct SshCmd {
    /// The reservation.
    id: String,
    /// More arguments for ssh (after `--`), e.g. a command to run.
    #[arg(last = true)]
    rest: Vec<String>,
}

fn read_key(path: Option<PathBuf>) -> Result<String, Failure> {
    let home = std::env::var_os("HOME")
        .map(PathBuf::from)
        .unwrap_or_default();
    let candidates = match path {
        Some(p) => vec![p],
        None => vec![
            home.join(".ssh/id_ed25519.pub"),
            home.join(".ssh/id_rsa.pub"),
        ],
    };
    for p in &candidates {
        if let Ok(k) = std::fs::read_to_string(p) {
            return Ok(k);
        }
    }
    Err(Failure::bad_input(format!(
        "no public key at {} (pass --ssh-key FILE)",
        candidates
            .iter()
            .map(|p| p.display().to_string())
            .collect::<Vec<_>>()
            .join(" or ")
    )))
}

fn reservation_failure(e: ReservationError) -> Failure {
    match e {
        ReservationError::Store(e) => store_failure(e),
        e => Failure::new(ExitStatus::BadInput, e),
    }
}

fn store_failure(e: StoreError) -> Failure {
    match e {
        StoreError::NotFound { .. } | StoreError::Conflict(_) => {
            Failure::new(ExitStatus::BadInput, e)
        }
        e => Failure::infra(e),
    }
}

/// The lines a person reads about `r`.
fn describe(app: &App, r: &Reservation) -> String {
    let mut out = format!(
        "reservation {} ({}), {}\n",
        r.id,
        r.kind.as_str(),
        r.status()
    );
    out.push_str(&format!("  job      {}\n", r.job));
    if let Some(at) = r.expires_at {
        out.push_str(&format!("  expires  {}\n", format_time(at)));
    }
    if r.allow_packages {
        out.push_str(
            "  reaches  the git cache and its image's package repositories (apt-get install works)\n",
        );
    }
    if let Some(reach) = app.reach(r) {
        out.push_str(&format!(
            "  host     {} (port {} on its loopback)\n",
            reach.host, reach.port
        ));
        out.push_str(&format!("  ssh      {}\n", reach.ssh_command));
        out.push_str(&format!(
            "  remote   save `{}` as ferrotron-{}.known_hosts, then: {}\n",
            reach.known_hosts, r.id, reach.ssh_jump_command
        ));
    }
    if let Some(why) = &r.end_reason {
        out.push_str(&format!("  ended    {why}\n"));
    }
    out
}

fn parse_allow(word: &str) -> Result<Allow, String> {
    Allow::parse(word).map_err(|e| e.to_string())
}

pub fn reserve(settings: &Settings, a: ReserveCmd) -> CmdResult {
    let args = ReserveArgs {
        image: a.image,
        ttl: a.ttl,
        vcpus: a.vcpus,
        memory_mib: a.memory,
        ssh_key: read_key(a.ssh_key)?,
        requester: CLI_REQUESTER.into(),
        git_repo: a.git_repo,
        git_ref: a.git_ref,
        allow: a.allow,
    };
    let no_wait = a.no_wait;
    with_app(settings, async |app: &App| -> Result<ExitStatus, Failure> {
        let r = app.reserve(&args).await.map_err(reservation_failure)?;
        eprintln!(
            "ferrotron: reservation {} queued (job {}); waiting for a VM",
            r.id, r.job
        );
        if no_wait {
            println!("{}", r.id);
            return Ok(ExitStatus::Passed);
        }
        loop {
            let now = app.reservation(&r.id).await.map_err(store_failure)?;
            match now.status() {
                "ready" => {
                    print!("{}", describe(app, &now));
                    return Ok(ExitStatus::Passed);
                }
                "ended" => {
                    return Err(Failure::infra(format!(
                        "reservation {} ended before it was ready: {}",
                        now.id,
                        now.end_reason.unwrap_or_default()
                    )))
                }
                _ => tokio::time::sleep(Duration::from_millis(100)).await,
            }
        }
    })?
}

pub fn reservations(settings: &Settings, cmd: ReservationsCommand) -> CmdResult {
    with_app(settings, async |app: &App| -> Result<ExitStatus, Failure> {
        match cmd {
            ReservationsCommand::List { all } => {
                for r in app.reservations(all).await.map_err(store_failure)? {
                    println!("{}", summary(&r));
                }
            }
            ReservationsCommand::Show { id } => {
                let r = app.reservation(&id).await.map_err(store_failure)?;
                print!("{}", describe(app, &r));
            }
            ReservationsCommand::Extend { id, by } => {
                let r = app
                    .extend_reservation(&id, by)
                    .await
                    .map_err(reservation_failure)?;
                print!("{}", describe(app, &r));
            }
            ReservationsCommand::Release { id } => {
                let r = app.release_reservation(&id).await.map_err(store_failure)?;
                println!(
                    "reservation {} released{}",
                    r.id,
                    if r.ended_at.is_some() {
                        ""
                    } else {
                        "; its VM is destroyed within seconds"
                    }
                );
            }
        }
        Ok(ExitStatus::Passed)
    })?
}

/// Runs `ssh` into the reservation's VM with its host key pinned.
pub fn ssh(settings: &Settings, a: SshCmd) -> CmdResult {
    let reach = with_app(settings, async |app: &App| -> Result<_, Failure> {
        let r = app.reservation(&a.id).await.map_err(store_failure)?;
        app.reach(&r).ok_or_else(|| {
            Failure::bad_input(format!(
                "reservation {} is {}: no VM to reach",
                r.id,
                r.status()
            ))
        })
    })??;
    let known = tempfile::NamedTempFile::new().map_err(Failure::infra)?;
    std::fs::write(known.path(), format!("{}\n", reach.known_hosts)).map_err(Failure::infra)?;
    let status = std::process::Command::new("ssh")
        .arg("-o")
        .arg("StrictHostKeyChecking=yes")
        .arg("-o")
        .arg(format!("UserKnownHostsFile={}", known.path().display()))
        .arg("-p")
        .arg(reach.port.to_string())
        .arg("root@127.0.0.1")
        .args(&a.rest)
        .status()
        .map_err(|e| Failure::infra(format!("cannot run ssh: {e}")))?;
    Ok(if status.success() {
        ExitStatus::Passed
    } else {
        ExitStatus::TaskFailed
    })
}
