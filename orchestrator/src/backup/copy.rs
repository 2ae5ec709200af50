//! Copying files while hashing them, and listing a folder's files.

use std::io::{Read, Write};
use std::os::unix::fs::{OpenOptionsExt, PermissionsExt};
use std::path::{Path, PathBuf};

use sha2::{Digest, Sha256};

/// Copies `src` to `dst` (parents made 0700, the file made with `mode`,
/// synced), hashing what it copies: the size and sha256 returned are of
/// the bytes written, even if `src` grows meanwhile (a running job's log).
pub fn copy_hashed(src: &Path, dst: &Path, mode: u32) -> std::io::Result<(u64, String)> {
    if let Some(parent) = dst.parent() {
        make_dirs(parent)?;
    }
    let mut from = std::fs::File::open(src)?;
    let mut to = std::fs::OpenOptions::new()
        .create_new(true)
        .write(true)
        .mode(mode & 0o777)
        .open(dst)?;
    let mut h = Sha256::new();
    let mut buf = vec![0u8; 256 * 1024];
    let mut size = 0u64;
    loop {
        let n = from.read(&mut buf)?;
        if n == 0 {
            break;
        }
        h.update(&buf[..n]);
        to.write_all(&buf[..n])?;
        size += n as u64;
    }
    to.set_permissions(std::fs::Permissions::from_mode(mode & 0o777))?;
    to.sync_all()?;
    Ok((size, hex::encode(h.finalize())))
}

/// Makes `dir` and its missing parents with mode 0700.
pub fn make_dirs(dir: &Path) -> std::io::Result<()> {
    use std::os::unix::fs::DirBuilderExt;
    std::fs::DirBuilder::new()
        .recursive(true)
        .mode(0o700)
        .create(dir)
}

/// The regular files under `root` (relative, sorted) and how many other
/// entries (symbolic links, sockets) were passed over. A missing `root`
/// has none.
pub fn files_under(root: &Path) -> std::io::Result<(Vec<PathBuf>, usize)> {
    let mut out = Vec::new();
    let mut skipped = 0;
    if !root.is_dir() {
        return Ok((out, 0));
    }
    let mut stack = vec![PathBuf::new()];
    while let Some(rel) = stack.pop() {
        for e in std::fs::read_dir(root.join(&rel))? {
            let e = e?;
            let t = e.file_type()?;
            let child = rel.join(e.file_name());
            if t.is_dir() {
                stack.push(child);
            } else if t.is_file() {
                out.push(child);
            } else {
                skipped += 1;
            }
        }
    }
    out.sort();
    Ok((out, skipped))
}

/// A file's permission bits.
pub fn mode_of(p: &Path) -> std::io::Result<u32> {
    use std::os::unix::fs::MetadataExt;
    Ok(std::fs::metadata(p)?.mode() & 0o777)
}

/// A path as a backup's manifest writes it (`/`-separated).
pub fn slash(p: &Path) -> String {
    p.components()
        .map(|c| c.as_os_str().to_string_lossy())
        .collect::<Vec<_>>()
        .join("/")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn copies_hash_what_they_write_and_listing_skips_links() {
        let dir = tempfile::tempdir().expect("tmp");
        let src = dir.path().join("src");
        std::fs::create_dir_all(src.join("a/b")).expect("mkdir");
        std::fs::write(src.join("a/b/f.txt"), "hello\n").expect("write");
        std::os::unix::fs::symlink("/etc/passwd", src.join("a/link")).expect("link");
        let (files, skipped) = files_under(&src).expect("list");
        assert_eq!(files, vec![PathBuf::from("a/b/f.txt")]);
        assert_eq!(skipped, 1);
        let dst = dir.path().join("dst/x/f.txt");
        let (size, sha) = copy_hashed(&src.join("a/b/f.txt"), &dst, 0o640).expect("copy");
        assert_eq!(size, 6);
        assert_eq!(sha, crate::util::sha256_file(&dst).expect("hash"));
        assert_eq!(mode_of(&dst).expect("mode"), 0o640);
        assert_eq!(slash(Path::new("a/b/f.txt")), "a/b/f.txt");
    }
}
