//! Assembling an image (kernel, initramfs, root disk, manifest) in a work folder.
//! Publishing it into the store is `store.rs`'s job.

use std::collections::BTreeMap;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;

use time::OffsetDateTime;

use crate::apt::{self, AptError};
use crate::bootstrap::{self, BootstrapError};
use crate::cpio::{CpioError, CpioWriter};
use crate::elf::{self, ElfError};
use crate::guest;
use crate::manifest::{
    hash_file, AgentInfo, BootSettings, BootSource, Firmware, Manifest, ManifestError,
    PackageEntry, PackageInstall, MANIFEST_FORMAT, ROOT_USER,
};
use crate::recipe::{BootstrapSpec, Recipe, RecipeError, RecipeSource, UnpackSpec};
use crate::tool::{run, ToolError};

/// File names inside an image folder.
pub const KERNEL_FILE: &str = "vmlinuz";
pub const INITRD_FILE: &str = "initrd.img";
pub const DISK_FILE: &str = "disk.qcow2";

/// Inputs of a build besides the recipe.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BuildOptions {
    /// The guest agent executable to install at `/usr/libexec/ferrotron/ferrotron-agent`.
    pub agent_binary: PathBuf,
    /// Keep the work folder under `<store>/.tmp/` when the build fails (for debugging).
    pub keep_failed: bool,
}

impl BuildOptions {
    pub fn new(agent_binary: impl Into<PathBuf>) -> Self {
        BuildOptions {
            agent_binary: agent_binary.into(),
            keep_failed: false,
        }
    }
}

/// Progress of a build, one event per step, for the CLI.
#[derive(Debug, Clone, PartialEq)]
pub enum BuildEvent {
    Step {
        name: String,
        detail: String,
    },
    Done {
        path: PathBuf,
        size_bytes: u64,
        elapsed: Duration,
    },
}

