//! Jobs whose task comes from the git cache: the ref is resolved to a
//! commit before boot and recorded, the guest clones it through the SSH
//! tunnel, and the tunnel gives the guest the cache and nothing else.

use std::net::TcpListener;

use ferrotron_tests::git::{commit, git, origin};
use ferrotron_tests::Harness;

fn job_json(h: &Harness, id: &str) -> serde_json::Value {
    let text = std::fs::read_to_string(h.job_dir(id).join("job.json")).expect("job.json");
    serde_json::from_str(&text).expect("job.json is JSON")
}

#[test]
fn vm_job_clones_its_task_from_the_cache_at_the_recorded_commit() {
    let h = Harness::new("cache-vm-clone");
    let o = origin(&h.data_dir.join("origins"), "tasks", 3);
    git(&o, &["branch", "old"]);
    let out = h.run(&["cache", "add", &o.to_string_lossy()]);
    assert_eq!(out.code, Some(0), "{}", out.stderr);
    // Pushed at the origin after the add: the job's sync must see it.
    let head = commit(&o, "newer than the cache");

    let out = h.run(&[
        "run",
        "--libvirt",
        "--git-repo",
        "tasks",
        "--git-ref",
        "main",
        "-i",
        "tasks",
        "-t",
        "git_commit",
        "examples/git-clone/runtask.yml",
    ]);
    assert_eq!(out.code, Some(0), "{}", out.stderr);
    let id = out.job_id().expect("job id");
    assert!(
        out.stderr
            .contains(&format!("git: /tasks.git main is commit {head}")),
        "{}",
        out.stderr
    );
    let spec = job_json(&h, &id);
    assert_eq!(spec["vars"]["git_commit"], head.as_str());
    assert_eq!(spec["vars"]["git_url"], "http://127.0.0.1:8471/tasks.git");
    let log = std::fs::read_to_string(h.job_dir(&id).join("runner.log")).expect("runner.log");
    assert!(log.contains(&head), "runner.log lacks the commit");
    // What the guest checked out, reported from inside it.
    let checked_out =
        std::fs::read_to_string(h.job_dir(&id).join("artifacts/commit")).expect("commit");
    assert_eq!(checked_out.trim(), head);
    let commits =
        std::fs::read_to_string(h.job_dir(&id).join("artifacts/commits")).expect("commits");
    assert_eq!(commits.trim(), "4");
    h.assert_nothing_left(&id);

    // Another ref: the old branch, resolved the same way.
    let old = git(&o, &["rev-parse", "old"]).trim().to_string();
    let out = h.run(&[
        "run",
        "--libvirt",
        "--git-repo",
        "tasks",
        "--git-ref",
        "old",
        "-i",
        "tasks",
        "-t",
        "git_commit",
        "examples/git-clone/runtask.yml",
    ]);
    assert_eq!(out.code, Some(0), "{}", out.stderr);
    let id = out.job_id().expect("job id");
    let checked_out =
        std::fs::read_to_string(h.job_dir(&id).join("artifacts/commit")).expect("commit");
    assert_eq!(checked_out.trim(), old);
    h.assert_nothing_left(&id);
}

#[test]
fn a_missing_repository_or_ref_fails_before_boot() {
    let h = Harness::new("cache-vm-missing");
    let out = h.run(&[
        "run",
        "--libvirt",
        "--git-repo",
        "nope",
        "-i",
        "x",
        "-t",
        "git_commit",
        "examples/git-clone/runtask.yml",
    ]);
    out.assert_exit(2, "/nope.git is not in the git cache");
    assert!(out.job_id().is_none(), "a job started: {}", out.stderr);

    let o = origin(&h.data_dir.join("origins"), "tasks", 1);
    assert_eq!(h.run(&["cache", "add", &o.to_string_lossy()]).code, Some(0));
    let out = h.run(&[
        "run",
        "--libvirt",
        "--git-repo",
        "tasks",
        "--git-ref",
        "no-such-branch",
        "-i",
        "x",
        "-t",
        "git_commit",
        "examples/git-clone/runtask.yml",
    ]);
    out.assert_exit(2, "`no-such-branch` is not a branch, tag or commit");
    assert!(out.job_id().is_none(), "a job started: {}", out.stderr);
    // Direct access (bridged guests) needs the URL the guest would use.
    let out = h.run(&[
        "run",
        "--libvirt",
        "--cache-access",
        "direct",
        "--git-repo",
        "tasks",
        "-i",
        "x",
        "-t",
        "git_commit",
        "examples/git-clone/runtask.yml",
    ]);
    out.assert_exit(2, "cache access `direct` needs the cache's URL");
    assert!(out.job_id().is_none(), "a job started: {}", out.stderr);
    // Nothing booted, nothing left.
    assert!(
        !h.data_dir.join("vms").exists()
            || std::fs::read_dir(h.data_dir.join("vms"))
                .expect("vms")
                .count()
                == 0
    );
}

