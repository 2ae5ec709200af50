//! The image store: `<root>/<name>/<version>/` folders, published atomically.
//!
//! Layout:
//! ```text
//! <root>/<name>/<version>/{vmlinuz,initrd.img,disk.qcow2,manifest.json}   (read-only)
//! <root>/.tmp/build-*/      work folders of running (or crashed) builds
//! <root>/.cache/debs/       downloaded .deb files, shared by all builds
//! <root>/.cache/lock        lock guarding the download cache
//! ```

use std::os::unix::fs::{MetadataExt, PermissionsExt};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant, SystemTime};

use time::OffsetDateTime;

use crate::builder::{self, io_err, BuildError, BuildEvent, BuildOptions};
use crate::manifest::{hash_file, Manifest, ManifestError, MANIFEST_FILE};
use crate::recipe::{sha256_hex, Recipe};

/// Errors of store operations other than building.
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    #[error("{path}: {source}")]
    Io {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error(transparent)]
    Manifest(#[from] ManifestError),
    #[error("{}", unknown_image_message(.name, .available, .store))]
    UnknownImage {
        name: String,
        available: Vec<String>,
        store: PathBuf,
    },
    #[error("`{0}` is not an image reference (use NAME or NAME:VERSION)")]
    BadReference(String),
    #[error("image {image} is corrupt: {}", .problems.join("; "))]
    Corrupt {
        image: String,
        problems: Vec<String>,
    },
}

fn unknown_image_message(name: &str, available: &[String], store: &Path) -> String {
    if available.is_empty() {
        format!(
            "unknown image `{name}`: the store {} has no images yet (build one with `ferrotron image build images/<name>.yaml`)",
            store.display()
        )
    } else {
        format!(
            "unknown image `{name}` in {}; available: {}",
            store.display(),
            available.join(", ")
        )
    }
}

fn store_io(path: &Path) -> impl FnOnce(std::io::Error) -> StoreError {
    let path = path.to_path_buf();
    move |source| StoreError::Io { path, source }
}

/// One published image version, as listed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ImageInfo {
    pub name: String,
    pub version: String,
    /// RFC 3339 from the manifest.
    pub created: String,
    /// Bytes allocated on disk by the image files.
    pub size_bytes: u64,
    pub path: PathBuf,
}

/// A published image found by [`ImageStore::resolve`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StoredImage {
    pub path: PathBuf,
    pub manifest: Manifest,
}

impl StoredImage {
    /// `name:version`.
    pub fn reference(&self) -> String {
        format!("{}:{}", self.manifest.name, self.manifest.version)
    }
    pub fn kernel_path(&self) -> PathBuf {
        self.path.join(&self.manifest.boot.kernel)
    }
    pub fn initrd_path(&self) -> PathBuf {
        self.path.join(&self.manifest.boot.initrd)
    }
    /// The read-only base disk; back a per-job qcow2 overlay with it.
    pub fn disk_path(&self) -> PathBuf {
        self.path.join(&self.manifest.boot.disk)
    }
}

/// The result of a successful build.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BuiltImage {
    pub path: PathBuf,
    pub manifest: Manifest,
    pub size_bytes: u64,
    pub elapsed: Duration,
}

/// Parsed version `YYYYMMDD.HHMMSS[.N]`, ordered oldest first.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub struct VersionKey(u32, u32, u32);

/// Parses an image version; `None` for folder names that are not versions.
pub fn parse_version(v: &str) -> Option<VersionKey> {
    let mut parts = v.split('.');
    let date = parts.next()?;
    let time = parts.next()?;
    let seq = parts.next();
    if parts.next().is_some()
        || date.len() != 8
        || time.len() != 6
        || !date.bytes().chain(time.bytes()).all(|b| b.is_ascii_digit())
    {
        return None;
    }
    let seq = match seq {
        None => 0,
        Some(s) if !s.is_empty() && s.bytes().all(|b| b.is_ascii_digit()) => s.parse().ok()?,
        Some(_) => return None,
    };
    Some(VersionKey(date.parse().ok()?, time.parse().ok()?, seq))
}

