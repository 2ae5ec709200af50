//! TAP version 13 output of task results, with a small YAML emitter for the
//! YAML blocks.
//!
//! Strings in the YAML blocks are double-quoted with escapes, except a
//! multi-line `output`, which is a `|` literal block so that it stays
//! readable. A literal block cannot hold every character, so in it:
//! `\r\n` becomes `\n`, a lone `\r` becomes `\n`, and any other
//! non-printable character is replaced by its escape text (`\x1b`,
//! `\u2028`). The exact output is kept in `results.json` and in the logs.

use std::fmt::Write as _;

use crate::protocol::TaskResult;

/// Renders results as a TAP version 13 document.
pub fn tap13(results: &[TaskResult]) -> String {
    let mut out = String::new();
    out.push_str("TAP version 13\n");
    let _ = writeln!(out, "1..{}", results.len());
    for (i, r) in results.iter().enumerate() {
        let status = if r.outcome.is_ok() { "ok" } else { "not ok" };
        let description = tap_description(&format!("{} for {}", r.checkname, r.item));
        let _ = writeln!(out, "{status} {} - {description}", i + 1);
        let mut yaml = String::new();
        field(&mut yaml, 0, "checkname", &r.checkname);
        field(&mut yaml, 0, "item", &r.item);
        field(&mut yaml, 0, "type", &r.item_type);
        field(&mut yaml, 0, "outcome", r.outcome.as_str());
        field(&mut yaml, 0, "summary", &r.summary);
        yaml.push_str("details:\n");
        field(&mut yaml, 2, "output", &r.output);
        out.push_str("  ---\n");
        for line in yaml.lines() {
            let _ = writeln!(out, "  {line}");
        }
        out.push_str("  ...\n");
    }
    out
}

/// A test line's description: one line, and no `#` at all. TAP readers
/// take what follows a `#` as a directive (`# SKIP`, `# TODO`), and the
/// ones tasks were written against (libtaskotron's pytap13) ignore the
/// `\#` escape, so an item holding `# SKIP` would turn a failure into a
/// skip. The YAML block below the line carries the item exactly.
fn tap_description(text: &str) -> String {
    text.chars()
        .filter(|c| *c != '#')
        .map(|c| if c.is_control() { ' ' } else { c })
        .collect()
}

/// Writes `key: value` at `indent` spaces; a block value's lines go at
/// `indent + 2`. Every line, even an empty one, is indented.
fn field(out: &mut String, indent: usize, key: &str, value: &str) {
    let pad = " ".repeat(indent);
    let Some(block) = literal_text(value) else {
        let _ = writeln!(out, "{pad}{key}: {}", double_quoted(value));
        return;
    };
    let body = block.trim_end_matches('\n');
    let chomp = match block.len() - body.len() {
        0 => "-",
        1 => "",
        _ => "+",
    };
    // The first line starting with a space would be taken as indentation.
    let first = block.trim_start_matches('\n');
    let indicator = if first.starts_with(' ') { "2" } else { "" };
    let _ = writeln!(out, "{pad}{key}: |{indicator}{chomp}");
    let content_pad = " ".repeat(indent + 2);
    let lines = block.strip_suffix('\n').unwrap_or(&block);
    for line in lines.split('\n') {
        let _ = writeln!(out, "{content_pad}{line}");
    }
}

/// The text for a literal block, or `None` when the value should be
/// double-quoted instead: a single line, blank text, or text with a line
/// that a TAP parser would take for the YAML block's end (`...`).
fn literal_text(value: &str) -> Option<String> {
    let mut s = String::with_capacity(value.len());
    let mut chars = value.chars().peekable();
    while let Some(c) = chars.next() {
        match c {
            '\r' if chars.peek() == Some(&'\n') => {}
            '\r' | '\n' => s.push('\n'),
            '\t' => s.push('\t'),
            c if printable(c) => s.push(c),
            c => push_escape(&mut s, c),
        }
    }
    let usable = s.contains('\n')
        && !s.chars().all(char::is_whitespace)
        // pytap13 ends a YAML block at any line ending in `...`.
        && !s.split('\n').any(|line| line.trim_end().ends_with("..."));
    usable.then_some(s)
}

