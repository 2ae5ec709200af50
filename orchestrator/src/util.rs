//! Small helpers with no better home.

/// Current UTC time as RFC 3339 (`2026-11-25T08:15:00.123Z`).
pub fn now_rfc3339() -> String {
    time::OffsetDateTime::now_utc()
        .format(&time::format_description::well_known::Rfc3339)
        .unwrap_or_default()
}

/// An error's sources after the top one, joined with ": ".
pub fn chain(e: &(dyn std::error::Error + 'static)) -> String {
    let mut parts = Vec::new();
    let mut cur = e.source();
    while let Some(s) = cur {
        parts.push(s.to_string());
        cur = s.source();
    }
    parts.join(": ")
}

/// An error and all its sources on one line.
pub fn full(e: &(dyn std::error::Error + 'static)) -> String {
    let rest = chain(e);
    if rest.is_empty() {
        e.to_string()
    } else {
        format!("{e}: {rest}")
    }
}

/// A URL with its credentials hidden, for anything shown or logged: the
/// password of `user:password@` becomes `***`, and so does a lone user of
/// an `http(s)://` URL (where it is usually a token). Other text is
/// returned as it is.
pub fn redact_url(url: &str) -> String {
    let Some(s) = url.find("://") else {
        return url.to_string();
    };
    let rest = &url[s + 3..];
    let authority_end = rest.find(['/', '?', '#']).unwrap_or(rest.len());
    let Some(at) = rest[..authority_end].rfind('@') else {
        return url.to_string();
    };
    let creds = &rest[..at];
    let scheme = &url[..s];
    let shown = match creds.split_once(':') {
        Some((user, _)) => format!("{user}:***"),
        None if scheme.eq_ignore_ascii_case("http") || scheme.eq_ignore_ascii_case("https") => {
            "***".to_string()
        }
        None => creds.to_string(),
    };
    format!("{scheme}://{shown}{}", &rest[at..])
}

/// Quotes a string for a POSIX shell (single quotes, `'` escaped).
pub fn shell_quote(s: &str) -> String {
    if !s.is_empty()
        && s.chars()
            .all(|c| c.is_ascii_alphanumeric() || "-_./=:@%+,".contains(c))
    {
        return s.to_string();
    }
    format!("'{}'", s.replace('\'', r"'\''"))
}

/// One URL path segment, percent-encoded (RFC 3986 unreserved kept).
pub fn url_segment(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for b in s.bytes() {
        if b.is_ascii_alphanumeric() || matches!(b, b'-' | b'.' | b'_' | b'~') {
            out.push(char::from(b));
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    out
}

/// A duration that is not `N`, `Ns`, `Nm`, `Nh` or `Nd`.
#[derive(Debug, thiserror::Error)]
pub enum DurationError {
    #[error("`{0}` is not a duration like 90s, 30m or 2h")]
    NotANumber(String),
    #[error("`{0}`: unknown unit `{1}` (use s, m, h or d)")]
    Unit(String, String),
}

/// `90`, `90s`, `30m`, `2h`, `1d`.
pub fn parse_duration(s: &str) -> Result<std::time::Duration, DurationError> {
    let (num, unit) = s.split_at(s.find(|c: char| !c.is_ascii_digit()).unwrap_or(s.len()));
    let n: u64 = num
        .parse()
        .map_err(|_| DurationError::NotANumber(s.to_string()))?;
    let mult = match unit {
        "" | "s" => 1,
        "m" => 60,
        "h" => 3600,
        "d" => 86400,
        _ => return Err(DurationError::Unit(s.to_string(), unit.to_string())),
    };
    Ok(std::time::Duration::from_secs(n.saturating_mul(mult)))
}

/// Seconds with two decimals, for progress lines.
pub fn secs(d: std::time::Duration) -> String {
    format!("{:.2} s", d.as_secs_f64())
}

/// Hex sha256 of a file's content.
pub fn sha256_file(path: &std::path::Path) -> std::io::Result<String> {
    use sha2::{Digest, Sha256};
    let mut f = std::fs::File::open(path)?;
    let mut h = Sha256::new();
    std::io::copy(&mut f, &mut h)?;
    Ok(hex::encode(h.finalize()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn redacts_credentials_in_urls() {
        for (url, shown) in [
            (
                "postgres://u:secret@localhost/db",
                "postgres://u:***@localhost/db",
            ),
            (
                "amqp://guest:secret@127.0.0.1:5672/%2f",
                "amqp://guest:***@127.0.0.1:5672/%2f",
            ),
            (
                "https://ghp_TOKEN@github.com/a/b.git",
                "https://***@github.com/a/b.git",
            ),
            ("https://u:p@x@host/r.git", "https://u:***@host/r.git"),
            ("qemu+ssh://root@host/system", "qemu+ssh://root@host/system"),
            ("https://host/a@b", "https://host/a@b"),
            ("sqlite:///x/y.db", "sqlite:///x/y.db"),
            ("not a url", "not a url"),
        ] {
            assert_eq!(redact_url(url), shown, "{url}");
        }
    }

    #[test]
    fn quotes_for_the_shell() {
        assert_eq!(shell_quote("abc-1.0"), "abc-1.0");
        assert_eq!(shell_quote("it's $(x)"), r"'it'\''s $(x)'");
        assert_eq!(shell_quote(""), "''");
    }
}

/// Makes the folder `path` (and its parents) if it is missing, giving the
/// folder itself `mode` whatever the umask; an existing folder keeps the
/// mode its owner gave it.
pub fn make_dir(path: &std::path::Path, mode: u32) -> std::io::Result<()> {
    use std::os::unix::fs::{DirBuilderExt, PermissionsExt};
    if path.is_dir() {
        return Ok(());
    }
    if let Some(parent) = path.parent().filter(|p| !p.as_os_str().is_empty()) {
        std::fs::create_dir_all(parent)?;
    }
    match std::fs::DirBuilder::new().mode(mode).create(path) {
        Ok(()) => std::fs::set_permissions(path, std::fs::Permissions::from_mode(mode)),
        // Made by another process meanwhile: theirs.
        Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists && path.is_dir() => Ok(()),
        Err(e) => Err(e),
    }
}

/// The modes of the folders Ferrotron makes in its data folder: the data
/// folder itself can be passed through (QEMU, running as libvirt's user,
/// opens the VM disks and consoles below it) but not listed; artifacts, the
/// git cache and the database are the owner's only.
pub mod modes {
    pub const DATA_DIR: u32 = 0o711;
    pub const PRIVATE_DIR: u32 = 0o700;
    pub const PRIVATE_FILE: u32 = 0o600;
}
