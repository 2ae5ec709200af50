//! How a command fails: the error and the exit status it means, printed
//! once with its causes by `cli::main`.

use ferrotron::exit::{ExitStatus, HasExitStatus};

/// A command's error on its way to `main`, with the exit status it means.
pub struct Failure {
    pub status: ExitStatus,
    pub error: Box<dyn std::error::Error + Send + Sync>,
}

impl Failure {
    pub fn new(
        status: ExitStatus,
        error: impl Into<Box<dyn std::error::Error + Send + Sync>>,
    ) -> Failure {
        Failure {
            status,
            error: error.into(),
        }
    }

    /// Bad input described by a sentence (exit status 2).
    pub fn bad_input(message: impl Into<String>) -> Failure {
        Failure::new(ExitStatus::BadInput, message.into())
    }

    /// An infrastructure error (exit status 3).
    pub fn infra(error: impl Into<Box<dyn std::error::Error + Send + Sync>>) -> Failure {
        Failure::new(ExitStatus::Infrastructure, error)
    }
}

impl<E> From<E> for Failure
where
    E: HasExitStatus + std::error::Error + Send + Sync + 'static,
{
    fn from(e: E) -> Failure {
        Failure::new(e.exit_status(), e)
    }
}

/// What a command ends with: its exit status, or an error to print.
pub type CmdResult = Result<ExitStatus, Failure>;

/// Prints an error and its causes on one line: `ferrotron: error: a: b: c`.
/// Commands that check several files print each bad one with this and go
/// on; every other error reaches `main` and is printed there.
pub fn print_error(e: &(dyn std::error::Error + 'static)) {
    eprintln!("ferrotron: error: {}", ferrotron::util::full(e));
}
