//! The two libvirt calls the `virt` crate does not wrap:
//! `virDomainSaveFlags` and `virDomainRestoreFlags`. This is the only module
//! with `unsafe` code; each call passes C strings that live across the call
//! and pointers owned by live `virt` objects.
#![allow(unsafe_code)]

use std::ffi::CString;
use std::path::Path;

use virt::connect::Connect;
use virt::domain::Domain;
use virt::sys;

#[derive(Debug, thiserror::Error)]
pub enum SaveRestoreError {
    #[error("path {0} is not valid for libvirt (contains a NUL byte)")]
    Path(String),
    #[error("libvirt could not save domain {name} to {path}")]
    Save {
        name: String,
        path: String,
        #[source]
        source: virt::error::Error,
    },
    #[error("libvirt could not restore a domain from {path}")]
    Restore {
        path: String,
        #[source]
        source: virt::error::Error,
    },
}

fn c_path(path: &Path) -> Result<CString, SaveRestoreError> {
    let s = path.to_string_lossy().into_owned();
    CString::new(s.clone()).map_err(|_| SaveRestoreError::Path(s))
}

/// Saves the running domain's memory and device state to `path` and stops
/// it (`virDomainSaveFlags`).
pub fn save(domain: &Domain, path: &Path) -> Result<(), SaveRestoreError> {
    let to = c_path(path)?;
    // SAFETY: `domain` keeps its virDomainPtr alive for the whole call; `to`
    // is a NUL-terminated string that outlives it; a NULL dxml is allowed.
    let rc = unsafe { sys::virDomainSaveFlags(domain.as_ptr(), to.as_ptr(), std::ptr::null(), 0) };
    if rc < 0 {
        return Err(SaveRestoreError::Save {
            name: domain.name().unwrap_or_default(),
            path: path.display().to_string(),
            source: virt::error::Error::last_error(),
        });
    }
    Ok(())
}

/// Starts a domain from a save file, running (`virDomainRestoreFlags` with
/// `VIR_DOMAIN_SAVE_RUNNING`). The domain is described by the XML inside
/// the file.
pub fn restore(conn: &Connect, path: &Path) -> Result<(), SaveRestoreError> {
    let from = c_path(path)?;
    // SAFETY: `conn` keeps its virConnectPtr alive for the whole call;
    // `from` is a NUL-terminated string that outlives it; a NULL dxml is
    // allowed.
    let rc = unsafe {
        sys::virDomainRestoreFlags(
            conn.as_ptr(),
            from.as_ptr(),
            std::ptr::null(),
            sys::VIR_DOMAIN_SAVE_RUNNING,
        )
    };
    if rc < 0 {
        return Err(SaveRestoreError::Restore {
            path: path.display().to_string(),
            source: virt::error::Error::last_error(),
        });
    }
    Ok(())
}
