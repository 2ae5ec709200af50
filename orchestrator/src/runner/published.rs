//! What of a job folder leaves the host (the API serves it, `--report`
//! uploads it): everything but the job's credentials.

use std::path::{Path, PathBuf};

/// Files of a job folder that are never uploaded: the job's SSH key pair
/// and host key record are credentials, not results.
const PRIVATE: &[&str] = &["id_ed25519", "id_ed25519.pub", "known_hosts"];

/// Regular files under `root` (symlinks and [`PRIVATE`] files skipped), as
/// `/`-separated relative paths, sorted.
pub fn files(root: &Path) -> Vec<(String, PathBuf)> {
    let mut out = Vec::new();
    let mut stack = vec![root.to_path_buf()];
    while let Some(dir) = stack.pop() {
        let Ok(entries) = std::fs::read_dir(&dir) else {
            continue;
        };
        for e in entries.flatten() {
            let Ok(ft) = e.file_type() else { continue };
            let p = e.path();
            if ft.is_dir() {
                stack.push(p);
            } else if ft.is_file() && !PRIVATE.iter().any(|n| e.file_name() == *n) {
                if let Ok(rel) = p.strip_prefix(root) {
                    let rel = rel
                        .components()
                        .map(|c| c.as_os_str().to_string_lossy().into_owned())
                        .collect::<Vec<_>>()
                        .join("/");
                    out.push((rel, p));
                }
            }
        }
    }
    out.sort();
    out
}

/// Whether [`files`] of `root` includes `rel` (a `/`-separated relative
/// path): a regular file, reached through no symlink, not [`PRIVATE`].
pub fn publishes(root: &Path, rel: &str) -> bool {
    let mut path = root.to_path_buf();
    let mut parts = rel.split('/').peekable();
    while let Some(part) = parts.next() {
        if part.is_empty() || part == "." || part == ".." {
            return false;
        }
        path.push(part);
        let Ok(meta) = std::fs::symlink_metadata(&path) else {
            return false;
        };
        let last = parts.peek().is_none();
        let ok = if last {
            meta.file_type().is_file() && !PRIVATE.contains(&part)
        } else {
            meta.file_type().is_dir()
        };
        if !ok {
            return false;
        }
    }
    // `split` yields at least one part, and an empty one was refused.
    true
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keys_are_not_uploaded() {
        let dir = tempfile::tempdir().expect("tempdir");
        for f in [
            "runner.log",
            "id_ed25519",
            "known_hosts",
            "artifacts/results.tap",
        ] {
            let p = dir.path().join(f);
            std::fs::create_dir_all(p.parent().expect("parent")).expect("mkdir");
            std::fs::write(p, "x").expect("write");
        }
        let names: Vec<String> = files(dir.path()).into_iter().map(|(n, _)| n).collect();
        assert_eq!(names, ["artifacts/results.tap", "runner.log"]);
    }

    #[test]
    fn publishes_what_files_lists() {
        let dir = tempfile::tempdir().expect("tempdir");
        for f in ["logs/a.log", "id_ed25519", "top.txt"] {
            let p = dir.path().join(f);
            std::fs::create_dir_all(p.parent().expect("parent")).expect("mkdir");
            std::fs::write(p, "x").expect("write");
        }
        std::os::unix::fs::symlink(dir.path().join("logs"), dir.path().join("link"))
            .expect("symlink");
        std::os::unix::fs::symlink(dir.path().join("top.txt"), dir.path().join("t.lnk"))
            .expect("symlink");
        let listed: Vec<String> = files(dir.path()).into_iter().map(|(n, _)| n).collect();
        for rel in [
            "logs/a.log",
            "top.txt",
            "id_ed25519",
            "link/a.log",
            "t.lnk",
            "logs",
            "missing",
            "",
            "logs/../top.txt",
        ] {
            assert_eq!(
                publishes(dir.path(), rel),
                listed.iter().any(|l| l == rel),
                "{rel:?} (listed: {listed:?})"
            );
        }
    }
}
