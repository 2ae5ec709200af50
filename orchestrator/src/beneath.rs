//! Files below a folder, reached without following symbolic links.
//!
//! A job's artifacts come from a guest that runs as root: it can leave a
//! symbolic link where a folder or a log is expected (`task_output ->
//! /etc`, `runner.log -> /etc/shadow`). Every path below a [`Dir`] is
//! resolved by the kernel with `openat2(RESOLVE_BENEATH |
//! RESOLVE_NO_SYMLINKS)`, so a link anywhere in it is refused rather than
//! followed, whatever changes on disk between a check and a use. The folder
//! a `Dir` is opened on may itself be a link (an operator's choice of data
//! folder); nothing below it may.

use std::fs::File;
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd};
use std::path::{Component, Path, PathBuf};

use nix::errno::Errno;
use nix::fcntl::{openat2, renameat, OFlag, OpenHow, ResolveFlag};
use nix::sys::stat::{mkdirat, Mode};
use nix::unistd::{unlinkat, UnlinkatFlags};

#[derive(Debug, thiserror::Error)]
pub enum BeneathError {
    #[error("{0} is or passes through a symbolic link")]
    Link(PathBuf),
    #[error("{0} is a file where a folder is needed")]
    NotFolder(PathBuf),
    #[error("{0} is a folder where a file is needed")]
    Folder(PathBuf),
    #[error("{0} does not exist")]
    Missing(PathBuf),
    #[error("cannot open {path}")]
    Io {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
}

impl BeneathError {
    fn of(errno: Errno, path: PathBuf) -> BeneathError {
        match errno {
            // ELOOP: a link with RESOLVE_NO_SYMLINKS (or O_NOFOLLOW);
            // EXDEV: a path that would leave the folder.
            Errno::ELOOP | Errno::EXDEV => BeneathError::Link(path),
            Errno::ENOTDIR => BeneathError::NotFolder(path),
            Errno::EISDIR => BeneathError::Folder(path),
            Errno::ENOENT => BeneathError::Missing(path),
            e => BeneathError::Io {
                path,
                source: std::io::Error::from(e),
            },
        }
    }
}

const RESOLVE: ResolveFlag = ResolveFlag::RESOLVE_BENEATH.union(ResolveFlag::RESOLVE_NO_SYMLINKS);

/// An open folder; paths below it never follow links.
#[derive(Debug)]
pub struct Dir {
    fd: OwnedFd,
    /// For messages only.
    path: PathBuf,
}

impl Dir {
    /// Opens `path` itself (following links: the caller chose it).
    #[expect(unsafe_code, reason = "owning the descriptor `open` returns")]
    pub fn open(path: &Path) -> Result<Dir, BeneathError> {
        let fd = nix::fcntl::open(
            path,
            OFlag::O_DIRECTORY | OFlag::O_RDONLY | OFlag::O_CLOEXEC,
            Mode::empty(),
        )
        .map_err(|e| BeneathError::of(e, path.to_path_buf()))?;
        Ok(Dir {
            // SAFETY: `open` returned a new descriptor that nothing else owns.
            fd: unsafe { OwnedFd::from_raw_fd(fd) },
            path: path.to_path_buf(),
        })
    }

    pub fn path(&self) -> &Path {
        &self.path
    }

    #[expect(unsafe_code, reason = "owning the descriptor `openat2` returns")]
    fn at(&self, rel: &Path, flags: OFlag, mode: Mode) -> Result<OwnedFd, BeneathError> {
        let how = OpenHow::new()
            .flags(flags | OFlag::O_CLOEXEC)
            .mode(mode)
            .resolve(RESOLVE);
        let fd = openat2(self.fd.as_raw_fd(), rel, how)
            .map_err(|e| BeneathError::of(e, self.path.join(rel)))?;
        // SAFETY: `openat2` returned a new descriptor that nothing else owns.
        Ok(unsafe { OwnedFd::from_raw_fd(fd) })
    }

    /// The folder `rel` below this one, made (with `mode`) where missing
    /// when `create` is set. `rel` has only normal components.
    pub fn folder(&self, rel: &Path, create: bool, mode: u32) -> Result<Dir, BeneathError> {
        let mut done = PathBuf::new();
        let mut dir = Dir {
            fd: self.fd.try_clone().map_err(|source| BeneathError::Io {
                path: self.path.clone(),
                source,
            })?,
            path: self.path.clone(),
        };
        for c in rel.components() {
            let Component::Normal(name) = c else {
                return Err(BeneathError::Link(self.path.join(rel)));
            };
            done.push(name);
            if create {
                match mkdirat(
                    Some(dir.fd.as_raw_fd()),
                    name,
                    Mode::from_bits_truncate(mode),
                ) {
                    Ok(()) | Err(Errno::EEXIST) => {}
                    Err(e) => return Err(BeneathError::of(e, self.path.join(&done))),
                }
            }
            let fd = dir
                .at(
                    Path::new(name),
                    OFlag::O_DIRECTORY | OFlag::O_RDONLY,
                    Mode::empty(),
                )
                .map_err(|e| match e {
                    // Name the whole path walked so far, not the last part.
                    BeneathError::Link(_) => BeneathError::Link(self.path.join(&done)),
                    BeneathError::NotFolder(_) => BeneathError::NotFolder(self.path.join(&done)),
                    other => other,
                })?;
            dir = Dir {
                fd,
                path: self.path.join(&done),
            };
        }
        Ok(dir)
    }

