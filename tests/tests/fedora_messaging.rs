//! The Fedora Messaging intake against the real library: messages built
//! with the schema packages from PyPI (`koji-fedoramessaging-messages`,
//! `bodhi-messages`, `fedora-messaging-git-hook-messages`) and published
//! with `fedora_messaging.api.publish` (tests/fixtures/fedora-messaging/
//! publish.py) to the exchange a `ferrotron serve --no-scheduler` consumes,
//! through rules that match on the topic, the body and the headers the
//! library sets (`fedora_messaging_schema`, `fedora_messaging_rpm_<name>`).
//! No VMs: the jobs are checked queued.
//!
//! Each test has its own exchange and queue on the test broker
//! (tests/src/amqp.rs), deleted when it ends.

use std::path::{Path, PathBuf};
use std::time::Duration;

use ferrotron_tests::amqp::{amqp_url, ExchangeGuard, QueueGuard};
use ferrotron_tests::pyclients;
use ferrotron_tests::service::{http, jobs_of, token, Service};
use ferrotron_tests::{workspace, Harness};
use serde_json::Value;

/// The prefix Fedora's publishers put before their topics.
const PREFIX: &str = "org.fedoraproject.prod";

/// Rules whose `when` each look at the topic, the body and the headers the
/// library sets; each names a task of its own so a job tells which rule
/// made it.
fn rules(h: &Harness) -> PathBuf {
    let repo = workspace().display().to_string();
    let text = format!(
        r#"# Koji: a build of bash completed (the rpm header decides).
- when:
    message_type: KojiBuildPackageCompleted
    topic: {PREFIX}.buildsys.build.state.change
    body.instance: primary
    headers.fedora_messaging_schema: koji_fedoramessaging.build.BuildStateChangeV1
    headers.fedora_messaging_rpm_bash: true
  do:
    - tasks: [{{name: koji-check, path: examples/hello}}]
      repo: {repo}
# Koji: only the kernel's builds, by the header alone.
- when:
    item_type: koji_build
    headers.fedora_messaging_rpm_kernel: true
  do:
    - tasks: [{{name: kernel-check, path: examples/hello}}]
      repo: {repo}
# Bodhi 8: an update is ready for testing.
- when:
    message_type: BodhiUpdateTesting
    topic: {PREFIX}.bodhi.update.status.testing.koji-build-group.build.complete
    body.artifact.type: koji-build-group
    headers.fedora_messaging_schema: bodhi.update.status.testing.v3
    headers.fedora_messaging_rpm_bash-completion: true
  do:
    - tasks: [{{name: update-check, path: examples/hello}}]
      repo: {repo}
# Bodhi: an update was submitted to testing.
- when:
    message_type: BodhiUpdate
    body.update.request: testing
    headers.fedora_messaging_schema: bodhi.update.request.testing.v1
  do:
    - tasks: [{{name: update-request-check, path: examples/hello}}]
      repo: {repo}
# The git hook: a push to a package's f42 branch.
- when:
    message_type: DistGitCommit
    topic: {PREFIX}.git.receive
    body.commit.branch: f42
    headers.fedora_messaging_schema: fedora_messaging_git_hook.commit.v1
    headers.fedora_messaging_rpm_bash: true
  do:
    - tasks: [{{name: commit-check, path: examples/hello}}]
      repo: {repo}
"#
    );
    let p = h.data_dir.join("rules.yml");
    std::fs::write(&p, text).expect("write rules");
    p
}

fn s(p: &Path) -> &str {
    p.to_str().expect("utf-8 path")
}

/// A broker of the test's own: an exchange and a queue (and its
/// dead-letter queue), gone with the guards.
struct Bus {
    exchange: String,
    queue: String,
    /// The fedora-messaging configuration publishing there.
    conf: PathBuf,
    _guards: (ExchangeGuard, [QueueGuard; 2]),
}

impl Bus {
    fn new(h: &Harness) -> Bus {
        let tag = uuid::Uuid::new_v4().simple().to_string();
        let exchange = format!("ferrotron-fm-test-{tag}");
        let queue = format!("ferrotron-fm-test-{tag}");
        let conf = h.data_dir.join("fedora-messaging.toml");
        // fedora-messaging's own configuration file, as a publisher has it.
        std::fs::write(
            &conf,
            format!(
                "amqp_url = \"{}\"\npublish_exchange = \"{exchange}\"\ntopic_prefix = \"{PREFIX}\"\n\n\
                 [client_properties]\napp = \"Ferrotron tests\"\n",
                amqp_url()
            ),
        )
        .expect("write fedora-messaging.toml");
        Bus {
            _guards: (
                ExchangeGuard(exchange.clone()),
                [
                    QueueGuard(queue.clone()),
                    QueueGuard(format!("{queue}.dead-letter")),
                ],
            ),
            exchange,
            queue,
            conf,
        }
    }

