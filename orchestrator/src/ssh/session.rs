//! One authenticated SSH session to a job's guest.

use std::io::{Read, Write};
use std::net::TcpStream;
use std::path::Path;
use std::time::Duration;

use ssh2::{Channel, HashType, Session};

use super::keys::KeyPair;

#[derive(Debug, thiserror::Error)]
pub enum SshError {
    #[error("SSH handshake with the guest failed")]
    Handshake(#[source] ssh2::Error),
    #[error(
        "the guest refused the job's key for {user} (was ferrotron.key= on the kernel command line, or the cloud-init seed read?)"
    )]
    Auth {
        user: String,
        #[source]
        source: ssh2::Error,
    },
    #[error("SSH {what} failed")]
    Channel {
        what: &'static str,
        #[source]
        source: ssh2::Error,
    },
    #[error("SSH {what} failed")]
    Io {
        what: &'static str,
        #[source]
        source: std::io::Error,
    },
    #[error("`{command}` in the guest exited with status {status}: {stderr}")]
    Remote {
        command: String,
        status: i32,
        stderr: String,
    },
    #[error("{0}")]
    Stalled(String),
}

/// The guest's host key, recorded per job.
#[derive(Debug, Clone)]
pub struct HostKey {
    /// `ssh-ed25519 AAAA…`
    pub openssh: String,
    /// `SHA256:…` as OpenSSH prints it.
    pub fingerprint: String,
}

/// How a remote command ended.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Exit {
    Status(i32),
    Signal(String),
}

impl std::fmt::Display for Exit {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Exit::Status(s) => write!(f, "exit status {s}"),
            Exit::Signal(s) => write!(f, "signal {s}"),
        }
    }
}

/// What the streaming loop asks its caller between reads.
pub enum Poll {
    Continue,
    Abort(String),
}

pub struct GuestSsh {
    session: Session,
    pub host_key: HostKey,
    pub port: u16,
    /// Set when a stream was abandoned: the peer may be frozen, so nothing
    /// more is attempted that would wait for its answer.
    broken: std::cell::Cell<bool>,
}

/// Read granularity while streaming: how often the caller's checks run.
const TICK: Duration = Duration::from_millis(250);

impl GuestSsh {
    /// Authenticates as `user` (root, or a cloud image's sudoer) with the
    /// job's key over a connected stream to the guest's SSH server (the one
    /// whose banner the wait peeked at).
    pub fn handshake(
        tcp: TcpStream,
        port: u16,
        key: &KeyPair,
        user: &str,
        timeout: Duration,
    ) -> Result<GuestSsh, SshError> {
        let _ = tcp.set_nodelay(true);
        let mut session = Session::new().map_err(SshError::Handshake)?;
        session.set_tcp_stream(tcp);
        session.set_timeout(timeout.as_millis().min(u128::from(u32::MAX)) as u32);
        session.handshake().map_err(SshError::Handshake)?;
        let host_key = host_key(&session);
        session
            .userauth_pubkey_file(user, Some(&key.public_path), &key.private_path, None)
            .map_err(|source| SshError::Auth {
                user: user.to_string(),
                source,
            })?;
        Ok(GuestSsh {
            session,
            host_key,
            port,
            broken: std::cell::Cell::new(false),
        })
    }

    fn channel(&self, command: &str) -> Result<Channel, SshError> {
        let mut ch = self
            .session
            .channel_session()
            .map_err(|source| SshError::Channel {
                what: "channel open",
                source,
            })?;
        ch.exec(command).map_err(|source| SshError::Channel {
            what: "exec",
            source,
        })?;
        Ok(ch)
    }

