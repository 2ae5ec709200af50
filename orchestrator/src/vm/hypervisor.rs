//! The libvirt connection, through the `virt` crate (no virsh).

use std::time::Duration;

use virt::connect::Connect;
use virt::domain::Domain;
use virt::sys;

use super::domain::{DomainSpec, JobMetadata, METADATA_NS};
use super::DOMAIN_PREFIX;

#[derive(Debug, thiserror::Error)]
pub enum HypervisorError {
    #[error("cannot connect to libvirt at {uri} (is libvirtd running? `make setup` starts it)")]
    Connect {
        uri: String,
        #[source]
        source: virt::error::Error,
    },
    #[error("libvirt could not start domain {name}")]
    Start {
        name: String,
        #[source]
        source: virt::error::Error,
    },
    #[error(transparent)]
    SaveRestore(#[from] super::saverestore::SaveRestoreError),
    #[error("libvirt call {call} failed")]
    Call {
        call: &'static str,
        #[source]
        source: virt::error::Error,
    },
}

impl HypervisorError {
    /// True when QEMU could not bind the SSH forward port (taken meanwhile).
    pub fn is_port_conflict(&self) -> bool {
        let source = match self {
            HypervisorError::Start { source, .. } => source,
            HypervisorError::SaveRestore(super::saverestore::SaveRestoreError::Restore {
                source,
                ..
            }) => source,
            _ => return false,
        };
        source.message().contains("host forwarding rule")
            || source.message().contains("Address already in use")
    }
}

/// One libvirt connection. Domains started through it with
/// [`Hypervisor::start`] die with the connection (libvirt's autodestroy), so
/// even a `kill -9` of the orchestrator leaks no running VM.
pub struct Hypervisor {
    conn: Connect,
    uri: String,
}

/// A domain of ours found on the host.
#[derive(Debug, Clone)]
pub struct FoundDomain {
    pub name: String,
    pub metadata: Option<JobMetadata>,
}

impl Hypervisor {
    pub fn connect(uri: &str) -> Result<Hypervisor, HypervisorError> {
        // libvirt's default handler prints every error (even an expected
        // "domain not found") to stderr; errors are reported by us instead.
        static QUIET: std::sync::Once = std::sync::Once::new();
        QUIET.call_once(virt::error::clear_error_callback);
        let conn = Connect::open(Some(uri)).map_err(|source| HypervisorError::Connect {
            uri: uri.to_string(),
            source,
        })?;
        Ok(Hypervisor {
            conn,
            uri: uri.to_string(),
        })
    }

    pub fn uri(&self) -> &str {
        &self.uri
    }

    /// The host's CPUs and memory (`virNodeGetInfo`): its default capacity.
    pub fn node_size(&self) -> Result<crate::placement::NodeSize, HypervisorError> {
        let i = self
            .conn
            .node_info()
            .map_err(|source| HypervisorError::Call {
                call: "virNodeGetInfo",
                source,
            })?;
        Ok(crate::placement::NodeSize {
            cpus: i.cpus,
            memory_kib: i.memory,
        })
    }

    /// Starts a transient domain; with `autodestroy`, libvirt destroys it
    /// when this connection closes.
    pub fn start(&self, spec: &DomainSpec, autodestroy: bool) -> Result<Domain, HypervisorError> {
        let flags = if autodestroy {
            sys::VIR_DOMAIN_START_AUTODESTROY
        } else {
            0
        };
        self.conn
            .create_domain_xml(&spec.to_xml(), flags)
            .map_err(|source| HypervisorError::Start {
                name: spec.name.clone(),
                source,
            })
    }

    /// Saves the running domain `name` to `path` and stops it.
    pub fn save(&self, name: &str, path: &std::path::Path) -> Result<(), HypervisorError> {
        let d = self
            .conn
            .lookup_domain_by_name(name)
            .map_err(|source| HypervisorError::Call {
                call: "virDomainLookupByName",
                source,
            })?;
        super::saverestore::save(&d, path).map_err(HypervisorError::SaveRestore)
    }

    /// Starts the domain described inside save file `path`, running. Unlike
    /// [`start`](Self::start) there is no autodestroy for restored domains:
    /// after a `kill -9` of the orchestrator the reaper removes them.
    pub fn restore(&self, path: &std::path::Path) -> Result<(), HypervisorError> {
        super::saverestore::restore(&self.conn, path).map_err(HypervisorError::SaveRestore)
    }

    /// libvirt's and the hypervisor's versions, e.g. "libvirt 9000000 qemu 7002022".
    pub fn versions(&self) -> String {
        format!(
            "libvirt {} qemu {}",
            self.conn.lib_version().unwrap_or(0),
            self.conn.hyp_version().unwrap_or(0)
        )
    }

