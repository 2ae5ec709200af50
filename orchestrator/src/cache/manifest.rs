//! The manifest, in grokmirror's format: `manifest.js.gz`, a gzipped JSON
//! object mapping each repository path (`/name.git`) to its `modified` time
//! (epoch of the newest commit), `fingerprint` (sha1 of the `git show-ref`
//! listing), `head`, `description` and `owner`. A grokmirror client can
//! follow a Ferrotron cache and the other way round.
//!
//! It is written to a temporary file in the same folder and renamed over the
//! old one, so a reader (the HTTP server, a follower) never sees half of it.
//! The file is public (0644, as grokmirror's): its `origin`s are written
//! without credentials, and the full URLs of those that have any are kept
//! in the owner's private file beside it ([`super::origin::Private`]).
//! [`Manifest::load`] puts them back, so in memory an entry's `origin` is
//! the URL the sync uses.

use std::collections::BTreeMap;
use std::io::{Read, Write};
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};
use sha1::{Digest, Sha1};

use super::origin::{public_url, OriginError, Private};

#[derive(Debug, thiserror::Error)]
pub enum ManifestError {
    #[error("cannot read manifest {path}")]
    Read {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("manifest {path} is not a grokmirror manifest")]
    Parse {
        path: String,
        #[source]
        source: serde_json::Error,
    },
    #[error("cannot write manifest {path}")]
    Write {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error(transparent)]
    Origins(#[from] OriginError),
}

/// One repository's entry, with grokmirror's field names.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Entry {
    /// Epoch seconds of the newest commit any ref points at.
    pub modified: i64,
    /// sha1 of the `git show-ref` listing; `None` for a repository with no
    /// refs (grokmirror writes null too).
    pub fingerprint: Option<String>,
    /// `ref: refs/heads/main`.
    #[serde(default)]
    pub head: Option<String>,
    #[serde(default)]
    pub description: Option<String>,
    #[serde(default)]
    pub owner: Option<String>,
    /// Where the mirror fetches from. Not a grokmirror field; grokmirror
    /// ignores unknown keys and so does a follower of ours. In the file,
    /// without credentials ([`public_url`]); in memory, after
    /// [`Manifest::load`], the full URL.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub origin: Option<String>,
}

/// Path (`/name.git`) → entry, sorted so the file is stable.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(transparent)]
pub struct Manifest {
    pub repos: BTreeMap<String, Entry>,
}

impl Manifest {
    /// Reads `path`, with the full origins from the private file beside it
    /// (an entry whose public origin no longer matches its private one
    /// keeps the public one: the manifest was changed since); a missing
    /// file is an empty manifest (a new cache).
    pub fn load(path: &Path) -> Result<Manifest, ManifestError> {
        let mut m = Manifest::load_public(path)?;
        if m.repos.is_empty() {
            return Ok(m);
        }
        let private = Private::load(path)?;
        for (k, e) in &mut m.repos {
            if let (Some(full), Some(shown)) = (private.origins.get(k), e.origin.as_deref()) {
                if public_url(full) == shown {
                    e.origin = Some(full.clone());
                }
            }
        }
        Ok(m)
    }

    /// Reads `path` as anyone may see it (origins without credentials).
    pub fn load_public(path: &Path) -> Result<Manifest, ManifestError> {
        let bytes = match std::fs::read(path) {
            Ok(b) => b,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(Manifest::default()),
            Err(source) => {
                return Err(ManifestError::Read {
                    path: path.to_path_buf(),
                    source,
                })
            }
        };
        Manifest::from_gz(&bytes, &path.display().to_string())
    }

    /// Parses a gzipped manifest (or a plain one: grokmirror accepts both).
    pub fn from_gz(bytes: &[u8], origin: &str) -> Result<Manifest, ManifestError> {
        let mut json = Vec::new();
        let plain = if bytes.starts_with(&[0x1f, 0x8b]) {
            flate2::read::GzDecoder::new(bytes)
                .read_to_end(&mut json)
                .map_err(|source| ManifestError::Read {
                    path: origin.into(),
                    source,
                })?;
            &json[..]
        } else {
            bytes
        };
        serde_json::from_slice(plain).map_err(|source| ManifestError::Parse {
            path: origin.to_string(),
            source,
        })
    }

