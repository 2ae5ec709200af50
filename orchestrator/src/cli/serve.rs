//! `ferrotron serve`, `ferrotron token ...` and the hidden `ferrotron
//! store ...`: argument parsing and printing; the work is in
//! `ferrotron::app`.

use std::net::SocketAddr;
use std::path::PathBuf;

use clap::{Args, Subcommand};
use ferrotron::api::ApiConfig;
use ferrotron::app::seed::SeedError;
use ferrotron::app::App;
use ferrotron::exit::ExitStatus;
use ferrotron::settings::Settings;

use super::{with_app, CmdResult, Failure};

#[derive(Args)]
pub struct ServeArgs {
    /// Extra kernel command-line word for every job's guest (repeatable;
    /// its jobs boot cold): debugging a guest (`systemd.log_level=debug`),
    /// or a guest that must fail (`ferrotron.net=off`, the tests).
    #[arg(long = "kernel-arg")]
    kernel_args: Vec<String>,
    /// How jobs' and reservations' VMs start: `warm` restores them from a
    /// template saved once per image and host; `cold` boots each.
    #[arg(long, env = "FERROTRON_START", default_value = "warm")]
    start: ferrotron::settings::StartMode,
    /// Address to listen on.
    #[arg(long, env = "FERROTRON_LISTEN", default_value = "127.0.0.1:8080")]
    listen: SocketAddr,
    /// Require a token for reads too (writes always need one).
    #[arg(long, env = "FERROTRON_REQUIRE_TOKEN_FOR_READS")]
    require_token_for_reads: bool,
    /// Base of the URLs in responses (default: http:// + the Host header).
    #[arg(long, env = "FERROTRON_PUBLIC_URL")]
    public_url: Option<String>,
    /// Largest JSON body accepted, in bytes.
    #[arg(long, default_value_t = 1024 * 1024)]
    max_body_bytes: usize,
    /// Largest artifact upload accepted, in bytes.
    #[arg(long, default_value_t = 1024 * 1024 * 1024)]
    max_artifact_bytes: u64,
    /// Most connections open at once; more wait until one closes.
    #[arg(long, env = "FERROTRON_MAX_CONNECTIONS", default_value_t = 1024)]
    max_connections: usize,
    /// Seconds a connection may stay silent (nothing read or written)
    /// before it is closed.
    #[arg(long, env = "FERROTRON_IDLE_TIMEOUT", default_value_t = 120)]
    idle_timeout: u64,
    /// Seconds a request's headers may take from their first byte (a
    /// client trickling them is never idle); then the connection closes.
    #[arg(long, env = "FERROTRON_HEADER_TIMEOUT", default_value_t = 30)]
    header_timeout: u64,
    /// Messages one token may post (`POST /api/v1/messages`), as
    /// N/SECONDS; past it the answer is 429 and nothing is queued.
    #[arg(long, env = "FERROTRON_MESSAGE_LIMIT", default_value = "600/60")]
    message_limit: ferrotron::api::ratelimit::Rate,
    /// Job logs followed at once (`GET /api/v1/jobs/ID/log` of a running
    /// job); more get 503.
    #[arg(long, env = "FERROTRON_MAX_LOG_FOLLOWERS", default_value_t = 256,
          value_parser = clap::value_parser!(u32).range(1..))]
    max_log_followers: u32,
    /// Print the OpenAPI document and exit.
    #[arg(long)]
    print_openapi: bool,
    /// Trigger rules for message intake (`POST /api/v1/messages`, AMQP).
    #[arg(long, env = "FERROTRON_RULES")]
    rules: Option<PathBuf>,
    /// Field mappings for the rules (default: the built-in ones).
    #[arg(long, env = "FERROTRON_MAPPINGS")]
    mappings: Option<PathBuf>,
    /// Most VMs this host runs at once.
    #[arg(long, env = "FERROTRON_MAX_VMS", default_value_t = 2)]
    max_vms: usize,
    /// VMs to keep restored from an image's warm-start template and
    /// waiting for a job (like Nodepool's min-ready): `N` for the default
    /// image, `NAME=N` for another (repeatable). They count in --max-vms;
    /// a job that finds one skips the restore, and gets its own key, host
    /// key, clock and entropy as any job.
    #[arg(long, value_name = "[IMAGE=]N", value_parser = parse_ready)]
    ready: Vec<(String, usize)>,
    /// vCPUs all VMs here may have at once (default: 2 per CPU libvirt
    /// reports).
    #[arg(long, env = "FERROTRON_MAX_VCPUS", value_parser = clap::value_parser!(u32).range(1..))]
    max_vcpus: Option<u32>,
    /// Memory in MiB all VMs here may have at once (default: libvirt's
    /// node memory minus 10 %, at least 1 GiB, for the host).
    #[arg(long, env = "FERROTRON_MAX_MEMORY", value_parser = clap::value_parser!(u64).range(1..))]
    max_memory: Option<u64>,
    /// Do not run jobs here (record and serve only).
    #[arg(long)]
    no_scheduler: bool,
    /// Attempts per job: infrastructure errors are retried up to this.
    #[arg(long, default_value_t = 3)]
    max_attempts: i64,
    /// First retry delay in seconds (doubled per attempt, at most 300).
    #[arg(long, default_value_t = 5)]
    retry_backoff_secs: u64,
    /// Seconds a claimed job's lease lasts without renewal.
    #[arg(long, default_value_t = 30)]
    lease_secs: u64,
    /// RabbitMQ (amqp://user:pass@host:port/vhost): consume messages from
    /// it (with `--rules`) and publish results and job changes to it
    /// (unless `--no-publish`).
    #[arg(long, env = "FERROTRON_AMQP_URL")]
    amqp_url: Option<String>,
    /// Do not publish messages (`resultsdb.result.new`,
    /// `taskotron.result.new`, `ferrotron.job.<state>`) to `--amqp-url`.
    #[arg(long, env = "FERROTRON_NO_PUBLISH")]
    no_publish: bool,
    /// Put this before the topic of every message published, with a dot
    /// (`org.fedoraproject.prod`, as Fedora Messaging's `topic_prefix`).
    #[arg(long, env = "FERROTRON_PUBLISH_TOPIC_PREFIX", default_value = "")]
    publish_topic_prefix: String,
    /// The durable queue to consume.
    #[arg(long, default_value = "ferrotron")]
    amqp_queue: String,
    /// The topic exchange the queue's bindings are made on (declared,
    /// durable, when it is not `amq.topic`).
    #[arg(long, env = "FERROTRON_AMQP_EXCHANGE", default_value = "amq.topic")]
    amqp_exchange: String,
    /// Topic bindings of the queue (repeatable).
    #[arg(long = "amqp-binding")]
    amqp_bindings: Vec<String>,
    /// Where messages that can never be handled go (default
    /// `<amqp-queue>.dead-letter`), with why in `x-ferrotron-reason`.
    #[arg(long)]
    amqp_dead_letter_queue: Option<String>,
    /// Messages one topic may bring, as N/SECONDS; past it they are
    /// dead-lettered (default: no limit).
    #[arg(long, env = "FERROTRON_AMQP_TOPIC_LIMIT")]
    amqp_topic_limit: Option<ferrotron::api::ratelimit::Rate>,
    /// Sync every repository of the git cache this often (0: never).
    #[arg(long, default_value = "15m", value_parser = super::parse_duration)]
    cache_sync_every: std::time::Duration,
    /// Check (and repair) every mirror of the git cache this often (0: never).
    #[arg(long, default_value = "1d", value_parser = super::parse_duration)]
    cache_fsck_every: std::time::Duration,
    /// Append every job the intake stores to this CSV file (for
    /// `ferrotron jobs replay` on another installation).
    #[arg(long, env = "FERROTRON_RECORD_CSV", requires = "rules")]
    record_csv: Option<PathBuf>,
    /// Seconds a job may take in all (boot + task + collect) when it has
    /// no time-out of its own; then it is stopped and ends in `error`.
    #[arg(long, env = "FERROTRON_JOB_TIMEOUT", value_parser = clap::value_parser!(u64).range(1..))]
    job_timeout: Option<u64>,
}

