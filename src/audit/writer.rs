//! The write path. Every write and every audit entry goes through one writer thread per
//! instance, which runs the queued jobs of many requests in one transaction (group
//! commit): one durable commit answers many requests, and a request is answered only
//! after the commit that holds its audit entry. The commit itself waits for the disk;
//! whatever queues meanwhile rides the next one.
//!
//! Each writer appends to its own hash chain (a row of `audit_head` it claims when it
//! starts; see SECURITY.md), so instances on one PostgreSQL never wait for each other's
//! audit head. And each group checks, inside its transaction, that the sessions of the
//! requests it answers are still live and unchanged: a logout, a disable, a password or
//! role change committed by any instance refuses the next request on every instance.

use std::collections::HashMap;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::mpsc as std_mpsc;
use std::sync::{Arc, Mutex};
use std::thread;
use std::time::{Duration, Instant};

use diesel::backend::Backend;
use diesel::prelude::*;
use diesel::query_builder::{AstPass, QueryFragment, QueryId};
use diesel::serialize::ToSql;
use diesel::sql_types::{BigInt, HasSqlType, Integer, Text};
use tokio::sync::oneshot;

use crate::audit::{self, AuditEntry, ChainHead};
use crate::auth::Principal;
use crate::error::AppError;
use crate::policy::Policies;
use crate::storage::cache::{stored_generation, Generation};
use crate::storage::models::AuditRow;
use crate::storage::schema::{audit_head, sessions, user_places, users};
use crate::storage::{self, establish, now_micros, DatabaseUrl, DbConnection, StorageError};

/// Most jobs committed together; bounds the time one transaction holds the lock.
const MAX_BATCH: usize = 256;
/// Jobs waiting for the writer before new requests wait for room (backpressure).
const QUEUE_DEPTH: usize = 8192;
/// Writers from which reads get a lane (and a writer) of their own.
const READ_LANE_FROM: usize = 3;

/// What a job can do inside the group transaction: write rows and add audit entries,
/// which the group places in its chain, with everyone else's, before it commits.
pub struct Tx<'a> {
    pub conn: &'a mut DbConnection,
    group: &'a mut Group,
}

impl Tx<'_> {
    /// Adds one entry to the chain, in the same transaction as the job's writes.
    pub fn audit(&mut self, entry: &AuditEntry) -> Result<(), AppError> {
        self.audit_all(std::slice::from_ref(entry))
    }

    /// Adds several entries in order.
    pub fn audit_all(&mut self, entries: &[AuditEntry]) -> Result<(), AppError> {
        audit::unplaced(
            self.group.chain,
            &self.group.policy,
            entries.iter().cloned(),
            &mut self.group.pending,
        );
        Ok(())
    }
}

/// The open group: the writer's chain and the entries its jobs added, placed in the
/// chain and written together in as few statements as possible just before the commit.
struct Group {
    chain: i64,
    /// The hash of the policy set in force when the group began, for entries whose
    /// request did not name the set it decided with.
    policy: Arc<str>,
    pending: Vec<AuditRow>,
}

/// What a request's session looked like when its user was read: the group refuses the
/// request if any of it changed since (see [`check_sessions`]).
#[derive(Debug, Clone)]
pub struct SessionStamp {
    session_id: String,
    user_id: String,
    token_epoch: i64,
    /// What the request's decisions rested on: a change to anything else about the user
    /// (a display name) does not refuse it.
    role: String,
    organization_id: String,
    /// Sorted.
    places: Vec<String>,
    /// The change counter read just before the user was: unchanged, nothing to check.
    generation: i64,
}

impl SessionStamp {
    pub fn of(p: &Principal) -> Self {
        let mut places = p.places.clone();
        places.sort();
        SessionStamp {
            session_id: p.session_id.clone(),
            user_id: p.user.id.clone(),
            token_epoch: p.user.token_epoch,
            role: p.user.role.clone(),
            organization_id: p.user.organization_id.clone(),
            places,
            generation: p.read_at_generation,
        }
    }
}

type Completion = Box<dyn FnOnce(bool) + Send>;
/// A job writes inside the group transaction and says how to answer once it is decided;
/// `true` beside the completion means the job failed outside a savepoint, so the whole
/// group must roll back. `refused` is set when the job's session no longer holds: the
/// job then only answers with it.
type Run =
    Box<dyn FnOnce(&mut DbConnection, &mut Group, Option<AppError>) -> (Completion, bool) + Send>;

struct Job {
    stamp: Option<SessionStamp>,
    /// Whether it may write more than audit entries (which change nothing cached).
    writes: bool,
    work: Work,
}

/// What a job does in the group: anything (a closure run in the transaction), or only
/// add audit entries (a read's): kept as data, so that a group of reads can be written in
/// one statement and, should that statement find its conditions changed, go the long way
/// with nothing lost.
enum Work {
    Run(Run),
    Audit {
        entries: Vec<AuditEntry>,
        done: oneshot::Sender<Result<(), AppError>>,
    },
}

