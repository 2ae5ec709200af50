//! The service end to end: `ferrotron serve` with rules and its scheduler,
//! messages POSTed over HTTP, jobs run in real VMs, results read back
//! through the ResultsDB API; duplicates, failing tasks, idle mode, and a
//! kill -9 of the service while a job runs.

use std::time::{Duration, Instant};

use ferrotron_tests::amqp::{amqp_url, publish_until_confirmed, rabbitmqctl, QueueGuard};
use ferrotron_tests::service::{
    assert_runs_left_nothing, http, jobs_of, runner_jobs, slow_task, states, submit, token, Service,
};
use ferrotron_tests::{domain_exists, workspace, Harness};
use nix::sys::signal::Signal;
use serde_json::{json, Value};

/// `hello` for items named `hello-*`, `fails-on-purpose` for `broken-*`.
fn rules(h: &Harness) -> String {
    let ws = workspace();
    let text = format!(
        "- when: {{message_type: Generic, item: {{$regex: '^hello-'}}}}\n  do:\n    - tasks: [{{name: hello, path: examples/hello}}]\n      repo: {ws}\n\
         - when: {{message_type: Generic, item: {{$regex: '^broken-'}}}}\n  do:\n    - tasks: [{{name: fails-on-purpose, path: examples/fails-on-purpose}}]\n      repo: {ws}\n",
        ws = ws.display()
    );
    let p = h.data_dir.join("rules.yml");
    std::fs::write(&p, text).expect("write rules");
    p.display().to_string()
}

fn start(h: &Harness, extra: &[&str]) -> Service {
    start_leased(h, 3, extra)
}

/// Like [`start`] with a lease of `lease_secs`: short where a test waits
/// for a lease to expire, long where a loaded machine must not see one
/// expire under a job that is still running (which reruns it).
fn start_leased(h: &Harness, lease_secs: u32, extra: &[&str]) -> Service {
    let rules = rules(h);
    let lease = lease_secs.to_string();
    let mut args = vec![
        "--rules",
        rules.as_str(),
        "--lease-secs",
        lease.as_str(),
        "--retry-backoff-secs",
        "1",
    ];
    args.extend_from_slice(extra);
    Service::start(h, &args, &[])
}

#[test]
fn message_becomes_a_passed_job_with_results_once() {
    let h = Harness::new("service-pass");
    let t = token(&h);
    let s = start(&h, &["--max-vms", "1"]);
    let item = "hello-1.0-1.fc40";
    let (status, first) = s.post_item(&t, "msg-pass-1", item);
    assert_eq!(status, 201, "{first}");
    let uuids = jobs_of(&first);
    assert_eq!(uuids.len(), 1, "{first}");
    // The same message again: the same job, nothing new.
    let (status, again) = s.post_item(&t, "msg-pass-1", item);
    assert_eq!(status, 200, "{again}");
    assert_eq!(again["duplicate"], true);
    assert_eq!(jobs_of(&again), uuids);

    let j = s.wait_final(&uuids[0]);
    assert_eq!(j["state"], "passed", "{j}");
    assert_eq!(j["exit_status"], 0, "{j}");
    assert_eq!(
        states(&j),
        [
            "queued",
            "scheduled",
            "booting",
            "running",
            "reporting",
            "passed"
        ]
    );
    let results: Value = http()
        .get(format!("{}/api/v2.0/results?item={item}", s.base))
        .send()
        .expect("results")
        .json()
        .expect("results JSON");
    let data = results["data"].as_array().expect("data");
    assert!(!data.is_empty(), "{results}");
    for r in data {
        assert_eq!(r["outcome"], "PASSED", "{r}");
        let groups = r["groups"].to_string();
        assert!(groups.contains(&uuids[0]), "{r}");
    }
    // All jobs in the store: exactly one, for two deliveries.
    let all = s.jobs();
    assert_eq!(all.len(), 1, "{all:?}");
    // One id: the queue's UUID is the runner's folder, the published
    // artifacts' folder and the domain's name in the runner's log.
    assert_eq!(
        runner_jobs(&h),
        uuids,
        "the job folder is named by the job's UUID"
    );
    let log = std::fs::read_to_string(
        h.data_dir
            .join("artifacts")
            .join(&uuids[0])
            .join("runner.log"),
    )
    .expect("the runner's log is published under the job's UUID");
    assert!(log.contains(&format!("job {}:", uuids[0])), "{log}");
    assert!(log.contains(&format!("ferrotron-{}", uuids[0])), "{log}");
    assert_runs_left_nothing(&h, 1);
    s.stop();
}

