//! The HTTP API through the real `ferrotron serve` on 127.0.0.1 (a port the
//! kernel picks), driven by a real HTTP client, against SQLite and against
//! PostgreSQL: every test runs once per backend. Requests are shaped like
//! ResultsDB's own clients (resultsdb_api, Bodhi, Greenwave) send them.
//!
//! PostgreSQL: `FERROTRON_TEST_PG_URL` (set by scripts/test.sh; default
//! `postgres://ferrotron:ferrotron@127.0.0.1:5432/postgres`, the role
//! scripts/setup-host.sh creates). Each test creates its own database and
//! drops it at the end.

use std::io::{Read, Write};
use std::process::Command;
use std::time::Duration;

use ferrotron_tests::both;
use ferrotron_tests::pg::{Backend, PgDatabase};
use ferrotron_tests::{Harness, Running};
use nix::sys::signal::Signal;
use reqwest::blocking::{Client, Response};
use reqwest::StatusCode;
use serde_json::{json, Value};

/// `ferrotron serve` with its own data folder and database.
struct Server {
    h: Harness,
    db: Option<PgDatabase>,
    proc: Option<Running>,
    base: String,
    token: String,
    http: Client,
}

impl Server {
    fn start(test: &str, backend: Backend, extra: &[&str]) -> Server {
        let h = Harness::new(&format!("api-{test}-{backend:?}").to_lowercase());
        let db = match backend {
            Backend::Sqlite => None,
            Backend::Postgres => Some(PgDatabase::new(test)),
        };
        let with_db = |mut c: Command| {
            if let Some(db) = &db {
                c.env("FERROTRON_DATABASE_URL", &db.url);
            }
            c
        };
        let out = with_db(h.command(&["token", "create", "ci", "--role", "operator"]))
            .output()
            .expect("token create");
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
        let token = String::from_utf8_lossy(&out.stdout).trim().to_string();
        assert!(token.starts_with("fto_"), "{token}");

        let mut s = Server {
            h,
            db,
            proc: None,
            base: String::new(),
            token,
            http: Client::builder()
                .timeout(Duration::from_secs(60))
                .build()
                .expect("client"),
        };
        s.spawn(extra);
        s
    }

    /// A `ferrotron` command on this server's data folder and database.
    fn command(&self, args: &[&str]) -> Command {
        let mut c = self.h.command(args);
        if let Some(db) = &self.db {
            c.env("FERROTRON_DATABASE_URL", &db.url);
        }
        c
    }

    fn spawn(&mut self, extra: &[&str]) {
        let mut args = vec!["serve", "--listen", "127.0.0.1:0"];
        args.extend_from_slice(extra);
        let mut c = self.command(&args);
        c.stdout(std::process::Stdio::piped())
            .stderr(std::process::Stdio::piped());
        let mut proc = spawn(c);
        let line = proc.wait_for("listening on ", Duration::from_secs(60));
        self.base = line
            .split("listening on ")
            .nth(1)
            .expect("url")
            .trim()
            .to_string();
        self.proc = Some(proc);
    }

    /// Kills the server with SIGKILL (no chance to flush anything) and
    /// starts it again on the same data.
    fn crash_and_restart(&mut self) {
        if let Some(p) = self.proc.take() {
            p.signal(Signal::SIGKILL);
            let (code, _) = p.finish(Duration::from_secs(30));
            assert_eq!(code, None, "killed by a signal");
        }
        self.spawn(&[]);
    }

    fn url(&self, path: &str) -> String {
        format!("{}{path}", self.base)
    }

    fn get(&self, path: &str) -> Response {
        self.http.get(self.url(path)).send().expect("GET")
    }

    fn get_json(&self, path: &str) -> Value {
        let r = self.get(path);
        assert_eq!(r.status(), StatusCode::OK, "GET {path}");
        r.json().expect("json")
    }

    fn post(&self, path: &str, body: &Value) -> Response {
        self.http
            .post(self.url(path))
            .bearer_auth(&self.token)
            .json(body)
            .send()
            .expect("POST")
    }

    fn put(&self, path: &str, body: &Value) -> Response {
        self.http
            .put(self.url(path))
            .bearer_auth(&self.token)
            .json(body)
            .send()
            .expect("PUT")
    }

    /// Records the job `id` as running (as `ferrotron run --report` does
    /// once its VM is up), with this server's operator token.
    fn put_running_job(&self, id: &str) {
        let r = self.put(&format!("/api/v1/jobs/{id}"), &running_job());
        assert_eq!(r.status(), StatusCode::OK);
    }

    /// Stops the server with SIGTERM and checks it exits cleanly.
    fn stop(self) {
        self.stop_with_log();
    }

    /// Stops the server (it must exit 0); what it logged.
    fn stop_with_log(mut self) -> String {
        let mut logged = String::new();
        if let Some(p) = self.proc.take() {
            p.signal(Signal::SIGTERM);
            let (code, log) = p.finish(Duration::from_secs(30));
            assert_eq!(code, Some(0), "server log:\n{log}");
            logged = log;
        }
        drop(self.db.take());
        drop(self.h);
        logged
    }
}

/// The record of a running job, with the history that led there.
fn running_job() -> Value {
    json!({"state": "running", "item": "hello-1.0-1.fc40", "type": "koji_build",
           "arch": "x86_64", "formula": "hello",
           "transitions": [
               {"state": "queued", "at": "2024-05-01T10:00:00Z"},
               {"state": "scheduled", "at": "2024-05-01T10:00:01Z"},
               {"state": "running", "at": "2024-05-01T10:00:05Z"}]})
}

/// Like `Harness::spawn`, for a prepared command.
fn spawn(c: Command) -> Running {
    Running::from_command(c)
}

fn status_and_error(r: Response) -> (u16, String, String) {
    let status = r.status().as_u16();
    let body: Value = r.json().expect("error bodies are JSON");
    (
        status,
        body["code"].as_str().unwrap_or("").to_string(),
        body["message"].as_str().unwrap_or("").to_string(),
    )
}

// Each test body below runs once per backend.
both!(resultsdb_clients_replay);
both!(bad_input_gets_4xx_with_code_and_message);
both!(jobs_logs_and_artifacts);
both!(run_report_lands_queryable_results);
both!(run_report_keeps_every_resultyaml_key);
both!(reads_can_require_a_token);
both!(bulk_results_page_and_survive_a_crash);
both!(stopping_the_server_ends_followed_logs);
both!(tokens_have_roles);
both!(the_real_resultsdb_api_client_writes_with_its_own_auth);
both!(greenwaves_latest_query_keeps_one_result_per_scenario);
both!(testcase_names_with_slashes_are_served_as_upstream_does);
both!(groups_sorting_times_and_the_landing_page_as_upstream);
both!(hostile_paths_hosts_and_queries_get_4xx);

