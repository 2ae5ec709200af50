//! One job in one disposable VM, end to end, with real libvirt, QEMU (TCG
//! here), SSH and the guest agent. Each test checks what a user sees (exit
//! status, message, TAP) and that nothing is left behind.

use std::time::Duration;

use ferrotron_tests::{domain_exists, Harness};
use nix::sys::signal::Signal;

const ITEM: &str = "hello-1.0-1.fc40";

fn run_args<'a>(formula: &'a str, extra: &[&'a str]) -> Vec<&'a str> {
    let mut v = vec!["run", "--libvirt", "-i", ITEM, "-t", "koji_build"];
    v.extend_from_slice(extra);
    v.push(formula);
    v
}

#[test]
fn passing_task_prints_tap_and_cleans_up() {
    let h = Harness::new("passing");
    let out = h.run(&run_args("examples/hello/runtask.yml", &[]));
    assert_eq!(out.code, Some(0), "stderr:\n{}", out.stderr);
    assert!(
        out.stdout.starts_with("TAP version 13\n1..2\n"),
        "stdout:\n{}",
        out.stdout
    );
    assert!(out.stdout.contains("ok 1 - "), "{}", out.stdout);
    assert!(out.stdout.contains("ok 2 - "), "{}", out.stdout);
    assert!(!out.stdout.contains("not ok"), "{}", out.stdout);
    for phase in [
        "[1/6] image",
        "[2/6] boot",
        "[3/6] ssh",
        "[4/6] task",
        "[5/6] collect",
        "[6/6] destroy",
    ] {
        assert!(
            out.stderr.contains(phase),
            "missing phase {phase}:\n{}",
            out.stderr
        );
    }
    assert!(
        out.stderr.contains("checking hello-1.0-1.fc40"),
        "live output not shown:\n{}",
        out.stderr
    );
    let id = out.job_id().expect("job id");
    // One id: the domain the boot phase names, the job folder and the
    // artifacts path the summary prints are all the job's id.
    assert!(
        out.stderr
            .contains(&format!("[2/6] boot     ferrotron-{id} ")),
        "the domain is not named after job {id}:\n{}",
        out.stderr
    );
    assert!(
        out.stderr
            .contains(&format!("artifacts: {}", h.job_dir(&id).display())),
        "{}",
        out.stderr
    );
    let dir = h.job_dir(&id);
    let console = std::fs::read_to_string(dir.join("console.log")).expect("console log kept");
    assert!(console.contains("ferrotron: ready"), "console:\n{console}");
    let known = std::fs::read_to_string(dir.join("known_hosts")).expect("host key recorded");
    assert!(
        known.starts_with("[127.0.0.1]:") && known.contains(" ssh-ed25519 AAAA"),
        "{known}"
    );
    assert!(dir.join("artifacts/results.tap").is_file());
    assert!(dir.join("artifacts/results.json").is_file());
    h.assert_nothing_left(&id);
}

#[test]
fn failing_task_exits_1_with_not_ok() {
    let h = Harness::new("failing");
    let out = h.run(&run_args("tests/fixtures/failing/runtask.yml", &[]));
    assert_eq!(out.code, Some(1), "stderr:\n{}", out.stderr);
    assert!(out.stdout.contains("not ok 1 - "), "{}", out.stdout);
    assert!(
        out.stdout.contains("outcome: FAILED") || out.stdout.contains("outcome: \"FAILED\""),
        "{}",
        out.stdout
    );
    assert!(!out.stdout.contains("never printed") && !out.stderr.contains("never printed"));
    assert!(
        !out.stderr.contains("should not run"),
        "a later action ran:\n{}",
        out.stderr
    );
    assert!(out.stderr.contains("FAILED in"), "{}", out.stderr);
    h.assert_nothing_left(&out.job_id().expect("job id"));
}

#[test]
fn hanging_task_is_stopped_at_its_timeout() {
    let h = Harness::new("hang");
    let out = h.run(&run_args("tests/fixtures/hang/runtask.yml", &[]));
    assert_eq!(out.code, Some(1), "stderr:\n{}", out.stderr);
    assert!(out.stdout.contains("not ok 1 - "), "{}", out.stdout);
    assert!(out.stdout.contains("timed out after 3 s"), "{}", out.stdout);
    assert!(out.stdout.contains("ERROR"), "{}", out.stdout);
    h.assert_nothing_left(&out.job_id().expect("job id"));
}

/// A guest that cannot work (see `fatal` in docs/images.md) makes the job
/// an infrastructure error that quotes its fatal line, with its console
/// kept and nothing left behind. The SSH deadline is far away on purpose:
/// only the fatal line can end the wait, so this ends in seconds without
/// measuring any.
fn assert_fatal_guest(h: &Harness, kernel_arg: &str, fatal: &str) {
    let out = h.run(&run_args(
        "examples/hello/runtask.yml",
        &["--kernel-arg", kernel_arg, "--ssh-timeout", "10m"],
    ));
    assert_eq!(out.code, Some(3), "stderr:\n{}", out.stderr);
    let err = out
        .stderr
        .lines()
        .find(|l| l.starts_with("ferrotron: error:"))
        .unwrap_or_default()
        .to_string();
    assert!(
        err.starts_with(&format!(
            "ferrotron: error: boot: the guest cannot work, it said: {fatal}; "
        )),
        "{}",
        out.stderr
    );
    assert!(!out.stderr.contains("no SSH banner"), "{}", out.stderr);
    let id = out.job_id().expect("job id");
    let console =
        std::fs::read_to_string(h.job_dir(&id).join("console.log")).expect("console log kept");
    assert!(console.contains(fatal), "console:\n{console}");
    assert!(!console.contains("ferrotron: ready"), "console:\n{console}");
    h.assert_nothing_left(&id);
}

#[test]
fn guest_without_network_fails_fast_with_the_console() {
    assert_fatal_guest(
        &Harness::new("nonet"),
        "ferrotron.net=off",
        "ferrotron: fatal: no network: disabled by ferrotron.net=off",
    );
}

#[test]
fn guest_without_root_disk_fails_fast_with_the_console() {
    assert_fatal_guest(
        &Harness::new("noroot"),
        "root=/dev/vdz",
        "ferrotron: fatal: no root disk: /dev/vdz did not appear within 10 s",
    );
}

/// A private copy of the shared image's newest version whose manifest boots
/// it with `extra` on the kernel command line (also its warm-start
/// template, which takes no `--kernel-arg`). Returns the images folder.
fn image_booting_with(h: &Harness, extra: &str) -> std::path::PathBuf {
    let shared = ferrotron_tests::images_dir().join("tiny");
    let version = std::fs::read_dir(&shared)
        .expect("shared image: run make image")
        .flatten()
        .map(|e| e.file_name().to_string_lossy().into_owned())
        .filter(|n| !n.starts_with('.'))
        .max()
        .expect("a version of tiny");
    let images = h.data_dir.join("images");
    let copy = images.join("tiny");
    std::fs::create_dir_all(&copy).expect("mkdir");
    let cp = std::process::Command::new("cp")
        .arg("-r")
        .arg(shared.join(&version))
        .arg(&copy)
        .status()
        .expect("cp");
    assert!(cp.success());
    let chmod = std::process::Command::new("chmod")
        .args(["-R", "u+w"])
        .arg(&copy)
        .status()
        .expect("chmod");
    assert!(chmod.success());
    let manifest = copy.join(&version).join("manifest.json");
    let mut m: serde_json::Value =
        serde_json::from_slice(&std::fs::read(&manifest).expect("read manifest")).expect("json");
    let cmdline = format!(
        "{} {extra}",
        m["boot"]["cmdline"].as_str().expect("cmdline")
    );
    m["boot"]["cmdline"] = cmdline.into();
    std::fs::write(&manifest, serde_json::to_vec_pretty(&m).expect("json")).expect("write");
    images
}

#[test]
fn a_fatal_template_is_a_warning_and_the_cold_boot_fails_with_the_line() {
    let h = Harness::new("warm-fatal");
    let images = image_booting_with(&h, "ferrotron.net=off");
    let templates = h.data_dir.join("templates");
    let mut c = h.command(&run_args(
        "examples/hello/runtask.yml",
        &["--ssh-timeout", "10m"],
    ));
    c.env("FERROTRON_IMAGES_DIR", &images)
        .env("FERROTRON_TEMPLATES_DIR", &templates);
    let out = h.run_command(c);
    let fatal = "ferrotron: fatal: no network: disabled by ferrotron.net=off";
    assert_eq!(out.code, Some(3), "stderr:\n{}", out.stderr);
    assert!(
        out.stderr.contains(&format!(
            "ferrotron: warning: no warm-start template (the template VM cannot work, it said: {fatal}; "
        )),
        "{}",
        out.stderr
    );
    let err = out
        .stderr
        .lines()
        .find(|l| l.starts_with("ferrotron: error:"))
        .unwrap_or_default();
    assert!(
        err.starts_with(&format!(
            "ferrotron: error: boot: the guest cannot work, it said: {fatal}; "
        )),
        "{}",
        out.stderr
    );
    let saved: Vec<_> = walk(&templates)
        .into_iter()
        .filter(|p| p.ends_with("state.sav"))
        .collect();
    assert!(saved.is_empty(), "a template was saved: {saved:?}");
    let id = out.job_id().expect("job id");
    let console =
        std::fs::read_to_string(h.job_dir(&id).join("console.log")).expect("console log kept");
    assert!(console.contains(fatal), "console:\n{console}");
    h.assert_nothing_left(&id);
}

#[test]
fn crashed_agent_is_an_infrastructure_error() {
    let h = Harness::new("agent-crash");
    let out = h.run(&run_args("tests/fixtures/agent-crash/runtask.yml", &[]));
    assert_eq!(out.code, Some(3), "stderr:\n{}", out.stderr);
    assert!(
        out.stderr.contains(
            "the guest agent ended without finishing (signal KILL) during action `kill the agent`"
        ),
        "{}",
        out.stderr
    );
    assert!(
        out.stdout.is_empty(),
        "no TAP for a crashed job: {}",
        out.stdout
    );
    h.assert_nothing_left(&out.job_id().expect("job id"));
}

#[test]
fn guest_kernel_crash_is_reported_with_the_console() {
    let h = Harness::new("panic");
    let out = h.run(&run_args("tests/fixtures/panic/runtask.yml", &[]));
    assert_eq!(out.code, Some(3), "stderr:\n{}", out.stderr);
    assert!(out.stderr.contains("the VM stopped"), "{}", out.stderr);
    assert!(
        out.stderr.contains("sysrq") || out.stderr.contains("Kernel panic"),
        "{}",
        out.stderr
    );
    h.assert_nothing_left(&out.job_id().expect("job id"));
}

#[test]
fn bad_formula_is_exit_2_and_starts_nothing() {
    let h = Harness::new("bad-formula");
    let out = h.run(&run_args("tests/fixtures/bad-formula/runtask.yml", &[]));
    assert_eq!(out.code, Some(2), "stderr:\n{}", out.stderr);
    assert_eq!(
        out.stderr.trim(),
        "ferrotron: error: tests/fixtures/bad-formula/runtask.yml:10: actions[0].timout: unknown field `timout`, expected one of `name`, `shell`, `python`, `bash`, `exec`, `artifact`, `resultsdb`, `exitcode`, `xunit`, `create_report`, `dummy`, `createrepo`, `koji`, `bodhi`, `distgit`, `export`, `timeout`"
    );
    assert!(out.job_id().is_none());
    assert!(
        !h.data_dir.join("jobs").exists(),
        "a job folder was created"
    );
    assert!(!h.data_dir.join("vms").exists(), "a VM folder was created");
}

#[test]
fn unavailable_directive_is_exit_2_and_starts_nothing() {
    let h = Harness::new("mash-directive");
    let mut args = run_args("tests/fixtures/mash-compose/runtask.yml", &[]);
    for a in args.iter_mut() {
        if *a == "koji_build" {
            *a = "koji_tag";
        }
    }
    let out = h.run(&args);
    assert_eq!(out.code, Some(2), "stderr:\n{}", out.stderr);
    assert_eq!(
        out.stderr.trim(),
        "ferrotron: error: tests/fixtures/mash-compose/runtask.yml:8: actions[0].mash: directive `mash` cannot run here: \
         it composes repositories from Koji, which this installation cannot reach"
    );
    assert!(!h.data_dir.join("vms").exists(), "a VM folder was created");
}

#[test]
fn unknown_image_and_type_mismatch_are_exit_2() {
    let h = Harness::new("bad-input");
    let hello = "examples/hello/runtask.yml";
    let cases: [(&[&str], &str); 4] = [
        (&["--image", "nosuch", hello], "nosuch"),
        // The message lists the images there are.
        (&["--image", "nosuch", hello], "tiny"),
        (
            &["-t", "bodhi_update", hello],
            "--type bodhi_update does not match the formula, which takes koji_build",
        ),
        (
            &["no/such/runtask.yml"],
            "no/such/runtask.yml: cannot read formula",
        ),
    ];
    for (extra, needle) in cases {
        let mut args = vec!["run", "--libvirt", "-i", "x"];
        if !extra.contains(&"-t") {
            args.extend(["-t", "koji_build"]);
        }
        args.extend_from_slice(extra);
        h.run(&args).assert_exit(2, needle);
    }
    assert!(!h.data_dir.join("vms").exists());
}

#[test]
fn hostile_item_is_data_and_exports_flow() {
    let h = Harness::new("hostile-item");
    let item = "$(touch /tmp/pwned); `touch /tmp/pwned`-1-1";
    let out = h.run(&[
        "run",
        "--libvirt",
        "-i",
        item,
        "-t",
        "koji_build",
        "tests/fixtures/with-export/runtask.yml",
    ]);
    assert_eq!(out.code, Some(0), "stderr:\n{}", out.stderr);
    assert!(
        out.stderr
            .contains(&format!("item {item} has {} characters", item.len())),
        "{}",
        out.stderr
    );
    h.assert_nothing_left(&out.job_id().expect("job id"));
}

#[test]
fn sigterm_mid_job_destroys_the_vm() {
    let h = Harness::new("sigterm");
    let mut p = h.spawn(&run_args("tests/fixtures/sleep/runtask.yml", &[]));
    let line = p.wait_for("ferrotron: job ", Duration::from_secs(30));
    let id = ferrotron_tests::job_id_in(&line).expect("job id");
    h.remember_job(&id);
    p.wait_for("hanging now", Duration::from_secs(120));
    assert!(domain_exists(&format!("ferrotron-{id}")));
    p.signal(Signal::SIGTERM);
    let (code, stderr) = p.finish(Duration::from_secs(40));
    assert_eq!(code, Some(3), "{stderr}");
    assert!(
        stderr.contains("SIGTERM received: destroying ferrotron-"),
        "{stderr}"
    );
    assert!(stderr.contains("interrupted by SIGTERM"), "{stderr}");
    h.assert_nothing_left(&id);
}

#[test]
fn kill_9_leaves_nothing_after_cleanup() {
    let h = Harness::new("kill9");
    let mut p = h.spawn(&run_args("tests/fixtures/sleep/runtask.yml", &[]));
    let line = p.wait_for("ferrotron: job ", Duration::from_secs(30));
    let id = ferrotron_tests::job_id_in(&line).expect("job id");
    h.remember_job(&id);
    p.wait_for("hanging now", Duration::from_secs(120));
    p.signal(Signal::SIGKILL);
    let (code, _) = p.finish(Duration::from_secs(10));
    assert_eq!(code, None, "killed by a signal");
    // The next orchestrator on this host cleans up what the dead one left.
    let out = h.run(&["cleanup"]);
    assert_eq!(out.code, Some(0), "{}", out.stderr);
    h.assert_nothing_left(&id);
}

#[test]
fn hung_guest_is_detected_and_destroyed() {
    let h = Harness::new("guest-hang");
    let mut p = h.spawn(&run_args(
        "tests/fixtures/sleep/runtask.yml",
        &["--stall-timeout", "8s"],
    ));
    let line = p.wait_for("ferrotron: job ", Duration::from_secs(30));
    let id = ferrotron_tests::job_id_in(&line).expect("job id");
    h.remember_job(&id);
    p.wait_for("hanging now", Duration::from_secs(120));
    // Freeze the whole guest: its kernel, agent and SSH server stop at once.
    ferrotron_tests::suspend_domain(&format!("ferrotron-{id}"));
    let (code, stderr) = p.finish(Duration::from_secs(60));
    assert_eq!(code, Some(3), "{stderr}");
    assert!(
        stderr.contains(
            "nothing from the guest agent for 8 s (not even its heartbeat): the guest hangs"
        ),
        "{stderr}"
    );
    assert!(stderr.contains("during action `sleep`"), "{stderr}");
    h.assert_nothing_left(&id);
}

#[test]
fn keep_on_failure_keeps_a_reachable_vm_until_ctrl_c() {
    let h = Harness::new("keep");
    let mut p = h.spawn(&run_args(
        "tests/fixtures/failing/runtask.yml",
        &["--keep-on-failure", "5m"],
    ));
    let line = p.wait_for("ferrotron: job ", Duration::from_secs(30));
    let id = ferrotron_tests::job_id_in(&line).expect("job id");
    h.remember_job(&id);
    let ssh_line = p.wait_for("ssh -i ", Duration::from_secs(120));
    // The printed command works as printed (plus batch mode for the test).
    let words: Vec<&str> = ssh_line
        .split_whitespace()
        .skip_while(|w| *w != "ssh")
        .skip(1)
        .collect();
    let out = std::process::Command::new("ssh")
        .args(["-o", "BatchMode=yes", "-o", "ConnectTimeout=20"])
        .args(&words)
        .arg("cat /proc/sys/kernel/hostname; ls /var/lib/ferrotron/jobs")
        .output()
        .expect("run ssh");
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "ssh failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(stdout.contains(&id), "the kept VM holds the job: {stdout}");
    assert!(domain_exists(&format!("ferrotron-{id}")));
    p.signal(Signal::SIGINT);
    let (code, stderr) = p.finish(Duration::from_secs(40));
    assert_eq!(code, Some(1), "the task failed: {stderr}");
    h.assert_nothing_left(&id);
}

fn host_clock() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .expect("clock")
        .as_secs() as i64
}

