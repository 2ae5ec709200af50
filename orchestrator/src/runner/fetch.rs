//! The host's half of the `koji`, `bodhi` and `distgit` directives.
//!
//! A guest reaches nothing but what its job needs, and Fedora's services
//! are not among those: the host, where the network is, fetches what each
//! download action names before the job starts, into the download cache
//! shared by every job on the host ([`crate::downloads`]). The files travel
//! with the task (`<job>/downloads/<action>/…`), and when the action's turn
//! comes the guest's `place_downloads` moves them into `target_dir` and
//! exports libtaskotron's dict (`downloaded_rpms`, …) with their paths.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use ferrotron_agent::template::{string_values, try_render};
use serde_json::{Map, Value};

use super::RunError;
use crate::downloads::{self, DownloadCache, Request};
use crate::formula::{Directive, DownloadSource, Formula};
use crate::progress::Progress;
use crate::settings::Settings;

/// What one download action fetched, ready to travel with the task.
#[derive(Debug)]
pub struct Staged {
    /// The action's index in the formula.
    pub action: usize,
    /// Where the files are uploaded, relative to the job folder
    /// (`downloads/<action>`).
    pub staged: PathBuf,
    /// The rendered target folder (absolute, in the guest's job folder).
    pub target_dir: PathBuf,
    /// (name under both folders, file in the download cache)
    pub files: Vec<(String, PathBuf)>,
    /// The action's export, paths absolute under `target_dir`.
    pub export: Map<String, Value>,
    /// Holds the files in the cache (no eviction) until the job has
    /// uploaded them and drops this.
    _held: downloads::Outcome,
}

/// The keys of an export whose values are file names under `target_dir`.
const FILE_KEYS: [&str; 3] = ["downloaded_rpms", "downloaded_logs", "downloaded_files"];

/// Fetches every download action of `f` with the job's variables `vars`
/// (inputs and built-ins; `workdir` is the job's, in the guest or here).
pub fn fetch_all(
    settings: &Settings,
    f: &Formula,
    vars: &BTreeMap<String, String>,
    root: &Path,
    ui: &Progress,
) -> Result<Vec<Staged>, RunError> {
    let values = string_values(vars);
    let mut out = Vec::new();
    let cache = DownloadCache::new(
        settings.download_cache_dir(),
        settings.downloads.cache_max_bytes,
    );
    for (i, a) in f.actions.iter().enumerate() {
        let Directive::Download(dl) = &a.directive else {
            continue;
        };
        let name = dl.source.directive();
        let render = |field: &str, text: &str| {
            try_render(text, &values).map_err(|e| {
                RunError::BadInput(format!("action `{}`: {name}.{field}: {e}", a.name))
            })
        };
        let target_dir =
            target_dir(root, &render("target_dir", &dl.target_dir)?).map_err(|why| {
                RunError::BadInput(format!("action `{}`: {name}.target_dir: {why}", a.name))
            })?;
        let request = request(&dl.source, &render)?;
        let say = |m: &str| ui.say(m);
        let got = downloads::fetch(&settings.downloads.services, &cache, &request, &say).map_err(
            |e| {
                let what = format!("action `{}` ({name})", a.name);
                if e.is_infrastructure() {
                    RunError::infra("download", format!("{what}: {}", crate::util::full(&e)))
                } else {
                    RunError::BadInput(format!("{what}: {}", crate::util::full(&e)))
                }
            },
        )?;
        let export = got
            .export
            .clone()
            .into_iter()
            .map(|(k, v)| {
                let v = if FILE_KEYS.contains(&k.as_str()) {
                    absolute(&target_dir, v)
                } else {
                    v
                };
                (k, v)
            })
            .collect();
        out.push(Staged {
            action: i,
            staged: PathBuf::from("downloads").join(i.to_string()),
            target_dir,
            files: got
                .files
                .iter()
                .map(|f| (f.name.clone(), f.path.clone()))
                .collect(),
            export,
            _held: got,
        });
    }
    Ok(out)
}

/// The files to upload with the task: (path under the job folder, file in
/// the download cache).
pub fn uploads(staged: &[Staged]) -> Vec<(PathBuf, PathBuf)> {
    staged
        .iter()
        .flat_map(|s| {
            s.files
                .iter()
                .map(|(name, path)| (s.staged.join(name), path.clone()))
        })
        .collect()
}

/// File names as paths under `dir`.
fn absolute(dir: &Path, v: Value) -> Value {
    match v {
        Value::Array(items) => Value::Array(
            items
                .into_iter()
                .map(|i| match i {
                    Value::String(name) => Value::String(dir.join(name).display().to_string()),
                    other => other,
                })
                .collect(),
        ),
        other => other,
    }
}

