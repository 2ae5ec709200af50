//! What goes into the guest: one tar stream with the job description, the
//! task's files and, when the image's copy differs, the guest agent.

use std::path::{Path, PathBuf};

/// Upper bound on the task folder: a task is code, not data.
const MAX_TASK_BYTES: u64 = 256 * 1024 * 1024;

#[derive(Debug, thiserror::Error)]
pub enum UploadError {
    #[error("cannot read task folder {0}")]
    Read(PathBuf, #[source] std::io::Error),
    #[error(
        "task folder {path} holds more than {limit} MiB; keep data out of the task repository"
    )]
    TooLarge { path: PathBuf, limit: u64 },
}

/// Builds the archive of a job folder: `<prefix>/job.json`,
/// `<prefix>/task/…`, `<prefix>/ferrotron-agent` if given, and the files
/// download actions fetched (`files`: path under the job folder, file on
/// this host). With the job id as prefix, one `tar -x` in the guest's jobs
/// folder creates it all.
pub fn archive(
    prefix: &Path,
    job_json: &[u8],
    task_dir: &Path,
    agent: Option<&Path>,
    files: &[(PathBuf, PathBuf)],
) -> Result<Vec<u8>, UploadError> {
    let mut b = tar::Builder::new(Vec::new());
    b.mode(tar::HeaderMode::Deterministic);
    let io = |e| UploadError::Read(task_dir.to_path_buf(), e);
    let name = |n: &str| prefix.join(n).display().to_string();
    append_bytes(&mut b, &name("job.json"), job_json, 0o644).map_err(io)?;
    let mut total = 0u64;
    add_dir(&mut b, task_dir, &prefix.join("task"), &mut total, task_dir)?;
    if let Some(agent) = agent {
        let bytes = std::fs::read(agent).map_err(|e| UploadError::Read(agent.to_path_buf(), e))?;
        append_bytes(&mut b, &name("ferrotron-agent"), &bytes, 0o755).map_err(io)?;
    }
    for (rel, file) in files {
        let mut f =
            std::fs::File::open(file).map_err(|e| UploadError::Read(file.to_path_buf(), e))?;
        b.append_file(prefix.join(rel), &mut f)
            .map_err(|e| UploadError::Read(file.to_path_buf(), e))?;
    }
    b.into_inner().map_err(io)
}

fn append_bytes(
    b: &mut tar::Builder<Vec<u8>>,
    path: &str,
    bytes: &[u8],
    mode: u32,
) -> std::io::Result<()> {
    let mut h = tar::Header::new_ustar();
    h.set_size(bytes.len() as u64);
    h.set_mode(mode);
    h.set_entry_type(tar::EntryType::Regular);
    h.set_cksum();
    b.append_data(&mut h, path, bytes)
}

/// Regular files and folders only (no `.git`, no links, no devices).
fn add_dir(
    b: &mut tar::Builder<Vec<u8>>,
    dir: &Path,
    rel: &Path,
    total: &mut u64,
    root: &Path,
) -> Result<(), UploadError> {
    let err = |e| UploadError::Read(dir.to_path_buf(), e);
    let mut entries: Vec<_> = std::fs::read_dir(dir).map_err(err)?.flatten().collect();
    entries.sort_by_key(|e| e.file_name());
    b.append_dir(rel, dir).map_err(err)?;
    for e in entries {
        let name = e.file_name();
        if name == ".git" {
            continue;
        }
        let ft = e.file_type().map_err(err)?;
        let path = e.path();
        if ft.is_dir() {
            add_dir(b, &path, &rel.join(&name), total, root)?;
        } else if ft.is_file() {
            *total += e.metadata().map_err(err)?.len();
            if *total > MAX_TASK_BYTES {
                return Err(UploadError::TooLarge {
                    path: root.to_path_buf(),
                    limit: MAX_TASK_BYTES / 1024 / 1024,
                });
            }
            b.append_path_with_name(&path, rel.join(&name))
                .map_err(err)?;
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn archive_holds_job_task_and_agent_but_not_git() {
        let dir = tempfile::tempdir().expect("tempdir");
        let task = dir.path().join("task");
        std::fs::create_dir_all(task.join(".git")).expect("mkdir");
        std::fs::create_dir_all(task.join("lib")).expect("mkdir");
        std::fs::write(task.join("runtask.yml"), "x").expect("write");
        std::fs::write(task.join("lib/check.sh"), "y").expect("write");
        std::fs::write(task.join(".git/HEAD"), "z").expect("write");
        std::os::unix::fs::symlink("/etc/passwd", task.join("link")).expect("link");
        let agent = dir.path().join("agent");
        std::fs::write(&agent, "bin").expect("write");
        let bytes = archive(Path::new("j1"), b"{}", &task, Some(&agent), &[]).expect("archive");
        let mut names: Vec<String> = tar::Archive::new(&bytes[..])
            .entries()
            .expect("entries")
            .map(|e| {
                e.expect("entry")
                    .path()
                    .expect("path")
                    .display()
                    .to_string()
            })
            .collect();
        names.sort();
        assert_eq!(
            names,
            vec![
                "j1/ferrotron-agent",
                "j1/job.json",
                "j1/task",
                "j1/task/lib",
                "j1/task/lib/check.sh",
                "j1/task/runtask.yml"
            ]
        );
    }
}
