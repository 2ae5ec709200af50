//! The local runner: the same task, the same agent, the same outputs, on
//! this host in a fresh work folder and in seconds. It runs as the user who
//! starts it (the VM runner is what gives tasks a disposable root).

use std::io::{BufRead, BufReader};
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::mpsc;
use std::time::{Duration, Instant};

use nix::sys::signal::{killpg, Signal};
use nix::unistd::Pid;

use super::{job_spec, render, report, task_budget, upload, RunError, RunOutcome, RunRequest};
use crate::cancel::Cancel;
use crate::job::JobState;
use crate::progress::Progress;
use crate::settings::Settings;
use crate::ssh::session::unpack_safely;

/// Finds the agent to run locally: `--agent`/`FERROTRON_AGENT`, else the
/// `ferrotron-agent` next to this executable, else on `PATH`.
/// Whether this host has a package installed: an RPM (`rpm -q`) or a
/// Debian package (`dpkg-query`), whichever the host has.
fn host_has_package(name: &str) -> bool {
    let quiet = |program: &str, args: &[&str]| {
        Command::new(program)
            .args(args)
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .status()
            .is_ok_and(|s| s.success())
    };
    quiet("rpm", &["-q", "--", name])
        || quiet("dpkg-query", &["--show", "--showformat=", "--", name])
}

pub fn locate_agent(settings: &Settings) -> Result<PathBuf, RunError> {
    if let Some(a) = &settings.agent {
        return if a.is_file() {
            Ok(a.clone())
        } else {
            Err(RunError::BadInput(format!(
                "guest agent {} does not exist",
                a.display()
            )))
        };
    }
    let beside = std::env::current_exe()
        .ok()
        .and_then(|e| e.parent().map(|d| d.join("ferrotron-agent")));
    let on_path = std::env::var_os("PATH").and_then(|p| {
        std::env::split_paths(&p)
            .map(|d| d.join("ferrotron-agent"))
            .find(|c| c.is_file())
    });
    beside.filter(|p| p.is_file()).or(on_path).ok_or_else(|| {
        RunError::BadInput(
            "no ferrotron-agent found (beside ferrotron, on PATH, or given with --agent)".into(),
        )
    })
}