    /// Opens the file `rel` below this folder for reading.
    pub fn read(&self, rel: &Path) -> Result<File, BeneathError> {
        let fd = self.at(rel, OFlag::O_RDONLY, Mode::empty())?;
        let file = File::from(fd);
        let meta = file.metadata().map_err(|source| BeneathError::Io {
            path: self.path.join(rel),
            source,
        })?;
        if meta.is_dir() {
            return Err(BeneathError::Folder(self.path.join(rel)));
        }
        Ok(file)
    }

    /// Creates the new file `name` in this folder (never an existing one,
    /// never through a link), mode `mode`.
    pub fn create_new(&self, name: &str, mode: u32) -> Result<File, BeneathError> {
        let fd = self.at(
            Path::new(name),
            OFlag::O_WRONLY | OFlag::O_CREAT | OFlag::O_EXCL | OFlag::O_NOFOLLOW,
            Mode::from_bits_truncate(mode),
        )?;
        Ok(File::from(fd))
    }

    /// Renames `from` to `to`, both in this folder. A link at `to` is
    /// replaced, not followed; a folder at `to` is an error.
    pub fn rename(&self, from: &str, to: &str) -> Result<(), BeneathError> {
        let fd = Some(self.fd.as_raw_fd());
        renameat(fd, from, fd, to).map_err(|e| BeneathError::of(e, self.path.join(to)))
    }

    /// Removes the file `name` in this folder, if it is there.
    pub fn remove(&self, name: &str) {
        let _ = unlinkat(Some(self.fd.as_raw_fd()), name, UnlinkatFlags::NoRemoveDir);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::{Read, Write};
    use std::os::unix::fs::symlink;

    #[test]
    fn links_are_refused_anywhere_below() {
        let t = tempfile::tempdir().expect("tempdir");
        let outside = t.path().join("outside");
        std::fs::create_dir(&outside).expect("mkdir");
        std::fs::write(outside.join("secret"), "s").expect("write");
        let root = t.path().join("root");
        std::fs::create_dir_all(root.join("job")).expect("mkdir");
        symlink(&outside, root.join("job/task_output")).expect("symlink");
        symlink(outside.join("secret"), root.join("job/runner.log")).expect("symlink");
        let dir = Dir::open(&root).expect("open");

        let e = dir
            .folder(Path::new("job/task_output"), true, 0o700)
            .expect_err("a linked folder");
        assert_eq!(
            e.to_string(),
            format!(
                "{} is or passes through a symbolic link",
                root.join("job/task_output").display()
            )
        );
        let e = dir
            .read(Path::new("job/runner.log"))
            .expect_err("a linked file");
        assert!(matches!(e, BeneathError::Link(_)), "{e}");
        let e = dir
            .read(Path::new("job/task_output/secret"))
            .expect_err("through a link");
        assert!(matches!(e, BeneathError::Link(_)), "{e}");

        // Real folders and files work, and renaming over a link replaces
        // the link.
        let job = dir
            .folder(Path::new("job/logs/a"), true, 0o700)
            .expect("made");
        let mut f = job.create_new(".tmp", 0o600).expect("create");
        f.write_all(b"hello").expect("write");
        job.rename(".tmp", "x.log").expect("rename");
        let mut s = String::new();
        dir.read(Path::new("job/logs/a/x.log"))
            .expect("read")
            .read_to_string(&mut s)
            .expect("read");
        assert_eq!(s, "hello");
        let jobdir = dir.folder(Path::new("job"), false, 0).expect("job");
        jobdir.create_new(".tmp", 0o600).expect("create");
        jobdir
            .rename(".tmp", "runner.log")
            .expect("replaces the link");
        assert!(!std::fs::symlink_metadata(root.join("job/runner.log"))
            .expect("meta")
            .file_type()
            .is_symlink());
        assert_eq!(
            std::fs::read_to_string(outside.join("secret")).expect("kept"),
            "s"
        );

        // A file where a folder is needed, and the other way round.
        let e = dir
            .folder(Path::new("job/logs/a/x.log/deeper"), true, 0o700)
            .expect_err("file as folder");
        assert!(matches!(e, BeneathError::NotFolder(_)), "{e}");
        jobdir.create_new(".tmp2", 0o600).expect("create");
        let e = jobdir.rename(".tmp2", "logs").expect_err("folder as file");
        assert!(matches!(e, BeneathError::Folder(_)), "{e}");
    }
}
