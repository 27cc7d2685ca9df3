//! The audit trail (loggning): who read, wrote, was refused, logged in, administered or
//! erased what, when and why. Entries are append-only and hash-chained: each entry's hash
//! commits to the one before, so altering, deleting or reordering any entry shows.

pub mod review;
pub mod writer;

use diesel::prelude::*;
use sha2::{Digest, Sha256};

use crate::auth::Principal;
use crate::error::AppError;
use crate::policy::vocabulary::vocabulary;
pub use crate::request::RequestMeta;
use crate::storage::models::AuditRow;
use crate::storage::schema::audit_log;
use crate::storage::{now_micros, DbConnection};

vocabulary!(
    /// What an audit entry records.
    AuditAction {
        Read => "read",
        List => "list",
        Create => "create",
        Feedback => "feedback",
        Consent => "consent",
        ConsentWithdraw => "consent_withdraw",
        Login => "login",
        TokenRefresh => "token_refresh",
        Logout => "logout",
        PasswordChange => "password_change",
        AdminCreate => "admin_create",
        AdminUpdate => "admin_update",
        Administer => "administer",
        AuditReview => "audit_review",
        AuditExport => "audit_export",
        AuditSummary => "audit_summary",
        LegalHoldSet => "legal_hold_set",
        LegalHoldCleared => "legal_hold_cleared",
        LegalHoldList => "legal_hold_list",
        Erase => "erase",
        RetentionDryRun => "retention_dry_run",
        DemoSeed => "demo_seed",
        Backup => "backup",
        Restore => "restore",
        /// Statistics read (a disclosure, even of aggregates): which, in `parts`.
        StatisticsRead => "statistics_read",
        /// An event stream opened (live alerts: record ids and kinds only).
        EventsOpen => "events_open",
        /// A policy set became current (start-up with new files, a reload or SIGHUP);
        /// the record id is its hash.
        PolicyLoaded => "policy_loaded",
        /// A second factor enrolment started (a fresh secret, not yet in force).
        TotpEnroll => "totp_enroll",
        /// A second factor confirmed (in force; recovery codes handed out), or a wrong code.
        TotpConfirm => "totp_confirm",
    }
);

impl AuditAction {
    /// Writes to case data (for the auditor's per-user summary).
    pub fn writes_case_data(self) -> bool {
        matches!(
            self,
            AuditAction::Create
                | AuditAction::Feedback
                | AuditAction::Consent
                | AuditAction::ConsentWithdraw
        )
    }
}

vocabulary!(
    /// How it ended.
    Outcome {
        Success => "success",
        /// Refused by the policy (403).
        Denied => "denied",
        /// Nothing visible there (404: hidden or never existing).
        NotFound => "not_found",
        /// Invalid credentials or token.
        Failed => "failed",
        /// Too many failed logins.
        Throttled => "throttled",
        /// A spent refresh token came back.
        ReuseDetected => "reuse_detected",
        /// Due for erasure but under legal hold.
        Held => "held",
    }
);

/// Hash of the (empty) chain before the first entry.
pub const GENESIS_HASH: &str = "0000000000000000000000000000000000000000000000000000000000000000";

/// The last entry of the chain: its position and hash.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ChainHead {
    pub seq: i64,
    pub hash: String,
}

/// Who acted, as recorded (username, organisation and role at the time).
#[derive(Debug, Clone, Default)]
pub struct Actor {
    pub id: String,
    pub username: String,
    pub organization_id: String,
    pub role: String,
}

impl Actor {
    /// The signed-in user of a request.
    pub fn of(p: &Principal) -> Self {
        Actor {
            id: p.user.id.clone(),
            username: p.user.username.clone(),
            organization_id: p.organization.id.clone(),
            role: p.user.role.clone(),
        }
    }

    /// A user as stored (before a session exists: login).
    pub fn user(u: &crate::storage::models::User) -> Self {
        Actor {
            id: u.id.clone(),
            username: u.username.clone(),
            organization_id: u.organization_id.clone(),
            role: u.role.clone(),
        }
    }
}

