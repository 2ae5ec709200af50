//! Booting a job's VM: overlay, domain, and the wait for SSH, failing fast
//! with the console's last lines when the guest does not come up.

use std::path::PathBuf;
use std::sync::Arc;
use std::time::{Duration, Instant};

use super::warm::{self, Template};
use crate::cancel::Cancel;
use crate::images::ResolvedImage;
use crate::ssh::wait::{wait_for_banner, WaitFailure};
use crate::ssh::KeyPair;
use crate::vm::accel::Resolved;
use crate::vm::{console, overlay, ports, DomainSpec, Hypervisor, VmGuard, DOMAIN_PREFIX};

#[derive(Debug, thiserror::Error)]
pub enum BootError {
    #[error("cannot prepare VM folder {0}")]
    Folder(PathBuf, #[source] std::io::Error),
    #[error(transparent)]
    Overlay(#[from] overlay::OverlayError),
    #[error("cannot pick a port for the SSH forward")]
    Port(#[source] std::io::Error),
    #[error(transparent)]
    Start(#[from] crate::vm::HypervisorError),
    #[error("the VM stopped before its SSH server answered; {0}")]
    Died(String),
    #[error("no SSH banner from the guest within {secs} s (deadline of image {image}); {console}")]
    Deadline {
        secs: u64,
        image: String,
        console: String,
    },
    #[error("interrupted by {0} while the VM booted")]
    Cancelled(String),
    #[error(transparent)]
    Warm(#[from] super::warm::WarmError),
    #[error(transparent)]
    SaveFile(#[from] crate::vm::savefile::SaveFileError),
}

/// A VM whose domain runs; its SSH server may not answer yet.
pub struct Started {
    pub guard: VmGuard,
    pub port: u16,
    pub accel: Resolved,
    /// Restored from a warm-start template rather than booted.
    pub restored: bool,
    /// A restored guest's control connection, open until the VM goes.
    _control: Option<std::os::unix::net::UnixStream>,
    /// Time from the start call to the domain running.
    pub took: Duration,
    console_log: PathBuf,
    image: String,
    ssh_deadline: Duration,
}

pub struct BootRequest<'a> {
    pub hv: &'a Arc<Hypervisor>,
    pub image: &'a ResolvedImage,
    pub accel: Resolved,
    pub job_id: &'a str,
    pub vms_dir: PathBuf,
    pub console_log: PathBuf,
    pub cmdline: String,
    pub ssh_deadline: Duration,
    pub cancel: &'a Cancel,
    /// Restore from this warm-start template instead of booting.
    pub template: Option<&'a Template>,
    /// The job's public key, sent to a restored guest.
    pub key_blob: &'a str,
}

pub fn start(req: BootRequest<'_>) -> Result<Started, BootError> {
    let name = format!("{DOMAIN_PREFIX}{}", req.job_id);
    let (guard, owner) = VmGuard::claim(req.hv.clone(), &req.vms_dir, &name)
        .map_err(|(dir, e)| BootError::Folder(dir, e))?;
    let vm_dir = guard.dir().to_path_buf();
    let overlay_path = vm_dir.join("overlay.qcow2");
    let t = Instant::now();
    let (backing, control_socket, cmdline) = match req.template {
        Some(t) => (
            vec![t.disk.clone(), req.image.disk.clone()],
            Some(
                crate::vm::prepare_control_socket(&name)
                    .map_err(|e| BootError::Folder(crate::vm::control_socket_path(&name), e))?,
            ),
            t.cmdline.clone(),
        ),
        None => (vec![req.image.disk.clone()], None, req.cmdline.clone()),
    };
    overlay::create(&backing[0], &overlay_path)?;
    tracing::debug!("overlay created in {:?}", t.elapsed());

    let mut spec = DomainSpec {
        name: name.clone(),
        job_id: req.job_id.to_string(),
        owner,
        accel: req.accel,
        memory_mib: req.image.memory_mib,
        vcpus: req.image.vcpus,
        kernel: req.image.kernel.clone(),
        initrd: req.image.initrd.clone(),
        cmdline,
        overlay: overlay_path,
        backing,
        control_socket,
        console_log: req.console_log.clone(),
        ssh_port: 0,
        vm_dir,
    };
    let started = Instant::now();
    // The port was free a moment ago; QEMU may lose it to another process
    // before binding it, so try a few.
    let mut attempt = 0;
    loop {
        attempt += 1;
        spec.ssh_port = ports::free_loopback_port().map_err(BootError::Port)?;
        req.cancel.track(req.hv.clone(), &name);
        let started = match req.template {
            Some(t) => {
                let file = spec.vm_dir.join("restore.sav");
                t.write_job_file(&spec, &file)?;
                let r = req.hv.restore(&file);
                // QEMU has read it all once the restore returns.
                let _ = std::fs::remove_file(&file);
                r
            }
            None => req.hv.start(&spec).map(drop),
        };
        match started {
            Ok(()) => break,
            Err(e) if e.is_port_conflict() && attempt < 4 => {
                tracing::debug!("port {} taken, retrying: {e}", spec.ssh_port);
                continue;
            }
            Err(e) => return Err(e.into()),
        }
    }
    let control = match (req.template, &spec.control_socket) {
        (Some(_), Some(sock)) => Some(warm::send_job(sock, req.key_blob)?),
        _ => None,
    };
    Ok(Started {
        guard,
        port: spec.ssh_port,
        accel: req.accel,
        restored: req.template.is_some(),
        _control: control,
        took: started.elapsed(),
        console_log: req.console_log,
        image: req.image.label(),
        ssh_deadline: req.ssh_deadline,
    })
}

impl Started {
    /// Waits for the guest's SSH banner; fails at once, with the console's
    /// last lines, when the VM stops, and at the deadline otherwise.
    /// Returns the connection on which the banner was seen.
    pub fn wait_for_ssh(&self, cancel: &Cancel) -> Result<std::net::TcpStream, BootError> {
        let hv = self.guard.hypervisor();
        let name = self.guard.name();
        let deadline = Instant::now() + self.ssh_deadline;
        let mut console = console::Watch::new(&self.console_log, "ferrotron: ready");
        let mut polls = 0u32;
        let waited = wait_for_banner(
            self.port,
            deadline,
            || {
                polls += 1;
                if cancel.is_cancelled() {
                    Some(WaitFailure::Cancelled)
                // Asking libvirt costs it a round trip: every 50 ms is enough.
                } else if polls.is_multiple_of(5) && !hv.is_running(name) {
                    Some(WaitFailure::Died)
                } else {
                    None
                }
            },
            || console.seen(),
        );
        match waited {
            Ok(stream) => Ok(stream),
            Err(WaitFailure::Cancelled) => Err(BootError::Cancelled(cancel.reason())),
            Err(WaitFailure::Died) => {
                // Let virtlogd flush the last words.
                std::thread::sleep(Duration::from_millis(100));
                Err(BootError::Died(console::excerpt(&self.console_log, 15)))
            }
            Err(WaitFailure::Deadline) => Err(BootError::Deadline {
                secs: self.ssh_deadline.as_secs(),
                image: self.image.clone(),
                console: console::excerpt(&self.console_log, 15),
            }),
        }
    }
}

/// The image's command line, plus the job's key and `panic=-1`: a guest
/// kernel that panics reboots at once, which ends the domain
/// (`on_reboot=destroy`) and the job with the console's last lines, instead
/// of a halted VM waiting for the deadline.
pub fn cmdline(image: &ResolvedImage, keys: &KeyPair, extra: &[String]) -> String {
    let mut c = format!("{} panic=-1 ferrotron.key={}", image.cmdline, keys.blob());
    for e in extra {
        c.push(' ');
        c.push_str(e);
    }
    c
}
