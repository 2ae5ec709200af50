//! Reservations and holds, end to end with real VMs and real `ssh`:
//! a reservation asked over the API is root over SSH with the printed
//! command (host key pinned), takes the host's only VM slot (a job
//! waits), is limited per token and by the longest TTL, survives a
//! restart of `serve` (the VM keeps running and is taken back), and is
//! released; one asked from the command line expires on its own; a
//! failing job submitted with `--hold-on-failure` keeps its VM for the
//! key's holder. Nothing is left behind.

use std::path::Path;
use std::process::Command;
use std::time::{Duration, Instant};

use ferrotron_tests::debmirror::DebMirror;
use ferrotron_tests::service::{author_key, http, submit, Service, JOB_DEADLINE};
use ferrotron_tests::{domain_exists, workspace, Harness};
use serde_json::{json, Value};

fn token(h: &Harness, name: &str, role: &str) -> String {
    let out = h.run(&["token", "create", name, "--role", role]);
    assert_eq!(out.code, Some(0), "{}", out.stderr);
    out.stdout.trim().to_string()
}

fn post(s: &Service, token: &str, path: &str, body: &Value) -> (u16, Value) {
    let r = http()
        .post(format!("{}{path}", s.base))
        .bearer_auth(token)
        .json(body)
        .send()
        .expect("POST");
    (r.status().as_u16(), r.json().expect("JSON"))
}

fn get(s: &Service, path: &str) -> Value {
    http()
        .get(format!("{}{path}", s.base))
        .send()
        .expect("GET")
        .json()
        .expect("JSON")
}

/// Waits (bounded) until reservation `id` has `status`.
fn wait_status(s: &Service, id: &str, status: &str) -> Value {
    let deadline = Instant::now() + JOB_DEADLINE;
    loop {
        let r = get(s, &format!("/api/v1/reservations/{id}"));
        if r["status"] == status {
            return r;
        }
        assert!(
            Instant::now() < deadline,
            "reservation {id} not {status}: {r}"
        );
        std::thread::sleep(Duration::from_millis(300));
    }
}

/// Runs `command` in the VM through the reservation's own `ssh_command`
/// (the host key pinned by the file it names), logging in with `key`.
fn ssh_as_printed(reach: &Value, key: &Path, command: &str) -> (i32, String) {
    let printed = reach["ssh_command"].as_str().expect("ssh_command");
    let mut words = printed.split_whitespace();
    assert_eq!(words.next(), Some("ssh"), "{printed}");
    let out = Command::new("ssh")
        .arg("-i")
        .arg(key)
        .args(["-o", "BatchMode=yes", "-o", "ConnectTimeout=60"])
        .args(words)
        .arg(command)
        .output()
        .expect("ssh");
    (
        out.status.code().unwrap_or(-1),
        String::from_utf8_lossy(&out.stdout).trim().to_string()
            + &String::from_utf8_lossy(&out.stderr),
    )
}

