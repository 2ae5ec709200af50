//! The dashboard in a real browser (headless Chromium through
//! chromedriver, `ferrotron_tests::webdriver`) against the real `ferrotron
//! serve` on 127.0.0.1: jobs run by the local runner and reported to it
//! (`ferrotron run --report`), and jobs recorded over the API to watch
//! their states change. It checks what a person sees: the list updating
//! without a reload, a job's timeline, log, results and artifacts, an
//! item's history of two runs, a testcase's rate, search finding a printed
//! word and opening the file at its line, cancel and host idle from the
//! pages, a hostile item shown as text, no page wider than a phone, and no
//! policy violation in the browser's log.

use std::time::Duration;

use ferrotron_tests::webdriver::Browser;
use ferrotron_tests::{Harness, Running};
use nix::sys::signal::Signal;
use serde_json::{json, Value};

/// Waits for what a page shows: generous, never a measure of speed.
const SEE: Duration = Duration::from_secs(60);

struct Server {
    h: Harness,
    proc: Option<Running>,
    base: String,
    token: String,
    http: reqwest::blocking::Client,
}

impl Server {
    fn start() -> Server {
        let h = Harness::new("web");
        let out = h.run(&["token", "create", "ops", "--role", "operator"]);
        assert_eq!(out.code, Some(0), "{}", out.stderr);
        let token = out.stdout.trim().to_string();
        let mut c = h.command(&["serve", "--listen", "127.0.0.1:0"]);
        c.stdout(std::process::Stdio::piped())
            .stderr(std::process::Stdio::piped());
        let mut proc = Running::from_command(c);
        let line = proc.wait_for("listening on ", Duration::from_secs(60));
        let base = line
            .split("listening on ")
            .nth(1)
            .expect("url")
            .trim()
            .to_string();
        Server {
            h,
            proc: Some(proc),
            base,
            token,
            http: reqwest::blocking::Client::builder()
                .timeout(Duration::from_secs(60))
                .build()
                .expect("client"),
        }
    }

    fn url(&self, path: &str) -> String {
        format!("{}{path}", self.base)
    }

    /// Records a job (or moves it) over the API, as a runner does.
    fn put_job(&self, uuid: &str, body: &Value) {
        let r = self
            .http
            .put(self.url(&format!("/api/v1/jobs/{uuid}")))
            .bearer_auth(&self.token)
            .json(body)
            .send()
            .expect("PUT job");
        assert_eq!(r.status().as_u16(), 200, "{}", r.text().unwrap_or_default());
    }

    fn job(&self, uuid: &str) -> Value {
        self.http
            .get(self.url(&format!("/api/v1/jobs/{uuid}")))
            .send()
            .expect("GET job")
            .json()
            .expect("json")
    }

    /// Runs `formula` on this host for `item`, reported to the server;
    /// returns the job's uuid.
    fn run(&self, formula: &str, item: &str) -> String {
        let out = self
            .h
            .command(&[
                "run",
                "-i",
                item,
                "-t",
                "koji_build",
                formula,
                "--report",
                &self.base,
            ])
            .env("FERROTRON_TOKEN", &self.token)
            .output()
            .expect("run");
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(0), "{stderr}");
        ferrotron_tests::job_id_in(&stderr).expect("job id")
    }

    fn stop(mut self) {
        if let Some(p) = self.proc.take() {
            p.signal(Signal::SIGTERM);
            let (code, log) = p.finish(Duration::from_secs(60));
            assert_eq!(code, Some(0), "server log:\n{log}");
            assert!(!log.contains("dashboard page failed"), "server log:\n{log}");
        }
    }
}

/// A task that prints `word` and reports one passing result.
fn task(h: &Harness, word: &str) -> String {
    let dir = h.data_dir.join("printing");
    std::fs::create_dir_all(&dir).expect("task dir");
    std::fs::write(
        dir.join("runtask.yml"),
        format!(
            "name: printing\ndesc: prints a word\nmaintainer: ferrotron-tests\ninput:\n  args:\n    - koji_build\n\n\
             actions:\n  - name: say it\n    shell:\n      - echo \"a line before\"\n      - echo \"the word is {word} here\"\n\n\
             \x20 - name: report\n    resultsdb:\n      file: results.yml\n"
        ),
    )
    .expect("formula");
    std::fs::write(
        dir.join("results.yml"),
        "results:\n  - checkname: dashboard.printing\n    outcome: PASSED\n    note: all good\n",
    )
    .expect("results");
    dir.join("runtask.yml").display().to_string()
}