impl Work {
    /// Runs the job in the open group transaction.
    fn run(
        self,
        c: &mut DbConnection,
        group: &mut Group,
        refused: Option<AppError>,
    ) -> (Completion, bool) {
        match self {
            Work::Run(run) => run(c, group, refused),
            Work::Audit { entries, done } => {
                let refusal = refused.map(Err);
                if refusal.is_none() {
                    audit::unplaced(group.chain, &group.policy, entries, &mut group.pending);
                }
                let done: Completion = Box::new(move |committed: bool| {
                    let outcome = match refusal {
                        Some(refused) => refused,
                        None if committed => Ok(()),
                        None => Err(AppError::Unavailable),
                    };
                    let _ = done.send(outcome);
                });
                (done, false)
            }
        }
    }
}

#[derive(Clone)]
pub struct Writer {
    /// Jobs that may write more than audit entries.
    tx: std_mpsc::SyncSender<Job>,
    /// Reads' audit entries: their own lane when there are writers to spare (see
    /// [`Writer::start`]), else the same queue as `tx`.
    reads: std_mpsc::SyncSender<Job>,
    commits: prometheus::IntCounterVec,
    /// Requests this instance is handling, for the read lane's [`Linger`].
    in_flight: Arc<AtomicUsize>,
}

/// The name of the writers' counter of group commits, by outcome (`committed`, or
/// `failed`: the group's requests got 503 and the writer reconnected).
pub const GROUP_COMMITS_METRIC: &str = "samverkan_audit_group_commits_total";

impl Writer {
    /// Starts `writers` writer threads (one on SQLite), each on its own connection and
    /// chain. With three or more, reads' audit entries have a lane of their own with one
    /// writer, and writes share the others: a read's group then holds whatever queued
    /// during the last one's commit (twice as many as when two writers split them, so
    /// half the commits for the same reads), and no read waits behind a write's
    /// transaction. With one or two, every writer takes from one queue. A writer moves
    /// `generation` on whenever a commit changed what the caches hold, before it answers
    /// any request of that commit. Every `index_every` entries it copies its chain's lookup keys into
    /// `audit_keys`.
    pub fn start(
        url: &DatabaseUrl,
        generation: Arc<Generation>,
        index_every: i64,
        writers: usize,
        policies: Arc<Policies>,
    ) -> Result<Self, StorageError> {
        // Fail at once on a bad URL; each thread opens its own connection.
        drop(establish(url)?);
        let commits = prometheus::IntCounterVec::new(
            prometheus::Opts::new(
                GROUP_COMMITS_METRIC,
                "Group commits of the audit writers (every write and every read's audit entry), by outcome",
            ),
            &["outcome"],
        )
        .map_err(|e| StorageError::Thread(format!("writer metrics: {e}")))?;
        // PostgreSQL: while one writer waits for its commit, the next group fills and
        // commits through another, each on its own chain. SQLite has one write lock, so
        // a second writer would only wait for it.
        let writers = if url.is_sqlite() { 1 } else { writers.max(1) };
        let in_flight = Arc::new(AtomicUsize::new(0));
        let lane = |rx, linger| {
            Arc::new(Lane {
                rx: Mutex::new(rx),
                linger,
            })
        };
        let (tx, rx) = std_mpsc::sync_channel::<Job>(QUEUE_DEPTH);
        let (reads, lanes) = if writers >= READ_LANE_FROM {
            let (reads, reads_rx) = std_mpsc::sync_channel::<Job>(QUEUE_DEPTH);
            let linger = Linger {
                min_group: LINGER_GROUP,
                max_wait: LINGER_MAX,
                in_flight: in_flight.clone(),
            };
            let reads_lane = lane(reads_rx, Some(linger));
            (reads, vec![(reads_lane, 1), (lane(rx, None), writers - 1)])
        } else {
            (tx.clone(), vec![(lane(rx, None), writers)])
        };
        let mut i = 0;
        for (rx, n) in lanes {
            for _ in 0..n {
                let (url, rx, generation) = (url.clone(), rx.clone(), generation.clone());
                let (commits, policies) = (commits.clone(), policies.clone());
                thread::Builder::new()
                    .name(format!("samverkan-writer-{i}"))
                    .spawn(move || run(url, rx, generation, index_every.max(1), commits, policies))
                    .map_err(|e| StorageError::Thread(format!("cannot start writer: {e}")))?;
                i += 1;
            }
        }
        Ok(Writer {
            tx,
            reads,
            commits,
            in_flight,
        })
    }

    /// Counts a request in flight until the guard is dropped: a group of reads waits a
    /// little for the others (see [`Linger`]). Held by the request middleware until the
    /// response's head is ready, so an open stream does not count.
    pub fn in_flight(&self) -> InFlight {
        self.in_flight.fetch_add(1, Ordering::Relaxed);
        InFlight(self.in_flight.clone())
    }

    /// The writers' counter of group commits, for the operator's metrics listener.
    pub fn commits_metric(&self) -> prometheus::IntCounterVec {
        self.commits.clone()
    }

