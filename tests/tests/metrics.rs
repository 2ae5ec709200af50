//! `GET /metrics` scraped by a real Prometheus (Debian's `prometheus`,
//! started on 127.0.0.1 by the test) while `serve` runs a job in a real
//! VM; the test asks Prometheus' own query API for the series an operator
//! would graph: phase durations, jobs by state, queue waits, capacity and
//! API requests by route.

use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use ferrotron_tests::service::{http, submit, Service};
use ferrotron_tests::{workspace, Harness, Running};
use serde_json::Value;

/// A Prometheus scraping `target` every second, on a free loopback port,
/// its data in the test's folder; stopped (by its pid) with the guard.
struct Prometheus {
    proc: Running,
    base: String,
}

/// `s` percent-encoded for a query string.
fn encode(s: &str) -> String {
    s.bytes()
        .map(|b| {
            if b.is_ascii_alphanumeric() || b"-._~".contains(&b) {
                char::from(b).to_string()
            } else {
                format!("%{b:02X}")
            }
        })
        .collect()
}

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .expect("a free port")
}

impl Prometheus {
    fn start(h: &Harness, target: &str) -> Prometheus {
        let dir = h.data_dir.join("prometheus");
        std::fs::create_dir_all(&dir).expect("mkdir");
        let config = dir.join("prometheus.yml");
        std::fs::write(
            &config,
            format!(
                "global:\n  scrape_interval: 1s\n  evaluation_interval: 1s\n\
                 scrape_configs:\n  - job_name: ferrotron\n    static_configs:\n      - targets: ['{target}']\n"
            ),
        )
        .expect("config");
        let port = free_port();
        let listen = format!("127.0.0.1:{port}");
        let mut c = Command::new("/usr/bin/prometheus");
        c.arg(format!("--config.file={}", config.display()))
            .arg(format!(
                "--storage.tsdb.path={}",
                dir.join("data").display()
            ))
            .arg(format!("--web.listen-address={listen}"))
            .stdout(Stdio::piped())
            .stderr(Stdio::piped());
        let mut proc = Running::from_command(c);
        proc.wait_for(
            "Server is ready to receive web requests",
            Duration::from_secs(120),
        );
        Prometheus {
            proc,
            base: format!("http://{listen}"),
        }
    }

    /// The instant vector of `query` (Prometheus' `/api/v1/query`).
    fn query(&self, query: &str) -> Vec<Value> {
        let r: Value = http()
            .get(format!(
                "{}/api/v1/query?query={}",
                self.base,
                encode(query)
            ))
            .send()
            .expect("query Prometheus")
            .json()
            .expect("JSON");
        assert_eq!(r["status"], "success", "{query}: {r}");
        r["data"]["result"].as_array().cloned().unwrap_or_default()
    }

    /// Waits (generously) until `query` has a sample whose value passes
    /// `ok`; returns the samples.
    fn wait_for(&self, query: &str, ok: impl Fn(f64) -> bool) -> Vec<Value> {
        let deadline = Instant::now() + Duration::from_secs(180);
        loop {
            let v = self.query(query);
            if v.iter().any(|s| {
                s["value"][1]
                    .as_str()
                    .and_then(|x| x.parse::<f64>().ok())
                    .is_some_and(&ok)
            }) {
                return v;
            }
            assert!(
                Instant::now() < deadline,
                "Prometheus never had {query} as expected; last answer: {v:?}"
            );
            std::thread::sleep(Duration::from_millis(500));
        }
    }
}

#[test]
fn prometheus_scrapes_job_phases_states_capacity_and_requests() {
    let h = Harness::new("metrics-prometheus");
    let s = Service::start(&h, &["--max-vms", "1"], &[]);
    let target = s.base.trim_start_matches("http://").to_string();
    let prom = Prometheus::start(&h, &target);
    // The target is up: Prometheus parsed our text format.
    prom.wait_for("up{job=\"ferrotron\"}", |v| v == 1.0);

    let task = workspace().join("tests/fixtures/trivial");
    let uuid = submit(&h, &task, "trivial-1.0-1.fc40", &[]);
    let j = s.wait_final(&uuid);
    assert_eq!(j["state"], "passed", "{j}");

    prom.wait_for("ferrotron_jobs{state=\"passed\"}", |v| v == 1.0);
    for phase in ["boot", "ssh", "task", "collect", "destroy"] {
        let q = format!("ferrotron_job_phase_seconds_count{{phase=\"{phase}\"}}");
        prom.wait_for(&q, |v| v >= 1.0);
        let sum = format!("ferrotron_job_phase_seconds_sum{{phase=\"{phase}\"}}");
        prom.wait_for(&sum, |v| v > 0.0);
    }
    prom.wait_for("ferrotron_queue_wait_seconds_count", |v| v >= 1.0);
    prom.wait_for("ferrotron_queue_depth", |v| v == 0.0);
    // This host's capacity, offered and (now that the job ended) unused.
    let offered = prom.wait_for("ferrotron_host_capacity_offered{resource=\"vms\"}", |v| {
        v == 1.0
    });
    assert!(offered[0]["metric"]["host"]
        .as_str()
        .is_some_and(|h| !h.is_empty()));
    prom.wait_for("ferrotron_host_vms", |v| v == 0.0);
    // API requests by route pattern (the job's id is not a label value).
    let r = http()
        .get(format!("{}/api/v1/jobs/{uuid}", s.base))
        .send()
        .expect("GET job");
    assert_eq!(r.status().as_u16(), 200);
    prom.wait_for(
        "ferrotron_http_requests_total{route=\"/api/v1/jobs/{uuid}\",method=\"GET\",status=\"200\"}",
        |v| v >= 1.0,
    );
    prom.wait_for(
        "ferrotron_http_request_seconds_count{route=\"/metrics\"}",
        |v| v >= 1.0,
    );
    assert!(
        prom.query(&format!(
            "{{__name__=~\"ferrotron_.*\",route=~\".*{uuid}.*\"}}"
        ))
        .is_empty(),
        "a raw path became a series"
    );
    drop(prom.proc);
    s.stop();
    ferrotron_tests::service::assert_runs_left_nothing(&h, 1);
}
