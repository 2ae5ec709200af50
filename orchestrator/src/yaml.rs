//! Strict YAML loading shared by the files users write (formulas, rules,
//! mappings): one error with the line and the key path of the first
//! problem, instead of serde's raw message.
//!
//! Types deserialized here use `deny_unknown_fields`; a `Deserialize`
//! impl that rejects a value with `de::Error::custom` gets the line of that
//! value too (yaml_serde marks errors with the position of the value being
//! read), so validation done during deserialization is located for free.

use serde::de::DeserializeOwned;

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
    fn finds_lines() {
        let t = "x: 1\n- name: a\n- name: b\n";
        assert_eq!(line_of(t, "x"), 1);
        assert_eq!(line_of(t, "missing"), 1);
        assert_eq!(line_of_nth(t, "- name:", 1), 3);
    }
}
