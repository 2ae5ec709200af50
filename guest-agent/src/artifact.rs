//! The `artifact` action: files of the work folder copied into the
//! artifacts folder (which both runners bring back to the job), keeping
//! their paths relative to the work folder.
//!
//! Paths are relative and may use `*` and `?` within a path component.
//! Nothing outside the work folder is ever read: absolute paths and `..`
//! are refused, and every match is resolved (symbolic links included) and
//! must still be inside the work folder.

use std::fmt;
use std::fs;
use std::path::{Path, PathBuf};

use crate::protocol::{is_contained_path, ArtifactCollect, Outcome, EXPORTS_FILE};
use crate::runner::ActionContext;
use crate::template::render_template;

/// Names in the artifacts folder that belong to the agent.
const RESERVED: &[&str] = &["actions", "results.json", "results.tap", EXPORTS_FILE];

/// Why an `artifact` action did not collect.
#[derive(Debug)]
pub enum ArtifactError {
    /// An absolute path, a `..`, or a match that resolves outside.
    Escapes {
        path: String,
    },
    NoMatch {
        pattern: String,
    },
    Reserved {
        path: String,
    },
    Io {
        path: PathBuf,
        source: std::io::Error,
    },
}

impl ArtifactError {
    /// A pattern that matches nothing is the task's failure; the rest are
    /// errors of the formula or the machine.
    pub fn outcome(&self) -> Outcome {
        match self {
            ArtifactError::NoMatch { .. } => Outcome::Failed,
            _ => Outcome::Error,
        }
    }
}

impl fmt::Display for ArtifactError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            ArtifactError::Escapes { path } => write!(
                f,
                "refused {path:?}: artifact paths must stay inside the work folder"
            ),
            ArtifactError::NoMatch { pattern } => {
                write!(f, "no file in the work folder matches {pattern:?}")
            }
            ArtifactError::Reserved { path } => write!(
                f,
                "refused {path:?}: that name in the artifacts folder belongs to the agent"
            ),
            ArtifactError::Io { path, source } => write!(f, "{}: {source}", path.display()),
        }
    }
}

impl std::error::Error for ArtifactError {}

/// Copies every match; returns how many files were copied. `say` gets one
/// line per file.
pub(crate) fn collect(
    ctx: &ActionContext<'_>,
    what: &ArtifactCollect,
    say: &mut dyn FnMut(String),
) -> Result<usize, ArtifactError> {
    let workdir = &ctx.job.workdir;
    let root = fs::canonicalize(workdir).map_err(|source| ArtifactError::Io {
        path: workdir.clone(),
        source,
    })?;
    let mut copied = 0;
    for pattern in &what.paths {
        let pattern = render_template(pattern, ctx.vars);
        if !is_contained_path(&pattern) {
            return Err(ArtifactError::Escapes { path: pattern });
        }
        let matches = expand(&root, &pattern)?;
        if matches.is_empty() {
            return Err(ArtifactError::NoMatch { pattern });
        }
        for rel in matches {
            copied += copy_inside(&root, &rel, &ctx.job.artifactsdir, say)?;
        }
    }
    Ok(copied)
}

/// Relative paths under `root` matching a pattern of `/`-separated
/// components with `*` and `?`, sorted.
fn expand(root: &Path, pattern: &str) -> Result<Vec<PathBuf>, ArtifactError> {
    let mut found = vec![PathBuf::new()];
    for part in Path::new(pattern).components() {
        let part = part.as_os_str().to_string_lossy();
        if part == "." {
            continue;
        }
        let mut next = Vec::new();
        for base in &found {
            if !part.contains(['*', '?']) {
                let candidate = base.join(part.as_ref());
                if fs::symlink_metadata(root.join(&candidate)).is_ok() {
                    next.push(candidate);
                }
                continue;
            }
            let dir = root.join(base);
            let Ok(entries) = fs::read_dir(&dir) else {
                continue;
            };
            for entry in entries.flatten() {
                let name = entry.file_name().to_string_lossy().into_owned();
                // As in shells, `*` does not match a leading dot.
                if (part.starts_with('.') || !name.starts_with('.')) && wildcard(&part, &name) {
                    next.push(base.join(&name));
                }
            }
        }
        next.sort();
        found = next;
    }
    found.retain(|p| !p.as_os_str().is_empty());
    Ok(found)
}

/// `*` matches any run of characters, `?` one character.
fn wildcard(pattern: &str, name: &str) -> bool {
    let p: Vec<char> = pattern.chars().collect();
    let n: Vec<char> = name.chars().collect();
    let (mut pi, mut ni) = (0, 0);
    let mut star: Option<(usize, usize)> = None;
    while ni < n.len() {
        match p.get(pi) {
            Some('*') => {
                star = Some((pi, ni));
                pi += 1;
            }
            Some(&c) if c == '?' || c == n[ni] => {
                pi += 1;
                ni += 1;
            }
            _ => match star {
                Some((sp, sn)) => {
                    pi = sp + 1;
                    ni = sn + 1;
                    star = Some((sp, sn + 1));
                }
                None => return false,
            },
        }
    }
    p[pi..].iter().all(|&c| c == '*')
}

/// Copies one match (a file, or a folder with everything below it) to the
/// same relative path in `dest`, after checking that it resolves inside
/// `root`.
fn copy_inside(
    root: &Path,
    rel: &Path,
    dest: &Path,
    say: &mut dyn FnMut(String),
) -> Result<usize, ArtifactError> {
    let shown = rel.display().to_string();
    let io = |path: &Path| {
        let path = path.to_path_buf();
        move |source| ArtifactError::Io { path, source }
    };
    let real = fs::canonicalize(root.join(rel)).map_err(io(&root.join(rel)))?;
    if !real.starts_with(root) {
        return Err(ArtifactError::Escapes { path: shown });
    }
    let first = rel
        .components()
        .next()
        .map(|c| c.as_os_str().to_string_lossy().into_owned())
        .unwrap_or_default();
    if RESERVED.contains(&first.as_str()) {
        return Err(ArtifactError::Reserved { path: shown });
    }
    let target = dest.join(rel);
    let meta = fs::metadata(&real).map_err(io(&real))?;
    if meta.is_dir() {
        let mut n = 0;
        let mut entries: Vec<_> = fs::read_dir(&real)
            .map_err(io(&real))?
            .flatten()
            .map(|e| e.file_name())
            .collect();
        entries.sort();
        fs::create_dir_all(&target).map_err(io(&target))?;
        for name in entries {
            n += copy_inside(root, &rel.join(name), dest, say)?;
        }
        return Ok(n);
    }
    if !meta.is_file() {
        return Ok(0);
    }
    if let Some(parent) = target.parent() {
        fs::create_dir_all(parent).map_err(io(parent))?;
    }
    fs::copy(&real, &target).map_err(io(&target))?;
    say(format!("collected {shown} ({} bytes)", meta.len()));
    Ok(1)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn wildcards() {
        assert!(wildcard("*.log", "build.log"));
        assert!(wildcard("b?ild.*", "build.log"));
        assert!(wildcard("*", ""));
        assert!(!wildcard("*.log", "build.txt"));
        assert!(wildcard("a*b*c", "aXbYbZc"));
        assert!(!wildcard("a*b*c", "aXbYbZ"));
    }
}
