//! The periodic check: `git fsck` each mirror; a corrupt one is cloned
//! again from its origin (the broken copy kept aside until the new one is
//! complete); a sound one is repacked and pruned. The git CLI does the
//! checking and repacking (libgit2 has no fsck), always called with an
//! argument list, never through a shell.

use std::path::Path;
use std::process::Command;

use super::manifest::{Manifest, ManifestError};
use super::mirror::{self, MirrorError};
use super::{Cache, RepoPath};

#[derive(Debug, thiserror::Error)]
pub enum FsckError {
    #[error(transparent)]
    Manifest(#[from] ManifestError),
    #[error("cannot lock the cache at {path}")]
    Lock {
        path: std::path::PathBuf,
        #[source]
        source: std::io::Error,
    },
}

/// What fsck did to one repository.
#[derive(Debug)]
pub enum Verdict {
    /// Sound; repacked and pruned.
    Sound,
    /// Corrupt (fsck said why) and cloned again from its origin.
    Recloned { why: String },
    /// Corrupt and could not be repaired; the broken copy is kept.
    Broken { why: String, error: String },
}

/// Checks every mirror; returns a verdict per repository.
pub fn fsck(cache: &Cache, progress: &dyn Fn(&str)) -> Result<Vec<(RepoPath, Verdict)>, FsckError> {
    let _lock = cache.lock().map_err(|source| FsckError::Lock {
        path: cache.root.clone(),
        source,
    })?;
    let mpath = cache.manifest_path();
    let mut manifest = Manifest::load(&mpath)?;
    let mut out = Vec::new();
    let keys: Vec<String> = manifest.repos.keys().cloned().collect();
    for key in keys {
        let Ok(path) = RepoPath::parse(&key) else {
            continue;
        };
        let dir = cache.repo_dir(&path);
        let origin = manifest
            .repos
            .get(&key)
            .and_then(|e| e.origin.clone())
            .unwrap_or_default();
        let verdict = match git(&dir, &["fsck", "--full", "--no-progress", "--no-dangling"]) {
            Ok(()) => {
                let tidy =
                    git(&dir, &["repack", "-a", "-d", "-q"]).and_then(|()| git(&dir, &["prune"]));
                if let Err(e) = tidy {
                    progress(&format!("{path}: repack/prune failed: {e}"));
                }
                Verdict::Sound
            }
            Err(why) => {
                progress(&format!(
                    "{path}: corrupt ({why}); cloning again from {}",
                    super::origin::public_url(&origin)
                ));
                match reclone(&dir, &origin) {
                    Ok(()) => Verdict::Recloned { why },
                    Err(e) => Verdict::Broken {
                        why,
                        error: crate::util::full(&e),
                    },
                }
            }
        };
        if let Ok(e) = mirror::entry(&dir, &origin) {
            manifest.repos.insert(key, e);
        }
        match &verdict {
            Verdict::Sound => progress(&format!("{path}: ok")),
            Verdict::Recloned { .. } => progress(&format!("{path}: repaired")),
            Verdict::Broken { error, .. } => progress(&format!("{path}: BROKEN: {error}")),
        }
        out.push((path, verdict));
    }
    manifest.save(&mpath)?;
    Ok(out)
}

/// Runs `git --git-dir DIR ARGS...`; on failure, its stderr.
fn git(dir: &Path, args: &[&str]) -> Result<(), String> {
    let out = Command::new("git")
        .arg("--git-dir")
        .arg(dir)
        .args(args)
        .output()
        .map_err(|e| format!("cannot run git: {e}"))?;
    if out.status.success() {
        Ok(())
    } else {
        let err = String::from_utf8_lossy(&out.stderr);
        let first = err.lines().find(|l| !l.trim().is_empty()).unwrap_or("");
        Err(format!(
            "git {} exited with {}: {first}",
            args[0], out.status
        ))
    }
}

/// Clones `origin` next to `dir`, then swaps it in; the broken copy stays
/// if the clone fails.
fn reclone(dir: &Path, origin: &str) -> Result<(), MirrorError> {
    let fresh = dir.with_extension("git.fsck-new");
    let _ = std::fs::remove_dir_all(&fresh);
    let remote = mirror::ls_remote(origin)?;
    let result = mirror::init(&fresh, origin)
        .and_then(|()| mirror::fetch(&fresh, origin, remote.head.as_deref()));
    if let Err(e) = result {
        let _ = std::fs::remove_dir_all(&fresh);
        return Err(e);
    }
    let broken = dir.with_extension("git.fsck-broken");
    let swap = std::fs::rename(dir, &broken).and_then(|()| std::fs::rename(&fresh, dir));
    if let Err(e) = swap {
        let _ = std::fs::remove_dir_all(&fresh);
        return Err(MirrorError::Create {
            dir: dir.to_path_buf(),
            source: git2::Error::from_str(&e.to_string()),
        });
    }
    let _ = std::fs::remove_dir_all(&broken);
    Ok(())
}
