//! Scheduler cost alone: a queue kept at `--jobs` queued jobs (default
//! 10,000) and `--hosts` simulated hosts (default 100), each a libvirt
//! `test:///default` connection whose node info gives its capacity.
//! Hosts take turns; each turn is one scheduling decision, timed: a claim
//! of the best job that fits the host's free vCPUs, memory and VM slots
//! (`Store::claim_fitting`: pick + place, with its guarded UPDATE). A job
//! claimed is "started" as a test domain and replaced in the queue by a
//! fresh one (so the depth stays constant); a full host first "finishes"
//! its oldest job (domain destroyed, job passed). Neither is timed.
//!
//! Prints one JSON line: decisions, p50/p99/mean/max per decision in ms,
//! the sum of the decisions and the wall time, and p50/p99 of a minimal
//! durable write transaction on the same database (the disk's floor under
//! every decision, which commits one). Used by
//! scripts/bench_sched.py (`make bench`).
//!
//! ```text
//! cargo run --release -p ferrotron --example sched_bench -- \
//!     [--pg ADMIN_URL] [--jobs 10000] [--hosts 100] [--decisions 10000] [--max-vms 8] [--keep]
//! ```

use std::time::{Duration, Instant};

use anyhow::{bail, Context};
use ferrotron::job::{JobState, Move};
use ferrotron::placement::{Ledger, Needs};
use ferrotron::scheduler::simhost::SimHost;
use ferrotron::store::{now_micros, HostRecord, NewQueuedJob, Store};

/// Durable write transactions timed after the decisions.
const COMMITS: usize = 500;

struct Args {
    pg: Option<String>,
    jobs: usize,
    hosts: usize,
    decisions: usize,
    max_vms: u32,
    /// Keep the database afterwards (its URL on stderr) to inspect it.
    keep: bool,
}

fn args() -> anyhow::Result<Args> {
    let mut a = Args {
        pg: None,
        jobs: 10_000,
        hosts: 100,
        decisions: 10_000,
        max_vms: 8,
        keep: false,
    };
    let mut it = std::env::args().skip(1);
    while let Some(flag) = it.next() {
        if flag == "--keep" {
            a.keep = true;
            continue;
        }
        let value = it.next().with_context(|| format!("{flag} needs a value"))?;
        let num = || {
            value
                .parse::<usize>()
                .with_context(|| format!("{flag} {value}"))
        };
        match flag.as_str() {
            "--pg" => a.pg = Some(value.clone()),
            "--jobs" => a.jobs = num()?,
            "--hosts" => a.hosts = num()?.max(1),
            "--decisions" => a.decisions = num()?,
            "--max-vms" => a.max_vms = u32::try_from(num()?)?,
            _ => bail!("unknown flag {flag}"),
        }
    }
    Ok(a)
}

/// The store under test and how to remove it afterwards.
enum Db {
    /// Kept for its `Drop`, which removes the folder.
    Sqlite {
        _dir: tempfile::TempDir,
    },
    Postgres {
        admin: String,
        name: String,
    },
}

async fn open(a: &Args) -> anyhow::Result<(Store, Db)> {
    use sqlx::Executor;
    match &a.pg {
        None => {
            let dir = tempfile::tempdir()?;
            let url = format!("sqlite://{}?mode=rwc", dir.path().join("q.db").display());
            Ok((Store::open(&url).await?, Db::Sqlite { _dir: dir }))
        }
        Some(admin) => {
            sqlx::any::install_default_drivers();
            let pool = sqlx::AnyPool::connect(admin).await?;
            let name = format!("ft_bench_{}", uuid::Uuid::new_v4().simple());
            pool.execute(sqlx::AssertSqlSafe(format!("CREATE DATABASE {name}")))
                .await?;
            pool.close().await;
            let base = admin.rsplit_once('/').map_or(admin.as_str(), |(b, _)| b);
            let store = Store::open(&format!("{base}/{name}")).await?;
            Ok((
                store,
                Db::Postgres {
                    admin: admin.clone(),
                    name,
                },
            ))
        }
    }
}