/// The clock the `clock` fixture printed, from the action's log.
fn guest_clock(h: &Harness, id: &str) -> i64 {
    let log = h.job_dir(id).join("artifacts/actions/01-clock.log");
    let text = std::fs::read_to_string(&log).expect("the action's log");
    let at = text
        .find("guest-clock ")
        .expect("the task printed its clock")
        + 12;
    text[at..]
        .split(|c: char| !c.is_ascii_digit())
        .next()
        .and_then(|n| n.parse().ok())
        .expect("a number after guest-clock")
}

fn host_key(h: &Harness, id: &str) -> String {
    std::fs::read_to_string(h.job_dir(id).join("known_hosts")).expect("known_hosts")
}

#[test]
fn warm_started_guests_get_their_own_key_host_key_and_the_host_clock() {
    let h = Harness::new("warm-start");
    let mut keys = Vec::new();
    for _ in 0..2 {
        let out = h.run(&run_args("tests/fixtures/clock/runtask.yml", &[]));
        assert_eq!(out.code, Some(0), "{}", out.stderr);
        assert!(out.stderr.contains(" restored (tcg)"), "{}", out.stderr);
        // The template was saved long before (minutes, in a long test run):
        // a restored guest whose clock were not set would lag behind.
        let id = out.job_id().expect("job id");
        let skew = (guest_clock(&h, &id) - host_clock()).abs();
        assert!(skew < 60, "guest clock off by {skew} s\n{}", out.stderr);
        keys.push(host_key(&h, &id));
        h.assert_nothing_left(&id);
    }
    let key = |k: &str| k.split_whitespace().nth(2).map(str::to_string);
    assert!(key(&keys[0]).is_some(), "{keys:?}");
    assert_ne!(
        key(&keys[0]),
        key(&keys[1]),
        "two jobs share an SSH host key"
    );
}

