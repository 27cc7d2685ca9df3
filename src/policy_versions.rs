//! Rules that change without a restart, and say which version decided: where the
//! policy sets are stored and how an instance follows them.
//!
//! The policy sets ever put in force are rows of `policy_versions`, in order; the last is
//! current. Every instance decides with the current set: it polls the table and, when a
//! newer set appears, validates it (strictly against its schema, then its decision table)
//! and swaps it in whole. A request keeps the snapshot it started with, so it is decided
//! by one set from start to end, and its audit entries name that set's hash.
//!
//! A set becomes current in three ways, each audited (`policy_loaded`):
//! - an instance starts with files that differ from the current set (a deployment);
//! - `samverkan policy reload` stores the files of a folder;
//! - SIGHUP makes an instance store its own policy folder again.
//!
//! A set that fails validation is never stored, so it never reaches the other instances.

use std::collections::BTreeMap;
use std::path::Path;
use std::sync::{Arc, Weak};
use std::time::Duration;

use diesel::prelude::*;

use crate::audit::writer::Writer;
use crate::audit::{AuditAction, AuditEntry, Outcome, RequestMeta};
use crate::error::AppError;
use crate::policy::versions::load_checked;
use crate::policy::{Policies, PolicyEngine};
use crate::storage::schema::policy_versions;
use crate::storage::{now_micros, DatabaseUrl, DbConnection};

/// One stored version, as `policy history` lists it.
#[derive(Debug, Clone, Queryable, Selectable)]
#[diesel(table_name = policy_versions)]
pub struct VersionRow {
    pub position: i64,
    pub hash: String,
    pub loaded_at: i64,
    pub loaded_by: String,
}

/// Every stored version, oldest first; the last is current.
pub fn history(conn: &mut DbConnection) -> Result<Vec<VersionRow>, AppError> {
    Ok(policy_versions::table
        .order(policy_versions::position.asc())
        .select(VersionRow::as_select())
        .load(conn)?)
}

/// The current version's position and hash, if any was stored.
pub fn current(conn: &mut DbConnection) -> Result<Option<(i64, String)>, AppError> {
    Ok(policy_versions::table
        .order(policy_versions::position.desc())
        .select((policy_versions::position, policy_versions::hash))
        .first(conn)
        .optional()?)
}

/// The files of the version at `position`.
fn files_at(conn: &mut DbConnection, position: i64) -> Result<BTreeMap<String, String>, AppError> {
    let text: String = policy_versions::table
        .find(position)
        .select(policy_versions::files)
        .first(conn)?;
    serde_json::from_str(&text).map_err(AppError::internal)
}

/// The files of the newest version with `hash`, if one was ever stored.
pub fn files_of(
    conn: &mut DbConnection,
    hash: &str,
) -> Result<Option<BTreeMap<String, String>>, AppError> {
    let text: Option<String> = policy_versions::table
        .filter(policy_versions::hash.eq(hash))
        .order(policy_versions::position.desc())
        .select(policy_versions::files)
        .first(conn)
        .optional()?;
    text.map(|t| serde_json::from_str(&t).map_err(AppError::internal))
        .transpose()
}

/// What [`store`] did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Stored {
    /// The set was already current, at this position: nothing was written.
    AlreadyCurrent(i64),
    /// The set is now current, at this position.
    Current(i64),
}

impl Stored {
    pub fn position(self) -> i64 {
        match self {
            Stored::AlreadyCurrent(p) | Stored::Current(p) => p,
        }
    }
}

/// Makes `engine`'s set the current one unless it already is, with an audit entry in the
/// same transaction. Two instances storing at once: one wins the position, the other
/// tries again and finds its set current (or stores after it).
pub async fn store(
    writer: &Writer,
    engine: &PolicyEngine,
    loaded_by: &str,
    meta: &RequestMeta,
) -> Result<Stored, AppError> {
    let mut last_error = None;
    for _ in 0..5 {
        let (hash, by, meta) = (engine.hash().clone(), loaded_by.to_string(), meta.clone());
        let files = serde_json::to_string(engine.files()).map_err(AppError::internal)?;
        let result = writer
            .write(move |tx| {
                let now = current(tx.conn)?;
                if let Some((position, current_hash)) = &now {
                    if **current_hash == *hash {
                        return Ok(Stored::AlreadyCurrent(*position));
                    }
                }
                let position = now.map_or(1, |(p, _)| p + 1);
                diesel::insert_into(policy_versions::table)
                    .values((
                        policy_versions::position.eq(position),
                        policy_versions::hash.eq(&*hash),
                        policy_versions::loaded_at.eq(now_micros()),
                        policy_versions::loaded_by.eq(&by),
                        policy_versions::files.eq(&files),
                    ))
                    .execute(tx.conn)?;
                tx.audit(
                    &AuditEntry::new(AuditAction::PolicyLoaded, Outcome::Success, &meta)
                        .record("policy_version", &hash)
                        .changes(serde_json::json!({
                            "position": position,
                            "loaded_by": by,
                        })),
                )?;
                Ok(Stored::Current(position))
            })
            .await;
        match result {
            Ok(stored) => return Ok(stored),
            // Another instance took the position first; read again.
            Err(e) => last_error = Some(e),
        }
    }
    Err(last_error.unwrap_or_else(|| AppError::internal("storing the policy set")))
}

