//! The API's TCP listener, bounded: at most `max_connections` connections
//! are open at once (more wait in the kernel's backlog until one closes),
//! a connection on which nothing moves either way for `idle_timeout` is
//! closed, and so is one whose request headers are not complete
//! `header_timeout` after their first byte (a client trickling one header
//! byte at a time is never idle). Without these, idle or trickling sockets
//! alone could use up the process's file descriptors and lock every client
//! out.

use std::future::Future;
use std::io;
use std::net::SocketAddr;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::Duration;

use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::{OwnedSemaphorePermit, Semaphore};
use tokio::time::{Instant, Sleep};

/// How many connections, and how long one may stay silent.
#[derive(Debug, Clone, Copy)]
pub struct Limits {
    pub max_connections: usize,
    pub idle_timeout: Duration,
    pub header_timeout: Duration,
}

impl Default for Limits {
    fn default() -> Limits {
        Limits {
            max_connections: 1024,
            idle_timeout: Duration::from_secs(120),
            header_timeout: Duration::from_secs(30),
        }
    }
}

/// Descriptors the process needs beyond its connections (database, logs,
/// git, artifacts being written).
const SPARE_DESCRIPTORS: u64 = 256;

/// Raises the process's soft limit of open files to what `limits` needs
/// (up to the hard limit); says so when even that is too small, so that
/// `--max-connections` is never a promise the kernel breaks with EMFILE.
pub fn raise_descriptor_limit(limits: &Limits) {
    use nix::sys::resource::{getrlimit, setrlimit, Resource};
    let need = limits.max_connections as u64 + SPARE_DESCRIPTORS;
    let Ok((soft, hard)) = getrlimit(Resource::RLIMIT_NOFILE) else {
        return;
    };
    if soft >= need {
        return;
    }
    let want = need.min(hard);
    if setrlimit(Resource::RLIMIT_NOFILE, want, hard).is_err() || want < need {
        tracing::warn!(
            "open-file limit {} is below --max-connections {} plus {SPARE_DESCRIPTORS}: \
             connections past it fail with EMFILE (raise LimitNOFILE or lower --max-connections)",
            want.max(soft),
            limits.max_connections
        );
    }
}

pub struct Bounded {
    inner: TcpListener,
    permits: Arc<Semaphore>,
    idle: Duration,
    header: Duration,
}

impl Bounded {
    pub fn new(inner: TcpListener, limits: Limits) -> Bounded {
        Bounded {
            inner,
            permits: Arc::new(Semaphore::new(limits.max_connections.max(1))),
            idle: limits.idle_timeout,
            header: limits.header_timeout,
        }
    }
}

impl axum::serve::Listener for Bounded {
    type Io = Connection;
    type Addr = SocketAddr;

    async fn accept(&mut self) -> (Connection, SocketAddr) {
        let permit = match self.permits.clone().acquire_owned().await {
            Ok(p) => p,
            // The semaphore is never closed.
            Err(_) => std::future::pending().await,
        };
        loop {
            match self.inner.accept().await {
                Ok((stream, addr)) => {
                    return (
                        Connection {
                            stream,
                            _permit: permit,
                            idle: self.idle,
                            deadline: Box::pin(tokio::time::sleep(self.idle)),
                            headers: Headers {
                                timeout: self.header,
                                deadline: None,
                                tail: [0; 3],
                                done: false,
                            },
                        },
                        addr,
                    )
                }
                // EMFILE and the like: wait a little rather than spin.
                Err(e) => {
                    tracing::warn!("accept: {e}");
                    tokio::time::sleep(Duration::from_millis(100)).await;
                }
            }
        }
    }

    fn local_addr(&self) -> io::Result<SocketAddr> {
        self.inner.local_addr()
    }
}

/// One accepted connection: holds its permit, and fails with `TimedOut`
/// once nothing was read or written for the idle time-out, or when a
/// request's headers take longer than the header time-out.
pub struct Connection {
    stream: TcpStream,
    _permit: OwnedSemaphorePermit,
    idle: Duration,
    deadline: Pin<Box<Sleep>>,
    headers: Headers,
}

