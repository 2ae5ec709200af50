//! Property tests of `${var}` templating (`formula::render_template`, the
//! same code the agent renders `python`/`bash`/`exec`/`artifact` arguments
//! with): no input makes it panic, and a value is inserted as data: a value
//! that itself contains `${...}` is never expanded again.

use std::collections::BTreeMap;

use ferrotron::formula::{render_json, template_vars};
use ferrotron_agent::template::{lookup, string_values, stringify, try_render, Values};
use proptest::prelude::*;
use serde_json::Value;

fn render_template(text: &str, vars: &BTreeMap<String, String>) -> String {
    ferrotron::formula::render_template(text, &string_values(vars))
}

fn config() -> ProptestConfig {
    ProptestConfig {
        cases: 512,
        ..ProptestConfig::default()
    }
}

/// Text made of template-ish pieces, so that `${`, `}` and names meet often.
fn template() -> impl Strategy<Value = String> {
    let piece = prop_oneof![
        Just("${".to_string()),
        Just("}".to_string()),
        Just("$".to_string()),
        Just("{".to_string()),
        "\\$\\{[a-z_]{0,4}\\}",
        "[a-z_ ]{0,6}",
        any::<String>(),
    ];
    prop::collection::vec(piece, 0..12).prop_map(|v| v.concat())
}

/// Variables named a..d with values that are themselves templates.
fn vars() -> impl Strategy<Value = BTreeMap<String, String>> {
    prop::collection::btree_map("[a-d]", template(), 0..4)
}

proptest! {
    #![proptest_config(config())]

    #[test]
    fn never_panics(text in template(), vars in vars()) {
        let _ = render_template(&text, &vars);
        let _ = template_vars(&text);
    }

    #[test]
    fn text_without_references_is_unchanged(text in "[^$]{0,40}", vars in vars()) {
        prop_assert_eq!(render_template(&text, &vars), text);
    }

    /// `${name}` becomes exactly the value, whatever the value holds.
    #[test]
    fn values_are_inserted_verbatim(
        prefix in "[^$]{0,10}",
        suffix in "[^$]{0,10}",
        value in template(),
    ) {
        let vars: BTreeMap<String, String> = [
            ("v".to_string(), value.clone()),
            // A name the value may mention: it must not be expanded.
            ("a".to_string(), "EXPANDED".to_string()),
        ]
        .into();
        let text = format!("{prefix}${{v}}{suffix}");
        prop_assert_eq!(render_template(&text, &vars), format!("{prefix}{value}{suffix}"));
    }

    /// Rendering is one pass: rendering `${v}` where v = `${a}` gives
    /// `${a}`, not a's value.
    #[test]
    fn a_value_naming_a_variable_is_not_re_expanded(name in "[a-d]", other in template()) {
        let mut vars = BTreeMap::new();
        vars.insert("v".to_string(), format!("${{{name}}}"));
        vars.insert(name.clone(), other);
        prop_assert_eq!(render_template("${v}", &vars), format!("${{{name}}}"));
    }

    /// Unknown names stay as they are (validation rejects them before a
    /// job runs; nothing is silently dropped).
    #[test]
    fn unknown_references_stay(text in template()) {
        prop_assert_eq!(render_template(&text, &BTreeMap::new()), text);
    }

    /// A dotted reference reaches the value at that path of an exported
    /// value, and renders it as text (a string as it is, else JSON).
    #[test]
    fn dotted_references_find_the_value_at_their_path(value in json(), pick in any::<prop::sample::Index>()) {
        let paths = paths_of(&value, String::new());
        let (path, expected) = &paths[pick.index(paths.len())];
        let vars: Values = [("x".to_string(), value.clone())].into();
        let reference = format!("x{path}");
        prop_assert_eq!(lookup(&vars, &reference).expect("a path of the value"), expected);
        let text = format!("<${{{reference}}}>");
        prop_assert_eq!(try_render(&text, &vars).expect("renders"), format!("<{}>", stringify(expected)));
    }

    /// A keyword argument that is exactly one reference gets the value
    /// itself; one key too many is an error naming the reference.
    #[test]
    fn whole_references_keep_the_value(value in json()) {
        let vars: Values = [("x".to_string(), value.clone())].into();
        let kwargs = serde_json::json!({"a": "${x}", "b": ["${x}"]});
        prop_assert_eq!(
            render_json(&kwargs, &vars).expect("renders"),
            serde_json::json!({"a": value.clone(), "b": [value]})
        );
        let e = try_render("${x.no_such_key.0}", &vars).expect_err("no such key");
        prop_assert!(e.to_string().starts_with("`${x.no_such_key.0}`: "), "{}", e);
    }
}

/// JSON values a python callable may return: nested mappings and lists.
fn json() -> impl Strategy<Value = Value> {
    let leaf = prop_oneof![
        Just(Value::Null),
        any::<bool>().prop_map(Value::Bool),
        any::<i64>().prop_map(Value::from),
        "[a-z${} ]{0,8}".prop_map(Value::String),
    ];
    leaf.prop_recursive(4, 32, 4, |inner| {
        prop_oneof![
            prop::collection::vec(inner.clone(), 0..4).prop_map(Value::Array),
            prop::collection::btree_map("[a-z_][a-z0-9_]{0,5}", inner, 0..4)
                .prop_map(|m| Value::Object(m.into_iter().collect())),
        ]
    })
}

/// Every path into a value (`""`, `.key`, `.0.key`, …) and what is there.
fn paths_of(v: &Value, at: String) -> Vec<(String, Value)> {
    let mut out = vec![(at.clone(), v.clone())];
    match v {
        Value::Array(items) => {
            for (i, item) in items.iter().enumerate() {
                out.extend(paths_of(item, format!("{at}.{i}")));
            }
        }
        Value::Object(map) => {
            for (k, item) in map {
                out.extend(paths_of(item, format!("{at}.{k}")));
            }
        }
        _ => {}
    }
    out
}
