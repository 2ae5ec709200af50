//! The packages a task asks for (`environment.rpm`, `environment.packages`)
//! and how its guest gets them.
//!
//! - [`plan`] decides, before any VM starts, what the guest must install:
//!   RPM names are mapped to the image's names (the recipe's `rpm_names`),
//!   what the image has installed is skipped, and a name the image can
//!   neither provide nor install is the job's error, naming it.
//! - [`proxy`] is the host-side caching proxy the guest's package manager
//!   fetches through: reachable only through the job's tunnel, forwarding
//!   only to the image's repositories (or the mirrors configured for them).

pub mod proxy;

use std::collections::BTreeSet;
use std::path::PathBuf;

use ferrotron_agent::protocol::{self as proto, Install};

use crate::formula::Environment;
use crate::images::ResolvedImage;

#[derive(Debug, thiserror::Error)]
pub enum PackagesError {
    #[error(
        "{key}: image {image} lacks {names} and cannot install packages (it has no \
         package repositories): run the task on an image that can, such as `debian` \
         (images/debian.yaml)"
    )]
    NoInstaller {
        key: &'static str,
        image: String,
        names: String,
    },
    #[error(
        "{key}: `{name}`{mapped} is not a package image {image} has or can install \
         (not in {repositories})"
    )]
    Unknown {
        key: &'static str,
        name: String,
        mapped: String,
        image: String,
        repositories: String,
    },
    #[error("{key}: `{name}` is not a package name")]
    BadName { key: &'static str, name: String },
    #[error("image {image}: cannot read its list of available packages {path}")]
    Available {
        image: String,
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
}

/// A repository URL mapped to another one (a local mirror of it): the
/// proxy fetches `to` + the rest of the path where the guest asked for
/// `from` + the rest. `--package-mirror FROM=TO`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Mirror {
    pub from: String,
    pub to: String,
}

impl std::str::FromStr for Mirror {
    type Err = String;

    fn from_str(s: &str) -> Result<Mirror, String> {
        let (from, to) = s
            .split_once('=')
            .ok_or_else(|| format!("`{s}`: give REPOSITORY_URL=MIRROR_URL"))?;
        for u in [from, to] {
            if !(u.starts_with("http://") || u.starts_with("https://")) || u.len() < 10 {
                return Err(format!("`{u}` is not an http:// or https:// URL"));
            }
        }
        Ok(Mirror {
            from: from.trim_end_matches('/').to_string(),
            to: to.trim_end_matches('/').to_string(),
        })
    }
}

/// Where the package proxy fetches from and how much it keeps.
#[derive(Debug, Clone)]
pub struct PackageSettings {
    pub mirrors: Vec<Mirror>,
    /// Largest size of `<data dir>/packages`.
    pub cache_max_bytes: u64,
}

impl Default for PackageSettings {
    fn default() -> PackageSettings {
        PackageSettings {
            mirrors: Vec::new(),
            cache_max_bytes: 4 * 1024 * 1024 * 1024,
        }
    }
}

