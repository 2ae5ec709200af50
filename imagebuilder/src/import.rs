//! `ferrotron image import`: a distribution's cloud image (Fedora Cloud,
//! CentOS Stream, Debian genericcloud) published as a versioned, immutable
//! image that boots from its own disk, configured by cloud-init.
//!
//! The file is checked with `qemu-img info` (qcow2 without a backing file,
//! or raw with a partition table), staged under `<store>/.tmp/`, and
//! published by the store's one atomic rename: a failed import leaves
//! nothing in the store.

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Instant;

use time::OffsetDateTime;

use crate::builder::{BuildError, BuildEvent};
use crate::manifest::{
    hash_file, AgentInfo, BootSettings, BootSource, FileEntry, Firmware, ImportInfo, Manifest,
    MANIFEST_FORMAT,
};
use crate::store::{dir_size, valid_name, BuiltImage, ImageStore, StoreError};
use crate::tool::{self, ToolError};

/// File name of the imported disk inside the image folder.
pub const DISK_FILE: &str = "disk.qcow2";

/// Errors of an import; [`ImportError::is_bad_input`] tells the caller's
/// mistakes from the host's.
#[derive(Debug, thiserror::Error)]
pub enum ImportError {
    #[error("`{0}` is not an image name (use [a-z0-9][a-z0-9_-]*)")]
    BadName(String),
    #[error("`{0}` is not a user name (use [a-z_][a-z0-9_-]*, at most 32 characters)")]
    BadUser(String),
    #[error("cannot read {path}")]
    Source {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("{path} is not a regular file")]
    NotAFile { path: PathBuf },
    #[error("{path}: qemu-img cannot read it")]
    Inspect {
        path: PathBuf,
        #[source]
        source: ToolError,
    },
    #[error("{path}: unexpected answer from `qemu-img info`")]
    InspectOutput {
        path: PathBuf,
        #[source]
        source: serde_json::Error,
    },
    #[error("{path} is a {format} image; import takes qcow2 or raw disk images")]
    Format { path: PathBuf, format: String },
    #[error("{path} is not a disk image: it has no partition table (no MBR signature)")]
    NotADisk { path: PathBuf },
    #[error("{path} has a backing file ({backing}); import the whole image (`qemu-img convert -O qcow2`)")]
    Backing { path: PathBuf, backing: String },
    #[error("{path} is encrypted; import an unencrypted image")]
    Encrypted { path: PathBuf },
    #[error("{path} is already image {existing} (same sha256 {sha256})")]
    Duplicate {
        path: PathBuf,
        existing: String,
        sha256: String,
    },
    #[error("cannot stage {path} in the image store")]
    Stage {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("cannot convert {path} to qcow2")]
    Convert {
        path: PathBuf,
        #[source]
        source: ToolError,
    },
    #[error(transparent)]
    Store(#[from] StoreError),
    #[error("cannot publish the image")]
    Publish(#[source] BuildError),
}

impl ImportError {
    /// The file or the arguments are wrong (exit status 2), as opposed to
    /// the host failing.
    pub fn is_bad_input(&self) -> bool {
        matches!(
            self,
            ImportError::BadName(_)
                | ImportError::BadUser(_)
                | ImportError::Source { .. }
                | ImportError::NotAFile { .. }
                | ImportError::Inspect { .. }
                | ImportError::Format { .. }
                | ImportError::NotADisk { .. }
                | ImportError::Backing { .. }
                | ImportError::Encrypted { .. }
                | ImportError::Duplicate { .. }
        )
    }
}

/// What to import and how its guests boot.
#[derive(Debug, Clone)]
pub struct ImportRequest {
    pub name: String,
    pub file: PathBuf,
    /// The user the job's key logs in as (`root`, or a sudoer such as
    /// `fedora`).
    pub user: String,
    pub firmware: Firmware,
    pub memory_mib: u32,
    pub vcpus: u32,
    /// How long the first boot (cloud-init included) may take to SSH.
    pub ssh_timeout_secs: u32,
}

/// What `qemu-img info --output=json` says that matters here.
#[derive(Debug, serde::Deserialize)]
struct QemuImgInfo {
    format: String,
    #[serde(rename = "virtual-size")]
    virtual_size: u64,
    #[serde(rename = "backing-filename")]
    backing_filename: Option<String>,
    #[serde(default)]
    encrypted: bool,
}

/// Whether `name` can be a login user: a portable POSIX-ish user name.
pub fn valid_user(name: &str) -> bool {
    let mut b = name.bytes();
    name.len() <= 32
        && b.next()
            .is_some_and(|c| c.is_ascii_lowercase() || c == b'_')
        && b.all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == b'_' || c == b'-')
}

/// The disk's format as `qemu-img info` sees it, checked.
fn inspect(path: &Path) -> Result<QemuImgInfo, ImportError> {
    let out = tool::run(
        Command::new("qemu-img")
            .args(["info", "--output=json", "--"])
            .arg(path),
    )
    .map_err(|source| ImportError::Inspect {
        path: path.to_path_buf(),
        source,
    })?;
    let info: QemuImgInfo =
        serde_json::from_str(&out).map_err(|source| ImportError::InspectOutput {
            path: path.to_path_buf(),
            source,
        })?;
    match info.format.as_str() {
        "qcow2" => {}
        // qemu-img calls any file it does not recognise raw: only a
        // partition table makes one a disk.
        "raw" => {
            if !has_mbr_signature(path).map_err(|source| ImportError::Source {
                path: path.to_path_buf(),
                source,
            })? {
                return Err(ImportError::NotADisk {
                    path: path.to_path_buf(),
                });
            }
        }
        other => {
            return Err(ImportError::Format {
                path: path.to_path_buf(),
                format: other.to_string(),
            })
        }
    }
    if let Some(backing) = &info.backing_filename {
        return Err(ImportError::Backing {
            path: path.to_path_buf(),
            backing: backing.clone(),
        });
    }
    if info.encrypted {
        return Err(ImportError::Encrypted {
            path: path.to_path_buf(),
        });
    }
    Ok(info)
}

/// `55 AA` at offset 510: an MBR, or the protective MBR of a GPT disk.
fn has_mbr_signature(path: &Path) -> std::io::Result<bool> {
    use std::io::Read;
    let mut sector = [0u8; 512];
    let mut f = std::fs::File::open(path)?;
    match f.read_exact(&mut sector) {
        Ok(()) => Ok(sector[510] == 0x55 && sector[511] == 0xAA),
        Err(e) if e.kind() == std::io::ErrorKind::UnexpectedEof => Ok(false),
        Err(e) => Err(e),
    }
}

impl ImageStore {
    /// Imports a cloud image as a new version of `req.name`.
    pub fn import(
        &self,
        req: &ImportRequest,
        progress: &mut dyn FnMut(BuildEvent),
    ) -> Result<BuiltImage, ImportError> {
        let start = Instant::now();
        let now = OffsetDateTime::now_utc();
        let created = now.replace_nanosecond(0).unwrap_or(now);
        if !valid_name(&req.name) || req.name.bytes().any(|b| b.is_ascii_uppercase()) {
            return Err(ImportError::BadName(req.name.clone()));
        }
        if !valid_user(&req.user) {
            return Err(ImportError::BadUser(req.user.clone()));
        }
        let src = &req.file;
        let meta = std::fs::metadata(src).map_err(|source| ImportError::Source {
            path: src.clone(),
            source,
        })?;
        if !meta.is_file() {
            return Err(ImportError::NotAFile { path: src.clone() });
        }
        // An absolute path: a file named like an option stays a file.
        let abs = std::path::absolute(src).map_err(|source| ImportError::Source {
            path: src.clone(),
            source,
        })?;
        let info = inspect(&abs)?;
        progress(BuildEvent::Step {
            name: "inspect".into(),
            detail: format!(
                "{} ({}, {:.1} GiB virtual)",
                src.display(),
                info.format,
                info.virtual_size as f64 / (1u64 << 30) as f64
            ),
        });
        let given = hash_file(&abs).map_err(|source| ImportError::Source {
            path: src.clone(),
            source,
        })?;
        if let Some(existing) = self.imported_as(&req.name, &given.sha256)? {
            return Err(ImportError::Duplicate {
                path: src.clone(),
                existing,
                sha256: given.sha256,
            });
        }
        if let Err(e) = self.cleanup_stale() {
            tracing::warn!("cannot clean up stale work folders: {e}");
        }
        let work = self.new_work_dir(&req.name).map_err(ImportError::Publish)?;
        let image_dir = work.path.join("image");
        let stage_err = |path: &Path| {
            let path = path.to_path_buf();
            move |source| ImportError::Stage { path, source }
        };
        std::fs::create_dir(&image_dir).map_err(stage_err(&image_dir))?;
        let disk = image_dir.join(DISK_FILE);
        let disk_entry = if info.format == "qcow2" {
            std::fs::copy(&abs, &disk).map_err(stage_err(&disk))?;
            given.clone()
        } else {
            tool::run(
                Command::new("qemu-img")
                    .args(["convert", "-f", "raw", "-O", "qcow2", "--"])
                    .arg(&abs)
                    .arg(&disk),
            )
            .map_err(|source| ImportError::Convert {
                path: src.clone(),
                source,
            })?;
            hash_file(&disk).map_err(stage_err(&disk))?
        };
        progress(BuildEvent::Step {
            name: "stage".into(),
            detail: format!("{DISK_FILE} ({} bytes)", disk_entry.size),
        });
        let mut manifest = import_manifest(req, src, &info, &given, disk_entry, created);
        let path = self
            .publish(&image_dir, &mut manifest, created)
            .map_err(ImportError::Publish)?;
        drop(work);
        progress(BuildEvent::Step {
            name: "publish".into(),
            detail: format!("{}:{}", manifest.name, manifest.version),
        });
        Ok(BuiltImage {
            size_bytes: dir_size(&path),
            path,
            manifest,
            elapsed: start.elapsed(),
        })
    }

