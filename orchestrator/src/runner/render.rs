//! Turning the agent's JSON-lines events into what the person watching
//! reads, and remembering what the flow needs afterwards.

use ferrotron_agent::protocol::{Event, Outcome, Stream};

use crate::progress::Progress;

/// What the events said, for the end of the job.
#[derive(Debug, Default)]
pub struct Seen {
    pub finished: Option<Outcome>,
    pub current_action: Option<String>,
    pub actions: usize,
    pub errors: Vec<String>,
}

impl Seen {
    pub fn handle(&mut self, line: &str, ui: &Progress) {
        let Ok(event) = serde_json::from_str::<Event>(line) else {
            // Not an event: show it as it is rather than drop it.
            ui.task_line(line);
            return;
        };
        match event {
            Event::Start {
                actions,
                agent_version,
                ..
            } => {
                self.actions = actions;
                tracing::debug!("agent {agent_version} started, {actions} actions");
            }
            Event::ActionStart { index, name } => {
                ui.say(&format!("action {index}/{}: {name}", self.actions));
                self.current_action = Some(name);
            }
            Event::Output { stream, line, .. } => match stream {
                Stream::Stdout => ui.task_line(&line),
                Stream::Stderr => ui.task_line(&format!("[stderr] {line}")),
            },
            Event::ActionEnd {
                name,
                outcome,
                exit_code,
                signal,
                timed_out,
                duration_ms,
                ..
            } => {
                let how = if timed_out {
                    "timed out".to_string()
                } else if let Some(s) = signal {
                    format!("killed by signal {s}")
                } else if let Some(code) = exit_code {
                    format!("exit {code}")
                } else {
                    "no process".to_string()
                };
                ui.say(&format!(
                    "action {name}: {outcome} ({how}, {:.2} s)",
                    duration_ms as f64 / 1000.0
                ));
                self.current_action = None;
            }
            Event::Finish {
                outcome, skipped, ..
            } => {
                if skipped > 0 {
                    ui.say(&format!("{skipped} later action(s) not run"));
                }
                self.finished = Some(outcome);
            }
            Event::PackagesInstalled {
                packages,
                already,
                duration_ms,
            } => {
                ui.say(&format!(
                    "packages: {} {} ({:.2} s)",
                    packages.join(", "),
                    if already {
                        "were installed already"
                    } else {
                        "installed"
                    },
                    duration_ms as f64 / 1000.0
                ));
            }
            Event::Heartbeat => {}
            Event::Error { message } => {
                ui.say(&format!("agent error: {message}"));
                self.errors.push(message);
            }
        }
    }
}
