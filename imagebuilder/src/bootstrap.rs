//! `kind: mmdebstrap` images: a Debian system made by `mmdebstrap` (packages
//! installed with their maintainer scripts, apt's lists kept), then the guest
//! contract added on top without replacing Debian's own files.
//!
//! Every path written here is resolved inside the staging tree as the guest
//! would resolve it (symlinks followed, absolute ones from the staging root),
//! so a link in the Debian tree never makes the builder write on the host.

use std::collections::{BTreeSet, VecDeque};
use std::ffi::OsString;
use std::io::{BufRead, BufReader};
use std::os::unix::fs::PermissionsExt;
use std::os::unix::process::CommandExt;
use std::path::{Component, Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::mpsc;
use std::time::{Duration, Instant};

use nix::sys::signal::{killpg, Signal};
use nix::unistd::Pid;

use crate::guest;
use crate::manifest::PackageEntry;
use crate::recipe::BootstrapSpec;
use crate::tool::{run, ToolError};

/// Packages every `kind: mmdebstrap` image gets: the guest contract's init
/// (static busybox, also copied into the initramfs) and SSH server.
pub const CONTRACT_PACKAGES: &[&str] = &["busybox-static", "dropbear-bin"];

/// Where the image's apt keeps the package lists it read at build time.
pub const APT_LISTS_DIR: &str = "/var/lib/apt/lists";

/// How many of mmdebstrap's last output lines an error quotes.
const TAIL_LINES: usize = 15;

/// Errors of the Debian bootstrap and of adding the guest contract to it.
#[derive(Debug, thiserror::Error)]
pub enum BootstrapError {
    #[error("cannot run mmdebstrap (is it installed? see scripts/setup-host.sh)")]
    Spawn {
        #[source]
        source: std::io::Error,
    },
    #[error("mmdebstrap failed ({status}); its last lines:\n{tail}")]
    Failed { status: String, tail: String },
    #[error("file systems still mounted below {}: {}", .staging.display(), .mounts.join(", "))]
    MountsLeft {
        staging: PathBuf,
        mounts: Vec<String>,
    },
    #[error(transparent)]
    Tool(#[from] ToolError),
    #[error("{}", .path.display())]
    Io {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("{guest_path}: too many symbolic links inside {}", .root.display())]
    LinkLoop { root: PathBuf, guest_path: String },
    #[error(
        "{guest_path} exists in the Debian tree: the guest contract needs busybox init there \
         (leave out the package that provides it)"
    )]
    InitTaken { guest_path: String },
    #[error("{}: {message}", .path.display())]
    Parse { path: PathBuf, message: String },
    #[error("no *_Packages file in {} (apt's lists were not kept?)", .dir.display())]
    NoLists { dir: PathBuf },
}

fn io_err(path: &Path) -> impl FnOnce(std::io::Error) -> BootstrapError {
    let path = path.to_path_buf();
    move |source| BootstrapError::Io { path, source }
}

/// The `mmdebstrap` command line for `spec` (root mode, minbase, the
/// contract's packages and `packages` installed, apt's lists kept).
pub fn mmdebstrap_command(spec: &BootstrapSpec, packages: &[String], staging: &Path) -> Command {
    let mut include: Vec<&str> = CONTRACT_PACKAGES.to_vec();
    for p in packages {
        if !include.contains(&p.as_str()) {
            include.push(p);
        }
    }
    // setpriv: mmdebstrap gets SIGTERM (and cleans up its mounts) if this
    // process dies without ending it.
    let mut c = Command::new("setpriv");
    c.args(["--pdeathsig", "TERM", "--", "mmdebstrap"])
        .args(["--mode=root", "--variant=minbase", "--format=directory"])
        .arg(format!("--include={}", include.join(",")))
        .arg(format!("--components={}", spec.components.join(",")));
    for o in &spec.apt_options {
        c.arg(format!("--aptopt={o}"));
    }
    c.arg("--skip=cleanup/apt/lists")
        .arg(&spec.suite)
        .arg(staging)
        .arg(&spec.mirror);
    c
}

/// A child process in its own process group, ended with the group when
/// dropped before it exits (SIGTERM, then SIGKILL after `grace`).
struct GroupChild {
    child: Child,
    grace: Duration,
}

