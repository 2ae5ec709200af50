//! Property tests of `${var}` templating (`formula::render_template`, the
//! same code the agent renders `python`/`bash`/`exec`/`artifact` arguments
//! with): no input makes it panic, and a value is inserted as data: a value
//! that itself contains `${...}` is never expanded again.

use std::collections::BTreeMap;

use ferrotron::formula::{render_template, template_vars};
use proptest::prelude::*;

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
}
