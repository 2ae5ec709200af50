//! The git cache inside `ferrotron serve`: queued jobs whose task lives in a
//! git origin are resolved through the cache before boot, record their
//! commit and clone it in the guest from the cache (also when the origin is
//! gone); a missing repository or ref is a clear `error`; the notify webhook
//! needs a writer token and syncs one repository, as a push message does;
//! the cache is readable with a real `git clone` under `/git/`.

use std::io::Read;
use std::path::Path;
use std::time::Duration;

use ferrotron_tests::git::{commit, git, origin};
use ferrotron_tests::service::{
    assert_runs_left_nothing, http, jobs_of, runner_jobs, states, token, Service,
};
use ferrotron_tests::Harness;
use serde_json::{json, Value};

/// The task the origin holds (in `gitclone/`): it clones the job's
/// repository from `${git_url}` in the guest, checks out `${git_commit}`,
/// and reports what it checked out and where from.
const TASK: &str = r#"name: git-clone
desc: Clone the task from the git cache at the job's commit
maintainer: ferrotron-tests
input:
  args: [arch]
actions:
  - name: clone from the cache
    shell:
      - git clone -q "${git_url}" "${workdir}/src"
      - git -C "${workdir}/src" checkout -q "${git_commit}"
      - git -C "${workdir}/src" rev-parse HEAD > "${artifactsdir}/commit"
      - git -C "${workdir}/src" remote get-url origin > "${artifactsdir}/url"
    timeout: 300
"#;

/// An origin with the task in `gitclone/` and `commits` more commits.
fn task_origin(root: &Path, name: &str) -> std::path::PathBuf {
    let o = origin(root, name, 1);
    std::fs::create_dir_all(o.join("gitclone")).expect("mkdir");
    std::fs::write(o.join("gitclone/runtask.yml"), TASK).expect("write task");
    git(&o, &["add", "gitclone"]);
    git(&o, &["commit", "-q", "-m", "the task"]);
    o
}

fn url(dir: &Path) -> String {
    format!("file://{}", dir.display())
}

/// Rules: items `git-*` run the task from `repo` at `git_ref`.
fn rules(h: &Harness, jobs: &[(&str, &str, &str)]) -> String {
    let mut text = String::new();
    for (prefix, repo, git_ref) in jobs {
        text.push_str(&format!(
            "- when: {{message_type: Generic, item: {{$regex: '^{prefix}-'}}}}\n  do:\n    - tasks: [{{name: git-clone, path: gitclone}}]\n      repo: '{repo}'\n      ref: '{git_ref}'\n"
        ));
    }
    if text.is_empty() {
        text.push_str("- when: {message_type: Nothing}\n  do:\n    - tasks: [nothing]\n      repo: /nonexistent\n");
    }
    let p = h.data_dir.join("rules.yml");
    std::fs::write(&p, text).expect("write rules");
    p.display().to_string()
}

fn start(h: &Harness, rules: &str, extra: &[&str]) -> Service {
    let mut args = vec!["--rules", rules, "--lease-secs", "3"];
    args.extend_from_slice(extra);
    Service::start(h, &args, &[])
}

/// POSTs a message that must be accepted; returns the answer.
fn message(s: &Service, token: &str, topic: &str, body: Value) -> Value {
    let (status, v) = s.post(token, &json!({"topic": topic, "body": body}));
    assert!((200..300).contains(&status), "{status}: {v}");
    v
}

/// Queues one job for `item`; returns its UUID.
fn queue(s: &Service, token: &str, item: &str) -> String {
    let v = message(
        s,
        token,
        "org.example.test",
        json!({"item": item, "item_type": "git_commit", "arch": "x86_64"}),
    );
    let jobs = jobs_of(&v);
    assert_eq!(jobs.len(), 1, "{v}");
    jobs[0].clone()
}

fn notify(s: &Service, token: Option<&str>, body: Value) -> (u16, Value) {
    let mut r = http()
        .post(format!("{}/api/v1/cache/notify", s.base))
        .json(&body);
    if let Some(t) = token {
        r = r.bearer_auth(t);
    }
    let r = r.send().expect("POST notify");
    let status = r.status().as_u16();
    (status, r.json().unwrap_or(Value::Null))
}

/// What the guest wrote in its artifacts folder, as the service stored it.
fn artifact(h: &Harness, uuid: &str, name: &str) -> String {
    let p = h
        .data_dir
        .join("artifacts")
        .join(uuid)
        .join("artifacts")
        .join(name);
    std::fs::read_to_string(&p)
        .unwrap_or_else(|e| panic!("{}: {e}", p.display()))
        .trim()
        .to_string()
}

