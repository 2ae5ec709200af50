//! Capacity and placement: what a host offers (vCPUs, memory, VM slots),
//! what a job's VM needs, and the ledger a worker keeps of what its running
//! jobs hold. Pure logic, no I/O: the store's claim takes only a job that
//! fits [`Ledger::free`], and [`never_fits`] names the jobs no host could
//! ever run (they end in `error` instead of waiting forever).

use std::collections::HashMap;

/// Memory kept for the host itself when the capacity comes from libvirt's
/// node info: the larger of this and [`RESERVE_MEMORY_PERCENT`].
pub const RESERVE_MEMORY_MIB: u64 = 1024;
pub const RESERVE_MEMORY_PERCENT: u64 = 10;
/// vCPUs offered per host CPU by default. Test VMs mostly wait (boot, I/O,
/// network), so a CPU can carry more than one; memory, which cannot be
/// overcommitted without the OOM killer, is the hard limit. OpenStack's
/// scheduler makes the same choice with far larger ratios.
pub const VCPUS_PER_CPU: u32 = 2;

/// What one job's VM gets: its image's `vcpus` and `memory_mib`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Needs {
    pub vcpus: u32,
    pub memory_mib: u64,
}

impl Needs {
    /// Used when a job's image cannot be looked up (the tiny image's size).
    pub const FALLBACK: Needs = Needs {
        vcpus: 1,
        memory_mib: 256,
    };
}

/// What one host offers to jobs, all at once.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Capacity {
    pub vcpus: u32,
    pub memory_mib: u64,
    pub max_vms: u32,
}

/// libvirt's node info (`virNodeGetInfo`): CPUs and memory in KiB.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct NodeSize {
    pub cpus: u32,
    pub memory_kib: u64,
}

/// Operator overrides (`--max-vcpus`, `--max-memory`, `--max-vms`).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Limits {
    pub max_vcpus: Option<u32>,
    pub max_memory_mib: Option<u64>,
    pub max_vms: u32,
}

#[derive(Debug, thiserror::Error)]
pub enum PlacementError {
    #[error(
        "host capacity unknown: libvirt's node info is not available; \
         set both --max-vcpus and --max-memory"
    )]
    UnknownCapacity,
    #[error(
        "job {job} ({vcpus} vCPU(s), {memory_mib} MiB) does not fit: \
         {free_vcpus} vCPU(s), {free_memory_mib} MiB and {free_vms} VM slot(s) free"
    )]
    NoRoom {
        job: String,
        vcpus: u32,
        memory_mib: u64,
        free_vcpus: u32,
        free_memory_mib: u64,
        free_vms: u32,
    },
}

impl Capacity {
    /// The host's capacity: the operator's limits where given, else the
    /// node's CPUs × [`VCPUS_PER_CPU`] and its memory minus a reserve.
    pub fn resolve(node: Option<NodeSize>, limits: Limits) -> Result<Capacity, PlacementError> {
        let vcpus = match (limits.max_vcpus, node) {
            (Some(v), _) => v,
            (None, Some(n)) => n.cpus.saturating_mul(VCPUS_PER_CPU),
            (None, None) => return Err(PlacementError::UnknownCapacity),
        };
        let memory_mib = match (limits.max_memory_mib, node) {
            (Some(m), _) => m,
            (None, Some(n)) => {
                let total = n.memory_kib / 1024;
                let reserve = (total * RESERVE_MEMORY_PERCENT / 100).max(RESERVE_MEMORY_MIB);
                total.saturating_sub(reserve)
            }
            (None, None) => return Err(PlacementError::UnknownCapacity),
        };
        Ok(Capacity {
            vcpus,
            memory_mib,
            max_vms: limits.max_vms.max(1),
        })
    }

    /// Whether one job of `needs` could ever run here (the host empty).
    pub fn holds(&self, needs: Needs) -> bool {
        needs.vcpus <= self.vcpus && needs.memory_mib <= self.memory_mib && self.max_vms >= 1
    }
}

/// What a host has left now; a claim takes only a job within it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Free {
    pub vcpus: u32,
    pub memory_mib: u64,
    pub vms: u32,
}

