//! Image recipes: the YAML file under `images/` that says what goes into an image.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

/// Errors while loading or checking a recipe.
#[derive(Debug, thiserror::Error)]
pub enum RecipeError {
    #[error("cannot read recipe {path}: {source}")]
    Read {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("{path}:{line}:{column}: at `{key}`: {message}")]
    Syntax {
        path: PathBuf,
        line: usize,
        column: usize,
        key: String,
        message: String,
    },
    #[error("{path}: at `{key}`: {message}")]
    Invalid {
        path: PathBuf,
        key: String,
        message: String,
    },
}

/// Boot settings of a recipe; copied into the manifest.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RecipeBoot {
    pub memory_mib: u32,
    pub vcpus: u32,
    pub cmdline: String,
    pub ssh_timeout_secs: u32,
}

/// A parsed recipe (`images/<name>.yaml`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Recipe {
    /// Image name: `[a-z0-9][a-z0-9_-]*`.
    pub name: String,
    #[serde(default)]
    pub description: String,
    /// Kernel package or metapackage (`linux-image-cloud-amd64`).
    pub kernel: String,
    /// Kernel modules for the initramfs, in load order (file name without `.ko`).
    #[serde(default)]
    pub modules: Vec<String>,
    /// Debian packages to download, with their Depends/Pre-Depends closure.
    pub packages: Vec<String>,
    /// Absolute paths of programs to copy (from the unpacked packages) with
    /// their shared-library closure.
    pub binaries: Vec<String>,
    /// Extra (empty) directories to create in the root file system.
    #[serde(default)]
    pub directories: Vec<String>,
    /// Folders copied whole from the unpacked packages (files, folders and
    /// symlinks), except what `exclude` names; ELF files among them bring
    /// their shared libraries, as `binaries` do.
    #[serde(default)]
    pub trees: Vec<String>,
    /// Absolute paths left out of `trees` (each with everything below it).
    #[serde(default)]
    pub exclude: Vec<String>,
    /// Extra symlinks in the root file system: link path -> target.
    #[serde(default)]
    pub symlinks: BTreeMap<String, String>,
    /// Size of the root file system in MiB.
    pub disk_size_mib: u32,
    pub boot: RecipeBoot,
}

impl Recipe {
    /// Reads and checks a recipe file. Errors name the file, line, column and key path.
    pub fn load(path: &Path) -> Result<Recipe, RecipeError> {
        let text = std::fs::read_to_string(path).map_err(|source| RecipeError::Read {
            path: path.to_path_buf(),
            source,
        })?;
        Self::parse(&text, path)
    }

    /// Parses recipe text; `path` is only used in error messages.
    pub fn parse(text: &str, path: &Path) -> Result<Recipe, RecipeError> {
        let de = yaml_serde::Deserializer::from_str(text);
        let recipe: Recipe = serde_path_to_error::deserialize(de).map_err(|e| {
            let key = e.path().to_string();
            let inner = e.into_inner();
            let (line, column) = inner
                .location()
                .map(|l| (l.line(), l.column()))
                .unwrap_or((0, 0));
            let mut message = inner.to_string();
            // yaml_serde appends " at line L column C"; we print that up front.
            if let Some(pos) = message.find(" at line ") {
                message.truncate(pos);
            }
            RecipeError::Syntax {
                path: path.to_path_buf(),
                line,
                column,
                key,
                message,
            }
        })?;
        recipe.validate(path)?;
        Ok(recipe)
    }

