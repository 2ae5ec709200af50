//! Network time-outs for libgit2 (used by every mirror, sync and follow):
//! how long connecting to an origin may take, and how long one read or
//! write may wait. Without them an origin that accepts and never answers, or
//! whose packets are dropped, holds a sync (and the queued job whose prelude
//! runs it) for the kernel's TCP time-outs: minutes. With them the sync
//! fails naming the origin, and a job whose repository is already mirrored
//! runs from the mirror.
//!
//! libgit2 keeps these in process-global state that it reads without
//! locking, so they are set once, at start-up, before any thread exists
//! (`main`), never later.
#![allow(unsafe_code)]

use std::time::Duration;

/// Connecting to an origin.
pub const CONNECT_TIMEOUT: Duration = Duration::from_secs(10);
/// Default for one read or write on an origin's connection.
pub const DEFAULT_IO_TIMEOUT: Duration = Duration::from_secs(60);

fn millis(d: Duration) -> std::ffi::c_int {
    std::ffi::c_int::try_from(d.as_millis()).unwrap_or(std::ffi::c_int::MAX)
}

/// Sets libgit2's connect time-out ([`CONNECT_TIMEOUT`], or `io` when
/// shorter) and its read/write time-out (`io`).
///
/// # Safety
/// Must be called before the process starts any thread: libgit2 writes
/// these globals without synchronization (git2's own contract).
pub unsafe fn set_network_timeouts(io: Duration) {
    let connect = CONNECT_TIMEOUT.min(io);
    // SAFETY: the caller guarantees no other thread exists yet, so nothing
    // reads libgit2's globals while they are written. Neither call can
    // fail (git2 documents the Result as always Ok for these options).
    unsafe {
        let _ = git2::opts::set_server_connect_timeout_in_milliseconds(millis(connect));
        let _ = git2::opts::set_server_timeout_in_milliseconds(millis(io));
    }
}
