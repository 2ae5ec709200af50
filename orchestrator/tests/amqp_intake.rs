//! The AMQP intake against a real RabbitMQ (installed and started on
//! loopback by `make test` through scripts/setup-rabbitmq.sh): acks only
//! after the handler stored, redelivery after a crash in between, and no
//! message lost while the broker is away.

use std::collections::BTreeSet;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use ferrotron::intake::amqp::{self, AmqpConfig};
use ferrotron::intake::{HandleError, Message};
use lapin::options::{BasicPublishOptions, ConfirmSelectOptions, QueueDeleteOptions};
use lapin::{BasicProperties, Connection, ConnectionProperties};
use tokio::sync::watch;

fn url() -> String {
    std::env::var("FERROTRON_TEST_AMQP_URL")
        .unwrap_or_else(|_| "amqp://guest:guest@127.0.0.1:5672/%2f".into())
}

fn config(tag: &str) -> AmqpConfig {
    let mut c = AmqpConfig::new(
        &url(),
        &format!("ferrotron-test-{tag}-{}", uuid::Uuid::new_v4()),
        vec![format!("ferrotron.test.{tag}.#")],
    );
    c.max_backoff = Duration::from_millis(500);
    c
}

/// Publishes with publisher confirms; retries (new connection) until the
/// broker confirms, so a message counts as sent only once it is durable.
async fn publish(topic: &str, id: &str, body: &str) {
    let deadline = Instant::now() + Duration::from_secs(120);
    loop {
        let attempt = async {
            let conn = Connection::connect(&url(), ConnectionProperties::default()).await?;
            let ch = conn.create_channel().await?;
            ch.confirm_select(ConfirmSelectOptions::default()).await?;
            let confirm = ch
                .basic_publish(
                    "amq.topic".into(),
                    topic.into(),
                    BasicPublishOptions::default(),
                    body.as_bytes(),
                    BasicProperties::default()
                        .with_message_id(id.into())
                        .with_delivery_mode(2),
                )
                .await?
                .await?;
            let _ = conn.close(200, "done".into()).await;
            Ok::<bool, lapin::Error>(confirm.is_ack())
        };
        match attempt.await {
            Ok(true) => return,
            _ if Instant::now() < deadline => tokio::time::sleep(Duration::from_millis(200)).await,
            other => panic!("cannot publish {id}: {other:?}"),
        }
    }
}

async fn delete_queue(name: &str) {
    if let Ok(conn) = Connection::connect(&url(), ConnectionProperties::default()).await {
        if let Ok(ch) = conn.create_channel().await {
            let _ = ch
                .queue_delete(name.into(), QueueDeleteOptions::default())
                .await;
        }
        let _ = conn.close(200, "done".into()).await;
    }
}

type Seen = Arc<Mutex<Vec<Message>>>;

/// Starts the intake with a handler that "stores" into `seen`; returns the
/// shutdown switch and the task.
fn start(
    cfg: AmqpConfig,
    seen: Seen,
    fail_first: Option<String>,
) -> (
    watch::Sender<bool>,
    tokio::task::JoinHandle<()>,
    Arc<Mutex<Vec<String>>>,
) {
    let (tx, rx) = watch::channel(false);
    let states = Arc::new(Mutex::new(Vec::new()));
    let st = states.clone();
    let failed_once = Arc::new(Mutex::new(false));
    let task = tokio::spawn(async move {
        amqp::run(
            cfg,
            move |env: Message| {
                let seen = seen.clone();
                let fail_first = fail_first.clone();
                let failed_once = failed_once.clone();
                async move {
                    if fail_first.is_some() && env.id == fail_first {
                        let mut f = failed_once.lock().expect("lock");
                        if !*f {
                            *f = true;
                            return Err(HandleError::Retry("the store is down".into()));
                        }
                    }
                    seen.lock().expect("lock").push(env);
                    Ok(())
                }
            },
            rx,
            move |s| st.lock().expect("lock").push(s.to_string()),
        )
        .await
    });
    (tx, task, states)
}