/// What `resultsdb_api.create_result(...)`, Bodhi and Greenwave send.
fn resultsdb_clients_replay(backend: Backend) {
    let s = Server::start("replay", backend, &[]);
    assert_eq!(
        s.get_json("/api/v2.0/healthcheck")["message"],
        "Health check OK"
    );
    let nvr = "foo-1.0-1.fc40";
    let mut ids = Vec::new();
    for (tc, outcome, time) in [
        ("dist.rpmdeplint", "PASSED", "2024-01-10T08:00:00"),
        ("dist.rpmdeplint", "FAILED", "2024-01-20T08:00:00"),
        ("dist.abicheck", "passed", "2024-03-01T08:00:00"),
        ("dist.upgradepath", "INFO", "2023-12-01T08:00:00"),
    ] {
        let r = s.post(
            "/api/v2.0/results",
            &json!({
                "outcome": outcome,
                "testcase": {"name": tc, "ref_url": format!("https://docs.example/{tc}")},
                "groups": [{"uuid": "3a5c7f1e-0000-4000-8000-000000000001", "description": "taskotron job"}],
                "note": "",
                "ref_url": "https://taskotron.example/artifacts/x",
                "data": {"item": nvr, "type": "koji_build", "arch": ["x86_64", "noarch"]},
                "submit_time": time,
            }),
        );
        assert_eq!(r.status(), StatusCode::CREATED);
        let body: Value = r.json().expect("json");
        assert_eq!(body["outcome"], outcome.to_uppercase());
        assert_eq!(body["data"]["arch"], json!(["x86_64", "noarch"]));
        assert_eq!(body["submit_time"], format!("{time}.000000"));
        ids.push(body["id"].as_i64().expect("id"));
    }
    // Another item, and a testcase by bare name, submit_time in epoch ms.
    let r = s.post(
        "/api/v2.0/results",
        &json!({"outcome": "PASSED", "testcase": "dist.rpmdeplint",
                "data": {"item": "bar-2.0-1.fc40", "type": "koji_build"},
                "submit_time": 1_706_000_000_000i64}),
    );
    assert_eq!(r.status(), StatusCode::CREATED);

    // Bodhi / Greenwave: the latest result of each testcase for one build.
    let latest = s.get_json(&format!(
        "/api/v2.0/results/latest?item={nvr}&type=koji_build&testcases=dist.rpmdeplint,dist.abicheck"
    ));
    let got: Vec<(String, String)> = latest["data"]
        .as_array()
        .expect("data")
        .iter()
        .map(|r| {
            (
                r["testcase"]["name"].as_str().unwrap_or("").to_string(),
                r["outcome"].as_str().unwrap_or("").to_string(),
            )
        })
        .collect();
    assert_eq!(
        got,
        [
            ("dist.abicheck".to_string(), "PASSED".to_string()),
            ("dist.rpmdeplint".to_string(), "FAILED".to_string())
        ]
    );

    let like = s.get_json("/api/v2.0/results?testcases:like=dist.*&item=foo-1.0-1.fc40");
    assert_eq!(like["data"].as_array().map(Vec::len), Some(4));
    // Patterns are case-sensitive on both backends, as in ResultsDB on PostgreSQL.
    let upper = s.get_json("/api/v2.0/results?testcases:like=DIST.*");
    assert_eq!(upper["data"], json!([]));
    let since = s.get_json("/api/v2.0/results?since=2024-01-01T00:00:00,2024-02-01");
    assert_eq!(
        since["data"].as_array().map(Vec::len),
        Some(3),
        "two rpmdeplint runs in January plus bar's: {since}"
    );
    // Comma means OR; `:like` takes wildcards; outcome is case-blind.
    let or = s.get_json("/api/v2.0/results?item=foo-1.0-1.fc40,bar-2.0-1.fc40&outcome=passed");
    assert_eq!(or["data"].as_array().map(Vec::len), Some(3));
    let wild = s.get_json("/api/v2.0/results?item:like=bar-*");
    assert_eq!(wild["data"][0]["data"]["item"], json!(["bar-2.0-1.fc40"]));
    let arch = s.get_json("/api/v2.0/results?arch=noarch");
    assert_eq!(arch["data"].as_array().map(Vec::len), Some(4));

    // Pagination: newest first, full URLs, filters kept.
    let p0 = s.get_json("/api/v2.0/results?item=foo-1.0-1.fc40&limit=3");
    assert_eq!(p0["prev"], Value::Null);
    let next = p0["next"].as_str().expect("a next page");
    assert_eq!(
        next,
        format!(
            "{}/api/v2.0/results?item=foo-1.0-1.fc40&limit=3&page=1",
            s.base
        )
    );
    let p1: Value = s.http.get(next).send().expect("GET").json().expect("json");
    assert_eq!(p1["data"].as_array().map(Vec::len), Some(1));
    assert_eq!(p1["next"], Value::Null);
    assert!(p1["prev"].as_str().is_some_and(|u| u.ends_with("page=0")));
    assert_eq!(p0["data"][0]["testcase"]["name"], "dist.abicheck");

    // One result, testcases and groups.
    let one = s.get_json(&format!("/api/v2.0/results/{}", ids[0]));
    assert_eq!(one["testcase"]["name"], "dist.rpmdeplint");
    assert_eq!(
        one["groups"],
        json!(["3a5c7f1e-0000-4000-8000-000000000001"])
    );
    let tc = s.get_json("/api/v2.0/testcases/dist.abicheck");
    assert_eq!(tc["ref_url"], "https://docs.example/dist.abicheck");
    let tcs = s.get_json("/api/v2.0/testcases?name:like=dist.*");
    assert_eq!(tcs["data"].as_array().map(Vec::len), Some(3));
    let g = s.get_json("/api/v2.0/groups/3a5c7f1e-0000-4000-8000-000000000001");
    assert_eq!(g["description"], "taskotron job");
    let gr = s.get_json("/api/v2.0/groups/3a5c7f1e-0000-4000-8000-000000000001/results");
    assert_eq!(gr["data"].as_array().map(Vec::len), Some(4));
    let r = s.post(
        "/api/v2.0/testcases",
        &json!({"name": "dist.new", "ref_url": "https://x"}),
    );
    assert_eq!(r.status(), StatusCode::CREATED);
    let r = s.post("/api/v2.0/groups", &json!({"description": "made by hand"}));
    assert_eq!(r.status(), StatusCode::CREATED);
    let g: Value = r.json().expect("json");
    assert_eq!(g["uuid"].as_str().map(str::len), Some(36));
    assert_eq!(
        s.get("/api/v2.0/results/999999").status(),
        StatusCode::NOT_FOUND
    );
    s.stop();
}

/// The unmodified `resultsdb_api` from PyPI (it has no bearer option):
/// a token in the JSON body and as HTTP Basic auth's password both write;
/// none, a reader's or an unknown one are refused with the usual answers.
fn the_real_resultsdb_api_client_writes_with_its_own_auth(backend: Backend) {
    let s = Server::start("pyclient-auth", backend, &[]);
    let make = |name: &str, role: &str| {
        let out = s
            .command(&["token", "create", name, "--role", role])
            .output()
            .expect("token create");
        assert!(out.status.success());
        String::from_utf8_lossy(&out.stdout).trim().to_string()
    };
    let reporter = make("relay", "reporter");
    let reader = make("dashboard", "reader");
    let api = format!("{}/api/v2.0", s.base);
    let out = ferrotron_tests::pyclients::run(
        "resultsdb-clients/write_with_auth.py",
        &[&api, &reporter, &reader],
    );
    let got: Value = serde_json::from_str(out.trim()).expect("the script's JSON");
    assert_eq!(got["body"]["outcome"], "PASSED", "{got}");
    assert_eq!(got["body"]["testcase"]["name"], "dist.auth-body", "{got}");
    assert_eq!(got["body"]["note"], "token in the body", "{got}");
    // The token is never stored as data.
    assert!(got["body"]["data"].get("_auth_token").is_none(), "{got}");
    assert_eq!(got["testcase"]["name"], "dist.auth-made", "{got}");
    assert_eq!(
        got["group"]["description"], "made by resultsdb_api",
        "{got}"
    );
    assert_eq!(got["basic"]["outcome"], "FAILED", "{got}");
    for (case, status, code) in [
        ("none", 401, "unauthorized"),
        ("reader", 403, "forbidden"),
        ("wrong", 401, "unauthorized"),
    ] {
        assert_eq!(got[case]["status"], status, "{case}: {got}");
        assert_eq!(got[case]["code"], code, "{case}: {got}");
    }
    assert!(
        got["none"]["message"]
            .as_str()
            .is_some_and(|m| m.contains("`_auth_token` in the JSON body")),
        "{got}"
    );
    let stored = s.get_json("/api/v2.0/results?item=auth-1.0-1.fc41");
    let names: Vec<&str> = stored["data"]
        .as_array()
        .expect("data")
        .iter()
        .filter_map(|r| r["testcase"]["name"].as_str())
        .collect();
    assert_eq!(names, ["dist.auth-basic", "dist.auth-body"], "{stored}");
    // No secret in the server's log.
    let log = s.stop_with_log();
    for secret in [&reporter, &reader] {
        assert!(!log.contains(secret.as_str()), "a token is in the log");
    }
}

/// Greenwave's query for gating: the newest result per testcase *and*
/// per combination of `_distinct_on`'s data keys, so that a failed
/// scenario is not hidden behind a newer pass of another.
fn greenwaves_latest_query_keeps_one_result_per_scenario(backend: Backend) {
    let s = Server::start("distinct-on", backend, &[]);
    let nvr = "gate-1.0-1.fc41";
    for (outcome, scenario, arch, time) in [
        (
            "FAILED",
            Some("fedora.updates-everything-boot-iso.x86_64.64bit"),
            "x86_64",
            "2026-11-01T08:00:00",
        ),
        (
            "PASSED",
            Some("fedora.updates-server.x86_64.64bit"),
            "x86_64",
            "2026-11-01T09:00:00",
        ),
        (
            "PASSED",
            Some("fedora.updates-everything-boot-iso.x86_64.64bit"),
            "aarch64",
            "2026-11-01T09:30:00",
        ),
        ("PASSED", None, "x86_64", "2026-11-01T07:00:00"),
        (
            "FAILED",
            Some("fedora.updates-server.x86_64.64bit"),
            "x86_64",
            "2026-10-01T09:00:00",
        ),
    ] {
        let mut data = json!({"item": nvr, "type": "koji_build", "system_architecture": arch});
        if let Some(sc) = scenario {
            data["scenario"] = json!(sc);
        }
        let r = s.post(
            "/api/v2.0/results",
            &json!({"outcome": outcome, "testcase": "update.install_default_update_netinst",
                    "data": data, "submit_time": time}),
        );
        assert_eq!(r.status(), StatusCode::CREATED);
    }
    let picked = |q: &str| -> Vec<(String, String, String)> {
        let v = s.get_json(&format!("/api/v2.0/results/latest?{q}"));
        v["data"]
            .as_array()
            .unwrap_or_else(|| panic!("{q}: {v}"))
            .iter()
            .map(|r| {
                let first = |k: &str| r["data"][k][0].as_str().unwrap_or("-").to_string();
                (
                    r["outcome"].as_str().unwrap_or("").to_string(),
                    first("scenario"),
                    first("system_architecture"),
                )
            })
            .collect()
    };
    let own = |o: &str, sc: &str, a: &str| (o.to_string(), sc.to_string(), a.to_string());
    // Newest first; the old failure of the server scenario is superseded,
    // the boot-iso failure on x86_64 is not; no scenario is a group too.
    assert_eq!(
        picked(&format!(
            "item={nvr}&type=koji_build&_distinct_on=scenario,system_architecture&since=2026-01-01T00:00:00"
        )),
        [
            own("PASSED", "fedora.updates-everything-boot-iso.x86_64.64bit", "aarch64"),
            own("PASSED", "fedora.updates-server.x86_64.64bit", "x86_64"),
            own("FAILED", "fedora.updates-everything-boot-iso.x86_64.64bit", "x86_64"),
            own("PASSED", "-", "x86_64"),
        ]
    );
    // Without it: one per testcase, the newest.
    assert_eq!(
        picked(&format!("item={nvr}&type=koji_build")),
        [own(
            "PASSED",
            "fedora.updates-everything-boot-iso.x86_64.64bit",
            "aarch64"
        )]
    );
    // `outcome` does not filter the latest results (as upstream).
    assert_eq!(
        picked(&format!("item={nvr}&outcome=FAILED")),
        [own(
            "PASSED",
            "fedora.updates-everything-boot-iso.x86_64.64bit",
            "aarch64"
        )]
    );
    // `_distinct_on` alone is refused.
    let r = s.get("/api/v2.0/results/latest?_distinct_on=scenario");
    let (status, code, message) = status_and_error(r);
    assert_eq!((status, code.as_str()), (400, "bad_filter"));
    assert_eq!(
        message,
        "Please, provide at least one filter beside '_distinct_on'"
    );
    s.stop();
}

