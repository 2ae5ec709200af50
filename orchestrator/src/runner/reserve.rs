//! A reservation's VM: booted like a job's (warm-started when the image
//! has a template), the requester's public key authorized for root, then
//! handed over as a [`HeldVm`] to whoever keeps it until it expires.

use crate::cancel::Cancel;
use crate::images;
use crate::progress::Progress;
use crate::settings::Settings;
use crate::ssh::session::{Exit, Poll};
use crate::ssh::GuestSsh;
use crate::vm::held::HeldVm;

use super::{boot_vm, fresh_job_dir, RunError};

#[derive(Debug, Clone)]
pub struct ReserveRequest {
    /// The reservation's job: its domain is `ferrotron-<id>`, its folder
    /// `<data>/jobs/<id>` (runner log, console).
    pub job_id: String,
    /// `name` or `name:version`; default the default image.
    pub image: Option<String>,
    /// The requester's public key (one OpenSSH line).
    pub user_key: String,
    /// A size other than the image's (vCPUs, memory).
    pub needs: Option<crate::placement::Needs>,
}

/// Boots the VM and authorizes `req.user_key` for root.
pub fn reserve(
    settings: &Settings,
    req: &ReserveRequest,
    cancel: &Cancel,
    ui: &Progress,
) -> Result<HeldVm, RunError> {
    let spec = req.image.as_deref().unwrap_or(images::DEFAULT_IMAGE);
    let mut image = images::resolve(&settings.images_dir, spec)
        .map_err(|e| RunError::BadInput(format!("image `{spec}`: {e}")))?;
    if let Some(n) = req.needs {
        image.vcpus = n.vcpus;
        image.memory_mib = u32::try_from(n.memory_mib).unwrap_or(u32::MAX);
    }
    let job_dir = fresh_job_dir(&settings.jobs_dir(), &req.job_id)
        .map_err(|e| RunError::infra("image", e))?;
    ui.log_to(&job_dir.join("runner.log"));
    ui.say(&format!(
        "reservation {}: a root VM of {}",
        req.job_id,
        image.label()
    ));
    let vm = boot_vm(settings, &image, &req.job_id, &job_dir, true, cancel, ui)?;
    authorize(&vm.ssh, &req.user_key)?;
    let host_key = vm.ssh.host_key.openssh.clone();
    drop(vm.ssh);
    Ok(HeldVm::new(vm.guard, vm.port, host_key, vm.control))
}

/// Adds `key` to root's authorized keys in the guest (the job's own key
/// stays: the host needs it to reach the VM).
pub(crate) fn authorize(ssh: &GuestSsh, key: &str) -> Result<(), RunError> {
    let line = format!("{}\n", key.trim());
    let (exit, stderr) = ssh
        .stream(
            "umask 077 && mkdir -p /root/.ssh && cat >> /root/.ssh/authorized_keys",
            line.as_bytes(),
            |_| {},
            || Poll::Continue,
        )
        .map_err(|e| RunError::infra("ssh", e))?;
    match exit {
        Exit::Status(0) => Ok(()),
        other => Err(RunError::infra(
            "ssh",
            format!(
                "authorizing the requester's key: {other}: {}",
                stderr.trim()
            ),
        )),
    }
}
