//! Booting a job's VM: overlay, domain, and the wait for SSH, failing fast
//! with the console's last lines when the guest does not come up.

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, Instant};

use ferrotron_imagebuilder::guest::READY_LINE;

use super::domain::{DiskBoot, Firmware, OVMF_CODE, OVMF_VARS};
use super::seed::Seed;
use super::warm::{self, Template};
use crate::cancel::Cancel;
use crate::images::ResolvedImage;
use crate::ssh::wait::{
    wait_for_banner, Guest, WaitFailure, BANNER_PATIENCE, SLOW_BANNER_PATIENCE,
};
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
    #[error("the guest cannot work, it said: {line}; {console}")]
    Fatal { line: String, console: String },
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
    #[error(transparent)]
    Seed(#[from] crate::vm::seed::SeedError),
}

/// A VM whose domain runs; its SSH server may not answer yet.
pub struct Started {
    pub guard: VmGuard,
    pub port: u16,
    pub accel: Resolved,
    /// Restored from a warm-start template rather than booted.
    pub restored: bool,
    /// A restored guest's control connection, open until the VM goes.
    pub(crate) control: Option<std::os::unix::net::UnixStream>,
    /// A restored guest's control port.
    control_socket: Option<PathBuf>,
    /// Time from the start call to the domain running.
    pub took: Duration,
    console_log: PathBuf,
    image: String,
    ssh_deadline: Duration,
    /// How long one attempt waits for the banner (OpenSSH under TCG is
    /// slow to send it).
    banner_patience: Duration,
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
    /// The job's public key, sent to a restored guest; `None` leaves it
    /// waiting for one (a VM of the ready pool, see [`super::ready`]).
    pub key_blob: Option<&'a str>,
    /// A cold-booted domain outlives this process's libvirt connection
    /// (no autodestroy): a reservation's VM survives a service restart.
    /// Restored domains never have autodestroy.
    pub detachable: bool,
    /// The job's public key as an OpenSSH line, for a cloud image's seed.
    pub public_key: &'a str,
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
    let disk_boot = match (req.image.boots_from_disk(), req.template) {
        (false, _) => None,
        (true, None) => Some(disk_boot(req.image, &name, &vm_dir, req.public_key)?),
        // Restored: the waiter hands the key over, the seed is the template's.
        (true, Some(t)) => Some(DiskBoot {
            firmware: Firmware::Bios,
            seed: t.seed(),
        }),
    };

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
        disk_boot,
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
            None => req.hv.start(&spec, !req.detachable).map(drop),
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
        (Some(_), Some(sock)) => match req.key_blob {
            Some(blob) => Some(warm::send_job(sock, blob)?),
            None => None,
        },
        _ => None,
    };
    Ok(Started {
        guard,
        port: spec.ssh_port,
        accel: req.accel,
        restored: req.template.is_some(),
        control,
        control_socket: spec.control_socket.clone(),
        took: started.elapsed(),
        console_log: req.console_log,
        image: req.image.label(),
        ssh_deadline: req.ssh_deadline,
        banner_patience: if req.image.boots_from_disk() {
            SLOW_BANNER_PATIENCE
        } else {
            BANNER_PATIENCE
        },
    })
}

/// A cloud image's firmware and its per-job cloud-init seed (in the VM
/// folder, removed with it).
pub(crate) fn disk_boot(
    image: &ResolvedImage,
    name: &str,
    vm_dir: &Path,
    public_key: &str,
) -> Result<DiskBoot, crate::vm::seed::SeedError> {
    let seed = Seed {
        instance_id: name,
        hostname: name,
        user: &image.user,
        public_key,
    }
    .write(vm_dir)?;
    let firmware = match image.firmware {
        ferrotron_imagebuilder::Firmware::Bios => Firmware::Bios,
        ferrotron_imagebuilder::Firmware::Uefi => Firmware::Uefi {
            code: OVMF_CODE.into(),
            vars_template: OVMF_VARS.into(),
            nvram: vm_dir.join("nvram.fd"),
        },
    };
    Ok(DiskBoot { firmware, seed })
}

