//! Tasks written exactly as public Taskotron tasks were run unchanged, on
//! this host and in a VM, with the same results: libtaskotron's `check`
//! module (Ferrotron's own package, which the task does not ship),
//! `namespace`, task-relative files, dict exports read with dotted access,
//! argument-list shell commands under `ignorereturn`, `xunit`,
//! `create_report`, `dummy`, `resultsdb: file:` and `result_worst`. Their
//! TAP is read with a parser written to pytap13's grammar, the one
//! libtaskotron used. Every construct used wrongly is one error naming the
//! file, the line and the key.

use std::path::{Path, PathBuf};
use std::process::Command;

use ferrotron_tests::{workspace, Harness, Output};

const EXAMPLE: &str = "examples/python-versions/runtask.yml";

fn task(h: &Harness, name: &str, formula: &str, files: &[(&str, &str)]) -> PathBuf {
    let dir = h.data_dir.join("tasks").join(name);
    std::fs::create_dir_all(&dir).expect("mkdir task");
    std::fs::write(dir.join("runtask.yml"), formula).expect("write formula");
    for (file, text) in files {
        let path = dir.join(file);
        std::fs::create_dir_all(path.parent().expect("parent")).expect("mkdir");
        std::fs::write(path, text).expect("write task file");
    }
    dir.join("runtask.yml")
}

fn run(h: &Harness, vm: bool, item: &str, formula: &Path) -> Output {
    let f = formula.to_str().expect("utf-8 path");
    let mut args = vec!["run", "-i", item, "-t", "koji_build", f];
    if vm {
        args.insert(1, "--libvirt");
    }
    let out = h.run(&args);
    if let Some(id) = out.job_id() {
        h.remember_job(&id);
    }
    out
}

fn artifacts(h: &Harness, out: &Output) -> PathBuf {
    h.job_dir(&out.job_id().expect("job id")).join("artifacts")
}

/// The test points pytap13 reads in a TAP document: `(ok, description,
/// directive)`, through `tests/python/tap13.py`.
fn pytap13(tap: &str) -> Vec<(bool, String, String)> {
    let script = "import json, sys\n\
        sys.path.insert(0, sys.argv[1])\n\
        import tap13\n\
        t = tap13.parse(sys.stdin.read())\n\
        print(json.dumps([[p.result == 'ok', p.description, p.directive or ''] for p in t.tests]))\n";
    let mut child = Command::new("python3")
        .args(["-c", script])
        .arg(workspace().join("tests/python"))
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .spawn()
        .expect("python3");
    use std::io::Write;
    child
        .stdin
        .take()
        .expect("stdin")
        .write_all(tap.as_bytes())
        .expect("write tap");
    let out = child.wait_with_output().expect("tap13.py");
    assert!(out.status.success(), "tap13.py failed on:\n{tap}");
    serde_json::from_slice(&out.stdout).expect("tap13.py output")
}

/// The results a consumer looks up: checkname and outcome of each.
fn results_of(out: &Output) -> Vec<(String, String)> {
    let mut v = Vec::new();
    let mut name = None;
    for line in out.stdout.lines() {
        let line = line.trim();
        if let Some(n) = line.strip_prefix("checkname: ") {
            name = Some(n.trim_matches('"').to_string());
        } else if let Some(o) = line.strip_prefix("outcome: ") {
            v.push((
                name.take().unwrap_or_default(),
                o.trim_matches('"').to_string(),
            ));
        }
    }
    v
}

