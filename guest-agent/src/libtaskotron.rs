//! Ferrotron's own `libtaskotron` Python package (`python/libtaskotron/`,
//! embedded here): the `check` module real Taskotron tasks import
//! (`CheckDetail`, `export_YAML`, `import_YAML`, `export_TAP`, …). The agent
//! writes it beside the job's work folder and puts it on the path of every
//! action: first on `sys.path` of `python` actions (after the task's own
//! folder), and on `PYTHONPATH` of `shell` and `exec` commands, so a task
//! never ships it.

use std::fs;
use std::io;
use std::path::{Path, PathBuf};

/// The package's files, by path below the folder on `sys.path`.
pub const FILES: &[(&str, &str)] = &[
    (
        "libtaskotron/__init__.py",
        include_str!("../python/libtaskotron/__init__.py"),
    ),
    (
        "libtaskotron/check.py",
        include_str!("../python/libtaskotron/check.py"),
    ),
    (
        "libtaskotron/_yaml.py",
        include_str!("../python/libtaskotron/_yaml.py"),
    ),
    (
        "libtaskotron/directives.py",
        include_str!("../python/libtaskotron/directives.py"),
    ),
    (
        "libtaskotron/exceptions.py",
        include_str!("../python/libtaskotron/exceptions.py"),
    ),
    (
        "libtaskotron/python_utils.py",
        include_str!("../python/libtaskotron/python_utils.py"),
    ),
    (
        "libtaskotron/taskotron_result.py",
        include_str!("../python/libtaskotron/taskotron_result.py"),
    ),
];

/// Writes the package into `dir` (created), returning `dir`: the folder to
/// put on the Python path.
pub fn install(dir: &Path) -> io::Result<PathBuf> {
    for (rel, text) in FILES {
        let path = dir.join(rel);
        if let Some(parent) = path.parent() {
            fs::create_dir_all(parent)?;
        }
        fs::write(&path, text)?;
    }
    Ok(dir.to_path_buf())
}

#[cfg(test)]
mod tests {
    #[test]
    fn every_file_of_the_package_is_embedded() {
        let on_disk: Vec<String> = std::fs::read_dir(
            std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("python/libtaskotron"),
        )
        .expect("package folder")
        .flatten()
        .map(|e| e.file_name().to_string_lossy().into_owned())
        .filter(|n| n.ends_with(".py"))
        .collect();
        for name in on_disk {
            let rel = format!("libtaskotron/{name}");
            assert!(
                super::FILES.iter().any(|(p, _)| *p == rel),
                "{rel} is not in libtaskotron::FILES"
            );
        }
    }
}