/// Fedora CI's testcase names hold slashes (`...koji-build./plans/basic.functional`,
/// as upstream's own tests use): their `href` keeps them, and the raw path
/// finds the testcase and its results.
fn testcase_names_with_slashes_are_served_as_upstream_does(backend: Backend) {
    let s = Server::start("slash-names", backend, &[]);
    let name = "fedora-ci.koji-build./plans/basic.functional";
    for (tc, outcome) in [(name, "PASSED"), (name, "FAILED"), ("dist.plain", "PASSED")] {
        let r = s.post(
            "/api/v2.0/results",
            &json!({"outcome": outcome, "testcase": tc,
                    "data": {"item": "slash-1.0-1.fc41", "type": "koji_build"}}),
        );
        assert_eq!(r.status(), StatusCode::CREATED);
    }
    let one = s.get_json(
        "/api/v2.0/results?testcases=fedora-ci.koji-build./plans/basic.functional&limit=1",
    );
    let href = one["data"][0]["testcase"]["href"]
        .as_str()
        .expect("href")
        .to_string();
    assert_eq!(href, format!("{}/api/v2.0/testcases/{name}", s.base));
    let tc: Value = s.http.get(&href).send().expect("GET").json().expect("json");
    assert_eq!(tc["name"], name, "{tc}");
    let results: Value = s
        .http
        .get(format!("{href}/results"))
        .send()
        .expect("GET")
        .json()
        .expect("json");
    let outcomes: Vec<&str> = results["data"]
        .as_array()
        .expect("data")
        .iter()
        .filter_map(|r| r["outcome"].as_str())
        .collect();
    assert_eq!(outcomes, ["FAILED", "PASSED"], "{results}");
    let plain = s.get_json("/api/v2.0/testcases/dist.plain/results");
    assert_eq!(plain["data"].as_array().map(Vec::len), Some(1));
    for missing in [
        "/api/v2.0/testcases/no/such",
        "/api/v2.0/testcases/no/such/results",
    ] {
        let (status, code, message) = status_and_error(s.get(missing));
        assert_eq!(
            (status, code.as_str(), message.as_str()),
            (404, "not_found", "Testcase not found"),
            "{missing}"
        );
    }
    s.stop();
}

