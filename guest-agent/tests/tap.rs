//! TAP13 written by `tap13` for awkward outputs parses back, with our
//! strict checker and (when installed) PyYAML.
#![allow(clippy::unwrap_used)]

mod common;

use common::*;
use ferrotron_agent::protocol::{Outcome, TaskResult};
use ferrotron_agent::tap13;

const OUTPUTS: &[&str] = &[
    "",
    "one line",
    "one line\n",
    "two\nlines",
    "two\nlines\n",
    "trailing newlines\n\n\n",
    "\n\nleading newlines\n",
    "  leading spaces\nnext\n",
    "\n   \n  indented after blank lines\n",
    "   \n\t\n",
    "\ttab first\n",
    "trailing spaces   \n  \nend  ",
    "quotes \" and 'single' and \\backslash\\ and # hash: colon\n- dash\n",
    "--- a/file\n+++ b/file\n",
    "looks like the end\n...\nmore\n",
    "  ...  \n",
    "ansi \u{1b}[31mred\u{1b}[0m\nbell \u{7}\nnul \u{0}\n",
    "crlf\r\nlines\r\n",
    "progress 10%\rprogress 100%\n",
    "del \u{7f} nel \u{85} c1 \u{9b}\nline sep \u{2028} para \u{2029}\nbom \u{feff} nonchar \u{fffe}\n",
    "unicode é ü € 😀 \u{fffd}\n",
    "key: value\n{flow: map}\n[1, 2]\n&anchor *alias !tag %directive @at `tick`\n",
    "|\n>\n",
];

fn result(i: usize, output: &str) -> TaskResult {
    let outcomes = [
        Outcome::Passed,
        Outcome::Failed,
        Outcome::Info,
        Outcome::Error,
        Outcome::NeedsInspection,
    ];
    TaskResult {
        checkname: format!("check.with \"quotes\" # and hash {i}"),
        item: "foo-1.0-1.fc40".into(),
        item_type: "koji_build".into(),
        outcome: outcomes[i % outcomes.len()],
        summary: format!("command {i} exited with status 1: grep -q 'x' \"$item\" \\"),
        output: output.into(),
    }
}

#[test]
fn awkward_outputs_round_trip() {
    let results: Vec<TaskResult> = OUTPUTS
        .iter()
        .enumerate()
        .map(|(i, o)| result(i, o))
        .collect();
    let tap = tap13(&results);
    let json: Vec<serde_json::Value> =
        serde_json::from_str(&serde_json::to_string(&results).unwrap()).unwrap();
    check_tap_against(&tap, &json);
}

#[test]
fn checker_rejects_broken_yaml() {
    let bad = [
        "key: plain\n",
        "key: \"unterminated\n",
        "key: |\n  a\n b\n",
        "key: |\n    \n  a\n",
        "key: \"raw\u{1b}\"\n",
        "details:\n  output: \"x\"\n extra: \"y\"\n",
    ];
    for text in bad {
        assert!(parse_yaml(text).is_err(), "accepted {text:?}");
    }
    assert!(
        parse_tap("TAP version 13\n1..1\nok 1 - a # SKIP\n  ---\n  a: \"b\"\n  ...\n").is_err()
    );
    assert!(parse_tap("TAP version 13\n1..2\nok 1 - a\n  ---\n  a: \"b\"\n  ...\n").is_err());
}

#[test]
fn checker_reads_block_scalars_like_yaml() {
    let cases = [
        ("k: |\n  a\n  b\n", "a\nb\n"),
        ("k: |-\n  a\n", "a"),
        ("k: |+\n  a\n\n", "a\n\n"),
        ("k: |2\n   a\n  b\n", " a\nb\n"),
        ("k: |\n  a\n\n  b\n", "a\n\nb\n"),
    ];
    for (text, value) in cases {
        assert_eq!(parse_yaml(text).unwrap().get("k").str(), value, "{text:?}");
    }
}
