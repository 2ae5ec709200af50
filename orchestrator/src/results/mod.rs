//! Task results: the model ([`model`]) and the two formats tasks write them
//! in, ResultYAML ([`resultyaml`]) and TAP version 13 ([`tap`]).
//!
//! Parsing never fails and never drops anything silently: whatever cannot
//! be read becomes a [`Problem`], which [`Parsed::into_results`] turns into
//! one more result (NEEDS_INSPECTION, or ERROR when the document as a whole
//! is unusable) whose note says where and what, e.g.
//! `results line 7: unknown outcome "PASSSED"`.

pub mod model;
pub mod record;
pub mod resultyaml;
pub mod tap;

use std::collections::BTreeMap;
use std::fmt;

use serde_json::Value as Json;

pub use model::{CheckResult, Defaults, FieldError, Outcome, UnknownOutcome};
pub use record::DataError;

/// The two result formats.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Format {
    ResultYaml,
    Tap,
}

impl Format {
    /// How notes name the document: `results line 7: ...`, `TAP line 12: ...`.
    pub fn label(self) -> &'static str {
        match self {
            Format::ResultYaml => "results",
            Format::Tap => "TAP",
        }
    }
}

/// Something in a document that could not be read as a result.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Problem {
    pub format: Format,
    /// 1-based line of the document, when known.
    pub line: Option<usize>,
    pub message: String,
    /// NEEDS_INSPECTION, or ERROR for a document that cannot be used at all
    /// (and for a TAP bail-out).
    pub outcome: Outcome,
    /// The result's item and type when they could be read, else the defaults.
    pub item: String,
    pub item_type: String,
    /// The default check name.
    pub checkname: String,
}

impl Problem {
    /// What the user reads: `results line 7: unknown outcome "PASSSED"`.
    pub fn note(&self) -> String {
        match self.line {
            Some(line) => format!("{} line {line}: {}", self.format.label(), self.message),
            None => format!("{}: {}", self.format.label(), self.message),
        }
    }

    /// The result that reports this problem.
    pub fn to_result(&self) -> CheckResult {
        CheckResult {
            item: self.item.clone(),
            item_type: self.item_type.clone(),
            checkname: self.checkname.clone(),
            outcome: self.outcome,
            note: Some(self.note()),
            artifact: None,
            ref_url: None,
            extra: BTreeMap::new(),
        }
    }
}

impl fmt::Display for Problem {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.note())
    }
}

/// What a parser read: the results, and the problems met on the way.
#[derive(Debug, Clone, PartialEq)]
pub struct Parsed {
    pub format: Format,
    pub results: Vec<CheckResult>,
    pub problems: Vec<Problem>,
}

impl Parsed {
    /// True when nothing went wrong.
    pub fn is_clean(&self) -> bool {
        self.problems.is_empty()
    }

    /// The results followed by one result per problem. Never empty.
    pub fn into_results(self) -> Vec<CheckResult> {
        let mut results = self.results;
        results.extend(self.problems.iter().map(Problem::to_result));
        results
    }
}

/// Collects results and problems for one document.
pub(crate) struct Collector<'a> {
    pub defaults: &'a Defaults,
    pub parsed: Parsed,
}

impl<'a> Collector<'a> {
    pub fn new(format: Format, defaults: &'a Defaults) -> Self {
        Collector {
            defaults,
            parsed: Parsed {
                format,
                results: Vec::new(),
                problems: Vec::new(),
            },
        }
    }

    /// Records a problem about a result whose item and type may be known.
    pub fn problem_about(
        &mut self,
        line: Option<usize>,
        outcome: Outcome,
        message: String,
        item: Option<String>,
        item_type: Option<String>,
    ) {
        self.parsed.problems.push(Problem {
            format: self.parsed.format,
            line,
            message,
            outcome,
            item: item.unwrap_or_else(|| self.defaults.item.clone()),
            item_type: item_type.unwrap_or_else(|| self.defaults.item_type.clone()),
            checkname: self.defaults.checkname.clone(),
        });
    }

    pub fn problem(&mut self, line: Option<usize>, outcome: Outcome, message: String) {
        self.problem_about(line, outcome, message, None, None);
    }

    /// Adds the "no results" error when the document gave nothing at all,
    /// and returns what was parsed.
    pub fn finish(mut self, why: &str) -> Parsed {
        if self.parsed.results.is_empty() && self.parsed.problems.is_empty() {
            self.problem(None, Outcome::Error, format!("no results ({why})"));
        }
        self.parsed
    }
}

