//! Three workers as three hosts (`--host-name hv1..hv3`, a data folder
//! each) sharing one PostgreSQL queue and one artifacts folder, with real
//! VMs. They share this machine's one libvirt daemon, so this proves the
//! queue, leases, capacity, idling and failover between workers; it does
//! not prove separate hypervisors (one daemon sees every worker's domains,
//! and a dead worker's VM is reaped by whichever worker boots next).
//!
//! Each host offers one VM: three long jobs run at once on three distinct
//! hosts and a fourth waits; `kill -9` of one worker brings its job back
//! once its lease lapses, and it runs again on a live host; an idled host
//! takes nothing while the others run; a drained host's job goes on to
//! its end while new jobs run elsewhere; a job run by one host has its
//! artifacts served by another's API. No job runs twice at once and
//! nothing is left behind.

use std::collections::BTreeSet;
use std::time::{Duration, Instant};

use ferrotron_tests::pg::PgDatabase;
use ferrotron_tests::service::{http, slow_task, submit, Service, JOB_DEADLINE};
use ferrotron_tests::{workspace, Harness};
use nix::sys::signal::Signal;
use serde_json::Value;

/// The host part of a job's `host` (`hv1:pid:random`).
fn host_of(job: &Value) -> String {
    job["host"]
        .as_str()
        .unwrap_or("")
        .split(':')
        .next()
        .unwrap_or("")
        .to_string()
}

fn wait_for(s: &Service, uuid: &str, what: &str, ok: impl Fn(&Value) -> bool) -> Value {
    let deadline = Instant::now() + JOB_DEADLINE;
    loop {
        let j = s.job(uuid);
        if ok(&j) {
            return j;
        }
        assert!(Instant::now() < deadline, "job {uuid} never {what}: {j}");
        std::thread::sleep(Duration::from_millis(300));
    }
}

fn cancel(s: &Service, token: &str, uuid: &str) {
    let r = http()
        .post(format!("{}/api/v1/jobs/{uuid}/cancel", s.base))
        .bearer_auth(token)
        .send()
        .expect("cancel");
    assert!(r.status().is_success(), "{}", r.status());
}

