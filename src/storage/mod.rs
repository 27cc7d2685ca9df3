//! Storage: one connection type over SQLite and PostgreSQL, the pool, migrations and the
//! queries per record kind. Blocking diesel work runs on the blocking pool, never on the
//! async executor threads.

pub mod models;
pub mod schema;
pub mod writer;

use std::path::PathBuf;
use std::time::Duration;

use diesel::connection::SimpleConnection;
use diesel::prelude::*;
use diesel_migrations::{embed_migrations, EmbeddedMigrations, MigrationHarness};

use crate::error::AppError;

const SQLITE_MIGRATIONS: EmbeddedMigrations = embed_migrations!("migrations/sqlite");
const POSTGRES_MIGRATIONS: EmbeddedMigrations = embed_migrations!("migrations/postgres");

/// A connection to either backend; the whole service is written against this one type.
#[derive(diesel::MultiConnection)]
pub enum DbConnection {
    Pg(diesel::PgConnection),
    Sqlite(diesel::SqliteConnection),
}

/// Which database `DATABASE_URL` names: `postgres://…` or a file path for SQLite.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum DatabaseUrl {
    Postgres(String),
    Sqlite(PathBuf),
}

impl DatabaseUrl {
    pub fn parse(raw: &str) -> Self {
        if raw.starts_with("postgres://") || raw.starts_with("postgresql://") {
            DatabaseUrl::Postgres(raw.to_owned())
        } else {
            let path = raw.strip_prefix("sqlite://").unwrap_or(raw);
            DatabaseUrl::Sqlite(PathBuf::from(path))
        }
    }

    pub fn is_sqlite(&self) -> bool {
        matches!(self, DatabaseUrl::Sqlite(_))
    }

    /// For logs: never prints a password that may be in a PostgreSQL URL.
    pub fn redacted(&self) -> String {
        match self {
            DatabaseUrl::Sqlite(p) => format!("sqlite:{}", p.display()),
            DatabaseUrl::Postgres(u) => match u.split_once('@') {
                Some((_, host)) => format!("postgres://…@{host}"),
                None => u.clone(),
            },
        }
    }
}

#[derive(Debug, thiserror::Error)]
pub enum StorageError {
    #[error("cannot connect to the database: {0}")]
    Connect(#[from] diesel::ConnectionError),
    #[error("database error: {0}")]
    Query(#[from] diesel::result::Error),
    #[error("migration failed: {0}")]
    Migration(String),
    #[error("connection pool: {0}")]
    Pool(#[from] r2d2::Error),
}

/// Opens one connection, with the per-connection settings each backend needs.
pub fn establish(url: &DatabaseUrl) -> Result<DbConnection, StorageError> {
    match url {
        DatabaseUrl::Postgres(u) => Ok(DbConnection::Pg(diesel::PgConnection::establish(u)?)),
        DatabaseUrl::Sqlite(path) => {
            let mut conn = diesel::SqliteConnection::establish(&path.to_string_lossy())?;
            // WAL lets readers run beside the single writer; FULL makes each group commit
            // durable; the busy timeout covers a CLI command writing beside the server.
            conn.batch_execute(
                "PRAGMA journal_mode = WAL; PRAGMA synchronous = FULL; \
                 PRAGMA busy_timeout = 10000; PRAGMA foreign_keys = ON;",
            )?;
            Ok(DbConnection::Sqlite(conn))
        }
    }
}

/// Applies the pending migrations of the backend in use.
pub fn migrate(url: &DatabaseUrl) -> Result<usize, StorageError> {
    let mut conn = establish(url)?;
    let applied = match &mut conn {
        DbConnection::Pg(c) => c
            .run_pending_migrations(POSTGRES_MIGRATIONS)
            .map(|v| v.len()),
        DbConnection::Sqlite(c) => c.run_pending_migrations(SQLITE_MIGRATIONS).map(|v| v.len()),
    }
    .map_err(|e| StorageError::Migration(e.to_string()))?;
    Ok(applied)
}

struct Manager {
    url: DatabaseUrl,
}

impl r2d2::ManageConnection for Manager {
    type Connection = DbConnection;
    type Error = StorageError;

    fn connect(&self) -> Result<DbConnection, StorageError> {
        establish(&self.url)
    }

    fn is_valid(&self, conn: &mut DbConnection) -> Result<(), StorageError> {
        conn.batch_execute("SELECT 1")?;
        Ok(())
    }

    fn has_broken(&self, _conn: &mut DbConnection) -> bool {
        false
    }
}

/// The read pool. Writes go through [`writer::Writer`] so they can be group-committed
/// together with their audit entries.
#[derive(Clone)]
pub struct Db {
    pool: r2d2::Pool<Manager>,
    url: DatabaseUrl,
}

impl Db {
    pub fn connect(url: &DatabaseUrl, max_size: u32) -> Result<Self, StorageError> {
        let pool = r2d2::Pool::builder()
            .max_size(max_size)
            .min_idle(Some(1))
            .connection_timeout(Duration::from_secs(10))
            .build(Manager { url: url.clone() })?;
        Ok(Db {
            pool,
            url: url.clone(),
        })
    }

    pub fn url(&self) -> &DatabaseUrl {
        &self.url
    }

    /// Runs blocking database work on the blocking pool.
    pub async fn run<T, F>(&self, f: F) -> Result<T, AppError>
    where
        F: FnOnce(&mut DbConnection) -> Result<T, AppError> + Send + 'static,
        T: Send + 'static,
    {
        let pool = self.pool.clone();
        tokio::task::spawn_blocking(move || {
            let mut conn = pool.get().map_err(AppError::internal)?;
            f(&mut conn)
        })
        .await
        .map_err(AppError::internal)?
    }
}

/// Microseconds since the Unix epoch, the one time unit stored.
pub fn now_micros() -> i64 {
    let now = time::OffsetDateTime::now_utc();
    (now.unix_timestamp_nanos() / 1_000) as i64
}

/// Time-ordered ids: newest-first lists and keyset cursors follow insertion order.
pub fn new_id() -> String {
    uuid::Uuid::now_v7().to_string()
}
