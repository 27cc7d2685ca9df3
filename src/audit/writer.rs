//! The write path. Every write and every audit entry goes through one writer thread per
//! instance, which runs the queued jobs of many requests in one transaction (group
//! commit): one durable commit answers many requests, and a request is answered only
//! after the commit that holds its audit entry. The commit itself waits for the disk;
//! whatever queues meanwhile rides the next one.

use std::sync::mpsc as std_mpsc;
use std::sync::Arc;
use std::thread;
use std::time::Duration;

use diesel::backend::Backend;
use diesel::prelude::*;
use diesel::query_builder::{AstPass, QueryFragment, QueryId};
use diesel::serialize::ToSql;
use diesel::sql_types::{BigInt, HasSqlType, Text};
use tokio::sync::oneshot;

use crate::audit::{self, AuditEntry, ChainHead};
use crate::error::AppError;
use crate::storage::cache::{stored_generation, Generation};
use crate::storage::models::AuditRow;
use crate::storage::schema::audit_head;
use crate::storage::{self, establish, DatabaseUrl, DbConnection, StorageError};

/// Most jobs committed together; bounds the time one transaction holds the lock.
const MAX_BATCH: usize = 256;
/// Jobs waiting for the writer before new requests wait for room (backpressure).
const QUEUE_DEPTH: usize = 8192;

/// What a job can do inside the group transaction: write rows and append audit entries.
pub struct Tx<'a> {
    pub conn: &'a mut DbConnection,
    head: &'a mut ChainHead,
}

impl Tx<'_> {
    /// Appends one entry to the hash chain, in the same transaction as the job's writes.
    pub fn audit(&mut self, entry: &AuditEntry) -> Result<(), AppError> {
        audit::append(self.conn, self.head, entry)
    }

    /// Appends several entries in order, in as few statements as possible.
    pub fn audit_all(&mut self, entries: &[AuditEntry]) -> Result<(), AppError> {
        audit::append_all(self.conn, self.head, entries)
    }

    /// Brings the audit trail's lookup keys up to every entry so far, this job's included:
    /// what an auditor's query runs after, so that it sees everything before it.
    pub fn index_audit(&mut self) -> Result<(), AppError> {
        audit::index_keys(self.conn, self.head.seq)
    }
}

/// The open group's end of the audit chain: its head, and the entries of the reads it
/// audited that are chained but not yet written. Those go in together, in as few
/// statements as possible, before any other job runs and before the commit, so every
/// job and the commit see the chain whole.
struct Group {
    head: ChainHead,
    pending: Vec<AuditRow>,
}

impl Group {
    fn write_pending(&mut self, conn: &mut DbConnection) -> Result<(), AppError> {
        if !self.pending.is_empty() {
            audit::insert_rows(conn, &self.pending)?;
            self.pending.clear();
        }
        Ok(())
    }
}

type Completion = Box<dyn FnOnce(bool) + Send>;
/// A job writes inside the group transaction and says how to answer once it is decided;
/// `true` beside the completion means the job failed outside a savepoint, so the whole
/// group must roll back.
type Job = Box<dyn FnOnce(&mut DbConnection, &mut Group) -> (Completion, bool) + Send>;

#[derive(Clone)]
pub struct Writer {
    tx: std_mpsc::SyncSender<Job>,
}

impl Writer {
    /// Starts the writer thread on its own connection. It moves `generation` on
    /// whenever a commit changed what the caches hold, before it answers any request of
    /// that commit. Every `index_every` entries it copies their lookup keys into
    /// `audit_keys`.
    pub fn start(
        url: &DatabaseUrl,
        generation: Arc<Generation>,
        index_every: i64,
    ) -> Result<Self, StorageError> {
        // Fail at once on a bad URL; the thread opens its own connection.
        drop(establish(url)?);
        let (tx, rx) = std_mpsc::sync_channel::<Job>(QUEUE_DEPTH);
        let url = url.clone();
        thread::Builder::new()
            .name("samverkan-writer".into())
            .spawn(move || run(url, rx, generation, index_every.max(1)))
            .map_err(|e| StorageError::Thread(format!("cannot start writer: {e}")))?;
        Ok(Writer { tx })
    }

