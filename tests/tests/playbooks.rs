//! The Ansible playbooks (playbooks/) run for real with ansible-playbook
//! (installed by scripts/setup-host.sh) against this machine, into a
//! staging root: what they install, that a second run changes nothing, that
//! a broken rules file is refused before it replaces the good one, and that
//! drain.yml waits for a job in progress in a real VM.

use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;

use ferrotron_tests::service::{slow_task, submit, Service};
use ferrotron_tests::{ferrotron_bin, workspace, Harness};
use serde_json::json;

struct Play {
    code: Option<i32>,
    stdout: String,
}

/// Runs `ansible-playbook PLAYBOOK` on localhost (a local connection, no
/// privilege escalation: tests run as root) with `vars` as extra variables.
/// Ansible's own files go under the test's folder.
fn play(h: &Harness, playbook: &str, vars: &serde_json::Value) -> Play {
    let dir = h.data_dir.join("ansible");
    std::fs::create_dir_all(&dir).expect("ansible dir");
    let inventory = dir.join("inventory.ini");
    std::fs::write(
        &inventory,
        "[ferrotron_hosts]\nlocalhost ansible_connection=local ansible_become=false \
         ansible_python_interpreter=/usr/bin/python3\n",
    )
    .expect("inventory");
    let vars_file = dir.join("vars.json");
    std::fs::write(&vars_file, vars.to_string()).expect("vars");
    let out = Command::new("ansible-playbook")
        .arg("-i")
        .arg(&inventory)
        .arg("-e")
        .arg(format!("@{}", vars_file.display()))
        .arg(workspace().join("playbooks").join(playbook))
        .env("ANSIBLE_HOME", &dir)
        .env("ANSIBLE_LOCAL_TEMP", dir.join("tmp"))
        .env("ANSIBLE_REMOTE_TEMP", dir.join("tmp"))
        .env("ANSIBLE_NOCOLOR", "1")
        .env("ANSIBLE_RETRY_FILES_ENABLED", "0")
        .env("ANSIBLE_STDOUT_CALLBACK", "default")
        .output()
        .expect("ansible-playbook (scripts/setup-host.sh installs ansible-core)");
    let p = Play {
        code: out.status.code(),
        stdout: String::from_utf8_lossy(&out.stdout).into_owned(),
    };
    eprintln!(
        "--- ansible-playbook {playbook} -> {:?}\n{}{}",
        p.code,
        p.stdout,
        String::from_utf8_lossy(&out.stderr)
    );
    p
}

/// The variables of a staging install under `root`: no packages, no image
/// build, no systemd (none here); the binary under test.
fn staging(root: &Path) -> serde_json::Value {
    json!({
        "ferrotron_root": root,
        "ferrotron_install_packages": false,
        "ferrotron_build_image": false,
        "ferrotron_manage_service": false,
        "ferrotron_binary_src": ferrotron_bin(),
        "ferrotron_agent_src": workspace().join("target/x86_64-unknown-linux-gnu/agent/ferrotron-agent"),
    })
}

fn mode(p: &Path) -> u32 {
    std::fs::metadata(p)
        .unwrap_or_else(|e| panic!("{}: {e}", p.display()))
        .permissions()
        .mode()
        & 0o7777
}

fn recap_changed(p: &Play) -> usize {
    let line = p
        .stdout
        .lines()
        .find(|l| l.starts_with("localhost") && l.contains("changed="))
        .unwrap_or_else(|| panic!("no PLAY RECAP line:\n{}", p.stdout));
    line.split_whitespace()
        .find_map(|w| w.strip_prefix("changed="))
        .and_then(|n| n.parse().ok())
        .expect("changed=N")
}

/// `ferrotron ARGS` from the staging install, on its data folder.
fn installed(root: &Path, args: &[&str]) -> std::process::Output {
    Command::new(root.join("usr/local/bin/ferrotron"))
        .args(args)
        .env("FERROTRON_DATA_DIR", root.join("var/lib/ferrotron"))
        .output()
        .expect("installed ferrotron")
}

