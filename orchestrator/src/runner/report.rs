//! A job's results, once its agent has finished: what its `resultsdb`
//! actions reported (ResultYAML or TAP13 exported by earlier actions), or
//! one result per action when there is nothing to report. Written to the
//! job's artifacts as `results.yml` and `results.tap`, both runners alike,
//! and kept whole (every key, the artifact) for recording.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use ferrotron_agent::protocol::{self as proto, JobSpec, TaskResult};

use super::published;
use crate::formula::{render_template, Directive, Formula, Pick, ResultsText};
use crate::results::{self, record, resultyaml, CheckResult, Defaults};
use ferrotron_agent::template::{string_values, Values};

/// A job's result files that cannot be read or written.
#[derive(Debug, thiserror::Error)]
pub enum ReportError {
    #[error("cannot read {}", .0.display())]
    Read(PathBuf, #[source] std::io::Error),
    #[error("{} is not the JSON the agent writes", .0.display())]
    Json(PathBuf, #[source] serde_json::Error),
    #[error("cannot write {}", .0.display())]
    Write(PathBuf, #[source] std::io::Error),
}

/// What a finished job reports.
#[derive(Debug)]
pub struct Report {
    /// Each result's `artifact` is a path inside the job's artifacts
    /// folder, or `None` (see [`finish`]).
    pub results: Vec<CheckResult>,
    pub tap: String,
    /// What an `exitcode` directive decided (pass or not), if there is one.
    pub verdict: Option<bool>,
    /// For the runner's log: artifacts named by results that cannot be
    /// linked.
    pub warnings: Vec<String>,
}

impl Report {
    pub fn passed(&self) -> bool {
        passed(&self.results, self.verdict)
    }
}

/// Whether a job passed: its `exitcode` directive's verdict when it has
/// one, else every result PASSED or INFO (and there is at least one).
pub fn passed(results: &[CheckResult], verdict: Option<bool>) -> bool {
    verdict.unwrap_or_else(|| !results.is_empty() && results.iter().all(|r| r.outcome.is_ok()))
}

/// The job's results and their TAP13, after writing both files.
/// `results.yml` keeps each `artifact` as the task wrote it; the results
/// returned name it relative to the job's artifacts folder (`artifacts`
/// here, `spec.artifactsdir` as the task saw it), and drop it, with a
/// warning, when it is not a file published there.
pub fn finish(
    formula: &Formula,
    spec: &JobSpec,
    artifacts: &Path,
    by_action: Vec<TaskResult>,
) -> Result<Report, ReportError> {
    // A failed action ended the task before its reports: its own result
    // says why, and is the job's.
    let all_ran = by_action.iter().all(|r| r.outcome.is_ok());
    let has_reports = formula.actions.iter().any(|a| !a.directive.runs_in_agent());
    let mut vars: Values = string_values(&spec.vars);
    let mut files: BTreeMap<String, Result<String, String>> = BTreeMap::new();
    if all_ran && has_reports {
        vars.extend(read_exports(artifacts)?);
        if !spec.result_files.is_empty() {
            files = read_json(&artifacts.join(proto::RESULT_FILES_FILE))?;
        }
    }
    let defaults = Defaults::new(&spec.item, &spec.item_type, &spec.name);
    let parse =
        |text: &str| results::parse_any(&render_template(text, &vars), &defaults).into_results();
    let parse_file = |file: &String| -> Vec<CheckResult> {
        match files.get(file) {
            Some(Ok(text)) => results::parse_any(text, &defaults).into_results(),
            Some(Err(why)) => vec![file_problem(&defaults, file, why)],
            None => vec![file_problem(&defaults, file, "the agent did not read it")],
        }
    };
    let mut reported = Vec::new();
    let mut verdict = None;
    for a in &formula.actions {
        match &a.directive {
            Directive::Resultsdb {
                results: ResultsText::Inline(text),
            } => reported.extend(parse(text)),
            Directive::Resultsdb {
                results: ResultsText::File(file),
            } => reported.extend(parse_file(file)),
            Directive::Exitcode { pick, results } => {
                let all = parse(results);
                let passed = match pick {
                    Pick::First => all.first().is_some_and(|r| r.outcome.is_ok()),
                    Pick::Last => all.last().is_some_and(|r| r.outcome.is_ok()),
                    // The worst passes only when every one does.
                    Pick::Worst => !all.is_empty() && all.iter().all(|r| r.outcome.is_ok()),
                };
                // Several exitcode actions: the worst verdict wins.
                verdict = Some(all_ran && passed && verdict.unwrap_or(true));
            }
            _ => {}
        }
    }
    let mut checks: Vec<CheckResult> = if reported.is_empty() || !all_ran {
        by_action.iter().map(CheckResult::from).collect()
    } else {
        reported
    };
    // libtaskotron reported `<namespace>.<checkname>`, which is what
    // consumers look results up by.
    if let Some(ns) = &formula.namespace {
        for c in &mut checks {
            c.checkname = format!("{ns}.{}", c.checkname);
        }
    }
    let tap_results: Vec<TaskResult> = checks.iter().map(to_task_result).collect();
    let tap = ferrotron_agent::tap::tap13(&tap_results);
    write(
        &artifacts.join("results.yml"),
        resultyaml::emit(&checks).as_bytes(),
    )?;
    write(&artifacts.join("results.tap"), tap.as_bytes())?;
    let mut warnings = Vec::new();
    let results = checks
        .into_iter()
        .map(|mut c| {
            if let Some(given) = c.artifact.take() {
                c.artifact = record::artifact_path(&given, &spec.artifactsdir)
                    .filter(|rel| published::publishes(artifacts, rel));
                if c.artifact.is_none() {
                    warnings.push(format!(
                        "result {}: artifact {given:?} is not a file in the job's artifacts \
                         folder; its ref_url is the job's artifacts instead",
                        c.checkname
                    ));
                }
            }
            c
        })
        .collect();
    Ok(Report {
        results,
        tap,
        verdict,
        warnings,
    })
}

/// The agent's result of each action (`results.json`).
pub fn read_results(artifacts: &Path) -> Result<Vec<TaskResult>, ReportError> {
    read_json(&artifacts.join("results.json"))
}

fn read_exports(artifacts: &Path) -> Result<Values, ReportError> {
    read_json(&artifacts.join(proto::EXPORTS_FILE))
}

/// The result of a `resultsdb: file:` whose file cannot be used.
fn file_problem(defaults: &Defaults, file: &str, why: &str) -> CheckResult {
    results::Problem {
        format: results::Format::ResultYaml,
        line: None,
        message: format!("resultsdb file {file}: {why}"),
        outcome: results::Outcome::Error,
        item: defaults.item.clone(),
        item_type: defaults.item_type.clone(),
        checkname: defaults.checkname.clone(),
    }
    .to_result()
}

fn read_json<T: serde::de::DeserializeOwned>(p: &Path) -> Result<T, ReportError> {
    let bytes = std::fs::read(p).map_err(|e| ReportError::Read(p.to_path_buf(), e))?;
    serde_json::from_slice(&bytes).map_err(|e| ReportError::Json(p.to_path_buf(), e))
}

fn write(path: &Path, bytes: &[u8]) -> Result<(), ReportError> {
    std::fs::write(path, bytes).map_err(|e| ReportError::Write(path.to_path_buf(), e))
}

/// The shape TAP13 is written from: the note is the summary, and
/// `details.output` (when a task gave one) the output.
fn to_task_result(c: &CheckResult) -> TaskResult {
    let output = c
        .extra
        .get("details")
        .and_then(|d| d.get("output"))
        .and_then(|o| o.as_str())
        .unwrap_or_default()
        .to_string();
    TaskResult {
        checkname: c.checkname.clone(),
        item: c.item.clone(),
        item_type: c.item_type.clone(),
        outcome: c.outcome,
        summary: c.note.clone().unwrap_or_default(),
        output,
    }
}
