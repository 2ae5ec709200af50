//! The search query language, the same on every backend: words (all must
//! appear in the line), `"a phrase"` (its words in that order), `word*` (a
//! word starting so), `a OR b` (either), `-word` or `-"a phrase"` (must not
//! appear). A word is a run of letters and digits, compared without case;
//! anything else in a term separates words (`foo-bar` is the phrase
//! `"foo bar"`, `'; DROP` is the word `drop`).
//!
//! A query is parsed here into [`Query`], whose words hold letters and
//! digits only, and rendered by the store into its engine's syntax (FTS5's
//! `MATCH` text; PostgreSQL `tsquery` functions over bound words): what the
//! user typed is never pasted into SQL, and never parsed by FTS5.

/// The longest query accepted, in bytes.
pub const MAX_QUERY_BYTES: usize = 1000;
/// The most terms (words, phrases) one query may hold.
pub const MAX_TERMS: usize = 32;

/// Words that must appear together, in order (one word: just that word).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Term {
    /// Lower case, letters and digits only; never empty.
    pub words: Vec<String>,
    /// The last word is a prefix (`word*`).
    pub prefix: bool,
}

/// A parsed query: every clause must match (a clause is one term, or
/// several joined by `OR`), no excluded term may.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Query {
    pub all: Vec<Vec<Term>>,
    pub none: Vec<Term>,
}

/// A query that cannot be searched for, naming it.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum QueryError {
    #[error("search query `{0}`: empty (give a word to search for)")]
    Empty(String),
    #[error("search query `{0}`: a \" opens a phrase that is never closed")]
    UnclosedQuote(String),
    #[error("search query `{0}`: no word to search for (words are letters and digits; `-word` only excludes)")]
    NoWords(String),
    #[error("search query `{0}`: `OR` must stand between two terms")]
    DanglingOr(String),
    #[error("search query `{0}`: an excluded term (`-…`) cannot be part of an `OR`")]
    ExcludedInOr(String),
    #[error("search query `{shown}…`: longer than {MAX_QUERY_BYTES} bytes")]
    TooLong { shown: String },
    #[error("search query `{0}`: more than {MAX_TERMS} terms")]
    TooManyTerms(String),
}

/// One token of the query text.
#[derive(Debug)]
enum Token {
    Term { term: Option<Term>, negated: bool },
    Or,
}

/// The words of `text` as the index sees them: runs of letters and
/// digits, lower case.
pub fn words(text: &str) -> impl Iterator<Item = String> + '_ {
    text.split(|c: char| !c.is_alphanumeric())
        .filter(|w| !w.is_empty())
        .map(str::to_lowercase)
}

/// `text`'s words joined by one space (what PostgreSQL's `simple`
/// configuration indexes, so that both engines see the same words).
pub fn normalized(text: &str) -> String {
    words(text).collect::<Vec<_>>().join(" ")
}

fn term_of(text: &str, prefix: bool) -> Option<Term> {
    let words: Vec<String> = words(text).collect();
    (!words.is_empty()).then_some(Term { words, prefix })
}

impl Query {
    /// Parses what a user typed.
    pub fn parse(text: &str) -> Result<Query, QueryError> {
        if text.len() > MAX_QUERY_BYTES {
            let mut end = 60;
            while !text.is_char_boundary(end) {
                end -= 1;
            }
            return Err(QueryError::TooLong {
                shown: text[..end].to_string(),
            });
        }
        let shown = || text.to_string();
        if text.trim().is_empty() {
            return Err(QueryError::Empty(shown()));
        }
        let tokens = tokens(text).ok_or_else(|| QueryError::UnclosedQuote(shown()))?;
        let terms = tokens
            .iter()
            .filter(|t| matches!(t, Token::Term { .. }))
            .count();
        if terms > MAX_TERMS {
            return Err(QueryError::TooManyTerms(shown()));
        }
        let mut q = Query {
            all: Vec::new(),
            none: Vec::new(),
        };
        // The clause being built, and whether an `OR` waits for its right side.
        let mut clause: Vec<Option<Term>> = Vec::new();
        let mut or_pending = false;
        let close = |clause: &mut Vec<Option<Term>>, q: &mut Query| {
            let terms: Vec<Term> = clause.drain(..).flatten().collect();
            // A clause of terms without words (`"!!" OR …`) is left out;
            // an OR with one side without words matches the other side.
            if !terms.is_empty() {
                q.all.push(terms);
            }
        };
        for t in tokens {
            match t {
                Token::Or => {
                    if clause.is_empty() || or_pending {
                        return Err(QueryError::DanglingOr(shown()));
                    }
                    or_pending = true;
                }
                Token::Term { term, negated } => {
                    if negated {
                        if or_pending {
                            return Err(QueryError::ExcludedInOr(shown()));
                        }
                        q.none.extend(term);
                        continue;
                    }
                    if !or_pending {
                        close(&mut clause, &mut q);
                    }
                    or_pending = false;
                    clause.push(term);
                }
            }
        }
        if or_pending {
            return Err(QueryError::DanglingOr(shown()));
        }
        close(&mut clause, &mut q);
        if q.all.is_empty() {
            return Err(QueryError::NoWords(shown()));
        }
        Ok(q)
    }

