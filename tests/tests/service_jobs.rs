//! Moving jobs between installations, per-job time-outs and restarts, end
//! to end: `serve --record-csv` on one installation (one data folder),
//! `ferrotron jobs replay` into another whose scheduler runs them in real
//! VMs; a bad file stores nothing; a job whose time-out passes ends in
//! `error`, its VM destroyed; a service restart does not use up attempts.

use std::time::Duration;

use ferrotron_tests::service::{
    assert_runs_left_nothing, slow_task, states, submit, token, transitions, Service,
};
use ferrotron_tests::{workspace, Harness};
use serde_json::Value;

/// `hello` for items named `hello-*`.
fn rules(h: &Harness) -> String {
    let text = format!(
        "- when: {{message_type: Generic, item: {{$regex: '^hello-'}}}}\n  do:\n    - tasks: [{{name: hello, path: examples/hello}}]\n      repo: {}\n      timeout: 900\n",
        workspace().display()
    );
    let p = h.data_dir.join("rules.yml");
    std::fs::write(&p, text).expect("write rules");
    p.display().to_string()
}

fn start(h: &Harness, extra: &[&str]) -> Service {
    start_with(h, extra, &[])
}

fn start_with(h: &Harness, extra: &[&str], env: &[(&str, &str)]) -> Service {
    let rules = rules(h);
    let mut args = vec!["--rules", rules.as_str(), "--lease-secs", "3"];
    args.extend_from_slice(extra);
    Service::start(h, &args, env)
}

/// POSTs a message about `item`; returns the answer.
fn post_message(s: &Service, token: &str, id: &str, item: &str) -> Value {
    s.post_item(token, id, item).1
}

#[test]
fn jobs_recorded_on_one_installation_run_on_another() {
    // Installation A: intake only, every stored message recorded.
    let a = Harness::new("replay-record");
    let csv = a.data_dir.join("recorded.csv");
    let t = token(&a);
    let s = start(
        &a,
        &[
            "--no-scheduler",
            "--record-csv",
            csv.to_str().expect("utf-8"),
        ],
    );
    post_message(&s, &t, "msg-move-1", "hello-1.0-1.fc40");
    post_message(&s, &t, "msg-move-2", "hello-2.0-1.fc40");
    // A redelivery is stored once and recorded once.
    let again = post_message(&s, &t, "msg-move-1", "hello-1.0-1.fc40");
    assert_eq!(again["duplicate"], true, "{again}");
    s.stop();
    let text = std::fs::read_to_string(&csv).expect("recorded CSV");
    let lines: Vec<&str> = text.lines().collect();
    assert_eq!(lines.len(), 3, "header + one row per job:\n{text}");
    assert!(lines[0].starts_with("message_id,topic,item,"), "{text}");
    assert!(lines[1].starts_with("msg-move-1,org.example.test,hello-1.0-1.fc40,"));
    assert!(lines[1].ends_with(",900"), "the rule's time-out: {text}");

    // Installation B. A bad copy of the file first: refused whole.
    let b = Harness::new("replay-run");
    let bad = b.data_dir.join("bad.csv");
    let broken = text.replacen(",900", ",soon", 2);
    let broken = broken.replacen(",soon", ",900", 1);
    std::fs::write(&bad, broken).expect("write bad CSV");
    let out = b.run(&["jobs", "replay", bad.to_str().expect("utf-8")]);
    assert_eq!(out.code, Some(2), "{}", out.stderr);
    assert!(
        out.stderr.contains(&format!(
            "{}:3: column timeout: `soon` is not a whole number",
            bad.display()
        )),
        "{}",
        out.stderr
    );
    let status = b.run(&["host", "status"]);
    assert_eq!(
        status.stdout, "active\nin progress here\t0\nmessages\t0\n",
        "nothing stored"
    );

    // The good file, twice: the second time adds nothing.
    let path = csv.to_str().expect("utf-8");
    let out = b.run(&["jobs", "replay", path]);
    assert_eq!(out.code, Some(0), "{}", out.stderr);
    assert_eq!(
        out.stdout,
        "2 message(s), 2 job(s) queued; 0 message(s) already here\n"
    );
    let out = b.run(&["jobs", "replay", path]);
    assert_eq!(out.code, Some(0), "{}", out.stderr);
    assert_eq!(
        out.stdout,
        "0 message(s), 0 job(s) queued; 2 message(s) already here\n"
    );
    let status = b.run(&["host", "status"]);
    assert_eq!(
        status.stdout,
        "active\nqueued\t2\nin progress here\t0\nmessages\t2\n"
    );
    // Export writes what replay reads: the same rows.
    let exported = b.data_dir.join("exported.csv");
    let out = b.run(&["jobs", "export", exported.to_str().expect("utf-8")]);
    assert_eq!(out.code, Some(0), "{}", out.stderr);
    assert_eq!(
        std::fs::read_to_string(&exported).expect("exported"),
        text,
        "export of the replayed jobs"
    );

    // B's scheduler runs them; each state is stored as it happens.
    let s = start(&b, &["--max-vms", "1"]);
    let uuids = s.jobs();
    assert_eq!(uuids.len(), 2);
    for uuid in &uuids {
        let j = s.wait_final(uuid);
        assert_eq!(j["state"], "passed", "{j}");
        let tr = transitions(&j);
        assert_eq!(
            states(&j),
            [
                "queued",
                "scheduled",
                "booting",
                "running",
                "reporting",
                "passed"
            ],
            "{j}"
        );
        // booting < running < reporting: stored when reached (boot and the
        // task take time), not together at the end.
        assert!(tr[2].1 < tr[3].1 && tr[3].1 < tr[4].1, "{tr:?}");
    }
    assert_runs_left_nothing(&b, 2);
    s.stop();
}

