//! A bus message in the Fedora Messaging style: a topic, headers and a JSON
//! body, with the message id used to deduplicate redeliveries.

use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};

/// One message as the intake (HTTP, AMQP, CLI) hands it to the rules.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
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
    /// The queue name fedora-messaging's JSON dump adds; ignored.
    #[serde(default, skip_serializing)]
    queue: Option<Value>,
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
}

impl Message {
    /// A message made in code (intake, tests).
    pub fn new(id: Option<String>, topic: impl Into<String>, body: Value) -> Message {
        Message {
            id,
            topic: topic.into(),
            headers: Map::new(),
            body,
            queue: None,
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
        if msg.topic.trim().is_empty() {
            return Err(MessageError::EmptyTopic);
        }
        Ok(msg)
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
        let e = Message::from_json("{\"topic\": \"t\", \"body\": {}, \"bogus\": 1}")
            .expect_err("unknown");
        assert!(
            e.to_string()
                .starts_with("line 1 column 34: bogus: unknown field `bogus`"),
            "{e}"
        );
        let e = Message::from_json("{\"topic\": \" \", \"body\": {}}").expect_err("empty");
        assert_eq!(e.to_string(), "topic: must not be empty");
        assert!(Message::from_json("not json").is_err());
    }
}
