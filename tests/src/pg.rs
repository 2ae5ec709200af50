//! A PostgreSQL database of its own for one test (the server
//! scripts/setup-host.sh starts on 127.0.0.1), dropped when the test ends.
//!
//! `FERROTRON_TEST_PG_URL` names the admin connection (default
//! `postgres://ferrotron:ferrotron@127.0.0.1:5432/postgres`, the role
//! setup-host.sh creates).

use std::process::Command;

/// The store a test runs against.
#[derive(Clone, Copy, Debug)]
pub enum Backend {
    Sqlite,
    Postgres,
}

/// `both!(f)`: tests `f::sqlite` and `f::postgres`, calling `f(Backend)`
/// (with [`Backend`] in scope).
#[macro_export]
macro_rules! both {
    ($name:ident) => {
        mod $name {
            #[test]
            fn sqlite() {
                super::$name(super::Backend::Sqlite);
            }
            #[test]
            fn postgres() {
                super::$name(super::Backend::Postgres);
            }
        }
    };
}
use std::time::Duration;

pub fn admin_url() -> String {
    std::env::var("FERROTRON_TEST_PG_URL")
        .unwrap_or_else(|_| "postgres://ferrotron:ferrotron@127.0.0.1:5432/postgres".into())
}

fn try_psql(sql: &str) -> std::process::Output {
    Command::new("psql")
        .args(["-v", "ON_ERROR_STOP=1", "-qAtc", sql, &admin_url()])
        .output()
        .expect("run psql (scripts/setup-host.sh installs PostgreSQL)")
}

/// What `sql` prints on the database at `url` (unaligned, tuples only).
pub fn psql_at(url: &str, sql: &str) -> String {
    let out = Command::new("psql")
        .args(["-v", "ON_ERROR_STOP=1", "-qAtc", sql, url])
        .output()
        .expect("run psql");
    assert!(
        out.status.success(),
        "psql {sql}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).trim().to_string()
}

fn psql(sql: &str) {
    let out = try_psql(sql);
    assert!(
        out.status.success(),
        "psql {sql}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
}

pub struct PgDatabase {
    name: String,
    /// The URL to give `FERROTRON_DATABASE_URL`.
    pub url: String,
}

impl PgDatabase {
    pub fn new(test: &str) -> PgDatabase {
        let name = format!(
            "ft_{}_{}",
            test.replace('-', "_"),
            uuid::Uuid::new_v4().simple()
        );
        psql(&format!("CREATE DATABASE {name}"));
        let admin = admin_url();
        let base = admin.rsplit_once('/').map_or(admin.as_str(), |(b, _)| b);
        PgDatabase {
            url: format!("{base}/{name}"),
            name,
        }
    }
}

impl Drop for PgDatabase {
    fn drop(&mut self) {
        // An autovacuum worker (the superuser's) on the database makes
        // FORCE fail for our role until it ends: try again, generously.
        let sql = format!("DROP DATABASE IF EXISTS {} WITH (FORCE)", self.name);
        for _ in 0..120 {
            if try_psql(&sql).status.success() {
                return;
            }
            std::thread::sleep(Duration::from_millis(500));
        }
        psql(&sql);
    }
}
