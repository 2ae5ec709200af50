//! The results model shared by the ResultYAML and TAP parsers: an
//! [`Outcome`] and a [`CheckResult`], as ResultsDB stores them.

use std::collections::BTreeMap;
use std::fmt;

use serde::de::Error as _;
use serde::ser::SerializeMap as _;
use serde::{Deserialize, Deserializer, Serialize, Serializer};
use serde_json::Value as Json;

pub use ferrotron_agent::protocol::{Outcome, UnknownOutcome};

/// Values for the fields a task may leave out. An empty string means "no
/// default": the field is then required.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Defaults {
    pub item: String,
    pub item_type: String,
    /// Usually the task name.
    pub checkname: String,
}

impl Defaults {
    pub fn new(
        item: impl Into<String>,
        item_type: impl Into<String>,
        checkname: impl Into<String>,
    ) -> Self {
        Defaults {
            item: item.into(),
            item_type: item_type.into(),
            checkname: checkname.into(),
        }
    }
}

/// One result, as a ResultYAML entry: `item`, `type`, `checkname`,
/// `outcome`, optional `note`, `artifact` and `ref_url`, and any other keys
/// in `extra` (ResultsDB's `data`, see [`super::record`]).
#[derive(Debug, Clone, PartialEq)]
pub struct CheckResult {
    pub item: String,
    pub item_type: String,
    pub checkname: String,
    pub outcome: Outcome,
    pub note: Option<String>,
    /// A file the task wrote. In a job's results (`RunOutcome::results`)
    /// it is a path inside the job's artifacts folder, or `None`.
    pub artifact: Option<String>,
    /// The result's link, when the task gives one; else recording links
    /// the artifact (or the job's artifacts).
    pub ref_url: Option<String>,
    /// Other keys, sorted; valid ResultsDB data keys (see [`super::record`]). Never holds one of [`CheckResult::FIELDS`].
    pub extra: BTreeMap<String, Json>,
}

/// Why a set of keys and values is not a [`CheckResult`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FieldError {
    /// The key at fault; `None` when the key is missing altogether.
    pub key: Option<String>,
    /// What a user reads, e.g. `unknown outcome "PASSSED"`.
    pub message: String,
}

impl fmt::Display for FieldError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.message)
    }
}

impl std::error::Error for FieldError {}

/// How a value is called in messages.
pub(crate) fn kind(value: &Json) -> &'static str {
    match value {
        Json::Null => "null",
        Json::Bool(_) => "a boolean",
        Json::Number(_) => "a number",
        Json::String(_) => "a string",
        Json::Array(_) => "a list",
        Json::Object(_) => "a mapping",
    }
}

/// A scalar as text (YAML authors forget to quote `1.0` or `yes`); `Ok(None)`
/// for null; an error for a list or a mapping.
fn text_of(key: &str, value: Json) -> Result<Option<String>, FieldError> {
    match value {
        Json::Null => Ok(None),
        Json::String(s) => Ok(Some(s)),
        Json::Bool(b) => Ok(Some(b.to_string())),
        Json::Number(n) => Ok(Some(n.to_string())),
        other => Err(FieldError {
            key: Some(key.to_string()),
            message: format!("{key:?} must be a string, not {}", kind(&other)),
        }),
    }
}

impl CheckResult {
    /// The keys with a field of their own; every other key goes to `extra`.
    pub const FIELDS: [&'static str; 7] = [
        "item",
        "type",
        "checkname",
        "outcome",
        "note",
        "artifact",
        "ref_url",
    ];

    /// Builds a result from a ResultYAML entry's keys and values, filling
    /// `item`, `type` and `checkname` from `defaults` when they are missing
    /// or null. The first problem found is returned; other keys must be
    /// valid ResultsDB data ([`super::record`]).
    pub fn from_fields(
        fields: impl IntoIterator<Item = (String, Json)>,
        defaults: &Defaults,
    ) -> Result<CheckResult, FieldError> {
        let mut item = None;
        let mut item_type = None;
        let mut checkname = None;
        let mut outcome = None;
        let mut note = None;
        let mut artifact = None;
        let mut ref_url = None;
        let mut extra = BTreeMap::new();
        for (key, value) in fields {
            match key.as_str() {
                "item" => item = text_of(&key, value)?,
                "type" => item_type = text_of(&key, value)?,
                "checkname" => checkname = text_of(&key, value)?,
                "note" => note = text_of(&key, value)?,
                "artifact" => artifact = text_of(&key, value)?,
                "ref_url" => ref_url = text_of(&key, value)?,
                "outcome" => match value {
                    Json::Null => outcome = None,
                    Json::String(s) => match s.parse::<Outcome>() {
                        Ok(o) => outcome = Some(o),
                        Err(e) => {
                            return Err(FieldError {
                                key: Some(key),
                                message: e.to_string(),
                            })
                        }
                    },
                    other => {
                        return Err(FieldError {
                            key: Some(key),
                            message: format!("\"outcome\" must be a string, not {}", kind(&other)),
                        })
                    }
                },
                _ => {
                    extra.insert(key, value);
                }
            }
        }
        let required = |value: Option<String>, default: &str, key: &str| {
            value
                .or_else(|| (!default.is_empty()).then(|| default.to_string()))
                .ok_or_else(|| FieldError {
                    key: None,
                    message: format!("missing {key:?}"),
                })
        };
        let item = required(item, &defaults.item, "item")?;
        let item_type = required(item_type, &defaults.item_type, "type")?;
        let checkname = required(checkname, &defaults.checkname, "checkname")?;
        let outcome = outcome.ok_or_else(|| FieldError {
            key: None,
            message: "missing \"outcome\"".to_string(),
        })?;
        super::record::pairs(&extra).map_err(|e| FieldError {
            key: Some(e.top_key().to_string()),
            message: e.to_string(),
        })?;
        Ok(CheckResult {
            item,
            item_type,
            checkname,
            outcome,
            note,
            artifact,
            ref_url,
            extra,
        })
    }
}

