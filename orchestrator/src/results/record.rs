//! What of a result ResultsDB records: every key it carries as `data`, and
//! the artifact its `ref_url` links to.
//!
//! `data` is a list of key/value texts, a key once per value, exactly what
//! ResultsDB's `POST /results` makes of a `data` dict; so a result stored
//! directly (the scheduler) and one posted to the API (`run --report`) read
//! back the same. The keys of a result's `extra` become data keys:
//!
//! - a string, number or boolean is one value (`True`/`False`, as
//!   ResultsDB writes Python's booleans); null is no value;
//! - a list is one value per element (an element that is itself a list or
//!   a mapping is its JSON text; a null element is skipped);
//! - a mapping gives one key per entry, joined with `.`: `details:
//!   {output: ...}` is `details.output`;
//! - a value longer than [`MAX_VALUE_BYTES`] is cut there, and says so
//!   (the whole value stays in `results.yml`; PostgreSQL cannot index more).
//!
//! Keys must be valid ResultsDB data keys: not empty, at most
//! [`MAX_KEY_BYTES`], no `:` (reserved for query operators). The parsers
//! check this, so a task that writes a bad key gets a result saying so.

use std::collections::BTreeMap;
use std::path::{Component, Path};

use serde_json::Value as Json;

use super::{quote, CheckResult};

/// The longest data key ResultsDB accepts.
pub const MAX_KEY_BYTES: usize = 255;
/// The longest data value stored; longer ones are cut (see the module).
pub const MAX_VALUE_BYTES: usize = 2048;
/// The most data values one result may carry (with its item and type):
/// a result is a verdict, not a data dump (its artifacts hold the rest),
/// and every value is a row every query of results reads.
pub const MAX_DATA_VALUES: usize = 256;
/// The most bytes of data values (keys included) one result may carry, so
/// that a page of results stays a page (1,000 results at most 64 MiB).
pub const MAX_DATA_BYTES: usize = 64 * 1024;

/// Why a result's keys cannot be ResultsDB data. `top` is the result's own
/// key the bad data key comes from (the parsers point at its line).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum DataError {
    #[error("a data key may not be empty")]
    EmptyKey { top: String },
    #[error(
        "data key {} contains \":\", which ResultsDB reserves for query operators",
        quote(key)
    )]
    Colon { top: String, key: String },
    #[error("data key {} is longer than {MAX_KEY_BYTES} bytes", quote(key))]
    LongKey { top: String, key: String },
    #[error(
        "a result may carry at most {MAX_DATA_VALUES} data values; with {} it has {count}",
        quote(top)
    )]
    TooMany { top: String, count: usize },
    #[error(
        "a result may carry at most {MAX_DATA_BYTES} bytes of data; with {} it has {bytes}",
        quote(top)
    )]
    TooBig { top: String, bytes: usize },
}

impl DataError {
    /// The result's key at fault.
    pub fn top_key(&self) -> &str {
        match self {
            DataError::EmptyKey { top }
            | DataError::Colon { top, .. }
            | DataError::LongKey { top, .. }
            | DataError::TooMany { top, .. }
            | DataError::TooBig { top, .. } => top,
        }
    }
}

impl CheckResult {
    /// This result's ResultsDB data: `item` and `type`, then every key of
    /// `extra` as the module describes.
    pub fn resultsdb_data(&self) -> Result<Vec<(String, String)>, DataError> {
        let mut data = vec![
            ("item".to_string(), cap(self.item.clone())),
            ("type".to_string(), cap(self.item_type.clone())),
        ];
        data.extend(pairs(&self.extra)?);
        Ok(data)
    }
}

/// The data pairs of `extra` (see the module), in key order.
pub fn pairs(extra: &BTreeMap<String, Json>) -> Result<Vec<(String, String)>, DataError> {
    let mut out = Vec::new();
    for (key, value) in extra {
        if key.is_empty() {
            return Err(DataError::EmptyKey { top: key.clone() });
        }
        flatten(key, key.clone(), value, &mut out)?;
        // `item` and `type` come too.
        check_bounds(key, &out, 2)?;
    }
    Ok(out)
}

