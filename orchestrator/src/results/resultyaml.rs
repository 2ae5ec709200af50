//! ResultYAML, libtaskotron's result format:
//!
//! ```yaml
//! results:
//!   - item: foo-1.0-1.fc40
//!     type: koji_build
//!     checkname: rpmlint
//!     outcome: FAILED
//!     note: 2 errors
//!     artifact: rpmlint.log
//!     arch: [x86_64, noarch]   # any other key goes to `extra`
//! ```
//!
//! `item`, `type` and `checkname` may be left out when [`Defaults`] give
//! them; `outcome` is always required and read case-insensitively.

use ferrotron_agent::tap::double_quoted;
use std::fmt::Write as _;

use serde_json::Value as Json;
use yaml_serde::Value as Yaml;

use super::{
    key_line, mapping_fields, quote, string_field, yaml_error_message, CheckResult, Collector,
    Defaults, Format, Outcome, Parsed,
};

/// Parses a ResultYAML document. Never fails: see [`Parsed`].
pub fn parse(text: &str, defaults: &Defaults) -> Parsed {
    let mut c = Collector::new(Format::ResultYaml, defaults);
    let lines: Vec<&str> = text.lines().collect();
    let first_line = lines
        .iter()
        .position(|l| !l.trim().is_empty() && !l.trim_start().starts_with('#'))
        .map(|i| i + 1);
    if first_line.is_none() {
        return c.finish("empty document");
    }
    let doc = match yaml_serde::from_str::<Yaml>(text) {
        Ok(doc) => doc,
        Err(e) => {
            // libyaml may point past the end: name the last line instead.
            let line = e.location().map(|l| l.line().clamp(1, lines.len().max(1)));
            let at = line
                .and_then(|l| lines.get(l.wrapping_sub(1)))
                .map(|l| format!(": {}", quote(l)))
                .unwrap_or_default();
            c.problem(
                line,
                Outcome::Error,
                format!("not valid YAML ({}){at}", yaml_error_message(&e)),
            );
            return c.parsed;
        }
    };
    let results_line = key_line(&lines, 0..lines.len(), "results").map(|i| i + 1);
    let mut doc = match doc {
        Yaml::Mapping(map) => map,
        Yaml::Null => return c.finish("empty document"),
        other => {
            c.problem(
                first_line,
                Outcome::Error,
                format!(
                    "expected a mapping with a \"results\" list, not {}",
                    yaml_kind(&other)
                ),
            );
            return c.parsed;
        }
    };
    let entries = match doc.remove("results") {
        Some(Yaml::Sequence(entries)) => entries,
        Some(Yaml::Null) => return c.finish("\"results\" is empty"),
        Some(other) => {
            c.problem(
                results_line,
                Outcome::Error,
                format!("\"results\" must be a list, not {}", yaml_kind(&other)),
            );
            return c.parsed;
        }
        None => {
            c.problem(
                first_line,
                Outcome::Error,
                "no \"results\" key at the top level".to_string(),
            );
            return c.parsed;
        }
    };
    if entries.is_empty() {
        return c.finish("\"results\" is empty");
    }
    let starts = results_line.and_then(|l| entry_lines(&lines, l, entries.len()));
    for (i, entry) in entries.into_iter().enumerate() {
        // Where the entry is, and how to find one of its keys.
        let (entry_line, range) = match &starts {
            Some(starts) => {
                let end = starts.get(i + 1).copied().unwrap_or(lines.len());
                (Some(starts[i] + 1), starts[i]..end)
            }
            None => (results_line, 0..0),
        };
        // Without entry lines, say which entry it is.
        let which = if starts.is_some() {
            String::new()
        } else {
            format!("result {}: ", i + 1)
        };
        let map = match entry {
            Yaml::Mapping(map) => map,
            other => {
                c.problem(
                    entry_line,
                    Outcome::NeedsInspection,
                    format!(
                        "{which}a result must be a mapping, not {}",
                        yaml_kind(&other)
                    ),
                );
                continue;
            }
        };
        let fields = mapping_fields(map);
        let item = string_field(&fields, "item");
        let item_type = string_field(&fields, "type");
        match CheckResult::from_fields(fields, defaults) {
            Ok(result) => c.parsed.results.push(result),
            Err(e) => {
                let line = e
                    .key
                    .as_deref()
                    .and_then(|k| key_line(&lines, range.clone(), k))
                    .map(|l| l + 1)
                    .or(entry_line);
                c.problem_about(
                    line,
                    Outcome::NeedsInspection,
                    format!("{which}{}", e.message),
                    item,
                    item_type,
                );
            }
        }
    }
    c.finish("no results")
}