    /// `serve --no-scheduler` consuming the bus (it declares the exchange).
    fn serve(&self, h: &Harness, rules: &Path) -> Service {
        let url = amqp_url();
        let binding = format!("{PREFIX}.#");
        let mut s = Service::start(
            h,
            &[
                "--rules",
                s(rules),
                "--no-scheduler",
                "--amqp-url",
                &url,
                "--amqp-exchange",
                &self.exchange,
                "--amqp-queue",
                &self.queue,
                "--amqp-binding",
                &binding,
            ],
            &[],
        );
        s.proc.wait_for("amqp: consuming", Duration::from_secs(120));
        s
    }

    /// Publishes the named messages of publish.py with the real library;
    /// what it says it sent (id, routing key, headers), one per message.
    fn publish(&self, names: &[&str]) -> Vec<Value> {
        let mut args = vec!["publish"];
        args.extend_from_slice(names);
        let out = pyclients::run_with_env(
            "fedora-messaging/publish.py",
            &args,
            &[("FEDORA_MESSAGING_CONF", s(&self.conf))],
        );
        out.lines()
            .map(|l| serde_json::from_str(l).expect("publish.py prints JSON lines"))
            .collect()
    }
}

/// (task, item, type, arch, state) of every job of the service, sorted.
fn queued(s: &Service) -> Vec<(String, String, String, String, String)> {
    let mut out: Vec<_> = s
        .jobs()
        .iter()
        .map(|u| {
            let j = s.job(u);
            let f = |k: &str| j[k].as_str().unwrap_or("").to_string();
            (f("formula"), f("item"), f("type"), f("arch"), f("state"))
        })
        .collect();
    out.sort();
    out
}

fn job(task: &str, item: &str, item_type: &str) -> (String, String, String, String, String) {
    (
        task.into(),
        item.into(),
        item_type.into(),
        "x86_64".into(),
        "queued".into(),
    )
}

#[test]
fn messages_the_real_library_publishes_make_the_jobs_their_rules_ask_for() {
    let h = Harness::new("fedora-messaging-publish");
    let bus = Bus::new(&h);
    let mut s = bus.serve(&h, &rules(&h));
    let sent = bus.publish(&[
        "koji-build-complete",
        "koji-build-kernel",
        "bodhi-ready-for-testing",
        "bodhi-request-testing",
        "git-receive",
    ]);
    // What the library set, as the rules expect it.
    assert_eq!(
        sent[0]["headers"]["fedora_messaging_schema"],
        "koji_fedoramessaging.build.BuildStateChangeV1"
    );
    assert_eq!(sent[0]["headers"]["fedora_messaging_rpm_bash"], true);
    assert_eq!(
        sent[2]["routing_key"],
        format!("{PREFIX}.bodhi.update.status.testing.koji-build-group.build.complete")
    );
    // Each handled once, in whatever order the consumer took them.
    let ids: Vec<String> = sent
        .iter()
        .map(|m| {
            m["id"]
                .as_str()
                .expect("the library sets an id")
                .to_string()
        })
        .collect();
    let handled = |seen: &[String], id: &str| {
        seen.iter()
            .any(|l| l.contains(&format!("amqp message Some(\"{id}\")")))
    };
    while !ids.iter().all(|id| handled(&s.proc.seen, id)) {
        s.proc
            .wait_for("amqp message Some(", Duration::from_secs(120));
    }
    for id in &ids {
        let times = s
            .proc
            .seen
            .iter()
            .filter(|l| l.contains(&format!("amqp message Some(\"{id}\")")))
            .count();
        assert_eq!(times, 1, "{id} handled {times} times");
    }
    assert_eq!(
        queued(&s),
        [
            job(
                "commit-check",
                "rpms/bash#3a1b0c9d8e7f6a5b4c3d2e1f0a9b8c7d6e5f4a3b",
                "git_commit"
            ),
            job("kernel-check", "kernel-6.17.9-300.fc42", "koji_build"),
            job("koji-check", "bash-5.2.37-1.fc42", "koji_build"),
            job("update-check", "FEDORA-2026-4f1e2d3c4b", "bodhi_update"),
            job(
                "update-request-check",
                "FEDORA-2026-4f1e2d3c4b",
                "bodhi_update"
            ),
        ]
    );
    let log = s.proc.seen.join("\n");
    assert!(
        !log.contains("goes to"),
        "nothing was dead-lettered:\n{log}"
    );
    s.stop();
}

