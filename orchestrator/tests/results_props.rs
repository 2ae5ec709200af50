//! Property tests of the results parsers: no input makes them panic or
//! yield nothing, ResultYAML written by `emit` reads back the same, and the
//! agent's TAP output reads back as the agent's results.

use std::collections::BTreeMap;

use ferrotron::results::{self, record, resultyaml, tap, CheckResult, Defaults, Outcome};
use ferrotron_agent::protocol::{Outcome as AgentOutcome, TaskResult};
use proptest::prelude::*;
use serde_json::Value as Json;

fn config() -> ProptestConfig {
    ProptestConfig {
        cases: 256,
        ..ProptestConfig::default()
    }
}

fn defaults() -> Defaults {
    Defaults::new("foo-1.0-1.fc40", "koji_build", "task")
}

/// Lines that look like parts of ResultYAML and TAP documents, to reach
/// deeper into the parsers than random text does.
fn line() -> impl Strategy<Value = String> {
    prop_oneof![
        Just("TAP version 13".to_string()),
        Just("results:".to_string()),
        Just("  ---".to_string()),
        Just("  ...".to_string()),
        Just("Bail out! reason".to_string()),
        "1\\.\\.[0-9]{1,3}",
        "(not )?ok( [0-9]{1,2})?( - [a-z. ]{0,10})?( # (SKIP|TODO) x)?",
        "(ok|not ok)[^ ]{0,3}",
        "  (item|type|outcome|checkname|note|summary): (PASSED|failed|\\[a\\]|\\{b: 1\\}|x|\"q\"|'|\\|)",
        "  - (item|outcome|note): (INFO|\\[|x)",
        "    output: \\|[-+2]?",
        "[ \\-:\\[\\]{}#|>'\"a-z]{0,12}",
        any::<String>(),
    ]
}

fn document() -> impl Strategy<Value = String> {
    prop_oneof![
        any::<String>(),
        prop::collection::vec(line(), 0..16).prop_map(|lines| lines.join("\n")),
    ]
}

fn outcome() -> impl Strategy<Value = Outcome> {
    prop::sample::select(Outcome::ALL.to_vec())
}

fn json_value() -> impl Strategy<Value = Json> {
    let leaf = prop_oneof![
        Just(Json::Null),
        any::<bool>().prop_map(Json::Bool),
        any::<i64>().prop_map(Json::from),
        any::<u64>().prop_map(Json::from),
        any::<f64>()
            .prop_filter_map("finite", serde_json::Number::from_f64)
            .prop_map(Json::Number),
        any::<String>().prop_map(Json::String),
    ];
    leaf.prop_recursive(3, 16, 4, |inner| {
        prop_oneof![
            prop::collection::vec(inner.clone(), 0..4).prop_map(Json::Array),
            prop::collection::btree_map(any::<String>(), inner, 0..4)
                .prop_map(|m| Json::Object(m.into_iter().collect())),
        ]
    })
}

/// Notes and other text with the characters most likely to break YAML.
fn tricky_text() -> impl Strategy<Value = String> {
    prop_oneof![
        any::<String>(),
        prop::collection::vec(
            prop_oneof![
                Just("\n".to_string()),
                Just(": ".to_string()),
                Just("\"".to_string()),
                Just("'".to_string()),
                Just("---".to_string()),
                Just("...".to_string()),
                Just("# ".to_string()),
                Just("- ".to_string()),
                Just("null".to_string()),
                Just("\r\n".to_string()),
                Just(" ".to_string()),
                "[a-zé€😀]{1,4}",
            ],
            0..12,
        )
        .prop_map(|parts| parts.concat()),
    ]
}

/// Results the parsers accept: any text, and extra keys that are valid
/// ResultsDB data keys (the parsers refuse the others, see below).
fn check_result() -> impl Strategy<Value = CheckResult> {
    (
        (any::<String>(), tricky_text(), any::<String>()),
        outcome(),
        prop::option::of(tricky_text()),
        (
            prop::option::of(any::<String>()),
            prop::option::of(any::<String>()),
        ),
        prop::collection::btree_map(
            any::<String>().prop_filter("not a field", |k| {
                !CheckResult::FIELDS.contains(&k.as_str())
            }),
            json_value(),
            0..4,
        ),
    )
        .prop_map(
            |((item, item_type, checkname), outcome, note, (artifact, ref_url), extra)| {
                CheckResult {
                    item,
                    item_type,
                    checkname,
                    outcome,
                    note,
                    artifact,
                    ref_url,
                    extra: extra.into_iter().collect::<BTreeMap<_, _>>(),
                }
            },
        )
        .prop_filter("valid data keys", |r| record::pairs(&r.extra).is_ok())
}

fn agent_outcome() -> impl Strategy<Value = AgentOutcome> {
    prop::sample::select(vec![
        AgentOutcome::Passed,
        AgentOutcome::Info,
        AgentOutcome::Failed,
        AgentOutcome::NeedsInspection,
        AgentOutcome::Error,
        AgentOutcome::Waived,
        AgentOutcome::Aborted,
    ])
}

