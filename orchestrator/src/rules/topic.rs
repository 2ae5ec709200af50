//! AMQP topic patterns, as in RabbitMQ topic bindings: words separated by
//! `.`, `*` stands for exactly one word, `#` for zero or more words.

use std::fmt;

use serde::{de, Deserialize, Deserializer};

/// A topic pattern such as `org.fedoraproject.*.buildsys.build.state.change`
/// or `org.fedoraproject.#`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TopicPattern {
    text: String,
}

#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum TopicError {
    #[error("empty topic pattern")]
    Empty,
    #[error("topic pattern `{0}` has an empty word (`..`, or a leading or trailing `.`)")]
    EmptyWord(String),
    #[error("topic pattern `{0}`: `*` and `#` must be whole words")]
    PartialWildcard(String),
}

impl TopicPattern {
    pub fn new(text: &str) -> Result<TopicPattern, TopicError> {
        if text.is_empty() {
            return Err(TopicError::Empty);
        }
        for w in text.split('.') {
            if w.is_empty() {
                return Err(TopicError::EmptyWord(text.into()));
            }
            if w.len() > 1 && (w.contains('*') || w.contains('#')) {
                return Err(TopicError::PartialWildcard(text.into()));
            }
        }
        Ok(TopicPattern { text: text.into() })
    }

    pub fn as_str(&self) -> &str {
        &self.text
    }

    /// Whether `topic` matches. Dynamic programming over the words, so a
    /// pattern with many `#` costs words × pattern words, never more.
    pub fn matches(&self, topic: &str) -> bool {
        let pat: Vec<&str> = self.text.split('.').collect();
        let words: Vec<&str> = topic.split('.').collect();
        // ok[j]: the pattern so far matches the first j words.
        let mut ok = vec![false; words.len() + 1];
        ok[0] = true;
        for p in &pat {
            let mut next = vec![false; words.len() + 1];
            for j in 0..=words.len() {
                next[j] = match *p {
                    "#" => ok[j] || (j > 0 && next[j - 1]),
                    "*" => j > 0 && ok[j - 1],
                    w => j > 0 && ok[j - 1] && words[j - 1] == w,
                };
            }
            ok = next;
        }
        ok[words.len()]
    }
}

impl fmt::Display for TopicPattern {
    fn fmt(&self, f: &mut fmt::Formatter) -> fmt::Result {
        f.write_str(&self.text)
    }
}

impl<'de> Deserialize<'de> for TopicPattern {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let s = String::deserialize(d)?;
        TopicPattern::new(&s).map_err(de::Error::custom)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn m(p: &str, t: &str) -> bool {
        TopicPattern::new(p).expect("valid").matches(t)
    }

    #[test]
    fn wildcards() {
        assert!(m("a.b.c", "a.b.c"));
        assert!(!m("a.b.c", "a.b"));
        assert!(m("a.*.c", "a.b.c"));
        assert!(!m("a.*.c", "a.c"));
        assert!(!m("a.*.c", "a.b.b.c"));
        assert!(m("a.#", "a"));
        assert!(m("a.#", "a.b.c"));
        assert!(m("#", "anything.at.all"));
        assert!(m("a.#.c", "a.c"));
        assert!(m("a.#.c", "a.x.y.c"));
        assert!(!m("a.#.c", "a.x.y.d"));
        assert!(m(
            "org.fedoraproject.*.buildsys.build.state.change",
            "org.fedoraproject.prod.buildsys.build.state.change"
        ));
        assert!(m("#.#.b", "b"));
    }

    #[test]
    fn bad_patterns() {
        assert_eq!(TopicPattern::new(""), Err(TopicError::Empty));
        assert!(matches!(
            TopicPattern::new("a..b"),
            Err(TopicError::EmptyWord(_))
        ));
        assert!(matches!(
            TopicPattern::new("a.b*"),
            Err(TopicError::PartialWildcard(_))
        ));
    }

    proptest! {
        #[test]
        fn hash_matches_everything(topic in "[a-z]{1,4}(\\.[a-z]{1,4}){0,6}") {
            prop_assert!(m("#", &topic));
            prop_assert!(m(&topic, &topic));
        }
    }
}