/// Smaller ResultsDB v2.0 behaviours its clients rely on: `results_count`
/// and `description` filters of groups, `_sort`, `submit_time` offsets as
/// Python writes them, the landing page.
fn groups_sorting_times_and_the_landing_page_as_upstream(backend: Backend) {
    let s = Server::start("upstream-details", backend, &[]);
    let g1 = "11111111-0000-4000-8000-000000000001";
    let g2 = "11111111-0000-4000-8000-000000000002";
    for (time, groups) in [
        (
            "2026-11-01T12:00:00.000000+0000",
            json!([{"uuid": g1, "description": "bodhi update A"}]),
        ),
        ("2026-11-01T14:00:00.000000+0200", json!([g1])),
        (
            "2026-11-01T13:00:00.000000+00",
            json!([{"uuid": g2, "description": "bodhi update B"}]),
        ),
    ] {
        let r = s.post(
            "/api/v2.0/results",
            &json!({"outcome": "PASSED", "testcase": "dist.details", "groups": groups,
                    "data": {"item": "details-1-1"}, "submit_time": time}),
        );
        assert_eq!(r.status(), StatusCode::CREATED, "{time}");
    }
    let r = s.post("/api/v2.0/groups", &json!({"description": "empty one"}));
    assert_eq!(r.status(), StatusCode::CREATED);
    let made: Value = r.json().expect("json");
    assert_eq!(made["results_count"], 0);
    // Counts, on one group and on the listing.
    assert_eq!(
        s.get_json(&format!("/api/v2.0/groups/{g1}"))["results_count"],
        2
    );
    let descs = |q: &str| -> Vec<(String, i64)> {
        s.get_json(&format!("/api/v2.0/groups?{q}"))["data"]
            .as_array()
            .expect("data")
            .iter()
            .map(|g| {
                (
                    g["description"].as_str().unwrap_or("").to_string(),
                    g["results_count"].as_i64().unwrap_or(-1),
                )
            })
            .collect()
    };
    assert_eq!(
        descs("description=bodhi update A,bodhi update B"),
        [
            ("bodhi update B".to_string(), 1),
            ("bodhi update A".to_string(), 2)
        ]
    );
    assert_eq!(
        descs("description=bodhi update A"),
        [("bodhi update A".to_string(), 2)]
    );
    assert_eq!(descs("description:like=*B,empty*").len(), 2);
    // Times: the offsets are honoured (stored in UTC), and `_sort` orders.
    let times = |q: &str| -> Vec<String> {
        s.get_json(&format!("/api/v2.0/results?item=details-1-1{q}"))["data"]
            .as_array()
            .expect("data")
            .iter()
            .filter_map(|r| r["submit_time"].as_str().map(String::from))
            .collect()
    };
    let newest_first = [
        "2026-11-01T13:00:00.000000",
        "2026-11-01T12:00:00.000000",
        "2026-11-01T12:00:00.000000",
    ];
    assert_eq!(times(""), newest_first);
    assert_eq!(times("&_sort=desc:submit_time"), newest_first);
    let mut oldest_first = newest_first;
    oldest_first.reverse();
    assert_eq!(times("&_sort=asc:submit_time"), oldest_first);
    let (status, code, message) = status_and_error(s.get("/api/v2.0/results?_sort=asc:outcome"));
    assert_eq!((status, code.as_str()), (400, "bad_filter"), "{message}");
    // Values as upstream stores them: Python's str() of what is not a
    // string; long testcase names are fine.
    let long = format!("dist.{}", "x".repeat(1500));
    let r = s.post(
        "/api/v2.0/results",
        &json!({"outcome": "INFO", "testcase": long,
                "data": {"item": "values-1-1", "gone": null, "ok": true, "n": 2,
                         "nested": {"a": [1, "it's"]}, "list": [null, 1.5, {"b": false}]}}),
    );
    assert_eq!(r.status(), StatusCode::CREATED);
    let got: Value = r.json().expect("json");
    assert_eq!(got["testcase"]["name"], long);
    assert_eq!(got["data"]["gone"], json!(["None"]));
    assert_eq!(got["data"]["ok"], json!(["True"]));
    assert_eq!(got["data"]["n"], json!(["2"]));
    assert_eq!(got["data"]["nested"], json!([r#"{'a': [1, "it's"]}"#]));
    assert_eq!(got["data"]["list"], json!(["None", "1.5", "{'b': False}"]));
    let too_long = s.post(
        "/api/v2.0/results",
        &json!({"outcome": "INFO", "testcase": "x".repeat(3000)}),
    );
    assert_eq!(too_long.status(), StatusCode::BAD_REQUEST);
    // Refused bodies carry upstream's `validation_error` beside our code
    // (as its functional tests check them).
    for (path, body, loc, msg, kind) in [
        (
            "/api/v2.0/results",
            json!({"outcome": "passed", "testcase": ""}),
            "testcase",
            "Value error, testcase name must be non-empty",
            "value_error",
        ),
        (
            "/api/v2.0/results",
            json!({"outcome": "passed", "testcase": {"name": ""}}),
            "testcase",
            "Value error, testcase name must be non-empty",
            "value_error",
        ),
        (
            "/api/v2.0/results",
            json!({"outcome": "passed", "testcase": {}}),
            "testcase",
            "Value error, testcase name must be non-empty",
            "value_error",
        ),
        (
            "/api/v2.0/results",
            json!({"outcome": "passed"}),
            "testcase",
            "Field required",
            "missing",
        ),
        (
            "/api/v2.0/results",
            json!({"testcase": "t"}),
            "outcome",
            "Field required",
            "missing",
        ),
        (
            "/api/v2.0/testcases",
            json!({"ref_url": "https://x"}),
            "name",
            "Field required",
            "missing",
        ),
        (
            "/api/v2.0/testcases",
            json!({"name": ""}),
            "name",
            "String should have at least 1 character",
            "string_too_short",
        ),
        (
            "/api/v2.0/results",
            json!({"outcome": "FAKEOUTCOME", "testcase": "t"}),
            "outcome",
            "Value error, must be one of: PASSED, INFO, FAILED, NEEDS_INSPECTION, ERROR, WAIVED, ABORTED, CRASHED",
            "value_error",
        ),
        (
            "/api/v2.0/results",
            json!({"outcome": "PASSED", "testcase": "t", "submit_time": "now"}),
            "submit_time",
            "Value error, Expected timestamp in milliseconds or datetime (in format YYYY-MM-DDTHH:MM:SS.ffffff), got 'now'",
            "value_error",
        ),
    ] {
        let r = s.post(path, &body);
        assert_eq!(r.status(), StatusCode::BAD_REQUEST, "{body}");
        let got: Value = r.json().expect("json");
        // Our stable code beside upstream's list.
        let code = match loc {
            "outcome" if kind == "value_error" => "unknown_outcome",
            "submit_time" => "bad_submit_time",
            _ => "invalid_body",
        };
        assert_eq!(got["code"], code, "{body}: {got}");
        assert_eq!(
            got["validation_error"][0]["loc"],
            json!([loc]),
            "{body}: {got}"
        );
        assert_eq!(got["validation_error"][0]["msg"], msg, "{body}: {got}");
        assert_eq!(got["validation_error"][0]["type"], kind, "{body}: {got}");
    }
    // The landing page, with upstream's status.
    let landing = s.get("/api/v2.0/");
    assert_eq!(landing.status().as_u16(), 300);
    let body: Value = landing.json().expect("json");
    assert_eq!(body["results"], format!("{}/api/v2.0/results", s.base));
    assert!(body["outcomes"]
        .as_array()
        .is_some_and(|o| o.contains(&json!("NEEDS_INSPECTION"))));
    s.stop();
}

/// Method, path, body, token; expected status, code, message part.
type BadCase<'a> = (
    &'a str,
    String,
    String,
    Option<&'a str>,
    u16,
    &'a str,
    &'a str,
);

/// Each bad request: its status, stable code and the message a user reads.
fn bad_input_gets_4xx_with_code_and_message(backend: Backend) {
    // A small body limit: an oversized body then still fits in the socket
    // buffers, so the client has sent it all before the 413 arrives (with
    // megabytes, the server's early close races the client's upload).
    let s = Server::start(
        "bad-input",
        backend,
        &["--max-body-bytes", "2048", "--max-artifact-bytes", "1000"],
    );
    let ok_job = uuid::Uuid::new_v4().to_string();
    let r = s.put(
        &format!("/api/v1/jobs/{ok_job}"),
        &json!({"state": "scheduled", "item": "x", "type": "koji_build", "arch": "x86_64", "formula": "f"}),
    );
    assert_eq!(r.status(), StatusCode::OK);
    let raw = |method: &str, path: &str, body: &str, token: Option<&str>| {
        let mut req = s
            .http
            .request(method.parse().expect("method"), s.url(path))
            .header("content-type", "application/json")
            .body(body.to_string());
        if let Some(t) = token {
            req = req.bearer_auth(t);
        }
        req.send().expect("send")
    };
    let t = Some(s.token.as_str());
    let big = format!(
        "{{\"outcome\": \"PASSED\", \"note\": \"{}\"}}",
        "x".repeat(4000)
    );
    let table: Vec<BadCase> = vec![
        (
            "POST",
            "/api/v2.0/results".into(),
            "{\"outcome\": ".into(),
            t,
            400,
            "malformed_json",
            "EOF while parsing",
        ),
        (
            "POST",
            "/api/v2.0/results".into(),
            "[1, 2]".into(),
            t,
            400,
            "invalid_body",
            "the body must be a JSON object, got a list",
        ),
        (
            "POST",
            "/api/v2.0/results".into(),
            r#"{"outcome": 5, "testcase": "t"}"#.into(),
            t,
            400,
            "invalid_body",
            "outcome: expected a string, got a number",
        ),
        (
            "POST",
            "/api/v2.0/results".into(),
            r#"{"outcome": "GREAT", "testcase": "t"}"#.into(),
            t,
            400,
            "unknown_outcome",
            "outcome `GREAT` is not one of PASSED, INFO, FAILED",
        ),
        (
            "POST",
            "/api/v2.0/results".into(),
            r#"{"outcome": "PASSED"}"#.into(),
            t,
            400,
            "invalid_body",
            "testcase: required",
        ),
        (
            "POST",
            "/api/v2.0/results".into(),
            r#"{"outcome": "PASSED", "testcase": "t", "data": {"a:b": "x"}}"#.into(),
            t,
            400,
            "bad_data_key",
            "Colon not allowed in key name: ['a:b']",
        ),
        (
            "POST",
            "/api/v2.0/results".into(),
            r#"{"outcome": "PASSED", "testcase": "t", "data": [{"x": 1}]}"#.into(),
            t,
            400,
            "invalid_body",
            "data: expected an object, got a list",
        ),
        (
            "POST",
            "/api/v2.0/results".into(),
            r#"{"outcome": "PASSED", "testcase": "t", "submit_time": "soon"}"#.into(),
            t,
            400,
            "bad_submit_time",
            "submit_time: `soon` is neither epoch milliseconds nor an ISO 8601 time",
        ),
        (
            "POST",
            "/api/v2.0/results".into(),
            r#"{"outcome": "PASSED", "testcase": "t", "groups": "g"}"#.into(),
            t,
            400,
            "invalid_body",
            "groups: expected a list, got a string",
        ),
        (
            "POST",
            "/api/v2.0/results".into(),
            big,
            t,
            413,
            "body_too_large",
            "length limit exceeded",
        ),
        (
            "POST",
            "/api/v2.0/results".into(),
            r#"{"outcome": "PASSED", "testcase": "t"}"#.into(),
            None,
            401,
            "unauthorized",
            "Authorization: Bearer <token>",
        ),
        (
            "POST",
            "/api/v2.0/results".into(),
            r#"{"outcome": "PASSED", "testcase": "t"}"#.into(),
            Some("fto_wrong"),
            401,
            "unauthorized",
            "unknown or revoked token",
        ),
        (
            "GET",
            "/api/v2.0/results?limit=0".into(),
            String::new(),
            None,
            400,
            "bad_pagination",
            "limit must be a whole number from 1 to 1000, not `0`",
        ),
        (
            "GET",
            "/api/v2.0/results?limit=abc".into(),
            String::new(),
            None,
            400,
            "bad_pagination",
            "limit must be a whole number from 1 to 1000, not `abc`",
        ),
        (
            "GET",
            "/api/v2.0/results?page=-2".into(),
            String::new(),
            None,
            400,
            "bad_pagination",
            "page must be a whole number from 0, not `-2`",
        ),
        (
            "GET",
            "/api/v2.0/results?outcome=GOOD".into(),
            String::new(),
            None,
            400,
            "unknown_outcome",
            "outcome `GOOD` is not one of",
        ),
        (
            "GET",
            "/api/v2.0/results?since=last-week".into(),
            String::new(),
            None,
            400,
            "bad_since",
            "since: `last-week` is not a date/time",
        ),
        (
            "GET",
            "/api/v2.0/results?item:regex=x".into(),
            String::new(),
            None,
            400,
            "bad_filter",
            "unknown operator `regex`",
        ),
        (
            "GET",
            "/api/v2.0/testcases/nope".into(),
            String::new(),
            None,
            404,
            "not_found",
            "Testcase not found",
        ),
        (
            "GET",
            "/api/v2.0/nothing".into(),
            String::new(),
            None,
            404,
            "not_found",
            "no such endpoint",
        ),
        (
            "GET",
            "/api/v1/jobs/not-a-uuid".into(),
            String::new(),
            None,
            400,
            "bad_job_id",
            "`not-a-uuid` is not a job UUID",
        ),
        (
            "PUT",
            format!("/api/v1/jobs/{ok_job}"),
            r#"{"state": "sleeping", "item": "x", "type": "t", "arch": "a", "formula": "f"}"#
                .into(),
            t,
            400,
            "unknown_state",
            "state `sleeping` is not one of",
        ),
        (
            "PUT",
            format!("/api/v1/jobs/{ok_job}"),
            r#"{"state": "passed", "item": "x", "type": "t", "arch": "a", "formula": "f"}"#.into(),
            t,
            409,
            "conflict",
            "invalid transition scheduled -> passed",
        ),
        (
            "PUT",
            format!("/api/v1/jobs/{ok_job}"),
            r#"{"state": "booting", "item": 1, "type": "t", "arch": "a", "formula": "f"}"#.into(),
            t,
            400,
            "invalid_body",
            "item: invalid type: integer `1`, expected a string",
        ),
        (
            "GET",
            format!("/api/v1/jobs/{ok_job}/artifacts/..%2f..%2f..%2fetc%2fpasswd"),
            String::new(),
            None,
            400,
            "bad_artifact_path",
            "artifact path `../../../etc/passwd`: must stay inside the job's artifacts",
        ),
        (
            "PUT",
            format!("/api/v1/jobs/{ok_job}/artifacts/a%2f..%2f..%2fescape"),
            "x".into(),
            t,
            400,
            "bad_artifact_path",
            "must stay inside the job's artifacts",
        ),
        (
            "PUT",
            format!("/api/v1/jobs/{ok_job}/artifacts/big.bin"),
            "x".repeat(3000),
            t,
            413,
            "body_too_large",
            "artifact `big.bin` exceeds 1000 bytes",
        ),
        (
            "GET",
            format!("/api/v1/jobs/{ok_job}/artifacts/missing.log"),
            String::new(),
            None,
            404,
            "not_found",
            "has no artifact `missing.log`",
        ),
    ];
    for (method, path, body, token, status, code, message) in table {
        let (got_status, got_code, got_message) =
            status_and_error(raw(method, &path, &body, token));
        assert_eq!(
            (got_status, got_code.as_str()),
            (status, code),
            "{method} {path}: {got_message}"
        );
        assert!(
            got_message.contains(message),
            "{method} {path}: expected {message:?} in {got_message:?}"
        );
    }
    // Nothing half-written: no result, testcase or artifact came of it.
    assert_eq!(
        s.get_json("/api/v2.0/results")["data"],
        json!([]),
        "a refused request stored something"
    );
    assert_eq!(s.get_json("/api/v2.0/testcases")["data"], json!([]));
    let escaped = s.h.data_dir.join("escape");
    assert!(!escaped.exists());
    // The refused upload left no file, partial or whole.
    let job_dir = s.h.data_dir.join("artifacts").join(&ok_job);
    let left: Vec<_> = std::fs::read_dir(&job_dir)
        .map(|r| r.flatten().map(|e| e.file_name()).collect())
        .unwrap_or_default();
    assert!(left.is_empty(), "left in {}: {left:?}", job_dir.display());
    s.stop();
}

/// Job records, the log followed live, artifacts with ranges, cancel.
fn jobs_logs_and_artifacts(backend: Backend) {
    let s = Server::start("jobs", backend, &[]);
    let id = uuid::Uuid::new_v4().to_string();
    let r = s.put(
        &format!("/api/v1/jobs/{id}"),
        &json!({"state": "running", "item": "hello-1.0-1.fc40", "type": "koji_build",
                "arch": "x86_64", "formula": "hello", "host": "hv1",
                "transitions": [
                    {"state": "queued", "at": "2024-05-01T10:00:00Z"},
                    {"state": "scheduled", "at": "2024-05-01T10:00:01Z"},
                    {"state": "booting", "at": "2024-05-01T10:00:02Z"},
                    {"state": "running", "at": "2024-05-01T10:00:05Z"}]}),
    );
    assert_eq!(r.status(), StatusCode::OK);
    let upload = |path: &str, bytes: &[u8]| {
        s.http
            .put(s.url(&format!("/api/v1/jobs/{id}/artifacts/{path}")))
            .bearer_auth(&s.token)
            .body(bytes.to_vec())
            .send()
            .expect("upload")
    };
    let r = upload("runner.log", b"first line\n");
    assert_eq!(r.status(), StatusCode::CREATED);
    let content: Vec<u8> = (0..=255u8).cycle().take(10_000).collect();
    let r = upload("task_output/data.bin", &content);
    assert_eq!(r.status(), StatusCode::CREATED);

    // Follow the log while the job runs; the response ends with the job.
    let log_url = s.url(&format!("/api/v1/jobs/{id}/log"));
    let mut live = s.http.get(&log_url).send().expect("log");
    assert_eq!(live.status(), StatusCode::OK);
    let mut first = [0u8; 11];
    live.read_exact(&mut first).expect("first line arrives");
    assert_eq!(&first, b"first line\n");
    let log_path = s.h.data_dir.join("artifacts").join(&id).join("runner.log");
    let mut f = std::fs::OpenOptions::new()
        .append(true)
        .open(&log_path)
        .expect("open log");
    f.write_all(b"second line\n").expect("append");
    drop(f);
    let r = s.put(
        &format!("/api/v1/jobs/{id}"),
        &json!({"state": "reporting", "item": "hello-1.0-1.fc40", "type": "koji_build", "arch": "x86_64", "formula": "hello"}),
    );
    assert_eq!(r.status(), StatusCode::OK);
    let r = s
        .http
        .post(s.url(&format!("/api/v1/jobs/{id}/cancel")))
        .bearer_auth(&s.token)
        .send()
        .expect("cancel");
    assert_eq!(r.status(), StatusCode::OK);
    let mut rest = String::new();
    live.read_to_string(&mut rest)
        .expect("log ends with the job");
    assert_eq!(rest, "second line\n");
    let again = s
        .http
        .post(s.url(&format!("/api/v1/jobs/{id}/cancel")))
        .bearer_auth(&s.token)
        .send()
        .expect("cancel");
    let (st, code, msg) = status_and_error(again);
    assert_eq!((st, code.as_str()), (409, "conflict"), "{msg}");

    // A job this host's worker runs: its log is the runner's, in the jobs
    // folder, until the job ends and its files are published.
    let worker_job = uuid::Uuid::new_v4().to_string();
    let r = s.put(
        &format!("/api/v1/jobs/{worker_job}"),
        &json!({"state": "running", "item": "hello-1.0-1.fc40", "type": "koji_build",
                "arch": "x86_64", "formula": "hello",
                "transitions": [
                    {"state": "queued", "at": "2024-05-02T10:00:00Z"},
                    {"state": "scheduled", "at": "2024-05-02T10:00:01Z"},
                    {"state": "booting", "at": "2024-05-02T10:00:02Z"},
                    {"state": "running", "at": "2024-05-02T10:00:05Z"}]}),
    );
    assert_eq!(r.status(), StatusCode::OK);
    let runner_dir = s.h.data_dir.join("jobs").join(&worker_job);
    std::fs::create_dir_all(&runner_dir).expect("runner folder");
    std::fs::write(runner_dir.join("runner.log"), b"booted\n").expect("runner log");
    let mut live = s
        .http
        .get(s.url(&format!("/api/v1/jobs/{worker_job}/log")))
        .send()
        .expect("log");
    assert_eq!(live.status(), StatusCode::OK);
    let mut first = [0u8; 7];
    live.read_exact(&mut first)
        .expect("the runner's first line arrives");
    assert_eq!(&first, b"booted\n");
    let mut f = std::fs::OpenOptions::new()
        .append(true)
        .open(runner_dir.join("runner.log"))
        .expect("open runner log");
    f.write_all(b"task ran\n").expect("append");
    drop(f);
    let r = s
        .http
        .post(s.url(&format!("/api/v1/jobs/{worker_job}/cancel")))
        .bearer_auth(&s.token)
        .send()
        .expect("cancel");
    assert_eq!(r.status(), StatusCode::OK);
    let mut rest = String::new();
    live.read_to_string(&mut rest)
        .expect("log ends with the job");
    assert_eq!(rest, "task ran\n");

    let job = s.get_json(&format!("/api/v1/jobs/{id}"));
    assert_eq!(job["state"], "cancelled");
    assert_eq!(job["host"], "hv1");
    let states: Vec<&str> = job["transitions"]
        .as_array()
        .expect("transitions")
        .iter()
        .filter_map(|t| t["state"].as_str())
        .collect();
    assert_eq!(
        states,
        [
            "queued",
            "scheduled",
            "booting",
            "running",
            "reporting",
            "cancelled"
        ]
    );
    assert_eq!(job["created_at"], "2024-05-01T10:00:00.000000");
    let list = s.get_json("/api/v1/jobs?state=cancelled");
    let cancelled: Vec<&str> = list["data"]
        .as_array()
        .expect("data")
        .iter()
        .filter_map(|j| j["uuid"].as_str())
        .collect();
    // Newest first: the worker's job was recorded after this one.
    assert_eq!(cancelled, [worker_job.as_str(), id.as_str()]);

    let arts = s.get_json(&format!("/api/v1/jobs/{id}/artifacts"));
    let paths: Vec<&str> = arts["data"]
        .as_array()
        .expect("data")
        .iter()
        .filter_map(|a| a["path"].as_str())
        .collect();
    assert_eq!(paths, ["runner.log", "task_output/data.bin"]);
    let whole = s
        .get(&format!("/api/v1/jobs/{id}/artifacts/task_output/data.bin"))
        .bytes()
        .expect("bytes");
    assert_eq!(&whole[..], &content[..]);
    let part = s
        .http
        .get(s.url(&format!("/api/v1/jobs/{id}/artifacts/task_output/data.bin")))
        .header("Range", "bytes=100-199")
        .send()
        .expect("range");
    assert_eq!(part.status(), StatusCode::PARTIAL_CONTENT);
    assert_eq!(
        part.headers()
            .get("content-range")
            .and_then(|v| v.to_str().ok()),
        Some("bytes 100-199/10000")
    );
    assert_eq!(&part.bytes().expect("bytes")[..], &content[100..200]);
    let hosts = s.get_json("/api/v1/hosts");
    assert_eq!(hosts["data"].as_array().map(Vec::len), Some(1));
    let images = s.get("/api/v1/images");
    assert_eq!(images.status(), StatusCode::OK);
    // No partial uploads left beside the artifacts.
    let dir = s.h.data_dir.join("artifacts").join(&id).join("task_output");
    let names: Vec<String> = std::fs::read_dir(&dir)
        .expect("dir")
        .flatten()
        .map(|e| e.file_name().to_string_lossy().into_owned())
        .collect();
    assert_eq!(names, ["data.bin"]);
    s.stop();
}

/// `ferrotron run --report URL` (local runner): results queryable by item,
/// grouped by the job, with the job record and its artifacts.
fn run_report_lands_queryable_results(backend: Backend) {
    let s = Server::start("report", backend, &[]);
    let item = format!("hello-{}-1.fc40", uuid::Uuid::new_v4().simple());
    let out =
        s.h.command(&[
            "run",
            "-i",
            &item,
            "-t",
            "koji_build",
            "examples/hello/runtask.yml",
            "--report",
            &s.base,
        ])
        .env("FERROTRON_TOKEN", &s.token)
        .output()
        .expect("run");
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(0), "{stderr}");
    assert!(stderr.contains("reported 2 result(s)"), "{stderr}");
    let job_id = ferrotron_tests::job_id_in(&stderr).expect("job id");
    let res = s.get_json(&format!("/api/v2.0/results?item={item}&type=koji_build"));
    let data = res["data"].as_array().expect("data");
    assert_eq!(data.len(), 2, "{res}");
    for r in data {
        assert_eq!(r["outcome"], "PASSED");
        assert_eq!(r["groups"], json!([job_id]));
        assert_eq!(r["data"]["arch"], json!(["x86_64"]));
    }
    let job = s.get_json(&format!("/api/v1/jobs/{job_id}"));
    assert_eq!(job["state"], "passed");
    assert_eq!(job["exit_status"], 0);
    assert_eq!(job["formula"], "hello");
    let arts = s.get_json(&format!("/api/v1/jobs/{job_id}/artifacts"));
    let paths: Vec<&str> = arts["data"]
        .as_array()
        .expect("data")
        .iter()
        .filter_map(|a| a["path"].as_str())
        .collect();
    assert!(paths.contains(&"runner.log"), "{paths:?}");
    assert!(paths.contains(&"artifacts/results.tap"), "{paths:?}");
    let log = s
        .get(&format!("/api/v1/jobs/{job_id}/log"))
        .text()
        .expect("log");
    assert!(log.contains("check the NVR"), "{log}");

    // Without a token the report is refused, with the server's message.
    let out =
        s.h.command(&[
            "run",
            "-i",
            &item,
            "-t",
            "koji_build",
            "examples/hello/runtask.yml",
            "--report",
            &s.base,
        ])
        .env_remove("FERROTRON_TOKEN")
        .output()
        .expect("run");
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(3), "{stderr}");
    assert!(stderr.contains("401 Unauthorized"), "{stderr}");
    s.stop();
}