fn yaml_kind(value: &Yaml) -> &'static str {
    match value {
        Yaml::Null => "null",
        Yaml::Bool(_) => "a boolean",
        Yaml::Number(_) => "a number",
        Yaml::String(_) => "a string",
        Yaml::Sequence(_) => "a list",
        Yaml::Mapping(_) => "a mapping",
        Yaml::Tagged(_) => "a tagged value",
    }
}

/// The indexes of the lines starting each of the `count` entries of a
/// block-style `results:` list whose key is on line `results_line`
/// (1-based); `None` when the layout is not understood (flow style...).
fn entry_lines(lines: &[&str], results_line: usize, count: usize) -> Option<Vec<usize>> {
    let mut starts = Vec::with_capacity(count);
    let mut indent = None;
    for (idx, line) in lines.iter().enumerate().skip(results_line) {
        let trimmed = line.trim_start_matches(' ');
        if trimmed.trim().is_empty() || trimmed.starts_with('#') {
            continue;
        }
        let this = line.len() - trimmed.len();
        let is_entry = trimmed == "-" || trimmed.starts_with("- ") || trimmed.starts_with("-\t");
        match indent {
            None if is_entry => {
                indent = Some(this);
                starts.push(idx);
            }
            None => return None,
            Some(i) if this == i && is_entry => starts.push(idx),
            Some(i) if this <= i => break,
            Some(_) => {}
        }
    }
    (starts.len() == count).then_some(starts)
}

/// ResultYAML for `results`, which [`parse`] reads back as the same list.
/// Strings are double-quoted with escapes so that any text survives;
/// `extra` values are written in flow style. `extra` keys that clash with a
/// field are left out (they cannot be represented).
pub fn emit(results: &[CheckResult]) -> String {
    if results.is_empty() {
        return "results: []\n".to_string();
    }
    let mut out = String::from("results:\n");
    for r in results {
        let _ = writeln!(out, "  - item: {}", double_quoted(&r.item));
        let _ = writeln!(out, "    type: {}", double_quoted(&r.item_type));
        let _ = writeln!(out, "    checkname: {}", double_quoted(&r.checkname));
        let _ = writeln!(out, "    outcome: {}", r.outcome);
        if let Some(note) = &r.note {
            let _ = writeln!(out, "    note: {}", double_quoted(note));
        }
        if let Some(artifact) = &r.artifact {
            let _ = writeln!(out, "    artifact: {}", double_quoted(artifact));
        }
        if let Some(ref_url) = &r.ref_url {
            let _ = writeln!(out, "    ref_url: {}", double_quoted(ref_url));
        }
        for (key, value) in &r.extra {
            if CheckResult::FIELDS.contains(&key.as_str()) {
                continue;
            }
            out.push_str("    ");
            out.push_str(&double_quoted(key));
            out.push_str(": ");
            flow(&mut out, value);
            out.push('\n');
        }
    }
    out
}