impl Drop for GroupChild {
    fn drop(&mut self) {
        if !matches!(self.child.try_wait(), Ok(None)) {
            return;
        }
        let Ok(pid) = i32::try_from(self.child.id()) else {
            return;
        };
        let group = Pid::from_raw(pid);
        let _ = killpg(group, Signal::SIGTERM);
        let deadline = Instant::now() + self.grace;
        while Instant::now() < deadline {
            if !matches!(self.child.try_wait(), Ok(None)) {
                return;
            }
            std::thread::sleep(Duration::from_millis(100));
        }
        let _ = killpg(group, Signal::SIGKILL);
        let _ = self.child.wait();
    }
}

/// Runs mmdebstrap into `staging` (which must not exist yet). Each of its
/// `I:`/`W:` lines is handed to `progress` as it comes; a failure quotes its
/// last lines. Afterwards nothing may stay mounted below `staging`.
pub fn mmdebstrap(
    spec: &BootstrapSpec,
    packages: &[String],
    staging: &Path,
    progress: &mut dyn FnMut(&str),
) -> Result<(), BootstrapError> {
    let mut cmd = mmdebstrap_command(spec, packages, staging);
    cmd.stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .env("LC_ALL", "C.UTF-8")
        .process_group(0);
    tracing::debug!(command = ?cmd, "running");
    let mut child = GroupChild {
        child: cmd
            .spawn()
            .map_err(|source| BootstrapError::Spawn { source })?,
        grace: Duration::from_secs(30),
    };
    let (tx, rx) = mpsc::channel::<String>();
    let mut readers = Vec::new();
    if let Some(out) = child.child.stdout.take() {
        let tx = tx.clone();
        readers.push(std::thread::spawn(move || forward_lines(out, &tx)));
    }
    if let Some(err) = child.child.stderr.take() {
        let tx = tx.clone();
        readers.push(std::thread::spawn(move || forward_lines(err, &tx)));
    }
    drop(tx);
    let mut tail: VecDeque<String> = VecDeque::with_capacity(TAIL_LINES);
    for line in rx {
        tracing::debug!(target: "mmdebstrap", "{line}");
        if let Some(rest) = line.strip_prefix("I: ") {
            progress(rest);
        } else if line.starts_with("W: ") {
            progress(&line);
        }
        if tail.len() == TAIL_LINES {
            tail.pop_front();
        }
        tail.push_back(line);
    }
    for r in readers {
        let _ = r.join();
    }
    let status = child
        .child
        .wait()
        .map_err(|source| BootstrapError::Spawn { source })?;
    let left = mounts_below(staging);
    if !left.is_empty() {
        return Err(BootstrapError::MountsLeft {
            staging: staging.to_path_buf(),
            mounts: left,
        });
    }
    if !status.success() {
        return Err(BootstrapError::Failed {
            status: status.to_string(),
            tail: Vec::from(tail).join("\n"),
        });
    }
    Ok(())
}

fn forward_lines(from: impl std::io::Read, to: &mpsc::Sender<String>) {
    for line in BufReader::new(from).split(b'\n').map_while(Result::ok) {
        let line = String::from_utf8_lossy(&line).trim_end().to_string();
        if to.send(line).is_err() {
            break;
        }
    }
}

/// Mount points at or below `dir` (from /proc/self/mountinfo).
pub fn mounts_below(dir: &Path) -> Vec<String> {
    let dir = std::fs::canonicalize(dir).unwrap_or_else(|_| dir.to_path_buf());
    let Ok(text) = std::fs::read_to_string("/proc/self/mountinfo") else {
        return Vec::new();
    };
    mount_points_below(&text, &dir.to_string_lossy())
}

/// The mount points (field 5 of mountinfo, octal escapes decoded) at or below `dir`.
fn mount_points_below(mountinfo: &str, dir: &str) -> Vec<String> {
    let dir = dir.trim_end_matches('/');
    mountinfo
        .lines()
        .filter_map(|l| l.split(' ').nth(4))
        .map(unescape_mount_point)
        .filter(|m| m == dir || m.strip_prefix(dir).is_some_and(|r| r.starts_with('/')))
        .collect()
}

fn unescape_mount_point(s: &str) -> String {
    let b = s.as_bytes();
    let mut out = Vec::with_capacity(b.len());
    let mut i = 0;
    while i < b.len() {
        let octal = b[i] == b'\\'
            && i + 3 < b.len()
            && b[i + 1..i + 4].iter().all(|c| (b'0'..=b'7').contains(c));
        if octal {
            out.push((b[i + 1] - b'0') * 64 + (b[i + 2] - b'0') * 8 + (b[i + 3] - b'0'));
            i += 4;
        } else {
            out.push(b[i]);
            i += 1;
        }
    }
    String::from_utf8_lossy(&out).into_owned()
}

