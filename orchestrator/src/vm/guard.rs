//! The guard that owns a job's VM: dropping it destroys the domain and
//! removes its folder (overlay included), on every path out of a job.

use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use super::hypervisor::Hypervisor;

pub struct VmGuard {
    hv: Arc<Hypervisor>,
    name: String,
    vm_dir: PathBuf,
    released: bool,
}

impl VmGuard {
    /// Takes ownership of `vm_dir` now (before the domain exists) and of the
    /// domain `name` once started.
    pub fn new(hv: Arc<Hypervisor>, name: String, vm_dir: PathBuf) -> VmGuard {
        VmGuard {
            hv,
            name,
            vm_dir,
            released: false,
        }
    }

    /// Creates the VM folder `<vms_dir>/<name>` with its owner file (this
    /// process), owned by the returned guard from the start: the reaper
    /// and the guard clean it up whatever happens next.
    pub fn claim(
        hv: Arc<Hypervisor>,
        vms_dir: &std::path::Path,
        name: &str,
    ) -> Result<(VmGuard, super::owner::Owner), (PathBuf, std::io::Error)> {
        let vm_dir = vms_dir.join(name);
        std::fs::create_dir_all(&vm_dir).map_err(|e| (vm_dir.clone(), e))?;
        let guard = VmGuard::new(hv, name.to_string(), vm_dir.clone());
        let owner = super::owner::Owner::current();
        std::fs::write(
            vm_dir.join(super::reaper::OWNER_FILE),
            serde_json::to_vec(&owner).unwrap_or_default(),
        )
        .map_err(|e| (vm_dir, e))?;
        Ok((guard, owner))
    }

    /// The VM folder (overlay, owner file).
    pub fn dir(&self) -> &std::path::Path {
        &self.vm_dir
    }

    pub fn name(&self) -> &str {
        &self.name
    }

    pub fn hypervisor(&self) -> &Hypervisor {
        &self.hv
    }

    /// Destroys the VM now and reports what failed; dropping afterwards is a
    /// no-op.
    pub fn close(mut self) -> Result<(), CleanupError> {
        self.released = true;
        destroy(&self.hv, &self.name, &self.vm_dir)
    }

    /// Gives the VM up without destroying it: it keeps running for a
    /// later process to take back ([`super::held::HeldVm::detach`]).
    pub fn detach(mut self) {
        self.released = true;
    }

    /// Like [`close`](Self::close) for a guest that was asked to power
    /// itself off: give it `grace` to go (QEMU exits, libvirt notices at
    /// once), then destroy whatever is left. `virDomainDestroy` alone polls
    /// the dying QEMU every 200 ms.
    pub fn close_after_poweroff(self, grace: Duration) -> Result<(), CleanupError> {
        self.hv.wait_gone(&self.name, grace);
        self.close()
    }
}

impl Drop for VmGuard {
    fn drop(&mut self) {
        if !self.released {
            if let Err(e) = destroy(&self.hv, &self.name, &self.vm_dir) {
                tracing::error!("{e}");
            }
        }
    }
}

/// A VM whose domain or folder could not be removed: what is left, and why.
#[derive(Debug, thiserror::Error)]
#[error("cleanup of {name} incomplete: {}", problems.join("; "))]
pub struct CleanupError {
    pub name: String,
    pub problems: Vec<String>,
}

/// Destroys the domain, waits for QEMU to let go of the overlay, removes the
/// VM folder.
pub fn destroy(hv: &Hypervisor, name: &str, vm_dir: &std::path::Path) -> Result<(), CleanupError> {
    let mut problems = Vec::new();
    let t = std::time::Instant::now();
    // Returns once QEMU has exited (virDomainDestroy is synchronous, and the
    // fast path waits for the process itself).
    if let Err(e) = hv.destroy(name) {
        problems.push(crate::util::full(&e));
    }
    tracing::debug!("{name} destroyed in {:?}", t.elapsed());
    // libvirt removes the sockets it bound; this covers a domain it lost.
    let _ = std::fs::remove_file(super::control_socket_path(name));
    match std::fs::remove_dir_all(vm_dir) {
        Ok(()) => {}
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
        Err(e) => problems.push(format!("cannot remove {}: {e}", vm_dir.display())),
    }
    if problems.is_empty() {
        Ok(())
    } else {
        Err(CleanupError {
            name: name.to_string(),
            problems,
        })
    }
}
