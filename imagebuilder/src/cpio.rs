//! A minimal writer for the `newc` cpio format the Linux kernel unpacks as initramfs.

use std::io::Write;

/// Errors of the cpio writer.
#[derive(Debug, thiserror::Error)]
pub enum CpioError {
    #[error("cpio write failed: {0}")]
    Io(#[from] std::io::Error),
    #[error("cpio entry name `{0}` is invalid (must be relative, non-empty, without NUL)")]
    BadName(String),
    #[error("cpio entry `{0}` is too large for the newc format")]
    TooLarge(String),
}

const S_IFDIR: u32 = 0o040000;
const S_IFREG: u32 = 0o100000;
const S_IFLNK: u32 = 0o120000;
const S_IFCHR: u32 = 0o020000;

/// Streams a newc archive. Entries are owned by root, mtime 0 (reproducible).
pub struct CpioWriter<W: Write> {
    out: W,
    next_ino: u32,
    written: u64,
}

impl<W: Write> CpioWriter<W> {
    pub fn new(out: W) -> Self {
        CpioWriter {
            out,
            next_ino: 1,
            written: 0,
        }
    }

    /// A directory (`name` like `bin` or `lib/modules`, no leading slash).
    pub fn dir(&mut self, name: &str, perm: u32) -> Result<(), CpioError> {
        self.entry(name, S_IFDIR | (perm & 0o7777), 2, 0, 0, &[])
    }

    /// A regular file with the given content.
    pub fn file(&mut self, name: &str, perm: u32, data: &[u8]) -> Result<(), CpioError> {
        self.entry(name, S_IFREG | (perm & 0o7777), 1, 0, 0, data)
    }

    /// A symbolic link `name` -> `target`.
    pub fn symlink(&mut self, name: &str, target: &str) -> Result<(), CpioError> {
        self.entry(name, S_IFLNK | 0o777, 1, 0, 0, target.as_bytes())
    }

    /// A character device node (e.g. `dev/console`, 5, 1).
    pub fn char_dev(
        &mut self,
        name: &str,
        perm: u32,
        major: u32,
        minor: u32,
    ) -> Result<(), CpioError> {
        self.entry(name, S_IFCHR | (perm & 0o7777), 1, major, minor, &[])
    }

    /// Writes the trailer and returns the inner writer.
    pub fn finish(mut self) -> Result<W, CpioError> {
        self.raw_entry("TRAILER!!!", 0, 0, 1, 0, 0, &[])?;
        // Pad the archive to a 512-byte boundary like GNU cpio does.
        let pad = (512 - (self.written % 512) as usize) % 512;
        self.out.write_all(&vec![0u8; pad])?;
        self.out.flush()?;
        Ok(self.out)
    }

    fn entry(
        &mut self,
        name: &str,
        mode: u32,
        nlink: u32,
        rmajor: u32,
        rminor: u32,
        data: &[u8],
    ) -> Result<(), CpioError> {
        if name.is_empty() || name.starts_with('/') || name.contains('\0') || name == "TRAILER!!!" {
            return Err(CpioError::BadName(name.to_string()));
        }
        let ino = self.next_ino;
        self.next_ino += 1;
        self.raw_entry(name, ino, mode, nlink, rmajor, rminor, data)
    }

