//! Origin URLs and their secrets. An origin may carry credentials
//! (`https://user:token@host/x.git`, `?private_token=...`); the sync needs
//! them, nobody else may see them. Everything the cache publishes or shows
//! (the manifest file and what is served of it, API answers, logs, CLI
//! output, errors) uses [`public_url`]; the full URLs of the origins that
//! have credentials are kept apart, in a file only the owner reads
//! ([`Private`], `<cache>/.origins.json`, mode 0600), and in each mirror's
//! own `config` (0600).

use std::collections::BTreeMap;
use std::io::Write;
use std::path::{Path, PathBuf};

/// Query parameters whose name contains one of these are taken for
/// credentials and left out of a published URL.
const SECRET_PARAMS: &[&str] = &[
    "token",
    "secret",
    "passw",
    "pwd",
    "auth",
    "key",
    "sig",
    "credential",
    "session",
];

/// Schemes whose user name is a login, not a secret (`ssh://git@host/x`).
const LOGIN_SCHEMES: &[&str] = &["ssh", "git+ssh", "ssh+git"];

/// `url` as it may be published: no user information (an `ssh://` URL
/// keeps its login name, never a password) and no query parameter that
/// looks like a credential. A local path or an scp-like `git@host:x` is
/// returned as it is.
pub fn public_url(url: &str) -> String {
    let Some(s) = url.find("://") else {
        return url.to_string();
    };
    let scheme = &url[..s];
    let rest = &url[s + 3..];
    let authority_end = rest.find(['/', '?', '#']).unwrap_or(rest.len());
    let (userinfo, host_and_path) = match rest[..authority_end].rfind('@') {
        Some(at) => (Some(&rest[..at]), &rest[at + 1..]),
        None => (None, rest),
    };
    let mut out = format!("{scheme}://");
    if let Some(info) = userinfo {
        if LOGIN_SCHEMES.iter().any(|l| scheme.eq_ignore_ascii_case(l)) {
            let user = info.split(':').next().unwrap_or_default();
            if !user.is_empty() {
                out.push_str(user);
                out.push('@');
            }
        }
    }
    let (before_fragment, fragment) = match host_and_path.split_once('#') {
        Some((b, f)) => (b, Some(f)),
        None => (host_and_path, None),
    };
    match before_fragment.split_once('?') {
        Some((path, query)) => {
            out.push_str(path);
            let kept: Vec<&str> = query
                .split('&')
                .filter(|kv| {
                    let name = kv
                        .split('=')
                        .next()
                        .unwrap_or_default()
                        .to_ascii_lowercase();
                    !kv.is_empty() && !SECRET_PARAMS.iter().any(|s| name.contains(s))
                })
                .collect();
            if !kept.is_empty() {
                out.push('?');
                out.push_str(&kept.join("&"));
            }
        }
        None => out.push_str(before_fragment),
    }
    if let Some(f) = fragment {
        out.push('#');
        out.push_str(f);
    }
    out
}

/// Whether `url` has anything [`public_url`] hides.
pub fn has_secrets(url: &str) -> bool {
    public_url(url) != url
}

/// `text` (an error message of libgit2 or HTTP, say) with `url`'s secrets
/// replaced by its public form.
pub fn scrub(text: &str, url: &str) -> String {
    if !has_secrets(url) {
        return text.to_string();
    }
    let mut out = text.replace(url, &public_url(url));
    // The user information alone, wherever it shows.
    if let Some(s) = url.find("://") {
        let rest = &url[s + 3..];
        let end = rest.find(['/', '?', '#']).unwrap_or(rest.len());
        if let Some(at) = rest[..end].rfind('@') {
            let info = &rest[..at];
            // A password alone only when it is long enough not to be
            // found in any word (a one-letter one would blank the text).
            for secret in [info, info.split_once(':').map_or("", |(_, p)| p)] {
                if secret.len() >= 4 {
                    out = out.replace(secret, "***");
                }
            }
        }
    }
    out
}

