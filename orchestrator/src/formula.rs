//! Task formulas (`runtask.yml`): loading and validation.
//!
//! The libtaskotron formula: `name`, `desc`, `maintainer`, `namespace`,
//! `input.args`, `environment` and `actions` (or the older `task`), each
//! with one directive: `shell`, `python`, `bash`, `exec` and `artifact`
//! (run by the agent), `resultsdb` and `exitcode` (run by the orchestrator
//! once the agent is done). Everything is validated before anything runs:
//! a bad formula is one error naming the file, the line and the key path.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use ferrotron_agent::protocol as proto;
pub use ferrotron_agent::template::{
    json_template_vars, render_json, render_template, template_vars,
};
use schemars::JsonSchema;
use serde::Deserialize;

use crate::yaml::{line_of, line_of_nth};

/// Item types a formula may declare as an input arg; the arg receives `--item`.
pub const ITEM_TYPES: &[&str] = &[
    "koji_build",
    "bodhi_update",
    "koji_tag",
    "compose",
    "git_commit",
    "dist_git_commit",
    "docker_image",
    "module_build",
    "item",
];

/// A formula that parsed and validated.
#[derive(Debug, Clone)]
pub struct Formula {
    pub path: PathBuf,
    pub name: String,
    pub desc: String,
    pub maintainer: String,
    pub namespace: Option<String>,
    pub args: Vec<String>,
    pub environment: Environment,
    pub actions: Vec<Action>,
}

/// What the machine must offer the task.
#[derive(Debug, Clone, Default, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct Environment {
    /// Base image name, optionally `name:version`.
    pub image: Option<String>,
    /// RPM packages the task needs (libtaskotron): a list, or nothing. The
    /// image must have them; a missing one is an error naming it.
    #[serde(default, deserialize_with = "list_or_null")]
    pub rpm: Vec<String>,
    /// Packages the task needs in the image: a list, or nothing. A
    /// missing one is an error naming it.
    #[serde(default, deserialize_with = "list_or_null")]
    pub packages: Vec<String>,
    /// Memory the task needs, in MiB.
    pub memory_mib: Option<u32>,
}

/// One step of a task.
#[derive(Debug, Clone)]
pub struct Action {
    pub name: String,
    pub directive: Directive,
    pub export: Option<String>,
    pub timeout_secs: Option<u64>,
}

/// What an action does.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Directive {
    /// Commands run by the guest agent, one after another: strings through
    /// `/bin/sh`, argument lists without a shell, `ignorereturn` groups.
    Shell(Vec<proto::ShellCommand>),
    /// `callable` of the task file `file` called with `kwargs` (strings
    /// `${var}`-rendered at run time); the return value is the export.
    Python {
        file: String,
        callable: String,
        kwargs: serde_json::Map<String, serde_json::Value>,
    },
    /// `bash SCRIPT ARGS...` (script relative to the task folder), no shell
    /// string: each arg is one argv entry after `${var}` rendering.
    Bash { script: String, args: Vec<String> },
    /// A program run with an argument vector (rendered as for `bash`).
    Exec { program: String, args: Vec<String> },
    /// Files of the work folder copied into the job's artifacts.
    Artifact { paths: Vec<String> },
    /// Report results: ResultYAML or TAP13 text, usually `${var}` exported
    /// by an earlier action, or a file of the work folder. Without
    /// `--report` the results are written to the job's artifacts and
    /// printed.
    Resultsdb { results: ResultsText },
    /// The task's exit status follows one result of `results` (ResultYAML
    /// or TAP13, usually `${var}`), or the worst of them, instead of all
    /// of them.
    Exitcode { pick: Pick, results: String },
    /// A libtaskotron directive implemented by Ferrotron's `libtaskotron`
    /// package in the guest (`xunit`, `create_report`, `dummy`,
    /// `createrepo`): `function` of `libtaskotron/directives.py` called
    /// with `kwargs` like a `python` action.
    Builtin {
        function: &'static str,
        kwargs: serde_json::Map<String, serde_json::Value>,
    },
    /// A libtaskotron download directive (`koji`, `bodhi`, `distgit`): done
    /// by the host before the job starts, where the network is, into the
    /// shared download cache; the files appear in `target_dir` when the
    /// action's turn comes, and the export is libtaskotron's dict
    /// (`downloaded_rpms`, ...). Its strings may use the job's inputs and
    /// the built-in variables only.
    Download(Download),
}

/// What a download directive fetches, and where the guest gets it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Download {
    pub source: DownloadSource,
    /// Folder the files go to (`${workdir}/rpms`), inside the work folder
    /// or the artifacts once rendered.
    pub target_dir: String,
}

/// The directives' arguments, as libtaskotron names them (strings still
/// `${var}` templates).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum DownloadSource {
    Koji {
        action: crate::downloads::KojiAction,
        koji_build: Option<String>,
        koji_tag: Option<String>,
        arch: Vec<String>,
        arch_exclude: Vec<String>,
        src: bool,
        debuginfo: bool,
        build_log: bool,
    },
    Bodhi {
        update_id: String,
        arch: Vec<String>,
        src: bool,
    },
    Distgit {
        package: Option<String>,
        nvr: Option<String>,
        gitref: Option<String>,
        namespace: Option<String>,
        path: Vec<String>,
        localpath: Option<Vec<String>>,
        ignore_missing: bool,
    },
}

impl DownloadSource {
    /// The directive's name in a formula.
    pub fn directive(&self) -> &'static str {
        match self {
            DownloadSource::Koji { .. } => "koji",
            DownloadSource::Bodhi { .. } => "bodhi",
            DownloadSource::Distgit { .. } => "distgit",
        }
    }

    /// Every string argument, with its field name (for checks and
    /// rendering).
    pub fn strings(&self) -> Vec<(String, &String)> {
        let mut out: Vec<(String, &String)> = Vec::new();
        match self {
            DownloadSource::Koji {
                koji_build,
                koji_tag,
                arch,
                arch_exclude,
                ..
            } => {
                out.extend(koji_build.iter().map(|v| ("koji_build".to_string(), v)));
                out.extend(koji_tag.iter().map(|v| ("koji_tag".to_string(), v)));
                out.extend(
                    arch.iter()
                        .enumerate()
                        .map(|(i, v)| (format!("arch[{i}]"), v)),
                );
                out.extend(
                    arch_exclude
                        .iter()
                        .enumerate()
                        .map(|(i, v)| (format!("arch_exclude[{i}]"), v)),
                );
            }
            DownloadSource::Bodhi {
                update_id, arch, ..
            } => {
                out.push(("update_id".to_string(), update_id));
                out.extend(
                    arch.iter()
                        .enumerate()
                        .map(|(i, v)| (format!("arch[{i}]"), v)),
                );
            }
            DownloadSource::Distgit {
                package,
                nvr,
                gitref,
                namespace,
                path,
                localpath,
                ..
            } => {
                out.extend(package.iter().map(|v| ("package".to_string(), v)));
                out.extend(nvr.iter().map(|v| ("nvr".to_string(), v)));
                out.extend(gitref.iter().map(|v| ("gitref".to_string(), v)));
                out.extend(namespace.iter().map(|v| ("namespace".to_string(), v)));
                out.extend(
                    path.iter()
                        .enumerate()
                        .map(|(i, v)| (format!("path[{i}]"), v)),
                );
                for (i, v) in localpath.iter().flatten().enumerate() {
                    out.push((format!("localpath[{i}]"), v));
                }
            }
        }
        out
    }
}

