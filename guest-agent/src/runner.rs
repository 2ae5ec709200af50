//! Runs a job: the actions' environment, what each kind of action runs
//! (processes in `process`, `python` in [`crate::python`],
//! `artifact` in [`crate::artifact`]), logs, exports and the result files.
//!
//! The agent does not catch signals itself: if it is killed, the process groups of running
//! commands survive it (the VM is thrown away; a local runner must clean up).

use std::collections::BTreeMap;
use std::ffi::OsString;
use std::fmt;
use std::fs::{self, File};
use std::io;
use std::os::unix::fs::MetadataExt;
use std::os::unix::process::ExitStatusExt;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use crate::output::{Tail, TAIL_BYTES};
use crate::process::{run_command, Argv, CommandEnd, Sink};
use crate::protocol::{
    Action, ActionKind, Event, JobSpec, Outcome, Stream, TaskResult, AGENT_VERSION,
};
use crate::tap::tap13;
use crate::template::render_template;

/// Shell that runs every command, as `/bin/sh -c COMMAND`.
pub const SHELL: &str = "/bin/sh";
/// `PATH` of the actions unless the job's `env` or `vars` set it.
pub const DEFAULT_PATH: &str = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin";
/// Largest stdout an action may export into a variable.
pub const MAX_EXPORT: usize = 1024 * 1024;
/// Time between SIGTERM and SIGKILL when an action times out.
pub const KILL_GRACE: Duration = Duration::from_secs(2);
/// How long output is still read after a command exited, while processes
/// it left in the background keep its pipes open.
pub const DRAIN_GRACE: Duration = Duration::from_secs(1);

/// A failure of the agent itself (not of the task), such as an unwritable
/// artifacts directory.
#[derive(Debug)]
pub struct RunError {
    pub what: String,
    pub source: io::Error,
}

impl fmt::Display for RunError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}: {}", self.what, self.source)
    }
}

impl std::error::Error for RunError {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        Some(&self.source)
    }
}

fn io_error(what: impl FnOnce() -> String) -> impl FnOnce(io::Error) -> RunError {
    move |source| RunError {
        what: what(),
        source,
    }
}

/// What a finished job produced.
#[derive(Debug)]
pub struct Report {
    pub results: Vec<TaskResult>,
    /// Actions not run because an earlier one did not pass.
    pub skipped: usize,
    /// PASSED if every result passed, else the outcome of the last one.
    pub outcome: Outcome,
}

/// Runs every action of a validated job, reporting progress through `emit`,
/// and writes `results.json` and `results.tap` to the artifacts directory.
pub fn run_job(job: &JobSpec, emit: &mut dyn FnMut(&Event)) -> Result<Report, RunError> {
    let started = Instant::now();
    emit(&Event::Start {
        job_id: job.job_id.clone(),
        agent_version: AGENT_VERSION.to_string(),
        actions: job.actions.len(),
    });
    let logs = job.artifactsdir.join("actions");
    for dir in [&job.workdir, &job.artifactsdir, &logs] {
        fs::create_dir_all(dir).map_err(io_error(|| format!("cannot create {}", dir.display())))?;
    }

    let base_env = base_env(job);
    let mut vars = job.vars.clone();
    let mut exported = BTreeMap::new();
    let mut results = Vec::new();
    let mut skipped = 0;
    for (i, action) in job.actions.iter().enumerate() {
        let index = i + 1;
        emit(&Event::ActionStart {
            index,
            name: action.name.clone(),
        });
        let action_started = Instant::now();
        let mut env = base_env.clone();
        env.extend(vars.iter().map(|(k, v)| (k.clone(), v.clone())));
        let log = logs.join(format!("{index:02}-{}.log", slug(&action.name)));
        let ctx = ActionContext {
            index,
            job,
            env: &env,
            vars: &vars,
            log: &log,
        };
        let ran = run_action(&ctx, action, emit)?;
        emit(&Event::ActionEnd {
            index,
            name: action.name.clone(),
            outcome: ran.outcome,
            exit_code: ran.exit_code,
            signal: ran.signal,
            timed_out: ran.timed_out,
            duration_ms: millis(action_started.elapsed()),
        });
        if let (Some(name), Some(value)) = (&action.export, ran.exported) {
            vars.insert(name.clone(), value.clone());
            exported.insert(name.clone(), value);
        }
        let checkname = if job.actions.len() == 1 {
            job.name.clone()
        } else {
            format!("{}.{}", job.name, action.name)
        };
        results.push(TaskResult {
            checkname,
            item: job.item.clone(),
            item_type: job.item_type.clone(),
            outcome: ran.outcome,
            summary: ran.summary,
            output: ran.output,
        });
        if ran.outcome != Outcome::Passed {
            skipped = job.actions.len() - index;
            break;
        }
    }

    write_results(&job.artifactsdir, &results)?;
    // What actions exported, for the directives the orchestrator runs
    // after the agent (`resultsdb` reports an exported ResultYAML).
    let exports = serde_json::to_vec_pretty(&exported).unwrap_or_default();
    write_atomic(
        &job.artifactsdir.join(crate::protocol::EXPORTS_FILE),
        &exports,
    )?;
    let passed = results
        .iter()
        .filter(|r| r.outcome == Outcome::Passed)
        .count();
    let outcome = match results.last() {
        Some(last) if passed < results.len() => last.outcome,
        _ => Outcome::Passed,
    };
    emit(&Event::Finish {
        outcome,
        passed,
        failed: results.len() - passed,
        skipped,
        duration_ms: millis(started.elapsed()),
    });
    Ok(Report {
        results,
        skipped,
        outcome,
    })
}

