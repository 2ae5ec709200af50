//! Disposable VMs through libvirt: domain XML, the hypervisor connection,
//! the guard that destroys a VM on every path, and the reaper of leftovers.

pub mod accel;
pub mod boot;
pub mod cloud_wait;
pub mod console;
pub mod domain;
pub mod guard;
pub mod held;
pub mod hypervisor;
pub mod overlay;
pub mod owner;
pub mod ports;
pub mod ready;
pub mod reaper;
pub mod savefile;
pub mod saverestore;
pub mod seed;
pub mod warm;

pub use accel::Accel;
pub use domain::DomainSpec;
pub use guard::VmGuard;
pub use hypervisor::{Hypervisor, HypervisorError};

/// What the VM wing needs to know, given explicitly (built from the
/// service's settings by [`crate::settings::Settings::vm`]): the wing never
/// reads settings or the environment itself.
#[derive(Debug, Clone)]
pub struct VmConfig {
    /// Per-VM folders (overlay, owner file), watched by the reaper.
    pub vms_dir: std::path::PathBuf,
    /// Warm-start templates, one folder per image version.
    pub templates_dir: std::path::PathBuf,
    /// The image store: templates of versions no longer there are pruned.
    pub images_dir: std::path::PathBuf,
    /// Where the acceleration probe works and remembers its answer
    /// (`accel.json`).
    pub state_dir: std::path::PathBuf,
    pub accel: Accel,
    /// Deadline of the `auto` acceleration probe boot.
    pub kvm_probe_timeout: std::time::Duration,
    /// Overrides the image's SSH deadline (also for template builds).
    pub ssh_timeout: Option<std::time::Duration>,
    /// Extra kernel command-line words for every VM.
    pub extra_cmdline: Vec<String>,
}

/// Every domain Ferrotron creates is named with this prefix.
pub const DOMAIN_PREFIX: &str = "ferrotron-";

/// Where the control socket (ttyS1) of domain `name` lives. Unix socket
/// paths are limited to 107 bytes, so not in the VM folder (whose path
/// depends on the data folder) but in a short runtime folder, named by a
/// hash of the domain name: `/run/ferrotron/<16 hex>.sock` for root, else
/// under `$XDG_RUNTIME_DIR` (or the temp folder). Removed with the VM.
pub fn control_socket_path(name: &str) -> std::path::PathBuf {
    use sha2::{Digest, Sha256};
    let dir = if nix::unistd::geteuid().is_root() {
        std::path::PathBuf::from("/run/ferrotron")
    } else {
        std::env::var_os("XDG_RUNTIME_DIR")
            .map(std::path::PathBuf::from)
            .unwrap_or_else(std::env::temp_dir)
            .join("ferrotron")
    };
    let hash = hex::encode(&Sha256::digest(name.as_bytes())[..8]);
    dir.join(format!("{hash}.sock"))
}

/// Creates the folder of [`control_socket_path`] (mode 0700).
pub fn prepare_control_socket(name: &str) -> std::io::Result<std::path::PathBuf> {
    use std::os::unix::fs::DirBuilderExt;
    let path = control_socket_path(name);
    if let Some(dir) = path.parent() {
        std::fs::DirBuilder::new()
            .recursive(true)
            .mode(0o700)
            .create(dir)?;
    }
    let _ = std::fs::remove_file(&path);
    Ok(path)
}

#[cfg(test)]
mod tests {
    #[test]
    fn control_sockets_have_short_distinct_paths() {
        let long = format!("ferrotron-template-{}", "x".repeat(200));
        let a = super::control_socket_path(&long);
        let b = super::control_socket_path("ferrotron-other");
        assert!(a.as_os_str().len() < 100, "{}", a.display());
        assert_ne!(a, b);
        assert_eq!(a, super::control_socket_path(&long), "stable per name");
    }
}