/// One entry before it is chained. `parts` names the parts disclosed or written.
#[derive(Debug, Clone)]
pub struct AuditEntry {
    pub actor: Option<Actor>,
    pub action: AuditAction,
    pub record_kind: Option<String>,
    pub record_id: Option<String>,
    /// The parts' names, comma-separated as stored (joined once, where the entry is made).
    pub parts: String,
    pub outcome: Outcome,
    pub request_id: Option<String>,
    pub purpose: Option<String>,
    pub client: Option<String>,
    /// Administrative changes: the changed fields before and after, as JSON.
    pub changes: Option<String>,
    /// `web` for what was done through the pages; `None` for the API and the CLI.
    pub channel: Option<String>,
    /// The hash of the policy set the request decided with; the writer fills in the set
    /// in force when it is `None`.
    pub policy_hash: Option<std::sync::Arc<str>>,
}

impl AuditEntry {
    pub fn new(action: AuditAction, outcome: Outcome, meta: &RequestMeta) -> Self {
        AuditEntry {
            actor: None,
            action,
            record_kind: None,
            record_id: None,
            parts: String::new(),
            outcome,
            request_id: meta.request_id.clone(),
            purpose: meta.purpose.clone(),
            client: meta.client.clone(),
            changes: None,
            channel: meta.channel.map(str::to_owned),
            policy_hash: None,
        }
    }

    /// The policy set that decided (the request's snapshot of it).
    pub fn decided_by(mut self, engine: &crate::policy::PolicyEngine) -> Self {
        self.policy_hash = Some(engine.hash().clone());
        self
    }

    /// An entry for what the signed-in user of a request did.
    pub fn by(p: &Principal, action: AuditAction, outcome: Outcome) -> Self {
        AuditEntry::new(action, outcome, &p.meta).actor(Actor::of(p))
    }

    pub fn actor(mut self, actor: Actor) -> Self {
        self.actor = Some(actor);
        self
    }

    pub fn outcome(mut self, outcome: Outcome) -> Self {
        self.outcome = outcome;
        self
    }

    /// The changed fields before and after (administrative changes; never secrets).
    pub fn changes(mut self, changes: serde_json::Value) -> Self {
        self.changes = Some(changes.to_string());
        self
    }

    pub fn record(mut self, kind: &str, id: &str) -> Self {
        self.record_kind = Some(kind.to_owned());
        self.record_id = Some(id.to_owned());
        self
    }

    pub fn parts<S: AsRef<str>>(mut self, parts: &[S]) -> Self {
        let mut joined = String::new();
        for (i, p) in parts.iter().enumerate() {
            if i > 0 {
                joined.push(',');
            }
            joined.push_str(p.as_ref());
        }
        self.parts = joined;
        self
    }
}

/// The hash of one entry: SHA-256 over the previous hash and every stored field, each
/// length-prefixed so no two different entries serialise alike.
pub fn entry_hash(row: &AuditRow) -> String {
    fn opt(o: &Option<String>) -> &str {
        o.as_deref().unwrap_or("\u{0}")
    }
    let mut h = Sha256::new();
    let mut field = |s: &str| {
        h.update((s.len() as u64).to_be_bytes());
        h.update(s.as_bytes());
    };
    field(&row.prev_hash);
    let mut digits = [0u8; 20];
    field(decimal(row.seq, &mut digits));
    field(decimal(row.at, &mut digits));
    field(opt(&row.actor_id));
    field(opt(&row.actor_username));
    field(opt(&row.actor_org_id));
    field(opt(&row.actor_role));
    field(&row.action);
    field(opt(&row.record_kind));
    field(opt(&row.record_id));
    field(&row.parts);
    field(&row.outcome);
    field(opt(&row.request_id));
    field(opt(&row.purpose));
    field(opt(&row.client));
    // Only when present, so that entries from before the field hash as they always did.
    if let Some(changes) = &row.changes {
        field(changes);
    }
    // Tagged: a JSON changeset never reads "channel", so no two entries hash alike.
    if let Some(channel) = &row.channel {
        field("channel");
        field(channel);
    }
    // Chain 1 is every entry from before there were several; the others are tagged.
    if row.chain != 1 {
        field("chain");
        field(decimal(row.chain, &mut digits));
    }
    // Tagged and only when present, like the channel: older entries hash as they did.
    if let Some(policy) = &row.policy_hash {
        field("policy");
        field(policy);
    }
    lower_hex(&h.finalize())
}

