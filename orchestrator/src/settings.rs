//! Settings shared by every command: where data lives, how to reach
//! libvirt, how to accelerate VMs. Each comes from a flag or an environment
//! variable (`FERROTRON_*`), with defaults that work on a fresh host.

use std::path::PathBuf;
use std::time::Duration;

use crate::vm::Accel;

#[derive(Debug, Clone)]
pub struct Settings {
    /// Jobs, VM folders, the accel probe answer: `/var/lib/ferrotron` for
    /// root, `~/.local/share/ferrotron` otherwise.
    pub data_dir: PathBuf,
    /// Image store (default `<data dir>/images`).
    pub images_dir: PathBuf,
    /// Warm-start templates (default `<data dir>/templates`).
    pub templates_dir: PathBuf,
    pub libvirt_uri: String,
    pub accel: Accel,
    /// A guest agent to upload when the image's copy differs.
    pub agent: Option<PathBuf>,
    /// Overrides the image's SSH deadline.
    pub ssh_timeout: Option<Duration>,
    /// Deadline of the `auto` acceleration probe boot.
    pub kvm_probe_timeout: Duration,
    /// Extra kernel command-line words for every VM.
    pub extra_cmdline: Vec<String>,
    /// A running task whose guest says nothing (not even the agent's
    /// heartbeat) this long is declared hung.
    pub stall_timeout: Duration,
    /// How a job's VM starts: restored from a booted template, or booted.
    pub start: StartMode,
    /// How guests reach the git cache (`tunnel` or `direct`).
    pub cache_access: crate::cache::checkout::CacheAccess,
    /// The cache's URL as guests see it, for `direct` access.
    pub cache_url: Option<String>,
    /// The results store: `postgres://...` for PostgreSQL, else SQLite
    /// (default `<data dir>/ferrotron.db`).
    pub database_url: Option<String>,
    /// Where `koji`, `bodhi` and `distgit` actions download from, and how
    /// much the host keeps.
    pub downloads: DownloadSettings,
    /// Where the package proxy fetches the images' repositories from, and
    /// how much the host keeps.
    pub packages: crate::packages::PackageSettings,
    /// Limits of reservations (root VMs for task authors).
    pub reservations: ReservationSettings,
    /// Where published artifacts live (default `<data dir>/artifacts`):
    /// one folder shared by every worker and API server of an
    /// installation (a network file system) serves any job's files from
    /// any of them, whichever host ran it.
    pub artifacts_dir: Option<PathBuf>,
    /// This worker's host name: its row in `hosts`, the prefix of its
    /// leases, the scope of `host idle` (default: the kernel's hostname).
    pub host_name: String,
    /// VMs restored ahead of jobs (`serve --ready`); none elsewhere.
    pub ready_pool: Option<std::sync::Arc<crate::vm::ready::ReadyPool>>,
}

/// How long a reservation may last and how many one requester may have.
#[derive(Debug, Clone, Copy)]
pub struct ReservationSettings {
    /// Longest TTL (asked for, or reached by extending).
    pub max_ttl: Duration,
    /// The TTL when none is asked for.
    pub default_ttl: Duration,
    /// Active reservations and holds per requester (a token's name).
    pub per_requester: i64,
    /// A reservation's queue priority (jobs default to 0): a person
    /// waiting goes before a flood of jobs.
    pub priority: i64,
}

impl Default for ReservationSettings {
    fn default() -> ReservationSettings {
        ReservationSettings {
            max_ttl: Duration::from_secs(24 * 3600),
            default_ttl: Duration::from_secs(2 * 3600),
            per_requester: 2,
            priority: 10,
        }
    }
}

/// The services download directives use, and the download cache's bound.
#[derive(Debug, Clone)]
pub struct DownloadSettings {
    pub services: crate::downloads::Services,
    /// Largest size of `<data dir>/downloads`; the least recently used
    /// files go first past it.
    pub cache_max_bytes: u64,
}

impl Default for DownloadSettings {
    fn default() -> DownloadSettings {
        DownloadSettings {
            services: crate::downloads::Services::default(),
            cache_max_bytes: 20 * 1024 * 1024 * 1024,
        }
    }
}

/// How a job's VM starts. Both give every job a new VM of its own (QEMU
/// process, overlay, key, ports); `warm` restores it from a template saved
/// once per image and host right before the guest's per-job set-up, which
/// skips the kernel boot. See docs/design.md.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum StartMode {
    Warm,
    Cold,
}

impl Settings {
    pub fn default_data_dir() -> PathBuf {
        if nix::unistd::geteuid().is_root() {
            return PathBuf::from("/var/lib/ferrotron");
        }
        match std::env::var_os("XDG_DATA_HOME") {
            Some(d) => PathBuf::from(d).join("ferrotron"),
            None => PathBuf::from(std::env::var_os("HOME").unwrap_or_else(|| ".".into()))
                .join(".local/share/ferrotron"),
        }
    }

    pub fn new(data_dir: PathBuf) -> Settings {
        Settings {
            images_dir: data_dir.join("images"),
            templates_dir: data_dir.join("templates"),
            data_dir,
            libvirt_uri: "qemu:///system".into(),
            accel: Accel::Auto,
            agent: None,
            ssh_timeout: None,
            kvm_probe_timeout: Duration::from_secs(20),
            extra_cmdline: Vec::new(),
            stall_timeout: Duration::from_secs(60),
            start: StartMode::Warm,
            cache_access: Default::default(),
            cache_url: None,
            database_url: None,
            downloads: DownloadSettings::default(),
            packages: Default::default(),
            reservations: ReservationSettings::default(),
            host_name: crate::scheduler::this_host(),
            artifacts_dir: None,
            ready_pool: None,
        }
    }

    /// Published artifacts: `--artifacts-dir`, else `<data dir>/artifacts`.
    pub fn artifacts_dir(&self) -> PathBuf {
        self.artifacts_dir
            .clone()
            .unwrap_or_else(|| self.data_dir.join("artifacts"))
    }

    pub fn jobs_dir(&self) -> PathBuf {
        self.data_dir.join("jobs")
    }

    /// The download cache shared by every job on the host.
    pub fn download_cache_dir(&self) -> PathBuf {
        self.data_dir.join("downloads")
    }

    /// The package proxy's cache shared by every job on the host.
    pub fn package_cache_dir(&self) -> PathBuf {
        self.data_dir.join("packages")
    }

    /// The database URL in effect. An empty one (`FERROTRON_DATABASE_URL=`
    /// in an environment file) means the default, as if unset.
    pub fn database_url(&self) -> String {
        self.database_url
            .clone()
            .filter(|u| !u.trim().is_empty())
            .unwrap_or_else(|| crate::store::default_url(&self.data_dir))
    }

    /// Per-VM folders (overlay, owner file); removed with each VM.
    pub fn vms_dir(&self) -> PathBuf {
        self.data_dir.join("vms")
    }

    /// What the VM wing needs of these settings.
    pub fn vm(&self) -> crate::vm::VmConfig {
        crate::vm::VmConfig {
            vms_dir: self.vms_dir(),
            templates_dir: self.templates_dir.clone(),
            images_dir: self.images_dir.clone(),
            state_dir: self.data_dir.clone(),
            accel: self.accel,
            kvm_probe_timeout: self.kvm_probe_timeout,
            ssh_timeout: self.ssh_timeout,
            extra_cmdline: self.extra_cmdline.clone(),
        }
    }
}