/// At start-up: the files this instance was started with become current unless they
/// already are (a deployment brings its rules). Returns the position in force.
pub async fn adopt_at_start(
    writer: &Writer,
    policies: &Policies,
    loaded_by: &str,
) -> Result<i64, AppError> {
    let engine = policies.current();
    let stored = store(writer, &engine, loaded_by, &RequestMeta::default()).await?;
    let position = stored.position();
    policies.set_position(position);
    if let Stored::Current(position) = stored {
        tracing::info!(position, hash = %engine.hash(), "policy set stored as current");
    }
    Ok(position)
}

/// Re-reads the policy folder (SIGHUP), stores it if it passes and swaps it in here at
/// once; the other instances follow within their poll interval. On any problem the set
/// in force stays and the reason is logged.
pub async fn reload_from(dir: &Path, writer: &Writer, policies: &Policies, loaded_by: &str) {
    let engine = match load_checked(dir) {
        Ok(engine) => engine,
        Err(e) => {
            tracing::error!(folder = %dir.display(), problems = %e, "policy reload refused; the rules in force stay");
            return;
        }
    };
    match store(writer, &engine, loaded_by, &RequestMeta::default()).await {
        Ok(stored) => {
            let hash = engine.hash().clone();
            policies.put(engine, stored.position());
            tracing::info!(position = stored.position(), %hash, "policy set reloaded");
        }
        Err(e) => {
            tracing::error!(error = %e, "policy reload could not be stored; the rules in force stay")
        }
    }
}

/// Follows the current version: every `interval`, reads its position and, when another
/// set became current, loads, validates and swaps it in. A stored set this binary cannot
/// validate is refused once, loudly, and the set in force stays.
pub fn spawn_watcher(
    policies: &Arc<Policies>,
    url: DatabaseUrl,
    interval: Duration,
) -> std::io::Result<()> {
    let policies: Weak<Policies> = Arc::downgrade(policies);
    std::thread::Builder::new()
        .name("samverkan-policy".into())
        .spawn(move || {
            let mut conn = crate::storage::reconnect(&url, "policy watcher");
            let mut refused: Option<i64> = None;
            loop {
                let Some(policies) = policies.upgrade() else {
                    return;
                };
                match follow(&mut conn, &policies, &mut refused) {
                    Ok(()) => {}
                    Err(e) => {
                        tracing::warn!(error = %e, "policy watcher cannot read the current version");
                        conn = crate::storage::reconnect(&url, "policy watcher");
                    }
                }
                drop(policies);
                std::thread::sleep(interval);
            }
        })
        .map(|_| ())
}

fn follow(
    conn: &mut DbConnection,
    policies: &Policies,
    refused: &mut Option<i64>,
) -> Result<(), AppError> {
    let Some((position, hash)) = current(conn)? else {
        return Ok(());
    };
    if position == policies.position() || *refused == Some(position) {
        return Ok(());
    }
    if *policies.hash() == *hash {
        policies.set_position(position);
        return Ok(());
    }
    let files = files_at(conn, position)?;
    let origin = format!("policy version {position}");
    match PolicyEngine::from_files(&origin, &files) {
        Ok(engine) if **engine.hash() == *hash => {
            policies.put(engine, position);
            tracing::info!(position, %hash, "policy set in force changed");
        }
        Ok(engine) => {
            *refused = Some(position);
            tracing::error!(position, stored = %hash, computed = %engine.hash(), "stored policy set does not match its hash; the rules in force stay");
        }
        Err(e) => {
            *refused = Some(position);
            tracing::error!(position, problems = %e, "stored policy set does not validate on this instance; the rules in force stay");
        }
    }
    Ok(())
}

/// `policy history` for the command line: one line per version, the current marked.
pub fn print_history(conn: &mut DbConnection) -> Result<String, AppError> {
    let rows = history(conn)?;
    let mut out = format!(
        "{:>8}  {:<12}  {:<27}  loaded by\n",
        "position", "hash", "loaded at (UTC)"
    );
    let last = rows.last().map(|r| r.position);
    for r in &rows {
        let at = crate::fields::format_time(r.loaded_at);
        let mark = if Some(r.position) == last {
            "  (current)"
        } else {
            ""
        };
        out.push_str(&format!(
            "{:>8}  {:<12}  {:<27}  {}{}\n",
            r.position,
            r.hash.get(..12).unwrap_or(&r.hash),
            at,
            r.loaded_by,
            mark
        ));
    }
    if rows.is_empty() {
        out.push_str("(none stored yet: the first instance to start stores its set)\n");
    }
    Ok(out)
}