fn nothing_in_tmp(h: &Harness) {
    let left: Vec<_> = std::fs::read_dir(h.data_dir.join("tmp"))
        .map(|d| d.flatten().map(|e| e.path()).collect())
        .unwrap_or_default();
    assert!(left.is_empty(), "task folders left: {left:?}");
}

#[test]
fn queued_job_from_a_git_origin_clones_the_recorded_commit_from_the_cache() {
    let h = Harness::new("cache-service-job");
    let o = task_origin(&h.data_dir.join("origins"), "tasks");
    let head = git(&o, &["rev-parse", "HEAD"]).trim().to_string();
    let rules = rules(&h, &[("git", &url(&o), "main")]);
    let t = token(&h);
    let s = start(&h, &rules, &["--max-vms", "1"]);

    // First use: the repository is added to the cache, the job passes.
    let uuid = queue(&s, &t, "git-1");
    let j = s.wait_final(&uuid);
    assert_eq!(j["state"], "passed", "{j}");
    assert_eq!(j["commit"], head.as_str(), "{j}");
    // Inside the guest: that commit, cloned from the cache (the guest has no
    // route to the host's file:// origin; the cache is its only source).
    assert_eq!(artifact(&h, &uuid, "commit"), head);
    assert_eq!(
        artifact(&h, &uuid, "url"),
        "http://127.0.0.1:8471/tasks.git"
    );
    let out = h.run(&["cache", "list"]);
    assert!(out.stdout.starts_with("/tasks.git\t"), "{}", out.stdout);

    // The origin goes away: the mirror still serves the job, at the same
    // commit.
    let gone = h.data_dir.join("origins/gone");
    std::fs::rename(&o, &gone).expect("move the origin away");
    let uuid2 = queue(&s, &t, "git-2");
    let j = s.wait_final(&uuid2);
    assert_eq!(j["state"], "passed", "{j}");
    assert_eq!(j["commit"], head.as_str(), "{j}");
    assert_eq!(artifact(&h, &uuid2, "commit"), head);
    s.stop();

    assert_runs_left_nothing(&h, 2);
    nothing_in_tmp(&h);
}

#[test]
fn a_job_for_a_missing_repository_or_ref_is_an_error_naming_it() {
    let h = Harness::new("cache-service-missing");
    let o = task_origin(&h.data_dir.join("origins"), "tasks");
    let missing = h.data_dir.join("origins/nope");
    let rules = rules(
        &h,
        &[
            ("norepo", &url(&missing), "main"),
            ("noref", &url(&o), "no-such-branch"),
            ("nofolder", &url(&o), "main~1"),
        ],
    );
    let t = token(&h);
    let s = start(&h, &rules, &["--max-vms", "1"]);

    let uuid = queue(&s, &t, "norepo-1");
    let j = s.wait_final(&uuid);
    assert_eq!(j["state"], "error", "{j}");
    let e = j["error"].as_str().unwrap_or_default();
    assert!(
        e.contains(&format!("task repository {}", url(&missing)))
            && e.contains("cannot reach origin"),
        "{j}"
    );
    assert!(!states(&j).contains(&"booting".to_string()), "{j}");
    assert_eq!(j["commit"], Value::Null, "{j}");

    let uuid = queue(&s, &t, "noref-1");
    let j = s.wait_final(&uuid);
    assert_eq!(j["state"], "error", "{j}");
    let e = j["error"].as_str().unwrap_or_default();
    assert!(
        e.contains(&format!(
            "task repository {}, ref `no-such-branch`",
            url(&o)
        )) && e.contains("`no-such-branch` is not a branch, tag or commit"),
        "{j}"
    );
    assert!(!states(&j).contains(&"booting".to_string()), "{j}");

    // A commit without the task's folder (the one before it was added).
    let uuid = queue(&s, &t, "nofolder-1");
    let j = s.wait_final(&uuid);
    assert_eq!(j["state"], "error", "{j}");
    let e = j["error"].as_str().unwrap_or_default();
    assert!(e.contains("no folder `gitclone` in /tasks.git"), "{j}");
    s.stop();
    assert!(runner_jobs(&h).is_empty(), "a VM job ran");
    nothing_in_tmp(&h);
}

