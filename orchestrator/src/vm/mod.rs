//! Disposable VMs through libvirt: domain XML, the hypervisor connection,
//! the guard that destroys a VM on every path, and the reaper of leftovers.

pub mod accel;
pub mod console;
pub mod domain;
pub mod guard;
pub mod hypervisor;
pub mod overlay;
pub mod owner;
pub mod ports;
pub mod reaper;
pub mod savefile;
pub mod saverestore;

pub use accel::Accel;
pub use domain::DomainSpec;
pub use guard::VmGuard;
pub use hypervisor::{Hypervisor, HypervisorError};

/// Every domain Ferrotron creates is named with this prefix.
pub const DOMAIN_PREFIX: &str = "ferrotron-";
