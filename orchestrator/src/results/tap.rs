//! TAP version 13 results:
//!
//! ```text
//! TAP version 13
//! 1..2
//! ok 1 - rpmlint for foo-1.0-1.fc40
//!   ---
//!   item: foo-1.0-1.fc40
//!   type: koji_build
//!   outcome: INFO
//!   summary: 3 warnings
//!   details:
//!     output: |
//!       ...
//!   ...
//! not ok 2 - depcheck
//! ```
//!
//! A test point's YAML block may carry `item`, `type`, `checkname`,
//! `outcome`, `note` (or `summary`), `artifact` and other keys (kept in
//! `extra`, `details` included). Without them: the outcome is PASSED for
//! `ok`, FAILED for `not ok` (INFO for `# SKIP`); the check name is the
//! description without its ` for <item>` ending; the rest comes from
//! [`Defaults`]. Ferrotron's agent writes this format
//! (`ferrotron_agent::tap::tap13`).
//!
//! As TAP asks, unknown lines are ignored, except lines that start like a
//! test point but are not one. Problems: such lines, a plan that does not
//! match the test points, duplicate test numbers, YAML blocks that do not
//! parse or are not closed, results that cannot be built, bail-outs.

use std::collections::HashSet;

use serde_json::Value as Json;
use yaml_serde::Value as Yaml;

use super::{
    key_line, mapping_fields, quote, string_field, yaml_error_message, CheckResult, Collector,
    Defaults, Format, Outcome, Parsed,
};

/// `ok`/`not ok` at the start of `line` as a whole word: whether it is
/// `ok`, and the text after the word.
pub(crate) fn status_word(line: &str) -> Option<(bool, &str)> {
    let (ok, rest) = if let Some(rest) = line.strip_prefix("not ok") {
        (false, rest)
    } else {
        (true, line.strip_prefix("ok")?)
    };
    match rest.chars().next() {
        None => Some((ok, rest)),
        Some(c) if c.is_whitespace() => Some((ok, rest)),
        Some(_) => None,
    }
}

/// Digits then `..`: meant as a plan, valid or not.
pub(crate) fn looks_like_plan(line: &str) -> bool {
    let digits = line.len() - line.trim_start_matches(|c: char| c.is_ascii_digit()).len();
    digits > 0 && line[digits..].starts_with("..")
}