#[test]
fn notify_needs_a_writer_token_and_syncs_one_repository() {
    let h = Harness::new("cache-service-notify");
    let root = h.data_dir.join("origins");
    let a = origin(&root, "a", 1);
    let b = origin(&root, "b", 1);
    for o in [&a, &b] {
        let out = h.run(&["cache", "add", &url(o)]);
        assert_eq!(out.code, Some(0), "{}", out.stderr);
    }
    let a_head = commit(&a, "pushed to a");
    let b_head = commit(&b, "pushed to b");
    let rules = rules(&h, &[]);
    let t = token(&h);
    let s = start(&h, &rules, &["--no-scheduler"]);
    let heads = |h: &Harness| -> (String, String) {
        let cache = h.data_dir.join("cache");
        let rev = |r: &str| {
            git(&cache.join(r), &["rev-parse", "refs/heads/main"])
                .trim()
                .to_string()
        };
        (rev("a.git"), rev("b.git"))
    };
    let (a0, b0) = heads(&h);
    assert_ne!(a0, a_head);

    let (status, body) = notify(&s, None, json!({"path": "/a.git"}));
    assert_eq!(status, 401, "{body}");
    assert_eq!(
        heads(&h),
        (a0.clone(), b0.clone()),
        "synced without a token"
    );
    let (status, body) = notify(&s, Some("not-a-token"), json!({"path": "/a.git"}));
    assert_eq!(status, 401, "{body}");

    let (status, body) = notify(&s, Some(&t), json!({"path": "/a.git"}));
    assert_eq!(status, 200, "{body}");
    assert_eq!(body, json!({"path": "/a.git", "outcome": "fetched"}));
    // Only a was fetched.
    assert_eq!(heads(&h), (a_head.clone(), b0.clone()));

    let (status, body) = notify(&s, Some(&t), json!({"path": "/zzz.git"}));
    assert_eq!(status, 404, "{body}");
    let (status, body) = notify(&s, Some(&t), json!({"path": "../etc"}));
    assert_eq!(status, 400, "{body}");

    // A push message does the same for b.
    message(&s, &t, "ferrotron.git.push", json!({"path": "/b.git"}));
    assert_eq!(heads(&h), (a_head.clone(), b_head.clone()));
    // Sent again with the same id (a redelivery), it is a duplicate: its
    // repository is not synced a second time.
    let once =
        json!({"id": "push-once", "topic": "ferrotron.git.push", "body": {"path": "/b.git"}});
    let (status, v) = s.post(&t, &once);
    assert_eq!(status, 201, "{v}");
    commit(&b, "pushed after the first delivery");
    let (status, v) = s.post(&t, &once);
    assert_eq!(status, 200, "a duplicate: {v}");
    assert_eq!(
        heads(&h),
        (a_head.clone(), b_head.clone()),
        "the duplicate synced"
    );
    // A dist-git push message (fedmsg layout) names `namespace/repo`: the
    // mirror whose origin ends so is synced, and only it.
    let a_next = commit(&a, "pushed to a again");
    // b moves too, but no one says so: it must stay where it was.
    commit(&b, "pushed to b again");
    message(
        &s,
        &t,
        "org.fedoraproject.prod.git.receive",
        json!({"commit": {"namespace": "origins", "repo": "a", "rev": a_next, "branch": "main", "username": "u"}}),
    );
    assert_eq!(heads(&h), (a_next.clone(), b_head.clone()));
    let a_head = a_next;

    // The cache is served read-only under /git/: a real clone gets a's
    // new head.
    let clone = h.data_dir.join("clone");
    let out = std::process::Command::new("git")
        .args(["clone", "-q", &format!("{}/git/a.git", s.base)])
        .arg(&clone)
        .env("GIT_TERMINAL_PROMPT", "0")
        .output()
        .expect("git clone");
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert_eq!(git(&clone, &["rev-parse", "HEAD"]).trim(), a_head);
    // ... and refuses a push.
    commit(&clone, "a push");
    let out = std::process::Command::new("git")
        .arg("-C")
        .arg(&clone)
        .args(["push", "-q", "origin", "HEAD:main"])
        .env("GIT_TERMINAL_PROMPT", "0")
        .output()
        .expect("git push");
    assert!(!out.status.success(), "the cache took a push");
    s.stop();
}

#[test]
fn the_service_syncs_and_checks_the_cache_periodically() {
    let h = Harness::new("cache-service-upkeep");
    let a = origin(&h.data_dir.join("origins"), "a", 1);
    let out = h.run(&["cache", "add", &url(&a)]);
    assert_eq!(out.code, Some(0), "{}", out.stderr);
    let pushed = commit(&a, "pushed, nobody told the cache");
    let rules = rules(&h, &[]);
    let mut s = start(
        &h,
        &rules,
        &[
            "--no-scheduler",
            "--cache-sync-every",
            "1s",
            "--cache-fsck-every",
            "2s",
        ],
    );
    let upkeep = "cache upkeep: sync every 1s, fsck every 2s";
    if !s.proc.seen.iter().any(|l| l.contains(upkeep)) {
        s.proc.wait_for(upkeep, Duration::from_secs(60));
    }
    // Nobody notifies: the periodic sync fetches the push (bounded wait).
    s.proc
        .wait_for("cache sync: 0 cloned, 1 fetched", Duration::from_secs(120));
    let mirror = h.data_dir.join("cache/a.git");
    assert_eq!(
        git(&mirror, &["rev-parse", "refs/heads/main"]).trim(),
        pushed
    );
    s.proc.wait_for(
        "cache fsck: 1 checked, 0 repaired, 0 broken",
        Duration::from_secs(120),
    );
    s.stop();
}