/// A JSON value in YAML flow style.
fn flow(out: &mut String, value: &Json) {
    match value {
        Json::Null => out.push_str("null"),
        Json::Bool(b) => out.push_str(if *b { "true" } else { "false" }),
        Json::Number(n) => {
            let _ = write!(out, "{n}");
        }
        Json::String(s) => out.push_str(&double_quoted(s)),
        Json::Array(items) => {
            out.push('[');
            for (i, item) in items.iter().enumerate() {
                if i > 0 {
                    out.push_str(", ");
                }
                flow(out, item);
            }
            out.push(']');
        }
        Json::Object(map) => {
            out.push('{');
            for (i, (key, item)) in map.iter().enumerate() {
                if i > 0 {
                    out.push_str(", ");
                }
                out.push_str(&double_quoted(key));
                out.push_str(": ");
                flow(out, item);
            }
            out.push('}');
        }
    }
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeMap;

    use serde_json::json;

    use super::*;

    use crate::results::test_support::{defaults, notes};

    fn only_problem(text: &str) -> (Outcome, String) {
        let parsed = parse(text, &defaults());
        assert!(parsed.results.is_empty(), "{:?}", parsed.results);
        assert_eq!(parsed.problems.len(), 1, "{:?}", notes(&parsed));
        let results = parsed.into_results();
        (
            results[0].outcome,
            results[0].note.clone().unwrap_or_default(),
        )
    }

    #[test]
    fn full_entries() {
        let text = "\
results:
  - item: xchat-2.8.8-21.fc20
    type: koji_build
    checkname: rpmlint
    outcome: failed
    note: 2 errors, 3 warnings
    artifact: rpmlint.log
    arch: [x86_64, noarch]
    details: {count: 2}
    score: 1.5
";
        let parsed = parse(text, &defaults());
        assert!(parsed.is_clean(), "{:?}", notes(&parsed));
        let mut extra = BTreeMap::new();
        extra.insert("arch".to_string(), json!(["x86_64", "noarch"]));
        extra.insert("details".to_string(), json!({"count": 2}));
        extra.insert("score".to_string(), json!(1.5));
        assert_eq!(
            parsed.results,
            [CheckResult {
                item: "xchat-2.8.8-21.fc20".into(),
                item_type: "koji_build".into(),
                checkname: "rpmlint".into(),
                outcome: Outcome::Failed,
                note: Some("2 errors, 3 warnings".into()),
                artifact: Some("rpmlint.log".into()),
                ref_url: None,
                extra,
            }]
        );
    }

    #[test]
    fn extra_keys_ref_url_and_bad_data_keys() {
        let text = "\
results:
  - checkname: openqa
    outcome: PASSED
    scenario: fedora.universal.x86_64.64bit
    arch: [x86_64, i686]
    ref_url: https://openqa.example/tests/1
  - checkname: broken
    outcome: PASSED
    details:
      when: now
      \"at:noon\": yes
";
        let parsed = parse(text, &defaults());
        assert_eq!(parsed.results.len(), 1);
        let r = &parsed.results[0];
        assert_eq!(r.ref_url.as_deref(), Some("https://openqa.example/tests/1"));
        assert_eq!(r.extra["arch"], json!(["x86_64", "i686"]));
        assert!(!r.extra.contains_key("ref_url"));
        assert_eq!(
            notes(&parsed),
            ["results line 9: data key \"details.at:noon\" contains \":\", which ResultsDB reserves for query operators"]
        );
        let (outcome, _) = only_problem("results:\n  - outcome: PASSED\n    ref_url: [a]\n");
        assert_eq!(outcome, Outcome::NeedsInspection);
    }

    #[test]
    fn defaults_fill_missing_fields() {
        let parsed = parse("results:\n- outcome: PASSED\n- outcome: INFO\n  item: other\n  checkname: rpmlint.sub\n", &defaults());
        assert!(parsed.is_clean());
        assert_eq!(parsed.results[0].item, "foo-1.0-1.fc40");
        assert_eq!(parsed.results[0].item_type, "koji_build");
        assert_eq!(parsed.results[0].checkname, "rpmlint");
        assert_eq!(parsed.results[1].item, "other");
        assert_eq!(parsed.results[1].checkname, "rpmlint.sub");
    }

    #[test]
    fn unquoted_numbers_are_text() {
        let parsed = parse(
            "results:\n- {item: 1.0, type: 7, outcome: passed, note: true}\n",
            &defaults(),
        );
        assert!(parsed.is_clean());
        assert_eq!(parsed.results[0].item, "1.0");
        assert_eq!(parsed.results[0].item_type, "7");
        assert_eq!(parsed.results[0].note.as_deref(), Some("true"));
    }

    #[test]
    fn unknown_outcome() {
        let text = "\
results:
  - item: a
    outcome: PASSED
  - item: b
    type: koji_build
    checkname: rpmlint
    outcome: PASSSED
";
        let parsed = parse(text, &defaults());
        assert_eq!(parsed.results.len(), 1);
        assert_eq!(
            notes(&parsed),
            ["results line 7: unknown outcome \"PASSSED\""]
        );
        let r = &parsed.into_results()[1];
        assert_eq!(r.outcome, Outcome::NeedsInspection);
        assert_eq!(r.item, "b");
        assert_eq!(r.checkname, "rpmlint");
    }

    #[test]
    fn missing_outcome() {
        let (outcome, note) = only_problem("results:\n  - item: a\n    note: hi\n");
        assert_eq!(outcome, Outcome::NeedsInspection);
        assert_eq!(note, "results line 2: missing \"outcome\"");
    }

    #[test]
    fn missing_item_without_default() {
        let parsed = parse(
            "results:\n  - outcome: PASSED\n",
            &Defaults::new("", "koji_build", "x"),
        );
        assert_eq!(notes(&parsed), ["results line 2: missing \"item\""]);
    }

    #[test]
    fn outcome_of_the_wrong_type() {
        let (_, note) = only_problem("results:\n  - item: a\n    outcome:\n      - PASSED\n");
        assert_eq!(
            note,
            "results line 3: \"outcome\" must be a string, not a list"
        );
    }

    #[test]
    fn note_of_the_wrong_type() {
        let (_, note) = only_problem("results:\n  - outcome: PASSED\n    note: {a: 1}\n");
        assert_eq!(
            note,
            "results line 3: \"note\" must be a string, not a mapping"
        );
    }

    #[test]
    fn entry_that_is_not_a_mapping() {
        let (_, note) = only_problem("results:\n  - PASSED\n");
        assert_eq!(
            note,
            "results line 2: a result must be a mapping, not a string"
        );
    }

    #[test]
    fn flow_style_problems_name_the_entry() {
        let parsed = parse(
            "results: [{outcome: PASSED, item: a}, {outcome: nope}]\n",
            &defaults(),
        );
        assert_eq!(parsed.results.len(), 1);
        assert_eq!(
            notes(&parsed),
            ["results line 1: result 2: unknown outcome \"nope\""]
        );
    }

    #[test]
    fn invalid_yaml_is_an_error() {
        let (outcome, note) = only_problem("results:\n  - item: a\n    outcome: [PASSED\n");
        assert_eq!(outcome, Outcome::Error);
        assert!(note.starts_with("results line "), "{note}");
        assert!(note.contains("not valid YAML ("), "{note}");
    }

    #[test]
    fn empty_document() {
        for text in ["", "  \n\n", "# nothing\n", "---\n"] {
            let (outcome, note) = only_problem(text);
            assert_eq!(outcome, Outcome::Error);
            assert_eq!(note, "results: no results (empty document)", "{text:?}");
        }
    }

    #[test]
    fn empty_results_list() {
        for text in ["results: []\n", "results:\n"] {
            let (outcome, note) = only_problem(text);
            assert_eq!(outcome, Outcome::Error);
            assert_eq!(note, "results: no results (\"results\" is empty)");
        }
    }

    #[test]
    fn no_results_key() {
        let (outcome, note) = only_problem("# header\nresult:\n  - outcome: PASSED\n");
        assert_eq!(outcome, Outcome::Error);
        assert_eq!(note, "results line 2: no \"results\" key at the top level");
    }

    #[test]
    fn results_that_are_not_a_list() {
        let (outcome, note) = only_problem("results:\n  outcome: PASSED\n");
        assert_eq!(outcome, Outcome::Error);
        assert_eq!(
            note,
            "results line 1: \"results\" must be a list, not a mapping"
        );
    }

    #[test]
    fn document_that_is_not_a_mapping() {
        let (outcome, note) = only_problem("- outcome: PASSED\n");
        assert_eq!(outcome, Outcome::Error);
        assert_eq!(
            note,
            "results line 1: expected a mapping with a \"results\" list, not a list"
        );
    }

    #[test]
    fn emit_round_trips() {
        let mut extra = BTreeMap::new();
        extra.insert("arch".to_string(), json!(["x86_64", 1, 2.5, null, true]));
        extra.insert("odd - key #".to_string(), json!({"k\n": "---\n...\n"}));
        let results = vec![
            CheckResult {
                item: "ümlaut \"quoted\": yes".into(),
                item_type: "koji_build".into(),
                checkname: "a.b".into(),
                outcome: Outcome::NeedsInspection,
                note: Some("line one\n---\n...\nnull\t\u{1b}\u{85}\u{2028}\u{feff}".into()),
                artifact: None,
                ref_url: None,
                extra,
            },
            CheckResult {
                item: "".into(),
                item_type: "~".into(),
                checkname: "null".into(),
                outcome: Outcome::Waived,
                note: Some(String::new()),
                artifact: Some("logs/x.log".into()),
                ref_url: Some("https://example.org/x?a=1#b".into()),
                extra: BTreeMap::new(),
            },
        ];
        let text = emit(&results);
        let parsed = parse(&text, &Defaults::default());
        assert!(parsed.is_clean(), "{:?}\n{text}", notes(&parsed));
        assert_eq!(parsed.results, results, "{text}");
    }

    #[test]
    fn emit_layout() {
        let results = [CheckResult {
            item: "foo".into(),
            item_type: "koji_build".into(),
            checkname: "rpmlint".into(),
            outcome: Outcome::Passed,
            note: None,
            artifact: None,
            ref_url: None,
            extra: BTreeMap::from([("arch".to_string(), json!(["x86_64"]))]),
        }];
        assert_eq!(
            emit(&results),
            "results:\n  - item: \"foo\"\n    type: \"koji_build\"\n    checkname: \"rpmlint\"\n    outcome: PASSED\n    \"arch\": [\"x86_64\"]\n"
        );
        assert_eq!(emit(&[]), "results: []\n");
    }
}
