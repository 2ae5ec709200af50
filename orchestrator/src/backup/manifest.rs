//! `backup.json`: what a backup holds, every file with its checksum.

use std::path::{Component, Path, PathBuf};

use serde::{Deserialize, Serialize};

/// The manifest's file name inside a backup.
pub const MANIFEST: &str = "backup.json";
/// The layout version this Ferrotron writes and reads.
pub const FORMAT: u32 = 1;

#[derive(Debug, thiserror::Error)]
pub enum ManifestError {
    #[error("cannot read {path}")]
    Read {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("{path} is not a Ferrotron backup manifest")]
    Parse {
        path: PathBuf,
        #[source]
        source: serde_path_to_error::Error<serde_json::Error>,
    },
    #[error("{path}: format {found} is not one this Ferrotron reads ({FORMAT})")]
    Format { path: PathBuf, found: u32 },
    #[error("{path}: files[{index}].path `{entry}` is not a relative path inside the backup")]
    BadPath {
        path: PathBuf,
        index: usize,
        entry: String,
    },
    #[error("{path}: files[{index}] (`{entry}`): restore_to must be an absolute path")]
    BadTarget {
        path: PathBuf,
        index: usize,
        entry: String,
    },
    #[error("{path}: database.file `{file}` is not listed in files")]
    NoDatabase { path: PathBuf, file: String },
}

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Manifest {
    pub format: u32,
    pub ferrotron_version: String,
    /// RFC 3339, UTC.
    pub created_at: String,
    /// The host it was taken on.
    pub host: String,
    pub database: DatabaseCopy,
    /// Jobs and results in the database copy.
    pub jobs: i64,
    pub results: i64,
    /// Whether `images/` holds whole images or only their manifests.
    pub images_included: bool,
    /// `name:version` of every image the installation had.
    pub images: Vec<String>,
    /// The repositories the git cache mirrored (cloned again after a
    /// restore by `ferrotron cache fsck`).
    pub cache_repos: Vec<String>,
    pub files: Vec<Entry>,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct DatabaseCopy {
    /// `sqlite` or `postgres`.
    pub backend: String,
    /// How the copy was made (`VACUUM INTO`, `pg_dump --format=custom`).
    pub method: String,
    /// Its path among `files`.
    pub file: String,
}

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
#[serde(deny_unknown_fields)]
pub struct Entry {
    /// Inside the backup, `/`-separated, relative.
    pub path: String,
    pub size: u64,
    pub sha256: String,
    /// Unix permission bits.
    pub mode: u32,
    /// Configuration: where the file goes back.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub restore_to: Option<PathBuf>,
}

impl Manifest {
    /// Reads and checks `<dir>/backup.json`: every error names the file
    /// and, for a bad value, the field.
    pub fn load(dir: &Path) -> Result<Manifest, ManifestError> {
        let path = dir.join(MANIFEST);
        let text = std::fs::read(&path).map_err(|source| ManifestError::Read {
            path: path.clone(),
            source,
        })?;
        let mut de = serde_json::Deserializer::from_slice(&text);
        let m: Manifest =
            serde_path_to_error::deserialize(&mut de).map_err(|source| ManifestError::Parse {
                path: path.clone(),
                source,
            })?;
        if m.format != FORMAT {
            return Err(ManifestError::Format {
                path,
                found: m.format,
            });
        }
        for (index, e) in m.files.iter().enumerate() {
            if !is_inside(&e.path) {
                return Err(ManifestError::BadPath {
                    path,
                    index,
                    entry: e.path.clone(),
                });
            }
            if e.restore_to.as_ref().is_some_and(|t| !t.is_absolute()) {
                return Err(ManifestError::BadTarget {
                    path,
                    index,
                    entry: e.path.clone(),
                });
            }
        }
        if !m.files.iter().any(|e| e.path == m.database.file) {
            return Err(ManifestError::NoDatabase {
                path,
                file: m.database.file.clone(),
            });
        }
        Ok(m)
    }
}

/// A relative path of plain components only (no `..`, no root).
pub fn is_inside(p: &str) -> bool {
    !p.is_empty()
        && Path::new(p)
            .components()
            .all(|c| matches!(c, Component::Normal(_)))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn paths_must_stay_inside() {
        assert!(is_inside("data/jobs/a/runner.log"));
        for bad in ["", "/etc/passwd", "data/../../x", "./x", "a/../b"] {
            assert!(!is_inside(bad), "{bad}");
        }
    }

    #[test]
    fn a_bad_manifest_is_named_with_its_field() {
        let dir = tempfile::tempdir().expect("tmp");
        std::fs::write(dir.path().join(MANIFEST), r#"{"format": "one"}"#).expect("write");
        let e = Manifest::load(dir.path()).expect_err("bad");
        let text = crate::util::full(&e);
        assert!(
            text.contains("backup.json") && text.contains("format"),
            "{text}"
        );
    }
}
