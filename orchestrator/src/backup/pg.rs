//! PostgreSQL's own tools for a consistent copy: `pg_dump --format=custom`
//! (one snapshot of the whole database while it is in use) and
//! `pg_restore --single-transaction` (all or nothing). The password never
//! appears on a command line: it goes to the tool in `PGPASSWORD`.

use std::path::Path;

#[derive(Debug, thiserror::Error)]
pub enum PgError {
    #[error("`{program}` is not installed (Debian: apt-get install postgresql-client)")]
    NotInstalled {
        program: &'static str,
        #[source]
        source: std::io::Error,
    },
    #[error("`{program}` failed ({status}): {stderr}")]
    Failed {
        program: &'static str,
        status: std::process::ExitStatus,
        stderr: String,
    },
    /// Why the URL does not parse (never the URL itself: it may hold a
    /// password).
    #[error("the database URL cannot be parsed: {0}")]
    Url(String),
}

/// Writes the database at `url` to `dest` (custom format).
pub async fn dump(url: &str, dest: &Path) -> Result<(), PgError> {
    let mut c = command("pg_dump", url)?;
    c.arg("--format=custom")
        .arg("--no-password")
        .arg("--file")
        .arg(dest);
    run("pg_dump", c, url).await
}

/// Loads `file` into the database at `url` in one transaction, dropping
/// the objects it holds first (an empty, migrated database is replaced).
pub async fn restore(url: &str, file: &Path) -> Result<(), PgError> {
    let mut c = command("pg_restore", url)?;
    c.args([
        "--single-transaction",
        "--exit-on-error",
        "--clean",
        "--if-exists",
        "--no-owner",
        "--no-privileges",
        "--no-password",
    ])
    .arg(file);
    run("pg_restore", c, url).await
}

/// `program --dbname URL-without-password`, the password in the
/// environment.
fn command(program: &'static str, url: &str) -> Result<tokio::process::Command, PgError> {
    let mut parsed = reqwest::Url::parse(url).map_err(|e| PgError::Url(e.to_string()))?;
    let password = parsed.password().map(percent_decode);
    let _ = parsed.set_password(None);
    let mut c = tokio::process::Command::new(program);
    c.arg("--dbname")
        .arg(parsed.as_str())
        .stdin(std::process::Stdio::null())
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::piped())
        .kill_on_drop(true);
    if let Some(p) = password {
        c.env("PGPASSWORD", p);
    }
    Ok(c)
}

async fn run(
    program: &'static str,
    mut c: tokio::process::Command,
    url: &str,
) -> Result<(), PgError> {
    let out = c
        .output()
        .await
        .map_err(|source| PgError::NotInstalled { program, source })?;
    if out.status.success() {
        return Ok(());
    }
    let stderr = String::from_utf8_lossy(&out.stderr);
    Err(PgError::Failed {
        program,
        status: out.status,
        stderr: crate::cache::origin::scrub(stderr.trim(), url),
    })
}

fn percent_decode(s: &str) -> String {
    let b = s.as_bytes();
    let mut out = Vec::with_capacity(b.len());
    let mut i = 0;
    while i < b.len() {
        let hex = |c: u8| (c as char).to_digit(16);
        match (
            b[i],
            b.get(i + 1).copied().and_then(hex),
            b.get(i + 2).copied().and_then(hex),
        ) {
            (b'%', Some(h), Some(l)) => {
                out.push((h * 16 + l) as u8);
                i += 3;
            }
            (c, _, _) => {
                out.push(c);
                i += 1;
            }
        }
    }
    String::from_utf8_lossy(&out).into_owned()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_password_goes_to_the_environment_not_the_command_line() {
        let c = command("pg_dump", "postgres://u:p%40ss@127.0.0.1:5432/db").expect("command");
        let std = c.as_std();
        let args: Vec<_> = std
            .get_args()
            .map(|a| a.to_string_lossy().into_owned())
            .collect();
        assert_eq!(args, ["--dbname", "postgres://u@127.0.0.1:5432/db"]);
        let env: Vec<_> = std.get_envs().collect();
        assert_eq!(
            env,
            [(
                std::ffi::OsStr::new("PGPASSWORD"),
                Some(std::ffi::OsStr::new("p@ss"))
            )]
        );
    }
}
