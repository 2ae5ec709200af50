//! `manifest.json`: what an image contains and how to boot it.

use std::collections::BTreeMap;
use std::io::Read;
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

/// Current manifest format.
pub const MANIFEST_FORMAT: u32 = 1;
/// File name of the manifest inside an image folder.
pub const MANIFEST_FILE: &str = "manifest.json";

/// Errors reading or writing manifests.
#[derive(Debug, thiserror::Error)]
pub enum ManifestError {
    #[error("cannot read {path}: {source}")]
    Read {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("cannot write {path}: {source}")]
    Write {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("{path}: invalid manifest: {source}")]
    Parse {
        path: PathBuf,
        #[source]
        source: serde_json::Error,
    },
    #[error(
        "{path}: unsupported manifest format {found} (this build reads format {MANIFEST_FORMAT})"
    )]
    Format { path: PathBuf, found: u32 },
}

/// Checksum and size of one image file.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct FileEntry {
    pub sha256: String,
    pub size: u64,
}

/// A Debian package that went into the image.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct PackageEntry {
    pub name: String,
    pub version: String,
}

/// The guest agent baked into the image.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct AgentInfo {
    pub version: String,
    pub sha256: String,
}

/// Where a guest's kernel comes from.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum BootSource {
    /// Direct kernel boot: the image's `kernel` and `initrd` with
    /// `cmdline` (images built by this crate).
    #[default]
    Kernel,
    /// The disk's own boot loader and kernel (imported cloud images),
    /// configured at first boot by cloud-init from a NoCloud seed.
    Disk,
}

/// The firmware a [`BootSource::Disk`] image's boot loader needs.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Firmware {
    /// SeaBIOS (a boot loader in the MBR or a BIOS boot partition).
    #[default]
    Bios,
    /// OVMF (an EFI system partition).
    Uefi,
}

/// The user jobs log in as when none is named: root.
pub const ROOT_USER: &str = "root";

fn root_user() -> String {
    ROOT_USER.to_string()
}

fn is_root_user(u: &str) -> bool {
    u == ROOT_USER
}

/// How to boot the image. File names are relative to the image folder.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct BootSettings {
    /// `kernel` (the default, absent in older manifests) or `disk`.
    #[serde(default)]
    pub source: BootSource,
    /// For `source: disk`: `bios` (default) or `uefi`.
    #[serde(default)]
    pub firmware: Firmware,
    /// The user the job's key logs in as. Anyone but root runs the agent
    /// through passwordless `sudo`.
    #[serde(default = "root_user", skip_serializing_if = "is_root_user")]
    pub user: String,
    /// Empty for `source: disk`.
    #[serde(default)]
    pub kernel: String,
    /// Empty for `source: disk`.
    #[serde(default)]
    pub initrd: String,
    pub disk: String,
    /// Base kernel command line; the orchestrator appends `ferrotron.key=...`
    /// (and the user's `--kernel-arg`s, e.g. `ferrotron.net=off`).
    pub cmdline: String,
    pub memory_mib: u32,
    pub vcpus: u32,
    pub ssh_timeout_secs: u32,
    /// The guest supports `ferrotron.key=wait` (warm-start templates, see
    /// docs/images.md). Absent in manifests of older images.
    #[serde(default)]
    pub warm_start: bool,
}

/// How a guest of the image installs packages at job time
/// (`environment.rpm` / `environment.packages`): absent for an image that
/// cannot (`tiny`). The guest's package manager reaches the repositories
/// only through the job's package proxy, on the guest's
/// `127.0.0.1:`[`crate::guest::PACKAGE_PROXY_PORT`], which forwards to
/// these repositories and nothing else.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct PackageInstall {
    /// The guest's package manager: `apt`.
    pub manager: String,
    /// Base URLs of the repositories the guest's package manager reads
    /// (`http://deb.debian.org/debian`), as its sources name them.
    pub repositories: Vec<String>,
    /// RPM package names (`environment.rpm`) mapped to this image's names.
    #[serde(default)]
    pub rpm_names: BTreeMap<String, String>,
    /// A file of the image folder (listed in `files`): every package name
    /// the repositories offered at build time, real and virtual
    /// (`Provides`), one per line, sorted.
    pub available: String,
}

/// What `ferrotron image import` was given, as checked.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ImportInfo {
    /// The file's name (without its folder).
    pub source: String,
    /// sha256 and size of the file as given.
    pub sha256: String,
    pub size: u64,
    /// Its format as `qemu-img info` reported it (`qcow2` or `raw`).
    pub format: String,
    /// Size of the disk the guest sees.
    pub virtual_size: u64,
}

/// The content of `manifest.json`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Manifest {
    pub format: u32,
    pub name: String,
    pub version: String,
    /// RFC 3339, UTC.
    pub created: String,
    pub description: String,
    pub files: BTreeMap<String, FileEntry>,
    pub packages: Vec<PackageEntry>,
    pub kernel_release: String,
    pub agent: AgentInfo,
    pub boot: BootSettings,
    /// Where an imported image came from; absent for built images.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub import: Option<ImportInfo>,
    /// Package installation at job time; absent when the image has none.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub install: Option<PackageInstall>,
    pub recipe_sha256: String,
    pub builder: String,
}

impl Manifest {
    /// Reads `<dir>/manifest.json`.
    pub fn load(dir: &Path) -> Result<Manifest, ManifestError> {
        let path = dir.join(MANIFEST_FILE);
        let text = std::fs::read_to_string(&path).map_err(|source| ManifestError::Read {
            path: path.clone(),
            source,
        })?;
        let m: Manifest = serde_json::from_str(&text).map_err(|source| ManifestError::Parse {
            path: path.clone(),
            source,
        })?;
        if m.format != MANIFEST_FORMAT {
            return Err(ManifestError::Format {
                path,
                found: m.format,
            });
        }
        Ok(m)
    }

    /// Writes `<dir>/manifest.json` (pretty-printed).
    pub fn save(&self, dir: &Path) -> Result<(), ManifestError> {
        let path = dir.join(MANIFEST_FILE);
        let mut text =
            serde_json::to_string_pretty(self).map_err(|source| ManifestError::Parse {
                path: path.clone(),
                source,
            })?;
        text.push('\n');
        // The file may already be read-only from an earlier attempt.
        let _ = std::fs::remove_file(&path);
        std::fs::write(&path, text).map_err(|source| ManifestError::Write { path, source })
    }
}

/// SHA-256 and size of a file.
pub fn hash_file(path: &Path) -> Result<FileEntry, std::io::Error> {
    let mut f = std::fs::File::open(path)?;
    let mut h = Sha256::new();
    let mut buf = vec![0u8; 1 << 16];
    let mut size = 0u64;
    loop {
        let n = f.read(&mut buf)?;
        if n == 0 {
            break;
        }
        size += n as u64;
        h.update(&buf[..n]);
    }
    Ok(FileEntry {
        sha256: hex::encode(h.finalize()),
        size,
    })
}
