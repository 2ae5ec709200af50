//! Messages out, read by the real `fedora-messaging` consumer from PyPI
//! (the library Bodhi and Greenwave consume with) from the real RabbitMQ:
//! every stored result as `resultsdb.result.new` (the result exactly as
//! the API serves it), `taskotron.result.new` when the outcome changed,
//! every job move as `ferrotron.job.<state>`, all with Fedora Messaging's
//! headers under the configured topic prefix; and messages written while
//! the broker is down go out once it is back (no VMs: `--no-scheduler`);
//! and a reservation's `ferrotron.reservation.ready` and `.ended` (one VM).

use std::collections::{BTreeMap, BTreeSet};
use std::time::Duration;

use ferrotron_tests::amqp::{amqp_url, rabbitmqctl, with_broker, QueueGuard};
use ferrotron_tests::service::{author_key, http, token, Service};
use ferrotron_tests::{pyclients, workspace, Harness};
use serde_json::{json, Value};

/// A durable queue bound to `<prefix>.#` on `amq.topic`, declared before
/// anything is published (a topic exchange drops what no queue is bound
/// to); deleted with the guard.
fn consumer_queue(prefix: &str) -> (String, String, QueueGuard) {
    let queue = format!("ferrotron-out-{prefix}");
    let binding = format!("{prefix}.#");
    let (q, b) = (queue.clone(), binding.clone());
    with_broker(async |ch| {
        ch.queue_declare(
            q.as_str().into(),
            lapin::options::QueueDeclareOptions::durable(),
            Default::default(),
        )
        .await?;
        ch.queue_bind(
            q.as_str().into(),
            "amq.topic".into(),
            b.as_str().into(),
            Default::default(),
            Default::default(),
        )
        .await
    });
    (queue.clone(), binding, QueueGuard(queue))
}

/// The first `n` messages of the queue, as the real consumer read them
/// (it validated each against its schema first).
fn consume(queue: &str, binding: &str, n: usize) -> Vec<Value> {
    let out = pyclients::run(
        "messages-out/consume.py",
        &[
            &amqp_url(),
            "amq.topic",
            queue,
            binding,
            &n.to_string(),
            "600",
        ],
    );
    out.lines()
        .map(|l| serde_json::from_str(l).expect("a JSON line"))
        .collect()
}

fn post_result(s: &Service, token: &str, outcome: &str, item: &str) -> Value {
    let r = http()
        .post(format!("{}/api/v2.0/results", s.base))
        .bearer_auth(token)
        .json(&json!({
            "testcase": {"name": "dist.rpmlint"},
            "outcome": outcome,
            "ref_url": format!("https://logs.example.org/{item}/{outcome}"),
            "data": {"item": item, "type": "koji_build", "arch": "x86_64"},
        }))
        .send()
        .expect("POST result");
    assert_eq!(r.status().as_u16(), 201);
    r.json().expect("JSON")
}

fn get(s: &Service, path: &str) -> Value {
    let r = http().get(format!("{}{path}", s.base)).send().expect("GET");
    assert_eq!(r.status().as_u16(), 200, "{path}");
    r.json().expect("JSON")
}

/// Each message once by its id (a resend after a lost confirmation keeps
/// its id: at least once, never two different messages for one event).
fn by_id(messages: Vec<Value>) -> BTreeMap<String, Value> {
    messages
        .into_iter()
        .map(|m| (m["id"].as_str().expect("id").to_string(), m))
        .collect()
}

fn of_topic<'a>(messages: &'a BTreeMap<String, Value>, topic: &str) -> Vec<&'a Value> {
    let mut v: Vec<&Value> = messages.values().filter(|m| m["topic"] == topic).collect();
    v.sort_by_key(|m| {
        m["body"]["id"]
            .as_i64()
            .or(m["body"]["result"]["id"].as_i64())
            .unwrap_or_default()
    });
    v
}

