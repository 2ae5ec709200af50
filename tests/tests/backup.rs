//! `ferrotron backup` and `ferrotron restore`, end to end on SQLite and
//! PostgreSQL: a backup taken while a job runs in a real VM and another
//! waits, the installation wiped, a damaged copy of the backup refused
//! with the file named (nothing restored), the backup restored and
//! `serve` started again: jobs, transitions, results and every file of
//! the finished job are back byte for byte, the job that was running runs
//! again, the one that waited runs, and nothing is left behind.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use ferrotron_tests::pg::{psql_at, Backend, PgDatabase};
use ferrotron_tests::service::{http, slow_task, submit, Service, JOB_DEADLINE};
use ferrotron_tests::{both, workspace, Harness};
use serde_json::{json, Value};

both!(a_backup_taken_mid_run_restores_everything);

fn a_backup_taken_mid_run_restores_everything(backend: Backend) {
    let name = match backend {
        Backend::Sqlite => "backup-sqlite",
        Backend::Postgres => "backup-postgres",
    };
    let h = Harness::new(name);
    let mut db = match backend {
        Backend::Sqlite => None,
        Backend::Postgres => Some(PgDatabase::new("backup")),
    };
    if let Some(d) = &db {
        h.set_env("FERROTRON_DATABASE_URL", &d.url);
    }
    // Configuration kept outside the data folder, as /etc/ferrotron is.
    let etc = h.data_dir.with_file_name(format!("{name}-etc"));
    let _ = std::fs::remove_dir_all(&etc);
    std::fs::create_dir_all(&etc).expect("mkdir etc");
    let env_file = etc.join("ferrotron.env");
    std::fs::write(&env_file, "FERROTRON_MAX_VMS=1\n").expect("write config");

    let token = create_token(&h);
    let args = ["--max-vms", "1", "--lease-secs", "5"];
    let s = Service::start(&h, &args, &[]);
    let hello = workspace().join("examples/hello");
    let done = submit(&h, &hello, "hello-1.0-1.fc40", &[]);
    let done_job = s.wait_final(&done);
    assert_eq!(done_job["state"], "passed", "{done_job}");
    post_result(&s, &token);
    // One job running (it sleeps), one waiting behind it (one VM slot).
    let running = submit(&h, &slow_task(&h), "slow-1.0-1.fc40", &[]);
    wait_state(&s, &running, "running");
    let waiting = submit(&h, &hello, "hello-2.0-1.fc40", &[]);
    assert_eq!(s.job(&waiting)["state"], "queued");

    let dest = h.data_dir.with_file_name(format!("{name}-backup"));
    let _ = std::fs::remove_dir_all(&dest);
    let out = h.run(&[
        "backup",
        dest.to_str().expect("utf-8"),
        "--config",
        etc.to_str().expect("utf-8"),
    ]);
    assert_eq!(out.code, Some(0), "{}", out.stderr);
    assert!(
        out.stdout
            .starts_with(&format!("backup {}: ", dest.display()))
            && out.stdout.contains("3 job(s)"),
        "{}",
        out.stdout
    );
    assert!(out.stderr.contains("database ("), "{}", out.stderr);
    let manifest = std::fs::read_to_string(dest.join("backup.json")).expect("manifest");
    for secret in ["ferrotron:ferrotron@", &token] {
        assert!(!manifest.contains(secret), "the manifest holds a secret");
    }
    assert!(
        !dest
            .join(format!("data/jobs/{running}/id_ed25519"))
            .exists(),
        "a VM's private key is in the backup"
    );

    // What a user sees before the loss.
    let before_job = normalized(&s, &s.job(&done));
    let before_running = s.job(&running);
    let before_results = normalized(&s, &get(&s, "/api/v2.0/results?limit=100"));
    let before_files = files_of(&h, &done);
    assert!(
        before_files.keys().any(|k| k.starts_with("artifacts/")),
        "{:?}",
        before_files.keys()
    );
    s.stop();

    // The loss: data folder, database and configuration gone.
    for d in ["jobs", "artifacts", "vms", "cache"] {
        let _ = std::fs::remove_dir_all(h.data_dir.join(d));
    }
    for f in ["ferrotron.db", "ferrotron.db-wal", "ferrotron.db-shm"] {
        let _ = std::fs::remove_file(h.data_dir.join(f));
    }
    std::fs::remove_dir_all(&etc).expect("rm etc");
    if matches!(backend, Backend::Postgres) {
        // A freshly provisioned database server: a new, empty database.
        drop(db.take());
        let fresh = PgDatabase::new("backup_restored");
        h.set_env("FERROTRON_DATABASE_URL", &fresh.url);
        db = Some(fresh);
    }

    // A damaged backup is refused before anything is put in place.
    let bad = h.data_dir.with_file_name(format!("{name}-backup-bad"));
    let _ = std::fs::remove_dir_all(&bad);
    let cp = std::process::Command::new("cp")
        .arg("-a")
        .arg(&dest)
        .arg(&bad)
        .status()
        .expect("cp");
    assert!(cp.success());
    let victim = format!("data/jobs/{done}/runner.log");
    let mut bytes = std::fs::read(bad.join(&victim)).expect("read");
    bytes[0] ^= 0x20;
    std::fs::write(bad.join(&victim), bytes).expect("write");
    let out = h.run(&["restore", bad.to_str().expect("utf-8")]);
    assert_eq!(out.code, Some(2), "{}", out.stderr);
    assert!(
        out.stderr.contains("damaged") && out.stderr.contains(&victim),
        "{}",
        out.stderr
    );
    assert_untouched(&h, &etc, db.as_ref());
    std::fs::remove_dir_all(&bad).expect("rm bad");

    let out = h.run(&["restore", dest.to_str().expect("utf-8")]);
    assert_eq!(out.code, Some(0), "{}", out.stderr);
    assert!(out.stdout.contains("3 job(s)"), "{}", out.stdout);
    assert!(
        out.stderr.contains(&format!(
            "job {running} was running at backup time: queued again"
        )),
        "{}",
        out.stderr
    );
    assert_eq!(
        std::fs::read(&env_file).expect("config restored"),
        b"FERROTRON_MAX_VMS=1\n"
    );
    assert!(!h.data_dir.join(".restore-staging").exists());
    // A second restore on top is refused: the installation has a history.
    let again = h.run(&["restore", dest.to_str().expect("utf-8")]);
    assert_eq!(again.code, Some(2), "{}", again.stderr);
    assert!(again.stderr.contains("not empty"), "{}", again.stderr);

    let s = Service::start(&h, &args, &[]);
    assert_eq!(normalized(&s, &s.job(&done)), before_job);
    assert_eq!(
        normalized(&s, &get(&s, "/api/v2.0/results?limit=100")),
        before_results
    );
    assert_eq!(files_of(&h, &done), before_files, "files of {done}");
    // The job that ran at backup time keeps its history and runs again.
    let old: Vec<Value> = transitions(&before_running);
    let after = wait_state(&s, &running, "running");
    let new = transitions(&after);
    assert_eq!(&new[..old.len()], &old[..], "{after}");
    assert_eq!(new[old.len()]["state"], "queued", "{after}");
    let r = http()
        .post(format!("{}/api/v1/jobs/{running}/cancel", s.base))
        .bearer_auth(&token)
        .send()
        .expect("cancel");
    assert!(r.status().is_success(), "{}", r.status());
    assert_eq!(s.wait_final(&running)["state"], "cancelled");
    // The job that waited runs.
    assert_eq!(s.wait_final(&waiting)["state"], "passed");
    s.stop();
    for job in [&done, &running, &waiting] {
        h.assert_nothing_left(job);
    }
    let _ = std::fs::remove_dir_all(&dest);
    let _ = std::fs::remove_dir_all(&etc);
}

