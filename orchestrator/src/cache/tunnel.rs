//! Serving the cache to a guest that has no route to the host. The guest's
//! network is QEMU user networking with `restrict=on`: it reaches nothing,
//! which is the isolation a task VM should have. To give it the cache and
//! nothing else, the orchestrator:
//!
//! 1. runs the cache's read-only HTTP server for the job on an ephemeral
//!    host loopback port ([`JobServer`]);
//! 2. opens a second SSH session to the guest (the job's key, over the same
//!    forwarded port) and asks the guest's dropbear for a remote forward of
//!    the guest's `127.0.0.1:GUEST_PORT` ([`Tunnel`]);
//! 3. pipes every connection the guest opens there to that server, and only
//!    there.
//!
//! A second session keeps the tunnel's non-blocking pump apart from the
//! job's own session, which streams the agent's events in blocking mode.

use std::io::{ErrorKind, Read, Write};
use std::net::{Shutdown, SocketAddr, TcpStream};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::thread::JoinHandle;
use std::time::Duration;

use ssh2::{Channel, ErrorCode, Listener, Session};

use super::Cache;
use crate::ssh::keys::KeyPair;

/// The port the cache appears on inside the guest: `http://127.0.0.1:8471`.
pub const GUEST_PORT: u16 = 8471;

/// libssh2's "would block".
const EAGAIN: i32 = -37;