fn flatten(
    top: &str,
    key: String,
    value: &Json,
    out: &mut Vec<(String, String)>,
) -> Result<(), DataError> {
    if key.contains(':') {
        return Err(DataError::Colon {
            top: top.to_string(),
            key,
        });
    }
    if key.len() > MAX_KEY_BYTES {
        return Err(DataError::LongKey {
            top: top.to_string(),
            key,
        });
    }
    match value {
        // As ResultsDB stores a null it is given: Python's `str(None)`.
        Json::Null => out.push((key, "None".to_string())),
        Json::Object(map) => {
            for (k, v) in map {
                flatten(top, format!("{key}.{k}"), v, out)?;
            }
        }
        Json::Array(items) => {
            for item in items {
                let text = python_str(item);
                out.push((key.clone(), cap(text)));
            }
        }
        scalar => out.push((key, cap(scalar_text(scalar)))),
    }
    Ok(())
}

/// The bounds of one result's data ([`MAX_DATA_VALUES`], [`MAX_DATA_BYTES`]),
/// checked for `pairs` plus `more` values that come with them, after the
/// values of key `top` were added: the one check behind both recording
/// paths (`pairs` here, `POST /api/v2.0/results`).
pub fn check_bounds(top: &str, pairs: &[(String, String)], more: usize) -> Result<(), DataError> {
    let count = pairs.len() + more;
    if count > MAX_DATA_VALUES {
        return Err(DataError::TooMany {
            top: top.to_string(),
            count,
        });
    }
    let bytes: usize = pairs.iter().map(|(k, v)| k.len() + v.len()).sum();
    if bytes > MAX_DATA_BYTES {
        return Err(DataError::TooBig {
            top: top.to_string(),
            bytes,
        });
    }
    Ok(())
}

/// A string, number or boolean as ResultsDB stores it.
/// A data value as ResultsDB stores it: Python's `str()` of what its
/// JSON parser made (`None`, `True`, `{'a': 1}`), strings as they are.
pub fn python_str(v: &Json) -> String {
    match v {
        Json::String(s) => s.clone(),
        other => python_repr(other),
    }
}

/// Python's `repr()` of a JSON value (what `str()` gives inside a list or
/// dict).
pub fn python_repr(v: &Json) -> String {
    match v {
        Json::Null => "None".into(),
        Json::Bool(true) => "True".into(),
        Json::Bool(false) => "False".into(),
        Json::Number(n) => match (n.as_i64(), n.as_u64(), n.as_f64()) {
            (Some(i), _, _) => i.to_string(),
            (_, Some(u), _) => u.to_string(),
            (_, _, Some(f)) if f.is_finite() && f == f.trunc() && f.abs() < 1e16 => {
                format!("{f:.1}")
            }
            _ => n.to_string(),
        },
        Json::String(s) => {
            let quote = if s.contains('\'') && !s.contains('"') {
                '"'
            } else {
                '\''
            };
            let mut out = String::with_capacity(s.len() + 2);
            out.push(quote);
            for c in s.chars() {
                match c {
                    '\\' => out.push_str("\\\\"),
                    '\n' => out.push_str("\\n"),
                    '\r' => out.push_str("\\r"),
                    '\t' => out.push_str("\\t"),
                    c if c == quote => {
                        out.push('\\');
                        out.push(c);
                    }
                    c if (c as u32) < 0x20 || c as u32 == 0x7f => {
                        out.push_str(&format!("\\x{:02x}", c as u32));
                    }
                    c => out.push(c),
                }
            }
            out.push(quote);
            out
        }
        Json::Array(items) => format!(
            "[{}]",
            items.iter().map(python_repr).collect::<Vec<_>>().join(", ")
        ),
        Json::Object(o) => format!(
            "{{{}}}",
            o.iter()
                .map(|(k, v)| format!(
                    "{}: {}",
                    python_repr(&Json::String(k.clone())),
                    python_repr(v)
                ))
                .collect::<Vec<_>>()
                .join(", ")
        ),
    }
}