async fn wait_for(seen: &Seen, n: usize, secs: u64) {
    let deadline = Instant::now() + Duration::from_secs(secs);
    while seen.lock().expect("lock").len() < n && Instant::now() < deadline {
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

async fn wait_consuming(states: &Arc<Mutex<Vec<String>>>, n: usize) {
    let deadline = Instant::now() + Duration::from_secs(60);
    while states
        .lock()
        .expect("lock")
        .iter()
        .filter(|s| s.contains("consuming"))
        .count()
        < n
    {
        assert!(
            Instant::now() < deadline,
            "never consumed: {:?}",
            states.lock().expect("lock")
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

fn ids(seen: &Seen) -> Vec<String> {
    seen.lock()
        .expect("lock")
        .iter()
        .map(|e| e.id.clone().unwrap_or_default())
        .collect()
}

#[tokio::test]
async fn messages_are_handled_once_and_bad_ones_dropped() {
    let cfg = config("basic");
    let queue = cfg.queue.clone();
    let seen: Seen = Arc::default();
    let (stop, task, states) = start(cfg, seen.clone(), None);
    wait_consuming(&states, 1).await;
    for i in 0..5 {
        publish(
            "ferrotron.test.basic.build",
            &format!("m{i}"),
            &format!("{{\"n\": {i}}}"),
        )
        .await;
    }
    publish("ferrotron.test.basic.build", "bad", "not json").await;
    publish("ferrotron.test.basic.build", "m5", "{\"n\": 5}").await;
    wait_for(&seen, 6, 60).await;
    let _ = stop.send(true);
    task.await.expect("intake task");
    assert_eq!(ids(&seen), ["m0", "m1", "m2", "m3", "m4", "m5"]);
    let first = seen.lock().expect("lock")[0].clone();
    assert_eq!(first.topic, "ferrotron.test.basic.build");
    assert_eq!(first.body["n"], 0);
    delete_queue(&queue).await;
}

#[tokio::test]
async fn a_message_not_stored_is_delivered_again() {
    // The handler fails the first time (as if the store were down, or the
    // service died between receive and store): no ack, so it comes back.
    let cfg = config("retry");
    let queue = cfg.queue.clone();
    let seen: Seen = Arc::default();
    let (stop, task, states) = start(cfg, seen.clone(), Some("r1".into()));
    wait_consuming(&states, 1).await;
    publish("ferrotron.test.retry.x", "r1", "{}").await;
    publish("ferrotron.test.retry.x", "r2", "{}").await;
    wait_for(&seen, 2, 60).await;
    let _ = stop.send(true);
    task.await.expect("intake task");
    let got: BTreeSet<String> = ids(&seen).into_iter().collect();
    assert_eq!(got, ["r1", "r2"].iter().map(|s| s.to_string()).collect());
    assert_eq!(seen.lock().expect("lock").len(), 2, "stored once each");
    delete_queue(&queue).await;
}

#[tokio::test]
async fn a_crash_before_the_ack_loses_nothing() {
    let cfg = config("crash");
    let queue = cfg.queue.clone();
    // First consumer: its handler never returns, then the process "dies"
    // (the task is aborted: the connection drops without an ack).
    let (tx, rx) = watch::channel(false);
    let got_it = Arc::new(Mutex::new(false));
    let g = got_it.clone();
    let states = Arc::new(Mutex::new(Vec::new()));
    let st = states.clone();
    let hung = tokio::spawn(amqp::run(
        cfg.clone(),
        move |_env: Message| {
            let g = g.clone();
            async move {
                *g.lock().expect("lock") = true;
                std::future::pending::<()>().await;
                Ok(())
            }
        },
        rx,
        move |s| st.lock().expect("lock").push(s.to_string()),
    ));
    wait_consuming(&states, 1).await;
    publish("ferrotron.test.crash.x", "c1", "{}").await;
    let deadline = Instant::now() + Duration::from_secs(60);
    while !*got_it.lock().expect("lock") {
        assert!(
            Instant::now() < deadline,
            "first consumer never got the message"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    hung.abort();
    let _ = hung.await;
    drop(tx);
    // The restarted service gets it again.
    let seen: Seen = Arc::default();
    let (stop, task, _) = start(cfg, seen.clone(), None);
    wait_for(&seen, 1, 60).await;
    let _ = stop.send(true);
    task.await.expect("intake task");
    assert_eq!(ids(&seen), ["c1"]);
    delete_queue(&queue).await;
}

fn rabbitmqctl(args: &[&str]) {
    let out = std::process::Command::new("rabbitmqctl")
        .args(["-q", "-n", "rabbit@localhost"])
        .args(args)
        .output()
        .expect("rabbitmqctl");
    assert!(
        out.status.success(),
        "rabbitmqctl {args:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
}

#[tokio::test]
async fn nothing_is_lost_while_the_broker_is_away() {
    let cfg = config("outage");
    let queue = cfg.queue.clone();
    let seen: Seen = Arc::default();
    let (stop, task, states) = start(cfg, seen.clone(), None);
    wait_consuming(&states, 1).await;
    // A stream of 30 messages; the broker stops after the 10th and comes
    // back a few seconds later. Publishers retry until confirmed.
    let publisher = tokio::spawn(async {
        for i in 0..30 {
            publish("ferrotron.test.outage.x", &format!("o{i:02}"), "{}").await;
        }
    });
    wait_for(&seen, 10, 60).await;
    rabbitmqctl(&["stop_app"]);
    tokio::time::sleep(Duration::from_secs(3)).await;
    rabbitmqctl(&["start_app"]);
    publisher.await.expect("publisher");
    wait_for(&seen, 30, 120).await;
    let _ = stop.send(true);
    task.await.expect("intake task");
    let got: BTreeSet<String> = ids(&seen).into_iter().collect();
    let want: BTreeSet<String> = (0..30).map(|i| format!("o{i:02}")).collect();
    assert_eq!(got, want, "messages lost");
    let states = states.lock().expect("lock").clone();
    assert!(
        states.iter().filter(|s| s.contains("consuming")).count() >= 2,
        "the intake never reconnected: {states:?}"
    );
    assert!(
        states.iter().any(|s| s.contains("reconnecting in")),
        "{states:?}"
    );
    delete_queue(&queue).await;
}

/// A "broker" that accepts TCP and never speaks AMQP (one starting up or
/// going down): the set-up times out and the intake tries again, and a
/// shutdown ends it at once instead of waiting on the handshake.
#[tokio::test]
async fn a_stalled_handshake_is_retried_and_shutdown_still_ends_the_intake() {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
    let port = listener.local_addr().expect("addr").port();
    std::thread::spawn(move || {
        let mut held = Vec::new();
        for s in listener.incoming().flatten() {
            held.push(s);
        }
    });
    let mut cfg = AmqpConfig::new(
        &format!("amqp://guest:guest@127.0.0.1:{port}/%2f"),
        "ferrotron-test-stalled",
        vec!["ferrotron.test.stalled.#".into()],
    );
    cfg.setup_timeout = Duration::from_millis(500);
    cfg.max_backoff = Duration::from_millis(200);
    let seen: Seen = Arc::default();
    let (stop, task, states) = start(cfg, seen.clone(), None);
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        let timeouts = states
            .lock()
            .expect("lock")
            .iter()
            .filter(|s| s.contains("set-up took longer than") && s.contains("reconnecting in"))
            .count();
        if timeouts >= 2 {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "{:?}",
            states.lock().expect("lock")
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    // Stop while the next handshake hangs.
    let _ = stop.send(true);
    tokio::time::timeout(Duration::from_secs(30), task)
        .await
        .expect("the intake ended on shutdown")
        .expect("intake task");
    assert!(ids(&seen).is_empty());
}
