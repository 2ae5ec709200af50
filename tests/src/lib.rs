//! Helpers shared by the end-to-end suites: run the real `ferrotron`
//! binary against the local libvirtd, and check that nothing is left behind.
//!
//! Each test gets its own data folder under `target/e2e/<test>`; it is
//! removed when the test passes and kept (with the console log printed)
//! when it fails, so CI output shows why a guest did not behave.

pub mod amqp;
pub mod debmirror;
pub mod git;
pub mod grokclient;
pub mod pg;
pub mod pyclients;
pub mod service;
pub mod standins;
pub mod webdriver;

use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::mpsc;
use std::time::{Duration, Instant};

/// The workspace root.
pub fn workspace() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .unwrap_or(Path::new("."))
        .to_path_buf()
}

/// The `ferrotron` binary under test (`FERROTRON_BIN`, else the release build).
pub fn ferrotron_bin() -> PathBuf {
    std::env::var_os("FERROTRON_BIN")
        .map(PathBuf::from)
        .unwrap_or_else(|| workspace().join("target/release/ferrotron"))
}

/// The shared images (`FERROTRON_IMAGES_DIR`, else the default store), built
/// once by `make test` (or `make demo`).
pub fn images_dir() -> PathBuf {
    std::env::var_os("FERROTRON_IMAGES_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from("/var/lib/ferrotron/images"))
}

/// What a finished `ferrotron` run left for a user to read.
#[derive(Debug)]
pub struct Output {
    pub code: Option<i32>,
    pub stdout: String,
    pub stderr: String,
}

impl Output {
    /// Asserts the exit status and that stderr says `needle`.
    pub fn assert_exit(&self, code: i32, needle: &str) {
        assert_eq!(self.code, Some(code), "stderr:\n{}", self.stderr);
        assert!(
            self.stderr.contains(needle),
            "expected {needle:?} in:\n{}",
            self.stderr
        );
    }

    /// The job id printed in the `job <id>:` line, if a job started.
    pub fn job_id(&self) -> Option<String> {
        job_id_in(&self.stderr)
    }
}

pub fn job_id_in(text: &str) -> Option<String> {
    text.lines().find_map(|l| {
        let rest = l.strip_prefix("ferrotron: job ")?;
        Some(rest.split(':').next()?.to_string())
    })
}

/// One test's private data folder and environment.
pub struct Harness {
    pub name: String,
    pub data_dir: PathBuf,
    last_job: std::cell::RefCell<Option<String>>,
    /// Set for every command this harness makes ([`Harness::set_env`]).
    env: std::cell::RefCell<Vec<(String, String)>>,
}

impl Harness {
    pub fn new(name: &str) -> Harness {
        let data_dir = workspace().join("target/e2e").join(name);
        let _ = std::fs::remove_dir_all(&data_dir);
        std::fs::create_dir_all(&data_dir).expect("create test data dir");
        Harness {
            name: name.to_string(),
            data_dir,
            last_job: std::cell::RefCell::new(None),
            env: std::cell::RefCell::new(Vec::new()),
        }
    }

    pub fn command(&self, args: &[&str]) -> Command {
        let mut c = Command::new(ferrotron_bin());
        // The static agent `make` builds: uploaded when the image's differs.
        let agent = workspace().join("target/x86_64-unknown-linux-gnu/agent/ferrotron-agent");
        if std::env::var_os("FERROTRON_AGENT").is_none() && agent.is_file() {
            c.env("FERROTRON_AGENT", agent);
        }
        c.args(args)
            .env("FERROTRON_DATA_DIR", &self.data_dir)
            // Images are shared: built once by `make test` (or `make demo`).
            .env("FERROTRON_IMAGES_DIR", images_dir())
            // Warm-start templates are per image and host: share them
            // between tests, built once (a file lock orders the builders).
            .env(
                "FERROTRON_TEMPLATES_DIR",
                std::env::var("FERROTRON_TEMPLATES_DIR").unwrap_or_else(|_| {
                    workspace()
                        .join("target/e2e-templates")
                        .display()
                        .to_string()
                }),
            )
            // The accel answer is per host: share it with `make demo`.
            .env(
                "FERROTRON_ACCEL",
                std::env::var("FERROTRON_ACCEL").unwrap_or_else(|_| "tcg".into()),
            )
            .current_dir(workspace())
            .stdin(Stdio::null());
        for (k, v) in self.env.borrow().iter() {
            c.env(k, v);
        }
        c
    }

    /// From now on, every command of this harness gets `key=value` (say
    /// `FERROTRON_DATABASE_URL` of a PostgreSQL database of its own).
    pub fn set_env(&self, key: &str, value: &str) {
        let mut env = self.env.borrow_mut();
        env.retain(|(k, _)| k != key);
        env.push((key.to_string(), value.to_string()));
    }

    /// Runs `ferrotron ARGS` to the end.
    pub fn run(&self, args: &[&str]) -> Output {
        self.run_command(self.command(args))
    }

    /// Runs a command made by [`Harness::command`] (with more environment,
    /// say) to the end.
    pub fn run_command(&self, mut c: Command) -> Output {
        let args: Vec<String> = c
            .get_args()
            .map(|a| a.to_string_lossy().into_owned())
            .collect();
        let out = c.output().expect("run ferrotron");
        let o = Output {
            code: out.status.code(),
            stdout: String::from_utf8_lossy(&out.stdout).into_owned(),
            stderr: String::from_utf8_lossy(&out.stderr).into_owned(),
        };
        *self.last_job.borrow_mut() = o.job_id();
        eprintln!(
            "--- ferrotron {} -> {:?}\n{}",
            args.join(" "),
            o.code,
            o.stderr
        );
        o
    }

    /// Starts `ferrotron ARGS` in the background, stderr read line by line.
    pub fn spawn(&self, args: &[&str]) -> Running {
        let mut c = self.command(args);
        c.stdout(Stdio::piped()).stderr(Stdio::piped());
        Running::from_command(c)
    }

    pub fn job_dir(&self, job_id: &str) -> PathBuf {
        self.data_dir.join("jobs").join(job_id)
    }

    pub fn remember_job(&self, id: &str) {
        *self.last_job.borrow_mut() = Some(id.to_string());
    }

    /// Asserts the job's domain, overlay folder and QEMU process are gone.
    pub fn assert_nothing_left(&self, job_id: &str) {
        let name = format!("ferrotron-{job_id}");
        let vms = self.data_dir.join("vms");
        let folders_left = || {
            std::fs::read_dir(&vms)
                .map(|r| r.flatten().next().is_some())
                .unwrap_or(false)
        };
        // libvirt reaps QEMU asynchronously after destroy, and a cancelled
        // job's runner may still be tearing its VM down when the job's
        // state already says so: wait for that (generously), then check.
        let deadline = Instant::now() + Duration::from_secs(60);
        while Instant::now() < deadline
            && (domain_exists(&name) || !qemu_processes_for(job_id).is_empty() || folders_left())
        {
            std::thread::sleep(Duration::from_millis(100));
        }
        assert!(!domain_exists(&name), "domain {name} still defined");
        assert!(
            qemu_processes_for(job_id).is_empty(),
            "qemu still running for {name}"
        );
        let left: Vec<_> = std::fs::read_dir(&vms)
            .map(|r| r.flatten().map(|e| e.path()).collect())
            .unwrap_or_default();
        assert!(left.is_empty(), "VM folders (overlays) left: {left:?}");
    }
}

impl Drop for Harness {
    fn drop(&mut self) {
        if std::thread::panicking() {
            eprintln!(
                "=== {} failed; data kept in {}",
                self.name,
                self.data_dir.display()
            );
            if let Some(id) = self.last_job.borrow().as_ref() {
                let console = self.job_dir(id).join("console.log");
                match std::fs::read_to_string(&console) {
                    Ok(text) => {
                        let lines: Vec<&str> = text.lines().collect();
                        eprintln!("=== last lines of {}:", console.display());
                        for l in &lines[lines.len().saturating_sub(40)..] {
                            eprintln!("    {l}");
                        }
                    }
                    Err(e) => eprintln!("=== no console log at {}: {e}", console.display()),
                }
            }
        } else {
            let _ = std::fs::remove_dir_all(&self.data_dir);
        }
    }
}

/// A `ferrotron` process running in the background.
pub struct Running {
    pub child: Child,
    lines: mpsc::Receiver<String>,
    pub seen: Vec<String>,
}

impl Running {
    /// Starts `c` (stdout and stderr piped), stderr read line by line.
    pub fn from_command(mut c: Command) -> Running {
        let mut child = c.spawn().expect("spawn ferrotron");
        let (tx, rx) = mpsc::channel();
        let stderr = child.stderr.take().expect("stderr");
        std::thread::spawn(move || {
            for line in BufReader::new(stderr).lines().map_while(Result::ok) {
                if tx.send(line).is_err() {
                    break;
                }
            }
        });
        Running {
            child,
            lines: rx,
            seen: Vec::new(),
        }
    }

    /// Waits for a stderr line containing `needle`; panics with what was
    /// seen if it does not come within `timeout`.
    pub fn wait_for(&mut self, needle: &str, timeout: Duration) -> String {
        let deadline = Instant::now() + timeout;
        loop {
            let left = deadline.saturating_duration_since(Instant::now());
            match self.lines.recv_timeout(left) {
                Ok(line) => {
                    eprintln!("    {line}");
                    self.seen.push(line.clone());
                    if line.contains(needle) {
                        return line;
                    }
                }
                Err(_) => panic!(
                    "no line containing {needle:?} within {timeout:?}; saw:\n{}",
                    self.seen.join("\n")
                ),
            }
        }
    }

    pub fn signal(&self, sig: nix::sys::signal::Signal) {
        let pid = nix::unistd::Pid::from_raw(self.child.id() as i32);
        nix::sys::signal::kill(pid, sig).expect("send signal");
    }

    /// Waits for exit (bounded) and returns the status code and the rest of
    /// stderr.
    pub fn finish(mut self, timeout: Duration) -> (Option<i32>, String) {
        let deadline = Instant::now() + timeout;
        loop {
            if let Some(status) = self.child.try_wait().expect("try_wait") {
                while let Ok(l) = self.lines.recv_timeout(Duration::from_millis(500)) {
                    eprintln!("    {l}");
                    self.seen.push(l);
                }
                return (status.code(), self.seen.join("\n"));
            }
            if Instant::now() >= deadline {
                let _ = self.child.kill();
                let _ = self.child.wait();
                panic!(
                    "ferrotron did not exit within {timeout:?}; saw:\n{}",
                    self.seen.join("\n")
                );
            }
            std::thread::sleep(Duration::from_millis(50));
        }
    }
}

impl Drop for Running {
    fn drop(&mut self) {
        // A test that panicked mid-way still must not leave its process.
        if let Ok(None) = self.child.try_wait() {
            let _ = self.child.kill();
            let _ = self.child.wait();
        }
    }
}

/// Pauses a running domain (the guest freezes as if hung).
pub fn suspend_domain(name: &str) {
    let conn = virt::connect::Connect::open(Some("qemu:///system")).expect("connect to libvirt");
    let d = conn.lookup_domain_by_name(name).expect("domain exists");
    d.suspend().expect("suspend domain");
}

/// Whether libvirt knows a domain of that name.
pub fn domain_exists(name: &str) -> bool {
    let Ok(conn) = virt::connect::Connect::open(Some("qemu:///system")) else {
        panic!("cannot connect to libvirt");
    };
    conn.lookup_domain_by_name(name).is_ok()
}

/// PIDs of processes whose command line mentions the job id (QEMU is
/// started with `-name guest=ferrotron-<id>`).
pub fn qemu_processes_for(job_id: &str) -> Vec<u32> {
    let mut pids = Vec::new();
    let Ok(entries) = std::fs::read_dir("/proc") else {
        return pids;
    };
    for e in entries.flatten() {
        let Ok(pid) = e.file_name().to_string_lossy().parse::<u32>() else {
            continue;
        };
        let Ok(cmd) = std::fs::read(e.path().join("cmdline")) else {
            continue;
        };
        let cmd = String::from_utf8_lossy(&cmd);
        if cmd.starts_with("/usr/bin/qemu-system") && cmd.contains(job_id) {
            pids.push(pid);
        }
    }
    pids
}
