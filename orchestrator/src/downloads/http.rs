//! The one HTTP client of a fetch, with the time-outs every service call
//! gets: a dead service fails a job in minutes, not never.

use std::io::Read;
use std::time::Duration;

pub const CONNECT_TIMEOUT: Duration = Duration::from_secs(30);
/// reqwest's blocking `timeout` bounds the wait for the answer's head and
/// each read of its body, not the whole body: a large RPM on a slow link is
/// fine, a stalled one is not.
pub const READ_TIMEOUT: Duration = Duration::from_secs(300);

pub fn client() -> Result<reqwest::blocking::Client, reqwest::Error> {
    reqwest::blocking::Client::builder()
        .connect_timeout(CONNECT_TIMEOUT)
        .timeout(READ_TIMEOUT)
        .user_agent(concat!("ferrotron/", env!("CARGO_PKG_VERSION")))
        .build()
}

/// The body, or `None` when it is longer than `limit`.
pub fn read_bounded(
    resp: reqwest::blocking::Response,
    limit: u64,
) -> std::io::Result<Option<Vec<u8>>> {
    let mut buf = Vec::new();
    resp.take(limit + 1).read_to_end(&mut buf)?;
    Ok((buf.len() as u64 <= limit).then_some(buf))
}

/// Worth retrying later: the service's trouble, not the request's.
pub fn status_is_infrastructure(status: u16) -> bool {
    status >= 500 || status == 408 || status == 429
}
