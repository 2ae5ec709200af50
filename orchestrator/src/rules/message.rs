//! A bus message in the Fedora Messaging style: a topic, headers and a JSON
//! body, with the message id used to deduplicate redeliveries.

use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};

/// One message as the intake (HTTP, AMQP, CLI) hands it to the rules.
/// Envelope keys other than these (fedora-messaging's own JSON has
/// `priority` and `queue`; datagrepper adds more) are ignored.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Message {
    /// Fedora Messaging's `id` (a UUID); absent for hand-made messages.
    #[serde(default)]
    pub id: Option<String>,
    /// AMQP routing key, e.g. `org.fedoraproject.prod.buildsys.build.state.change`.
    pub topic: String,
    /// AMQP headers (`fedora_messaging_schema`, `sent-at`, ...).
    #[serde(default)]
    pub headers: Map<String, Value>,
    /// The message body: any JSON.
    pub body: Value,
}

#[derive(Debug, thiserror::Error)]
pub enum MessageError {
    #[error("line {line} column {column}: {key}: {message}")]
    Invalid {
        line: usize,
        column: usize,
        key: String,
        message: String,
    },
    #[error("topic: must not be empty")]
    EmptyTopic,
    #[error("{0}: holds a NUL character, which no database stores")]
    Nul(String),
    #[error("{0}: holds control characters (CR, LF, ...)")]
    Control(&'static str),
    #[error("trailing characters after the message's JSON")]
    Trailing,
}

impl Message {
    /// A message made in code (intake, tests).
    pub fn new(id: Option<String>, topic: impl Into<String>, body: Value) -> Message {
        Message {
            id,
            topic: topic.into(),
            headers: Map::new(),
            body,
        }
    }

    /// Parses the JSON envelope `{id?, topic, headers?, body}`.
    pub fn from_json(text: &str) -> Result<Message, MessageError> {
        let mut de = serde_json::Deserializer::from_str(text);
        let msg: Message = serde_path_to_error::deserialize(&mut de).map_err(|e| {
            let key = e.path().to_string();
            let inner = e.into_inner();
            let mut message = inner.to_string();
            if let Some(i) = message.find(" at line ") {
                message.truncate(i);
            }
            MessageError::Invalid {
                line: inner.line(),
                column: inner.column(),
                key: if key == "." {
                    "(top level)".into()
                } else {
                    key
                },
                message,
            }
        })?;
        de.end().map_err(|_| MessageError::Trailing)?;
        msg.check()?;
        Ok(msg)
    }

    /// What every intake refuses: an empty topic, control characters in
    /// the id or topic, a NUL anywhere (PostgreSQL cannot store it, and an
    /// AMQP message refused by the database would come back forever).
    pub fn check(&self) -> Result<(), MessageError> {
        if self.topic.trim().is_empty() {
            return Err(MessageError::EmptyTopic);
        }
        if self.topic.chars().any(char::is_control) {
            return Err(MessageError::Control("topic"));
        }
        if self
            .id
            .as_deref()
            .is_some_and(|id| id.chars().any(char::is_control))
        {
            return Err(MessageError::Control("id"));
        }
        fn nul_at(v: &Value, at: String) -> Option<String> {
            match v {
                Value::String(s) => s.contains('\0').then_some(at),
                Value::Array(items) => items
                    .iter()
                    .enumerate()
                    .find_map(|(i, v)| nul_at(v, format!("{at}[{i}]"))),
                Value::Object(m) => m.iter().find_map(|(k, v)| {
                    if k.contains('\0') {
                        Some(at.clone())
                    } else {
                        nul_at(v, format!("{at}.{k}"))
                    }
                }),
                _ => None,
            }
        }
        let headers = Value::Object(self.headers.clone());
        match nul_at(&headers, "headers".into()).or_else(|| nul_at(&self.body, "body".into())) {
            Some(at) => Err(MessageError::Nul(at)),
            None => Ok(()),
        }
    }

    /// The message as one JSON object `{id, topic, headers, body}`: what
    /// mapping conditions and `body.*` queries look into.
    pub fn document(&self) -> Value {
        let mut m = Map::new();
        m.insert(
            "id".into(),
            self.id.clone().map(Value::String).unwrap_or(Value::Null),
        );
        m.insert("topic".into(), Value::String(self.topic.clone()));
        m.insert("headers".into(), Value::Object(self.headers.clone()));
        m.insert("body".into(), self.body.clone());
        Value::Object(m)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_an_envelope() {
        let m = Message::from_json(
            r#"{"id": "abc", "topic": "a.b", "headers": {"x": 1}, "body": {"name": "bash"}, "queue": "q"}"#,
        )
        .expect("valid");
        assert_eq!(m.id.as_deref(), Some("abc"));
        assert_eq!(m.topic, "a.b");
        assert_eq!(m.body["name"], "bash");
        let m = Message::from_json(r#"{"topic": "a.b", "body": null}"#).expect("minimal");
        assert!(m.id.is_none() && m.headers.is_empty());
    }

    #[test]
    fn trailing_text_nul_and_control_characters_are_refused() {
        let e = Message::from_json(r#"{"topic": "t", "body": {}} trailing"#).expect_err("trailing");
        assert_eq!(
            e.to_string(),
            "trailing characters after the message's JSON"
        );
        let e = Message::from_json(r#"{"topic": "t", "body": {"a": ["x", "y\u0000"]}}"#)
            .expect_err("nul");
        assert_eq!(
            e.to_string(),
            "body.a[1]: holds a NUL character, which no database stores"
        );
        let e = Message::from_json(r#"{"topic": "t\r\nx", "body": {}}"#).expect_err("control");
        assert_eq!(
            e.to_string(),
            "topic: holds control characters (CR, LF, ...)"
        );
        // A newline inside the body (a commit message) is data.
        Message::from_json(r#"{"topic": "t", "body": {"msg": "a\nb"}}"#).expect("newline in body");
    }

    #[test]
    fn errors_name_the_key() {
        let e = Message::from_json("{\"topic\": \"t\"}").expect_err("no body");
        assert_eq!(
            e.to_string(),
            "line 1 column 14: (top level): missing field `body`"
        );
        let e = Message::from_json("{\"topic\": 3, \"body\": {}}").expect_err("topic type");
        assert!(
            e.to_string()
                .starts_with("line 1 column 11: topic: invalid type: integer `3`"),
            "{e}"
        );
        // What fedora-messaging writes itself (`priority`, `queue`) loads.
        let m = Message::from_json(
            "{\"topic\": \"t\", \"body\": {}, \"priority\": 0, \"queue\": \"q\", \"x\": [1]}",
        )
        .expect("unknown envelope keys are ignored");
        assert_eq!(m.topic, "t");
        let e = Message::from_json("{\"topic\": \" \", \"body\": {}}").expect_err("empty");
        assert_eq!(e.to_string(), "topic: must not be empty");
        assert!(Message::from_json("not json").is_err());
    }
}