/// The version string for a build started at `t` (before collision suffixes).
pub fn version_for(t: OffsetDateTime) -> String {
    let t = t.to_offset(time::UtcOffset::UTC);
    format!(
        "{:04}{:02}{:02}.{:02}{:02}{:02}",
        t.year(),
        u8::from(t.month()),
        t.day(),
        t.hour(),
        t.minute(),
        t.second()
    )
}

pub(crate) fn valid_name(n: &str) -> bool {
    !n.is_empty()
        && !n.starts_with('.')
        && n.bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
}

static WORK_COUNTER: AtomicU64 = AtomicU64::new(0);
const OWNER_FILE: &str = "owner";

/// Start time of a process (field 22 of /proc/PID/stat), to detect pid reuse.
fn process_start_time(pid: u32) -> Option<u64> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    let after = &stat[stat.rfind(')')? + 1..];
    after.split_whitespace().nth(19)?.parse().ok()
}

/// A build's work folder under `<root>/.tmp/`; removed on drop unless kept.
pub(crate) struct WorkDir {
    pub(crate) path: PathBuf,
    keep: bool,
}

impl Drop for WorkDir {
    fn drop(&mut self) {
        if !self.keep {
            if let Err(e) = force_remove(&self.path) {
                tracing::warn!("cannot remove {}: {e}", self.path.display());
            }
        }
    }
}

/// Removes a tree even if it contains read-only folders. It never crosses
/// into another file system: a work folder with something still mounted
/// below it (a crashed chroot's /proc, say) is an error, not emptied.
fn force_remove(path: &Path) -> std::io::Result<()> {
    let meta = match std::fs::symlink_metadata(path) {
        Ok(m) => m,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(()),
        Err(e) => return Err(e),
    };
    if meta.is_dir() {
        remove_dir_on(path, meta.dev())
    } else {
        std::fs::remove_file(path)
    }
}

fn remove_dir_on(path: &Path, dev: u64) -> std::io::Result<()> {
    let meta = std::fs::symlink_metadata(path)?;
    if meta.dev() != dev {
        return Err(std::io::Error::other(format!(
            "{} is on another file system (still mounted?): not removing it",
            path.display()
        )));
    }
    if meta.permissions().mode() & 0o700 != 0o700 {
        std::fs::set_permissions(path, std::fs::Permissions::from_mode(0o755))?;
    }
    for e in std::fs::read_dir(path)? {
        let e = e?;
        if e.file_type()?.is_dir() {
            remove_dir_on(&e.path(), dev)?;
        }
    }
    std::fs::remove_dir_all(path)
}

pub(crate) fn dir_size(path: &Path) -> u64 {
    std::fs::read_dir(path)
        .map(|rd| {
            rd.filter_map(Result::ok)
                .filter_map(|e| e.metadata().ok())
                .map(|m| m.blocks() * 512)
                .sum()
        })
        .unwrap_or(0)
}

/// Versioned, immutable images on disk.
#[derive(Debug, Clone)]
pub struct ImageStore {
    root: PathBuf,
}

impl ImageStore {
    pub fn new(root: PathBuf) -> Self {
        ImageStore { root }
    }

    pub fn root(&self) -> &Path {
        &self.root
    }

    fn tmp_dir(&self) -> PathBuf {
        self.root.join(".tmp")
    }

    fn cache_dir(&self) -> PathBuf {
        self.root.join(".cache")
    }

