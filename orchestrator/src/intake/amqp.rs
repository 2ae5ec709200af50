//! AMQP 0.9.1 intake (RabbitMQ, as Fedora Messaging uses it), with `lapin`.
//!
//! A durable queue is bound to the configured topics on a topic exchange.
//! Each delivery is acknowledged only after the handler has stored what the
//! message makes (manual acks), so a crash between receive and store makes
//! the broker deliver it again: nothing acknowledged is lost. A message that
//! can never be handled (not JSON, control characters, a topic over its
//! quota) is moved to the dead-letter queue (`<queue>.dead-letter`), with
//! why in its `x-ferrotron-reason` header and its topic in
//! `x-ferrotron-topic`, and acknowledged only once the broker has
//! confirmed the copy; one whose handling failed for a passing reason is
//! requeued. When the broker goes away the consumer reconnects with
//! exponential backoff.

use std::future::Future;
use std::time::Duration;

use futures_lite::StreamExt;
use lapin::options::{
    BasicAckOptions, BasicConsumeOptions, BasicNackOptions, BasicPublishOptions, BasicQosOptions,
    ConfirmSelectOptions, ExchangeDeclareOptions, QueueBindOptions, QueueDeclareOptions,
};
use lapin::types::{AMQPValue, FieldTable};
use lapin::{Connection, ConnectionProperties, ExchangeKind};
use tokio::sync::watch;

use super::{HandleError, Message};

#[derive(Debug, Clone)]
pub struct AmqpConfig {
    /// `amqp://user:password@127.0.0.1:5672/%2f`
    pub url: String,
    /// Topic exchange the bindings are made on (`amq.topic` by default, as
    /// Fedora Messaging publishes).
    pub exchange: String,
    /// Durable queue of this installation.
    pub queue: String,
    /// Durable queue where messages that can never be handled go
    /// (`<queue>.dead-letter` by default).
    pub dead_letter: String,
    /// Messages one topic may bring per window; past it they are
    /// dead-lettered (none: no limit).
    pub topic_rate: Option<crate::ratelimit::Rate>,
    /// Routing-key patterns (`org.fedoraproject.prod.buildsys.#`).
    pub bindings: Vec<String>,
    /// Unacknowledged messages in flight at once.
    pub prefetch: u16,
    /// Longest pause between two reconnection attempts.
    pub max_backoff: Duration,
    /// Longest a connection's set-up (connect, channel, declare, bind,
    /// consume) may take: a broker that accepts TCP while it starts or
    /// stops can stall the handshake, and that must end in a reconnect, not
    /// a consumer stuck for good.
    pub setup_timeout: Duration,
}

impl AmqpConfig {
    pub fn new(url: &str, queue: &str, bindings: Vec<String>) -> AmqpConfig {
        AmqpConfig {
            url: url.to_string(),
            exchange: "amq.topic".into(),
            queue: queue.to_string(),
            dead_letter: format!("{queue}.dead-letter"),
            topic_rate: None,
            bindings,
            prefetch: 16,
            max_backoff: Duration::from_secs(30),
            setup_timeout: Duration::from_secs(30),
        }
    }
}

#[derive(Debug, thiserror::Error)]
pub enum AmqpError {
    #[error("AMQP {step} failed")]
    Broker {
        step: &'static str,
        #[source]
        source: lapin::Error,
    },
    #[error("the AMQP consumer of queue {0} was cancelled by the broker")]
    Cancelled(String),
    #[error("the AMQP connection's set-up took longer than {0:?}")]
    SetupTimeout(Duration),
    #[error("the broker did not confirm the dead-lettered copy of a message on {0}")]
    NotConfirmed(String),
}

/// How long closing a connection may take at shutdown (a broker gone
/// quiet would otherwise keep the service from stopping).
const CLOSE_TIMEOUT: Duration = Duration::from_secs(5);

fn broker(step: &'static str) -> impl FnOnce(lapin::Error) -> AmqpError {
    move |source| AmqpError::Broker { step, source }
}

use crate::util::redact_url as redact;

/// Turns a delivery into a [`Message`]: the routing key is the topic, the
/// body must be JSON, the AMQP headers become JSON values.
pub fn message_of(
    routing_key: &str,
    message_id: Option<&str>,
    headers: Option<&FieldTable>,
    data: &[u8],
) -> Result<Message, HandleError> {
    let body: serde_json::Value = serde_json::from_slice(data)
        .map_err(|e| HandleError::Rejected(format!("body is not JSON: {e}")))?;
    if routing_key.is_empty() {
        return Err(HandleError::Rejected("no topic (empty routing key)".into()));
    }
    let headers = headers.map(json_of_table).unwrap_or_default();
    // A message without an id is known by its topic and body, so that a
    // redelivery of it is still recognised.
    let id = match message_id.map(str::trim).filter(|i| !i.is_empty()) {
        Some(i) => i.to_string(),
        None => content_id(routing_key, &body),
    };
    let mut message = Message::new(Some(id), routing_key, body);
    message.headers = headers;
    message
        .check()
        .map_err(|e| HandleError::Rejected(e.to_string()))?;
    Ok(message)
}