#[test]
fn a_reservation_is_root_shares_capacity_survives_a_restart_and_is_released() {
    let h = Harness::new("reservations-api");
    let (key, public) = author_key(&h);
    let author = token(&h, "author", "reporter");
    let other = token(&h, "someone-else", "reporter");
    let args = ["--max-vms", "1", "--reservations-per-token", "1"];
    let s = Service::start(&h, &args, &[]);

    // Bad input is refused with the field named.
    let (code, bad) = post(
        &s,
        &author,
        "/api/v1/reservations",
        &json!({"ssh_key": "$(reboot)"}),
    );
    assert_eq!(code, 400, "{bad}");
    assert!(
        bad["message"].as_str().unwrap_or("").contains("SSH key"),
        "{bad}"
    );
    let (code, bad) = post(
        &s,
        &author,
        "/api/v1/reservations",
        &json!({"ssh_key": public, "ttl": "3d"}),
    );
    assert_eq!(code, 400, "{bad}");
    assert!(
        bad["message"]
            .as_str()
            .unwrap_or("")
            .contains("longest allowed"),
        "{bad}"
    );
    let r = http()
        .post(format!("{}/api/v1/reservations", s.base))
        .json(&json!({"ssh_key": public}))
        .send()
        .expect("POST");
    assert_eq!(r.status().as_u16(), 401, "a write needs a token");

    let (code, made) = post(
        &s,
        &author,
        "/api/v1/reservations",
        &json!({"ssh_key": public, "ttl": "2h"}),
    );
    assert_eq!(code, 201, "{made}");
    let id = made["id"].as_str().expect("id").to_string();
    let job = made["job"].as_str().expect("job").to_string();
    // One per token here.
    let (code, more) = post(
        &s,
        &author,
        "/api/v1/reservations",
        &json!({"ssh_key": public}),
    );
    assert_eq!(code, 409, "{more}");
    assert!(
        more["message"]
            .as_str()
            .unwrap_or("")
            .contains("release one first"),
        "{more}"
    );

    let ready = wait_status(&s, &id, "ready");
    let reach = &ready["reach"];
    let (code, out) = ssh_as_printed(reach, &key, "id -u");
    assert_eq!((code, out.as_str()), (0, "0"), "{out}");
    // The job holds the host's only VM slot: a job waits behind it.
    let waiting = submit(
        &h,
        &workspace().join("examples/hello"),
        "hello-1.0-1.fc40",
        &[],
    );
    assert_eq!(s.job(&waiting)["state"], "queued");
    assert_eq!(s.job(&job)["state"], "running");
    assert_eq!(s.job(&job)["reservation"]["id"], id.as_str());
    let metrics = http()
        .get(format!("{}/metrics", s.base))
        .send()
        .expect("metrics")
        .text()
        .expect("text");
    assert!(
        metrics
            .lines()
            .any(|l| l.starts_with("ferrotron_host_reservations{") && l.ends_with(" 1")),
        "{metrics}"
    );

    // Extending: more time, but never past the longest allowed.
    let before = ready["expires_at"].as_str().expect("expiry").to_string();
    let (code, longer) = post(
        &s,
        &author,
        &format!("/api/v1/reservations/{id}/extend"),
        &json!({"by": "1h"}),
    );
    assert_eq!(code, 200, "{longer}");
    assert!(
        longer["expires_at"].as_str().expect("expiry") > before.as_str(),
        "{longer}"
    );
    let (code, e) = post(
        &s,
        &author,
        &format!("/api/v1/reservations/{id}/extend"),
        &json!({"by": "2d"}),
    );
    assert_eq!(code, 409, "{e}");
    // Someone else's token may not release it.
    let (code, e) = post(
        &s,
        &other,
        &format!("/api/v1/reservations/{id}/release"),
        &json!({}),
    );
    assert_eq!(code, 403, "{e}");

    // A restart of the service: the VM keeps running and is taken back.
    let vm = format!("ferrotron-{job}");
    s.stop();
    assert!(
        domain_exists(&vm),
        "the reservation's VM went with the service"
    );
    let (code, out) = ssh_as_printed(reach, &key, "echo still here");
    assert_eq!((code, out.as_str()), (0, "still here"), "{out}");
    let mut s = Service::start(&h, &args, &[]);
    s.proc.wait_for("taken back", Duration::from_secs(120));
    let again = get(&s, &format!("/api/v1/reservations/{id}"));
    assert_eq!(again["status"], "ready", "{again}");
    assert_eq!(again["reach"]["port"], reach["port"]);
    assert_eq!(s.job(&waiting)["state"], "queued");

    let (code, gone) = post(
        &s,
        &author,
        &format!("/api/v1/reservations/{id}/release"),
        &json!({}),
    );
    assert_eq!(code, 200, "{gone}");
    let ended = wait_status(&s, &id, "ended");
    assert_eq!(ended["end_reason"], "released", "{ended}");
    assert!(ended["reach"].is_null(), "{ended}");
    assert_eq!(s.wait_final(&job)["state"], "passed");
    // The slot is free again: the waiting job runs.
    assert_eq!(s.wait_final(&waiting)["state"], "passed");
    // The console of the reservation's VM is kept.
    assert!(h.job_dir(&job).join("console.log").is_file());
    s.stop();
    h.assert_nothing_left(&job);
    h.assert_nothing_left(&waiting);
}

