//! The AMQP intake against the real RabbitMQ (no VMs: `serve
//! --no-scheduler`): a message that can never be handled is moved, whole
//! and with the reason, to the dead-letter queue and acknowledged, never
//! requeued without end; a topic over its quota is dead-lettered the same
//! way while other topics go on.

use std::time::Duration;

use ferrotron_tests::amqp::{
    amqp_url, publish_bytes_until_confirmed, publish_until_confirmed, take_all, QueueGuard,
};
use ferrotron_tests::service::Service;
use ferrotron_tests::{workspace, Harness};
use serde_json::json;

fn rules(h: &Harness) -> String {
    let text = format!(
        "- when: {{message_type: Generic, item: {{$regex: '^hello-'}}}}\n  do:\n    - tasks: [{{name: hello, path: examples/hello}}]\n      repo: {}\n",
        workspace().display()
    );
    let p = h.data_dir.join("rules.yml");
    std::fs::write(&p, text).expect("write rules");
    p.display().to_string()
}

/// `serve` without a scheduler consuming `ferrotron.dl.<tag>.#` from a
/// queue of its own; the queue and its dead-letter queue go with the
/// guards.
fn start(h: &Harness, extra: &[&str]) -> (Service, String, [QueueGuard; 2]) {
    let tag = uuid::Uuid::new_v4().simple().to_string();
    let queue = format!("ferrotron-dl-test-{tag}");
    let guards = [
        QueueGuard(queue.clone()),
        QueueGuard(format!("{queue}.dead-letter")),
    ];
    let binding = format!("ferrotron.dl.{tag}.#");
    let rules = rules(h);
    let url = amqp_url();
    let mut args = vec![
        "--rules",
        rules.as_str(),
        "--no-scheduler",
        "--amqp-url",
        url.as_str(),
        "--amqp-queue",
        queue.as_str(),
        "--amqp-binding",
        binding.as_str(),
    ];
    args.extend_from_slice(extra);
    let mut s = Service::start(h, &args, &[]);
    s.proc.wait_for("amqp: consuming", Duration::from_secs(60));
    (s, tag, guards)
}

#[test]
fn a_message_that_cannot_be_handled_is_dead_lettered_once() {
    let h = Harness::new("amqp-dead-letter");
    let (mut s, tag, guards) = start(&h, &[]);
    let topic = format!("ferrotron.dl.{tag}.build");
    publish_bytes_until_confirmed(&topic, "not-json", b"{not json");
    publish_until_confirmed(
        &topic,
        "nul",
        &json!({"item": "hello-1.0\u{0}-1.fc40", "item_type": "koji_build"}),
    );
    publish_until_confirmed(
        &topic,
        "good",
        &json!({"item": "hello-1.0-1.fc40", "item_type": "koji_build", "arch": "x86_64"}),
    );
    s.proc
        .wait_for("amqp message Some(\"good\")", Duration::from_secs(120));
    // Each bad message was logged once, not redelivered again and again.
    let log = s.proc.seen.join("\n");
    for id in ["not-json", "nul"] {
        assert_eq!(
            log.matches(&format!("({id}) goes to")).count(),
            1,
            "{id}:\n{log}"
        );
    }
    let dead = take_all(&guards[1].0);
    let ids: Vec<_> = dead
        .iter()
        .map(|d| d.message_id.as_deref().unwrap_or(""))
        .collect();
    assert_eq!(ids, ["not-json", "nul"], "{dead:?}");
    assert_eq!(dead[0].body, b"{not json", "the body is kept whole");
    let reason = |i: usize| {
        dead[i].headers["x-ferrotron-reason"]
            .as_str()
            .unwrap_or("")
            .to_string()
    };
    assert!(reason(0).contains("body is not JSON"), "{}", reason(0));
    assert!(
        reason(1).contains("body.item: holds a NUL character"),
        "{}",
        reason(1)
    );
    assert!(dead[1].headers["x-ferrotron-topic"]
        .to_string()
        .contains(&topic));
    // The good message made its job; the bad ones made nothing.
    assert_eq!(s.jobs().len(), 1);
    assert!(
        take_all(&guards[0].0).is_empty(),
        "nothing left in the queue"
    );
    s.stop();
}

#[test]
fn a_topic_over_its_quota_is_dead_lettered_and_others_go_on() {
    let h = Harness::new("amqp-topic-quota");
    let (mut s, tag, guards) = start(&h, &["--amqp-topic-limit", "2/3600"]);
    let noisy = format!("ferrotron.dl.{tag}.noisy");
    let quiet = format!("ferrotron.dl.{tag}.quiet");
    for i in 0..4 {
        publish_until_confirmed(
            &noisy,
            &format!("noisy-{i}"),
            &json!({"item": format!("hello-{i}-1.fc40"), "item_type": "koji_build", "arch": "x86_64"}),
        );
    }
    publish_until_confirmed(
        &quiet,
        "quiet-0",
        &json!({"item": "hello-q-1.fc40", "item_type": "koji_build", "arch": "x86_64"}),
    );
    s.proc
        .wait_for("amqp message Some(\"quiet-0\")", Duration::from_secs(120));
    let dead = take_all(&guards[1].0);
    let ids: Vec<_> = dead
        .iter()
        .map(|d| d.message_id.as_deref().unwrap_or(""))
        .collect();
    assert_eq!(ids, ["noisy-2", "noisy-3"], "{dead:?}");
    let reason = dead[0].headers["x-ferrotron-reason"]
        .as_str()
        .unwrap_or("")
        .to_string();
    assert!(
        reason.contains(&format!(
            "over quota: topic {noisy} brought more than 2 messages in 3600 s"
        )),
        "{reason}"
    );
    assert_eq!(s.jobs().len(), 3, "two noisy and the quiet one");
    s.stop();
}
