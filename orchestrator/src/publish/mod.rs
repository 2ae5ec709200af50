//! Outgoing messages: the publisher sends the outbox ([`crate::store`]'s
//! `outbox` table) to RabbitMQ as Fedora Messaging publishes, so that
//! `fedora-messaging` consumers (Bodhi, Greenwave) read them unchanged:
//! AMQP `message_id` (fixed when the message was written, so a resend is
//! recognised), a JSON body (`content_type` `application/json`, `utf-8`),
//! persistent delivery, headers `fedora_messaging_schema` (`base.message`,
//! the schema ResultsDB's messages have), `fedora_messaging_severity` (20,
//! INFO), `sent-at` and `priority`, and the topic under the configured
//! prefix as the routing key on the configured topic exchange.
//!
//! Each batch is published with publisher confirms and deleted from the
//! outbox only once the broker confirmed it; what is not confirmed is
//! given back and sent again, after a reconnection with exponential
//! backoff while the broker is away. So every message goes out at least
//! once and in the order it was written, whatever the broker does.

pub mod render;

use std::time::Duration;

use lapin::options::{BasicPublishOptions, ConfirmSelectOptions};
use lapin::types::{AMQPValue, FieldTable};
use lapin::{BasicProperties, Connection, ConnectionProperties};
use tokio::sync::watch;

use crate::store::{OutboxRow, Store, StoreError};
use crate::util::redact_url as redact;

/// The schema name `fedora-messaging` gives its base `Message` class.
pub const SCHEMA: &str = "base.message";
/// A header on every message Ferrotron publishes: its intake skips
/// messages that carry it, so that bindings covering the publishing prefix
/// never make a loop.
pub const OWN_HEADER: &str = "x-ferrotron-published";
/// `fedora_messaging.message.INFO`.
pub const SEVERITY_INFO: i64 = 20;

#[derive(Debug, Clone)]
pub struct PublishConfig {
    /// The broker (the intake's `--amqp-url`).
    pub url: String,
    /// The topic exchange (the intake's `--amqp-exchange`).
    pub exchange: String,
    /// Put before each topic with a dot (`org.fedoraproject.prod`); empty:
    /// topics as they are.
    pub topic_prefix: String,
    /// The server's public URL: links in the bodies (`serve` puts its
    /// listening address when it is empty).
    pub base_url: String,
    /// Messages per batch.
    pub batch: i64,
    /// How long a batch stays claimed by this publisher (another one sends
    /// it after that, should this one have died).
    pub claim: Duration,
    /// Longest pause between two reconnection attempts.
    pub max_backoff: Duration,
    /// Longest the connection's set-up may take.
    pub setup_timeout: Duration,
    /// How often the outbox is looked at without a wake-up (messages
    /// written by other processes).
    pub poll: Duration,
}

impl PublishConfig {
    pub fn new(url: &str, exchange: &str, base_url: &str) -> PublishConfig {
        PublishConfig {
            url: url.to_string(),
            exchange: exchange.to_string(),
            topic_prefix: String::new(),
            base_url: base_url.trim_end_matches('/').to_string(),
            batch: 100,
            claim: Duration::from_secs(60),
            max_backoff: Duration::from_secs(30),
            setup_timeout: Duration::from_secs(30),
            poll: Duration::from_secs(1),
        }
    }

    /// The routing key of a topic.
    pub fn routing_key(&self, topic: &str) -> String {
        if self.topic_prefix.is_empty() {
            topic.to_string()
        } else {
            format!("{}.{topic}", self.topic_prefix.trim_end_matches('.'))
        }
    }
}