/// Task results as the agent makes them: the job file forbids control
/// characters in names and items; summaries and output are anything.
fn task_result() -> impl Strategy<Value = TaskResult> {
    let name = "[^\\p{Cc}]{0,20}";
    (
        name,
        name,
        name,
        agent_outcome(),
        tricky_text(),
        tricky_text(),
    )
        .prop_map(
            |(checkname, item, item_type, outcome, summary, output)| TaskResult {
                checkname,
                item,
                item_type,
                outcome,
                summary,
                output,
            },
        )
}

proptest! {
    #![proptest_config(config())]

    #[test]
    fn any_text_gives_results_without_panicking(text in document()) {
        for parsed in [
            resultyaml::parse(&text, &defaults()),
            tap::parse(&text, &defaults()),
            results::parse_any(&text, &defaults()),
        ] {
            let problems = parsed.problems.len();
            let results = parsed.results.len();
            let all = parsed.into_results();
            prop_assert!(!all.is_empty());
            prop_assert_eq!(all.len(), results + problems);
            for r in &all[results..] {
                prop_assert!(matches!(r.outcome, Outcome::NeedsInspection | Outcome::Error));
                prop_assert!(r.note.is_some());
            }
        }
    }

    #[test]
    fn any_text_gives_results_even_without_defaults(text in document()) {
        let parsed = results::parse_any(&text, &Defaults::default());
        prop_assert!(!parsed.into_results().is_empty());
    }

    #[test]
    fn emitted_resultyaml_parses_back(list in prop::collection::vec(check_result(), 1..5)) {
        let text = resultyaml::emit(&list);
        let parsed = resultyaml::parse(&text, &Defaults::default());
        let notes: Vec<String> = parsed.problems.iter().map(|p| p.note()).collect();
        prop_assert!(parsed.problems.is_empty(), "{:?}\n{}", notes, text);
        prop_assert_eq!(&parsed.results, &list, "{}", text);
        // It is also what parse_any picks.
        prop_assert_eq!(results::parse_any(&text, &defaults()).results, list);
    }

    #[test]
    fn a_bad_data_key_is_a_problem_naming_it(
        r in check_result(),
        bad in prop_oneof![
            "[a-z]{0,5}:[a-z]{0,5}",
            "[a-z]{256,300}",
        ],
        nested in any::<bool>(),
    ) {
        let mut r = r;
        let (key, value) = if nested {
            ("nested".to_string(), serde_json::json!({ bad.clone(): 1 }))
        } else {
            (bad.clone(), serde_json::json!("x"))
        };
        r.extra.insert(key.clone(), value);
        let text = resultyaml::emit(std::slice::from_ref(&r));
        let parsed = resultyaml::parse(&text, &Defaults::default());
        prop_assert!(parsed.results.is_empty(), "{}", text);
        let notes: Vec<String> = parsed.problems.iter().map(|p| p.note()).collect();
        prop_assert_eq!(notes.len(), 1, "{:?}", notes);
        prop_assert!(notes[0].starts_with("results line "), "{}", notes[0]);
        prop_assert!(notes[0].contains("data key"), "{}", notes[0]);
        // The line named is the one with the key.
        let line: usize = notes[0]["results line ".len()..]
            .split(':')
            .next()
            .and_then(|n| n.parse().ok())
            .unwrap_or(0);
        let at = text.lines().nth(line.wrapping_sub(1)).unwrap_or("");
        let quoted = serde_json::to_string(&key).unwrap_or_default();
        prop_assert!(at.trim_start().starts_with(&quoted), "line {}: {:?}\n{}", line, at, text);
    }

    #[test]
    fn agent_tap_parses_back(list in prop::collection::vec(task_result(), 0..5)) {
        let text = ferrotron_agent::tap::tap13(&list);
        let parsed = results::parse_any(&text, &Defaults::default());
        let notes: Vec<String> = parsed.problems.iter().map(|p| p.note()).collect();
        if list.is_empty() {
            prop_assert_eq!(notes, ["TAP: no results (no test points)"]);
            return Ok(());
        }
        prop_assert!(parsed.problems.is_empty(), "{:?}\n{}", notes, text);
        prop_assert_eq!(parsed.results.len(), list.len());
        for (got, want) in parsed.results.iter().zip(&list) {
            prop_assert_eq!(&got.item, &want.item, "{}", text);
            prop_assert_eq!(&got.item_type, &want.item_type);
            prop_assert_eq!(&got.checkname, &want.checkname);
            prop_assert_eq!(got.outcome, want.outcome);
            // Single-line summaries are double-quoted, hence exact.
            if !want.summary.contains(['\n', '\r']) {
                prop_assert_eq!(got.note.as_deref(), Some(want.summary.as_str()));
            }
            prop_assert!(got.extra.contains_key("details"));
        }
    }
}