#[test]
fn cold_start_boots_the_kernel() {
    let h = Harness::new("cold-start");
    let out = h.run(&run_args(
        "tests/fixtures/clock/runtask.yml",
        &["--start", "cold"],
    ));
    assert_eq!(out.code, Some(0), "{}", out.stderr);
    assert!(out.stderr.contains(" booted (tcg)"), "{}", out.stderr);
    assert!(!out.stderr.contains("warm-start"), "{}", out.stderr);
    h.assert_nothing_left(&out.job_id().expect("job id"));
}

#[test]
fn a_template_libvirt_cannot_restore_is_discarded_and_the_job_boots_cold() {
    let h = Harness::new("warm-broken");
    let templates = h.data_dir.join("own-templates");
    let templates_arg = templates.display().to_string();
    let mut args = vec!["--templates-dir", templates_arg.as_str()];
    args.extend(run_args("tests/fixtures/clock/runtask.yml", &[]));
    let first = h.run(&args);
    assert_eq!(first.code, Some(0), "{}", first.stderr);
    assert!(
        first.stderr.contains("preparing the warm-start template"),
        "{}",
        first.stderr
    );
    assert!(first.stderr.contains(" restored (tcg)"), "{}", first.stderr);
    // Scramble QEMU's migration stream (the tail of the save file), keeping
    // libvirt's header intact: the restore itself fails.
    let state = walk(&templates)
        .into_iter()
        .find(|p| p.ends_with("state.sav"))
        .expect("a saved template");
    let mut bytes = std::fs::read(&state).expect("read state");
    let n = bytes.len();
    for b in &mut bytes[n - n / 2..] {
        *b = 0x5a;
    }
    std::fs::write(&state, &bytes).expect("scramble");

    let out = h.run(&args);
    assert_eq!(out.code, Some(0), "{}", out.stderr);
    assert!(
        out.stderr.contains("warning: warm start failed"),
        "{}",
        out.stderr
    );
    assert!(
        out.stderr.contains("template discarded, booting cold"),
        "{}",
        out.stderr
    );
    assert!(out.stderr.contains(" booted (tcg)"), "{}", out.stderr);
    assert!(!state.exists(), "the broken template is still there");
    h.assert_nothing_left(&out.job_id().expect("job id"));
}

