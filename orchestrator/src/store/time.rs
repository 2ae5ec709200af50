//! Times as stored (microseconds since the epoch, UTC) and as ResultsDB
//! shows and accepts them.

use ::time::format_description::well_known::Rfc3339;
use ::time::macros::format_description;
use ::time::{Date, OffsetDateTime, PrimitiveDateTime};

pub fn now_micros() -> i64 {
    micros(OffsetDateTime::now_utc())
}

fn micros(t: OffsetDateTime) -> i64 {
    i64::try_from(t.unix_timestamp_nanos() / 1000).unwrap_or(i64::MAX)
}

/// ResultsDB's format: `2024-01-31T12:00:00.000000` (UTC, no zone).
pub fn format_time(us: i64) -> String {
    let fmt =
        format_description!("[year]-[month]-[day]T[hour]:[minute]:[second].[subsecond digits:6]");
    OffsetDateTime::from_unix_timestamp_nanos(i128::from(us) * 1000)
        .ok()
        .and_then(|t| t.format(&fmt).ok())
        .unwrap_or_default()
}

/// Parses what ResultsDB clients send: `2024-01-01`, `2024-01-01T10:00`,
/// `2024-01-01T10:00:00[.ffffff]`, optionally with `Z` or an offset; a
/// time without a zone is UTC.
pub fn parse_time(s: &str) -> Option<i64> {
    let s = s.trim();
    if let Ok(t) = OffsetDateTime::parse(s, &Rfc3339) {
        return Some(micros(t));
    }
    // Offsets as Python's `%z` and ResultsDB's `+00` take them: `+0000`,
    // `-0530`, `+00`.
    if let Some(at) = s.rfind(['+', '-']).filter(|&i| s[..i].contains('T')) {
        let (head, off) = s.split_at(at);
        let digits = &off[1..];
        if digits.bytes().all(|b| b.is_ascii_digit()) {
            let fixed = match digits.len() {
                2 => Some(format!("{head}{off}:00")),
                4 => Some(format!("{head}{}:{}", &off[..3], &off[3..])),
                _ => None,
            };
            if let Some(t) = fixed.and_then(|f| OffsetDateTime::parse(&f, &Rfc3339).ok()) {
                return Some(micros(t));
            }
        }
    }
    let naive = s.strip_suffix('Z').unwrap_or(s).replace(' ', "T");
    let with_frac =
        format_description!("[year]-[month]-[day]T[hour]:[minute]:[second].[subsecond]");
    let secs = format_description!("[year]-[month]-[day]T[hour]:[minute]:[second]");
    let mins = format_description!("[year]-[month]-[day]T[hour]:[minute]");
    for fmt in [with_frac, secs, mins] {
        if let Ok(t) = PrimitiveDateTime::parse(&naive, &fmt) {
            return Some(micros(t.assume_utc()));
        }
    }
    let day = format_description!("[year]-[month]-[day]");
    Date::parse(&naive, &day)
        .ok()
        .map(|d| micros(d.midnight().assume_utc()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trip_and_forms() {
        let t = parse_time("2024-01-31T12:00:00.250000").expect("parses");
        assert_eq!(format_time(t), "2024-01-31T12:00:00.250000");
        assert_eq!(
            parse_time("2024-01-31T12:00:00Z"),
            parse_time("2024-01-31T12:00:00")
        );
        assert_eq!(
            parse_time("2024-01-31T14:00:00+02:00"),
            parse_time("2024-01-31T12:00")
        );
        assert_eq!(parse_time("2024-01-31"), parse_time("2024-01-31T00:00:00"));
        // Python's %z and ResultsDB's `+00`.
        for form in [
            "2024-01-31T12:00:00.000000+0000",
            "2024-01-31T12:00:00.000000+00",
            "2024-01-31T14:00:00.000000+0200",
            "2024-01-31T06:30:00-0530",
        ] {
            assert_eq!(parse_time(form), parse_time("2024-01-31T12:00"), "{form}");
        }
        assert_eq!(parse_time("2024-01-31T12:00:00+000"), None);
        assert_eq!(parse_time("yesterday"), None);
        assert_eq!(parse_time("2024-13-01"), None);
    }
}
