//! `ferrotron formula check|schema`.

use std::path::PathBuf;

use clap::Subcommand;
use ferrotron::exit::{ExitStatus, HasExitStatus};

use super::{print_error, CmdResult};

#[derive(Subcommand)]
pub enum FormulaCommand {
    /// Validate formulas without running them.
    Check {
        #[arg(required = true)]
        files: Vec<PathBuf>,
    },
    /// Print the JSON Schema of the formula language (for editors).
    Schema,
}

pub fn main(cmd: FormulaCommand) -> CmdResult {
    match cmd {
        // Every bad file is reported, not only the first.
        FormulaCommand::Check { files } => {
            let mut status = ExitStatus::Passed;
            for f in &files {
                match ferrotron::app::load_formula(f) {
                    Ok(formula) => {
                        println!("{}: ok ({} action(s))", f.display(), formula.actions.len())
                    }
                    Err(e) => {
                        status = e.exit_status();
                        print_error(&e);
                    }
                }
            }
            Ok(status)
        }
        FormulaCommand::Schema => {
            print!("{}", ferrotron::formula::Formula::json_schema());
            Ok(ExitStatus::Passed)
        }
    }
}