/// `chroot STAGING apt-cache gencaches`: apt's binary caches built once at
/// build time, so a job's first apt command does not rebuild them from the
/// kept lists.
pub fn gencaches(staging: &Path) -> Result<(), BootstrapError> {
    run(Command::new("chroot")
        .arg(staging)
        .args(["apt-cache", "gencaches"])
        .env("PATH", "/usr/sbin:/usr/bin:/sbin:/bin")
        .env("LC_ALL", "C.UTF-8"))?;
    Ok(())
}

/// The host path of `guest_path` inside `root`, resolved as the guest would
/// resolve it: symlinks in every component but the last are followed
/// (absolute ones from `root`), and `..` never leaves `root`. The last
/// component is not followed: it may itself be a link.
pub fn inside(root: &Path, guest_path: &str) -> Result<PathBuf, BootstrapError> {
    fn parts(p: &Path) -> impl Iterator<Item = OsString> + '_ {
        p.components().filter_map(|c| match c {
            Component::Normal(n) => Some(n.to_os_string()),
            Component::ParentDir => Some(OsString::from("..")),
            _ => None,
        })
    }
    let mut pending: VecDeque<OsString> = parts(Path::new(guest_path)).collect();
    let mut resolved: Vec<OsString> = Vec::new();
    let mut hops = 0;
    while let Some(c) = pending.pop_front() {
        if c == ".." {
            resolved.pop();
            continue;
        }
        let here: PathBuf = resolved.iter().collect();
        let candidate = root.join(&here).join(&c);
        let is_link = !pending.is_empty()
            && std::fs::symlink_metadata(&candidate).is_ok_and(|m| m.file_type().is_symlink());
        if !is_link {
            resolved.push(c);
            continue;
        }
        hops += 1;
        if hops > 40 {
            return Err(BootstrapError::LinkLoop {
                root: root.to_path_buf(),
                guest_path: guest_path.to_string(),
            });
        }
        let target = std::fs::read_link(&candidate).map_err(io_err(&candidate))?;
        if target.is_absolute() {
            resolved.clear();
        }
        let mut next: VecDeque<OsString> = parts(&target).collect();
        next.extend(pending);
        pending = next;
    }
    Ok(root.join(resolved.iter().collect::<PathBuf>()))
}

/// `inside` for a folder: the last component is followed too.
fn dir_inside(root: &Path, guest_path: &str) -> Result<PathBuf, BootstrapError> {
    let p = inside(root, &format!("{}/_", guest_path.trim_end_matches('/')))?;
    Ok(p.parent().map(Path::to_path_buf).unwrap_or(p))
}

fn exists_no_follow(p: &Path) -> bool {
    std::fs::symlink_metadata(p).is_ok()
}

/// Writes a file at `guest_path`, replacing a file or link there.
fn write_file(root: &Path, guest_path: &str, mode: u32, data: &[u8]) -> Result<(), BootstrapError> {
    let p = inside(root, guest_path)?;
    if std::fs::symlink_metadata(&p).is_ok_and(|m| m.file_type().is_symlink()) {
        std::fs::remove_file(&p).map_err(io_err(&p))?;
    }
    if let Some(parent) = p.parent() {
        std::fs::create_dir_all(parent).map_err(io_err(parent))?;
    }
    std::fs::write(&p, data).map_err(io_err(&p))?;
    std::fs::set_permissions(&p, std::fs::Permissions::from_mode(mode)).map_err(io_err(&p))
}

/// Creates the folder (and missing parents); `mode` is set only on a folder
/// created here, or always with `force_mode`.
fn make_dir(
    root: &Path,
    guest_path: &str,
    mode: u32,
    force_mode: bool,
) -> Result<(), BootstrapError> {
    let p = dir_inside(root, guest_path)?;
    let existed = p.is_dir();
    std::fs::create_dir_all(&p).map_err(io_err(&p))?;
    if !existed || force_mode {
        std::fs::set_permissions(&p, std::fs::Permissions::from_mode(mode)).map_err(io_err(&p))?;
    }
    Ok(())
}