/// `ferrotron run --report URL` of a task whose ResultYAML carries extra
/// keys (examples/resultyaml-data): ResultsDB data a consumer can query by,
/// a list as several values, the artifact as ref_url, an explicit ref_url
/// kept.
fn run_report_keeps_every_resultyaml_key(backend: Backend) {
    let s = Server::start("report-data", backend, &[]);
    let item = format!("foo-{}-1.fc40", uuid::Uuid::new_v4().simple());
    let out =
        s.h.command(&[
            "run",
            "-i",
            &item,
            "-t",
            "koji_build",
            "examples/resultyaml-data/runtask.yml",
            "--report",
            &s.base,
        ])
        .env("FERROTRON_TOKEN", &s.token)
        .output()
        .expect("run");
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(0), "{stderr}");
    assert!(stderr.contains("reported 2 result(s)"), "{stderr}");
    let job_id = ferrotron_tests::job_id_in(&stderr).expect("job id");
    let scenario = "fedora.universal.x86_64.64bit";
    let names = |v: &Value| -> Vec<String> {
        let mut n: Vec<String> = v["data"]
            .as_array()
            .expect("data")
            .iter()
            .filter_map(|r| r["testcase"]["name"].as_str().map(str::to_string))
            .collect();
        n.sort();
        n
    };
    let by_scenario = s.get_json(&format!(
        "/api/v2.0/results?item={item}&scenario={scenario}"
    ));
    assert_eq!(
        names(&by_scenario),
        ["resultyaml-data.docs", "resultyaml-data.install"],
        "{by_scenario}"
    );
    let by_arch = s.get_json(&format!("/api/v2.0/results?item={item}&arch=i686"));
    assert_eq!(names(&by_arch), ["resultyaml-data.install"], "{by_arch}");
    let r = &by_arch["data"][0];
    assert_eq!(r["data"]["arch"], json!(["x86_64", "i686"]), "{r}");
    assert_eq!(r["data"]["firmware"], json!(["uefi"]), "{r}");
    assert_eq!(r["data"]["scenario"], json!([scenario]), "{r}");
    assert_eq!(r["note"], "installs on both arches");
    assert_eq!(r["groups"], json!([job_id]));
    // The artifact is the ref_url, and it is served there.
    let link = r["ref_url"].as_str().expect("ref_url");
    assert_eq!(
        link,
        format!(
            "{}/api/v1/jobs/{job_id}/artifacts/artifacts/logs/install.log",
            s.base
        )
    );
    let log = s.http.get(link).send().expect("GET artifact");
    assert_eq!(log.status(), StatusCode::OK);
    assert!(
        log.text()
            .expect("text")
            .starts_with(&format!("installed {item}")),
        "the linked artifact is the task's log"
    );
    // A result's own ref_url wins; one without an arch of its own gets
    // the job's (`--arch`, x86_64 by default).
    let docs = s.get_json(&format!(
        "/api/v2.0/results?item={item}&testcases=resultyaml-data.docs"
    ));
    let d = &docs["data"][0];
    assert_eq!(d["ref_url"], "https://docs.fedoraproject.org/", "{d}");
    assert_eq!(d["data"]["arch"], json!(["x86_64"]), "{d}");
    s.stop();
}

