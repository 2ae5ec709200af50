//! What the dashboard's hosts and queue pages show, and idling one named
//! host from them (`POST /api/v1/hosts/NAME/idle`): each host with its
//! state and what runs there, and each waiting job with the reason it
//! waits, said the way the scheduler would decide it.

use super::App;
use crate::placement::Needs;
use crate::store::{
    now_micros, HostRecord, Job, QueueSpan, Reservation, StoreError, Waiting, HOST_FRESH_MICROS,
};

/// One host as the hosts page shows it.
#[derive(Debug, Clone)]
pub struct HostView {
    pub record: HostRecord,
    /// Idled by its own flag (`host idle` there, or the page).
    pub idle: bool,
    /// Its worker's heartbeat is recent.
    pub live: bool,
    /// Jobs in progress there (reservations' jobs included).
    pub jobs: Vec<Job>,
    /// Reservations and holds whose VM runs there.
    pub reservations: Vec<Reservation>,
}

/// Every host, and whether the whole installation is idle.
#[derive(Debug, Clone)]
pub struct HostsView {
    pub all_idle: bool,
    pub hosts: Vec<HostView>,
}

/// Why a queued job has not started.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum WaitReason {
    /// A retry's backoff, until then (microseconds).
    Backoff { until: i64 },
    /// Every host is idle (`host idle --all`).
    AllIdle,
    /// No worker has reported recently.
    NoHost,
    /// No live host could ever hold it: it needs more than the largest.
    NoHostFits { needs: Needs },
    /// Hosts that could hold it are idle.
    HostsIdle,
    /// Hosts that could hold it are busy: it waits its turn.
    Capacity,
}

impl std::fmt::Display for WaitReason {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            WaitReason::Backoff { until } => write!(
                f,
                "retry backoff until {}",
                crate::store::format_time(*until)
            ),
            WaitReason::AllIdle => write!(f, "every host is idle"),
            WaitReason::NoHost => write!(f, "no worker is running"),
            WaitReason::NoHostFits { needs } => write!(
                f,
                "no host fits: it needs {} vCPUs and {} MiB",
                needs.vcpus, needs.memory_mib
            ),
            WaitReason::HostsIdle => write!(f, "the hosts that fit it are idle"),
            WaitReason::Capacity => write!(f, "waiting for capacity (hosts busy)"),
        }
    }
}

/// One bucket of the queue's history.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct QueuePoint {
    /// The bucket's end (microseconds).
    pub at: i64,
    /// Jobs queued at that moment.
    pub depth: i64,
    /// The median wait of the jobs that started in the bucket
    /// (microseconds), if any did.
    pub median_wait: Option<i64>,
}

/// What the queue page shows.
#[derive(Debug, Clone)]
pub struct QueueView {
    pub total: i64,
    pub waiting: Vec<(Waiting, WaitReason)>,
    pub history: Vec<QueuePoint>,
}

/// The queue's history: the last 24 hours in 48 buckets.
const HISTORY: i64 = 24 * 3600 * 1_000_000;
const BUCKETS: i64 = 48;

impl App {
    /// Stops (`true`) or resumes scheduling on host `name` (a host of
    /// this installation, known or not yet: the flag waits for it).
    pub async fn set_host_idle(&self, name: &str, idle: bool) -> Result<(), StoreError> {
        let value = idle.then(|| now_micros().to_string());
        self.store
            .set_flag(&crate::scheduler::host_idle_flag(name), value.as_deref())
            .await
    }

    /// Every host with what runs there.
    pub async fn hosts_view(&self) -> Result<HostsView, StoreError> {
        let mut view = self.host_states().await?;
        let jobs = self.store.active_jobs().await?;
        let reservations = self.store.reservations(true).await?;
        for h in &mut view.hosts {
            let here = Some(h.record.name.as_str());
            h.jobs = jobs
                .iter()
                .filter(|j| j.host.as_deref() == here)
                .cloned()
                .collect();
            h.reservations = reservations
                .iter()
                .filter(|r| r.host.as_deref() == here)
                .cloned()
                .collect();
        }
        Ok(view)
    }

    /// Every host's record, idle flag and liveness (nothing of what runs
    /// there: the queue's reasons need no more).
    async fn host_states(&self) -> Result<HostsView, StoreError> {
        let flags = self.store.idle_flags().await?;
        let now = now_micros();
        let hosts = self
            .store
            .hosts()
            .await?
            .into_iter()
            .map(|record| HostView {
                idle: flags.contains(&crate::scheduler::host_idle_flag(&record.name)),
                live: record.heartbeat >= now - HOST_FRESH_MICROS,
                jobs: Vec::new(),
                reservations: Vec::new(),
                record,
            })
            .collect();
        Ok(HostsView {
            all_idle: flags.iter().any(|f| f == crate::scheduler::IDLE_FLAG),
            hosts,
        })
    }

    /// The first `limit` waiting jobs with their reasons, and the last
    /// day of the queue.
    pub async fn queue_view(&self, limit: i64) -> Result<QueueView, StoreError> {
        let (waiting, total) = self.store.waiting_jobs(limit).await?;
        let hosts = self.host_states().await?;
        let now = now_micros();
        let waiting = waiting
            .into_iter()
            .map(|w| {
                let why = wait_reason(&w, &hosts, now);
                (w, why)
            })
            .collect();
        let spans = self.store.queue_spans(now - HISTORY).await?;
        Ok(QueueView {
            total,
            waiting,
            history: history(&spans, now),
        })
    }
}

