//! The write path. Every write and every audit entry goes through one writer thread per
//! instance, which runs the queued jobs of many requests in one transaction (group
//! commit): one durable commit answers many requests, and a request is answered only
//! after the commit that holds its audit entry.

use std::sync::mpsc as std_mpsc;
use std::thread;

use diesel::prelude::*;
use tokio::sync::oneshot;

use super::schema::audit_head;
use super::{establish, DatabaseUrl, DbConnection};
use crate::audit::{self, AuditEntry, ChainHead};
use crate::error::AppError;

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
}

type Completion = Box<dyn FnOnce(bool) + Send>;
/// A job writes inside the group transaction and says how to answer once it is decided;
/// `true` beside the completion means the job failed outside a savepoint, so the whole
/// group must roll back.
type Job = Box<dyn FnOnce(&mut DbConnection, &mut ChainHead) -> (Completion, bool) + Send>;

#[derive(Clone)]
pub struct Writer {
    tx: std_mpsc::SyncSender<Job>,
}

impl Writer {
    /// Starts the writer thread on its own connection.
    pub fn start(url: &DatabaseUrl) -> Result<Self, super::StorageError> {
        let conn = establish(url)?;
        let (tx, rx) = std_mpsc::sync_channel::<Job>(QUEUE_DEPTH);
        let url = url.clone();
        thread::Builder::new()
            .name("samverkan-writer".into())
            .spawn(move || run(conn, url, rx))
            .map_err(|e| super::StorageError::Migration(format!("cannot start writer: {e}")))?;
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
        let job: Job = Box::new(move |conn: &mut DbConnection, head: &mut ChainHead| {
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
    /// durable. No savepoint of its own (the hot path of every read): if the append
    /// fails, the whole group rolls back and every request in it gets an error.
    pub async fn audit(&self, entries: Vec<AuditEntry>) -> Result<(), AppError> {
        let (done_tx, done_rx) = oneshot::channel::<Result<(), AppError>>();
        let job: Job = Box::new(move |conn: &mut DbConnection, head: &mut ChainHead| {
            let failed = audit::append_all(conn, head, &entries).is_err();
            let done: Completion = Box::new(move |committed: bool| {
                let outcome = if committed && !failed {
                    Ok(())
                } else {
                    Err(AppError::internal("audit append failed"))
                };
                let _ = done_tx.send(outcome);
            });
            (done, failed)
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

fn run(mut conn: DbConnection, url: DatabaseUrl, rx: std_mpsc::Receiver<Job>) {
    while let Ok(first) = rx.recv() {
        let mut batch = vec![first];
        while batch.len() < MAX_BATCH {
            match rx.try_recv() {
                Ok(job) => batch.push(job),
                Err(_) => break,
            }
        }
        let mut completions: Vec<Completion> = Vec::with_capacity(batch.len());
        let result = conn.transaction::<_, diesel::result::Error, _>(|c| {
            // Taking the row lock first serialises chain appends across instances
            // (PostgreSQL) and takes the write lock at once (SQLite).
            diesel::update(audit_head::table.filter(audit_head::id.eq(1)))
                .set(audit_head::seq.eq(audit_head::seq))
                .execute(c)?;
            let (seq, hash) = audit_head::table
                .filter(audit_head::id.eq(1))
                .select((audit_head::seq, audit_head::hash))
                .first::<(i64, String)>(c)?;
            let mut head = ChainHead { seq, hash };
            let mut poisoned = false;
            for job in batch {
                let (done, failed) = job(c, &mut head);
                completions.push(done);
                poisoned |= failed;
            }
            if poisoned {
                return Err(diesel::result::Error::RollbackTransaction);
            }
            diesel::update(audit_head::table.filter(audit_head::id.eq(1)))
                .set((
                    audit_head::seq.eq(head.seq),
                    audit_head::hash.eq(&head.hash),
                ))
                .execute(c)?;
            Ok(())
        });
        let committed = match result {
            Ok(()) => true,
            Err(e) => {
                tracing::error!(error = %e, "group commit failed");
                false
            }
        };
        for done in completions {
            done(committed);
        }
        if !committed {
            // The connection may be gone (database restarted): get a fresh one.
            conn = super::reconnect(&url, "writer");
        }
    }
}
