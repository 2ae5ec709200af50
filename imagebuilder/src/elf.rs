//! Shared-library closure of ELF programs, resolved inside an unpacked package tree
//! (never against the host's libraries).

use std::collections::{BTreeSet, VecDeque};
use std::path::{Component, Path, PathBuf};

use goblin::elf::Elf;

/// Errors while resolving ELF dependencies.
#[derive(Debug, thiserror::Error)]
pub enum ElfError {
    #[error("{path} not found in the package tree {root}")]
    NotFound { path: String, root: PathBuf },
    #[error("cannot read {path}: {source}")]
    Io {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("{path} is not a valid ELF file: {message}")]
    BadElf { path: String, message: String },
    #[error("library {library} (needed by {needed_by}) not found in the package tree; add the package that ships it")]
    MissingLibrary { library: String, needed_by: String },
    #[error("too many symbolic links while resolving {0}")]
    SymlinkLoop(String),
}

/// Library directories searched after DT_RPATH/DT_RUNPATH, as the Debian loader does.
const DEFAULT_LIB_DIRS: &[&str] = &[
    "/lib/x86_64-linux-gnu",
    "/usr/lib/x86_64-linux-gnu",
    "/lib64",
    "/usr/lib64",
    "/lib",
    "/usr/lib",
];

/// Where a guest path leads inside `root`: the symlinks passed on the way
/// (guest paths) and the final guest path of the real file.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Resolved {
    pub links: Vec<String>,
    pub file: String,
}

/// Resolves an absolute guest path inside `root`, following symlinks the way the
/// guest would see them (absolute targets are taken relative to `root`).
pub fn resolve_in_root(root: &Path, guest_path: &str) -> Result<Resolved, ElfError> {
    let mut links = Vec::new();
    let mut pending: VecDeque<String> = split(guest_path).into();
    let mut cur: Vec<String> = Vec::new();
    let mut hops = 0;
    while let Some(part) = pending.pop_front() {
        match part.as_str() {
            "." => continue,
            ".." => {
                cur.pop();
                continue;
            }
            _ => {}
        }
        cur.push(part);
        let gp = join_guest(&cur);
        let host = root.join(gp.trim_start_matches('/'));
        let meta = std::fs::symlink_metadata(&host).map_err(|_| ElfError::NotFound {
            path: gp.clone(),
            root: root.to_path_buf(),
        })?;
        if meta.file_type().is_symlink() {
            hops += 1;
            if hops > 40 {
                return Err(ElfError::SymlinkLoop(guest_path.to_string()));
            }
            let target = std::fs::read_link(&host).map_err(|source| ElfError::Io {
                path: host.clone(),
                source,
            })?;
            links.push(gp);
            let target = target.to_string_lossy().to_string();
            cur.pop();
            if target.starts_with('/') {
                cur.clear();
            }
            let mut rest: VecDeque<String> = split(&target).into();
            rest.extend(pending);
            pending = rest;
        }
    }
    Ok(Resolved {
        links,
        file: join_guest(&cur),
    })
}

fn split(p: &str) -> Vec<String> {
    Path::new(p)
        .components()
        .filter_map(|c| match c {
            Component::Normal(s) => Some(s.to_string_lossy().to_string()),
            Component::ParentDir => Some("..".to_string()),
            _ => None,
        })
        .collect()
}

fn join_guest(parts: &[String]) -> String {
    format!("/{}", parts.join("/"))
}

/// What an ELF object asks of the dynamic loader.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct ElfNeeds {
    pub interpreter: Option<String>,
    pub needed: Vec<String>,
    pub search_dirs: Vec<String>,
}

/// Reads PT_INTERP, DT_NEEDED and DT_RPATH/DT_RUNPATH. `None` if `data` is not ELF
/// (e.g. a shell script).
pub fn elf_needs(data: &[u8], name: &str, origin: &str) -> Result<Option<ElfNeeds>, ElfError> {
    if data.len() < 4 || &data[..4] != b"\x7fELF" {
        return Ok(None);
    }
    let elf = Elf::parse(data).map_err(|e| ElfError::BadElf {
        path: name.to_string(),
        message: e.to_string(),
    })?;
    let mut search_dirs = Vec::new();
    for list in elf.rpaths.iter().chain(elf.runpaths.iter()) {
        for dir in list.split(':').filter(|d| !d.is_empty()) {
            search_dirs.push(dir.replace("$ORIGIN", origin).replace("${ORIGIN}", origin));
        }
    }
    Ok(Some(ElfNeeds {
        interpreter: elf.interpreter.map(str::to_string),
        needed: elf.libraries.iter().map(|s| s.to_string()).collect(),
        search_dirs,
    }))
}

