//! `ferrotron`: the command line. Each subcommand's module parses its
//! arguments, calls the application layer (`ferrotron::app`) and renders the
//! answer. Errors are printed once, with their causes, here in [`main`];
//! their [`ExitStatus`] (0 passed, 1 a task result failed, 2 bad input, 3
//! infrastructure error) becomes the process's exit code here too.

mod backup;
mod cache;
mod doctor;
mod error;
mod formula;
mod image;
mod queue;
mod reserve;
mod results;
mod rules;
mod run;
mod search;
mod serve;

use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::Arc;
use std::time::Duration;

use clap::{Args, Parser, Subcommand};
use ferrotron::app::App;
use ferrotron::exit::ExitStatus;
use ferrotron::intake::enqueue::Intake;
use ferrotron::settings::Settings;
use ferrotron::vm::Accel;

pub use error::{print_error, CmdResult, Failure};

/// Runs `f` against the application layer, its store opened once for the
/// command and closed after (a store that cannot open: exit status 3).
pub fn with_app<T>(settings: &Settings, f: impl AsyncFnOnce(&App) -> T) -> Result<T, Failure> {
    with_app_using(settings, None, f)
}

/// [`with_app`] with rules and mappings for `App::trigger`.
pub fn with_app_using<T>(
    settings: &Settings,
    intake: Option<Arc<Intake>>,
    f: impl AsyncFnOnce(&App) -> T,
) -> Result<T, Failure> {
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .map_err(Failure::infra)?;
    rt.block_on(async {
        let app = App::open(settings)
            .await
            .map_err(Failure::infra)?
            .with_intake(intake);
        let r = f(&app).await;
        app.close().await;
        Ok(r)
    })
}

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
    /// Koji hub the `koji` and `bodhi` directives ask (XML-RPC).
    #[arg(
        long,
        global = true,
        env = "FERROTRON_KOJI_URL",
        default_value = "https://koji.fedoraproject.org/kojihub"
    )]
    koji_url: String,
    /// Where Koji's packages are (the top URL's `packages`).
    #[arg(
        long,
        global = true,
        env = "FERROTRON_KOJI_PACKAGES_URL",
        default_value = "https://kojipkgs.fedoraproject.org/packages"
    )]
    koji_packages_url: String,
    /// Bodhi's REST API (the `bodhi` directive).
    #[arg(
        long,
        global = true,
        env = "FERROTRON_BODHI_URL",
        default_value = "https://bodhi.fedoraproject.org"
    )]
    bodhi_url: String,
    /// dist-git (the `distgit` directive's raw files).
    #[arg(
        long,
        global = true,
        env = "FERROTRON_DISTGIT_URL",
        default_value = "https://src.fedoraproject.org"
    )]
    distgit_url: String,
    /// Largest size of the host's download cache, in MiB.
    #[arg(
        long,
        global = true,
        env = "FERROTRON_DOWNLOAD_CACHE_MIB",
        default_value_t = 20480
    )]
    download_cache_mib: u64,
    /// Fetch a package repository an image names from a mirror of it
    /// (REPOSITORY_URL=MIRROR_URL; repeatable), e.g.
    /// `http://deb.debian.org/debian=http://mirror.example/debian`.
    #[arg(long = "package-mirror", global = true, value_name = "URL=MIRROR")]
    package_mirrors: Vec<ferrotron::packages::Mirror>,
    /// Largest size of the host's package cache (the package proxy's), in MiB.
    #[arg(
        long,
        global = true,
        env = "FERROTRON_PACKAGE_CACHE_MIB",
        default_value_t = 4096
    )]
    package_cache_mib: u64,
    /// Longest time a reservation or hold may last (asked for or
    /// extended to).
    #[arg(
        long,
        global = true,
        env = "FERROTRON_MAX_RESERVATION_TTL",
        default_value = "1d",
        value_parser = parse_duration
    )]
    max_reservation_ttl: Duration,
    /// Active reservations and holds one token (or the command line) may
    /// have.
    #[arg(
        long,
        global = true,
        env = "FERROTRON_RESERVATIONS_PER_TOKEN",
        default_value_t = 2
    )]
    reservations_per_token: i64,
    /// Published artifacts (default: <data dir>/artifacts). Give every
    /// worker and API server of an installation the same shared folder
    /// (NFS) and any of them serves any job's files.
    #[arg(long, global = true, env = "FERROTRON_ARTIFACTS_DIR")]
    artifacts_dir: Option<PathBuf>,
    /// This worker's host name: its row in `host status`, the prefix of its
    /// leases and the scope of `host idle` (default: the kernel's
    /// hostname). Several workers on one machine need one each.
    #[arg(long, global = true, env = "FERROTRON_HOST_NAME")]
    host_name: Option<String>,
    /// More log output (-v debug, -vv trace).
    #[arg(short, long, global = true, action = clap::ArgAction::Count)]
    verbose: u8,
}