/// `n` in decimal, written into `buf` (no allocation: this runs once per entry).
fn decimal(n: i64, buf: &mut [u8; 20]) -> &str {
    use std::io::Write;
    let mut rest = &mut buf[..];
    // 20 bytes hold every i64 ("-9223372036854775808"), so the write cannot run short.
    let _ = write!(rest, "{n}");
    let len = 20 - rest.len();
    std::str::from_utf8(&buf[..len]).unwrap_or_default()
}

/// Lower-case hex, as `hex::encode` writes it, into one allocation of the right size
/// (`hex::encode` pushes char by char through an iterator: a third of the entry hash).
fn lower_hex(bytes: &[u8]) -> String {
    const DIGITS: &[u8; 16] = b"0123456789abcdef";
    let mut s = String::with_capacity(bytes.len() * 2);
    for b in bytes {
        s.push(DIGITS[usize::from(b >> 4)] as char);
        s.push(DIGITS[usize::from(b & 0x0f)] as char);
    }
    s
}

/// Entries as rows of `chain`, not yet placed in it: [`link`] gives them their numbers
/// and hashes once the group commit knows how many there are. The entries are moved, not
/// copied: this runs on the writer thread, once for every entry of the service.
pub fn unplaced(
    chain: i64,
    policy: &str,
    entries: impl IntoIterator<Item = AuditEntry>,
    rows: &mut Vec<AuditRow>,
) {
    let at = now_micros();
    for entry in entries {
        let (actor_id, actor_username, actor_org_id, actor_role) = match entry.actor {
            Some(a) => (
                Some(a.id),
                Some(a.username),
                Some(a.organization_id),
                Some(a.role),
            ),
            None => (None, None, None, None),
        };
        rows.push(AuditRow {
            seq: 0,
            at,
            actor_id,
            actor_username,
            actor_org_id,
            actor_role,
            action: entry.action.as_str().to_owned(),
            record_kind: entry.record_kind,
            record_id: entry.record_id,
            parts: entry.parts,
            outcome: entry.outcome.as_str().to_owned(),
            request_id: entry.request_id,
            purpose: entry.purpose,
            client: entry.client,
            prev_hash: String::new(),
            hash: String::new(),
            changes: entry.changes,
            channel: entry.channel,
            chain,
            policy_hash: Some(entry.policy_hash.as_deref().unwrap_or(policy).to_owned()),
        });
    }
}

/// Places `rows` after `head` under `seqs` (one each, increasing), each committing to
/// the one before, and moves `head` on to the last.
pub fn link(head: &mut ChainHead, seqs: &[i64], rows: &mut [AuditRow]) {
    for (row, &seq) in rows.iter_mut().zip(seqs) {
        row.seq = seq;
        row.prev_hash = std::mem::take(&mut head.hash);
        row.hash = entry_hash(row);
        head.seq = seq;
        head.hash.clone_from(&row.hash);
    }
}

/// `n` fresh entry numbers, increasing. PostgreSQL draws them from `audit_seq`, which
/// several writers draw from at once without waiting for each other; on SQLite one
/// writer holds the write lock and counts on from the highest.
pub fn allocate(conn: &mut DbConnection, n: usize) -> Result<Vec<i64>, AppError> {
    if n == 0 {
        return Ok(Vec::new());
    }
    match conn {
        DbConnection::Pg(c) => {
            #[derive(QueryableByName)]
            struct Next {
                #[diesel(sql_type = diesel::sql_types::BigInt)]
                n: i64,
            }
            let mut seqs: Vec<i64> =
                diesel::sql_query("SELECT nextval('audit_seq') AS n FROM generate_series(1, $1)")
                    .bind::<diesel::sql_types::BigInt, _>(n as i64)
                    .load::<Next>(c)?
                    .into_iter()
                    .map(|r| r.n)
                    .collect();
            seqs.sort_unstable();
            Ok(seqs)
        }
        DbConnection::Sqlite(c) => {
            let max: Option<i64> = audit_log::table
                .select(diesel::dsl::max(audit_log::seq))
                .first(c)?;
            let from = max.unwrap_or(0) + 1;
            Ok((from..from + n as i64).collect())
        }
    }
}

