//! A fresh ed25519 key pair per job. The private key stays in the job's
//! folder (mode 0600); the public key reaches the guest on the kernel
//! command line, so no key is shared by images or jobs.

use std::io::Write;
use std::os::unix::fs::OpenOptionsExt;
use std::path::{Path, PathBuf};

use ssh_key::{rand_core::OsRng, Algorithm, LineEnding, PrivateKey};

#[derive(Debug, thiserror::Error)]
pub enum KeyError {
    #[error("cannot generate an ed25519 key")]
    Generate(#[source] ssh_key::Error),
    #[error("cannot write key file {0}")]
    Write(PathBuf, #[source] std::io::Error),
    #[error("cannot read key file {0}")]
    Read(PathBuf, #[source] std::io::Error),
}

pub struct KeyPair {
    pub private_path: PathBuf,
    pub public_path: PathBuf,
    /// `ssh-ed25519 AAAA… ferrotron-job-<id>`
    pub public_openssh: String,
}

impl KeyPair {
    /// Generates a key pair and writes `id_ed25519` and `id_ed25519.pub`
    /// into `dir`.
    pub fn generate(dir: &Path, comment: &str) -> Result<KeyPair, KeyError> {
        let mut key =
            PrivateKey::random(&mut OsRng, Algorithm::Ed25519).map_err(KeyError::Generate)?;
        key.set_comment(comment);
        let private = key.to_openssh(LineEnding::LF).map_err(KeyError::Generate)?;
        let public_openssh = key.public_key().to_openssh().map_err(KeyError::Generate)?;
        let private_path = dir.join("id_ed25519");
        let public_path = dir.join("id_ed25519.pub");
        write_file(&private_path, private.as_bytes(), 0o600)?;
        write_file(
            &public_path,
            format!("{public_openssh}\n").as_bytes(),
            0o644,
        )?;
        Ok(KeyPair {
            private_path,
            public_path,
            public_openssh,
        })
    }

    /// The key pair [`KeyPair::generate`] wrote into `dir` before (a kept
    /// VM's job folder, read again by the service that takes it back).
    pub fn load(dir: &Path) -> Result<KeyPair, KeyError> {
        let private_path = dir.join("id_ed25519");
        let public_path = dir.join("id_ed25519.pub");
        let public_openssh = std::fs::read_to_string(&public_path)
            .map_err(|e| KeyError::Read(public_path.clone(), e))?
            .trim()
            .to_string();
        if !private_path.is_file() {
            return Err(KeyError::Read(
                private_path.clone(),
                std::io::Error::from(std::io::ErrorKind::NotFound),
            ));
        }
        Ok(KeyPair {
            private_path,
            public_path,
            public_openssh,
        })
    }

    /// The base64 key blob, as passed on the kernel command line
    /// (`ferrotron.key=<blob>`): no spaces, so it is one cmdline word.
    pub fn blob(&self) -> &str {
        self.public_openssh.split(' ').nth(1).unwrap_or_default()
    }
}

fn write_file(path: &Path, bytes: &[u8], mode: u32) -> Result<(), KeyError> {
    let mut f = std::fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(mode)
        .open(path)
        .map_err(|e| KeyError::Write(path.to_path_buf(), e))?;
    f.write_all(bytes)
        .map_err(|e| KeyError::Write(path.to_path_buf(), e))
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::unix::fs::PermissionsExt;

    #[test]
    fn generates_distinct_private_keys_with_safe_modes() {
        let a = tempfile::tempdir().expect("tempdir");
        let b = tempfile::tempdir().expect("tempdir");
        let ka = KeyPair::generate(a.path(), "job-a").expect("key a");
        let kb = KeyPair::generate(b.path(), "job-b").expect("key b");
        assert_ne!(ka.blob(), kb.blob());
        assert!(ka.public_openssh.starts_with("ssh-ed25519 AAAA"));
        assert!(!ka.blob().contains(' '));
        let mode = std::fs::metadata(&ka.private_path)
            .expect("meta")
            .permissions()
            .mode();
        assert_eq!(mode & 0o777, 0o600);
        let text = std::fs::read_to_string(&ka.private_path).expect("read");
        assert!(text.starts_with("-----BEGIN OPENSSH PRIVATE KEY-----"));
    }
}
