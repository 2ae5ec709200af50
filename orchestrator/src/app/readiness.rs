//! Telling the service manager how `serve` is doing, with systemd's
//! readiness protocol (`sd_notify`: one datagram to `$NOTIFY_SOCKET`),
//! so that a unit with `Type=notify` is started only when the API answers
//! and units ordered after it wait for that. Written here (a few lines of
//! a documented protocol) rather than with a crate; nothing is sent when
//! `NOTIFY_SOCKET` is unset.

use std::os::unix::net::UnixDatagram;

/// `READY=1`: the API answers, the store is open.
pub fn ready(status: &str) {
    send(&format!("READY=1\nSTATUS={status}"));
}

/// A line of status while starting (`systemctl status` shows it).
pub fn status(status: &str) {
    send(&format!("STATUS={status}"));
}

/// `STOPPING=1`: shutting down (jobs are being requeued).
pub fn stopping() {
    send("STOPPING=1\nSTATUS=stopping: requeueing running jobs");
}

fn send(text: &str) {
    let Some(path) = std::env::var_os("NOTIFY_SOCKET") else {
        return;
    };
    let Ok(sock) = UnixDatagram::unbound() else {
        return;
    };
    let bytes = path.as_encoded_bytes();
    let sent = if let Some(name) = bytes.strip_prefix(b"@") {
        // An abstract socket (systemd's default for services).
        use std::os::linux::net::SocketAddrExt;
        std::os::unix::net::SocketAddr::from_abstract_name(name)
            .and_then(|a| sock.send_to_addr(text.as_bytes(), &a))
    } else {
        sock.send_to(text.as_bytes(), &path)
    };
    if let Err(e) = sent {
        tracing::warn!(
            "cannot notify the service manager at {}: {e}",
            path.to_string_lossy()
        );
    }
}