/// Writes chained rows. On SQLite in statements of 32, 16, 8, 4, 2 or 1 rows (a group of
/// twelve is two statements): a statement of a fixed size has a static identity, so
/// diesel prepares each size once per connection and never builds its SQL text again,
/// where a statement per row had its text built and looked up every time. On PostgreSQL
/// one round trip per 50 rows (16 columns a row stays well under the bound-parameter
/// limit).
pub fn insert_rows(conn: &mut DbConnection, rows: &[AuditRow]) -> Result<(), AppError> {
    match conn {
        DbConnection::Sqlite(c) => {
            let mut rest = rows;
            while !rest.is_empty() {
                rest = match rest.len() {
                    32.. => insert_fixed::<32>(c, rest)?,
                    16.. => insert_fixed::<16>(c, rest)?,
                    8.. => insert_fixed::<8>(c, rest)?,
                    4.. => insert_fixed::<4>(c, rest)?,
                    2.. => insert_fixed::<2>(c, rest)?,
                    _ => insert_fixed::<1>(c, rest)?,
                };
            }
        }
        DbConnection::Pg(c) => {
            for chunk in rows.chunks(50) {
                diesel::insert_into(audit_log::table)
                    .values(chunk)
                    .execute(c)?;
            }
        }
    }
    Ok(())
}

/// Inserts the first `N` of `rows` in one statement and returns the rest.
fn insert_fixed<'r, const N: usize>(
    c: &mut diesel::SqliteConnection,
    rows: &'r [AuditRow],
) -> Result<&'r [AuditRow], AppError> {
    let (first, rest) = rows.split_at(N.min(rows.len()));
    let first: &[AuditRow; N] = first
        .try_into()
        .map_err(|_| AppError::internal("audit rows: chunk of the wrong size"))?;
    diesel::insert_into(audit_log::table)
        .values(first)
        .execute(c)?;
    Ok(rest)
}

/// Most entries one call of [`index_keys`] copies, so that a backlog (entries loaded by
/// hand) never stalls the writer for long; the next calls take the rest.
pub const INDEX_BATCH_MAX: i64 = 100_000;

/// Copies the looked-up columns (actor, record, time) of chain `chain`'s entries after
/// its `audit_head.indexed_seq`, up to `upto`, into the indexed `audit_keys`, and moves
/// `indexed_seq` on. Runs in the chain's writer's transaction, under the chain's row
/// lock. Keeping these indexes off audit_log means an append writes the entry and
/// nothing else; the review reads the few entries not yet copied from audit_log itself
/// (see [`review`]).
pub fn index_keys(conn: &mut DbConnection, chain: i64, upto: i64) -> Result<(), AppError> {
    use crate::storage::schema::{audit_head, audit_keys};
    let head_id = chain_row(chain)?;
    let indexed: i64 = audit_head::table
        .filter(audit_head::id.eq(head_id))
        .select(audit_head::indexed_seq)
        .first(conn)?;
    if indexed > upto {
        // The chain was cut back below what was indexed (only by hand: `audit verify`
        // reports it): forget the keys of entries that are gone.
        diesel::delete(
            audit_keys::table.filter(audit_keys::seq.gt(upto)).filter(
                audit_keys::seq.ne_all(
                    audit_log::table
                        .select(audit_log::seq)
                        .filter(audit_log::seq.gt(upto)),
                ),
            ),
        )
        .execute(conn)?;
    }
    let upto = upto.min(indexed.saturating_add(INDEX_BATCH_MAX));
    if indexed < upto {
        diesel::insert_into(audit_keys::table)
            .values(
                audit_log::table
                    .filter(audit_log::chain.eq(chain))
                    .filter(audit_log::seq.gt(indexed))
                    .filter(audit_log::seq.le(upto))
                    .select((
                        audit_log::seq,
                        audit_log::at,
                        audit_log::actor_username,
                        audit_log::record_id,
                    )),
            )
            .into_columns((
                audit_keys::seq,
                audit_keys::at,
                audit_keys::actor_username,
                audit_keys::record_id,
            ))
            .execute(conn)?;
    }
    if indexed != upto {
        diesel::update(audit_head::table.filter(audit_head::id.eq(head_id)))
            .set(audit_head::indexed_seq.eq(upto))
            .execute(conn)?;
    }
    Ok(())
}

