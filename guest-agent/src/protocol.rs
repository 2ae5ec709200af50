//! Wire types shared by the agent and the orchestrator: the job file the
//! agent reads, the JSON-lines events it prints, and the task results it
//! writes. See `docs/agent-protocol.md`.

use std::collections::BTreeMap;
use std::fmt;
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

/// The only job file version this agent understands.
pub const PROTOCOL_VERSION: u32 = 1;

/// Version of this agent, reported in the `start` event.
pub const AGENT_VERSION: &str = env!("CARGO_PKG_VERSION");

/// Timeout of an action that does not set `timeout_secs`.
pub const DEFAULT_TIMEOUT_SECS: u64 = 3600;

/// Largest accepted `timeout_secs` (30 days).
pub const MAX_TIMEOUT_SECS: u64 = 30 * 24 * 3600;

/// Environment variable names the agent sets itself; a job may not set them.
pub const RESERVED_PREFIX: &str = "FERROTRON_";

/// A job: one task run against one item, as uploaded next to the task files.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct JobSpec {
    /// Must be [`PROTOCOL_VERSION`].
    pub version: u32,
    pub job_id: String,
    /// Task name; the check name of the results.
    pub name: String,
    pub item: String,
    pub item_type: String,
    pub arch: String,
    /// Where the task files were uploaded.
    pub taskdir: PathBuf,
    /// Created by the agent as a copy of `taskdir` (without `.git`); the
    /// current directory of every command.
    pub workdir: PathBuf,
    /// Created by the agent; logs and results are written here.
    pub artifactsdir: PathBuf,
    /// Exported unchanged as environment variables: never substituted into
    /// shell text by the agent.
    #[serde(default)]
    pub vars: BTreeMap<String, String>,
    /// Extra environment for every action.
    #[serde(default)]
    pub env: BTreeMap<String, String>,
    pub actions: Vec<Action>,
    /// Files (`${var}` templates, relative to `workdir` or absolute inside
    /// it or `artifactsdir`) whose text the agent hands back after the last
    /// action, for `resultsdb: file:` (see [`RESULT_FILES_FILE`]).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub result_files: Vec<String>,
    /// Packages to install before the first action (the task's
    /// `environment.rpm` / `environment.packages` the image lacks).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub install: Option<Install>,
}

/// Packages the agent installs with the image's package manager before the
/// first action. The package manager reaches its repositories only through
/// the job's package proxy (see the image's apt configuration).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Install {
    /// `apt`, the only one so far.
    pub manager: String,
    /// Package names, as the image's package manager knows them; given to
    /// it as arguments, never through a shell.
    pub packages: Vec<String>,
    /// Limit for the installation; [`DEFAULT_TIMEOUT_SECS`] when absent.
    #[serde(default)]
    pub timeout_secs: Option<u64>,
}

/// Whether `name` is a Debian package name (`[a-z0-9][a-z0-9+.-]+`,
/// optionally `:arch`): what [`Install::packages`] may hold.
pub fn is_debian_package_name(name: &str) -> bool {
    let (base, arch) = match name.split_once(':') {
        Some((b, a)) => (b, Some(a)),
        None => (name, None),
    };
    let first_ok = base
        .bytes()
        .next()
        .is_some_and(|b| b.is_ascii_lowercase() || b.is_ascii_digit());
    first_ok
        && base.len() >= 2
        && base
            .bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b"+-.".contains(&b))
        && arch.is_none_or(|a| {
            !a.is_empty()
                && a.bytes()
                    .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-')
        })
}

/// One step of a job: exactly one of `shell` (commands run one after
/// another by `/bin/sh`), `python` (a callable in a task file), `exec` (a
/// program with an argument vector, no shell) or `artifact` (files of the
/// work folder copied into the artifacts).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Action {
    pub name: String,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub shell: Vec<ShellCommand>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub python: Option<PythonCall>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub exec: Option<ExecCall>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub artifact: Option<ArtifactCollect>,
    /// Limit for the whole action; [`DEFAULT_TIMEOUT_SECS`] when absent.
    #[serde(default)]
    pub timeout_secs: Option<u64>,
    /// Name of a variable that receives the action's stdout.
    #[serde(default)]
    pub export: Option<String>,
}