fn is_x86_64_elf(data: &[u8]) -> bool {
    // ELFCLASS64 and EM_X86_64 (62), little endian.
    data.len() > 20 && &data[..4] == b"\x7fELF" && data[4] == 2 && data[18] == 62 && data[19] == 0
}

fn read(root: &Path, guest: &str) -> Result<Vec<u8>, ElfError> {
    let host = root.join(guest.trim_start_matches('/'));
    std::fs::read(&host).map_err(|source| ElfError::Io { path: host, source })
}

/// Computes every guest path (symlinks and files) that must be copied from `root` so
/// that `programs` run: the programs themselves, their DT_NEEDED closure and the ELF
/// interpreter. `extra` are ELF files from outside the tree (e.g. the guest agent)
/// whose libraries must also come from `root`: (file contents, name for messages).
pub fn closure(
    root: &Path,
    programs: &[String],
    extra: &[(&[u8], &str)],
) -> Result<BTreeSet<String>, ElfError> {
    let mut out = BTreeSet::new();
    let mut seen_files = BTreeSet::new();
    let mut queue: VecDeque<(String, Vec<u8>)> = VecDeque::new();
    for p in programs {
        let r = resolve_in_root(root, p)?;
        out.extend(r.links.iter().cloned());
        out.insert(r.file.clone());
        if seen_files.insert(r.file.clone()) {
            let data = read(root, &r.file)?;
            queue.push_back((r.file, data));
        }
    }
    for (data, name) in extra {
        queue.push_back((name.to_string(), data.to_vec()));
    }
    while let Some((path, data)) = queue.pop_front() {
        let origin = Path::new(&path)
            .parent()
            .map(|p| p.to_string_lossy().to_string())
            .unwrap_or_else(|| "/".to_string());
        let Some(needs) = elf_needs(&data, &path, &origin)? else {
            continue;
        };
        let mut wanted: Vec<(String, bool)> = Vec::new();
        if let Some(interp) = &needs.interpreter {
            wanted.push((interp.clone(), true));
        }
        for lib in &needs.needed {
            wanted.push((lib.clone(), lib.contains('/')));
        }
        for (lib, is_path) in wanted {
            let candidates: Vec<String> = if is_path {
                vec![lib.clone()]
            } else {
                needs
                    .search_dirs
                    .iter()
                    .map(String::as_str)
                    .chain(DEFAULT_LIB_DIRS.iter().copied())
                    .map(|d| format!("{}/{lib}", d.trim_end_matches('/')))
                    .collect()
            };
            let mut found = None;
            for cand in candidates {
                let Ok(r) = resolve_in_root(root, &cand) else {
                    continue;
                };
                let data = read(root, &r.file)?;
                if !is_x86_64_elf(&data) {
                    continue;
                }
                found = Some((r, data));
                break;
            }
            let Some((r, data)) = found else {
                return Err(ElfError::MissingLibrary {
                    library: lib,
                    needed_by: path.clone(),
                });
            };
            out.extend(r.links.iter().cloned());
            out.insert(r.file.clone());
            if seen_files.insert(r.file.clone()) {
                queue.push_back((r.file, data));
            }
        }
    }
    Ok(out)
}