/// Brings PostgreSQL's statistics up to date after the fill, as its
/// autovacuum does in a running service within a minute or so (SQLite
/// gathers none unless told to, so neither does the bench there). Without
/// them the first minute's plans are made for an empty table.
async fn analyze(db: &Db) -> anyhow::Result<()> {
    use sqlx::Executor;
    if let Db::Postgres { admin, name } = db {
        let base = admin.rsplit_once('/').map_or(admin.as_str(), |(b, _)| b);
        let pool = sqlx::AnyPool::connect(&format!("{base}/{name}")).await?;
        pool.execute("ANALYZE").await?;
        pool.close().await;
    }
    Ok(())
}

async fn remove(db: Db, keep: bool) -> anyhow::Result<()> {
    use sqlx::Executor;
    if keep {
        match db {
            Db::Sqlite { _dir: dir } => {
                let path = dir.keep().join("q.db");
                eprintln!("kept: sqlite://{}", path.display());
            }
            Db::Postgres { admin, name } => {
                let base = admin.rsplit_once('/').map_or(admin.as_str(), |(b, _)| b);
                eprintln!("kept: {base}/{name}");
            }
        }
        return Ok(());
    }
    if let Db::Postgres { admin, name } = db {
        let pool = sqlx::AnyPool::connect(&admin).await?;
        pool.execute(sqlx::AssertSqlSafe(format!(
            "DROP DATABASE IF EXISTS {name} WITH (FORCE)"
        )))
        .await?;
        pool.close().await;
    }
    Ok(())
}

/// Job `k` of the mix: half of all jobs are one flood task, the rest
/// spread over 40 tasks; one in ten has a higher priority; four sizes,
/// one of them unrecorded (the worker's default).
fn job(k: usize) -> NewQueuedJob {
    let task = if k.is_multiple_of(2) {
        "flood".to_string()
    } else {
        format!("task-{}", k % 40)
    };
    let needs = match k % 4 {
        0 => None,
        1 => Some(Needs {
            vcpus: 1,
            memory_mib: 256,
        }),
        2 => Some(Needs {
            vcpus: 2,
            memory_mib: 512,
        }),
        _ => Some(Needs {
            vcpus: 1,
            memory_mib: 768,
        }),
    };
    NewQueuedJob {
        item: format!("pkg-{k}-1.0-1.fc40"),
        item_type: "koji_build".into(),
        arch: "x86_64".into(),
        task: task.clone(),
        repo: "/srv/tasks".into(),
        git_ref: String::new(),
        path: task,
        priority: i64::from(k.is_multiple_of(10)),
        image: None,
        max_attempts: 1,
        timeout_secs: None,
        needs,
    }
}

struct Host {
    sim: SimHost,
    ledger: Ledger,
    owner: String,
    /// The last claim found nothing that fits: finish a job first.
    starved: bool,
}

fn percentile(sorted: &[Duration], p: f64) -> f64 {
    if sorted.is_empty() {
        return 0.0;
    }
    let rank = ((p / 100.0) * sorted.len() as f64).ceil() as usize;
    let i = rank.clamp(1, sorted.len()) - 1;
    sorted[i].as_secs_f64() * 1000.0
}

async fn finish_oldest(store: &Store, h: &mut Host) -> anyhow::Result<()> {
    let Some(uuid) = h.sim.oldest().map(str::to_string) else {
        return Ok(());
    };
    h.sim.finish(&uuid)?;
    h.ledger.release(&uuid);
    for to in [JobState::Running, JobState::Reporting, JobState::Passed] {
        if !store
            .transition(&uuid, &Move::by_worker(&h.owner, to))
            .await?
            .moved()
        {
            bail!("job {uuid}: could not move to {to}");
        }
    }
    Ok(())
}