fn walk(dir: &std::path::Path) -> Vec<std::path::PathBuf> {
    let mut out = Vec::new();
    for e in std::fs::read_dir(dir).into_iter().flatten().flatten() {
        let p = e.path();
        if p.is_dir() {
            out.extend(walk(&p));
        } else {
            out.push(p);
        }
    }
    out
}

#[test]
fn python_check_with_sub_results_runs_in_the_guest() {
    let h = Harness::new("vm-python");
    let out = h.run(&[
        "run",
        "--libvirt",
        "-i",
        "foo-1.2-3.fc40",
        "-t",
        "koji_build",
        "examples/nvr-policy/runtask.yml",
    ]);
    assert_eq!(out.code, Some(0), "stderr:\n{}", out.stderr);
    assert!(
        out.stdout
            .starts_with("TAP version 13\n1..4\nok 1 - nvr-policy.nvr for foo-1.2-3.fc40\n"),
        "{}",
        out.stdout
    );
    assert!(
        out.stderr
            .contains("| nvr-policy.disttag: PASSED (dist tag fc40)"),
        "{}",
        out.stderr
    );
    let id = out.job_id().expect("job id");
    // The `artifact` action's file came back from the guest.
    let log = std::fs::read_to_string(h.job_dir(&id).join("artifacts/nvr-policy.log"))
        .expect("collected log");
    assert!(
        log.starts_with("nvr-policy for foo-1.2-3.fc40 on x86_64\n"),
        "{log}"
    );
    h.assert_nothing_left(&id);
}