/// The module of Ferrotron's `libtaskotron` package that implements the
/// [`Directive::Builtin`] directives.
pub const BUILTIN_MODULE: &str = "libtaskotron/directives.py";

impl Directive {
    /// Whether the agent runs it (else the orchestrator does, afterwards).
    pub fn runs_in_agent(&self) -> bool {
        !matches!(
            self,
            Directive::Resultsdb { .. } | Directive::Exitcode { .. }
        )
    }

    /// Whether an `export` may follow it (the directives that produce a value).
    fn can_export(&self) -> bool {
        matches!(
            self,
            Directive::Shell(_)
                | Directive::Python { .. }
                | Directive::Bash { .. }
                | Directive::Exec { .. }
                | Directive::Builtin { .. }
                | Directive::Download(_)
        )
    }
}

/// Which result an `exitcode` directive looks at.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Pick {
    First,
    Last,
    /// The worst outcome of all (libtaskotron's `result_worst`).
    Worst,
}

/// Where a `resultsdb` directive's results are.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ResultsText {
    /// The text itself (`results:`), `${var}`-rendered.
    Inline(String),
    /// A ResultYAML/TAP13 file (`file:`), relative to the work folder or
    /// absolute inside it, `${var}`-rendered.
    File(String),
}

/// Built-in variables every task has.
pub const BUILTIN_VARS: &[&str] = &[
    "item",
    "type",
    "arch",
    "jobid",
    "workdir",
    "artifactsdir",
    "taskdir",
];

/// A formula that cannot be read or does not validate (the error of every
/// strict YAML file).
pub type FormulaError = crate::yaml::FileError;

#[derive(Debug, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
struct RawFormula {
    /// Task name: the check name of its results.
    name: String,
    /// What the task checks.
    desc: String,
    /// Who to ask about it.
    maintainer: String,
    /// Results namespace (libtaskotron), e.g. `dist` or `pkg`.
    namespace: Option<String>,
    /// Arguments the task takes.
    input: Option<RawInput>,
    /// What the machine must offer.
    #[serde(default)]
    environment: Environment,
    /// The steps, in order.
    actions: Option<Vec<RawAction>>,
    /// Older name of `actions`; give one of the two.
    task: Option<Vec<RawAction>>,
}

#[derive(Debug, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
struct RawInput {
    /// Variable names. One named like an item type (`koji_build`,
    /// `bodhi_update`, …) receives `--item`; `arch` receives `--arch`.
    #[serde(default)]
    args: Vec<String>,
}

#[derive(Debug, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
struct RawAction {
    /// Shown in progress and in per-action results.
    name: String,
    /// Directive: commands run one after another as root, each a string
    /// (run by `/bin/sh`; variables are environment variables, expanded by
    /// the shell as data), an argument list (no shell; `${var}` rendered
    /// into each entry) or `ignorereturn:` with a list of those (their exit
    /// status does not fail the action). One string is one command.
    #[schemars(schema_with = "shell_schema")]
    shell: Option<ShellField>,
    /// Directive (libtaskotron): call `callable` from the task file `file`;
    /// every other key is passed as a keyword argument, as data; the return
    /// value (usually ResultYAML) is what `export` stores.
    python: Option<RawPython>,
    /// Directive: run a script of the task folder with bash; `args` are
    /// passed as arguments, never through a shell string.
    bash: Option<RawBash>,
    /// Directive: run a program (on PATH, or a path in the task folder) with
    /// an argument list, no shell.
    exec: Option<RawExec>,
    /// Directive: copy files of the work folder (paths or `*`/`?` patterns)
    /// into the job's artifacts.
    artifact: Option<RawArtifact>,
    /// Directive: report ResultYAML or TAP13, usually `${var}` exported by an
    /// earlier action.
    resultsdb: Option<RawResultsdb>,
    /// Directive: the task's exit status follows the first or the last
    /// result of a ResultYAML/TAP13 text instead of all results.
    exitcode: Option<RawExitcode>,
    /// Directive (libtaskotron): xUnit XML (a file of the work folder) to
    /// ResultYAML, one result (`allpass`) or one per test case (`none`).
    xunit: Option<RawXunit>,
    /// Directive (libtaskotron): an HTML table of ResultYAML results in the
    /// artifacts (`report.html` unless `path` says otherwise).
    create_report: Option<RawCreateReport>,
    /// Directive (libtaskotron): passes (`result: PASS`, exporting `msg`)
    /// or fails (`FAIL`), for trying formulas out.
    dummy: Option<RawDummy>,
    /// Directive (libtaskotron): YUM metadata for a folder of RPMs with
    /// `createrepo_c` (which the image must have).
    createrepo: Option<RawCreaterepo>,
    /// Directive (libtaskotron): RPMs (and build logs) of a Koji build or
    /// tag, fetched by the host into its download cache before the job.
    koji: Option<RawKoji>,
    /// Directive (libtaskotron): the RPMs of a Bodhi update's builds.
    bodhi: Option<RawBodhi>,
    /// Directive (libtaskotron): files of a package's dist-git repository.
    distgit: Option<RawDistgit>,
    /// Variable that receives the action's stdout (a `python` action's
    /// return value).
    export: Option<String>,
    /// Time-out of the action in seconds (default 3600).
    timeout: Option<u64>,
}

#[derive(Debug, Deserialize, JsonSchema)]
struct RawPython {
    /// The Python file, relative to the task folder.
    file: String,
    /// The function (or `Class.method`) to call.
    callable: String,
    /// Keyword arguments of the callable, with `${var}` templating in strings.
    #[serde(flatten)]
    kwargs: serde_json::Map<String, serde_json::Value>,
}

#[derive(Debug, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
struct RawBash {
    /// The script, relative to the task folder.
    script: String,
    /// Its arguments, one argv entry each, with `${var}` templating.
    #[serde(default)]
    args: Vec<String>,
}

#[derive(Debug, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
struct RawExec {
    /// A program on PATH, or a path relative to the task folder (`./x`).
    program: String,
    /// Its arguments, one argv entry each, with `${var}` templating.
    #[serde(default)]
    args: Vec<String>,
}

#[derive(Debug, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
struct RawArtifact {
    /// Paths relative to the work folder; `*` and `?` match within one
    /// path component.
    paths: Vec<String>,
}

#[derive(Debug, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
struct RawResultsdb {
    /// The results text (ResultYAML or TAP13), with `${var}` templating.
    results: Option<String>,
    /// Or a file of ResultYAML or TAP13 in the work folder (`${var}`).
    file: Option<String>,
}

