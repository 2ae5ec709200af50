//! The ready pool (`serve --ready N`, like Nodepool's `min-ready`): VMs
//! already restored from an image's warm-start template, each blocked on
//! its control port waiting for a job. A job that finds one skips the
//! restore: it sends the same line a freshly restored VM gets (its own
//! key, the host clock, fresh random bytes), so the guest then makes its
//! own host key and starts its SSH server, exactly as after a restore; the
//! VM is still brand-new for that job (no job ran in it before).
//!
//! One pool per service, shared by its scheduler (which fills it and
//! counts its VMs in the host's capacity) and the jobs' runners (which take
//! from it). A VM is taken for one job: the scheduler first earmarks one
//! for the job it claimed ([`ReadyPool::earmark`]), so the host's count
//! moves from the pool to the job, and the runner takes that one
//! ([`ReadyPool::take`]). Each VM's console is written to its own file in
//! `<data>/ready/`, renamed into the job's folder when it is taken (the
//! file stays the one QEMU writes).

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::Mutex;

use super::boot::Started;

/// One VM of the pool.
pub struct ReadyVm {
    /// `ferrotron-ready-<id>`
    pub name: String,
    /// The image's `name:version`.
    pub image: String,
    /// The template it was restored from.
    pub template: PathBuf,
    /// The VM, its control line not sent yet.
    pub started: Started,
}

impl std::fmt::Debug for ReadyVm {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ReadyVm")
            .field("name", &self.name)
            .field("image", &self.image)
            .finish()
    }
}

impl ReadyVm {
    /// Destroys the VM and its folder (and its console, never a job's).
    pub fn discard(self) {
        let console = self.started.console_log().to_path_buf();
        if let Err(e) = self.started.guard.close() {
            tracing::warn!("ready VM {}: {e}", self.name);
        }
        let _ = std::fs::remove_file(console);
    }
}

#[derive(Default)]
struct Inner {
    /// Waiting for a job, oldest first.
    waiting: Vec<ReadyVm>,
    /// Earmarked for a claimed job (by job id) until its runner takes it.
    earmarked: HashMap<String, ReadyVm>,
}

#[derive(Default)]
pub struct ReadyPool {
    inner: Mutex<Inner>,
}

impl std::fmt::Debug for ReadyPool {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let (w, e) = self.counts();
        f.debug_struct("ReadyPool")
            .field("waiting", &w)
            .field("earmarked", &e)
            .finish()
    }
}

/// Where the pool's VMs write their consoles until a job takes them.
pub fn consoles_dir(data_dir: &Path) -> PathBuf {
    data_dir.join("ready")
}

impl ReadyPool {
    fn lock(&self) -> std::sync::MutexGuard<'_, Inner> {
        self.inner.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// VMs waiting and earmarked.
    pub fn counts(&self) -> (usize, usize) {
        let g = self.lock();
        (g.waiting.len(), g.earmarked.len())
    }

    /// VMs of `image` waiting.
    pub fn waiting(&self, image: &str) -> usize {
        self.lock()
            .waiting
            .iter()
            .filter(|v| v.image == image)
            .count()
    }

    /// Names of the VMs waiting (each one's entry in the host's count).
    pub fn waiting_names(&self) -> Vec<String> {
        self.lock().waiting.iter().map(|v| v.name.clone()).collect()
    }

    pub fn put(&self, vm: ReadyVm) {
        self.lock().waiting.push(vm);
    }

    /// Sets aside the oldest VM of `image` for job `job`; its name, whose
    /// entry in the host's count the job's replaces.
    pub fn earmark(&self, image: &str, job: &str) -> Option<String> {
        let mut g = self.lock();
        let i = g.waiting.iter().position(|v| v.image == image)?;
        let vm = g.waiting.remove(i);
        let name = vm.name.clone();
        g.earmarked.insert(job.to_string(), vm);
        Some(name)
    }

    /// The VM earmarked for `job`, if any.
    pub fn take(&self, job: &str) -> Option<ReadyVm> {
        self.lock().earmarked.remove(job)
    }

    /// Removes the VM named `name` from those waiting (to make room, or
    /// because its image changed).
    pub fn remove(&self, name: &str) -> Option<ReadyVm> {
        let mut g = self.lock();
        let i = g.waiting.iter().position(|v| v.name == name)?;
        Some(g.waiting.remove(i))
    }

    /// Waiting VMs of image `image_name` whose version is not `current`
    /// (`name:version`): the image has a new version.
    pub fn outdated(&self, image_name: &str, current: &str) -> Vec<ReadyVm> {
        let mut g = self.lock();
        let (old, keep): (Vec<_>, Vec<_>) = std::mem::take(&mut g.waiting)
            .into_iter()
            .partition(|v| v.image.split(':').next() == Some(image_name) && v.image != current);
        g.waiting = keep;
        old
    }

    /// Every VM, waiting or earmarked (the service stops).
    pub fn drain(&self) -> Vec<ReadyVm> {
        let mut g = self.lock();
        let mut all: Vec<ReadyVm> = std::mem::take(&mut g.waiting);
        all.extend(g.earmarked.drain().map(|(_, v)| v));
        all
    }
}