#[test]
fn a_taskotron_style_task_runs_unchanged_here_and_in_a_vm() {
    let h = Harness::new("taskotron-example");
    let formula = workspace().join(EXAMPLE);
    for vm in [false, true] {
        let out = run(&h, vm, "python3-foo-1.0-1.fc40", &formula);
        let at = if vm { "vm" } else { "local" };
        assert_eq!(out.code, Some(0), "{at}: {}\n{}", out.stdout, out.stderr);
        assert_eq!(
            results_of(&out),
            [
                ("dist.python-versions".to_string(), "PASSED".to_string()),
                (
                    "dist.python-versions.two_three".to_string(),
                    "PASSED".to_string()
                ),
            ],
            "{at}: {}",
            out.stdout
        );
        // The dotted reference reached the shell as data.
        assert!(
            out.stderr
                .contains("| self-testing the check for python3-foo 1.0"),
            "{at}: {}",
            out.stderr
        );
        let points = pytap13(&out.stdout);
        assert_eq!(points.len(), 2, "{at}: {points:?}");
        assert!(
            points.iter().all(|(ok, _, d)| *ok && d.is_empty()),
            "{at}: {points:?}"
        );
        let art = artifacts(&h, &out);
        let yml = std::fs::read_to_string(art.join("results.yml")).expect("results.yml");
        // The xunit summary (a skipped case counts as passed, as in
        // libtaskotron), the keyvals and the artifact given by its
        // absolute path, reported relative to the artifacts folder.
        assert!(yml.contains("note: \"4 PASSED\""), "{at}: {yml}");
        assert!(yml.contains(r#""python_versions": ["3"]"#), "{at}: {yml}");
        let log = std::fs::read_to_string(art.join("two_three.log")).expect("the task's log");
        assert!(
            log.starts_with("package python3-foo, version 1.0, dist fc40\n"),
            "{log}"
        );
        assert!(art.join("selftest.xml").is_file());
        if vm {
            h.assert_nothing_left(&out.job_id().expect("job id"));
        }
    }
    // A build the check fails: the worst result decides the exit status.
    for vm in [false, true] {
        let out = run(&h, vm, "python-mixed-2.0-1.fc41", &formula);
        assert_eq!(out.code, Some(1), "{}\n{}", out.stdout, out.stderr);
        assert!(
            results_of(&out).contains(&(
                "dist.python-versions.two_three".to_string(),
                "FAILED".to_string()
            )),
            "{}",
            out.stdout
        );
    }
}

const BASE: &str = "name: t\ndesc: d\nmaintainer: m\ninput:\n  args: [koji_build]\nactions:\n";

#[test]
fn builtin_directives_and_result_files_work() {
    let h = Harness::new("taskotron-directives");
    let junit = r#"<?xml version="1.0"?>
<testsuites><testsuite name="s" tests="3" failures="1" errors="0" skipped="1">
<testcase classname="s" name="ok_case"/>
<testcase classname="s" name="bad_case"><failure message="boom">trace</failure></testcase>
<testcase classname="s" name="skipped_case"><skipped/></testcase>
</testsuite></testsuites>
"#;
    let formula = task(
        &h,
        "builtins",
        &format!(
            "{BASE}  - name: hello\n    dummy:\n      result: PASS\n      msg: hello ${{koji_build}}\n    export: greeting\n\
             \x20 - name: junit\n    xunit:\n      file: junit.xml\n      aggregation: none\n    export: cases\n\
             \x20 - name: write results\n    shell:\n      - [sh, write.sh, \"${{koji_build}}\"]\n\
             \x20 - name: page\n    create_report:\n      results: ${{cases}}\n\
             \x20 - name: report cases\n    resultsdb:\n      results: ${{cases}}\n\
             \x20 - name: report file\n    resultsdb:\n      file: out/results.yml\n"
        ),
        &[
            ("junit.xml", junit),
            (
                "write.sh",
                "mkdir -p out\nprintf 'results:\\n  - item: %s\\n    type: koji_build\\n    checkname: from_file\\n    outcome: CRASHED\\n    note: \"<script>x</script>\"\\n' \"$1\" > out/results.yml\n",
            ),
        ],
    );
    for vm in [false, true] {
        let out = run(&h, vm, "foo-1-1", &formula);
        assert_eq!(out.code, Some(1), "{}\n{}", out.stdout, out.stderr);
        assert_eq!(
            results_of(&out),
            [
                ("t.ok_case".to_string(), "PASSED".to_string()),
                ("t.bad_case".to_string(), "FAILED".to_string()),
                ("t.skipped_case".to_string(), "PASSED".to_string()),
                ("from_file".to_string(), "CRASHED".to_string()),
            ],
            "{}",
            out.stdout
        );
        let art = artifacts(&h, &out);
        let page = std::fs::read_to_string(art.join("report.html")).expect("report.html");
        assert!(
            page.contains("bad_case") && page.contains("FAILED"),
            "{page}"
        );
        if vm {
            h.assert_nothing_left(&out.job_id().expect("job id"));
        }
    }
}

#[test]
fn an_item_holding_a_tap_directive_stays_a_failure_for_pytap13() {
    let h = Harness::new("taskotron-tap-hash");
    let formula = task(
        &h,
        "hash",
        &format!("{BASE}  - name: fail\n    shell: [\"false\"]\n"),
        &[],
    );
    let out = run(&h, false, "foo # SKIP because", &formula);
    assert_eq!(out.code, Some(1), "{}", out.stderr);
    let points = pytap13(&out.stdout);
    assert_eq!(points.len(), 1, "{points:?}");
    assert!(!points[0].0, "{points:?}");
    assert_eq!(points[0].2, "", "no directive: {points:?}");
    assert!(
        out.stdout.contains("item: \"foo # SKIP because\""),
        "the YAML block carries the item: {}",
        out.stdout
    );
}

#[test]
fn values_reach_their_paths_and_a_missing_key_is_named() {
    let h = Harness::new("taskotron-dotted");
    let formula = task(
        &h,
        "dotted",
        &format!(
            "{BASE}  - name: parts\n    python:\n      file: p.py\n      callable: parts\n    export: p\n\
             \x20 - name: use\n    python:\n      file: p.py\n      callable: use\n      whole: ${{p}}\n      arch: ${{p.arches.1}}\n    export: used\n\
             \x20 - name: echo\n    shell:\n      - echo \"${{used}}\"\n      - [echo, \"${{p.nested.key}}\"]\n\
             \x20 - name: missing\n    shell:\n      - [echo, \"${{p.nested.nope}}\"]\n"
        ),
        &[(
            "p.py",
            "def parts():\n    return {'arches': ['x86_64', 's390x'], 'nested': {'key': 'v'}}\n\n\
             def use(whole, arch):\n    assert isinstance(whole, dict), type(whole)\n    return '%s %s' % (sorted(whole), arch)\n",
        )],
    );
    let out = run(&h, false, "foo-1-1", &formula);
    assert_eq!(out.code, Some(1), "{}", out.stderr);
    assert!(
        out.stderr.contains("| ['arches', 'nested'] s390x\n") && out.stderr.contains("| v\n"),
        "{}",
        out.stderr
    );
    assert!(
        out.stdout
            .contains("summary: \"command 1: `${p.nested.nope}`: `p.nested` has no key `nope`\""),
        "{}",
        out.stdout
    );
}

#[test]
fn packages_the_machine_lacks_are_named_before_anything_runs() {
    let h = Harness::new("taskotron-rpm");
    let formula = task(
        &h,
        "rpm",
        "name: t\ndesc: d\nmaintainer: m\nenvironment:\n  rpm:\n    - python3-rpm\n    - rpmlint\nactions:\n  - name: x\n    shell: [\"true\"]\n",
        &[],
    );
    for (vm, machine) in [(false, "this host"), (true, "image tiny:")] {
        let out = run(&h, vm, "foo-1-1", &formula);
        out.assert_exit(2, &format!("environment.rpm: {machine}"));
        assert!(
            out.stderr.contains("lacks python3-rpm, rpmlint"),
            "{}",
            out.stderr
        );
        assert!(
            out.job_id().is_none() || !vm,
            "nothing started: {}",
            out.stderr
        );
    }
    // Left empty (only a comment under it), `rpm:` loads.
    let empty = task(
        &h,
        "rpm-empty",
        "name: t\ndesc: d\nmaintainer: m\nenvironment:\n  rpm:\n    # none\nactions:\n  - name: x\n    shell: [\"true\"]\n",
        &[],
    );
    assert_eq!(run(&h, false, "foo-1-1", &empty).code, Some(0));
}

#[test]
fn each_construct_used_wrongly_is_one_clear_error() {
    let h = Harness::new("taskotron-errors");
    let cases: &[(&str, &str, &str)] = &[
        (
            "name: t\ndesc: d\nmaintainer: m\ninput:\n  args: [module]\nactions:\n  - name: x\n    shell: [\"true\"]\n",
            ":5: input.args[0]:",
            "`module` would get no value",
        ),
        (
            "name: t\ndesc: d\nmaintainer: m\nnamespace: \"a b\"\nactions:\n  - name: x\n    shell: [\"true\"]\n",
            ":4: namespace:",
            "is not a namespace",
        ),
        (
            &format!("{BASE}  - name: x\n    shell:\n      - [echo, \"${{koji_build.name}}\"]\n"),
            ":7: actions[0].shell[0]:",
            "`koji_build` is a string",
        ),
        (
            &format!("{BASE}  - name: x\n    shell:\n      - [echo, \"${{nothing.name}}\"]\n"),
            ":7: actions[0].shell[0]:",
            "undefined variable `${nothing.name}`",
        ),
        (
            &format!("{BASE}  - name: x\n    shell:\n      - ignorereturn:\n          - ignorereturn: [\"true\"]\n"),
            ":7: actions[0].shell[0]:",
            "`ignorereturn` inside `ignorereturn`",
        ),
        (
            &format!("{BASE}  - name: x\n    shell:\n      - []\n"),
            ":7: actions[0].shell[0]:",
            "an argument list without a program",
        ),
        (
            &format!("{BASE}  - name: x\n    shell:\n      - {{ignore: [\"true\"]}}\n"),
            "actions[0].shell[0]",
            "unknown key `ignore`",
        ),
        (
            &format!("{BASE}  - name: x\n    resultsdb:\n      results: a\n      file: b\n"),
            ":7: actions[0].resultsdb:",
            "give exactly one of `results`",
        ),
        (
            &format!("{BASE}  - name: x\n    exitcode:\n      result_worst: a\n      result_last: b\n"),
            ":7: actions[0].exitcode:",
            "give exactly one of `result_worst`",
        ),
        (
            &format!("{BASE}  - name: x\n    xunit:\n      file: a.xml\n      aggregation: some\n"),
            ":7: actions[0].xunit.aggregation:",
            "`some` is not `allpass`",
        ),
        (
            &format!("{BASE}  - name: x\n    create_report:\n      results: a\n      template: t.j2\n"),
            ":7: actions[0].create_report.template:",
            "custom Jinja2 templates are not supported",
        ),
        (
            &format!("{BASE}  - name: x\n    dummy:\n      result: MAYBE\n"),
            ":7: actions[0].dummy.result:",
            "`MAYBE` is not `PASS` or `FAIL`",
        ),
        (
            &format!("{BASE}  - name: x\n    mash:\n      rpmdir: r\n"),
            ":8: actions[0].mash:",
            "directive `mash` cannot run here",
        ),
    ];
    for (i, (text, at, says)) in cases.iter().enumerate() {
        let formula = task(&h, &format!("case{i}"), text, &[]);
        let f = formula.to_str().expect("utf-8");
        for args in [
            vec!["formula", "check", f],
            vec!["run", "-i", "foo-1-1", "-t", "koji_build", f],
        ] {
            let out = h.run(&args);
            assert_eq!(out.code, Some(2), "case {i} {args:?}: {}", out.stderr);
            let line = out
                .stderr
                .lines()
                .find(|l| l.contains(says))
                .unwrap_or_else(|| panic!("case {i} {args:?}: {says:?} not in:\n{}", out.stderr));
            assert!(
                line.contains(f) && line.contains(at),
                "case {i}: {at:?} not in {line:?}"
            );
            assert!(
                out.job_id().is_none(),
                "case {i}: nothing ran: {}",
                out.stderr
            );
        }
    }
}

#[test]
fn the_libtaskotron_package_and_directives_pass_their_own_tests() {
    for suite in [
        "tests/python/test_libtaskotron.py",
        "tests/python/test_directives.py",
    ] {
        let out = Command::new("python3")
            .arg(workspace().join(suite))
            .output()
            .expect("python3");
        assert!(
            out.status.success(),
            "{suite}:\n{}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
    }
}
