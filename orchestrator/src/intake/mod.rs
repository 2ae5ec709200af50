//! Message intake: where messages enter the service. Every intake (AMQP,
//! HTTP, the CLI) produces the same [`Message`](crate::rules::Message) and hands it to one handler
//! of the command layer, which turns it into stored jobs.

pub mod amqp;
pub mod enqueue;
pub mod jobs_csv;

pub use crate::rules::Message;

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