/// The id of a message that came without one: `sha256:` and the hash of
/// its topic and body (serde_json writes objects with sorted keys, so the
/// same content always gives the same id).
pub fn content_id(topic: &str, body: &serde_json::Value) -> String {
    use sha2::{Digest, Sha256};
    let mut h = Sha256::new();
    h.update(topic.as_bytes());
    h.update([0u8]);
    h.update(body.to_string().as_bytes());
    format!("sha256:{}", hex::encode(h.finalize()))
}

/// AMQP headers as the JSON a publisher meant: strings as strings (not
/// lapin's `{"LongString": [bytes]}`), numbers, booleans, lists and tables;
/// Fedora Messaging's `fedora_messaging_schema` reads as
/// `"bodhi.update.status.testing.koji-build-group.build.complete"`.
pub fn json_of_table(t: &FieldTable) -> serde_json::Map<String, serde_json::Value> {
    t.inner()
        .iter()
        .map(|(k, v)| (k.as_str().to_string(), json_of_value(v)))
        .collect()
}

fn json_of_value(v: &AMQPValue) -> serde_json::Value {
    use serde_json::Value as J;
    let text = |b: &[u8]| J::String(String::from_utf8_lossy(b).into_owned());
    match v {
        AMQPValue::Boolean(b) => J::Bool(*b),
        AMQPValue::ShortShortInt(n) => J::from(*n),
        AMQPValue::ShortShortUInt(n) => J::from(*n),
        AMQPValue::ShortInt(n) => J::from(*n),
        AMQPValue::ShortUInt(n) => J::from(*n),
        AMQPValue::LongInt(n) => J::from(*n),
        AMQPValue::LongUInt(n) => J::from(*n),
        AMQPValue::LongLongInt(n) => J::from(*n),
        AMQPValue::Float(f) => J::from(f64::from(*f)),
        AMQPValue::Double(f) => J::from(*f),
        AMQPValue::DecimalValue(d) => J::from(f64::from(d.value) / 10f64.powi(i32::from(d.scale))),
        AMQPValue::ShortString(s) => J::String(s.as_str().to_string()),
        AMQPValue::LongString(s) => text(s.as_bytes()),
        AMQPValue::ByteArray(b) => text(b.as_slice()),
        AMQPValue::FieldArray(a) => J::Array(a.as_slice().iter().map(json_of_value).collect()),
        AMQPValue::Timestamp(t) => J::from(*t),
        AMQPValue::FieldTable(t) => J::Object(json_of_table(t)),
        AMQPValue::Void => J::Null,
    }
}

/// Consumes until `shutdown` turns true, reconnecting after broker failures.
/// `on_state` hears about connections and losses (for logs and tests).
pub async fn run<H, F>(
    cfg: AmqpConfig,
    handler: H,
    mut shutdown: watch::Receiver<bool>,
    on_state: impl Fn(&str),
) where
    H: Fn(Message) -> F,
    F: Future<Output = Result<(), HandleError>>,
{
    let mut backoff = Duration::from_millis(500);
    while !*shutdown.borrow() {
        match consume(&cfg, &handler, &mut shutdown, &on_state).await {
            Ok(()) => return,
            Err(e) => {
                on_state(&format!(
                    "amqp: {} ({}); reconnecting in {:.1} s",
                    crate::util::full(&e),
                    redact(&cfg.url),
                    backoff.as_secs_f64()
                ));
                tokio::select! {
                    _ = tokio::time::sleep(backoff) => {}
                    _ = shutdown.changed() => {}
                }
                backoff = (backoff * 2).min(cfg.max_backoff);
            }
        }
    }
}

