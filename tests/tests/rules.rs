//! `ferrotron rules check|test` driven through the real binary: what a rules
//! author sees for good and bad files, and the jobs realistic Koji, Bodhi and
//! dist-git messages create with the example rules.

use std::path::PathBuf;

use ferrotron_tests::{workspace, Harness};

fn write(h: &Harness, name: &str, text: &str) -> PathBuf {
    let p = h.data_dir.join(name);
    std::fs::write(&p, text).expect("write test file");
    p
}

fn s(p: &std::path::Path) -> &str {
    p.to_str().expect("utf-8 path")
}

fn message(name: &str) -> String {
    format!("tests/fixtures/messages/{name}.json")
}

/// `rules test --json` on the example rules; the parsed evaluation.
fn evaluate(h: &Harness, msg: &str) -> serde_json::Value {
    let out = h.run(&[
        "rules",
        "test",
        "--json",
        "examples/rules.yml",
        &message(msg),
    ]);
    assert_eq!(out.code, Some(0), "{}", out.stderr);
    serde_json::from_str(&out.stdout).expect("rules test --json prints JSON")
}

/// (rule, task, item, item_type, arch, priority, path) of each job.
fn jobs(ev: &serde_json::Value) -> Vec<(u64, String, String, String, String, i64, String)> {
    ev["jobs"]
        .as_array()
        .expect("jobs")
        .iter()
        .map(|j| {
            let t = |k: &str| j[k].as_str().expect(k).to_string();
            (
                j["rule"].as_u64().expect("rule"),
                t("task"),
                t("item"),
                t("item_type"),
                t("arch"),
                j["priority"].as_i64().expect("priority"),
                t("path"),
            )
        })
        .collect()
}

fn job(
    rule: u64,
    task: &str,
    item: &str,
    item_type: &str,
    arch: &str,
    prio: i64,
) -> (u64, String, String, String, String, i64, String) {
    (
        rule,
        task.into(),
        item.into(),
        item_type.into(),
        arch.into(),
        prio,
        format!("examples/{task}"),
    )
}

#[test]
fn example_rules_pass_the_check() {
    let h = Harness::new("rules-check-example");
    let out = h.run(&["rules", "check", "examples/rules.yml"]);
    assert_eq!(out.code, Some(0), "{}", out.stderr);
    assert_eq!(
        out.stdout,
        "examples/rules.yml: ok (5 rule(s), 6 task(s))\n"
    );
    assert_eq!(out.stderr, "");
    // The built-in mappings, shipped as a file to copy, check too.
    let out = h.run(&[
        "rules",
        "check",
        "--mappings",
        "orchestrator/rules/mappings.yaml",
        "examples/rules.yml",
    ]);
    assert_eq!(out.code, Some(0), "{}", out.stderr);
    assert!(out
        .stdout
        .starts_with("orchestrator/rules/mappings.yaml: ok (8 mapping(s))\n"));
}