#[derive(Subcommand)]
pub enum TokenCommand {
    /// Create a token; it is printed once and only its hash is stored.
    Create {
        name: String,
        /// What it may do: `reader` reads; `reporter` also posts results,
        /// artifacts, job reports and messages; `operator` also cancels
        /// jobs and syncs the cache. There is no default: choose the least
        /// the token's user needs.
        #[arg(long, value_enum)]
        role: ferrotron::store::Role,
    },
    /// List tokens (names and dates, never secrets).
    List,
    /// Revoke a token.
    Revoke { name: String },
}

#[derive(Subcommand)]
pub enum StoreCommand {
    /// Apply migrations and exit.
    Migrate,
    /// Insert synthetic history in bulk (benchmarks): results, and
    /// finished jobs with logs indexed for search; prints a JSON report.
    Seed {
        /// Results (10 testcases, 1,000 items).
        #[arg(long, default_value_t = 0)]
        results: usize,
        /// Finished jobs (40 tasks, 5,000 items, 8 hosts), one a minute.
        #[arg(long, default_value_t = 0)]
        jobs: usize,
        /// MiB of runner.log shared between the jobs, indexed for search.
        #[arg(long, default_value_t = 0, requires = "jobs")]
        log_mb: u64,
    },
}

fn runtime() -> Result<tokio::runtime::Runtime, std::io::Error> {
    tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
}

