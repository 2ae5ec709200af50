//! The `koji`, `bodhi` and `distgit` directives through `ferrotron run`
//! (the local runner; `vm_jobs` runs one in a VM) against the stand-ins for
//! Fedora's services (tests/fixtures/fedora-standins: real RPMs built with
//! rpmbuild, served on 127.0.0.1; **not** Fedora's services).

use ferrotron_tests::standins::Standins;
use ferrotron_tests::{workspace, Harness};

const HELLO: &str = "hello-1.0-1.fc41";

/// `ferrotron <stand-in flags> run -i ITEM -t TYPE FORMULA`.
fn run(
    h: &Harness,
    s: &Standins,
    item: &str,
    item_type: &str,
    formula: &str,
) -> ferrotron_tests::Output {
    let flags = s.flags();
    let mut args: Vec<&str> = flags.iter().map(String::as_str).collect();
    args.extend([
        "run", "-i", item, "-t", item_type, "--arch", "x86_64", formula,
    ]);
    h.run(&args)
}

/// A task of one download action and a check that lists what arrived.
fn task(h: &Harness, name: &str, download: &str) -> String {
    let dir = h.data_dir.join("tasks").join(name);
    std::fs::create_dir_all(&dir).expect("mkdir");
    std::fs::copy(
        workspace().join("tests/fixtures/koji-download/check_downloads.py"),
        dir.join("check_downloads.py"),
    )
    .expect("copy");
    let text = format!(
        "name: {name}\ndesc: d\nmaintainer: m\ninput:\n  args: [item, arch]\nactions:\n  - name: download\n{download}    export: got\n  - name: check\n    exec:\n      program: python3\n      args: [check_downloads.py, \"${{got}}\"]\n    export: tap\n  - name: report\n    resultsdb:\n      results: ${{tap}}\n"
    );
    let p = dir.join("runtask.yml");
    std::fs::write(&p, text).expect("write");
    p.display().to_string()
}

#[test]
fn a_koji_build_arrives_in_the_work_folder_and_is_fetched_once() {
    let h = Harness::new("dl-koji");
    let s = Standins::start(&h.data_dir);
    let formula = workspace().join("tests/fixtures/koji-download/runtask.yml");
    let out = run(
        &h,
        &s,
        HELLO,
        "koji_build",
        formula.to_str().expect("utf-8"),
    );
    assert_eq!(out.code, Some(0), "{}", out.stderr);
    for line in ferrotron_tests::standins::HELLO_X86_64_TAP {
        assert!(out.stdout.contains(line), "{line:?} in\n{}", out.stdout);
    }
    assert!(
        !out.stdout.contains("debuginfo") && !out.stdout.contains(".src.rpm"),
        "{}",
        out.stdout
    );
    let fetched = s.file_requests();
    assert!(fetched >= 2, "{}", s.requests());
    // A second job for the same build is served by the host's cache.
    let again = run(
        &h,
        &s,
        HELLO,
        "koji_build",
        formula.to_str().expect("utf-8"),
    );
    assert_eq!(again.code, Some(0), "{}", again.stderr);
    assert!(
        again.stdout.contains("ok 2 - hello-1.0-1.fc41.x86_64.rpm"),
        "{}",
        again.stdout
    );
    assert_eq!(
        s.file_requests(),
        fetched + 1,
        "only the missing noarch log is asked for again: {}",
        s.requests()
    );
}

#[test]
fn missing_builds_updates_and_files_are_the_jobs_error_and_outages_infrastructure() {
    let h = Harness::new("dl-errors");
    let s = Standins::start(&h.data_dir);
    let koji = task(
        &h,
        "koji",
        "    koji:\n      action: download\n      koji_build: ${item}\n      arch: ${arch}\n      target_dir: ${workdir}/rpms\n",
    );
    let out = run(&h, &s, "nosuch-1.0-1.fc41", "koji_build", &koji);
    assert_eq!(out.code, Some(2), "{}", out.stderr);
    assert!(out.stderr.contains("nosuch-1.0-1.fc41"), "{}", out.stderr);

    s.outage(503);
    let out = run(&h, &s, HELLO, "koji_build", &koji);
    s.outage_over();
    assert_eq!(
        out.code,
        Some(3),
        "an outage is the infrastructure's: {}",
        out.stderr
    );
    assert!(out.stderr.contains("download"), "{}", out.stderr);

    let bodhi = task(
        &h,
        "bodhi",
        "    bodhi:\n      action: download\n      update_id: ${item}\n      arch: ${arch}\n      target_dir: ${workdir}/rpms\n",
    );
    let out = run(&h, &s, "FEDORA-2026-abc123", "bodhi_update", &bodhi);
    assert_eq!(out.code, Some(0), "{}", out.stderr);
    for f in [
        "hello-1.1-1.fc41.x86_64.rpm",
        "hello-doc-1.1-1.fc41.noarch.rpm",
        "libfoo-0.5-3.fc41.noarch.rpm",
    ] {
        assert!(out.stdout.contains(f), "{f} in\n{}", out.stdout);
    }
    let out = run(&h, &s, "FEDORA-2026-nosuch", "bodhi_update", &bodhi);
    assert_eq!(out.code, Some(2), "{}", out.stderr);
    assert!(out.stderr.contains("FEDORA-2026-nosuch"), "{}", out.stderr);

    let distgit = |ignore: bool| {
        task(
            &h,
            &format!("distgit-{ignore}"),
            &format!("    distgit:\n      package: hello\n      gitref: f41\n      path: [hello.spec, no/such/file]\n      ignore_missing: {ignore}\n      target_dir: ${{workdir}}/dg\n"),
        )
    };
    let out = run(&h, &s, HELLO, "koji_build", &distgit(false));
    assert_eq!(out.code, Some(2), "{}", out.stderr);
    assert!(out.stderr.contains("no/such/file"), "{}", out.stderr);
    let out = run(&h, &s, HELLO, "koji_build", &distgit(true));
    assert_eq!(out.code, Some(0), "{}", out.stderr);
}