    /// Builds the recipe and publishes it as a new version.
    pub fn build(
        &self,
        recipe_path: &Path,
        opts: &BuildOptions,
        progress: &mut dyn FnMut(BuildEvent),
    ) -> Result<BuiltImage, BuildError> {
        let start = Instant::now();
        let now = OffsetDateTime::now_utc();
        let created = now.replace_nanosecond(0).unwrap_or(now);
        let text = std::fs::read(recipe_path).map_err(|source| {
            BuildError::Recipe(crate::recipe::RecipeError::Read {
                path: recipe_path.to_path_buf(),
                source,
            })
        })?;
        let text_str = String::from_utf8_lossy(&text);
        let recipe = Recipe::parse(&text_str, recipe_path)?;
        let recipe_sha = sha256_hex(&text);
        progress(BuildEvent::Step {
            name: "recipe".into(),
            detail: format!("{} ({})", recipe.name, recipe_path.display()),
        });
        if let Err(e) = self.cleanup_stale() {
            tracing::warn!("cannot clean up stale work folders: {e}");
        }
        let mut work = self.new_work_dir(&recipe.name)?;
        let result = builder::assemble(
            &recipe,
            &recipe_sha,
            opts,
            &self.cache_dir(),
            &work.path,
            created,
            progress,
        );
        let mut assembled = match result {
            Ok(a) => a,
            Err(e) => {
                work.keep = opts.keep_failed;
                return Err(e);
            }
        };
        let path = self.publish(&assembled.image_dir, &mut assembled.manifest, created)?;
        progress(BuildEvent::Step {
            name: "publish".into(),
            detail: format!("{}:{}", assembled.manifest.name, assembled.manifest.version),
        });
        drop(work);
        let size_bytes = dir_size(&path);
        let elapsed = start.elapsed();
        progress(BuildEvent::Done {
            path: path.clone(),
            size_bytes,
            elapsed,
        });
        Ok(BuiltImage {
            path,
            manifest: assembled.manifest,
            size_bytes,
            elapsed,
        })
    }

    /// Creates a fresh work folder owned by this process.
    pub(crate) fn new_work_dir(&self, name: &str) -> Result<WorkDir, BuildError> {
        let tmp = self.tmp_dir();
        std::fs::create_dir_all(&tmp).map_err(io_err(&tmp))?;
        let pid = std::process::id();
        let start = process_start_time(pid).unwrap_or(0);
        let nanos = SystemTime::now()
            .duration_since(SystemTime::UNIX_EPOCH)
            .map(|d| d.as_nanos())
            .unwrap_or(0);
        let n = WORK_COUNTER.fetch_add(1, Ordering::Relaxed);
        let path = tmp.join(format!("build-{name}-{pid}-{nanos}-{n}"));
        std::fs::create_dir(&path).map_err(io_err(&path))?;
        let work = WorkDir { path, keep: false };
        let owner = work.path.join(OWNER_FILE);
        std::fs::write(&owner, format!("{pid} {start}\n")).map_err(io_err(&owner))?;
        Ok(work)
    }

    /// Removes work folders under `.tmp/` whose owner process is gone.
    /// Returns the removed folders.
    pub fn cleanup_stale(&self) -> Result<Vec<PathBuf>, StoreError> {
        let tmp = self.tmp_dir();
        let entries = match std::fs::read_dir(&tmp) {
            Ok(rd) => rd,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(Vec::new()),
            Err(e) => {
                return Err(StoreError::Io {
                    path: tmp,
                    source: e,
                })
            }
        };
        let mut removed = Vec::new();
        for e in entries {
            let e = e.map_err(store_io(&tmp))?;
            let path = e.path();
            if !e.file_type().map_err(store_io(&path))?.is_dir() {
                continue;
            }
            let stale = match std::fs::read_to_string(path.join(OWNER_FILE)) {
                Ok(text) => {
                    let mut f = text.split_whitespace();
                    let pid: Option<u32> = f.next().and_then(|p| p.parse().ok());
                    let start: Option<u64> = f.next().and_then(|s| s.parse().ok());
                    match pid {
                        None => true,
                        Some(pid) => match (process_start_time(pid), start) {
                            (None, _) => true,
                            (Some(now), Some(then)) => then != 0 && now != then,
                            (Some(_), None) => false,
                        },
                    }
                }
                // No owner file: a crash right after mkdir, or a build that is
                // just starting. Only old ones are stale.
                Err(_) => e
                    .metadata()
                    .ok()
                    .and_then(|m| m.modified().ok())
                    .and_then(|t| t.elapsed().ok())
                    .is_some_and(|age| age > Duration::from_secs(600)),
            };
            if stale {
                tracing::info!("removing stale work folder {}", path.display());
                force_remove(&path).map_err(store_io(&path))?;
                removed.push(path);
            }
        }
        Ok(removed)
    }