fn create_token(h: &Harness) -> String {
    let out = h.run(&["token", "create", "ci", "--role", "operator"]);
    assert_eq!(out.code, Some(0), "{}", out.stderr);
    out.stdout.trim().to_string()
}

/// A ResultsDB result with a note, as a reporter posts it.
fn post_result(s: &Service, token: &str) {
    let r = http()
        .post(format!("{}/api/v2.0/results", s.base))
        .bearer_auth(token)
        .json(&json!({
            "testcase": {"name": "dist.backup-check"},
            "outcome": "FAILED",
            "note": "kept across a restore",
            "data": {"item": "other-1.0-1.fc40", "type": "koji_build"},
            "ref_url": "https://example.org/log",
        }))
        .send()
        .expect("POST result");
    assert_eq!(r.status().as_u16(), 201);
}

fn get(s: &Service, path: &str) -> Value {
    http()
        .get(format!("{}{path}", s.base))
        .send()
        .expect("GET")
        .json()
        .expect("JSON")
}

/// An answer with the server's address (a new port after the restart)
/// taken out.
fn normalized(s: &Service, v: &Value) -> String {
    v.to_string().replace(&s.base, "BASE")
}

fn transitions(job: &Value) -> Vec<Value> {
    job["transitions"].as_array().cloned().unwrap_or_default()
}

/// Waits (bounded) for the job to be in `state`; returns it.
fn wait_state(s: &Service, uuid: &str, state: &str) -> Value {
    let deadline = Instant::now() + JOB_DEADLINE;
    loop {
        let j = s.job(uuid);
        if j["state"] == state {
            return j;
        }
        assert!(Instant::now() < deadline, "job {uuid} not {state}: {j}");
        std::thread::sleep(Duration::from_millis(300));
    }
}

/// Every file of a job (its folder and its published artifacts) with its
/// bytes, but the VM's private key.
fn files_of(h: &Harness, uuid: &str) -> BTreeMap<String, Vec<u8>> {
    let mut out = BTreeMap::new();
    for area in ["jobs", "artifacts"] {
        let root = h.data_dir.join(area).join(uuid);
        for f in walk(&root) {
            let rel = f.strip_prefix(&root).expect("inside").display().to_string();
            if rel != "id_ed25519" {
                out.insert(format!("{area}/{rel}"), std::fs::read(&f).expect("read"));
            }
        }
    }
    out
}

fn walk(dir: &Path) -> Vec<PathBuf> {
    let mut out = Vec::new();
    if let Ok(rd) = std::fs::read_dir(dir) {
        for e in rd.flatten() {
            let p = e.path();
            if p.is_dir() {
                out.extend(walk(&p));
            } else {
                out.push(p);
            }
        }
    }
    out
}

/// After a refused restore: no database, no job folder, no configuration,
/// no staging left.
fn assert_untouched(h: &Harness, etc: &Path, db: Option<&PgDatabase>) {
    assert!(!h.data_dir.join("ferrotron.db").exists());
    assert!(walk(&h.data_dir.join("jobs")).is_empty());
    assert!(walk(&h.data_dir.join("artifacts")).is_empty());
    assert!(!etc.exists());
    assert!(!h.data_dir.join(".restore-staging").exists());
    if let Some(d) = db {
        let tables = psql_at(
            &d.url,
            "SELECT count(*) FROM information_schema.tables WHERE table_schema = 'public'",
        );
        assert_eq!(tables, "0");
    }
}