/// Why `w` waits, checked in the order the scheduler would refuse it.
fn wait_reason(w: &Waiting, hosts: &HostsView, now: i64) -> WaitReason {
    if w.not_before > now {
        return WaitReason::Backoff {
            until: w.not_before,
        };
    }
    if hosts.all_idle {
        return WaitReason::AllIdle;
    }
    let live: Vec<&HostView> = hosts.hosts.iter().filter(|h| h.live).collect();
    if live.is_empty() {
        return WaitReason::NoHost;
    }
    let needs = Needs {
        vcpus: w
            .vcpus
            .and_then(|v| u32::try_from(v).ok())
            .unwrap_or(Needs::FALLBACK.vcpus),
        memory_mib: w
            .memory_mib
            .and_then(|m| u64::try_from(m).ok())
            .unwrap_or(Needs::FALLBACK.memory_mib),
    };
    let fitting: Vec<&&HostView> = live
        .iter()
        .filter(|h| {
            h.record.capacity.vcpus >= needs.vcpus
                && h.record.capacity.memory_mib >= needs.memory_mib
        })
        .collect();
    if fitting.is_empty() {
        WaitReason::NoHostFits { needs }
    } else if fitting.iter().all(|h| h.idle) {
        WaitReason::HostsIdle
    } else {
        WaitReason::Capacity
    }
}

/// Depth at each bucket's end and the median wait of jobs that started
/// in it.
fn history(spans: &[QueueSpan], now: i64) -> Vec<QueuePoint> {
    let width = HISTORY / BUCKETS;
    (0..BUCKETS)
        .map(|i| {
            let end = now - HISTORY + (i + 1) * width;
            let start = end - width;
            let depth = spans
                .iter()
                .filter(|s| s.queued_at <= end && s.left_at.is_none_or(|l| l > end))
                .count() as i64;
            let mut waits: Vec<i64> = spans
                .iter()
                .filter(|s| s.started)
                .filter_map(|s| s.left_at.map(|l| (l, l - s.queued_at)))
                .filter(|(l, _)| *l > start && *l <= end)
                .map(|(_, w)| w)
                .collect();
            waits.sort_unstable();
            QueuePoint {
                at: end,
                depth,
                median_wait: waits.get(waits.len() / 2).copied(),
            }
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::placement::{Capacity, Usage};

    fn host(name: &str, vcpus: u32, idle: bool, live: bool) -> HostView {
        HostView {
            record: HostRecord {
                name: name.into(),
                worker: format!("{name}:1:x"),
                capacity: Capacity {
                    vcpus,
                    memory_mib: 8192,
                    max_vms: 4,
                },
                used: Usage::default(),
                started_at: 0,
                heartbeat: 0,
            },
            idle,
            live,
            jobs: Vec::new(),
            reservations: Vec::new(),
        }
    }

    fn waiting(vcpus: Option<i64>, not_before: i64) -> Waiting {
        Waiting {
            uuid: "u".into(),
            item: "i".into(),
            formula: "f".into(),
            priority: 0,
            vcpus,
            memory_mib: None,
            not_before,
            attempts: 0,
            last_error: None,
            created_at: 0,
        }
    }

    #[test]
    fn reasons_follow_the_schedulers_order() {
        let view = |all_idle, hosts| HostsView { all_idle, hosts };
        let two = || vec![host("a", 2, true, true), host("b", 8, false, true)];
        assert_eq!(
            wait_reason(&waiting(None, 50), &view(false, two()), 10),
            WaitReason::Backoff { until: 50 }
        );
        assert_eq!(
            wait_reason(&waiting(None, 0), &view(true, two()), 10),
            WaitReason::AllIdle
        );
        assert_eq!(
            wait_reason(
                &waiting(None, 0),
                &view(false, vec![host("a", 8, false, false)]),
                10
            ),
            WaitReason::NoHost
        );
        assert!(matches!(
            wait_reason(&waiting(Some(16), 0), &view(false, two()), 10),
            WaitReason::NoHostFits { needs } if needs.vcpus == 16
        ));
        assert_eq!(
            wait_reason(&waiting(Some(2), 0), &view(false, two()), 10),
            WaitReason::Capacity
        );
        let idle_fit = vec![host("a", 2, false, true), host("b", 8, true, true)];
        assert_eq!(
            wait_reason(&waiting(Some(4), 0), &view(false, idle_fit), 10),
            WaitReason::HostsIdle
        );
    }

    #[test]
    fn history_counts_depth_and_median_wait() {
        let now = HISTORY;
        let w = HISTORY / BUCKETS;
        let spans = [
            // Queued from the start, started in the last bucket after a
            // wait of the whole day.
            QueueSpan {
                queued_at: 0,
                left_at: Some(now - w / 2),
                started: true,
            },
            // Still queued.
            QueueSpan {
                queued_at: now - 3 * w,
                left_at: None,
                started: false,
            },
            // Cancelled while queued: it leaves without a wait counted.
            QueueSpan {
                queued_at: now - 5 * w,
                left_at: Some(now - 4 * w - 1),
                started: false,
            },
        ];
        let h = history(&spans, now);
        assert_eq!(h.len(), BUCKETS as usize);
        assert_eq!(h[0].depth, 1);
        assert_eq!(h[BUCKETS as usize - 6].depth, 2);
        assert_eq!(h[BUCKETS as usize - 5].depth, 1);
        assert_eq!(h[BUCKETS as usize - 2].depth, 2);
        assert_eq!(h[BUCKETS as usize - 1].depth, 1);
        assert_eq!(h[BUCKETS as usize - 1].median_wait, Some(now - w / 2));
        assert_eq!(h[0].median_wait, None);
    }
}
