//! Message intake: where messages enter the service. Every intake (AMQP,
//! HTTP, the CLI) produces the same [`Envelope`] and hands it to one handler
//! of the command layer, which turns it into stored jobs.

pub mod amqp;

use serde::{Deserialize, Serialize};

/// A Fedora-Messaging-style message: topic, headers and a JSON body, with
/// the broker's message id when there is one (used to drop duplicates).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Envelope {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub id: Option<String>,
    pub topic: String,
    #[serde(default)]
    pub headers: serde_json::Map<String, serde_json::Value>,
    pub body: serde_json::Value,
}

/// What a handler says about a message it was given.
#[derive(Debug, thiserror::Error)]
pub enum HandleError {
    /// The message can never be handled (not JSON, no topic...): drop it,
    /// with this reason in the log. Redelivering would loop forever.
    #[error("message rejected: {0}")]
    Rejected(String),
    /// Handling failed for a reason that may pass (the database is down):
    /// the message must come again later.
    #[error("message not stored yet: {0}")]
    Retry(String),
}
