//! Strict YAML loading shared by the files users write (formulas, rules,
//! mappings): one error type, [`FileError`], with the file, the line and
//! the key path of the first problem, instead of serde's raw message.
//!
//! Types deserialized here use `deny_unknown_fields`; a `Deserialize`
//! impl that rejects a value with `de::Error::custom` gets the line of that
//! value too (yaml_serde marks errors with the position of the value being
//! read), so validation done during deserialization is located for free.

use std::path::{Path, PathBuf};

use serde::de::DeserializeOwned;

/// A file the user wrote (formula, rules, mappings) that cannot be read or
/// does not validate: `FILE: cannot read KIND`, or `FILE:LINE: KEY: why`.
#[derive(Debug, thiserror::Error)]
pub enum FileError {
    #[error("{path}: cannot read {kind}")]
    Read {
        /// What the file holds (`formula`, `rules`, `mappings`).
        kind: &'static str,
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("{path}:{line}: {key}: {message}")]
    Invalid {
        path: PathBuf,
        /// 1-based line.
        line: usize,
        /// Key path such as `[2].do[0].tasks`, or `(top level)`.
        key: String,
        message: String,
    },
}

impl FileError {
    /// A problem found at `line`, under `key`, of `path`.
    pub fn invalid(
        path: &Path,
        line: usize,
        key: impl Into<String>,
        message: impl Into<String>,
    ) -> FileError {
        FileError::Invalid {
            path: path.to_path_buf(),
            line,
            key: key.into(),
            message: message.into(),
        }
    }

    /// A [`YamlError`] of the text of `path`.
    pub fn at(path: &Path, e: YamlError) -> FileError {
        FileError::invalid(path, e.line, e.key, e.message)
    }
}

/// Reads a user's file; `kind` names what it holds in the error.
pub fn read(kind: &'static str, path: &Path) -> Result<String, FileError> {
    std::fs::read_to_string(path).map_err(|source| FileError::Read {
        kind,
        path: path.to_path_buf(),
        source,
    })
}

/// Deserializes the text of `path` into `T` ([`from_str`], the error
/// naming the file).
pub fn parse_file<T: DeserializeOwned>(path: &Path, text: &str) -> Result<T, FileError> {
    from_str(text).map_err(|e| FileError::at(path, e))
}

/// Where and why a YAML document did not fit the expected shape.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("line {line}: {key}: {message}")]
pub struct YamlError {
    /// 1-based line (1 when the parser gives none).
    pub line: usize,
    /// Key path such as `[2].do[0].tasks`, or `(top level)`.
    pub key: String,
    /// The reason, without serde's location suffix.
    pub message: String,
}

/// Deserializes `text` into `T`, reporting the first problem with its line
/// and key path.
pub fn from_str<T: DeserializeOwned>(text: &str) -> Result<T, YamlError> {
    let de = yaml_serde::Deserializer::from_str(text);
    serde_path_to_error::deserialize(de).map_err(|e| {
        let key = e.path().to_string();
        let inner = e.into_inner();
        let line = inner.location().map(|l| l.line()).unwrap_or(1);
        YamlError {
            line,
            key: if key == "." {
                "(top level)".into()
            } else {
                key
            },
            message: strip_location(&inner.to_string()),
        }
    })
}

/// serde_yaml-style messages start with their own key path and end in
/// " at line L column C"; both are reported separately.
pub fn strip_location(msg: &str) -> String {
    let msg = match msg.find(" at line ") {
        Some(i) => &msg[..i],
        None => msg,
    };
    match msg.split_once(": ") {
        Some((head, rest)) if !head.contains(' ') => rest.to_string(),
        _ => msg.to_string(),
    }
}

/// 1-based line of the first `key:` in the text, or 1.
pub fn line_of(text: &str, key: &str) -> usize {
    let needle = format!("{key}:");
    text.lines()
        .position(|l| l.trim_start().trim_start_matches("- ").starts_with(&needle))
        .map(|i| i + 1)
        .unwrap_or(1)
}

/// 1-based line of the n-th (0-based) line starting with `needle` (after
/// indentation), or 1.
pub fn line_of_nth(text: &str, needle: &str, n: usize) -> usize {
    text.lines()
        .enumerate()
        .filter(|(_, l)| l.trim_start().starts_with(needle))
        .nth(n)
        .map(|(i, _)| i + 1)
        .unwrap_or(1)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[derive(Debug, serde::Deserialize)]
    #[serde(deny_unknown_fields)]
    #[expect(dead_code, reason = "only the error matters")]
    struct T {
        a: u32,
    }

    #[test]
    fn reports_line_and_key() {
        let e = from_str::<T>("a: 1\nb: 2\n").expect_err("unknown key");
        assert_eq!(e.line, 2);
        assert_eq!(e.key, "b");
        assert!(e.message.starts_with("unknown field `b`"), "{}", e.message);
        let e = from_str::<T>("\na: x\n").expect_err("wrong type");
        assert_eq!((e.line, e.key.as_str()), (2, "a"));
    }

    #[test]
    fn file_errors_name_the_file_line_and_key() {
        let e = parse_file::<T>(Path::new("x.yml"), "a: 1\nb: 2\n").expect_err("unknown key");
        assert!(
            e.to_string().starts_with("x.yml:2: b: unknown field `b`"),
            "{e}"
        );
        let e = read("rules", Path::new("/nonexistent/rules.yml")).expect_err("missing");
        assert_eq!(e.to_string(), "/nonexistent/rules.yml: cannot read rules");
    }

    #[test]
    fn finds_lines() {
        let t = "x: 1\n- name: a\n- name: b\n";
        assert_eq!(line_of(t, "x"), 1);
        assert_eq!(line_of(t, "missing"), 1);
        assert_eq!(line_of_nth(t, "- name:", 1), 3);
    }
}
