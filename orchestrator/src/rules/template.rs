//! String templates with `{dotted.path}` placeholders, filled from JSON:
//! `"{name}-{version}-{release}"`. Parsed at load (an unclosed brace is a
//! load error); rendering pastes values as text and never interprets them,
//! so a value such as `$(touch /tmp/x)` stays data.

use std::fmt;

use serde::{de, Deserialize, Deserializer, Serialize, Serializer};
use serde_json::Value;

use super::query::lookup;

/// A parsed template.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Template {
    text: String,
    parts: Vec<Part>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
enum Part {
    Literal(String),
    Field(String),
}

#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum TemplateError {
    #[error("`{0}`: unclosed `{{` (write `{{{{` for a literal brace)")]
    Unclosed(String),
    #[error("`{0}`: unmatched `}}` (write `}}}}` for a literal brace)")]
    Unmatched(String),
    #[error("`{text}`: `{{{field}}}` is not a dotted path of letters, digits, `_` and `-`")]
    BadField { text: String, field: String },
}

/// Why a template could not be filled.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum RenderError {
    #[error("no `{0}` in the message")]
    Missing(String),
    #[error("`{0}` is not a string, number or boolean")]
    NotScalar(String),
}

impl Template {
    pub fn new(text: &str) -> Result<Template, TemplateError> {
        let mut parts = Vec::new();
        let mut lit = String::new();
        let mut chars = text.chars().peekable();
        while let Some(c) = chars.next() {
            match c {
                '{' if chars.peek() == Some(&'{') => {
                    chars.next();
                    lit.push('{');
                }
                '}' if chars.peek() == Some(&'}') => {
                    chars.next();
                    lit.push('}');
                }
                '}' => return Err(TemplateError::Unmatched(text.into())),
                '{' => {
                    let mut field = String::new();
                    loop {
                        match chars.next() {
                            Some('}') => break,
                            Some(c) => field.push(c),
                            None => return Err(TemplateError::Unclosed(text.into())),
                        }
                    }
                    let ok = !field.is_empty()
                        && field.split('.').all(|seg| {
                            !seg.is_empty()
                                && seg
                                    .chars()
                                    .all(|c| c.is_ascii_alphanumeric() || c == '_' || c == '-')
                        });
                    if !ok {
                        return Err(TemplateError::BadField {
                            text: text.into(),
                            field,
                        });
                    }
                    if !lit.is_empty() {
                        parts.push(Part::Literal(std::mem::take(&mut lit)));
                    }
                    parts.push(Part::Field(field));
                }
                c => lit.push(c),
            }
        }
        if !lit.is_empty() {
            parts.push(Part::Literal(lit));
        }
        Ok(Template {
            text: text.into(),
            parts,
        })
    }

    /// The template as written.
    pub fn as_str(&self) -> &str {
        &self.text
    }

    /// Whether the template has placeholders.
    pub fn has_fields(&self) -> bool {
        self.parts.iter().any(|p| matches!(p, Part::Field(_)))
    }

    /// Fills the placeholders with values found in `doc`.
    pub fn render(&self, doc: &Value) -> Result<String, RenderError> {
        let mut out = String::new();
        for p in &self.parts {
            match p {
                Part::Literal(s) => out.push_str(s),
                Part::Field(f) => match lookup(doc, f) {
                    None | Some(Value::Null) => return Err(RenderError::Missing(f.clone())),
                    Some(Value::String(s)) => out.push_str(s),
                    Some(v @ (Value::Number(_) | Value::Bool(_))) => out.push_str(&v.to_string()),
                    Some(_) => return Err(RenderError::NotScalar(f.clone())),
                },
            }
        }
        Ok(out)
    }
}

impl fmt::Display for Template {
    fn fmt(&self, f: &mut fmt::Formatter) -> fmt::Result {
        f.write_str(&self.text)
    }
}

impl<'de> Deserialize<'de> for Template {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let s = String::deserialize(d)?;
        Template::new(&s).map_err(de::Error::custom)
    }
}

impl Serialize for Template {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(&self.text)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn renders_paths_as_data() {
        let doc = json!({"name": "bash", "version": "5.2", "release": "1.fc40", "n": 3,
                         "evil": "$(touch /tmp/x)", "a": {"b": [{"c": "deep"}]}, "o": {}});
        let t = Template::new("{name}-{version}-{release}").expect("valid");
        assert_eq!(t.render(&doc), Ok("bash-5.2-1.fc40".into()));
        assert_eq!(
            Template::new("x{n}{{y}}").expect("valid").render(&doc),
            Ok("x3{y}".into())
        );
        assert_eq!(
            Template::new("{a.b.0.c}").expect("valid").render(&doc),
            Ok("deep".into())
        );
        assert_eq!(
            Template::new("{evil}").expect("valid").render(&doc),
            Ok("$(touch /tmp/x)".into())
        );
        assert_eq!(
            Template::new("{nope}").expect("valid").render(&doc),
            Err(RenderError::Missing("nope".into()))
        );
        assert_eq!(
            Template::new("{o}").expect("valid").render(&doc),
            Err(RenderError::NotScalar("o".into()))
        );
        assert!(!Template::new("koji_build").expect("valid").has_fields());
    }

    #[test]
    fn bad_templates() {
        assert!(matches!(
            Template::new("{name"),
            Err(TemplateError::Unclosed(_))
        ));
        assert!(matches!(
            Template::new("name}"),
            Err(TemplateError::Unmatched(_))
        ));
        assert!(matches!(
            Template::new("{}"),
            Err(TemplateError::BadField { .. })
        ));
        assert!(matches!(
            Template::new("{a b}"),
            Err(TemplateError::BadField { .. })
        ));
        assert!(matches!(
            Template::new("{a..b}"),
            Err(TemplateError::BadField { .. })
        ));
    }
}