#[test]
fn bad_rules_name_file_line_and_key() {
    let h = Harness::new("rules-check-bad");
    let good = write(
        &h,
        "good.yml",
        "- when: {name: bash}\n  do:\n    - tasks: [a]\n      repo: /srv/tasks\n",
    );
    let cases = [
        (
            "unknown-key.yml",
            "- when: {name: bash}\n  do:\n    - tasks: [a]\n      repo: /srv/tasks\n      arch: [x86_64]\n",
            "5: [0].do[0].arch: unknown field `arch`, expected one of `tasks`, `repo`, `ref`, `arches`, `priority`, `image`, `timeout`, `hold_on_failure`",
        ),
        (
            "wrong-type.yml",
            "- when: {name: bash}\n  do:\n    - tasks: [a]\n      repo: /srv/tasks\n      priority: high\n",
            "5: [0].do[0].priority: invalid type: string \"high\", expected i32",
        ),
        (
            "bad-regex.yml",
            "- when: {name: bash}\n  do:\n    - tasks: [a]\n      repo: /r\n- when:\n    release: {$regex: 'fc(4'}\n  do:\n    - tasks: [a]\n      repo: /r\n",
            "6: [1].when.release.$regex: bad regex `fc(4`: error: unclosed group",
        ),
        (
            "bad-operator.yml",
            "- when:\n    name: {$notin: [kernel]}\n  do:\n    - tasks: [a]\n      repo: /r\n",
            "2: [0].when.name.$notin: unknown operator `$notin` (known: $eq, $ne, $in, $nin, $regex, $exists)",
        ),
        (
            "in-not-list.yml",
            "- when:\n    name: {$in: kernel}\n  do:\n    - tasks: [a]\n      repo: /r\n",
            "2: [0].when.name.$in: invalid type: string \"kernel\", expected a sequence",
        ),
        (
            "no-repo.yml",
            "- when: {name: bash}\n  do:\n    - tasks: [a]\n",
            "3: [0].do[0].tasks[0]: task `a` has no repo: give `repo` in the task or beside `tasks`",
        ),
    ];
    let mut args = vec!["rules", "check", s(&good)];
    let paths: Vec<PathBuf> = cases.iter().map(|(n, t, _)| write(&h, n, t)).collect();
    args.extend(paths.iter().map(|p| s(p)));
    let out = h.run(&args);
    assert_eq!(out.code, Some(2), "{}", out.stderr);
    assert_eq!(
        out.stdout,
        format!("{}: ok (1 rule(s), 1 task(s))\n", good.display())
    );
    let expected: String = cases
        .iter()
        .zip(&paths)
        .map(|((_, _, msg), p)| format!("ferrotron: error: {}:{msg}\n", p.display()))
        .collect();
    assert_eq!(out.stderr, expected);

    let out = h.run(&["rules", "check", "no/such/rules.yml"]);
    assert_eq!(out.code, Some(2));
    assert_eq!(
        out.stderr,
        "ferrotron: error: no/such/rules.yml: cannot read rules: No such file or directory (os error 2)\n"
    );
}

#[test]
fn bad_mappings_and_messages_are_bad_input() {
    let h = Harness::new("rules-test-bad-input");
    let m = write(
        &h,
        "mappings.yaml",
        "- topic: a.b\n  fields:\n    item: '{name'\n",
    );
    let out = h.run(&[
        "rules",
        "test",
        "--mappings",
        s(&m),
        "examples/rules.yml",
        &message("koji-build-complete"),
    ]);
    assert_eq!(out.code, Some(2));
    assert_eq!(
        out.stderr,
        format!("ferrotron: error: {}:3: [0].fields.item: `{{name`: unclosed `{{` (write `{{{{` for a literal brace)\n", m.display())
    );
    let msg = write(
        &h,
        "msg.json",
        "{\"topic\": \"a.b\",\n \"boddy\": {}, \"priority\": 0}",
    );
    let out = h.run(&["rules", "test", "examples/rules.yml", s(&msg)]);
    assert_eq!(out.code, Some(2));
    assert_eq!(
        out.stderr,
        format!(
            "ferrotron: error: {}: line 2 column 28: (top level): missing field `body`\n",
            msg.display()
        )
    );
}

#[test]
fn koji_build_complete_makes_the_quick_checks_and_hello_on_two_arches() {
    let h = Harness::new("rules-test-koji");
    let ev = evaluate(&h, "koji-build-complete");
    assert_eq!(ev["mapping"], "koji build completed");
    assert_eq!(ev["fields"]["item"], "bash-5.2.37-1.fc42");
    assert_eq!(ev["fields"]["message_type"], "KojiBuildPackageCompleted");
    assert_eq!(ev["fields"]["distgit_branch"], "f42", "from the dist tag");
    let nvr = "bash-5.2.37-1.fc42";
    assert_eq!(
        jobs(&ev),
        vec![
            job(0, "rpm-sanity", nvr, "koji_build", "x86_64", 10),
            job(0, "nvr-policy", nvr, "koji_build", "x86_64", 10),
            job(1, "hello", nvr, "koji_build", "x86_64", 0),
            job(1, "hello", nvr, "koji_build", "aarch64", 0),
        ]
    );
    let j = &ev["jobs"][0];
    assert_eq!(j["message_id"], "2026-0f4e1f6c-5a8d-4b0b-9d7e-3c1f5e9b2a10");
    assert_eq!(
        j["topic"],
        "org.fedoraproject.prod.buildsys.build.state.change"
    );
    assert_eq!(j["repo"], s(&workspace()), "`repo: ..` is the checkout");
    assert_eq!(j["ref"], "HEAD");
    assert_eq!(j["image"], serde_json::Value::Null);

    // The table says the same for a person.
    let out = h.run(&[
        "rules",
        "test",
        "examples/rules.yml",
        &message("koji-build-complete"),
    ]);
    assert_eq!(out.code, Some(0));
    assert!(
        out.stdout.contains("mapping: koji build completed\n"),
        "{}",
        out.stdout
    );
    assert!(
        out.stdout.contains("rules matched: 0, 1\njobs: 4\n"),
        "{}",
        out.stdout
    );
    assert!(
        out.stdout
            .contains("  1     hello       bash-5.2.37-1.fc42  koji_build  aarch64  0     -"),
        "{}",
        out.stdout
    );
}

