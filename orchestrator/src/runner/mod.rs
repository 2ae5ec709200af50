//! One job in one disposable VM, end to end: image, boot, ssh, task,
//! collect, destroy. Blocking code (libvirt and libssh2 are blocking); the
//! caller runs it on a blocking thread and cancels through [`Cancel`].

pub mod fetch;
pub mod local;
pub mod published;
pub mod render;
pub mod report;
pub mod reserve;
pub mod task;
pub mod upload;

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, Instant};

use ferrotron_agent::protocol::{self as proto, JobSpec};
use serde_json::Value;

use crate::cancel::Cancel;
use crate::formula::{Directive, Formula, FormulaError};
use crate::images::{self, ResolvedImage};
use crate::job::{JobState, Reached};
use crate::progress::Progress;
use crate::results::CheckResult;
use crate::settings::{Settings, StartMode};
use crate::ssh::{GuestSsh, KeyPair};
use crate::util::shell_quote;
use crate::vm::{reaper, Hypervisor, VmGuard};

use crate::vm::accel;
use crate::vm::boot::{cmdline, start, BootError, BootRequest};
use crate::vm::warm;

/// Where jobs live inside the guest.
const GUEST_JOBS: &str = "/var/lib/ferrotron/jobs";
/// The agent baked into every image.
const GUEST_AGENT: &str = "/usr/libexec/ferrotron/ferrotron-agent";

/// What the user asked for.
#[derive(Debug, Clone)]
pub struct RunRequest {
    /// The job's one id: its domain is `ferrotron-<id>`, its folder
    /// `<data>/jobs/<id>`, and every line and answer names it. The
    /// scheduler passes the queue's UUID; a local run makes a new one.
    pub job_id: String,
    /// The task's git source, resolved from the cache before boot.
    pub git: Option<GitSource>,
    pub formula: Formula,
    pub item: String,
    pub item_type: String,
    pub arch: String,
    /// Overrides the formula's `environment.image`.
    pub image: Option<String>,
    /// Keep a failed job's VM this long for debugging.
    pub keep_on_failure: Option<Duration>,
    /// When the task fails, keep its VM for the person whose public key
    /// this is (authorized for root) and hand it over in
    /// [`RunOutcome::held`] instead of destroying it.
    pub hold_on_failure: Option<String>,
    /// Whole-task deadline; default: the sum of the action time-outs + 60 s.
    pub timeout: Option<Duration>,
    /// Told each phase the job reaches as it reaches it (`scheduled` once
    /// checked, `booting`, `running` when the task starts, `reporting`
    /// when results are collected). The runner keeps no state: its caller
    /// owns the job's lifecycle (the scheduler stores each transition when
    /// it happens; a local run keeps a [`crate::job::History`]).
    pub events: Option<tokio::sync::mpsc::UnboundedSender<Reached>>,
}

impl RunRequest {
    /// Tells the caller the job reached `state` (nobody may listen).
    pub(crate) fn reached(&self, state: JobState) {
        if let Some(tx) = &self.events {
            let _ = tx.send(Reached {
                state,
                at: crate::util::now_rfc3339(),
            });
        }
    }
}

/// A job that ran to the end (its task may still have failed).
#[derive(Debug)]
pub struct RunOutcome {
    pub job_id: String,
    pub job_dir: PathBuf,
    /// Every result whole, as recorded ([`crate::store::NewResult::of_job`]):
    /// each `artifact` is a path inside the job's artifacts folder.
    pub results: Vec<CheckResult>,
    pub tap: String,
    /// What an `exitcode` directive decided, if the task has one.
    pub verdict: Option<bool>,
    /// A failed job's VM, kept as asked ([`RunRequest::hold_on_failure`]).
    pub held: Option<crate::vm::held::HeldVm>,
}

impl RunOutcome {
    /// The `exitcode` directive's verdict, else every result PASSED or INFO.
    pub fn passed(&self) -> bool {
        report::passed(&self.results, self.verdict)
    }
}