#[test]
fn a_message_without_an_id_is_deduplicated_by_its_content() {
    let h = Harness::new("fedora-messaging-no-id");
    let bus = Bus::new(&h);
    let mut s = bus.serve(&h, &rules(&h));
    // The same build twice (each publish has its own `sent-at` header),
    // then another build, all without a message id.
    for name in [
        "koji-build-again@no-id",
        "koji-build-again@no-id",
        "koji-build-dumped@no-id",
    ] {
        let sent = bus.publish(&[name]);
        assert_eq!(sent[0]["id"], Value::Null, "{sent:?}");
    }
    let first = s
        .proc
        .wait_for("amqp message Some(\"sha256:", Duration::from_secs(120));
    assert!(
        first.contains("1 job(s)") && !first.contains("duplicate"),
        "{first}"
    );
    let again = s
        .proc
        .wait_for("amqp message Some(\"sha256:", Duration::from_secs(120));
    assert!(again.contains("a duplicate"), "{again}");
    let other = s
        .proc
        .wait_for("amqp message Some(\"sha256:", Duration::from_secs(120));
    assert!(
        other.contains("1 job(s)") && !other.contains("duplicate"),
        "{other}"
    );
    assert_eq!(
        queued(&s),
        [
            job("koji-check", "bash-5.2.37-2.fc42", "koji_build"),
            job("koji-check", "bash-5.2.37-3.fc42", "koji_build"),
        ]
    );
    s.stop();
}

#[test]
fn the_json_fedora_messaging_dumps_is_accepted_by_rules_test_and_the_api() {
    let h = Harness::new("fedora-messaging-dumps");
    let rules = rules(&h);
    let conf = h.data_dir.join("fedora-messaging.toml");
    std::fs::write(&conf, format!("topic_prefix = \"{PREFIX}\"\n")).expect("write conf");
    let dumped = pyclients::run_with_env(
        "fedora-messaging/publish.py",
        &["dump", "koji-build-dumped"],
        &[("FEDORA_MESSAGING_CONF", s(&conf))],
    );
    let parsed: Value = serde_json::from_str(dumped.trim()).expect("dumps writes JSON");
    // The library's own keys beside the envelope's.
    assert_eq!(parsed["priority"], 0, "{parsed}");
    assert_eq!(parsed["queue"], "ferrotron", "{parsed}");
    let file = h.data_dir.join("dumped.json");
    std::fs::write(&file, &dumped).expect("write message");

    let out = h.run(&["rules", "test", "--json", s(&rules), s(&file)]);
    assert_eq!(out.code, Some(0), "{}", out.stderr);
    let ev: Value = serde_json::from_str(&out.stdout).expect("rules test --json prints JSON");
    assert_eq!(ev["matched_rules"], serde_json::json!([0]), "{ev}");
    let made: Vec<(&str, &str)> = ev["jobs"]
        .as_array()
        .expect("jobs")
        .iter()
        .map(|j| {
            (
                j["task"].as_str().unwrap_or(""),
                j["item"].as_str().unwrap_or(""),
            )
        })
        .collect();
    assert_eq!(made, [("koji-check", "bash-5.2.37-3.fc42")], "{ev}");

    // The same text, as it is, to the API: queued once.
    let tok = token(&h);
    let s = Service::start(&h, &["--rules", s(&rules), "--no-scheduler"], &[]);
    let post = || {
        let r = http()
            .post(format!("{}/api/v1/messages", s.base))
            .bearer_auth(&tok)
            .header("content-type", "application/json")
            .body(dumped.clone())
            .send()
            .expect("POST message");
        let status = r.status().as_u16();
        (status, r.json::<Value>().expect("JSON answer"))
    };
    let (status, first) = post();
    assert_eq!(status, 201, "{first}");
    let uuids = jobs_of(&first);
    assert_eq!(uuids.len(), 1, "{first}");
    let j = s.job(&uuids[0]);
    assert_eq!(
        (&j["item"], &j["type"], &j["state"]),
        (
            &Value::from("bash-5.2.37-3.fc42"),
            &Value::from("koji_build"),
            &Value::from("queued")
        ),
        "{j}"
    );
    let (status, again) = post();
    assert_eq!(status, 200, "{again}");
    assert_eq!(again["duplicate"], true, "{again}");
    assert_eq!(jobs_of(&again), uuids);
    s.stop();
}
