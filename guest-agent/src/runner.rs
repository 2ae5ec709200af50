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
    Action, ActionKind, Event, JobSpec, Outcome, ShellCommand, Stream, TaskResult, AGENT_VERSION,
};
use crate::tap::tap13;
use crate::template::{self, stringify, try_render, Values};

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
    if job.taskdir != job.workdir {
        copy_task(&job.taskdir, &job.workdir).map_err(io_error(|| {
            format!(
                "cannot copy the task folder {} into the work folder {}",
                job.taskdir.display(),
                job.workdir.display()
            )
        }))?;
    }

    if let Some(install) = &job.install {
        crate::install::run(install, &logs, emit)?;
    }

    let pylib = crate::libtaskotron::install(&job.workdir.with_file_name("python")).map_err(
        io_error(|| "cannot write the libtaskotron package beside the work folder".to_string()),
    )?;
    let mut base_env = base_env(job);
    let pythonpath = match base_env.get("PYTHONPATH") {
        Some(theirs) if !theirs.is_empty() => format!("{theirs}:{}", pylib.display()),
        _ => pylib.display().to_string(),
    };
    base_env.insert("PYTHONPATH".to_string(), pythonpath);
    let mut vars: Values = template::string_values(&job.vars);
    let mut exported = Values::new();
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
        env.extend(vars.iter().map(|(k, v)| (k.clone(), stringify(v))));
        let log = logs.join(format!("{index:02}-{}.log", slug(&action.name)));
        let ctx = ActionContext {
            index,
            job,
            env: &env,
            vars: &vars,
            log: &log,
            pylib: &pylib,
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
    if !job.result_files.is_empty() {
        let files = read_result_files(job, &vars);
        let text = serde_json::to_vec_pretty(&files).unwrap_or_default();
        write_atomic(
            &job.artifactsdir.join(crate::protocol::RESULT_FILES_FILE),
            &text,
        )?;
    }
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

/// Largest results file a `resultsdb: file:` directive may name.
pub const MAX_RESULT_FILE: u64 = 16 * 1024 * 1024;

/// The text of each file `resultsdb: file:` directives name (rendered with
/// the final variables, relative to the work folder or absolute inside the
/// work or artifacts folder), or why it cannot be read, for the
/// orchestrator's report.
fn read_result_files(job: &JobSpec, vars: &Values) -> BTreeMap<String, Result<String, String>> {
    let inside = |p: &Path, dir: &Path| {
        fs::canonicalize(dir)
            .ok()
            .zip(fs::canonicalize(p).ok())
            .is_some_and(|(d, p)| p.starts_with(d))
    };
    job.result_files
        .iter()
        .map(|template| {
            let read = || -> Result<String, String> {
                let name = try_render(template, vars).map_err(|e| e.to_string())?;
                let path = job.workdir.join(&name);
                if !inside(&path, &job.workdir) && !inside(&path, &job.artifactsdir) {
                    return Err(format!(
                        "{name}: not a file in the work or artifacts folder"
                    ));
                }
                let meta = fs::metadata(&path).map_err(|e| format!("{name}: {e}"))?;
                if meta.len() > MAX_RESULT_FILE {
                    return Err(format!("{name}: larger than {MAX_RESULT_FILE} bytes"));
                }
                let bytes = fs::read(&path).map_err(|e| format!("{name}: {e}"))?;
                String::from_utf8(bytes).map_err(|_| format!("{name}: not UTF-8 text"))
            };
            (template.clone(), read())
        })
        .collect()
}

/// The work folder starts as a copy of the task folder (without `.git`):
/// every action runs in it, so a task's files are found by the relative
/// paths libtaskotron tasks use (`bash ./run.sh`, `open("data.json")`),
/// while the task folder itself stays as uploaded. Symbolic links are
/// copied as links; files already in the work folder are kept.
fn copy_task(from: &Path, to: &Path) -> io::Result<()> {
    for entry in fs::read_dir(from)? {
        let entry = entry?;
        let name = entry.file_name();
        if name == ".git" {
            continue;
        }
        let (src, dst) = (entry.path(), to.join(&name));
        if dst.symlink_metadata().is_ok() {
            continue;
        }
        let kind = entry.file_type()?;
        if kind.is_symlink() {
            std::os::unix::fs::symlink(fs::read_link(&src)?, &dst)?;
        } else if kind.is_dir() {
            fs::create_dir(&dst)?;
            copy_task(&src, &dst)?;
        } else if kind.is_file() {
            fs::copy(&src, &dst)?;
        }
    }
    Ok(())
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
#[derive(Clone)]
struct ActionRun {
    outcome: Outcome,
    summary: String,
    exit_code: Option<i32>,
    signal: Option<i32>,
    timed_out: bool,
    output: String,
    /// The value of the action's `export` variable, when it passed.
    exported: Option<serde_json::Value>,
}

/// What an action runs with.
pub(crate) struct ActionContext<'a> {
    /// 1-based.
    pub index: usize,
    pub job: &'a JobSpec,
    /// The process environment (base, then the variables).
    pub env: &'a BTreeMap<String, String>,
    /// Variables so far (inputs, built-ins, exports): what `${var}` renders.
    pub vars: &'a Values,
    /// The action's log file.
    pub log: &'a Path,
    /// The folder holding Ferrotron's `libtaskotron` package.
    pub pylib: &'a Path,
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
    let mut returned: Option<serde_json::Value> = None;
    match kind {
        Some(ActionKind::Shell(commands)) => {
            let flat = commands.iter().flat_map(|c| match c {
                ShellCommand::IgnoreReturn { ignorereturn } => {
                    ignorereturn.iter().map(|c| (c, true)).collect()
                }
                c => vec![(c, false)],
            });
            for (i, (command, ignore)) in flat.enumerate() {
                let what = format!("command {}", i + 1);
                let (argv, env) = match shell_argv(command, ctx) {
                    Ok(a) => a,
                    Err(e) => {
                        ran.outcome = Outcome::Error;
                        ran.summary = format!("{what}: {e}");
                        break;
                    }
                };
                let end = run_command(&argv, workdir, &env, deadline, &mut sink, emit);
                let detail = command_summary(&command_text(command));
                let mut judged = ActionRun { ..ran.clone() };
                let went_on = judge(&mut judged, end, &what, &detail, timeout);
                let ignored = ignore && !went_on && judged.outcome == Outcome::Failed;
                if ignored {
                    ran.exit_code = judged.exit_code;
                    ran.signal = judged.signal;
                    continue;
                }
                ran = judged;
                if !went_on {
                    break;
                }
            }
        }
        Some(ActionKind::Exec(e)) => {
            let args: Result<Vec<OsString>, _> = e
                .args
                .iter()
                .map(|a| try_render(a, ctx.vars).map(OsString::from))
                .collect();
            match args {
                Ok(args) => {
                    let argv = Argv {
                        program: resolve_program(&e.program, &ctx.job.taskdir),
                        args,
                    };
                    let end = run(&argv, &mut sink, emit);
                    judge(&mut ran, end, &e.program, "", timeout);
                }
                Err(e) => {
                    ran.outcome = Outcome::Error;
                    ran.summary = e.to_string();
                }
            }
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
        Some(v) => Some(v),
        None => sink.export.take().map(|stdout| {
            let text = String::from_utf8_lossy(&stdout);
            serde_json::Value::String(text.trim_end_matches('\n').to_string())
        }),
    };
    if let (Outcome::Passed, Some(name), Some(value)) = (ran.outcome, &action.export, value) {
        let size = match &value {
            serde_json::Value::String(s) => s.len(),
            v => v.to_string().len(),
        };
        if sink.export_overflow || size > MAX_EXPORT {
            ran.outcome = Outcome::Error;
            ran.summary = format!("value to export as {name} is larger than {MAX_EXPORT} bytes");
        } else if stringify(&value).contains('\0') {
            ran.outcome = Outcome::Error;
            ran.summary = format!("value to export as {name} contains a NUL byte");
        } else {
            ran.exported = Some(value);
        }
    }
    ran.output = sink.tail.into_string();
    Ok(ran)
}

/// The program and environment of one shell command. A string runs with
/// `/bin/sh -c`: a dotted `${var.key}` in it becomes `${FERROTRON_REF_N}`
/// with the value in that environment variable (plain `${var}` already is
/// one), so no value is ever shell text. An argument list runs without a
/// shell, each entry rendered.
fn shell_argv(
    command: &ShellCommand,
    ctx: &ActionContext<'_>,
) -> Result<(Argv, BTreeMap<String, String>), template::Unresolved> {
    let mut env = ctx.env.clone();
    match command {
        ShellCommand::Line(text) => {
            let mut n = 0;
            let mut failed = None;
            let text = template::render_with(text, |r| {
                if !r.contains('.') {
                    return None;
                }
                match template::lookup(ctx.vars, r) {
                    Ok(v) => {
                        n += 1;
                        let name = format!("FERROTRON_REF_{n}");
                        env.insert(name.clone(), stringify(v));
                        Some(format!("${{{name}}}"))
                    }
                    Err(e) => {
                        failed.get_or_insert(e);
                        None
                    }
                }
            });
            if let Some(e) = failed {
                return Err(e);
            }
            Ok((
                Argv {
                    program: SHELL.into(),
                    args: vec!["-c".into(), text.into()],
                },
                env,
            ))
        }
        ShellCommand::Argv(argv) => {
            let mut rendered = argv
                .iter()
                .map(|a| try_render(a, ctx.vars))
                .collect::<Result<Vec<_>, _>>()?
                .into_iter();
            let program = rendered.next().unwrap_or_default();
            Ok((
                Argv {
                    program: resolve_program(&program, &ctx.job.workdir),
                    args: rendered.map(OsString::from).collect(),
                },
                env,
            ))
        }
        // Flattened by the caller.
        ShellCommand::IgnoreReturn { .. } => Ok((
            Argv {
                program: "true".into(),
                args: Vec::new(),
            },
            env,
        )),
    }
}

/// A command as one line of text, for its summary.
fn command_text(command: &ShellCommand) -> String {
    match command {
        ShellCommand::Line(s) => s.clone(),
        ShellCommand::Argv(v) => v.join(" "),
        ShellCommand::IgnoreReturn { .. } => "ignorereturn".into(),
    }
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
