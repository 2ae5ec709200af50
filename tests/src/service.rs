//! A `ferrotron serve` under test and the HTTP calls the service suites
//! make (tests/tests/service.rs, service_jobs.rs, cache_service.rs,
//! playbooks.rs): started on a free loopback port, its log followed,
//! stopped with SIGTERM and required to exit 0.

use std::path::PathBuf;
use std::time::{Duration, Instant};

use nix::sys::signal::Signal;
use reqwest::blocking::Client;
use serde_json::{json, Value};

use crate::{Harness, Running};

/// How long a test waits for one job to reach a final state.
pub const JOB_DEADLINE: Duration = Duration::from_secs(600);

pub struct Service {
    pub proc: Running,
    /// `http://127.0.0.1:PORT`.
    pub base: String,
}

impl Service {
    /// `ferrotron serve --listen 127.0.0.1:0 ARGS` with `env` added, once
    /// it says where it listens.
    pub fn start(h: &Harness, args: &[&str], env: &[(&str, &str)]) -> Service {
        let mut all = vec!["serve", "--listen", "127.0.0.1:0"];
        all.extend_from_slice(args);
        let mut c = h.command(&all);
        c.env("FERROTRON_LOG", "info")
            .envs(env.iter().copied())
            .stdout(std::process::Stdio::piped())
            .stderr(std::process::Stdio::piped());
        let mut proc = Running::from_command(c);
        let line = proc.wait_for("listening on http://", Duration::from_secs(60));
        let base = line
            .rsplit_once("listening on ")
            .map(|(_, u)| u.trim().to_string())
            .expect("url");
        Service { proc, base }
    }

    /// SIGTERM; the service must exit 0 within a minute.
    pub fn stop(self) {
        self.proc.signal(Signal::SIGTERM);
        let (code, rest) = self.proc.finish(Duration::from_secs(60));
        assert_eq!(code, Some(0), "{rest}");
    }

    /// POSTs a message envelope; returns the status and the JSON answer.
    pub fn post(&self, token: &str, message: &Value) -> (u16, Value) {
        let r = http()
            .post(format!("{}/api/v1/messages", self.base))
            .bearer_auth(token)
            .json(message)
            .send()
            .expect("POST message");
        let status = r.status().as_u16();
        (status, r.json().expect("JSON answer"))
    }

    /// A generic message (topic `org.example.test`) about a Koji build.
    pub fn post_item(&self, token: &str, id: &str, item: &str) -> (u16, Value) {
        self.post(
            token,
            &json!({
                "id": id,
                "topic": "org.example.test",
                "body": {"item": item, "item_type": "koji_build", "arch": "x86_64"},
            }),
        )
    }

    pub fn job(&self, uuid: &str) -> Value {
        http()
            .get(format!("{}/api/v1/jobs/{uuid}", self.base))
            .send()
            .expect("GET job")
            .json()
            .expect("job JSON")
    }

    /// The UUIDs of the first page of `/api/v1/jobs`.
    pub fn jobs(&self) -> Vec<String> {
        let list: Value = http()
            .get(format!("{}/api/v1/jobs", self.base))
            .send()
            .expect("jobs")
            .json()
            .expect("jobs JSON");
        list["data"]
            .as_array()
            .expect("data")
            .iter()
            .map(|j| j["uuid"].as_str().expect("uuid").to_string())
            .collect()
    }

    /// `POST /api/v1/jobs/UUID/cancel` with `token`; it must be accepted.
    pub fn cancel(&self, token: &str, uuid: &str) {
        let r = http()
            .post(format!("{}/api/v1/jobs/{uuid}/cancel", self.base))
            .bearer_auth(token)
            .send()
            .expect("cancel");
        assert_eq!(r.status().as_u16(), 200, "cancel {uuid}");
    }

    /// Waits (bounded) until the job is in a final state; returns it.
    pub fn wait_final(&self, uuid: &str) -> Value {
        let deadline = Instant::now() + JOB_DEADLINE;
        loop {
            let j = self.job(uuid);
            let state = j["state"].as_str().unwrap_or("").to_string();
            if ["passed", "failed", "error", "cancelled"].contains(&state.as_str()) {
                return j;
            }
            assert!(Instant::now() < deadline, "job {uuid} still {state}: {j}");
            std::thread::sleep(Duration::from_millis(300));
        }
    }
}