    /// Moves a finished image folder to `<root>/<name>/<version>` with one atomic
    /// rename, picking `.1`, `.2`… if the version exists. Writes the manifest
    /// with the final version and makes everything read-only.
    pub(crate) fn publish(
        &self,
        image_dir: &Path,
        manifest: &mut Manifest,
        created: OffsetDateTime,
    ) -> Result<PathBuf, BuildError> {
        let name_dir = self.root.join(&manifest.name);
        std::fs::create_dir_all(&name_dir).map_err(io_err(&name_dir))?;
        for f in manifest.files.keys() {
            let p = image_dir.join(f);
            std::fs::set_permissions(&p, std::fs::Permissions::from_mode(0o444))
                .map_err(io_err(&p))?;
        }
        let base = version_for(created);
        for n in 0..10_000u32 {
            let version = if n == 0 {
                base.clone()
            } else {
                format!("{base}.{n}")
            };
            let target = name_dir.join(&version);
            if std::fs::symlink_metadata(&target).is_ok() {
                continue;
            }
            manifest.version = version;
            manifest.save(image_dir)?;
            let mf = image_dir.join(MANIFEST_FILE);
            std::fs::set_permissions(&mf, std::fs::Permissions::from_mode(0o444))
                .map_err(io_err(&mf))?;
            match std::fs::rename(image_dir, &target) {
                Ok(()) => {
                    std::fs::set_permissions(&target, std::fs::Permissions::from_mode(0o555))
                        .map_err(io_err(&target))?;
                    return Ok(target);
                }
                // Another build published this version between our check and
                // the rename: rename(2) refuses to replace a non-empty folder.
                Err(e)
                    if e.kind() == std::io::ErrorKind::DirectoryNotEmpty
                        || e.kind() == std::io::ErrorKind::AlreadyExists =>
                {
                    continue
                }
                Err(e) => {
                    return Err(BuildError::Io {
                        path: target,
                        source: e,
                    })
                }
            }
        }
        Err(BuildError::Missing(format!(
            "no free version for {} under {}",
            base,
            name_dir.display()
        )))
    }

    /// All published images, by name, oldest version first.
    pub fn list(&self) -> Result<Vec<ImageInfo>, StoreError> {
        let mut out = Vec::new();
        let rd = match std::fs::read_dir(&self.root) {
            Ok(rd) => rd,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(out),
            Err(e) => {
                return Err(StoreError::Io {
                    path: self.root.clone(),
                    source: e,
                })
            }
        };
        let mut names: Vec<String> = rd
            .filter_map(Result::ok)
            .filter(|e| e.file_type().is_ok_and(|t| t.is_dir()))
            .map(|e| e.file_name().to_string_lossy().to_string())
            .filter(|n| valid_name(n))
            .collect();
        names.sort();
        for name in names {
            out.extend(self.versions_of(&name)?);
        }
        Ok(out)
    }

    fn versions_of(&self, name: &str) -> Result<Vec<ImageInfo>, StoreError> {
        let dir = self.root.join(name);
        let rd = match std::fs::read_dir(&dir) {
            Ok(rd) => rd,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(Vec::new()),
            Err(e) => {
                return Err(StoreError::Io {
                    path: dir,
                    source: e,
                })
            }
        };
        let mut versions: Vec<(VersionKey, String)> = rd
            .filter_map(Result::ok)
            .map(|e| e.file_name().to_string_lossy().to_string())
            .filter_map(|v| parse_version(&v).map(|k| (k, v)))
            .collect();
        versions.sort();
        let mut out = Vec::new();
        for (_, version) in versions {
            let path = dir.join(&version);
            match Manifest::load(&path) {
                Ok(m) => out.push(ImageInfo {
                    name: name.to_string(),
                    version,
                    created: m.created,
                    size_bytes: dir_size(&path),
                    path,
                }),
                Err(e) => tracing::warn!("skipping {}: {e}", path.display()),
            }
        }
        Ok(out)
    }