#[test]
fn failing_task_is_failed_and_not_retried() {
    let h = Harness::new("service-fail");
    let t = token(&h);
    let s = start(&h, &["--max-vms", "1"]);
    let (status, v) = s.post_item(&t, "msg-fail-1", "broken-1.0-1.fc40");
    assert_eq!(status, 201, "{v}");
    let uuid = jobs_of(&v).remove(0);
    let j = s.wait_final(&uuid);
    assert_eq!(j["state"], "failed", "{j}");
    assert_eq!(j["exit_status"], 1, "{j}");
    let st = states(&j);
    assert_eq!(st.iter().filter(|s| *s == "scheduled").count(), 1, "{st:?}");
    assert_runs_left_nothing(&h, 1);
    s.stop();
}

/// `ferrotron jobs cancel`: a queued job is cancelled and never starts; a
/// second cancel and an unknown UUID are refused with exit status 2 and a
/// message naming the job. No service runs: the queue is the store's.
#[test]
fn jobs_cancel_from_the_command_line() {
    let h = Harness::new("service-cli-cancel");
    let hello = workspace().join("examples/hello");
    let hello = hello.to_str().expect("utf-8");
    let mut uuids = Vec::new();
    for item in ["hello-1.0-1.fc40", "hello-2.0-1.fc40"] {
        let out = h.run(&["submit", hello, "--item", item]);
        assert_eq!(out.code, Some(0), "{}", out.stderr);
        uuids.push(out.stdout.trim().to_string());
    }
    let out = h.run(&["jobs", "cancel", &uuids[0]]);
    assert_eq!(out.code, Some(0), "{}", out.stderr);
    assert_eq!(
        out.stdout,
        format!(
            "job {}: cancelled (it was queued and will not start)\n",
            uuids[0]
        )
    );
    let again = h.run(&["jobs", "cancel", &uuids[0]]);
    assert_eq!(again.code, Some(2), "{}", again.stdout);
    assert!(
        again.stderr.contains(&uuids[0]) && again.stderr.contains("already ended"),
        "{}",
        again.stderr
    );
    let unknown = "00000000-0000-4000-8000-000000000000";
    let none = h.run(&["jobs", "cancel", unknown]);
    assert_eq!(none.code, Some(2));
    assert!(none.stderr.contains(unknown), "{}", none.stderr);
    let status = h.run(&["host", "status"]);
    assert!(
        status.stdout.contains("cancelled\t1\n") && status.stdout.contains("queued\t1\n"),
        "{}",
        status.stdout
    );
}

#[test]
fn idle_host_keeps_jobs_queued_until_resume() {
    let h = Harness::new("service-idle");
    let t = token(&h);
    let out = h.run(&["host", "idle"]);
    assert_eq!(out.code, Some(0), "{}", out.stderr);
    let mut s = start(&h, &["--max-vms", "1"]);
    s.proc
        .wait_for("host idle: 0 job(s) waiting", Duration::from_secs(60));
    let (status, v) = s.post_item(&t, "msg-idle-1", "hello-2.0-1.fc40");
    assert_eq!(status, 201, "{v}");
    let uuid = jobs_of(&v).remove(0);
    // The scheduler saw the job and did not start it.
    s.proc
        .wait_for("host idle: 1 job(s) waiting", Duration::from_secs(60));
    assert_eq!(s.job(&uuid)["state"], "queued");
    let status = h.run(&["host", "status"]);
    let (queue, hosts) = status
        .stdout
        .split_once("host\t")
        .expect("a line for this host");
    assert_eq!(queue, "idle\nqueued\t1\nin progress here\t0\nmessages\t1\n");
    assert!(hosts.contains("\t0/1 VMs\t0/"), "{}", status.stdout);
    // Every host idled, then this one resumed: still idle (the fleet-wide
    // switch wins) until `resume --all`.
    for args in [&["host", "idle", "--all"][..], &["host", "resume"]] {
        let out = h.run(args);
        assert_eq!(out.code, Some(0), "{}", out.stderr);
    }
    let status = h.run(&["host", "status"]);
    assert!(status.stdout.starts_with("idle\n"), "{}", status.stdout);
    assert!(runner_jobs(&h).is_empty());
    let out = h.run(&["host", "resume", "--all"]);
    assert_eq!(out.code, Some(0), "{}", out.stderr);
    assert_eq!(out.stdout, "resumed: every host\n");
    let j = s.wait_final(&uuid);
    assert_eq!(j["state"], "passed", "{j}");
    s.stop();
}

