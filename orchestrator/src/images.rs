//! Finding a base image for a job: the image store's manifest turned into
//! absolute paths and boot settings.

use std::path::PathBuf;
use std::time::Duration;

use ferrotron_imagebuilder::{BootSource, Firmware, ImageStore, Manifest};

/// Default image when neither the formula nor the command line names one.
pub const DEFAULT_IMAGE: &str = "tiny";

#[derive(Debug, Clone)]
pub struct ResolvedImage {
    pub name: String,
    pub version: String,
    pub dir: PathBuf,
    /// Direct kernel boot, or the disk's own boot loader (cloud images).
    pub source: BootSource,
    pub firmware: Firmware,
    /// Who the job's key logs in as; anyone but root runs the agent
    /// through `sudo`.
    pub user: String,
    pub kernel: PathBuf,
    pub initrd: PathBuf,
    pub disk: PathBuf,
    pub cmdline: String,
    pub memory_mib: u32,
    pub vcpus: u32,
    pub ssh_timeout: Duration,
    pub agent_sha256: String,
    pub agent_version: String,
    /// The guest can wait for its job (warm-start templates).
    pub warm_start: bool,
    /// Names of the packages the image was built from.
    pub packages: Vec<String>,
    /// How its guest installs more at job time; `None` when it cannot.
    pub install: Option<ferrotron_imagebuilder::PackageInstall>,
}

impl ResolvedImage {
    /// The guest boots its own kernel and is set up by cloud-init.
    pub fn boots_from_disk(&self) -> bool {
        self.source == BootSource::Disk
    }

    /// `command` as root: as it is for root, else through `sudo` (no
    /// password, no terminal) with `sh -c`.
    pub fn as_root(&self, command: &str) -> String {
        if self.user == ferrotron_imagebuilder::manifest::ROOT_USER {
            command.to_string()
        } else {
            format!("sudo -n /bin/sh -c {}", crate::util::shell_quote(command))
        }
    }

    pub fn label(&self) -> String {
        format!("{}:{}", self.name, self.version)
    }

    pub fn from_manifest(dir: PathBuf, m: &Manifest) -> ResolvedImage {
        ResolvedImage {
            name: m.name.clone(),
            version: m.version.clone(),
            source: m.boot.source,
            firmware: m.boot.firmware,
            user: m.boot.user.clone(),
            kernel: dir.join(&m.boot.kernel),
            initrd: dir.join(&m.boot.initrd),
            disk: dir.join(&m.boot.disk),
            cmdline: m.boot.cmdline.clone(),
            memory_mib: m.boot.memory_mib,
            vcpus: m.boot.vcpus,
            ssh_timeout: Duration::from_secs(u64::from(m.boot.ssh_timeout_secs)),
            agent_sha256: m.agent.sha256.clone(),
            agent_version: m.agent.version.clone(),
            warm_start: m.boot.warm_start,
            packages: m.packages.iter().map(|p| p.name.clone()).collect(),
            install: m.install.clone(),
            dir,
        }
    }
}

/// Resolves `name` or `name:version` in the store at `root`.
pub fn resolve(
    root: &std::path::Path,
    spec: &str,
) -> Result<ResolvedImage, ferrotron_imagebuilder::StoreError> {
    let r = ImageStore::new(root.to_path_buf()).resolve(spec)?;
    Ok(ResolvedImage::from_manifest(r.path, &r.manifest))
}

/// What a VM of image `spec` gets (its manifest's `vcpus` and
/// `memory_mib`), for placing jobs; `None` when the image is not in the
/// store at `root` (the worker's default then applies).
pub fn needs(root: &std::path::Path, spec: &str) -> Option<crate::placement::Needs> {
    let r = ImageStore::new(root.to_path_buf()).resolve(spec).ok()?;
    Some(crate::placement::Needs {
        vcpus: r.manifest.boot.vcpus,
        memory_mib: u64::from(r.manifest.boot.memory_mib),
    })
}
