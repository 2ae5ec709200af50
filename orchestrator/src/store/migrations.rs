//! The schema migrations of each backend, embedded in the binary. Built at
//! run time from `include_str!` instead of sqlx's `migrate!` macro: the
//! same versions and checksums (sha384 of the SQL, as sqlx computes them),
//! so databases migrated by earlier versions validate, without compiling
//! sqlx's macro crate and a second copy of its drivers (see the README's
//! note on set-up time).

use std::borrow::Cow;

use sqlx::migrate::{Migration, MigrationType, Migrator};
use sqlx::SqlSafeStr;

use super::Backend;

/// (version, description, SQL) of one backend, in order.
type Steps = [(i64, &'static str, &'static str)];

const SQLITE: &Steps = &[
    (
        1,
        "init",
        include_str!("../../migrations/sqlite/0001_init.sql"),
    ),
    (
        2,
        "queue",
        include_str!("../../migrations/sqlite/0002_queue.sql"),
    ),
    (
        3,
        "capacity",
        include_str!("../../migrations/sqlite/0003_capacity.sql"),
    ),
    (
        4,
        "timeouts",
        include_str!("../../migrations/sqlite/0004_timeouts.sql"),
    ),
    (
        5,
        "commits",
        include_str!("../../migrations/sqlite/0005_commits.sql"),
    ),
    (
        6,
        "token_roles",
        include_str!("../../migrations/sqlite/0006_token_roles.sql"),
    ),
    (
        7,
        "outbox",
        include_str!("../../migrations/sqlite/0007_outbox.sql"),
    ),
    (
        8,
        "queue_classes",
        include_str!("../../migrations/sqlite/0008_queue_classes.sql"),
    ),
    (
        9,
        "search",
        include_str!("../../migrations/sqlite/0009_search.sql"),
    ),
    (
        10,
        "reservations",
        include_str!("../../migrations/sqlite/0010_reservations.sql"),
    ),
    (
        11,
        "dashboard",
        include_str!("../../migrations/sqlite/0011_dashboard.sql"),
    ),
    (
        12,
        "search_by_item",
        include_str!("../../migrations/sqlite/0012_search_by_item.sql"),
    ),
    (
        13,
        "reservation_packages",
        include_str!("../../migrations/sqlite/0013_reservation_packages.sql"),
    ),
];

const POSTGRES: &Steps = &[
    (
        1,
        "init",
        include_str!("../../migrations/postgres/0001_init.sql"),
    ),
    (
        2,
        "queue",
        include_str!("../../migrations/postgres/0002_queue.sql"),
    ),
    (
        3,
        "capacity",
        include_str!("../../migrations/postgres/0003_capacity.sql"),
    ),
    (
        4,
        "timeouts",
        include_str!("../../migrations/postgres/0004_timeouts.sql"),
    ),
    (
        5,
        "commits",
        include_str!("../../migrations/postgres/0005_commits.sql"),
    ),
    (
        6,
        "token_roles",
        include_str!("../../migrations/postgres/0006_token_roles.sql"),
    ),
    (
        7,
        "outbox",
        include_str!("../../migrations/postgres/0007_outbox.sql"),
    ),
    (
        8,
        "queue_classes",
        include_str!("../../migrations/postgres/0008_queue_classes.sql"),
    ),
    (
        9,
        "search",
        include_str!("../../migrations/postgres/0009_search.sql"),
    ),
    (
        10,
        "reservations",
        include_str!("../../migrations/postgres/0010_reservations.sql"),
    ),
    (
        11,
        "dashboard",
        include_str!("../../migrations/postgres/0011_dashboard.sql"),
    ),
    (
        12,
        "search_by_item",
        include_str!("../../migrations/postgres/0012_search_by_item.sql"),
    ),
    (
        13,
        "reservation_packages",
        include_str!("../../migrations/postgres/0013_reservation_packages.sql"),
    ),
];

/// The migrator of `backend`.
pub(super) fn migrator(backend: Backend) -> Migrator {
    let steps = match backend {
        Backend::Sqlite => SQLITE,
        Backend::Postgres => POSTGRES,
    };
    let migrations = steps
        .iter()
        .map(|&(version, description, sql)| {
            Migration::new(
                version,
                Cow::Borrowed(description),
                MigrationType::Simple,
                sql.into_sql_str(),
                false,
            )
        })
        .collect::<Vec<_>>();
    Migrator {
        migrations: Cow::Owned(migrations),
        ..Migrator::DEFAULT
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Every file in the migration folders is embedded, in order: a new
    /// migration file not listed here fails this test.
    #[test]
    fn every_migration_file_is_embedded() {
        for (dir, steps) in [("sqlite", SQLITE), ("postgres", POSTGRES)] {
            let path = std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
                .join("migrations")
                .join(dir);
            let mut files: Vec<String> = std::fs::read_dir(&path)
                .expect("migrations folder")
                .flatten()
                .map(|e| e.file_name().to_string_lossy().into_owned())
                .collect();
            files.sort();
            let listed: Vec<String> = steps
                .iter()
                .map(|(v, d, _)| format!("{v:04}_{d}.sql"))
                .collect();
            assert_eq!(files, listed, "{}", path.display());
        }
    }
}