    /// Whether a domain of that name is running. Errors count as "not
    /// running": the caller then looks at the console to say why.
    pub fn is_running(&self, name: &str) -> bool {
        match self.conn.lookup_domain_by_name(name) {
            Ok(d) => d.is_active().unwrap_or(false),
            Err(_) => false,
        }
    }

    /// Destroys the named domain if it exists; Ok when it is already gone.
    pub fn destroy(&self, name: &str) -> Result<bool, HypervisorError> {
        let Ok(d) = self.conn.lookup_domain_by_name(name) else {
            return Ok(false);
        };
        // virDomainDestroy sends SIGTERM and then checks every 200 ms whether
        // QEMU is gone (libvirt 9). The VM is disposable: kill our own QEMU
        // outright; once that process has exited the VM is gone and its
        // overlay free, and libvirt finishes its bookkeeping on its own.
        if let Some(pid) = self.qemu_pid(name) {
            let p = nix::unistd::Pid::from_raw(pid);
            if nix::sys::signal::kill(p, nix::sys::signal::Signal::SIGKILL).is_ok()
                && process_exited(pid, Duration::from_secs(2))
            {
                tracing::debug!("killed QEMU {pid} of {name}");
                return Ok(true);
            }
        }
        if d.is_active().unwrap_or(false) {
            if let Err(source) = d.destroy() {
                // It may have died between lookup and destroy.
                if d.is_active().unwrap_or(false) {
                    return Err(HypervisorError::Call {
                        call: "virDomainDestroy",
                        source,
                    });
                }
            }
        }
        // A transient domain disappears when destroyed; a persistent one
        // (never created by us, but adopted by name) is undefined too.
        if d.is_persistent().unwrap_or(false) {
            let _ = d.undefine();
        }
        Ok(true)
    }

    /// The QEMU process of a domain of ours on the local system driver:
    /// the pid from libvirt's pid file, used only when that process's
    /// command line names this very domain.
    fn qemu_pid(&self, name: &str) -> Option<i32> {
        if self.uri != "qemu:///system" || !name.starts_with(DOMAIN_PREFIX) {
            return None;
        }
        let pid: i32 = std::fs::read_to_string(format!("/run/libvirt/qemu/{name}.pid"))
            .ok()?
            .trim()
            .parse()
            .ok()?;
        let cmdline = std::fs::read(format!("/proc/{pid}/cmdline")).ok()?;
        String::from_utf8_lossy(&cmdline)
            .contains(&format!("guest={name},"))
            .then_some(pid)
    }

    /// Waits until the named domain no longer runs, up to `deadline`.
    pub fn wait_gone(&self, name: &str, deadline: Duration) -> bool {
        let until = std::time::Instant::now() + deadline;
        while std::time::Instant::now() < until {
            if !self.is_running(name) {
                return true;
            }
            std::thread::sleep(Duration::from_millis(5));
        }
        !self.is_running(name)
    }

    /// Every domain whose name starts with `ferrotron-`, with its metadata.
    pub fn list_ours(&self) -> Result<Vec<FoundDomain>, HypervisorError> {
        let domains = self
            .conn
            .list_all_domains(0)
            .map_err(|source| HypervisorError::Call {
                call: "virConnectListAllDomains",
                source,
            })?;
        let mut out = Vec::new();
        for d in domains {
            let Ok(name) = d.name() else { continue };
            if !name.starts_with(DOMAIN_PREFIX) {
                continue;
            }
            let metadata = d
                .metadata(
                    sys::VIR_DOMAIN_METADATA_ELEMENT as i32,
                    Some(METADATA_NS),
                    0,
                )
                .ok()
                .and_then(|xml| JobMetadata::parse(&xml));
            out.push(FoundDomain { name, metadata });
        }
        Ok(out)
    }
}

/// Waits until process `pid` has exited (gone, or a zombie awaiting its
/// parent), up to `deadline`.
fn process_exited(pid: i32, deadline: Duration) -> bool {
    let until = std::time::Instant::now() + deadline;
    loop {
        let state = std::fs::read_to_string(format!("/proc/{pid}/stat"))
            .ok()
            .and_then(|s| {
                s.rfind(')')
                    .and_then(|i| s.get(i + 2..i + 3).map(str::to_string))
            });
        match state.as_deref() {
            None | Some("Z") | Some("X") => return true,
            _ if std::time::Instant::now() >= until => return false,
            _ => std::thread::sleep(Duration::from_millis(2)),
        }
    }
}
