//! The real grokmirror (`grok-pull`, `grok-manifest`) from PyPI, in a venv
//! of its own under `target/` made on first use (a file lock orders the
//! tests that want it at once; a venv that lacks it is made again), with
//! [`crate::pyclients::venv`].

use std::path::{Path, PathBuf};
use std::process::Command;

/// The pinned version (docs/cache.md names it).
pub const PACKAGE: &str = "grokmirror==2.0.12";
/// What must hold for the venv to count as made: grokmirror imports, is
/// this version, and its two commands are beside the venv's python.
const CHECK: &str = "import grokmirror, os, sys; d = os.path.dirname(sys.executable); \
                     sys.exit(grokmirror.VERSION != '2.0.12' or not all(os.path.isfile(os.path.join(d, t)) \
                     for t in ('grok-pull', 'grok-manifest')))";

/// The venv's `bin/` folder, grokmirror installed.
pub fn bin_dir() -> PathBuf {
    crate::pyclients::venv("grokmirror-venv", &[PACKAGE], CHECK).join("bin")
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