#[derive(Debug, thiserror::Error)]
pub enum PublishError {
    #[error("AMQP {step} failed")]
    Broker {
        step: &'static str,
        #[source]
        source: lapin::Error,
    },
    #[error("the AMQP connection's set-up took longer than {0:?}")]
    SetupTimeout(Duration),
    #[error("the outbox could not be read or updated")]
    Store(#[from] StoreError),
}

fn broker(step: &'static str) -> impl FnOnce(lapin::Error) -> PublishError {
    move |source| PublishError::Broker { step, source }
}

/// Publishes the outbox until `shutdown`; reconnects with backoff.
/// `on_state` gets one line per connection change (the service logs them).
pub async fn run(
    store: Store,
    cfg: PublishConfig,
    mut shutdown: watch::Receiver<bool>,
    on_state: impl Fn(&str),
) {
    let mut backoff = Duration::from_millis(500);
    while !*shutdown.borrow() {
        match connected(&store, &cfg, &mut shutdown, &on_state, &mut backoff).await {
            Ok(()) => return,
            Err(e) => {
                let waiting = store.outbox_pending().await.unwrap_or(-1);
                on_state(&format!(
                    "publish: {} ({}); {waiting} message(s) waiting; reconnecting in {:.1} s",
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

/// One connection's life. Ok on shutdown.
async fn connected(
    store: &Store,
    cfg: &PublishConfig,
    shutdown: &mut watch::Receiver<bool>,
    on_state: &impl Fn(&str),
    backoff: &mut Duration,
) -> Result<(), PublishError> {
    let setup = tokio::select! {
        r = tokio::time::timeout(cfg.setup_timeout, set_up(cfg)) => r,
        _ = shutdown.changed() => return Ok(()),
    };
    let (conn, channel) = setup.map_err(|_| PublishError::SetupTimeout(cfg.setup_timeout))??;
    on_state(&format!(
        "publish: connected to {} (exchange {})",
        redact(&cfg.url),
        cfg.exchange
    ));
    let result = loop {
        match send_batch(store, cfg, &channel).await {
            Ok(0) => {}
            Ok(_) => {
                *backoff = Duration::from_millis(500);
                continue;
            }
            Err(e) => break Err(e),
        }
        tokio::select! {
            _ = store.outbox_written() => {}
            _ = tokio::time::sleep(cfg.poll) => {}
            _ = shutdown.changed() => break Ok(()),
        }
    };
    let _ = tokio::time::timeout(
        Duration::from_secs(5),
        conn.close(200, "shutting down".into()),
    )
    .await;
    result
}

async fn set_up(cfg: &PublishConfig) -> Result<(Connection, lapin::Channel), PublishError> {
    let conn = Connection::connect(&cfg.url, ConnectionProperties::default())
        .await
        .map_err(broker("connect"))?;
    let channel = conn.create_channel().await.map_err(broker("channel"))?;
    crate::intake::amqp::declare_exchange(&channel, &cfg.exchange)
        .await
        .map_err(broker("exchange.declare"))?;
    channel
        .confirm_select(ConfirmSelectOptions::default())
        .await
        .map_err(broker("confirm.select"))?;
    Ok((conn, channel))
}

/// Claims, renders and publishes one batch; the number of messages it
/// took. Confirmed messages leave the outbox; the rest are given back.
async fn send_batch(
    store: &Store,
    cfg: &PublishConfig,
    channel: &lapin::Channel,
) -> Result<usize, PublishError> {
    let now = crate::store::now_micros();
    let claim = i64::try_from(cfg.claim.as_micros()).unwrap_or(i64::MAX);
    let rows = store
        .outbox_claim(cfg.batch, now, now.saturating_add(claim))
        .await?;
    if rows.is_empty() {
        return Ok(0);
    }
    let mut confirmed = Vec::new();
    let mut failed = Vec::new();
    let mut pending = Vec::new();
    let mut error = None;
    for row in &rows {
        if error.is_some() {
            failed.push(row.id);
            continue;
        }
        let body = match rendered(store, cfg, row).await {
            Ok(Some(b)) => b,
            Ok(None) => {
                // Nothing can ever be sent for it: dropped, and said so.
                confirmed.push(row.id);
                continue;
            }
            Err(e) => {
                failed.push(row.id);
                error = Some(e);
                continue;
            }
        };
        let payload = body.to_string().into_bytes();
        let sent = channel
            .basic_publish(
                cfg.exchange.as_str().into(),
                cfg.routing_key(&row.topic).as_str().into(),
                BasicPublishOptions::default(),
                &payload,
                properties(row),
            )
            .await;
        match sent {
            Ok(confirm) => pending.push((row.id, confirm)),
            Err(e) => {
                failed.push(row.id);
                error = Some(broker("basic.publish")(e));
            }
        }
    }
    let metrics = crate::metrics::global();
    for (id, confirm) in pending {
        match confirm.await {
            Ok(c) if c.is_ack() => {
                metrics.messages_published.inc();
                confirmed.push(id);
            }
            Ok(_) => failed.push(id),
            Err(e) => {
                failed.push(id);
                error.get_or_insert(broker("publisher confirm")(e));
            }
        }
    }
    store.outbox_done(&confirmed, &failed).await?;
    match error {
        Some(e) => Err(e),
        None => Ok(rows.len()),
    }
}

/// The body of `row`; none when it can never be sent (its result is gone:
/// logged).
async fn rendered(
    store: &Store,
    cfg: &PublishConfig,
    row: &OutboxRow,
) -> Result<Option<serde_json::Value>, PublishError> {
    let result = match row.result_id {
        Some(id) => store.get_result(id).await?,
        None => None,
    };
    match render::body(row, result, &cfg.base_url) {
        Ok(b) => Ok(Some(b)),
        Err(e) => {
            tracing::error!("publish: {e}; the message is dropped");
            Ok(None)
        }
    }
}

/// The AMQP properties `fedora-messaging` gives a message.
fn properties(row: &OutboxRow) -> BasicProperties {
    let mut headers = FieldTable::default();
    headers.insert(
        "fedora_messaging_schema".into(),
        AMQPValue::LongString(SCHEMA.into()),
    );
    headers.insert(
        "fedora_messaging_severity".into(),
        AMQPValue::LongLongInt(SEVERITY_INFO),
    );
    headers.insert(
        "sent-at".into(),
        AMQPValue::LongString(sent_at(row.created_at).as_str().into()),
    );
    headers.insert("priority".into(), AMQPValue::LongLongInt(0));
    headers.insert(OWN_HEADER.into(), AMQPValue::Boolean(true));
    BasicProperties::default()
        .with_content_type("application/json".into())
        .with_content_encoding("utf-8".into())
        .with_delivery_mode(2)
        .with_message_id(row.message_id.as_str().into())
        .with_headers(headers)
}

/// `sent-at` as `fedora-messaging` writes it: ISO 8601 to the second, with
/// the UTC offset (`2024-01-01T10:00:00+00:00`).
fn sent_at(us: i64) -> String {
    let t = crate::store::format_time(us);
    let seconds = t.split_once('.').map_or(t.as_str(), |(s, _)| s);
    format!("{seconds}+00:00")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn routing_keys_and_sent_at() {
        let mut c = PublishConfig::new("amqp://x", "amq.topic", "http://h/");
        assert_eq!(c.base_url, "http://h");
        assert_eq!(
            c.routing_key("resultsdb.result.new"),
            "resultsdb.result.new"
        );
        c.topic_prefix = "org.fedoraproject.prod.".into();
        assert_eq!(
            c.routing_key("ferrotron.job.passed"),
            "org.fedoraproject.prod.ferrotron.job.passed"
        );
        assert_eq!(sent_at(1_700_000_000_999_999), "2023-11-14T22:13:20+00:00");
    }
}