fn scalar_text(value: &Json) -> String {
    match value {
        Json::String(s) => s.clone(),
        Json::Bool(true) => "True".to_string(),
        Json::Bool(false) => "False".to_string(),
        other => other.to_string(),
    }
}

/// `text`, cut to at most [`MAX_VALUE_BYTES`] (at a character boundary)
/// with a note of its length when longer.
fn cap(text: String) -> String {
    if text.len() <= MAX_VALUE_BYTES {
        return text;
    }
    let tail = format!("… (cut: {} bytes in all)", text.len());
    let mut end = MAX_VALUE_BYTES - tail.len();
    while !text.is_char_boundary(end) {
        end -= 1;
    }
    format!("{}{tail}", &text[..end])
}

/// Where a result's `artifact` is inside the job's artifacts folder, as a
/// `/`-separated relative path: a relative path is relative to that
/// folder, an absolute one must lie inside `artifactsdir` (the folder as
/// the task saw it). `None` for anything else (outside, `..`, empty).
pub fn artifact_path(artifact: &str, artifactsdir: &Path) -> Option<String> {
    let path = Path::new(artifact);
    let rel = if path.is_absolute() {
        path.strip_prefix(artifactsdir).ok()?
    } else {
        path
    };
    let mut parts = Vec::new();
    for c in rel.components() {
        match c {
            Component::Normal(s) => parts.push(s.to_str()?),
            Component::CurDir => {}
            Component::ParentDir | Component::RootDir | Component::Prefix(_) => return None,
        }
    }
    (!parts.is_empty()).then(|| parts.join("/"))
}

