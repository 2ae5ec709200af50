//! `${var}` templating, shared by the orchestrator (formula checks, reports)
//! and the agent (arguments of `python`, `bash`, `exec` and `artifact`
//! actions, rendered with the values exported so far).
//!
//! Rendering is a single left-to-right pass: a value that itself contains
//! `${...}` is copied as it is and never expanded again, so a hostile item
//! cannot name other variables.

use std::collections::BTreeMap;

/// Names referenced as `${name}` in a template.
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

/// Replaces each `${name}` with its value; unknown names stay as they are
/// (validation rejects them before anything runs).
pub fn render_template(text: &str, vars: &BTreeMap<String, String>) -> String {
    let mut out = String::with_capacity(text.len());
    let mut rest = text;
    while let Some(i) = rest.find("${") {
        out.push_str(&rest[..i]);
        let after = &rest[i + 2..];
        match after.find('}') {
            Some(j) => {
                let name = &after[..j];
                match vars.get(name) {
                    Some(v) => out.push_str(v),
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

/// Renders every string inside a JSON value (keys are left alone): the
/// keyword arguments of a `python` action.
pub fn render_json(
    value: &serde_json::Value,
    vars: &BTreeMap<String, String>,
) -> serde_json::Value {
    use serde_json::Value;
    match value {
        Value::String(s) => Value::String(render_template(s, vars)),
        Value::Array(items) => Value::Array(items.iter().map(|v| render_json(v, vars)).collect()),
        Value::Object(map) => Value::Object(
            map.iter()
                .map(|(k, v)| (k.clone(), render_json(v, vars)))
                .collect(),
        ),
        other => other.clone(),
    }
}

/// Every `${name}` referenced by the strings inside a JSON value.
pub fn json_template_vars(value: &serde_json::Value) -> Vec<String> {
    use serde_json::Value;
    match value {
        Value::String(s) => template_vars(s),
        Value::Array(items) => items.iter().flat_map(json_template_vars).collect(),
        Value::Object(map) => map.values().flat_map(json_template_vars).collect(),
        _ => Vec::new(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn renders_strings_inside_json() {
        let vars: BTreeMap<String, String> = [("a".to_string(), "${b}".to_string())].into();
        let v = serde_json::json!({"x": ["${a}", 1, {"${a}": "y${a}"}]});
        assert_eq!(
            render_json(&v, &vars),
            serde_json::json!({"x": ["${b}", 1, {"${a}": "y${b}"}]})
        );
        assert_eq!(json_template_vars(&v), vec!["a", "a"]);
    }
}