/// Creates a symlink unless something (even a dangling link) is there.
/// Returns whether it did.
fn symlink_if_absent(root: &Path, target: &str, guest_link: &str) -> Result<bool, BootstrapError> {
    let p = inside(root, guest_link)?;
    if exists_no_follow(&p) {
        return Ok(false);
    }
    if let Some(parent) = p.parent() {
        std::fs::create_dir_all(parent).map_err(io_err(parent))?;
    }
    std::os::unix::fs::symlink(target, &p).map_err(io_err(&p))?;
    Ok(true)
}

/// The host path of the tree's static busybox (from `busybox-static`).
pub fn busybox_path(staging: &Path) -> Result<PathBuf, BootstrapError> {
    dir_inside(staging, "/bin/busybox")
}

/// Folders a command is looked up in (the guest's PATH).
const PATH_DIRS: &[&str] = &[
    "/usr/local/sbin",
    "/usr/local/bin",
    "/usr/sbin",
    "/usr/bin",
    "/sbin",
    "/bin",
];

/// What [`add_guest_contract`] did, for the build's progress line.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ContractSummary {
    /// Busybox applets linked (names no Debian package provides).
    pub applets: usize,
    /// `.deb` files removed from apt's archive cache.
    pub debs_removed: usize,
}

/// Adds the guest contract to a Debian tree: busybox init as `/sbin/init`
/// with Ferrotron's inittab and boot script, busybox applets where Debian
/// has no such command (`ip`, `usleep`, `poweroff`…), host name, the agent,
/// dropbear's and root's SSH folders, the jobs folder, Ferrotron's apt
/// settings; apt's downloaded `.deb` files removed. Debian's accounts,
/// shells, NSS and loader configuration stay as they are.
pub fn add_guest_contract(
    staging: &Path,
    hostname: &str,
    apt_options: &[String],
    applets: &[(&str, String)],
    agent: &[u8],
    directories: &[String],
) -> Result<ContractSummary, BootstrapError> {
    // busybox init as PID 1; minbase has no init, another one is refused.
    let init = inside(staging, "/sbin/init")?;
    if exists_no_follow(&init) {
        let ours = std::fs::read_link(&init).is_ok_and(|t| t == Path::new("../bin/busybox"));
        if !ours {
            return Err(BootstrapError::InitTaken {
                guest_path: "/sbin/init".into(),
            });
        }
    } else {
        symlink_if_absent(staging, "../bin/busybox", "/sbin/init")?;
    }
    let mut linked = 0;
    for (dir, name) in applets {
        if name == "init" || name == "linuxrc" {
            continue;
        }
        let mut present = false;
        for d in PATH_DIRS {
            if exists_no_follow(&inside(staging, &format!("{d}/{name}"))?) {
                present = true;
                break;
            }
        }
        if present {
            continue;
        }
        let target = if *dir == "bin" {
            "busybox"
        } else {
            "../bin/busybox"
        };
        if symlink_if_absent(staging, target, &format!("/{dir}/{name}"))? {
            linked += 1;
        }
    }
    for (dir, mode) in guest::ROOT_DIRS {
        // Ferrotron's own folders get their modes; Debian's keep theirs.
        let ours = dir.starts_with("/etc/dropbear")
            || dir.starts_with("/root/.ssh")
            || dir.contains("ferrotron");
        make_dir(staging, dir, *mode, ours)?;
    }
    for (path, mode, content) in guest::contract_files(hostname) {
        write_file(staging, path, mode, content.as_bytes())?;
    }
    // mmdebstrap copied the build host's resolver; the guest has no DNS.
    write_file(
        staging,
        "/etc/resolv.conf",
        0o644,
        b"# Ferrotron guests have no DNS (docs/images.md)\n",
    )?;
    write_file(staging, guest::AGENT_PATH, 0o755, agent)?;
    symlink_if_absent(
        staging,
        "../libexec/ferrotron/ferrotron-agent",
        "/usr/bin/ferrotron-agent",
    )?;
    write_file(
        staging,
        guest::APT_CONF_PATH,
        0o644,
        guest::apt_conf(apt_options).as_bytes(),
    )?;
    // mmdebstrap's copy of the same --aptopt lines: 90ferrotron has them.
    let mmdebstrap_conf = inside(staging, "/etc/apt/apt.conf.d/99mmdebstrap")?;
    if exists_no_follow(&mmdebstrap_conf) {
        std::fs::remove_file(&mmdebstrap_conf).map_err(io_err(&mmdebstrap_conf))?;
    }
    for d in directories {
        make_dir(staging, d, 0o755, false)?;
    }
    let mut debs_removed = 0;
    for dir in ["/var/cache/apt/archives", "/var/cache/apt/archives/partial"] {
        let d = dir_inside(staging, dir)?;
        let Ok(entries) = std::fs::read_dir(&d) else {
            continue;
        };
        for e in entries {
            let e = e.map_err(io_err(&d))?;
            let is_deb = e.file_name().to_string_lossy().ends_with(".deb");
            if is_deb && e.file_type().map_err(io_err(&e.path()))?.is_file() {
                std::fs::remove_file(e.path()).map_err(io_err(&e.path()))?;
                debs_removed += 1;
            }
        }
    }
    Ok(ContractSummary {
        applets: linked,
        debs_removed,
    })
}