pub fn run(
    settings: &Settings,
    req: &RunRequest,
    cancel: &Cancel,
    ui: &Progress,
) -> Result<RunOutcome, RunError> {
    // prepare
    let t = Instant::now();
    let vars = req
        .formula
        .input_vars(&req.item, &req.item_type, &req.arch)?;
    let missing = req.formula.missing_packages(&host_has_package);
    if let Some(problem) = super::packages_problem(&missing, "this host") {
        return Err(RunError::BadInput(problem));
    }
    let agent = locate_agent(settings)?;
    let job_id = req.job_id.clone();
    let job_dir = super::fresh_job_dir(&settings.jobs_dir(), &job_id)
        .map_err(|e| RunError::infra("prepare", e))?;
    let vars = super::job_vars(&vars, req, &job_id, &job_dir);
    let staged = super::fetch::fetch_all(settings, &req.formula, &vars, &job_dir, ui)?;
    let spec = job_spec(&req.formula, vars, req, &job_id, &job_dir, &staged)?;
    let infra = |phase: &'static str| move |e: std::io::Error| RunError::infra(phase, e);
    std::fs::create_dir_all(&job_dir).map_err(infra("prepare"))?;
    ui.log_to(&job_dir.join("runner.log"));
    let job_json = serde_json::to_vec_pretty(&spec).unwrap_or_default();
    // The task folder is copied exactly as it would be uploaded to a VM.
    let task_dir = req.formula.task_dir();
    let tarball = upload::archive(
        Path::new(""),
        &job_json,
        task_dir,
        None,
        &super::fetch::uploads(&staged),
    )
    .map_err(|e| RunError::BadInput(e.to_string()))?;
    unpack_safely(&tarball[..], &job_dir).map_err(infra("prepare"))?;
    ui.say(&format!(
        "job {job_id}: {} for {} {} on this host",
        req.formula.name, req.item_type, req.item
    ));
    ui.phase("prepare", &job_dir.display().to_string(), t.elapsed());
    // No VM to boot: from scheduled straight to running.
    req.reached(JobState::Scheduled);
    req.reached(JobState::Running);

    // task
    let t = Instant::now();
    let mut child = Command::new(&agent)
        .arg("run")
        .arg(job_dir.join("job.json"))
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .process_group(0)
        .spawn()
        .map_err(|e| RunError::infra("task", format!("cannot start {}: {e}", agent.display())))?;
    let pgid = Pid::from_raw(child.id() as i32);
    let (tx, rx) = mpsc::channel();
    if let Some(out) = child.stdout.take() {
        std::thread::spawn(move || {
            for line in BufReader::new(out).lines().map_while(Result::ok) {
                if tx.send(line).is_err() {
                    break;
                }
            }
        });
    }
    let stderr = child.stderr.take();
    let stderr_reader = std::thread::spawn(move || {
        let mut s = String::new();
        if let Some(mut e) = stderr {
            let _ = std::io::Read::read_to_string(&mut e, &mut s);
        }
        s
    });
    let deadline = Instant::now() + req.timeout.unwrap_or_else(|| task_budget(&spec));
    let mut seen = render::Seen::default();
    let mut aborted = None;
    loop {
        match rx.recv_timeout(Duration::from_millis(250)) {
            Ok(line) => seen.handle(&line, ui),
            Err(mpsc::RecvTimeoutError::Disconnected) => break,
            Err(mpsc::RecvTimeoutError::Timeout) => {
                if cancel.is_cancelled() {
                    aborted = Some(format!("interrupted by {}", cancel.reason()));
                } else if Instant::now() >= deadline {
                    aborted = Some("the task did not finish before its deadline".to_string());
                }
                if aborted.is_some() {
                    stop_tree(child.id());
                    let _ = killpg(pgid, Signal::SIGKILL);
                    break;
                }
            }
        }
    }
    let status = child.wait().map_err(infra("task"))?;
    let stderr = stderr_reader.join().unwrap_or_default();
    ui.phase(
        "task",
        &match seen.finished {
            Some(o) if aborted.is_none() => format!("{} action(s), {o}", seen.actions),
            _ => "did not finish".to_string(),
        },
        t.elapsed(),
    );
    if cancel.is_cancelled() {
        return Err(RunError::Cancelled(cancel.reason()));
    }
    if let Some(why) = aborted {
        return Err(RunError::infra("task", why));
    }
    if seen.finished.is_none() {
        return Err(RunError::infra(
            "task",
            format!(
                "the agent ended without finishing ({status}): {}",
                stderr.trim()
            ),
        ));
    }

    // collect: the agent wrote into the job's artifacts folder already.
    req.reached(JobState::Reporting);
    let t = Instant::now();
    let artifacts = job_dir.join("artifacts");
    let report = report::read_results(&artifacts)
        .and_then(|by_action| report::finish(&req.formula, &spec, &artifacts, by_action))
        .map_err(|e| RunError::infra("collect", e))?;
    for w in &report.warnings {
        ui.say(&format!("warning: {w}"));
    }
    let (results, tap, verdict) = (report.results, report.tap, report.verdict);
    ui.phase(
        "collect",
        &format!("{} result(s) in {}", results.len(), artifacts.display()),
        t.elapsed(),
    );
    Ok(RunOutcome {
        job_id,
        job_dir,
        results,
        tap,
        verdict,
        held: None,
    })
}

/// Kills the process groups of every descendant of `root` (the agent puts
/// each task command in a group of its own), then `root`'s own group.
fn stop_tree(root: u32) {
    let mut groups = std::collections::BTreeSet::new();
    let mut todo = vec![root];
    while let Some(pid) = todo.pop() {
        if let Some(pgid) = pgid_of(pid) {
            groups.insert(pgid);
        }
        todo.extend(children_of(pid));
    }
    for g in groups {
        let _ = killpg(Pid::from_raw(g), Signal::SIGKILL);
    }
}

fn children_of(pid: u32) -> Vec<u32> {
    let Ok(tasks) = std::fs::read_dir(format!("/proc/{pid}/task")) else {
        return Vec::new();
    };
    tasks
        .flatten()
        .filter_map(|t| std::fs::read_to_string(t.path().join("children")).ok())
        .flat_map(|c| {
            c.split_whitespace()
                .filter_map(|p| p.parse().ok())
                .collect::<Vec<u32>>()
        })
        .collect()
}

fn pgid_of(pid: u32) -> Option<i32> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    // Fields after the command name: state ppid pgrp ...
    stat[stat.rfind(')')? + 2..].split(' ').nth(2)?.parse().ok()
}