#[test]
fn failed_builds_and_excluded_packages_make_no_job() {
    let h = Harness::new("rules-test-nothing");
    let ev = evaluate(&h, "koji-build-failed");
    assert_eq!(ev["mapping"], serde_json::Value::Null, "new: 3 is FAILED");
    assert_eq!(ev["jobs"], serde_json::json!([]));
    let ev = evaluate(&h, "koji-build-kernel");
    assert_eq!(ev["fields"]["name"], "kernel");
    assert_eq!(
        ev["missing"]["distgit_branch"],
        "`300.el10` does not match `\\.fc([0-9]+)(\\.|$)`"
    );
    assert_eq!(ev["matched_rules"], serde_json::json!([]));
    assert_eq!(ev["jobs"], serde_json::json!([]));
    let out = h.run(&[
        "rules",
        "test",
        "examples/rules.yml",
        &message("koji-build-kernel"),
    ]);
    assert!(
        out.stdout.ends_with("rules matched: none\njobs: 0\n"),
        "{}",
        out.stdout
    );
}

#[test]
fn bodhi_update_and_distgit_push() {
    let h = Harness::new("rules-test-bodhi-distgit");
    let ev = evaluate(&h, "bodhi-update-testing");
    assert_eq!(ev["fields"]["distgit_branch"], "f42");
    assert_eq!(
        jobs(&ev),
        vec![job(
            2,
            "hello",
            "FEDORA-2026-4f1e2d3c4b",
            "bodhi_update",
            "x86_64",
            5
        )]
    );
    let ev = evaluate(&h, "distgit-push");
    assert_eq!(
        ev["fields"]["commit"],
        "3a1b0c9d8e7f6a5b4c3d2e1f0a9b8c7d6e5f4a3b"
    );
    assert_eq!(ev["fields"]["repo"], "bash");
    assert_eq!(
        jobs(&ev),
        vec![job(
            3,
            "whitespace-lint",
            "rpms/bash#3a1b0c9d8e7f6a5b4c3d2e1f0a9b8c7d6e5f4a3b",
            "git_commit",
            "x86_64",
            0
        )]
    );
}

#[test]
fn values_from_messages_stay_data() {
    let h = Harness::new("rules-test-hostile");
    let marker = std::path::Path::new("/tmp/ferrotron-pwned");
    assert!(
        !marker.exists(),
        "left over from something else: {}",
        marker.display()
    );
    let ev = evaluate(&h, "hostile-item");
    assert_eq!(ev["fields"]["name"], "x;rm -rf /");
    assert_eq!(
        jobs(&ev),
        vec![job(
            4,
            "hello",
            "$(touch /tmp/ferrotron-pwned)",
            "koji_build",
            "x86_64",
            -1
        )]
    );
    let out = h.run(&[
        "rules",
        "test",
        "examples/rules.yml",
        &message("hostile-item"),
    ]);
    assert!(
        out.stdout
            .contains("  4     hello  $(touch /tmp/ferrotron-pwned)  koji_build"),
        "{}",
        out.stdout
    );
    assert!(!marker.exists(), "a message value was run as a command");
}