#[derive(Debug, thiserror::Error)]
pub enum RunError {
    #[error(transparent)]
    Formula(#[from] FormulaError),
    #[error("{0}")]
    BadInput(String),
    /// Something the job needed failed in `phase`; the cause is kept whole
    /// (printed with its chain at the edge: `util::full`).
    #[error("{phase}")]
    Infra {
        phase: &'static str,
        #[source]
        source: Box<dyn std::error::Error + Send + Sync + 'static>,
    },
    #[error("interrupted by {0}; the job was stopped and its VM or processes ended")]
    Cancelled(String),
}

impl RunError {
    /// The documented exit status: 2 bad input, 3 infrastructure (and
    /// interruption).
    pub fn exit_status(&self) -> crate::exit::ExitStatus {
        match self.cause() {
            crate::job::Cause::BadInput => crate::exit::ExitStatus::BadInput,
            crate::job::Cause::Infrastructure => crate::exit::ExitStatus::Infrastructure,
        }
    }

    /// An infrastructure error in `phase`, caused by `e` (an error or a
    /// sentence).
    pub fn infra(
        phase: &'static str,
        e: impl Into<Box<dyn std::error::Error + Send + Sync + 'static>>,
    ) -> RunError {
        RunError::Infra {
            phase,
            source: e.into(),
        }
    }