#[test]
fn three_workers_share_one_queue_and_fail_over() {
    let db = PgDatabase::new("fleet");
    let shared = workspace().join("target/e2e/fleet-artifacts");
    let _ = std::fs::remove_dir_all(&shared);
    let hosts: Vec<Harness> = (1..=3)
        .map(|i| {
            let h = Harness::new(&format!("fleet-hv{i}"));
            h.set_env("FERROTRON_DATABASE_URL", &db.url);
            h.set_env("FERROTRON_ARTIFACTS_DIR", shared.to_str().expect("utf-8"));
            h.set_env("FERROTRON_HOST_NAME", &format!("hv{i}"));
            h
        })
        .collect();
    let out = hosts[0].run(&["token", "create", "ops", "--role", "operator"]);
    assert_eq!(out.code, Some(0), "{}", out.stderr);
    let token = out.stdout.trim().to_string();
    let args = ["--max-vms", "1", "--lease-secs", "3"];
    let mut servers: Vec<Option<Service>> = hosts
        .iter()
        .map(|h| Some(Service::start(h, &args, &[])))
        .collect();

    // Three long jobs: one per host, since each offers one VM.
    let slow = slow_task(&hosts[0]);
    let long: Vec<String> = (1..=3)
        .map(|i| submit(&hosts[0], &slow, &format!("slow-{i}.0-1.fc40"), &[]))
        .collect();
    let api = servers[0].take().expect("hv1");
    let ran: BTreeSet<String> = long
        .iter()
        .map(|j| host_of(&wait_for(&api, j, "running", |v| v["state"] == "running")))
        .collect();
    assert_eq!(
        ran,
        BTreeSet::from(["hv1".into(), "hv2".into(), "hv3".into()])
    );
    // Every host is full: a fourth job waits.
    let hello = workspace().join("examples/hello");
    let waiting = submit(&hosts[0], &hello, "hello-1.0-1.fc40", &[]);
    assert_eq!(api.job(&waiting)["state"], "queued");

    // hv2's worker dies: its job comes back once its lease lapses.
    let on_hv2 = long
        .iter()
        .find(|j| host_of(&api.job(j)) == "hv2")
        .expect("a job on hv2")
        .clone();
    let dead = servers[1].take().expect("hv2");
    dead.proc.signal(Signal::SIGKILL);
    let _ = dead.proc.finish(Duration::from_secs(60));
    wait_for(&api, &on_hv2, "requeued", |v| v["state"] == "queued");
    // Room on hv1 and hv3: their long jobs are cancelled.
    for j in long.iter().filter(|j| **j != on_hv2) {
        cancel(&api, &token, j);
        assert_eq!(api.wait_final(j)["state"], "cancelled");
    }
    // The dead worker's job runs again, on a live host, once at a time.
    let again = wait_for(&api, &on_hv2, "running again", |v| v["state"] == "running");
    let rerun_on = host_of(&again);
    assert!(["hv1", "hv3"].contains(&rerun_on.as_str()), "{again}");
    let states: Vec<&str> = again["transitions"]
        .as_array()
        .expect("transitions")
        .iter()
        .map(|t| t["state"].as_str().unwrap_or(""))
        .collect();
    assert_eq!(
        states.iter().filter(|s| **s == "running").count(),
        2,
        "one run per claim: {states:?}"
    );
    cancel(&api, &token, &on_hv2);
    assert_eq!(api.wait_final(&on_hv2)["state"], "cancelled");
    let w = api.wait_final(&waiting);
    assert_eq!(w["state"], "passed", "{w}");
    assert_ne!(host_of(&w), "hv2");

    // A drain of hv3 (what playbooks/drain.yml does): idled while a job
    // of its own runs, the job goes on and `host status` there counts it;
    // new jobs run elsewhere; once it ends, nothing is in progress there.
    let out = hosts[0].run(&["host", "idle"]);
    assert_eq!(out.stdout.trim(), "idle: hv1", "{}", out.stderr);
    let drained = submit(&hosts[0], &slow, "slow-4.0-1.fc40", &[]);
    let d = wait_for(&api, &drained, "running", |v| v["state"] == "running");
    assert_eq!(host_of(&d), "hv3", "{d}");
    let out = hosts[0].run(&["host", "resume"]);
    assert_eq!(out.code, Some(0), "{}", out.stderr);
    let out = hosts[2].run(&["host", "idle"]);
    assert_eq!(out.stdout.trim(), "idle: hv3", "{}", out.stderr);
    let in_progress = |h: &Harness| {
        let out = h.run(&["host", "status"]);
        assert_eq!(out.code, Some(0), "{}", out.stderr);
        out.stdout
            .lines()
            .find_map(|l| l.strip_prefix("in progress here\t"))
            .map(str::to_string)
            .unwrap_or_else(|| panic!("no `in progress here` in:\n{}", out.stdout))
    };
    assert_eq!(in_progress(&hosts[2]), "1");
    assert_eq!(in_progress(&hosts[0]), "0");
    let elsewhere = submit(&hosts[0], &hello, "hello-1.5-1.fc40", &[]);
    let e = api.wait_final(&elsewhere);
    assert_eq!(
        (e["state"].as_str(), host_of(&e).as_str()),
        (Some("passed"), "hv1"),
        "{e}"
    );
    assert_eq!(api.job(&drained)["state"], "running", "the drain ended it");
    cancel(&api, &token, &drained);
    assert_eq!(api.wait_final(&drained)["state"], "cancelled");
    assert_eq!(in_progress(&hosts[2]), "0");
    let out = hosts[2].run(&["host", "resume"]);
    assert_eq!(out.stdout.trim(), "resumed: hv3", "{}", out.stderr);

    // hv1 idle, hv2 gone: the next job runs on hv3.
    let out = hosts[0].run(&["host", "idle"]);
    assert_eq!(out.stdout.trim(), "idle: hv1", "{}", out.stderr);
    let next = submit(&hosts[0], &hello, "hello-2.0-1.fc40", &[]);
    let n = api.wait_final(&next);
    assert_eq!(
        (n["state"].as_str(), host_of(&n).as_str()),
        (Some("passed"), "hv3"),
        "{n}"
    );
    let out = hosts[0].run(&["host", "resume"]);
    assert_eq!(out.code, Some(0), "{}", out.stderr);

    // hv3 ran it; hv1's API serves its artifacts.
    let listed: Value = http()
        .get(format!("{}/api/v1/jobs/{next}/artifacts", api.base))
        .send()
        .expect("list")
        .json()
        .expect("JSON");
    assert!(listed.to_string().contains("results.tap"), "{listed}");
    let tap = http()
        .get(format!(
            "{}/api/v1/jobs/{next}/artifacts/artifacts/results.tap",
            api.base
        ))
        .send()
        .expect("GET");
    assert_eq!(tap.status().as_u16(), 200);
    assert!(tap.text().expect("text").contains("ok "), "a TAP file");

    api.stop();
    if let Some(s) = servers[2].take() {
        s.stop();
    }
    for job in long.iter().chain([&waiting, &next, &drained, &elsewhere]) {
        for h in &hosts {
            h.assert_nothing_left(job);
        }
    }
    let _ = std::fs::remove_dir_all(&shared);
}
