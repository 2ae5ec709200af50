//! Warm start: a job's VM restored from a booted image instead of booted.
//!
//! Once per image version and host, a template VM boots the image with
//! `ferrotron.key=wait`: its boot script does everything but the per-job
//! part and then blocks reading one line from its second serial port. The
//! template is saved there (`virDomainSaveFlags`: memory, devices, and a
//! read-only copy-on-write disk). Each job then gets a brand-new VM from it:
//! its own QEMU process, name, UUID, overlay (backed by the template's disk)
//! and SSH port, restored from a copy of the save file with the job's own
//! domain XML (see [`crate::vm::savefile`]). The orchestrator writes the
//! job's public key, the host clock and fresh random bytes on the control
//! port; the guest authorizes the key, sets its clock, mixes the bytes into
//! its entropy pool, generates its SSH host key and starts dropbear. From
//! there the job proceeds exactly as after a cold boot.
//!
//! Templates live in `<data>/templates/<image>/<version>/<key>/`, where the
//! key covers everything the saved state depends on (image, acceleration,
//! libvirt and QEMU versions, memory, vCPUs, command line): a change of any
//! of them makes a new template. Building one takes about one cold boot.

use std::io::{Read, Write};
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, Instant};

use sha2::{Digest, Sha256};

use crate::cancel::Cancel;
use crate::images::ResolvedImage;
use crate::ssh::wait::{Guest, WaitFailure};
use crate::ssh::KeyPair;
use crate::vm::accel::Resolved;
use crate::vm::boot::GuestWatch;
use crate::vm::reaper::OWNER_FILE;
use crate::vm::savefile::{SaveFileError, SaveHeader};
use crate::vm::VmConfig;
use crate::vm::DOMAIN_PREFIX;
use crate::vm::{console, overlay, ports, DomainSpec, Hypervisor, HypervisorError, VmGuard};

/// Bumped when what a template contains or how it is used changes.
const TEMPLATE_FORMAT: u32 = 1;
/// The console line the guest prints just before it blocks on ttyS1.
const WAITING: &str = "ferrotron: waiting for the job";
const STATE_FILE: &str = "state.sav";
const DISK_FILE: &str = "disk.qcow2";
const SEED_FILE: &str = "seed.iso";