    /// Runs `f` in the next group transaction (inside its own savepoint, so a failing job
    /// rolls back alone) and resolves once that transaction is durable. For writes no
    /// signed-in user asked for (sign-in, the command line, background jobs).
    pub async fn write<T, F>(&self, f: F) -> Result<T, AppError>
    where
        F: FnOnce(&mut Tx<'_>) -> Result<T, AppError> + Send + 'static,
        T: Send + 'static,
    {
        self.write_checked(None, f).await
    }

    /// [`Writer::write`] for a signed-in user: refused, with nothing written, if the
    /// user's session ended or the user changed since the request read them.
    pub async fn write_as<T, F>(&self, p: &Principal, f: F) -> Result<T, AppError>
    where
        F: FnOnce(&mut Tx<'_>) -> Result<T, AppError> + Send + 'static,
        T: Send + 'static,
    {
        self.write_checked(Some(SessionStamp::of(p)), f).await
    }

    async fn write_checked<T, F>(&self, stamp: Option<SessionStamp>, f: F) -> Result<T, AppError>
    where
        F: FnOnce(&mut Tx<'_>) -> Result<T, AppError> + Send + 'static,
        T: Send + 'static,
    {
        let (done_tx, done_rx) = oneshot::channel::<Result<T, AppError>>();
        let run: Run = Box::new(move |conn, group, refused| {
            if let Some(e) = refused {
                let done: Completion = Box::new(move |_| {
                    let _ = done_tx.send(Err(e));
                });
                return (done, false);
            }
            let mark = group.pending.len();
            let result = conn.transaction(|c| {
                let mut tx = Tx { conn: c, group };
                f(&mut tx)
            });
            if result.is_err() {
                // Its savepoint is rolled back: so are its entries.
                group.pending.truncate(mark);
            }
            let done: Completion = Box::new(move |committed: bool| {
                let outcome = if committed {
                    result
                } else {
                    Err(AppError::Unavailable)
                };
                let _ = done_tx.send(outcome);
            });
            (done, false)
        });
        let job = Job {
            stamp,
            writes: true,
            work: Work::Run(run),
        };
        Self::submit(&self.tx, job).await?;
        done_rx
            .await
            .map_err(|_| AppError::internal("writer dropped a job"))?
    }

    /// Adds audit entries of a signed-in user's read in the next group transaction and
    /// resolves once they are durable; refused if the user's session ended or the user
    /// changed since the read began (the answer is then not sent). No savepoint of its
    /// own (the hot path of every read): if the group fails, every request in it gets
    /// an error. With no entries it only checks the session (an empty list).
    pub async fn audit_as(&self, p: &Principal, entries: Vec<AuditEntry>) -> Result<(), AppError> {
        self.audit_checked(Some(SessionStamp::of(p)), entries).await
    }

    /// [`Writer::audit_as`] for entries no signed-in user's request made.
    pub async fn audit(&self, entries: Vec<AuditEntry>) -> Result<(), AppError> {
        self.audit_checked(None, entries).await
    }

    async fn audit_checked(
        &self,
        stamp: Option<SessionStamp>,
        entries: Vec<AuditEntry>,
    ) -> Result<(), AppError> {
        let (done, done_rx) = oneshot::channel::<Result<(), AppError>>();
        let job = Job {
            stamp,
            writes: false,
            work: Work::Audit { entries, done },
        };
        Self::submit(&self.reads, job).await?;
        done_rx
            .await
            .map_err(|_| AppError::internal("writer dropped a job"))?
    }

    async fn submit(queue: &std_mpsc::SyncSender<Job>, job: Job) -> Result<(), AppError> {
        match queue.try_send(job) {
            Ok(()) => Ok(()),
            Err(std_mpsc::TrySendError::Full(job)) => {
                // The queue is bounded: waiting for room must not block an executor thread.
                let sender = queue.clone();
                let sent = tokio::task::spawn_blocking(move || sender.send(job).is_ok())
                    .await
                    .map_err(AppError::internal)?;
                if sent {
                    Ok(())
                } else {
                    Err(AppError::internal("writer stopped"))
                }
            }
            Err(std_mpsc::TrySendError::Disconnected(_)) => {
                Err(AppError::internal("writer stopped"))
            }
        }
    }
}

/// A queue and the writers that take groups from it.
struct Lane {
    rx: Mutex<std_mpsc::Receiver<Job>>,
    linger: Option<Linger>,
}

/// When a small group waits for more (the read lane on PostgreSQL). Spread over several
/// instances on one machine, each instance's groups of reads shrink (three instances:
/// 2.8 reads a commit against 12.7 on one) and the database's cost per commit, not the
/// reads, fills the cores; a group that waits a little while other requests of this
/// instance are on their way carries more of them for one commit. A request alone in its
/// instance never waits.
struct Linger {
    min_group: usize,
    max_wait: Duration,
    in_flight: Arc<AtomicUsize>,
}

/// A read group waits for at least this many jobs…
const LINGER_GROUP: usize = 4;
/// …at most this long, and only while more requests are in flight.
const LINGER_MAX: Duration = Duration::from_micros(1000);
/// How often a waiting group looks at the requests in flight.
const LINGER_POLL: Duration = Duration::from_micros(100);

/// Counts one request in flight in this instance while it lives (see [`Writer::in_flight`]).
pub struct InFlight(Arc<AtomicUsize>);

impl Drop for InFlight {
    fn drop(&mut self) {
        self.0.fetch_sub(1, Ordering::Relaxed);
    }
}

fn drain(rx: &std_mpsc::Receiver<Job>, batch: &mut Vec<Job>) {
    while batch.len() < MAX_BATCH {
        match rx.try_recv() {
            Ok(job) => batch.push(job),
            Err(_) => break,
        }
    }
}

/// The next group: the first job and whatever else is queued; on a lingering lane, a
/// small group waits (boundedly) for more while other requests are in flight.
fn gather(lane: &Lane) -> Option<Vec<Job>> {
    let rx = lane.rx.lock().ok()?;
    let mut batch = vec![rx.recv().ok()?];
    drain(&rx, &mut batch);
    if let Some(l) = &lane.linger {
        let deadline = Instant::now() + l.max_wait;
        while batch.len() < l.min_group && l.in_flight.load(Ordering::Relaxed) > batch.len() {
            let Some(left) = deadline.checked_duration_since(Instant::now()) else {
                break;
            };
            match rx.recv_timeout(left.min(LINGER_POLL)) {
                Ok(job) => {
                    batch.push(job);
                    drain(&rx, &mut batch);
                }
                Err(std_mpsc::RecvTimeoutError::Timeout) => {}
                Err(std_mpsc::RecvTimeoutError::Disconnected) => break,
            }
        }
    }
    Some(batch)
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

/// The advisory lock class under which a PostgreSQL writer holds its chain ("audt").
const CHAIN_LOCK_CLASS: i32 = 0x6175_6474;

/// Opens the writer's connection and claims a chain for it. On PostgreSQL the chain is
/// held by a session advisory lock for as long as the connection lives: the first chain
/// no live writer holds, or a new one. On SQLite one writer at a time holds the write
/// lock, so every writer appends to chain 1.
fn connect_and_claim(url: &DatabaseUrl) -> Result<(DbConnection, bool, i64), StorageError> {
    let (mut conn, wal) = open_writer(url)?;
    let chain = match &mut conn {
        DbConnection::Sqlite(_) => 1,
        DbConnection::Pg(c) => claim_chain(c)?,
    };
    // The chain's entries not yet indexed may be an earlier writer's: bring its keys up
    // to its head, so the review's unindexed tail stays short.
    let head_id = audit::chain_row(chain).map_err(|e| StorageError::Thread(e.to_string()))?;
    let seq: i64 = audit_head::table
        .filter(audit_head::id.eq(head_id))
        .select(audit_head::seq)
        .first(&mut conn)?;
    if let Err(e) = conn.transaction(|c| audit::index_keys(c, chain, seq)) {
        tracing::warn!(error = %e, chain, "cannot index the claimed chain's keys; the writer will");
    }
    tracing::info!(chain, "audit chain claimed");
    Ok((conn, wal, chain))
}

fn claim_chain(c: &mut diesel::PgConnection) -> Result<i64, StorageError> {
    #[derive(QueryableByName)]
    struct Got {
        #[diesel(sql_type = diesel::sql_types::Bool)]
        got: bool,
    }
    let try_lock = |c: &mut diesel::PgConnection, id: i32| -> Result<bool, StorageError> {
        Ok(
            diesel::sql_query("SELECT pg_try_advisory_lock($1, $2) AS got")
                .bind::<Integer, _>(CHAIN_LOCK_CLASS)
                .bind::<Integer, _>(id)
                .get_result::<Got>(c)?
                .got,
        )
    };
    loop {
        let ids: Vec<i32> = audit_head::table
            .order(audit_head::id.asc())
            .select(audit_head::id)
            .load(c)?;
        for &id in &ids {
            if try_lock(c, id)? {
                return Ok(i64::from(id));
            }
        }
        // Every chain is held: start a new one. Two writers may pick the same id at
        // once; the loser's insert fails on the key and it looks again.
        let next = ids.iter().max().copied().unwrap_or(0) + 1;
        let inserted = diesel::insert_into(audit_head::table)
            .values((
                audit_head::id.eq(next),
                audit_head::seq.eq(0i64),
                audit_head::hash.eq(audit::GENESIS_HASH),
                audit_head::indexed_seq.eq(0i64),
            ))
            .on_conflict_do_nothing()
            .execute(c)?;
        if inserted == 1 && try_lock(c, next)? {
            return Ok(i64::from(next));
        }
    }
}

/// A session and its user as stored now: the session's state and what decisions rest on.
struct Now {
    user_id: String,
    live: bool,
    token_epoch: i64,
    role: String,
    organization_id: String,
    places: Vec<String>,
}

/// Which sessions of a group still hold: nothing to ask while the change counter has not
/// moved since their users were read (`current`), else one query for all of them (a row
/// per assigned place). A request whose session was revoked or expired, whose user was disabled or had
/// its password changed, gets a 401; one whose user's role, organisation or places
/// changed since the request read them gets a 409 and is sent again by the client (the
/// next read sees the change).
fn check_sessions(
    conn: &mut DbConnection,
    jobs: &[Job],
    current: i64,
) -> QueryResult<Vec<Option<AppError>>> {
    fn stale(j: &Job, current: i64) -> Option<&SessionStamp> {
        j.stamp.as_ref().filter(|s| s.generation != current)
    }
    let mut ids: Vec<&str> = jobs
        .iter()
        .filter_map(|j| stale(j, current).map(|s| s.session_id.as_str()))
        .collect();
    if ids.is_empty() {
        return Ok(jobs.iter().map(|_| None).collect());
    }
    ids.sort_unstable();
    ids.dedup();
    type Row = (
        String,
        String,
        Option<i64>,
        i64,
        bool,
        i64,
        String,
        String,
        Option<String>,
    );
    let rows: Vec<Row> = sessions::table
        .inner_join(users::table.left_join(user_places::table))
        .filter(sessions::id.eq_any(&ids))
        .select((
            sessions::id,
            sessions::user_id,
            sessions::revoked_at,
            sessions::expires_at,
            users::disabled,
            users::token_epoch,
            users::role,
            users::organization_id,
            user_places::place_id.nullable(),
        ))
        .load(conn)?;
    let now = now_micros();
    let mut by_id: HashMap<String, Now> = HashMap::new();
    for (sid, user_id, revoked, expires, disabled, token_epoch, role, organization_id, place) in
        rows
    {
        let entry = by_id.entry(sid).or_insert_with(|| Now {
            user_id,
            live: revoked.is_none() && expires > now && !disabled,
            token_epoch,
            role,
            organization_id,
            places: Vec::new(),
        });
        entry.places.extend(place);
    }
    for n in by_id.values_mut() {
        n.places.sort();
    }
    Ok(jobs
        .iter()
        .map(|j| {
            let stamp = stale(j, current)?;
            let live = by_id.get(&stamp.session_id).filter(|n| {
                n.live && n.user_id == stamp.user_id && n.token_epoch == stamp.token_epoch
            });
            match live {
                None => Some(AppError::invalid_token(
                    "The session has ended: sign in again.",
                )),
                Some(n)
                    if n.role != stamp.role
                        || n.organization_id != stamp.organization_id
                        || n.places != stamp.places =>
                {
                    Some(AppError::Conflict(
                        "Your role, organisation or places changed while this request ran; send it again.".into(),
                    ))
                }
                Some(_) => None,
            }
        })
        .collect())
}

fn run(
    url: DatabaseUrl,
    lane: Arc<Lane>,
    generation_counter: Arc<Generation>,
    index_every: i64,
    commits_metric: prometheus::IntCounterVec,
    policies: Arc<Policies>,
) {
    let committed_groups = commits_metric.with_label_values(&["committed"]);
    let failed_groups = commits_metric.with_label_values(&["failed"]);
    let (mut conn, wal, mut chain) =
        crate::storage::retry_until_ok("audit writer", || connect_and_claim(&url));
    let checkpointer = if wal { start_checkpointer(&url) } else { None };
    let mut commits: u64 = 0;
    // The change counter as of the last commit; a new value means cached data may be stale.
    let mut seen_generation = None;
    // What the last commit left (PostgreSQL): the chain's head and the change counter,
    // for the one-statement path of a group of reads.
    let mut fast = FastPath::default();
    // Whatever queued while the last commit waited for the disk rides this one.
    while let Some(mut batch) = gather(&lane) {
        match fast.try_append(&mut conn, chain, &policies.hash(), &mut batch, index_every) {
            Ok(true) => {
                commits += 1;
                committed_groups.inc();
                continue;
            }
            Ok(false) => {}
            Err(e) => {
                failed_groups.inc();
                // Whether it committed is unknown: the requests get 503 (their entries
                // may still be in the trail: an answer is never sent without one).
                tracing::error!(error = %e, "group commit failed");
                fast = FastPath::default();
                for job in batch {
                    job.fail();
                }
                (conn, _, chain) =
                    crate::storage::retry_until_ok("audit writer", || connect_and_claim(&url));
                continue;
            }
        }
        let mut completions: Vec<Completion> = Vec::with_capacity(batch.len());
        let mut generation = None;
        let mut refused_any = false;
        let mut left = None;
        let result = conn.transaction::<_, diesel::result::Error, _>(|c| {
            // The chain's row lock: only this writer appends to the chain, but should two
            // ever hold it (a lost connection's lock released while its writer still
            // ran), they take turns and the chain never forks. On SQLite this takes the
            // write lock at once.
            let head_id =
                audit::chain_row(chain).map_err(|_| diesel::result::Error::RollbackTransaction)?;
            let Some((head, current)) = lock_head(c, head_id)? else {
                tracing::error!(chain, "the audit chain's head row is gone");
                return Err(diesel::result::Error::NotFound);
            };
            let writes = batch.iter().any(|j| j.writes);
            let refusals = check_sessions(c, &batch, current)?;
            refused_any = refusals.iter().any(Option::is_some);
            let mut group = Group {
                chain,
                policy: policies.hash(),
                pending: Vec::new(),
            };
            let mut poisoned = false;
            for (job, refused) in batch.into_iter().zip(refusals) {
                let (done, failed) = job.work.run(c, &mut group, refused);
                completions.push(done);
                poisoned |= failed;
            }
            if poisoned {
                return Err(diesel::result::Error::RollbackTransaction);
            }
            let after = if group.pending.is_empty() {
                left = Some(head);
                None
            } else {
                match place_and_write(
                    c,
                    chain,
                    head_id,
                    head,
                    &mut group.pending,
                    index_every,
                    &mut fast.seqs,
                ) {
                    Ok((head, generation)) => {
                        left = Some(head);
                        Some(generation)
                    }
                    Err(e) => {
                        tracing::error!(error = %e, "cannot write audit entries");
                        return Err(diesel::result::Error::RollbackTransaction);
                    }
                }
            };
            // Only writes can have moved the counter since the lock read it; the head's
            // move read it after them.
            generation = Some(match (writes, after) {
                (false, _) => current,
                (true, Some(after)) => after,
                (true, None) => stored_generation(c)?,
            });
            Ok(())
        });
        // The commit has returned: on PostgreSQL and on SQLite (`synchronous = FULL`)
        // that means it is on disk.
        let committed = match result {
            Ok(()) => {
                committed_groups.inc();
                true
            }
            Err(e) => {
                failed_groups.inc();
                tracing::error!(error = %e, "group commit failed");
                false
            }
        };
        // Before anyone hears of this commit: a change it made (or one made elsewhere
        // since the last commit) must not be answered from a cache; nor may a session
        // this group found changed.
        if !committed || refused_any || generation != seen_generation {
            generation_counter.invalidate();
            seen_generation = generation;
        }
        fast.after = match (committed, left, generation) {
            (true, Some(head), Some(generation)) => Some((head, generation)),
            _ => None,
        };
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
            // The connection may be gone (database restarted, or the server ended a
            // transaction this process left idle): get a fresh one, and a chain with it
            // (a lost connection's advisory lock is gone).
            (conn, _, chain) =
                crate::storage::retry_until_ok("audit writer", || connect_and_claim(&url));
        }
    }
}

/// Places the group's entries at the end of its chain and writes them, moves the head
/// on and, every `index_every` entries, copies their lookup keys. Returns the head it
/// leaves and the change counter as of its last statement (after the group's writes).
fn place_and_write(
    c: &mut DbConnection,
    chain: i64,
    head_id: i32,
    (seq, hash, indexed): Head,
    pending: &mut [AuditRow],
    index_every: i64,
    numbers: &mut SeqPool,
) -> Result<(Head, i64), AppError> {
    let mut head = ChainHead { seq, hash };
    let seqs = numbers.take(c, pending.len(), seq)?;
    audit::link(&mut head, &seqs, pending);
    audit::insert_rows(c, pending)?;
    let generation = set_head(
        c,
        SetHead {
            id: head_id,
            seq: head.seq,
            hash: &head.hash,
        },
    )?;
    // Counted in entries of the whole trail: a chain's own count may be a fraction.
    let mut indexed = indexed;
    if head.seq - indexed >= index_every {
        // In a savepoint: a failure here loses no entry, only delays the keys.
        match c.transaction(|c| audit::index_keys(c, chain, head.seq)) {
            Ok(()) => indexed = head.seq,
            Err(e) => {
                tracing::warn!(error = %e, "cannot index audit entries; the next batch retries")
            }
        }
    }
    Ok(((head.seq, head.hash, indexed), generation))
}

/// Moves the head; returns the change counter in the same round trip.
fn set_head(c: &mut DbConnection, q: SetHead<'_>) -> QueryResult<i64> {
    match c {
        DbConnection::Sqlite(c) => q.get_result(c),
        DbConnection::Pg(c) => q.get_result(c),
    }
}

/// Takes the chain head's row lock (PostgreSQL) and the write lock at once (SQLite), and
/// reads the head (its last entry's number and hash, how far its keys are indexed) and
/// the change counter in the same round trip.
type Head = (i64, String, i64);

fn lock_head(c: &mut DbConnection, id: i32) -> QueryResult<Option<(Head, i64)>> {
    let q = LockHead { id };
    let row: Option<(i64, String, i64, i64)> = match c {
        DbConnection::Sqlite(c) => q.get_result(c).optional()?,
        DbConnection::Pg(c) => q.get_result(c).optional()?,
    };
    Ok(row.map(|(seq, hash, indexed, generation)| ((seq, hash, indexed), generation)))
}

struct LockHead {
    id: i32,
}

impl diesel::query_builder::Query for LockHead {
    type SqlType = (BigInt, Text, BigInt, BigInt);
}

impl QueryId for LockHead {
    type QueryId = LockHead;
    const HAS_STATIC_QUERY_ID: bool = true;
}

impl<DB> QueryFragment<DB> for LockHead
where
    DB: Backend + HasSqlType<Integer>,
    i32: ToSql<Integer, DB>,
{
    fn walk_ast<'b>(&'b self, mut out: AstPass<'_, 'b, DB>) -> QueryResult<()> {
        out.push_sql("UPDATE audit_head SET seq = seq WHERE id = ");
        out.push_bind_param::<Integer, _>(&self.id)?;
        out.push_sql(
            " RETURNING seq, hash, indexed_seq, \
             (SELECT generation FROM cache_generation WHERE id = 1)",
        );
        Ok(())
    }
}

impl<C> RunQueryDsl<C> for LockHead {}

/// Moves the stored head to the group's last entry.
struct SetHead<'a> {
    id: i32,
    seq: i64,
    hash: &'a str,
}

impl QueryId for SetHead<'_> {
    type QueryId = SetHead<'static>;
    const HAS_STATIC_QUERY_ID: bool = true;
}