pub fn http() -> Client {
    Client::builder()
        .timeout(Duration::from_secs(120))
        .build()
        .expect("client")
}

/// A new operator token (it may do everything) for this test's
/// installation.
pub fn token(h: &Harness) -> String {
    let out = h.run(&["token", "create", "ci", "--role", "operator"]);
    assert_eq!(out.code, Some(0), "{}", out.stderr);
    out.stdout.trim().to_string()
}

/// The states of a job's stored transitions, in order.
pub fn states(j: &Value) -> Vec<String> {
    transitions(j).into_iter().map(|(s, _)| s).collect()
}

/// (state, time) of each stored transition.
pub fn transitions(j: &Value) -> Vec<(String, String)> {
    j["transitions"]
        .as_array()
        .expect("transitions")
        .iter()
        .map(|t| {
            (
                t["state"].as_str().unwrap_or("").to_string(),
                t["at"].as_str().unwrap_or("").to_string(),
            )
        })
        .collect()
}

/// The job UUIDs of a message's answer.
pub fn jobs_of(v: &Value) -> Vec<String> {
    v["jobs"]
        .as_array()
        .expect("jobs")
        .iter()
        .map(|j| j.as_str().expect("uuid").to_string())
        .collect()
}

/// The runner's job folders in this test's data folder (one per VM run).
pub fn runner_jobs(h: &Harness) -> Vec<String> {
    std::fs::read_dir(h.data_dir.join("jobs"))
        .map(|d| {
            d.flatten()
                .map(|e| e.file_name().to_string_lossy().into_owned())
                .collect()
        })
        .unwrap_or_default()
}

/// A key pair of the test's "task author" (ed25519, no passphrase) in
/// the test's folder: the private key's path and the public key's line.
pub fn author_key(h: &Harness) -> (PathBuf, String) {
    let key = h.data_dir.join("author_ed25519");
    let _ = std::fs::remove_file(&key);
    let _ = std::fs::remove_file(key.with_extension("pub"));
    let out = std::process::Command::new("ssh-keygen")
        .args([
            "-q",
            "-t",
            "ed25519",
            "-N",
            "",
            "-C",
            "author@example",
            "-f",
        ])
        .arg(&key)
        .output()
        .expect("ssh-keygen");
    assert!(out.status.success(), "{out:?}");
    let public = std::fs::read_to_string(key.with_extension("pub")).expect("public key");
    (key, public)
}

/// A task (in the test's folder) that prints `started` and then sleeps
/// for ten minutes: a job that is surely still running when the test acts.
pub fn slow_task(h: &Harness) -> PathBuf {
    let dir = h.data_dir.join("slow");
    std::fs::create_dir_all(&dir).expect("mkdir");
    std::fs::write(
        dir.join("runtask.yml"),
        "name: slow\ndesc: waits\nmaintainer: ferrotron-devs\ninput:\n  args: [koji_build]\n\
         actions:\n  - name: wait\n    shell:\n      - echo started\n      - sleep 600\n    timeout: 900\n",
    )
    .expect("write formula");
    dir
}

/// `ferrotron submit DIR --item ITEM EXTRA...` into the test's queue; the
/// command must succeed. Returns the job's UUID.
pub fn submit(h: &Harness, dir: &std::path::Path, item: &str, extra: &[&str]) -> String {
    let mut args = vec!["submit", dir.to_str().expect("utf-8"), "--item", item];
    args.extend_from_slice(extra);
    let out = h.run(&args);
    assert_eq!(out.code, Some(0), "{}", out.stderr);
    out.stdout.trim().to_string()
}

/// Exactly `n` VM runs happened in this test's data folder (one per job,
/// no retries unless counted in `n`), and none left anything behind.
pub fn assert_runs_left_nothing(h: &Harness, n: usize) {
    let ran = runner_jobs(h);
    assert_eq!(ran.len(), n, "VM runs: {ran:?}");
    for id in &ran {
        h.assert_nothing_left(id);
    }
}