impl Started {
    /// Where the guest's console is written.
    pub fn console_log(&self) -> &Path {
        &self.console_log
    }

    /// Hands a ready VM (restored, still waiting) its job: its console
    /// file moved to `console_log` (the file QEMU writes, renamed), then
    /// the job's line on its control port, as [`start`] sends it to a VM
    /// it restores for a job.
    pub fn hand_job(&mut self, console_log: &Path, key_blob: &str) -> Result<(), BootError> {
        let sock = self
            .control_socket
            .clone()
            .ok_or_else(|| BootError::Died("a ready VM without a control port".into()))?;
        std::fs::rename(&self.console_log, console_log)
            .map_err(|e| BootError::Folder(console_log.to_path_buf(), e))?;
        self.console_log = console_log.to_path_buf();
        self.control = Some(warm::send_job(&sock, key_blob)?);
        self.took = std::time::Duration::ZERO;
        Ok(())
    }

    /// Waits for the guest's SSH banner; fails at once, with the console's
    /// last lines, when the guest prints its fatal line or the VM stops,
    /// and at the deadline otherwise. Returns the connection on which the
    /// banner was seen.
    pub fn wait_for_ssh(&self, cancel: &Cancel) -> Result<std::net::TcpStream, BootError> {
        let hv = self.guard.hypervisor();
        let name = self.guard.name();
        let deadline = Instant::now() + self.ssh_deadline;
        let mut watch = GuestWatch::new(&self.console_log, READY_LINE, cancel);
        wait_for_banner(self.port, deadline, self.banner_patience, || {
            watch.look(|| hv.is_running(name))
        })
        .map_err(|f| {
            let f = watch.settle(f);
            wait_error(f, &self.console_log, self.ssh_deadline, &self.image, cancel)
        })
    }
}

/// Watches a booting guest for a wait loop (the SSH wait here, the warm
/// template's wait in [`warm`]): cancellation, its console (the awaited
/// line, the fatal line) and whether its domain still runs.
pub(crate) struct GuestWatch<'a> {
    console: console::Watch,
    cancel: &'a Cancel,
    looks: u32,
}

impl<'a> GuestWatch<'a> {
    pub(crate) fn new(log: &Path, awaited: &'static str, cancel: &'a Cancel) -> GuestWatch<'a> {
        GuestWatch {
            console: console::Watch::new(log, awaited),
            cancel,
            looks: 0,
        }
    }

    /// One look; `running` asks libvirt, which costs it a round trip, so
    /// only every 5th look does (every 50 ms in a 10 ms loop).
    pub(crate) fn look(&mut self, running: impl FnOnce() -> bool) -> Guest {
        self.looks += 1;
        if self.cancel.is_cancelled() {
            return Guest::Failed(WaitFailure::Cancelled);
        }
        let ready = match self.console.poll() {
            console::Said::Fatal(line) => return Guest::Failed(WaitFailure::Fatal(line)),
            console::Said::Awaited => true,
            console::Said::Nothing => false,
        };
        if self.looks.is_multiple_of(5) && !running() {
            return Guest::Failed(WaitFailure::Died);
        }
        if ready {
            Guest::Ready
        } else {
            Guest::Booting
        }
    }

    /// The failure to report: a VM that stopped after its fatal line (it
    /// powers off by itself) failed with that line. virtlogd gets a moment
    /// to write the last words first.
    pub(crate) fn settle(&mut self, f: WaitFailure) -> WaitFailure {
        if f != WaitFailure::Died {
            return f;
        }
        std::thread::sleep(Duration::from_millis(100));
        match self.console.poll() {
            console::Said::Fatal(line) => WaitFailure::Fatal(line),
            _ => f,
        }
    }
}

