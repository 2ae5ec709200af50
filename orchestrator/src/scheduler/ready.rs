//! The scheduler's side of the ready pool (`serve --ready N`, see
//! [`crate::vm::ready`]): it keeps N VMs of each image named restored and
//! waiting, counted in the host's capacity under `ready:<name>`, replaced
//! as jobs take them, dropped when the image gets a new version (and, when
//! the template changed, by the job that finds one). Jobs come first: a
//! VM is restored only into room no claim took, and a claimed job that
//! needs room the waiting VMs hold has them destroyed.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::{Duration, Instant};

use tokio::task::JoinSet;

use crate::cancel::Cancel;
use crate::placement::{Free, Ledger, Needs};
use crate::settings::Settings;
use crate::vm::boot::{self, BootRequest};
use crate::vm::ready::{consoles_dir, ReadyPool, ReadyVm};

/// A failed restore of an image is tried again after this long.
const RETRY_AFTER: Duration = Duration::from_secs(30);

fn key(name: &str) -> String {
    format!("ready:{name}")
}

/// One finished restore: the image asked for and the VM, or why not.
type Filled = (String, String, Result<ReadyVm, String>);

pub(super) struct Filler {
    pool: Arc<ReadyPool>,
    /// Image (`name` or `name:version`) and how many to keep.
    wanted: Vec<(String, usize)>,
    filling: JoinSet<Filled>,
    /// Restores under way per image asked for.
    in_flight: HashMap<String, usize>,
    failed_at: HashMap<String, Instant>,
}

impl Filler {
    pub(super) fn new(
        pool: Arc<ReadyPool>,
        wanted: Vec<(String, usize)>,
        settings: &Settings,
    ) -> Filler {
        // Consoles of VMs a killed service left (the reaper ends the VMs).
        if let Ok(dir) = std::fs::read_dir(consoles_dir(&settings.data_dir)) {
            for e in dir.flatten() {
                let _ = std::fs::remove_file(e.path());
            }
        }
        Filler {
            pool,
            wanted,
            filling: JoinSet::new(),
            in_flight: HashMap::new(),
            failed_at: HashMap::new(),
        }
    }

    /// What a claim may take: the free room plus what waiting VMs hold
    /// (they give it up to a job).
    pub(super) fn claimable(&self, ledger: &Ledger) -> Free {
        let mut free = ledger.free();
        for name in self.pool.waiting_names() {
            if let Some(n) = ledger.peek(&key(&name)) {
                free.vms = free.vms.saturating_add(1);
                free.vcpus = free.vcpus.saturating_add(n.vcpus);
                free.memory_mib = free.memory_mib.saturating_add(n.memory_mib);
            }
        }
        free
    }

    /// Before claimed job `job` of image `label` takes its room: a VM of
    /// its image is set aside for it (its room becomes the job's), then
    /// waiting VMs are destroyed until `needs` fits.
    pub(super) async fn make_room(
        &self,
        ledger: &mut Ledger,
        label: Option<&str>,
        job: &str,
        needs: Needs,
    ) {
        if let Some(name) = label.and_then(|l| self.pool.earmark(l, job)) {
            ledger.release(&key(&name));
            tracing::info!("job {job}: takes ready VM {name}");
        }
        while !ledger.free().fits(needs) {
            let Some(name) = self.pool.waiting_names().into_iter().next() else {
                break;
            };
            ledger.release(&key(&name));
            if let Some(vm) = self.pool.remove(&name) {
                tracing::info!("ready VM {name} destroyed to make room for job {job}");
                discard(vm).await;
            }
        }
    }

    /// A job ended: a VM set aside for it and never taken is destroyed.
    pub(super) async fn job_ended(&self, job: &str) {
        if let Some(vm) = self.pool.take(job) {
            discard(vm).await;
        }
    }