impl Serialize for CheckResult {
    /// As a ResultYAML entry; `extra` keys that clash with a field are left
    /// out (they cannot be represented).
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        let mut map = serializer.serialize_map(None)?;
        map.serialize_entry("item", &self.item)?;
        map.serialize_entry("type", &self.item_type)?;
        map.serialize_entry("checkname", &self.checkname)?;
        map.serialize_entry("outcome", &self.outcome)?;
        if let Some(note) = &self.note {
            map.serialize_entry("note", note)?;
        }
        if let Some(artifact) = &self.artifact {
            map.serialize_entry("artifact", artifact)?;
        }
        if let Some(ref_url) = &self.ref_url {
            map.serialize_entry("ref_url", ref_url)?;
        }
        for (key, value) in &self.extra {
            if !CheckResult::FIELDS.contains(&key.as_str()) {
                map.serialize_entry(key, value)?;
            }
        }
        map.end()
    }
}

impl<'de> Deserialize<'de> for CheckResult {
    /// From a ResultYAML entry; every field is required (no defaults).
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        let fields = BTreeMap::<String, Json>::deserialize(deserializer)?;
        CheckResult::from_fields(fields, &Defaults::default()).map_err(D::Error::custom)
    }
}

impl From<&ferrotron_agent::protocol::TaskResult> for CheckResult {
    /// The same result the agent's TAP output parses into: the summary is
    /// the note, the output is kept as `details: {output}`.
    fn from(r: &ferrotron_agent::protocol::TaskResult) -> Self {
        let mut extra = BTreeMap::new();
        extra.insert(
            "details".to_string(),
            serde_json::json!({ "output": r.output }),
        );
        CheckResult {
            item: r.item.clone(),
            item_type: r.item_type.clone(),
            checkname: r.checkname.clone(),
            outcome: r.outcome,
            note: Some(r.summary.clone()),
            artifact: None,
            ref_url: None,
            extra,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn outcomes_parse_case_insensitively() {
        assert_eq!("passed".parse::<Outcome>(), Ok(Outcome::Passed));
        assert_eq!(
            "Needs_Inspection".parse::<Outcome>(),
            Ok(Outcome::NeedsInspection)
        );
        assert_eq!(
            "PASSSED".parse::<Outcome>().map_err(|e| e.to_string()),
            Err("unknown outcome \"PASSSED\"".to_string())
        );
        for o in Outcome::ALL {
            assert_eq!(o.as_str().to_lowercase().parse::<Outcome>(), Ok(o));
        }
    }

    #[test]
    fn outcomes_serialize_upper_case() {
        assert_eq!(
            serde_json::to_string(&Outcome::NeedsInspection).expect("valid"),
            "\"NEEDS_INSPECTION\""
        );
        assert_eq!(
            serde_json::from_str::<Outcome>("\"waived\"").expect("valid"),
            Outcome::Waived
        );
    }

    #[test]
    fn passing_outcomes() {
        let passing: Vec<_> = Outcome::ALL.into_iter().filter(|o| o.is_ok()).collect();
        assert_eq!(passing, [Outcome::Passed, Outcome::Info]);
    }

    #[test]
    fn check_result_serde_round_trip() {
        let json = r#"{"item":"foo-1.0-1.fc40","type":"koji_build","checkname":"rpmlint",
            "outcome":"failed","note":"2 errors","arch":["x86_64","noarch"]}"#;
        let r: CheckResult = serde_json::from_str(json).expect("valid");
        assert_eq!(r.outcome, Outcome::Failed);
        assert_eq!(r.extra["arch"], serde_json::json!(["x86_64", "noarch"]));
        let back = serde_json::to_string(&r).expect("valid");
        assert_eq!(
            back,
            r#"{"item":"foo-1.0-1.fc40","type":"koji_build","checkname":"rpmlint","outcome":"FAILED","note":"2 errors","arch":["x86_64","noarch"]}"#
        );
        assert_eq!(
            serde_json::from_str::<CheckResult>(&back).expect("valid"),
            r
        );
    }

    #[test]
    fn check_result_deserialize_errors_are_clear() {
        let err = serde_json::from_str::<CheckResult>(r#"{"item":"a","type":"b","checkname":"c"}"#)
            .expect_err("must fail");
        assert!(err.to_string().starts_with("missing \"outcome\""), "{err}");
        let err = serde_json::from_str::<CheckResult>(
            r#"{"item":"a","type":"b","checkname":"c","outcome":["PASSED"]}"#,
        )
        .expect_err("must fail");
        assert!(
            err.to_string()
                .starts_with("\"outcome\" must be a string, not a list"),
            "{err}"
        );
    }
}