#[test]
fn kill_9_mid_job_leaks_nothing_and_the_jobs_run_after_restart() {
    let h = Harness::new("service-kill");
    let t = token(&h);
    let mut s = start(&h, &["--max-vms", "1"]);
    let (_, a) = s.post_item(&t, "msg-kill-a", "hello-3.0-1.fc40");
    let (_, b) = s.post_item(&t, "msg-kill-b", "hello-4.0-1.fc40");
    let (a, b) = (jobs_of(&a).remove(0), jobs_of(&b).remove(0));
    s.proc
        .wait_for(&format!("job {a}: booting"), Duration::from_secs(120));
    // Wait for its VM to exist, then kill the service outright.
    let deadline = Instant::now() + Duration::from_secs(300);
    let domain = loop {
        if let Some(id) = runner_jobs(&h).first() {
            let name = format!("ferrotron-{id}");
            if domain_exists(&name) {
                break name;
            }
        }
        assert!(Instant::now() < deadline, "no VM for job {a}");
        std::thread::sleep(Duration::from_millis(200));
    };
    s.proc.signal(Signal::SIGKILL);
    let _ = s.proc.finish(Duration::from_secs(30));
    assert!(domain_exists(&domain), "the VM outlives a kill -9");

    let s = start(&h, &["--max-vms", "1"]);
    // The reaper runs before the server listens. It removes every domain
    // whose owner died on this host: ours, unless libvirt's autodestroy
    // (the dead process's connection closing) or another test's reaper
    // (tests run in parallel) removed it first.
    assert!(
        s.proc
            .seen
            .iter()
            .any(|l| l.contains("leftover domain(s)") && !l.contains("removed 0 leftover"))
            || !domain_exists(&domain),
        "{:?}",
        s.proc.seen
    );
    // libvirt ends QEMU asynchronously after a destroy: wait (bounded).
    let deadline = Instant::now() + Duration::from_secs(30);
    while domain_exists(&domain) {
        assert!(Instant::now() < deadline, "{domain} left after restart");
        std::thread::sleep(Duration::from_millis(200));
    }
    let ja = s.wait_final(&a);
    let jb = s.wait_final(&b);
    // The interrupted job ran again (a retry), the queued one ran.
    assert_eq!(ja["state"], "passed", "{ja}");
    assert_eq!(jb["state"], "passed", "{jb}");
    let st = states(&ja);
    assert_eq!(st.iter().filter(|s| *s == "scheduled").count(), 2, "{st:?}");
    assert_runs_left_nothing(&h, 3);
    s.stop();
}

/// `serve` consuming from a queue of its own (deleted when the guard
/// goes), bound to `ferrotron.svc.<tag>.#`; returns once it consumes.
fn start_consuming(h: &Harness, extra: &[&str]) -> (Service, String, QueueGuard) {
    let tag = uuid::Uuid::new_v4().simple().to_string();
    let queue = format!("ferrotron-service-test-{tag}");
    let guard = QueueGuard(queue.clone());
    let binding = format!("ferrotron.svc.{tag}.#");
    let url = amqp_url();
    let mut args = vec![
        "--amqp-url",
        url.as_str(),
        "--amqp-queue",
        queue.as_str(),
        "--amqp-binding",
        binding.as_str(),
    ];
    args.extend_from_slice(extra);
    let mut s = start(h, &args);
    s.proc.wait_for("amqp: consuming", Duration::from_secs(60));
    (s, tag, guard)
}