/// The count of a `1..N` plan, which may end with a `# comment`.
fn plan_count(line: &str) -> Option<u64> {
    let rest = line.strip_prefix("1..")?;
    let digits = rest.len() - rest.trim_start_matches(|c: char| c.is_ascii_digit()).len();
    let tail = rest[digits..].trim();
    if digits == 0 || !(tail.is_empty() || tail.starts_with('#')) {
        return None;
    }
    rest[..digits].parse().ok()
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Directive {
    Skip,
    Todo,
}

#[derive(Debug)]
struct Point {
    ok: bool,
    number: Option<u64>,
    description: String,
    directive: Option<(Directive, String)>,
}

enum Line {
    Point(Point),
    /// Starts like a test point, or like a plan, but is not one.
    Broken,
    Plan(u64),
    Other,
}

fn classify(line: &str) -> Line {
    if let Some((ok, rest)) = status_word(line) {
        return parse_point(ok, rest).map_or(Line::Broken, Line::Point);
    }
    for word in ["not ok", "ok"] {
        if let Some(rest) = line.strip_prefix(word) {
            // `okay`, `ok_to_fail`: another word, not a test point.
            return match rest.chars().next() {
                Some(c) if c.is_alphabetic() || c == '_' => Line::Other,
                _ => Line::Broken,
            };
        }
    }
    if looks_like_plan(line) {
        return plan_count(line).map_or(Line::Broken, Line::Plan);
    }
    Line::Other
}

/// The rest of a test point line after `ok`/`not ok`: `[number] [-]
/// [description] [# SKIP|TODO reason]`.
fn parse_point(ok: bool, rest: &str) -> Option<Point> {
    let rest = rest.trim_start();
    let digits = rest.len() - rest.trim_start_matches(|c: char| c.is_ascii_digit()).len();
    let number = if digits > 0 {
        let after = &rest[digits..];
        if !after.is_empty() && !after.starts_with(char::is_whitespace) {
            return None;
        }
        Some(rest[..digits].parse::<u64>().ok()?)
    } else {
        None
    };
    let mut rest = rest[digits..].trim_start();
    if let Some(after) = rest.strip_prefix('-') {
        if after.is_empty() || after.starts_with(char::is_whitespace) {
            rest = after.trim_start();
        }
    }
    // Split at the first `#` that is not escaped.
    let mut description = String::new();
    let mut comment = None;
    let mut chars = rest.char_indices();
    while let Some((i, c)) = chars.next() {
        match c {
            '\\' => match chars.next() {
                Some((_, e @ ('#' | '\\'))) => description.push(e),
                Some((_, e)) => {
                    description.push('\\');
                    description.push(e);
                }
                None => description.push('\\'),
            },
            '#' => {
                comment = Some(&rest[i + 1..]);
                break;
            }
            c => description.push(c),
        }
    }
    let directive = comment.and_then(|comment| {
        let comment = comment.trim_start();
        let word = comment.get(..4)?;
        let kind = if word.eq_ignore_ascii_case("skip") {
            Directive::Skip
        } else if word.eq_ignore_ascii_case("todo") {
            Directive::Todo
        } else {
            return None;
        };
        let reason = comment[4..].trim_start_matches(|c: char| c.is_alphabetic());
        Some((kind, reason.trim().to_string()))
    });
    Some(Point {
        ok,
        number,
        description: description.trim_end().to_string(),
        directive,
    })
}

/// A YAML block after a test point.
struct Block {
    /// Index of the `---` line.
    start: usize,
    /// Index of the first content line.
    content_start: usize,
    /// Content lines, without the block's indentation.
    content: Vec<String>,
    closed: bool,
}

fn indentation(line: &str) -> usize {
    line.len() - line.trim_start_matches(' ').len()
}

/// The YAML block starting at `lines[start]`, if there is one, and the
/// index of the first line after it.
fn read_block(lines: &[&str], start: usize) -> (Option<Block>, usize) {
    let Some(first) = lines.get(start) else {
        return (None, start);
    };
    if first.trim() != "---" {
        return (None, start);
    }
    let indent = indentation(first);
    let mut block = Block {
        start,
        content_start: start + 1,
        content: Vec::new(),
        closed: false,
    };
    let mut i = start + 1;
    while let Some(line) = lines.get(i) {
        if line.trim().is_empty() {
            block.content.push(String::new());
        } else {
            let this = indentation(line);
            if line.trim() == "..." && this <= indent {
                block.closed = true;
                return (Some(block), i + 1);
            }
            if this < indent || (indent == 0 && !matches!(classify(line), Line::Other)) {
                break;
            }
            block.content.push(line[indent..].to_string());
        }
        i += 1;
    }
    // Blank lines at the end of an unclosed block are not its content.
    while block.content.last().is_some_and(String::is_empty) && i > block.content_start {
        block.content.pop();
        i -= 1;
    }
    (Some(block), i)
}

/// The YAML text of a block's content lines.
fn block_text(content: &[String]) -> String {
    let mut text = String::new();
    for line in content {
        text.push_str(line);
        text.push('\n');
    }
    text
}

/// Parses a TAP version 13 document. Never fails: see [`Parsed`].
pub fn parse(text: &str, defaults: &Defaults) -> Parsed {
    let mut c = Collector::new(Format::Tap, defaults);
    let lines: Vec<&str> = text.lines().collect();
    let mut plan: Option<(usize, u64)> = None;
    let mut points: u64 = 0;
    let mut numbers = HashSet::new();
    let mut next_number: u64 = 1;
    let mut i = 0;
    while let Some(&line) = lines.get(i) {
        let lineno = i + 1;
        if let Some(reason) = line.strip_prefix("Bail out!") {
            let reason = reason.trim();
            let message = if reason.is_empty() {
                "bailed out (no reason given)".to_string()
            } else {
                format!("bailed out: {reason}")
            };
            c.problem(Some(lineno), Outcome::Error, message);
            return c.parsed;
        }
        match classify(line) {
            Line::Other => {}
            Line::Broken => c.problem(
                Some(lineno),
                Outcome::NeedsInspection,
                format!("not a test point: {}", quote(line)),
            ),
            Line::Plan(count) => match plan {
                Some((first, _)) => c.problem(
                    Some(lineno),
                    Outcome::NeedsInspection,
                    format!(
                        "second plan (the first is on line {first}): {}",
                        quote(line)
                    ),
                ),
                None => plan = Some((lineno, count)),
            },
            Line::Point(point) => {
                points += 1;
                let number = point.number.unwrap_or(next_number);
                next_number = number.saturating_add(1);
                if !numbers.insert(number) {
                    c.problem(
                        Some(lineno),
                        Outcome::NeedsInspection,
                        format!("duplicate test number {number}: {}", quote(line)),
                    );
                }
                let (block, next) = read_block(&lines, i + 1);
                test_point(&mut c, &lines, lineno, number, &point, block);
                i = next;
                continue;
            }
        }
        i += 1;
    }
    match plan {
        None if points > 0 => c.problem(
            None,
            Outcome::NeedsInspection,
            format!(
                "no plan (a 1..N line) for {points} test point{}",
                if points == 1 { "" } else { "s" }
            ),
        ),
        Some((line, count)) if count != points => c.problem(
            Some(line),
            Outcome::NeedsInspection,
            format!(
                "the plan 1..{count} does not match the {points} test point{} found",
                if points == 1 { "" } else { "s" }
            ),
        ),
        _ => {}
    }
    c.finish("no test points")
}

/// Turns one test point and its YAML block into a result or a problem.
fn test_point(
    c: &mut Collector<'_>,
    lines: &[&str],
    lineno: usize,
    number: u64,
    point: &Point,
    block: Option<Block>,
) {
    let mut fields: Vec<(String, Json)> = Vec::new();
    let mut block_range = 0..0;
    if let Some(block) = block {
        if !block.closed {
            c.problem(
                Some(block.start + 1),
                Outcome::NeedsInspection,
                format!("the YAML block of test {number} is not closed by \"...\""),
            );
        }
        block_range = block.content_start..block.content_start + block.content.len();
        match yaml_serde::from_str::<Yaml>(&block_text(&block.content)) {
            Ok(Yaml::Mapping(map)) => fields = mapping_fields(map),
            Ok(Yaml::Null) => {}
            Ok(other) => {
                c.problem(
                    Some(block.content_start + 1),
                    Outcome::NeedsInspection,
                    format!(
                        "the YAML block of test {number} must be a mapping, not {}",
                        super::model::kind(&super::yaml_to_json(other))
                    ),
                );
                return;
            }
            Err(e) => {
                let last = block.content.len().max(1);
                let line = e
                    .location()
                    .map(|l| block.content_start + l.line().clamp(1, last));
                let at = line
                    .and_then(|l| lines.get(l.wrapping_sub(1)))
                    .map(|l| format!(": {}", quote(l)))
                    .unwrap_or_default();
                c.problem(
                    line.or(Some(block.start + 1)),
                    Outcome::NeedsInspection,
                    format!(
                        "the YAML block of test {number} is not valid YAML ({}){at}",
                        yaml_error_message(&e)
                    ),
                );
                return;
            }
        }
    }
    let has =
        |fields: &[(String, Json)], key: &str| fields.iter().any(|(k, v)| k == key && !v.is_null());
    fields.retain(|(k, v)| !(k == "outcome" && v.is_null()));
    if !has(&fields, "outcome") {
        let outcome = match (point.ok, point.directive.as_ref()) {
            (_, Some((Directive::Skip, _))) => Outcome::Info,
            (true, _) => Outcome::Passed,
            (false, _) => Outcome::Failed,
        };
        fields.push(("outcome".into(), Json::String(outcome.as_str().into())));
    }
    if !has(&fields, "note") {
        fields.retain(|(k, _)| k != "note");
        let summary = fields
            .iter_mut()
            .find(|(k, v)| k == "summary" && !matches!(v, Json::Array(_) | Json::Object(_)));
        if let Some(entry) = summary {
            entry.0 = "note".into();
        } else if let Some((directive, reason)) = &point.directive {
            let word = match directive {
                Directive::Skip => "SKIP",
                Directive::Todo => "TODO",
            };
            let note = if reason.is_empty() {
                word.to_string()
            } else {
                format!("{word}: {reason}")
            };
            fields.push(("note".into(), Json::String(note)));
        }
    }
    let item = string_field(&fields, "item");
    let item_type = string_field(&fields, "type");
    if !has(&fields, "checkname") {
        let known_item = item.clone().unwrap_or_else(|| c.defaults.item.clone());
        let description = &point.description;
        let name = description
            .strip_suffix(&format!(" for {known_item}"))
            .filter(|_| !known_item.is_empty())
            .unwrap_or(description);
        if !name.is_empty() {
            fields.retain(|(k, _)| k != "checkname");
            fields.push(("checkname".into(), Json::String(name.to_string())));
        }
    }
    match CheckResult::from_fields(fields, c.defaults) {
        Ok(result) => c.parsed.results.push(result),
        Err(e) => {
            let line = e
                .key
                .as_deref()
                .and_then(|k| key_line(lines, block_range.clone(), k))
                .map_or(lineno, |l| l + 1);
            c.problem_about(
                Some(line),
                Outcome::NeedsInspection,
                format!("test {number}: {}", e.message),
                item,
                item_type,
            );
        }
    }
}

#[cfg(test)]
mod tests {
    use ferrotron_agent::protocol::{Outcome as AgentOutcome, TaskResult};
    use serde_json::json;

    use super::*;

    use crate::results::test_support::{defaults, notes};

    #[test]
    fn plain_test_points() {
        let parsed = parse(
            "TAP version 13\n1..3\nok 1 - depcheck\nnot ok 2 - upgradepath for foo-1.0-1.fc40\nok\n",
            &defaults(),
        );
        assert!(parsed.is_clean(), "{:?}", notes(&parsed));
        let got: Vec<_> = parsed
            .results
            .iter()
            .map(|r| (r.checkname.as_str(), r.item.as_str(), r.outcome))
            .collect();
        assert_eq!(
            got,
            [
                ("depcheck", "foo-1.0-1.fc40", Outcome::Passed),
                ("upgradepath", "foo-1.0-1.fc40", Outcome::Failed),
                ("rpmlint", "foo-1.0-1.fc40", Outcome::Passed),
            ]
        );
    }

    #[test]
    fn yaml_block_fields() {
        let text = "\
TAP version 13
1..1
ok 1 - rpmlint for xchat-2.8.8-21.fc20
  ---
  item: xchat-2.8.8-21.fc20
  type: koji_build
  outcome: NEEDS_INSPECTION
  summary: 3 warnings
  arch: x86_64
  details:
    output: |
      line one
      line two
  ...
";
        let parsed = parse(text, &Defaults::default());
        assert!(parsed.is_clean(), "{:?}", notes(&parsed));
        let r = &parsed.results[0];
        assert_eq!(r.checkname, "rpmlint");
        assert_eq!(r.item, "xchat-2.8.8-21.fc20");
        assert_eq!(r.item_type, "koji_build");
        assert_eq!(r.outcome, Outcome::NeedsInspection);
        assert_eq!(r.note.as_deref(), Some("3 warnings"));
        assert_eq!(r.extra["arch"], json!("x86_64"));
        assert_eq!(
            r.extra["details"],
            json!({"output": "line one\nline two\n"})
        );
    }

    #[test]
    fn yaml_checkname_wins_over_the_description() {
        let parsed = parse(
            "1..1\nnot ok 1 - whatever\n  ---\n  checkname: dist.abicheck\n  note: n\n  summary: s\n  ...\n",
            &defaults(),
        );
        assert!(parsed.is_clean(), "{:?}", notes(&parsed));
        let r = &parsed.results[0];
        assert_eq!(r.checkname, "dist.abicheck");
        assert_eq!(r.outcome, Outcome::Failed);
        assert_eq!(r.note.as_deref(), Some("n"));
        assert_eq!(r.extra["summary"], json!("s"));
    }

    #[test]
    fn agent_output() {
        let results = [
            TaskResult {
                checkname: "rpmlint".into(),
                item: "foo-1.0-1.fc40".into(),
                item_type: "koji_build".into(),
                outcome: AgentOutcome::Info,
                summary: "exit 0: \"fine\" # really".into(),
                output: "one\n  two\n\n\u{1b}[1m\n".into(),
            },
            TaskResult {
                checkname: "dist.depcheck".into(),
                item: "bar # baz".into(),
                item_type: "koji_build".into(),
                outcome: AgentOutcome::NeedsInspection,
                summary: "exit 1".into(),
                output: String::new(),
            },
        ];
        let text = ferrotron_agent::tap::tap13(&results);
        let parsed = parse(&text, &Defaults::default());
        assert!(parsed.is_clean(), "{:?}\n{text}", notes(&parsed));
        assert_eq!(
            parsed.results[0],
            CheckResult {
                extra: [(
                    "details".to_string(),
                    json!({"output": "one\n  two\n\n\\x1b[1m\n"})
                )]
                .into(),
                ..CheckResult::from(&results[0])
            }
        );
        assert_eq!(parsed.results[1], CheckResult::from(&results[1]));
    }

    #[test]
    fn outcome_from_yaml_block_overrides_status() {
        let parsed = parse(
            "1..1\nok 1 - x\n  ---\n  outcome: waived\n  ...\n",
            &defaults(),
        );
        assert_eq!(parsed.results[0].outcome, Outcome::Waived);
    }

    #[test]
    fn unknown_outcome_in_a_block() {
        let text =
            "TAP version 13\n1..1\nok 1 - x\n  ---\n  item: bar\n  outcome: PASSSED\n  ...\n";
        let parsed = parse(text, &defaults());
        assert!(parsed.results.is_empty());
        assert_eq!(
            notes(&parsed),
            ["TAP line 6: test 1: unknown outcome \"PASSSED\""]
        );
        let r = &parsed.into_results()[0];
        assert_eq!(r.outcome, Outcome::NeedsInspection);
        assert_eq!(r.item, "bar");
        assert_eq!(r.checkname, "rpmlint");
    }

    #[test]
    fn outcome_of_the_wrong_type_in_a_block() {
        let parsed = parse(
            "1..1\nok 1\n  ---\n  outcome: [PASSED]\n  ...\n",
            &defaults(),
        );
        assert_eq!(
            notes(&parsed),
            ["TAP line 4: test 1: \"outcome\" must be a string, not a list"]
        );
    }

    #[test]
    fn missing_item_without_default() {
        let parsed = parse("1..1\nok 1 - x\n", &Defaults::new("", "t", "c"));
        assert_eq!(notes(&parsed), ["TAP line 2: test 1: missing \"item\""]);
    }

    #[test]
    fn broken_test_point() {
        let parsed = parse("TAP version 13\n1..1\nok 1 - a\nok1 - b\n", &defaults());
        assert_eq!(parsed.results.len(), 1);
        assert_eq!(
            notes(&parsed),
            ["TAP line 4: not a test point: \"ok1 - b\""]
        );
    }

    #[test]
    fn unknown_lines_and_comments_are_ignored() {
        let parsed = parse(
            "TAP version 13\n# a comment\n1..1\ngarbage here\nokay then\n    ok 1 - subtest\nok 1\n",
            &defaults(),
        );
        assert!(parsed.is_clean(), "{:?}", notes(&parsed));
        assert_eq!(parsed.results.len(), 1);
    }

    #[test]
    fn plan_mismatch() {
        let parsed = parse("TAP version 13\n1..3\nok 1\nok 2\n", &defaults());
        assert_eq!(parsed.results.len(), 2);
        assert_eq!(
            notes(&parsed),
            ["TAP line 2: the plan 1..3 does not match the 2 test points found"]
        );
    }

    #[test]
    fn plan_at_the_end() {
        let parsed = parse("ok 1\nok 2\n1..2\n", &defaults());
        assert!(parsed.is_clean(), "{:?}", notes(&parsed));
    }

    #[test]
    fn missing_plan() {
        let parsed = parse("TAP version 13\nok 1 - a\n", &defaults());
        assert_eq!(
            notes(&parsed),
            ["TAP: no plan (a 1..N line) for 1 test point"]
        );
    }

    #[test]
    fn invalid_and_second_plans() {
        let parsed = parse("1..1\nok 1\n1..1\n2..3\n", &defaults());
        assert_eq!(
            notes(&parsed),
            [
                "TAP line 3: second plan (the first is on line 1): \"1..1\"",
                "TAP line 4: not a test point: \"2..3\""
            ]
        );
    }

    #[test]
    fn duplicate_test_numbers() {
        let parsed = parse("1..3\nok 1 - a\nok 2 - b\nnot ok 2 - c\n", &defaults());
        assert_eq!(parsed.results.len(), 3);
        assert_eq!(
            notes(&parsed),
            ["TAP line 4: duplicate test number 2: \"not ok 2 - c\""]
        );
    }

    #[test]
    fn yaml_block_that_does_not_parse() {
        let text = "1..1\nnot ok 1 - a\n  ---\n  item: [x\n  outcome: FAILED\n  ...\n";
        let parsed = parse(text, &defaults());
        assert!(parsed.results.is_empty());
        assert_eq!(parsed.problems.len(), 1);
        let note = parsed.problems[0].note();
        assert!(
            note.starts_with("TAP line 6: the YAML block of test 1 is not valid YAML (")
                || note.starts_with("TAP line 5: the YAML block of test 1 is not valid YAML ("),
            "{note}"
        );
        assert_eq!(parsed.problems[0].outcome, Outcome::NeedsInspection);
    }

    #[test]
    fn yaml_block_that_is_not_a_mapping() {
        let parsed = parse("1..1\nok 1\n  ---\n  - a\n  ...\n", &defaults());
        assert_eq!(
            notes(&parsed),
            ["TAP line 4: the YAML block of test 1 must be a mapping, not a list"]
        );
    }

    #[test]
    fn unclosed_yaml_block() {
        let parsed = parse("1..2\nok 1\n  ---\n  outcome: INFO\nok 2\n", &defaults());
        assert_eq!(
            notes(&parsed),
            ["TAP line 3: the YAML block of test 1 is not closed by \"...\""]
        );
        assert_eq!(parsed.results.len(), 2);
        assert_eq!(parsed.results[0].outcome, Outcome::Info);
    }

    #[test]
    fn bail_out() {
        let parsed = parse(
            "TAP version 13\n1..3\nok 1\nBail out! no space left\nok 2\n",
            &defaults(),
        );
        assert_eq!(parsed.results.len(), 1);
        assert_eq!(notes(&parsed), ["TAP line 4: bailed out: no space left"]);
        assert_eq!(parsed.problems[0].outcome, Outcome::Error);
    }

    #[test]
    fn bail_out_without_reason() {
        let parsed = parse("Bail out!\n", &defaults());
        assert_eq!(notes(&parsed), ["TAP line 1: bailed out (no reason given)"]);
    }

    #[test]
    fn empty_document() {
        for text in ["", "TAP version 13\n", "TAP version 13\n1..0\n"] {
            let parsed = parse(text, &defaults());
            assert_eq!(
                notes(&parsed),
                ["TAP: no results (no test points)"],
                "{text:?}"
            );
            assert_eq!(parsed.problems[0].outcome, Outcome::Error);
        }
    }

    #[test]
    fn directives() {
        let parsed = parse(
            "1..3\nok 1 - a \\# b # SKIP no network\nnot ok 2 - c # TODO later\nok 3 - d # just a comment\n",
            &defaults(),
        );
        assert!(parsed.is_clean(), "{:?}", notes(&parsed));
        let r = &parsed.results;
        assert_eq!(
            (r[0].checkname.as_str(), r[0].outcome),
            ("a # b", Outcome::Info)
        );
        assert_eq!(r[0].note.as_deref(), Some("SKIP: no network"));
        assert_eq!(
            (r[1].checkname.as_str(), r[1].outcome),
            ("c", Outcome::Failed)
        );
        assert_eq!(r[1].note.as_deref(), Some("TODO: later"));
        assert_eq!((r[2].checkname.as_str(), r[2].note.as_deref()), ("d", None));
    }

    #[test]
    fn windows_line_endings() {
        let parsed = parse(
            "TAP version 13\r\n1..1\r\nok 1 - a\r\n  ---\r\n  outcome: INFO\r\n  ...\r\n",
            &defaults(),
        );
        assert!(parsed.is_clean(), "{:?}", notes(&parsed));
        assert_eq!(parsed.results[0].outcome, Outcome::Info);
    }
}