/// What the guest must install for `env` on `image`: `None` when the
/// image has everything (or nothing is asked for). Checked before any VM
/// starts.
pub fn plan(env: &Environment, image: &ResolvedImage) -> Result<Option<Install>, PackagesError> {
    let installed: BTreeSet<&str> = image.packages.iter().map(String::as_str).collect();
    let rpm_names = image.install.as_ref().map(|i| &i.rpm_names);
    // (key, asked for, the image's name)
    let wanted: Vec<(&'static str, &String, String)> = env
        .rpm
        .iter()
        .map(|n| {
            let mapped = rpm_names.and_then(|m| m.get(n)).unwrap_or(n).clone();
            ("environment.rpm", n, mapped)
        })
        .chain(
            env.packages
                .iter()
                .map(|n| ("environment.packages", n, n.clone())),
        )
        .collect();
    let missing: Vec<&(&'static str, &String, String)> = wanted
        .iter()
        .filter(|(_, _, name)| !installed.contains(name.as_str()))
        .collect();
    let Some(first) = missing.first() else {
        return Ok(None);
    };
    let Some(install) = &image.install else {
        let key = first.0;
        let names: Vec<&str> = missing
            .iter()
            .filter(|m| m.0 == key)
            .map(|m| m.1.as_str())
            .collect();
        return Err(PackagesError::NoInstaller {
            key,
            image: image.label(),
            names: names.join(", "),
        });
    };
    let path = image.dir.join(&install.available);
    let text = std::fs::read_to_string(&path).map_err(|source| PackagesError::Available {
        image: image.label(),
        path: path.clone(),
        source,
    })?;
    let available: BTreeSet<&str> = text.lines().map(str::trim).collect();
    let mut out = Vec::new();
    for (key, asked, name) in missing {
        if !proto::is_debian_package_name(name) {
            return Err(PackagesError::BadName {
                key,
                name: (*asked).clone(),
            });
        }
        if !available.contains(name.as_str()) {
            return Err(PackagesError::Unknown {
                key,
                name: (*asked).clone(),
                mapped: if *asked == name {
                    String::new()
                } else {
                    format!(" (the image's `{name}`)")
                },
                image: image.label(),
                repositories: install.repositories.join(", "),
            });
        }
        if !out.contains(name) {
            out.push(name.clone());
        }
    }
    Ok(Some(Install {
        manager: install.manager.clone(),
        packages: out,
        timeout_secs: None,
    }))
}

#[cfg(test)]
mod tests {
    use super::*;
    use ferrotron_imagebuilder::PackageInstall;
    use std::time::Duration;

    fn image(dir: &std::path::Path, install: bool) -> ResolvedImage {
        std::fs::write(
            dir.join("available.txt"),
            "hello\nlibc6\npython3-yaml\nrpmlint\n",
        )
        .expect("write");
        ResolvedImage {
            name: if install { "debian" } else { "tiny" }.into(),
            version: "3".into(),
            dir: dir.to_path_buf(),
            source: ferrotron_imagebuilder::BootSource::Kernel,
            firmware: ferrotron_imagebuilder::Firmware::Bios,
            user: "root".into(),
            kernel: dir.join("vmlinuz"),
            initrd: dir.join("initrd.img"),
            disk: dir.join("disk.qcow2"),
            cmdline: String::new(),
            memory_mib: 512,
            vcpus: 1,
            ssh_timeout: Duration::from_secs(60),
            agent_sha256: String::new(),
            agent_version: String::new(),
            warm_start: true,
            packages: vec!["rpmlint".into(), "libc6".into()],
            install: install.then(|| PackageInstall {
                manager: "apt".into(),
                repositories: vec!["http://deb.debian.org/debian".into()],
                rpm_names: [("python3-pyyaml".to_string(), "python3-yaml".to_string())].into(),
                available: "available.txt".into(),
            }),
        }
    }

    fn env(rpm: &[&str], packages: &[&str]) -> Environment {
        Environment {
            image: None,
            rpm: rpm.iter().map(|s| s.to_string()).collect(),
            packages: packages.iter().map(|s| s.to_string()).collect(),
            memory_mib: None,
        }
    }

    #[test]
    fn installed_packages_need_nothing_and_others_are_installed_by_their_image_names() {
        let dir = tempfile::tempdir().expect("tempdir");
        let img = image(dir.path(), true);
        assert_eq!(plan(&env(&["rpmlint"], &[]), &img).expect("plan"), None);
        let p = plan(
            &env(&["rpmlint", "python3-pyyaml"], &["hello", "hello"]),
            &img,
        )
        .expect("plan")
        .expect("something to install");
        assert_eq!(p.manager, "apt");
        assert_eq!(p.packages, ["python3-yaml", "hello"]);
    }

    #[test]
    fn a_name_the_image_cannot_provide_is_named() {
        let dir = tempfile::tempdir().expect("tempdir");
        let img = image(dir.path(), true);
        let e = plan(&env(&[], &["no-such-package"]), &img)
            .expect_err("unknown")
            .to_string();
        assert_eq!(
            e,
            "environment.packages: `no-such-package` is not a package image debian:3 has \
             or can install (not in http://deb.debian.org/debian)"
        );
        let e = plan(&env(&["$(reboot)"], &[]), &img)
            .expect_err("bad")
            .to_string();
        assert!(e.contains("`$(reboot)` is not a package name"), "{e}");
        let tiny = image(dir.path(), false);
        let e = plan(&env(&["rpmlint", "koji"], &[]), &tiny)
            .expect_err("tiny")
            .to_string();
        assert!(
            e.starts_with("environment.rpm: image tiny:3 lacks koji and cannot install"),
            "{e}"
        );
    }

    #[test]
    fn mirrors_parse() {
        let m: Mirror = "http://deb.debian.org/debian/=http://127.0.0.1:8080/debian"
            .parse()
            .expect("mirror");
        assert_eq!(m.from, "http://deb.debian.org/debian");
        assert_eq!(m.to, "http://127.0.0.1:8080/debian");
        assert!("deb.debian.org".parse::<Mirror>().is_err());
        assert!("ftp://a/b=http://c/d".parse::<Mirror>().is_err());
    }
}