/// The boot error for a failed SSH wait, with the console's last lines.
fn wait_error(
    f: WaitFailure,
    console_log: &Path,
    deadline: Duration,
    image: &str,
    cancel: &Cancel,
) -> BootError {
    let console = || console::excerpt(console_log, 15);
    match f {
        WaitFailure::Cancelled => BootError::Cancelled(cancel.reason()),
        WaitFailure::Died => BootError::Died(console()),
        WaitFailure::Fatal(line) => BootError::Fatal {
            line,
            console: console(),
        },
        WaitFailure::Deadline => BootError::Deadline {
            secs: deadline.as_secs(),
            image: image.to_string(),
            console: console(),
        },
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

#[cfg(test)]
mod tests {
    use super::*;
    use std::net::TcpListener;

    const FATAL: &str = "ferrotron: fatal: no network: disabled by ferrotron.net=off";

    fn dead_port() -> u16 {
        let l = TcpListener::bind("127.0.0.1:0").expect("bind");
        l.local_addr().expect("addr").port()
    }

    fn fatal_console(dir: &Path) -> PathBuf {
        let log = dir.join("console.log");
        std::fs::write(&log, format!("Linux version 6.1\r\n{FATAL}\r\n")).expect("write");
        log
    }

    #[test]
    fn fatal_line_ends_the_ssh_wait_with_the_line_and_the_console() {
        let dir = tempfile::tempdir().expect("tempdir");
        let log = fatal_console(dir.path());
        let cancel = Cancel::new();
        let mut watch = GuestWatch::new(&log, READY_LINE, &cancel);
        // A deadline no test waits for: only the fatal line can end this.
        let far = Instant::now() + Duration::from_secs(3600);
        let f = wait_for_banner(dead_port(), far, BANNER_PATIENCE, || watch.look(|| true)).err();
        assert_eq!(f, Some(WaitFailure::Fatal(FATAL.into())));
        let e = wait_error(
            WaitFailure::Fatal(FATAL.into()),
            &log,
            Duration::from_secs(3600),
            "tiny:1",
            &cancel,
        );
        assert!(matches!(&e, BootError::Fatal { line, .. } if line == FATAL));
        let text = e.to_string();
        assert!(
            text.starts_with(&format!("the guest cannot work, it said: {FATAL}; ")),
            "{text}"
        );
        assert!(
            text.contains("\n    Linux version 6.1\n    ferrotron: fatal: no network"),
            "{text}"
        );
    }

    #[test]
    fn a_vm_that_stopped_after_its_fatal_line_failed_with_it() {
        let dir = tempfile::tempdir().expect("tempdir");
        let cancel = Cancel::new();
        let silent = dir.path().join("silent.log");
        std::fs::write(&silent, "Linux version 6.1\n").expect("write");
        let mut watch = GuestWatch::new(&silent, READY_LINE, &cancel);
        assert_eq!(watch.settle(WaitFailure::Died), WaitFailure::Died);
        let log = fatal_console(dir.path());
        let mut watch = GuestWatch::new(&log, READY_LINE, &cancel);
        assert_eq!(
            watch.settle(WaitFailure::Died),
            WaitFailure::Fatal(FATAL.into())
        );
        assert_eq!(watch.settle(WaitFailure::Deadline), WaitFailure::Deadline);
    }

    #[test]
    fn look_reports_cancel_ready_and_death() {
        let dir = tempfile::tempdir().expect("tempdir");
        let log = dir.path().join("console.log");
        std::fs::write(&log, "ferrotron: ready\n").expect("write");
        let cancel = Cancel::new();
        let mut watch = GuestWatch::new(&log, READY_LINE, &cancel);
        let looks: Vec<Guest> = (0..5).map(|_| watch.look(|| false)).collect();
        assert_eq!(
            looks[..4],
            [Guest::Ready, Guest::Ready, Guest::Ready, Guest::Ready]
        );
        assert_eq!(
            looks[4],
            Guest::Failed(WaitFailure::Died),
            "libvirt asked on the 5th look"
        );
        cancel.cancel("SIGTERM");
        assert_eq!(watch.look(|| true), Guest::Failed(WaitFailure::Cancelled));
    }
}
