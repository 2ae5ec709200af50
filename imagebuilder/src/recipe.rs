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

/// How an image's root file system is made.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum RecipeKind {
    /// Packages are downloaded and unpacked (never installed); only the
    /// recipe's `binaries` and `trees` (with their shared libraries) and
    /// busybox go into the image (`tiny`).
    #[default]
    Unpack,
    /// A Debian system made by `mmdebstrap`: packages installed with their
    /// maintainer scripts, apt kept working (a full distribution image).
    Mmdebstrap,
}

impl RecipeKind {
    fn key(self) -> &'static str {
        match self {
            RecipeKind::Unpack => "unpack",
            RecipeKind::Mmdebstrap => "mmdebstrap",
        }
    }
}

/// The recipe file as written: every key of every kind, checked by
/// [`Recipe::validate`] against the kind.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawRecipe {
    name: String,
    #[serde(default)]
    description: String,
    #[serde(default)]
    kind: RecipeKind,
    kernel: String,
    #[serde(default)]
    modules: Vec<String>,
    packages: Vec<String>,
    binaries: Option<Vec<String>>,
    #[serde(default)]
    directories: Vec<String>,
    trees: Option<Vec<String>>,
    exclude: Option<Vec<String>>,
    symlinks: Option<BTreeMap<String, String>>,
    suite: Option<String>,
    mirror: Option<String>,
    components: Option<Vec<String>>,
    apt_options: Option<Vec<String>>,
    rpm_names: Option<BTreeMap<String, String>>,
    disk_size_mib: u32,
    boot: RecipeBoot,
}

/// What a `kind: unpack` recipe copies out of the unpacked packages.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct UnpackSpec {
    /// Absolute paths of programs to copy (from the unpacked packages) with
    /// their shared-library closure.
    pub binaries: Vec<String>,
    /// Folders copied whole from the unpacked packages (files, folders and
    /// symlinks), except what `exclude` names; ELF files among them bring
    /// their shared libraries, as `binaries` do.
    pub trees: Vec<String>,
    /// Absolute paths left out of `trees` (each with everything below it).
    pub exclude: Vec<String>,
    /// Extra symlinks in the root file system: link path -> target.
    pub symlinks: BTreeMap<String, String>,
}

/// Where a `kind: mmdebstrap` recipe's Debian system comes from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BootstrapSpec {
    /// Debian suite (`bookworm`).
    pub suite: String,
    /// Base URL of the Debian mirror, `http://` only (the guest's apt
    /// fetches through the job's HTTP proxy).
    pub mirror: String,
    /// Archive components (default `[main]`).
    pub components: Vec<String>,
    /// apt.conf lines written into the image (and used while building).
    pub apt_options: Vec<String>,
    /// RPM package names mapped to this image's Debian names.
    pub rpm_names: BTreeMap<String, String>,
}

/// What the recipe's kind needs.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum RecipeSource {
    Unpack(UnpackSpec),
    Mmdebstrap(BootstrapSpec),
}

impl RecipeSource {
    pub fn kind(&self) -> RecipeKind {
        match self {
            RecipeSource::Unpack(_) => RecipeKind::Unpack,
            RecipeSource::Mmdebstrap(_) => RecipeKind::Mmdebstrap,
        }
    }
}

/// A parsed and checked recipe (`images/<name>.yaml`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Recipe {
    /// Image name: `[a-z0-9][a-z0-9_-]*`.
    pub name: String,
    pub description: String,
    /// Kernel package or metapackage (`linux-image-cloud-amd64`).
    pub kernel: String,
    /// Kernel modules for the initramfs, in load order (file name without `.ko`).
    pub modules: Vec<String>,
    /// Debian packages: for `unpack` downloaded with their Depends/Pre-Depends
    /// closure; for `mmdebstrap` installed.
    pub packages: Vec<String>,
    /// Extra (empty) directories to create in the root file system.
    pub directories: Vec<String>,
    /// Size of the root file system in MiB.
    pub disk_size_mib: u32,
    pub boot: RecipeBoot,
    /// The kind and what only it needs.
    pub source: RecipeSource,
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
        let raw: RawRecipe = serde_path_to_error::deserialize(de).map_err(|e| {
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
        raw.validate(path)
    }
}