#[test]
fn amqp_messages_become_jobs_once() {
    let h = Harness::new("service-amqp");
    let (mut s, tag, _queue) = start_consuming(&h, &["--max-vms", "1"]);
    let topic = format!("ferrotron.svc.{tag}.build");
    let body = json!({"item": "hello-5.0-1.fc40", "item_type": "koji_build", "arch": "x86_64"});
    // The same message twice (a redelivery), and one on an unbound topic.
    publish_until_confirmed(&topic, "amqp-msg-1", &body);
    publish_until_confirmed(&topic, "amqp-msg-1", &body);
    publish_until_confirmed(&format!("ferrotron.other.{tag}"), "amqp-msg-2", &body);
    s.proc
        .wait_for("amqp message Some(\"amqp-msg-1\")", Duration::from_secs(60));
    s.proc.wait_for(", a duplicate", Duration::from_secs(60));
    let all = s.jobs();
    assert_eq!(all.len(), 1, "{all:?}");
    let uuid = all[0].clone();
    let j = s.wait_final(&uuid);
    assert_eq!(j["state"], "passed", "{j}");
    s.stop();
}

/// The `messages` count of `ferrotron host status` (messages stored).
fn messages_stored(h: &Harness) -> usize {
    let out = h.run(&["host", "status"]);
    assert_eq!(out.code, Some(0), "{}", out.stderr);
    out.stdout
        .lines()
        .find_map(|l| l.strip_prefix("messages\t"))
        .and_then(|n| n.parse().ok())
        .unwrap_or_else(|| panic!("no messages line: {}", out.stdout))
}

/// RabbitMQ stops for a while under a stream of 30 messages to a running
/// `ferrotron serve`: the service reconnects on its own and every message
/// becomes exactly one queued job (the host is idle, so the count is the
/// intake's alone).
#[test]
fn amqp_broker_outage_under_a_stream_loses_nothing() {
    let h = Harness::new("service-amqp-outage");
    let idle = h.run(&["host", "idle"]);
    assert_eq!(idle.code, Some(0), "{}", idle.stderr);
    let (mut s, tag, _queue) = start_consuming(&h, &[]);
    let n = 30;
    let topic = format!("ferrotron.svc.{tag}.build");
    let publisher = std::thread::spawn(move || {
        for i in 0..n {
            let body = json!({"item": format!("hello-{i}.0-1.fc40"), "item_type": "koji_build", "arch": "x86_64"});
            publish_until_confirmed(&topic, &format!("outage-{tag}-{i:02}"), &body);
        }
    });
    let deadline = Instant::now() + Duration::from_secs(120);
    while messages_stored(&h) < 10 {
        assert!(
            Instant::now() < deadline,
            "the first 10 messages were not stored"
        );
        std::thread::sleep(Duration::from_millis(200));
    }
    rabbitmqctl(&["stop_app"]);
    s.proc.wait_for("reconnecting in", Duration::from_secs(60));
    std::thread::sleep(Duration::from_secs(3));
    rabbitmqctl(&["start_app"]);
    s.proc.wait_for("amqp: consuming", Duration::from_secs(120));
    publisher.join().expect("publisher");
    let deadline = Instant::now() + Duration::from_secs(120);
    while messages_stored(&h) < n {
        assert!(
            Instant::now() < deadline,
            "messages lost: {}",
            messages_stored(&h)
        );
        std::thread::sleep(Duration::from_millis(500));
    }
    let status = h.run(&["host", "status"]);
    assert!(
        status.stdout.contains(&format!("queued\t{n}\n"))
            && status.stdout.contains(&format!("messages\t{n}\n")),
        "one queued job per message, none twice: {}",
        status.stdout
    );
    s.stop();
}

