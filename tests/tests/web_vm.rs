//! The dashboard's job page for jobs the service runs in real VMs, seen in
//! headless Chromium (`ferrotron_tests::webdriver`): a boot that fails
//! shows the VM's console, and a running job's log grows on the page as
//! the task prints, without a reload. (tests/tests/web.rs covers the rest
//! of the dashboard with jobs that need no VM.)

use std::time::{Duration, Instant};

use ferrotron_tests::service::{assert_runs_left_nothing, submit, token, Service};
use ferrotron_tests::webdriver::Browser;
use ferrotron_tests::{workspace, Harness};

/// Waits for what a page or a job shows: generous, never a measure of
/// speed.
const SEE: Duration = Duration::from_secs(200);

/// `ferrotron.net=off` makes the guest report that it cannot work (see
/// `fatal` in docs/images.md): the job ends in `error` without waiting
/// for an SSH deadline, and its console says why.
#[test]
fn a_failed_boot_shows_the_console_on_the_job_page() {
    let h = Harness::new("web-vm-boot");
    let s = Service::start(
        &h,
        &["--kernel-arg", "ferrotron.net=off", "--lease-secs", "120"],
        &[],
    );
    let hello = workspace().join("examples/hello");
    let uuid = submit(&h, &hello, "hello-1.0-1.fc40", &["--max-attempts", "1"]);
    let j = s.wait_final(&uuid);
    assert_eq!(j["state"], "error", "{j}");

    let b = Browser::start();
    b.goto(&format!("{}/jobs/{uuid}", s.base));
    let fatal = "ferrotron: fatal: no network: disabled by ferrotron.net=off";
    let console = b.wait_for("the console section", SEE, |b| {
        b.text("section#console pre")
    });
    assert!(console.contains(fatal), "console shown:\n{console}");
    let page = b.visible_text();
    assert!(page.contains("error"), "{page}");
    // The link to the whole console opens it as a file.
    b.find("section#console a[href$='/files/console.log']")
        .click();
    let whole = b.wait_for("the console file", SEE, |b| {
        b.url()
            .ends_with("/files/console.log")
            .then(|| b.visible_text())
    });
    assert!(whole.contains(fatal), "{whole}");
    assert_eq!(b.console_errors(), Vec::<String>::new());
    drop(b);
    s.stop();
    assert_runs_left_nothing(&h, 1);
}

/// A task that prints `tick N` every second for half an hour: still
/// printing whenever the test looks; the test cancels it.
fn ticking_task(h: &Harness) -> std::path::PathBuf {
    let dir = h.data_dir.join("ticking");
    std::fs::create_dir_all(&dir).expect("mkdir");
    std::fs::write(
        dir.join("runtask.yml"),
        "name: ticking\ndesc: prints forever\nmaintainer: ferrotron-tests\ninput:\n  args: [koji_build]\n\
         actions:\n  - name: tick\n    shell:\n      - i=0; while [ $i -lt 1800 ]; do i=$((i+1)); echo \"tick $i\"; sleep 1; done\n    timeout: 2000\n",
    )
    .expect("write formula");
    dir
}

/// The highest `tick N` in `text` (lines of runner.log: a time, `|`, the
/// task's line).
fn last_tick(text: &str) -> Option<u32> {
    text.lines()
        .filter_map(|l| l.rsplit_once("| tick ")?.1.trim().parse().ok())
        .max()
}

#[test]
fn a_running_jobs_log_grows_on_its_page_without_a_reload() {
    let h = Harness::new("web-vm-live");
    let t = token(&h);
    let s = Service::start(&h, &["--max-vms", "1", "--lease-secs", "120"], &[]);
    let uuid = submit(&h, &ticking_task(&h), "ticking-1.0-1.fc40", &[]);
    // Open the page once the job runs (its log then grows on the page).
    let deadline = Instant::now() + SEE;
    loop {
        let j = s.job(&uuid);
        match j["state"].as_str().unwrap_or("") {
            "running" => break,
            "passed" | "failed" | "error" | "cancelled" => panic!("the job ended: {j}"),
            _ => {}
        }
        assert!(Instant::now() < deadline, "the job is not running: {j}");
        std::thread::sleep(Duration::from_millis(300));
    }

    let b = Browser::start();
    b.goto(&format!("{}/jobs/{uuid}", s.base));
    b.execute("window.__notReloaded = true;", vec![]);
    let first = b.wait_for("a tick in the page's log", SEE, |b| {
        b.text("pre#log").and_then(|t| last_tick(&t))
    });
    // Later lines arrive on the same page: the mark set on this window
    // is still there, so nothing reloaded it.
    let later = b.wait_for("later ticks on the same page", SEE, |b| {
        b.text("pre#log")
            .and_then(|t| last_tick(&t))
            .filter(|&n| n >= first + 3)
    });
    assert!(later > first);
    assert_eq!(
        b.execute("return window.__notReloaded === true;", vec![]),
        serde_json::json!(true),
        "the page reloaded"
    );
    assert_eq!(b.console_errors(), Vec::<String>::new());
    drop(b);

    s.cancel(&t, &uuid);
    let j = s.wait_final(&uuid);
    assert_eq!(j["state"], "cancelled", "{j}");
    s.stop();
    assert_runs_left_nothing(&h, 1);
}