/// One command of a `shell` action, in the forms libtaskotron formulas use.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(untagged)]
pub enum ShellCommand {
    /// Text run by `/bin/sh -c`: plain `${var}` is the shell's expansion of
    /// the environment variable; a dotted `${var.key}` is given to it as an
    /// environment variable of its own (never pasted into the text).
    Line(String),
    /// An argument vector run without a shell, each entry `${var}`-rendered
    /// (one entry each, whatever the value holds).
    Argv(Vec<String>),
    /// Commands whose exit status does not fail the action.
    IgnoreReturn { ignorereturn: Vec<ShellCommand> },
}

/// What every form of a shell command is, for error messages.
pub const SHELL_FORMS: &str =
    "a command string, an argument list of strings, or `ignorereturn:` with a list of those";

impl<'de> Deserialize<'de> for ShellCommand {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct Form;
        impl<'de> serde::de::Visitor<'de> for Form {
            type Value = ShellCommand;
            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str(SHELL_FORMS)
            }
            fn visit_str<E: serde::de::Error>(self, v: &str) -> Result<ShellCommand, E> {
                Ok(ShellCommand::Line(v.to_string()))
            }
            // A plain YAML scalar such as `true` is a command too.
            fn visit_bool<E: serde::de::Error>(self, v: bool) -> Result<ShellCommand, E> {
                Ok(ShellCommand::Line(v.to_string()))
            }
            fn visit_seq<A: serde::de::SeqAccess<'de>>(
                self,
                mut seq: A,
            ) -> Result<ShellCommand, A::Error> {
                let mut argv = Vec::new();
                while let Some(arg) = seq.next_element::<String>()? {
                    argv.push(arg);
                }
                Ok(ShellCommand::Argv(argv))
            }
            fn visit_map<A: serde::de::MapAccess<'de>>(
                self,
                mut map: A,
            ) -> Result<ShellCommand, A::Error> {
                use serde::de::Error;
                let mut commands = None;
                while let Some(key) = map.next_key::<String>()? {
                    if key != "ignorereturn" || commands.is_some() {
                        return Err(A::Error::custom(format!(
                            "unknown key `{key}` in a shell command: expected {SHELL_FORMS}"
                        )));
                    }
                    commands = Some(map.next_value::<Vec<ShellCommand>>()?);
                }
                let ignorereturn = commands.ok_or_else(|| {
                    A::Error::custom(format!("an empty mapping: expected {SHELL_FORMS}"))
                })?;
                Ok(ShellCommand::IgnoreReturn { ignorereturn })
            }
        }
        d.deserialize_any(Form)
    }
}

impl ShellCommand {
    /// Every string of the command, and whether it is an argument-list
    /// entry (rendered by the agent) rather than shell text.
    pub fn strings_with_form(&self) -> Vec<(&str, bool)> {
        match self {
            ShellCommand::Line(s) => vec![(s.as_str(), false)],
            ShellCommand::Argv(v) => v.iter().map(|s| (s.as_str(), true)).collect(),
            ShellCommand::IgnoreReturn { ignorereturn } => ignorereturn
                .iter()
                .flat_map(ShellCommand::strings_with_form)
                .collect(),
        }
    }

    /// What is wrong with the command's form, if anything.
    pub fn problem(&self) -> Option<&'static str> {
        match self {
            ShellCommand::Line(s) if s.trim().is_empty() => Some("an empty command"),
            ShellCommand::Argv(v) if v.first().is_none_or(|p| p.trim().is_empty()) => {
                Some("an argument list without a program")
            }
            ShellCommand::IgnoreReturn { ignorereturn } if ignorereturn.is_empty() => {
                Some("`ignorereturn` with no commands")
            }
            ShellCommand::IgnoreReturn { ignorereturn } => ignorereturn.iter().find_map(|c| {
                if matches!(c, ShellCommand::IgnoreReturn { .. }) {
                    Some("`ignorereturn` inside `ignorereturn`")
                } else {
                    c.problem()
                }
            }),
            _ => None,
        }
    }
}