/// Errors of a build.
#[derive(Debug, thiserror::Error)]
pub enum BuildError {
    #[error(transparent)]
    Recipe(#[from] RecipeError),
    #[error(transparent)]
    Apt(#[from] AptError),
    #[error(transparent)]
    Elf(#[from] ElfError),
    #[error(transparent)]
    Cpio(#[from] CpioError),
    #[error(transparent)]
    Manifest(#[from] ManifestError),
    #[error(transparent)]
    Tool(#[from] ToolError),
    #[error(transparent)]
    Bootstrap(#[from] BootstrapError),
    #[error("{path}: {source}")]
    Io {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("guest agent {path}: {message}")]
    Agent { path: PathBuf, message: String },
    #[error("kernel: {0}")]
    Kernel(String),
    #[error("{0}")]
    Missing(String),
}

pub(crate) fn io_err(path: &Path) -> impl FnOnce(std::io::Error) -> BuildError {
    let path = path.to_path_buf();
    move |source| BuildError::Io { path, source }
}

fn step(progress: &mut dyn FnMut(BuildEvent), name: &str, detail: String) {
    tracing::info!(step = name, "{detail}");
    progress(BuildEvent::Step {
        name: name.to_string(),
        detail,
    });
}

/// Version string from `<agent> --version` (`ferrotron-agent 0.1.0` -> `0.1.0`).
fn agent_version(path: &Path) -> Result<String, BuildError> {
    let out = Command::new(path)
        .arg("--version")
        .output()
        .map_err(|e| BuildError::Agent {
            path: path.to_path_buf(),
            message: format!("cannot run `--version`: {e}"),
        })?;
    let text = String::from_utf8_lossy(&out.stdout);
    let line = text.lines().next().unwrap_or("").trim();
    if !out.status.success() || line.is_empty() {
        return Err(BuildError::Agent {
            path: path.to_path_buf(),
            message: format!("`--version` printed nothing or failed ({})", out.status),
        });
    }
    Ok(line.split_whitespace().last().unwrap_or(line).to_string())
}

fn write_file(path: &Path, mode: u32, data: &[u8]) -> Result<(), BuildError> {
    if let Some(parent) = path.parent() {
        std::fs::create_dir_all(parent).map_err(io_err(parent))?;
    }
    std::fs::write(path, data).map_err(io_err(path))?;
    std::fs::set_permissions(path, std::fs::Permissions::from_mode(mode)).map_err(io_err(path))
}

fn mkdir_mode(path: &Path, mode: u32) -> Result<(), BuildError> {
    std::fs::create_dir_all(path).map_err(io_err(path))?;
    std::fs::set_permissions(path, std::fs::Permissions::from_mode(mode)).map_err(io_err(path))
}

fn symlink_if_absent(target: &str, link: &Path) -> Result<(), BuildError> {
    if std::fs::symlink_metadata(link).is_ok() {
        return Ok(());
    }
    if let Some(parent) = link.parent() {
        std::fs::create_dir_all(parent).map_err(io_err(parent))?;
    }
    std::os::unix::fs::symlink(target, link).map_err(io_err(link))
}

/// Every entry (guest path) below the recipe's `trees` in the unpacked
/// packages, parents first, minus `exclude`; and the ELF files among them.
fn tree_files(
    pkgroot: &Path,
    trees: &[String],
    exclude: &[String],
) -> Result<(Vec<String>, Vec<String>), BuildError> {
    let excluded = |p: &str| {
        exclude.iter().any(|e| {
            p == e
                || p.strip_prefix(e.as_str())
                    .is_some_and(|r| r.starts_with('/'))
        })
    };
    let mut entries = Vec::new();
    let mut elfs = Vec::new();
    let mut stack: Vec<String> = trees.iter().rev().cloned().collect();
    while let Some(guest_path) = stack.pop() {
        if excluded(&guest_path) {
            continue;
        }
        let src = host(pkgroot, &guest_path);
        let meta = std::fs::symlink_metadata(&src).map_err(|_| {
            BuildError::Missing(format!(
                "{guest_path} (from `trees`) is in none of the recipe's packages"
            ))
        })?;
        entries.push(guest_path.clone());
        if meta.is_dir() {
            let mut names: Vec<String> = std::fs::read_dir(&src)
                .map_err(io_err(&src))?
                .flatten()
                .map(|e| e.file_name().to_string_lossy().into_owned())
                .collect();
            names.sort();
            stack.extend(names.into_iter().rev().map(|n| format!("{guest_path}/{n}")));
        } else if meta.is_file() {
            let mut magic = [0u8; 4];
            let is_elf = std::fs::File::open(&src)
                .and_then(|mut f| std::io::Read::read_exact(&mut f, &mut magic))
                .is_ok()
                && &magic == b"\x7fELF";
            if is_elf {
                elfs.push(guest_path);
            }
        }
    }
    Ok((entries, elfs))
}

fn host(root: &Path, guest_path: &str) -> PathBuf {
    root.join(guest_path.trim_start_matches('/'))
}

/// Busybox applets as (directory, name) from `busybox --list-full`, mapped to /bin and /sbin.
fn busybox_applets(busybox: &Path) -> Result<Vec<(&'static str, String)>, BuildError> {
    let out = run(Command::new(busybox).arg("--list-full"))?;
    Ok(out
        .lines()
        .filter_map(|l| {
            let (dir, name) = l.trim().rsplit_once('/')?;
            if name.is_empty() || name == "busybox" {
                return None;
            }
            let dir = if dir.ends_with("sbin") { "sbin" } else { "bin" };
            Some((dir, name.to_string()))
        })
        .collect())
}

/// Finds `<name>.ko` under the kernel's module tree (`-` and `_` are equivalent).
fn find_module(modules_root: &Path, name: &str) -> Result<PathBuf, BuildError> {
    let want = name.replace('-', "_");
    let mut stack = vec![modules_root.to_path_buf()];
    let mut compressed = None;
    while let Some(dir) = stack.pop() {
        let entries = std::fs::read_dir(&dir).map_err(io_err(&dir))?;
        for e in entries {
            let e = e.map_err(io_err(&dir))?;
            let p = e.path();
            let ft = e.file_type().map_err(io_err(&p))?;
            if ft.is_dir() {
                stack.push(p);
                continue;
            }
            let fname = e.file_name().to_string_lossy().replace('-', "_");
            if fname == format!("{want}.ko") {
                return Ok(p);
            }
            if fname.starts_with(&format!("{want}.ko.")) {
                compressed = Some(p);
            }
        }
    }
    Err(BuildError::Kernel(match compressed {
        Some(p) => format!(
            "module {name} is compressed ({}); only uncompressed .ko files are supported",
            p.display()
        ),
        None => format!("module {name} not found under {}", modules_root.display()),
    }))
}

/// Builds the initramfs: static busybox, the modules in load order, `/init`.
fn write_initrd(
    out: &Path,
    busybox: &[u8],
    modules: &[(String, Vec<u8>)],
) -> Result<u64, BuildError> {
    let file = std::fs::File::create(out).map_err(io_err(out))?;
    let mut w = CpioWriter::new(std::io::BufWriter::new(file));
    for d in [
        "bin",
        "dev",
        "proc",
        "sys",
        "newroot",
        "lib",
        guest::INITRD_MODULE_DIR,
    ] {
        w.dir(d, 0o755)?;
    }
    w.char_dev("dev/console", 0o600, 5, 1)?;
    w.char_dev("dev/null", 0o666, 1, 3)?;
    w.file("bin/busybox", 0o755, busybox)?;
    for applet in [
        "sh",
        "mount",
        "insmod",
        "poweroff",
        "usleep",
        "sleep",
        "switch_root",
        "mkdir",
        "cat",
        "head",
        "ls",
    ] {
        w.symlink(&format!("bin/{applet}"), "busybox")?;
    }
    let names: Vec<String> = modules.iter().map(|(n, _)| n.clone()).collect();
    for (name, data) in modules {
        w.file(
            &format!("{}/{name}.ko", guest::INITRD_MODULE_DIR),
            0o644,
            data,
        )?;
    }
    w.file("init", 0o755, guest::initrd_init(&names).as_bytes())?;
    let mut inner = w.finish()?;
    std::io::Write::flush(&mut inner).map_err(io_err(out))?;
    drop(inner);
    Ok(std::fs::metadata(out).map_err(io_err(out))?.len())
}

/// Everything a finished work folder contains before publishing.
pub(crate) struct Assembled {
    /// Folder with vmlinuz, initrd.img, disk.qcow2 and manifest.json.
    pub image_dir: PathBuf,
    pub manifest: Manifest,
}

/// The guest agent to bake in.
struct Agent {
    bytes: Vec<u8>,
    version: String,
    sha256: String,
}

/// A finished root file system in the staging folder.
struct RootFs {
    /// What the manifest lists as the image's packages.
    packages: Vec<PackageEntry>,
    /// The static busybox, also copied into the initramfs.
    busybox: Vec<u8>,
    /// How the guest installs packages at job time (`kind: mmdebstrap`).
    install: Option<PackageInstall>,
    /// Files of the image folder besides kernel, initramfs and disk.
    extra_files: Vec<String>,
}

/// File name (in the image folder) of the list of package names an image
/// with apt can install at job time.
pub const AVAILABLE_FILE: &str = "available-packages.txt";

/// Assembles an image in `work` (a fresh folder). `cache_dir` holds the shared
/// download cache. The manifest's `version` is filled in when publishing.
pub(crate) fn assemble(
    recipe: &Recipe,
    recipe_sha256: &str,
    opts: &BuildOptions,
    cache_dir: &Path,
    work: &Path,
    created: OffsetDateTime,
    progress: &mut dyn FnMut(BuildEvent),
) -> Result<Assembled, BuildError> {
    // Agent first: cheap to check, annoying to find out at the end.
    let agent_path = &opts.agent_binary;
    let agent_bytes = std::fs::read(agent_path).map_err(|e| BuildError::Agent {
        path: agent_path.clone(),
        message: format!("cannot read: {e}"),
    })?;
    let agent = Agent {
        version: agent_version(agent_path)?,
        sha256: crate::recipe::sha256_hex(&agent_bytes),
        bytes: agent_bytes,
    };

    let kernel_pkg = apt::resolve_kernel_package(&recipe.kernel)?;
    let pkgroot = work.join("pkgroot");
    let staging = work.join("staging");
    let image_dir = work.join("image");
    std::fs::create_dir(&image_dir).map_err(io_err(&image_dir))?;
    let root = match &recipe.source {
        RecipeSource::Unpack(spec) => unpack_root(
            recipe,
            spec,
            &kernel_pkg,
            cache_dir,
            &pkgroot,
            &staging,
            &agent,
            progress,
        )?,
        RecipeSource::Mmdebstrap(spec) => bootstrap_root(
            recipe,
            spec,
            &kernel_pkg,
            cache_dir,
            &pkgroot,
            &staging,
            &image_dir,
            &agent,
            progress,
        )?,
    };

    // Kernel and initramfs, from the kernel package unpacked in pkgroot.
    let release = kernel_pkg
        .strip_prefix("linux-image-")
        .unwrap_or(&kernel_pkg)
        .trim_end_matches("-unsigned")
        .to_string();
    let modules_root = pkgroot.join("lib/modules").join(&release);
    let vmlinuz_src = pkgroot.join("boot").join(format!("vmlinuz-{release}"));
    if !modules_root.is_dir() || !vmlinuz_src.is_file() {
        return Err(BuildError::Kernel(format!(
            "{kernel_pkg} has no /boot/vmlinuz-{release} or /lib/modules/{release}"
        )));
    }
    std::fs::copy(&vmlinuz_src, image_dir.join(KERNEL_FILE)).map_err(io_err(&vmlinuz_src))?;
    let mut modules = Vec::new();
    for m in &recipe.modules {
        let p = find_module(&modules_root, m)?;
        modules.push((m.clone(), std::fs::read(&p).map_err(io_err(&p))?));
    }
    let initrd_size = write_initrd(&image_dir.join(INITRD_FILE), &root.busybox, &modules)?;
    step(
        progress,
        "initrd",
        format!(
            "kernel {release}, {} modules, initrd {} KiB",
            modules.len(),
            initrd_size / 1024
        ),
    );

    make_disk(&staging, work, &image_dir, recipe.disk_size_mib, progress)?;

    let mut file_entries = BTreeMap::new();
    let names = [KERNEL_FILE, INITRD_FILE, DISK_FILE]
        .into_iter()
        .map(str::to_string)
        .chain(root.extra_files);
    for f in names {
        let p = image_dir.join(&f);
        file_entries.insert(f, hash_file(&p).map_err(io_err(&p))?);
    }
    let created_str = created
        .format(&time::format_description::well_known::Rfc3339)
        .map_err(|e| BuildError::Missing(format!("cannot format time: {e}")))?;
    let manifest = Manifest {
        format: MANIFEST_FORMAT,
        name: recipe.name.clone(),
        version: String::new(),
        created: created_str,
        description: recipe.description.clone(),
        files: file_entries,
        packages: root.packages,
        kernel_release: release,
        agent: AgentInfo {
            version: agent.version,
            sha256: agent.sha256,
        },
        boot: BootSettings {
            source: BootSource::Kernel,
            firmware: Firmware::Bios,
            user: ROOT_USER.into(),
            kernel: KERNEL_FILE.into(),
            initrd: INITRD_FILE.into(),
            disk: DISK_FILE.into(),
            cmdline: recipe.boot.cmdline.clone(),
            memory_mib: recipe.boot.memory_mib,
            vcpus: recipe.boot.vcpus,
            ssh_timeout_secs: recipe.boot.ssh_timeout_secs,
            warm_start: true,
        },
        import: None,
        install: root.install,
        recipe_sha256: recipe_sha256.to_string(),
        builder: builder_id(),
    };
    Ok(Assembled {
        image_dir,
        manifest,
    })
}

/// Reads the static busybox at `path` (the initramfs needs it static).
fn static_busybox(path: &Path, hint: &str) -> Result<Vec<u8>, BuildError> {
    let busybox = std::fs::read(path)
        .map_err(|_| BuildError::Missing(format!("{} not found: {hint}", path.display())))?;
    if elf::elf_needs(&busybox, "busybox", "/bin")?.is_some_and(|n| !n.needed.is_empty()) {
        return Err(BuildError::Missing(
            "/bin/busybox is not static; use busybox-static".into(),
        ));
    }
    Ok(busybox)
}

/// `kind: unpack`: downloads and unpacks the packages (and the kernel) into
/// `pkgroot`, copies the recipe's binaries and trees with their libraries
/// into `staging`, plus busybox, the agent and the guest contract's files.
#[expect(
    clippy::too_many_arguments,
    reason = "one call site, all inputs of one step"
)]
fn unpack_root(
    recipe: &Recipe,
    spec: &UnpackSpec,
    kernel_pkg: &str,
    cache_dir: &Path,
    pkgroot: &Path,
    staging: &Path,
    agent: &Agent,
    progress: &mut dyn FnMut(BuildEvent),
) -> Result<RootFs, BuildError> {
    let mut closure = apt::package_closure(&recipe.packages)?;
    closure.insert(kernel_pkg.to_string());
    step(
        progress,
        "resolve",
        format!("{} packages (kernel {kernel_pkg})", closure.len()),
    );
    let (debs, fetched) = apt::download(&closure, cache_dir)?;
    step(
        progress,
        "download",
        format!(
            "{fetched} downloaded, {} from cache ({})",
            debs.len() - fetched,
            cache_dir.join("debs").display()
        ),
    );
    let packages = apt::extract_all(&debs, pkgroot)?;
    step(progress, "unpack", format!("{} packages", packages.len()));

    for (dir, mode) in guest::ROOT_DIRS {
        mkdir_mode(&host(staging, dir), *mode)?;
    }
    let (tree_entries, tree_elfs) = tree_files(pkgroot, &spec.trees, &spec.exclude)?;
    let programs: Vec<String> = spec.binaries.iter().cloned().chain(tree_elfs).collect();
    let files = elf::closure(pkgroot, &programs, &[(&agent.bytes, guest::AGENT_PATH)])?;
    for f in tree_entries.iter().chain(&files) {
        elf::copy_entry(pkgroot, staging, f)?;
    }
    let busybox_src = pkgroot.join("bin/busybox");
    let busybox = static_busybox(
        &busybox_src,
        "the recipe must list busybox-static in packages",
    )?;
    write_file(&staging.join("bin/busybox"), 0o755, &busybox)?;
    let applets = busybox_applets(&busybox_src)?;
    for (dir, name) in &applets {
        let target = if *dir == "bin" {
            "busybox"
        } else {
            "../bin/busybox"
        };
        symlink_if_absent(target, &staging.join(dir).join(name))?;
    }
    write_file(&host(staging, guest::AGENT_PATH), 0o755, &agent.bytes)?;
    symlink_if_absent(
        "../libexec/ferrotron/ferrotron-agent",
        &staging.join("usr/bin/ferrotron-agent"),
    )?;
    for (path, mode, content) in guest::etc_files(&recipe.name) {
        write_file(&host(staging, path), mode, content.as_bytes())?;
    }
    for d in &recipe.directories {
        mkdir_mode(&host(staging, d), 0o755)?;
    }
    for (link, target) in &spec.symlinks {
        symlink_if_absent(target, &host(staging, link))?;
    }
    // A loader cache saves the guest's ld.so many failed lookups (best effort).
    if let Err(e) = run(Command::new("ldconfig").arg("-r").arg(staging)) {
        tracing::warn!("ldconfig -r failed, image will work without a loader cache: {e}");
    }
    step(
        progress,
        "rootfs",
        format!(
            "{} files from {} binaries, {} busybox applets, agent {}",
            files.len(),
            spec.binaries.len(),
            applets.len(),
            agent.version
        ),
    );
    Ok(RootFs {
        packages,
        busybox,
        install: None,
        extra_files: Vec::new(),
    })
}

/// `kind: mmdebstrap`: the kernel package downloaded and unpacked into
/// `pkgroot` as for `unpack`; the root file system made by mmdebstrap in
/// `staging`, with apt's lists and caches kept and the guest contract added;
/// the list of installable names written to the image folder.
#[expect(
    clippy::too_many_arguments,
    reason = "one call site, all inputs of one step"
)]
fn bootstrap_root(
    recipe: &Recipe,
    spec: &BootstrapSpec,
    kernel_pkg: &str,
    cache_dir: &Path,
    pkgroot: &Path,
    staging: &Path,
    image_dir: &Path,
    agent: &Agent,
    progress: &mut dyn FnMut(BuildEvent),
) -> Result<RootFs, BuildError> {
    let kernel: std::collections::BTreeSet<String> = [kernel_pkg.to_string()].into();
    let (debs, fetched) = apt::download(&kernel, cache_dir)?;
    apt::extract_all(&debs, pkgroot)?;
    step(
        progress,
        "kernel",
        format!(
            "{kernel_pkg} ({})",
            if fetched > 0 {
                "downloaded"
            } else {
                "from cache"
            }
        ),
    );

    step(
        progress,
        "debian",
        format!(
            "mmdebstrap {} from {} ({} packages asked for)",
            spec.suite,
            spec.mirror,
            recipe.packages.len() + bootstrap::CONTRACT_PACKAGES.len()
        ),
    );
    bootstrap::mmdebstrap(spec, &recipe.packages, staging, &mut |line| {
        step(progress, "debian", line.to_string());
    })?;
    let status_path = staging.join("var/lib/dpkg/status");
    let status = std::fs::read_to_string(&status_path).map_err(io_err(&status_path))?;
    let packages = bootstrap::installed_packages(&status, &status_path)?;

    let busybox_src = bootstrap::busybox_path(staging)?;
    let busybox = static_busybox(&busybox_src, "busybox-static is not installed")?;
    let applets = busybox_applets(&busybox_src)?;
    let summary = bootstrap::add_guest_contract(
        staging,
        &recipe.name,
        &spec.apt_options,
        &applets,
        &agent.bytes,
        &recipe.directories,
    )?;
    step(
        progress,
        "rootfs",
        format!(
            "{} packages installed, {} busybox applets linked, agent {}",
            packages.len(),
            summary.applets,
            agent.version
        ),
    );

    bootstrap::gencaches(staging)?;
    let available = bootstrap::write_available(staging, &image_dir.join(AVAILABLE_FILE))?;
    step(
        progress,
        "apt",
        format!("caches built; {available} package names available ({AVAILABLE_FILE})"),
    );
    Ok(RootFs {
        packages,
        busybox,
        install: Some(PackageInstall {
            manager: "apt".into(),
            repositories: vec![spec.mirror.clone()],
            rpm_names: spec.rpm_names.clone(),
            available: AVAILABLE_FILE.into(),
        }),
        extra_files: vec![AVAILABLE_FILE.to_string()],
    })
}

/// The root disk: ext4 made from `staging` (owners, modes, links and hard
/// links as they are there), converted to qcow2 in the image folder.
fn make_disk(
    staging: &Path,
    work: &Path,
    image_dir: &Path,
    size_mib: u32,
    progress: &mut dyn FnMut(BuildEvent),
) -> Result<(), BuildError> {
    let raw = work.join("disk.raw");
    run(Command::new("mke2fs")
        .args(["-q", "-t", "ext4", "-L", "ferrotron-root", "-m", "0"])
        .args([
            "-E",
            "lazy_itable_init=0,lazy_journal_init=0,root_owner=0:0",
        ])
        .arg("-d")
        .arg(staging)
        .arg("-F")
        .arg(&raw)
        .arg(format!("{size_mib}M")))?;
    let free = ext4_free_percent(&raw);
    let disk = image_dir.join(DISK_FILE);
    run(Command::new("qemu-img")
        .args(["convert", "-q", "-f", "raw", "-O", "qcow2"])
        .arg(&raw)
        .arg(&disk))?;
    std::fs::remove_file(&raw).map_err(io_err(&raw))?;
    let disk_size = std::fs::metadata(&disk).map_err(io_err(&disk))?.len();
    step(
        progress,
        "disk",
        format!(
            "ext4 {size_mib} MiB{}, qcow2 {} MiB",
            free.map(|f| format!(" ({f}% free)")).unwrap_or_default(),
            disk_size / (1024 * 1024)
        ),
    );
    Ok(())
}

/// Free blocks of an ext4 image in percent (`dumpe2fs -h`), if it says.
fn ext4_free_percent(raw: &Path) -> Option<u64> {
    let out = run(Command::new("dumpe2fs").arg("-h").arg(raw)).ok()?;
    let field = |name: &str| -> Option<u64> {
        out.lines()
            .find_map(|l| l.strip_prefix(name))
            .and_then(|v| v.trim().parse().ok())
    };
    let total = field("Block count:")?;
    let free = field("Free blocks:")?;
    (total > 0).then(|| free * 100 / total)
}

/// Names this builder and the guest contract it writes (init and boot
/// scripts): an image built by a builder with another id may behave
/// differently, so `ferrotron image build --if-changed` rebuilds it.
pub fn builder_id() -> String {
    use sha2::{Digest, Sha256};
    let mut h = Sha256::new();
    h.update(guest::initrd_init(&[]).as_bytes());
    h.update(guest::boot_script().as_bytes());
    h.update(guest::INITTAB.as_bytes());
    // What a `kind: mmdebstrap` image gets on top of Debian.
    h.update(guest::apt_conf(&[]).as_bytes());
    h.update(b"mmdebstrap: busybox init, applets where absent, apt lists kept, gencaches, available list");
    // What the manifest says about the guest (e.g. `boot.warm_start`).
    h.update(b"manifest boot.warm_start");
    let hex: String = h.finalize()[..6]
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect();
    format!(
        "ferrotron-imagebuilder {} guest {hex}",
        env!("CARGO_PKG_VERSION")
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn trees_copy_everything_but_exclusions_and_find_elf_files() {
        let root = tempfile::tempdir().expect("tempdir");
        let lib = root.path().join("usr/lib/py");
        std::fs::create_dir_all(lib.join("test")).expect("mkdir");
        std::fs::create_dir_all(lib.join("lib-dynload")).expect("mkdir");
        std::fs::write(lib.join("os.py"), "x").expect("write");
        std::fs::write(lib.join("test/t.py"), "x").expect("write");
        std::fs::write(lib.join("testing.py"), "x").expect("write");
        std::fs::write(lib.join("lib-dynload/_json.so"), b"\x7fELF....").expect("write");
        std::os::unix::fs::symlink("os.py", lib.join("alias.py")).expect("link");
        let (entries, elfs) = tree_files(
            root.path(),
            &["/usr/lib/py".to_string()],
            &["/usr/lib/py/test".to_string()],
        )
        .expect("walk");
        assert_eq!(
            entries,
            [
                "/usr/lib/py",
                "/usr/lib/py/alias.py",
                "/usr/lib/py/lib-dynload",
                "/usr/lib/py/lib-dynload/_json.so",
                "/usr/lib/py/os.py",
                "/usr/lib/py/testing.py",
            ]
        );
        assert_eq!(elfs, ["/usr/lib/py/lib-dynload/_json.so"]);
        let missing = tree_files(root.path(), &["/usr/lib/nope".to_string()], &[])
            .expect_err("missing tree")
            .to_string();
        assert!(missing.contains("/usr/lib/nope"), "{missing}");
    }
}
