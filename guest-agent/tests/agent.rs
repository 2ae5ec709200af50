//! Runs the real agent binary on jobs in temporary folders.
#![allow(clippy::unwrap_used)]

mod common;

use common::*;
use ferrotron_agent::protocol::{Event, Outcome, Stream};
use serde_json::json;

#[test]
fn passing_action() {
    let t = TempJob::new("pass");
    let run = t.run(&t.job(json!([
        {"name": "run check", "shell": ["echo hello", "echo oops >&2", "pwd"]}
    ])));
    assert_eq!(run.code, 0, "{}", run.stderr);
    assert!(run.stderr.is_empty(), "{}", run.stderr);
    assert!(matches!(&run.events[0], Event::Start { actions: 1, .. }));
    assert_eq!(
        run.events[1],
        Event::ActionStart {
            index: 1,
            name: "run check".into()
        }
    );
    let workdir = t.workdir().display().to_string();
    assert_eq!(run.output_lines(1), ["hello", "oops", workdir.as_str()]);
    assert!(run.events.iter().any(|e| matches!(e,
        Event::Output { stream: Stream::Stderr, line, .. } if line == "oops")));
    assert!(matches!(
        &run.events[run.events.len() - 2],
        Event::ActionEnd {
            outcome: Outcome::Passed,
            exit_code: Some(0),
            signal: None,
            timed_out: false,
            ..
        }
    ));
    assert!(matches!(
        run.finish(),
        Event::Finish {
            outcome: Outcome::Passed,
            passed: 1,
            failed: 0,
            skipped: 0,
            ..
        }
    ));
    let log = std::fs::read_to_string(t.artifacts().join("actions/01-run-check.log")).unwrap();
    assert_eq!(log, format!("hello\noops\n{workdir}\n"));
    let results = t.results();
    assert_eq!(results.len(), 1);
    assert_eq!(results[0]["checkname"], "demo");
    assert_eq!(results[0]["outcome"], "PASSED");
    assert_eq!(results[0]["summary"], "exit 0");
    assert_eq!(results[0]["item_type"], "koji_build");
    check_tap_against(&t.tap(), &results);
}

#[test]
fn failing_command_stops_the_job() {
    let t = TempJob::new("fail");
    let run = t.run(&t.job(json!([
        {"name": "first", "shell": ["true", "echo before; exit 3", "touch never-1"]},
        {"name": "second", "shell": ["touch never-2"]},
        {"name": "third", "shell": ["touch never-3"]}
    ])));
    assert_eq!(run.code, 1);
    for n in 1..=3 {
        assert!(!t.workdir().join(format!("never-{n}")).exists());
    }
    assert!(matches!(
        run.finish(),
        Event::Finish {
            outcome: Outcome::Failed,
            passed: 0,
            failed: 1,
            skipped: 2,
            ..
        }
    ));
    assert!(!run
        .events
        .iter()
        .any(|e| matches!(e, Event::ActionStart { index: 2, .. })));
    let results = t.results();
    assert_eq!(results.len(), 1);
    assert_eq!(results[0]["checkname"], "demo.first");
    assert_eq!(results[0]["outcome"], "FAILED");
    assert_eq!(
        results[0]["summary"],
        "command 2 exited with status 3: echo before; exit 3"
    );
    assert_eq!(results[0]["output"], "before\n");
    let tap = t.tap();
    assert!(
        tap.contains("\nnot ok 1 - demo.first for foo-1.0-1.fc40\n"),
        "{tap}"
    );
    check_tap_against(&tap, &results);
}

#[test]
fn command_killed_by_a_signal_fails() {
    let t = TempJob::new("signal");
    let run = t.run(&t.job(json!([{"name": "a", "shell": ["kill -9 $$"]}])));
    assert_eq!(run.code, 1);
    assert!(run.events.iter().any(|e| matches!(
        e,
        Event::ActionEnd {
            outcome: Outcome::Failed,
            signal: Some(9),
            exit_code: None,
            ..
        }
    )));
    assert_eq!(
        t.results()[0]["summary"],
        "command 1 killed by signal 9: kill -9 $$"
    );
}

#[test]
fn timeout_kills_the_whole_process_group() {
    let t = TempJob::new("timeout");
    let run = t.run(&t.job(json!([{
        "name": "hang",
        "shell": ["sleep 300 & echo $! > bg.pid; echo $$ > sh.pid; echo started; sleep 300; wait"],
        "timeout_secs": 1
    }, {"name": "never", "shell": ["true"]}])));
    assert_eq!(run.code, 1);
    for file in ["bg.pid", "sh.pid"] {
        let pid = read_pid(&t.workdir().join(file));
        assert!(process_gone(pid), "{file}: process {pid} still runs");
    }
    assert!(run.events.iter().any(|e| matches!(
        e,
        Event::ActionEnd {
            outcome: Outcome::Error,
            timed_out: true,
            signal: Some(15),
            ..
        }
    )));
    assert!(matches!(run.finish(), Event::Finish { skipped: 1, .. }));
    let results = t.results();
    assert_eq!(results[0]["outcome"], "ERROR");
    assert_eq!(results[0]["summary"], "timed out after 1 s");
    assert_eq!(results[0]["output"], "started\n");
}