impl<DB> QueryFragment<DB> for SetHead<'_>
where
    DB: Backend + HasSqlType<BigInt> + HasSqlType<Text> + HasSqlType<Integer>,
    i64: ToSql<BigInt, DB>,
    str: ToSql<Text, DB>,
    i32: ToSql<Integer, DB>,
{
    fn walk_ast<'b>(&'b self, mut out: AstPass<'_, 'b, DB>) -> QueryResult<()> {
        out.push_sql("UPDATE audit_head SET seq = ");
        out.push_bind_param::<BigInt, _>(&self.seq)?;
        out.push_sql(", hash = ");
        out.push_bind_param::<Text, _>(self.hash)?;
        out.push_sql(" WHERE id = ");
        out.push_bind_param::<Integer, _>(&self.id)?;
        out.push_sql(" RETURNING (SELECT generation FROM cache_generation WHERE id = 1)");
        Ok(())
    }
}

impl diesel::query_builder::Query for SetHead<'_> {
    type SqlType = BigInt;
}

impl<C> RunQueryDsl<C> for SetHead<'_> {}

impl Job {
    /// Answers the job with 503 without running it: its group could not be committed.
    /// Only groups of reads are failed this way (see [`FastPath::try_append`]); a `Run`
    /// job dropped here would answer "writer dropped a job".
    fn fail(self) {
        if let Work::Audit { done, .. } = self.work {
            let _ = done.send(Err(AppError::Unavailable));
        }
    }
}

