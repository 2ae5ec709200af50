//! Whether libvirt answers, asked before jobs are claimed. A scheduler
//! started before libvirtd (a host's reboot) waits for it with a log line
//! at each try, instead of claiming jobs whose boots would fail; one whose
//! libvirt goes away stops claiming until it is back. Jobs already running
//! are not touched.

use std::time::{Duration, Instant};

/// An answer this recent is trusted without asking again.
const FRESH: Duration = Duration::from_secs(10);
const FIRST_RETRY: Duration = Duration::from_secs(1);
const MAX_RETRY: Duration = Duration::from_secs(10);

pub struct LibvirtGate {
    uri: String,
    last_ok: Option<Instant>,
    /// Down: when to ask again, and the wait after that.
    next_try: Option<Instant>,
    backoff: Duration,
}

impl LibvirtGate {
    pub fn new(uri: &str) -> LibvirtGate {
        LibvirtGate {
            uri: uri.to_string(),
            last_ok: None,
            next_try: None,
            backoff: FIRST_RETRY,
        }
    }

    /// True when libvirt answered lately or answers now. While it is down
    /// it is asked again only after a back-off (1 s doubling to 10 s);
    /// each failed try logs what is wrong and when the next one is.
    pub async fn up(&mut self) -> bool {
        let now = Instant::now();
        if self.last_ok.is_some_and(|t| now.duration_since(t) < FRESH) {
            return true;
        }
        if self.next_try.is_some_and(|t| now < t) {
            return false;
        }
        let uri = self.uri.clone();
        let probe = tokio::task::spawn_blocking(move || {
            crate::vm::hypervisor::Hypervisor::connect(&uri).map(drop)
        })
        .await;
        match probe {
            Ok(Ok(())) => {
                if self.next_try.take().is_some() {
                    tracing::info!("libvirt at {} answers: claiming jobs", self.uri);
                }
                self.last_ok = Some(Instant::now());
                self.backoff = FIRST_RETRY;
                true
            }
            Ok(Err(e)) => {
                self.down(&crate::util::full(&e));
                false
            }
            Err(e) => {
                self.down(&e.to_string());
                false
            }
        }
    }

    /// How long until the next try (for a caller that sleeps meanwhile).
    pub fn retry_in(&self) -> Duration {
        self.next_try
            .map(|t| t.saturating_duration_since(Instant::now()))
            .unwrap_or(Duration::ZERO)
    }

    fn down(&mut self, why: &str) {
        tracing::warn!(
            "waiting for libvirt: {why}; no job is claimed until it answers; retrying in {:.1} s",
            self.backoff.as_secs_f64()
        );
        self.last_ok = None;
        self.next_try = Some(Instant::now() + self.backoff);
        self.backoff = (self.backoff * 2).min(MAX_RETRY);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn an_unreachable_libvirt_is_retried_with_backoff_and_a_reachable_one_trusted() {
        let mut gate = LibvirtGate::new("qemu+unix:///system?socket=/nonexistent/libvirt-sock");
        assert!(!gate.up().await);
        // Not asked again before the back-off ends.
        assert!(gate.retry_in() > Duration::ZERO);
        assert!(!gate.up().await);
        assert_eq!(gate.backoff, FIRST_RETRY * 2);

        let mut test = LibvirtGate::new("test:///default");
        assert!(test.up().await);
        assert!(test.up().await);
        assert_eq!(test.retry_in(), Duration::ZERO);
    }
}
