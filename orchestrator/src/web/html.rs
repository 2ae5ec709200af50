//! Building HTML safely: every value that comes from a job, a message, a
//! log or a user goes through [`esc`] (text and attribute values, always
//! double-quoted) or [`href`] (a path built from percent-encoded
//! segments). Markup is only ever written as literals in this module's
//! callers; nothing from the outside reaches a script or a style.

use std::fmt::Write as _;

use crate::job::JobState;

/// `s` as HTML text or a double-quoted attribute value.
pub fn esc(s: &str) -> String {
    let mut out = String::with_capacity(s.len() + 8);
    for c in s.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&#39;"),
            c => out.push(c),
        }
    }
    out
}

/// A link's target: `path` (made of [`seg`]s and literals) with a query
/// of `pairs` (each percent-encoded), escaped for an attribute.
pub fn href(path: &str, pairs: &[(&str, &str)]) -> String {
    esc(&url(path, pairs))
}

/// [`href`] unescaped: for a `Location` header.
pub fn url(path: &str, pairs: &[(&str, &str)]) -> String {
    let mut u = path.to_string();
    let mut first = true;
    for (k, v) in pairs.iter().filter(|(_, v)| !v.is_empty()) {
        u.push(if first { '?' } else { '&' });
        first = false;
        u.push_str(&query_part(k));
        u.push('=');
        u.push_str(&query_part(v));
    }
    u
}

/// One path segment, percent-encoded.
pub fn seg(s: &str) -> String {
    crate::util::url_segment(s)
}

/// A query key or value, percent-encoded.
pub fn query_part(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for b in s.bytes() {
        if b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'.' | b'~') {
            out.push(char::from(b));
        } else {
            let _ = write!(out, "%{b:02X}");
        }
    }
    out
}

/// A time for people: `2026-12-03 10:31:07` (UTC), in a `<time>` element
/// whose `datetime` is exact.
pub fn time(us: i64) -> String {
    let full = crate::store::format_time(us);
    let short = full.get(..19).unwrap_or(&full).replace('T', " ");
    format!("<time datetime=\"{}Z\">{}</time>", esc(&full), esc(&short))
}

/// A duration in microseconds for people: `850 ms`, `12.4 s`, `3 min 05 s`,
/// `2 h 10 min`.
pub fn duration(us: i64) -> String {
    let ms = us / 1000;
    if ms < 1000 {
        format!("{ms} ms")
    } else if ms < 60_000 {
        format!("{:.1} s", ms as f64 / 1000.0)
    } else if ms < 3_600_000 {
        format!("{} min {:02} s", ms / 60_000, (ms / 1000) % 60)
    } else {
        format!("{} h {:02} min", ms / 3_600_000, (ms / 60_000) % 60)
    }
}

/// A job's state as a coloured badge.
pub fn state_badge(s: JobState) -> String {
    let class = match s {
        JobState::Passed => "ok",
        JobState::Failed => "bad",
        JobState::Error => "err",
        JobState::Cancelled => "off",
        JobState::Queued => "wait",
        _ => "run",
    };
    format!("<span class=\"badge {class}\">{s}</span>")
}

/// A result's outcome as a coloured badge.
pub fn outcome_badge(o: &str) -> String {
    let class = match o {
        "PASSED" => "ok",
        "FAILED" => "bad",
        "ERROR" => "err",
        "NEEDS_INSPECTION" => "wait",
        _ => "off",
    };
    format!("<span class=\"badge {class}\">{}</span>", esc(o))
}

/// The first 8 characters of a job's uuid (the rest in its `title`).
pub fn short_id(uuid: &str) -> String {
    format!(
        "<code title=\"{}\">{}</code>",
        esc(uuid),
        esc(uuid.get(..8).unwrap_or(uuid))
    )
}

/// A size in bytes for people.
pub fn size(n: i64) -> String {
    const K: f64 = 1024.0;
    let f = n as f64;
    if f < K {
        format!("{n} B")
    } else if f < K * K {
        format!("{:.1} KiB", f / K)
    } else if f < K * K * K {
        format!("{:.1} MiB", f / K / K)
    } else {
        format!("{:.1} GiB", f / K / K / K)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hostile_strings_stay_text() {
        let hostile = r#"<script>alert("x")</script>' onload='y' &amp;"#;
        let e = esc(hostile);
        assert!(!e.contains('<') && !e.contains('>') && !e.contains('"') && !e.contains('\''));
        assert_eq!(
            e,
            "&lt;script&gt;alert(&quot;x&quot;)&lt;/script&gt;&#39; onload=&#39;y&#39; &amp;amp;"
        );
        let h = href("/items/x", &[("q", "a&b=\"c\" <d>"), ("empty", "")]);
        assert_eq!(h, "/items/x?q=a%26b%3D%22c%22%20%3Cd%3E");
    }

    #[test]
    fn durations_read_well() {
        assert_eq!(duration(850_000), "850 ms");
        assert_eq!(duration(12_400_000), "12.4 s");
        assert_eq!(duration(185_000_000), "3 min 05 s");
        assert_eq!(duration(7_800_000_000), "2 h 10 min");
    }
}
