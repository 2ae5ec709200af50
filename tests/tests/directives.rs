//! The `python`, `bash`, `exec` and `artifact` directives on the local
//! runner (the VM side is in `vm_jobs.rs` and the parity test): what a task
//! author sees when they work, and when their task is wrong.

use std::path::{Path, PathBuf};

use ferrotron_tests::{workspace, Harness};

/// A task folder in the test's data folder: `runtask.yml` plus `files`.
fn task(h: &Harness, name: &str, formula: &str, files: &[(&str, &str)]) -> PathBuf {
    let dir = h.data_dir.join("tasks").join(name);
    std::fs::create_dir_all(&dir).expect("mkdir task");
    std::fs::write(dir.join("runtask.yml"), formula).expect("write formula");
    for (file, text) in files {
        std::fs::write(dir.join(file), text).expect("write task file");
    }
    dir.join("runtask.yml")
}

fn run(h: &Harness, item: &str, formula: &Path) -> ferrotron_tests::Output {
    let f = formula.to_str().expect("utf-8 path");
    h.run(&["run", "-i", item, "-t", "koji_build", f])
}

fn artifacts(h: &Harness, out: &ferrotron_tests::Output) -> PathBuf {
    h.job_dir(&out.job_id().expect("job id")).join("artifacts")
}

const PY_FORMULA: &str = "name: py\ndesc: d\nmaintainer: m\ninput:\n  args: [koji_build]\nactions:\n  - name: call\n    python:\n      file: check.py\n      callable: CALLABLE\n      nvr: ${koji_build}\n    export: out\n  - name: report\n    resultsdb:\n      results: ${out}\n";

#[test]
fn python_check_reports_dotted_sub_results_and_its_log() {
    let h = Harness::new("python-example");
    let formula = workspace().join("examples/nvr-policy/runtask.yml");
    let out = run(&h, "foo-1.2-3.fc40", &formula);
    assert_eq!(out.code, Some(0), "{}", out.stderr);
    assert!(
        out.stdout
            .starts_with("TAP version 13\n1..4\nok 1 - nvr-policy.nvr for foo-1.2-3.fc40\n"),
        "{}",
        out.stdout
    );
    assert!(
        out.stdout
            .contains("ok 4 - nvr-policy.disttag for foo-1.2-3.fc40\n"),
        "{}",
        out.stdout
    );
    // What the callable printed is shown live; its return value is not.
    assert!(
        out.stderr
            .contains("| nvr-policy.disttag: PASSED (dist tag fc40)"),
        "{}",
        out.stderr
    );
    let art = artifacts(&h, &out);
    let log = std::fs::read_to_string(art.join("nvr-policy.log")).expect("collected log");
    assert!(
        log.starts_with("nvr-policy for foo-1.2-3.fc40 on x86_64\n"),
        "{log}"
    );
    let yml = std::fs::read_to_string(art.join("results.yml")).expect("results.yml");
    assert!(
        yml.contains("\"arch\": \"x86_64\""),
        "extra keys kept:\n{yml}"
    );

    // A release without a dist tag needs inspection: exit 1.
    let out = run(&h, "foo-1.2-3", &formula);
    assert_eq!(out.code, Some(1), "{}", out.stderr);
    assert!(
        out.stdout
            .contains("not ok 4 - nvr-policy.disttag for foo-1.2-3\n")
            && out.stdout.contains("outcome: \"NEEDS_INSPECTION\""),
        "{}",
        out.stdout
    );
}

