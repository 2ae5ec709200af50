//! The test broker (RabbitMQ on 127.0.0.1:5672, started by
//! scripts/setup-rabbitmq.sh): connecting, publishing until confirmed,
//! reading a queue, and queues deleted when a test ends.

use std::time::{Duration, Instant};

use serde_json::Value;

pub fn amqp_url() -> String {
    std::env::var("FERROTRON_TEST_AMQP_URL")
        .unwrap_or_else(|_| "amqp://guest:guest@127.0.0.1:5672/%2f".into())
}

/// Runs `f` against the test broker (scripts/setup-rabbitmq.sh starts it).
pub fn with_broker<T>(f: impl AsyncFnOnce(&lapin::Channel) -> Result<T, lapin::Error>) -> T {
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("runtime");
    rt.block_on(async {
        let conn = lapin::Connection::connect(&amqp_url(), lapin::ConnectionProperties::default())
            .await
            .expect("RabbitMQ on 127.0.0.1:5672 (scripts/setup-rabbitmq.sh)");
        let ch = conn.create_channel().await.expect("channel");
        let r = f(&ch).await.expect("broker operation");
        let _ = conn.close(200, "done".into()).await;
        r
    })
}

/// Deletes the test's queue when the test ends, passed or not.
pub struct QueueGuard(pub String);

impl Drop for QueueGuard {
    fn drop(&mut self) {
        let name = self.0.clone();
        with_broker(async |ch| {
            ch.queue_delete(name.as_str().into(), Default::default())
                .await
                .map(|_| ())
        });
    }
}

/// Deletes the test's own exchange when the test ends, passed or not.
pub struct ExchangeGuard(pub String);

impl Drop for ExchangeGuard {
    fn drop(&mut self) {
        let name = self.0.clone();
        with_broker(async |ch| {
            ch.exchange_delete(name.as_str().into(), Default::default())
                .await
                .map(|_| ())
        });
    }
}

/// Publishes durably, retrying on a new connection until the broker
/// confirms: a message counts as sent only once the broker holds it, which
/// is what a Fedora Messaging publisher does while the broker is away.
pub fn publish_until_confirmed(topic: &str, id: &str, body: &Value) {
    publish_bytes_until_confirmed(topic, id, body.to_string().as_bytes());
}

/// Like [`publish_until_confirmed`], any bytes as the body.
pub fn publish_bytes_until_confirmed(topic: &str, id: &str, payload: &[u8]) {
    let deadline = Instant::now() + Duration::from_secs(180);
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("runtime");
    loop {
        let attempt = rt.block_on(async {
            use lapin::options::{BasicPublishOptions, ConfirmSelectOptions};
            let conn =
                lapin::Connection::connect(&amqp_url(), lapin::ConnectionProperties::default())
                    .await?;
            let ch = conn.create_channel().await?;
            ch.confirm_select(ConfirmSelectOptions::default()).await?;
            let c = ch
                .basic_publish(
                    "amq.topic".into(),
                    topic.into(),
                    BasicPublishOptions::default(),
                    payload,
                    lapin::BasicProperties::default()
                        .with_message_id(id.into())
                        .with_delivery_mode(2),
                )
                .await?
                .await?;
            let _ = conn.close(200, "done".into()).await;
            Ok::<bool, lapin::Error>(c.is_ack())
        });
        match attempt {
            Ok(true) => return,
            other => {
                assert!(Instant::now() < deadline, "cannot publish {id}: {other:?}");
                std::thread::sleep(Duration::from_millis(200));
            }
        }
    }
}

/// One message taken from a queue: its body and string headers.
#[derive(Debug)]
pub struct Taken {
    pub body: Vec<u8>,
    pub message_id: Option<String>,
    pub headers: serde_json::Map<String, Value>,
}

/// Takes (and acknowledges) every message now in `queue`.
pub fn take_all(queue: &str) -> Vec<Taken> {
    with_broker(async |ch| {
        let mut out = Vec::new();
        while let Some(m) = ch
            .basic_get(
                queue.into(),
                lapin::options::BasicGetOptions { no_ack: true },
            )
            .await?
        {
            let d = m.delivery;
            // String headers only (what the tests look at), as text.
            let headers = d
                .properties
                .headers()
                .as_ref()
                .map(|h| {
                    h.inner()
                        .iter()
                        .filter_map(|(k, v)| match v {
                            lapin::types::AMQPValue::LongString(s) => Some((
                                k.as_str().to_string(),
                                Value::String(String::from_utf8_lossy(s.as_bytes()).into_owned()),
                            )),
                            _ => None,
                        })
                        .collect()
                })
                .unwrap_or_default();
            out.push(Taken {
                message_id: d.properties.message_id().as_ref().map(|s| s.to_string()),
                body: d.data,
                headers,
            });
        }
        Ok(out)
    })
}

/// `rabbitmqctl ARGS` on the test broker (`stop_app`, `start_app`); it
/// must succeed.
pub fn rabbitmqctl(args: &[&str]) {
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