/// `--require-token-for-reads`, and token revocation.
fn reads_can_require_a_token(backend: Backend) {
    let s = Server::start("read-token", backend, &["--require-token-for-reads"]);
    let (st, code, _) = status_and_error(s.get("/api/v2.0/results"));
    assert_eq!((st, code.as_str()), (401, "unauthorized"));
    let ok = s
        .http
        .get(s.url("/api/v2.0/results"))
        .bearer_auth(&s.token)
        .send()
        .expect("GET");
    assert_eq!(ok.status(), StatusCode::OK);
    // The health check stays open for load balancers.
    assert_eq!(s.get("/api/v2.0/healthcheck").status(), StatusCode::OK);
    // The git cache under /git/ follows the same rule.
    for path in [
        "/git/manifest.js.gz",
        "/git/tasks.git/info/refs?service=git-upload-pack",
    ] {
        let (st, code, _) = status_and_error(s.get(path));
        assert_eq!((st, code.as_str()), (401, "unauthorized"), "{path}");
    }
    let manifest = s
        .http
        .get(s.url("/git/manifest.js.gz"))
        .bearer_auth(&s.token)
        .send()
        .expect("GET");
    assert_ne!(manifest.status(), StatusCode::UNAUTHORIZED);

    let out = s
        .command(&["token", "revoke", "ci"])
        .output()
        .expect("revoke");
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let after = s
        .http
        .get(s.url("/api/v2.0/results"))
        .bearer_auth(&s.token)
        .send()
        .expect("GET");
    let (st, _, msg) = status_and_error(after);
    assert_eq!((st, msg.as_str()), (401, "unknown or revoked token"));
    s.stop();
}

/// Results from the bulk path are queryable and paged (default 20); an
/// acknowledged write survives `kill -9` of the server.
fn bulk_results_page_and_survive_a_crash(backend: Backend) {
    let mut s = Server::start("bulk", backend, &[]);
    let out = s
        .command(&["store", "seed", "--results", "1200"])
        .output()
        .expect("seed");
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let page = s.get_json("/api/v2.0/results");
    assert_eq!(page["data"].as_array().map(Vec::len), Some(20));
    assert!(page["next"].as_str().is_some_and(|u| u.ends_with("page=1")));
    // Items are pkg{i % 1000}: pkg7 is results 7 and 1007, newest first.
    let item = s.get_json("/api/v2.0/results?item=pkg7-1.0-1.fc40&type=koji_build");
    let notes: Vec<&str> = item["data"]
        .as_array()
        .expect("data")
        .iter()
        .filter_map(|r| r["note"].as_str())
        .collect();
    assert_eq!(notes, ["synthetic result 1007", "synthetic result 7"]);
    let last = s.get_json("/api/v2.0/results?limit=1000&page=1");
    assert_eq!(last["data"].as_array().map(Vec::len), Some(200));
    assert_eq!(last["next"], Value::Null);

    let r = s.post(
        "/api/v2.0/results",
        &json!({"outcome": "PASSED", "testcase": "dist.durable", "data": {"item": "durable-1-1"}}),
    );
    assert_eq!(r.status(), StatusCode::CREATED);
    let id = r.json::<Value>().expect("json")["id"].as_i64().expect("id");
    assert!(id > 1200, "ids continue after the bulk insert: {id}");
    s.crash_and_restart();
    let after = s.get_json(&format!("/api/v2.0/results/{id}"));
    assert_eq!(after["testcase"]["name"], "dist.durable");
    assert_eq!(after["data"]["item"], json!(["durable-1-1"]));
    s.stop();
}

/// SIGTERM while a client follows a running job's log: the log response
/// ends and the server exits 0 (graceful shutdown does not wait for the job).
fn stopping_the_server_ends_followed_logs(backend: Backend) {
    let s = Server::start("stop-follow", backend, &[]);
    let id = uuid::Uuid::new_v4().to_string();
    let r = s.put(
        &format!("/api/v1/jobs/{id}"),
        &json!({"state": "scheduled", "item": "x", "type": "koji_build", "arch": "x86_64", "formula": "f"}),
    );
    assert_eq!(r.status(), StatusCode::OK);
    let r = s
        .http
        .put(s.url(&format!("/api/v1/jobs/{id}/artifacts/runner.log")))
        .bearer_auth(&s.token)
        .body("booting\n")
        .send()
        .expect("upload");
    assert_eq!(r.status(), StatusCode::CREATED);
    let mut live = s
        .http
        .get(s.url(&format!("/api/v1/jobs/{id}/log")))
        .send()
        .expect("log");
    let mut first = [0u8; 8];
    live.read_exact(&mut first).expect("first line");
    assert_eq!(&first, b"booting\n");
    s.stop();
    let mut rest = String::new();
    live.read_to_string(&mut rest)
        .expect("the response ends cleanly");
    assert_eq!(rest, "");
}

/// Many processes opening a fresh installation at once (workers starting
/// together, a CLI command beside a starting service) migrate its schema
/// once, on both backends: none fails on a half-applied migration.
#[test]
fn processes_starting_at_once_migrate_the_schema_once() {
    for backend in [Backend::Sqlite, Backend::Postgres] {
        let h = Harness::new(&format!("migrate-race-{backend:?}").to_lowercase());
        let db = matches!(backend, Backend::Postgres).then(|| PgDatabase::new("migrate_race"));
        let children: Vec<_> = (0..12)
            .map(|_| {
                let mut c = h.command(&["token", "list"]);
                if let Some(db) = &db {
                    c.env("FERROTRON_DATABASE_URL", &db.url);
                }
                c.stdout(std::process::Stdio::piped())
                    .stderr(std::process::Stdio::piped())
                    .spawn()
                    .expect("start ferrotron")
            })
            .collect();
        for child in children {
            let out = child.wait_with_output().expect("wait");
            assert!(
                out.status.success(),
                "{backend:?}: {}",
                String::from_utf8_lossy(&out.stderr)
            );
        }
        // And the schema is whole: a later command works on it.
        let mut c = h.command(&["token", "create", "after", "--role", "reader"]);
        if let Some(db) = &db {
            c.env("FERROTRON_DATABASE_URL", &db.url);
        }
        let out = h.run_command(c);
        assert_eq!(out.code, Some(0), "{backend:?}: {}", out.stderr);
        if db.is_none() {
            // A data folder Ferrotron makes can be passed through (by QEMU)
            // but not listed.
            let fresh = h.data_dir.join("fresh/data");
            let mut c = h.command(&["token", "list"]);
            c.env("FERROTRON_DATA_DIR", &fresh);
            assert_eq!(h.run_command(c).code, Some(0));
            use std::os::unix::fs::PermissionsExt;
            let mode = std::fs::metadata(&fresh)
                .expect("made")
                .permissions()
                .mode();
            assert_eq!(mode & 0o777, 0o711, "{mode:o}");
            // Token hashes and every job: the owner's only.
            let mode = std::fs::metadata(h.data_dir.join("ferrotron.db"))
                .expect("the database")
                .permissions()
                .mode();
            assert_eq!(mode & 0o777, 0o600);
        }
    }
}

