//! Acceleration: `kvm`, `tcg` or `auto`. `auto` is decided by trying a short
//! KVM boot (done by the runner, which owns booting) and remembered per host
//! in a small file, so only the first job on a host pays for the probe.

use std::path::{Path, PathBuf};
use std::str::FromStr;

use std::sync::Arc;
use std::time::Instant;

use serde::{Deserialize, Serialize};

use super::boot::{cmdline, start, BootRequest};
use super::Hypervisor;
use crate::cancel::Cancel;
use crate::images::ResolvedImage;
use crate::ssh::KeyPair;
use crate::util::secs;

/// The setting a user gives.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Accel {
    #[default]
    Auto,
    Kvm,
    Tcg,
}

/// What a VM actually runs with.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Resolved {
    Kvm,
    Tcg,
}

impl Resolved {
    /// The libvirt domain type.
    pub fn domain_type(self) -> &'static str {
        match self {
            Resolved::Kvm => "kvm",
            Resolved::Tcg => "qemu",
        }
    }
}

impl std::fmt::Display for Resolved {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            Resolved::Kvm => "kvm",
            Resolved::Tcg => "tcg",
        })
    }
}

impl FromStr for Accel {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s {
            "auto" => Ok(Accel::Auto),
            "kvm" => Ok(Accel::Kvm),
            "tcg" => Ok(Accel::Tcg),
            other => Err(format!(
                "unknown acceleration `{other}` (expected kvm, tcg or auto)"
            )),
        }
    }
}

/// The remembered answer of an `auto` probe.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
pub struct Probe {
    pub answer: Resolved,
    /// Host kernel release the answer holds for.
    pub host: String,
    pub probed_at: String,
    pub reason: String,
}

/// Where the answer is kept: `<data dir>/accel.json`.
#[derive(Debug, Clone)]
pub struct ProbeCache {
    path: PathBuf,
}

impl ProbeCache {
    pub fn new(data_dir: &Path) -> ProbeCache {
        ProbeCache {
            path: data_dir.join("accel.json"),
        }
    }

    /// The remembered answer, if it was made on this host kernel.
    pub fn get(&self) -> Option<Probe> {
        let text = std::fs::read_to_string(&self.path).ok()?;
        let probe: Probe = serde_json::from_str(&text).ok()?;
        (probe.host == host_id()).then_some(probe)
    }

    /// Remembers an answer (atomically: write then rename).
    pub fn put(&self, answer: Resolved, reason: &str) -> std::io::Result<Probe> {
        let probe = Probe {
            answer,
            host: host_id(),
            probed_at: crate::util::now_rfc3339(),
            reason: reason.to_string(),
        };
        let tmp = self
            .path
            .with_extension(format!("json.{}", std::process::id()));
        std::fs::write(&tmp, serde_json::to_vec_pretty(&probe).unwrap_or_default())?;
        std::fs::rename(&tmp, &self.path)?;
        Ok(probe)
    }
}

/// The host kernel release: a new kernel (or a move to another machine with
/// the same data dir) re-probes.
fn host_id() -> String {
    std::fs::read_to_string("/proc/sys/kernel/osrelease")
        .map(|s| s.trim().to_string())
        .unwrap_or_default()
}

// The probe: a short KVM boot of the job's image.

/// `auto` tries a short KVM boot once per host and remembers the answer.
pub fn resolve(
    cfg: &super::VmConfig,
    hv: &Arc<Hypervisor>,
    image: &ResolvedImage,
    cancel: &Cancel,
    say: &dyn Fn(&str),
) -> Result<Resolved, super::boot::BootError> {
    match cfg.accel {
        Accel::Kvm => return Ok(Resolved::Kvm),
        Accel::Tcg => return Ok(Resolved::Tcg),
        Accel::Auto => {}
    }
    let cache = ProbeCache::new(&cfg.state_dir);
    if let Some(p) = cache.get() {
        return Ok(p.answer);
    }
    let t = Instant::now();
    let answer = probe_kvm(cfg, hv, image, cancel);
    if cancel.is_cancelled() {
        return Err(super::boot::BootError::Cancelled(cancel.reason()));
    }
    let (resolved, reason) = match answer {
        Ok(()) => (Resolved::Kvm, "a KVM guest booted to SSH".to_string()),
        Err(why) => (Resolved::Tcg, why),
    };
    let _ = cache.put(resolved, &reason);
    say(&format!(
        "acceleration probe: {resolved} ({reason}); remembered in {}/accel.json ({})",
        cfg.state_dir.display(),
        secs(t.elapsed())
    ));
    Ok(resolved)
}

fn probe_kvm(
    cfg: &super::VmConfig,
    hv: &Arc<Hypervisor>,
    image: &ResolvedImage,
    cancel: &Cancel,
) -> Result<(), String> {
    if !Path::new("/dev/kvm").exists() {
        return Err("no /dev/kvm".into());
    }
    let id = format!("probe-{}", uuid::Uuid::new_v4());
    let dir = cfg.state_dir.join("probe").join(&id);
    std::fs::create_dir_all(&dir).map_err(|e| e.to_string())?;
    let result = (|| {
        let keys = KeyPair::generate(&dir, "ferrotron-probe").map_err(|e| e.to_string())?;
        let started = start(BootRequest {
            hv,
            image,
            accel: Resolved::Kvm,
            job_id: &id,
            vms_dir: cfg.vms_dir.clone(),
            console_log: dir.join("console.log"),
            cmdline: cmdline(image, &keys, &cfg.extra_cmdline),
            ssh_deadline: cfg.kvm_probe_timeout,
            cancel,
            template: None,
            key_blob: Some(keys.blob()),
            detachable: false,
            public_key: &keys.public_openssh,
        })
        .map_err(|e| first_line(&crate::util::full(&e)))?;
        let waited = started
            .wait_for_ssh(cancel)
            .map_err(|e| first_line(&crate::util::full(&e)));
        let closed = started.guard.close();
        waited.and(closed.map_err(|e| e.to_string()))
    })();
    let _ = std::fs::remove_dir_all(&dir);
    result
}

fn first_line(s: &str) -> String {
    s.lines().next().unwrap_or_default().to_string()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_settings() {
        assert_eq!("auto".parse::<Accel>(), Ok(Accel::Auto));
        assert_eq!("tcg".parse::<Accel>(), Ok(Accel::Tcg));
        let err = "hvf".parse::<Accel>().expect_err("unknown");
        assert!(err.contains("expected kvm, tcg or auto"), "{err}");
    }

    #[test]
    fn cache_round_trips_for_this_host() {
        let dir = tempfile::tempdir().expect("tempdir");
        let cache = ProbeCache::new(dir.path());
        assert!(cache.get().is_none());
        cache
            .put(Resolved::Tcg, "kvm guest did not answer")
            .expect("put");
        let got = cache.get().expect("cached");
        assert_eq!(got.answer, Resolved::Tcg);
        assert_eq!(got.reason, "kvm guest did not answer");
    }
}
