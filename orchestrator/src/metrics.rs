//! The service's metrics, served at `GET /metrics` in the OpenMetrics text
//! format Prometheus scrapes (with `prometheus-client`, not formatted by
//! hand).
//!
//! Two kinds: events counted where they happen, in one process-wide set
//! ([`global`]: phase durations, queue waits, retries, reaped VMs, AMQP
//! deliveries, messages published, cache syncs, HTTP requests), and
//! levels read from the store at each scrape ([`Metrics::refresh`]: jobs
//! per state, queue depth, outgoing messages waiting, each host's VMs and
//! capacity used and offered), so that any API server of an installation
//! reports the whole queue.

use std::sync::OnceLock;
use std::time::Duration;

use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::histogram::{exponential_buckets, Histogram};
use prometheus_client::registry::Registry;

use crate::store::{Store, StoreError};

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct PhaseLabels {
    pub phase: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct StateLabels {
    pub state: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct CauseLabels {
    pub cause: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct EventLabels {
    pub event: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct HostLabels {
    pub host: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct HostResourceLabels {
    pub host: String,
    pub resource: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct RouteLabels {
    pub method: String,
    pub route: String,
    pub status: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct RouteOnlyLabels {
    pub method: String,
    pub route: String,
}

type Histograms<L> = Family<L, Histogram, fn() -> Histogram>;

fn seconds() -> Histogram {
    // 10 ms to about 45 min.
    Histogram::new(exponential_buckets(0.01, 2.0, 18))
}

fn fast() -> Histogram {
    // 0.5 ms to about 16 s (API latency).
    Histogram::new(exponential_buckets(0.0005, 2.0, 16))
}

/// Every metric of the process.
pub struct Metrics {
    registry: Registry,
    pub phase_seconds: Histograms<PhaseLabels>,
    pub queue_wait_seconds: Histogram,
    pub retries: Family<CauseLabels, Counter>,
    pub vms_reaped: Counter,
    pub amqp_messages: Family<EventLabels, Counter>,
    pub messages_published: Counter,
    pub cache_sync_seconds: Histogram,
    pub cache_sync_failures: Counter,
    pub http_requests: Family<RouteLabels, Counter>,
    pub http_seconds: Histograms<RouteOnlyLabels>,
    jobs: Family<StateLabels, Gauge>,
    queue_depth: Gauge,
    outbox_pending: Gauge,
    host_vms: Family<HostLabels, Gauge>,
    host_reservations: Family<HostLabels, Gauge>,
    host_used: Family<HostResourceLabels, Gauge>,
    host_offered: Family<HostResourceLabels, Gauge>,
}

impl Metrics {
    fn new() -> Metrics {
        let mut registry = Registry::with_prefix("ferrotron");
        let phase_seconds: Histograms<PhaseLabels> = Family::new_with_constructor(seconds);
        let queue_wait_seconds = seconds();
        let retries = Family::<CauseLabels, Counter>::default();
        let vms_reaped = Counter::default();
        let amqp_messages = Family::<EventLabels, Counter>::default();
        let messages_published = Counter::default();
        let cache_sync_seconds = seconds();
        let cache_sync_failures = Counter::default();
        let http_requests = Family::<RouteLabels, Counter>::default();
        let http_seconds: Histograms<RouteOnlyLabels> = Family::new_with_constructor(fast);
        let jobs = Family::<StateLabels, Gauge>::default();
        let queue_depth = Gauge::default();
        let outbox_pending = Gauge::default();
        let host_vms = Family::<HostLabels, Gauge>::default();
        let host_reservations = Family::<HostLabels, Gauge>::default();
        let host_used = Family::<HostResourceLabels, Gauge>::default();
        let host_offered = Family::<HostResourceLabels, Gauge>::default();
        let r = &mut registry;
        r.register(
            "job_phase_seconds",
            "Time each phase of a job took (image, boot, ssh, task, collect, destroy)",
            phase_seconds.clone(),
        );
        r.register(
            "queue_wait_seconds",
            "Time a job waited in the queue before a host claimed it",
            queue_wait_seconds.clone(),
        );
        r.register(
            "job_retries",
            "Jobs put back in the queue for another attempt, by cause",
            retries.clone(),
        );
        r.register(
            "vms_reaped",
            "Leftover VMs of dead processes removed",
            vms_reaped.clone(),
        );
        r.register(
            "amqp_messages",
            "AMQP deliveries by what became of them (received, acked, dead_lettered, requeued, own_skipped)",
            amqp_messages.clone(),
        );
        r.register(
            "messages_published",
            "Outgoing messages the broker confirmed",
            messages_published.clone(),
        );
        r.register(
            "cache_sync_seconds",
            "Time a git cache sync took",
            cache_sync_seconds.clone(),
        );
        r.register(
            "cache_sync_failures",
            "Git cache repositories whose sync failed",
            cache_sync_failures.clone(),
        );
        r.register(
            "http_requests",
            "API requests by method, route and status",
            http_requests.clone(),
        );
        r.register(
            "http_request_seconds",
            "API request latency by method and route",
            http_seconds.clone(),
        );
        r.register("jobs", "Jobs by state (all hosts)", jobs.clone());
        r.register(
            "queue_depth",
            "Jobs waiting to be claimed",
            queue_depth.clone(),
        );
        r.register(
            "outbox_pending",
            "Outgoing messages not yet confirmed by the broker",
            outbox_pending.clone(),
        );
        r.register(
            "host_vms",
            "VMs (jobs) running on each host",
            host_vms.clone(),
        );
        r.register(
            "host_reservations",
            "Reservations and held VMs ready on each host (they count in host_vms too)",
            host_reservations.clone(),
        );
        r.register(
            "host_capacity_used",
            "What each host's running VMs take (vms, vcpus, memory_mib)",
            host_used.clone(),
        );
        r.register(
            "host_capacity_offered",
            "What each host offers (vms, vcpus, memory_mib)",
            host_offered.clone(),
        );
        Metrics {
            host_reservations,
            registry,
            phase_seconds,
            queue_wait_seconds,
            retries,
            vms_reaped,
            amqp_messages,
            messages_published,
            cache_sync_seconds,
            cache_sync_failures,
            http_requests,
            http_seconds,
            jobs,
            queue_depth,
            outbox_pending,
            host_vms,
            host_used,
            host_offered,
        }
    }

    /// A finished job phase.
    pub fn phase(&self, phase: &str, took: Duration) {
        self.phase_seconds
            .get_or_create(&PhaseLabels {
                phase: phase.to_string(),
            })
            .observe(took.as_secs_f64());
    }

    /// An AMQP delivery's fate.
    pub fn amqp(&self, event: &str) {
        self.amqp_messages
            .get_or_create(&EventLabels {
                event: event.to_string(),
            })
            .inc();
    }

    /// A retry, by its cause.
    pub fn retry(&self, cause: &str) {
        self.retries
            .get_or_create(&CauseLabels {
                cause: cause.to_string(),
            })
            .inc();
    }

    /// Reads the levels from the store (jobs, queue, outbox, hosts).
    pub async fn refresh(&self, store: &Store) -> Result<(), StoreError> {
        let counts = store.queue_counts().await?;
        // A state no job is in any more reads 0, not its last value.
        for state in &crate::job::ALL_STATES {
            let n = counts
                .iter()
                .find(|(s, _)| s == state.as_str())
                .map_or(0, |(_, n)| *n);
            self.jobs
                .get_or_create(&StateLabels {
                    state: state.as_str().to_string(),
                })
                .set(n);
            if *state == crate::job::JobState::Queued {
                self.queue_depth.set(n);
            }
        }
        self.outbox_pending.set(store.outbox_pending().await?);
        let held = store.reservations(true).await?;
        for h in store.hosts().await? {
            let host = h.name.clone();
            let ready = held
                .iter()
                .filter(|r| r.port.is_some() && r.host.as_deref() == Some(host.as_str()))
                .count();
            self.host_reservations
                .get_or_create(&HostLabels { host: host.clone() })
                .set(to_i64(ready));
            self.host_vms
                .get_or_create(&HostLabels { host: host.clone() })
                .set(to_i64(h.used.vms));
            let rows = [
                ("vms", u64::from(h.used.vms), u64::from(h.capacity.max_vms)),
                (
                    "vcpus",
                    u64::from(h.used.vcpus),
                    u64::from(h.capacity.vcpus),
                ),
                ("memory_mib", h.used.memory_mib, h.capacity.memory_mib),
            ];
            for (resource, used, offered) in rows {
                let l = HostResourceLabels {
                    host: host.clone(),
                    resource: resource.to_string(),
                };
                self.host_used.get_or_create(&l).set(to_i64(used));
                self.host_offered.get_or_create(&l).set(to_i64(offered));
            }
        }
        Ok(())
    }

    /// The OpenMetrics text of every metric.
    pub fn encode(&self) -> String {
        let mut out = String::new();
        // Writing to a String cannot fail.
        let _ = prometheus_client::encoding::text::encode(&mut out, &self.registry);
        out
    }
}

fn to_i64<T: TryInto<i64>>(v: T) -> i64 {
    v.try_into().unwrap_or(i64::MAX)
}

/// The process's metrics.
pub fn global() -> &'static Metrics {
    static METRICS: OnceLock<Metrics> = OnceLock::new();
    METRICS.get_or_init(Metrics::new)
}

/// The content type of [`Metrics::encode`]'s text.
pub const CONTENT_TYPE: &str = "application/openmetrics-text; version=1.0.0; charset=utf-8";

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn events_appear_in_the_text_format() {
        let m = Metrics::new();
        m.phase("boot", Duration::from_millis(1500));
        m.amqp("received");
        m.retry("infrastructure");
        let text = m.encode();
        assert!(
            text.contains("# TYPE ferrotron_job_phase_seconds histogram"),
            "{text}"
        );
        assert!(
            text.contains("ferrotron_job_phase_seconds_count{phase=\"boot\"} 1"),
            "{text}"
        );
        assert!(
            text.contains("ferrotron_amqp_messages_total{event=\"received\"} 1"),
            "{text}"
        );
        assert!(
            text.contains("ferrotron_job_retries_total{cause=\"infrastructure\"} 1"),
            "{text}"
        );
        assert!(text.ends_with("# EOF\n"), "{text}");
    }
}