impl RawRecipe {
    /// Checks every value and the keys against the kind.
    fn validate(self, path: &Path) -> Result<Recipe, RecipeError> {
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
        for (i, d) in self.directories.iter().enumerate() {
            if !d.starts_with('/') || d.contains("/../") {
                return Err(bad(
                    &format!("directories[{i}]"),
                    format!("`{d}` must be an absolute path"),
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
        // Keys of the other kind are errors, not silently ignored.
        let kind = self.kind;
        let unpack_keys = [
            ("binaries", self.binaries.is_some()),
            ("trees", self.trees.is_some()),
            ("exclude", self.exclude.is_some()),
            ("symlinks", self.symlinks.is_some()),
        ];
        let mmdebstrap_keys = [
            ("suite", self.suite.is_some()),
            ("mirror", self.mirror.is_some()),
            ("components", self.components.is_some()),
            ("apt_options", self.apt_options.is_some()),
            ("rpm_names", self.rpm_names.is_some()),
        ];
        let refused: &[(&str, bool)] = match kind {
            RecipeKind::Unpack => &mmdebstrap_keys,
            RecipeKind::Mmdebstrap => &unpack_keys,
        };
        if let Some((key, _)) = refused.iter().find(|(_, given)| *given) {
            return Err(bad(
                key,
                format!("not a key of `kind: {}` recipes", kind.key()),
            ));
        }
        let source = match kind {
            RecipeKind::Unpack => RecipeSource::Unpack(unpack_spec(
                self.binaries,
                self.trees.unwrap_or_default(),
                self.exclude.unwrap_or_default(),
                self.symlinks.unwrap_or_default(),
                &bad,
            )?),
            RecipeKind::Mmdebstrap => RecipeSource::Mmdebstrap(bootstrap_spec(
                self.suite,
                self.mirror,
                self.components,
                self.apt_options.unwrap_or_default(),
                self.rpm_names.unwrap_or_default(),
                &bad,
            )?),
        };
        Ok(Recipe {
            name: self.name,
            description: self.description,
            kernel: self.kernel,
            modules: self.modules,
            packages: self.packages,
            directories: self.directories,
            disk_size_mib: self.disk_size_mib,
            boot: self.boot,
            source,
        })
    }
}

type Bad<'a> = &'a dyn Fn(&str, String) -> RecipeError;

fn unpack_spec(
    binaries: Option<Vec<String>>,
    trees: Vec<String>,
    exclude: Vec<String>,
    symlinks: BTreeMap<String, String>,
    bad: Bad<'_>,
) -> Result<UnpackSpec, RecipeError> {
    let binaries = binaries.ok_or_else(|| {
        bad(
            "binaries",
            "missing: `kind: unpack` recipes list the programs to copy".to_string(),
        )
    })?;
    for (i, b) in binaries.iter().enumerate() {
        if !b.starts_with('/') || b.contains("/../") || b.ends_with('/') {
            return Err(bad(
                &format!("binaries[{i}]"),
                format!("`{b}` must be an absolute file path"),
            ));
        }
    }
    for (key, list) in [("trees", &trees), ("exclude", &exclude)] {
        for (i, d) in list.iter().enumerate() {
            if !d.starts_with('/') || d.contains("/../") || d.len() < 2 {
                return Err(bad(
                    &format!("{key}[{i}]"),
                    format!("`{d}` must be an absolute path below /"),
                ));
            }
        }
    }
    for (link, target) in &symlinks {
        if !link.starts_with('/') || link.contains("/../") || target.is_empty() {
            return Err(bad(
                &format!("symlinks.{link}"),
                "link must be an absolute path and target non-empty".to_string(),
            ));
        }
    }
    Ok(UnpackSpec {
        binaries,
        trees,
        exclude,
        symlinks,
    })
}

fn bootstrap_spec(
    suite: Option<String>,
    mirror: Option<String>,
    components: Option<Vec<String>>,
    apt_options: Vec<String>,
    rpm_names: BTreeMap<String, String>,
    bad: Bad<'_>,
) -> Result<BootstrapSpec, RecipeError> {
    let word = |s: &str| {
        !s.is_empty()
            && s.bytes()
                .all(|b| b.is_ascii_alphanumeric() || b"-_.".contains(&b))
    };
    let suite = suite.ok_or_else(|| {
        bad(
            "suite",
            "missing: `kind: mmdebstrap` needs a Debian suite (bookworm)".to_string(),
        )
    })?;
    if !word(&suite) {
        return Err(bad("suite", format!("`{suite}` is not a suite name")));
    }
    let mirror = mirror.ok_or_else(|| {
        bad(
            "mirror",
            "missing: `kind: mmdebstrap` needs a mirror (http://deb.debian.org/debian)".to_string(),
        )
    })?;
    let host = mirror.strip_prefix("http://").unwrap_or("");
    let host = host.split('/').next().unwrap_or("");
    if host.is_empty() || mirror.chars().any(|c| c.is_whitespace() || c.is_control()) {
        return Err(bad(
            "mirror",
            format!(
                "`{mirror}` must be an http:// URL (the guest's apt fetches through the job's HTTP proxy)"
            ),
        ));
    }
    let mirror = mirror.trim_end_matches('/').to_string();
    let components = components.unwrap_or_else(|| vec!["main".to_string()]);
    if components.is_empty() {
        return Err(bad(
            "components",
            "must list at least one component".to_string(),
        ));
    }
    for (i, c) in components.iter().enumerate() {
        if !word(c) {
            return Err(bad(
                &format!("components[{i}]"),
                format!("`{c}` is not a component name"),
            ));
        }
    }
    for (i, o) in apt_options.iter().enumerate() {
        let o = o.trim();
        if o.is_empty() || o.contains('\n') || !o.contains("::") || o.starts_with('#') {
            return Err(bad(
                &format!("apt_options[{i}]"),
                format!("`{o}` is not one apt.conf line (`Group::Option \"value\";`)"),
            ));
        }
    }
    for (rpm, deb) in &rpm_names {
        if rpm.is_empty() || rpm.chars().any(char::is_whitespace) {
            return Err(bad(
                &format!("rpm_names.{rpm}"),
                "an RPM name has no spaces".to_string(),
            ));
        }
        if !is_package_name(deb) {
            return Err(bad(
                &format!("rpm_names.{rpm}"),
                format!("`{deb}` is not a Debian package name"),
            ));
        }
    }
    Ok(BootstrapSpec {
        suite,
        mirror,
        components,
        apt_options: apt_options.iter().map(|o| o.trim().to_string()).collect(),
        rpm_names,
    })
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
        assert_eq!(r.source.kind(), RecipeKind::Unpack);
    }

    #[test]
    fn shipped_debian_recipe_is_valid() {
        let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("../images/debian.yaml");
        let r = Recipe::load(&path).expect("images/debian.yaml");
        let RecipeSource::Mmdebstrap(b) = &r.source else {
            panic!("debian is not an mmdebstrap recipe: {:?}", r.source);
        };
        assert_eq!(b.mirror, "http://deb.debian.org/debian");
        assert_eq!(
            b.rpm_names.get("PyYAML").map(String::as_str),
            Some("python3-yaml")
        );
    }

    const FULL: &str = "name: debian
kind: mmdebstrap
kernel: linux-image-cloud-amd64
suite: bookworm
mirror: http://deb.debian.org/debian/
apt_options:
  - 'Acquire::Check-Valid-Until \"false\";'
rpm_names:
  PyYAML: python3-yaml
packages: [python3, rpmlint]
disk_size_mib: 1024
boot:
  memory_mib: 512
  vcpus: 1
  cmdline: console=ttyS0
  ssh_timeout_secs: 60
";

    fn invalid(text: &str) -> (String, String) {
        match Recipe::parse(text, Path::new("images/debian.yaml")) {
            Err(RecipeError::Invalid { key, message, .. }) => (key, message),
            other => panic!("expected an Invalid error, got {other:?}"),
        }
    }

    #[test]
    fn parses_mmdebstrap_recipe_with_defaults() {
        let r = Recipe::parse(FULL, Path::new("debian.yaml")).expect("parse");
        let RecipeSource::Mmdebstrap(b) = r.source else {
            panic!("kind");
        };
        assert_eq!(b.suite, "bookworm");
        // The trailing slash goes: the manifest names the base URL.
        assert_eq!(b.mirror, "http://deb.debian.org/debian");
        assert_eq!(b.components, ["main"]);
        assert_eq!(b.apt_options, [r#"Acquire::Check-Valid-Until "false";"#]);
        assert_eq!(r.packages, ["python3", "rpmlint"]);
    }

    #[test]
    fn mmdebstrap_refuses_the_keys_of_unpack() {
        for (key, line) in [
            ("binaries", "binaries: [/usr/bin/git]\n"),
            ("trees", "trees: [/usr/lib/python3.11]\n"),
            ("exclude", "exclude: []\n"),
            ("symlinks", "symlinks: {/usr/bin/python: python3}\n"),
        ] {
            let (k, msg) = invalid(&format!("{FULL}{line}"));
            assert_eq!(k, key);
            assert_eq!(msg, "not a key of `kind: mmdebstrap` recipes");
        }
        let err = Recipe::parse(
            &format!("{FULL}trees: []\n"),
            Path::new("images/debian.yaml"),
        )
        .expect_err("refused")
        .to_string();
        assert_eq!(
            err,
            "images/debian.yaml: at `trees`: not a key of `kind: mmdebstrap` recipes"
        );
    }

    #[test]
    fn unpack_refuses_the_keys_of_mmdebstrap() {
        for (key, line) in [
            ("suite", "suite: bookworm\n"),
            ("mirror", "mirror: http://deb.debian.org/debian\n"),
            ("components", "components: [main]\n"),
            ("apt_options", "apt_options: []\n"),
            ("rpm_names", "rpm_names: {}\n"),
        ] {
            let (k, msg) = invalid(&format!("{GOOD}{line}"));
            assert_eq!(k, key);
            assert_eq!(msg, "not a key of `kind: unpack` recipes");
        }
        // An explicit `kind: unpack` is the default.
        let r =
            Recipe::parse(&format!("kind: unpack\n{GOOD}"), Path::new("r.yaml")).expect("parse");
        assert_eq!(r.source.kind(), RecipeKind::Unpack);
    }

    #[test]
    fn mmdebstrap_values_are_checked() {
        let (k, msg) = invalid(&FULL.replace("http://deb", "https://deb"));
        assert_eq!(k, "mirror");
        assert!(msg.contains("must be an http:// URL"), "{msg}");
        let (k, _) = invalid(&FULL.replace("mirror: http://deb.debian.org/debian/\n", ""));
        assert_eq!(k, "mirror");
        let (k, msg) = invalid(&FULL.replace("suite: bookworm\n", ""));
        assert_eq!(k, "suite");
        assert!(msg.starts_with("missing"), "{msg}");
        let (k, _) = invalid(&FULL.replace("suite: bookworm", "suite: 'book worm'"));
        assert_eq!(k, "suite");
        let (k, _) = invalid(&format!("{FULL}components: []\n"));
        assert_eq!(k, "components");
        let (k, _) = invalid(&format!("{FULL}components: [main, 'no/n']\n"));
        assert_eq!(k, "components[1]");
        let (k, _) = invalid(&FULL.replace("'Acquire::Check-Valid-Until \"false\";'", "'false'"));
        assert_eq!(k, "apt_options[0]");
        let (k, msg) = invalid(&FULL.replace("PyYAML: python3-yaml", "PyYAML: Python3_YAML"));
        assert_eq!(k, "rpm_names.PyYAML");
        assert!(msg.contains("Python3_YAML"), "{msg}");
    }

    #[test]
    fn unpack_needs_binaries() {
        let (k, msg) = invalid(&GOOD.replace("binaries: [/usr/sbin/dropbear]\n", ""));
        assert_eq!(k, "binaries");
        assert!(msg.starts_with("missing"), "{msg}");
    }

    #[test]
    fn mmdebstrap_keys_keep_line_and_column_errors() {
        let text = FULL.replace("suite: bookworm\n", "suite: bookworm\nsuites: [sid]\n");
        let msg = Recipe::parse(&text, Path::new("images/debian.yaml"))
            .expect_err("unknown key")
            .to_string();
        assert!(
            msg.starts_with("images/debian.yaml:5:1: at `suites`"),
            "{msg}"
        );
        let text = FULL.replace("kind: mmdebstrap", "kind: debootstrap");
        let msg = Recipe::parse(&text, Path::new("images/debian.yaml"))
            .expect_err("unknown kind")
            .to_string();
        assert!(msg.starts_with("images/debian.yaml:2:"), "{msg}");
        assert!(
            msg.contains("`kind`") && msg.contains("debootstrap"),
            "{msg}"
        );
        let text = FULL.replace("  PyYAML: python3-yaml", "  PyYAML: [python3-yaml]");
        let msg = Recipe::parse(&text, Path::new("images/debian.yaml"))
            .expect_err("wrong type")
            .to_string();
        assert!(msg.starts_with("images/debian.yaml:9:"), "{msg}");
        assert!(msg.contains("`rpm_names.PyYAML`"), "{msg}");
    }
}