#[derive(Debug, thiserror::Error)]
pub enum OriginError {
    #[error("cannot read the private origins file {path}")]
    Read {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("the private origins file {path} is not a JSON object of paths to URLs")]
    Parse {
        path: PathBuf,
        #[source]
        source: serde_json::Error,
    },
    #[error("cannot write the private origins file {path}")]
    Write {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
}

/// The full URLs of the origins that have secrets, by repository path:
/// `.origins.json` beside the manifest, readable by the owner only.
#[derive(Debug, Default, PartialEq)]
pub struct Private {
    pub origins: BTreeMap<String, String>,
}

impl Private {
    /// Where it lives for the manifest at `manifest`.
    pub fn path(manifest: &Path) -> PathBuf {
        manifest.with_file_name(".origins.json")
    }

    /// Reads it; missing is empty.
    pub fn load(manifest: &Path) -> Result<Private, OriginError> {
        let path = Private::path(manifest);
        let bytes = match std::fs::read(&path) {
            Ok(b) => b,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(Private::default()),
            Err(source) => return Err(OriginError::Read { path, source }),
        };
        let origins =
            serde_json::from_slice(&bytes).map_err(|source| OriginError::Parse { path, source })?;
        Ok(Private { origins })
    }

    /// Writes it atomically, mode 0600; with nothing in it, removes it.
    pub fn save(&self, manifest: &Path) -> Result<(), OriginError> {
        let path = Private::path(manifest);
        let err = |source| OriginError::Write {
            path: path.clone(),
            source,
        };
        if self.origins.is_empty() {
            return match std::fs::remove_file(&path) {
                Err(e) if e.kind() != std::io::ErrorKind::NotFound => Err(err(e)),
                _ => Ok(()),
            };
        }
        let dir = path.parent().unwrap_or(Path::new("."));
        // NamedTempFile is created 0600 and stays so.
        let mut tmp = tempfile::NamedTempFile::new_in(dir).map_err(err)?;
        let json = serde_json::to_vec_pretty(&self.origins).map_err(|e| err(e.into()))?;
        tmp.as_file_mut().write_all(&json).map_err(err)?;
        tmp.as_file().sync_all().map_err(err)?;
        tmp.persist(&path).map_err(|e| err(e.error))?;
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn public_urls_carry_no_credentials() {
        for (url, shown) in [
            ("https://robot:s3cret@host/x.git", "https://host/x.git"),
            (
                "https://ghp_TOKEN@github.com/a/b.git",
                "https://github.com/a/b.git",
            ),
            (
                "http://u:p@x@127.0.0.1:80/r.git",
                "http://127.0.0.1:80/r.git",
            ),
            (
                "https://host/r.git?private_token=abc&ref=main",
                "https://host/r.git?ref=main",
            ),
            (
                "https://host/r.git?access_token=abc#frag",
                "https://host/r.git#frag",
            ),
            ("https://host/r.git?X-Amz-Signature=1", "https://host/r.git"),
            ("ssh://git:pw@host/r.git", "ssh://git@host/r.git"),
            ("ssh://git@host/r.git", "ssh://git@host/r.git"),
            ("git@host:r.git", "git@host:r.git"),
            ("/srv/git/r", "/srv/git/r"),
            ("file:///srv/git/r", "file:///srv/git/r"),
            ("https://host/a@b", "https://host/a@b"),
        ] {
            assert_eq!(public_url(url), shown, "{url}");
        }
        assert!(has_secrets("https://a:b@h/x"));
        assert!(!has_secrets("https://h/x"));
    }

    #[test]
    fn scrub_hides_the_url_and_its_user_information() {
        let url = "https://robot:s3cret@host/x.git";
        let said = format!("failed to fetch {url}: auth robot:s3cret refused; s3cret");
        let clean = scrub(&said, url);
        assert!(!clean.contains("s3cret"), "{clean}");
        assert!(clean.contains("https://host/x.git"), "{clean}");
    }

    #[test]
    fn the_private_file_is_the_owners_and_goes_when_empty() {
        use std::os::unix::fs::PermissionsExt;
        let dir = tempfile::tempdir().expect("in test");
        let m = dir.path().join("manifest.js.gz");
        let mut p = Private::default();
        p.origins
            .insert("/a.git".into(), "https://u:t@h/a.git".into());
        p.save(&m).expect("in test");
        let mode = std::fs::metadata(Private::path(&m))
            .expect("in test")
            .permissions()
            .mode();
        assert_eq!(mode & 0o777, 0o600);
        assert_eq!(Private::load(&m).expect("in test"), p);
        Private::default().save(&m).expect("in test");
        assert!(!Private::path(&m).exists());
    }
}
