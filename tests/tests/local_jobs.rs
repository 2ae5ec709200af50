//! The local runner (`ferrotron run` without `--libvirt`): same formulas,
//! same agent, same outputs and exit statuses as a VM run, on this host.

use std::time::Duration;

use ferrotron_tests::Harness;
use nix::sys::signal::Signal;

fn local<'a>(item: &'a str, formula: &'a str) -> Vec<&'a str> {
    vec!["run", "-i", item, "-t", "koji_build", formula]
}

#[test]
fn local_run_passes_with_tap_and_artifacts() {
    let h = Harness::new("local-pass");
    let out = h.run(&local("hello-1.0-1.fc40", "examples/hello/runtask.yml"));
    assert_eq!(out.code, Some(0), "{}", out.stderr);
    assert!(
        out.stdout.starts_with(
            "TAP version 13\n1..2\nok 1 - hello.inspect the guest for hello-1.0-1.fc40\n"
        ),
        "{}",
        out.stdout
    );
    assert!(
        out.stderr.contains("[1/3] prepare") && out.stderr.contains("[3/3] collect"),
        "{}",
        out.stderr
    );
    let dir = h.job_dir(&out.job_id().expect("job id"));
    for f in [
        "runner.log",
        "job.json",
        "task/runtask.yml",
        "artifacts/results.tap",
        "artifacts/results.json",
    ] {
        assert!(dir.join(f).is_file(), "missing {f}");
    }
}

#[test]
fn local_failure_is_exit_1() {
    let h = Harness::new("local-fail");
    let out = h.run(&local("x-1-1", "tests/fixtures/failing/runtask.yml"));
    assert_eq!(out.code, Some(1), "{}", out.stderr);
    assert!(
        out.stdout.contains("not ok 1 - failing.fail for x-1-1"),
        "{}",
        out.stdout
    );
    assert!(!out.stderr.contains("should not run"), "{}", out.stderr);
}

#[test]
fn local_hostile_item_runs_nothing() {
    let h = Harness::new("local-hostile");
    let marker = h.data_dir.join("pwned");
    let item = format!("$(touch {m}); `touch {m}`-1-1", m = marker.display());
    let out = h.run(&local(&item, "tests/fixtures/with-export/runtask.yml"));
    assert_eq!(out.code, Some(0), "{}", out.stderr);
    assert!(
        out.stderr
            .contains(&format!("item {item} has {} characters", item.len())),
        "{}",
        out.stderr
    );
    assert!(!marker.exists(), "the item was executed");
}

#[test]
fn local_sigterm_stops_the_task_and_its_children() {
    let h = Harness::new("local-sigterm");
    let mut p = h.spawn(&local("x-1-1", "tests/fixtures/local-sleep/runtask.yml"));
    p.wait_for("sleeping now", Duration::from_secs(30));
    p.signal(Signal::SIGTERM);
    let (code, stderr) = p.finish(Duration::from_secs(20));
    assert_eq!(code, Some(3), "{stderr}");
    assert!(stderr.contains("interrupted by SIGTERM"), "{stderr}");
    // The task's `sleep 987` went with the agent's process group.
    std::thread::sleep(Duration::from_millis(300));
    let left: Vec<String> = std::fs::read_dir("/proc")
        .expect("proc")
        .flatten()
        .filter_map(|e| std::fs::read(e.path().join("cmdline")).ok())
        .map(|c| String::from_utf8_lossy(&c).replace('\0', " "))
        .filter(|c| c.trim() == "sleep 987")
        .collect();
    assert!(left.is_empty(), "task processes left: {left:?}");
}

#[test]
fn formula_check_reports_each_file() {
    let h = Harness::new("formula-check");
    let out = h.run(&[
        "formula",
        "check",
        "examples/hello/runtask.yml",
        "tests/fixtures/bad-formula/runtask.yml",
    ]);
    assert_eq!(out.code, Some(2));
    assert_eq!(
        out.stdout.trim(),
        "examples/hello/runtask.yml: ok (2 action(s))"
    );
    assert!(
        out.stderr.contains(
            "tests/fixtures/bad-formula/runtask.yml:10: actions[0].timout: unknown field"
        ),
        "{}",
        out.stderr
    );
    let out = h.run(&["formula", "check", "examples/hello/runtask.yml"]);
    assert_eq!(out.code, Some(0));
}

