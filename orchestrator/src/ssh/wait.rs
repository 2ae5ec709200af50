//! Waiting for the guest's SSH server: poll for the banner with a deadline,
//! and give up at once when the domain dies.

use std::net::{Ipv4Addr, SocketAddr, TcpStream};
use std::time::{Duration, Instant};

/// Why waiting ended without a banner.
#[derive(Debug, PartialEq, Eq)]
pub enum WaitFailure {
    /// The VM stopped (crashed, powered off, destroyed).
    Died,
    /// The guest printed its fatal console line (this one): it cannot work.
    Fatal(String),
    /// The deadline passed.
    Deadline,
    /// The job was cancelled (signal).
    Cancelled,
}

/// What the caller knows about the guest at one poll.
#[derive(Debug, PartialEq, Eq)]
pub enum Guest {
    /// Still booting: the banner is tried every 100 ms.
    Booting,
    /// Its console says the SSH server is up: the banner is tried at once
    /// (when this is first said), then every 100 ms.
    Ready,
    /// It will never answer: the wait ends with this.
    Failed(WaitFailure),
}

/// How long one attempt waits for the banner on a connection QEMU
/// accepted: dropbear answers at once.
pub const BANNER_PATIENCE: Duration = Duration::from_millis(300);
/// The same for OpenSSH in a cloud image: it re-executes itself for each
/// connection, which under TCG takes longer than a second before the
/// banner; with [`BANNER_PATIENCE`] every attempt gave up too early.
pub const SLOW_BANNER_PATIENCE: Duration = Duration::from_secs(3);

/// Polls 127.0.0.1:`port` until an `SSH-` banner arrives, each attempt
/// waiting up to `patience` for it. `guest` is asked every 10 ms and ends
/// the wait early with its failure.
pub fn wait_for_banner(
    port: u16,
    deadline: Instant,
    patience: Duration,
    mut guest: impl FnMut() -> Guest,
) -> Result<TcpStream, WaitFailure> {
    let started = Instant::now();
    let addr = SocketAddr::from((Ipv4Addr::LOCALHOST, port));
    let mut tick = 0u32;
    let mut was_ready = false;
    loop {
        let now_ready = match guest() {
            Guest::Failed(f) => return Err(f),
            Guest::Ready => true,
            Guest::Booting => false,
        };
        // The console's word is a hint, not proof: only the banner says the
        // server answers through the forward.
        if (now_ready && !was_ready) || tick.is_multiple_of(10) {
            if let Some(stream) = banner_answers(&addr, patience) {
                tracing::debug!("SSH banner after {:?}", started.elapsed());
                return Ok(stream);
            }
        }
        was_ready = now_ready;
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
fn banner_answers(addr: &SocketAddr, patience: Duration) -> Option<TcpStream> {
    let s = TcpStream::connect_timeout(addr, Duration::from_millis(200)).ok()?;
    let _ = s.set_read_timeout(Some(patience));
    let mut buf = [0u8; 4];
    let deadline = Instant::now() + patience;
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
    fn sees_a_banner_and_reports_failures_and_deadline() {
        let l = TcpListener::bind("127.0.0.1:0").expect("bind");
        let port = l.local_addr().expect("addr").port();
        let t = std::thread::spawn(move || {
            // First connection: closed without a banner (like QEMU before
            // the guest listens); second: a real banner.
            drop(l.accept());
            let (mut s, _) = l.accept().expect("accept");
            s.write_all(b"SSH-2.0-test\r\n").expect("write");
        });
        let far = Instant::now() + Duration::from_secs(600);
        assert!(wait_for_banner(port, far, BANNER_PATIENCE, || Guest::Booting).is_ok());
        t.join().expect("join");

        let closed = TcpListener::bind("127.0.0.1:0").expect("bind");
        let dead_port = closed.local_addr().expect("addr").port();
        drop(closed);
        assert_eq!(
            wait_for_banner(dead_port, far, BANNER_PATIENCE, || Guest::Failed(
                WaitFailure::Died
            ))
            .err(),
            Some(WaitFailure::Died)
        );
        // A fatal line ends the wait long before a far deadline.
        let mut polls = 0;
        let fatal = wait_for_banner(dead_port, far, BANNER_PATIENCE, || {
            polls += 1;
            if polls < 3 {
                Guest::Booting
            } else {
                Guest::Failed(WaitFailure::Fatal("ferrotron: fatal: no network".into()))
            }
        });
        assert_eq!(
            fatal.err(),
            Some(WaitFailure::Fatal("ferrotron: fatal: no network".into()))
        );
        assert_eq!(polls, 3);
        let soon = Instant::now() + Duration::from_millis(100);
        assert_eq!(
            wait_for_banner(dead_port, soon, BANNER_PATIENCE, || Guest::Booting).err(),
            Some(WaitFailure::Deadline)
        );
        // The console's "ready" alone is not proof.
        let soon = Instant::now() + Duration::from_millis(100);
        assert_eq!(
            wait_for_banner(dead_port, soon, BANNER_PATIENCE, || Guest::Ready).err(),
            Some(WaitFailure::Deadline)
        );
    }
}
