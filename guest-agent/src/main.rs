//! `ferrotron-agent run JOB.json`: runs a job, printing JSON-lines events.
//! Exit status: 0 all passed, 1 some result did not pass, 2 bad job file or
//! usage, 3 internal error.

use std::io::Write;
use std::path::Path;
use std::process::ExitCode;

use ferrotron_agent::protocol::{Event, JobSpec, Outcome};
use ferrotron_agent::runner::run_job;

const USAGE: &str = "\
usage: ferrotron-agent run JOB.json
       ferrotron-agent --version | --help

Runs the job described by JOB.json and prints one JSON event per line.
Exit status: 0 all results passed, 1 some did not, 2 bad job file or usage,
3 internal error.";

fn main() -> ExitCode {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let args: Vec<&str> = args.iter().map(String::as_str).collect();
    match args.as_slice() {
        ["--version" | "-V"] => {
            println!("ferrotron-agent {}", env!("CARGO_PKG_VERSION"));
            ExitCode::SUCCESS
        }
        ["--help" | "-h"] => {
            println!("{USAGE}");
            ExitCode::SUCCESS
        }
        ["run", job] => run(Path::new(job)),
        _ => {
            eprintln!("{USAGE}");
            ExitCode::from(2)
        }
    }
}

fn run(path: &Path) -> ExitCode {
    let job = match JobSpec::load(path) {
        Ok(job) => job,
        Err(e) => return fail(&e.to_string(), 2),
    };
    match run_job(&job, &mut emit) {
        Ok(report) if report.outcome == Outcome::Passed => ExitCode::SUCCESS,
        Ok(_) => ExitCode::from(1),
        Err(e) => fail(&e.to_string(), 3),
    }
}

fn fail(message: &str, code: u8) -> ExitCode {
    eprintln!("ferrotron-agent: error: {message}");
    emit(&Event::Error {
        message: message.to_string(),
    });
    ExitCode::from(code)
}

/// Prints one event as one line. Write errors (the reader went away) are
/// ignored: the job still runs to the end and writes its result files.
fn emit(event: &Event) {
    let Ok(mut line) = serde_json::to_string(event) else {
        return;
    };
    line.push('\n');
    let mut out = std::io::stdout().lock();
    let _ = out.write_all(line.as_bytes());
    let _ = out.flush();
}
