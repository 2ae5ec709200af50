//! `ferrotron`: the command line. Errors are printed once, with their
//! causes, and mapped to documented exit statuses ([`ExitStatus`]):
//! 0 passed, 1 a task result failed, 2 bad input, 3 infrastructure error.

use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Duration;

use clap::{Args, Parser, Subcommand};
use ferrotron::cancel::Cancel;
use ferrotron::exit::{ExitStatus, HasExitStatus};
use ferrotron::progress::Progress;
use ferrotron::runner::{RunError, RunRequest};
use ferrotron::settings::Settings;
use ferrotron::vm::Accel;

mod cache_cmd;
mod image_cmd;
mod queue_cmd;
mod rules_cmd;
mod serve_cmd;

#[derive(Parser)]
#[command(
    name = "ferrotron",
    version,
    about = "Run tasks in disposable libvirt VMs"
)]
struct Cli {
    #[command(flatten)]
    global: GlobalArgs,
    #[command(subcommand)]
    command: Command,
}

#[derive(Args)]
struct GlobalArgs {
    /// Data folder: jobs, VM overlays, images.
    #[arg(long, global = true, env = "FERROTRON_DATA_DIR")]
    data_dir: Option<PathBuf>,
    /// Image store (default: <data dir>/images).
    #[arg(long, global = true, env = "FERROTRON_IMAGES_DIR")]
    images_dir: Option<PathBuf>,
    /// Warm-start templates (default: <data dir>/templates).
    #[arg(long, global = true, env = "FERROTRON_TEMPLATES_DIR")]
    templates_dir: Option<PathBuf>,
    /// libvirt connection URI.
    #[arg(
        long,
        global = true,
        env = "FERROTRON_LIBVIRT_URI",
        default_value = "qemu:///system"
    )]
    libvirt_uri: String,
    /// VM acceleration: kvm, tcg or auto (tries KVM once, remembers).
    #[arg(long, global = true, env = "FERROTRON_ACCEL", default_value = "auto")]
    accel: Accel,
    /// Guest agent uploaded when the image's copy differs.
    #[arg(long, global = true, env = "FERROTRON_AGENT")]
    agent: Option<PathBuf>,
    /// How guests reach the git cache: tunnel (over SSH, default) or direct.
    #[arg(
        long,
        global = true,
        env = "FERROTRON_CACHE_ACCESS",
        default_value = "tunnel"
    )]
    cache_access: ferrotron::cache::checkout::CacheAccess,
    /// The git cache's URL as guests see it (for --cache-access direct).
    #[arg(long, global = true, env = "FERROTRON_CACHE_URL")]
    cache_url: Option<String>,
    /// Results store: postgres://... for PostgreSQL, else a SQLite URL
    /// (default: sqlite://<data dir>/ferrotron.db).
    #[arg(long, global = true, env = "FERROTRON_DATABASE_URL")]
    database_url: Option<String>,
    /// Seconds one read or write on a git origin's connection may wait
    /// (connecting: at most 10); a silent origin then fails the sync.
    #[arg(
        long,
        global = true,
        env = "FERROTRON_GIT_TIMEOUT",
        default_value_t = 60,
        value_parser = clap::value_parser!(u64).range(1..=86_400)
    )]
    git_timeout: u64,
    /// More log output (-v debug, -vv trace).
    #[arg(short, long, global = true, action = clap::ArgAction::Count)]
    verbose: u8,
}

#[derive(Subcommand)]
enum Command {
    /// Run a task formula against an item.
    Run(Box<RunArgs>),
    /// Build, list and prune base images.
    #[command(subcommand)]
    Image(image_cmd::ImageCommand),
    /// Destroy VMs and overlays left by orchestrators that died.
    Cleanup,
    /// The git cache of task repositories.
    #[command(subcommand)]
    Cache(cache_cmd::CacheCommand),
    /// Work with task formulas.
    #[command(subcommand)]
    Formula(FormulaCommand),
    /// Check trigger rules and see which jobs a message would create.
    #[command(subcommand)]
    Rules(rules_cmd::RulesCommand),
    /// Serve the HTTP API (ResultsDB v2.0 and Ferrotron's jobs API).
    Serve(serve_cmd::ServeArgs),
    /// Create, list and revoke API tokens.
    #[command(subcommand)]
    Token(serve_cmd::TokenCommand),
    /// Stop (idle) or resume starting jobs on this installation.
    #[command(subcommand)]
    Host(queue_cmd::HostCommand),
    /// Queue one job directly (no rules).
    Submit(queue_cmd::SubmitArgs),
    /// Put a message through the rules into the job queue.
    Trigger(queue_cmd::TriggerArgs),
    /// Move queued jobs between installations as CSV files.
    #[command(subcommand)]
    Jobs(queue_cmd::JobsCommand),
    /// Maintenance of the results store.
    #[command(subcommand, hide = true)]
    Store(serve_cmd::StoreCommand),
}