    /// Runs `f` in the next group transaction (inside its own savepoint, so a failing job
    /// rolls back alone) and resolves once that transaction is durable.
    pub async fn write<T, F>(&self, f: F) -> Result<T, AppError>
    where
        F: FnOnce(&mut Tx<'_>) -> Result<T, AppError> + Send + 'static,
        T: Send + 'static,
    {
        let (done_tx, done_rx) = oneshot::channel::<Result<T, AppError>>();
        let job: Job = Box::new(move |conn: &mut DbConnection, group: &mut Group| {
            if let Err(e) = group.write_pending(conn) {
                // The group cannot commit without those entries: it rolls back whole.
                tracing::error!(error = %e, "cannot write audit entries");
                let done: Completion = Box::new(move |_| {
                    let _ = done_tx.send(Err(AppError::internal("audit append failed")));
                });
                return (done, true);
            }
            let head = &mut group.head;
            let before = head.clone();
            let result = conn.transaction(|c| {
                let mut tx = Tx { conn: c, head };
                f(&mut tx)
            });
            if result.is_err() {
                *head = before;
            }
            let done: Completion = Box::new(move |committed: bool| {
                let outcome = if committed {
                    result
                } else {
                    Err(AppError::internal("group commit failed"))
                };
                let _ = done_tx.send(outcome);
            });
            (done, false)
        });
        self.submit(job).await?;
        done_rx
            .await
            .map_err(|_| AppError::internal("writer dropped a job"))?
    }

    /// Appends audit entries in the next group transaction and resolves once they are
    /// durable. No savepoint of its own (the hot path of every read): the entries are
    /// chained at once and written with the group's others; if that fails, the whole
    /// group rolls back and every request in it gets an error.
    pub async fn audit(&self, entries: Vec<AuditEntry>) -> Result<(), AppError> {
        let (done_tx, done_rx) = oneshot::channel::<Result<(), AppError>>();
        let job: Job = Box::new(move |_conn: &mut DbConnection, group: &mut Group| {
            audit::chain(&mut group.head, entries, &mut group.pending);
            let done: Completion = Box::new(move |committed: bool| {
                let outcome = if committed {
                    Ok(())
                } else {
                    Err(AppError::internal("audit append failed"))
                };
                let _ = done_tx.send(outcome);
            });
            (done, false)
        });
        self.submit(job).await?;
        done_rx
            .await
            .map_err(|_| AppError::internal("writer dropped a job"))?
    }

    async fn submit(&self, job: Job) -> Result<(), AppError> {
        match self.tx.try_send(job) {
            Ok(()) => Ok(()),
            Err(std_mpsc::TrySendError::Full(job)) => {
                // The queue is bounded: waiting for room must not block an executor thread.
                let sender = self.tx.clone();
                tokio::task::spawn_blocking(move || sender.send(job))
                    .await
                    .map_err(AppError::internal)?
                    .map_err(|_| AppError::internal("writer stopped"))
            }
            Err(std_mpsc::TrySendError::Disconnected(_)) => {
                Err(AppError::internal("writer stopped"))
            }
        }
    }
}

/// The next group: the first job and whatever else is queued. No waiting for more (it
/// was measured slower): what queues up during one commit rides the next.
fn gather(first: Job, rx: &std_mpsc::Receiver<Job>) -> Vec<Job> {
    let mut batch = vec![first];
    while batch.len() < MAX_BATCH {
        match rx.try_recv() {
            Ok(job) => batch.push(job),
            Err(_) => break,
        }
    }
    batch
}

/// Group commits between two checkpoints of the log into the database file.
const CHECKPOINT_EVERY: u64 = 32;
/// The log size (pages) at which a commit checkpoints by itself, if the checkpointer
/// thread has fallen behind or is gone (SQLite's own default is 1,000).
const AUTOCHECKPOINT_PAGES: u32 = 20_000;
/// Entries appended before the writer copies their lookup keys into `audit_keys` (see
/// [`audit::index_keys`]): one batch writes a few dozen index pages where as many entries
/// committed one group at a time wrote a few hundred. `SAMVERKAN_AUDIT_INDEX_EVERY`.
pub const DEFAULT_AUDIT_INDEX_EVERY: i64 = 2048;

/// Opens the writer's connection, and says whether it is SQLite in WAL mode (which gets
/// a checkpointer thread).
fn open_writer(url: &DatabaseUrl) -> Result<(DbConnection, bool), StorageError> {
    use diesel::connection::SimpleConnection;
    let mut conn = establish(url)?;
    if !url.is_sqlite() {
        return Ok((conn, false));
    }
    #[derive(QueryableByName)]
    struct Mode {
        #[diesel(sql_type = diesel::sql_types::Text)]
        journal_mode: String,
    }
    let mode = diesel::sql_query("PRAGMA journal_mode")
        .get_result::<Mode>(&mut conn)?
        .journal_mode;
    if !mode.eq_ignore_ascii_case("wal") {
        return Ok((conn, false));
    }
    // Every commit syncs the log (`synchronous = FULL`, set for every connection) before
    // the writer answers it; the checkpointer thread copies the log, this connection
    // only as a safety net.
    conn.batch_execute(&format!(
        "PRAGMA wal_autocheckpoint = {AUTOCHECKPOINT_PAGES};"
    ))?;
    Ok((conn, true))
}

/// The checkpointer: copies the log into the database file on its own connection, so
/// the writer never stalls on that copy and its two disk flushes (SQLite would otherwise
/// do it inside a commit every 1,000 log pages). A passive checkpoint runs beside the
/// writer and readers and never blocks them.
fn start_checkpointer(url: &DatabaseUrl) -> Option<std_mpsc::SyncSender<()>> {
    let url = url.clone();
    let (tx, rx) = std_mpsc::sync_channel::<()>(1);
    let spawned = thread::Builder::new()
        .name("samverkan-ckpt".into())
        .spawn(move || {
            let mut conn = storage::reconnect(&url, "checkpointer");
            while rx.recv().is_ok() {
                if let Err(e) = diesel::connection::SimpleConnection::batch_execute(
                    &mut conn,
                    "PRAGMA wal_checkpoint(PASSIVE)",
                ) {
                    tracing::warn!(error = %e, "checkpoint failed; the next one retries");
                }
            }
        });
    match spawned {
        Ok(_) => Some(tx),
        Err(e) => {
            tracing::error!(error = %e, "cannot start the checkpointer; commits checkpoint");
            None
        }
    }
}

fn run(
    url: DatabaseUrl,
    rx: std_mpsc::Receiver<Job>,
    generation_counter: Arc<Generation>,
    index_every: i64,
) {
    let (mut conn, wal) = loop {
        match open_writer(&url) {
            Ok(c) => break c,
            Err(e) => {
                tracing::error!(error = %e, "writer cannot open the database; retrying");
                thread::sleep(Duration::from_millis(500));
            }
        }
    };
    let checkpointer = if wal { start_checkpointer(&url) } else { None };
    let mut commits: u64 = 0;
    // The change counter as of the last commit; a new value means cached data may be stale.
    let mut seen_generation = None;
    while let Ok(first) = rx.recv() {
        // Whatever queued while the last commit waited for the disk rides this one.
        let batch = gather(first, &rx);
        let mut completions: Vec<Completion> = Vec::with_capacity(batch.len());
        let mut generation = None;
        let result = conn.transaction::<_, diesel::result::Error, _>(|c| {
            // Taking the row lock first serialises chain appends across instances
            // (PostgreSQL) and takes the write lock at once (SQLite).
            run_fixed(c, LockHead)?;
            let (seq, hash, indexed) = audit_head::table
                .filter(audit_head::id.eq(1))
                .select((audit_head::seq, audit_head::hash, audit_head::indexed_seq))
                .first::<(i64, String, i64)>(c)?;
            let mut group = Group {
                head: ChainHead { seq, hash },
                pending: Vec::new(),
            };
            let mut poisoned = false;
            for job in batch {
                let (done, failed) = job(c, &mut group);
                completions.push(done);
                poisoned |= failed;
            }
            if !poisoned {
                if let Err(e) = group.write_pending(c) {
                    tracing::error!(error = %e, "cannot write audit entries");
                    poisoned = true;
                }
            }
            if poisoned {
                return Err(diesel::result::Error::RollbackTransaction);
            }
            let head = &group.head;
            if head.seq - indexed >= index_every {
                // In a savepoint: a failure here loses no entry, only delays the keys
                // (the next batch, or an auditor's query, copies them).
                if let Err(e) = c.transaction(|c| audit::index_keys(c, head.seq)) {
                    tracing::warn!(error = %e, "cannot index audit entries; the next batch retries");
                }
            }
            run_fixed(
                c,
                SetHead {
                    seq: head.seq,
                    hash: &head.hash,
                },
            )?;
            generation = Some(stored_generation(c)?);
            Ok(())
        });
        // The commit has returned: on PostgreSQL and on SQLite (`synchronous = FULL`)
        // that means it is on disk.
        let committed = match result {
            Ok(()) => true,
            Err(e) => {
                tracing::error!(error = %e, "group commit failed");
                false
            }
        };
        // Before anyone hears of this commit: a change it made (or one made elsewhere
        // since the last commit) must not be answered from a cache.
        if !committed || generation != seen_generation {
            generation_counter.invalidate();
            seen_generation = generation;
        }
        commits += 1;
        if let Some(checkpointer) = checkpointer
            .as_ref()
            .filter(|_| commits.is_multiple_of(CHECKPOINT_EVERY))
        {
            // Full means one is already asked for: nothing to add.
            let _ = checkpointer.try_send(());
        }
        for done in completions {
            done(committed);
        }
        if !committed {
            // The connection may be gone (database restarted): get a fresh one.
            conn = loop {
                match open_writer(&url) {
                    Ok((c, _)) => break c,
                    Err(e) => {
                        tracing::error!(error = %e, "writer cannot reconnect; retrying");
                        thread::sleep(Duration::from_millis(500));
                    }
                }
            };
        }
    }
}

/// Runs a statement whose SQL never varies. diesel prepares every UPDATE it builds anew
/// (a changeset may change its SQL); these two run in every group commit, so they are
/// written out once here and prepared once per connection.
fn run_fixed<Q>(c: &mut DbConnection, q: Q) -> QueryResult<usize>
where
    Q: QueryFragment<diesel::sqlite::Sqlite> + QueryFragment<diesel::pg::Pg> + QueryId,
    Q: RunQueryDsl<diesel::SqliteConnection> + RunQueryDsl<diesel::PgConnection>,
{
    match c {
        DbConnection::Sqlite(c) => q.execute(c),
        DbConnection::Pg(c) => q.execute(c),
    }
}

/// Takes the head's row lock (PostgreSQL: serialises chain appends across instances) and
/// the write lock at once (SQLite).
struct LockHead;

impl QueryId for LockHead {
    type QueryId = LockHead;
    const HAS_STATIC_QUERY_ID: bool = true;
}

impl<DB: Backend> QueryFragment<DB> for LockHead {
    fn walk_ast<'b>(&'b self, mut out: AstPass<'_, 'b, DB>) -> QueryResult<()> {
        out.push_sql("UPDATE audit_head SET seq = seq WHERE id = 1");
        Ok(())
    }
}

impl<C> RunQueryDsl<C> for LockHead {}

/// Moves the stored head to the group's last entry.
struct SetHead<'a> {
    seq: i64,
    hash: &'a str,
}

impl QueryId for SetHead<'_> {
    type QueryId = SetHead<'static>;
    const HAS_STATIC_QUERY_ID: bool = true;
}

impl<DB> QueryFragment<DB> for SetHead<'_>
where
    DB: Backend + HasSqlType<BigInt> + HasSqlType<Text>,
    i64: ToSql<BigInt, DB>,
    str: ToSql<Text, DB>,
{
    fn walk_ast<'b>(&'b self, mut out: AstPass<'_, 'b, DB>) -> QueryResult<()> {
        out.push_sql("UPDATE audit_head SET seq = ");
        out.push_bind_param::<BigInt, _>(&self.seq)?;
        out.push_sql(", hash = ");
        out.push_bind_param::<Text, _>(self.hash)?;
        out.push_sql(" WHERE id = 1");
        Ok(())
    }
}

impl<C> RunQueryDsl<C> for SetHead<'_> {}
