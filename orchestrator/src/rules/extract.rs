//! Field extraction: per-topic mappings turn a message into named fields
//! (`item`, `item_type`, `name`, `version`, `release`, `distgit_branch`,
//! `message_type`, `arch`, `commit`, `repo`, ...) that rules query.
//!
//! ```yaml
//! - name: koji build completed
//!   topic: org.fedoraproject.*.buildsys.build.state.change
//!   when: {body.new: 1}            # optional query over {id, topic, headers, body}
//!   fields:
//!     message_type: KojiBuildPackageCompleted   # a constant
//!     item: "{name}-{version}-{release}"        # body paths in braces
//!     item_type: koji_build
//! ```
//!
//! The first mapping whose topic pattern matches and whose `when` holds is
//! used; a message no mapping matches has no fields (rules may still look
//! at `topic` and `body.*`). A field whose placeholder the body lacks is
//! left out and listed in [`Extracted::missing`], never an error: rules
//! decide with `$exists` what they need.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

use super::message::Message;
use super::query::Query;
use super::template::Template;
use super::topic::TopicPattern;
use crate::yaml::FileError;

/// The mappings shipped with Ferrotron (`orchestrator/rules/mappings.yaml`),
/// used when no other file is given.
pub const BUILTIN_MAPPINGS: &str = include_str!("../../rules/mappings.yaml");

/// Names rules use for the message itself; a mapping may not define them.
pub const RESERVED_FIELDS: &[&str] = &["topic", "headers", "body"];

/// A loaded mappings file.
#[derive(Debug, Clone)]
pub struct Mappings {
    pub source: PathBuf,
    mappings: Vec<Mapping>,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
struct Mapping {
    /// Shown by `rules test`; defaults to the topic pattern.
    name: Option<String>,
    topic: TopicPattern,
    #[serde(default)]
    when: Query,
    fields: BTreeMap<FieldName, FieldSpec>,
}

/// How one field is made: a template, or a template whose text is then
/// rewritten by a regex (`{from: "{release}", match: '\.fc(\d+)$', replace: 'f$1'}`
/// gives `f42` for `1.fc42`). A value the regex does not match leaves the
/// field out, as a missing placeholder does.
#[derive(Debug, Clone)]
struct FieldSpec {
    from: Template,
    rewrite: Option<(regex::Regex, String)>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RewriteSpec {
    from: Template,
    #[serde(rename = "match")]
    pattern: String,
    replace: String,
}

impl<'de> Deserialize<'de> for FieldSpec {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct V;
        impl<'de> serde::de::Visitor<'de> for V {
            type Value = FieldSpec;
            fn expecting(&self, f: &mut std::fmt::Formatter) -> std::fmt::Result {
                f.write_str("a template string or {from, match, replace}")
            }
            fn visit_str<E: serde::de::Error>(self, s: &str) -> Result<FieldSpec, E> {
                Ok(FieldSpec {
                    from: Template::new(s).map_err(E::custom)?,
                    rewrite: None,
                })
            }
            fn visit_map<A: serde::de::MapAccess<'de>>(
                self,
                map: A,
            ) -> Result<FieldSpec, A::Error> {
                let r =
                    RewriteSpec::deserialize(serde::de::value::MapAccessDeserializer::new(map))?;
                let re = regex::Regex::new(&r.pattern).map_err(|e| {
                    let why = e.to_string();
                    let why = why.lines().last().unwrap_or("invalid").trim().to_string();
                    serde::de::Error::custom(format!("bad regex `{}`: {why}", r.pattern))
                })?;
                Ok(FieldSpec {
                    from: r.from,
                    rewrite: Some((re, r.replace)),
                })
            }
        }
        d.deserialize_any(V)
    }
}

impl FieldSpec {
    fn render(&self, body: &serde_json::Value) -> Result<String, String> {
        let text = self.from.render(body).map_err(|e| e.to_string())?;
        match &self.rewrite {
            None => Ok(text),
            Some((re, replace)) => match re.captures(&text) {
                Some(caps) => {
                    let mut out = String::new();
                    caps.expand(replace, &mut out);
                    Ok(out)
                }
                None => Err(format!("`{text}` does not match `{}`", re.as_str())),
            },
        }
    }
}