    /// The manifest as grokmirror's gzipped JSON.
    pub fn to_gz(&self) -> std::io::Result<Vec<u8>> {
        let json = serde_json::to_vec_pretty(self)?;
        let mut gz = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::default());
        gz.write_all(&json)?;
        gz.finish()
    }

    /// The manifest as anyone may see it: origins without credentials.
    pub fn public(mut self) -> Manifest {
        for e in self.repos.values_mut() {
            e.origin = e.origin.as_deref().map(public_url);
        }
        self
    }

    /// Writes the manifest atomically: the private origins first (0600),
    /// then the public manifest to a temp file (0644, as grokmirror's),
    /// fsync, rename.
    pub fn save(&self, path: &Path) -> Result<(), ManifestError> {
        use std::os::unix::fs::PermissionsExt;
        let err = |source| ManifestError::Write {
            path: path.to_path_buf(),
            source,
        };
        let dir = path.parent().unwrap_or(Path::new("."));
        std::fs::create_dir_all(dir).map_err(err)?;
        let private = Private {
            origins: self
                .repos
                .iter()
                .filter_map(|(k, e)| {
                    let o = e.origin.as_deref()?;
                    (public_url(o) != o).then(|| (k.clone(), o.to_string()))
                })
                .collect(),
        };
        private.save(path)?;
        let mut tmp = tempfile::NamedTempFile::new_in(dir).map_err(err)?;
        tmp.as_file_mut()
            .write_all(&self.clone().public().to_gz().map_err(err)?)
            .map_err(err)?;
        tmp.as_file()
            .set_permissions(std::fs::Permissions::from_mode(0o644))
            .map_err(err)?;
        tmp.as_file().sync_all().map_err(err)?;
        tmp.persist(path).map_err(|e| err(e.error))?;
        Ok(())
    }
}

/// grokmirror's fingerprint: the sha1 of what `git show-ref` prints
/// (`<sha> <refname>` per ref, sorted by name), final newline included, as
/// grokmirror 2.0.12 hashes it. `None` without refs.
pub fn fingerprint<'a>(refs: impl IntoIterator<Item = (&'a str, &'a str)>) -> Option<String> {
    let mut refs: Vec<(&str, &str)> = refs.into_iter().collect();
    if refs.is_empty() {
        return None;
    }
    refs.sort_by(|a, b| a.0.cmp(b.0));
    let listing = refs
        .iter()
        .map(|(name, sha)| format!("{sha} {name}\n"))
        .collect::<String>();
    Some(hex::encode(Sha1::digest(listing.as_bytes())))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trips_through_gzip_atomically() {
        let dir = tempfile::tempdir().expect("in test");
        let p = dir.path().join("manifest.js.gz");
        let mut m = Manifest::default();
        m.repos.insert(
            "/a.git".into(),
            Entry {
                modified: 1,
                fingerprint: Some("x".into()),
                head: Some("ref: refs/heads/main".into()),
                description: None,
                owner: None,
                origin: None,
            },
        );
        m.save(&p).expect("in test");
        assert_eq!(Manifest::load(&p).expect("in test"), m);
        // Only the manifest is left: no temp file.
        assert_eq!(std::fs::read_dir(dir.path()).expect("in test").count(), 1);
    }

    #[test]
    fn the_file_is_public_and_the_credentials_stay_private() {
        use std::os::unix::fs::PermissionsExt;
        let dir = tempfile::tempdir().expect("in test");
        let p = dir.path().join("manifest.js.gz");
        let full = "https://robot:s3cret@host/a.git?private_token=t0ken";
        let mut m = Manifest::default();
        m.repos.insert(
            "/a.git".into(),
            Entry {
                modified: 1,
                fingerprint: None,
                head: None,
                description: None,
                owner: None,
                origin: Some(full.into()),
            },
        );
        m.save(&p).expect("in test");
        let mode = |f: &Path| std::fs::metadata(f).expect("in test").permissions().mode() & 0o777;
        assert_eq!(mode(&p), 0o644);
        assert_eq!(mode(&Private::path(&p)), 0o600);
        let mut gz = Vec::new();
        flate2::read::GzDecoder::new(&std::fs::read(&p).expect("in test")[..])
            .read_to_end(&mut gz)
            .expect("in test");
        let text = String::from_utf8(gz).expect("in test");
        assert!(
            !text.contains("s3cret") && !text.contains("t0ken"),
            "{text}"
        );
        assert!(text.contains("https://host/a.git"), "{text}");
        // In memory, the sync's URL again.
        assert_eq!(Manifest::load(&p).expect("in test"), m);
        let public = Manifest::load_public(&p).expect("in test");
        assert_eq!(
            public.repos["/a.git"].origin.as_deref(),
            Some("https://host/a.git")
        );
        // A manifest changed by hand (another origin): the private URL of
        // the old one is not put back.
        let mut other = public.clone();
        other.repos.get_mut("/a.git").expect("in test").origin = Some("https://other/a.git".into());
        std::fs::write(&p, other.to_gz().expect("in test")).expect("in test");
        assert_eq!(
            Manifest::load(&p).expect("in test").repos["/a.git"]
                .origin
                .as_deref(),
            Some("https://other/a.git")
        );
    }

    #[test]
    fn fingerprint_is_sha1_of_show_ref() {
        // printf '1111 refs/heads/a\n2222 refs/tags/b\n' | sha1sum: the
        // listing as `git show-ref` prints it, final newline included, as
        // grokmirror hashes it.
        let f = fingerprint([("refs/tags/b", "2222"), ("refs/heads/a", "1111")]).expect("in test");
        assert_eq!(f, "b8ede5ec4003d367a5f904ad301fafe71e6ea14a");
        assert_eq!(fingerprint([]), None);
    }
}