#[test]
fn submitted_job_cancelled_while_running_loses_its_vm() {
    let h = Harness::new("service-cancel");
    let t = token(&h);
    let dir = slow_task(&h);
    let mut s = start(&h, &["--max-vms", "1"]);
    let uuid = submit(&h, &dir, "slow-1.0-1.fc40", &[]);
    s.proc
        .wait_for(&format!("job {uuid}: booting"), Duration::from_secs(120));
    let deadline = Instant::now() + Duration::from_secs(300);
    let (runner, domain) = loop {
        if let Some(id) = runner_jobs(&h).first() {
            let name = format!("ferrotron-{id}");
            if domain_exists(&name) {
                break (id.clone(), name);
            }
        }
        assert!(Instant::now() < deadline, "no VM for job {uuid}");
        std::thread::sleep(Duration::from_millis(200));
    };
    s.cancel(&t, &uuid);
    s.proc.wait_for(
        &format!("job {uuid}: cancelled; destroying its VM"),
        Duration::from_secs(60),
    );
    let j = s.wait_final(&uuid);
    assert_eq!(j["state"], "cancelled", "{j}");
    h.assert_nothing_left(&runner);
    assert!(!domain_exists(&domain));
    // Not retried: still one VM run.
    assert_eq!(runner_jobs(&h).len(), 1);
    s.stop();
}

#[test]
fn submit_refuses_a_bad_formula_before_queueing() {
    let h = Harness::new("service-submit-bad");
    let out = h.run(&["submit", "/nonexistent/task", "--item", "x-1-1"]);
    assert_eq!(out.code, Some(2), "{}", out.stderr);
    assert!(out.stderr.contains("/nonexistent/task"), "{}", out.stderr);
    let status = h.run(&["host", "status"]);
    assert_eq!(
        status.stdout, "active\nin progress here\t0\nmessages\t0\n",
        "nothing queued"
    );
}

/// A burst of 200 messages for two tasks on this 2-core machine: every one
/// becomes a job, all end passed or failed as their task says, and the
/// scheduler never had more than `--max-vms` jobs in progress (from the
/// stored transitions).
#[test]
fn burst_of_200_messages_runs_within_capacity() {
    let h = Harness::new("service-burst");
    let t = token(&h);
    // Exactly 200 runs are counted: no lease may lapse under load.
    let s = start_leased(&h, 120, &["--max-vms", "2"]);
    let started = Instant::now();
    let n = 200;
    let mut uuids = Vec::new();
    for i in 0..n {
        let item = if i % 3 == 0 {
            format!("broken-{i}.0-1.fc40")
        } else {
            format!("hello-{i}.0-1.fc40")
        };
        let (status, v) = s.post_item(&t, &format!("burst-{i}"), &item);
        assert_eq!(status, 201, "{v}");
        uuids.extend(jobs_of(&v));
    }
    assert_eq!(uuids.len(), n, "one job per message");
    let mut events = Vec::new();
    let (mut passed, mut failed) = (0, 0);
    for u in &uuids {
        let j = s.wait_final(u);
        match j["state"].as_str() {
            Some("passed") => passed += 1,
            Some("failed") => failed += 1,
            other => panic!("job {u} ended {other:?}: {j}"),
        }
        // The first transition is the enqueue, not a job leaving a slot.
        for tr in j["transitions"]
            .as_array()
            .expect("transitions")
            .iter()
            .skip(1)
        {
            let at = tr["at"].as_str().expect("at").to_string();
            match tr["state"].as_str() {
                Some("scheduled") => events.push((at, 1)),
                Some("passed" | "failed" | "error" | "queued" | "cancelled") => {
                    events.push((at, -1))
                }
                _ => {}
            }
        }
    }
    let broken = (0..n).filter(|i| i % 3 == 0).count();
    assert_eq!((passed, failed), (n - broken, broken));
    events.sort();
    let (mut now, mut most) = (0, 0);
    for (_, d) in &events {
        now += d;
        most = most.max(now);
    }
    assert_eq!(most, 2, "at most --max-vms jobs in progress");
    let secs = started.elapsed().as_secs_f64();
    eprintln!(
        "burst: {n} jobs in {secs:.1} s at --max-vms 2: {:.1} jobs/min",
        n as f64 * 60.0 / secs
    );
    // One VM run per job, no retries.
    assert_runs_left_nothing(&h, n);
    let status = h.run(&["host", "status"]);
    assert!(
        status.stdout.contains(&format!("messages\t{n}\n")),
        "{}",
        status.stdout
    );
    s.stop();
}

