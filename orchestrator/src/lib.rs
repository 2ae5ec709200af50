//! Ferrotron: runs tasks in disposable libvirt VMs.
//!
//! The modules follow a job's path: a [`formula`] is validated, an image is
//! found in the store ([`images`]), the [`runner`] boots a VM ([`vm`]),
//! talks to the guest agent over [`ssh`], collects the results and destroys
//! the VM. [`app`] is the one layer the CLI, the HTTP API and the message
//! intake call. [`rules`] turns bus messages into job requests.

pub mod api;
pub mod app;
pub mod backup;
pub mod beneath;
pub mod cache;
pub mod cancel;
pub mod downloads;
pub mod exit;
pub mod formula;
pub mod images;
pub mod intake;
pub mod job;
pub mod metrics;
pub mod packages;
pub mod placement;
pub mod progress;
pub mod publish;
pub mod ratelimit;
pub mod report_client;
pub mod results;
pub mod rules;
pub mod runner;
pub mod scheduler;
pub mod search;
pub mod settings;
pub mod ssh;
pub mod store;
pub mod util;
pub mod vm;
pub mod web;
pub mod yaml;