/// What `fedora-messaging` puts on every message it publishes.
fn assert_fedora_messaging_envelope(m: &Value) {
    assert_eq!(m["class"], "fedora_messaging.message.Message", "{m}");
    let h = &m["headers"];
    assert_eq!(h["fedora_messaging_schema"], "base.message", "{m}");
    assert_eq!(h["fedora_messaging_severity"], 20, "{m}");
    assert_eq!(h["priority"], 0, "{m}");
    let sent = h["sent-at"].as_str().expect("sent-at");
    assert!(
        sent.ends_with("+00:00") && sent.len() == 25,
        "sent-at as fedora-messaging writes it: {sent}"
    );
    assert_eq!(m["priority"], 0);
}

#[test]
fn results_and_job_moves_reach_a_fedora_messaging_consumer() {
    let h = Harness::new("messages-out");
    let t = token(&h);
    let tag = uuid::Uuid::new_v4().simple().to_string();
    let prefix = format!("ftout{tag}");
    let (queue, binding, _consumer) = consumer_queue(&prefix);
    let intake_queue = format!("ferrotron-out-intake-{tag}");
    let _intake = [
        QueueGuard(intake_queue.clone()),
        QueueGuard(format!("{intake_queue}.dead-letter")),
    ];
    let rules = h.data_dir.join("rules.yml");
    std::fs::write(
        &rules,
        format!(
            "- when: {{message_type: Generic, item: {{$regex: '^hello-'}}}}\n  do:\n    - tasks: [{{name: hello, path: examples/hello}}]\n      repo: {}\n",
            workspace().display()
        ),
    )
    .expect("rules");
    let url = amqp_url();
    let mut s = Service::start(
        &h,
        &[
            "--no-scheduler",
            "--rules",
            rules.to_str().expect("utf-8"),
            "--amqp-url",
            &url,
            "--amqp-queue",
            &intake_queue,
            "--publish-topic-prefix",
            &prefix,
        ],
        &[],
    );
    s.proc
        .wait_for("publish: connected", Duration::from_secs(120));

    // A job: queued by a message, then cancelled.
    let (status, made) = s.post(
        &t,
        &json!({"id": format!("out-{tag}"), "topic": "ferrotron.test",
                "body": {"item": "hello-1.0-1.fc40", "item_type": "koji_build", "arch": "x86_64"}}),
    );
    assert_eq!(status, 201, "{made}");
    let uuid = made["jobs"][0].as_str().expect("a job").to_string();
    let r = http()
        .post(format!("{}/api/v1/jobs/{uuid}/cancel", s.base))
        .bearer_auth(&t)
        .send()
        .expect("cancel");
    assert_eq!(r.status().as_u16(), 200);
    // Results: the second repeats the first's outcome, the third changes it.
    let stored: Vec<Value> = ["PASSED", "PASSED", "FAILED"]
        .iter()
        .map(|o| post_result(&s, &t, o, "hello-1.0-1.fc40"))
        .collect();

    let messages = by_id(consume(&queue, &binding, 7));
    assert_eq!(messages.len(), 7, "{messages:#?}");
    for m in messages.values() {
        assert_fedora_messaging_envelope(m);
    }
    let topics: BTreeSet<&str> = messages
        .values()
        .map(|m| m["topic"].as_str().expect("topic"))
        .collect();
    let want: BTreeSet<String> = [
        "resultsdb.result.new",
        "taskotron.result.new",
        "ferrotron.job.queued",
        "ferrotron.job.cancelled",
    ]
    .iter()
    .map(|t| format!("{prefix}.{t}"))
    .collect();
    assert_eq!(
        topics,
        want.iter().map(String::as_str).collect::<BTreeSet<_>>()
    );

    // resultsdb.result.new: each result exactly as the API serves it.
    let new = of_topic(&messages, &format!("{prefix}.resultsdb.result.new"));
    assert_eq!(new.len(), 3);
    for (m, r) in new.iter().zip(&stored) {
        let id = r["id"].as_i64().expect("id");
        assert_eq!(m["body"], get(&s, &format!("/api/v2.0/results/{id}")));
    }
    // taskotron.result.new: only when the outcome changed, with the
    // previous one, in ResultsDB's shape.
    let changed = of_topic(&messages, &format!("{prefix}.taskotron.result.new"));
    let summary: Vec<(Value, Value, Value)> = changed
        .iter()
        .map(|m| {
            let r = &m["body"]["result"];
            (
                r["id"].clone(),
                r["prev_outcome"].clone(),
                r["outcome"].clone(),
            )
        })
        .collect();
    assert_eq!(
        summary,
        [
            (stored[0]["id"].clone(), Value::Null, json!("PASSED")),
            (stored[2]["id"].clone(), json!("PASSED"), json!("FAILED")),
        ]
    );
    let first = &changed[0]["body"];
    assert_eq!(
        first["task"],
        json!({"item": "hello-1.0-1.fc40", "type": "koji_build", "name": "dist.rpmlint"})
    );
    assert_eq!(
        first["result"]["log_url"],
        "https://logs.example.org/hello-1.0-1.fc40/PASSED"
    );
    let submit = first["result"]["submit_time"].as_str().expect("time");
    assert!(
        submit.ends_with(" UTC") && submit.len() == 23,
        "ResultsDB's form: {submit}"
    );
    // ferrotron.job.<state>: the job after each move, with its link.
    for (state, previous) in [("queued", Value::Null), ("cancelled", json!("queued"))] {
        let m = of_topic(&messages, &format!("{prefix}.ferrotron.job.{state}"));
        assert_eq!(m.len(), 1, "{state}");
        let job = &m[0]["body"]["job"];
        assert_eq!(job["uuid"], uuid.as_str());
        assert_eq!(job["state"], state);
        assert_eq!(job["previous_state"], previous);
        assert_eq!(job["item"], "hello-1.0-1.fc40");
        assert_eq!(job["task"], "hello");
        assert_eq!(job["href"], format!("{}/api/v1/jobs/{uuid}", s.base));
    }
    s.stop();
}

