//! `ferrotron doctor`: this host checked the way an operator would before
//! trusting it with jobs: libvirt, acceleration, `/dev/kvm`, images and
//! their warm-start templates, the database and its migrations, the
//! broker, disk space and the clock. One [`Check`] per item, each with
//! what to do when it fails; a host is fit for jobs when none failed
//! (warnings, such as TCG only, still run jobs).

use std::path::Path;
use std::time::Duration;

use crate::settings::Settings;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Status {
    Ok,
    /// Jobs run, but not as well as they could.
    Warn,
    /// Jobs cannot run (or the check itself could not be made).
    Fail,
}

impl Status {
    pub fn as_str(self) -> &'static str {
        match self {
            Status::Ok => "ok",
            Status::Warn => "warn",
            Status::Fail => "FAIL",
        }
    }
}

/// One checked item.
#[derive(Debug, Clone)]
pub struct Check {
    pub name: &'static str,
    pub status: Status,
    /// What was found.
    pub detail: String,
    /// What to do, when it is not ok.
    pub fix: Option<String>,
}

fn ok(name: &'static str, detail: impl Into<String>) -> Check {
    Check {
        name,
        status: Status::Ok,
        detail: detail.into(),
        fix: None,
    }
}

fn bad(name: &'static str, status: Status, detail: impl Into<String>, fix: &str) -> Check {
    Check {
        name,
        status,
        detail: detail.into(),
        fix: Some(fix.to_string()),
    }
}

/// What `doctor` looks at besides the settings.
#[derive(Debug, Clone, Default)]
pub struct DoctorOptions {
    /// The broker `serve` would use (none: not checked).
    pub amqp_url: Option<String>,
    /// Free space under which the data folder fails (bytes).
    pub min_free_bytes: u64,
}

/// Every check, in the order an operator reads them.
pub async fn doctor(settings: &Settings, opts: &DoctorOptions) -> Vec<Check> {
    let s = settings.clone();
    let mut out = tokio::task::spawn_blocking(move || {
        // Read once for both checks.
        let listed = ferrotron_imagebuilder::ImageStore::new(s.images_dir.clone()).list();
        vec![
            libvirt(&s),
            kvm(),
            images(&s, &listed),
            templates(&s, &listed),
        ]
    })
    .await
    .unwrap_or_default();
    out.push(database(settings).await);
    if let Some(url) = &opts.amqp_url {
        out.push(broker(url).await);
    }
    out.push(disk(&settings.data_dir, opts.min_free_bytes));
    out.push(clock());
    out
}

fn libvirt(s: &Settings) -> Check {
    match crate::vm::Hypervisor::connect(&s.libvirt_uri) {
        Ok(hv) => ok(
            "libvirt",
            format!("{} answers ({})", s.libvirt_uri, hv.versions()),
        ),
        Err(e) => bad(
            "libvirt",
            Status::Fail,
            format!("{}: {}", s.libvirt_uri, crate::util::full(&e)),
            "start libvirtd (scripts/setup-host.sh starts it), or give --libvirt-uri",
        ),
    }
}

/// KVM usable, or TCG only and why.
fn kvm() -> Check {
    use std::os::unix::fs::PermissionsExt;
    let path = Path::new("/dev/kvm");
    let meta = match std::fs::metadata(path) {
        Ok(m) => m,
        Err(_) => {
            return bad(
                "kvm",
                Status::Warn,
                "/dev/kvm is missing: TCG only (software emulation, several times slower)",
                "enable virtualization in the firmware or the hypervisor (nested KVM), and load kvm_intel or kvm_amd",
            )
        }
    };
    let mode = meta.permissions().mode() & 0o777;
    match std::fs::OpenOptions::new().read(true).write(true).open(path) {
        Ok(_) if mode & 0o060 == 0o060 => ok("kvm", format!("/dev/kvm mode {mode:04o}: KVM usable")),
        Ok(_) => bad(
            "kvm",
            Status::Warn,
            format!("/dev/kvm mode {mode:04o}: usable by root, not by the kvm group (libvirt re-probes QEMU at every start)"),
            "chgrp kvm /dev/kvm && chmod 0660 /dev/kvm (scripts/setup-host.sh does it)",
        ),
        Err(e) => bad(
            "kvm",
            Status::Warn,
            format!("/dev/kvm mode {mode:04o} cannot be opened ({e}): TCG only"),
            "check that KVM works on this machine (nested virtualization enabled?)",
        ),
    }
}

type Listed = Result<Vec<ferrotron_imagebuilder::ImageInfo>, ferrotron_imagebuilder::StoreError>;

fn images(s: &Settings, listed: &Listed) -> Check {
    match listed {
        Ok(list) if list.is_empty() => bad(
            "images",
            Status::Fail,
            format!("no image in {}", s.images_dir.display()),
            "build one: make image (or ferrotron image build images/tiny.yaml)",
        ),
        Ok(list) => {
            let mut names: Vec<String> = list
                .iter()
                .map(|i| format!("{}:{}", i.name, i.version))
                .collect();
            names.dedup();
            ok(
                "images",
                format!(
                    "{} valid in {}: {}",
                    list.len(),
                    s.images_dir.display(),
                    names.join(", ")
                ),
            )
        }
        Err(e) => bad(
            "images",
            Status::Fail,
            crate::util::full(e),
            "remove or rebuild the image named (ferrotron image build --if-changed RECIPE)",
        ),
    }
}

