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
    /// A task repository's tree to put at `/root/<name>`: (folder, name).
    pub checkout: Option<(std::path::PathBuf, String)>,
    /// The VM reaches its image's package repositories through a proxy
    /// on this host (`allow: [packages]`).
    pub packages: bool,
}

/// A kept VM's way to its image's package repositories: the tunnel that
/// brings the host's proxy to the guest's `127.0.0.1:8472`, then the
/// proxy (fields end in this order). Its drop joins their threads.
pub struct PackageAccess {
    _tunnel: crate::cache::tunnel::Tunnel,
    _proxy: crate::packages::proxy::ProxyServer,
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
    if req.packages && image.install.is_none() {
        return Err(RunError::BadInput(format!(
            "image `{}` cannot install packages (its manifest has no `install`)",
            image.label()
        )));
    }
    let vm = boot_vm(settings, &image, &req.job_id, &job_dir, true, cancel, ui)?;
    authorize(&vm.ssh, &image, &req.user_key)?;
    let packages = if req.packages {
        let access = package_access(settings, &image, vm.port, &vm.keys)?;
        ui.say("packages: apt-get reaches the image's repositories through this host's proxy");
        Some(access)
    } else {
        None
    };
    if let Some((folder, name)) = &req.checkout {
        upload_tree(&vm.ssh, &image, folder, name)?;
        ui.say(&format!("the task repository is in /root/{name}"));
    }
    let host_key = vm.ssh.host_key.openssh.clone();
    drop(vm.ssh);
    let mut held = HeldVm::new(vm.guard, vm.port, host_key, vm.control);
    if let Some(access) = packages {
        held.attach(Box::new(access));
    }
    Ok(held)
}

/// Opens the package proxy of a kept VM on its SSH forward `port`, as its
/// job's key pair (in its job folder) and its image's user.
fn package_access(
    settings: &Settings,
    image: &crate::images::ResolvedImage,
    port: u16,
    keys: &crate::ssh::keys::KeyPair,
) -> Result<PackageAccess, RunError> {
    let install = image.install.as_ref().ok_or_else(|| {
        RunError::BadInput(format!("image `{}` cannot install packages", image.label()))
    })?;
    let (tunnel, proxy) =
        super::open_package_tunnel(settings, &install.repositories, port, keys, &image.user)?;
    Ok(PackageAccess {
        _tunnel: tunnel,
        _proxy: proxy,
    })
}

/// Opens again the package proxy of a VM that a stopped service left
/// running: reservation job `job_id`'s VM of `image` (its exact
/// `name:version`) on the SSH forward `port`.
pub fn reopen_packages(
    settings: &Settings,
    job_id: &str,
    image: &str,
    port: u16,
) -> Result<PackageAccess, RunError> {
    let image = images::resolve(&settings.images_dir, image)
        .map_err(|e| RunError::BadInput(format!("image `{image}`: {e}")))?;
    let keys = crate::ssh::keys::KeyPair::load(&settings.jobs_dir().join(job_id))
        .map_err(|e| RunError::infra("ssh", crate::util::full(&e)))?;
    package_access(settings, &image, port, &keys)
}

/// Adds `key` to root's authorized keys in the guest (the job's own key
/// stays: the host needs it to reach the VM).
pub(crate) fn authorize(
    ssh: &GuestSsh,
    image: &crate::images::ResolvedImage,
    key: &str,
) -> Result<(), RunError> {
    let line = format!("{}\n", key.trim());
    let (exit, stderr) = ssh
        .stream(
            &image.as_root("umask 077 && mkdir -p /root/.ssh && cat >> /root/.ssh/authorized_keys"),
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

/// Puts the files of `folder` at `/root/<name>` in the guest (one tar
/// stream over the job's SSH session; `name` is a plain word).
fn upload_tree(
    ssh: &GuestSsh,
    image: &crate::images::ResolvedImage,
    folder: &std::path::Path,
    name: &str,
) -> Result<(), RunError> {
    let mut tar = tar::Builder::new(Vec::new());
    tar.follow_symlinks(false);
    tar.append_dir_all(".", folder)
        .and_then(|()| tar.finish())
        .map_err(|e| RunError::infra("ssh", format!("packing the task repository: {e}")))?;
    let bytes = tar
        .into_inner()
        .map_err(|e| RunError::infra("ssh", format!("packing the task repository: {e}")))?;
    let dest = format!("/root/{name}");
    let (exit, stderr) = ssh
        .stream(
            &image.as_root(&format!("mkdir -p {dest} && tar -x -f - -C {dest}")),
            &bytes,
            |_| {},
            || Poll::Continue,
        )
        .map_err(|e| RunError::infra("ssh", e))?;
    match exit {
        Exit::Status(0) => Ok(()),
        other => Err(RunError::infra(
            "ssh",
            format!("unpacking the task repository: {other}: {}", stderr.trim()),
        )),
    }
}

/// The folder name a repository gets in the guest: its URL's last
/// component without `.git`, letters, digits, `-`, `_` and `.` only.
pub fn checkout_name(repo: &str) -> String {
    let last = repo
        .trim_end_matches('/')
        .rsplit(['/', ':'])
        .next()
        .unwrap_or("")
        .trim_end_matches(".git");
    let clean: String = last
        .chars()
        .filter(|c| c.is_ascii_alphanumeric() || "-_.".contains(*c))
        .collect();
    let clean = clean.trim_start_matches('.').to_string();
    if clean.is_empty() {
        "task".into()
    } else {
        clean
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn checkout_names_are_plain_words() {
        assert_eq!(
            checkout_name("https://pagure.io/taskotron/tasks.git"),
            "tasks"
        );
        assert_eq!(checkout_name("file:///srv/x/hello/"), "hello");
        assert_eq!(checkout_name("git@host:a/$(reboot).git"), "reboot");
        assert_eq!(checkout_name("https://h/.."), "task");
    }
}
