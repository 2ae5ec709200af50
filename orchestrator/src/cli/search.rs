//! `ferrotron search QUERY`: full-text search over job logs, task output
//! and result notes, one line per hit (`job  file:line  snippet`). The
//! work is `App::search`, as for `GET /api/v1/search`.

use std::io::IsTerminal;

use clap::Args;
use ferrotron::app::search::{Hit, SearchArgs as Search};
use ferrotron::exit::ExitStatus;
use ferrotron::search::render;
use ferrotron::settings::Settings;
use ferrotron::store::Page;

use super::{with_app, CmdResult, Failure};

#[derive(Args)]
pub struct SearchArgs {
    /// Words (all must appear in the line), "a phrase", word*, a OR b,
    /// -word (must not appear); a word is letters and digits, case ignored.
    #[arg(required_unless_present = "reindex")]
    query: Option<String>,
    /// Instead of searching: index again the logs of every job whose
    /// artifacts are in this data folder (those stored before the index
    /// existed); run on each host that stores artifacts.
    #[arg(long, conflicts_with = "query")]
    reindex: bool,
    /// Only lines of this job (UUID).
    #[arg(long)]
    job: Option<String>,
    /// Only notes of this testcase's results, and lines of jobs with one.
    #[arg(long)]
    testcase: Option<String>,
    /// Only lines about this item.
    #[arg(long)]
    item: Option<String>,
    /// Only notes of results with this outcome, and lines of jobs with one
    /// (of --testcase, if given).
    #[arg(long)]
    outcome: Option<String>,
    /// Stored at or after (2024-01-31, 2024-01-31T12:00:00Z).
    #[arg(long)]
    since: Option<String>,
    /// Stored at or before.
    #[arg(long)]
    until: Option<String>,
    /// Hits per page.
    #[arg(long, default_value_t = 20, value_parser = clap::value_parser!(i64).range(1..=100))]
    limit: i64,
    /// Page, from 0.
    #[arg(long, default_value_t = 0, value_parser = clap::value_parser!(i64).range(0..))]
    page: i64,
}

/// `job  file:line  snippet` (a note: `results/ID:line`); matches in bold
/// on a terminal.
fn line(h: &Hit, bold: bool) -> String {
    let job = h.job.as_deref().unwrap_or("-");
    let place = match (&h.file, h.result_id) {
        (Some(f), _) => f.clone(),
        (None, Some(id)) => format!("results/{id}"),
        (None, None) => "-".into(),
    };
    let snippet = if bold {
        render(&h.snippet, "\x1b[1m", "\x1b[0m")
    } else {
        render(&h.snippet, "", "")
    };
    format!("{job}  {place}:{}  {snippet}", h.line)
}

pub fn run(settings: &Settings, a: SearchArgs) -> CmdResult {
    if a.reindex {
        let done = with_app(settings, async |app| app.reindex().await)?.map_err(Failure::from)?;
        println!("indexed {} file(s) of {} job(s)", done.files, done.jobs);
        return Ok(ExitStatus::Passed);
    }
    let args = Search {
        query: a.query.unwrap_or_default(),
        job: a.job,
        testcase: a.testcase,
        item: a.item,
        outcome: a.outcome,
        since: a.since,
        until: a.until,
    };
    let page = Page {
        page: a.page,
        limit: a.limit,
    };
    let (hits, more) =
        with_app(settings, async |app| app.search(&args, page).await)?.map_err(Failure::from)?;
    let bold = std::io::stdout().is_terminal();
    for h in &hits {
        println!("{}", line(h, bold));
    }
    if hits.is_empty() {
        eprintln!("ferrotron: no line matches `{}`", args.query);
    } else if more {
        eprintln!("ferrotron: more hits: --page {}", a.page + 1);
    }
    Ok(ExitStatus::Passed)
}