async fn shutdown_signal() {
    let term = async {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut s) => {
                s.recv().await;
            }
            Err(_) => std::future::pending::<()>().await,
        }
    };
    tokio::select! {
        _ = tokio::signal::ctrl_c() => {}
        _ = term => {}
    }
}

pub fn serve(mut settings: Settings, args: ServeArgs) -> CmdResult {
    if args.print_openapi {
        print!("{}", ferrotron::api::openapi_json());
        return Ok(ExitStatus::Passed);
    }
    settings.extra_cmdline = args.kernel_args.clone();
    settings.start = args.start;
    // Empty: the address `serve` listens on.
    let base_url = args.public_url.clone().unwrap_or_default();
    let publish = match (&args.amqp_url, args.no_publish) {
        (Some(url), false) => {
            let mut c = ferrotron::publish::PublishConfig::new(url, &args.amqp_exchange, &base_url);
            c.topic_prefix = args.publish_topic_prefix.clone();
            Some(c)
        }
        _ => None,
    };
    let config = ApiConfig {
        require_token_for_reads: args.require_token_for_reads,
        public_url: args.public_url,
        max_body_bytes: args.max_body_bytes,
        max_artifact_bytes: args.max_artifact_bytes,
        message_rate: args.message_limit,
        max_followers: args.max_log_followers as usize,
        limits: ferrotron::api::listener::Limits {
            max_connections: args.max_connections,
            idle_timeout: std::time::Duration::from_secs(args.idle_timeout.max(1)),
            header_timeout: std::time::Duration::from_secs(args.header_timeout.max(1)),
        },
    };
    let intake = match &args.rules {
        Some(path) => Some(
            super::queue::load_intake(path, args.mappings.as_deref(), args.max_attempts)?
                .with_images(settings.images_dir.clone())
                .with_recorder(
                    args.record_csv
                        .clone()
                        .map(ferrotron::intake::jobs_csv::Recorder::new),
                ),
        ),
        None => None,
    };
    let scheduler = (!args.no_scheduler).then(|| {
        let mut c =
            ferrotron::scheduler::SchedulerConfig::for_host(args.max_vms, &settings.host_name);
        c.max_vcpus = args.max_vcpus;
        c.max_memory_mib = args.max_memory;
        c.backoff = std::time::Duration::from_secs(args.retry_backoff_secs);
        c.lease = std::time::Duration::from_secs(args.lease_secs.max(3));
        c.job_timeout = args.job_timeout.map(std::time::Duration::from_secs);
        c.ready = args.ready.clone();
        c
    });
    if scheduler.is_some() && args.ready.iter().any(|(_, n)| *n > 0) {
        settings.ready_pool = Some(std::sync::Arc::new(
            ferrotron::vm::ready::ReadyPool::default(),
        ));
    }
    if scheduler.is_some() {
        // VMs of a previous run that died (kill -9) go before new ones start.
        match ferrotron::app::reap(&settings) {
            Ok(r) if !r.domains.is_empty() || !r.folders.is_empty() => eprintln!(
                "ferrotron: removed {} leftover domain(s) and {} folder(s)",
                r.domains.len(),
                r.folders.len()
            ),
            Ok(_) => {}
            // Intake and the API still work; jobs will fail as infrastructure
            // errors (and be retried) until libvirt answers.
            Err(e) => eprintln!(
                "ferrotron: warning: cannot look for leftover VMs: {}",
                ferrotron::util::full(&e)
            ),
        }
    }
    let amqp = args.amqp_url.as_deref().map(|url| {
        let mut c = ferrotron::intake::amqp::AmqpConfig::new(
            url,
            &args.amqp_queue,
            args.amqp_bindings.clone(),
        );
        if let Some(q) = &args.amqp_dead_letter_queue {
            c.dead_letter = q.clone();
        }
        c.exchange = args.amqp_exchange.clone();
        c.topic_rate = args.amqp_topic_limit;
        c
    });
    let service = ferrotron::app::ServiceConfig {
        intake,
        scheduler,
        amqp,
        publish,
        cache_upkeep: ferrotron::cache::maintain::Upkeep {
            sync_every: Some(args.cache_sync_every),
            fsck_every: Some(args.cache_fsck_every),
        },
    };
    let rt = runtime().map_err(Failure::infra)?;
    rt.block_on(ferrotron::app::serve(
        settings,
        config,
        args.listen,
        service,
        shutdown_signal(),
    ))
    .map_err(Failure::infra)?;
    Ok(ExitStatus::Passed)
}

