//! The real Python clients of the systems Ferrotron replaces, from PyPI,
//! in one venv under `target/` made on first use (a file lock orders the
//! tests that want it at once; a venv that lacks a client is made again).

use std::path::PathBuf;
use std::process::Command;

use crate::workspace;

/// Pinned versions, as docs/results-api.md and docs/operations.md name
/// them: ResultsDB's clients (with the `fedora` extra, which brings
/// `fedfind`: `resultsdb_conventions.fedora` imports it), and
/// `fedora-messaging` with the schema packages of the messages Ferrotron's
/// intake reads (Koji, Bodhi, the git hook).
pub const PACKAGES: &[&str] = &[
    "resultsdb-api==2.1.6",
    "resultsdb-conventions[fedora]==3.0.3",
    "fedfind==6.1.4",
    "fedora-messaging==3.9.1",
    "koji-fedoramessaging-messages==1.3.0",
    "bodhi-messages==26.4.0",
    "fedora-messaging-git-hook-messages==1.0.2",
];
/// Modules that must import for the venv to count as made (a venv made
/// before a package was added lacks it, and is made again).
const MODULES: &str = "import resultsdb_api, resultsdb_conventions.fedora, fedora_messaging.api, \
                       koji_fedoramessaging_messages.build, bodhi.messages.schemas.update, \
                       fedora_messaging_git_hook_messages";

/// The venv's python, with every client installed.
pub fn python() -> PathBuf {
    venv("pyclients-venv", PACKAGES, MODULES).join("bin/python")
}

/// `target/NAME`, a venv with `packages` installed, made on first use (and
/// again when `check`, Python code run in it, fails: a venv made before a
/// package was added). A file lock beside it orders the tests that want
/// it at once. Returns the venv's folder.
pub fn venv(name: &str, packages: &[&str], check: &str) -> PathBuf {
    let venv = workspace().join("target").join(name);
    let py = venv.join("bin/python");
    let lock_path = workspace().join("target").join(format!("{name}.lock"));
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
            .args(["-c", check])
            .output()
            .is_ok_and(|o| o.status.success())
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
            .args(["install", "-q", "--disable-pip-version-check"])
            .args(packages)
            .output()
            .expect("pip install");
        assert!(
            pip.status.success(),
            "pip install {packages:?}: {}",
            String::from_utf8_lossy(&pip.stderr)
        );
        assert!(ready(), "{check} fails in the new venv");
    }
    venv
}

/// Runs `tests/fixtures/<script>` with the venv's python; its stdout
/// (asserting it exited 0).
pub fn run(script: &str, args: &[&str]) -> String {
    run_with_env(script, args, &[])
}

/// Like [`run`], with more environment (`FEDORA_MESSAGING_CONF`, say).
pub fn run_with_env(script: &str, args: &[&str], env: &[(&str, &str)]) -> String {
    let out = Command::new(python())
        .arg(workspace().join("tests/fixtures").join(script))
        .args(args)
        .env("PYTHONDONTWRITEBYTECODE", "1")
        .envs(env.iter().copied())
        .output()
        .expect("run the client script");
    assert!(
        out.status.success(),
        "{script}: {}\n{}",
        String::from_utf8_lossy(&out.stderr),
        String::from_utf8_lossy(&out.stdout)
    );
    String::from_utf8_lossy(&out.stdout).into_owned()
}
