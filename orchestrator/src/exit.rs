//! The documented exit statuses of `ferrotron` (and of a stored job).

/// 0 every result passed, 1 a task result failed, 2 bad input (formula,
/// image, arguments: no VM started), 3 infrastructure error (libvirt,
/// boot, SSH, guest agent) or interruption.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ExitStatus {
    Passed,
    TaskFailed,
    BadInput,
    Infrastructure,
}

impl ExitStatus {
    pub fn code(self) -> u8 {
        match self {
            ExitStatus::Passed => 0,
            ExitStatus::TaskFailed => 1,
            ExitStatus::BadInput => 2,
            ExitStatus::Infrastructure => 3,
        }
    }
}