/// Every package dpkg says is installed (`Status: install ok installed`) in
/// the text of `/var/lib/dpkg/status`, sorted by name. `path` is for errors.
pub fn installed_packages(status: &str, path: &Path) -> Result<Vec<PackageEntry>, BootstrapError> {
    let mut out = Vec::new();
    for (n, stanza) in stanzas(status).enumerate() {
        let field = |name: &str| {
            stanza.lines().find_map(|l| {
                let (k, v) = l.split_once(':')?;
                (k == name).then(|| v.trim().to_string())
            })
        };
        let Some(name) = field("Package") else {
            return Err(BootstrapError::Parse {
                path: path.to_path_buf(),
                message: format!("entry {} has no Package field", n + 1),
            });
        };
        if field("Status").as_deref() != Some("install ok installed") {
            continue;
        }
        let Some(version) = field("Version") else {
            return Err(BootstrapError::Parse {
                path: path.to_path_buf(),
                message: format!("installed package {name} has no Version field"),
            });
        };
        out.push(PackageEntry { name, version });
    }
    out.sort_by(|a, b| a.name.cmp(&b.name));
    Ok(out)
}

/// The paragraphs of a deb822 file (separated by blank lines).
fn stanzas(text: &str) -> impl Iterator<Item = &str> {
    text.split("\n\n")
        .flat_map(|s| s.split("\n\r\n"))
        .map(str::trim)
        .filter(|s| !s.is_empty())
}

/// Adds every `Package:` name and every `Provides:` name (versions and
/// `:arch` qualifiers stripped) of an apt `Packages` file to `names`.
pub fn add_available(
    packages: impl BufRead,
    names: &mut BTreeSet<String>,
) -> Result<(), std::io::Error> {
    // Provides may continue on indented lines.
    let mut in_provides = false;
    for line in packages.split(b'\n') {
        let line = line?;
        let line = String::from_utf8_lossy(&line);
        let line = line.trim_end();
        let list = if let Some(v) = line.strip_prefix("Package:") {
            in_provides = false;
            let name = strip_qualifiers(v);
            if !name.is_empty() {
                names.insert(name);
            }
            continue;
        } else if let Some(v) = line.strip_prefix("Provides:") {
            in_provides = true;
            v
        } else if in_provides && line.starts_with([' ', '\t']) {
            line
        } else {
            in_provides = false;
            continue;
        };
        for item in list.split(',') {
            let name = strip_qualifiers(item);
            if !name.is_empty() {
                names.insert(name);
            }
        }
    }
    Ok(())
}

/// `python3-yaml (= 6.0-3)` -> `python3-yaml`; `perl:any` -> `perl`.
fn strip_qualifiers(item: &str) -> String {
    let name = item.split('(').next().unwrap_or("").trim();
    name.split(':').next().unwrap_or("").trim().to_string()
}

/// Writes `out`: every package name apt's kept lists in `staging` offer,
/// real and virtual, sorted and unique, one per line. Returns how many.
pub fn write_available(staging: &Path, out: &Path) -> Result<usize, BootstrapError> {
    let dir = dir_inside(staging, APT_LISTS_DIR)?;
    let mut lists: Vec<PathBuf> = std::fs::read_dir(&dir)
        .map_err(io_err(&dir))?
        .filter_map(Result::ok)
        .map(|e| e.path())
        .filter(|p| {
            p.is_file()
                && p.file_name()
                    .is_some_and(|n| n.to_string_lossy().ends_with("_Packages"))
        })
        .collect();
    lists.sort();
    if lists.is_empty() {
        return Err(BootstrapError::NoLists { dir });
    }
    let mut names = BTreeSet::new();
    for list in &lists {
        let f = std::fs::File::open(list).map_err(io_err(list))?;
        add_available(BufReader::new(f), &mut names).map_err(io_err(list))?;
    }
    let mut text = String::new();
    for n in &names {
        text.push_str(n);
        text.push('\n');
    }
    std::fs::write(out, text).map_err(io_err(out))?;
    Ok(names.len())
}

