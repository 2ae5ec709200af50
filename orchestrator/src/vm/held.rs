//! A VM kept for a person (a reservation, or a failed job's VM held for
//! debugging) instead of destroyed when its job ends. It has one owner at
//! a time, the [`HeldVm`]: closing it destroys the VM (the console log
//! stays in the job's folder). A service that stops *detaches* it: the VM
//! keeps running, `held.json` in its folder says until when, and the
//! reaper leaves it alone until then; the next service on the host takes
//! it back ([`HeldVm::adopt`]). Past that time, any reaper destroys it.

use std::path::{Path, PathBuf};
use std::sync::Arc;

use serde::{Deserialize, Serialize};

use super::guard::{CleanupError, VmGuard};
use super::hypervisor::{Hypervisor, HypervisorError};
use super::owner::Owner;

/// In a held VM's folder: its job, until when it is kept, and who keeps
/// it now.
pub const HELD_FILE: &str = "held.json";

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct HeldMark {
    pub job: String,
    /// Microseconds since the epoch.
    pub expires_at: i64,
    pub owner: Owner,
}

impl HeldMark {
    /// The mark in `vm_dir`, if any.
    pub fn read(vm_dir: &Path) -> Option<HeldMark> {
        std::fs::read(vm_dir.join(HELD_FILE))
            .ok()
            .and_then(|b| serde_json::from_slice(&b).ok())
    }

    /// Kept for someone still: the reaper must leave the VM.
    pub fn protects(&self, now: i64) -> bool {
        self.expires_at > now
    }
}

#[derive(Debug, thiserror::Error)]
pub enum HeldError {
    #[error("cannot reach libvirt")]
    Libvirt(#[source] HypervisorError),
    #[error("the VM {0} no longer runs")]
    Gone(String),
    #[error("cannot write {path}")]
    Write {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
}

pub struct HeldVm {
    /// What serves the VM while it is kept (a reservation's package
    /// proxy and its tunnel): ended before the VM, so first here.
    attached: Option<Box<dyn Send + Sync>>,
    guard: VmGuard,
    pub port: u16,
    /// The guest's host key, one OpenSSH public key line.
    pub host_key: String,
    /// A restored guest's control connection, kept open with the VM.
    _control: Option<std::os::unix::net::UnixStream>,
}

impl std::fmt::Debug for HeldVm {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("HeldVm")
            .field("name", &self.guard.name())
            .field("port", &self.port)
            .finish()
    }
}

impl HeldVm {
    pub fn new(
        guard: VmGuard,
        port: u16,
        host_key: String,
        control: Option<std::os::unix::net::UnixStream>,
    ) -> HeldVm {
        HeldVm {
            attached: None,
            guard,
            port,
            host_key,
            _control: control,
        }
    }

    /// Keeps `what` as long as the VM is kept; it ends (is dropped) before
    /// the VM is destroyed or left to the next service. Its drop may block
    /// (threads joined): a held VM is closed off the async runtime.
    pub fn attach(&mut self, what: Box<dyn Send + Sync>) {
        self.attached = Some(what);
    }

    pub fn name(&self) -> &str {
        self.guard.name()
    }

    pub fn is_running(&self) -> bool {
        self.guard.hypervisor().is_running(self.guard.name())
    }

    /// Destroys the VM and its folder.
    pub fn close(self) -> Result<(), CleanupError> {
        drop(self.attached);
        self.guard.close()
    }

    /// Leaves the VM running for the next service on this host, kept
    /// until `expires_at` (then any reaper destroys it).
    pub fn detach(self, job: &str, expires_at: i64) -> Result<(), HeldError> {
        drop(self.attached);
        write_mark(self.guard.dir(), job, expires_at)?;
        self.guard.detach();
        Ok(())
    }

    /// Takes back a VM a stopped service detached: `vm_name` under
    /// `vms_dir`, still running; this process is its owner from now on.
    pub fn adopt(
        uri: &str,
        vms_dir: &Path,
        vm_name: &str,
        job: &str,
        expires_at: i64,
        port: u16,
        host_key: String,
    ) -> Result<HeldVm, HeldError> {
        let hv = Arc::new(Hypervisor::connect(uri).map_err(HeldError::Libvirt)?);
        let vm_dir = vms_dir.join(vm_name);
        if !hv.is_running(vm_name) || !vm_dir.is_dir() {
            return Err(HeldError::Gone(vm_name.to_string()));
        }
        let owner_file = vm_dir.join(super::reaper::OWNER_FILE);
        std::fs::write(
            &owner_file,
            serde_json::to_vec(&Owner::current()).unwrap_or_default(),
        )
        .map_err(|source| HeldError::Write {
            path: owner_file,
            source,
        })?;
        write_mark(&vm_dir, job, expires_at)?;
        Ok(HeldVm {
            attached: None,
            guard: VmGuard::new(hv, vm_name.to_string(), vm_dir),
            port,
            host_key,
            _control: None,
        })
    }
}

fn write_mark(vm_dir: &Path, job: &str, expires_at: i64) -> Result<(), HeldError> {
    let path = vm_dir.join(HELD_FILE);
    let mark = HeldMark {
        job: job.to_string(),
        expires_at,
        owner: Owner::current(),
    };
    let tmp = vm_dir.join(".held.json.tmp");
    std::fs::write(&tmp, serde_json::to_vec(&mark).unwrap_or_default())
        .and_then(|()| std::fs::rename(&tmp, &path))
        .map_err(|source| HeldError::Write { path, source })
}