impl Free {
    /// No limit: what `claim_next` uses (tests, tools without a host).
    pub const UNLIMITED: Free = Free {
        vcpus: u32::MAX,
        memory_mib: u64::MAX,
        vms: u32::MAX,
    };

    pub fn fits(&self, needs: Needs) -> bool {
        self.vms >= 1 && needs.vcpus <= self.vcpus && needs.memory_mib <= self.memory_mib
    }
}

/// What a host uses now.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Usage {
    pub vcpus: u32,
    pub memory_mib: u64,
    pub vms: u32,
}

/// A worker's account of its running jobs against its capacity. Every
/// reservation is checked, so the sum never exceeds the capacity.
#[derive(Debug, Clone)]
pub struct Ledger {
    capacity: Capacity,
    jobs: HashMap<String, Needs>,
}

impl Ledger {
    pub fn new(capacity: Capacity) -> Ledger {
        Ledger {
            capacity,
            jobs: HashMap::new(),
        }
    }

    pub fn capacity(&self) -> Capacity {
        self.capacity
    }

    pub fn used(&self) -> Usage {
        self.jobs.values().fold(Usage::default(), |u, n| Usage {
            vcpus: u.vcpus.saturating_add(n.vcpus),
            memory_mib: u.memory_mib.saturating_add(n.memory_mib),
            vms: u.vms.saturating_add(1),
        })
    }

    pub fn free(&self) -> Free {
        let u = self.used();
        Free {
            vcpus: self.capacity.vcpus.saturating_sub(u.vcpus),
            memory_mib: self.capacity.memory_mib.saturating_sub(u.memory_mib),
            vms: self.capacity.max_vms.saturating_sub(u.vms),
        }
    }

    /// Holds `needs` for `job`, or refuses when it does not fit now.
    pub fn reserve(&mut self, job: &str, needs: Needs) -> Result<(), PlacementError> {
        let free = self.free();
        if !free.fits(needs) || self.jobs.contains_key(job) {
            return Err(PlacementError::NoRoom {
                job: job.to_string(),
                vcpus: needs.vcpus,
                memory_mib: needs.memory_mib,
                free_vcpus: free.vcpus,
                free_memory_mib: free.memory_mib,
                free_vms: free.vms,
            });
        }
        self.jobs.insert(job.to_string(), needs);
        Ok(())
    }

    /// What `job` holds, if anything.
    pub fn peek(&self, job: &str) -> Option<Needs> {
        self.jobs.get(job).copied()
    }

    /// Gives back what `job` held (nothing when it held nothing).
    pub fn release(&mut self, job: &str) -> Option<Needs> {
        self.jobs.remove(job)
    }

    pub fn is_empty(&self) -> bool {
        self.jobs.is_empty()
    }
}

/// Why no host in `hosts` could ever run a job of `needs`, or `None` when
/// one could (or when no host is known yet: nothing to judge by).
pub fn never_fits(needs: Needs, hosts: &[Capacity]) -> Option<String> {
    if hosts.is_empty() || hosts.iter().any(|h| h.holds(needs)) {
        return None;
    }
    let most_vcpus = hosts.iter().map(|h| h.vcpus).max().unwrap_or(0);
    let most_memory = hosts.iter().map(|h| h.memory_mib).max().unwrap_or(0);
    Some(format!(
        "the job needs {} vCPU(s) and {} MiB, more than any of the {} host(s) offers \
         (at most {most_vcpus} vCPU(s) and {most_memory} MiB on one host); \
         raise --max-vcpus/--max-memory or use a smaller image",
        needs.vcpus,
        needs.memory_mib,
        hosts.len()
    ))
}

#[cfg(test)]
mod tests {
    use super::*;

    const SMALL: Needs = Needs {
        vcpus: 1,
        memory_mib: 256,
    };

    fn cap(vcpus: u32, memory_mib: u64, max_vms: u32) -> Capacity {
        Capacity {
            vcpus,
            memory_mib,
            max_vms,
        }
    }