#[derive(Debug, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
struct RawExitcode {
    /// Exit 0 when the first result passed (ResultYAML or TAP13, `${var}`).
    result_first: Option<String>,
    /// Exit 0 when the last result passed (ResultYAML or TAP13, `${var}`).
    result_last: Option<String>,
    /// Exit 0 when the worst result passed (libtaskotron's outcome order).
    result_worst: Option<String>,
}

#[derive(Debug, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
struct RawXunit {
    /// The xUnit XML file, relative to the work folder (`${var}`).
    file: String,
    /// `allpass` (default: one result) or `none` (one per test case).
    aggregation: Option<String>,
}

#[derive(Debug, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
struct RawCreateReport {
    /// ResultYAML text (`${var}`).
    results: Option<String>,
    /// Or a ResultYAML file of the work folder.
    file: Option<String>,
    /// Where in the artifacts (default `report.html`).
    path: Option<String>,
    /// A Jinja2 template: not supported here (refused).
    template: Option<String>,
}

#[derive(Debug, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
struct RawDummy {
    /// `PASS` or `FAIL` (any case).
    result: String,
    /// What a passing dummy exports (`${var}`).
    msg: Option<String>,
}

/// A string or a list of strings (libtaskotron takes `arch: x86_64` and
/// `arch: [x86_64, noarch]`).
#[derive(Debug, Deserialize, JsonSchema)]
#[serde(untagged)]
enum OneOrMany {
    One(String),
    Many(Vec<String>),
}

impl OneOrMany {
    fn into_vec(self) -> Vec<String> {
        match self {
            OneOrMany::One(s) => vec![s],
            OneOrMany::Many(v) => v,
        }
    }
}

#[derive(Debug, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
struct RawKoji {
    /// `download` (one build), `download_tag` (every build of a tag) or
    /// `download_latest_stable` (the newest build of the package in
    /// `fNN-updates`, else `fNN`; nothing when there is none).
    action: String,
    /// The build's N(E)VR (`download`, `download_latest_stable`).
    koji_build: Option<String>,
    /// The tag (`download_tag`).
    koji_tag: Option<String>,
    /// Architectures: `noarch` is added unless the list is empty; `all` is
    /// every supported one; `i386` covers i386 to i686.
    arch: OneOrMany,
    /// Architectures left out.
    arch_exclude: Option<OneOrMany>,
    /// The source RPM too.
    #[serde(default)]
    src: bool,
    /// Debuginfo and debugsource packages too.
    #[serde(default)]
    debuginfo: bool,
    /// The build's `build.log` of each architecture, as `build.log.<arch>`
    /// (a missing one is listed in `log_errors`, not an error).
    #[serde(default)]
    build_log: bool,
    /// Folder the files go to, usually under `${workdir}`.
    target_dir: String,
}

#[derive(Debug, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
struct RawBodhi {
    /// Only `download`: every build of the update, as `koji` downloads it.
    action: String,
    /// The update's alias (`FEDORA-2024-1a2b3c4d5e`).
    update_id: String,
    /// As for `koji`.
    arch: OneOrMany,
    #[serde(default)]
    src: bool,
    target_dir: String,
}

#[derive(Debug, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
struct RawDistgit {
    /// The package (or give `nvr`, from which package and branch follow).
    package: Option<String>,
    nvr: Option<String>,
    /// The branch or commit (`rawhide`, `f41`); from `nvr`'s dist tag when
    /// not given, else `rawhide`.
    #[serde(alias = "branch", alias = "refs")]
    gitref: Option<String>,
    /// dist-git namespace (default `rpms`).
    namespace: Option<String>,
    /// Files of the repository to fetch.
    path: Vec<String>,
    /// Where each goes, relative to `target_dir` (default: its `path`).
    localpath: Option<Vec<String>>,
    /// A file that does not exist is skipped instead of failing the job.
    #[serde(default)]
    ignore_missing: bool,
    target_dir: String,
}

#[derive(Debug, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
struct RawCreaterepo {
    /// The folder of RPMs, relative to the work folder (`${var}`).
    repodir: String,
}

/// `shell:`: one command string, or a list of commands.
#[derive(Debug)]
struct ShellField(Vec<proto::ShellCommand>);

impl<'de> Deserialize<'de> for ShellField {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct Commands;
        impl<'de> serde::de::Visitor<'de> for Commands {
            type Value = ShellField;
            fn expecting(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
                write!(
                    f,
                    "a command, or a list of commands, each {}",
                    proto::SHELL_FORMS
                )
            }
            fn visit_str<E: serde::de::Error>(self, v: &str) -> Result<ShellField, E> {
                Ok(ShellField(vec![proto::ShellCommand::Line(v.to_string())]))
            }
            fn visit_seq<A: serde::de::SeqAccess<'de>>(
                self,
                mut seq: A,
            ) -> Result<ShellField, A::Error> {
                let mut out = Vec::new();
                while let Some(c) = seq.next_element::<proto::ShellCommand>()? {
                    out.push(c);
                }
                Ok(ShellField(out))
            }
        }
        d.deserialize_any(Commands)
    }
}

fn shell_schema(_: &mut schemars::SchemaGenerator) -> schemars::Schema {
    let argv = serde_json::json!({"type": "array", "items": {"type": "string"}, "minItems": 1});
    let simple = serde_json::json!({"anyOf": [{"type": "string"}, argv]});
    let command = serde_json::json!({"anyOf": [
        {"type": "string"},
        argv,
        {
            "type": "object",
            "properties": {"ignorereturn": {"type": "array", "items": simple, "minItems": 1}},
            "required": ["ignorereturn"],
            "additionalProperties": false
        }
    ]});
    schemars::json_schema!({
        "description": "A command, or a list of commands: strings (run by /bin/sh), argument lists (no shell), or {ignorereturn: [...]}",
        "anyOf": [{"type": "string"}, {"type": "array", "items": command, "minItems": 1}]
    })
}

/// A list, with `null` (a key with only a comment under it) as empty.
fn list_or_null<'de, D: serde::Deserializer<'de>>(d: D) -> Result<Vec<String>, D::Error> {
    Ok(Option::<Vec<String>>::deserialize(d)?.unwrap_or_default())
}

impl Formula {
    /// Reads and validates a formula file.
    pub fn load(path: &Path) -> Result<Formula, FormulaError> {
        let text = crate::yaml::read("formula", path)?;
        let formula = Self::parse(path, &text)?;
        formula.check_task_files(&text)?;
        Ok(formula)
    }

    /// The files a `python` or `bash` action names must be in the task
    /// folder: found out now, not after a VM booted.
    fn check_task_files(&self, text: &str) -> Result<(), FormulaError> {
        for (i, a) in self.actions.iter().enumerate() {
            let (file, key) = match &a.directive {
                Directive::Python { file, .. } => (file, "python.file"),
                Directive::Bash { script, .. } if !script.contains("${") => (script, "bash.script"),
                _ => continue,
            };
            if !self.task_dir().join(file).is_file() {
                return Err(FormulaError::invalid(
                    &self.path,
                    line_of_nth(text, "- name:", i),
                    format!("actions[{i}].{key}"),
                    format!(
                        "{file} does not exist in the task folder {}",
                        self.task_dir().display()
                    ),
                ));
            }
        }
        Ok(())
    }