    /// The version of `name` imported from a file with this sha256, if any.
    fn imported_as(&self, name: &str, sha256: &str) -> Result<Option<String>, ImportError> {
        for info in self.list()?.into_iter().filter(|i| i.name == name) {
            let m = Manifest::load(&info.path).map_err(StoreError::from)?;
            let same_file = m.import.as_ref().is_some_and(|i| i.sha256 == sha256);
            let same_disk = m.files.get(DISK_FILE).is_some_and(|f| f.sha256 == sha256);
            if same_file || same_disk {
                return Ok(Some(format!("{}:{}", m.name, m.version)));
            }
        }
        Ok(None)
    }
}

fn import_manifest(
    req: &ImportRequest,
    src: &Path,
    info: &QemuImgInfo,
    given: &FileEntry,
    disk: FileEntry,
    created: OffsetDateTime,
) -> Manifest {
    let file_name = src
        .file_name()
        .map(|n| n.to_string_lossy().to_string())
        .unwrap_or_default();
    Manifest {
        format: MANIFEST_FORMAT,
        name: req.name.clone(),
        version: String::new(),
        created: created
            .format(&time::format_description::well_known::Rfc3339)
            .unwrap_or_default(),
        description: format!("cloud image imported from {file_name}"),
        files: [(DISK_FILE.to_string(), disk)].into_iter().collect(),
        packages: Vec::new(),
        kernel_release: String::new(),
        // No agent inside: every job uploads its own.
        agent: AgentInfo {
            version: String::new(),
            sha256: String::new(),
        },
        boot: BootSettings {
            source: BootSource::Disk,
            firmware: req.firmware,
            user: req.user.clone(),
            kernel: String::new(),
            initrd: String::new(),
            disk: DISK_FILE.into(),
            cmdline: String::new(),
            memory_mib: req.memory_mib,
            vcpus: req.vcpus,
            ssh_timeout_secs: req.ssh_timeout_secs,
            // The orchestrator installs its waiter for the ttyS1 contract
            // in the template (BIOS only: a restored UEFI guest would need
            // its NVRAM copied too).
            warm_start: req.firmware == Firmware::Bios,
        },
        import: Some(ImportInfo {
            source: file_name,
            sha256: given.sha256.clone(),
            size: given.size,
            format: info.format.clone(),
            virtual_size: info.virtual_size,
        }),
        install: None,
        recipe_sha256: given.sha256.clone(),
        builder: format!("ferrotron image import {}", env!("CARGO_PKG_VERSION")),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn request(name: &str, file: &Path) -> ImportRequest {
        ImportRequest {
            name: name.into(),
            file: file.to_path_buf(),
            user: "root".into(),
            firmware: Firmware::Bios,
            memory_mib: 1024,
            vcpus: 1,
            ssh_timeout_secs: 300,
        }
    }

    /// A 2 MiB raw disk with an MBR signature.
    fn raw_disk(path: &Path) {
        let mut bytes = vec![0u8; 2 << 20];
        bytes[510] = 0x55;
        bytes[511] = 0xAA;
        std::fs::write(path, bytes).expect("write");
    }

    fn qemu_img() -> bool {
        Command::new("qemu-img").arg("--version").output().is_ok()
    }

    #[test]
    fn user_names() {
        assert!(valid_user("root") && valid_user("fedora") && valid_user("cloud-user"));
        assert!(!valid_user("") && !valid_user("-x") && !valid_user("a b"));
        assert!(!valid_user("$(id)") && !valid_user(&"a".repeat(33)));
    }

    #[test]
    fn a_raw_disk_is_converted_published_and_refused_twice() {
        if !qemu_img() {
            return;
        }
        let dir = tempfile::tempdir().expect("tempdir");
        let store = ImageStore::new(dir.path().join("store"));
        let raw = dir.path().join("cloud.raw");
        raw_disk(&raw);
        let img = store
            .import(&request("cloud", &raw), &mut |_| {})
            .expect("import");
        let m = &img.manifest;
        assert_eq!(m.boot.source, BootSource::Disk);
        assert!(m.boot.warm_start, "BIOS images warm-start");
        let i = m.import.as_ref().expect("import info");
        assert_eq!((i.format.as_str(), i.size), ("raw", 2 << 20));
        assert_eq!(i.source, "cloud.raw");
        store.verify("cloud").expect("intact");
        let again = store
            .import(&request("cloud", &raw), &mut |_| {})
            .expect_err("same content");
        assert!(matches!(again, ImportError::Duplicate { .. }), "{again}");
        assert!(again.is_bad_input());
        // The qcow2 it became is refused under that name too.
        let qcow = img.path.join(DISK_FILE);
        let again = store
            .import(&request("cloud", &qcow), &mut |_| {})
            .expect_err("same disk");
        assert!(matches!(again, ImportError::Duplicate { .. }), "{again}");
        // Under another name it is a new image.
        store
            .import(&request("other", &qcow), &mut |_| {})
            .expect("import qcow2");
        let left: Vec<_> = std::fs::read_dir(dir.path().join("store/.tmp"))
            .expect("tmp")
            .collect();
        assert!(left.is_empty(), "work folders left: {left:?}");
    }

    #[test]
    fn bad_input_names_the_file_and_writes_nothing() {
        if !qemu_img() {
            return;
        }
        let dir = tempfile::tempdir().expect("tempdir");
        let store = ImageStore::new(dir.path().join("store"));
        let text = dir.path().join("notes.txt");
        std::fs::write(&text, "not a disk\n").expect("write");
        let missing = dir.path().join("missing.qcow2");
        let backed = dir.path().join("backed.qcow2");
        let base = dir.path().join("base.raw");
        raw_disk(&base);
        tool::run(
            Command::new("qemu-img")
                .args(["create", "-q", "-f", "qcow2", "-F", "raw", "-b"])
                .arg(&base)
                .arg(&backed),
        )
        .expect("overlay");
        for (file, want) in [
            (&text, "has no partition table"),
            (&missing, "cannot read"),
            (&backed, "has a backing file"),
        ] {
            let e = store
                .import(&request("cloud", file), &mut |_| {})
                .expect_err("refused");
            let msg = e.to_string();
            assert!(msg.contains(&file.display().to_string()), "{msg}");
            assert!(msg.contains(want), "{msg}");
            assert!(e.is_bad_input(), "{msg}");
        }
        let e = store
            .import(&request("Bad/Name", &base), &mut |_| {})
            .expect_err("name");
        assert!(matches!(e, ImportError::BadName(_)));
        let e = store
            .import(
                &ImportRequest {
                    user: "x y".into(),
                    ..request("cloud", &base)
                },
                &mut |_| {},
            )
            .expect_err("user");
        assert!(matches!(e, ImportError::BadUser(_)));
        assert!(store.list().expect("list").is_empty());
    }
}