/// A `python` action: `callable` of the module `file` (relative to
/// `taskdir`) is called with `kwargs` (strings `${var}`-rendered by the
/// agent at run time); its return value is what `export` stores.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PythonCall {
    pub file: String,
    pub callable: String,
    #[serde(default)]
    pub kwargs: serde_json::Map<String, serde_json::Value>,
    /// `file` is in the agent's own `libtaskotron` package (a directive it
    /// implements, such as `xunit`), not in the task folder.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub builtin: bool,
}

/// An `exec` action: `program` run directly with `args` as its argument
/// vector (each `${var}`-rendered by the agent, never through a shell).
/// A `program` with a `/` that is relative is found in `taskdir`; one
/// without is looked up on `PATH`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ExecCall {
    pub program: String,
    #[serde(default)]
    pub args: Vec<String>,
}

/// An `artifact` action: files of `workdir` (paths or `*`/`?` patterns,
/// relative, `${var}`-rendered) copied into `artifactsdir`, keeping their
/// relative paths.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ArtifactCollect {
    pub paths: Vec<String>,
}

/// What an action does, as the runner sees it.
#[derive(Debug, Clone, Copy)]
pub enum ActionKind<'a> {
    Shell(&'a [ShellCommand]),
    Python(&'a PythonCall),
    Exec(&'a ExecCall),
    Artifact(&'a ArtifactCollect),
}

impl Action {
    pub fn timeout_secs(&self) -> u64 {
        self.timeout_secs.unwrap_or(DEFAULT_TIMEOUT_SECS)
    }

    /// The one directive of a validated action.
    pub fn kind(&self) -> Option<ActionKind<'_>> {
        let shell = (!self.shell.is_empty()).then_some(ActionKind::Shell(&self.shell));
        let kinds = [
            shell,
            self.python.as_ref().map(ActionKind::Python),
            self.exec.as_ref().map(ActionKind::Exec),
            self.artifact.as_ref().map(ActionKind::Artifact),
        ];
        let mut given = kinds.into_iter().flatten();
        match (given.next(), given.next()) {
            (Some(k), None) => Some(k),
            _ => None,
        }
    }
}

/// Whether a relative path stays below the folder it is relative to: not
/// absolute, no `..` component, not empty.
pub fn is_contained_path(path: &str) -> bool {
    let p = Path::new(path);
    !path.is_empty()
        && !p.is_absolute()
        && p.components().all(|c| {
            matches!(
                c,
                std::path::Component::Normal(_) | std::path::Component::CurDir
            )
        })
}

/// A job file that cannot be used.
#[derive(Debug)]
pub struct JobError {
    /// The file, when the job came from one.
    pub file: Option<PathBuf>,
    pub problem: String,
}

impl fmt::Display for JobError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match &self.file {
            Some(file) => write!(f, "bad job file {}: {}", file.display(), self.problem),
            None => write!(f, "bad job: {}", self.problem),
        }
    }
}

impl std::error::Error for JobError {}

fn invalid(problem: String) -> JobError {
    JobError {
        file: None,
        problem,
    }
}

impl JobSpec {
    /// Reads, parses and validates a job file.
    pub fn load(path: &Path) -> Result<Self, JobError> {
        let with_file = |mut e: JobError| {
            e.file = Some(path.to_path_buf());
            e
        };
        let text = std::fs::read_to_string(path)
            .map_err(|e| with_file(invalid(format!("cannot read it: {e}"))))?;
        Self::from_json(&text).map_err(with_file)
    }

    /// Parses and validates a job from JSON text.
    pub fn from_json(text: &str) -> Result<Self, JobError> {
        let job: JobSpec = serde_json::from_str(text).map_err(|e| {
            let path = json_path_at(text, e.line(), e.column());
            if path.is_empty() {
                invalid(e.to_string())
            } else {
                invalid(format!("{path}: {e}"))
            }
        })?;
        job.validate()?;
        Ok(job)
    }