    /// Validates formula text; `path` is used in messages only.
    pub fn parse(path: &Path, text: &str) -> Result<Formula, FormulaError> {
        let raw: RawFormula = crate::yaml::from_str(text).map_err(|e| {
            let message = directive_message(&e.key).unwrap_or(e.message);
            FormulaError::invalid(path, e.line, e.key, message)
        })?;

        let actions = match (raw.actions, raw.task) {
            (Some(a), None) | (None, Some(a)) => a,
            (Some(_), Some(_)) => {
                return Err(FormulaError::invalid(
                    path,
                    line_of(text, "task"),
                    "task",
                    "give either `actions` or the older `task`, not both",
                ))
            }
            (None, None) => {
                return Err(FormulaError::invalid(
                    path,
                    1,
                    "actions",
                    "missing field `actions`",
                ))
            }
        };
        if actions.is_empty() {
            return Err(FormulaError::invalid(
                path,
                line_of(text, "actions"),
                "actions",
                "no actions",
            ));
        }
        let args = raw.input.map(|i| i.args).unwrap_or_default();
        for (i, arg) in args.iter().enumerate() {
            let problem = if !is_var_name(arg) {
                format!("`{arg}` is not a valid variable name")
            } else if !ITEM_TYPES.contains(&arg.as_str()) && arg != "arch" {
                format!(
                    "`{arg}` would get no value: as in libtaskotron, an input arg is `arch` \
                     or an item type, which receives `--item` ({})",
                    ITEM_TYPES.join(", ")
                )
            } else {
                continue;
            };
            return Err(FormulaError::invalid(
                path,
                line_of(text, "args"),
                format!("input.args[{i}]"),
                problem,
            ));
        }
        if let Some(ns) = &raw.namespace {
            if ns.is_empty()
                || !ns
                    .chars()
                    .all(|c| c.is_ascii_alphanumeric() || c == '_' || c == '-')
            {
                return Err(FormulaError::invalid(
                    path,
                    line_of(text, "namespace"),
                    "namespace",
                    format!("`{ns}` is not a namespace: use letters, digits, `-` and `_` (e.g. `dist`, `pkg`, `scratch`)"),
                ));
            }
        }

        let mut out = Vec::with_capacity(actions.len());
        let mut defined: Vec<String> = BUILTIN_VARS
            .iter()
            .map(|v| v.to_string())
            .chain(args.iter().cloned())
            .collect();
        // Variables an earlier action exports: values that may have keys.
        let mut exported: Vec<String> = Vec::new();
        for (i, a) in actions.into_iter().enumerate() {
            let key = format!("actions[{i}]");
            let line = line_of_nth(text, "- name:", i);
            let check_vars = |text: &str, field: &str| -> Result<(), FormulaError> {
                let wrong = |message: String| {
                    Err(FormulaError::invalid(
                        path,
                        line,
                        format!("{key}.{field}"),
                        message,
                    ))
                };
                for r in template_vars(text) {
                    let root = ferrotron_agent::template::root(&r);
                    if !defined.iter().any(|d| d == root) {
                        return wrong(format!(
                            "undefined variable `${{{r}}}` (defined here: {})",
                            defined.join(", ")
                        ));
                    }
                    let path_part = &r[root.len()..];
                    if !path_part.is_empty() {
                        if !exported.iter().any(|e| e == root) {
                            return wrong(format!(
                                "`${{{r}}}`: `{root}` is a string (an input or built-in variable); \
                                 only a value an action exports has keys"
                            ));
                        }
                        if path_part[1..].split('.').any(|p| {
                            p.is_empty()
                                || !p
                                    .chars()
                                    .all(|c| c.is_ascii_alphanumeric() || c == '_' || c == '-')
                        }) {
                            return wrong(format!(
                                "`${{{r}}}` is not a reference: write `${{name.key}}` or `${{name.0}}`"
                            ));
                        }
                    }
                }
                Ok(())
            };
            let given: Vec<&str> = [
                ("shell", a.shell.is_some()),
                ("python", a.python.is_some()),
                ("bash", a.bash.is_some()),
                ("exec", a.exec.is_some()),
                ("artifact", a.artifact.is_some()),
                ("resultsdb", a.resultsdb.is_some()),
                ("exitcode", a.exitcode.is_some()),
                ("xunit", a.xunit.is_some()),
                ("create_report", a.create_report.is_some()),
                ("dummy", a.dummy.is_some()),
                ("createrepo", a.createrepo.is_some()),
                ("koji", a.koji.is_some()),
                ("bodhi", a.bodhi.is_some()),
                ("distgit", a.distgit.is_some()),
            ]
            .into_iter()
            .filter_map(|(name, is)| is.then_some(name))
            .collect();
            if given.is_empty() {
                return Err(FormulaError::invalid(
                    path,
                    line,
                    key,
                    format!(
                        "action `{}` has no directive (this runner supports `shell`, `python`, `bash`, `exec`, `artifact`, `resultsdb`, `exitcode`, `xunit`, `create_report`, `dummy`, `createrepo`, `koji`, `bodhi` and `distgit`)",
                        a.name
                    ),
                ));
            }
            if given.len() > 1 {
                return Err(FormulaError::invalid(
                    path,
                    line,
                    key,
                    format!(
                        "action `{}` has more than one directive ({}); give exactly one",
                        a.name,
                        given.join(", ")
                    ),
                ));
            }
            let invalid = |field: &str, message: String| {
                FormulaError::invalid(path, line, format!("{key}.{field}"), message)
            };
            let directive = if let Some(ShellField(shell)) = a.shell {
                if shell.is_empty() {
                    return Err(invalid("shell", "empty command list".into()));
                }
                for (j, c) in shell.iter().enumerate() {
                    if let Some(p) = c.problem() {
                        return Err(invalid(
                            &format!("shell[{j}]"),
                            format!("{p}: give {}", proto::SHELL_FORMS),
                        ));
                    }
                    // In a command string, plain `${name}` is the shell's
                    // own expansion (an environment variable, maybe `HOME`);
                    // a dotted reference, and every argument-list entry, are
                    // rendered by the agent and checked here.
                    for (text, argv) in c.strings_with_form() {
                        if argv {
                            check_vars(text, &format!("shell[{j}]"))?;
                        } else {
                            for r in template_vars(text).iter().filter(|r| r.contains('.')) {
                                check_vars(&format!("${{{r}}}"), &format!("shell[{j}]"))?;
                            }
                        }
                    }
                }
                Directive::Shell(shell)
            } else if let Some(p) = a.python {
                if !proto::is_contained_path(&p.file) || p.file.contains("${") {
                    return Err(invalid(
                        "python.file",
                        format!("`{}` must be a path inside the task folder", p.file),
                    ));
                }
                if !proto::is_python_name(&p.callable) {
                    return Err(invalid(
                        "python.callable",
                        format!("`{}` is not a Python name", p.callable),
                    ));
                }
                for (name, value) in &p.kwargs {
                    if name.contains('.') || !proto::is_python_name(name) {
                        return Err(invalid(
                            &format!("python.{name}"),
                            format!("`{name}` cannot be a keyword argument (not a Python name)"),
                        ));
                    }
                    for var in json_template_vars(value) {
                        check_vars(&format!("${{{var}}}"), &format!("python.{name}"))?;
                    }
                }
                Directive::Python {
                    file: p.file,
                    callable: p.callable,
                    kwargs: p.kwargs,
                }
            } else if let Some(b) = a.bash {
                if !b.script.contains("${") && !proto::is_contained_path(&b.script) {
                    return Err(invalid(
                        "bash.script",
                        format!("`{}` must be a path inside the task folder", b.script),
                    ));
                }
                check_vars(&b.script, "bash.script")?;
                for (j, arg) in b.args.iter().enumerate() {
                    check_vars(arg, &format!("bash.args[{j}]"))?;
                }
                Directive::Bash {
                    script: b.script,
                    args: b.args,
                }
            } else if let Some(e) = a.exec {
                if e.program.trim().is_empty() {
                    return Err(invalid("exec.program", "must not be empty".into()));
                }
                for (j, arg) in e.args.iter().enumerate() {
                    check_vars(arg, &format!("exec.args[{j}]"))?;
                }
                Directive::Exec {
                    program: e.program,
                    args: e.args,
                }
            } else if let Some(art) = a.artifact {
                if art.paths.is_empty() {
                    return Err(invalid("artifact.paths", "give at least one path".into()));
                }
                for (j, p) in art.paths.iter().enumerate() {
                    let field = format!("artifact.paths[{j}]");
                    check_vars(p, &field)?;
                    if !p.contains("${") && !proto::is_contained_path(p) {
                        return Err(invalid(
                            &field,
                            format!("`{p}` is outside the work folder: give a relative path without `..`"),
                        ));
                    }
                }
                Directive::Artifact { paths: art.paths }
            } else if let Some(r) = a.resultsdb {
                let results = match (r.results, r.file) {
                    (Some(t), None) => {
                        check_vars(&t, "resultsdb.results")?;
                        ResultsText::Inline(t)
                    }
                    (None, Some(f)) => {
                        check_vars(&f, "resultsdb.file")?;
                        ResultsText::File(f)
                    }
                    _ => {
                        return Err(invalid(
                            "resultsdb",
                            "give exactly one of `results` (the text) and `file` (a file of the work folder)".into(),
                        ))
                    }
                };
                Directive::Resultsdb { results }
            } else if let Some(e) = a.exitcode {
                let (pick, results, field) =
                    match (e.result_worst, e.result_last, e.result_first) {
                        (Some(t), None, None) => (Pick::Worst, t, "exitcode.result_worst"),
                        (None, Some(t), None) => (Pick::Last, t, "exitcode.result_last"),
                        (None, None, Some(t)) => (Pick::First, t, "exitcode.result_first"),
                        _ => return Err(invalid(
                            "exitcode",
                            "give exactly one of `result_worst`, `result_last` and `result_first`"
                                .into(),
                        )),
                    };
                check_vars(&results, field)?;
                Directive::Exitcode { pick, results }
            } else if let Some(x) = a.xunit {
                check_vars(&x.file, "xunit.file")?;
                let aggregation = x.aggregation.unwrap_or_else(|| "allpass".into());
                if aggregation != "allpass" && aggregation != "none" {
                    return Err(invalid(
                        "xunit.aggregation",
                        format!("`{aggregation}` is not `allpass` (one result) or `none` (one per test case)"),
                    ));
                }
                builtin(
                    "xunit",
                    [
                        ("file", x.file),
                        ("aggregation", aggregation),
                        ("item", "${item}".into()),
                        ("type", "${type}".into()),
                        ("checkname", raw.name.clone()),
                        ("workdir", "${workdir}".into()),
                    ],
                )
            } else if let Some(r) = a.create_report {
                if r.template.is_some() {
                    return Err(invalid(
                        "create_report.template",
                        "custom Jinja2 templates are not supported here; the built-in report is used without `template`".into(),
                    ));
                }
                let (source, text) = match (r.results, r.file) {
                    (Some(t), None) => ("results", t),
                    (None, Some(f)) => ("file", f),
                    _ => {
                        return Err(invalid(
                            "create_report",
                            "give exactly one of `results` (the text) and `file` (a file of the work folder)".into(),
                        ))
                    }
                };
                check_vars(&text, &format!("create_report.{source}"))?;
                let report = r.path.unwrap_or_else(|| "report.html".into());
                if !proto::is_contained_path(&report) {
                    return Err(invalid(
                        "create_report.path",
                        format!("`{report}` must be a relative path inside the artifacts folder"),
                    ));
                }
                // A relative `file` is found in the work folder: the
                // action's current directory.
                builtin(
                    "create_report",
                    [
                        (source, text),
                        ("path", report),
                        ("artifactsdir", "${artifactsdir}".into()),
                    ],
                )
            } else if let Some(d) = a.dummy {
                if !["pass", "fail"].contains(&d.result.to_ascii_lowercase().as_str()) {
                    return Err(invalid(
                        "dummy.result",
                        format!("`{}` is not `PASS` or `FAIL`", d.result),
                    ));
                }
                let mut kwargs = vec![("result", d.result)];
                if let Some(m) = d.msg {
                    check_vars(&m, "dummy.msg")?;
                    kwargs.push(("msg", m));
                }
                builtin("dummy", kwargs)
            } else if let Some(c) = a.createrepo {
                check_vars(&c.repodir, "createrepo.repodir")?;
                builtin(
                    "createrepo",
                    [("repodir", c.repodir), ("workdir", "${workdir}".into())],
                )
            } else if let Some(k) = a.koji {
                use crate::downloads::KojiAction;
                let action: KojiAction = k.action.parse().map_err(|_| {
                    invalid(
                        "koji.action",
                        format!(
                            "`{}` is not one of download, download_tag, download_latest_stable",
                            k.action
                        ),
                    )
                })?;
                let (needs, given) = match action {
                    KojiAction::DownloadTag => ("koji_tag", &k.koji_tag),
                    _ => ("koji_build", &k.koji_build),
                };
                if given.as_deref().is_none_or(|v| v.trim().is_empty()) {
                    return Err(invalid(
                        &format!("koji.{needs}"),
                        format!("`{}` needs `{needs}`", k.action),
                    ));
                }
                download(
                    DownloadSource::Koji {
                        action,
                        koji_build: k.koji_build,
                        koji_tag: k.koji_tag,
                        arch: k.arch.into_vec(),
                        arch_exclude: k.arch_exclude.map(OneOrMany::into_vec).unwrap_or_default(),
                        src: k.src,
                        debuginfo: k.debuginfo,
                        build_log: k.build_log,
                    },
                    k.target_dir,
                )
            } else if let Some(b) = a.bodhi {
                if b.action != "download" {
                    return Err(invalid(
                        "bodhi.action",
                        format!("`{}` is not `download` (the only action)", b.action),
                    ));
                }
                download(
                    DownloadSource::Bodhi {
                        update_id: b.update_id,
                        arch: b.arch.into_vec(),
                        src: b.src,
                    },
                    b.target_dir,
                )
            } else if let Some(d) = a.distgit {
                if d.package.is_none() && d.nvr.is_none() {
                    return Err(invalid("distgit", "give `package` or `nvr`".into()));
                }
                if d.path.is_empty() {
                    return Err(invalid("distgit.path", "give at least one file".into()));
                }
                if let Some(l) = &d.localpath {
                    if l.len() != d.path.len() {
                        return Err(invalid(
                            "distgit.localpath",
                            format!("has {} entries; `path` has {}", l.len(), d.path.len()),
                        ));
                    }
                }
                for (field, list) in [("path", Some(&d.path)), ("localpath", d.localpath.as_ref())]
                {
                    for (j, p) in list.into_iter().flatten().enumerate() {
                        if !p.contains("${") && !proto::is_contained_path(p) {
                            return Err(invalid(
                                &format!("distgit.{field}[{j}]"),
                                format!("`{p}` must be a relative path without `..`"),
                            ));
                        }
                    }
                }
                download(
                    DownloadSource::Distgit {
                        package: d.package,
                        nvr: d.nvr,
                        gitref: d.gitref,
                        namespace: d.namespace,
                        path: d.path,
                        localpath: d.localpath,
                        ignore_missing: d.ignore_missing,
                    },
                    d.target_dir,
                )
            } else {
                // `given` counted exactly one directive above.
                return Err(FormulaError::invalid(path, line, key, "no directive"));
            };
            if let Directive::Download(dl) = &directive {
                // Rendered by the host before the job starts: only what is
                // known then (the inputs and the built-in variables).
                let name = dl.source.directive();
                let known = |r: &str| {
                    let root = ferrotron_agent::template::root(r);
                    r == root && (BUILTIN_VARS.contains(&root) || args.iter().any(|a| a == root))
                };
                let target = ("target_dir".to_string(), &dl.target_dir);
                for (field, text) in dl.source.strings().into_iter().chain([target]) {
                    if let Some(r) = template_vars(text).into_iter().find(|r| !known(r)) {
                        return Err(invalid(
                            &format!("{name}.{field}"),
                            format!(
                                "`${{{r}}}`: a `{name}` action is done before the job starts, so it may use only the inputs and built-in variables ({})",
                                BUILTIN_VARS.iter().map(|v| v.to_string()).chain(args.iter().cloned()).collect::<Vec<_>>().join(", ")
                            ),
                        ));
                    }
                }
            }
            if let Some(var) = &a.export {
                if !is_var_name(var) {
                    return Err(FormulaError::invalid(
                        path,
                        line,
                        format!("{key}.export"),
                        format!("`{var}` is not a valid variable name"),
                    ));
                }
                if !directive.can_export() {
                    return Err(FormulaError::invalid(
                        path,
                        line,
                        format!("{key}.export"),
                        "only a `shell`, `python`, `bash`, `exec`, `koji`, `bodhi`, `distgit` or built-in libtaskotron action can export",
                    ));
                }
                defined.push(var.clone());
                exported.push(var.clone());
            }
            if a.timeout == Some(0) {
                return Err(FormulaError::invalid(
                    path,
                    line,
                    format!("{key}.timeout"),
                    "must be at least 1 second",
                ));
            }
            out.push(Action {
                name: a.name,
                directive,
                export: a.export,
                timeout_secs: a.timeout,
            });
        }

        Ok(Formula {
            path: path.to_path_buf(),
            name: raw.name,
            desc: raw.desc,
            maintainer: raw.maintainer,
            namespace: raw.namespace,
            args,
            environment: raw.environment,
            actions: out,
        })
    }