/// The target folder, absolute: a relative one is inside the work folder;
/// an absolute one must be inside the job's folder (its work folder or
/// artifacts).
fn target_dir(root: &Path, rendered: &str) -> Result<PathBuf, String> {
    let p = Path::new(rendered);
    let (base, rel) = if p.is_absolute() {
        match p.strip_prefix(root) {
            Ok(rel) => (root.to_path_buf(), rel.to_path_buf()),
            Err(_) => {
                return Err(format!(
                    "`{rendered}` is outside the job's folder (use `${{workdir}}/…`)"
                ))
            }
        }
    } else {
        (root.join("work"), p.to_path_buf())
    };
    let clean = rel
        .components()
        .all(|c| matches!(c, std::path::Component::Normal(_)));
    let first = rel.components().next().map(|c| c.as_os_str().to_owned());
    let inside = !p.is_absolute() || first.is_some_and(|f| f == "work" || f == "artifacts");
    if !clean || !inside {
        return Err(format!(
            "`{rendered}` must be a folder inside the work folder or the artifacts, without `..`"
        ));
    }
    Ok(base.join(rel))
}

/// The download module's request for a directive's rendered arguments.
fn request(
    source: &DownloadSource,
    render: &dyn Fn(&str, &str) -> Result<String, RunError>,
) -> Result<Request, RunError> {
    let list = |field: &str, l: &[String]| -> Result<Vec<String>, RunError> {
        l.iter()
            .enumerate()
            .map(|(i, v)| render(&format!("{field}[{i}]"), v))
            .collect()
    };
    let opt = |field: &str, v: &Option<String>| -> Result<Option<String>, RunError> {
        v.as_deref().map(|v| render(field, v)).transpose()
    };
    Ok(match source {
        DownloadSource::Koji {
            action,
            koji_build,
            koji_tag,
            arch,
            arch_exclude,
            src,
            debuginfo,
            build_log,
        } => Request::Koji {
            action: *action,
            build: opt("koji_build", koji_build)?,
            tag: opt("koji_tag", koji_tag)?,
            arch: list("arch", arch)?,
            arch_exclude: list("arch_exclude", arch_exclude)?,
            src: *src,
            debuginfo: *debuginfo,
            build_log: *build_log,
        },
        DownloadSource::Bodhi {
            update_id,
            arch,
            src,
        } => Request::Bodhi {
            update_id: render("update_id", update_id)?,
            arch: list("arch", arch)?,
            src: *src,
        },
        DownloadSource::Distgit {
            package,
            nvr,
            gitref,
            namespace,
            path,
            localpath,
            ignore_missing,
        } => {
            let nvr = opt("nvr", nvr)?;
            let package = match (opt("package", package)?, &nvr) {
                (Some(p), _) => p,
                (None, Some(n)) => {
                    downloads::evr::Nevr::parse(n)
                        .map(|v| v.name)
                        .ok_or_else(|| {
                            RunError::BadInput(format!(
                                "distgit.nvr: `{n}` is not a name-version-release"
                            ))
                        })?
                }
                (None, None) => {
                    return Err(RunError::BadInput(
                        "distgit: give `package` or `nvr`".into(),
                    ))
                }
            };
            let gitref = match opt("gitref", gitref)? {
                Some(r) => r,
                None => nvr
                    .as_deref()
                    .and_then(downloads::dist_git_branch)
                    .unwrap_or_else(|| "rawhide".into()),
            };
            Request::Distgit {
                package,
                gitref,
                namespace: opt("namespace", namespace)?.unwrap_or_else(|| "rpms".into()),
                paths: list("path", path)?,
                localpaths: localpath
                    .as_ref()
                    .map(|l| list("localpath", l))
                    .transpose()?,
                ignore_missing: *ignore_missing,
            }
        }
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn target_folders_stay_in_the_job() {
        let root = Path::new("/var/tmp/ferrotron/jobs/j1");
        assert_eq!(
            target_dir(root, "/var/tmp/ferrotron/jobs/j1/work/rpms").expect("ok"),
            root.join("work/rpms")
        );
        assert_eq!(
            target_dir(root, "rpms").expect("ok"),
            root.join("work/rpms")
        );
        assert_eq!(
            target_dir(root, "/var/tmp/ferrotron/jobs/j1/artifacts/logs").expect("ok"),
            root.join("artifacts/logs")
        );
        for bad in [
            "/etc",
            "../x",
            "/var/tmp/ferrotron/jobs/j1/task/x",
            "/var/tmp/ferrotron/jobs/j1/work/../..",
        ] {
            assert!(target_dir(root, bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn branches_of_nvrs() {
        assert_eq!(
            downloads::dist_git_branch("hello-1.0-1.fc41").as_deref(),
            Some("f41")
        );
        assert_eq!(downloads::dist_git_branch("hello-1.0-1.el9"), None);
    }
}
