//! Highlighted snippets of a matching line, made here rather than by the
//! engine so that they are the same on every backend: the part of the line
//! around its first match, cut into plain and matching fragments (a client
//! renders each as text, so a line can never inject markup).

use super::query::{words, Query};

/// At most this many characters are shown around the first match.
pub const SNIPPET_CHARS: usize = 160;

/// One piece of a snippet: plain text, or a word the query asked for.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, utoipa::ToSchema)]
pub struct Fragment {
    pub text: String,
    /// This piece is a match.
    #[serde(rename = "match")]
    pub hit: bool,
}

/// The snippet of `line` for `query`: fragments whose texts joined are a
/// window of the line (with `…` where it was cut).
pub fn snippet(line: &str, query: &Query) -> Vec<Fragment> {
    let wanted = query.wanted();
    let chars: Vec<char> = line.chars().collect();
    // Word runs (char ranges) that match a wanted word.
    let mut hits = Vec::new();
    let mut i = 0;
    while i < chars.len() {
        if !chars[i].is_alphanumeric() {
            i += 1;
            continue;
        }
        let start = i;
        while i < chars.len() && chars[i].is_alphanumeric() {
            i += 1;
        }
        let word: String = chars[start..i].iter().collect();
        let word = words(&word).next().unwrap_or_default();
        let found = wanted.iter().any(|(w, prefix)| {
            if *prefix {
                word.starts_with(w)
            } else {
                word == *w
            }
        });
        if found {
            hits.push((start, i));
        }
    }
    let first = hits.first().map_or(0, |h| h.0);
    // The window: a quarter before the first match, the rest after.
    let from = first.saturating_sub(SNIPPET_CHARS / 4);
    let to = (from + SNIPPET_CHARS).min(chars.len());
    let from = to.saturating_sub(SNIPPET_CHARS).min(from);
    let mut out: Vec<Fragment> = Vec::new();
    let mut push = |text: String, hit: bool| {
        if text.is_empty() {
            return;
        }
        match out.last_mut() {
            Some(last) if last.hit == hit => last.text.push_str(&text),
            _ => out.push(Fragment { text, hit }),
        }
    };
    if from > 0 {
        push("…".into(), false);
    }
    let mut at = from;
    for &(s, e) in hits.iter().filter(|(s, e)| *s >= from && *e <= to) {
        push(chars[at..s].iter().collect(), false);
        push(chars[s..e].iter().collect(), true);
        at = e;
    }
    push(chars[at..to].iter().collect(), false);
    if to < chars.len() {
        push("…".into(), false);
    }
    out
}

/// The snippet as one string, matches wrapped in `open` and `close`.
pub fn render(fragments: &[Fragment], open: &str, close: &str) -> String {
    let mut s = String::new();
    for f in fragments {
        if f.hit {
            s.push_str(open);
            s.push_str(&f.text);
            s.push_str(close);
        } else {
            s.push_str(&f.text);
        }
    }
    s
}

#[cfg(test)]
mod tests {
    use super::*;

    fn q(s: &str) -> Query {
        Query::parse(s).expect("valid")
    }

    #[test]
    fn matches_are_fragments_of_their_own() {
        let f = snippet("ok 1 - Hello.check for hello-1.0", &q("hello"));
        assert_eq!(render(&f, "[", "]"), "ok 1 - [Hello].check for [hello]-1.0");
        assert!(f.iter().any(|f| f.hit && f.text == "Hello"));
    }

    #[test]
    fn prefixes_and_phrases_highlight_their_words() {
        let f = snippet(
            "booting the kernel; bootloader ok",
            &q("boot* \"the kernel\""),
        );
        assert_eq!(
            render(&f, "[", "]"),
            "[booting] [the] [kernel]; [bootloader] ok"
        );
    }

    #[test]
    fn long_lines_are_cut_around_the_first_match() {
        let line = format!("{}needle{}", "a ".repeat(200), " b".repeat(200));
        let f = snippet(&line, &q("needle"));
        let s = render(&f, "[", "]");
        assert!(s.starts_with('…') && s.ends_with('…'), "{s}");
        assert!(s.contains("[needle]"), "{s}");
        assert!(s.chars().count() <= SNIPPET_CHARS + 2 + 2, "{s}");
    }

    #[test]
    fn markup_stays_text() {
        let f = snippet("<script>alert(1)</script> x", &q("script"));
        assert_eq!(
            f,
            vec![
                Fragment {
                    text: "<".into(),
                    hit: false
                },
                Fragment {
                    text: "script".into(),
                    hit: true
                },
                Fragment {
                    text: ">alert(1)</".into(),
                    hit: false
                },
                Fragment {
                    text: "script".into(),
                    hit: true
                },
                Fragment {
                    text: "> x".into(),
                    hit: false
                },
            ]
        );
    }
}
