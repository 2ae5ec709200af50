//! Full-text search over job logs, task output and result notes: what is
//! indexed and how a file becomes lines ([`indexed_file`], [`lines`]), the
//! query language ([`query`]) and highlighted snippets ([`snippet`]). The
//! index itself is in the store (`store::search`: FTS5 on SQLite,
//! `tsvector` and GIN on PostgreSQL); `App::search` is the one entry of the
//! API and the CLI.

pub mod query;
pub mod snippet;

pub use query::{Query, QueryError, Term};
pub use snippet::{render, snippet, Fragment};

/// Lines of one file indexed at most (the rest is not searchable).
pub const MAX_LINES: usize = 50_000;
/// Characters of one line indexed and shown at most.
pub const MAX_LINE_CHARS: usize = 2000;
/// Bytes of one file read for the index at most.
pub const MAX_FILE_BYTES: usize = 32 * 1024 * 1024;

/// Whether the artifact at `path` (relative to the job's folder) is
/// indexed: the runner's log, the serial console, each action's log and
/// the task's TAP output.
pub fn indexed_file(path: &str) -> bool {
    match path {
        "runner.log" | "console.log" | "artifacts/results.tap" => true,
        p => p
            .strip_prefix("artifacts/actions/")
            .is_some_and(|name| !name.contains('/') && name.ends_with(".log")),
    }
}

/// The lines of a file's text as indexed, numbered from 1: invalid UTF-8
/// replaced, control characters (ANSI escapes, NUL) made spaces, each cut
/// at [`MAX_LINE_CHARS`], blank lines left out (their numbers kept), at most
/// [`MAX_LINES`] lines of the first [`MAX_FILE_BYTES`] bytes.
pub fn lines(bytes: &[u8]) -> Vec<(i64, String)> {
    let bytes = &bytes[..bytes.len().min(MAX_FILE_BYTES)];
    let text = String::from_utf8_lossy(bytes);
    text.split('\n')
        .take(MAX_LINES)
        .zip(1i64..)
        .filter_map(|(l, n)| {
            let clean: String = l
                .chars()
                .take(MAX_LINE_CHARS)
                .map(|c| if c.is_control() { ' ' } else { c })
                .collect();
            let clean = clean.trim_end().to_string();
            (!clean.trim().is_empty()).then_some((n, clean))
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn which_files_are_indexed() {
        for p in [
            "runner.log",
            "console.log",
            "artifacts/results.tap",
            "artifacts/actions/01-run.log",
        ] {
            assert!(indexed_file(p), "{p}");
        }
        for p in [
            "job.json",
            "artifacts/results.json",
            "artifacts/actions/01-run.kwargs.json",
            "artifacts/actions/sub/x.log",
            "task/runner.log",
        ] {
            assert!(!indexed_file(p), "{p}");
        }
    }

    #[test]
    fn lines_keep_their_numbers_and_lose_control_characters() {
        let got = lines(b"first\n\n\x1b[1mbold\x1b[0m\r\n\xff end\n");
        assert_eq!(
            got,
            vec![
                (1, "first".to_string()),
                (3, " [1mbold [0m".to_string()),
                (4, "\u{fffd} end".to_string()),
            ]
        );
    }

    #[test]
    fn long_lines_and_files_are_bounded() {
        let long = "x".repeat(MAX_LINE_CHARS * 2);
        assert_eq!(lines(long.as_bytes())[0].1.chars().count(), MAX_LINE_CHARS);
        let many = "a\n".repeat(MAX_LINES + 10);
        assert_eq!(lines(many.as_bytes()).len(), MAX_LINES);
    }
}
