//! The results store: testcases, groups, results (with their multi-valued
//! data), job records with their state transitions, artifact references and
//! API tokens.
//!
//! One set of queries serves SQLite (the embedded default, a file under the
//! data folder) and PostgreSQL (when the database URL says `postgres://`)
//! through sqlx's `Any` driver: every statement uses `$N` markers (sqlx's
//! SQLite driver binds `$N` as argument N), integer times (microseconds
//! since the epoch, UTC) and standard SQL only. The two dialects differ in
//! their DDL alone, hence one migration folder per backend.
//!
//! Every write runs in a transaction; SQLite runs with `synchronous=FULL`
//! so that an acknowledged write survives a crash.

mod dashboard;
mod hosts;
mod jobs;
mod lifecycle;
mod migrations;
mod outbox;
mod pick;
mod query;
mod queue;
mod reservations;
mod results;
mod search;
mod seed;
mod snapshot;
mod time;
mod tokens;

use std::path::Path;
use std::sync::Arc;

use sqlx::any::{AnyPoolOptions, AnyRow};
use sqlx::{AnyPool, Executor};

pub use dashboard::{JobCursor, JobFilter, QueueSpan, TestcaseRun, Waiting, TESTCASE_RUNS};
pub use hosts::{HostRecord, HOST_FRESH_MICROS};
pub use jobs::{Artifact, Job, JobUpdate, TransitionRow};
pub use lifecycle::Transitioned;
pub use outbox::{OutboxRow, Topic};
pub use query::{DataFilter, Page, ResultFilter};
pub use queue::{ClaimedJob, Enqueued, NewQueuedJob, QueuedMessage};
pub use reservations::{
    jump_command, known_hosts_line, pinned_ssh, NewReservation, Reach, Reservation,
    ReservationKind, RESERVATION_TASK,
};
pub use results::{Group, JobRef, NewGroup, NewResult, ResultRow, Testcase};
pub use search::{SearchFilter, SearchRow};
pub use seed::SeedJob;
pub use snapshot::{occupancy, sqlite_file, Occupancy};
pub use time::{format_time, now_micros, parse_time};
pub use tokens::{hash_token, Holder, Role, Token};