    /// Starts restores up to each image's count, into room left free.
    pub(super) fn fill(&mut self, settings: &Arc<Settings>, ledger: &mut Ledger) {
        for (spec, n) in self.wanted.clone() {
            if self
                .failed_at
                .get(&spec)
                .is_some_and(|t| t.elapsed() < RETRY_AFTER)
            {
                continue;
            }
            let image = match crate::images::resolve(&settings.images_dir, &spec) {
                Ok(i) => i,
                Err(e) => {
                    tracing::warn!("ready pool: image `{spec}`: {e}");
                    self.failed_at.insert(spec.clone(), Instant::now());
                    continue;
                }
            };
            let label = image.label();
            for old in self.pool.outdated(&image.name, &label) {
                ledger.release(&key(&old.name));
                tracing::info!(
                    "ready VM {} is of {}, now {label}: destroyed",
                    old.name,
                    old.image
                );
                std::thread::spawn(move || old.discard());
            }
            let needs = Needs {
                vcpus: image.vcpus,
                memory_mib: u64::from(image.memory_mib),
            };
            let have = self.pool.waiting(&label) + self.in_flight.get(&spec).copied().unwrap_or(0);
            for _ in have..n {
                let id = uuid::Uuid::new_v4().simple().to_string();
                let name = format!("{}ready-{}", crate::vm::DOMAIN_PREFIX, &id[..12]);
                if ledger.reserve(&key(&name), needs).is_err() {
                    break;
                }
                *self.in_flight.entry(spec.clone()).or_default() += 1;
                let (settings, spec2) = (settings.clone(), spec.clone());
                self.filling.spawn_blocking(move || {
                    let r = restore(&settings, &spec2, &id[..12]);
                    (spec2, name, r)
                });
            }
        }
    }

    /// The next restore to finish; pending while none runs.
    pub(super) async fn next(&mut self) -> Option<Filled> {
        if self.filling.is_empty() {
            std::future::pending::<()>().await;
        }
        match self.filling.join_next().await? {
            Ok(f) => Some(f),
            Err(e) => {
                tracing::error!("ready pool: a restore ended abnormally: {e}");
                None
            }
        }
    }

    /// A restore finished: the VM waits in the pool, or its room is given
    /// back.
    pub(super) fn filled(&mut self, ledger: &mut Ledger, (spec, name, r): Filled) {
        if let Some(n) = self.in_flight.get_mut(&spec) {
            *n = n.saturating_sub(1);
        }
        match r {
            Ok(vm) => {
                tracing::info!("ready VM {name} of {} waits for a job", vm.image);
                self.pool.put(vm);
            }
            Err(e) => {
                ledger.release(&key(&name));
                tracing::warn!(
                    "ready pool: cannot restore a VM of `{spec}`: {e}; trying again in {} s",
                    RETRY_AFTER.as_secs()
                );
                self.failed_at.insert(spec, Instant::now());
            }
        }
    }

    /// The service stops: restores under way end, every VM is destroyed.
    pub(super) async fn stop(&mut self, ledger: &mut Ledger) {
        while let Some(done) = self.filling.join_next().await {
            if let Ok(f) = done {
                self.filled(ledger, f);
            }
        }
        let all = self.pool.drain();
        let n = all.len();
        for vm in all {
            ledger.release(&key(&vm.name));
            discard(vm).await;
        }
        if n > 0 {
            tracing::info!("ready pool: {n} VM(s) destroyed");
        }
    }
}

async fn discard(vm: ReadyVm) {
    let _ = tokio::task::spawn_blocking(move || vm.discard()).await;
}

/// Restores one VM of image `spec` from its template, left waiting.
fn restore(settings: &Settings, spec: &str, id: &str) -> Result<ReadyVm, String> {
    use crate::util::full;
    let image = crate::images::resolve(&settings.images_dir, spec).map_err(|e| e.to_string())?;
    if settings.start != crate::settings::StartMode::Warm
        || !settings.extra_cmdline.is_empty()
        || !image.warm_start
    {
        return Err(format!(
            "image {} is not warm-started here, and a ready VM is a restored one",
            image.label()
        ));
    }
    let hv = Arc::new(crate::vm::Hypervisor::connect(&settings.libvirt_uri).map_err(|e| full(&e))?);
    let cancel = Cancel::new();
    let say = |m: &str| tracing::info!("ready pool: {m}");
    let accel = crate::vm::accel::resolve(&settings.vm(), &hv, &image, &cancel, &say)
        .map_err(|e| full(&e))?;
    let template = crate::vm::warm::ensure(&settings.vm(), &hv, &image, accel, &cancel, &say)
        .map_err(|e| full(&e))?;
    let consoles = consoles_dir(&settings.data_dir);
    std::fs::create_dir_all(&consoles).map_err(|e| format!("{}: {e}", consoles.display()))?;
    let job_id = format!("ready-{id}");
    let started = boot::start(BootRequest {
        hv: &hv,
        image: &image,
        accel,
        job_id: &job_id,
        vms_dir: settings.vms_dir(),
        console_log: consoles.join(format!("{id}.log")),
        cmdline: String::new(),
        ssh_deadline: settings.ssh_timeout.unwrap_or(image.ssh_timeout),
        cancel: &cancel,
        template: Some(&template),
        key_blob: None,
        detachable: false,
        public_key: "",
    })
    .map_err(|e| full(&e))?;
    Ok(ReadyVm {
        name: started.guard.name().to_string(),
        image: image.label(),
        template: template.dir.clone(),
        started,
    })
}