    /// The packages `environment` lists that a machine lacks, as
    /// `environment.rpm` / `environment.packages` with the names: `has`
    /// says whether the machine has a package. For a local run (the host
    /// installs nothing): a missing one is bad input, never silently
    /// ignored. VM jobs use `packages::plan`, which installs them.
    pub fn missing_packages(&self, has: &dyn Fn(&str) -> bool) -> Vec<(&'static str, Vec<String>)> {
        [
            ("environment.rpm", &self.environment.rpm),
            ("environment.packages", &self.environment.packages),
        ]
        .into_iter()
        .filter_map(|(key, wanted)| {
            let missing: Vec<String> = wanted.iter().filter(|p| !has(p)).cloned().collect();
            (!missing.is_empty()).then_some((key, missing))
        })
        .collect()
    }

    /// The folder holding the formula and the task's files: what is
    /// uploaded to the guest (or copied for a local run).
    pub fn task_dir(&self) -> &Path {
        self.path
            .parent()
            .filter(|p| !p.as_os_str().is_empty())
            .unwrap_or(Path::new("."))
    }

    /// JSON Schema of the formula language, generated from the types that
    /// parse it (so editors check files exactly as `formula check` does).
    pub fn json_schema() -> String {
        let mut schema = schemars::schema_for!(RawFormula);
        schema.insert(
            "title".into(),
            "Ferrotron / libtaskotron task formula (runtask.yml)".into(),
        );
        let mut text = serde_json::to_string_pretty(&schema).unwrap_or_default();
        text.push('\n');
        text
    }

