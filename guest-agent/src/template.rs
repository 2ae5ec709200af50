//! `${var}` templating, shared by the orchestrator (formula checks, reports)
//! and the agent (arguments of `python`, `shell` argv lists, `bash`, `exec`
//! and `artifact` actions, rendered with the values exported so far).
//!
//! As in libtaskotron, a variable holds a value, not only text: a `python`
//! callable that returns a dict or a list exports that value, and
//! `${var.key}` / `${var.0}` reach into it (a dot looks up a mapping key or
//! a list index). A string that is exactly one reference (`"${var}"`) in a
//! `python` keyword argument is replaced by the value itself, so the next
//! callable gets the dict; a reference inside longer text is replaced by
//! the value as text (a string as it is, anything else as JSON).
//!
//! Rendering is a single left-to-right pass: a value that itself contains
//! `${...}` is copied as it is and never expanded again, so a hostile item
//! cannot name other variables.

use std::collections::BTreeMap;
use std::fmt;

use serde_json::Value;

/// Variables by name: inputs and built-ins are strings, exports any JSON
/// value.
pub type Values = BTreeMap<String, Value>;

/// String variables as [`Values`].
pub fn string_values(vars: &BTreeMap<String, String>) -> Values {
    vars.iter()
        .map(|(k, v)| (k.clone(), Value::String(v.clone())))
        .collect()
}

/// A value as text: a string as it is, anything else as compact JSON
/// (which YAML readers accept), `null` as nothing.
pub fn stringify(value: &Value) -> String {
    match value {
        Value::String(s) => s.clone(),
        Value::Null => String::new(),
        other => other.to_string(),
    }
}

/// A reference that names no value.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Unresolved {
    /// The reference as written, without `${` and `}`.
    pub reference: String,
    pub why: String,
}

impl fmt::Display for Unresolved {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "`${{{}}}`: {}", self.reference, self.why)
    }
}

impl std::error::Error for Unresolved {}

/// The variable a reference starts from: `c` of `c.name.0`.
pub fn root(reference: &str) -> &str {
    reference.split('.').next().unwrap_or(reference)
}

/// The value a reference names: the variable, then one mapping key or list
/// index per dot.
pub fn lookup<'v>(values: &'v Values, reference: &str) -> Result<&'v Value, Unresolved> {
    let unresolved = |why: String| Unresolved {
        reference: reference.to_string(),
        why,
    };
    let mut parts = reference.split('.');
    let name = parts.next().unwrap_or_default();
    let mut at = values
        .get(name)
        .ok_or_else(|| unresolved(format!("no variable `{name}`")))?;
    let mut walked = name.to_string();
    for part in parts {
        at = match at {
            Value::Object(map) => map
                .get(part)
                .ok_or_else(|| unresolved(format!("`{walked}` has no key `{part}`")))?,
            Value::Array(items) => {
                let i: usize = part.parse().map_err(|_| {
                    unresolved(format!("`{walked}` is a list: `{part}` is not an index"))
                })?;
                items.get(i).ok_or_else(|| {
                    unresolved(format!(
                        "`{walked}` has {} item(s), no index {i}",
                        items.len()
                    ))
                })?
            }
            other => {
                return Err(unresolved(format!(
                    "`{walked}` is {}, which has no `{part}`",
                    kind(other)
                )))
            }
        };
        walked.push('.');
        walked.push_str(part);
    }
    Ok(at)
}

fn kind(v: &Value) -> &'static str {
    match v {
        Value::Null => "null",
        Value::Bool(_) => "a boolean",
        Value::Number(_) => "a number",
        Value::String(_) => "a string",
        Value::Array(_) => "a list",
        Value::Object(_) => "a mapping",
    }
}

/// References (`name` or `name.key.0`) written as `${...}` in a template.
pub fn template_vars(text: &str) -> Vec<String> {
    let mut out = Vec::new();
    let mut rest = text;
    while let Some(i) = rest.find("${") {
        let after = &rest[i + 2..];
        match after.find('}') {
            Some(j) => {
                out.push(after[..j].to_string());
                rest = &after[j + 1..];
            }
            None => break,
        }
    }
    out
}

/// Replaces each reference with its value as text; a reference that names
/// nothing stays as it is (validation rejects unknown variables before
/// anything runs).
pub fn render_template(text: &str, vars: &Values) -> String {
    render_with(text, |r| lookup(vars, r).ok().map(stringify))
}

/// Like [`render_template`], but a reference that names nothing is an
/// error naming it (at run time, a key the exported value lacks).
pub fn try_render(text: &str, vars: &Values) -> Result<String, Unresolved> {
    let mut failed = None;
    let out = render_with(text, |r| match lookup(vars, r) {
        Ok(v) => Some(stringify(v)),
        Err(e) => {
            failed.get_or_insert(e);
            None
        }
    });
    failed.map_or(Ok(out), Err)
}