#[cfg(test)]
mod tests {
    use super::*;

    const STATUS: &str = "Package: base-files
Essential: yes
Status: install ok installed
Priority: required
Version: 12.4+deb12u5
Description: Debian base system miscellaneous files
 This package contains the basic filesystem hierarchy.

Package: rpmlint
Status: install ok installed
Architecture: all
Version: 2.4.0-1
Depends: python3:any, cpio

Package: oldthing
Status: deinstall ok config-files
Version: 1.0

Package: libc6
Status: install ok installed
Multi-Arch: same
Version: 2.36-9+deb12u10
";

    #[test]
    fn dpkg_status_lists_installed_packages_only() {
        let got = installed_packages(STATUS, Path::new("status")).expect("parse");
        let names: Vec<(&str, &str)> = got
            .iter()
            .map(|p| (p.name.as_str(), p.version.as_str()))
            .collect();
        assert_eq!(
            names,
            [
                ("base-files", "12.4+deb12u5"),
                ("libc6", "2.36-9+deb12u10"),
                ("rpmlint", "2.4.0-1"),
            ]
        );
        let bad = "Status: install ok installed\nVersion: 1\n";
        let err = installed_packages(bad, Path::new("status")).expect_err("no Package");
        assert!(err.to_string().contains("no Package field"), "{err}");
        let bad = "Package: x\nStatus: install ok installed\n";
        let err = installed_packages(bad, Path::new("status")).expect_err("no Version");
        assert!(err.to_string().contains("x has no Version"), "{err}");
    }

    const PACKAGES: &str = "Package: hello
Version: 2.10-3
Installed-Size: 281
Depends: libc6 (>= 2.34)
Description: example package based on GNU hello

Package: python3-yaml
Source: pyyaml
Version: 6.0-3+b2
Provides: python3.11-yaml, python3:any-yaml (= 6.0-3+b2)
Depends: python3 (<< 3.12), python3 (>= 3.11~), python3:any

Package: mawk
Version: 1.3.4.20200120-3.1
Provides: awk
 , awk-virtual:any (= 1)
Priority: required

Package: rpm:amd64
Version: 4.18.0
";

    #[test]
    fn available_names_are_packages_and_provides_without_versions() {
        let mut names = BTreeSet::new();
        add_available(PACKAGES.as_bytes(), &mut names).expect("parse");
        let got: Vec<&str> = names.iter().map(String::as_str).collect();
        assert_eq!(
            got,
            [
                "awk",
                "awk-virtual",
                "hello",
                "mawk",
                "python3",
                "python3-yaml",
                "python3.11-yaml",
                "rpm",
            ]
        );
    }

    #[test]
    fn available_list_is_written_sorted_and_unique() {
        let root = tempfile::tempdir().expect("tempdir");
        let lists = root.path().join("var/lib/apt/lists");
        std::fs::create_dir_all(&lists).expect("mkdir");
        std::fs::write(
            lists.join("m_dists_bookworm_main_binary-amd64_Packages"),
            PACKAGES,
        )
        .expect("write");
        std::fs::write(
            lists.join("m_dists_bookworm_contrib_binary-amd64_Packages"),
            "Package: hello\nProvides: zzz\n",
        )
        .expect("write");
        std::fs::write(
            lists.join("m_dists_bookworm_InRelease"),
            "Package: not-me\n",
        )
        .expect("write");
        let out = root.path().join("available-packages.txt");
        let n = write_available(root.path(), &out).expect("write");
        let text = std::fs::read_to_string(&out).expect("read");
        assert_eq!(n, 9);
        assert!(
            text.starts_with("awk\nawk-virtual\nhello\nmawk\n"),
            "{text}"
        );
        assert!(text.ends_with("rpm\nzzz\n"), "{text}");
        assert!(!text.contains("not-me"));
        let empty = tempfile::tempdir().expect("tempdir");
        std::fs::create_dir_all(empty.path().join("var/lib/apt/lists")).expect("mkdir");
        let err = write_available(empty.path(), &out).expect_err("no lists");
        assert!(matches!(err, BootstrapError::NoLists { .. }), "{err}");
    }