/// `audit_head.id` of a chain (an INTEGER column; chains are numbered from 1).
pub fn chain_row(chain: i64) -> Result<i32, AppError> {
    i32::try_from(chain).map_err(|_| AppError::internal("audit chain id out of range"))
}

/// The first place where the stored chains do not hold.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ChainFault {
    /// Entry `seq` does not commit to the entry before it in its chain (entries deleted,
    /// reordered or moved).
    BrokenLink { seq: i64 },
    /// Entry `seq` was altered after it was written.
    Altered { seq: i64 },
    /// A chain ends before (or after) its recorded head: truncated or extended outside
    /// the writer.
    HeadMismatch {
        chain: i64,
        head_seq: i64,
        last_seq: i64,
    },
    /// Entries that belong to no chain with a head (a head row deleted).
    Stray { count: i64 },
}

impl std::fmt::Display for ChainFault {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            ChainFault::BrokenLink { seq } => write!(
                f,
                "entry {seq}: does not link to the entry before it (entries deleted, reordered or moved)"
            ),
            ChainFault::Altered { seq } => {
                write!(f, "entry {seq}: content does not match its hash (altered)")
            }
            ChainFault::HeadMismatch {
                chain,
                head_seq,
                last_seq,
            } => write!(
                f,
                "chain {chain} ends at entry {last_seq} but its head records entry {head_seq} (truncated)"
            ),
            ChainFault::Stray { count } => write!(
                f,
                "{count} entries belong to no chain with a head (a chain's head was deleted)"
            ),
        }
    }
}

/// One chain as verified: its id, entries and head.
#[derive(Debug, Clone)]
pub struct ChainState {
    pub chain: i64,
    pub entries: i64,
    pub head: ChainHead,
}

/// Summary of a successful verification.
#[derive(Debug, Clone)]
pub struct ChainSummary {
    pub entries: i64,
    pub chains: Vec<ChainState>,
}

/// Walks every chain in order, in pages, in one snapshot (a live system keeps
/// appending; entries and heads must be read as of one moment), and reports the first
/// fault.
pub fn verify(conn: &mut DbConnection) -> Result<Result<ChainSummary, ChainFault>, AppError> {
    crate::storage::snapshot(conn, |conn| {
        let mut chains = Vec::new();
        let mut total = 0i64;
        for (chain, head) in heads(conn)? {
            let mut prev_hash = GENESIS_HASH.to_owned();
            let mut last_seq = 0i64;
            let mut entries = 0i64;
            loop {
                let page: Vec<AuditRow> = audit_log::table
                    .filter(audit_log::chain.eq(chain))
                    .filter(audit_log::seq.gt(last_seq))
                    .order(audit_log::seq.asc())
                    .limit(5000)
                    .select(AuditRow::as_select())
                    .load(conn)?;
                if page.is_empty() {
                    break;
                }
                for row in page {
                    if row.prev_hash != prev_hash {
                        return Ok(Err(ChainFault::BrokenLink { seq: row.seq }));
                    }
                    if entry_hash(&row) != row.hash {
                        return Ok(Err(ChainFault::Altered { seq: row.seq }));
                    }
                    prev_hash = row.hash;
                    last_seq = row.seq;
                    entries += 1;
                }
            }
            if head.seq != last_seq || head.hash != prev_hash {
                return Ok(Err(ChainFault::HeadMismatch {
                    chain,
                    head_seq: head.seq,
                    last_seq,
                }));
            }
            total += entries;
            chains.push(ChainState {
                chain,
                entries,
                head,
            });
        }
        let stored: i64 = audit_log::table.count().get_result(conn)?;
        if stored != total {
            return Ok(Err(ChainFault::Stray {
                count: stored - total,
            }));
        }
        Ok(Ok(ChainSummary {
            entries: total,
            chains,
        }))
    })
}