    /// Runs `command` with `stdin`, calling `on_line` for each line of stdout
    /// as it arrives and `poll` every [`TICK`] while waiting (it may abort).
    /// Returns how the command ended and its stderr.
    pub fn stream(
        &self,
        command: &str,
        stdin: &[u8],
        mut on_line: impl FnMut(&str),
        mut poll: impl FnMut() -> Poll,
    ) -> Result<(Exit, String), SshError> {
        let mut ch = self.channel(command)?;
        ch.write_all(stdin).map_err(|source| SshError::Io {
            what: "upload",
            source,
        })?;
        ch.send_eof().map_err(|source| SshError::Channel {
            what: "eof",
            source,
        })?;
        let previous = self.session.timeout();
        self.session.set_timeout(TICK.as_millis() as u32);
        let result = (|| {
            let mut pending = Vec::new();
            let mut buf = vec![0u8; 32 * 1024];
            loop {
                match ch.read(&mut buf) {
                    Ok(0) => break,
                    Ok(n) => {
                        pending.extend_from_slice(&buf[..n]);
                        while let Some(i) = pending.iter().position(|b| *b == b'\n') {
                            let line: Vec<u8> = pending.drain(..=i).collect();
                            on_line(String::from_utf8_lossy(&line[..i]).trim_end_matches('\r'));
                        }
                    }
                    Err(e)
                        if e.kind() == std::io::ErrorKind::TimedOut
                            || e.kind() == std::io::ErrorKind::WouldBlock =>
                    {
                        if let Poll::Abort(why) = poll() {
                            self.abandon();
                            return Err(SshError::Stalled(why));
                        }
                    }
                    Err(source) => {
                        self.abandon();
                        return Err(SshError::Io {
                            what: "read",
                            source,
                        });
                    }
                }
            }
            if !pending.is_empty() {
                on_line(String::from_utf8_lossy(&pending).trim_end());
            }
            let mut err = String::new();
            let _ = ch.stderr().read_to_string(&mut err);
            let _ = ch.wait_close();
            Ok((exit_of(&ch), err))
        })();
        if !self.is_broken() {
            self.session.set_timeout(previous);
        }
        result
    }

    /// Gives up on the peer: later calls fail fast instead of waiting for a
    /// frozen or dead guest (closing a channel waits for the peer's answer).
    fn abandon(&self) {
        self.broken.set(true);
        self.session.set_timeout(200);
    }

    /// True once a stream was abandoned.
    pub fn is_broken(&self) -> bool {
        self.broken.get()
    }

    /// Runs `command` (which writes a tar archive on stdout) and unpacks the
    /// regular files and folders into `dest`; anything else (links, devices,
    /// paths escaping `dest`) is skipped. Returns the number of files.
    pub fn download_tar(&self, command: &str, dest: &Path) -> Result<usize, SshError> {
        let mut ch = self.channel(command)?;
        ch.send_eof().map_err(|source| SshError::Channel {
            what: "eof",
            source,
        })?;
        let files = unpack_safely(&mut ch, dest).map_err(|source| SshError::Io {
            what: "download",
            source,
        })?;
        // Drain what tar may still send after the archive's end.
        let _ = std::io::copy(&mut ch, &mut std::io::sink());
        let mut err = String::new();
        let _ = ch.stderr().read_to_string(&mut err);
        let _ = ch.wait_close();
        match exit_of(&ch) {
            Exit::Status(0) => Ok(files),
            exit => Err(SshError::Remote {
                command: command.to_string(),
                status: if let Exit::Status(s) = exit { s } else { -1 },
                stderr: err.trim().to_string(),
            }),
        }
    }

    /// Asks the guest to power off now, without waiting for an answer (the
    /// connection dies with it).
    pub fn poweroff(&self) -> bool {
        !self.is_broken() && self.channel("poweroff -f").is_ok()
    }
}

fn exit_of(ch: &Channel) -> Exit {
    if let Ok(sig) = ch.exit_signal() {
        if let Some(s) = sig.exit_signal {
            return Exit::Signal(s);
        }
    }
    Exit::Status(ch.exit_status().unwrap_or(-1))
}

fn host_key(session: &Session) -> HostKey {
    use base64_engine::encode;
    let (openssh, fingerprint) = match session.host_key() {
        Some((bytes, kind)) => {
            let name = match kind {
                ssh2::HostKeyType::Ed25519 => "ssh-ed25519",
                ssh2::HostKeyType::Rsa => "ssh-rsa",
                ssh2::HostKeyType::Ecdsa256 => "ecdsa-sha2-nistp256",
                ssh2::HostKeyType::Ecdsa384 => "ecdsa-sha2-nistp384",
                ssh2::HostKeyType::Ecdsa521 => "ecdsa-sha2-nistp521",
                _ => "unknown",
            };
            let fp = session
                .host_key_hash(HashType::Sha256)
                .map(|h| format!("SHA256:{}", encode(h, false)))
                .unwrap_or_default();
            (format!("{name} {}", encode(bytes, true)), fp)
        }
        None => (String::new(), String::new()),
    };
    HostKey {
        openssh,
        fingerprint,
    }
}