#[test]
fn reservations_from_the_command_line_are_reachable_released_and_expire() {
    let h = Harness::new("reservations-cli");
    let (key, _) = author_key(&h);
    let public = key.with_extension("pub");
    let public = public.to_str().expect("utf-8");
    let s = Service::start(&h, &["--max-vms", "1"], &[]);
    // The task's repository, checked out through the git cache.
    let origin = ferrotron_tests::git::origin(&h.data_dir, "taskrepo", 2);
    let url = format!("file://{}", origin.display());
    let out = h.run(&[
        "reserve",
        "--ssh-key",
        public,
        "--ttl",
        "1h",
        "--git-repo",
        &url,
        "--git-ref",
        "main",
    ]);
    assert_eq!(out.code, Some(0), "{}", out.stderr);
    let id = out
        .stdout
        .split_whitespace()
        .nth(1)
        .expect("reservation id")
        .to_string();
    let ssh_line = out
        .stdout
        .lines()
        .find_map(|l| l.trim().strip_prefix("ssh      "))
        .unwrap_or_else(|| panic!("an ssh line: {}", out.stdout))
        .to_string();
    let (code, who) = ssh_as_printed(&json!({ "ssh_command": ssh_line }), &key, "whoami");
    assert_eq!((code, who.as_str()), (0, "root"), "{who}");
    let (code, file) = ssh_as_printed(
        &json!({ "ssh_command": ssh_line }),
        &key,
        "cat /root/taskrepo/file",
    );
    assert_eq!((code, file.as_str()), (0, "taskrepo 1"), "{file}");
    let key_arg = key.to_str().expect("utf-8");
    let via = h.run(&[
        "ssh",
        &id,
        "--",
        "-i",
        key_arg,
        "-o",
        "BatchMode=yes",
        "uname -n",
    ]);
    assert_eq!(via.code, Some(0), "{}", via.stderr);
    let listed = h.run(&["reservations", "list"]);
    assert!(listed.stdout.contains(&id), "{}", listed.stdout);
    let out = h.run(&["reservations", "release", &id]);
    assert_eq!(out.code, Some(0), "{}", out.stderr);
    let ended = wait_status(&s, &id, "ended");
    let first_job = ended["job"].as_str().expect("job").to_string();
    let gone = h.run(&["ssh", &id]);
    assert_eq!(gone.code, Some(2), "{}", gone.stderr);
    assert!(gone.stderr.contains("ended"), "{}", gone.stderr);

    // A short one, left alone, ends by itself.
    let out = h.run(&["reserve", "--ssh-key", public, "--ttl", "3s", "--no-wait"]);
    assert_eq!(out.code, Some(0), "{}", out.stderr);
    let short = out.stdout.trim().to_string();
    wait_status(&s, &short, "ready");
    let ended = wait_status(&s, &short, "ended");
    assert_eq!(ended["end_reason"], "expired", "{ended}");
    let job = ended["job"].as_str().expect("job").to_string();
    assert_eq!(s.wait_final(&job)["state"], "passed");
    let shown = h.run(&["reservations", "show", &short]);
    assert!(
        shown.stdout.contains("ended    expired"),
        "{}",
        shown.stdout
    );
    s.stop();
    h.assert_nothing_left(&first_job);
    h.assert_nothing_left(&job);
}