/// libvirt unreachable: an infrastructure error, retried with backoff up to
/// `--max-attempts`, then `error` with exit status 3.
#[test]
fn infrastructure_errors_are_retried_up_to_the_cap() {
    let h = Harness::new("service-infra");
    let t = token(&h);
    let rules = rules(&h);
    let s = Service::start(
        &h,
        &[
            "--rules",
            rules.as_str(),
            "--retry-backoff-secs",
            "1",
            "--max-attempts",
            "2",
        ],
        &[(
            "FERROTRON_LIBVIRT_URI",
            // libvirt's test driver answers (the scheduler claims) but
            // cannot start a QEMU domain: every boot fails.
            "test:///default",
        )],
    );
    let (status, v) = s.post_item(&t, "msg-infra-1", "hello-9.0-1.fc40");
    assert_eq!(status, 201, "{v}");
    let uuid = jobs_of(&v).remove(0);
    let j = s.wait_final(&uuid);
    assert_eq!(j["state"], "error", "{j}");
    assert_eq!(j["exit_status"], 3, "{j}");
    assert_eq!(
        states(&j),
        [
            "queued",
            "scheduled",
            "booting",
            "queued",
            "scheduled",
            "booting",
            "error"
        ]
    );
    let why = j["error"].as_str().unwrap_or("");
    assert!(why.starts_with("boot: "), "{j}");
    s.stop();
}

/// Bad input found when the job starts (an image that does not exist) is
/// an `error` with exit status 2 at once: never retried, no VM.
#[test]
fn bad_image_is_an_error_without_retry() {
    let h = Harness::new("service-bad-image");
    let s = start(&h, &["--max-attempts", "3"]);
    let out = h.run(&[
        "submit",
        "examples/hello",
        "--item",
        "hello-1.0-1.fc40",
        "--image",
        "no-such-image",
    ]);
    assert_eq!(out.code, Some(0), "{}", out.stderr);
    let uuid = out.stdout.trim().to_string();
    let j = s.wait_final(&uuid);
    assert_eq!(j["state"], "error", "{j}");
    assert_eq!(j["exit_status"], 2, "{j}");
    assert_eq!(states(&j), ["queued", "scheduled", "booting", "error"]);
    let why = j["error"].as_str().unwrap_or("");
    assert!(why.contains("no-such-image"), "{j}");
    assert!(runner_jobs(&h).is_empty());
    s.stop();
}

#[test]
fn a_bad_rules_file_on_reload_keeps_the_last_good_rules() {
    let h = Harness::new("service-reload");
    let t = token(&h);
    let mut s = start(&h, &["--no-scheduler"]);
    let rules_file = h.data_dir.join("rules.yml");
    let (code, v) = s.post_item(&t, "reload-1", "hello-1-1");
    assert_eq!(code, 201, "{v}");
    assert_eq!(jobs_of(&v).len(), 1, "{v}");

    // A broken file, then SIGHUP: the error is logged, the old rules stay.
    std::fs::write(&rules_file, "- when: {item: {$regex: '('}}\n  do: []\n").expect("write");
    s.proc.signal(Signal::SIGHUP);
    let line = s.proc.wait_for(
        "rules reload failed, keeping the previous rules",
        Duration::from_secs(30),
    );
    assert!(line.contains("rules.yml:1"), "{line}");
    let (code, v) = s.post_item(&t, "reload-2", "hello-2-1");
    assert_eq!(code, 201, "{v}");
    assert_eq!(jobs_of(&v).len(), 1, "the last good rules still apply: {v}");

    // A good file: from now on only `new-*` items make jobs.
    std::fs::write(
        &rules_file,
        format!(
            "- when: {{item: {{$regex: '^new-'}}}}\n  do:\n    - tasks: [{{name: hello, path: examples/hello}}]\n      repo: {}\n",
            workspace().display()
        ),
    )
    .expect("write");
    s.proc.signal(Signal::SIGHUP);
    s.proc.wait_for(
        "rules reloaded: 1 rule(s) in force",
        Duration::from_secs(30),
    );
    let (_, v) = s.post_item(&t, "reload-3", "hello-3-1");
    assert!(jobs_of(&v).is_empty(), "old rule still in force: {v}");
    let (code, v) = s.post_item(&t, "reload-4", "new-1-1");
    assert_eq!(code, 201, "{v}");
    assert_eq!(jobs_of(&v).len(), 1, "{v}");
}