/// A field name: letters, digits and `_`, not a reserved name.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
struct FieldName(String);

impl<'de> Deserialize<'de> for FieldName {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let s = String::deserialize(d)?;
        let ok = s
            .chars()
            .next()
            .is_some_and(|c| c.is_ascii_alphabetic() || c == '_')
            && s.chars().all(|c| c.is_ascii_alphanumeric() || c == '_');
        if !ok {
            return Err(serde::de::Error::custom(format!(
                "`{s}` is not a field name (letters, digits and `_`)"
            )));
        }
        if RESERVED_FIELDS.contains(&s.as_str()) {
            return Err(serde::de::Error::custom(format!(
                "`{s}` is reserved for the message itself (rules query it as `{s}`)"
            )));
        }
        Ok(FieldName(s))
    }
}

/// What the mappings made of one message.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct Extracted {
    /// The mapping used (its name, or its topic pattern), if any matched.
    pub mapping: Option<String>,
    /// The fields that could be filled.
    pub fields: BTreeMap<String, String>,
    /// Fields the mapping defines that this message could not fill, with why.
    pub missing: BTreeMap<String, String>,
}

impl Mappings {
    /// Reads and validates a mappings file.
    pub fn load(path: &Path) -> Result<Mappings, FileError> {
        let text = crate::yaml::read("mappings", path)?;
        Self::parse(path, &text)
    }

    /// The built-in mappings.
    pub fn builtin() -> Result<Mappings, FileError> {
        Self::parse(Path::new("(built-in mappings)"), BUILTIN_MAPPINGS)
    }

    /// Validates mappings text; `path` is used in messages only.
    pub fn parse(path: &Path, text: &str) -> Result<Mappings, FileError> {
        let mappings: Vec<Mapping> = crate::yaml::parse_file(path, text)?;
        Ok(Mappings {
            source: path.to_path_buf(),
            mappings,
        })
    }

    /// How many mappings the file has.
    pub fn len(&self) -> usize {
        self.mappings.len()
    }

    pub fn is_empty(&self) -> bool {
        self.mappings.is_empty()
    }