#[test]
fn site_installs_everything_and_a_second_run_changes_nothing() {
    let h = Harness::new("playbook-site");
    let root = h.data_dir.join("root");
    let first = play(&h, "site.yml", &staging(&root));
    assert_eq!(first.code, Some(0), "{}", first.stdout);
    assert!(recap_changed(&first) > 0);

    let bin = root.join("usr/local/bin/ferrotron");
    assert_eq!(mode(&bin), 0o755);
    let v = installed(&root, &["--version"]);
    assert!(v.status.success());
    assert!(String::from_utf8_lossy(&v.stdout).starts_with("ferrotron "));
    assert_eq!(
        mode(&root.join("usr/local/libexec/ferrotron/ferrotron-agent")),
        0o755
    );

    let env_file = root.join("etc/ferrotron/ferrotron.env");
    assert_eq!(mode(&env_file), 0o600, "the environment may hold secrets");
    let env = std::fs::read_to_string(&env_file).expect("env file");
    for line in [
        "FERROTRON_DATA_DIR=/var/lib/ferrotron",
        "FERROTRON_MAX_VMS=2",
        "FERROTRON_RULES=/etc/ferrotron/rules.yml",
        "FERROTRON_AGENT=/usr/local/libexec/ferrotron/ferrotron-agent",
    ] {
        assert!(env.lines().any(|l| l == line), "{line} missing:\n{env}");
    }
    assert!(!env.contains("FERROTRON_DATABASE_URL"), "{env}");
    let unit =
        std::fs::read_to_string(root.join("etc/systemd/system/ferrotron.service")).expect("unit");
    assert!(
        unit.lines()
            .any(|l| l == "ExecStart=/usr/local/bin/ferrotron serve"),
        "{unit}"
    );
    assert!(
        unit.contains("ExecReload=/bin/kill -HUP $MAINPID"),
        "{unit}"
    );
    assert!(unit.lines().any(|l| l == "Type=notify"), "{unit}");
    assert_eq!(
        std::fs::read(root.join("etc/ferrotron/rules.yml")).expect("rules"),
        std::fs::read(workspace().join("examples/rules.yml")).expect("example rules")
    );

    // The token works against the installed store.
    let token = root.join("etc/ferrotron/token");
    assert_eq!(mode(&token), 0o600);
    assert!(std::fs::read_to_string(&token).expect("token").trim().len() >= 32);
    let list = installed(&root, &["token", "list"]);
    assert!(
        String::from_utf8_lossy(&list.stdout).contains("ansible-localhost"),
        "{}",
        String::from_utf8_lossy(&list.stdout)
    );

    let token_before = std::fs::read_to_string(&token).expect("token");
    let second = play(&h, "site.yml", &staging(&root));
    assert_eq!(second.code, Some(0), "{}", second.stdout);
    assert_eq!(
        recap_changed(&second),
        0,
        "not idempotent:\n{}",
        second.stdout
    );
    assert_eq!(
        std::fs::read_to_string(&token).expect("token"),
        token_before,
        "the token was replaced"
    );
}