/// Every chain's head as recorded by its writer: what `samverkan audit head` prints, to
/// be kept outside the database (anchors).
pub fn heads(conn: &mut DbConnection) -> Result<Vec<(i64, ChainHead)>, AppError> {
    use crate::storage::schema::audit_head;
    let rows: Vec<(i32, i64, String)> = audit_head::table
        .order(audit_head::id.asc())
        .select((audit_head::id, audit_head::seq, audit_head::hash))
        .load(conn)?;
    Ok(rows
        .into_iter()
        .map(|(id, seq, hash)| (i64::from(id), ChainHead { seq, hash }))
        .collect())
}

/// An entry's position and hash kept outside the database (`SEQ:HASH`, as printed by
/// `samverkan audit head`). Whoever can rewrite the whole database can rebuild a chain
/// that verifies; they cannot change a copy of its head kept elsewhere.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Anchor {
    pub seq: i64,
    pub hash: String,
}

impl std::str::FromStr for Anchor {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let bad =
            || format!("an anchor is SEQ:HASH (the two values `audit head` prints), not {s:?}");
        let (seq, hash) = s.trim().split_once([':', ' ']).ok_or_else(bad)?;
        let seq: i64 = seq.trim().parse().map_err(|_| bad())?;
        let hash = hash.trim().to_ascii_lowercase();
        if seq < 1 || hash.len() != 64 || !hash.chars().all(|c| c.is_ascii_hexdigit()) {
            return Err(bad());
        }
        Ok(Anchor { seq, hash })
    }
}

impl std::fmt::Display for Anchor {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}:{}", self.seq, self.hash)
    }
}

/// How the stored chain disagrees with an anchor.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum AnchorFault {
    /// Entry `seq` is gone: the chain was truncated below the anchor.
    Missing { seq: i64, last_seq: i64 },
    /// Entry `seq` has another hash: it, or an entry before it, was rewritten.
    Mismatch { seq: i64, found: String },
}

impl std::fmt::Display for AnchorFault {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            AnchorFault::Missing { seq, last_seq } => write!(
                f,
                "anchored entry {seq} is missing: the chain ends at entry {last_seq} (truncated below the anchor)"
            ),
            AnchorFault::Mismatch { seq, found } => write!(
                f,
                "anchored entry {seq} has hash {found}, not the anchored hash (the chain was rewritten)"
            ),
        }
    }
}

/// Checks that entry `anchor.seq` is stored with `anchor.hash`. Run after [`verify`],
/// which shows that every entry still commits to the ones before it.
pub fn check_anchor(
    conn: &mut DbConnection,
    anchor: &Anchor,
) -> Result<Result<(), AnchorFault>, AppError> {
    let found: Option<String> = audit_log::table
        .filter(audit_log::seq.eq(anchor.seq))
        .select(audit_log::hash)
        .first(conn)
        .optional()?;
    Ok(match found {
        Some(h) if h == anchor.hash => Ok(()),
        Some(found) => Err(AnchorFault::Mismatch {
            seq: anchor.seq,
            found,
        }),
        None => {
            let last_seq: Option<i64> = audit_log::table
                .select(diesel::dsl::max(audit_log::seq))
                .first(conn)?;
            Err(AnchorFault::Missing {
                seq: anchor.seq,
                last_seq: last_seq.unwrap_or(0),
            })
        }
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_entry_hash_formats_numbers_and_digests_as_before() {
        let mut buf = [0u8; 20];
        for n in [0, 1, -1, 42, 1_796_246_165_569_406, i64::MAX, i64::MIN] {
            assert_eq!(decimal(n, &mut buf), n.to_string());
        }
        let digest = Sha256::digest(b"samverkan");
        assert_eq!(lower_hex(&digest), hex::encode(digest));
        assert_eq!(lower_hex(&[0x00, 0x0f, 0xf0, 0xff]), "000ff0ff");
    }
}
