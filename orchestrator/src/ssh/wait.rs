//! Waiting for the guest's SSH server: poll for the banner with a deadline,
//! and give up at once when the domain dies.

use std::net::{Ipv4Addr, SocketAddr, TcpStream};
use std::time::{Duration, Instant};

/// Why waiting ended without a banner.
#[derive(Debug, PartialEq, Eq)]
pub enum WaitFailure {
    /// The VM stopped (crashed, powered off, destroyed).
    Died,
    /// The deadline passed.
    Deadline,
    /// The job was cancelled (signal).
    Cancelled,
}

/// Polls 127.0.0.1:`port` until an `SSH-` banner arrives. `check` is called
/// every 10 ms and ends the wait early with its failure; `ready_hint` is
/// asked every 10 ms too and, when it says the server should be up (the
/// guest printed so on its console), the banner is tried at once; without
/// the hint it is tried every 100 ms.
pub fn wait_for_banner(
    port: u16,
    deadline: Instant,
    mut check: impl FnMut() -> Option<WaitFailure>,
    mut ready_hint: impl FnMut() -> bool,
) -> Result<TcpStream, WaitFailure> {
    let started = Instant::now();
    let addr = SocketAddr::from((Ipv4Addr::LOCALHOST, port));
    let mut tick = 0u32;
    loop {
        if let Some(f) = check() {
            return Err(f);
        }
        // The console's word is a hint, not proof: a guest without network
        // says it is ready too, so the banner must still answer.
        if ready_hint() || tick.is_multiple_of(10) {
            if let Some(stream) = banner_answers(&addr) {
                tracing::debug!("SSH banner after {:?}", started.elapsed());
                return Ok(stream);
            }
        }
        if Instant::now() >= deadline {
            return Err(WaitFailure::Deadline);
        }
        tick += 1;
        std::thread::sleep(Duration::from_millis(10));
    }
}

/// One attempt. QEMU's user networking accepts the TCP connection even
/// before the guest listens, then closes it: only the banner proves the
/// server is up. The banner is peeked, not read, so the connection can be
/// handed to the SSH handshake as it is (one connection, one server fork).
fn banner_answers(addr: &SocketAddr) -> Option<TcpStream> {
    let s = TcpStream::connect_timeout(addr, Duration::from_millis(200)).ok()?;
    let _ = s.set_read_timeout(Some(Duration::from_millis(300)));
    let mut buf = [0u8; 4];
    let deadline = Instant::now() + Duration::from_millis(300);
    while Instant::now() < deadline {
        match s.peek(&mut buf) {
            Ok(0) | Err(_) => return None,
            Ok(4) => break,
            Ok(_) => std::thread::sleep(Duration::from_millis(2)),
        }
    }
    let _ = s.set_read_timeout(None);
    (&buf == b"SSH-").then_some(s)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::Write;
    use std::net::TcpListener;

    #[test]
    fn sees_a_banner_and_reports_death_and_deadline() {
        let l = TcpListener::bind("127.0.0.1:0").expect("bind");
        let port = l.local_addr().expect("addr").port();
        let t = std::thread::spawn(move || {
            // First connection: closed without a banner (like QEMU before
            // the guest listens); second: a real banner.
            drop(l.accept());
            let (mut s, _) = l.accept().expect("accept");
            s.write_all(b"SSH-2.0-test\r\n").expect("write");
        });
        let far = Instant::now() + Duration::from_secs(10);
        assert!(wait_for_banner(port, far, || None, || false).is_ok());
        t.join().expect("join");

        let closed = TcpListener::bind("127.0.0.1:0").expect("bind");
        let dead_port = closed.local_addr().expect("addr").port();
        drop(closed);
        assert!(matches!(
            wait_for_banner(dead_port, far, || Some(WaitFailure::Died), || false),
            Err(WaitFailure::Died)
        ));
        let soon = Instant::now() + Duration::from_millis(100);
        assert!(matches!(
            wait_for_banner(dead_port, soon, || None, || false),
            Err(WaitFailure::Deadline)
        ));
        // The console's "ready" alone is not proof (a guest without network
        // prints it too).
        let soon = Instant::now() + Duration::from_millis(100);
        assert!(matches!(
            wait_for_banner(dead_port, soon, || None, || true),
            Err(WaitFailure::Deadline)
        ));
    }
}