    #[test]
    fn paths_resolve_inside_the_tree() {
        let root = tempfile::tempdir().expect("tempdir");
        let r = root.path();
        std::fs::create_dir_all(r.join("usr/bin")).expect("mkdir");
        std::fs::create_dir_all(r.join("etc")).expect("mkdir");
        std::os::unix::fs::symlink("usr/bin", r.join("bin")).expect("link");
        // An absolute link must resolve inside the tree, never on the host.
        std::os::unix::fs::symlink("/usr", r.join("etc/usr-abs")).expect("link");
        std::os::unix::fs::symlink("../../../../..", r.join("etc/up")).expect("link");
        std::os::unix::fs::symlink("/etc/hosts-real", r.join("etc/hosts")).expect("link");
        std::os::unix::fs::symlink("loop", r.join("loop")).expect("link");
        assert_eq!(
            inside(r, "/bin/busybox").expect("bin"),
            r.join("usr/bin/busybox")
        );
        assert_eq!(
            inside(r, "/etc/usr-abs/bin/x").expect("abs"),
            r.join("usr/bin/x")
        );
        assert_eq!(
            inside(r, "/etc/up/etc/passwd").expect("up"),
            r.join("etc/passwd")
        );
        assert_eq!(inside(r, "/../../etc/x").expect("dotdot"), r.join("etc/x"));
        // The last component is not followed...
        assert_eq!(inside(r, "/etc/hosts").expect("last"), r.join("etc/hosts"));
        assert_eq!(inside(r, "/bin").expect("last"), r.join("bin"));
        // ...unless it is a folder's.
        assert_eq!(dir_inside(r, "/bin").expect("dir"), r.join("usr/bin"));
        assert!(matches!(
            inside(r, "/loop/x"),
            Err(BootstrapError::LinkLoop { .. })
        ));
        // Writing over a link replaces the link, not its target.
        write_file(r, "/etc/hosts", 0o644, b"127.0.0.1 localhost\n").expect("write");
        assert!(std::fs::symlink_metadata(r.join("etc/hosts"))
            .expect("meta")
            .is_file());
        assert!(!r.join("etc/hosts-real").exists());
    }