#[test]
fn local_and_vm_runs_give_the_same_results() {
    let h = Harness::new("parity");
    for formula in [
        "tests/fixtures/with-export/runtask.yml",
        "tests/fixtures/failing/runtask.yml",
        "examples/rpm-sanity/runtask.yml",
        "tests/fixtures/bad-results/runtask.yml",
        "examples/whitespace-lint/runtask.yml",
        "examples/fails-on-purpose/runtask.yml",
        "examples/nvr-policy/runtask.yml",
        "examples/resultyaml-data/runtask.yml",
        "tests/fixtures/argv/runtask.yml",
        "examples/python-versions/runtask.yml",
    ] {
        // The linter takes a git commit; the others a Koji build.
        let item_type = if formula.contains("whitespace-lint") {
            "git_commit"
        } else {
            "koji_build"
        };
        let l = h.run(&["run", "-i", "same-1.0-1", "-t", item_type, formula]);
        let v = h.run(&[
            "run",
            "--libvirt",
            "-i",
            "same-1.0-1",
            "-t",
            item_type,
            formula,
        ]);
        assert_eq!(
            l.code, v.code,
            "{formula}: local {:?} vs vm {:?}\n{}",
            l.code, v.code, v.stderr
        );
        let summary = |tap: &str| -> Vec<String> {
            tap.lines()
                .filter(|l| {
                    l.starts_with("ok ")
                        || l.starts_with("not ok ")
                        || l.trim_start().starts_with("outcome:")
                })
                .map(str::to_string)
                .collect()
        };
        assert_eq!(summary(&l.stdout), summary(&v.stdout), "{formula}");
        h.assert_nothing_left(&v.job_id().expect("job id"));
    }
}

#[test]
fn reported_resultyaml_becomes_the_jobs_results() {
    let h = Harness::new("local-resultyaml");
    let out = h.run(&local("foo-1.2-3", "examples/rpm-sanity/runtask.yml"));
    assert_eq!(out.code, Some(1), "{}", out.stderr);
    assert!(
        out.stdout.starts_with("TAP version 13\n1..3\n"),
        "{}",
        out.stdout
    );
    assert!(
        out.stdout
            .contains("ok 1 - rpm-sanity.name for foo-1.2-3\n"),
        "{}",
        out.stdout
    );
    assert!(
        out.stdout
            .contains("not ok 3 - rpm-sanity.dist-tag for foo-1.2-3\n"),
        "{}",
        out.stdout
    );
    let yml = std::fs::read_to_string(
        h.job_dir(&out.job_id().expect("job id"))
            .join("artifacts/results.yml"),
    )
    .expect("results.yml");
    assert!(
        yml.contains("\"rule\": \"release carries a dist tag"),
        "extra keys are kept in results.yml:\n{yml}"
    );
    let out = h.run(&local("foo-1.2-3.fc40", "examples/rpm-sanity/runtask.yml"));
    assert_eq!(out.code, Some(0), "{}", out.stderr);
}

#[test]
fn malformed_results_are_reported_not_dropped() {
    let h = Harness::new("local-bad-results");
    let out = h.run(&local("x-1-1", "tests/fixtures/bad-results/runtask.yml"));
    assert_eq!(out.code, Some(1), "{}", out.stderr);
    assert!(
        out.stdout.contains("ok 1 - bad.two for x-1-1"),
        "{}",
        out.stdout
    );
    assert!(
        out.stdout.contains("outcome: \"NEEDS_INSPECTION\""),
        "{}",
        out.stdout
    );
    assert!(
        out.stdout
            .contains(r#"summary: "results line 3: unknown outcome \"PASSSED\"""#),
        "{}",
        out.stdout
    );
}

#[test]
fn linter_reports_one_tap_point_per_file() {
    let h = Harness::new("local-lint");
    let out = h.run(&[
        "run",
        "-i",
        "0123abcd",
        "-t",
        "git_commit",
        "examples/whitespace-lint/runtask.yml",
    ]);
    assert_eq!(out.code, Some(1), "{}", out.stderr);
    assert!(
        out.stdout.starts_with("TAP version 13\n1..4\n"),
        "{}",
        out.stdout
    );
    assert!(
        out.stdout
            .contains("not ok 1 - whitespace-lint.Makefile for 0123abcd"),
        "{}",
        out.stdout
    );
    assert!(
        out.stdout
            .contains("ok 3 - whitespace-lint.src.hello.py for 0123abcd"),
        "{}",
        out.stdout
    );
    assert!(
        out.stdout
            .contains(r#"summary: "trailing whitespace on lines 2; tabs on lines 2""#),
        "{}",
        out.stdout
    );
}

#[test]
fn exitcode_directive_picks_the_result_that_decides() {
    let h = Harness::new("local-exitcode");
    let out = h.run(&local("x-1-1", "tests/fixtures/exitcode/runtask.yml"));
    assert_eq!(
        out.code,
        Some(0),
        "the first result passed:\n{}",
        out.stderr
    );
    assert!(
        out.stdout
            .contains("not ok 2 - exitcode.advisory for x-1-1"),
        "{}",
        out.stdout
    );
    // The same task deciding on its last result fails.
    let last = h.data_dir.join("last");
    std::fs::create_dir_all(&last).expect("mkdir");
    let fixture = ferrotron_tests::workspace().join("tests/fixtures/exitcode");
    let formula = std::fs::read_to_string(fixture.join("runtask.yml"))
        .expect("read fixture")
        .replace("result_first", "result_last");
    std::fs::write(last.join("runtask.yml"), formula).expect("write");
    std::fs::copy(fixture.join("emit.sh"), last.join("emit.sh")).expect("copy");
    let path = last.join("runtask.yml");
    let out = h.run(&local("x-1-1", path.to_str().expect("utf-8 path")));
    assert_eq!(out.code, Some(1), "the last result failed:\n{}", out.stderr);
}
