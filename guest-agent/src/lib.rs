//! Ferrotron guest agent: runs one job (a task's actions against one item)
//! and reports progress as JSON lines. The orchestrator uses this library
//! for the protocol types and for [`tap::tap13`].
//!
//! - [`protocol`]: job file, events, results (the wire format).
//! - [`runner`]: runs the actions (environment, exports, results).
//! - `process`: one program in its own process group, with a deadline.
//! - [`python`]: the `python` action (an embedded runner script).
//! - [`artifact`]: the `artifact` action (files of the work folder).
//! - [`install`]: the job's packages, installed before the first action.
//! - [`template`]: `${var}` rendering, shared with the orchestrator.
//! - [`output`]: pipe readers, line splitting, output tail.
//! - [`tap`]: TAP version 13 output.

pub mod artifact;
pub mod install;
pub mod libtaskotron;
pub mod output;
pub(crate) mod process;
pub mod protocol;
pub mod python;
pub mod runner;
pub mod tap;
pub mod template;

pub use protocol::{Event, JobSpec, Outcome, TaskResult};
pub use tap::tap13;