/// A job whose VM is larger than every host's capacity ends in `error`
/// with the reason at once instead of waiting forever; `host status`
/// shows the host's capacity; no VM is started.
#[test]
fn a_job_larger_than_every_host_is_an_error() {
    let h = Harness::new("service-too-large");
    let s = start(&h, &["--max-memory", "64", "--max-vcpus", "2"]);
    let out = h.run(&["submit", "examples/hello", "--item", "hello-1.0-1.fc40"]);
    assert_eq!(out.code, Some(0), "{}", out.stderr);
    let uuid = out.stdout.trim().to_string();
    let j = s.wait_final(&uuid);
    assert_eq!(j["state"], "error", "{j}");
    assert_eq!(j["exit_status"], 2, "{j}");
    assert_eq!(states(&j), ["queued", "error"]);
    let why = j["error"].as_str().unwrap_or("");
    assert!(
        why.contains("more than any of the 1 host(s) offers") && why.contains("64 MiB"),
        "{j}"
    );
    let status = h.run(&["host", "status"]);
    assert_eq!(status.code, Some(0), "{}", status.stderr);
    assert!(
        status
            .stdout
            .lines()
            .any(|l| l.starts_with("host\t") && l.contains("0/2 vCPUs\t0/64 MiB")),
        "{}",
        status.stdout
    );
    assert!(runner_jobs(&h).is_empty());
    s.stop();
}

/// A Koji build-complete message through `ferrotron serve`: the rule's
/// task downloads the build (the host fetches it from the Koji stand-in),
/// runs in a VM, and its results are queryable; a second message for the
/// same build fetches no RPM again.
#[test]
fn a_koji_build_message_runs_a_download_task_with_queryable_results() {
    let h = Harness::new("service-koji");
    let standins = ferrotron_tests::standins::Standins::start(&h.data_dir);
    let rules = h.data_dir.join("koji-rules.yml");
    std::fs::write(
        &rules,
        format!(
            "- when: {{message_type: KojiBuildPackageCompleted}}\n  do:\n    - tasks: [{{name: koji-download, path: tests/fixtures/koji-download}}]\n      repo: {}\n",
            workspace().display()
        ),
    )
    .expect("rules");
    let t = token(&h);
    let mut args: Vec<String> = vec![
        "--rules".into(),
        rules.display().to_string(),
        "--max-vms".into(),
        "1".into(),
    ];
    args.extend(standins.flags());
    let args: Vec<&str> = args.iter().map(String::as_str).collect();
    let s = Service::start(&h, &args, &[]);
    let message = |id: &str| {
        json!({
            "id": id,
            "topic": "org.fedoraproject.prod.buildsys.build.state.change",
            "body": {"build_id": 1, "old": 0, "new": 1, "name": "hello",
                     "version": "1.0", "release": "1.fc41", "epoch": null},
        })
    };
    let mut files = Vec::new();
    for id in ["koji-msg-1", "koji-msg-2"] {
        let (status, answer) = s.post(&t, &message(id));
        assert_eq!(status, 201, "{answer}");
        let uuids = jobs_of(&answer);
        assert_eq!(uuids.len(), 1, "{answer}");
        let j = s.wait_final(&uuids[0]);
        assert_eq!(j["state"], "passed", "{j}");
        files.push(standins.file_requests());
    }
    // The second job asked only for the noarch log Koji never has.
    assert_eq!(files[1], files[0] + 1, "{}", standins.requests());
    let results: Value = http()
        .get(format!("{}/api/v2.0/results?item=hello-1.0-1.fc41", s.base))
        .send()
        .expect("results")
        .json()
        .expect("results JSON");
    let names: Vec<String> = results["data"]
        .as_array()
        .expect("data")
        .iter()
        .map(|r| r["testcase"]["name"].as_str().unwrap_or("").to_string())
        .collect();
    assert_eq!(names.len(), 8, "four results per job: {names:?}");
    assert!(
        names
            .iter()
            .any(|n| n.contains("hello-1.0-1.fc41.x86_64.rpm")),
        "{names:?}"
    );
    assert_runs_left_nothing(&h, 2);
    s.stop();
}

