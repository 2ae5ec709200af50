//! Ephemeral loopback ports for the per-VM SSH forward.

use std::net::{Ipv4Addr, TcpListener};

/// A port on 127.0.0.1 that was free a moment ago. QEMU binds it later, so
/// another process may take it first: callers retry the start with a new
/// port when QEMU reports the forward could not be set up.
pub fn free_loopback_port() -> std::io::Result<u16> {
    let l = TcpListener::bind((Ipv4Addr::LOCALHOST, 0))?;
    Ok(l.local_addr()?.port())
}