#[derive(Debug, thiserror::Error)]
pub enum WarmError {
    #[error("cannot prepare {0}")]
    Folder(PathBuf, #[source] std::io::Error),
    #[error(transparent)]
    Overlay(#[from] overlay::OverlayError),
    #[error(transparent)]
    Hypervisor(#[from] HypervisorError),
    #[error(transparent)]
    SaveFile(#[from] SaveFileError),
    #[error("the template VM stopped before it was ready to be saved; {0}")]
    Died(String),
    #[error("the template VM cannot work, it said: {line}; {console}")]
    Fatal { line: String, console: String },
    #[error("the template VM was not ready to be saved within {secs} s; {console}")]
    Deadline { secs: u64, console: String },
    #[error("interrupted by {0} while the warm-start template was prepared")]
    Cancelled(String),
    #[error("cannot send the job's key to the guest through {0}")]
    Control(PathBuf, #[source] std::io::Error),
    #[error(transparent)]
    Seed(#[from] crate::vm::seed::SeedError),
    #[error("cannot make the template's key")]
    Key(#[source] crate::ssh::keys::KeyError),
    #[error("cannot prepare the template VM of a cloud image")]
    CloudWait(#[from] crate::vm::cloud_wait::CloudWaitError),
}

/// A saved, booted image from which jobs' VMs are restored.
#[derive(Debug, Clone)]
pub struct Template {
    pub dir: PathBuf,
    pub state: PathBuf,
    /// Read-only; each job's overlay is backed by it.
    pub disk: PathBuf,
    /// The command line the template booted with (kept in each job's XML).
    pub cmdline: String,
    header: SaveHeader,
}

impl Template {
    fn load(dir: &Path, cmdline: String) -> Result<Template, SaveFileError> {
        let state = dir.join(STATE_FILE);
        let disk = dir.join(DISK_FILE);
        if !disk.is_file() {
            return Err(SaveFileError::Read(
                disk,
                std::io::Error::from(std::io::ErrorKind::NotFound),
            ));
        }
        let header = SaveHeader::read(&state)?;
        Ok(Template {
            dir: dir.to_path_buf(),
            state,
            disk,
            cmdline,
            header,
        })
    }

    /// Writes the save file a job's VM is restored from: the template's
    /// state under the job's domain XML.
    pub fn write_job_file(&self, spec: &DomainSpec, to: &Path) -> Result<(), SaveFileError> {
        self.header.write_with_xml(&self.state, to, &spec.to_xml())
    }

    /// A cloud image's seed (the template's; attached to each restored VM
    /// because the saved devices include it, never read again).
    pub fn seed(&self) -> PathBuf {
        self.dir.join(SEED_FILE)
    }

    /// Removes this template (after a restore from it failed).
    pub fn discard(&self) {
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

/// Removes templates whose image version is no longer in the image store
/// (pruned): their disks are backed by files that are gone. Returns the
/// folders removed, as `name/version`.
pub fn prune_orphans(cfg: &VmConfig) -> Vec<String> {
    let mut removed = Vec::new();
    let Ok(names) = std::fs::read_dir(&cfg.templates_dir) else {
        return removed;
    };
    for name in names.flatten().filter(|e| e.path().is_dir()) {
        let Ok(versions) = std::fs::read_dir(name.path()) else {
            continue;
        };
        for v in versions.flatten().filter(|e| e.path().is_dir()) {
            let image = cfg.images_dir.join(name.file_name()).join(v.file_name());
            if !image.is_dir() && std::fs::remove_dir_all(v.path()).is_ok() {
                removed.push(format!(
                    "{}/{}",
                    name.file_name().to_string_lossy(),
                    v.file_name().to_string_lossy()
                ));
            }
        }
    }
    removed
}

fn template_cmdline(image: &ResolvedImage) -> String {
    format!("{} panic=-1 ferrotron.key=wait", image.cmdline)
}

/// Everything the saved state depends on, hashed.
fn template_key(image: &ResolvedImage, accel: Resolved, hv: &Hypervisor) -> String {
    let mut h = Sha256::new();
    for part in [
        TEMPLATE_FORMAT.to_string(),
        image.dir.display().to_string(),
        image.version.clone(),
        accel.to_string(),
        hv.versions(),
        template_cmdline(image),
        image.memory_mib.to_string(),
        image.vcpus.to_string(),
    ] {
        h.update(part.as_bytes());
        h.update([0]);
    }
    // Only for cloud images, so built images keep their templates' keys.
    if image.boots_from_disk() {
        h.update(crate::vm::cloud_wait::fingerprint(image).as_bytes());
    }
    hex::encode(&h.finalize()[..8])
}

/// The template for `image`, built first if this host has none yet.
/// Concurrent callers wait for one build (a file lock per image version).
pub fn ensure(
    cfg: &VmConfig,
    hv: &Arc<Hypervisor>,
    image: &ResolvedImage,
    accel: Resolved,
    cancel: &Cancel,
    say: &dyn Fn(&str),
) -> Result<Template, WarmError> {
    use fs4::fs_std::FileExt;
    let parent = cfg.templates_dir.join(&image.name).join(&image.version);
    let dir = parent.join(template_key(image, accel, hv));
    if let Ok(t) = Template::load(&dir, template_cmdline(image)) {
        return Ok(t);
    }
    std::fs::create_dir_all(&parent).map_err(|e| WarmError::Folder(parent.clone(), e))?;
    let lock_path = parent.join(".lock");
    let lock =
        std::fs::File::create(&lock_path).map_err(|e| WarmError::Folder(lock_path.clone(), e))?;
    lock.lock_exclusive()
        .map_err(|e| WarmError::Folder(lock_path.clone(), e))?;
    if let Ok(t) = Template::load(&dir, template_cmdline(image)) {
        return Ok(t);
    }
    say(&format!(
        "preparing the warm-start template of {} (once per image and host: one boot)",
        image.label()
    ));
    let t = Instant::now();
    build(cfg, hv, image, accel, &dir, cancel)?;
    // Templates of this image version made for another QEMU or libvirt.
    if let Ok(entries) = std::fs::read_dir(&parent) {
        for e in entries.flatten() {
            if e.path() != dir && e.path().is_dir() {
                let _ = std::fs::remove_dir_all(e.path());
            }
        }
    }
    say(&format!(
        "warm-start template ready in {:.1} s: {}",
        t.elapsed().as_secs_f64(),
        dir.display()
    ));
    Ok(Template::load(&dir, template_cmdline(image))?)
}

/// Boots the template VM in a VM folder of its own (so the reaper cleans up
/// after a crash), saves it when the guest waits for its job, and publishes
/// the folder as `dir` with one rename.
fn build(
    cfg: &VmConfig,
    hv: &Arc<Hypervisor>,
    image: &ResolvedImage,
    accel: Resolved,
    dir: &Path,
    cancel: &Cancel,
) -> Result<(), WarmError> {
    let id = uuid::Uuid::new_v4().to_string();
    let name = format!("{DOMAIN_PREFIX}template-{id}");
    let (guard, owner) = VmGuard::claim(hv.clone(), &cfg.vms_dir, &name)
        .map_err(|(dir, e)| WarmError::Folder(dir, e))?;
    let work = guard.dir().to_path_buf();
    let folder = |e| WarmError::Folder(work.clone(), e);
    let disk = work.join(DISK_FILE);
    overlay::create(&image.disk, &disk)?;
    let console_log = work.join("console.log");
    // A cloud image boots cold with a key of the template's own, through
    // which the waiter is installed (`cloud_wait`).
    let cloud_keys = if image.boots_from_disk() {
        Some(KeyPair::generate(&work, "ferrotron-template").map_err(WarmError::Key)?)
    } else {
        None
    };
    let disk_boot = match &cloud_keys {
        Some(k) => Some(crate::vm::boot::disk_boot(
            image,
            &name,
            &work,
            &k.public_openssh,
        )?),
        None => None,
    };
    let spec = DomainSpec {
        name: name.clone(),
        job_id: format!("template-{id}"),
        owner,
        accel,
        memory_mib: image.memory_mib,
        vcpus: image.vcpus,
        kernel: image.kernel.clone(),
        initrd: image.initrd.clone(),
        cmdline: template_cmdline(image),
        overlay: disk.clone(),
        backing: vec![image.disk.clone()],
        control_socket: Some(crate::vm::prepare_control_socket(&name).map_err(folder)?),
        console_log: console_log.clone(),
        ssh_port: ports::free_loopback_port().map_err(folder)?,
        vm_dir: work.clone(),
        disk_boot,
    };
    cancel.track(hv.clone(), &name);
    hv.start(&spec, true)?;

    let deadline = cfg.ssh_timeout.unwrap_or(image.ssh_timeout);
    if let Some(keys) = &cloud_keys {
        crate::vm::cloud_wait::install(image, spec.ssh_port, keys, deadline, cancel, || {
            hv.is_running(&name)
        })?;
        // Its job is done: no key of the template is kept.
        let _ = std::fs::remove_file(&keys.private_path);
        let _ = std::fs::remove_file(&keys.public_path);
    }
    wait_until_waiting(&console_log, deadline, cancel, || hv.is_running(&name))?;
    // The line is printed just before the guest's `read`: let it block.
    std::thread::sleep(Duration::from_millis(50));
    hv.save(&name, &work.join(STATE_FILE))?;
    std::fs::set_permissions(&disk, std::fs::Permissions::from_mode(0o444)).map_err(folder)?;
    let _ = std::fs::remove_file(work.join(OWNER_FILE));
    if let Some(parent) = dir.parent() {
        std::fs::create_dir_all(parent).map_err(|e| WarmError::Folder(parent.to_path_buf(), e))?;
    }
    std::fs::rename(&work, dir).map_err(|e| WarmError::Folder(dir.to_path_buf(), e))?;
    // The domain is gone (saved) and the folder moved: nothing to destroy.
    drop(guard);
    Ok(())
}

/// Waits until the template guest prints [`WAITING`]; fails at once, with
/// the console's last lines, when it prints its fatal line or its VM stops
/// (`running` says whether it runs), and at the deadline otherwise.
fn wait_until_waiting(
    console_log: &Path,
    deadline: Duration,
    cancel: &Cancel,
    mut running: impl FnMut() -> bool,
) -> Result<(), WarmError> {
    let until = Instant::now() + deadline;
    let mut watch = GuestWatch::new(console_log, WAITING, cancel);
    let failure = loop {
        match watch.look(&mut running) {
            Guest::Ready => return Ok(()),
            Guest::Failed(f) => break watch.settle(f),
            Guest::Booting if Instant::now() >= until => break WaitFailure::Deadline,
            Guest::Booting => std::thread::sleep(Duration::from_millis(10)),
        }
    };
    let console = || console::excerpt(console_log, 15);
    Err(match failure {
        WaitFailure::Cancelled => WarmError::Cancelled(cancel.reason()),
        WaitFailure::Died => WarmError::Died(console()),
        WaitFailure::Fatal(line) => WarmError::Fatal {
            line,
            console: console(),
        },
        WaitFailure::Deadline => WarmError::Deadline {
            secs: deadline.as_secs(),
            console: console(),
        },
    })
}

/// Hands a restored guest its job: the public key (base64 blob), the host
/// clock and 32 random bytes, as one line on its control port. The caller
/// keeps the returned connection open until the guest is ready: QEMU feeds
/// the line to the guest's 16-byte UART FIFO as the guest drains it, and
/// drops what is unread when the connection closes.
pub fn send_job(
    control_socket: &Path,
    key_blob: &str,
) -> Result<std::os::unix::net::UnixStream, WarmError> {
    let err = |e| WarmError::Control(control_socket.to_path_buf(), e);
    let mut seed = [0u8; 32];
    std::fs::File::open("/dev/urandom")
        .and_then(|mut f| f.read_exact(&mut seed))
        .map_err(err)?;
    let epoch = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or(0);
    let mut s = std::os::unix::net::UnixStream::connect(control_socket).map_err(err)?;
    s.write_all(format!("{key_blob} {epoch} {}\n", hex::encode(seed)).as_bytes())
        .map_err(err)?;
    Ok(s)
}

#[cfg(test)]
mod tests {
    use super::*;

    const FATAL: &str = "ferrotron: fatal: no agent: /usr/libexec/ferrotron/ferrotron-agent is missing or not executable";

    #[test]
    fn template_wait_ends_on_the_fatal_line() {
        let dir = tempfile::tempdir().expect("tempdir");
        let log = dir.path().join("console.log");
        std::fs::write(&log, format!("Linux version 6.1\n{FATAL}\n")).expect("write");
        let cancel = Cancel::new();
        // A deadline no test waits for: only the fatal line can end this.
        let e = wait_until_waiting(&log, Duration::from_secs(3600), &cancel, || true)
            .expect_err("fatal");
        assert!(
            matches!(&e, WarmError::Fatal { line, .. } if line == FATAL),
            "{e}"
        );
        let text = e.to_string();
        assert!(
            text.starts_with(&format!(
                "the template VM cannot work, it said: {FATAL}; last 2 lines"
            )),
            "{text}"
        );
        // Powered off by itself after the line: the same answer.
        let e = wait_until_waiting(&log, Duration::from_secs(3600), &cancel, || false)
            .expect_err("fatal");
        assert!(
            matches!(&e, WarmError::Fatal { line, .. } if line == FATAL),
            "{e}"
        );
    }

    #[test]
    fn template_wait_sees_the_waiting_line_and_a_silent_death() {
        let dir = tempfile::tempdir().expect("tempdir");
        let log = dir.path().join("console.log");
        std::fs::write(&log, "ferrotron: waiting for the job on ttyS1\n").expect("write");
        let cancel = Cancel::new();
        assert!(wait_until_waiting(&log, Duration::from_secs(3600), &cancel, || true).is_ok());
        std::fs::write(&log, "Linux version 6.1\n").expect("write");
        let e = wait_until_waiting(&log, Duration::from_secs(3600), &cancel, || false)
            .expect_err("died");
        assert!(matches!(e, WarmError::Died(_)), "{e}");
    }
}