/// Environment shared by all actions; `vars` are added per action.
fn base_env(job: &JobSpec) -> BTreeMap<String, String> {
    let mut env = BTreeMap::new();
    env.insert("PATH".to_string(), DEFAULT_PATH.to_string());
    env.insert("HOME".to_string(), home());
    env.extend(job.env.iter().map(|(k, v)| (k.clone(), v.clone())));
    for (name, path) in [
        ("FERROTRON_JOB_ID", job.job_id.clone()),
        ("FERROTRON_WORKDIR", path_string(&job.workdir)),
        ("FERROTRON_ARTIFACTSDIR", path_string(&job.artifactsdir)),
        ("FERROTRON_TASKDIR", path_string(&job.taskdir)),
    ] {
        env.insert(name.to_string(), path);
    }
    env
}

fn path_string(path: &Path) -> String {
    path.to_string_lossy().into_owned()
}

/// `/root` when running as root, else the agent's own `HOME` (or `/`).
fn home() -> String {
    // The owner of /proc/self is the process's effective user.
    let uid = fs::metadata("/proc/self").map(|m| m.uid()).ok();
    if uid == Some(0) {
        return "/root".to_string();
    }
    std::env::var("HOME").unwrap_or_else(|_| "/".to_string())
}

/// A file-name-safe form of an action name: lower-case ASCII letters and
/// digits, other runs of characters as one `-`, at most 40 characters.
pub fn slug(name: &str) -> String {
    let mut s = String::new();
    for c in name.chars() {
        if c.is_ascii_alphanumeric() {
            s.push(c.to_ascii_lowercase());
        } else if !s.is_empty() && !s.ends_with('-') {
            s.push('-');
        }
    }
    s.truncate(40);
    let s = s.trim_end_matches('-');
    if s.is_empty() {
        "action".to_string()
    } else {
        s.to_string()
    }
}

fn millis(d: Duration) -> u64 {
    u64::try_from(d.as_millis()).unwrap_or(u64::MAX)
}

/// How one action ended.
struct ActionRun {
    outcome: Outcome,
    summary: String,
    exit_code: Option<i32>,
    signal: Option<i32>,
    timed_out: bool,
    output: String,
    /// The value of the action's `export` variable, when it passed.
    exported: Option<String>,
}

/// What an action runs with.
pub(crate) struct ActionContext<'a> {
    /// 1-based.
    pub index: usize,
    pub job: &'a JobSpec,
    /// The process environment (base, then the variables).
    pub env: &'a BTreeMap<String, String>,
    /// Variables so far (inputs, built-ins, exports): what `${var}` renders.
    pub vars: &'a BTreeMap<String, String>,
    /// The action's log file.
    pub log: &'a Path,
}