#[test]
fn python_errors_are_failed_actions_that_say_why() {
    let h = Harness::new("python-errors");
    let good =
        "def run(nvr):\n    return 'results:\\n  - checkname: py\\n    outcome: PASSED\\n'\n";
    let cases: &[(&str, &str, &[&str])] = &[
        (
            "run_missing",
            good,
            &["check.py has no callable `run_missing`"],
        ),
        (
            "run",
            "def run(nvr):\n    return 1 / 0\n",
            &[
                "run() in check.py raised ZeroDivisionError: division by zero",
                "Traceback (most recent call last)",
                "return 1 / 0",
            ],
        ),
        (
            "run",
            "import no_such_module_here\n",
            &["cannot import check.py: ModuleNotFoundError: No module named 'no_such_module_here'"],
        ),
        (
            "run",
            "def run(nvr:\n",
            &["check.py line 1: SyntaxError"],
        ),
        // Python 2 code: one line naming the file, no traceback.
        (
            "run",
            "def run(nvr):\n    print \"checking\", nvr\n",
            &["check.py line 2: SyntaxError: Missing parentheses in call to 'print'", "(this looks like Python 2 code; tasks run with Python 3 only)"],
        ),
        (
            "run",
            "def run():\n    return ''\n",
            &["run() in check.py raised TypeError: run() got an unexpected keyword argument 'nvr'"],
        ),
    ];
    for (i, (callable, source, says)) in cases.iter().enumerate() {
        let formula = task(
            &h,
            &format!("case{i}"),
            &PY_FORMULA.replace("CALLABLE", callable),
            &[("check.py", source)],
        );
        let out = run(&h, "x-1-1", &formula);
        assert_eq!(out.code, Some(1), "case {i}: {}", out.stderr);
        assert!(
            out.stdout.contains("not ok 1 - py for x-1-1"),
            "case {i}: {}",
            out.stdout
        );
        assert!(
            out.stdout.contains("outcome: \"FAILED\""),
            "case {i}: {}",
            out.stdout
        );
        for needle in *says {
            assert!(
                out.stdout.contains(needle) || out.stderr.contains(needle),
                "case {i}: {needle:?} not shown:\n{}\n{}",
                out.stdout,
                out.stderr
            );
        }
        // The summary the user reads names the problem on one line.
        assert!(
            out.stdout.contains(&format!("summary: \"{}", says[0])),
            "case {i}: {}",
            out.stdout
        );
    }
    // A missing file is bad input, found before anything runs.
    let formula = task(&h, "nofile", &PY_FORMULA.replace("CALLABLE", "run"), &[]);
    let out = run(&h, "x-1-1", &formula);
    out.assert_exit(
        2,
        "runtask.yml:7: actions[0].python.file: check.py does not exist in the task folder",
    );
    assert!(out.job_id().is_none(), "no job may start: {}", out.stderr);
    let f = formula.to_str().expect("utf-8");
    let out = h.run(&["formula", "check", f]);
    out.assert_exit(2, "actions[0].python.file: check.py does not exist");
}

#[test]
fn python_keyword_arguments_are_data() {
    let h = Harness::new("python-kwargs");
    let marker = h.data_dir.join("pwned");
    let m = marker.display();
    let formula = format!(
        "name: py\ndesc: d\nmaintainer: m\ninput:\n  args: [koji_build]\nactions:\n  - name: call\n    python:\n      file: echo.py\n      callable: echo\n      item: ${{koji_build}}\n      code: \"__import__('os').system('touch {m}')\"\n      shell: \"$(touch {m})\"\n      nested: {{list: [\"${{koji_build}}\", 3, true]}}\n    export: got\n"
    );
    let formula = task(
        &h,
        "kwargs",
        &formula,
        &[(
            "echo.py",
            "import json\n\ndef echo(**kwargs):\n    return json.dumps(kwargs, sort_keys=True)\n",
        )],
    );
    let item = format!("$(touch {m}); `touch {m}`; __import__('os').system('touch {m}')-1-1");
    let out = run(&h, &item, &formula);
    assert_eq!(out.code, Some(0), "{}", out.stderr);
    let exports =
        std::fs::read_to_string(artifacts(&h, &out).join("exports.json")).expect("exports.json");
    let exports: serde_json::Value = serde_json::from_str(&exports).expect("json");
    let got: serde_json::Value =
        serde_json::from_str(exports["got"].as_str().expect("exported string")).expect("json");
    assert_eq!(
        got,
        serde_json::json!({
            "item": item,
            "code": format!("__import__('os').system('touch {m}')"),
            "shell": format!("$(touch {m})"),
            "nested": {"list": [item, 3, true]},
        })
    );
    assert!(!marker.exists(), "a keyword argument was executed");
}

#[test]
fn bash_and_exec_pass_arguments_as_argv() {
    let h = Harness::new("argv");
    let marker = h.data_dir.join("pwned");
    let item = format!("$(touch {m}); x-1-1", m = marker.display());
    let out = h.run(&[
        "run",
        "-i",
        &item,
        "-t",
        "koji_build",
        "tests/fixtures/argv/runtask.yml",
    ]);
    assert_eq!(out.code, Some(0), "{}", out.stderr);
    for line in [
        "  | 4 args".to_string(),
        format!("  | [{item}]"),
        "  | [two words]".to_string(),
        "  | [*]".to_string(),
        "  | [$HOME]".to_string(),
        format!("  | <{item}>"),
    ] {
        assert!(
            out.stderr.lines().any(|l| l == line),
            "{line:?} not in:\n{}",
            out.stderr
        );
    }
    assert!(!marker.exists(), "an argument was executed");
    // bash's export is its stdout, passed on as one argument.
    assert!(out.stderr.contains("  | <4 args\n"), "{}", out.stderr);

    // A program that is not there is an ERROR that names it.
    let formula = task(
        &h,
        "noprog",
        "name: e\ndesc: d\nmaintainer: m\nactions:\n  - name: run\n    exec:\n      program: no-such-program-here\n      args: [x]\n",
        &[],
    );
    let out = run(&h, "x-1-1", &formula);
    assert_eq!(out.code, Some(1), "{}", out.stderr);
    assert!(
        out.stdout
            .contains("summary: \"could not run no-such-program-here: not found"),
        "{}",
        out.stdout
    );
    // A failing program: its status, FAILED.
    let formula = task(
        &h,
        "false",
        "name: e\ndesc: d\nmaintainer: m\nactions:\n  - name: run\n    exec:\n      program: sh\n      args: [-c, 'exit 7']\n",
        &[],
    );
    let out = run(&h, "x-1-1", &formula);
    assert_eq!(out.code, Some(1), "{}", out.stderr);
    assert!(
        out.stdout.contains("summary: \"sh exited with status 7\""),
        "{}",
        out.stdout
    );
}

