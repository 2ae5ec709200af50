//! A job's results kept whole through both recording paths, read back
//! through the ResultsDB API: the scheduler's (`NewResult::of_job` stored
//! directly, as `scheduler::store_results` does) and `run --report`'s
//! (`NewResult::of_job` posted by the `Reporter`). The router is served on
//! 127.0.0.1 in-process, on SQLite and on PostgreSQL (`FERROTRON_TEST_PG_URL`,
//! the role scripts/setup-host.sh creates; a fresh database per test).

use std::collections::BTreeMap;

use ferrotron::api::{self, ApiConfig, AppState};
use ferrotron::report_client::Reporter;
use ferrotron::results::{resultyaml, CheckResult, Defaults};
use ferrotron::settings::Settings;
use ferrotron::store::{now_micros, JobRef, NewResult, Role, Store};
use serde_json::{json, Value};

const SCENARIO: &str = "fedora.universal.x86_64.64bit";

/// What a task's ResultYAML says: extra keys, an arch list, an artifact,
/// and one plain result (the job's arch, no scenario) that queries must
/// not find.
const RESULTYAML: &str = "\
results:
  - item: foo-1.2-3.fc40
    type: koji_build
    checkname: openqa.install
    outcome: PASSED
    note: installs on both arches
    artifact: logs/install.log
    scenario: fedora.universal.x86_64.64bit
    arch: [x86_64, i686]
    firmware: uefi
  - item: foo-1.2-3.fc40
    type: koji_build
    checkname: openqa.plain
    outcome: INFO
";

fn results() -> Vec<CheckResult> {
    let parsed = resultyaml::parse(RESULTYAML, &Defaults::new("", "", ""));
    assert!(parsed.is_clean(), "{:?}", parsed.problems);
    parsed.results
}

fn job(uuid: &str) -> JobRef<'_> {
    JobRef {
        uuid,
        what: "openqa",
        item: "foo-1.2-3.fc40",
        arch: "aarch64",
    }
}

/// The router on a loopback port until `stop` is sent.
struct Served {
    base: String,
    stop: tokio::sync::oneshot::Sender<()>,
    task: tokio::task::JoinHandle<()>,
}

async fn serve(store: Store, data_dir: &std::path::Path) -> Served {
    let app = ferrotron::app::App::new(
        store,
        std::sync::Arc::new(Settings::new(data_dir.to_path_buf())),
    );
    let (state, _stopper) = AppState::new(app, ApiConfig::default());
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind");
    let local = listener.local_addr().expect("addr");
    let base = format!("http://{local}");
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    let task = tokio::spawn(async move {
        axum::serve(listener, api::router(state, local))
            .with_graceful_shutdown(async {
                let _ = stopped.await;
            })
            .await
            .expect("serve");
    });
    Served { base, stop, task }
}

async fn get(base: &str, path_and_query: &str) -> Value {
    let r = reqwest::get(format!("{base}{path_and_query}"))
        .await
        .expect("GET");
    assert_eq!(r.status(), 200, "GET {path_and_query}");
    r.json().await.expect("JSON")
}

/// `(group, testcase)` of each result of a page, sorted.
fn found(page: &Value) -> Vec<(String, String)> {
    let mut out: Vec<_> = page["data"]
        .as_array()
        .expect("data")
        .iter()
        .map(|r| {
            (
                r["groups"][0].as_str().unwrap_or("").to_string(),
                r["testcase"]["name"].as_str().unwrap_or("").to_string(),
            )
        })
        .collect();
    out.sort();
    out
}

/// The group of the results a reading token tries to post.
const READER: &str = "33333333-0000-4000-8000-000000000003";