/// Idle sockets cannot lock clients out: past `--max-connections` a new
/// connection waits for one to close, and a connection on which nothing
/// moves for `--idle-timeout` is closed, so a real request gets through.
#[test]
fn idle_connections_cannot_lock_clients_out() {
    let s = Server::start(
        "idle",
        Backend::Sqlite,
        &["--max-connections", "4", "--idle-timeout", "2"],
    );
    let addr = s.base.trim_start_matches("http://").to_string();
    let mut idle: Vec<std::net::TcpStream> = (0..4)
        .map(|_| std::net::TcpStream::connect(&addr).expect("connect"))
        .collect();
    // Every slot is taken by a silent socket; a real request still ends
    // with an answer (once the silent ones are closed).
    let answered = s.get("/api/v2.0/healthcheck");
    assert_eq!(answered.status(), StatusCode::OK);
    // And the silent sockets were closed by the server (EOF or reset).
    for sock in &mut idle {
        sock.set_read_timeout(Some(Duration::from_secs(60)))
            .expect("timeout");
        let mut buf = [0u8; 16];
        match sock.read(&mut buf) {
            Ok(0) | Err(_) => {}
            Ok(n) => panic!("an idle socket got {n} bytes"),
        }
    }
    s.stop();
}

/// One token cannot flood the queue: past `--message-limit` a message is
/// refused with 429 and when to retry, and queues nothing; another token
/// is counted apart.
#[test]
fn messages_per_token_are_limited() {
    let rules = std::env::temp_dir().join(format!("ft-rate-{}.yml", uuid::Uuid::new_v4()));
    std::fs::write(
        &rules,
        "- when: {item_type: koji_build}\n  do:\n    - tasks: [t]\n      repo: /nonexistent/tasks\n",
    )
    .expect("rules");
    let rules_arg = rules.to_string_lossy().into_owned();
    let s = Server::start(
        "rate",
        Backend::Sqlite,
        &[
            "--no-scheduler",
            "--rules",
            &rules_arg,
            "--message-limit",
            "3/3600",
        ],
    );
    let msg = |i: u32| json!({"topic": "t", "body": {"item": format!("a-{i}-1"), "item_type": "koji_build"}});
    for i in 0..3 {
        assert_eq!(
            s.post("/api/v1/messages", &msg(i)).status(),
            StatusCode::CREATED,
            "message {i}"
        );
    }
    let (st, code, message) = status_and_error(s.post("/api/v1/messages", &msg(3)));
    assert_eq!((st, code.as_str()), (429, "rate_limited"), "{message}");
    assert!(
        message.contains("may post 3 messages per 3600 s") && message.contains("retry in"),
        "{message}"
    );
    let jobs = s.get_json("/api/v1/jobs");
    assert_eq!(jobs["data"].as_array().map(Vec::len), Some(3), "{jobs}");
    let _ = std::fs::remove_file(&rules);
    s.stop();
}

/// A token's role bounds what it may do: a dashboard's reader token posts
/// nothing, a reporter records but cannot cancel, an operator may all;
/// refusals are 403 naming the role. Tokens are never made without a role.
fn tokens_have_roles(backend: Backend) {
    let s = Server::start("roles", backend, &["--require-token-for-reads"]);
    let make = |name: &str, role: &str| {
        let out = s
            .command(&["token", "create", name, "--role", role])
            .output()
            .expect("token create");
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
        String::from_utf8_lossy(&out.stdout).trim().to_string()
    };
    let reader = make("dashboard", "reader");
    let reporter = make("relay", "reporter");
    let operator = &s.token;

    let out = s
        .command(&["token", "create", "sloppy"])
        .output()
        .expect("token create");
    assert_eq!(out.status.code(), Some(2));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("--role <ROLE>"), "{err}");
    let out = s
        .command(&["token", "create", "odd", "--role", "admin"])
        .output()
        .expect("token create");
    assert_eq!(out.status.code(), Some(2));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("[possible values: reader, reporter, operator]"),
        "{err}"
    );
    let list = s.command(&["token", "list"]).output().expect("token list");
    let list = String::from_utf8_lossy(&list.stdout);
    for line in ["ci\toperator\t", "dashboard\treader\t", "relay\treporter\t"] {
        assert!(list.contains(line), "{line:?} in\n{list}");
    }
    assert!(!list.contains("sloppy") && !list.contains("odd"), "{list}");

    let send = |req: reqwest::blocking::RequestBuilder, token: &str| {
        req.bearer_auth(token).send().expect("request")
    };
    let id = uuid::Uuid::new_v4().to_string();
    let job = running_job();
    let result = json!({"testcase": "dist.roles", "outcome": "PASSED",
                        "data": {"item": "hello-1.0-1.fc40", "type": "koji_build"}});
    let forbidden = |r: Response, name: &str, role: &str, needs: &str| {
        let (st, code, msg) = status_and_error(r);
        assert_eq!(
            (st, code.as_str(), msg.as_str()),
            (
                403,
                "forbidden",
                format!("token `{name}` has the role {role}; this needs {needs}").as_str()
            )
        );
    };
    let put_job = || s.http.put(s.url(&format!("/api/v1/jobs/{id}"))).json(&job);
    let post_result = || s.http.post(s.url("/api/v2.0/results")).json(&result);
    let artifact = || {
        s.http
            .put(s.url(&format!("/api/v1/jobs/{id}/artifacts/notes.txt")))
            .body("hi")
    };
    let cancel = || s.http.post(s.url(&format!("/api/v1/jobs/{id}/cancel")));

    // The reader reads, and nothing else.
    assert_eq!(
        send(s.http.get(s.url("/api/v2.0/results")), &reader).status(),
        StatusCode::OK
    );
    forbidden(
        send(put_job(), &reader),
        "dashboard",
        "reader",
        "reporter or operator",
    );
    forbidden(
        send(post_result(), &reader),
        "dashboard",
        "reader",
        "reporter or operator",
    );
    // The reporter records.
    assert_eq!(send(put_job(), &reporter).status(), StatusCode::OK);
    assert_eq!(send(post_result(), &reporter).status(), StatusCode::CREATED);
    assert_eq!(send(artifact(), &reporter).status(), StatusCode::CREATED);
    forbidden(
        send(artifact(), &reader),
        "dashboard",
        "reader",
        "reporter or operator",
    );
    // Only the operator steers.
    forbidden(send(cancel(), &reader), "dashboard", "reader", "operator");
    forbidden(send(cancel(), &reporter), "relay", "reporter", "operator");
    let job_now = send(s.http.get(s.url(&format!("/api/v1/jobs/{id}"))), &reader);
    let job_now: Value = job_now.json().expect("json");
    assert_eq!(
        job_now["state"], "running",
        "a refused cancel changes nothing"
    );
    assert_eq!(send(cancel(), operator).status(), StatusCode::OK);
    let results = send(
        s.http.get(s.url("/api/v2.0/results?testcases=dist.roles")),
        &reader,
    );
    let results: Value = results.json().expect("json");
    assert_eq!(
        results["data"].as_array().map(Vec::len),
        Some(1),
        "{results}"
    );
    // Idling one host by name (the dashboard's hosts page, a fleet's
    // drain) is the operator's too.
    let idle = |name: &str, what: &str| s.http.post(s.url(&format!("/api/v1/hosts/{name}/{what}")));
    forbidden(
        send(idle("hv9", "idle"), &reporter),
        "relay",
        "reporter",
        "operator",
    );
    let r = send(idle("hv9", "idle"), operator);
    assert_eq!(r.status(), StatusCode::OK);
    assert_eq!(
        r.json::<Value>().expect("json"),
        json!({"name": "hv9", "idle": true})
    );
    let r = send(idle("hv9", "resume"), operator);
    assert_eq!(
        r.json::<Value>().expect("json"),
        json!({"name": "hv9", "idle": false})
    );
    let (st, code, msg) = status_and_error(send(idle("hv%209", "idle"), operator));
    assert_eq!(
        (st, code.as_str(), msg.as_str()),
        (
            400,
            "bad_host_name",
            "`hv 9` is not a host name (letters, digits, `.`, `-`, `_`)"
        )
    );
    // The job list filters by task, type and creation time as well.
    let count = |q: &str| {
        let r: Value = send(s.http.get(s.url(&format!("/api/v1/jobs?{q}"))), &reader)
            .json()
            .expect("json");
        r["data"].as_array().map_or(0, Vec::len)
    };
    assert_eq!(count("task=hello&type=koji_build&since=2024-05-01"), 1);
    assert_eq!(count("task=other"), 0);
    assert_eq!(count("until=2000-01-01"), 0);
    let (st, code, msg) = status_and_error(send(
        s.http.get(s.url("/api/v1/jobs?since=yesterday")),
        &reader,
    ));
    assert_eq!(
        (st, code.as_str(), msg.as_str()),
        (
            400,
            "bad_filter",
            "since: `yesterday` is not an ISO 8601 time"
        )
    );
    s.stop();
}

