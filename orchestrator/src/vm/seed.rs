//! The cloud-init NoCloud seed of a job whose image boots from its own disk
//! (an imported cloud image): an ISO 9660 volume labelled `cidata` holding
//! `meta-data` (the job's instance id and host name) and `user-data` (a
//! `#cloud-config`: the job's SSH key for root, or for the image's user
//! with passwordless sudo; password logins off; an ed25519 host key). Made
//! with genisoimage, as testcloud makes its seeds.
//!
//! Both files are JSON, which is YAML: values (the key, the user name) are
//! serialized, never pasted into text cloud-init parses.

use std::path::{Path, PathBuf};
use std::process::Command;

use serde_json::json;

/// The volume label cloud-init's NoCloud data source looks for.
pub const VOLUME_LABEL: &str = "cidata";

#[derive(Debug, thiserror::Error)]
pub enum SeedError {
    #[error("cannot write the cloud-init seed in {0}")]
    Write(PathBuf, #[source] std::io::Error),
    #[error("cannot run genisoimage (is it installed? see scripts/setup-host.sh)")]
    Spawn(#[source] std::io::Error),
    #[error("genisoimage could not make {path}: {stderr}")]
    Failed { path: PathBuf, stderr: String },
}

/// What one job's guest is told at its first boot.
#[derive(Debug, Clone)]
pub struct Seed<'a> {
    /// cloud-init runs its once-per-instance modules for each new id: the
    /// job's domain name.
    pub instance_id: &'a str,
    pub hostname: &'a str,
    /// `root`, or the user to create with passwordless sudo.
    pub user: &'a str,
    /// `ssh-ed25519 AAAA… comment`
    pub public_key: &'a str,
}

impl Seed<'_> {
    pub fn meta_data(&self) -> String {
        let v = json!({
            "instance-id": self.instance_id,
            "local-hostname": self.hostname,
        });
        format!("{v:#}\n")
    }

    pub fn user_data(&self) -> String {
        let key = [self.public_key];
        let mut config = json!({
            // Root's own key, without the "please log in as…" command
            // distributions prefix to it.
            "disable_root": self.user != "root",
            "ssh_pwauth": false,
            "ssh_deletekeys": true,
            // One host key: RSA generation costs seconds under TCG.
            "ssh_genkeytypes": ["ed25519"],
            "final_message": "ferrotron: cloud-init finished after $UPTIME s",
        });
        if self.user == "root" {
            // Root only, not the image's default user (an empty list is
            // refused by cloud-init's schema).
            config["users"] = json!([{ "name": "root" }]);
            config["ssh_authorized_keys"] = json!(key);
        } else {
            config["users"] = json!([{
                "name": self.user,
                "sudo": "ALL=(ALL) NOPASSWD:ALL",
                "shell": "/bin/bash",
                "lock_passwd": true,
                "ssh_authorized_keys": key,
            }]);
        }
        format!("#cloud-config\n{config:#}\n")
    }

    /// Writes `user-data` and `meta-data` into `dir` and makes
    /// `<dir>/seed.iso` of them; returns its path.
    pub fn write(&self, dir: &Path) -> Result<PathBuf, SeedError> {
        let files = dir.join("seed");
        let werr = |e| SeedError::Write(files.clone(), e);
        std::fs::create_dir_all(&files).map_err(werr)?;
        std::fs::write(files.join("user-data"), self.user_data()).map_err(werr)?;
        std::fs::write(files.join("meta-data"), self.meta_data()).map_err(werr)?;
        let iso = dir.join("seed.iso");
        let out = Command::new("genisoimage")
            .arg("-quiet")
            .arg("-output")
            .arg(&iso)
            .args(["-volid", VOLUME_LABEL, "-joliet", "-rock", "--"])
            .args(["user-data", "meta-data"])
            .current_dir(&files)
            .output()
            .map_err(SeedError::Spawn)?;
        if !out.status.success() {
            return Err(SeedError::Failed {
                path: iso,
                stderr: String::from_utf8_lossy(&out.stderr).trim().to_string(),
            });
        }
        Ok(iso)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn yaml(text: &str) -> serde_json::Value {
        let body = text.strip_prefix("#cloud-config\n").unwrap_or(text);
        serde_json::from_str(body).expect("JSON, hence YAML")
    }

    #[test]
    fn root_gets_the_key_and_no_default_user() {
        let s = Seed {
            instance_id: "ferrotron-j1",
            hostname: "ferrotron-j1",
            user: "root",
            public_key: "ssh-ed25519 AAAA job",
        };
        let ud = s.user_data();
        assert!(ud.starts_with("#cloud-config\n"), "{ud}");
        let v = yaml(&ud);
        assert_eq!(v["disable_root"], false);
        assert_eq!(v["ssh_pwauth"], false);
        assert_eq!(v["users"], json!([{ "name": "root" }]));
        assert_eq!(v["ssh_authorized_keys"], json!(["ssh-ed25519 AAAA job"]));
        let md = yaml(&s.meta_data());
        assert_eq!(md["instance-id"], "ferrotron-j1");
    }

    #[test]
    fn another_user_is_a_passwordless_sudoer_and_values_stay_data() {
        let s = Seed {
            instance_id: "i",
            hostname: "h",
            user: "fedora",
            public_key: "ssh-ed25519 AAAA \"quoted\"\n#cloud-config: x",
        };
        let v = yaml(&s.user_data());
        assert_eq!(v["disable_root"], true);
        assert_eq!(v["users"][0]["name"], "fedora");
        assert_eq!(v["users"][0]["sudo"], "ALL=(ALL) NOPASSWD:ALL");
        assert_eq!(
            v["users"][0]["ssh_authorized_keys"][0],
            "ssh-ed25519 AAAA \"quoted\"\n#cloud-config: x"
        );
        assert!(v.get("ssh_authorized_keys").is_none());
    }

    #[test]
    fn the_iso_is_labelled_cidata() {
        if Command::new("genisoimage")
            .arg("-version")
            .output()
            .is_err()
        {
            return;
        }
        let dir = tempfile::tempdir().expect("tempdir");
        let iso = Seed {
            instance_id: "i",
            hostname: "h",
            user: "root",
            public_key: "ssh-ed25519 AAAA",
        }
        .write(dir.path())
        .expect("seed");
        let bytes = std::fs::read(&iso).expect("read");
        // The primary volume descriptor (sector 16): the volume id at 40.
        let pvd = &bytes[16 * 2048..17 * 2048];
        assert_eq!(&pvd[1..6], b"CD001");
        assert_eq!(&pvd[40..46], b"cidata");
    }
}