/// One connection's life: declare, bind, consume. Ok on shutdown.
async fn consume<H, F>(
    cfg: &AmqpConfig,
    handler: &H,
    shutdown: &mut watch::Receiver<bool>,
    on_state: &impl Fn(&str),
) -> Result<(), AmqpError>
where
    H: Fn(Message) -> F,
    F: Future<Output = Result<(), HandleError>>,
{
    let quota = cfg.topic_rate.map(crate::ratelimit::Limiter::new);
    let quota = quota.as_ref();
    // The set-up is bounded and gives way to a shutdown.
    let setup = tokio::select! {
        r = tokio::time::timeout(cfg.setup_timeout, set_up(cfg)) => r,
        _ = shutdown.changed() => return Ok(()),
    };
    let (conn, channel, mut consumer) =
        setup.map_err(|_| AmqpError::SetupTimeout(cfg.setup_timeout))??;
    on_state(&format!(
        "amqp: consuming {} on {} ({} binding(s))",
        cfg.queue,
        redact(&cfg.url),
        cfg.bindings.len()
    ));
    loop {
        let delivery = tokio::select! {
            d = consumer.next() => d,
            _ = shutdown.changed() => {
                let _ = tokio::time::timeout(
                    CLOSE_TIMEOUT,
                    conn.close(200, "shutting down".into()),
                )
                .await;
                return Ok(());
            }
        };
        let delivery = match delivery {
            None => return Err(AmqpError::Cancelled(cfg.queue.clone())),
            Some(Err(e)) => return Err(broker("delivery")(e)),
            Some(Ok(d)) => d,
        };
        let message_id = delivery
            .properties
            .message_id()
            .as_ref()
            .map(|s| s.to_string());
        let m = crate::metrics::global();
        m.amqp("received");
        if published_here(delivery.properties.headers().as_ref()) {
            m.amqp("own_skipped");
            // Ferrotron's own messages never trigger it (no loop when the
            // bindings cover the publishing prefix).
            tracing::debug!(
                "amqp: {} is Ferrotron's own message; skipped",
                delivery.routing_key
            );
            delivery
                .ack(BasicAckOptions::default())
                .await
                .map_err(broker("basic.ack"))?;
            continue;
        }
        let parsed = message_of(
            delivery.routing_key.as_str(),
            message_id.as_deref(),
            delivery.properties.headers().as_ref(),
            &delivery.data,
        );
        let outcome = match parsed {
            Ok(env) => match over_quota(quota, &env.topic) {
                Some(why) => Err(HandleError::Rejected(why)),
                None => handler(env).await,
            },
            Err(e) => Err(e),
        };
        match outcome {
            Ok(()) => {
                delivery
                    .ack(BasicAckOptions::default())
                    .await
                    .map_err(broker("basic.ack"))?;
                m.amqp("acked");
            }
            Err(HandleError::Rejected(why)) => {
                tracing::warn!(
                    "amqp: a message on {} ({}) goes to {}: {why}",
                    delivery.routing_key,
                    message_id.as_deref().unwrap_or("no id"),
                    cfg.dead_letter
                );
                dead_letter(&channel, cfg, &delivery, &why).await?;
                delivery
                    .ack(BasicAckOptions::default())
                    .await
                    .map_err(broker("basic.ack"))?;
                m.amqp("dead_lettered");
            }
            Err(HandleError::Retry(why)) => {
                tracing::warn!("amqp: message on {} requeued: {why}", delivery.routing_key);
                delivery
                    .nack(BasicNackOptions {
                        requeue: true,
                        ..Default::default()
                    })
                    .await
                    .map_err(broker("basic.nack"))?;
                m.amqp("requeued");
                // Do not spin on a store that is down.
                tokio::time::sleep(Duration::from_millis(500)).await;
            }
        };
    }
}

/// Whether a message carries the header Ferrotron's publisher puts on its
/// own ([`crate::publish::OWN_HEADER`]).
fn published_here(headers: Option<&FieldTable>) -> bool {
    headers.is_some_and(|h| h.contains_key(crate::publish::OWN_HEADER))
}

/// Why a message on `topic` is refused by its topic's quota, if it is.
fn over_quota(quota: Option<&crate::ratelimit::Limiter>, topic: &str) -> Option<String> {
    let q = quota?;
    q.take(topic).err().map(|_| {
        let r = q.rate();
        format!(
            "over quota: topic {topic} brought more than {} messages in {} s (--amqp-topic-limit)",
            r.count,
            r.window.as_secs()
        )
    })
}

/// Copies `delivery` to the dead-letter queue with why, and waits for the
/// broker to confirm it (only then may the original be acknowledged).
async fn dead_letter(
    channel: &lapin::Channel,
    cfg: &AmqpConfig,
    delivery: &lapin::message::Delivery,
    why: &str,
) -> Result<(), AmqpError> {
    let mut headers = delivery.properties.headers().clone().unwrap_or_default();
    headers.insert(
        "x-ferrotron-reason".into(),
        AMQPValue::LongString(why.into()),
    );
    headers.insert(
        "x-ferrotron-topic".into(),
        AMQPValue::LongString(delivery.routing_key.as_str().into()),
    );
    let properties = delivery
        .properties
        .clone()
        .with_headers(headers)
        .with_delivery_mode(2);
    let confirm = channel
        .basic_publish(
            "".into(),
            cfg.dead_letter.as_str().into(),
            BasicPublishOptions::default(),
            &delivery.data,
            properties,
        )
        .await
        .map_err(broker("basic.publish"))?
        .await
        .map_err(broker("basic.publish"))?;
    if !confirm.is_ack() {
        return Err(AmqpError::NotConfirmed(delivery.routing_key.to_string()));
    }
    Ok(())
}

