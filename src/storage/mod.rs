//! Storage: one connection type over SQLite and PostgreSQL, the pool, migrations and the
//! queries per record kind. Blocking diesel work runs on the blocking pool, never on the
//! async executor threads.

pub mod aggregates;
pub mod cache;
pub mod ids;
pub mod models;
pub mod schema;

use std::path::PathBuf;
use std::time::Duration;

use diesel::connection::SimpleConnection;
use diesel::prelude::*;
use diesel_migrations::{embed_migrations, EmbeddedMigrations, MigrationHarness};

use crate::error::AppError;
use crate::secret::Secret;

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
    /// The URL may hold a password: kept in a [`Secret`] (zeroed on drop, `Debug` shows
    /// no text); logs use [`DatabaseUrl::redacted`].
    Postgres(Secret),
    Sqlite(PathBuf),
}

impl DatabaseUrl {
    pub fn parse(raw: &str) -> Self {
        if raw.starts_with("postgres://") || raw.starts_with("postgresql://") {
            DatabaseUrl::Postgres(Secret::new(raw))
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
            DatabaseUrl::Postgres(u) => match u.expose().split_once('@') {
                Some((_, host)) => format!("postgres://…@{host}"),
                None => u.expose().to_owned(),
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
    #[error("{0}")]
    Thread(String),
}

/// How long a PostgreSQL statement waits for a lock another session holds, and how long
/// a session may sit idle inside a transaction before the server ends it (rolling back
/// and releasing its locks). Together they bound what a stuck or cut-off instance costs
/// the others to a few seconds; nothing of ours legitimately waits or idles that long.
pub const PG_LOCK_TIMEOUT: &str = "5s";
pub const PG_IDLE_IN_TRANSACTION_TIMEOUT: &str = "5s";

/// TCP keepalives on both ends, so a peer that vanished without closing (a network
/// partition, a frozen host) is noticed in seconds, not after the kernel's two hours:
/// libpq's options for our end, the server's settings for its end.
const PG_CLIENT_KEEPALIVES: &[(&str, &str)] = &[
    ("keepalives", "1"),
    ("keepalives_idle", "10"),
    ("keepalives_interval", "5"),
    ("keepalives_count", "3"),
    ("connect_timeout", "10"),
];

/// The URL with our client-side connection options added where it does not set them.
fn with_client_options(url: &str) -> String {
    let mut out = url.to_owned();
    for (key, value) in PG_CLIENT_KEEPALIVES {
        let present = url
            .split_once('?')
            .is_some_and(|(_, q)| q.split('&').any(|kv| kv.split('=').next() == Some(key)));
        if !present {
            out.push(if out.contains('?') { '&' } else { '?' });
            out.push_str(&format!("{key}={value}"));
        }
    }
    out
}

/// Opens one connection, with the per-connection settings each backend needs.
pub fn establish(url: &DatabaseUrl) -> Result<DbConnection, StorageError> {
    match url {
        DatabaseUrl::Postgres(u) => {
            let mut conn = diesel::PgConnection::establish(&with_client_options(u.expose()))?;
            conn.batch_execute(&format!(
                "SET lock_timeout = '{PG_LOCK_TIMEOUT}'; \
                 SET idle_in_transaction_session_timeout = '{PG_IDLE_IN_TRANSACTION_TIMEOUT}'; \
                 SET tcp_keepalives_idle = 10; SET tcp_keepalives_interval = 5; \
                 SET tcp_keepalives_count = 3;"
            ))?;
            Ok(DbConnection::Pg(conn))
        }
        DatabaseUrl::Sqlite(path) => {
            let mut conn = diesel::SqliteConnection::establish(&path.to_string_lossy())?;
            // WAL lets readers run beside the single writer; FULL makes each group commit
            // durable; the busy timeout covers a CLI command or another process writing
            // beside the server. It comes first: switching to WAL takes a lock too, and
            // processes started together on a new file must wait for it, not fail.
            conn.batch_execute(
                "PRAGMA busy_timeout = 10000; PRAGMA journal_mode = WAL; \
                 PRAGMA synchronous = FULL; PRAGMA foreign_keys = ON;",
            )?;
            Ok(DbConnection::Sqlite(conn))
        }
    }
}

/// The advisory lock key that serialises migrations across instances ("samv" "migr").
const MIGRATION_LOCK: i64 = 0x7361_6d76_6d69_6772;

/// Applies the pending migrations of the backend in use, in one transaction that first
/// takes the database's migration lock, so replicas started together on an empty
/// database migrate one after the other and the later ones find nothing to do
/// (PostgreSQL: a transaction-scoped advisory lock; SQLite: its write lock, taken at
/// BEGIN IMMEDIATE).
pub fn migrate(url: &DatabaseUrl) -> Result<usize, StorageError> {
    type BoxError = Box<dyn std::error::Error + Send + Sync>;
    let mut conn = establish(url)?;
    let applied = match &mut conn {
        DbConnection::Pg(c) => c.transaction::<_, BoxError, _>(|c| {
            // Another replica may take a while to migrate: wait for it, not lock_timeout.
            c.batch_execute(&format!(
                "SET LOCAL lock_timeout = '10min'; SELECT pg_advisory_xact_lock({MIGRATION_LOCK});"
            ))?;
            Ok(c.run_pending_migrations(POSTGRES_MIGRATIONS)?.len())
        }),
        DbConnection::Sqlite(c) => c.immediate_transaction::<_, BoxError, _>(|c| {
            Ok(c.run_pending_migrations(SQLITE_MIGRATIONS)?.len())
        }),
    }
    .map_err(|e| StorageError::Migration(e.to_string()))?;
    aggregates::backfill(&mut conn)?;
    aggregates::backfill_referrals(&mut conn)?;
    Ok(applied)
}

/// Serialises the rest of the current transaction with every other transaction that
/// locks the same `key`, on any instance: for a check-then-write that a unique key cannot
/// guard (counting login attempts, seeding what is missing). PostgreSQL: a
/// transaction-scoped advisory lock (bounded by `lock_timeout`); SQLite: nothing to do,
/// a writing transaction already holds the database's one write lock.
pub fn lock_key(conn: &mut DbConnection, key: &str) -> QueryResult<()> {
    if let DbConnection::Pg(c) = conn {
        diesel::sql_query("SELECT pg_advisory_xact_lock(hashtextextended($1, 0))")
            .bind::<diesel::sql_types::Text, _>(key)
            .execute(c)?;
    }
    Ok(())
}

/// Runs `f` in one read-only snapshot: everything it reads is as of one moment, however
/// much the writers commit meanwhile (PostgreSQL: REPEATABLE READ; SQLite: one read
/// transaction, whose snapshot WAL mode keeps from its first read).
pub fn snapshot<T, E, F>(conn: &mut DbConnection, f: F) -> Result<T, E>
where
    F: FnOnce(&mut DbConnection) -> Result<T, E>,
    E: From<diesel::result::Error>,
{
    let pg = matches!(conn, DbConnection::Pg(_));
    conn.transaction(|c| {
        if pg {
            c.batch_execute("SET TRANSACTION ISOLATION LEVEL REPEATABLE READ, READ ONLY")?;
        }
        f(c)
    })
}

type DbJob = Box<dyn FnOnce(&mut DbConnection) -> bool + Send>;

/// Jobs waiting for a reader thread before callers wait for room.
const READ_QUEUE_DEPTH: usize = 4096;

/// The read side: a fixed set of threads, each owning one connection, fed from one queue.
/// A fixed set (rather than the runtime's blocking pool and a connection pool) keeps
/// thread hand-offs, lock traffic and per-thread memory bounded under load. Writes go
/// through `audit::writer::Writer` so they can be group-committed with their audit entries.
#[derive(Clone)]
pub struct Db {
    tx: std::sync::mpsc::SyncSender<DbJob>,
    url: DatabaseUrl,
}

fn reader_loop(
    mut conn: DbConnection,
    url: DatabaseUrl,
    rx: std::sync::Arc<std::sync::Mutex<std::sync::mpsc::Receiver<DbJob>>>,
) {
    loop {
        let job = match rx.lock() {
            Ok(guard) => guard.recv(),
            Err(_) => return,
        };
        let Ok(job) = job else { return };
        let failed = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| job(&mut conn)))
            .unwrap_or(true);
        // After a failure, make sure the connection itself is still good (the database
        // may have restarted); reconnect until it is.
        if failed && conn.batch_execute("SELECT 1").is_err() {
            conn = reconnect(&url, "reader");
        }
    }
}

/// How a thread that needs the database retries: exponentially from 200 ms to 10 s,
/// each wait with random jitter, so that many instances (and the threads of one) do not
/// hammer a recovering database in step.
fn reconnect_backoff() -> backon::ExponentialBuilder {
    backon::ExponentialBuilder::default()
        .with_min_delay(Duration::from_millis(200))
        .with_max_delay(Duration::from_secs(10))
        .with_jitter()
        .without_max_times()
}

/// Runs `attempt` until it succeeds, backing off between tries (see
/// [`reconnect_backoff`]): a worker thread has nothing better to do while its database
/// is away.
pub fn retry_until_ok<T, E: std::fmt::Display>(
    who: &str,
    mut attempt: impl FnMut() -> Result<T, E>,
) -> T {
    use backon::BlockingRetryable;
    loop {
        let tried = (|| attempt())
            .retry(reconnect_backoff())
            .sleep(std::thread::sleep)
            .notify(|e: &E, wait: Duration| {
                tracing::error!(error = %e, who, retry_in_ms = wait.as_millis() as u64, "cannot reach the database; retrying");
            })
            .call();
        // The backoff never gives up; should it, start it over.
        if let Ok(value) = tried {
            return value;
        }
    }
}

/// Connects again, backing off until the database answers.
pub fn reconnect(url: &DatabaseUrl, who: &str) -> DbConnection {
    retry_until_ok(who, || establish(url))
}

impl Db {
    /// Opens `size` connections (failing at once on a bad URL) and starts their threads.
    pub fn connect(url: &DatabaseUrl, size: u32) -> Result<Self, StorageError> {
        let (tx, rx) = std::sync::mpsc::sync_channel::<DbJob>(READ_QUEUE_DEPTH);
        let rx = std::sync::Arc::new(std::sync::Mutex::new(rx));
        for i in 0..size.max(1) {
            let conn = establish(url)?;
            let (url, rx) = (url.clone(), rx.clone());
            std::thread::Builder::new()
                .name(format!("samverkan-db-{i}"))
                .spawn(move || reader_loop(conn, url, rx))
                .map_err(|e| StorageError::Thread(format!("cannot start reader: {e}")))?;
        }
        Ok(Db {
            tx,
            url: url.clone(),
        })
    }

    pub fn url(&self) -> &DatabaseUrl {
        &self.url
    }

    /// Runs blocking database work on a reader thread.
    pub async fn run<T, F>(&self, f: F) -> Result<T, AppError>
    where
        F: FnOnce(&mut DbConnection) -> Result<T, AppError> + Send + 'static,
        T: Send + 'static,
    {
        let (done_tx, done_rx) = tokio::sync::oneshot::channel();
        let job: DbJob = Box::new(move |conn| {
            let result = f(conn);
            let failed = result.is_err();
            let _ = done_tx.send(result);
            failed
        });
        match self.tx.try_send(job) {
            Ok(()) => {}
            Err(std::sync::mpsc::TrySendError::Full(job)) => {
                let sender = self.tx.clone();
                tokio::task::spawn_blocking(move || sender.send(job))
                    .await
                    .map_err(AppError::internal)?
                    .map_err(|_| AppError::internal("readers stopped"))?;
            }
            Err(std::sync::mpsc::TrySendError::Disconnected(_)) => {
                return Err(AppError::internal("readers stopped"));
            }
        }
        done_rx
            .await
            .map_err(|_| AppError::internal("a reader dropped a job"))?
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