    /// Finds `name` (newest version) or `name:version`.
    pub fn resolve(&self, reference: &str) -> Result<StoredImage, StoreError> {
        let (name, version) = match reference.split_once(':') {
            Some((n, v)) => (n, Some(v)),
            None => (reference, None),
        };
        if !valid_name(name) || version.is_some_and(|v| parse_version(v).is_none()) {
            return Err(StoreError::BadReference(reference.to_string()));
        }
        let versions = self.versions_of(name)?;
        let found = match version {
            None => versions.last(),
            Some(v) => versions.iter().find(|i| i.version == v),
        };
        match found {
            Some(info) => Ok(StoredImage {
                path: info.path.clone(),
                manifest: Manifest::load(&info.path)?,
            }),
            None => Err(StoreError::UnknownImage {
                name: reference.to_string(),
                available: self
                    .list()?
                    .into_iter()
                    .map(|i| format!("{}:{}", i.name, i.version))
                    .collect(),
                store: self.root.clone(),
            }),
        }
    }

    /// Removes all but the `keep` newest versions of each image (or of `name`).
    /// Returns what was removed.
    pub fn prune(&self, name: Option<&str>, keep: usize) -> Result<Vec<ImageInfo>, StoreError> {
        let all = self.list()?;
        if let Some(n) = name {
            if !all.iter().any(|i| i.name == n) {
                return Err(StoreError::UnknownImage {
                    name: n.to_string(),
                    available: all
                        .iter()
                        .map(|i| format!("{}:{}", i.name, i.version))
                        .collect(),
                    store: self.root.clone(),
                });
            }
        }
        let mut removed = Vec::new();
        let mut names: Vec<&str> = all.iter().map(|i| i.name.as_str()).collect();
        names.dedup();
        for n in names.into_iter().filter(|n| name.is_none_or(|w| w == *n)) {
            let versions: Vec<&ImageInfo> = all.iter().filter(|i| i.name == n).collect();
            let drop_count = versions.len().saturating_sub(keep);
            for info in versions.into_iter().take(drop_count) {
                force_remove(&info.path).map_err(store_io(&info.path))?;
                removed.push(info.clone());
            }
        }
        Ok(removed)
    }