    /// Checks what serde cannot: names, paths, limits.
    pub fn validate(&self) -> Result<(), JobError> {
        if self.version != PROTOCOL_VERSION {
            return Err(invalid(format!(
                "version: unsupported version {} (this agent supports {PROTOCOL_VERSION})",
                self.version
            )));
        }
        for (key, value) in [
            ("job_id", &self.job_id),
            ("name", &self.name),
            ("item", &self.item),
        ] {
            if value.is_empty() {
                return Err(invalid(format!("{key}: must not be empty")));
            }
        }
        for (key, value) in [
            ("job_id", &self.job_id),
            ("name", &self.name),
            ("item", &self.item),
            ("item_type", &self.item_type),
            ("arch", &self.arch),
        ] {
            if value.chars().any(char::is_control) {
                return Err(invalid(format!(
                    "{key}: must not contain control characters"
                )));
            }
        }
        for (key, dir) in [
            ("taskdir", &self.taskdir),
            ("workdir", &self.workdir),
            ("artifactsdir", &self.artifactsdir),
        ] {
            if !dir.is_absolute() {
                return Err(invalid(format!(
                    "{key}: must be an absolute path, not {:?}",
                    dir.display().to_string()
                )));
            }
            if dir.as_os_str().as_encoded_bytes().contains(&0) {
                return Err(invalid(format!("{key}: must not contain NUL")));
            }
        }
        for (map, what) in [(&self.vars, "vars"), (&self.env, "env")] {
            for (name, value) in map {
                check_var_name(name).map_err(|p| invalid(format!("{what}: {p}")))?;
                if value.contains('\0') {
                    return Err(invalid(format!(
                        "{what}.{name}: value must not contain NUL"
                    )));
                }
            }
        }
        if let Some(name) = self.vars.keys().find(|k| self.env.contains_key(*k)) {
            return Err(invalid(format!("{name:?} is set in both vars and env")));
        }
        if self.actions.is_empty() {
            return Err(invalid("actions: a job needs at least one action".into()));
        }
        if let Some(install) = &self.install {
            if install.manager != "apt" {
                return Err(invalid(format!(
                    "install.manager: {:?} is not a package manager this agent knows (apt)",
                    install.manager
                )));
            }
            if install.packages.is_empty() {
                return Err(invalid("install.packages: must not be empty".into()));
            }
            if let Some((i, p)) = install
                .packages
                .iter()
                .enumerate()
                .find(|(_, p)| !is_debian_package_name(p))
            {
                return Err(invalid(format!(
                    "install.packages[{i}]: {p:?} is not a package name"
                )));
            }
        }
        for (i, action) in self.actions.iter().enumerate() {
            let at = format!("actions[{i}]");
            if action.name.is_empty() || action.name.chars().any(char::is_control) {
                return Err(invalid(format!(
                    "{at}.name: must be non-empty, without control characters"
                )));
            }
            match action.kind() {
                None => {
                    return Err(invalid(format!(
                    "{at}: give exactly one of a non-empty `shell`, `python`, `exec`, `artifact`"
                )))
                }
                Some(ActionKind::Shell(_)) => {}
                Some(ActionKind::Python(p)) => {
                    if !is_contained_path(&p.file) {
                        return Err(invalid(format!(
                            "{at}.python.file: must be a path inside the task folder, not {:?}",
                            p.file
                        )));
                    }
                    if !is_python_name(&p.callable) {
                        return Err(invalid(format!(
                            "{at}.python.callable: {:?} is not a Python name",
                            p.callable
                        )));
                    }
                }
                Some(ActionKind::Exec(e)) => {
                    if e.program.is_empty() {
                        return Err(invalid(format!("{at}.exec.program: must not be empty")));
                    }
                    if let Some(j) = e.args.iter().position(|a| a.contains('\0')) {
                        return Err(invalid(format!(
                            "{at}.exec.args[{j}]: must not contain NUL"
                        )));
                    }
                }
                Some(ActionKind::Artifact(a)) => {
                    if a.paths.is_empty() {
                        return Err(invalid(format!(
                            "{at}.artifact.paths: needs at least one path"
                        )));
                    }
                }
            }
            for (j, c) in action.shell.iter().enumerate() {
                if c.strings_with_form().iter().any(|(s, _)| s.contains('\0')) {
                    return Err(invalid(format!("{at}.shell[{j}]: must not contain NUL")));
                }
                if let Some(p) = c.problem() {
                    return Err(invalid(format!("{at}.shell[{j}]: {p}")));
                }
            }
            if let Some(t) = action.timeout_secs {
                if t == 0 || t > MAX_TIMEOUT_SECS {
                    return Err(invalid(format!(
                        "{at}.timeout_secs: must be between 1 and {MAX_TIMEOUT_SECS}, not {t}"
                    )));
                }
            }
            if let Some(name) = &action.export {
                check_var_name(name).map_err(|p| invalid(format!("{at}.export: {p}")))?;
                if self.env.contains_key(name) {
                    return Err(invalid(format!(
                        "{at}.export: {name:?} is already set in env"
                    )));
                }
            }
        }
        Ok(())
    }
}