pub fn token(settings: &Settings, cmd: TokenCommand) -> CmdResult {
    match cmd {
        TokenCommand::Create { name, role } => {
            let secret = with_app(settings, async |app: &App| {
                app.create_token(&name, role).await
            })??;
            println!("{secret}");
            eprintln!("ferrotron: token `{name}` ({role}) created; it is shown only now");
        }
        TokenCommand::List => {
            for t in with_app(settings, async |app: &App| app.list_tokens().await)?? {
                println!(
                    "{}\t{}\tcreated {}",
                    t.name,
                    t.role,
                    ferrotron::store::format_time(t.created_at)
                );
            }
        }
        TokenCommand::Revoke { name } => {
            with_app(settings, async |app: &App| app.revoke_token(&name).await)??;
            println!("revoked {name}");
        }
    }
    Ok(ExitStatus::Passed)
}

/// `store migrate` only opens the store (which migrates it); `store
/// seed` prints its report of seeded jobs as one JSON line.
pub fn store(settings: &Settings, cmd: StoreCommand) -> CmdResult {
    match cmd {
        StoreCommand::Migrate => with_app(settings, async |_: &App| ())?,
        StoreCommand::Seed {
            results,
            jobs,
            log_mb,
        } => {
            let report = with_app(settings, async |app: &App| {
                app.seed_results(results).await?;
                match jobs {
                    0 => Ok::<_, SeedError>(None),
                    n => Ok(Some(app.seed_jobs(n, log_mb * 1_048_576).await?)),
                }
            })?
            .map_err(Failure::infra)?;
            if let Some(r) = report {
                println!("{}", serde_json::json!(r));
            }
        }
    }
    Ok(ExitStatus::Passed)
}

/// `--ready N` (the default image) or `--ready NAME=N`.
fn parse_ready(s: &str) -> Result<(String, usize), String> {
    let (image, n) = match s.split_once('=') {
        Some((i, n)) => (i.trim().to_string(), n),
        None => (ferrotron::images::DEFAULT_IMAGE.to_string(), s),
    };
    if image.is_empty() {
        return Err(format!("`{s}`: give IMAGE=N or N"));
    }
    let n = n
        .trim()
        .parse::<usize>()
        .map_err(|_| format!("`{s}`: the count must be a whole number (`2`, `tiny=1`)"))?;
    Ok((image, n))
}