#[derive(Subcommand)]
enum Command {
    /// Run a task formula against an item.
    Run(Box<run::RunArgs>),
    /// Build, list and prune base images.
    #[command(subcommand)]
    Image(image::ImageCommand),
    /// Destroy VMs and overlays left by orchestrators that died.
    Cleanup,
    /// Check this host: libvirt, KVM, images, templates, database, broker,
    /// disk, clock; one line each, with what to do. Exit 0 when jobs can run.
    Doctor(doctor::DoctorArgs),
    /// The git cache of task repositories.
    #[command(subcommand)]
    Cache(cache::CacheCommand),
    /// Work with task formulas.
    #[command(subcommand)]
    Formula(formula::FormulaCommand),
    /// Check trigger rules and see which jobs a message would create.
    #[command(subcommand)]
    Rules(rules::RulesCommand),
    /// Serve the HTTP API (ResultsDB v2.0 and Ferrotron's jobs API).
    Serve(Box<serve::ServeArgs>),
    /// Create, list and revoke API tokens.
    #[command(subcommand)]
    Token(serve::TokenCommand),
    /// Stop (idle) or resume starting jobs on this installation.
    #[command(subcommand)]
    Host(queue::HostCommand),
    /// Queue one job directly (no rules).
    Submit(queue::SubmitArgs),
    /// Put a message through the rules into the job queue.
    Trigger(queue::TriggerArgs),
    /// Move queued jobs between installations as CSV files.
    #[command(subcommand)]
    Jobs(queue::JobsCommand),
    /// Copy results from another ResultsDB.
    #[command(subcommand)]
    Results(results::ResultsCommand),
    /// Reserve a root VM for a while (queued like a job); prints how to
    /// reach it.
    Reserve(reserve::ReserveCmd),
    /// List, show, extend or release reservations and holds.
    #[command(subcommand)]
    Reservations(reserve::ReservationsCommand),
    /// SSH into a reservation's VM (its host key pinned).
    Ssh(reserve::SshCmd),
    /// Back up the installation while it runs: database, job folders,
    /// cache lists, image manifests, configuration; with checksums.
    Backup(backup::BackupArgs),
    /// Restore a backup into a fresh installation before its service
    /// starts (checked first; nothing half-restored).
    Restore(backup::RestoreArgs),
    /// Search job logs, task output and result notes: one line per hit,
    /// `job  file:line  snippet`.
    Search(search::SearchArgs),
    /// Maintenance of the results store.
    #[command(subcommand, hide = true)]
    Store(serve::StoreCommand),
}

use ferrotron::util::parse_duration;

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
    s.downloads = ferrotron::settings::DownloadSettings {
        services: ferrotron::downloads::Services {
            koji_hub: g.koji_url.clone(),
            koji_packages: g.koji_packages_url.clone(),
            bodhi: g.bodhi_url.clone(),
            distgit: g.distgit_url.clone(),
        },
        cache_max_bytes: g.download_cache_mib.saturating_mul(1024 * 1024),
    };
    s.artifacts_dir = g.artifacts_dir.clone();
    if let Some(h) = g.host_name.as_ref().filter(|h| !h.trim().is_empty()) {
        s.host_name = h.trim().to_string();
    }
    s.reservations.max_ttl = g.max_reservation_ttl;
    s.reservations.default_ttl = s.reservations.default_ttl.min(g.max_reservation_ttl);
    s.reservations.per_requester = g.reservations_per_token;
    s.packages = ferrotron::packages::PackageSettings {
        mirrors: g.package_mirrors.clone(),
        cache_max_bytes: g.package_cache_mib.saturating_mul(1024 * 1024),
    };
    s
}

/// Parses the command line, runs the command, prints its error (if any)
/// and returns the exit code.
pub fn main() -> ExitCode {
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

fn dispatch(settings: Settings, command: Command) -> CmdResult {
    match command {
        Command::Run(args) => run::run(settings, *args),
        Command::Image(cmd) => image::main(&settings, cmd),
        Command::Rules(cmd) => rules::main(cmd),
        Command::Cache(cmd) => cache::main(&settings, cmd),
        Command::Formula(cmd) => formula::main(cmd),
        Command::Serve(args) => serve::serve(settings, *args),
        Command::Token(cmd) => serve::token(&settings, cmd),
        Command::Store(cmd) => serve::store(&settings, cmd),
        Command::Host(cmd) => queue::host(&settings, cmd),
        Command::Submit(a) => queue::submit(&settings, a),
        Command::Trigger(a) => queue::trigger(&settings, a),
        Command::Jobs(cmd) => queue::jobs(&settings, cmd),
        Command::Doctor(a) => doctor::run(&settings, a),
        Command::Results(c) => results::run(&settings, c),
        Command::Backup(a) => backup::backup(&settings, a),
        Command::Reserve(a) => reserve::reserve(&settings, a),
        Command::Reservations(c) => reserve::reservations(&settings, c),
        Command::Ssh(a) => reserve::ssh(&settings, a),
        Command::Restore(a) => backup::restore(&settings, a),
        Command::Search(a) => search::run(&settings, a),
        Command::Cleanup => {
            let r = ferrotron::app::reap(&settings)?;
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
