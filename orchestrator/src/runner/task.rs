//! The task phase of a VM job: the agent runs in the guest while its events
//! are rendered live; the phase ends when the agent finishes, or is cut
//! short when the VM stops, the guest goes silent, the deadline passes or
//! the job is cancelled. What went wrong is said in one message.

use std::cell::Cell;
use std::path::Path;
use std::time::{Duration, Instant};

use super::render::Seen;
use crate::cancel::Cancel;
use crate::progress::Progress;
use crate::ssh::session::{Exit, Poll};
use crate::ssh::GuestSsh;
use crate::vm::{console, VmGuard};

pub struct TaskRun<'a> {
    pub ssh: &'a GuestSsh,
    pub guard: &'a VmGuard,
    /// Shell command that unpacks `upload` and execs the agent.
    pub command: &'a str,
    pub upload: &'a [u8],
    /// Whole-task deadline.
    pub budget: Duration,
    pub stall_timeout: Duration,
    pub console_log: &'a Path,
    pub cancel: &'a Cancel,
    pub ui: &'a Progress,
}

/// How the task phase ended.
pub struct Ran {
    pub seen: Seen,
    /// Why the task did not finish; `None` when the agent finished.
    pub error: Option<String>,
    pub vm_alive: bool,
}

pub fn run(t: TaskRun<'_>) -> Ran {
    let hv = t.guard.hypervisor();
    let name = t.guard.name();
    let deadline = Instant::now() + t.budget;
    let mut seen = Seen::default();
    let last_heard = Cell::new(Instant::now());
    let streamed = t.ssh.stream(
        t.command,
        t.upload,
        |line| {
            last_heard.set(Instant::now());
            seen.handle(line, t.ui)
        },
        || {
            if t.cancel.is_cancelled() {
                Poll::Abort(t.cancel.reason())
            } else if !hv.is_running(name) {
                Poll::Abort("the VM stopped".into())
            } else if last_heard.get().elapsed() >= t.stall_timeout {
                Poll::Abort(format!(
                    "nothing from the guest agent for {} s (not even its heartbeat): the guest hangs",
                    t.stall_timeout.as_secs()
                ))
            } else if Instant::now() >= deadline {
                Poll::Abort(format!("the task did not finish within {} s", t.budget.as_secs()))
            } else {
                Poll::Continue
            }
        },
    );
    // A guest that crashed drops the connection a moment before libvirt
    // has processed its reboot (`panic=-1`): give it that moment.
    let vm_alive = match &streamed {
        Err(_) => !hv.wait_gone(name, Duration::from_secs(2)),
        Ok(_) => hv.is_running(name),
    };
    let during = seen
        .current_action
        .as_ref()
        .map(|a| format!(" during action `{a}`"))
        .unwrap_or_default();
    let error = match (&streamed, seen.finished) {
        (Ok(_), Some(_)) => None,
        _ if !vm_alive => {
            // Let virtlogd flush the guest's last words.
            std::thread::sleep(Duration::from_millis(100));
            Some(format!(
                "the VM stopped{during}; {}",
                console::excerpt(t.console_log, 15)
            ))
        }
        (Ok((exit, stderr)), None) => Some(agent_died(exit, stderr, &seen)),
        (Err(e), _) => Some(format!(
            "{}{during}; {}",
            crate::util::full(e),
            console::excerpt(t.console_log, 10)
        )),
    };
    Ran {
        seen,
        error,
        vm_alive,
    }
}

fn agent_died(exit: &Exit, stderr: &str, seen: &Seen) -> String {
    let during = seen
        .current_action
        .as_ref()
        .map(|a| format!(" during action `{a}`"))
        .unwrap_or_default();
    let stderr = stderr.trim();
    let detail = if stderr.is_empty() {
        seen.errors.last().cloned().unwrap_or_default()
    } else {
        stderr.to_string()
    };
    format!(
        "the guest agent ended without finishing ({exit}){during}{}",
        if detail.is_empty() {
            String::new()
        } else {
            format!(": {detail}")
        }
    )
}