/// The JSON path (`actions[0].shell`) of the value being read at a line
/// and column (1-based, as serde_json reports them): a pointer for error
/// messages, empty at the top level.
fn json_path_at(text: &str, line: usize, column: usize) -> String {
    enum Frame {
        Object { key: Option<String>, want_key: bool },
        Array(usize),
    }
    let line_start: usize = text
        .split_inclusive('\n')
        .take(line.saturating_sub(1))
        .map(str::len)
        .sum();
    let end = (line_start + column).min(text.len());
    let mut stack: Vec<Frame> = Vec::new();
    let mut string: Option<Vec<u8>> = None;
    let mut escaped = false;
    for &c in &text.as_bytes()[..end] {
        if let Some(s) = &mut string {
            match (c, escaped) {
                (b'\\', false) => escaped = true,
                (b'"', false) => {
                    if let Some(Frame::Object { key, want_key }) = stack.last_mut() {
                        if *want_key {
                            *key = Some(String::from_utf8_lossy(s).into_owned());
                            *want_key = false;
                        }
                    }
                    string = None;
                }
                _ => {
                    escaped = false;
                    s.push(c);
                }
            }
            continue;
        }
        match c {
            b'"' => string = Some(Vec::new()),
            b'{' => stack.push(Frame::Object {
                key: None,
                want_key: true,
            }),
            b'[' => stack.push(Frame::Array(0)),
            b'}' | b']' => {
                stack.pop();
            }
            b',' => match stack.last_mut() {
                Some(Frame::Array(i)) => *i += 1,
                Some(Frame::Object { key, want_key }) => {
                    *key = None;
                    *want_key = true;
                }
                None => {}
            },
            _ => {}
        }
    }
    let mut path = String::new();
    for frame in &stack {
        match frame {
            Frame::Object { key: Some(k), .. } => {
                if !path.is_empty() {
                    path.push('.');
                }
                path.push_str(k);
            }
            Frame::Object { key: None, .. } => {}
            Frame::Array(i) => path.push_str(&format!("[{i}]")),
        }
    }
    path
}

/// A Python identifier (ASCII), possibly dotted (`Checker.run`).
pub fn is_python_name(name: &str) -> bool {
    !name.is_empty()
        && name.split('.').all(|part| {
            let mut chars = part.chars();
            matches!(chars.next(), Some(c) if c == '_' || c.is_ascii_alphabetic())
                && chars.all(|c| c == '_' || c.is_ascii_alphanumeric())
        })
}