    /// Every word a matching line holds (for highlighting), with whether
    /// it is a prefix.
    pub fn wanted(&self) -> Vec<(&str, bool)> {
        let mut out = Vec::new();
        for t in self.all.iter().flatten() {
            let last = t.words.len() - 1;
            for (i, w) in t.words.iter().enumerate() {
                out.push((w.as_str(), t.prefix && i == last));
            }
        }
        out
    }
}

/// Splits the text into terms and `OR`s; `None` when a quote is unclosed.
fn tokens(text: &str) -> Option<Vec<Token>> {
    let mut out = Vec::new();
    let mut chars = text.chars().peekable();
    loop {
        while chars.next_if(|c| c.is_whitespace()).is_some() {}
        let Some(&first) = chars.peek() else {
            return Some(out);
        };
        let negated = first == '-';
        if negated {
            chars.next();
        }
        if chars.peek() == Some(&'"') {
            chars.next();
            let mut phrase = String::new();
            loop {
                match chars.next() {
                    Some('"') => break,
                    Some(c) => phrase.push(c),
                    None => return None,
                }
            }
            let prefix = chars.next_if_eq(&'*').is_some();
            out.push(Token::Term {
                term: term_of(&phrase, prefix),
                negated,
            });
            continue;
        }
        let mut word = String::new();
        while let Some(c) = chars.next_if(|c| !c.is_whitespace() && *c != '"') {
            word.push(c);
        }
        if word == "OR" && !negated {
            out.push(Token::Or);
            continue;
        }
        let prefix = word.ends_with('*');
        out.push(Token::Term {
            term: term_of(&word, prefix),
            negated,
        });
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn t(words: &[&str]) -> Term {
        Term {
            words: words.iter().map(|w| w.to_string()).collect(),
            prefix: false,
        }
    }

    #[test]
    fn words_phrases_or_and_exclusions() {
        let q = Query::parse(r#"Kernel "boot  Failed" a OR b* -noise -"x y""#).expect("valid");
        let b = Term {
            words: vec!["b".into()],
            prefix: true,
        };
        assert_eq!(
            q.all,
            vec![
                vec![t(&["kernel"])],
                vec![t(&["boot", "failed"])],
                vec![t(&["a"]), b]
            ]
        );
        assert_eq!(q.none, vec![t(&["noise"]), t(&["x", "y"])]);
    }

    #[test]
    fn punctuation_separates_words_and_sql_is_just_words() {
        let q = Query::parse("foo-bar.baz '; DROP TABLE jobs; --").expect("valid");
        assert_eq!(
            q.all,
            vec![
                vec![t(&["foo", "bar", "baz"])],
                vec![t(&["drop"])],
                vec![t(&["table"])],
                vec![t(&["jobs"])],
            ]
        );
        assert!(q.none.is_empty());
    }

    #[test]
    fn fts_operators_are_words_or_nothing() {
        // FTS5's own operators and column filters are not operators here.
        let q = Query::parse("NEAR(a b) body:x AND ^y").expect("valid");
        assert_eq!(
            q.all,
            vec![
                vec![t(&["near", "a"])],
                vec![t(&["b"])],
                vec![t(&["body", "x"])],
                vec![t(&["and"])],
                vec![t(&["y"])],
            ]
        );
    }

    #[test]
    fn bad_queries_name_the_query() {
        let e = |s: &str| Query::parse(s).expect_err(s).to_string();
        assert_eq!(
            e(r#"say "hello"#),
            r#"search query `say "hello`: a " opens a phrase that is never closed"#
        );
        assert!(e("   ").contains("empty"), "{}", e("   "));
        assert!(e("-foo").contains("no word"));
        assert!(e("!!! ???").contains("no word"));
        assert!(e("OR a").contains("`OR` must stand"));
        assert!(e("a OR").contains("`OR` must stand"));
        assert!(e("a OR OR b").contains("`OR` must stand"));
        assert!(e("a OR -b").contains("cannot be part"));
        assert!(e(&"a ".repeat(40)).contains("more than 32"));
        assert!(e(&"é".repeat(600)).contains("longer than 1000"));
    }

    #[test]
    fn normalized_text_is_its_words() {
        assert_eq!(
            normalized("ok 1 - hello.Check_NVR\tÉté"),
            "ok 1 hello check nvr été"
        );
    }
}