impl ActionContext<'_> {
    /// File beside the action's log, e.g. `02-check.kwargs.json`.
    pub fn sibling(&self, suffix: &str) -> PathBuf {
        let mut name = self.log.file_stem().unwrap_or_default().to_os_string();
        name.push(suffix);
        self.log.with_file_name(name)
    }
}

fn run_action(
    ctx: &ActionContext<'_>,
    action: &Action,
    emit: &mut dyn FnMut(&Event),
) -> Result<ActionRun, RunError> {
    let log = ctx.log;
    let file =
        File::create(log).map_err(io_error(|| format!("cannot create {}", log.display())))?;
    let kind = action.kind();
    // A python action exports its return value, every other its stdout.
    let exports_stdout = action.export.is_some() && !matches!(kind, Some(ActionKind::Python(_)));
    let mut sink = Sink {
        index: ctx.index,
        log: Some((file, log.to_path_buf())),
        tail: Tail::new(TAIL_BYTES),
        export: exports_stdout.then(Vec::new),
        export_overflow: false,
    };
    let timeout = action.timeout_secs();
    let now = Instant::now();
    let deadline = now
        .checked_add(Duration::from_secs(timeout))
        .unwrap_or(now + Duration::from_secs(86400));
    let mut ran = ActionRun {
        outcome: Outcome::Passed,
        summary: "exit 0".to_string(),
        exit_code: None,
        signal: None,
        timed_out: false,
        output: String::new(),
        exported: None,
    };
    let workdir = &ctx.job.workdir;
    let run = |argv: &Argv, sink: &mut Sink, emit: &mut dyn FnMut(&Event)| {
        run_command(argv, workdir, ctx.env, deadline, sink, emit)
    };
    let mut returned: Option<String> = None;
    match kind {
        Some(ActionKind::Shell(commands)) => {
            for (i, command) in commands.iter().enumerate() {
                let n = i + 1;
                let argv = Argv {
                    program: SHELL.into(),
                    args: vec!["-c".into(), command.into()],
                };
                let end = run(&argv, &mut sink, emit);
                let what = format!("command {n}");
                if !judge(&mut ran, end, &what, &command_summary(command), timeout) {
                    break;
                }
            }
        }
        Some(ActionKind::Exec(e)) => {
            let argv = Argv {
                program: resolve_program(&e.program, &ctx.job.taskdir),
                args: e
                    .args
                    .iter()
                    .map(|a| render_template(a, ctx.vars).into())
                    .collect(),
            };
            let end = run(&argv, &mut sink, emit);
            judge(&mut ran, end, &e.program, "", timeout);
        }
        Some(ActionKind::Python(call)) => match crate::python::prepare(ctx, call) {
            Err(message) => {
                ran.outcome = Outcome::Failed;
                ran.summary = message;
            }
            Ok(prepared) => {
                let end = run(&prepared.argv, &mut sink, emit);
                let failed = !judge(&mut ran, end, "python3", "", timeout);
                match prepared.finish(failed) {
                    Ok(value) => returned = value,
                    Err(message) => {
                        if !ran.timed_out {
                            ran.outcome = Outcome::Failed;
                            ran.summary = message;
                        }
                    }
                }
            }
        },
        Some(ActionKind::Artifact(collect)) => {
            let mut say = |line: String| {
                let mut bytes = line.into_bytes();
                bytes.push(b'\n');
                sink.line(Stream::Stdout, &bytes, emit);
            };
            match crate::artifact::collect(ctx, collect, &mut say) {
                Ok(n) => ran.summary = format!("collected {n} file(s)"),
                Err(e) => {
                    ran.outcome = e.outcome();
                    ran.summary = e.to_string();
                    say(format!("artifact: {e}"));
                }
            }
        }
        None => {
            ran.outcome = Outcome::Error;
            ran.summary = "the action has no single directive".to_string();
        }
    }
    let value = match returned {
        Some(v) => Some(v.into_bytes()),
        None => sink.export.take(),
    };
    if let (Outcome::Passed, Some(name), Some(stdout)) = (ran.outcome, &action.export, value) {
        let value = String::from_utf8_lossy(&stdout);
        let value = value.trim_end_matches('\n');
        if sink.export_overflow || value.len() > MAX_EXPORT {
            ran.outcome = Outcome::Error;
            ran.summary = format!("value to export as {name} is larger than {MAX_EXPORT} bytes");
        } else if value.contains('\0') {
            ran.outcome = Outcome::Error;
            ran.summary = format!("value to export as {name} contains a NUL byte");
        } else {
            ran.exported = Some(value.to_string());
        }
    }
    ran.output = sink.tail.into_string();
    Ok(ran)
}