/// A variable or environment name must be `[A-Za-z_][A-Za-z0-9_]*` and must
/// not start with [`RESERVED_PREFIX`].
pub fn check_var_name(name: &str) -> Result<(), String> {
    let mut chars = name.chars();
    let ok = matches!(chars.next(), Some(c) if c == '_' || c.is_ascii_alphabetic())
        && chars.all(|c| c == '_' || c.is_ascii_alphanumeric());
    if !ok {
        return Err(format!(
            "invalid variable name {name:?} (must match [A-Za-z_][A-Za-z0-9_]*)"
        ));
    }
    if name.starts_with(RESERVED_PREFIX) {
        return Err(format!(
            "variable name {name:?} is reserved (prefix {RESERVED_PREFIX})"
        ));
    }
    Ok(())
}

/// Outcome of a result, as in Taskotron / ResultsDB: one type for the
/// agent, the results parsers and the results store. Written upper-case,
/// read case-insensitively (ResultsDB upper-cases what it receives).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Outcome {
    Passed,
    Info,
    Failed,
    NeedsInspection,
    Error,
    Waived,
    Aborted,
    /// The check itself crashed (libtaskotron's outcome for a task that
    /// died before it could judge the item).
    Crashed,
}

impl Outcome {
    pub const ALL: [Outcome; 8] = [
        Outcome::Passed,
        Outcome::Info,
        Outcome::Failed,
        Outcome::NeedsInspection,
        Outcome::Error,
        Outcome::Waived,
        Outcome::Aborted,
        Outcome::Crashed,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            Outcome::Passed => "PASSED",
            Outcome::Info => "INFO",
            Outcome::Failed => "FAILED",
            Outcome::NeedsInspection => "NEEDS_INSPECTION",
            Outcome::Error => "ERROR",
            Outcome::Waived => "WAIVED",
            Outcome::Aborted => "ABORTED",
            Outcome::Crashed => "CRASHED",
        }
    }

    /// Whether TAP reports it as `ok` (PASSED and INFO, as libtaskotron did).
    pub fn is_ok(self) -> bool {
        matches!(self, Outcome::Passed | Outcome::Info)
    }
}

impl fmt::Display for Outcome {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// A string that names no outcome.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct UnknownOutcome(pub String);

impl fmt::Display for UnknownOutcome {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "unknown outcome {:?}", self.0)
    }
}

impl std::error::Error for UnknownOutcome {}

impl std::str::FromStr for Outcome {
    type Err = UnknownOutcome;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let wanted = s.trim();
        Outcome::ALL
            .into_iter()
            .find(|o| o.as_str().eq_ignore_ascii_case(wanted))
            .ok_or_else(|| UnknownOutcome(s.to_string()))
    }
}

impl Serialize for Outcome {
    fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.serialize_str(self.as_str())
    }
}

impl<'de> Deserialize<'de> for Outcome {
    fn deserialize<D: serde::Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        let s = String::deserialize(deserializer)?;
        s.parse().map_err(serde::de::Error::custom)
    }
}

/// One result of a task, written to `results.json` and `results.tap`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct TaskResult {
    pub checkname: String,
    pub item: String,
    pub item_type: String,
    pub outcome: Outcome,
    /// One line.
    pub summary: String,
    /// Tail of the output (at most 64 KiB).
    pub output: String,
}

/// Which pipe a line of output came from.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Stream {
    Stdout,
    Stderr,
}

/// Progress report, printed by the agent as one JSON object per line.
/// Action indexes are 1-based.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "event", rename_all = "snake_case")]
pub enum Event {
    Start {
        job_id: String,
        agent_version: String,
        /// Number of actions in the job.
        actions: usize,
    },
    ActionStart {
        index: usize,
        name: String,
    },
    Output {
        index: usize,
        stream: Stream,
        /// Without its newline; at most 8 KiB (longer lines are split).
        line: String,
    },
    ActionEnd {
        index: usize,
        name: String,
        outcome: Outcome,
        exit_code: Option<i32>,
        signal: Option<i32>,
        timed_out: bool,
        duration_ms: u64,
    },
    Finish {
        outcome: Outcome,
        passed: usize,
        failed: usize,
        /// Actions not run because an earlier one did not pass.
        skipped: usize,
        duration_ms: u64,
    },
    Error {
        message: String,
    },
    /// The job's packages are installed (before the first action; their
    /// package manager's output came as `output` events with index 0).
    PackagesInstalled {
        packages: Vec<String>,
        /// All were there already: nothing was fetched.
        already: bool,
        duration_ms: u64,
    },
    /// Sent when nothing else was for [`HEARTBEAT_SECS`]: the orchestrator
    /// tells a quiet task from a hung guest by it.
    Heartbeat,
}