async fn both_paths_keep_every_key(store: Store) {
    let dir = tempfile::tempdir().expect("tempdir");
    let token = store
        .create_token("ci", Role::Reporter)
        .await
        .expect("token");
    let dashboard = store
        .create_token("dashboard", Role::Reader)
        .await
        .expect("token");
    let served = serve(store.clone(), dir.path()).await;
    let base = served.base.clone();

    // A reading token records nothing, and is told what it would need.
    let refused = Reporter::new(&base, Some(dashboard)).expect("reporter");
    let batch = NewResult::of_job(refused.base(), job(READER), &results(), 0).expect("valid");
    let err = refused
        .post_results(&batch)
        .await
        .expect_err("a reader cannot post");
    let shown = ferrotron::util::full(&err);
    assert!(
        shown.contains("403")
            && shown
                .contains("token `dashboard` has the role reader; this needs reporter or operator"),
        "{shown}"
    );

    // The scheduler's path.
    let stored = "11111111-0000-4000-8000-000000000001";
    let batch = NewResult::of_job("", job(stored), &results(), now_micros()).expect("valid");
    store.create_results_bulk(&batch).await.expect("store");
    // `run --report`'s path.
    let posted = "22222222-0000-4000-8000-000000000002";
    let reporter = Reporter::new(&base, Some(token)).expect("reporter");
    let batch = NewResult::of_job(reporter.base(), job(posted), &results(), 0).expect("valid");
    assert_eq!(reporter.post_results(&batch).await.expect("post"), 2);

    let install = |uuid: &str| (uuid.to_string(), "openqa.install".to_string());
    let plain = |uuid: &str| (uuid.to_string(), "openqa.plain".to_string());
    for query in [
        format!("scenario={SCENARIO}"),
        "arch=i686".to_string(),
        "arch=x86_64&firmware=uefi".to_string(),
        "scenario:like=fedora.universal.*&arch=i686,s390x".to_string(),
    ] {
        let page = get(&base, &format!("/api/v2.0/results?{query}")).await;
        assert_eq!(
            found(&page),
            [install(stored), install(posted)],
            "?{query}: {page}"
        );
    }
    // The plain result has the job's arch, and only that.
    let page = get(&base, "/api/v2.0/results?arch=aarch64").await;
    assert_eq!(found(&page), [plain(stored), plain(posted)], "{page}");
    let page = get(&base, &format!("/api/v2.0/results?groups={READER}")).await;
    assert_eq!(found(&page), [], "{page}");

    let page = get(&base, &format!("/api/v2.0/results?scenario={SCENARIO}")).await;
    let mut by_group: BTreeMap<String, Value> = BTreeMap::new();
    for r in page["data"].as_array().expect("data") {
        by_group.insert(r["groups"][0].as_str().unwrap_or("").to_string(), r.clone());
    }
    for (uuid, base) in [(stored, ""), (posted, base.as_str())] {
        let r = &by_group[uuid];
        assert_eq!(
            r["data"],
            json!({
                "item": ["foo-1.2-3.fc40"],
                "type": ["koji_build"],
                "arch": ["x86_64", "i686"],
                "scenario": [SCENARIO],
                "firmware": ["uefi"],
            }),
            "{r}"
        );
        assert_eq!(r["note"], "installs on both arches");
        assert_eq!(r["outcome"], "PASSED");
        assert_eq!(
            r["ref_url"],
            format!("{base}/api/v1/jobs/{uuid}/artifacts/artifacts/logs/install.log")
        );
    }

    let _ = served.stop.send(());
    served.task.await.expect("server task");
    store.close().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sqlite() {
    let dir = tempfile::tempdir().expect("tempdir");
    let url = format!("sqlite://{}?mode=rwc", dir.path().join("r.db").display());
    both_paths_keep_every_key(Store::open(&url).await.expect("open")).await;
}

fn pg_admin() -> String {
    std::env::var("FERROTRON_TEST_PG_URL")
        .unwrap_or_else(|_| "postgres://ferrotron:ferrotron@127.0.0.1:5432/postgres".into())
}

async fn pg_admin_exec(sql: String) {
    use sqlx::Executor;
    sqlx::any::install_default_drivers();
    let pool = sqlx::AnyPool::connect(&pg_admin())
        .await
        .expect("PostgreSQL is running (scripts/setup-host.sh)");
    // An autovacuum worker (the superuser's) on a database makes `DROP
    // ... WITH (FORCE)` fail for our role until it ends: try again,
    // generously.
    let mut tries = 0;
    while let Err(e) = pool.execute(sqlx::AssertSqlSafe(sql.clone())).await {
        tries += 1;
        assert!(tries < 120, "admin statement `{sql}`: {e}");
        tokio::time::sleep(std::time::Duration::from_millis(500)).await;
    }
    pool.close().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn postgres() {
    let name = format!("ft_results_{}", uuid::Uuid::new_v4().simple());
    pg_admin_exec(format!("CREATE DATABASE {name}")).await;
    let admin = pg_admin();
    let base = admin.rsplit_once('/').map_or(admin.as_str(), |(b, _)| b);
    let store = Store::open(&format!("{base}/{name}")).await.expect("open");
    both_paths_keep_every_key(store).await;
    pg_admin_exec(format!("DROP DATABASE IF EXISTS {name} WITH (FORCE)")).await;
}
