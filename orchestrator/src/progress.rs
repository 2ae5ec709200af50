//! What a person watching a job sees: one line per phase with its time,
//! the task's output as it happens, all on stderr and in the job's
//! `runner.log`.

use std::io::Write;
use std::path::Path;
use std::sync::Mutex;
use std::time::{Duration, Instant};

/// Phases of a job in a VM.
pub const VM_PHASES: &[&str] = &["image", "boot", "ssh", "task", "collect", "destroy"];
/// Phases of a job run on this host.
pub const LOCAL_PHASES: &[&str] = &["prepare", "task", "collect"];

pub struct Progress {
    phases: &'static [&'static str],
    log: Mutex<Option<std::fs::File>>,
    quiet: bool,
    started: Instant,
}

impl Progress {
    pub fn new(quiet: bool, phases: &'static [&'static str]) -> Progress {
        Progress {
            phases,
            log: Mutex::new(None),
            quiet,
            started: Instant::now(),
        }
    }

    /// From now on, lines also go to `path`.
    pub fn log_to(&self, path: &Path) {
        if let Ok(f) = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(path)
        {
            if let Ok(mut g) = self.log.lock() {
                *g = Some(f);
            }
        }
    }

    pub fn elapsed(&self) -> Duration {
        self.started.elapsed()
    }

    /// A line of the orchestrator's own.
    pub fn say(&self, msg: &str) {
        self.emit(&format!("ferrotron: {msg}"));
    }

    /// A finished phase: `[n/6] name  detail  time`.
    pub fn phase(&self, name: &str, detail: &str, took: Duration) {
        crate::metrics::global().phase(name, took);
        let n = self
            .phases
            .iter()
            .position(|p| *p == name)
            .map(|i| i + 1)
            .unwrap_or(0);
        // Padded so that times line up; never cut (paths, names matter).
        self.emit(&format!(
            "ferrotron: [{n}/{}] {name:<8} {detail:<60} {:>8}",
            self.phases.len(),
            crate::util::secs(took)
        ));
    }

    /// A line from the task.
    pub fn task_line(&self, line: &str) {
        self.emit(&format!("  | {line}"));
    }

    fn emit(&self, line: &str) {
        if !self.quiet {
            let mut e = std::io::stderr().lock();
            let _ = writeln!(e, "{line}");
        }
        if let Ok(mut g) = self.log.lock() {
            if let Some(f) = g.as_mut() {
                let _ = writeln!(f, "{} {line}", crate::util::now_rfc3339());
            }
        }
    }
}