    #[test]
    fn contract_keeps_debian_files_and_links_missing_applets_only() {
        let root = tempfile::tempdir().expect("tempdir");
        let r = root.path();
        for d in [
            "usr/bin",
            "usr/sbin",
            "etc/apt/apt.conf.d",
            "var/cache/apt/archives/partial",
            "root",
            "tmp",
        ] {
            std::fs::create_dir_all(r.join(d)).expect("mkdir");
        }
        std::os::unix::fs::symlink("usr/bin", r.join("bin")).expect("link");
        std::os::unix::fs::symlink("usr/sbin", r.join("sbin")).expect("link");
        std::fs::set_permissions(r.join("tmp"), std::fs::Permissions::from_mode(0o1777))
            .expect("chmod");
        let passwd =
            "root:x:0:0:root:/root:/bin/bash\n_apt:x:42:65534::/nonexistent:/usr/sbin/nologin\n";
        std::fs::write(r.join("etc/passwd"), passwd).expect("write");
        std::fs::write(r.join("usr/bin/ls"), "coreutils").expect("write");
        std::fs::write(r.join("usr/bin/busybox"), "busybox").expect("write");
        std::fs::write(r.join("etc/apt/apt.conf.d/99mmdebstrap"), "x").expect("write");
        std::fs::write(r.join("var/cache/apt/archives/hello_1_amd64.deb"), "deb").expect("write");
        std::fs::write(r.join("var/cache/apt/archives/lock"), "").expect("write");
        let applets = vec![
            ("bin", "ls".to_string()),
            ("bin", "ip".to_string()),
            ("sbin", "poweroff".to_string()),
            ("sbin", "init".to_string()),
        ];
        let opts = vec![r#"Acquire::Check-Valid-Until "false";"#.to_string()];
        let s = add_guest_contract(r, "debian", &opts, &applets, b"agent", &[]).expect("contract");
        assert_eq!(
            s,
            ContractSummary {
                applets: 2,
                debs_removed: 1
            }
        );
        assert_eq!(
            std::fs::read_to_string(r.join("etc/passwd")).expect("passwd"),
            passwd
        );
        assert_eq!(
            std::fs::read_to_string(r.join("usr/bin/ls")).expect("ls"),
            "coreutils"
        );
        let link = |p: &str| std::fs::read_link(r.join(p)).expect(p);
        assert_eq!(link("usr/bin/ip"), Path::new("busybox"));
        assert_eq!(link("usr/sbin/poweroff"), Path::new("../bin/busybox"));
        assert_eq!(link("usr/sbin/init"), Path::new("../bin/busybox"));
        let mode = |p: &str| std::fs::metadata(r.join(p)).expect(p).permissions().mode() & 0o7777;
        assert_eq!(mode("tmp"), 0o1777);
        assert_eq!(mode("root/.ssh"), 0o700);
        assert_eq!(mode("etc/dropbear"), 0o700);
        assert!(r.join("var/lib/ferrotron/jobs").is_dir());
        assert_eq!(mode("usr/libexec/ferrotron/ferrotron-agent"), 0o755);
        assert_eq!(
            std::fs::read_to_string(r.join("etc/hostname")).expect("hostname"),
            "debian\n"
        );
        assert!(r.join("etc/ferrotron/boot").is_file());
        let conf = std::fs::read_to_string(r.join("etc/apt/apt.conf.d/90ferrotron")).expect("conf");
        assert!(
            conf.contains("Acquire::http::Proxy \"http://127.0.0.1:8472/\";"),
            "{conf}"
        );
        assert!(
            conf.contains("Acquire::Check-Valid-Until \"false\";"),
            "{conf}"
        );
        assert!(!r.join("etc/apt/apt.conf.d/99mmdebstrap").exists());
        assert!(!r.join("var/cache/apt/archives/hello_1_amd64.deb").exists());
        assert!(r.join("var/cache/apt/archives/lock").exists());
        // Idempotent: a second pass finds its own init.
        add_guest_contract(r, "debian", &opts, &applets, b"agent", &[]).expect("again");
        // Another init is refused.
        std::fs::remove_file(r.join("usr/sbin/init")).expect("rm");
        std::os::unix::fs::symlink("/lib/systemd/systemd", r.join("usr/sbin/init")).expect("link");
        let err =
            add_guest_contract(r, "debian", &opts, &applets, b"agent", &[]).expect_err("init");
        assert!(matches!(err, BootstrapError::InitTaken { .. }), "{err}");
    }

    #[test]
    fn mount_points_below_a_folder() {
        let info = "22 1 8:1 / / rw - ext4 /dev/sda1 rw
30 22 0:5 / /var/lib/x/staging/proc rw - proc proc rw
31 22 0:6 / /var/lib/x/staging\\040two/dev rw - devtmpfs d rw
32 22 0:7 / /var/lib/x/staging2 rw - tmpfs t rw
";
        assert_eq!(
            mount_points_below(info, "/var/lib/x/staging"),
            ["/var/lib/x/staging/proc"]
        );
        assert_eq!(
            mount_points_below(info, "/var/lib/x/staging two/"),
            ["/var/lib/x/staging two/dev"]
        );
    }

    #[test]
    fn mmdebstrap_command_line() {
        let spec = BootstrapSpec {
            suite: "bookworm".into(),
            mirror: "http://deb.debian.org/debian".into(),
            components: vec!["main".into(), "contrib".into()],
            apt_options: vec![r#"Acquire::Check-Valid-Until "false";"#.into()],
            rpm_names: Default::default(),
        };
        let c = mmdebstrap_command(
            &spec,
            &["python3".into(), "busybox-static".into()],
            Path::new("/w/staging"),
        );
        let args: Vec<String> = c
            .get_args()
            .map(|a| a.to_string_lossy().into_owned())
            .collect();
        assert_eq!(
            args,
            [
                "--pdeathsig",
                "TERM",
                "--",
                "mmdebstrap",
                "--mode=root",
                "--variant=minbase",
                "--format=directory",
                "--include=busybox-static,dropbear-bin,python3",
                "--components=main,contrib",
                r#"--aptopt=Acquire::Check-Valid-Until "false";"#,
                "--skip=cleanup/apt/lists",
                "bookworm",
                "/w/staging",
                "http://deb.debian.org/debian",
            ]
        );
    }
}
