//! SSH to the guest (the `ssh2` crate): per-job keys, waiting for the
//! server with a deadline, and the channels that carry the task in and the
//! results out.

pub mod keys;
pub mod session;
pub mod wait;

pub use keys::KeyPair;
pub use session::{GuestSsh, SshError};