#[test]
fn a_broken_rules_file_fails_the_play_and_keeps_the_good_rules() {
    let h = Harness::new("playbook-rules");
    let root = h.data_dir.join("root");
    let bad: PathBuf = h.data_dir.join("bad-rules.yml");
    std::fs::write(
        &bad,
        "- when: {message_type: Generic}\n  do:\n    - tasks: [hello]\n      priorty: 3\n",
    )
    .expect("bad rules");
    let installed_rules = root.join("etc/ferrotron/rules.yml");

    let good = play(&h, "site.yml", &staging(&root));
    assert_eq!(good.code, Some(0), "{}", good.stdout);
    let before = std::fs::read(&installed_rules).expect("rules");

    let mut vars = staging(&root);
    vars["ferrotron_rules_src"] = json!(bad);
    let p = play(&h, "site.yml", &vars);
    assert_eq!(p.code, Some(2), "{}", p.stdout);
    assert!(p.stdout.contains("Check the rules file"), "{}", p.stdout);
    assert!(
        p.stdout.contains(&format!("{}:4:", bad.display())),
        "the line of the bad key:\n{}",
        p.stdout
    );
    assert!(p.stdout.contains("priorty"), "the bad key:\n{}", p.stdout);
    assert_eq!(
        std::fs::read(&installed_rules).expect("rules"),
        before,
        "the installed rules changed"
    );
}

/// drain.yml idles the host and waits while a job runs in a real VM: with
/// a short time-out it fails, and passes once the job is gone;
/// resume.yml makes the host active again.
#[test]
fn drain_waits_for_a_running_job_then_resume_reactivates() {
    let h = Harness::new("playbook-drain");
    let slow = slow_task(&h);
    let mut serve = Service::start(&h, &["--max-vms", "1"], &[]);
    let uuid = submit(&h, &slow, "slow-1.0-1.fc40", &[]);
    serve
        .proc
        .wait_for(&format!("job {uuid}: booting"), Duration::from_secs(120));

    // The playbooks drive the binary under test on this test's data folder.
    let vars = json!({
        "ferrotron_root": "",
        "ferrotron_bin": ferrotron_bin(),
        "ferrotron_data_dir": h.data_dir,
        "ferrotron_drain_timeout": 10,
    });
    let p = play(&h, "drain.yml", &vars);
    assert_eq!(p.code, Some(2), "a job is in progress:\n{}", p.stdout);
    assert!(
        p.stdout
            .contains("FAILED - RETRYING: [localhost]: Wait for jobs in progress to end"),
        "{}",
        p.stdout
    );
    let status = h.run(&["host", "status"]);
    assert!(status.stdout.starts_with("idle\n"), "{}", status.stdout);

    // SIGTERM requeues the running job: nothing is in progress any more.
    serve.stop();
    let p = play(&h, "drain.yml", &vars);
    assert_eq!(p.code, Some(0), "nothing in progress now:\n{}", p.stdout);

    let p = play(&h, "resume.yml", &vars);
    assert_eq!(p.code, Some(0), "{}", p.stdout);
    let status = h.run(&["host", "status"]);
    assert!(status.stdout.starts_with("active\n"), "{}", status.stdout);
    assert!(
        status.stdout.contains("queued\t1\n"),
        "the job waits for its restart: {}",
        status.stdout
    );
}

/// Scripts that start and stop a `serve` of the staging install (this
/// machine has no systemd): what `ferrotron_service_start_cmd` and
/// `ferrotron_service_stop_cmd` run.
fn service_scripts(h: &Harness, root: &Path, listen: &str) -> (PathBuf, PathBuf) {
    let pid = h.data_dir.join("serve.pid");
    let log = h.data_dir.join("serve.log");
    let start = h.data_dir.join("start.sh");
    let stop = h.data_dir.join("stop.sh");
    std::fs::write(
        &start,
        format!(
            "#!/bin/sh\nset -e\nFERROTRON_DATA_DIR='{data}' setsid '{bin}' serve --listen {listen} --no-scheduler >>'{log}' 2>&1 </dev/null &\necho $! >'{pid}'\n",
            data = root.join("var/lib/ferrotron").display(),
            bin = root.join("usr/local/bin/ferrotron").display(),
            log = log.display(),
            pid = pid.display(),
        ),
    )
    .expect("start.sh");
    std::fs::write(
        &stop,
        format!(
            "#!/bin/sh\n[ -f '{pid}' ] || exit 0\np=$(cat '{pid}')\nkill -TERM \"$p\" 2>/dev/null || true\nwhile kill -0 \"$p\" 2>/dev/null; do sleep 0.2; done\nrm -f '{pid}'\n",
            pid = pid.display(),
        ),
    )
    .expect("stop.sh");
    for s in [&start, &stop] {
        std::fs::set_permissions(s, std::fs::Permissions::from_mode(0o755)).expect("chmod");
    }
    (start, stop)
}

