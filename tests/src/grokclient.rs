//! The real grokmirror (`grok-pull`, `grok-manifest`) from PyPI, in a venv
//! of its own under `target/` made on first use (a file lock orders the
//! tests that want it at once; a venv that lacks it is made again), as
//! [`crate::pyclients`] does for the ResultsDB clients.

use std::path::{Path, PathBuf};
use std::process::Command;

use crate::workspace;

/// The pinned version (docs/cache.md names it).
pub const PACKAGE: &str = "grokmirror==2.0.12";
/// What must import, and say this version, for the venv to count as made.
const CHECK: &str = "import grokmirror, sys; sys.exit(grokmirror.VERSION != '2.0.12')";

/// The venv's `bin/` folder, grokmirror installed.
pub fn bin_dir() -> PathBuf {
    let venv = workspace().join("target/grokmirror-venv");
    let py = venv.join("bin/python");
    let lock_path = workspace().join("target/grokmirror-venv.lock");
    let lock = std::fs::OpenOptions::new()
        .create(true)
        .truncate(false)
        .write(true)
        .open(&lock_path)
        .expect("venv lock file");
    let _held = nix::fcntl::Flock::lock(lock, nix::fcntl::FlockArg::LockExclusive)
        .map_err(|(_, e)| e)
        .expect("venv lock");
    let ready = || {
        Command::new(&py)
            .args(["-c", CHECK])
            .output()
            .is_ok_and(|o| o.status.success())
            && venv.join("bin/grok-pull").is_file()
            && venv.join("bin/grok-manifest").is_file()
    };
    if !ready() {
        let _ = std::fs::remove_dir_all(&venv);
        let made = Command::new("/usr/bin/python3")
            .args(["-m", "venv"])
            .arg(&venv)
            .output()
            .expect("python3 -m venv");
        assert!(
            made.status.success(),
            "python3 -m venv {}: {} (Debian's python3-venv: scripts/packages-test.txt lists it)",
            venv.display(),
            String::from_utf8_lossy(&made.stderr)
        );
        let pip = Command::new(venv.join("bin/pip"))
            .args(["install", "-q", "--disable-pip-version-check", PACKAGE])
            .output()
            .expect("pip install");
        assert!(
            pip.status.success(),
            "pip install {PACKAGE}: {}",
            String::from_utf8_lossy(&pip.stderr)
        );
        assert!(ready(), "{PACKAGE} is not usable in the new venv");
    }
    venv.join("bin")
}

/// What a grokmirror command did.
#[derive(Debug)]
pub struct Ran {
    pub code: Option<i32>,
    pub stdout: String,
    pub stderr: String,
}

/// Runs `grok-<tool> ARGS` from the venv in `dir`; asserts it exited 0.
pub fn run(tool: &str, dir: &Path, args: &[&str]) -> Ran {
    let exe = bin_dir().join(format!("grok-{tool}"));
    let out = Command::new(&exe)
        .args(args)
        .current_dir(dir)
        .env("PYTHONDONTWRITEBYTECODE", "1")
        .env("GIT_TERMINAL_PROMPT", "0")
        .output()
        .unwrap_or_else(|e| panic!("run {}: {e}", exe.display()));
    let ran = Ran {
        code: out.status.code(),
        stdout: String::from_utf8_lossy(&out.stdout).into_owned(),
        stderr: String::from_utf8_lossy(&out.stderr).into_owned(),
    };
    eprintln!(
        "--- grok-{tool} {} -> {:?}\n{}{}",
        args.join(" "),
        ran.code,
        ran.stdout,
        ran.stderr
    );
    assert_eq!(ran.code, Some(0), "grok-{tool} {args:?} failed");
    ran
}