#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    #[error("cannot open the database {url}")]
    Connect {
        url: String,
        #[source]
        source: sqlx::Error,
    },
    #[error("cannot create the data folder {path}")]
    DataDir {
        path: String,
        #[source]
        source: std::io::Error,
    },
    #[error("database migration failed")]
    Migrate(#[source] sqlx::migrate::MigrateError),
    #[error("cannot lock {path} to migrate the database")]
    MigrationLock {
        path: String,
        #[source]
        source: std::io::Error,
    },
    #[error("database query failed")]
    Query(#[from] sqlx::Error),
    /// The engine refused a search (its rendered form is named).
    #[error("the database refused the search `{query}`")]
    Search {
        query: String,
        #[source]
        source: sqlx::Error,
    },
    #[error("{what} `{name}` not found")]
    NotFound { what: &'static str, name: String },
    #[error("{0}")]
    Conflict(String),
    #[error(transparent)]
    UnknownState(#[from] crate::job::UnknownState),
    #[error("a result cannot be stored as ResultsDB data")]
    Data(#[from] crate::results::DataError),
    /// A stored value no version of Ferrotron writes.
    #[error("{0}")]
    Corrupt(String),
}

/// Which SQL engine is behind the pool.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Backend {
    Sqlite,
    Postgres,
}

impl Backend {
    /// The engine a database URL names (`postgres://`, `postgresql://`;
    /// anything else is SQLite).
    pub fn of_url(url: &str) -> Backend {
        if url.starts_with("postgres://") || url.starts_with("postgresql://") {
            Backend::Postgres
        } else {
            Backend::Sqlite
        }
    }
}

/// A connection pool plus what differs between backends.
#[derive(Clone)]
pub struct Store {
    pool: AnyPool,
    backend: Backend,
    /// SQLite allows one writer; serialising writers here turns lock
    /// contention into queueing instead of `SQLITE_BUSY` errors.
    write_lock: Arc<tokio::sync::Mutex<()>>,
    /// Set when messages are published: writes that tell something (a
    /// stored result, a job's move) add their messages to the outbox in
    /// the same transaction, and each commit wakes the publisher.
    outbox: Option<Arc<tokio::sync::Notify>>,
}

/// The default database: `<data dir>/ferrotron.db`.
pub fn default_url(data_dir: &Path) -> String {
    format!(
        "sqlite://{}?mode=rwc",
        data_dir.join("ferrotron.db").display()
    )
}

impl Store {
    /// Opens (creating when needed) the database at `url` and applies the
    /// migrations of its backend.
    pub async fn open(url: &str) -> Result<Store, StoreError> {
        sqlx::any::install_default_drivers();
        let backend = Backend::of_url(url);
        if backend == Backend::Sqlite {
            if let Some(db) = sqlite_path(url) {
                let data_dir = |path: &Path, source| StoreError::DataDir {
                    path: path.display().to_string(),
                    source,
                };
                if let Some(parent) = db.parent().filter(|p| !p.as_os_str().is_empty()) {
                    crate::util::make_dir(parent, crate::util::modes::DATA_DIR)
                        .map_err(|e| data_dir(parent, e))?;
                }
                // The database holds token hashes and every job: readable
                // by its owner only (SQLite gives its -wal and -shm files
                // the same mode).
                use std::os::unix::fs::OpenOptionsExt;
                std::fs::OpenOptions::new()
                    .create(true)
                    .truncate(false)
                    .write(true)
                    .mode(0o600)
                    .open(&db)
                    .map_err(|e| data_dir(&db, e))?;
            }
        }
        let connect = |source| StoreError::Connect {
            url: crate::util::redact_url(url),
            source,
        };
        let opts =
            AnyPoolOptions::new().max_connections(if backend == Backend::Sqlite { 4 } else { 8 });
        let opts = if backend == Backend::Sqlite {
            opts.after_connect(|conn, _| {
                Box::pin(async move {
                    conn.execute(
                        // case_sensitive_like: `:like` filters match
                        // the same rows as on PostgreSQL.
                        "PRAGMA journal_mode=WAL; PRAGMA synchronous=FULL; \
                         PRAGMA foreign_keys=ON; PRAGMA busy_timeout=10000; \
                         PRAGMA case_sensitive_like=ON;",
                    )
                    .await?;
                    Ok(())
                })
            })
        } else {
            opts
        };
        let pool = opts.connect(url).await.map_err(connect)?;
        // One process migrates at a time: PostgreSQL through sqlx's advisory
        // lock, SQLite through an exclusive lock on a file beside the
        // database (several workers, or a CLI command beside a starting
        // service, open a fresh installation at once).
        let _migrating = match (backend, sqlite_path(url)) {
            (Backend::Sqlite, Some(db)) => Some(migration_lock(&db).await?),
            _ => None,
        };
        migrations::migrator(backend)
            .run(&pool)
            .await
            .map_err(StoreError::Migrate)?;
        Ok(Store {
            pool,
            backend,
            write_lock: Arc::new(tokio::sync::Mutex::new(())),
            outbox: None,
        })
    }

    /// This store with an outbox: from now on results and job moves add
    /// their messages to it ([`outbox`](self::outbox)).
    pub fn with_outbox(mut self) -> Store {
        self.outbox = Some(Arc::new(tokio::sync::Notify::new()));
        self
    }

    /// Resolves when a write that may have added messages commits (at once
    /// when one did since the last call); never without an outbox.
    pub async fn outbox_written(&self) {
        match &self.outbox {
            Some(n) => n.notified().await,
            None => std::future::pending().await,
        }
    }

    /// The migration the database at `url` is at and the newest this
    /// version knows, without changing anything (`ferrotron doctor`): a
    /// SQLite file that does not exist yet is at 0 and is not created.
    pub async fn inspect(url: &str) -> Result<(i64, i64), StoreError> {
        sqlx::any::install_default_drivers();
        let backend = Backend::of_url(url);
        let known = migrations::migrator(backend)
            .iter()
            .map(|m| m.version)
            .max()
            .unwrap_or(0);
        if backend == Backend::Sqlite && sqlite_path(url).is_some_and(|p| !p.exists()) {
            return Ok((0, known));
        }
        let connect = |source| StoreError::Connect {
            url: crate::util::redact_url(url),
            source,
        };
        let pool = AnyPoolOptions::new()
            .max_connections(1)
            .acquire_timeout(std::time::Duration::from_secs(5))
            .connect(url)
            .await
            .map_err(connect)?;
        let applied = sqlx::query(
            "SELECT COALESCE(MAX(version), 0) AS v FROM _sqlx_migrations WHERE success",
        )
        .fetch_one(&pool)
        .await
        .ok()
        .map(|r| row_get::<i64>(&r, "v"))
        .transpose()?
        .unwrap_or(0);
        pool.close().await;
        Ok((applied, known))
    }

    pub fn backend(&self) -> Backend {
        self.backend
    }

    /// Checks that the database answers.
    pub async fn ping(&self) -> Result<(), StoreError> {
        sqlx::query("SELECT 1").execute(&self.pool).await?;
        Ok(())
    }

    pub async fn close(&self) {
        self.pool.close().await;
    }

    /// Starts a write transaction (after taking the writer lock on SQLite).
    ///
    /// On SQLite it is `BEGIN IMMEDIATE`: the database's write lock is
    /// taken at once, waiting up to `busy_timeout` for another process (a
    /// CLI command beside `serve`). A deferred transaction that reads and
    /// then writes fails at once with "database is locked" when another
    /// process wrote in between, whatever the timeout.
    async fn begin(&self) -> Result<WriteTx, StoreError> {
        let (guard, tx) = match self.backend {
            Backend::Sqlite => {
                let guard = self.write_lock.clone().lock_owned().await;
                (Some(guard), self.pool.begin_with("BEGIN IMMEDIATE").await?)
            }
            Backend::Postgres => (None, self.pool.begin().await?),
        };
        Ok(WriteTx {
            tx,
            _guard: guard,
            outbox: self.outbox.clone(),
            wrote_outbox: false,
        })
    }
}

/// A transaction plus the writer lock it holds (SQLite), and whether it
/// writes messages to the outbox.
struct WriteTx {
    tx: sqlx::Transaction<'static, sqlx::Any>,
    _guard: Option<tokio::sync::OwnedMutexGuard<()>>,
    outbox: Option<Arc<tokio::sync::Notify>>,
    wrote_outbox: bool,
}

impl WriteTx {
    /// Commits; then, when it added messages, wakes the publisher.
    async fn commit(self) -> Result<(), StoreError> {
        self.tx.commit().await?;
        if let (Some(n), true) = (&self.outbox, self.wrote_outbox) {
            n.notify_one();
        }
        Ok(())
    }

    fn publishing(&self) -> bool {
        self.outbox.is_some()
    }
}

/// The file path in a `sqlite://PATH?opts` URL.
/// An exclusive lock on `<db>.migrate-lock`, held while it lives (waits
/// for another process's migration to end).
async fn migration_lock(db: &Path) -> Result<std::fs::File, StoreError> {
    let mut name = db.as_os_str().to_os_string();
    name.push(".migrate-lock");
    let path = std::path::PathBuf::from(name);
    let failed = |source| StoreError::MigrationLock {
        path: path.display().to_string(),
        source,
    };
    let file = std::fs::OpenOptions::new()
        .create(true)
        .truncate(false)
        .write(true)
        .open(&path)
        .map_err(failed)?;
    tokio::task::spawn_blocking(move || fs4::fs_std::FileExt::lock_exclusive(&file).map(|()| file))
        .await
        .map_err(|e| failed(std::io::Error::other(e)))?
        .map_err(failed)
}

fn sqlite_path(url: &str) -> Option<std::path::PathBuf> {
    let rest = url
        .strip_prefix("sqlite://")
        .or_else(|| url.strip_prefix("sqlite:"))?;
    let path = rest.split('?').next()?;
    if path.is_empty() || path == ":memory:" {
        return None;
    }
    Some(std::path::PathBuf::from(path))
}

/// A value bound to a dynamically built statement.
#[derive(Debug, Clone)]
pub(crate) enum Param {
    Text(String),
    OptText(Option<String>),
    Int(i64),
}

type AnyQuery<'q> = sqlx::query::Query<'q, sqlx::Any, sqlx::any::AnyArguments>;

fn bind_all<'q>(mut q: AnyQuery<'q>, params: &[Param]) -> AnyQuery<'q> {
    for p in params {
        q = match p {
            Param::Text(s) => q.bind(s.clone()),
            Param::OptText(s) => q.bind(s.clone()),
            Param::Int(i) => q.bind(*i),
        };
    }
    q
}

fn row_get<T>(row: &AnyRow, col: &str) -> Result<T, StoreError>
where
    T: for<'r> sqlx::Decode<'r, sqlx::Any> + sqlx::Type<sqlx::Any>,
{
    use sqlx::Row;
    Ok(row.try_get(col)?)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sqlite_paths() {
        assert_eq!(
            sqlite_path("sqlite:///var/lib/f/ferrotron.db?mode=rwc"),
            Some("/var/lib/f/ferrotron.db".into())
        );
        assert_eq!(sqlite_path("sqlite::memory:"), None);
    }
}