    /// Bad input or infrastructure, for the job's `error` state.
    pub fn cause(&self) -> crate::job::Cause {
        match self {
            RunError::Formula(_) | RunError::BadInput(_) => crate::job::Cause::BadInput,
            RunError::Infra { .. } | RunError::Cancelled(_) => crate::job::Cause::Infrastructure,
        }
    }
}

/// A repository in the git cache and the ref a job checks out.
#[derive(Debug, Clone)]
pub struct GitSource {
    pub repo: String,
    pub reference: String,
    /// The commit `reference` was already resolved to (the scheduler
    /// resolves and records it before the job starts): used as it is, with
    /// no second sync, so the guest gets exactly the recorded commit.
    pub commit: Option<String>,
}

/// Checks everything that can be checked without a VM: the image exists,
/// the item type matches, the agent to upload is readable. Bad input never
/// starts a VM.
pub fn prepare(
    settings: &Settings,
    req: &RunRequest,
    ui: &Progress,
) -> Result<(ResolvedImage, JobSpec, Vec<fetch::Staged>), RunError> {
    let image_spec = req
        .image
        .clone()
        .or_else(|| req.formula.environment.image.clone())
        .unwrap_or_else(|| images::DEFAULT_IMAGE.to_string());
    let image = images::resolve(&settings.images_dir, &image_spec)
        .map_err(|e| RunError::BadInput(e.to_string()))?;
    let install = crate::packages::plan(&req.formula.environment, &image)
        .map_err(|e| RunError::BadInput(e.to_string()))?;
    let mut vars = req
        .formula
        .input_vars(&req.item, &req.item_type, &req.arch)?;
    if let Some(git) = &req.git {
        let cache = crate::cache::Cache::new(&settings.data_dir);
        let checkout = match &git.commit {
            None => crate::cache::checkout::resolve(&cache, &git.repo, &git.reference),
            Some(commit) => {
                crate::cache::checkout::pinned(&cache, &git.repo, &git.reference, commit)
            }
        }
        .map_err(|e| RunError::BadInput(crate::util::full(&e)))?;
        if let Some(why) = &checkout.stale {
            tracing::warn!("using the cached copy of {}: {why}", checkout.repo);
        }
        let extra = crate::cache::checkout::job_vars(
            &checkout,
            settings.cache_access,
            settings.cache_url.as_deref(),
        )
        .map_err(RunError::BadInput)?;
        vars.extend(extra);
    }
    if let Some(agent) = &settings.agent {
        if !agent.is_file() {
            return Err(RunError::BadInput(format!(
                "guest agent {} does not exist",
                agent.display()
            )));
        }
    }
    let id = &req.job_id;
    let root = PathBuf::from(GUEST_JOBS).join(id);
    let vars = job_vars(&vars, req, id, &root);
    let staged = fetch::fetch_all(settings, &req.formula, &vars, &root, ui)?;
    let mut spec = job_spec(&req.formula, vars, req, id, &root, &staged)?;
    spec.install = install;
    spec.validate()
        .map_err(|e| RunError::BadInput(e.to_string()))?;
    Ok((image, spec, staged))
}

/// The error for packages a formula needs that `machine` lacks.
pub(crate) fn packages_problem(
    missing: &[(&'static str, Vec<String>)],
    machine: &str,
) -> Option<String> {
    let (key, names) = missing.first()?;
    Some(format!(
        "{key}: {machine} lacks {}: install them, or run the task in a VM \
         (`--libvirt`) of an image that has or can install them",
        names.join(", ")
    ))
}

/// The variables of a job: its inputs and the built-ins, with the job's
/// folders under `root` (in the guest, or on this host for a local run).
pub(crate) fn job_vars(
    inputs: &std::collections::BTreeMap<String, String>,
    req: &RunRequest,
    id: &str,
    root: &Path,
) -> std::collections::BTreeMap<String, String> {
    let mut vars = inputs.clone();
    let builtins = [
        ("item", req.item.clone()),
        ("type", req.item_type.clone()),
        ("arch", req.arch.clone()),
        ("jobid", id.to_string()),
        ("workdir", root.join("work").display().to_string()),
        ("artifactsdir", root.join("artifacts").display().to_string()),
        ("taskdir", root.join("task").display().to_string()),
    ];
    for (k, v) in builtins {
        vars.entry(k.to_string()).or_insert(v);
    }
    vars
}

/// The job description the agent runs, validated: `vars` from
/// [`job_vars`], `staged` what [`fetch::fetch_all`] fetched for the
/// download actions.
pub(crate) fn job_spec(
    f: &Formula,
    vars: std::collections::BTreeMap<String, String>,
    req: &RunRequest,
    id: &str,
    root: &Path,
    staged: &[fetch::Staged],
) -> Result<JobSpec, RunError> {
    let spec = JobSpec {
        version: proto::PROTOCOL_VERSION,
        job_id: id.to_string(),
        name: f.name.clone(),
        item: req.item.clone(),
        item_type: req.item_type.clone(),
        arch: req.arch.clone(),
        taskdir: root.join("task"),
        workdir: root.join("work"),
        artifactsdir: root.join("artifacts"),
        vars,
        env: [("LANG".to_string(), "C.UTF-8".to_string())].into(),
        actions: f
            .actions
            .iter()
            .enumerate()
            .filter(|(_, a)| a.directive.runs_in_agent())
            .map(|(i, a)| agent_action(a, root, staged.iter().find(|s| s.action == i)))
            .collect(),
        result_files: f
            .actions
            .iter()
            .filter_map(|a| match &a.directive {
                Directive::Resultsdb {
                    results: crate::formula::ResultsText::File(file),
                } => Some(file.clone()),
                _ => None,
            })
            .collect(),
        install: None,
    };
    spec.validate()
        .map_err(|e| RunError::BadInput(e.to_string()))?;
    Ok(spec)
}

/// The agent's form of an action the agent runs. `bash` becomes `exec`
/// of `bash ${taskdir}/SCRIPT ARGS...`; a download action, the built-in
/// `place_downloads` of what the host fetched for it (`staged`).
fn agent_action(
    a: &crate::formula::Action,
    root: &Path,
    staged: Option<&fetch::Staged>,
) -> proto::Action {
    let mut action = proto::Action {
        name: a.name.clone(),
        shell: Vec::new(),
        python: None,
        exec: None,
        artifact: None,
        timeout_secs: a.timeout_secs,
        export: a.export.clone(),
    };
    match &a.directive {
        Directive::Shell(shell) => action.shell = shell.clone(),
        Directive::Python {
            file,
            callable,
            kwargs,
        } => {
            action.python = Some(proto::PythonCall {
                file: file.clone(),
                callable: callable.clone(),
                kwargs: kwargs.clone(),
                builtin: false,
            })
        }
        Directive::Bash { script, args } => {
            let script = if script.starts_with("${") {
                script.clone()
            } else {
                format!("${{taskdir}}/{script}")
            };
            action.exec = Some(proto::ExecCall {
                program: "bash".into(),
                args: std::iter::once(script)
                    .chain(args.iter().cloned())
                    .collect(),
            })
        }
        Directive::Exec { program, args } => {
            action.exec = Some(proto::ExecCall {
                program: program.clone(),
                args: args.clone(),
            })
        }
        Directive::Artifact { paths } => {
            action.artifact = Some(proto::ArtifactCollect {
                paths: paths.clone(),
            })
        }
        Directive::Builtin { function, kwargs } => {
            action.python = Some(proto::PythonCall {
                file: crate::formula::BUILTIN_MODULE.into(),
                callable: function.to_string(),
                kwargs: kwargs.clone(),
                builtin: true,
            })
        }
        Directive::Download(_) => {
            let (names, target, export) = match staged {
                Some(s) => (
                    s.files
                        .iter()
                        .map(|(n, _)| Value::from(n.as_str()))
                        .collect(),
                    s.target_dir.display().to_string(),
                    s.export.clone(),
                ),
                None => (
                    Vec::new(),
                    root.join("work").display().to_string(),
                    Default::default(),
                ),
            };
            let staged = staged.map_or_else(|| root.join("downloads"), |s| root.join(&s.staged));
            let kwargs = [
                ("staged", Value::from(staged.display().to_string())),
                ("target_dir", Value::from(target)),
                ("names", Value::Array(names)),
                ("export", Value::Object(export)),
            ];
            action.python = Some(proto::PythonCall {
                file: crate::formula::BUILTIN_MODULE.into(),
                callable: "place_downloads".into(),
                kwargs: kwargs
                    .into_iter()
                    .map(|(k, v)| (k.to_string(), v))
                    .collect(),
                builtin: true,
            })
        }
        // The orchestrator's, after the agent: see `report`.
        Directive::Resultsdb { .. } | Directive::Exitcode { .. } => {}
    }
    action
}

/// Runs the job. Returns Ok for a job whose task ran (passed or failed).
pub fn run(
    settings: &Settings,
    req: &RunRequest,
    cancel: &Cancel,
    ui: &Progress,
) -> Result<RunOutcome, RunError> {
    // image
    let t = Instant::now();
    let (image, spec, staged) = prepare(settings, req, ui)?;
    let job_id = spec.job_id.clone();
    let job_dir =
        fresh_job_dir(&settings.jobs_dir(), &job_id).map_err(|e| RunError::infra("image", e))?;
    std::fs::create_dir_all(job_dir.join("artifacts")).map_err(|e| RunError::infra("image", e))?;
    ui.log_to(&job_dir.join("runner.log"));
    req.reached(JobState::Scheduled);
    let upload_agent =
        agent_to_upload(settings, &image).map_err(|e| RunError::infra("image", e))?;
    if upload_agent.is_none() && image.agent_sha256.is_empty() {
        return Err(RunError::BadInput(format!(
            "image {} carries no guest agent (an imported cloud image): give one with --agent or FERROTRON_AGENT",
            image.label()
        )));
    }
    ui.say(&format!(
        "job {job_id}: {} for {} {} on {}",
        req.formula.name,
        req.item_type,
        req.item,
        image.label()
    ));
    if let (Some(repo), Some(commit)) = (spec.vars.get("git_repo"), spec.vars.get("git_commit")) {
        ui.say(&format!(
            "git: {repo} {} is commit {commit}",
            spec.vars.get("git_ref").map_or("", String::as_str)
        ));
    }
    ui.phase(
        "image",
        &format!(
            "{}{}",
            image.label(),
            if upload_agent.is_some() {
                " (agent will be updated)"
            } else {
                ""
            }
        ),
        t.elapsed(),
    );

    // boot, ssh
    req.reached(JobState::Booting);
    let vm = boot_vm(settings, &image, &job_id, &job_dir, false, cancel, ui)?;
    let (guard, ssh, keys, port, _control) = (vm.guard, vm.ssh, vm.keys, vm.port, vm.control);
    let console_log = job_dir.join("console.log");
    // The git cache, for a job that clones its task from it.
    let cache_access = match (&req.git, settings.cache_access) {
        (Some(_), crate::cache::checkout::CacheAccess::Tunnel) => Some(open_cache_tunnel(
            settings,
            &spec,
            port,
            &keys,
            &image.user,
        )?),
        _ => None,
    };
    // The package proxy, for a job that installs packages.
    let packages = match (&spec.install, &image.install) {
        (Some(_), Some(install)) => Some(open_package_tunnel(
            settings,
            &install.repositories,
            port,
            &keys,
            &image.user,
        )?),
        _ => None,
    };

    // task
    req.reached(JobState::Running);
    let t = Instant::now();
    let guest_dir = PathBuf::from(GUEST_JOBS).join(&job_id);
    let job_json = serde_json::to_vec_pretty(&spec).unwrap_or_default();
    let _ = std::fs::write(job_dir.join("job.json"), &job_json);
    let task_dir = req.formula.task_dir();
    let tarball = upload::archive(
        Path::new(&job_id),
        &job_json,
        task_dir,
        upload_agent.as_deref(),
        &fetch::uploads(&staged),
    )
    .map_err(|e| RunError::BadInput(e.to_string()))?;
    let agent = if upload_agent.is_some() {
        guest_dir.join("ferrotron-agent").display().to_string()
    } else {
        GUEST_AGENT.to_string()
    };
    let gd = shell_quote(&guest_dir.display().to_string());
    // A cloud image has no jobs folder of its own.
    let mkdir = if image.boots_from_disk() {
        format!("mkdir -p -m 0755 {GUEST_JOBS} && ")
    } else {
        String::new()
    };
    let command = image.as_root(&format!(
        "{mkdir}tar -x -f - -C {GUEST_JOBS} && exec {} run {}",
        shell_quote(&agent),
        shell_quote(&guest_dir.join("job.json").display().to_string())
    ));
    let budget = req.timeout.unwrap_or_else(|| task_budget(&spec));
    let name = guard.name().to_string();
    let ran = task::run(task::TaskRun {
        ssh: &ssh,
        guard: &guard,
        command: &command,
        upload: &tarball,
        budget,
        stall_timeout: settings.stall_timeout,
        console_log: &console_log,
        cancel,
        ui,
    });
    if cancel.is_cancelled() {
        return Err(RunError::Cancelled(cancel.reason()));
    }
    let task_took = t.elapsed();
    let (seen, task_error, vm_alive) = (ran.seen, ran.error, ran.vm_alive);
    ui.phase(
        "task",
        &match (&task_error, seen.finished) {
            (None, Some(o)) => format!("{} action(s), {o}", seen.actions),
            _ => "did not finish".to_string(),
        },
        task_took,
    );

    // collect: even after a crash, whatever the task left is worth having.
    req.reached(JobState::Reporting);
    let t = Instant::now();
    let artifacts = job_dir.join("artifacts");
    let collected = if vm_alive && !ssh.is_broken() {
        ssh.download_tar(
            &image.as_root(&format!("tar -c -f - -C {gd}/artifacts .")),
            &artifacts,
        )
    } else {
        Ok(0)
    };
    let results = report::read_results(&artifacts)
        .and_then(|by_action| report::finish(&req.formula, &spec, &artifacts, by_action));
    for w in results.iter().flat_map(|r| &r.warnings) {
        ui.say(&format!("warning: {w}"));
    }
    ui.phase(
        "collect",
        &match &collected {
            Ok(n) => format!("{n} file(s) into {}", artifacts.display()),
            Err(e) => format!("failed: {e}"),
        },
        t.elapsed(),
    );

    let failed = task_error.is_some() || !results.as_ref().is_ok_and(report::Report::passed);
    keep_if_asked(
        req,
        failed,
        &guard,
        port,
        &keys,
        &image.user,
        &job_dir,
        cancel,
        ui,
    );

    // A hold: the VM goes to the person who asked, not away.
    let hold_key = req
        .hold_on_failure
        .as_deref()
        .filter(|_| failed && task_error.is_none() && vm_alive && !ssh.is_broken());
    let hold = match hold_key {
        Some(key) => match reserve::authorize(&ssh, &image, key) {
            Ok(()) => Some(ssh.host_key.openssh.clone()),
            Err(e) => {
                ui.say(&format!(
                    "warning: cannot hold the VM: {}",
                    crate::util::full(&e)
                ));
                None
            }
        },
        None => None,
    };

    // destroy
    let t = Instant::now();
    if let Some((tunnel, proxy)) = packages {
        drop(tunnel);
        ui.say(&format!("package proxy: {}", proxy.stats.summary()));
    }
    drop(cache_access);
    drop(ssh);
    let held = match hold {
        Some(host_key) => {
            ui.say(&format!("job failed: {name} is held for whoever asked"));
            Some(crate::vm::held::HeldVm::new(
                guard, port, host_key, _control,
            ))
        }
        None => {
            let destroyed = guard.close();
            ui.phase("destroy", &name, t.elapsed());
            if let Err(e) = destroyed {
                return Err(RunError::infra("destroy", e));
            }
            None
        }
    };

    if let Some(message) = task_error {
        return Err(RunError::infra("task", message));
    }
    let report::Report {
        results,
        tap,
        verdict,
        ..
    } = match results {
        Ok(r) if !r.results.is_empty() => r,
        Ok(_) => return Err(RunError::infra("collect", "the task produced no results")),
        Err(message) => return Err(RunError::infra("collect", message)),
    };
    Ok(RunOutcome {
        job_id,
        job_dir,
        results,
        tap,
        verdict,
        held,
    })
}

/// A booted VM with an authenticated SSH session as root: what the
/// boot and ssh phases leave for the task (or for a reservation).
pub(crate) struct BootedVm {
    pub guard: VmGuard,
    pub ssh: GuestSsh,
    pub keys: KeyPair,
    pub port: u16,
    /// A restored guest's control connection, open until the VM goes.
    pub control: Option<std::os::unix::net::UnixStream>,
}

/// The boot and ssh phases: a fresh key pair in `job_dir`, the VM started
/// (restored from the image's template when there is one), the banner
/// waited for, root's session opened and the guest's host key written to
/// `job_dir/known_hosts`. `detachable`: a cold-booted domain does not die
/// with this process's libvirt connection (a reservation's VM outlives a
/// restart of the service).
pub(crate) fn boot_vm(
    settings: &Settings,
    image: &ResolvedImage,
    job_id: &str,
    job_dir: &Path,
    detachable: bool,
    cancel: &Cancel,
    ui: &Progress,
) -> Result<BootedVm, RunError> {
    let hv = Arc::new(
        Hypervisor::connect(&settings.libvirt_uri).map_err(|e| RunError::infra("boot", e))?,
    );
    if let Ok(r) = reaper::reap(&hv, &settings.vms_dir()) {
        if !r.domains.is_empty() || !r.folders.is_empty() {
            ui.say(&format!(
                "cleaned up after dead orchestrators: {} domain(s), {} folder(s)",
                r.domains.len(),
                r.folders.len()
            ));
        }
    }
    let accel =
        accel::resolve(&settings.vm(), &hv, image, cancel, &|m| ui.say(m)).map_err(boot_error)?;
    let keys = KeyPair::generate(job_dir, &format!("ferrotron-job-{job_id}"))
        .map_err(|e| RunError::infra("boot", e))?;
    let console_log = job_dir.join("console.log");
    let template = warm_template(settings, &hv, image, accel, cancel, ui)?;
    let request = |template| BootRequest {
        hv: &hv,
        image,
        accel,
        job_id,
        detachable,
        vms_dir: settings.vms_dir(),
        console_log: console_log.clone(),
        cmdline: cmdline(image, &keys, &settings.extra_cmdline),
        ssh_deadline: settings.ssh_timeout.unwrap_or(image.ssh_timeout),
        cancel,
        template,
        key_blob: Some(keys.blob()),
        public_key: &keys.public_openssh,
    };
    let ready = ready_vm(
        settings,
        &hv,
        job_id,
        image,
        template.as_ref(),
        &console_log,
        &keys,
        cancel,
    )?;
    let from_pool = ready.is_some();
    let booted = match ready {
        Some(vm) => Ok(vm),
        None => match (start(request(template.as_ref())), &template) {
            (Err(e), Some(t)) if !cancel.is_cancelled() => {
                // A template this libvirt cannot restore is useless: drop it and
                // boot cold; the next job builds a new one.
                ui.say(&format!(
                    "warning: warm start failed ({}); template discarded, booting cold",
                    crate::util::full(&e)
                ));
                t.discard();
                start(request(None))
            }
            (r, _) => r,
        },
    }
    .map_err(boot_error)?;
    ui.phase(
        "boot",
        &format!(
            "{} {} ({accel})",
            booted.guard.name(),
            if from_pool {
                "taken from the ready pool"
            } else if booted.restored {
                "restored"
            } else {
                "booted"
            }
        ),
        booted.took,
    );

    // ssh
    let t = Instant::now();
    let stream = booted.wait_for_ssh(cancel).map_err(boot_error)?;
    let guard = booted.guard;
    let ssh = GuestSsh::handshake(
        stream,
        booted.port,
        &keys,
        &image.user,
        Duration::from_secs(30),
    )
    .map_err(|e| RunError::infra("ssh", e))?;
    tracing::debug!("ssh session authenticated after {:?}", t.elapsed());
    let known = format!("[127.0.0.1]:{} {}\n", booted.port, ssh.host_key.openssh);
    let _ = std::fs::write(job_dir.join("known_hosts"), known);
    ui.phase(
        "ssh",
        &format!("127.0.0.1:{} {}", booted.port, ssh.host_key.fingerprint),
        t.elapsed(),
    );

    Ok(BootedVm {
        guard,
        ssh,
        keys,
        port: booted.port,
        control: booted.control,
    })
}

/// The ready VM the scheduler set aside for this job, handed the job:
/// its console moved to the job's, its key, clock and entropy sent. One
/// from another template than the image's current one is destroyed (the
/// job restores its own).
#[allow(clippy::too_many_arguments)]
fn ready_vm(
    settings: &Settings,
    hv: &Arc<Hypervisor>,
    job_id: &str,
    image: &ResolvedImage,
    template: Option<&warm::Template>,
    console_log: &Path,
    keys: &KeyPair,
    cancel: &Cancel,
) -> Result<Option<crate::vm::boot::Started>, RunError> {
    let Some(vm) = settings.ready_pool.as_ref().and_then(|p| p.take(job_id)) else {
        return Ok(None);
    };
    if template.map(|t| &t.dir) != Some(&vm.template) || vm.image != image.label() {
        tracing::info!("ready VM {} is of another template: destroyed", vm.name);
        vm.discard();
        return Ok(None);
    }
    let name = vm.name.clone();
    let mut started = vm.started;
    cancel.track(hv.clone(), &name);
    if let Err(e) = started.hand_job(console_log, keys.blob()) {
        let _ = started.guard.close();
        return Err(boot_error(e));
    }
    Ok(Some(started))
}

/// The cache server for this job and the tunnel that brings it to the
/// guest's 127.0.0.1 (see `cache::tunnel`); dropped before the VM.
fn open_cache_tunnel(
    settings: &Settings,
    spec: &JobSpec,
    ssh_port: u16,
    keys: &KeyPair,
    user: &str,
) -> Result<
    (
        crate::cache::tunnel::Tunnel,
        crate::cache::tunnel::JobServer,
    ),
    RunError,
> {
    use crate::cache::tunnel::{JobServer, Tunnel, GUEST_PORT};
    // The job's repository only, as `prepare` recorded it.
    let repo = spec
        .vars
        .get("git_repo")
        .ok_or_else(|| RunError::infra("ssh", "the job has no git repository to serve"))
        .and_then(|r| crate::cache::RepoPath::parse(r).map_err(|e| RunError::infra("ssh", e)))?;
    let server = JobServer::start(crate::cache::Cache::new(&settings.data_dir), repo)
        .map_err(|e| RunError::infra("ssh", e))?;
    let tunnel = Tunnel::open(ssh_port, keys, user, GUEST_PORT, server.addr)
        .map_err(|e| RunError::infra("ssh", e))?;
    Ok((tunnel, server))
}

/// The package proxy for this job and the tunnel that brings it to the
/// guest's `127.0.0.1:8472` (see `packages::proxy`); dropped before the VM.
pub(crate) fn open_package_tunnel(
    settings: &Settings,
    repositories: &[String],
    ssh_port: u16,
    keys: &KeyPair,
    user: &str,
) -> Result<
    (
        crate::cache::tunnel::Tunnel,
        crate::packages::proxy::ProxyServer,
    ),
    RunError,
> {
    use ferrotron_imagebuilder::guest::PACKAGE_PROXY_PORT;
    let cache = crate::downloads::cache::DownloadCache::new(
        settings.package_cache_dir(),
        settings.packages.cache_max_bytes,
    );
    let proxy =
        crate::packages::proxy::ProxyServer::start(repositories, &settings.packages.mirrors, cache)
            .map_err(|e| RunError::infra("ssh", crate::util::full(&e)))?;
    let tunnel =
        crate::cache::tunnel::Tunnel::open(ssh_port, keys, user, PACKAGE_PROXY_PORT, proxy.addr)
            .map_err(|e| RunError::infra("ssh", e))?;
    Ok((tunnel, proxy))
}

/// The local agent when it differs from the image's copy.
fn agent_to_upload(settings: &Settings, image: &ResolvedImage) -> std::io::Result<Option<PathBuf>> {
    let Some(path) = &settings.agent else {
        return Ok(None);
    };
    let sha = crate::util::sha256_file(path)?;
    Ok((sha != image.agent_sha256).then(|| path.clone()))
}

/// The warm-start template to restore this job's VM from, if warm starts
/// are on and apply (extra kernel arguments need a real boot). A template
/// that cannot be built is a warning: the job boots cold.
fn warm_template(
    settings: &Settings,
    hv: &Arc<Hypervisor>,
    image: &ResolvedImage,
    accel: crate::vm::accel::Resolved,
    cancel: &Cancel,
    ui: &Progress,
) -> Result<Option<warm::Template>, RunError> {
    if settings.start != StartMode::Warm || !settings.extra_cmdline.is_empty() {
        return Ok(None);
    }
    if !image.warm_start {
        let why = if image.firmware == ferrotron_imagebuilder::Firmware::Uefi {
            "has no warm start (UEFI: a restored guest would need its NVRAM saved with it)"
        } else {
            "predates warm starts"
        };
        ui.say(&format!("image {} {why}: booting cold", image.label()));
        return Ok(None);
    }
    match warm::ensure(&settings.vm(), hv, image, accel, cancel, &|m| ui.say(m)) {
        Ok(t) => Ok(Some(t)),
        Err(_) if cancel.is_cancelled() => Err(RunError::Cancelled(cancel.reason())),
        Err(e) => {
            ui.say(&format!(
                "warning: no warm-start template ({}); booting cold",
                crate::util::full(&e)
            ));
            Ok(None)
        }
    }
}

/// The folder of job `id`'s run: `<jobs>/<id>`, created empty. A folder
/// left by an earlier attempt of the same job (a retry after an
/// infrastructure error) is kept beside it as `<id>.attempt-N`, its logs
/// and console with it.
pub(crate) fn fresh_job_dir(jobs: &Path, id: &str) -> std::io::Result<PathBuf> {
    let dir = jobs.join(id);
    if dir.exists() {
        let earlier = (1..)
            .map(|n| jobs.join(format!("{id}.attempt-{n}")))
            .find(|p| !p.exists())
            .unwrap_or_else(|| jobs.join(format!("{id}.attempt")));
        std::fs::rename(&dir, &earlier)?;
    }
    std::fs::create_dir_all(&dir)?;
    Ok(dir)
}

/// Default whole-task deadline: every action's time-out plus a margin.
pub(crate) fn task_budget(spec: &JobSpec) -> Duration {
    let total: u64 = spec.actions.iter().map(|a| a.timeout_secs()).sum();
    Duration::from_secs(total + 60)
}

/// `--keep-on-failure`: leave the VM up, print how to reach it, wait.
#[allow(clippy::too_many_arguments)]
fn keep_if_asked(
    req: &RunRequest,
    failed: bool,
    guard: &VmGuard,
    port: u16,
    keys: &KeyPair,
    user: &str,
    job_dir: &Path,
    cancel: &Cancel,
    ui: &Progress,
) {
    let Some(keep) = req.keep_on_failure else {
        return;
    };
    if !failed || !guard.hypervisor().is_running(guard.name()) {
        return;
    }
    ui.say(&format!(
        "job failed: keeping {} for {} s for debugging; Ctrl-C destroys it now",
        guard.name(),
        keep.as_secs()
    ));
    ui.say(&format!(
        "  ssh -i {} -p {port} -o UserKnownHostsFile={} {user}@127.0.0.1",
        keys.private_path.display(),
        job_dir.join("known_hosts").display()
    ));
    let until = Instant::now() + keep;
    while Instant::now() < until
        && !cancel.is_cancelled()
        && guard.hypervisor().is_running(guard.name())
    {
        std::thread::sleep(Duration::from_millis(200));
    }
}

pub(crate) fn boot_error(e: BootError) -> RunError {
    match e {
        BootError::Cancelled(s) => RunError::Cancelled(s),
        e => RunError::infra("boot", e),
    }
}