    /// The input variables a job gets from `--item/--type/--arch`, checked
    /// against the formula's declared args.
    pub fn input_vars(
        &self,
        item: &str,
        item_type: &str,
        arch: &str,
    ) -> Result<BTreeMap<String, String>, FormulaError> {
        if !ITEM_TYPES.contains(&item_type) {
            return Err(FormulaError::invalid(
                &self.path,
                1,
                "--type",
                format!(
                    "unknown item type `{item_type}` (known: {})",
                    ITEM_TYPES.join(", ")
                ),
            ));
        }
        // A generic `item` arg takes an item of any type.
        let declared_types: Vec<&String> = self
            .args
            .iter()
            .filter(|a| ITEM_TYPES.contains(&a.as_str()) && *a != "item")
            .collect();
        if !declared_types.is_empty() && !declared_types.iter().any(|a| *a == item_type) {
            return Err(FormulaError::invalid(
                &self.path,
                1,
                "input.args",
                format!(
                    "--type {item_type} does not match the formula, which takes {}",
                    declared_types
                        .iter()
                        .map(|s| s.as_str())
                        .collect::<Vec<_>>()
                        .join(", ")
                ),
            ));
        }
        let mut vars = BTreeMap::new();
        for arg in &self.args {
            let value = if arg == item_type {
                item
            } else if arg == "arch" {
                arch
            } else if arg == "item" {
                item
            } else {
                continue;
            };
            vars.insert(arg.clone(), value.to_string());
        }
        Ok(vars)
    }
}

/// libtaskotron directives this runner does not run, and why.
const UNAVAILABLE_DIRECTIVES: &[(&str, &str)] = &[
    (
        "yumrepoinfo",
        "it reads Fedora's repository layout, which this installation cannot reach",
    ),
    (
        "mash",
        "it composes repositories from Koji, which this installation cannot reach",
    ),
];

fn download(source: DownloadSource, target_dir: String) -> Directive {
    Directive::Download(Download { source, target_dir })
}