    #[allow(clippy::too_many_arguments)]
    fn raw_entry(
        &mut self,
        name: &str,
        ino: u32,
        mode: u32,
        nlink: u32,
        rmajor: u32,
        rminor: u32,
        data: &[u8],
    ) -> Result<(), CpioError> {
        let size = u32::try_from(data.len()).map_err(|_| CpioError::TooLarge(name.to_string()))?;
        let namesize = name.len() + 1;
        let header = format!(
            "070701{ino:08x}{mode:08x}{uid:08x}{gid:08x}{nlink:08x}{mtime:08x}{size:08x}\
             {dmaj:08x}{dmin:08x}{rmajor:08x}{rminor:08x}{namesize:08x}{check:08x}",
            uid = 0,
            gid = 0,
            mtime = 0,
            dmaj = 0,
            dmin = 0,
            check = 0,
        );
        self.out.write_all(header.as_bytes())?;
        self.out.write_all(name.as_bytes())?;
        self.out.write_all(&[0])?;
        let hlen = header.len() + namesize;
        let pad = (4 - hlen % 4) % 4;
        self.out.write_all(&[0u8; 3][..pad])?;
        self.out.write_all(data)?;
        let dpad = (4 - data.len() % 4) % 4;
        self.out.write_all(&[0u8; 3][..dpad])?;
        self.written += (hlen + pad + data.len() + dpad) as u64;
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::process::Command;

    fn sample() -> Vec<u8> {
        let mut w = CpioWriter::new(Vec::new());
        w.dir("bin", 0o755).expect("dir");
        w.file("bin/hello", 0o755, b"#!/bin/sh\necho hi\n")
            .expect("file");
        w.file("odd", 0o644, b"12345").expect("file");
        w.symlink("bin/sh", "hello").expect("link");
        w.dir("dev", 0o755).expect("dir");
        w.char_dev("dev/console", 0o600, 5, 1).expect("dev");
        w.file("empty", 0o644, b"").expect("file");
        w.finish().expect("finish")
    }

    #[test]
    fn rejects_bad_names() {
        let mut w = CpioWriter::new(Vec::new());
        assert!(w.file("/abs", 0o644, b"").is_err());
        assert!(w.file("", 0o644, b"").is_err());
    }

    #[test]
    fn cpio_tool_lists_entries() {
        let bytes = sample();
        assert_eq!(bytes.len() % 512, 0);
        let dir = tempfile::tempdir().expect("tempdir");
        let archive = dir.path().join("a.cpio");
        std::fs::write(&archive, &bytes).expect("write");
        let out = Command::new("cpio")
            .args(["-t", "-v", "--quiet", "-F"])
            .arg(&archive)
            .output()
            .expect("run cpio");
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
        let listing = String::from_utf8_lossy(&out.stdout);
        let names: Vec<&str> = listing
            .lines()
            .map(|l| l.split_whitespace().collect::<Vec<_>>())
            .map(|f| {
                if f[0].starts_with('l') {
                    f[f.len() - 3]
                } else {
                    f[f.len() - 1]
                }
            })
            .collect();
        assert_eq!(
            names,
            [
                "bin",
                "bin/hello",
                "odd",
                "bin/sh",
                "dev",
                "dev/console",
                "empty"
            ]
        );
        assert!(listing.contains("bin/sh -> hello"), "{listing}");
        assert!(
            listing.lines().any(|l| l.starts_with("crw-------")),
            "{listing}"
        );
    }

    #[test]
    fn cpio_tool_extracts_content() {
        let bytes = sample();
        let dir = tempfile::tempdir().expect("tempdir");
        let archive = dir.path().join("a.cpio");
        std::fs::write(&archive, &bytes).expect("write");
        let out_dir = dir.path().join("x");
        std::fs::create_dir(&out_dir).expect("mkdir");
        // Extract everything but the device node (creating it needs privileges).
        let status = Command::new("cpio")
            .args(["-i", "-d", "--quiet", "--no-absolute-filenames", "-F"])
            .arg(&archive)
            .args(["bin", "bin/*", "odd", "empty"])
            .current_dir(&out_dir)
            .status()
            .expect("run cpio");
        assert!(status.success());
        assert_eq!(
            std::fs::read(out_dir.join("bin/hello")).expect("read"),
            b"#!/bin/sh\necho hi\n"
        );
        assert_eq!(std::fs::read(out_dir.join("odd")).expect("read"), b"12345");
        assert_eq!(
            std::fs::read_link(out_dir.join("bin/sh")).expect("readlink"),
            std::path::Path::new("hello")
        );
        assert_eq!(std::fs::read(out_dir.join("empty")).expect("read"), b"");
    }
}