#[test]
fn a_failing_job_with_hold_on_failure_keeps_its_vm_for_the_key_holder() {
    let h = Harness::new("reservations-hold");
    let (key, _) = author_key(&h);
    let s = Service::start(&h, &["--max-vms", "1"], &[]);
    let public = key.with_extension("pub");
    let job = submit(
        &h,
        &workspace().join("examples/fails-on-purpose"),
        "broken-1.0-1.fc40",
        &[
            "--hold-on-failure",
            "1h",
            "--ssh-key",
            public.to_str().expect("utf-8"),
        ],
    );
    let j = s.wait_final(&job);
    assert_eq!(j["state"], "failed", "{j}");
    let deadline = Instant::now() + JOB_DEADLINE;
    let hold = loop {
        let j = s.job(&job);
        if j["reservation"]["status"] == "ready" {
            break j["reservation"].clone();
        }
        assert!(Instant::now() < deadline, "no hold: {j}");
        std::thread::sleep(Duration::from_millis(300));
    };
    assert_eq!(hold["kind"], "hold", "{hold}");
    // Root in the failed job's own VM: its task folder is there.
    let (code, out) = ssh_as_printed(
        &hold["reach"],
        &key,
        &format!("test -d /var/lib/ferrotron/jobs/{job} && id -u"),
    );
    assert_eq!((code, out.as_str()), (0, "0"), "{out}");

    let out = h.run(&["reservations", "release", hold["id"].as_str().expect("id")]);
    assert_eq!(out.code, Some(0), "{}", out.stderr);
    let ended = wait_status(&s, hold["id"].as_str().expect("id"), "ended");
    assert_eq!(ended["end_reason"], "released", "{ended}");
    s.stop();
    h.assert_nothing_left(&job);
}

#[test]
fn a_rule_with_hold_on_failure_keeps_the_vm_of_a_failed_job() {
    let h = Harness::new("reservations-rule-hold");
    let (key, public) = author_key(&h);
    let rules = h.data_dir.join("rules.yml");
    std::fs::write(
        &rules,
        format!(
            "- when: {{message_type: Generic, item: {{$regex: '^broken-'}}}}\n  do:\n    - tasks: [{{name: fails-on-purpose, path: examples/fails-on-purpose}}]\n      repo: {}\n      hold_on_failure: {{for: 1h, ssh_key: '{}', requester: author}}\n",
            workspace().display(),
            public.trim()
        ),
    )
    .expect("write rules");
    let t = token(&h, "ci", "reporter");
    let s = Service::start(
        &h,
        &["--max-vms", "1", "--rules", rules.to_str().expect("utf-8")],
        &[],
    );
    let (code, v) = s.post_item(&t, "msg-hold-1", "broken-1.0-1.fc40");
    assert_eq!(code, 201, "{v}");
    let job = v["jobs"][0].as_str().expect("a job").to_string();
    assert_eq!(s.wait_final(&job)["state"], "failed");
    let deadline = Instant::now() + JOB_DEADLINE;
    let hold = loop {
        let j = s.job(&job);
        if j["reservation"]["status"] == "ready" {
            break j["reservation"].clone();
        }
        assert!(Instant::now() < deadline, "no hold: {j}");
        std::thread::sleep(Duration::from_millis(300));
    };
    assert_eq!(hold["requester"], "author", "{hold}");
    let (code, out) = ssh_as_printed(&hold["reach"], &key, "id -u");
    assert_eq!((code, out.as_str()), (0, "0"), "{out}");
    let id = hold["id"].as_str().expect("id");
    let out = h.run(&["reservations", "release", id]);
    assert_eq!(out.code, Some(0), "{}", out.stderr);
    wait_status(&s, id, "ended");
    s.stop();
    h.assert_nothing_left(&job);
}