/// Copies `guest_path` from `src_root` to `dst_root`, keeping symlinks as symlinks
/// and creating parent directories (0755). Existing destination entries are kept.
pub fn copy_entry(src_root: &Path, dst_root: &Path, guest_path: &str) -> Result<(), ElfError> {
    let rel = guest_path.trim_start_matches('/');
    let src = src_root.join(rel);
    let dst = dst_root.join(rel);
    let io = |path: &Path| {
        let path = path.to_path_buf();
        move |source| ElfError::Io { path, source }
    };
    if std::fs::symlink_metadata(&dst).is_ok() {
        return Ok(());
    }
    if let Some(parent) = dst.parent() {
        std::fs::create_dir_all(parent).map_err(io(parent))?;
    }
    let meta = std::fs::symlink_metadata(&src).map_err(io(&src))?;
    if meta.file_type().is_symlink() {
        let target = std::fs::read_link(&src).map_err(io(&src))?;
        std::os::unix::fs::symlink(&target, &dst).map_err(io(&dst))?;
    } else if meta.is_dir() {
        std::fs::create_dir_all(&dst).map_err(io(&dst))?;
    } else {
        std::fs::copy(&src, &dst).map_err(io(&dst))?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::process::Command;

    /// The closure of a host program computed against the host root must contain
    /// every library `ldd` reports.
    #[test]
    fn closure_matches_ldd_on_host() {
        let prog = "/usr/bin/git";
        let set = closure(Path::new("/"), &[prog.to_string()], &[]).expect("closure");
        let out = Command::new("ldd").arg(prog).output().expect("ldd");
        let text = String::from_utf8_lossy(&out.stdout);
        let names: BTreeSet<String> = set
            .iter()
            .filter_map(|p| Path::new(p).file_name())
            .map(|n| n.to_string_lossy().to_string())
            .collect();
        for line in text.lines() {
            let first = line.split_whitespace().next().unwrap_or("");
            if first.starts_with("linux-vdso") || first.is_empty() {
                continue;
            }
            let base = Path::new(first)
                .file_name()
                .map(|n| n.to_string_lossy().to_string())
                .unwrap_or_default();
            assert!(names.contains(&base), "{base} missing from {set:?}");
        }
        // The interpreter path (maybe through /lib64 -> usr/lib64) is included.
        assert!(set.contains("/lib64"), "{set:?}");
        assert!(
            set.iter().any(|p| p.ends_with("/ld-linux-x86-64.so.2")),
            "{set:?}"
        );
    }

    /// Builds a fake package tree with dropbearkey, its libraries behind versioned
    /// symlinks (one absolute), and checks the closure and the copy.
    #[test]
    fn closure_inside_fake_tree_follows_symlinks() {
        let tmp = tempfile::tempdir().expect("tempdir");
        let root = tmp.path().join("pkgroot");
        let prog = "/usr/bin/dropbearkey";
        let data = std::fs::read(prog).expect("host dropbearkey");
        let needs = elf_needs(&data, prog, "/usr/bin")
            .expect("parse")
            .expect("is elf");
        std::fs::create_dir_all(root.join("usr/bin")).expect("mkdir");
        std::fs::write(root.join("usr/bin/dropbearkey"), &data).expect("write");
        let libdir = root.join("usr/lib/x86_64-linux-gnu");
        std::fs::create_dir_all(&libdir).expect("mkdir");
        // Every library ldd lists (the transitive closure), behind a symlink.
        let out = Command::new("ldd").arg(prog).output().expect("ldd");
        let libs: Vec<String> = String::from_utf8_lossy(&out.stdout)
            .lines()
            .filter_map(|l| {
                let (name, rest) = l.trim().split_once(" => ")?;
                let path = rest.split_whitespace().next()?;
                Some((name.to_string(), path.to_string()))
            })
            .map(|(name, path)| {
                let real = format!("{name}.real");
                std::fs::copy(&path, libdir.join(&real)).expect("copy");
                name
            })
            .collect();
        for (i, lib) in libs.iter().enumerate() {
            let real = format!("{lib}.real");
            let target = if i == 0 {
                format!("/usr/lib/x86_64-linux-gnu/{real}")
            } else {
                real
            };
            std::os::unix::fs::symlink(target, libdir.join(lib)).expect("symlink");
        }
        // Interpreter: /lib64 -> usr/lib64 (directory symlink), then the file.
        std::fs::create_dir_all(root.join("usr/lib64")).expect("mkdir");
        std::os::unix::fs::symlink("usr/lib64", root.join("lib64")).expect("symlink");
        let interp = needs.interpreter.clone().expect("interp");
        std::fs::copy(&interp, root.join("usr/lib64/ld-linux-x86-64.so.2")).expect("copy");

        let set = closure(&root, &[prog.to_string()], &[]).expect("closure");
        assert!(set.contains(prog));
        assert!(set.contains("/lib64"), "{set:?}");
        assert!(set.contains("/usr/lib64/ld-linux-x86-64.so.2"), "{set:?}");
        for lib in &libs {
            assert!(
                set.contains(&format!("/usr/lib/x86_64-linux-gnu/{lib}")),
                "{set:?}"
            );
            assert!(
                set.contains(&format!("/usr/lib/x86_64-linux-gnu/{lib}.real")),
                "{set:?}"
            );
        }

        let dst = tmp.path().join("staging");
        for p in &set {
            copy_entry(&root, &dst, p).expect("copy");
        }
        assert!(std::fs::symlink_metadata(dst.join("lib64"))
            .expect("lib64")
            .file_type()
            .is_symlink());
        assert!(dst.join("lib64/ld-linux-x86-64.so.2").is_file());
    }

    #[test]
    fn missing_library_is_reported() {
        let tmp = tempfile::tempdir().expect("tempdir");
        let root = tmp.path();
        std::fs::create_dir_all(root.join("usr/bin")).expect("mkdir");
        std::fs::copy("/usr/bin/dropbearkey", root.join("usr/bin/dropbearkey")).expect("copy");
        let err = closure(root, &["/usr/bin/dropbearkey".to_string()], &[]).expect_err("fail");
        assert!(
            matches!(err, ElfError::MissingLibrary { .. }),
            "unexpected: {err}"
        );
    }

    #[test]
    fn scripts_have_no_needs() {
        assert_eq!(elf_needs(b"#!/bin/sh\n", "x", "/").expect("ok"), None);
    }
}
