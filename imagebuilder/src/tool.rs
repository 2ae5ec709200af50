//! Running external tools (apt, dpkg-deb, mke2fs, qemu-img) with useful errors.

use std::process::Command;

/// Errors from running an external program.
#[derive(Debug, thiserror::Error)]
pub enum ToolError {
    #[error("cannot run {program}: {source} (is it installed? see scripts/setup-host.sh)")]
    Spawn {
        program: String,
        #[source]
        source: std::io::Error,
    },
    #[error("`{command}` failed ({status}): {stderr}")]
    Failed {
        command: String,
        status: String,
        stderr: String,
    },
}

/// Runs a command and returns its stdout; a failure carries stderr.
pub fn run(cmd: &mut Command) -> Result<String, ToolError> {
    let program = cmd.get_program().to_string_lossy().to_string();
    let command = std::iter::once(program.clone())
        .chain(cmd.get_args().map(|a| a.to_string_lossy().to_string()))
        .collect::<Vec<_>>()
        .join(" ");
    tracing::debug!(%command, "running");
    let out = cmd
        .output()
        .map_err(|source| ToolError::Spawn { program, source })?;
    if !out.status.success() {
        let stderr = String::from_utf8_lossy(&out.stderr).trim().to_string();
        let command = if command.chars().count() > 200 {
            format!("{}…", command.chars().take(200).collect::<String>())
        } else {
            command
        };
        return Err(ToolError::Failed {
            command,
            status: out.status.to_string(),
            stderr,
        });
    }
    Ok(String::from_utf8_lossy(&out.stdout).to_string())
}
