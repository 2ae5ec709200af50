//! How many messages one sender may send: a fixed window per key. The API
//! keys it by token (`--message-limit N/SECONDS`, default 600 a minute;
//! past it `POST /api/v1/messages` answers 429 with when to retry), the
//! AMQP intake by topic (`--amqp-topic-limit`; past it a message goes to
//! the dead-letter queue). Nothing over a limit is queued.

use std::collections::HashMap;
use std::sync::Mutex;
use std::time::{Duration, Instant};

/// `count` messages per `window`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Rate {
    pub count: u32,
    pub window: Duration,
}

impl Default for Rate {
    fn default() -> Rate {
        Rate {
            count: 600,
            window: Duration::from_secs(60),
        }
    }
}

impl std::str::FromStr for Rate {
    type Err = String;

    /// `N/SECONDS`, e.g. `600/60`.
    fn from_str(s: &str) -> Result<Rate, String> {
        let wrong = || format!("`{s}` is not N/SECONDS (for example 600/60)");
        let (n, secs) = s.split_once('/').ok_or_else(wrong)?;
        let count: u32 = n.trim().parse().map_err(|_| wrong())?;
        let secs: u64 = secs.trim().parse().map_err(|_| wrong())?;
        if count == 0 || secs == 0 {
            return Err(wrong());
        }
        Ok(Rate {
            count,
            window: Duration::from_secs(secs),
        })
    }
}

/// The windows of every key seen.
#[derive(Debug, Default)]
pub struct Limiter {
    rate: Rate,
    windows: Mutex<HashMap<String, (Instant, u32)>>,
}

impl Limiter {
    pub fn new(rate: Rate) -> Limiter {
        Limiter {
            rate,
            windows: Mutex::new(HashMap::new()),
        }
    }

    /// Counts one message of `key`; `Err(wait)` when its window is full.
    pub fn take(&self, key: &str) -> Result<(), Duration> {
        let now = Instant::now();
        let mut windows = match self.windows.lock() {
            Ok(w) => w,
            Err(poisoned) => poisoned.into_inner(),
        };
        // Forget windows that ended, so the map stays as small as the
        // tokens in use.
        if windows.len() > 10_000 {
            let rate = self.rate;
            windows.retain(|_, (start, _)| now.duration_since(*start) < rate.window);
        }
        let (start, used) = windows.entry(key.to_string()).or_insert((now, 0));
        if now.duration_since(*start) >= self.rate.window {
            (*start, *used) = (now, 0);
        }
        if *used >= self.rate.count {
            return Err(self.rate.window.saturating_sub(now.duration_since(*start)));
        }
        *used += 1;
        Ok(())
    }

    pub fn rate(&self) -> Rate {
        self.rate
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_full_window_says_how_long_to_wait() {
        let l = Limiter::new("2/3600".parse().expect("rate"));
        assert_eq!(l.take("a"), Ok(()));
        assert_eq!(l.take("a"), Ok(()));
        let wait = l.take("a").expect_err("full");
        assert!(wait > Duration::from_secs(3500), "{wait:?}");
        assert_eq!(l.take("b"), Ok(()), "per token");
        for bad in ["", "5", "0/60", "5/0", "x/60", "5/y"] {
            assert!(bad.parse::<Rate>().is_err(), "{bad}");
        }
    }
}
