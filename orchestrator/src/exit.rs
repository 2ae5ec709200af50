//! The documented exit statuses of `ferrotron`, and how an error says
//! which one it means. The binary maps an [`ExitStatus`] to the process
//! exit code in one place (`cli::main`); everything else returns the enum.

/// What a `ferrotron` command's exit code means (README, "Exit status").
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
#[repr(u8)]
pub enum ExitStatus {
    /// 0: the command did what it was asked; a task's results all passed.
    Passed = 0,
    /// 1: a task result (or a check such as `image verify`) failed.
    TaskFailed = 1,
    /// 2: bad input: a formula, rules file, argument or name the user gave.
    BadInput = 2,
    /// 3: an infrastructure error (libvirt, the store, the disk, an
    /// origin), or the command was interrupted.
    Infrastructure = 3,
}

impl ExitStatus {
    /// The process exit code.
    pub fn code(self) -> u8 {
        self as u8
    }

    /// `Passed`, or `TaskFailed` when `passed` is false.
    pub fn from_passed(passed: bool) -> ExitStatus {
        if passed {
            ExitStatus::Passed
        } else {
            ExitStatus::TaskFailed
        }
    }
}

impl From<ExitStatus> for std::process::ExitCode {
    fn from(s: ExitStatus) -> Self {
        std::process::ExitCode::from(s.code())
    }
}

/// An error that knows which exit status it means.
pub trait HasExitStatus {
    fn exit_status(&self) -> ExitStatus;
}

impl HasExitStatus for crate::runner::RunError {
    fn exit_status(&self) -> ExitStatus {
        crate::runner::RunError::exit_status(self)
    }
}

/// A missing or conflicting name is the caller's mistake; anything else
/// about the store is infrastructure.
impl HasExitStatus for crate::store::StoreError {
    fn exit_status(&self) -> ExitStatus {
        use crate::store::StoreError;
        match self {
            StoreError::NotFound { .. } | StoreError::Conflict(_) => ExitStatus::BadInput,
            _ => ExitStatus::Infrastructure,
        }
    }
}

/// A formula, rules or mappings file that cannot be read or does not
/// validate.
impl HasExitStatus for crate::yaml::FileError {
    fn exit_status(&self) -> ExitStatus {
        ExitStatus::BadInput
    }
}

/// A path in the git cache that is not one.
impl HasExitStatus for crate::cache::PathError {
    fn exit_status(&self) -> ExitStatus {
        ExitStatus::BadInput
    }
}

impl HasExitStatus for crate::cache::sync::SyncError {
    fn exit_status(&self) -> ExitStatus {
        use crate::cache::sync::SyncError;
        match self {
            SyncError::Unknown(_) | SyncError::Exists(_) => ExitStatus::BadInput,
            _ => ExitStatus::Infrastructure,
        }
    }
}

impl HasExitStatus for crate::vm::HypervisorError {
    fn exit_status(&self) -> ExitStatus {
        ExitStatus::Infrastructure
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn codes_are_the_documented_ones() {
        assert_eq!(ExitStatus::Passed.code(), 0);
        assert_eq!(ExitStatus::TaskFailed.code(), 1);
        assert_eq!(ExitStatus::BadInput.code(), 2);
        assert_eq!(ExitStatus::Infrastructure.code(), 3);
        assert_eq!(ExitStatus::from_passed(false), ExitStatus::TaskFailed);
    }
}
