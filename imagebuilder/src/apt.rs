//! Debian package handling through the host's apt tools: dependency closure,
//! download into a shared cache, and unpacking.

use std::collections::BTreeSet;
use std::fs::File;
use std::io::Read;
use std::path::{Path, PathBuf};
use std::process::Command;

use fs4::fs_std::FileExt;
use sha2::{Digest, Sha256};

use crate::manifest::PackageEntry;
use crate::tool::{run, ToolError};

/// Errors from apt, dpkg-deb or the download cache.
#[derive(Debug, thiserror::Error)]
pub enum AptError {
    #[error(transparent)]
    Tool(#[from] ToolError),
    #[error("package {0} has no installable candidate (is `apt-get update` done?)")]
    NoCandidate(String),
    #[error("{package}: no linux-image-<version> dependency found")]
    NoKernel { package: String },
    #[error("download cache: {path}: {source}")]
    Cache {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("{file}: checksum mismatch after download (expected {expected}, got {actual})")]
    Checksum {
        file: String,
        expected: String,
        actual: String,
    },
    #[error("unexpected output from {command}: {line}")]
    Parse { command: String, line: String },
}

/// The real kernel package behind a metapackage such as `linux-image-cloud-amd64`.
pub fn resolve_kernel_package(name: &str) -> Result<String, AptError> {
    let is_versioned = |n: &str| {
        n.strip_prefix("linux-image-")
            .and_then(|r| r.chars().next())
            .is_some_and(|c| c.is_ascii_digit())
    };
    if is_versioned(name) {
        return Ok(name.to_string());
    }
    let out = run(Command::new("apt-cache").args(["depends", name]))?;
    out.lines()
        .filter_map(|l| l.trim().strip_prefix("Depends:"))
        .map(str::trim)
        .find(|d| is_versioned(d))
        .map(str::to_string)
        .ok_or_else(|| AptError::NoKernel {
            package: name.to_string(),
        })
}

/// The Depends/Pre-Depends closure of `packages` (virtual packages skipped).
pub fn package_closure(packages: &[String]) -> Result<BTreeSet<String>, AptError> {
    if packages.is_empty() {
        return Ok(BTreeSet::new());
    }
    let out = run(Command::new("apt-cache")
        .args([
            "depends",
            "--recurse",
            "--no-recommends",
            "--no-suggests",
            "--no-conflicts",
            "--no-breaks",
            "--no-replaces",
            "--no-enhances",
        ])
        .args(packages))?;
    let mut set = BTreeSet::new();
    for line in out.lines() {
        if line.starts_with(' ') || line.starts_with('<') || line.is_empty() {
            continue;
        }
        let name = match line.split_once(':') {
            Some((n, "amd64")) => n,
            Some(_) => continue,
            None => line,
        };
        set.insert(name.trim().to_string());
    }
    for p in packages {
        if !set.contains(p.split(':').next().unwrap_or(p)) {
            return Err(AptError::NoCandidate(p.clone()));
        }
    }
    Ok(set)
}

/// One `.deb` in the download cache.
#[derive(Debug, Clone)]
pub struct CachedDeb {
    pub package: String,
    pub path: PathBuf,
}

struct Uri {
    file: String,
    size: u64,
    sha256: Option<String>,
}

fn sha256_file(path: &Path) -> Result<String, std::io::Error> {
    let mut f = File::open(path)?;
    let mut h = Sha256::new();
    let mut buf = vec![0u8; 1 << 16];
    loop {
        let n = f.read(&mut buf)?;
        if n == 0 {
            break;
        }
        h.update(&buf[..n]);
    }
    Ok(hex::encode(h.finalize()))
}

/// Makes sure the `.deb` of every package is in `cache_dir/debs`, downloading the
/// missing ones with `apt-get download`. The cache is shared between builds and
/// guarded by an exclusive lock on `cache_dir/lock`. Returns the cached files and
/// how many were downloaded.
pub fn download(
    packages: &BTreeSet<String>,
    cache_dir: &Path,
) -> Result<(Vec<CachedDeb>, usize), AptError> {
    let debs_dir = cache_dir.join("debs");
    let cache_err = |path: &Path| {
        let path = path.to_path_buf();
        move |source| AptError::Cache { path, source }
    };
    std::fs::create_dir_all(&debs_dir).map_err(cache_err(&debs_dir))?;
    let lock_path = cache_dir.join("lock");
    let lock = File::options()
        .create(true)
        .truncate(false)
        .write(true)
        .open(&lock_path)
        .map_err(cache_err(&lock_path))?;
    lock.lock_exclusive().map_err(cache_err(&lock_path))?;

    let names: Vec<&String> = packages.iter().collect();
    // apt-get leaves out files already present in the current folder, so ask
    // from an empty one to get every package's file name and checksum.
    let empty = tempfile::tempdir().map_err(cache_err(&std::env::temp_dir()))?;
    let out = run(Command::new("apt-get")
        .args(["download", "--print-uris", "-qq"])
        .args(&names)
        .current_dir(empty.path()))?;
    let mut uris = Vec::new();
    for line in out.lines().filter(|l| !l.trim().is_empty()) {
        let f: Vec<&str> = line.split_whitespace().collect();
        let parse_err = || AptError::Parse {
            command: "apt-get download --print-uris".into(),
            line: line.to_string(),
        };
        if f.len() < 3 {
            return Err(parse_err());
        }
        uris.push(Uri {
            file: f[1].to_string(),
            size: f[2].parse().map_err(|_| parse_err())?,
            sha256: f
                .get(3)
                .and_then(|s| s.strip_prefix("SHA256:"))
                .map(str::to_string),
        });
    }
    // Match URIs to packages by file name (`<package>_<version>_<arch>.deb`).
    let mut by_name = Vec::new();
    for name in &names {
        let prefix = format!("{name}_");
        let uri = uris
            .iter()
            .find(|u| u.file.starts_with(&prefix))
            .ok_or_else(|| AptError::NoCandidate(name.to_string()))?;
        by_name.push(uri);
    }
    let uris = by_name;
    let mut missing = Vec::new();
    for (name, uri) in names.iter().zip(uris.iter().copied()) {
        let path = debs_dir.join(&uri.file);
        let ok = match std::fs::metadata(&path) {
            Ok(m) if m.len() == uri.size => match &uri.sha256 {
                Some(want) => sha256_file(&path).map_err(cache_err(&path))? == *want,
                None => true,
            },
            _ => false,
        };
        if !ok {
            missing.push(name.as_str());
        }
    }
    if !missing.is_empty() {
        run(Command::new("apt-get")
            .args(["download", "-q", "-o", "APT::Sandbox::User=root"])
            .args(&missing)
            .current_dir(&debs_dir))?;
    }
    let mut debs = Vec::new();
    for (name, uri) in names.iter().zip(uris.iter().copied()) {
        let path = debs_dir.join(&uri.file);
        if let Some(want) = &uri.sha256 {
            if missing.contains(&name.as_str()) {
                let got = sha256_file(&path).map_err(cache_err(&path))?;
                if got != *want {
                    let _ = std::fs::remove_file(&path);
                    return Err(AptError::Checksum {
                        file: uri.file.clone(),
                        expected: want.clone(),
                        actual: got,
                    });
                }
            }
        }
        debs.push(CachedDeb {
            package: name.to_string(),
            path,
        });
    }
    drop(lock);
    Ok((debs, missing.len()))
}

/// Unpacks every `.deb` into `root` (`dpkg-deb -x`, in parallel) and reads
/// its Package and Version fields.
pub fn extract_all(debs: &[CachedDeb], root: &Path) -> Result<Vec<PackageEntry>, AptError> {
    std::fs::create_dir_all(root).map_err(|source| AptError::Cache {
        path: root.to_path_buf(),
        source,
    })?;
    let workers = std::thread::available_parallelism()
        .map(|n| n.get())
        .unwrap_or(2)
        .clamp(1, 4);
    let chunks: Vec<Vec<&CachedDeb>> = (0..workers)
        .map(|w| debs.iter().skip(w).step_by(workers).collect())
        .collect();
    let results: Vec<Result<Vec<PackageEntry>, AptError>> = std::thread::scope(|s| {
        let handles: Vec<_> = chunks
            .iter()
            .map(|chunk| {
                s.spawn(move || {
                    let mut out = Vec::new();
                    for deb in chunk {
                        run(Command::new("dpkg-deb").arg("-x").arg(&deb.path).arg(root))?;
                        out.push(read_fields(&deb.path)?);
                    }
                    Ok(out)
                })
            })
            .collect();
        handles
            .into_iter()
            .map(|h| {
                h.join().unwrap_or_else(|_| {
                    Err(AptError::Parse {
                        command: "dpkg-deb -x".into(),
                        line: "worker thread panicked".into(),
                    })
                })
            })
            .collect()
    });
    let mut all = Vec::new();
    for r in results {
        all.extend(r?);
    }
    all.sort_by(|a, b| a.name.cmp(&b.name));
    Ok(all)
}

/// `dpkg-deb -f FILE Package Version`.
pub fn read_fields(deb: &Path) -> Result<PackageEntry, AptError> {
    let out = run(Command::new("dpkg-deb")
        .arg("-f")
        .arg(deb)
        .args(["Package", "Version"]))?;
    let mut name = None;
    let mut version = None;
    for line in out.lines() {
        if let Some(v) = line.strip_prefix("Package:") {
            name = Some(v.trim().to_string());
        } else if let Some(v) = line.strip_prefix("Version:") {
            version = Some(v.trim().to_string());
        }
    }
    match (name, version) {
        (Some(name), Some(version)) => Ok(PackageEntry { name, version }),
        _ => Err(AptError::Parse {
            command: format!("dpkg-deb -f {}", deb.display()),
            line: out,
        }),
    }
}