#[test]
fn artifact_collects_matches_and_refuses_escapes() {
    let h = Harness::new("artifact");
    let out = h.run(&[
        "run",
        "-i",
        "x-1-1",
        "-t",
        "koji_build",
        "tests/fixtures/argv/runtask.yml",
    ]);
    assert_eq!(out.code, Some(0), "{}", out.stderr);
    let art = artifacts(&h, &out);
    assert_eq!(
        std::fs::read_to_string(art.join("out/a.txt")).expect("a.txt"),
        "one\n"
    );
    assert!(art.join("out/b.txt").is_file());
    assert!(art.join("summary.log").is_file());
    assert!(
        !art.join("out/c.dat").exists(),
        "only matches are collected"
    );

    // A path that leaves the work folder is refused before anything runs.
    let escaping = "name: a\ndesc: d\nmaintainer: m\nactions:\n  - name: grab\n    artifact:\n      paths: [PATH]\n";
    for path in ["../../../etc/passwd", "/etc/passwd"] {
        let formula = task(&h, "escape", &escaping.replace("PATH", path), &[]);
        let out = run(&h, "x-1-1", &formula);
        out.assert_exit(
            2,
            &format!(
                "runtask.yml:5: actions[0].artifact.paths[0]: `{path}` is outside the work folder"
            ),
        );
        assert!(out.job_id().is_none(), "{}", out.stderr);
    }
    // At run time too: a rendered value, or a link that points outside.
    let formula = task(
        &h,
        "runtime",
        "name: a\ndesc: d\nmaintainer: m\ninput:\n  args: [koji_build]\nactions:\n  - name: grab\n    artifact:\n      paths: [\"${koji_build}\"]\n",
        &[],
    );
    let out = run(&h, "../../../../etc/passwd", &formula);
    assert_eq!(out.code, Some(1), "{}", out.stderr);
    assert!(
        out.stdout.contains(
            "summary: \"refused \\\"../../../../etc/passwd\\\": artifact paths must stay inside the work folder\""
        ),
        "{}",
        out.stdout
    );
    let formula = task(
        &h,
        "link",
        "name: a\ndesc: d\nmaintainer: m\nactions:\n  - name: link\n    shell: [ln -s /etc out]\n  - name: grab\n    artifact:\n      paths: [out/passwd]\n",
        &[],
    );
    let out = run(&h, "x-1-1", &formula);
    assert_eq!(out.code, Some(1), "{}", out.stderr);
    assert!(
        out.stdout.contains(
            "refused \\\"out/passwd\\\": artifact paths must stay inside the work folder"
        ),
        "{}",
        out.stdout
    );
    assert!(!artifacts(&h, &out).join("out").exists());
    // Nothing matching is the task's failure, said as such.
    let formula = task(
        &h,
        "nomatch",
        "name: a\ndesc: d\nmaintainer: m\nactions:\n  - name: grab\n    artifact:\n      paths: [\"*.xml\"]\n",
        &[],
    );
    let out = run(&h, "x-1-1", &formula);
    assert_eq!(out.code, Some(1), "{}", out.stderr);
    assert!(
        out.stdout
            .contains("summary: \"no file in the work folder matches \\\"*.xml\\\"\""),
        "{}",
        out.stdout
    );
}

#[test]
fn every_example_passes_formula_check() {
    let h = Harness::new("examples-check");
    let mut formulas: Vec<String> = std::fs::read_dir(workspace().join("examples"))
        .expect("examples/")
        .flatten()
        .map(|e| e.path().join("runtask.yml"))
        .filter(|p| p.is_file())
        .map(|p| p.display().to_string())
        .collect();
    formulas.sort();
    assert!(formulas.len() >= 5, "{formulas:?}");
    let mut args = vec!["formula", "check"];
    args.extend(formulas.iter().map(String::as_str));
    let out = h.run(&args);
    assert_eq!(out.code, Some(0), "{}", out.stderr);
    assert_eq!(out.stdout.lines().count(), formulas.len(), "{}", out.stdout);
}
