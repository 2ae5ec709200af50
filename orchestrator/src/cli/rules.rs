//! `ferrotron rules check|test`: validate rules files, and show what a
//! message would make of them, without a queue or a service.

use std::path::{Path, PathBuf};

use clap::Subcommand;
use ferrotron::exit::ExitStatus;
use ferrotron::rules::{Evaluation, Mappings, Message, Rules};

use super::{print_error, CmdResult, Failure};

#[derive(Subcommand)]
pub enum RulesCommand {
    /// Validate rules files (and a mappings file); one line per file.
    Check {
        /// Also validate this mappings file.
        #[arg(long)]
        mappings: Option<PathBuf>,
        #[arg(required = true)]
        files: Vec<PathBuf>,
    },
    /// Show the fields a message gives and the jobs it would create.
    Test {
        /// Field mappings (default: the built-in ones).
        #[arg(long)]
        mappings: Option<PathBuf>,
        /// Print the evaluation as JSON.
        #[arg(long)]
        json: bool,
        /// The rules file.
        rules: PathBuf,
        /// A message: `{"id", "topic", "headers", "body"}` as JSON.
        message: PathBuf,
    },
}

/// Runs the command (exit status 0 fine, 2 bad input).
pub fn main(cmd: RulesCommand) -> CmdResult {
    match cmd {
        RulesCommand::Check { mappings, files } => Ok(check(mappings.as_deref(), &files)),
        RulesCommand::Test {
            mappings,
            json,
            rules,
            message,
        } => test(mappings.as_deref(), json, &rules, &message),
    }
}

fn load_mappings(path: Option<&Path>) -> Result<Mappings, ferrotron::yaml::FileError> {
    match path {
        Some(p) => Mappings::load(p),
        None => Mappings::builtin(),
    }
}

/// One line per file; every bad file is reported, not only the first.
fn check(mappings: Option<&Path>, files: &[PathBuf]) -> ExitStatus {
    let mut status = ExitStatus::Passed;
    if let Some(p) = mappings {
        match Mappings::load(p) {
            Ok(m) => println!("{}: ok ({} mapping(s))", p.display(), m.len()),
            Err(e) => {
                status = ExitStatus::BadInput;
                print_error(&e);
            }
        }
    }
    for f in files {
        match Rules::load(f) {
            Ok(r) => println!(
                "{}: ok ({} rule(s), {} task(s))",
                f.display(),
                r.len(),
                r.task_count()
            ),
            Err(e) => {
                status = ExitStatus::BadInput;
                print_error(&e);
            }
        }
    }
    status
}

fn test(mappings: Option<&Path>, json: bool, rules: &Path, message: &Path) -> CmdResult {
    let mappings = load_mappings(mappings)?;
    let rules = Rules::load(rules)?;
    let text = std::fs::read_to_string(message).map_err(|e| {
        Failure::bad_input(format!("{}: cannot read message: {e}", message.display()))
    })?;
    let msg = Message::from_json(&text)
        .map_err(|e| Failure::bad_input(format!("{}: {}", message.display(), e)))?;
    let ev = rules.evaluate(&mappings, &msg);
    if json {
        let s =
            serde_json::to_string_pretty(&ev).map_err(|e| Failure::new(ExitStatus::BadInput, e))?;
        println!("{s}");
    } else {
        print!("{}", table(&ev));
    }
    Ok(ExitStatus::Passed)
}

/// The human view: fields, then one line per job, then skipped tasks.
fn table(ev: &Evaluation) -> String {
    let mut out = String::new();
    out.push_str(&format!(
        "message: {} (id {})\n",
        ev.topic,
        ev.message_id.as_deref().unwrap_or("none")
    ));
    out.push_str(&format!(
        "mapping: {}\n",
        ev.extracted.mapping.as_deref().unwrap_or("none matched")
    ));
    if !ev.extracted.fields.is_empty() {
        out.push_str("fields:\n");
        let w = ev
            .extracted
            .fields
            .keys()
            .map(|k| k.len())
            .max()
            .unwrap_or(0);
        for (k, v) in &ev.extracted.fields {
            out.push_str(&format!("  {k:w$}  {v:?}\n"));
        }
    }
    for (k, why) in &ev.extracted.missing {
        out.push_str(&format!("  {k}: not set ({why})\n"));
    }
    let matched: Vec<String> = ev.matched_rules.iter().map(|i| i.to_string()).collect();
    out.push_str(&format!(
        "rules matched: {}\n",
        if matched.is_empty() {
            "none".to_string()
        } else {
            matched.join(", ")
        }
    ));
    out.push_str(&format!("jobs: {}\n", ev.jobs.len()));
    if !ev.jobs.is_empty() {
        let header = [
            "RULE", "TASK", "ITEM", "TYPE", "ARCH", "PRIO", "IMAGE", "REPO", "REF", "PATH",
        ];
        // Values come from messages: shown escaped, so a newline or a
        // terminal escape in an item cannot fake a line of the table.
        let rows: Vec<[String; 10]> = ev
            .jobs
            .iter()
            .map(|j| {
                [
                    j.rule.to_string(),
                    j.task.clone(),
                    j.item.clone(),
                    j.item_type.clone(),
                    j.arch.clone(),
                    j.priority.to_string(),
                    j.image.clone().unwrap_or_else(|| "-".into()),
                    j.repo.clone(),
                    j.git_ref.clone(),
                    j.path.clone(),
                ]
                .map(|c| c.escape_debug().to_string())
            })
            .collect();
        let mut widths = header.map(str::len);
        for r in &rows {
            for (w, c) in widths.iter_mut().zip(r) {
                *w = (*w).max(c.chars().count());
            }
        }
        let line = |cells: &[String]| {
            let s: Vec<String> = cells
                .iter()
                .zip(widths)
                .map(|(c, w)| format!("{c:w$}"))
                .collect();
            format!("  {}\n", s.join("  ").trim_end())
        };
        out.push_str(&line(&header.map(String::from)));
        for r in &rows {
            out.push_str(&line(r));
        }
    }
    for s in &ev.skipped {
        out.push_str(&format!(
            "skipped: rule {} task {}: {}\n",
            s.rule, s.task, s.reason
        ));
    }
    out
}