/// File in the artifacts folder holding the variables actions exported
/// (a JSON object of name to value: a string, or what a `python`
/// callable returned).
pub const EXPORTS_FILE: &str = "exports.json";

/// File in the artifacts folder holding the text of each of the job's
/// `result_files` (a JSON object of template to `{"Ok": text}` or
/// `{"Err": why}`).
pub const RESULT_FILES_FILE: &str = "result-files.json";

/// Longest silence of the agent while a command runs.
pub const HEARTBEAT_SECS: u64 = 5;

#[cfg(test)]
mod tests {
    use super::*;

    fn job_json(extra_action: &str) -> String {
        format!(
            r#"{{"version": 1, "job_id": "j1", "name": "t", "item": "i", "item_type": "koji_build",
               "arch": "x86_64", "taskdir": "/t", "workdir": "/w", "artifactsdir": "/a",
               "vars": {{"item": "i"}}, "env": {{"LANG": "C.UTF-8"}},
               "actions": [{{"name": "a", "shell": ["true"]{extra_action}}}]}}"#
        )
    }

    #[test]
    fn parses_a_good_job() {
        let job =
            JobSpec::from_json(&job_json(r#", "timeout_secs": 5, "export": null"#)).expect("valid");
        assert_eq!(job.actions[0].timeout_secs(), 5);
        assert_eq!(job.actions[0].export, None);
        let again = serde_json::to_string(&job).expect("serializes");
        assert_eq!(JobSpec::from_json(&again).expect("round trip"), job);
    }

    #[test]
    fn packages_to_install_are_checked_names() {
        let with = |install: &str| {
            job_json("").replace(
                r#""actions": ["#,
                &format!(r#""install": {install}, "actions": ["#),
            )
        };
        let job = JobSpec::from_json(&with(
            r#"{"manager": "apt", "packages": ["hello", "libc6:amd64", "g++"]}"#,
        ))
        .expect("valid");
        assert_eq!(job.install.expect("install").packages.len(), 3);
        for (install, says) in [
            (
                r#"{"manager": "dnf", "packages": ["hello"]}"#,
                "install.manager",
            ),
            (
                r#"{"manager": "apt", "packages": []}"#,
                "install.packages: must not be empty",
            ),
            (
                r#"{"manager": "apt", "packages": ["-o=Dpkg::Pre-Invoke=x"]}"#,
                "install.packages[0]",
            ),
            (
                r#"{"manager": "apt", "packages": ["a b"]}"#,
                "install.packages[0]",
            ),
        ] {
            let e = JobSpec::from_json(&with(install))
                .expect_err(install)
                .to_string();
            assert!(e.contains(says), "{install}: {e}");
        }
    }

    #[test]
    fn unknown_key_is_named() {
        let e = JobSpec::from_json(&job_json(r#", "timeout": 5"#)).expect_err("unknown key");
        let e = e.to_string();
        assert!(
            e.contains("actions[0].timeout: unknown field `timeout`"),
            "{e}"
        );
        assert!(e.contains("line 4"), "{e}");
        let text = job_json("").replace("\"shell\": [\"true\"]", "\"shell\": [\"true\", 5]");
        let e = JobSpec::from_json(&text).expect_err("bad type").to_string();
        assert!(
            e.starts_with("bad job: actions[0].shell[1]: invalid type"),
            "{e}"
        );
        let e = JobSpec::from_json("{\"vars\": {\"é\\\"b\": 1}}").expect_err("bad type");
        assert!(e.to_string().contains("vars.é\"b: invalid type"), "{e}");
    }

    #[test]
    fn bad_names_are_rejected() {
        for bad in ["", "1a", "a-b", "a b", "FERROTRON_X", "é"] {
            assert!(check_var_name(bad).is_err(), "{bad:?}");
        }
        for good in ["a", "_", "item", "A_1"] {
            assert!(check_var_name(good).is_ok(), "{good:?}");
        }
        let e = JobSpec::from_json(&job_json(r#", "export": "x-y""#)).expect_err("bad export");
        assert!(e.to_string().contains("actions[0].export"), "{e}");
        let e = JobSpec::from_json(&job_json(r#", "export": "LANG""#)).expect_err("clash");
        assert!(e.to_string().contains("env"), "{e}");
    }

    #[test]
    fn an_action_has_exactly_one_directive() {
        let python =
            r#", "python": {"file": "check.py", "callable": "Check.run", "kwargs": {"n": 1}}"#;
        let e = JobSpec::from_json(&job_json(python)).expect_err("shell and python");
        assert!(
            e.to_string().contains("actions[0]: give exactly one of"),
            "{e}"
        );
        let only_python = job_json(python).replace(r#""shell": ["true"], "#, "");
        let job = JobSpec::from_json(&only_python).expect("python only");
        assert!(matches!(job.actions[0].kind(), Some(ActionKind::Python(_))));
        for (bad, says) in [("../check.py", "python.file"), ("/check.py", "python.file")] {
            let text = only_python.replace("check.py", bad);
            let e = JobSpec::from_json(&text).expect_err(bad).to_string();
            assert!(e.contains(says), "{e}");
        }
        let text = only_python.replace("Check.run", "run()");
        let e = JobSpec::from_json(&text)
            .expect_err("bad callable")
            .to_string();
        assert!(e.contains("python.callable"), "{e}");
        let exec = job_json("").replace(
            r#""shell": ["true"]"#,
            r#""exec": {"program": "printf", "args": ["%s", "$(x)"]}"#,
        );
        let job = JobSpec::from_json(&exec).expect("exec");
        assert!(matches!(job.actions[0].kind(), Some(ActionKind::Exec(_))));
        let art = job_json("").replace(r#""shell": ["true"]"#, r#""artifact": {"paths": []}"#);
        let e = JobSpec::from_json(&art).expect_err("no paths").to_string();
        assert!(e.contains("artifact.paths"), "{e}");
    }

    #[test]
    fn contained_paths() {
        for good in ["a", "a/b.txt", "./a", "out/*.log"] {
            assert!(is_contained_path(good), "{good}");
        }
        for bad in ["", "/etc", "../a", "a/../../b", "a/.."] {
            assert!(!is_contained_path(bad), "{bad}");
        }
    }

    #[test]
    fn limits_are_checked() {
        let e = JobSpec::from_json(&job_json(r#", "timeout_secs": 0"#)).expect_err("zero");
        assert!(e.to_string().contains("timeout_secs"), "{e}");
        let text = job_json("").replace("\"/w\"", "\"w\"");
        let e = JobSpec::from_json(&text).expect_err("relative");
        assert!(e.to_string().contains("workdir"), "{e}");
        let text = job_json("").replace("\"version\": 1", "\"version\": 2");
        assert!(JobSpec::from_json(&text).is_err());
    }

    #[test]
    fn events_use_the_documented_shape() {
        let ev = Event::Output {
            index: 1,
            stream: Stream::Stderr,
            line: "x".into(),
        };
        let text = serde_json::to_string(&ev).expect("serializes");
        assert_eq!(
            text,
            r#"{"event":"output","index":1,"stream":"stderr","line":"x"}"#
        );
        let back: Event = serde_json::from_str(&text).expect("parses");
        assert_eq!(back, ev);
        let end = serde_json::to_string(&Event::Finish {
            outcome: Outcome::NeedsInspection,
            passed: 0,
            failed: 1,
            skipped: 2,
            duration_ms: 3,
        })
        .expect("serializes");
        assert!(end.starts_with(r#"{"event":"finish","outcome":"NEEDS_INSPECTION""#));
    }
}