/// Unpacks a tar stream into `dest`, keeping only regular files and
/// folders with relative, `..`-free paths, and of modes only "executable".
pub fn unpack_safely(reader: impl Read, dest: &Path) -> std::io::Result<usize> {
    let mut archive = tar::Archive::new(reader);
    archive.set_preserve_permissions(false);
    let mut files = 0;
    for entry in archive.entries()? {
        let mut entry = entry?;
        let kind = entry.header().entry_type();
        let rel = entry.path()?.to_path_buf();
        let clean = rel.components().all(|c| {
            matches!(
                c,
                std::path::Component::Normal(_) | std::path::Component::CurDir
            )
        });
        if !clean {
            tracing::warn!("skipped unsafe path in guest archive: {}", rel.display());
            continue;
        }
        let target = dest.join(&rel);
        if kind.is_dir() {
            std::fs::create_dir_all(&target)?;
        } else if kind.is_file() {
            if let Some(parent) = target.parent() {
                std::fs::create_dir_all(parent)?;
            }
            // Only the executable bit is kept (as `tar -x` in the guest
            // does), so that `exec: ./script` runs the same on both runners.
            let executable = entry.header().mode().is_ok_and(|m| m & 0o100 != 0);
            let mut out = std::fs::File::create(&target)?;
            std::io::copy(&mut entry, &mut out)?;
            if executable {
                use std::os::unix::fs::PermissionsExt;
                out.set_permissions(std::fs::Permissions::from_mode(0o755))?;
            }
            files += 1;
        } else {
            tracing::debug!("skipped {:?} entry {}", kind, rel.display());
        }
    }
    Ok(files)
}

/// Minimal standard base64 (the host key blob and its fingerprint); not
/// worth a dependency.
mod base64_engine {
    const ALPHABET: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";

    pub fn encode(data: &[u8], pad: bool) -> String {
        let mut out = String::with_capacity(data.len().div_ceil(3) * 4);
        for chunk in data.chunks(3) {
            let b = [
                chunk[0],
                *chunk.get(1).unwrap_or(&0),
                *chunk.get(2).unwrap_or(&0),
            ];
            let n = (u32::from(b[0]) << 16) | (u32::from(b[1]) << 8) | u32::from(b[2]);
            for i in 0..4 {
                if i <= chunk.len() {
                    out.push(ALPHABET[((n >> (18 - 6 * i)) & 63) as usize] as char);
                } else if pad {
                    out.push('=');
                }
            }
        }
        out
    }

    #[cfg(test)]
    mod tests {
        #[test]
        fn matches_rfc4648_vectors() {
            assert_eq!(super::encode(b"", true), "");
            assert_eq!(super::encode(b"f", true), "Zg==");
            assert_eq!(super::encode(b"fo", true), "Zm8=");
            assert_eq!(super::encode(b"foo", true), "Zm9v");
            assert_eq!(super::encode(b"foob", false), "Zm9vYg");
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn unpack_skips_links_and_escaping_paths() {
        let mut builder = tar::Builder::new(Vec::new());
        let mut h = tar::Header::new_gnu();
        h.set_size(2);
        h.set_mode(0o644);
        h.set_cksum();
        builder
            .append_data(&mut h.clone(), "ok/file.txt", &b"hi"[..])
            .expect("append");
        let mut link = tar::Header::new_gnu();
        link.set_entry_type(tar::EntryType::Symlink);
        link.set_size(0);
        builder
            .append_link(&mut link, "evil", "/etc/passwd")
            .expect("link");
        // A raw header with `..` in it (the builder refuses to write one).
        let mut raw = tar::Header::new_old();
        raw.as_old_mut().name[..12].copy_from_slice(b"../escape.tx");
        raw.set_size(2);
        raw.set_cksum();
        builder.append(&raw, &b"no"[..]).expect("raw");
        let bytes = builder.into_inner().expect("finish");

        let dir = tempfile::tempdir().expect("tempdir");
        let dest = dir.path().join("dest");
        std::fs::create_dir(&dest).expect("mkdir");
        let n = unpack_safely(&bytes[..], &dest).expect("unpack");
        assert_eq!(n, 1);
        assert_eq!(
            std::fs::read(dest.join("ok/file.txt")).expect("read"),
            b"hi"
        );
        assert!(!dest.join("evil").exists());
        assert!(!dir.path().join("escape.tx").exists());
    }
}