/// A relative artifact path (as [`artifact_path`] gives it) with each
/// segment percent-encoded for a URL; `None` when it is not one.
pub fn encoded_path(rel: &str) -> Option<String> {
    if Path::new(rel).is_absolute() {
        return None;
    }
    let clean = artifact_path(rel, Path::new(""))?;
    Some(
        clean
            .split('/')
            .map(crate::util::url_segment)
            .collect::<Vec<_>>()
            .join("/"),
    )
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    fn extra(value: Json) -> BTreeMap<String, Json> {
        match value {
            Json::Object(map) => map.into_iter().collect(),
            other => panic!("not a mapping: {other}"),
        }
    }

    fn text(pairs: &[(String, String)]) -> Vec<(&str, &str)> {
        pairs
            .iter()
            .map(|(k, v)| (k.as_str(), v.as_str()))
            .collect()
    }

    #[test]
    fn scalars_lists_and_mappings() {
        let got = pairs(&extra(json!({
            "scenario": "fedora.universal.x86_64.64bit",
            "arch": ["x86_64", "i686", null],
            "count": 3,
            "score": 1.5,
            "ok": true,
            "gone": null,
            "details": {"output": "log", "lines": [1, 2]},
            "nested": [[1, 2], {"a": "b"}],
        })))
        .expect("valid");
        assert_eq!(
            text(&got),
            [
                ("arch", "x86_64"),
                ("arch", "i686"),
                ("arch", "None"),
                ("count", "3"),
                ("details.lines", "1"),
                ("details.lines", "2"),
                ("details.output", "log"),
                ("gone", "None"),
                ("nested", "[1, 2]"),
                ("nested", "{'a': 'b'}"),
                ("ok", "True"),
                ("scenario", "fedora.universal.x86_64.64bit"),
                ("score", "1.5"),
            ]
        );
    }

    #[test]
    fn a_result_carries_a_bounded_number_of_values() {
        let many: Vec<Json> = (0..MAX_DATA_VALUES).map(|i| Json::from(i as u64)).collect();
        let extra: BTreeMap<String, Json> = [("arch".to_string(), Json::Array(many))].into();
        let e = pairs(&extra).expect_err("too many");
        assert_eq!(e.top_key(), "arch");
        assert_eq!(
            e.to_string(),
            format!(
                "a result may carry at most {MAX_DATA_VALUES} data values; with \"arch\" it has {}",
                MAX_DATA_VALUES + 2
            )
        );
        let fine: BTreeMap<String, Json> = [(
            "arch".to_string(),
            Json::Array(vec![Json::from(1); MAX_DATA_VALUES - 2]),
        )]
        .into();
        assert_eq!(
            pairs(&fine).expect("at the bound").len(),
            MAX_DATA_VALUES - 2
        );
        let big: BTreeMap<String, Json> = [(
            "log".to_string(),
            Json::Array(vec![Json::from("x".repeat(MAX_VALUE_BYTES)); 40]),
        )]
        .into();
        let e = pairs(&big).expect_err("too big");
        assert!(
            e.to_string().starts_with(&format!(
                "a result may carry at most {MAX_DATA_BYTES} bytes of data; with \"log\""
            )),
            "{e}"
        );
    }

    #[test]
    fn bad_keys_name_the_key() {
        let e = pairs(&extra(json!({"a:b": 1}))).expect_err("colon");
        assert_eq!(e.top_key(), "a:b");
        assert_eq!(
            e.to_string(),
            "data key \"a:b\" contains \":\", which ResultsDB reserves for query operators"
        );
        let e = pairs(&extra(json!({"details": {"x:y": 1}}))).expect_err("nested colon");
        assert_eq!(e.top_key(), "details");
        assert!(e.to_string().contains("\"details.x:y\""), "{e}");
        // A null value does not make a bad key good (ResultsDB refuses it too).
        assert!(pairs(&extra(json!({"a:b": null}))).is_err());
        let long = "k".repeat(MAX_KEY_BYTES + 1);
        let e = pairs(&[(long.clone(), json!(1))].into()).expect_err("long");
        assert_eq!(e.top_key(), long);
        assert!(pairs(&[("k".repeat(MAX_KEY_BYTES), json!(1))].into()).is_ok());
        let e = pairs(&[(String::new(), json!(1))].into()).expect_err("empty");
        assert_eq!(e.to_string(), "a data key may not be empty");
    }

    #[test]
    fn long_values_are_cut_and_say_so() {
        let long = "é".repeat(MAX_VALUE_BYTES);
        let got = pairs(&[("output".to_string(), json!(long))].into()).expect("valid");
        let v = &got[0].1;
        assert!(v.len() <= MAX_VALUE_BYTES, "{}", v.len());
        assert!(v.ends_with(&format!("… (cut: {} bytes in all)", long.len())));
        assert!(v.starts_with("éé"));
        let just = "x".repeat(MAX_VALUE_BYTES);
        let got = pairs(&[("k".to_string(), json!(just))].into()).expect("valid");
        assert_eq!(got[0].1, just);
    }

    #[test]
    fn artifact_paths() {
        let dir = Path::new("/var/lib/ferrotron/jobs/j1/artifacts");
        let cases = [
            ("rpmlint.log", Some("rpmlint.log")),
            ("./logs/a b.log", Some("logs/a b.log")),
            (
                "/var/lib/ferrotron/jobs/j1/artifacts/x/y.txt",
                Some("x/y.txt"),
            ),
            ("/var/lib/ferrotron/jobs/j1/artifacts", None),
            ("/var/lib/ferrotron/jobs/j1/work/x.log", None),
            ("/etc/passwd", None),
            ("../work/x.log", None),
            ("logs/../../x", None),
            ("", None),
        ];
        for (artifact, want) in cases {
            assert_eq!(
                artifact_path(artifact, dir).as_deref(),
                want,
                "{artifact:?}"
            );
        }
        assert_eq!(
            encoded_path("logs/a b#1.log").as_deref(),
            Some("logs/a%20b%231.log")
        );
        assert_eq!(encoded_path("/etc/passwd"), None);
        assert_eq!(encoded_path("../x"), None);
    }
}