/// Entry numbers drawn ahead (PostgreSQL), so that a group of reads need not ask
/// `audit_seq` each time. Kept briefly only: numbers order the trail across chains, and a
/// number drawn long before it is used would place an entry among older ones.
#[derive(Default)]
struct SeqPool {
    numbers: std::collections::VecDeque<i64>,
    drawn: Option<std::time::Instant>,
}

/// How long drawn numbers are kept.
const SEQ_POOL_MAX_AGE: std::time::Duration = std::time::Duration::from_millis(20);

impl SeqPool {
    /// `n` numbers above `after` (the chain's head), increasing. SQLite counts on from
    /// the highest under its write lock: nothing drawn ahead.
    fn take(&mut self, c: &mut DbConnection, n: usize, after: i64) -> Result<Vec<i64>, AppError> {
        if matches!(c, DbConnection::Sqlite(_)) || n == 0 {
            return audit::allocate(c, n);
        }
        self.numbers.retain(|&s| s > after);
        let fresh = self.drawn.is_some_and(|at| at.elapsed() < SEQ_POOL_MAX_AGE);
        if !fresh || self.numbers.len() < n {
            // A few groups' worth: under load the next groups need none drawn; when idle,
            // a few numbers go unused.
            self.numbers = audit::allocate(c, (n * 4).clamp(8, MAX_BATCH * 4))?.into();
            self.drawn = Some(std::time::Instant::now());
        }
        Ok(self.numbers.drain(..n).collect())
    }
}