/// A job interrupted by SIGTERM goes back to the queue with its attempts
/// intact: after the restart (libvirt unreachable this time) it still gets
/// both of its attempts before it ends in `error`.
#[test]
fn a_service_restart_does_not_use_up_attempts() {
    let h = Harness::new("replay-restart");
    let dir = slow_task(&h);
    let mut s = start(&h, &["--max-vms", "1"]);
    let uuid = submit(&h, &dir, "slow-2.0-1.fc40", &["--max-attempts", "2"]);
    s.proc
        .wait_for(&format!("job {uuid}: running"), Duration::from_secs(300));
    s.stop();
    let status = h.run(&["host", "status"]);
    // Then one line per host that ran a scheduler.
    assert!(
        status
            .stdout
            .starts_with("active\nqueued\t1\nin progress here\t0\nmessages\t1\nhost\t"),
        "{}",
        status.stdout
    );
    assert_runs_left_nothing(&h, 1);

    let s = start_with(
        &h,
        &["--max-vms", "1", "--retry-backoff-secs", "1"],
        &[(
            "FERROTRON_LIBVIRT_URI",
            // libvirt's test driver answers (the scheduler claims) but
            // cannot start a QEMU domain: every boot fails.
            "test:///default",
        )],
    );
    let j = s.wait_final(&uuid);
    assert_eq!(j["state"], "error", "{j}");
    assert!(
        j["error"].as_str().unwrap_or("").starts_with("boot: "),
        "{j}"
    );
    assert_eq!(
        states(&j),
        [
            "queued",
            "scheduled",
            "booting",
            "running",
            "queued",
            // Both attempts are still there after the restart.
            "scheduled",
            "booting",
            "queued",
            "scheduled",
            "booting",
            "error"
        ]
    );
    s.stop();
}

#[test]
fn a_job_past_its_time_out_ends_in_error_and_loses_its_vm() {
    let h = Harness::new("replay-timeout");
    let dir = slow_task(&h);
    // The service's default is long; the job's own time-out is what counts.
    let mut s = start(&h, &["--max-vms", "1", "--job-timeout", "3000"]);
    let uuid = submit(&h, &dir, "slow-1.0-1.fc40", &["--timeout", "25"]);
    s.proc
        .wait_for(&format!("job {uuid}: booting"), Duration::from_secs(120));
    let j = s.wait_final(&uuid);
    assert_eq!(j["state"], "error", "{j}");
    assert_eq!(j["exit_status"], 3, "{j}");
    let why = j["error"].as_str().unwrap_or("");
    assert!(
        why.contains("time-out of 25 s (boot + task + collect) passed"),
        "{j}"
    );
    // Not retried: one VM run, and nothing of it left (its domain
    // included).
    assert_runs_left_nothing(&h, 1);
    let names = states(&j);
    assert_eq!(names.last().map(String::as_str), Some("error"), "{names:?}");
    assert_eq!(names.iter().filter(|s| *s == "scheduled").count(), 1);
    s.stop();
}