#[test]
fn a_reservation_allowed_packages_installs_them_and_only_then() {
    let h = Harness::new("reservations-packages");
    let mirror = DebMirror::start(&h.data_dir, &["hello"]);
    let deb = mirror.files[0].clone();
    let (key, public) = author_key(&h);
    let author = token(&h, "author", "reporter");
    let flags = mirror.flags();
    let mut args: Vec<&str> = flags.iter().map(String::as_str).collect();
    args.extend(["--reservations-per-token", "2"]);
    let s = Service::start(&h, &args, &[]);

    // Asking for what cannot be given is refused, the field named.
    let (code, bad) = post(
        &s,
        &author,
        "/api/v1/reservations",
        &json!({"ssh_key": public, "allow": ["network"]}),
    );
    assert_eq!(code, 400, "{bad}");
    let msg = bad["message"].as_str().unwrap_or("");
    assert!(
        msg.contains("allow: `network`") && msg.contains("packages"),
        "{bad}"
    );
    let (code, bad) = post(
        &s,
        &author,
        "/api/v1/reservations",
        &json!({"ssh_key": public, "image": "tiny", "allow": ["packages"]}),
    );
    assert_eq!(code, 400, "{bad}");
    let msg = bad["message"].as_str().unwrap_or("");
    assert!(
        msg.contains("tiny") && msg.contains("cannot install packages"),
        "{bad}"
    );

    // By default a reservation reaches no repository: apt cannot fetch.
    let (code, plain) = post(
        &s,
        &author,
        "/api/v1/reservations",
        &json!({"ssh_key": public, "image": "debian"}),
    );
    assert_eq!(code, 201, "{plain}");
    let plain_id = plain["id"].as_str().expect("id").to_string();
    let plain_job = plain["job"].as_str().expect("job").to_string();
    assert_eq!(plain["allow"], json!([]), "{plain}");
    let ready = wait_status(&s, &plain_id, "ready");
    let (code, out) = ssh_as_printed(&ready["reach"], &key, "apt-get install -y hello");
    assert_ne!(code, 0, "apt reached a repository without `allow`:\n{out}");
    assert_eq!(mirror.requests(&deb), 0, "{:?}", mirror.all_requests());

    // Allowed: the image's repositories, through the host's proxy.
    let (code, made) = post(
        &s,
        &author,
        "/api/v1/reservations",
        &json!({"ssh_key": public, "image": "debian", "allow": ["packages"]}),
    );
    assert_eq!(code, 201, "{made}");
    assert_eq!(made["allow"], json!(["packages"]), "{made}");
    let id = made["id"].as_str().expect("id").to_string();
    let job = made["job"].as_str().expect("job").to_string();
    let ready = wait_status(&s, &id, "ready");
    let reach = ready["reach"].clone();
    let (code, out) = ssh_as_printed(&reach, &key, "apt-get install -y hello && hello");
    assert_eq!(code, 0, "{out}");
    assert!(out.contains("Hello, world!"), "{out}");
    assert_eq!(mirror.requests(&deb), 1, "{:?}", mirror.all_requests());

    // A restart of the service takes the VM back and opens its proxy
    // again: a download goes through it (from the host's cache now).
    s.stop();
    let mut s = Service::start(&h, &args, &[]);
    s.proc
        .wait_for("package proxy is open again", Duration::from_secs(120));
    let (code, out) = ssh_as_printed(
        &reach,
        &key,
        "cd \"$(mktemp -d)\" && apt-get download hello && ls",
    );
    assert_eq!(code, 0, "{out}");
    assert!(out.contains("hello_"), "{out}");
    assert_eq!(mirror.requests(&deb), 1, "{:?}", mirror.all_requests());

    for (rid, rjob) in [(&plain_id, &plain_job), (&id, &job)] {
        let (code, gone) = post(
            &s,
            &author,
            &format!("/api/v1/reservations/{rid}/release"),
            &json!({}),
        );
        assert_eq!(code, 200, "{gone}");
        assert_eq!(wait_status(&s, rid, "ended")["end_reason"], "released");
        assert_eq!(s.wait_final(rjob)["state"], "passed");
    }
    s.stop();
    h.assert_nothing_left(&plain_job);
    h.assert_nothing_left(&job);
}