    fn validate(&self, path: &Path) -> Result<(), RecipeError> {
        let bad = |key: &str, message: String| RecipeError::Invalid {
            path: path.to_path_buf(),
            key: key.to_string(),
            message,
        };
        let name_ok = !self.name.is_empty()
            && self
                .name
                .bytes()
                .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-' || b == b'_')
            && self
                .name
                .bytes()
                .next()
                .is_some_and(|b| b.is_ascii_alphanumeric());
        if !name_ok {
            return Err(bad(
                "name",
                format!(
                    "`{}` is not a valid image name (use a-z, 0-9, - and _)",
                    self.name
                ),
            ));
        }
        if self.kernel.is_empty() || !is_package_name(&self.kernel) {
            return Err(bad(
                "kernel",
                format!("`{}` is not a package name", self.kernel),
            ));
        }
        for (i, p) in self.packages.iter().enumerate() {
            if !is_package_name(p) {
                return Err(bad(
                    &format!("packages[{i}]"),
                    format!("`{p}` is not a package name"),
                ));
            }
        }
        for (i, m) in self.modules.iter().enumerate() {
            if m.is_empty() || m.contains('/') || m.ends_with(".ko") {
                return Err(bad(
                    &format!("modules[{i}]"),
                    format!("`{m}`: give the module name without path or .ko"),
                ));
            }
        }
        for (i, b) in self.binaries.iter().enumerate() {
            if !b.starts_with('/') || b.contains("/../") || b.ends_with('/') {
                return Err(bad(
                    &format!("binaries[{i}]"),
                    format!("`{b}` must be an absolute file path"),
                ));
            }
        }
        for (i, d) in self.directories.iter().enumerate() {
            if !d.starts_with('/') || d.contains("/../") {
                return Err(bad(
                    &format!("directories[{i}]"),
                    format!("`{d}` must be an absolute path"),
                ));
            }
        }
        for (key, list) in [("trees", &self.trees), ("exclude", &self.exclude)] {
            for (i, d) in list.iter().enumerate() {
                if !d.starts_with('/') || d.contains("/../") || d.len() < 2 {
                    return Err(bad(
                        &format!("{key}[{i}]"),
                        format!("`{d}` must be an absolute path below /"),
                    ));
                }
            }
        }
        for (link, target) in &self.symlinks {
            if !link.starts_with('/') || link.contains("/../") || target.is_empty() {
                return Err(bad(
                    &format!("symlinks.{link}"),
                    "link must be an absolute path and target non-empty".to_string(),
                ));
            }
        }
        if self.disk_size_mib < 16 {
            return Err(bad("disk_size_mib", "must be at least 16".to_string()));
        }
        if self.boot.memory_mib < 64 {
            return Err(bad("boot.memory_mib", "must be at least 64".to_string()));
        }
        if self.boot.vcpus == 0 {
            return Err(bad("boot.vcpus", "must be at least 1".to_string()));
        }
        if self.boot.ssh_timeout_secs == 0 {
            return Err(bad(
                "boot.ssh_timeout_secs",
                "must be at least 1".to_string(),
            ));
        }
        Ok(())
    }
}

/// Debian package name rules (plus an optional `:arch`).
fn is_package_name(s: &str) -> bool {
    let base = s.split(':').next().unwrap_or(s);
    base.len() >= 2
        && base
            .bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b"+-.".contains(&b))
}

/// SHA-256 of a byte string, lowercase hex.
pub(crate) fn sha256_hex(data: &[u8]) -> String {
    hex::encode(Sha256::digest(data))
}

#[cfg(test)]
mod tests {
    use super::*;

    const GOOD: &str = "name: tiny
description: test
kernel: linux-image-cloud-amd64
modules: [virtio_ring, virtio]
packages: [busybox-static]
binaries: [/usr/sbin/dropbear]
disk_size_mib: 64
boot:
  memory_mib: 256
  vcpus: 1
  cmdline: console=ttyS0
  ssh_timeout_secs: 60
";

    #[test]
    fn parses_good_recipe() {
        let r = Recipe::parse(GOOD, Path::new("tiny.yaml")).expect("parse");
        assert_eq!(r.name, "tiny");
        assert_eq!(r.modules, vec!["virtio_ring", "virtio"]);
        assert_eq!(r.boot.memory_mib, 256);
    }

    #[test]
    fn unknown_nested_key_names_line_and_path() {
        let text = GOOD.replace("  vcpus: 1\n", "  vcpus: 1\n  cpus: 2\n");
        let err = Recipe::parse(&text, Path::new("images/tiny.yaml")).expect_err("must fail");
        let msg = err.to_string();
        assert!(msg.starts_with("images/tiny.yaml:11:"), "{msg}");
        assert!(msg.contains("`boot.cpus`"), "{msg}");
        assert!(msg.contains("unknown field `cpus`"), "{msg}");
    }

    #[test]
    fn unknown_top_level_key() {
        let text = format!("{GOOD}colour: blue\n");
        let err = Recipe::parse(&text, Path::new("r.yaml")).expect_err("must fail");
        let msg = err.to_string();
        assert!(msg.starts_with("r.yaml:13:"), "{msg}");
        assert!(msg.contains("`colour`"), "{msg}");
    }

    #[test]
    fn wrong_type_names_key() {
        let text = GOOD.replace("memory_mib: 256", "memory_mib: lots");
        let err = Recipe::parse(&text, Path::new("r.yaml")).expect_err("must fail");
        let msg = err.to_string();
        assert!(msg.contains("r.yaml:9:"), "{msg}");
        assert!(msg.contains("`boot.memory_mib`"), "{msg}");
    }

    #[test]
    fn invalid_values_are_rejected() {
        let text = GOOD.replace("name: tiny", "name: Tiny!");
        let err = Recipe::parse(&text, Path::new("r.yaml")).expect_err("must fail");
        assert!(err.to_string().contains("`name`"), "{err}");
        let text = GOOD.replace("[/usr/sbin/dropbear]", "[usr/sbin/dropbear]");
        let err = Recipe::parse(&text, Path::new("r.yaml")).expect_err("must fail");
        assert!(err.to_string().contains("`binaries[0]`"), "{err}");
    }

    #[test]
    fn shipped_tiny_recipe_is_valid() {
        let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("../images/tiny.yaml");
        let r = Recipe::load(&path).expect("images/tiny.yaml");
        assert_eq!(r.name, "tiny");
    }
}
