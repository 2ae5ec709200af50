//! Rules: from a bus message to the jobs it asks for.
//!
//! A [`Message`] (topic, headers, JSON body) goes through the per-topic
//! [`Mappings`] that extract named fields (`item`, `item_type`, `name`,
//! `version`, `release`, `distgit_branch`, ...); the [`Rules`] file (in the
//! taskotron-trigger style: `when` a [`Query`] over those fields, `do` a list
//! of tasks) turns them into [`JobRequest`]s for the queue. Everything here
//! is pure: no I/O apart from reading the files at load, so the service
//! can load a new rules file beside the old one and swap only on success.

pub mod extract;
pub mod jobs;
pub mod message;
pub mod query;
pub mod ruleset;
pub mod template;
pub mod topic;

pub use extract::{Extracted, Mappings};
pub use jobs::{Evaluation, JobRequest, Skipped};
pub use message::{Message, MessageError};
pub use query::Query;
pub use ruleset::Rules;
