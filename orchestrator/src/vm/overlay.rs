//! Per-job copy-on-write disks backed by the immutable base image.

use std::path::{Path, PathBuf};
use std::process::Command;

#[derive(Debug, thiserror::Error)]
pub enum OverlayError {
    #[error("cannot run qemu-img")]
    Spawn(#[source] std::io::Error),
    #[error("qemu-img could not create overlay {path} on {base}: {stderr}")]
    Failed {
        path: PathBuf,
        base: PathBuf,
        stderr: String,
    },
}

/// Creates `path` as a qcow2 overlay whose backing file is `base`.
pub fn create(base: &Path, path: &Path) -> Result<(), OverlayError> {
    let out = Command::new("qemu-img")
        .args(["create", "-q", "-f", "qcow2", "-F", "qcow2", "-b"])
        .arg(base)
        .arg(path)
        .output()
        .map_err(OverlayError::Spawn)?;
    if !out.status.success() {
        return Err(OverlayError::Failed {
            path: path.to_path_buf(),
            base: base.to_path_buf(),
            stderr: String::from_utf8_lossy(&out.stderr).trim().to_string(),
        });
    }
    Ok(())
}