/// Starts RabbitMQ again when the test ends, passed or not.
struct BrokerBack;

impl Drop for BrokerBack {
    fn drop(&mut self) {
        rabbitmqctl(&["start_app"]);
    }
}

/// Results stored while RabbitMQ is stopped wait in the outbox; the
/// publisher reconnects on its own and every one goes out.
#[test]
fn messages_written_while_the_broker_is_down_go_out_when_it_returns() {
    let h = Harness::new("messages-out-outage");
    let t = token(&h);
    let tag = uuid::Uuid::new_v4().simple().to_string();
    let prefix = format!("ftout{tag}");
    let (queue, binding, _consumer) = consumer_queue(&prefix);
    let url = amqp_url();
    let mut s = Service::start(
        &h,
        &[
            "--no-scheduler",
            "--amqp-url",
            &url,
            "--publish-topic-prefix",
            &prefix,
        ],
        &[],
    );
    s.proc
        .wait_for("publish: connected", Duration::from_secs(120));
    let back = BrokerBack;
    rabbitmqctl(&["stop_app"]);
    // The API goes on storing results while the broker is away.
    let stored: Vec<i64> = (0..5)
        .map(|i| {
            post_result(&s, &t, "PASSED", &format!("hello-{i}.0-1.fc40"))["id"]
                .as_i64()
                .expect("id")
        })
        .collect();
    s.proc.wait_for("reconnecting in", Duration::from_secs(120));
    drop(back);
    s.proc
        .wait_for("publish: connected", Duration::from_secs(300));
    // Each result: its resultsdb message and (a first outcome) its
    // taskotron message.
    let messages = by_id(consume(&queue, &binding, 10));
    let sent: BTreeSet<i64> = of_topic(&messages, &format!("{prefix}.resultsdb.result.new"))
        .iter()
        .map(|m| m["body"]["id"].as_i64().expect("id"))
        .collect();
    assert_eq!(sent, stored.iter().copied().collect());
    let changed = of_topic(&messages, &format!("{prefix}.taskotron.result.new"));
    assert_eq!(changed.len(), 5);
    s.stop();
}