#[test]
fn python_exception_in_the_guest_shows_its_traceback() {
    let h = Harness::new("vm-python-error");
    let dir = h.data_dir.join("task");
    std::fs::create_dir_all(&dir).expect("mkdir");
    std::fs::write(
        dir.join("runtask.yml"),
        "name: py\ndesc: d\nmaintainer: m\nactions:\n  - name: call\n    python:\n      file: check.py\n      callable: run\n      n: 0\n",
    )
    .expect("write formula");
    std::fs::write(dir.join("check.py"), "def run(n):\n    return 1 / n\n").expect("write");
    let formula = dir.join("runtask.yml");
    let out = h.run(&run_args(formula.to_str().expect("utf-8"), &[]));
    assert_eq!(out.code, Some(1), "stderr:\n{}", out.stderr);
    assert!(
        out.stdout
            .contains("summary: \"run() in check.py raised ZeroDivisionError: division by zero\""),
        "{}",
        out.stdout
    );
    assert!(
        out.stderr.contains("Traceback (most recent call last)"),
        "{}",
        out.stderr
    );
    h.assert_nothing_left(&out.job_id().expect("job id"));
}

#[test]
fn python_and_exec_arguments_are_data_in_the_guest() {
    let h = Harness::new("vm-python-data");
    let dir = h.data_dir.join("task");
    std::fs::create_dir_all(&dir).expect("mkdir");
    std::fs::write(
        dir.join("runtask.yml"),
        "name: data\ndesc: d\nmaintainer: m\ninput:\n  args: [koji_build]\nactions:\n  - name: call\n    python:\n      file: echo.py\n      callable: echo\n      item: ${koji_build}\n      code: \"__import__('os').system('touch /tmp/pwned-py')\"\n    export: got\n  - name: argv\n    exec:\n      program: printf\n      args: [\"<%s>\\n\", \"${koji_build}\"]\n  - name: nothing ran\n    shell:\n      - test ! -e /tmp/pwned-py\n",
    )
    .expect("write formula");
    std::fs::write(
        dir.join("echo.py"),
        "import json\n\ndef echo(**kwargs):\n    return json.dumps(kwargs, sort_keys=True)\n",
    )
    .expect("write");
    let item = "$(touch /tmp/pwned-py); `touch /tmp/pwned-py`-1-1";
    let formula = dir.join("runtask.yml");
    let out = h.run(&[
        "run",
        "--libvirt",
        "-i",
        item,
        "-t",
        "koji_build",
        formula.to_str().expect("utf-8"),
    ]);
    assert_eq!(out.code, Some(0), "stderr:\n{}", out.stderr);
    assert!(
        out.stderr.contains(&format!("  | <{item}>\n")),
        "{}",
        out.stderr
    );
    let id = out.job_id().expect("job id");
    let exports = std::fs::read_to_string(h.job_dir(&id).join("artifacts/exports.json"))
        .expect("exports.json");
    let exports: serde_json::Value = serde_json::from_str(&exports).expect("json");
    let got: serde_json::Value =
        serde_json::from_str(exports["got"].as_str().expect("string")).expect("json");
    assert_eq!(
        got,
        serde_json::json!({"item": item, "code": "__import__('os').system('touch /tmp/pwned-py')"})
    );
    h.assert_nothing_left(&id);
}

/// A `koji` action in a VM: the host fetches the build from the Koji
/// stand-in (the guest reaches no Fedora service) and the files are in the
/// guest's work folder when the next action looks; nothing is left behind.
#[test]
fn a_koji_download_reaches_the_guest_from_the_host() {
    let h = Harness::new("vm-koji-download");
    let s = ferrotron_tests::standins::Standins::start(&h.data_dir);
    let flags = s.flags();
    let mut args: Vec<&str> = flags.iter().map(String::as_str).collect();
    args.extend([
        "run",
        "--libvirt",
        "-i",
        "hello-1.0-1.fc41",
        "-t",
        "koji_build",
        "-a",
        "x86_64",
        "tests/fixtures/koji-download/runtask.yml",
    ]);
    let out = h.run(&args);
    assert_eq!(out.code, Some(0), "stderr:\n{}", out.stderr);
    for line in ferrotron_tests::standins::HELLO_X86_64_TAP {
        assert!(out.stdout.contains(line), "{line:?} in\n{}", out.stdout);
    }
    h.assert_nothing_left(&out.job_id().expect("job id"));
}