/// A task repository whose URL carries credentials (rules take no query,
/// so user information): the queued jobs that add and use it, the notify
/// webhook, the jobs' list and show, the served and the stored manifest and
/// the service's log never show them.
#[test]
fn origin_credentials_stay_out_of_the_api_the_manifest_and_the_log() {
    let h = Harness::new("cache-service-secrets");
    // The origin is another cache's `cache serve` (it ignores credentials).
    let central = Harness::new("cache-service-secrets-origin");
    let o = task_origin(&central.data_dir.join("origins"), "tasks");
    let out = central.run(&["cache", "add", &url(&o)]);
    assert_eq!(out.code, Some(0), "{}", out.stderr);
    let mut origin_server = central.spawn(&["cache", "serve", "--listen", "127.0.0.1:0"]);
    let line = origin_server.wait_for("serving cache", Duration::from_secs(30));
    let base = line.rsplit(' ').next().expect("url").to_string();
    let secret = |path: &str| {
        format!(
            "{}/{path}",
            base.replace("http://", "http://robot:s3cret-token@")
        )
    };
    let rules = rules(
        &h,
        &[
            ("nofolder", &secret("tasks.git"), "main~1"),
            ("norepo", &secret("missing.git"), "main"),
        ],
    );
    let t = token(&h);
    let s = start(&h, &rules, &["--max-vms", "1"]);

    // Added to the cache by the job's prelude, then the job fails (no task
    // folder at that commit) without booting.
    let added = queue(&s, &t, "nofolder-1");
    let j = s.wait_final(&added);
    assert_eq!(j["state"], "error", "{j}");
    assert!(
        j["error"]
            .as_str()
            .unwrap_or_default()
            .contains("no folder `gitclone` in /tasks.git"),
        "{j}"
    );
    let failed = queue(&s, &t, "norepo-1");
    let j = s.wait_final(&failed);
    assert_eq!(j["state"], "error", "{j}");
    let e = j["error"].as_str().unwrap_or_default();
    assert!(
        e.contains(&format!("task repository {base}/missing.git"))
            && e.contains("cannot reach origin"),
        "{j}"
    );
    let (status, notified) = notify(&s, Some(&t), json!({"path": "/tasks.git"}));
    assert_eq!(status, 200, "{notified}");

    let get = |path: &str| -> Vec<u8> {
        let r = http().get(format!("{}{path}", s.base)).send().expect("GET");
        assert_eq!(r.status().as_u16(), 200, "{path}");
        r.bytes().expect("body").to_vec()
    };
    let gunzip = |gz: &[u8]| {
        let mut text = String::new();
        flate2::read::GzDecoder::new(gz)
            .read_to_string(&mut text)
            .expect("gzip");
        text
    };
    let mut shown = vec![
        ("notify's answer", notified.to_string()),
        (
            "the jobs' list",
            String::from_utf8_lossy(&get("/api/v1/jobs")).into_owned(),
        ),
        ("the served manifest", gunzip(&get("/git/manifest.js.gz"))),
        (
            "the manifest file",
            gunzip(&std::fs::read(h.data_dir.join("cache/manifest.js.gz")).expect("manifest")),
        ),
    ];
    for uuid in [&added, &failed] {
        shown.push((
            "a job's show",
            String::from_utf8_lossy(&get(&format!("/api/v1/jobs/{uuid}"))).into_owned(),
        ));
    }
    let list = h.run(&["cache", "list"]);
    shown.push(("cache list", list.stdout.clone()));
    assert!(
        list.stdout.contains(&format!("{base}/tasks.git")),
        "{}",
        list.stdout
    );
    let Service { proc, .. } = s;
    proc.signal(nix::sys::signal::Signal::SIGTERM);
    let (code, log) = proc.finish(Duration::from_secs(60));
    assert_eq!(code, Some(0), "{log}");
    assert!(log.contains("adding "), "the log tells of the add: {log}");
    shown.push(("serve's log", log));
    for (what, text) in &shown {
        for needle in ["s3cret", "robot"] {
            assert!(!text.contains(needle), "{what} shows {needle:?}:\n{text}");
        }
    }
    origin_server.signal(nix::sys::signal::Signal::SIGTERM);
    let (code, _) = origin_server.finish(Duration::from_secs(30));
    assert_eq!(code, Some(0));
}
