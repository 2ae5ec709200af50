//! A simulated worker host for the scheduler benchmark and tests: a real
//! libvirt connection to the `test:///default` driver, which answers the
//! whole API but runs no VM. Its node info gives the host's capacity (as
//! for a real host); starting a job defines and starts a test domain of
//! the job's size, finishing it destroys and undefines that domain, so
//! what libvirt shows matches what the ledger holds.
//!
//! All `test:///default` connections of one process share one simulated
//! node, so domain names carry the host's name.

use std::collections::VecDeque;

use virt::connect::Connect;

use crate::placement::{Capacity, Limits, Needs, PlacementError};

/// Prefix of the test domains (`ftsim-<host>-<job>`).
pub const SIM_PREFIX: &str = "ftsim-";

#[derive(Debug, thiserror::Error)]
pub enum SimHostError {
    #[error("libvirt {call} on {uri} failed")]
    Libvirt {
        call: &'static str,
        uri: String,
        #[source]
        source: virt::error::Error,
    },
    #[error(transparent)]
    Capacity(#[from] PlacementError),
}

/// One simulated host: its connection, capacity and started domains
/// (oldest first). Dropping it destroys the domains still there.
pub struct SimHost {
    pub name: String,
    pub capacity: Capacity,
    conn: Connect,
    uri: String,
    started: VecDeque<(String, String)>,
}

impl SimHost {
    /// Connects to `uri` (normally `test:///default`); the capacity comes
    /// from the node info as on a real host, with `max_vms`.
    pub fn connect(name: &str, uri: &str, max_vms: u32) -> Result<SimHost, SimHostError> {
        let err = |call| {
            let uri = uri.to_string();
            move |source| SimHostError::Libvirt { call, uri, source }
        };
        static QUIET: std::sync::Once = std::sync::Once::new();
        QUIET.call_once(virt::error::clear_error_callback);
        let conn = Connect::open(Some(uri)).map_err(err("virConnectOpen"))?;
        let info = conn.node_info().map_err(err("virNodeGetInfo"))?;
        let node = crate::placement::NodeSize {
            cpus: info.cpus,
            memory_kib: info.memory,
        };
        let limits = Limits {
            max_vms,
            ..Limits::default()
        };
        Ok(SimHost {
            name: name.to_string(),
            capacity: Capacity::resolve(Some(node), limits)?,
            conn,
            uri: uri.to_string(),
            started: VecDeque::new(),
        })
    }

    fn libvirt(&self, call: &'static str) -> impl FnOnce(virt::error::Error) -> SimHostError {
        let uri = self.uri.clone();
        move |source| SimHostError::Libvirt { call, uri, source }
    }

    fn domain_name(&self, job: &str) -> String {
        format!("{SIM_PREFIX}{}-{job}", self.name)
    }

    /// "Starts" `job`: defines and starts a test domain of its size.
    pub fn start(&mut self, job: &str, needs: Needs) -> Result<(), SimHostError> {
        let name = self.domain_name(job);
        // Names are ours (host name and job UUID), never user text.
        let xml = format!(
            "<domain type='test'><name>{name}</name>\
             <memory unit='MiB'>{}</memory><vcpu>{}</vcpu>\
             <os><type>hvm</type></os></domain>",
            needs.memory_mib, needs.vcpus
        );
        let d = self
            .conn
            .define_domain_xml(&xml)
            .map_err(self.libvirt("virDomainDefineXML"))?;
        if let Err(e) = d.create() {
            let _ = d.undefine();
            return Err(SimHostError::Libvirt {
                call: "virDomainCreate",
                uri: self.uri.clone(),
                source: e,
            });
        }
        self.started.push_back((job.to_string(), name));
        Ok(())
    }

    /// The job started longest ago, if any.
    pub fn oldest(&self) -> Option<&str> {
        self.started.front().map(|(j, _)| j.as_str())
    }

    /// "Finishes" `job`: destroys and undefines its domain.
    pub fn finish(&mut self, job: &str) -> Result<(), SimHostError> {
        let Some(i) = self.started.iter().position(|(j, _)| j == job) else {
            return Ok(());
        };
        let Some((_, name)) = self.started.remove(i) else {
            return Ok(());
        };
        self.remove(&name)
    }

    fn remove(&self, name: &str) -> Result<(), SimHostError> {
        let d = self
            .conn
            .lookup_domain_by_name(name)
            .map_err(self.libvirt("virDomainLookupByName"))?;
        if d.is_active().unwrap_or(false) {
            d.destroy().map_err(self.libvirt("virDomainDestroy"))?;
        }
        d.undefine().map_err(self.libvirt("virDomainUndefine"))?;
        Ok(())
    }

    /// This host's domains libvirt knows of (running or defined).
    pub fn domains(&self) -> Result<Vec<String>, SimHostError> {
        let prefix = self.domain_name("");
        let all = self
            .conn
            .list_all_domains(0)
            .map_err(self.libvirt("virConnectListAllDomains"))?;
        Ok(all
            .iter()
            .filter_map(|d| d.name().ok())
            .filter(|n| n.starts_with(&prefix))
            .collect())
    }
}

impl Drop for SimHost {
    fn drop(&mut self) {
        for (_, name) in std::mem::take(&mut self.started) {
            if let Err(e) = self.remove(&name) {
                tracing::warn!("simulated host {}: {e}", self.name);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::placement::Ledger;

    /// The simulated path end to end: capacity from the test driver's
    /// node info, jobs placed within it, domains there while "running"
    /// and gone after finishing or dropping the host.
    #[test]
    fn simulated_hosts_follow_the_ledger() {
        let host = format!("t{}", &uuid::Uuid::new_v4().simple().to_string()[..8]);
        let mut h = SimHost::connect(&host, "test:///default", 3).expect("test:///default");
        // A second connection to the same simulated node, open throughout:
        // the node's state lives while one connection does.
        let check = SimHost::connect(&host, "test:///default", 1).expect("again");
        assert!(
            h.capacity.vcpus >= 2 && h.capacity.memory_mib >= 512,
            "{:?}",
            h.capacity
        );
        assert_eq!(h.capacity.max_vms, 3);
        let mut ledger = Ledger::new(h.capacity);
        let needs = Needs {
            vcpus: 1,
            memory_mib: 256,
        };
        for j in ["a", "b", "c", "d"] {
            if ledger.reserve(j, needs).is_ok() {
                h.start(j, needs).expect("start");
            }
        }
        let mut names = h.domains().expect("list");
        names.sort();
        let want: Vec<String> = ["a", "b", "c"]
            .iter()
            .map(|j| format!("{SIM_PREFIX}{host}-{j}"))
            .collect();
        assert_eq!(names, want, "the 4th job did not fit 3 VM slots");
        assert_eq!(h.oldest(), Some("a"));
        h.finish("a").expect("finish");
        ledger.release("a");
        assert_eq!(h.domains().expect("list").len(), 2);
        // Dropping the host removes what is left.
        assert_eq!(check.domains().expect("list").len(), 2);
        drop(h);
        assert!(check.domains().expect("list").is_empty());
    }
}