async fn run(a: Args) -> anyhow::Result<()> {
    let (store, db) = open(&a).await?;
    let lease = 3_600_000_000;
    let default = Needs::FALLBACK;
    let mut hosts = Vec::new();
    for i in 0..a.hosts {
        let name = format!("sim-{i:03}");
        let sim = SimHost::connect(&name, "test:///default", a.max_vms)?;
        let now = now_micros();
        let owner = format!("{name}:{}:bench", std::process::id());
        store
            .put_host(&HostRecord {
                name: name.clone(),
                worker: owner.clone(),
                capacity: sim.capacity,
                used: Default::default(),
                started_at: now,
                heartbeat: now,
            })
            .await?;
        hosts.push(Host {
            ledger: Ledger::new(sim.capacity),
            sim,
            owner,
            starved: false,
        });
    }
    let capacity = hosts[0].sim.capacity;
    let mut next = 0usize;
    let t_fill = Instant::now();
    while next < a.jobs {
        let batch: Vec<_> = (next..(next + 500).min(a.jobs)).map(job).collect();
        store
            .enqueue(&format!("fill-{next}"), "bench", &batch)
            .await?;
        next += batch.len();
    }
    let fill = t_fill.elapsed();
    analyze(&db).await?;
    let mut times = Vec::with_capacity(a.decisions);
    let (mut placed, mut empty) = (0usize, 0usize);
    let t0 = Instant::now();
    for d in 0..a.decisions {
        let h = &mut hosts[d % a.hosts];
        if h.ledger.free().vms == 0 || h.starved {
            finish_oldest(&store, h).await?;
        }
        let free = h.ledger.free();
        let t = Instant::now();
        let claim = store.claim_fitting(&h.owner, lease, free, default).await?;
        times.push(t.elapsed());
        match claim {
            Some((job, needs)) => {
                h.ledger.reserve(&job.uuid, needs)?;
                h.sim.start(&job.uuid, needs)?;
                store
                    .transition(&job.uuid, &Move::by_worker(&h.owner, JobState::Booting))
                    .await?;
                store
                    .enqueue(&format!("refill-{next}"), "bench", &[self::job(next)])
                    .await?;
                next += 1;
                placed += 1;
                h.starved = false;
            }
            None => {
                empty += 1;
                h.starved = true;
            }
        }
    }
    let wall = t0.elapsed();
    // The floor under every decision: one durable write transaction (a
    // flag set, fsync at commit), timed the same way.
    let mut commits = Vec::with_capacity(COMMITS);
    for i in 0..COMMITS {
        let t = Instant::now();
        store.set_flag("bench-commit", Some(&i.to_string())).await?;
        commits.push(t.elapsed());
    }
    commits.sort();
    // Never over capacity, and libvirt holds exactly what the ledgers do.
    let mut running = 0;
    for h in &hosts {
        let used = h.ledger.used();
        let cap = h.ledger.capacity();
        if used.vcpus > cap.vcpus || used.memory_mib > cap.memory_mib || used.vms > cap.max_vms {
            bail!("host {} over capacity: {used:?} of {cap:?}", h.sim.name);
        }
        let domains = h.sim.domains()?.len();
        if domains != used.vms as usize {
            bail!(
                "host {}: {domains} test domain(s), ledger {}",
                h.sim.name,
                used.vms
            );
        }
        running += domains;
    }
    let queued = store
        .queue_counts()
        .await?
        .into_iter()
        .find(|(s, _)| s == "queued")
        .map_or(0, |(_, n)| n);
    times.sort();
    let sum: Duration = times.iter().sum();
    let n = times.len().max(1) as f64;
    let out = serde_json::json!({
        "backend": if a.pg.is_some() { "postgres" } else { "sqlite" },
        "queued": a.jobs,
        "queued_at_end": queued,
        "hosts": a.hosts,
        "host_capacity": {"vcpus": capacity.vcpus, "memory_mib": capacity.memory_mib,
                          "max_vms": capacity.max_vms},
        "running_at_end": running,
        "decisions": times.len(),
        "placed": placed,
        "nothing_fit": empty,
        "p50_ms": percentile(&times, 50.0),
        "p99_ms": percentile(&times, 99.0),
        "mean_ms": sum.as_secs_f64() * 1000.0 / n,
        "max_ms": times.last().map_or(0.0, |t| t.as_secs_f64() * 1000.0),
        "decisions_total_s": sum.as_secs_f64(),
        "wall_s": wall.as_secs_f64(),
        "fill_s": fill.as_secs_f64(),
        "commit_p50_ms": percentile(&commits, 50.0),
        "commit_p99_ms": percentile(&commits, 99.0),
    });
    println!("{out}");
    drop(hosts);
    store.close().await;
    remove(db, a.keep).await
}

fn main() -> anyhow::Result<()> {
    let a = args()?;
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()?
        .block_on(run(a))
}