/// The one-statement group commit of a group of reads (PostgreSQL). A read's audit
/// entries change nothing but the trail, so a group of them needs no transaction of its
/// own: one statement places them after the head this writer left (it alone appends to
/// its chain), moves the head, and commits, one round trip instead of six. It applies
/// only while nothing was changed since the last commit (the change counter as then):
/// then no session can have ended and no user changed since the requests read them.
/// Whatever else (a write, a session to check, a head moved by someone else, keys due for
/// indexing) takes the transaction.
#[derive(Default)]
struct FastPath {
    /// The chain's head as the last commit left it, and the change counter then.
    after: Option<(Head, i64)>,
    seqs: SeqPool,
}

impl FastPath {
    /// Commits `batch` in one statement if it can: `Ok(true)` when done (every job
    /// answered), `Ok(false)` when the batch must take the transaction (untouched), an
    /// error when the connection failed (the batch is then still to be answered).
    fn try_append(
        &mut self,
        conn: &mut DbConnection,
        chain: i64,
        policy: &str,
        batch: &mut Vec<Job>,
        index_every: i64,
    ) -> Result<bool, AppError> {
        if !matches!(conn, DbConnection::Pg(_)) {
            return Ok(false);
        }
        let Some(((seq, hash, indexed), generation)) = self.after.clone() else {
            return Ok(false);
        };
        let reads_only = batch.iter().all(|j| {
            matches!(j.work, Work::Audit { .. })
                && j.stamp.as_ref().is_none_or(|s| s.generation == generation)
        });
        let n: usize = batch
            .iter()
            .map(|j| match &j.work {
                Work::Audit { entries, .. } => entries.len(),
                Work::Run(_) => 0,
            })
            .sum();
        if !reads_only || n == 0 {
            return Ok(false);
        }
        let seqs = self.seqs.take(conn, n, seq)?;
        if seqs
            .last()
            .is_some_and(|last| last - indexed >= index_every)
        {
            // Keys due for indexing: the transaction does that.
            return Ok(false);
        }
        let mut rows = Vec::with_capacity(n);
        for job in batch.iter() {
            if let Work::Audit { entries, .. } = &job.work {
                audit::unplaced(chain, policy, entries.iter().cloned(), &mut rows);
            }
        }
        let mut head = ChainHead {
            seq,
            hash: hash.clone(),
        };
        audit::link(&mut head, &seqs, &mut rows);
        let append = AppendReads {
            id: audit::chain_row(chain)?,
            old_seq: seq,
            old_hash: &hash,
            new_seq: head.seq,
            new_hash: &head.hash,
            generation,
            rows: &rows,
        };
        let DbConnection::Pg(c) = conn else {
            return Ok(false);
        };
        let written: i64 = append.get_result(c)?;
        if written != n as i64 {
            // Something changed since the last commit: the transaction decides.
            self.after = None;
            return Ok(false);
        }
        // Durable (one statement in autocommit, synchronous_commit on): answer.
        self.after = Some(((head.seq, head.hash, indexed), generation));
        for job in batch.drain(..) {
            if let Work::Audit { done, .. } = job.work {
                let _ = done.send(Ok(()));
            }
        }
        Ok(true)
    }
}

