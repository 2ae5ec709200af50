//! Running one program of an action: its own process group, a clean
//! environment, its output read line by line into a [`Sink`], and the
//! action's deadline enforced (SIGTERM, then SIGKILL to the whole group).
//!
//! Signals: without `unsafe` (forbidden in this workspace) std cannot send
//! a signal to a process group, so the agent asks `/bin/sh`, which it needs
//! anyway, to run its builtin `kill` (see [`signal_group`]).

use std::collections::BTreeMap;
use std::ffi::OsString;
use std::fs::File;
use std::io::{self, Write};
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Command, ExitStatus, Stdio};
use std::sync::mpsc::{self, RecvTimeoutError};
use std::thread;
use std::time::{Duration, Instant};

use crate::output::{spawn_reader, Chunk, Tail};
use crate::protocol::{Event, Stream};
use crate::runner::{DRAIN_GRACE, KILL_GRACE, MAX_EXPORT, SHELL};

const POLL: Duration = Duration::from_millis(20);

/// A program and its argument vector: never a shell string.
pub(crate) struct Argv {
    pub program: OsString,
    pub args: Vec<OsString>,
}

/// Where a command's output goes: the log, the tail, the export buffer and
/// `output` events.
pub(crate) struct Sink {
    pub index: usize,
    pub log: Option<(File, PathBuf)>,
    pub tail: Tail,
    pub export: Option<Vec<u8>>,
    pub export_overflow: bool,
}

impl Sink {
    pub fn line(&mut self, stream: Stream, bytes: &[u8], emit: &mut dyn FnMut(&Event)) {
        if let Some((file, path)) = &mut self.log {
            if let Err(e) = file.write_all(bytes) {
                emit(&Event::Error {
                    message: format!("cannot write {}: {e}; no longer logging", path.display()),
                });
                self.log = None;
            }
        }
        self.tail.push(bytes);
        if let (Stream::Stdout, Some(buf)) = (stream, &mut self.export) {
            if buf.len() + bytes.len() > MAX_EXPORT {
                self.export_overflow = true;
            } else {
                buf.extend_from_slice(bytes);
            }
        }
        let text = bytes.strip_suffix(b"\n").unwrap_or(bytes);
        emit(&Event::Output {
            index: self.index,
            stream,
            line: String::from_utf8_lossy(text).into_owned(),
        });
    }
}

pub(crate) struct CommandEnd {
    pub status: ExitStatus,
    pub timed_out: bool,
}

/// Runs a program (`/bin/sh -c COMMAND` for shell actions) in a new
/// process group until it exits and its output is read. Past `deadline` the group gets SIGTERM, then SIGKILL
/// after [`KILL_GRACE`].
pub(crate) fn run_command(
    argv: &Argv,
    workdir: &Path,
    env: &BTreeMap<String, String>,
    deadline: Instant,
    sink: &mut Sink,
    emit: &mut dyn FnMut(&Event),
) -> io::Result<CommandEnd> {
    let mut child = Command::new(&argv.program)
        .args(&argv.args)
        .current_dir(workdir)
        .env_clear()
        .envs(env)
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .process_group(0)
        .spawn()?;
    // The child leads its group, and its pid cannot be reused before it is
    // reaped, so the group id is safe to signal until then.
    let pgid = child.id();
    let (tx, rx) = mpsc::channel();
    let mut open = 0;
    if let Some(pipe) = child.stdout.take() {
        spawn_reader(Stream::Stdout, pipe, tx.clone());
        open += 1;
    }
    if let Some(pipe) = child.stderr.take() {
        spawn_reader(Stream::Stderr, pipe, tx);
        open += 1;
    }

    let mut status: Option<ExitStatus> = None;
    let mut exited_at: Option<Instant> = None;
    let mut term_sent: Option<Instant> = None;
    let mut kill_sent = false;
    let mut last_event = Instant::now();
    let heartbeat = Duration::from_secs(crate::protocol::HEARTBEAT_SECS);
    loop {
        let now = Instant::now();
        if now >= last_event + heartbeat {
            emit(&Event::Heartbeat);
            last_event = now;
        }
        if status.is_none() && term_sent.is_none() && now >= deadline {
            signal_group(pgid, "TERM");
            term_sent = Some(now);
        }
        if let Some(at) = term_sent {
            // SIGKILL also reaches what ignored SIGTERM or left the pipes.
            if !kill_sent && (now >= at + KILL_GRACE || (status.is_some() && open == 0)) {
                signal_group(pgid, "KILL");
                let _ = child.kill();
                kill_sent = true;
            }
        }
        if let Some(at) = exited_at {
            // Output is complete, or background processes hold the pipes.
            let drained = open == 0 || now >= at + DRAIN_GRACE;
            if drained && (term_sent.is_none() || kill_sent) {
                break;
            }
        }
        if open > 0 {
            match rx.recv_timeout(POLL) {
                Ok(Chunk::Line(stream, bytes)) => {
                    sink.line(stream, &bytes, emit);
                    last_event = Instant::now();
                }
                Ok(Chunk::Eof(_)) => open -= 1,
                Err(RecvTimeoutError::Timeout) => {}
                Err(RecvTimeoutError::Disconnected) => open = 0,
            }
        } else {
            thread::sleep(POLL);
        }
        if status.is_none() {
            match child.try_wait() {
                Ok(Some(s)) => {
                    status = Some(s);
                    exited_at = Some(Instant::now());
                }
                Ok(None) => {}
                Err(e) => {
                    signal_group(pgid, "KILL");
                    let _ = child.kill();
                    let _ = child.wait();
                    return Err(e);
                }
            }
        }
    }
    // Lines that arrived with the last end of file are already handled;
    // anything still queued from abandoned pipes is shown too.
    while let Ok(Chunk::Line(stream, bytes)) = rx.try_recv() {
        sink.line(stream, &bytes, emit);
    }
    let status = match status {
        Some(s) => s,
        None => child.wait()?,
    };
    Ok(CommandEnd {
        status,
        timed_out: term_sent.is_some(),
    })
}

/// Sends a signal (`TERM`, `KILL`) to a process group with the shell's
/// builtin `kill`. dash and bash need `--` before a negative pid, busybox
/// rejects `--` (and procps `kill` without `--` takes `-PGID` for a signal),
/// hence the second form. Failure (no such group) is ignored.
fn signal_group(pgid: u32, signal: &str) {
    let script =
        format!("kill -{signal} -- -{pgid} 2>/dev/null || kill -{signal} -{pgid} 2>/dev/null");
    let _ = Command::new(SHELL)
        .arg("-c")
        .arg(script)
        .env_clear()
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status();
}