#[derive(Subcommand)]
enum FormulaCommand {
    /// Validate formulas without running them.
    Check {
        #[arg(required = true)]
        files: Vec<PathBuf>,
    },
    /// Print the JSON Schema of the formula language (for editors).
    Schema,
}

#[derive(Args)]
struct RunArgs {
    /// Run in a fresh libvirt VM (without it: on this host, in a fresh work
    /// folder, as the current user).
    #[arg(long)]
    libvirt: bool,
    /// The item to check (for example a Koji build NVR).
    #[arg(short, long)]
    item: String,
    /// The item's type (koji_build, bodhi_update, koji_tag, compose,
    /// git_commit, docker_image, item).
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

fn parse_duration(s: &str) -> Result<Duration, String> {
    let (num, unit) = s.split_at(s.find(|c: char| !c.is_ascii_digit()).unwrap_or(s.len()));
    let n: u64 = num
        .parse()
        .map_err(|_| format!("`{s}` is not a duration like 90s, 30m or 2h"))?;
    let mult = match unit {
        "" | "s" => 1,
        "m" => 60,
        "h" => 3600,
        "d" => 86400,
        _ => return Err(format!("`{s}`: unknown unit `{unit}` (use s, m, h or d)")),
    };
    Ok(Duration::from_secs(n * mult))
}

fn settings(g: &GlobalArgs) -> Settings {
    let mut s = Settings::new(
        g.data_dir
            .clone()
            .unwrap_or_else(Settings::default_data_dir),
    );
    if let Some(i) = &g.images_dir {
        s.images_dir = i.clone();
    }
    if let Some(t) = &g.templates_dir {
        s.templates_dir = t.clone();
    }
    s.libvirt_uri = g.libvirt_uri.clone();
    s.accel = g.accel;
    s.agent = g.agent.clone();
    s.cache_access = g.cache_access;
    s.cache_url = g.cache_url.clone();
    s.database_url = g.database_url.clone();
    s
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    // SAFETY: nothing has started a thread yet (argument parsing does not);
    // libgit2's time-outs are set here once, before any git work.
    #[allow(unsafe_code)]
    unsafe {
        ferrotron::cache::net::set_network_timeouts(std::time::Duration::from_secs(
            cli.global.git_timeout,
        ));
    }
    let filter = match cli.global.verbose {
        0 => "warn",
        1 => "ferrotron=debug,ferrotron_imagebuilder=debug,info",
        _ => "trace",
    };
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_env("FERROTRON_LOG")
                .unwrap_or_else(|_| filter.into()),
        )
        .with_writer(std::io::stderr)
        .with_target(false)
        .init();
    let status = match dispatch(settings(&cli.global), cli.command) {
        Ok(status) => status,
        Err(failure) => {
            print_error(&*failure.error);
            failure.status
        }
    };
    // The one place an exit status becomes the process's exit code.
    ExitCode::from(status)
}

/// A command's error on its way to `main`, with the exit status it means.
pub struct Failure {
    pub status: ExitStatus,
    pub error: Box<dyn std::error::Error + Send + Sync>,
}

impl Failure {
    pub fn new(
        status: ExitStatus,
        error: impl Into<Box<dyn std::error::Error + Send + Sync>>,
    ) -> Failure {
        Failure {
            status,
            error: error.into(),
        }
    }

    /// Bad input described by a sentence (exit status 2).
    pub fn bad_input(message: impl Into<String>) -> Failure {
        Failure::new(ExitStatus::BadInput, message.into())
    }