/// The statement of [`FastPath::try_append`]: moves the head from what this writer left
/// to the group's last entry, only if it is still there and the change counter has not
/// moved, and inserts the entries only if it did; says how many went in.
struct AppendReads<'a> {
    id: i32,
    old_seq: i64,
    old_hash: &'a str,
    new_seq: i64,
    new_hash: &'a str,
    generation: i64,
    rows: &'a [AuditRow],
}

impl QueryId for AppendReads<'_> {
    type QueryId = ();
    // The text depends on the number of rows: prepared once per count.
    const HAS_STATIC_QUERY_ID: bool = false;
}

impl diesel::query_builder::Query for AppendReads<'_> {
    type SqlType = BigInt;
}

impl QueryFragment<diesel::pg::Pg> for AppendReads<'_> {
    fn walk_ast<'b>(&'b self, mut out: AstPass<'_, 'b, diesel::pg::Pg>) -> QueryResult<()> {
        use diesel::sql_types::Nullable;
        out.push_sql("WITH h AS (UPDATE audit_head SET seq = ");
        out.push_bind_param::<BigInt, _>(&self.new_seq)?;
        out.push_sql(", hash = ");
        out.push_bind_param::<Text, _>(self.new_hash)?;
        out.push_sql(" WHERE id = ");
        out.push_bind_param::<Integer, _>(&self.id)?;
        out.push_sql(" AND seq = ");
        out.push_bind_param::<BigInt, _>(&self.old_seq)?;
        out.push_sql(" AND hash = ");
        out.push_bind_param::<Text, _>(self.old_hash)?;
        out.push_sql(" AND (SELECT generation FROM cache_generation WHERE id = 1) = ");
        out.push_bind_param::<BigInt, _>(&self.generation)?;
        out.push_sql(
            " RETURNING 1), ins AS (INSERT INTO audit_log (seq, at, actor_id, actor_username, \
             actor_org_id, actor_role, action, record_kind, record_id, parts, outcome, \
             request_id, purpose, client, prev_hash, hash, changes, channel, chain, \
             policy_hash) SELECT v.* FROM (VALUES ",
        );
        for (i, r) in self.rows.iter().enumerate() {
            out.push_sql(if i == 0 { "(" } else { ", (" });
            out.push_bind_param::<BigInt, _>(&r.seq)?;
            out.push_sql(", ");
            out.push_bind_param::<BigInt, _>(&r.at)?;
            for v in [
                &r.actor_id,
                &r.actor_username,
                &r.actor_org_id,
                &r.actor_role,
            ] {
                out.push_sql(", ");
                out.push_bind_param::<Nullable<Text>, _>(v)?;
            }
            out.push_sql(", ");
            out.push_bind_param::<Text, _>(&r.action)?;
            for v in [&r.record_kind, &r.record_id] {
                out.push_sql(", ");
                out.push_bind_param::<Nullable<Text>, _>(v)?;
            }
            for v in [&r.parts, &r.outcome] {
                out.push_sql(", ");
                out.push_bind_param::<Text, _>(v)?;
            }
            for v in [&r.request_id, &r.purpose, &r.client] {
                out.push_sql(", ");
                out.push_bind_param::<Nullable<Text>, _>(v)?;
            }
            for v in [&r.prev_hash, &r.hash] {
                out.push_sql(", ");
                out.push_bind_param::<Text, _>(v)?;
            }
            for v in [&r.changes, &r.channel] {
                out.push_sql(", ");
                out.push_bind_param::<Nullable<Text>, _>(v)?;
            }
            out.push_sql(", ");
            out.push_bind_param::<BigInt, _>(&r.chain)?;
            out.push_sql(", ");
            out.push_bind_param::<Nullable<Text>, _>(&r.policy_hash)?;
            out.push_sql(")");
        }
        out.push_sql(
            ") AS v (seq, at, actor_id, actor_username, actor_org_id, actor_role, action, \
             record_kind, record_id, parts, outcome, request_id, purpose, client, prev_hash, \
             hash, changes, channel, chain, policy_hash) WHERE EXISTS (SELECT 1 FROM h) RETURNING 1) \
             SELECT count(*) FROM ins",
        );
        Ok(())
    }
}

impl RunQueryDsl<diesel::PgConnection> for AppendReads<'_> {}