/// Taskotron's rpmlint task as its authors wrote it (koji download,
/// `environment.rpm: [rpmlint, python3-rpm]`, a python action through
/// libtaskotron's check API, resultsdb), started by a Koji message, in the
/// full `debian` image, with real rpmlint on real RPMs from the Koji
/// stand-in.
#[test]
fn a_koji_message_runs_the_rpmlint_task_in_the_full_image() {
    let h = Harness::new("service-rpmlint");
    let standins = ferrotron_tests::standins::Standins::start(&h.data_dir);
    let rules = h.data_dir.join("rpmlint-rules.yml");
    std::fs::write(
        &rules,
        format!(
            "- when: {{message_type: KojiBuildPackageCompleted}}\n  do:\n    - tasks: [{{name: rpmlint, path: tests/fixtures/rpmlint}}]\n      repo: {}\n",
            workspace().display()
        ),
    )
    .expect("rules");
    let t = token(&h);
    let mut args: Vec<String> = vec![
        "--rules".into(),
        rules.display().to_string(),
        "--max-vms".into(),
        "1".into(),
    ];
    args.extend(standins.flags());
    let args: Vec<&str> = args.iter().map(String::as_str).collect();
    let s = Service::start(&h, &args, &[]);
    let message = |id: &str| {
        json!({
            "id": id,
            "topic": "org.fedoraproject.prod.buildsys.build.state.change",
            "body": {"build_id": 1, "old": 0, "new": 1, "name": "hello",
                     "version": "1.0", "release": "1.fc41", "epoch": null},
        })
    };
    let mut files = Vec::new();
    for id in ["rpmlint-msg-1", "rpmlint-msg-2"] {
        let (status, answer) = s.post(&t, &message(id));
        assert_eq!(status, 201, "{answer}");
        let uuids = jobs_of(&answer);
        assert_eq!(uuids.len(), 1, "{answer}");
        let j = s.wait_final(&uuids[0]);
        assert!(j["state"] == "passed" || j["state"] == "failed", "{j}");
        files.push(standins.file_requests());
    }
    // The second job's RPMs all came from the host's download cache.
    assert_eq!(files[1], files[0], "{}", standins.requests());
    let results: Value = http()
        .get(format!(
            "{}/api/v2.0/results?item=hello-1.0-1.fc41&testcases=dist.rpmlint",
            s.base
        ))
        .send()
        .expect("results")
        .json()
        .expect("results JSON");
    let data = results["data"].as_array().expect("data");
    assert_eq!(data.len(), 2, "one result per job: {results}");
    for r in data {
        let note = r["note"].as_str().unwrap_or("");
        let errors: u64 = note
            .split(' ')
            .next()
            .and_then(|n| n.parse().ok())
            .unwrap_or_else(|| panic!("note {note:?} does not count rpmlint's errors"));
        assert!(
            note.contains(" errors, ") && note.ends_with(" warnings"),
            "{note}"
        );
        let expected = if errors == 0 { "PASSED" } else { "FAILED" };
        assert_eq!(r["outcome"], expected, "{r}");
        assert_eq!(r["data"]["type"], json!(["koji_build"]), "{r}");
        // hello, hello-doc (noarch) and the source RPM were linted.
        assert_eq!(r["data"]["rpms"], json!(["3"]), "{r}");
    }
    assert_runs_left_nothing(&h, 2);
    s.stop();
}