/// A [`Directive::Builtin`] of `function` with string keyword arguments.
fn builtin<'a>(
    function: &'static str,
    kwargs: impl IntoIterator<Item = (&'a str, String)>,
) -> Directive {
    Directive::Builtin {
        function,
        kwargs: kwargs
            .into_iter()
            .map(|(k, v)| (k.to_string(), serde_json::Value::String(v)))
            .collect(),
    }
}

/// A clear message for a known directive this runner cannot run, given the
/// key path of an unknown field (`actions[2].koji`).
fn directive_message(key: &str) -> Option<String> {
    let (action, name) = key.rsplit_once('.')?;
    if !(action.starts_with("actions[") || action.starts_with("task[")) {
        return None;
    }
    let (_, why) = UNAVAILABLE_DIRECTIVES.iter().find(|(d, _)| *d == name)?;
    Some(format!("directive `{name}` cannot run here: {why}"))
}

fn is_var_name(s: &str) -> bool {
    let mut chars = s.chars();
    matches!(chars.next(), Some(c) if c.is_ascii_alphabetic() || c == '_')
        && chars.all(|c| c.is_ascii_alphanumeric() || c == '_')
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(text: &str) -> Result<Formula, FormulaError> {
        Formula::parse(Path::new("runtask.yml"), text)
    }

    const GOOD: &str = "name: hello\ndesc: says hello\nmaintainer: me\ninput:\n  args: [koji_build, arch]\nactions:\n  - name: greet\n    shell:\n      - echo hello ${koji_build}\n    timeout: 30\n";

    #[test]
    fn accepts_a_minimal_formula() {
        let f = parse(GOOD).expect("valid");
        assert_eq!(f.name, "hello");
        assert_eq!(f.actions.len(), 1);
        assert_eq!(f.actions[0].timeout_secs, Some(30));
    }

    #[test]
    fn unknown_key_names_line_and_path() {
        let text = GOOD.replace("    timeout: 30\n", "    timeuot: 30\n");
        let err = parse(&text).expect_err("unknown key").to_string();
        assert!(
            err.starts_with("runtask.yml:10: actions[0].timeuot: unknown field `timeuot`"),
            "{err}"
        );
        assert!(err.contains("unknown field `timeuot`"), "{err}");
    }

    #[test]
    fn wrong_type_names_key() {
        let text = GOOD.replace("timeout: 30", "timeout: soon");
        let err = parse(&text).expect_err("bad type").to_string();
        assert!(err.contains("actions[0].timeout"), "{err}");
        assert!(err.contains("runtask.yml:10"), "{err}");
    }

    #[test]
    fn action_without_directive_is_rejected() {
        let text = "name: a\ndesc: b\nmaintainer: c\nactions:\n  - name: nothing\n";
        let err = parse(text).expect_err("no directive").to_string();
        assert_eq!(
            err,
            "runtask.yml:5: actions[0]: action `nothing` has no directive (this runner supports `shell`, `python`, `bash`, `exec`, `artifact`, `resultsdb`, `exitcode`, `xunit`, `create_report`, `dummy`, `createrepo`, `koji`, `bodhi` and `distgit`)"
        );
    }

    #[test]
    fn resultsdb_needs_a_defined_variable() {
        let text = "name: a\ndesc: b\nmaintainer: c\nactions:\n  - name: check\n    shell: [echo x]\n    export: out\n  - name: report\n    resultsdb:\n      results: ${out}\n";
        let f = parse(text).expect("valid");
        assert_eq!(
            f.actions[1].directive,
            Directive::Resultsdb {
                results: ResultsText::Inline("${out}".into())
            }
        );
        let bad = text.replace("${out}", "${nope}");
        let err = parse(&bad).expect_err("undefined").to_string();
        assert!(
            err.starts_with(
                "runtask.yml:8: actions[1].resultsdb.results: undefined variable `${nope}`"
            ),
            "{err}"
        );
    }

    #[test]
    fn templates_render_known_names_only() {
        let vars =
            ferrotron_agent::template::string_values(&[("a".to_string(), "1".to_string())].into());
        assert_eq!(render_template("x${a}y${b}z${", &vars), "x1y${b}z${");
        assert_eq!(template_vars("${a} and ${b}"), vec!["a", "b"]);
    }

    #[test]
    fn unavailable_directives_are_named() {
        let text = GOOD.replace(
            "    shell:\n      - echo hello ${koji_build}\n",
            "    mash:\n      rpmdir: x\n",
        );
        let err = parse(&text).expect_err("mash").to_string();
        assert_eq!(
            err,
            "runtask.yml:8: actions[0].mash: directive `mash` cannot run here: it composes repositories from Koji, which this installation cannot reach"
        );
    }

    #[test]
    fn download_directives_parse_and_refuse_what_the_host_cannot_know() {
        let with = |directive: &str| {
            GOOD.replace("    shell:\n      - echo hello ${koji_build}\n", directive)
        };
        let f = parse(&with(
            "    koji:\n      action: download\n      koji_build: ${koji_build}\n      arch: x86_64\n      target_dir: ${workdir}/rpms\n    export: koji_output\n",
        ))
        .expect("koji");
        match &f.actions[0].directive {
            Directive::Download(d) => {
                assert_eq!(d.target_dir, "${workdir}/rpms");
                assert!(
                    matches!(&d.source, DownloadSource::Koji { arch, src: false, .. } if arch == &["x86_64"])
                );
            }
            other => panic!("{other:?}"),
        }
        let err = |directive: &str| parse(&with(directive)).expect_err("bad").to_string();
        assert_eq!(
            err("    koji:\n      action: fetch\n      koji_build: x\n      arch: []\n      target_dir: r\n"),
            "runtask.yml:7: actions[0].koji.action: `fetch` is not one of download, download_tag, download_latest_stable"
        );
        assert_eq!(
            err("    koji:\n      action: download_tag\n      koji_build: x\n      arch: []\n      target_dir: r\n"),
            "runtask.yml:7: actions[0].koji.koji_tag: `download_tag` needs `koji_tag`"
        );
        assert!(err(
            "    koji:\n      action: download\n      koji_build: x\n      arch: [x86_64]\n"
        )
        .contains("missing field `target_dir`"),);
        let e = err("    bodhi:\n      action: comment\n      update_id: U\n      arch: x86_64\n      target_dir: r\n");
        assert!(
            e.ends_with("actions[0].bodhi.action: `comment` is not `download` (the only action)"),
            "{e}"
        );
        let e = err("    distgit:\n      package: hello\n      path: [a, b]\n      localpath: [a]\n      target_dir: r\n");
        assert!(
            e.ends_with("actions[0].distgit.localpath: has 1 entries; `path` has 2"),
            "{e}"
        );
        let e = err("    distgit:\n      package: hello\n      path: [../etc/passwd]\n      target_dir: r\n");
        assert!(
            e.ends_with(
                "actions[0].distgit.path[0]: `../etc/passwd` must be a relative path without `..`"
            ),
            "{e}"
        );
        // Arguments are rendered before the job starts: an export of an
        // earlier action does not exist then.
        let text = GOOD.replace(
            "    shell:\n      - echo hello ${koji_build}\n",
            "    shell:\n      - echo hello\n    export: out\n  - name: dl\n    koji:\n      action: download\n      koji_build: ${out}\n      arch: x86_64\n      target_dir: r\n",
        );
        let e = parse(&text).expect_err("export").to_string();
        assert!(
            e.contains("actions[1].koji.koji_build: `${out}`: a `koji` action is done before the job starts, so it may use only the inputs and built-in variables (item, type, arch, jobid, workdir, artifactsdir, taskdir, koji_build, arch)"),
            "{e}"
        );
    }

    #[test]
    fn committed_schema_matches_the_code() {
        let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("../docs/formula.schema.json");
        let committed = std::fs::read_to_string(&path).unwrap_or_default();
        assert!(
            committed == Formula::json_schema(),
            "{} is stale: regenerate it with `ferrotron formula schema > docs/formula.schema.json`",
            path.display()
        );
    }

    #[test]
    fn exitcode_takes_exactly_one_rule() {
        let base = "name: a\ndesc: b\nmaintainer: c\nactions:\n  - name: check\n    shell: [echo x]\n    export: out\n  - name: decide\n    exitcode:\n";
        let f = parse(&format!("{base}      result_last: ${{out}}\n")).expect("valid");
        assert_eq!(
            f.actions[1].directive,
            Directive::Exitcode {
                pick: Pick::Last,
                results: "${out}".into()
            }
        );
        let both = format!("{base}      result_first: ${{out}}\n      result_last: ${{out}}\n");
        let err = parse(&both).expect_err("both").to_string();
        assert_eq!(err, "runtask.yml:8: actions[1].exitcode: give exactly one of `result_worst`, `result_last` and `result_first`");
        let two = "name: a\ndesc: b\nmaintainer: c\nactions:\n  - name: x\n    shell: [true]\n    resultsdb:\n      results: y\n";
        let err = parse(two).expect_err("two directives").to_string();
        assert_eq!(
            err,
            "runtask.yml:5: actions[0]: action `x` has more than one directive (shell, resultsdb); give exactly one"
        );
    }

    #[test]
    fn older_task_key_is_accepted() {
        let text = GOOD.replace("actions:", "task:");
        assert!(parse(&text).is_ok());
    }

    #[test]
    fn every_item_type_is_accepted_and_a_mismatch_names_both() {
        for t in ITEM_TYPES {
            let f =
                parse(&GOOD.replace("[koji_build, arch]", &format!("[{t}, arch]"))).expect("valid");
            let vars = f
                .input_vars("the-item", t, "x86_64")
                .expect("matching type");
            assert_eq!(vars[*t], "the-item", "{t}");
            if *t == "item" {
                // The generic arg takes any type.
                let vars = f.input_vars("abc", "compose", "x86_64").expect("any type");
                assert_eq!(vars["item"], "abc");
                continue;
            }
            let other = if *t == "compose" {
                "git_commit"
            } else {
                "compose"
            };
            let err = f
                .input_vars("the-item", other, "x86_64")
                .expect_err("mismatch")
                .to_string();
            assert_eq!(
                err,
                format!("runtask.yml:1: input.args: --type {other} does not match the formula, which takes {t}")
            );
        }
        // Without a typed arg, every type is accepted; unknown types are not.
        let untyped = parse(&GOOD.replace("[koji_build, arch]", "[arch]")).expect("valid");
        for t in ITEM_TYPES {
            assert!(untyped.input_vars("x", t, "x86_64").is_ok(), "{t}");
        }
        let err = untyped
            .input_vars("x", "rpm", "x86_64")
            .expect_err("unknown type")
            .to_string();
        assert_eq!(err, "runtask.yml:1: --type: unknown item type `rpm` (known: koji_build, bodhi_update, koji_tag, compose, git_commit, dist_git_commit, docker_image, module_build, item)");
    }

    #[test]
    fn python_bash_exec_artifact_are_checked_before_running() {
        let head = "name: a\ndesc: b\nmaintainer: c\ninput:\n  args: [koji_build]\nactions:\n  - name: x\n";
        let f = parse(&format!(
            "{head}    python:\n      file: lib/check.py\n      callable: Check.run\n      nvr: ${{koji_build}}\n      tags: [a, 1]\n    export: out\n"
        ))
        .expect("valid");
        let Directive::Python {
            file,
            callable,
            kwargs,
        } = &f.actions[0].directive
        else {
            panic!("python expected");
        };
        assert_eq!(
            (file.as_str(), callable.as_str()),
            ("lib/check.py", "Check.run")
        );
        assert_eq!(
            serde_json::Value::Object(kwargs.clone()),
            serde_json::json!({"nvr": "${koji_build}", "tags": ["a", 1]})
        );
        let cases = [
            (
                "    python:\n      file: check.py\n      callable: 1run\n",
                "runtask.yml:7: actions[0].python.callable: `1run` is not a Python name",
            ),
            (
                "    python:\n      file: ../check.py\n      callable: run\n",
                "runtask.yml:7: actions[0].python.file: `../check.py` must be a path inside the task folder",
            ),
            (
                "    python:\n      file: check.py\n      callable: run\n      x: ${nope}\n",
                "runtask.yml:7: actions[0].python.x: undefined variable `${nope}`",
            ),
            (
                "    python:\n      callable: run\n",
                "runtask.yml:9: actions[0].python: missing field `file`",
            ),
            (
                "    exec:\n      program: ls\n      args: [\"${nope}\"]\n",
                "runtask.yml:7: actions[0].exec.args[0]: undefined variable `${nope}`",
            ),
            (
                "    bash:\n      script: /bin/run.sh\n",
                "runtask.yml:7: actions[0].bash.script: `/bin/run.sh` must be a path inside the task folder",
            ),
            (
                "    bash:\n      script: run.sh\n      argz: []\n",
                "runtask.yml:10: actions[0].bash.argz: unknown field `argz`",
            ),
            (
                "    artifact:\n      paths: [a.log]\n    export: v\n",
                "runtask.yml:7: actions[0].export: only a `shell`, `python`, `bash`, `exec`, `koji`, `bodhi`, `distgit` or built-in libtaskotron action can export",
            ),
            (
                "    artifact:\n      paths: []\n",
                "runtask.yml:7: actions[0].artifact.paths: give at least one path",
            ),
        ];
        for (body, want) in cases {
            let err = parse(&format!("{head}{body}")).expect_err(body).to_string();
            assert!(err.starts_with(want), "{body}\n got: {err}\nwant: {want}");
        }
    }

    #[test]
    fn type_mismatch_is_reported() {
        let f = parse(GOOD).expect("valid");
        let err = f
            .input_vars("x", "bodhi_update", "x86_64")
            .expect_err("mismatch")
            .to_string();
        assert!(
            err.contains("does not match the formula, which takes koji_build"),
            "{err}"
        );
        let vars = f.input_vars("foo-1.0", "koji_build", "x86_64").expect("ok");
        assert_eq!(vars["koji_build"], "foo-1.0");
        assert_eq!(vars["arch"], "x86_64");
    }
}