/// A YAML double-quoted scalar; anything non-printable is escaped, so the
/// value round-trips exactly (also used by the orchestrator's ResultYAML).
pub fn double_quoted(value: &str) -> String {
    let mut s = String::with_capacity(value.len() + 2);
    s.push('"');
    for c in value.chars() {
        match c {
            '"' => s.push_str("\\\""),
            '\\' => s.push_str("\\\\"),
            '\n' => s.push_str("\\n"),
            '\r' => s.push_str("\\r"),
            '\t' => s.push_str("\\t"),
            c if printable(c) => s.push(c),
            c => push_escape(&mut s, c),
        }
    }
    s.push('"');
    s
}

fn push_escape(s: &mut String, c: char) {
    let _ = match u32::from(c) {
        n @ 0..=0xFF => write!(s, "\\x{n:02x}"),
        n @ 0x100..=0xFFFF => write!(s, "\\u{n:04x}"),
        n => write!(s, "\\U{n:08x}"),
    };
}

/// Characters YAML 1.1 and 1.2 both accept as they are in a scalar (tab and
/// line breaks are handled by the callers). NEL, U+2028, U+2029 (line
/// breaks in YAML 1.1) and the byte order mark are left out.
fn printable(c: char) -> bool {
    matches!(c,
        '\u{20}'..='\u{7E}'
        | '\u{A0}'..='\u{2027}'
        | '\u{202A}'..='\u{D7FF}'
        | '\u{E000}'..='\u{FEFE}'
        | '\u{FF00}'..='\u{FFFD}'
        | '\u{10000}'..='\u{10FFFF}')
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::protocol::Outcome;

    fn result(outcome: Outcome, output: &str) -> TaskResult {
        TaskResult {
            checkname: "rpmlint".into(),
            item: "foo-1.0-1.fc40".into(),
            item_type: "koji_build".into(),
            outcome,
            summary: "exit 0".into(),
            output: output.into(),
        }
    }

    #[test]
    fn renders_a_document() {
        let tap = tap13(&[
            result(Outcome::Passed, "one\ntwo\n"),
            result(Outcome::Failed, ""),
        ]);
        let expected = "TAP version 13
1..2
ok 1 - rpmlint for foo-1.0-1.fc40
  ---
  checkname: \"rpmlint\"
  item: \"foo-1.0-1.fc40\"
  type: \"koji_build\"
  outcome: \"PASSED\"
  summary: \"exit 0\"
  details:
    output: |
      one
      two
  ...
not ok 2 - rpmlint for foo-1.0-1.fc40
  ---
  checkname: \"rpmlint\"
  item: \"foo-1.0-1.fc40\"
  type: \"koji_build\"
  outcome: \"FAILED\"
  summary: \"exit 0\"
  details:
    output: \"\"
  ...
";
        assert_eq!(tap, expected);
    }

    #[test]
    fn empty_results() {
        assert_eq!(tap13(&[]), "TAP version 13\n1..0\n");
    }

    fn output_field(value: &str) -> String {
        let mut s = String::new();
        field(&mut s, 2, "output", value);
        s
    }

    #[test]
    fn chomping_and_indentation_indicators() {
        assert_eq!(output_field("a\nb"), "  output: |-\n    a\n    b\n");
        assert_eq!(output_field("a\n\n"), "  output: |+\n    a\n    \n");
        assert_eq!(
            output_field("  a\n\nb  \n"),
            "  output: |2\n      a\n    \n    b  \n"
        );
        assert_eq!(output_field("\n  a\n"), "  output: |2\n    \n      a\n");
    }

    #[test]
    fn quoted_when_a_block_would_not_do() {
        assert_eq!(output_field("one line"), "  output: \"one line\"\n");
        assert_eq!(output_field(" \n\t\n"), "  output: \" \\n\\t\\n\"\n");
        assert_eq!(output_field("a\n...\n"), "  output: \"a\\n...\\n\"\n");
        assert_eq!(
            double_quoted("q\"\\\u{1b}\u{7f}\u{85}\u{2028}\u{feff}é"),
            "\"q\\\"\\\\\\x1b\\x7f\\x85\\u2028\\ufeffé\""
        );
    }

    #[test]
    fn control_characters_in_blocks_are_escaped() {
        assert_eq!(
            output_field("\u{1b}[1mbold\u{1b}[0m\r\nbar\rbaz\u{0}\n"),
            "  output: |\n    \\x1b[1mbold\\x1b[0m\n    bar\n    baz\\x00\n"
        );
    }

    #[test]
    fn descriptions_cannot_carry_directives() {
        assert_eq!(tap_description("a # SKIP\nb\\#"), "a  SKIP b\\");
    }
}