#[test]
fn timeout_kills_what_ignores_sigterm() {
    let t = TempJob::new("sigkill");
    let run = t.run(&t.job(json!([{
        "name": "stubborn",
        "shell": ["trap '' TERM; sleep 300 >/dev/null 2>&1 & echo $! > bg.pid; sleep 300"],
        "timeout_secs": 1
    }])));
    assert_eq!(run.code, 1);
    let pid = read_pid(&t.workdir().join("bg.pid"));
    assert!(process_gone(pid), "process {pid} still runs");
    assert_eq!(t.results()[0]["summary"], "timed out after 1 s");
}

#[test]
fn background_process_holding_the_pipes_does_not_hang_the_action() {
    let t = TempJob::new("background");
    let run = t.run(&t.job(json!([{
        "name": "daemon",
        // Were the agent to wait for the pipes' end, the test would hang
        // for 300 s and the runner's time-out would fail it.
        "shell": ["sleep 300 & echo $! > bg.pid; echo early", "echo next"]
    }])));
    let pid = read_pid(&t.workdir().join("bg.pid"));
    let _ = std::process::Command::new("kill")
        .arg(pid.to_string())
        .status();
    assert_eq!(run.code, 0, "{}", run.stderr);
    assert_eq!(run.output_lines(1), ["early", "next"]);
}

#[test]
fn export_passes_stdout_to_later_actions() {
    let t = TempJob::new("export");
    let run = t.run(&t.job(json!([
        {"name": "make", "shell": ["echo hello", "printf 'world\\n\\n'"], "export": "greeting"},
        {"name": "use", "shell": [
            "printf '%s' \"$greeting\" > got.txt",
            "test \"$greeting\" = \"$(printf 'hello\\nworld')\""
        ]}
    ])));
    assert_eq!(run.code, 0, "{}", run.stdout);
    let got = std::fs::read_to_string(t.workdir().join("got.txt")).unwrap();
    assert_eq!(got, "hello\nworld");
    let results = t.results();
    assert_eq!(results[0]["checkname"], "demo.make");
    assert_eq!(results[1]["checkname"], "demo.use");
}

#[test]
fn vars_are_data_not_code() {
    let t = TempJob::new("vars");
    let pwned = t.path("pwned");
    let pwned2 = t.path("pwned2");
    let evil = format!(
        "$(touch {}); `touch {}`; x",
        pwned.display(),
        pwned2.display()
    );
    let mut job = t.job(json!([{
        "name": "echo",
        "shell": ["echo \"$item\"", "echo $item", "echo ${item}"]
    }]));
    job["item"] = json!(evil);
    job["vars"]["item"] = json!(evil);
    let run = t.run(&job);
    assert_eq!(run.code, 0, "{}", run.stdout);
    assert!(!pwned.exists() && !pwned2.exists(), "a var was run as code");
    assert_eq!(run.output_lines(1)[0], evil);
    check_tap_against(&t.tap(), &t.results());
}

#[test]
fn environment_is_clean_and_documented() {
    let t = TempJob::new("env");
    std::env::set_var("FERROTRON_TEST_LEAK", "1");
    let run = t.run(&t.job(json!([{"name": "env", "shell": ["env"]}])));
    assert_eq!(run.code, 0);
    let lines = run.output_lines(1);
    let has = |s: &str| lines.iter().any(|l| l == s);
    assert!(has(&format!("FERROTRON_WORKDIR={}", t.workdir().display())));
    assert!(has(&format!(
        "FERROTRON_ARTIFACTSDIR={}",
        t.artifacts().display()
    )));
    assert!(has(&format!(
        "FERROTRON_TASKDIR={}",
        t.path("task").display()
    )));
    assert!(has("FERROTRON_JOB_ID=00000000-0000-4000-8000-000000000001"));
    assert!(has("LANG=C.UTF-8"));
    assert!(has("item=foo-1.0-1.fc40"));
    assert!(has(
        "PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"
    ));
    assert!(lines.iter().any(|l| l.starts_with("HOME=")));
    assert!(!lines.iter().any(|l| l.starts_with("FERROTRON_TEST_LEAK")));
}

#[test]
fn command_that_cannot_start_is_an_error() {
    let t = TempJob::new("nostart");
    let run = t.run(&t.job(json!([
        {"name": "a", "shell": ["rm -rf \"$FERROTRON_WORKDIR\"", "true"]}
    ])));
    assert_eq!(run.code, 1);
    let results = t.results();
    assert_eq!(results[0]["outcome"], "ERROR");
    let summary = results[0]["summary"].as_str().unwrap();
    assert!(
        summary.starts_with("could not run command 2: "),
        "{summary}"
    );
}