/// Which format a document is in: TAP when its first line that is neither
/// blank nor a `#` comment is `TAP version ...`, a plan (`1..N`), a test
/// point (`ok`, `not ok`) or a bail-out; ResultYAML otherwise.
pub fn detect(text: &str) -> Format {
    let first = text
        .lines()
        .map(str::trim)
        .find(|l| !l.is_empty() && !l.starts_with('#'));
    match first {
        Some(l)
            if l.starts_with("TAP version")
                || l.starts_with("Bail out!")
                || tap::looks_like_plan(l)
                || tap::status_word(l).is_some() =>
        {
            Format::Tap
        }
        _ => Format::ResultYaml,
    }
}

/// Parses a document in whichever format [`detect`] finds.
pub fn parse_any(text: &str, defaults: &Defaults) -> Parsed {
    match detect(text) {
        Format::ResultYaml => resultyaml::parse(text, defaults),
        Format::Tap => tap::parse(text, defaults),
    }
}

// ---------------------------------------------------------------------------
// Helpers shared by the two parsers.

/// A line (or value) quoted for a note, shortened when very long.
pub(crate) fn quote(text: &str) -> String {
    const MAX: usize = 200;
    match text.char_indices().nth(MAX) {
        Some((cut, _)) => format!("{:?}...", &text[..cut]),
        None => format!("{text:?}"),
    }
}

/// A YAML value as JSON (ResultsDB's `data`). Keys that are not strings are
/// written as their YAML text; floats JSON cannot hold become strings.
pub(crate) fn yaml_to_json(value: yaml_serde::Value) -> Json {
    use yaml_serde::Value as Y;
    match value {
        Y::Null => Json::Null,
        Y::Bool(b) => Json::Bool(b),
        Y::Number(n) => number_to_json(&n),
        Y::String(s) => Json::String(s),
        Y::Sequence(items) => Json::Array(items.into_iter().map(yaml_to_json).collect()),
        Y::Mapping(map) => Json::Object(
            map.into_iter()
                .map(|(k, v)| (key_text(&k), yaml_to_json(v)))
                .collect(),
        ),
        Y::Tagged(tagged) => yaml_to_json(tagged.value),
    }
}

fn number_to_json(n: &yaml_serde::Number) -> Json {
    if let Some(u) = n.as_u64() {
        Json::from(u)
    } else if let Some(i) = n.as_i64() {
        Json::from(i)
    } else {
        n.as_f64()
            .and_then(serde_json::Number::from_f64)
            .map_or_else(|| Json::String(n.to_string()), Json::Number)
    }
}

/// A mapping key as text.
pub(crate) fn key_text(key: &yaml_serde::Value) -> String {
    use yaml_serde::Value as Y;
    match key {
        Y::String(s) => s.clone(),
        Y::Null => "null".to_string(),
        Y::Bool(b) => b.to_string(),
        Y::Number(n) => n.to_string(),
        other => yaml_serde::to_string(other)
            .map(|s| s.trim_end().to_string())
            .unwrap_or_default(),
    }
}

/// The keys and values of a YAML mapping, for [`CheckResult::from_fields`].
pub(crate) fn mapping_fields(map: yaml_serde::Mapping) -> Vec<(String, Json)> {
    map.into_iter()
        .map(|(k, v)| (key_text(&k), yaml_to_json(v)))
        .collect()
}

/// A string field of a mapping, if it is one (for naming a broken result).
pub(crate) fn string_field(fields: &[(String, Json)], key: &str) -> Option<String> {
    fields.iter().find_map(|(k, v)| match v {
        Json::String(s) if k == key => Some(s.clone()),
        _ => None,
    })
}

/// The index (into `lines`) of the line in `range` where `key` is set,
/// taking the least indented candidate so that a nested key of the same
/// name does not win. Block-style YAML only; `None` when not found.
pub(crate) fn key_line(lines: &[&str], range: std::ops::Range<usize>, key: &str) -> Option<usize> {
    let mut best: Option<(usize, usize)> = None;
    for idx in range {
        let Some(line) = lines.get(idx) else { break };
        let mut rest = *line;
        let mut column = 0;
        loop {
            let trimmed = rest.trim_start_matches(' ');
            column += rest.len() - trimmed.len();
            rest = trimmed;
            match rest.strip_prefix("- ") {
                Some(after) => {
                    column += 2;
                    rest = after;
                }
                None => break,
            }
        }
        let after_key = rest
            .strip_prefix(key)
            .or_else(|| rest.strip_prefix(&format!("\"{key}\"")))
            .or_else(|| rest.strip_prefix(&format!("'{key}'")));
        if after_key.is_some_and(|a| a.trim_start().starts_with(':'))
            && best.is_none_or(|(c, _)| column < c)
        {
            best = Some((column, idx));
        }
    }
    best.map(|(_, idx)| idx)
}