/// Links a guest left in a job's artifacts are never followed, a path the
/// file system cannot hold is a 4xx naming why, links in answers never
/// come from the request's Host header, and queries too large for the
/// database are refused before they reach it.
fn hostile_paths_hosts_and_queries_get_4xx(backend: Backend) {
    let s = Server::start("hostile", backend, &[]);
    let id = uuid::Uuid::new_v4().to_string();
    s.put_running_job(&id);
    let upload = |path: &str, bytes: &[u8]| {
        s.http
            .put(s.url(&format!("/api/v1/jobs/{id}/artifacts/{path}")))
            .bearer_auth(&s.token)
            .body(bytes.to_vec())
            .send()
            .expect("upload")
    };
    use std::os::unix::fs::PermissionsExt;
    let mode =
        |p: &std::path::Path| std::fs::metadata(p).expect("stat").permissions().mode() & 0o777;
    assert_eq!(upload("first.txt", b"x").status(), StatusCode::CREATED);
    assert_eq!(
        mode(&s.h.data_dir.join("artifacts")),
        0o700,
        "artifacts are the owner's only"
    );
    // What a guest could leave: links out of the job's folder.
    let outside = s.h.data_dir.join("outside");
    std::fs::create_dir_all(&outside).expect("mkdir");
    std::fs::write(outside.join("secret"), "host secret\n").expect("write");
    let job_dir = s.h.data_dir.join("artifacts").join(&id);
    std::fs::create_dir_all(&job_dir).expect("mkdir");
    std::os::unix::fs::symlink(&outside, job_dir.join("task_output")).expect("symlink");
    std::os::unix::fs::symlink(outside.join("secret"), job_dir.join("runner.log"))
        .expect("symlink");

    let (st, code, msg) = status_and_error(upload("task_output/evil.txt", b"x"));
    assert_eq!(
        (st, code.as_str(), msg.as_str()),
        (
            400,
            "bad_artifact_path",
            "artifact `task_output/evil.txt`: the path passes through a symbolic link"
        )
    );
    assert!(
        !outside.join("evil.txt").exists(),
        "written through the link"
    );
    let (st, _, msg) = status_and_error(s.get(&format!("/api/v1/jobs/{id}/log")));
    assert_eq!(st, 404, "{msg}");
    assert!(msg.contains("symbolic link"), "{msg}");
    // Uploading runner.log replaces the link, not the file it points to.
    assert_eq!(
        upload("runner.log", b"mine\n").status(),
        StatusCode::CREATED
    );
    assert_eq!(
        std::fs::read_to_string(outside.join("secret")).expect("kept"),
        "host secret\n"
    );

    let long = "n".repeat(300);
    let (st, code, msg) = status_and_error(upload(&long, b"x"));
    assert_eq!((st, code.as_str()), (400, "bad_artifact_path"), "{msg}");
    assert!(
        msg.ends_with("each part of the path must be at most 255 bytes"),
        "{msg}"
    );
    assert_eq!(upload("a/b.txt", b"x").status(), StatusCode::CREATED);
    let (st, code, msg) = status_and_error(upload("a/b.txt/c", b"x"));
    assert_eq!(
        (st, code.as_str(), msg.as_str()),
        (
            409,
            "artifact_conflict",
            "artifact `a/b.txt/c`: a file is where the path needs a folder"
        )
    );
    let (st, code, msg) = status_and_error(upload("a", b"x"));
    assert_eq!(
        (st, code.as_str(), msg.as_str()),
        (
            409,
            "artifact_conflict",
            "artifact `a`: a folder of that name exists"
        )
    );
    let leftovers: Vec<_> = std::fs::read_dir(&job_dir)
        .expect("ls")
        .filter_map(|e| e.ok())
        .map(|e| e.file_name().to_string_lossy().into_owned())
        .filter(|n| n.starts_with(".upload-"))
        .collect();
    assert!(leftovers.is_empty(), "{leftovers:?}");
    assert_eq!(mode(&job_dir.join("a/b.txt")), 0o600);
    assert_eq!(mode(&job_dir.join("a")), 0o700);

    // The Host header a client sends does not make the links.
    let listed: Value = s
        .http
        .get(s.url(&format!("/api/v1/jobs/{id}/artifacts")))
        .header("Host", "evil.example")
        .send()
        .expect("GET")
        .json()
        .expect("json");
    let hrefs: Vec<&str> = listed["data"]
        .as_array()
        .expect("data")
        .iter()
        .filter_map(|a| a["href"].as_str())
        .collect();
    assert!(!hrefs.is_empty(), "{listed}");
    for h in hrefs {
        assert!(
            h.starts_with(&format!("{}/api/v1/jobs/{id}/artifacts/", s.base)),
            "{h}"
        );
    }

    // Queries too large for SQL are refused, naming the bound.
    let values = |n: usize| {
        (0..n)
            .map(|i| format!("v{i}"))
            .collect::<Vec<_>>()
            .join(",")
    };
    let r = s.get(&format!("/api/v2.0/results?item={}", values(1000)));
    assert_eq!(r.status(), StatusCode::OK);
    for (q, want) in [
        (
            format!("item={}", values(1001)),
            "a query may list at most 1000 values; this one has 1001",
        ),
        (
            format!("item:like={}", values(51)),
            "a query may hold at most 50 `:like` patterns; this one has 51",
        ),
        (
            format!("testcases:like={}", values(51)),
            "a query may hold at most 50 `:like` patterns; this one has 51",
        ),
        (
            format!("name:like={}", values(51)),
            "a query may hold at most 50 `:like` patterns; this one has 51",
        ),
    ] {
        let path = if q.starts_with("name") {
            "/api/v2.0/testcases"
        } else {
            "/api/v2.0/results"
        };
        let (st, code, msg) = status_and_error(s.get(&format!("{path}?{q}")));
        assert_eq!(
            (st, code.as_str(), msg.as_str()),
            (400, "query_too_large", want),
            "{path}"
        );
    }
    let groups: Vec<String> = (0..101).map(|_| uuid::Uuid::new_v4().to_string()).collect();
    let (st, code, msg) = status_and_error(s.post(
        "/api/v2.0/results",
        &json!({"testcase": "dist.many", "outcome": "PASSED", "groups": groups,
                "data": {"item": "x", "type": "koji_build"}}),
    ));
    assert_eq!(
        (st, code.as_str(), msg.as_str()),
        (
            400,
            "too_many_groups",
            "groups: a result may be in at most 100 groups; this one lists 101"
        )
    );
    s.stop();
}

/// A bounded number of responses follow logs; the next one is told to come
/// back, and a place frees when a followed job ends.
#[test]
fn log_followers_are_bounded() {
    let s = Server::start("followers", Backend::Sqlite, &["--max-log-followers", "1"]);
    let id = uuid::Uuid::new_v4().to_string();
    s.put_running_job(&id);
    let log = format!("/api/v1/jobs/{id}/log");
    let mut first = s.get(&log);
    assert_eq!(first.status(), StatusCode::OK);
    let (st, code, msg) = status_and_error(s.get(&log));
    assert_eq!((st, code.as_str()), (503, "too_many_followers"), "{msg}");
    assert!(
        msg.starts_with("1 logs are being followed already (--max-log-followers)"),
        "{msg}"
    );
    // Output wakes the follower; the end of the job ends the response.
    let log_path = s.h.data_dir.join("artifacts").join(&id).join("runner.log");
    std::fs::create_dir_all(log_path.parent().expect("parent")).expect("mkdir");
    std::fs::write(&log_path, "booted\n").expect("write");
    let mut line = [0u8; 7];
    first.read_exact(&mut line).expect("the line arrives");
    assert_eq!(&line, b"booted\n");
    let r = s
        .http
        .post(s.url(&format!("/api/v1/jobs/{id}/cancel")))
        .bearer_auth(&s.token)
        .send()
        .expect("cancel");
    assert_eq!(r.status(), StatusCode::OK);
    let mut rest = String::new();
    first.read_to_string(&mut rest).expect("ends with the job");
    drop(first);
    // The place is free again (the ended job's log is read whole).
    let deadline = std::time::Instant::now() + Duration::from_secs(120);
    loop {
        let r = s.get(&log);
        if r.status() == StatusCode::OK {
            assert_eq!(r.text().expect("text"), "booted\n");
            break;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "the follower's place was never freed"
        );
        std::thread::sleep(Duration::from_millis(200));
    }
    s.stop();
}

/// A client that trickles its headers one byte at a time is never idle,
/// so the idle time-out alone would keep its connection (and its slot)
/// for good: the header time-out closes it while it is still trickling,
/// and a real request gets its slot.
#[test]
fn trickled_headers_cannot_hold_a_connection() {
    let s = Server::start(
        "slowloris",
        Backend::Sqlite,
        &[
            "--max-connections",
            "2",
            "--idle-timeout",
            "600",
            "--header-timeout",
            "2",
        ],
    );
    let addr = s.base.trim_start_matches("http://").to_string();
    let trickle = || {
        let addr = addr.clone();
        std::thread::spawn(move || {
            let mut sock = std::net::TcpStream::connect(&addr).expect("connect");
            sock.write_all(b"GET /api/v2.0/healthcheck HTTP/1.1\r\nHost: x\r\nX-Slow: ")
                .expect("request line");
            // Up to ten minutes of one byte every 200 ms: the server must
            // close it long before (a write fails once it has).
            for _ in 0..3000 {
                std::thread::sleep(Duration::from_millis(200));
                if sock.write_all(b"a").is_err() {
                    return true;
                }
            }
            false
        })
    };
    let slow: Vec<_> = (0..2).map(|_| trickle()).collect();
    let answered = s.get("/api/v2.0/healthcheck");
    assert_eq!(answered.status(), StatusCode::OK);
    for t in slow {
        assert!(
            t.join().expect("trickler"),
            "a trickling client kept its connection"
        );
    }
    s.stop();
}
