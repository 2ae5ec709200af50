//! Installing a job's packages before its first action: `apt-get install`
//! with the image's configuration, which sends every download through the
//! job's package proxy (the guest reaches nothing else).
//!
//! The image keeps the package lists of its build, so an installation
//! needs no `apt-get update`; only when the repositories have moved on
//! since (a file of the lists is gone: 404) are the lists refreshed, once,
//! and the installation tried again.

use std::collections::BTreeMap;
use std::ffi::OsString;
use std::fs::File;
use std::path::Path;
use std::process::Command;
use std::time::{Duration, Instant};

use crate::output::{Tail, TAIL_BYTES};
use crate::process::{run_command, Argv, Sink};
use crate::protocol::{Event, Install, DEFAULT_TIMEOUT_SECS};
use crate::runner::{RunError, DEFAULT_PATH};

/// Name of the installation's log in the artifacts' `actions/` folder.
pub const LOG_NAME: &str = "00-install-packages.log";

/// Output lines that say the package lists are older than the repository.
const STALE_LISTS: &[&str] = &[
    "404  Not Found",
    "404 Not Found",
    "Unable to fetch some archives",
];

fn failure(what: String) -> impl FnOnce(std::io::Error) -> RunError {
    move |source| RunError { what, source }
}

fn failed(what: String, why: String) -> RunError {
    RunError {
        what,
        source: std::io::Error::other(why),
    }
}

/// The packages of `names` that dpkg does not list as installed.
fn not_installed(names: &[String]) -> Vec<String> {
    let out = Command::new("dpkg-query")
        .args(["-W", "-f=${binary:Package} ${db:Status-Abbrev}\\n", "--"])
        .args(names)
        .env_clear()
        .env("PATH", DEFAULT_PATH)
        .output();
    let Ok(out) = out else {
        return names.to_vec();
    };
    let text = String::from_utf8_lossy(&out.stdout);
    let installed: Vec<&str> = text
        .lines()
        .filter_map(|l| l.split_once(' '))
        .filter(|(_, status)| status.starts_with("ii"))
        .map(|(name, _)| name)
        .collect();
    names
        .iter()
        .filter(|n| {
            let base = n.split(':').next().unwrap_or(n);
            !installed
                .iter()
                .any(|i| *i == n.as_str() || i.split(':').next() == Some(base))
        })
        .cloned()
        .collect()
}

/// Installs `install.packages`, writing apt's output to `logs/`[`LOG_NAME`]
/// and as `output` events with index 0. A failure is the agent's error
/// (the job did not get the machine it asked for), with apt's last lines.
pub fn run(install: &Install, logs: &Path, emit: &mut dyn FnMut(&Event)) -> Result<(), RunError> {
    let started = Instant::now();
    let names = &install.packages;
    let shown = names.join(", ");
    let missing = not_installed(names);
    if missing.is_empty() {
        emit(&Event::PackagesInstalled {
            packages: names.clone(),
            already: true,
            duration_ms: millis(started.elapsed()),
        });
        return Ok(());
    }
    let what = format!("installing packages ({shown})");
    let log = logs.join(LOG_NAME);
    let file = File::create(&log).map_err(failure(format!("cannot create {}", log.display())))?;
    let mut sink = Sink {
        index: 0,
        log: Some((file, log.clone())),
        tail: Tail::new(TAIL_BYTES),
        export: None,
        export_overflow: false,
    };
    let timeout = install.timeout_secs.unwrap_or(DEFAULT_TIMEOUT_SECS);
    let deadline = started + Duration::from_secs(timeout);
    let env: BTreeMap<String, String> = [
        ("PATH", DEFAULT_PATH),
        ("DEBIAN_FRONTEND", "noninteractive"),
        ("HOME", "/root"),
        ("LANG", "C.UTF-8"),
    ]
    .into_iter()
    .map(|(k, v)| (k.to_string(), v.to_string()))
    .collect();
    let apt = |args: &[&str], names: &[String]| Argv {
        program: "apt-get".into(),
        args: args
            .iter()
            .map(OsString::from)
            .chain(names.iter().map(OsString::from))
            .collect(),
    };
    let install_argv = apt(
        &["install", "-y", "-q", "--no-install-recommends", "--"],
        &missing,
    );
    let attempt = |argv: &Argv, sink: &mut Sink, emit: &mut dyn FnMut(&Event)| {
        run_command(argv, Path::new("/"), &env, deadline, sink, emit)
            .map_err(failure(format!("{what}: cannot run apt-get")))
    };
    let mut end = attempt(&install_argv, &mut sink, emit)?;
    if !end.status.success() && !end.timed_out {
        let tail = sink.tail.text();
        if STALE_LISTS.iter().any(|s| tail.contains(s)) {
            sink.line(
                crate::protocol::Stream::Stderr,
                b"ferrotron: the image's package lists are older than the repository: refreshing them once\n",
                emit,
            );
            let update = attempt(&apt(&["update", "-q"], &[]), &mut sink, emit)?;
            if update.status.success() {
                end = attempt(&install_argv, &mut sink, emit)?;
            }
        }
    }
    if end.timed_out {
        return Err(failed(
            what,
            format!(
                "apt-get did not finish within {timeout} s (see {})",
                log.display()
            ),
        ));
    }
    if !end.status.success() {
        let tail = sink.tail.text();
        let last: Vec<&str> = tail.lines().rev().take(6).collect();
        let last: Vec<&str> = last.into_iter().rev().collect();
        return Err(failed(
            what,
            format!(
                "apt-get install failed ({}): {}",
                end.status,
                last.join(" | ")
            ),
        ));
    }
    let still = not_installed(&missing);
    if !still.is_empty() {
        return Err(failed(
            what,
            format!(
                "apt-get succeeded but {} is not installed",
                still.join(", ")
            ),
        ));
    }
    emit(&Event::PackagesInstalled {
        packages: names.clone(),
        already: false,
        duration_ms: millis(started.elapsed()),
    });
    Ok(())
}

fn millis(d: Duration) -> u64 {
    u64::try_from(d.as_millis()).unwrap_or(u64::MAX)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn dpkg_says_what_is_installed() {
        // The build host is Debian: dpkg itself is installed.
        let names = vec!["dpkg".to_string(), "no-such-package-ferrotron".to_string()];
        assert_eq!(not_installed(&names), ["no-such-package-ferrotron"]);
    }
}