    #[test]
    fn capacity_from_node_info_keeps_a_memory_reserve() {
        let node = NodeSize {
            cpus: 2,
            memory_kib: 24 * 1024 * 1024,
        };
        let limits = Limits {
            max_vms: 2,
            ..Limits::default()
        };
        let c = Capacity::resolve(Some(node), limits).expect("capacity");
        // 24 GiB minus 10 % (more than the 1 GiB floor).
        assert_eq!(c, cap(4, 24 * 1024 - 2457, 2));
        let small = NodeSize {
            cpus: 1,
            memory_kib: 2 * 1024 * 1024,
        };
        let c = Capacity::resolve(Some(small), limits).expect("capacity");
        assert_eq!(c.memory_mib, 1024, "the 1 GiB floor of the reserve");
    }

    #[test]
    fn operator_limits_win_and_are_needed_without_node_info() {
        let limits = Limits {
            max_vcpus: Some(3),
            max_memory_mib: Some(1000),
            max_vms: 0,
        };
        let node = NodeSize {
            cpus: 64,
            memory_kib: 1 << 30,
        };
        assert_eq!(
            Capacity::resolve(Some(node), limits).expect("capacity"),
            cap(3, 1000, 1),
            "max_vms is at least 1"
        );
        assert_eq!(
            Capacity::resolve(None, limits).expect("capacity"),
            cap(3, 1000, 1)
        );
        let half = Limits {
            max_memory_mib: None,
            ..limits
        };
        let e = Capacity::resolve(None, half).expect_err("unknown memory");
        assert!(e.to_string().contains("--max-memory"), "{e}");
    }

    #[test]
    fn fits_and_does_not_fit() {
        let free = Free {
            vcpus: 2,
            memory_mib: 512,
            vms: 1,
        };
        assert!(free.fits(SMALL));
        assert!(free.fits(Needs {
            vcpus: 2,
            memory_mib: 512
        }));
        assert!(!free.fits(Needs {
            vcpus: 3,
            memory_mib: 256
        }));
        assert!(!free.fits(Needs {
            vcpus: 1,
            memory_mib: 513
        }));
        assert!(!Free { vms: 0, ..free }.fits(SMALL), "no VM slot left");
    }

    /// Whatever order jobs come and go in, the ledger never holds more
    /// than the capacity, and a refused reservation changes nothing.
    #[test]
    fn the_ledger_never_goes_over_capacity() {
        let c = cap(4, 1024, 3);
        let mut l = Ledger::new(c);
        let big = Needs {
            vcpus: 2,
            memory_mib: 512,
        };
        l.reserve("a", big).expect("a fits");
        l.reserve("b", big).expect("b fits");
        let e = l.reserve("c", SMALL).expect_err("no vCPU left");
        assert!(e.to_string().contains("0 vCPU(s)"), "{e}");
        assert_eq!(
            l.used(),
            Usage {
                vcpus: 4,
                memory_mib: 1024,
                vms: 2
            }
        );
        assert!(l.reserve("a", SMALL).is_err(), "one job holds once");
        assert_eq!(l.release("a"), Some(big));
        assert_eq!(l.release("a"), None);
        l.reserve("c", SMALL).expect("c fits now");
        l.reserve("d", SMALL).expect("d fits");
        assert!(l.reserve("e", SMALL).is_err(), "3 VMs at most");
        let u = l.used();
        assert!(u.vcpus <= c.vcpus && u.memory_mib <= c.memory_mib && u.vms <= c.max_vms);
        for j in ["b", "c", "d"] {
            l.release(j);
        }
        assert!(l.is_empty());
        assert_eq!(
            l.free(),
            Free {
                vcpus: 4,
                memory_mib: 1024,
                vms: 3
            }
        );
    }

    #[test]
    fn a_job_larger_than_every_host_is_named() {
        let hosts = [cap(4, 2048, 2), cap(16, 1024, 8)];
        assert_eq!(never_fits(SMALL, &hosts), None);
        // Fits the vCPUs of one host and the memory of the other: no host.
        let odd = Needs {
            vcpus: 8,
            memory_mib: 2048,
        };
        let why = never_fits(odd, &hosts).expect("never fits");
        assert!(
            why.contains("8 vCPU(s) and 2048 MiB")
                && why.contains("2 host(s)")
                && why.contains("16 vCPU(s) and 2048 MiB"),
            "{why}"
        );
        assert_eq!(never_fits(odd, &[]), None, "no host known: no verdict");
    }
}