/// A YAML error message without its `at line L column C` parts (the note
/// gives the line of the whole document instead).
pub(crate) fn yaml_error_message(err: &yaml_serde::Error) -> String {
    let text = err.to_string();
    let mut out = String::with_capacity(text.len());
    let mut rest = text.as_str();
    while let Some(pos) = rest.find(" at line ") {
        out.push_str(&rest[..pos]);
        let after = &rest[pos + " at line ".len()..];
        let digits = after.len() - after.trim_start_matches(|c: char| c.is_ascii_digit()).len();
        let tail = &after[digits..];
        match tail.strip_prefix(" column ") {
            Some(col) if digits > 0 => {
                rest = col.trim_start_matches(|c: char| c.is_ascii_digit());
            }
            _ => {
                out.push_str(" at line ");
                rest = after;
            }
        }
    }
    out.push_str(rest);
    out
}

/// What the parsers' tests share.
#[cfg(test)]
pub(crate) mod test_support {
    use super::{Defaults, Parsed};

    pub fn defaults() -> Defaults {
        Defaults::new("foo-1.0-1.fc40", "koji_build", "rpmlint")
    }

    /// The notes a user reads for each problem.
    pub fn notes(parsed: &Parsed) -> Vec<String> {
        parsed.problems.iter().map(|p| p.note()).collect()
    }
}

#[cfg(test)]
mod tests {
    use super::test_support::defaults;
    use super::*;

    #[test]
    fn detects_tap() {
        assert_eq!(detect("TAP version 13\n1..0\n"), Format::Tap);
        assert_eq!(detect("# comment\n\n1..2\nok 1\n"), Format::Tap);
        assert_eq!(detect("not ok 1 - x\n"), Format::Tap);
        assert_eq!(detect("ok\n"), Format::Tap);
        assert_eq!(detect("Bail out! no disk\n"), Format::Tap);
    }

    #[test]
    fn detects_resultyaml() {
        assert_eq!(detect("results:\n  - item: x\n"), Format::ResultYaml);
        assert_eq!(detect("---\nresults: []\n"), Format::ResultYaml);
        assert_eq!(detect("ok: true\n"), Format::ResultYaml);
        assert_eq!(detect(""), Format::ResultYaml);
    }

    #[test]
    fn parse_any_uses_the_detected_format() {
        let tap = parse_any("TAP version 13\n1..1\nok 1 - depcheck\n", &defaults());
        assert_eq!(tap.format, Format::Tap);
        assert_eq!(tap.results[0].checkname, "depcheck");
        let yaml = parse_any("results:\n  - outcome: INFO\n", &defaults());
        assert_eq!(yaml.format, Format::ResultYaml);
        assert_eq!(yaml.results[0].outcome, Outcome::Info);
    }

    #[test]
    fn problems_become_results_after_the_others() {
        let parsed = parse_any(
            "results:\n  - outcome: PASSED\n  - outcome: PASSSED\n",
            &defaults(),
        );
        let results = parsed.into_results();
        assert_eq!(results.len(), 2);
        assert_eq!(results[0].outcome, Outcome::Passed);
        assert_eq!(results[1].outcome, Outcome::NeedsInspection);
        assert_eq!(results[1].checkname, "rpmlint");
        assert_eq!(results[1].item, "foo-1.0-1.fc40");
        assert_eq!(
            results[1].note.as_deref(),
            Some("results line 3: unknown outcome \"PASSSED\"")
        );
    }

    #[test]
    fn long_lines_are_shortened_in_notes() {
        let long = "x".repeat(300);
        let quoted = quote(&long);
        assert_eq!(quoted, format!("\"{}\"...", "x".repeat(200)));
    }

    #[test]
    fn yaml_error_locations_are_removed() {
        let err =
            yaml_serde::from_str::<yaml_serde::Value>("a: [1\nb: 2\n").expect_err("invalid YAML");
        let msg = yaml_error_message(&err);
        assert!(!msg.contains(" at line "), "{msg}");
        assert!(!msg.is_empty());
    }

    #[test]
    fn key_line_prefers_the_least_indented_key() {
        let lines = ["- extra:", "    outcome: nested", "  outcome: X"];
        assert_eq!(key_line(&lines, 0..3, "outcome"), Some(2));
        assert_eq!(key_line(&lines, 0..3, "extra"), Some(0));
        assert_eq!(key_line(&lines, 0..3, "note"), None);
    }
}