#[test]
fn the_guest_reaches_the_cache_and_no_other_host_port() {
    let h = Harness::new("cache-vm-isolation");
    let o = origin(&h.data_dir.join("origins"), "tasks", 2);
    assert_eq!(h.run(&["cache", "add", &o.to_string_lossy()]).code, Some(0));
    // Another mirrored repository: not the job's, so not the guest's.
    let secret = origin(&h.data_dir.join("origins"), "secret", 1);
    assert_eq!(
        h.run(&["cache", "add", &secret.to_string_lossy()]).code,
        Some(0)
    );
    // A host service the guest must not reach (stands for the API, the
    // database...).
    let service = TcpListener::bind("127.0.0.1:0").expect("bind");
    service.set_nonblocking(true).expect("nonblocking");
    let port = service.local_addr().expect("addr").port();

    let task = h.data_dir.join("task");
    std::fs::create_dir_all(&task).expect("task dir");
    let formula = task.join("runtask.yml");
    std::fs::write(
        &formula,
        format!(
            r#"name: isolation
desc: The cache is reachable, nothing else on the host is
maintainer: ferrotron-tests
input:
  args: [arch]
actions:
  - name: probe
    shell:
      # The same client, with the same deadline, works against the cache
      # (busybox's static wget cannot resolve even a numeric address here).
      - timeout 20 git ls-remote "${{git_url}}" > "${{artifactsdir}}/ls-remote"
      - echo cache-ok > "${{artifactsdir}}/cache"
      - if timeout 20 git ls-remote http://10.0.2.2:{port}/x.git; then echo reached 10.0.2.2 >> "${{artifactsdir}}/reached"; fi
      - if timeout 20 git ls-remote http://127.0.0.1:{port}/x.git; then echo reached 127.0.0.1 >> "${{artifactsdir}}/reached"; fi
      - if timeout 20 git ls-remote http://10.0.2.2:8471/tasks.git; then echo reached the cache via 10.0.2.2 >> "${{artifactsdir}}/reached"; fi
      - if timeout 20 git ls-remote http://127.0.0.1:8471/secret.git; then echo reached another repository >> "${{artifactsdir}}/reached"; fi
      - echo done > "${{artifactsdir}}/probed"
    timeout: 120
"#
        ),
    )
    .expect("write formula");
    let f = formula.to_string_lossy().into_owned();
    let out = h.run(&[
        "run",
        "--libvirt",
        "--git-repo",
        "tasks",
        "-i",
        "tasks",
        "-t",
        "git_commit",
        &f,
    ]);
    assert_eq!(out.code, Some(0), "{}", out.stderr);
    let id = out.job_id().expect("job id");
    let art = h.job_dir(&id).join("artifacts");
    let ls = std::fs::read_to_string(art.join("ls-remote")).expect("ls-remote");
    assert!(ls.contains("refs/heads/main"), "{ls}");
    assert!(art.join("cache").is_file() && art.join("probed").is_file());
    let reached = std::fs::read_to_string(art.join("reached")).unwrap_or_default();
    assert!(reached.is_empty(), "the guest reached: {reached}");
    // And the host side never saw a connection.
    match service.accept() {
        Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => {}
        other => panic!("the host service was reached: {other:?}"),
    }
    h.assert_nothing_left(&id);
}