#[test]
fn control_characters_and_bad_utf8_in_output() {
    let t = TempJob::new("control");
    let run = t.run(&t.job(json!([{
        "name": "noisy",
        "shell": [
            "printf '\\033[1mbold\\033[0m\\r\\nbar\\rbaz\\t \\n\\377\\376 bad\\n\\000nul\\n'",
            "printf '  leading\\n\\n\\n'",
            "printf '\\342\\200\\250 sep \\302\\205 nel\\n'",
        ]
    }])));
    assert_eq!(run.code, 0, "{}", run.stderr);
    let lines = run.output_lines(1);
    assert_eq!(lines[0], "\u{1b}[1mbold\u{1b}[0m\r");
    assert_eq!(lines[1], "bar\rbaz\t ");
    assert_eq!(lines[2], "\u{fffd}\u{fffd} bad");
    assert_eq!(lines[3], "\u{0}nul");
    let results = t.results();
    let tap = t.tap();
    assert!(tap.contains("\\x1b[1mbold"), "{tap}");
    check_tap_against(&tap, &results);
}

#[test]
fn long_lines_are_split() {
    let t = TempJob::new("long");
    let run = t.run(&t.job(json!([{
        "name": "long",
        "shell": ["head -c 20000 /dev/zero | tr '\\0' x; echo; echo end"]
    }])));
    assert_eq!(run.code, 0);
    let lines = run.output_lines(1);
    assert_eq!(
        lines.iter().map(String::len).collect::<Vec<_>>(),
        [8192, 8192, 3616, 3]
    );
    for line in run.stdout.lines() {
        serde_json::from_str::<Event>(line).unwrap();
    }
}

#[test]
fn bad_job_files_exit_2_and_say_why() {
    let t = TempJob::new("bad");
    let file = t.path("job.json");
    let cases = [
        (
            t.job(json!([{"name": "a", "shell": ["true"], "timeout": 5}])),
            "actions[0].timeout: unknown field `timeout`",
        ),
        (
            {
                let mut j = t.job(json!([{"name": "a", "shell": ["true"]}]));
                j["colour"] = json!("blue");
                j
            },
            "unknown field `colour`",
        ),
        (
            {
                let mut j = t.job(json!([{"name": "a", "shell": ["true"]}]));
                j["vars"]["bad-name"] = json!("x");
                j
            },
            "vars: invalid variable name \"bad-name\"",
        ),
        (t.job(json!([])), "actions"),
    ];
    for (job, expected) in cases {
        let run = t.run(&job);
        assert_eq!(run.code, 2, "{}", run.stderr);
        let first = run.stderr.lines().next().unwrap();
        assert!(
            first.starts_with("ferrotron-agent: error: bad job file "),
            "{first}"
        );
        assert!(first.contains(file.to_str().unwrap()), "{first}");
        assert!(first.contains(expected), "{first}");
        assert_eq!(run.stderr.lines().count(), 1);
        match &run.events[..] {
            [Event::Error { message }] => assert!(message.contains(expected)),
            other => panic!("expected one error event, got {other:?}"),
        }
        assert!(!t.artifacts().exists());
    }

    std::fs::write(&file, "{\"version\": 1,\n  oops").unwrap();
    let run = run_agent(&["run", file.to_str().unwrap()]);
    assert_eq!(run.code, 2);
    assert!(run.stderr.contains("line 2"), "{}", run.stderr);

    let missing = t.path("missing.json");
    let run = run_agent(&["run", missing.to_str().unwrap()]);
    assert_eq!(run.code, 2);
    assert!(run.stderr.contains("missing.json"), "{}", run.stderr);
}

#[test]
fn internal_error_exits_3() {
    let t = TempJob::new("internal");
    std::fs::write(t.path("artifacts"), "a file, not a folder").unwrap();
    let run = t.run(&t.job(json!([{"name": "a", "shell": ["true"]}])));
    assert_eq!(run.code, 3, "{}", run.stderr);
    assert!(run
        .stderr
        .starts_with("ferrotron-agent: error: cannot create "));
    assert!(matches!(run.events.last(), Some(Event::Error { .. })));
}

#[test]
fn command_line() {
    let agent = |args: &[&str]| {
        std::process::Command::new(AGENT)
            .args(args)
            .output()
            .unwrap()
    };
    let out = agent(&["--version"]);
    assert_eq!(out.status.code(), Some(0));
    assert_eq!(
        String::from_utf8_lossy(&out.stdout),
        format!("ferrotron-agent {}\n", env!("CARGO_PKG_VERSION"))
    );
    let out = agent(&["--help"]);
    assert_eq!(out.status.code(), Some(0));
    assert!(String::from_utf8_lossy(&out.stdout).starts_with("usage: ferrotron-agent run JOB.json"));
    for args in [&[][..], &["--frobnicate"], &["run"], &["run", "a", "b"]] {
        let out = agent(args);
        assert_eq!(out.status.code(), Some(2), "{args:?}");
        assert!(String::from_utf8_lossy(&out.stderr).starts_with("usage:"));
    }
}