    /// An infrastructure error (exit status 3).
    pub fn infra(error: impl Into<Box<dyn std::error::Error + Send + Sync>>) -> Failure {
        Failure::new(ExitStatus::Infrastructure, error)
    }
}

impl<E> From<E> for Failure
where
    E: HasExitStatus + std::error::Error + Send + Sync + 'static,
{
    fn from(e: E) -> Failure {
        Failure::new(e.exit_status(), e)
    }
}

/// What a command ends with: its exit status, or an error to print.
pub type CmdResult = Result<ExitStatus, Failure>;

/// Prints an error and its causes on one line: `ferrotron: error: a: b: c`.
/// Commands that check several files print each bad one with this and go
/// on; every other error reaches `main` and is printed there.
pub fn print_error(e: &(dyn std::error::Error + 'static)) {
    let mut line = e.to_string();
    let mut cur = e.source();
    while let Some(s) = cur {
        line.push_str(": ");
        line.push_str(&s.to_string());
        cur = s.source();
    }
    eprintln!("ferrotron: error: {line}");
}

fn dispatch(settings: Settings, command: Command) -> CmdResult {
    match command {
        Command::Run(args) => run(settings, *args),
        Command::Image(cmd) => image_cmd::main(&settings, cmd),
        Command::Rules(cmd) => rules_cmd::main(cmd),
        Command::Cache(cmd) => cache_cmd::main(&settings, cmd),
        Command::Formula(FormulaCommand::Check { files }) => {
            let mut status = ExitStatus::Passed;
            for f in &files {
                match ferrotron::commands::load_formula(f) {
                    Ok(formula) => {
                        println!("{}: ok ({} action(s))", f.display(), formula.actions.len())
                    }
                    Err(e) => {
                        status = e.exit_status();
                        print_error(&e);
                    }
                }
            }
            Ok(status)
        }
        Command::Formula(FormulaCommand::Schema) => {
            print!("{}", ferrotron::formula::Formula::json_schema());
            Ok(ExitStatus::Passed)
        }
        Command::Serve(args) => serve_cmd::serve(settings, args),
        Command::Token(cmd) => serve_cmd::token(&settings, cmd),
        Command::Store(cmd) => serve_cmd::store(&settings, cmd),
        Command::Host(cmd) => queue_cmd::host(&settings, cmd),
        Command::Submit(a) => queue_cmd::submit(&settings, a),
        Command::Trigger(a) => queue_cmd::trigger(&settings, a),
        Command::Jobs(cmd) => queue_cmd::jobs(&settings, cmd),
        Command::Cleanup => {
            let r = ferrotron::commands::reap(&settings)?;
            println!(
                "removed {} domain(s), {} folder(s), {} warm-start template(s)",
                r.domains.len(),
                r.folders.len(),
                r.templates.len()
            );
            Ok(ExitStatus::Passed)
        }
    }
}

fn run(mut settings: Settings, args: RunArgs) -> CmdResult {
    let formula = ferrotron::commands::load_formula(&args.formula)?;
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
    let mut info = ferrotron::report_client::JobInfo {
        item: args.item.clone(),
        item_type: args.item_type.clone(),
        arch: args.arch.clone(),
        formula: formula.name.clone(),
        exit_status: 0,
    };
    let req = RunRequest {
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
        timeout: args.timeout,
        states: None,
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
                let r = ferrotron::commands::run_in_vm(&settings, &req, &c, &ui);
                (r, ui.elapsed())
            } else {
                let ui = Progress::new(quiet, ferrotron::progress::LOCAL_PHASES);
                let r = ferrotron::commands::run_local(&settings, &req, &c, &ui);
                (r, ui.elapsed())
            }
        });
        let mut term = match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(s) => s,
            Err(e) => return Err(RunError::Infra { phase: "start", message: e.to_string() }),
        };
        let signal = tokio::select! {
            r = &mut job => return r.map_err(|e| RunError::Infra { phase: "run", message: e.to_string() }),
            _ = tokio::signal::ctrl_c() => "SIGINT",
            _ = term.recv() => "SIGTERM",
        };
        let destroyed = cancel.cancel(signal);
        if destroyed.is_empty() {
            eprintln!("ferrotron: {signal} received: stopping the job");
        } else {
            eprintln!("ferrotron: {signal} received: destroying {}", destroyed.join(", "));
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