    /// The fields of `msg`, by the first mapping that applies.
    pub fn extract(&self, msg: &Message) -> Extracted {
        let doc = msg.document();
        let Some(m) = self
            .mappings
            .iter()
            .find(|m| m.topic.matches(&msg.topic) && m.when.matches(&doc))
        else {
            return Extracted::default();
        };
        let mut out = Extracted {
            mapping: Some(m.name.clone().unwrap_or_else(|| m.topic.to_string())),
            ..Extracted::default()
        };
        for (name, spec) in &m.fields {
            match spec.render(&msg.body) {
                Ok(v) => {
                    out.fields.insert(name.0.clone(), v);
                }
                Err(why) => {
                    out.missing.insert(name.0.clone(), why);
                }
            }
        }
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn parse(text: &str) -> Result<Mappings, FileError> {
        Mappings::parse(Path::new("m.yaml"), text)
    }

    #[test]
    fn builtin_mappings_load() {
        let m = Mappings::builtin().expect("built-in mappings are valid");
        assert!(m.len() >= 4);
    }

    #[test]
    fn first_applicable_mapping_wins() {
        let m = parse(
            "- topic: a.#\n  when: {body.new: 1}\n  fields: {item: '{name}-{v}', kind: first}\n\
             - name: fallback\n  topic: '#'\n  fields: {kind: second, x: '{missing}'}\n",
        )
        .expect("valid");
        let e = m.extract(&Message::new(
            None,
            "a.b",
            json!({"new": 1, "name": "n", "v": 2}),
        ));
        assert_eq!(e.mapping.as_deref(), Some("a.#"));
        assert_eq!(e.fields["item"], "n-2");
        assert_eq!(e.fields["kind"], "first");
        let e = m.extract(&Message::new(None, "a.b", json!({"new": 0})));
        assert_eq!(e.mapping.as_deref(), Some("fallback"));
        assert_eq!(e.fields["kind"], "second");
        assert_eq!(e.missing["x"], "no `missing` in the message");
        let none = parse("- topic: x\n  fields: {}\n").expect("valid");
        assert_eq!(
            none.extract(&Message::new(None, "y", json!({}))),
            Extracted::default()
        );
    }

    #[test]
    fn builtin_mappings_cover_bodhi_and_fedmsg_git() {
        let m = Mappings::builtin().expect("valid");
        let update = json!({"update": {"alias": "FEDORA-2026-abc", "release": {"name": "F42", "branch": "f42"},
                                       "builds": [{"nvr": "bash-5.2.37-1.fc42"}], "user": {"name": "u"}}});
        let e = m.extract(&Message::new(
            None,
            "org.fedoraproject.prod.bodhi.update.request.testing",
            update.clone(),
        ));
        assert_eq!(
            e.mapping.as_deref(),
            Some("bodhi update submitted or edited")
        );
        assert_eq!(e.fields["item"], "FEDORA-2026-abc");
        assert_eq!(e.fields["distgit_branch"], "f42");
        let e = m.extract(&Message::new(
            None,
            "org.fedoraproject.prod.bodhi.update.comment",
            update,
        ));
        assert_eq!(e.mapping, None, "comments are not updates to test");
        let push = json!({"commit": {"rev": "abc123", "repo": "bash", "branch": "rawhide", "namespace": "rpms", "username": "u"}});
        let e = m.extract(&Message::new(
            None,
            "org.fedoraproject.prod.git.receive",
            push,
        ));
        assert_eq!(e.fields["item"], "rpms/bash#abc123");
        assert_eq!(e.fields["distgit_branch"], "rawhide");
        assert_eq!(e.fields["cache_repo"], "rpms/bash");
        let e = m.extract(&Message::new(
            None,
            "ferrotron.git.push",
            json!({"path": "/tasks.git"}),
        ));
        assert_eq!(e.fields["cache_repo"], "/tasks.git");
        let tag = json!({"tag": "f42-updates-candidate", "name": "bash", "version": "5", "release": "1.fc42"});
        let e = m.extract(&Message::new(
            None,
            "org.fedoraproject.prod.buildsys.tag",
            tag,
        ));
        assert_eq!(
            (e.fields["item"].as_str(), e.fields["item_type"].as_str()),
            ("f42-updates-candidate", "koji_tag")
        );
        assert_eq!(e.fields["nvr"], "bash-5-1.fc42");
    }

    #[test]
    fn regex_rewrites() {
        let m = parse(
            "- topic: '#'\n  fields:\n    distgit_branch:\n      from: '{release}'\n      match: '\\.(fc|el)([0-9]+)$'\n      replace: '${1}${2}'\n",
        )
        .expect("valid");
        let e = m.extract(&Message::new(None, "t", json!({"release": "1.fc42"})));
        assert_eq!(e.fields["distgit_branch"], "fc42");
        let e = m.extract(&Message::new(None, "t", json!({"release": "1.mga9"})));
        assert_eq!(
            e.missing["distgit_branch"],
            "`1.mga9` does not match `\\.(fc|el)([0-9]+)$`"
        );
        let e = parse("- topic: '#'\n  fields:\n    b: {from: x, match: '(', replace: y}\n")
            .expect_err("regex");
        assert_eq!(
            e.to_string(),
            "m.yaml:3: [0].fields.b: bad regex `(`: error: unclosed group"
        );
    }

    #[test]
    fn errors_name_line_and_key() {
        let e = parse("- topic: a\n  fields:\n    item: '{name'\n").expect_err("template");
        assert_eq!(
            e.to_string(),
            "m.yaml:3: [0].fields.item: `{name`: unclosed `{` (write `{{` for a literal brace)"
        );
        let e = parse("- topic: a\n  fields:\n    body: x\n").expect_err("reserved");
        assert!(
            e.to_string()
                .starts_with("m.yaml:3: [0].fields.body: `body` is reserved"),
            "{e}"
        );
        let e = parse("- topic: a..b\n  fields: {}\n").expect_err("topic");
        assert!(
            e.to_string()
                .starts_with("m.yaml:1: [0].topic: topic pattern `a..b` has an empty word"),
            "{e}"
        );
        let e = parse("- topic: a\n  feilds: {}\n").expect_err("unknown key");
        assert!(
            e.to_string()
                .starts_with("m.yaml:2: [0].feilds: unknown field `feilds`"),
            "{e}"
        );
    }
}