/// Declares `exchange` as a durable topic exchange, unless it is the
/// broker's own `amq.topic` (the intake consumes from it, the publisher
/// sends to it).
pub(crate) async fn declare_exchange(
    channel: &lapin::Channel,
    exchange: &str,
) -> Result<(), lapin::Error> {
    if exchange == "amq.topic" {
        return Ok(());
    }
    channel
        .exchange_declare(
            exchange.into(),
            ExchangeKind::Topic,
            ExchangeDeclareOptions {
                durable: true,
                ..Default::default()
            },
            FieldTable::default(),
        )
        .await
}

/// Connects, opens a channel, declares and binds the queue (and the
/// dead-letter queue) and starts consuming.
async fn set_up(
    cfg: &AmqpConfig,
) -> Result<(Connection, lapin::Channel, lapin::Consumer), AmqpError> {
    let conn = Connection::connect(&cfg.url, ConnectionProperties::default())
        .await
        .map_err(broker("connect"))?;
    let channel = conn.create_channel().await.map_err(broker("channel"))?;
    channel
        .basic_qos(cfg.prefetch, BasicQosOptions::default())
        .await
        .map_err(broker("basic.qos"))?;
    declare_exchange(&channel, &cfg.exchange)
        .await
        .map_err(broker("exchange.declare"))?;
    channel
        .queue_declare(
            cfg.queue.as_str().into(),
            QueueDeclareOptions::durable(),
            FieldTable::default(),
        )
        .await
        .map_err(broker("queue.declare"))?;
    channel
        .queue_declare(
            cfg.dead_letter.as_str().into(),
            QueueDeclareOptions::durable(),
            FieldTable::default(),
        )
        .await
        .map_err(broker("queue.declare"))?;
    channel
        .confirm_select(ConfirmSelectOptions::default())
        .await
        .map_err(broker("confirm.select"))?;
    for key in &cfg.bindings {
        channel
            .queue_bind(
                cfg.queue.as_str().into(),
                cfg.exchange.as_str().into(),
                key.as_str().into(),
                QueueBindOptions::default(),
                FieldTable::default(),
            )
            .await
            .map_err(broker("queue.bind"))?;
    }
    let consumer = channel
        .basic_consume(
            cfg.queue.as_str().into(),
            format!("ferrotron-{}", std::process::id()).as_str().into(),
            BasicConsumeOptions::default(),
            FieldTable::default(),
        )
        .await
        .map_err(broker("basic.consume"))?;
    Ok((conn, channel, consumer))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_delivery_gives_topic_id_headers_and_json_body() {
        let mut h = FieldTable::default();
        h.insert(
            "fedora_messaging_schema".into(),
            lapin::types::AMQPValue::LongString("base.message".into()),
        );
        let e =
            message_of("org.x.build", Some("abc"), Some(&h), br#"{"name": "foo"}"#).expect("ok");
        assert_eq!(e.topic, "org.x.build");
        assert_eq!(e.id.as_deref(), Some("abc"));
        assert_eq!(e.body["name"], "foo");
        assert_eq!(
            e.headers["fedora_messaging_schema"],
            serde_json::json!("base.message"),
            "{:?}",
            e.headers
        );
    }

    #[test]
    fn a_message_without_an_id_is_known_by_its_topic_and_body() {
        let a = message_of("org.x.build", None, None, br#"{"b": 1, "a": [2]}"#).expect("ok");
        let again = message_of("org.x.build", Some(" "), None, br#"{"a":[2],"b":1}"#).expect("ok");
        let other = message_of("org.x.tag", None, None, br#"{"b": 1, "a": [2]}"#).expect("ok");
        let id = a.id.clone().expect("an id");
        assert!(id.starts_with("sha256:") && id.len() == 71, "{id}");
        assert_eq!(again.id, a.id, "same content, same id");
        assert_ne!(other.id, a.id, "the topic counts");
    }

    /// Ferrotron's own messages (its publisher's header) are skipped.
    #[test]
    fn own_messages_are_recognised_by_their_header() {
        let mut h = FieldTable::default();
        assert!(!published_here(Some(&h)) && !published_here(None));
        h.insert(
            crate::publish::OWN_HEADER.into(),
            lapin::types::AMQPValue::Boolean(true),
        );
        assert!(published_here(Some(&h)));
    }

    #[test]
    fn a_body_that_is_not_json_is_rejected_not_retried() {
        let e = message_of("t", None, None, b"not json").expect_err("bad");
        assert!(
            matches!(e, HandleError::Rejected(ref m) if m.contains("not JSON")),
            "{e}"
        );
    }
}