#[test]
fn update_drains_updates_restarts_and_resumes_and_a_host_that_does_not_come_back_stops_it() {
    let h = Harness::new("playbook-update");
    let root = h.data_dir.join("root");
    let first = play(&h, "site.yml", &staging(&root));
    assert_eq!(first.code, Some(0), "{}", first.stdout);
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .expect("a free port")
        .port();
    let listen = format!("127.0.0.1:{port}");
    let (start, stop) = service_scripts(&h, &root, &listen);
    let out = Command::new(&start).output().expect("start");
    assert!(out.status.success(), "{out:?}");
    // An old binary on the host: the update replaces it.
    let installed_bin = root.join("usr/local/bin/ferrotron");
    let mut old = std::fs::read(&installed_bin).expect("read");
    old.extend_from_slice(b"old build");
    std::fs::write(h.data_dir.join("old-ferrotron"), &old).expect("write");

    let mut vars = staging(&root);
    vars["ferrotron_listen"] = json!(listen);
    vars["ferrotron_service_stop_cmd"] = json!(stop);
    vars["ferrotron_service_start_cmd"] = json!(start);
    vars["ferrotron_drain_timeout"] = json!(30);
    vars["ferrotron_update_timeout"] = json!(60);
    // The running service is stopped before its binary is replaced.
    let out = Command::new(&stop).output().expect("stop");
    assert!(out.status.success());
    std::fs::copy(h.data_dir.join("old-ferrotron"), &installed_bin).expect("old binary");
    std::fs::set_permissions(&installed_bin, std::fs::Permissions::from_mode(0o755))
        .expect("chmod");
    let out = Command::new(&start).output().expect("start");
    assert!(out.status.success(), "{out:?}");

    let p = play(&h, "update.yml", &vars);
    assert_eq!(p.code, Some(0), "{}", p.stdout);
    for task in [
        "Stop starting jobs",
        "Wait for jobs in progress to end",
        "Stop the service (the site's own command)",
        "Install the ferrotron binary",
        "Start the service (the site's own command)",
        "Wait for the service to answer",
        "Start jobs again",
    ] {
        assert!(p.stdout.contains(task), "{task}:\n{}", p.stdout);
    }
    assert_eq!(
        std::fs::read(&installed_bin).expect("read"),
        std::fs::read(ferrotron_bin()).expect("read"),
        "the new binary is installed"
    );
    let health = ferrotron_tests::service::http()
        .get(format!("http://{listen}/api/v2.0/healthcheck"))
        .send()
        .expect("the updated service answers");
    assert_eq!(health.status().as_u16(), 200);
    let status = installed(&root, &["host", "status"]);
    assert!(
        String::from_utf8_lossy(&status.stdout).starts_with("active\n"),
        "resumed: {status:?}"
    );

    // A host that does not come back: the play stops and it stays idle.
    vars["ferrotron_service_start_cmd"] = json!("/bin/true");
    vars["ferrotron_update_timeout"] = json!(4);
    let p = play(&h, "update.yml", &vars);
    assert_eq!(p.code, Some(2), "{}", p.stdout);
    assert!(
        p.stdout.contains("Wait for the service to answer")
            && !p.stdout.contains("TASK [Start jobs again]"),
        "{}",
        p.stdout
    );
    let status = installed(&root, &["host", "status"]);
    assert!(
        String::from_utf8_lossy(&status.stdout).starts_with("idle\n"),
        "left idle: {status:?}"
    );
    let out = Command::new(&stop).output().expect("stop");
    assert!(out.status.success());
}