/// A reservation's life reaches the consumer: `ferrotron.reservation.ready`
/// says how to reach the VM (the same known_hosts line and `ssh -J`
/// command as the API's answer), `ferrotron.reservation.ended` why it
/// ended, both with the reservation's link. Boots one VM.
#[test]
fn a_reservations_ready_and_end_reach_a_fedora_messaging_consumer() {
    let h = Harness::new("messages-out-reservation");
    let t = token(&h);
    let tag = uuid::Uuid::new_v4().simple().to_string();
    let prefix = format!("ftres{tag}");
    let (queue, binding, _consumer) = consumer_queue(&format!("{prefix}.ferrotron.reservation"));
    let intake_queue = format!("ferrotron-out-intake-{tag}");
    let _intake = [
        QueueGuard(intake_queue.clone()),
        QueueGuard(format!("{intake_queue}.dead-letter")),
    ];
    let (_key, public) = author_key(&h);
    let url = amqp_url();
    let mut s = Service::start(
        &h,
        &[
            "--max-vms",
            "1",
            "--lease-secs",
            "120",
            "--amqp-url",
            &url,
            "--amqp-queue",
            &intake_queue,
            "--publish-topic-prefix",
            &prefix,
        ],
        &[],
    );
    s.proc
        .wait_for("publish: connected", Duration::from_secs(120));

    let r = http()
        .post(format!("{}/api/v1/reservations", s.base))
        .bearer_auth(&t)
        .json(&json!({"ssh_key": public, "ttl": "1h"}))
        .send()
        .expect("POST reservation");
    assert_eq!(r.status().as_u16(), 201);
    let id = r.json::<Value>().expect("JSON")["id"]
        .as_str()
        .expect("id")
        .to_string();
    let deadline = std::time::Instant::now() + Duration::from_secs(600);
    let ready = loop {
        let r = get(&s, &format!("/api/v1/reservations/{id}"));
        if r["status"] == "ready" {
            break r;
        }
        assert!(
            std::time::Instant::now() < deadline && r["status"] != "ended",
            "reservation {id} not ready: {r}"
        );
        std::thread::sleep(Duration::from_millis(300));
    };
    let r = http()
        .post(format!("{}/api/v1/reservations/{id}/release", s.base))
        .bearer_auth(&t)
        .send()
        .expect("release");
    assert_eq!(r.status().as_u16(), 200);

    let messages = by_id(consume(&queue, &binding, 2));
    for m in messages.values() {
        assert_fedora_messaging_envelope(m);
    }
    let one = |event: &str| {
        let m = of_topic(
            &messages,
            &format!("{prefix}.ferrotron.reservation.{event}"),
        );
        assert_eq!(m.len(), 1, "{event}: {messages:#?}");
        m[0]["body"]["reservation"].clone()
    };
    let up = one("ready");
    assert_eq!(up["id"], id.as_str());
    assert_eq!(up["status"], "ready");
    assert_eq!(up["job"], ready["job"]);
    assert_eq!(up["port"], ready["reach"]["port"]);
    assert_eq!(up["known_hosts"], ready["reach"]["known_hosts"]);
    assert_eq!(up["ssh_jump_command"], ready["reach"]["ssh_jump_command"]);
    assert_eq!(up["href"], format!("{}/api/v1/reservations/{id}", s.base));
    let down = one("ended");
    assert_eq!(down["id"], id.as_str());
    assert_eq!(down["status"], "ended");
    assert_eq!(down["end_reason"], "released");
    assert!(down.get("ssh_jump_command").is_none(), "{down}");
    // No message carries the requester's token.
    let all = serde_json::to_string(&messages).expect("JSON");
    assert!(!all.contains(&t), "a token in a message");
    // Released: its VM goes (a stopped service would leave it running for
    // the next to take back).
    let vm = format!("ferrotron-{}", ready["job"].as_str().expect("job"));
    let deadline = std::time::Instant::now() + Duration::from_secs(300);
    while ferrotron_tests::domain_exists(&vm) {
        assert!(
            std::time::Instant::now() < deadline,
            "{vm} still defined after its release"
        );
        std::thread::sleep(Duration::from_millis(300));
    }
    s.stop();
}