/// The header time-out of a connection: armed by the first byte of a
/// request, disarmed by the blank line that ends its headers; after an
/// answer the next byte starts the next request.
struct Headers {
    timeout: Duration,
    deadline: Option<Pin<Box<Sleep>>>,
    /// The last bytes read, to find a `\r\n\r\n` split across reads.
    tail: [u8; 3],
    /// This request's headers are complete.
    done: bool,
}

impl Headers {
    fn read(&mut self, data: &[u8]) {
        if data.is_empty() || self.done {
            return;
        }
        if self.deadline.is_none() {
            self.deadline = Some(Box::pin(tokio::time::sleep(self.timeout)));
        }
        let mut window = self.tail.to_vec();
        window.extend_from_slice(data);
        if window.windows(4).any(|w| w == b"\r\n\r\n") {
            // The rest is the body (or a pipelined request, which the next
            // answer re-arms the deadline for).
            self.done = true;
            self.deadline = None;
        }
        let keep = window.len().min(3);
        self.tail = [0; 3];
        self.tail[3 - keep..].copy_from_slice(&window[window.len() - keep..]);
    }

    fn answered(&mut self) {
        self.deadline = None;
        self.done = false;
        self.tail = [0; 3];
    }

    fn expired(&mut self, cx: &mut Context<'_>) -> bool {
        self.deadline
            .as_mut()
            .is_some_and(|d| d.as_mut().poll(cx).is_ready())
    }
}

impl Connection {
    fn moved(&mut self) {
        let idle = self.idle;
        self.deadline.as_mut().reset(Instant::now() + idle);
    }

    fn expired(&mut self, cx: &mut Context<'_>) -> bool {
        self.deadline.as_mut().poll(cx).is_ready()
    }
}

fn timed_out() -> io::Error {
    io::Error::new(io::ErrorKind::TimedOut, "connection idle for too long")
}

fn headers_too_slow() -> io::Error {
    io::Error::new(io::ErrorKind::TimedOut, "request headers took too long")
}

impl AsyncRead for Connection {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        let before = buf.filled().len();
        match Pin::new(&mut self.stream).poll_read(cx, buf) {
            Poll::Ready(r) => {
                if buf.filled().len() > before {
                    self.moved();
                    let this = &mut *self;
                    this.headers.read(&buf.filled()[before..]);
                }
                Poll::Ready(r)
            }
            Poll::Pending if self.headers.expired(cx) => Poll::Ready(Err(headers_too_slow())),
            Poll::Pending if self.expired(cx) => Poll::Ready(Err(timed_out())),
            Poll::Pending => Poll::Pending,
        }
    }
}

impl AsyncWrite for Connection {
    fn poll_write(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        data: &[u8],
    ) -> Poll<io::Result<usize>> {
        match Pin::new(&mut self.stream).poll_write(cx, data) {
            Poll::Ready(Ok(n)) => {
                self.moved();
                self.headers.answered();
                Poll::Ready(Ok(n))
            }
            Poll::Pending if self.expired(cx) => Poll::Ready(Err(timed_out())),
            other => other,
        }
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.stream).poll_flush(cx)
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.stream).poll_shutdown(cx)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn the_header_deadline_runs_from_a_requests_first_byte_to_its_blank_line() {
        let mut h = Headers {
            timeout: Duration::from_secs(30),
            deadline: None,
            tail: [0; 3],
            done: false,
        };
        h.read(b"GET / HTTP/1.1\r\nHost: x\r");
        assert!(h.deadline.is_some(), "armed by the first byte");
        h.read(b"\n\r");
        assert!(h.deadline.is_some(), "not over yet");
        h.read(b"\n");
        assert!(
            h.deadline.is_none(),
            "a terminator split across reads ends it"
        );
        h.read(b"slow body, however long the handler takes");
        assert!(h.deadline.is_none(), "a body is the idle time-out's");
        h.answered();
        h.read(b"G");
        assert!(h.deadline.is_some(), "the next request arms it again");
    }
}
