//! Cancellation: a flag the blocking job code polls, plus the VMs to
//! destroy at once when a signal arrives (so blocked SSH reads fail fast).

use std::collections::BTreeSet;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};

use crate::vm::Hypervisor;

#[derive(Clone, Default)]
pub struct Cancel {
    inner: Arc<Inner>,
}

#[derive(Default)]
struct Inner {
    flag: AtomicBool,
    reason: Mutex<Option<String>>,
    vms: Mutex<Vec<(Arc<Hypervisor>, String)>>,
}

impl Cancel {
    pub fn new() -> Cancel {
        Cancel::default()
    }

    pub fn is_cancelled(&self) -> bool {
        self.inner.flag.load(Ordering::SeqCst)
    }

    pub fn reason(&self) -> String {
        self.inner
            .reason
            .lock()
            .ok()
            .and_then(|r| r.clone())
            .unwrap_or_else(|| "cancelled".into())
    }

    /// Marks the job cancelled and destroys its running VMs now. Returns the
    /// names of the domains destroyed.
    pub fn cancel(&self, reason: &str) -> Vec<String> {
        if let Ok(mut r) = self.inner.reason.lock() {
            r.get_or_insert_with(|| reason.to_string());
        }
        self.inner.flag.store(true, Ordering::SeqCst);
        let vms = self.inner.vms.lock().map(|v| v.clone()).unwrap_or_default();
        let mut done = BTreeSet::new();
        for (hv, name) in vms {
            if hv.destroy(&name).unwrap_or(false) {
                done.insert(name);
            }
        }
        done.into_iter().collect()
    }

    /// Registers a VM to destroy on cancellation.
    pub fn track(&self, hv: Arc<Hypervisor>, name: &str) {
        if let Ok(mut v) = self.inner.vms.lock() {
            v.push((hv, name.to_string()));
        }
    }

    pub fn untrack(&self, name: &str) {
        if let Ok(mut v) = self.inner.vms.lock() {
            v.retain(|(_, n)| n != name);
        }
    }
}
