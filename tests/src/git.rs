//! Origin repositories for the git cache's tests, made with the real git
//! CLI.

use std::path::{Path, PathBuf};
use std::process::Command;

/// Runs git with a fixed identity; panics with its stderr if it fails.
pub fn git(dir: &Path, args: &[&str]) -> String {
    let out = Command::new("git")
        .arg("-C")
        .arg(dir)
        .args(args)
        .env("GIT_AUTHOR_NAME", "Test")
        .env("GIT_AUTHOR_EMAIL", "test@ferrotron")
        .env("GIT_COMMITTER_NAME", "Test")
        .env("GIT_COMMITTER_EMAIL", "test@ferrotron")
        .env("GIT_TERMINAL_PROMPT", "0")
        .output()
        .expect("run git");
    assert!(
        out.status.success(),
        "git {args:?} in {}: {}",
        dir.display(),
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).into_owned()
}

/// A non-bare origin with `commits` commits on `main`.
pub fn origin(root: &Path, name: &str, commits: usize) -> PathBuf {
    let dir = root.join(name);
    std::fs::create_dir_all(&dir).expect("mkdir origin");
    git(&dir, &["init", "-q", "-b", "main"]);
    for i in 0..commits {
        commit(&dir, &format!("{name} {i}"));
    }
    dir
}

pub fn commit(dir: &Path, msg: &str) -> String {
    std::fs::write(dir.join("file"), msg).expect("write file");
    git(dir, &["add", "file"]);
    git(dir, &["commit", "-q", "-m", msg]);
    git(dir, &["rev-parse", "HEAD"]).trim().to_string()
}
