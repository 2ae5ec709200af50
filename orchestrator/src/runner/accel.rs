//! Which acceleration a job's VM gets: `kvm` and `tcg` as set; `auto` boots
//! the image once with KVM under a short deadline and remembers the answer
//! for this host kernel (`<data>/accel.json`).

use std::path::Path;
use std::sync::Arc;
use std::time::Instant;

use super::boot::{start, BootRequest};
use super::{cmdline, RunError};
use crate::cancel::Cancel;
use crate::images::ResolvedImage;
use crate::progress::Progress;
use crate::settings::Settings;
use crate::ssh::KeyPair;
use crate::util::secs;
use crate::vm::accel::{ProbeCache, Resolved};
use crate::vm::{Accel, Hypervisor};

/// `auto` tries a short KVM boot once per host and remembers the answer.
pub fn resolve(
    settings: &Settings,
    hv: &Arc<Hypervisor>,
    image: &ResolvedImage,
    cancel: &Cancel,
    ui: &Progress,
) -> Result<Resolved, RunError> {
    match settings.accel {
        Accel::Kvm => return Ok(Resolved::Kvm),
        Accel::Tcg => return Ok(Resolved::Tcg),
        Accel::Auto => {}
    }
    let cache = ProbeCache::new(&settings.data_dir);
    if let Some(p) = cache.get() {
        return Ok(p.answer);
    }
    let t = Instant::now();
    let answer = probe_kvm(settings, hv, image, cancel);
    if cancel.is_cancelled() {
        return Err(RunError::Cancelled(cancel.reason()));
    }
    let (resolved, reason) = match answer {
        Ok(()) => (Resolved::Kvm, "a KVM guest booted to SSH".to_string()),
        Err(why) => (Resolved::Tcg, why),
    };
    let _ = cache.put(resolved, &reason);
    ui.say(&format!(
        "acceleration probe: {resolved} ({reason}); remembered in {}/accel.json ({})",
        settings.data_dir.display(),
        secs(t.elapsed())
    ));
    Ok(resolved)
}

fn probe_kvm(
    settings: &Settings,
    hv: &Arc<Hypervisor>,
    image: &ResolvedImage,
    cancel: &Cancel,
) -> Result<(), String> {
    if !Path::new("/dev/kvm").exists() {
        return Err("no /dev/kvm".into());
    }
    let id = format!("probe-{}", uuid::Uuid::new_v4());
    let dir = settings.data_dir.join("probe").join(&id);
    std::fs::create_dir_all(&dir).map_err(|e| e.to_string())?;
    let result = (|| {
        let keys = KeyPair::generate(&dir, "ferrotron-probe").map_err(|e| e.to_string())?;
        let started = start(BootRequest {
            hv,
            image,
            accel: Resolved::Kvm,
            job_id: &id,
            vms_dir: settings.vms_dir(),
            console_log: dir.join("console.log"),
            cmdline: cmdline(image, &keys, &settings.extra_cmdline),
            ssh_deadline: settings.kvm_probe_timeout,
            cancel,
            template: None,
            key_blob: keys.blob(),
        })
        .map_err(|e| first_line(&crate::util::full(&e)))?;
        let waited = started
            .wait_for_ssh(cancel)
            .map_err(|e| first_line(&crate::util::full(&e)));
        let closed = started.guard.close();
        waited.and(closed)
    })();
    let _ = std::fs::remove_dir_all(&dir);
    result
}

fn first_line(s: &str) -> String {
    s.lines().next().unwrap_or_default().to_string()
}