#[derive(Debug, thiserror::Error)]
pub enum TunnelError {
    #[error("cannot start the cache server for the job")]
    Server(#[source] std::io::Error),
    #[error("cannot connect to the guest's SSH server on 127.0.0.1:{port}")]
    Connect {
        port: u16,
        #[source]
        source: std::io::Error,
    },
    #[error("SSH to the guest failed while {what}")]
    Ssh {
        what: &'static str,
        #[source]
        source: ssh2::Error,
    },
}

/// The cache's HTTP server, for one job, on an ephemeral loopback port.
/// Stopped (gracefully, then joined) when dropped.
pub struct JobServer {
    pub addr: SocketAddr,
    shutdown: Option<tokio::sync::oneshot::Sender<()>>,
    thread: Option<JoinHandle<()>>,
}

impl JobServer {
    /// Serves `repo` of the cache, and nothing else of it.
    pub fn start(cache: Cache, repo: super::RepoPath) -> Result<JobServer, TunnelError> {
        let std_listener =
            std::net::TcpListener::bind("127.0.0.1:0").map_err(TunnelError::Server)?;
        let addr = std_listener.local_addr().map_err(TunnelError::Server)?;
        std_listener
            .set_nonblocking(true)
            .map_err(TunnelError::Server)?;
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .map_err(TunnelError::Server)?;
        let (tx, rx) = tokio::sync::oneshot::channel::<()>();
        let thread = std::thread::Builder::new()
            .name("cache-http".into())
            .spawn(move || {
                rt.block_on(async move {
                    let Ok(listener) = tokio::net::TcpListener::from_std(std_listener) else {
                        return;
                    };
                    let app = super::http::job_router(cache, repo);
                    let _ = axum::serve(listener, app)
                        .with_graceful_shutdown(async {
                            let _ = rx.await;
                        })
                        .await;
                });
            })
            .map_err(TunnelError::Server)?;
        Ok(JobServer {
            addr,
            shutdown: Some(tx),
            thread: Some(thread),
        })
    }
}

impl Drop for JobServer {
    fn drop(&mut self) {
        if let Some(tx) = self.shutdown.take() {
            let _ = tx.send(());
        }
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

/// A remote forward from the guest's `127.0.0.1:GUEST_PORT` to `target` on
/// this host. Closed (thread joined, session dropped) when dropped.
pub struct Tunnel {
    pub guest_port: u16,
    stop: Arc<AtomicBool>,
    thread: Option<JoinHandle<()>>,
}

impl Tunnel {
    /// Opens the forward over a new SSH session to the guest's forwarded
    /// SSH port `ssh_port`, authenticated with the job's key as `user`.
    pub fn open(
        ssh_port: u16,
        key: &KeyPair,
        user: &str,
        guest_port: u16,
        target: SocketAddr,
    ) -> Result<Tunnel, TunnelError> {
        let ssh = |what| move |source| TunnelError::Ssh { what, source };
        let tcp =
            TcpStream::connect(("127.0.0.1", ssh_port)).map_err(|source| TunnelError::Connect {
                port: ssh_port,
                source,
            })?;
        let _ = tcp.set_nodelay(true);
        let mut session = Session::new().map_err(ssh("starting"))?;
        session.set_tcp_stream(tcp);
        session.set_timeout(30_000);
        session.handshake().map_err(ssh("handshaking"))?;
        session
            .userauth_pubkey_file(user, Some(&key.public_path), &key.private_path, None)
            .map_err(ssh("authenticating"))?;
        let (listener, bound) = session
            .channel_forward_listen(guest_port, Some("127.0.0.1"), None)
            .map_err(ssh("asking for the remote forward"))?;
        session.set_blocking(false);
        let stop = Arc::new(AtomicBool::new(false));
        let s = stop.clone();
        let thread = std::thread::Builder::new()
            .name("cache-tunnel".into())
            .spawn(move || pump(session, listener, target, &s))
            .map_err(TunnelError::Server)?;
        Ok(Tunnel {
            guest_port: bound,
            stop,
            thread: Some(thread),
        })
    }
}

impl Drop for Tunnel {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::SeqCst);
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

/// One guest connection piped to the cache server.
struct Conn {
    ch: Channel,
    tcp: TcpStream,
    to_tcp: Vec<u8>,
    to_ch: Vec<u8>,
    ch_eof: bool,
    tcp_eof: bool,
    eof_sent: bool,
}

fn would_block(e: &std::io::Error) -> bool {
    matches!(e.kind(), ErrorKind::WouldBlock | ErrorKind::TimedOut)
}

impl Conn {
    /// Moves what can be moved without blocking; true if anything moved.
    /// Errors end the connection.
    fn pump(&mut self, buf: &mut [u8]) -> std::io::Result<bool> {
        let mut moved = false;
        if self.to_tcp.is_empty() && !self.ch_eof {
            match self.ch.read(buf) {
                Ok(0) if self.ch.eof() => {
                    self.ch_eof = true;
                    let _ = self.tcp.shutdown(Shutdown::Write);
                    moved = true;
                }
                Ok(0) => {}
                Ok(n) => {
                    self.to_tcp.extend_from_slice(&buf[..n]);
                    moved = true;
                }
                Err(e) if would_block(&e) => {}
                Err(e) => return Err(e),
            }
        }
        if !self.to_tcp.is_empty() {
            match self.tcp.write(&self.to_tcp) {
                Ok(n) => {
                    self.to_tcp.drain(..n);
                    moved = true;
                }
                Err(e) if would_block(&e) => {}
                Err(e) => return Err(e),
            }
        }
        if self.to_ch.is_empty() && !self.tcp_eof {
            match self.tcp.read(buf) {
                Ok(0) => {
                    self.tcp_eof = true;
                    moved = true;
                }
                Ok(n) => {
                    self.to_ch.extend_from_slice(&buf[..n]);
                    moved = true;
                }
                Err(e) if would_block(&e) => {}
                Err(e) => return Err(e),
            }
        }
        if !self.to_ch.is_empty() {
            match self.ch.write(&self.to_ch) {
                Ok(n) => {
                    self.to_ch.drain(..n);
                    moved = n > 0 || moved;
                }
                Err(e) if would_block(&e) => {}
                Err(e) => return Err(e),
            }
        }
        if self.tcp_eof && self.to_ch.is_empty() && !self.eof_sent {
            match self.ch.send_eof() {
                Ok(()) => {
                    self.eof_sent = true;
                    moved = true;
                }
                Err(e) if e.code() == ErrorCode::Session(EAGAIN) => {}
                Err(e) => return Err(e.into()),
            }
        }
        Ok(moved)
    }

    fn done(&self) -> bool {
        self.ch_eof && self.eof_sent && self.to_tcp.is_empty()
    }
}

/// Accepts forwarded connections and pipes them until told to stop.
fn pump(session: Session, mut listener: Listener, target: SocketAddr, stop: &AtomicBool) {
    let mut conns: Vec<Conn> = Vec::new();
    let mut buf = vec![0u8; 32 * 1024];
    // libssh2 has no readiness API we can wait on with the TCP side, so the
    // pump polls: at once while data flows, backing off to 20 ms when idle.
    let mut idle = Duration::from_millis(1);
    while !stop.load(Ordering::SeqCst) {
        let mut moved = false;
        match listener.accept() {
            Ok(ch) => match TcpStream::connect(target).and_then(|t| {
                t.set_nonblocking(true)?;
                Ok(t)
            }) {
                Ok(tcp) => {
                    moved = true;
                    conns.push(Conn {
                        ch,
                        tcp,
                        to_tcp: Vec::new(),
                        to_ch: Vec::new(),
                        ch_eof: false,
                        tcp_eof: false,
                        eof_sent: false,
                    });
                }
                Err(e) => tracing::warn!("cache tunnel: cannot reach the cache server: {e}"),
            },
            Err(e) if e.code() == ErrorCode::Session(EAGAIN) => {}
            Err(e) => {
                tracing::warn!("cache tunnel: accept failed, tunnel closed: {e}");
                break;
            }
        }
        conns.retain_mut(|c| match c.pump(&mut buf) {
            Ok(m) => {
                moved |= m;
                if c.done() {
                    let _ = c.ch.close();
                    false
                } else {
                    true
                }
            }
            Err(e) => {
                tracing::debug!("cache tunnel: connection ended: {e}");
                let _ = c.ch.close();
                false
            }
        });
        if moved {
            idle = Duration::from_millis(1);
        } else {
            std::thread::sleep(idle);
            idle = (idle * 2).min(Duration::from_millis(20));
        }
    }
    drop(conns);
    drop(listener);
    // Do not wait for a guest that may be gone: disconnect quickly.
    session.set_timeout(200);
    session.set_blocking(true);
    let _ = session.disconnect(None, "job done", None);
}
