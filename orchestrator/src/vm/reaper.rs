//! Start-up clean-up: domains and VM folders whose owning process is gone.
//!
//! A domain is ours when its name starts with `ferrotron-` and its metadata
//! carries an owner; it is reaped only when that exact process (pid and start
//! time) no longer runs, so VMs of other live orchestrators are left alone.

use std::path::Path;

use super::guard::destroy;
use super::hypervisor::{Hypervisor, HypervisorError};
use super::owner::Owner;

/// What a reap pass removed.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct Reaped {
    pub domains: Vec<String>,
    pub folders: Vec<String>,
    /// Warm-start templates of images no longer in the store.
    pub templates: Vec<String>,
}

/// File in each VM folder naming its owner, written before the domain starts.
pub const OWNER_FILE: &str = "owner.json";

pub fn reap(hv: &Hypervisor, vms_dir: &Path) -> Result<Reaped, HypervisorError> {
    let mut reaped = Reaped::default();
    for d in hv.list_ours()? {
        let Some(meta) = d.metadata else {
            // A domain being torn down (killed a moment ago) has no
            // readable metadata either: only a live one is worth a warning.
            if hv.is_running(&d.name) {
                tracing::warn!("domain {} has no Ferrotron metadata: left alone", d.name);
            }
            continue;
        };
        if meta.owner.is_alive() {
            continue;
        }
        // Kept for someone (a reservation whose service restarts).
        if super::held::HeldMark::read(&meta.vm_dir)
            .is_some_and(|m| m.protects(crate::store::now_micros()))
        {
            continue;
        }
        match destroy(hv, &d.name, &meta.vm_dir) {
            Ok(()) => reaped.domains.push(d.name),
            Err(e) => tracing::warn!("could not reap {}: {e}", d.name),
        }
    }
    // Folders left by a process that died before or after its domain.
    if let Ok(entries) = std::fs::read_dir(vms_dir) {
        for e in entries.flatten() {
            let dir = e.path();
            let owner: Option<Owner> = std::fs::read(dir.join(OWNER_FILE))
                .ok()
                .and_then(|b| serde_json::from_slice(&b).ok());
            let held = super::held::HeldMark::read(&dir)
                .is_some_and(|m| m.protects(crate::store::now_micros()));
            let stale = match owner {
                _ if held => false,
                Some(o) => !o.is_alive(),
                // No owner file: a crash between mkdir and the write. Old
                // enough to be sure no one is writing it now.
                None => e
                    .metadata()
                    .and_then(|m| m.modified())
                    .map(|t| t.elapsed().map(|d| d.as_secs() > 300).unwrap_or(false))
                    .unwrap_or(false),
            };
            let name = e.file_name().to_string_lossy().to_string();
            if stale && !hv.is_running(&name) && std::fs::remove_dir_all(&dir).is_ok() {
                reaped.folders.push(name);
            }
        }
    }
    crate::metrics::global()
        .vms_reaped
        .inc_by(u64::try_from(reaped.domains.len()).unwrap_or_default());
    Ok(reaped)
}