/// Records how a process ended in `ran`; true when it exited 0 (and the
/// action goes on).
fn judge(
    ran: &mut ActionRun,
    end: io::Result<CommandEnd>,
    what: &str,
    detail: &str,
    timeout: u64,
) -> bool {
    let end = match end {
        Ok(end) => end,
        Err(e) => {
            ran.outcome = Outcome::Error;
            ran.summary = if e.kind() == io::ErrorKind::NotFound {
                format!("could not run {what}: not found (PATH is {DEFAULT_PATH} unless the job sets it)")
            } else {
                format!("could not run {what}: {e}")
            };
            return false;
        }
    };
    ran.exit_code = end.status.code();
    ran.signal = end.status.signal();
    if end.timed_out {
        ran.timed_out = true;
        ran.outcome = Outcome::Error;
        ran.summary = format!("timed out after {timeout} s");
        return false;
    }
    let how = match (end.status.code(), end.status.signal()) {
        (Some(0), _) => return true,
        (Some(code), _) => format!("exited with status {code}"),
        (None, Some(signal)) => format!("killed by signal {signal}"),
        (None, None) => format!("ended with {}", end.status),
    };
    ran.outcome = Outcome::Failed;
    ran.summary = if detail.is_empty() {
        format!("{what} {how}")
    } else {
        format!("{what} {how}: {detail}")
    };
    false
}

/// An `exec` program: a relative path with a `/` is in the task folder, a
/// bare name is looked up on the action's `PATH`.
fn resolve_program(program: &str, taskdir: &Path) -> OsString {
    let p = Path::new(program);
    if program.contains('/') && p.is_relative() {
        taskdir.join(p).into_os_string()
    } else {
        program.into()
    }
}

/// First line of a command, shortened, for a one-line summary.
fn command_summary(command: &str) -> String {
    const MAX: usize = 120;
    let first = command.trim().lines().next().unwrap_or("");
    let mut s: String = first.chars().take(MAX).collect();
    if s.len() < command.trim().len() {
        s.push_str(" ...");
    }
    s
}

/// Writes `results.json` and `results.tap`, each through a temporary file
/// renamed into place.
fn write_results(artifactsdir: &Path, results: &[TaskResult]) -> Result<(), RunError> {
    let mut json = serde_json::to_string_pretty(results).map_err(|e| RunError {
        what: "cannot serialize results".to_string(),
        source: io::Error::other(e),
    })?;
    json.push('\n');
    write_atomic(&artifactsdir.join("results.json"), json.as_bytes())?;
    write_atomic(&artifactsdir.join("results.tap"), tap13(results).as_bytes())
}

fn write_atomic(path: &Path, data: &[u8]) -> Result<(), RunError> {
    let mut tmp = path.as_os_str().to_owned();
    tmp.push(".tmp");
    let tmp = PathBuf::from(tmp);
    fs::write(&tmp, data).map_err(io_error(|| format!("cannot write {}", tmp.display())))?;
    fs::rename(&tmp, path).map_err(io_error(|| format!("cannot write {}", path.display())))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn slugs() {
        assert_eq!(slug("run check"), "run-check");
        assert_eq!(slug("  Run: the CHECK!! "), "run-the-check");
        assert_eq!(slug("???"), "action");
        assert_eq!(slug("é"), "action");
        assert_eq!(slug(&"abc ".repeat(30)).len(), 39);
    }

    #[test]
    fn command_summaries() {
        assert_eq!(command_summary("  make check \n"), "make check");
        assert_eq!(command_summary("a\nb"), "a ...");
        assert_eq!(command_summary(&"x".repeat(200)).len(), 124);
    }
}