fn running(item: &str) -> Value {
    json!({"state": "running", "item": item, "type": "koji_build", "arch": "x86_64",
           "formula": "watched",
           "transitions": [
               {"state": "queued", "at": "2026-01-01T10:00:00Z"},
               {"state": "scheduled", "at": "2026-01-01T10:00:01Z"},
               {"state": "running", "at": "2026-01-01T10:00:05Z"}]})
}

/// Text of the element `css`, once it exists.
fn text_of(b: &Browser, css: &str) -> String {
    b.wait_for(css, SEE, |b| b.text(css))
}

/// The page's width fits a phone's (390 px), with a screenshot kept
/// under the data folder (and in `$FERROTRON_SCREENSHOTS`, for the docs).
fn fits_a_phone(b: &Browser, h: &Harness, name: &str) {
    assert!(
        !b.has_horizontal_overflow(),
        "{name} is wider than a phone: {}",
        b.url()
    );
    b.save_screenshot(h.data_dir.join(format!("{name}-phone.png")));
}

fn screenshot(b: &Browser, name: &str) {
    if let Ok(dir) = std::env::var("FERROTRON_SCREENSHOTS") {
        b.save_screenshot(std::path::Path::new(&dir).join(format!("{name}.png")));
    }
}

#[test]
fn what_a_person_sees_in_the_dashboard() {
    let s = Server::start();
    let tag = uuid::Uuid::new_v4().simple().to_string();
    let word = format!("zw{}", &tag[..12]);
    let item = format!("dash-{}-1.fc40", &tag[..8]);
    let formula = task(&s.h, &word);
    let first = s.run(&formula, &item);
    let second = s.run(&formula, &item);

    let b = Browser::start();
    b.set_window_size(1280, 1000);

    // The list: both runs, newest first, each linking to its page.
    b.goto(&s.url("/"));
    // The list is a live part of the page, replaced every two seconds:
    // it is read in one step, never through element references.
    let ids = b.wait_for("both runs listed", SEE, |b| {
        let ids = b.attrs("tbody#jobs tr[data-job]", "data-job");
        (ids.len() >= 2).then_some(ids)
    });
    assert_eq!(ids[..2], [second.clone(), first.clone()]);
    screenshot(&b, "jobs");

    // Live: a job recorded now appears, and its state changes, without
    // the page being reloaded (a mark set on it stays).
    b.execute("window.ferrotronMark = 'kept';", vec![]);
    let watched = uuid::Uuid::new_v4().to_string();
    s.put_job(&watched, &running(&format!("watched-{}", &tag[..6])));
    let sel = format!("tbody#jobs tr[data-job=\"{watched}\"]");
    b.wait_for("the new job in the list", SEE, |b| {
        (!b.attrs(&sel, "data-job").is_empty()).then_some(())
    });
    let mut done = running("x");
    for state in ["reporting", "passed"] {
        done["state"] = json!(state);
        s.put_job(&watched, &done);
    }
    b.wait_for("its state turning passed", SEE, |b| {
        b.attrs(&sel, "data-state")
            .contains(&"passed".to_string())
            .then_some(())
    });
    assert_eq!(
        b.execute("return window.ferrotronMark;", vec![]),
        json!("kept"),
        "the page was reloaded"
    );

    // A job's page: timeline, phases, results, artifacts, log.
    b.goto(&s.url(&format!("/jobs/{first}")));
    let timeline = text_of(&b, "table.timeline");
    for state in ["queued", "running", "passed"] {
        assert!(timeline.contains(state), "{timeline}");
    }
    assert!(!b.find_all("tr.phase").is_empty(), "no phases shown");
    let results = text_of(&b, "#results");
    assert!(
        results.contains("dashboard.printing") && results.contains("PASSED"),
        "{results}"
    );
    let artifacts = text_of(&b, "#artifacts");
    assert!(artifacts.contains("runner.log"), "{artifacts}");
    let log = text_of(&b, "#log");
    assert!(log.contains(&word), "the log does not show the word: {log}");
    screenshot(&b, "job");

    // The item's history: two runs, the latest outcome first.
    b.goto(&s.url(&format!("/items/{item}")));
    let latest = text_of(&b, "#latest");
    assert!(latest.contains("dashboard.printing"), "{latest}");
    let jobs = text_of(&b, "#jobs");
    for id in [&first, &second] {
        assert!(jobs.contains(&id[..8]), "{id} missing: {jobs}");
    }
    screenshot(&b, "item");

    // The testcase: its rate over the two results.
    b.goto(&s.url("/testcases/dashboard.printing"));
    let rate = text_of(&b, "#rate");
    assert!(rate.contains("100.0% passed of 2 results"), "{rate}");
    assert!(b.try_find("svg.plot").is_some());
    screenshot(&b, "testcase");

    // Search: the printed word, highlighted; its link opens the log at
    // that line.
    b.goto(&s.url("/search"));
    b.find("#q").send_keys(&word);
    b.find("form[role=search] button").click();
    let mark = text_of(&b, "li.hit mark");
    assert_eq!(mark, word);
    screenshot(&b, "search");
    b.find("li.hit a.where").click();
    let line = b.wait_for("the line the link points at", SEE, |b| {
        b.try_find("tr:target")
    });
    assert!(line.text().contains(&word), "{}", line.text());
    assert!(
        b.url().contains("/files/") && b.url().contains("#L"),
        "{}",
        b.url()
    );

    // A hostile item name is text: no element is made from it.
    let hostile = "<img src=x id=pwned onerror=\"document.title='pwned'\">&\"'";
    let bad = uuid::Uuid::new_v4().to_string();
    s.put_job(&bad, &running(hostile));
    b.goto(&s.url(&format!("/jobs/{bad}")));
    assert_eq!(text_of(&b, "h1 small"), hostile);
    assert!(b.try_find("#pwned").is_none());
    assert_ne!(b.title(), "pwned");

    // Cancel, once signed in with an operator token.
    assert!(
        b.try_find("#cancel").is_none(),
        "cancel shown before sign-in"
    );
    b.goto(&s.url(&format!("/login?next=/jobs/{bad}")));
    b.find("#token").send_keys(&s.token);
    b.find("form.stack button").click();
    let cancel = b.wait_for("the cancel button", SEE, |b| b.try_find("#cancel"));
    cancel.click();
    b.wait_for("the job shown cancelled", SEE, |b| {
        b.text("#summary .badge").filter(|t| t == "cancelled")
    });
    assert_eq!(s.job(&bad)["state"], "cancelled");

    // Hosts: this server's host, idled and resumed from its page.
    b.goto(&s.url("/hosts"));
    let idle = b.wait_for("this host's idle button", SEE, |b| {
        b.try_find("button[data-host-action=idle]")
    });
    idle.click();
    let resume = b.wait_for("the host shown idle", SEE, |b| {
        b.try_find("button[data-host-action=resume]")
    });
    assert!(text_of(&b, "article.host h2").contains("idle"));
    let status = s.h.run(&["host", "status"]);
    assert!(status.stdout.contains("idle"), "{}", status.stdout);
    resume.click();
    b.wait_for("the host taking jobs again", SEE, |b| {
        b.try_find("button[data-host-action=idle]")
    });
    screenshot(&b, "hosts");
    b.goto(&s.url("/queue"));
    assert!(text_of(&b, "#depth").contains("waiting"));
    screenshot(&b, "queue");

    // Every page fits a phone's width.
    b.set_window_size(390, 1000);
    for (name, path) in [
        ("jobs", "/".to_string()),
        ("job", format!("/jobs/{first}")),
        ("item", format!("/items/{item}")),
        ("testcase", "/testcases/dashboard.printing".to_string()),
        ("hosts", "/hosts".to_string()),
        ("queue", "/queue".to_string()),
        ("search", format!("/search?q={word}")),
    ] {
        b.goto(&s.url(&path));
        b.wait_for("the page", SEE, |b| b.try_find("main h1"));
        fits_a_phone(&b, &s.h, name);
    }
    let errors = b.console_errors();
    assert!(errors.is_empty(), "the browser logged: {errors:?}");
    drop(b);
    s.stop();
}