/// Each image's newest version has a warm-start template (else its first
/// job boots it, and makes one).
fn templates(s: &Settings, listed: &Listed) -> Check {
    let Ok(list) = listed else {
        return bad("templates", Status::Warn, "images unreadable", "see images");
    };
    let mut newest: std::collections::BTreeMap<String, String> = Default::default();
    for i in list {
        let e = newest.entry(i.name.clone()).or_default();
        if i.version > *e {
            e.clone_from(&i.version);
        }
    }
    let missing: Vec<String> = newest
        .iter()
        .filter(|(n, v)| !s.templates_dir.join(n).join(v).is_dir())
        .map(|(n, v)| format!("{n}:{v}"))
        .collect();
    if missing.is_empty() {
        ok(
            "templates",
            format!("current for {} image(s)", newest.len()),
        )
    } else {
        bad(
            "templates",
            Status::Warn,
            format!(
                "none yet for {}: the first job of each boots it cold",
                missing.join(", ")
            ),
            "nothing to do: the first job makes it (or run one job: ferrotron run --libvirt)",
        )
    }
}

async fn database(s: &Settings) -> Check {
    let url = s.database_url();
    let shown = crate::util::redact_url(&url);
    match tokio::time::timeout(Duration::from_secs(15), crate::store::Store::inspect(&url)).await {
        Ok(Ok((applied, known))) if applied == known => ok(
            "database",
            format!("{shown} answers; migrated (version {applied})"),
        ),
        Ok(Ok((0, known))) => bad(
            "database",
            Status::Warn,
            format!("{shown}: not created or migrated yet (this version's schema is {known})"),
            "nothing to do: ferrotron serve creates and migrates it at start",
        ),
        Ok(Ok((applied, known))) if applied < known => bad(
            "database",
            Status::Warn,
            format!("{shown} answers at migration {applied} of {known}"),
            "nothing to do: ferrotron serve migrates it at start",
        ),
        Ok(Ok((applied, known))) => bad(
            "database",
            Status::Fail,
            format!("{shown} is at migration {applied}, newer than this ferrotron's {known}"),
            "run the newer ferrotron, or restore a backup made by this version",
        ),
        Ok(Err(e)) => bad(
            "database",
            Status::Fail,
            crate::util::full(&e),
            "start the database (PostgreSQL: systemctl start postgresql) or fix --database-url",
        ),
        Err(_) => bad(
            "database",
            Status::Fail,
            format!("{shown} did not answer within 15 s"),
            "start the database or fix --database-url",
        ),
    }
}

async fn broker(url: &str) -> Check {
    let shown = crate::util::redact_url(url);
    let connect = lapin::Connection::connect(url, lapin::ConnectionProperties::default());
    match tokio::time::timeout(Duration::from_secs(15), connect).await {
        Ok(Ok(c)) => {
            let _ = c.close(200, "doctor".into()).await;
            ok("broker", format!("{shown} answers"))
        }
        Ok(Err(e)) => bad(
            "broker",
            Status::Fail,
            format!("{shown}: {e}"),
            "start RabbitMQ (systemctl start rabbitmq-server) or fix --amqp-url",
        ),
        Err(_) => bad(
            "broker",
            Status::Fail,
            format!("{shown} did not answer within 15 s"),
            "start RabbitMQ or fix --amqp-url",
        ),
    }
}

fn disk(dir: &Path, min_free: u64) -> Check {
    // The folder may not exist yet on a fresh host: its nearest parent.
    let mut at = dir;
    while !at.exists() {
        match at.parent() {
            Some(p) => at = p,
            None => break,
        }
    }
    match nix::sys::statvfs::statvfs(at) {
        Ok(v) => {
            let free = v.blocks_available().saturating_mul(v.fragment_size());
            let gib = free as f64 / (1u64 << 30) as f64;
            if free < min_free {
                bad(
                    "disk",
                    Status::Fail,
                    format!("{:.1} GiB free under {} (less than {:.1} GiB)", gib, at.display(), min_free as f64 / (1u64 << 30) as f64),
                    "free space there: overlays, artifacts and caches need it (ferrotron cleanup, the cache's size limits)",
                )
            } else {
                ok("disk", format!("{gib:.1} GiB free under {}", at.display()))
            }
        }
        Err(e) => bad(
            "disk",
            Status::Fail,
            format!("{}: {e}", at.display()),
            "check the data folder",
        ),
    }
}

/// The clock: plausible, and synchronised when systemd can tell.
fn clock() -> Check {
    let now = crate::store::now_micros();
    // 2024-01-01: a clock before it was never set.
    if now < 1_704_067_200_000_000 {
        return bad(
            "clock",
            Status::Fail,
            format!("the system clock reads {}", crate::store::format_time(now)),
            "set the clock (NTP): leases, tokens' times and results depend on it",
        );
    }
    let synced = std::process::Command::new("timedatectl")
        .args(["show", "--property=NTPSynchronized", "--value"])
        .output()
        .ok()
        .filter(|o| o.status.success())
        .map(|o| String::from_utf8_lossy(&o.stdout).trim().to_string());
    match synced.as_deref() {
        Some("yes") => ok("clock", "synchronised (NTP)"),
        Some(_) => bad(
            "clock",
            Status::Warn,
            "not synchronised",
            "enable NTP (timedatectl set-ntp true): hosts sharing a queue compare lease times",
        ),
        None => ok(
            "clock",
            format!(
                "reads {} (no timedatectl to ask about NTP)",
                crate::store::format_time(now)
            ),
        ),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_missing_folder_is_measured_at_its_parent_and_a_floor_fails() {
        let c = disk(Path::new("/tmp/ferrotron-no-such-folder/x"), 0);
        assert_eq!(c.status, Status::Ok, "{c:?}");
        assert!(c.detail.contains("under /tmp"), "{c:?}");
        let c = disk(Path::new("/tmp"), u64::MAX);
        assert_eq!(c.status, Status::Fail, "{c:?}");
        assert!(c.fix.is_some());
    }
}