/// One pass over `text`, replacing each `${ref}` with `value(ref)`, or
/// leaving it when that is `None`.
pub fn render_with(text: &str, mut value: impl FnMut(&str) -> Option<String>) -> String {
    let mut out = String::with_capacity(text.len());
    let mut rest = text;
    while let Some(i) = rest.find("${") {
        out.push_str(&rest[..i]);
        let after = &rest[i + 2..];
        match after.find('}') {
            Some(j) => {
                match value(&after[..j]) {
                    Some(v) => out.push_str(&v),
                    None => out.push_str(&rest[i..i + 2 + j + 1]),
                }
                rest = &after[j + 1..];
            }
            None => {
                out.push_str(&rest[i..]);
                rest = "";
            }
        }
    }
    out.push_str(rest);
    out
}

/// The reference of a string that is exactly one `${ref}`.
fn whole_reference(s: &str) -> Option<&str> {
    let inner = s.strip_prefix("${")?.strip_suffix('}')?;
    (!inner.contains('}') && !inner.contains("${")).then_some(inner)
}

/// Renders every string inside a JSON value (the keyword arguments of a
/// `python` action, mapping keys included): a string that is exactly one
/// reference becomes the value itself (a dict stays a dict), any other is
/// rendered as text.
pub fn render_json(value: &Value, vars: &Values) -> Result<Value, Unresolved> {
    Ok(match value {
        Value::String(s) => match whole_reference(s) {
            Some(r) => lookup(vars, r)?.clone(),
            None => Value::String(try_render(s, vars)?),
        },
        Value::Array(items) => Value::Array(
            items
                .iter()
                .map(|v| render_json(v, vars))
                .collect::<Result<_, _>>()?,
        ),
        Value::Object(map) => Value::Object(
            map.iter()
                .map(|(k, v)| Ok((try_render(k, vars)?, render_json(v, vars)?)))
                .collect::<Result<_, Unresolved>>()?,
        ),
        other => other.clone(),
    })
}

/// Every reference inside the strings (and mapping keys) of a JSON value.
pub fn json_template_vars(value: &Value) -> Vec<String> {
    match value {
        Value::String(s) => template_vars(s),
        Value::Array(items) => items.iter().flat_map(json_template_vars).collect(),
        Value::Object(map) => map
            .iter()
            .flat_map(|(k, v)| template_vars(k).into_iter().chain(json_template_vars(v)))
            .collect(),
        _ => Vec::new(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn values() -> Values {
        let mut v = string_values(&[("a".to_string(), "${b}".to_string())].into());
        v.insert(
            "c".into(),
            json!({"name": "perl", "arches": ["x86_64", "s390x"], "n": 3}),
        );
        v
    }

    #[test]
    fn renders_strings_inside_json_and_keeps_whole_values() {
        let vars = values();
        let v = json!({"x": ["${a}", 1, {"${a}": "y${a}"}], "c": "${c}", "arch": "${c.arches.1}"});
        assert_eq!(
            render_json(&v, &vars).expect("renders"),
            json!({"x": ["${b}", 1, {"${b}": "y${b}"}],
                   "c": {"name": "perl", "arches": ["x86_64", "s390x"], "n": 3},
                   "arch": "s390x"})
        );
        assert_eq!(
            json_template_vars(&v),
            vec!["c.arches.1", "c", "a", "a", "a"]
        );
    }

    #[test]
    fn dotted_references_reach_into_values_as_text() {
        let vars = values();
        assert_eq!(
            render_template("${c.name}-${c.n}: ${c.arches}", &vars),
            r#"perl-3: ["x86_64","s390x"]"#
        );
        assert_eq!(render_template("${c.nope} ${zz}", &vars), "${c.nope} ${zz}");
    }

    #[test]
    fn unresolved_references_say_why() {
        let vars = values();
        for (r, why) in [
            ("c.nope", "`c` has no key `nope`"),
            ("c.arches.7", "`c.arches` has 2 item(s), no index 7"),
            ("c.arches.x", "`c.arches` is a list: `x` is not an index"),
            ("c.name.first", "`c.name` is a string, which has no `first`"),
            ("zz", "no variable `zz`"),
        ] {
            let e = try_render(&format!("x ${{{r}}}"), &vars).expect_err(r);
            assert_eq!(e.to_string(), format!("`${{{r}}}`: {why}"));
        }
        assert_eq!(root("c.arches.1"), "c");
    }
}