    /// Rechecks every file of an image against the manifest's sha256 and size.
    pub fn verify(&self, reference: &str) -> Result<StoredImage, StoreError> {
        let img = self.resolve(reference)?;
        let mut problems = Vec::new();
        for (file, want) in &img.manifest.files {
            let p = img.path.join(file);
            match hash_file(&p) {
                Ok(got) if got == *want => {}
                Ok(got) => problems.push(format!(
                    "{file}: sha256 {} size {} (manifest: {} size {})",
                    got.sha256, got.size, want.sha256, want.size
                )),
                Err(e) => problems.push(format!("{file}: {e}")),
            }
        }
        if problems.is_empty() {
            Ok(img)
        } else {
            Err(StoreError::Corrupt {
                image: img.reference(),
                problems,
            })
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::manifest::{
        AgentInfo, BootSettings, BootSource, Firmware, MANIFEST_FORMAT, ROOT_USER,
    };
    use std::collections::BTreeMap;

    fn t(s: &str) -> OffsetDateTime {
        OffsetDateTime::parse(s, &time::format_description::well_known::Rfc3339).expect("time")
    }

    fn manifest(name: &str) -> Manifest {
        Manifest {
            format: MANIFEST_FORMAT,
            name: name.into(),
            version: String::new(),
            created: "2026-11-25T08:15:00Z".into(),
            description: "test".into(),
            files: BTreeMap::new(),
            packages: vec![],
            kernel_release: "6.1.0-test".into(),
            agent: AgentInfo {
                version: "0.1.0".into(),
                sha256: "00".into(),
            },
            boot: BootSettings {
                source: BootSource::Kernel,
                firmware: Firmware::Bios,
                user: ROOT_USER.into(),
                kernel: "vmlinuz".into(),
                initrd: "initrd.img".into(),
                disk: "disk.qcow2".into(),
                cmdline: "console=ttyS0".into(),
                memory_mib: 256,
                vcpus: 1,
                ssh_timeout_secs: 60,
                warm_start: false,
            },
            import: None,
            install: None,
            recipe_sha256: "00".into(),
            builder: "test".into(),
        }
    }

    /// Publishes a fake image (one file whose content is `content`).
    fn fake_publish(store: &ImageStore, name: &str, at: &str, content: &str) -> PathBuf {
        let work = store.new_work_dir(name).expect("work dir");
        let image = work.path.join("image");
        std::fs::create_dir(&image).expect("mkdir");
        std::fs::write(image.join("disk.qcow2"), content).expect("write");
        let mut m = manifest(name);
        m.files.insert(
            "disk.qcow2".into(),
            hash_file(&image.join("disk.qcow2")).expect("hash"),
        );
        store.publish(&image, &mut m, t(at)).expect("publish")
    }

    #[test]
    fn versions_parse_and_order() {
        assert_eq!(version_for(t("2026-11-25T08:15:00Z")), "20261125.081500");
        let a = parse_version("20261125.081500").expect("v");
        let b = parse_version("20261125.081500.1").expect("v");
        let c = parse_version("20261125.081500.10").expect("v");
        let d = parse_version("20261125.081501").expect("v");
        assert!(a < b && b < c && c < d);
        assert!(parse_version("latest").is_none());
        assert!(parse_version("20261125.0815").is_none());
        assert!(parse_version("20261125.081500.x").is_none());
    }

    #[test]
    fn version_collision_adds_suffix() {
        let dir = tempfile::tempdir().expect("tempdir");
        let store = ImageStore::new(dir.path().to_path_buf());
        let at = "2026-11-25T08:15:00Z";
        let p0 = fake_publish(&store, "tiny", at, "a");
        let p1 = fake_publish(&store, "tiny", at, "b");
        let p2 = fake_publish(&store, "tiny", at, "c");
        assert!(p0.ends_with("tiny/20261125.081500"));
        assert!(p1.ends_with("tiny/20261125.081500.1"));
        assert!(p2.ends_with("tiny/20261125.081500.2"));
        let m = Manifest::load(&p1).expect("manifest");
        assert_eq!(m.version, "20261125.081500.1");
        assert_eq!(
            std::fs::read_to_string(p1.join("disk.qcow2")).expect("read"),
            "b"
        );
        let mode = std::fs::metadata(p1.join("disk.qcow2"))
            .expect("meta")
            .permissions()
            .mode();
        assert_eq!(mode & 0o777, 0o444);
        // Newest is the highest suffix.
        let r = store.resolve("tiny").expect("resolve");
        assert_eq!(r.manifest.version, "20261125.081500.2");
        let r = store
            .resolve("tiny:20261125.081500")
            .expect("resolve exact");
        assert_eq!(r.path, p0);
        store.verify("tiny:20261125.081500.1").expect("verify");
    }

    #[test]
    fn concurrent_publishes_do_not_collide() {
        let dir = tempfile::tempdir().expect("tempdir");
        let store = ImageStore::new(dir.path().to_path_buf());
        let at = "2026-11-25T08:15:00Z";
        let paths: Vec<PathBuf> = std::thread::scope(|s| {
            let hs: Vec<_> = (0..4)
                .map(|i| {
                    let store = &store;
                    s.spawn(move || fake_publish(store, "tiny", at, &format!("content {i}")))
                })
                .collect();
            hs.into_iter().map(|h| h.join().expect("thread")).collect()
        });
        let mut versions: Vec<String> = paths
            .iter()
            .map(|p| Manifest::load(p).expect("manifest").version)
            .collect();
        versions.sort();
        assert_eq!(
            versions,
            [
                "20261125.081500",
                "20261125.081500.1",
                "20261125.081500.2",
                "20261125.081500.3"
            ]
        );
        for v in &versions {
            store.verify(&format!("tiny:{v}")).expect("intact");
        }
        // Work folders are cleaned up when dropped.
        let left: Vec<_> = std::fs::read_dir(dir.path().join(".tmp"))
            .expect("tmp")
            .collect();
        assert!(left.is_empty());
    }

    #[test]
    fn prune_keeps_newest() {
        let dir = tempfile::tempdir().expect("tempdir");
        let store = ImageStore::new(dir.path().to_path_buf());
        for at in [
            "2026-11-25T08:00:00Z",
            "2026-11-25T09:00:00Z",
            "2026-11-25T10:00:00Z",
        ] {
            fake_publish(&store, "tiny", at, at);
        }
        fake_publish(&store, "other", "2026-11-20T08:00:00Z", "x");
        let removed = store.prune(None, 2).expect("prune");
        assert_eq!(removed.len(), 1);
        assert_eq!(removed[0].version, "20261125.080000");
        let left: Vec<String> = store
            .list()
            .expect("list")
            .into_iter()
            .map(|i| format!("{}:{}", i.name, i.version))
            .collect();
        assert_eq!(
            left,
            [
                "other:20261120.080000",
                "tiny:20261125.090000",
                "tiny:20261125.100000"
            ]
        );
        let removed = store.prune(Some("tiny"), 1).expect("prune");
        assert_eq!(removed.len(), 1);
        assert_eq!(
            store.resolve("tiny").expect("tiny").manifest.version,
            "20261125.100000"
        );
        // keep 1 never removes the only version.
        assert!(store.prune(None, 1).expect("prune").is_empty());
        assert_eq!(store.prune(Some("other"), 0).expect("prune").len(), 1);
        let err = store.prune(Some("nope"), 1).expect_err("unknown");
        assert!(matches!(err, StoreError::UnknownImage { .. }));
    }

    #[test]
    fn unknown_image_lists_available() {
        let dir = tempfile::tempdir().expect("tempdir");
        let store = ImageStore::new(dir.path().to_path_buf());
        let err = store.resolve("tiny").expect_err("empty store");
        assert!(err.to_string().contains("has no images yet"), "{err}");
        fake_publish(&store, "tiny", "2026-11-25T08:15:00Z", "a");
        let err = store.resolve("small").expect_err("unknown");
        let msg = err.to_string();
        assert!(msg.contains("unknown image `small`"), "{msg}");
        assert!(msg.contains("tiny:20261125.081500"), "{msg}");
        assert!(store.resolve("tiny:20991231.000000").is_err());
        assert!(matches!(
            store.resolve("../etc"),
            Err(StoreError::BadReference(_))
        ));
    }

    #[test]
    fn verify_detects_corruption() {
        let dir = tempfile::tempdir().expect("tempdir");
        let store = ImageStore::new(dir.path().to_path_buf());
        let p = fake_publish(&store, "tiny", "2026-11-25T08:15:00Z", "good");
        let f = p.join("disk.qcow2");
        std::fs::set_permissions(&p, std::fs::Permissions::from_mode(0o755)).expect("chmod");
        std::fs::set_permissions(&f, std::fs::Permissions::from_mode(0o644)).expect("chmod");
        std::fs::write(&f, "evil").expect("write");
        let err = store.verify("tiny").expect_err("corrupt");
        assert!(err.to_string().contains("disk.qcow2"), "{err}");
    }

    #[test]
    fn stale_work_dirs_are_removed() {
        let dir = tempfile::tempdir().expect("tempdir");
        let store = ImageStore::new(dir.path().to_path_buf());
        let tmp = dir.path().join(".tmp");
        std::fs::create_dir_all(&tmp).expect("mkdir");
        // A process that has exited.
        let mut child = std::process::Command::new("true").spawn().expect("spawn");
        let dead_pid = child.id();
        child.wait().expect("wait");
        let dead = tmp.join("build-dead");
        std::fs::create_dir_all(dead.join("image")).expect("mkdir");
        std::fs::write(dead.join(OWNER_FILE), format!("{dead_pid} 1\n")).expect("write");
        // Read-only leftovers must not stop the cleanup.
        std::fs::set_permissions(dead.join("image"), std::fs::Permissions::from_mode(0o555))
            .expect("chmod");
        // Our own pid, but a different start time: the pid was reused.
        let reused = tmp.join("build-reused");
        std::fs::create_dir(&reused).expect("mkdir");
        std::fs::write(
            reused.join(OWNER_FILE),
            format!("{} 1\n", std::process::id()),
        )
        .expect("write");
        // A live build (this process) and a folder that is just being created.
        let live = store.new_work_dir("tiny").expect("work dir");
        let fresh = tmp.join("build-fresh");
        std::fs::create_dir(&fresh).expect("mkdir");

        let mut removed = store.cleanup_stale().expect("cleanup");
        removed.sort();
        assert_eq!(removed, vec![dead.clone(), reused.clone()]);
        assert!(!dead.exists() && !reused.exists());
        assert!(live.path.exists() && fresh.exists());
    }
}
