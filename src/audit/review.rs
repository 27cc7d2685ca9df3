//! Log review (logguppföljning) for auditors: filtered pages, exports for a SIEM and a
//! per-user summary that makes unusual access stand out. Metadata only, never content.

use std::collections::BTreeMap;

use diesel::dsl::count_star;
use diesel::prelude::*;
use diesel::sql_types::{Bool, Nullable};
use serde::{Deserialize, Serialize};
use utoipa::{IntoParams, ToSchema};

use crate::error::AppError;
use crate::fields::{format_time, parse_time};
use crate::storage::models::AuditRow;
use crate::storage::schema::{audit_head, audit_keys, audit_log};
use crate::storage::DbConnection;

#[derive(Debug, Default, Deserialize, IntoParams)]
#[serde(deny_unknown_fields)]
#[into_params(parameter_in = Query)]
pub struct AuditQuery {
    /// Username of the actor.
    pub actor: Option<String>,
    /// Organisation id of the actor.
    pub organization: Option<String>,
    /// Record id.
    pub record: Option<String>,
    /// e.g. read, list, create, feedback, consent, login, token_refresh, logout, admin_create, erase
    pub action: Option<String>,
    /// success | denied | not_found | failed | throttled | reuse_detected
    pub outcome: Option<String>,
    /// The purpose given in `X-Purpose` (exactly, e.g. a case number).
    pub purpose: Option<String>,
    pub since: Option<String>,
    pub until: Option<String>,
    /// 1–100 (default 50); exports take up to 50,000.
    pub limit: Option<i64>,
    /// `next_cursor` of the previous page.
    pub cursor: Option<String>,
    /// Export only: `jsonl` (default) or `csv`.
    pub format: Option<String>,
}

#[derive(Debug, Clone)]
pub struct AuditFilter {
    actor: Option<String>,
    organization: Option<String>,
    record: Option<String>,
    action: Option<String>,
    outcome: Option<String>,
    purpose: Option<String>,
    since: Option<i64>,
    until: Option<i64>,
    before_seq: Option<i64>,
    pub limit: i64,
}

fn short(field: &str, v: &Option<String>) -> Result<Option<String>, AppError> {
    match v {
        Some(s) if s.len() > 200 => Err(AppError::bad_request(
            "invalid_query",
            format!("{field} is too long"),
        )),
        other => Ok(other.clone()),
    }
}

impl AuditFilter {
    /// The same filter for one page of an export: entries before `before_seq`, at most
    /// `limit`.
    pub fn page(&self, before_seq: Option<i64>, limit: i64) -> AuditFilter {
        AuditFilter {
            before_seq,
            limit,
            ..self.clone()
        }
    }

    pub fn before_seq(&self) -> Option<i64> {
        self.before_seq
    }
}

impl AuditQuery {
    pub fn validate(&self, max_limit: i64) -> Result<AuditFilter, AppError> {
        let limit = self.limit.unwrap_or(50.min(max_limit));
        if !(1..=max_limit).contains(&limit) {
            return Err(AppError::bad_request(
                "invalid_limit",
                format!("limit must be between 1 and {max_limit}"),
            ));
        }
        let before_seq = match &self.cursor {
            Some(c) => Some(c.parse::<i64>().map_err(|_| {
                AppError::bad_request(
                    "invalid_cursor",
                    "cursor must be a next_cursor value from a previous page",
                )
            })?),
            None => None,
        };
        Ok(AuditFilter {
            actor: short("actor", &self.actor)?,
            organization: short("organization", &self.organization)?,
            record: short("record", &self.record)?,
            action: short("action", &self.action)?,
            outcome: short("outcome", &self.outcome)?,
            purpose: short("purpose", &self.purpose)?,
            since: self
                .since
                .as_deref()
                .map(|s| parse_time("since", s))
                .transpose()?,
            until: self
                .until
                .as_deref()
                .map(|s| parse_time("until", s))
                .transpose()?,
            before_seq,
            limit,
        })
    }
}

/// Most entries a page of the review returns.
pub const PAGE_LIMIT: i64 = 100;
pub const EXPORT_LIMIT: i64 = 50_000;

/// One audit entry as auditors see it.
#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct AuditEntryView {
    pub seq: i64,
    pub at: String,
    pub actor: Option<String>,
    pub organization: Option<String>,
    pub role: Option<String>,
    pub action: String,
    pub record_kind: Option<String>,
    pub record_id: Option<String>,
    pub parts: Vec<String>,
    pub outcome: String,
    pub request_id: Option<String>,
    pub purpose: Option<String>,
    pub client: Option<String>,
    /// Administrative changes: the changed fields before and after.
    #[serde(skip_serializing_if = "Option::is_none")]
    #[schema(value_type = Option<Object>)]
    pub changes: Option<serde_json::Value>,
    /// `web` when done through the pages; absent for the API and the CLI.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub channel: Option<String>,
    pub hash: String,
    /// The hash of the policy set that decided (`samverkan policy history`); absent on
    /// entries from before sets were recorded.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub policy_hash: Option<String>,
}

impl From<AuditRow> for AuditEntryView {
    fn from(r: AuditRow) -> Self {
        AuditEntryView {
            seq: r.seq,
            at: format_time(r.at),
            actor: r.actor_username,
            organization: r.actor_org_id,
            role: r.actor_role,
            action: r.action,
            record_kind: r.record_kind,
            record_id: r.record_id,
            parts: r
                .parts
                .split(',')
                .filter(|p| !p.is_empty())
                .map(str::to_owned)
                .collect(),
            outcome: r.outcome,
            request_id: r.request_id,
            purpose: r.purpose,
            client: r.client,
            changes: r
                .changes
                .as_deref()
                .and_then(|c| serde_json::from_str(c).ok()),
            channel: r.channel,
            hash: r.hash,
            policy_hash: r.policy_hash,
        }
    }
}

#[derive(Debug, Serialize, ToSchema)]
pub struct AuditPage {
    pub items: Vec<AuditEntryView>,
    pub next_cursor: Option<String>,
}

type Backend = <DbConnection as diesel::Connection>::Backend;
type Condition = Box<dyn BoxableExpression<audit_log::table, Backend, SqlType = Nullable<Bool>>>;

/// How far each chain's keys are indexed: entries after that are read from audit_log.
fn marks(conn: &mut DbConnection) -> Result<Vec<(i32, i64)>, AppError> {
    Ok(audit_head::table
        .select((audit_head::id, audit_head::indexed_seq))
        .load(conn)?)
}

/// The entries no writer has copied into audit_keys yet: the tail of each chain (at most
/// `SAMVERKAN_AUDIT_INDEX_EVERY` entries a chain).
fn unindexed(marks: &[(i32, i64)]) -> Condition {
    let mut any: Condition = Box::new(false.into_sql::<Bool>().nullable());
    for &(chain, indexed) in marks {
        any = Box::new(
            any.or(audit_log::chain
                .eq(i64::from(chain))
                .and(audit_log::seq.gt(indexed))
                .nullable()),
        );
    }
    any
}

/// The filters of `f` on audit_log's own columns.
fn matching(f: &AuditFilter) -> Condition {
    let mut c: Condition = Box::new(true.into_sql::<Bool>().nullable());
    macro_rules! and {
        ($e:expr) => {
            c = Box::new(c.and($e))
        };
    }
    if let Some(v) = &f.actor {
        and!(audit_log::actor_username.eq(v.clone()));
    }
    if let Some(v) = &f.organization {
        and!(audit_log::actor_org_id.eq(v.clone()));
    }
    if let Some(v) = &f.record {
        and!(audit_log::record_id.eq(v.clone()));
    }
    if let Some(v) = &f.action {
        and!(audit_log::action.eq(v.clone()));
    }
    if let Some(v) = &f.outcome {
        and!(audit_log::outcome.eq(v.clone()));
    }
    if let Some(v) = &f.purpose {
        and!(audit_log::purpose.eq(v.clone()));
    }
    if let Some(v) = f.since {
        and!(audit_log::at.ge(v));
    }
    if let Some(v) = f.until {
        and!(audit_log::at.lt(v));
    }
    if let Some(v) = f.before_seq {
        and!(audit_log::seq.lt(v));
    }
    c
}

/// Entries matching `f`, newest first. The lookups go through `audit_keys` (the indexed
/// copy of actor, record and time that each writer keeps for its chain), and the few
/// entries not yet copied are read from audit_log itself, in the same snapshot: nothing
/// committed before the query is missed, and no instance has to index another's chain.
/// The indexed columns are matched on the entry itself too, so keys and entries agree.
pub fn search(
    conn: &mut DbConnection,
    f: &AuditFilter,
) -> Result<(Vec<AuditEntryView>, Option<String>), AppError> {
    crate::storage::snapshot(conn, |conn| {
        let marks = marks(conn)?;
        let mut q = audit_keys::table
            .inner_join(audit_log::table.on(audit_log::seq.eq(audit_keys::seq)))
            .select(AuditRow::as_select())
            .into_boxed();
        if let Some(v) = &f.actor {
            q = q
                .filter(audit_keys::actor_username.eq(v.clone()))
                .filter(audit_log::actor_username.eq(v.clone()));
        }
        if let Some(v) = &f.organization {
            q = q.filter(audit_log::actor_org_id.eq(v.clone()));
        }
        if let Some(v) = &f.record {
            q = q
                .filter(audit_keys::record_id.eq(v.clone()))
                .filter(audit_log::record_id.eq(v.clone()));
        }
        if let Some(v) = &f.action {
            q = q.filter(audit_log::action.eq(v.clone()));
        }
        if let Some(v) = &f.outcome {
            q = q.filter(audit_log::outcome.eq(v.clone()));
        }
        if let Some(v) = &f.purpose {
            q = q.filter(audit_log::purpose.eq(v.clone()));
        }
        if let Some(v) = f.since {
            q = q.filter(audit_keys::at.ge(v)).filter(audit_log::at.ge(v));
        }
        if let Some(v) = f.until {
            q = q.filter(audit_keys::at.lt(v)).filter(audit_log::at.lt(v));
        }
        if let Some(v) = f.before_seq {
            q = q.filter(audit_keys::seq.lt(v)).filter(audit_log::seq.lt(v));
        }
        // Walk the side that has the lookup: SQLite then reads newest first and stops at
        // the limit, where ordering by the other side would sort the whole match.
        let keyed =
            f.actor.is_some() || f.record.is_some() || f.since.is_some() || f.until.is_some();
        q = if keyed {
            q.order(audit_keys::seq.desc())
        } else {
            q.order(audit_log::seq.desc())
        };
        let mut rows: Vec<AuditRow> = q.limit(f.limit + 1).load(conn)?;
        let tail: Vec<AuditRow> = audit_log::table
            .filter(unindexed(&marks))
            .filter(matching(f))
            .order(audit_log::seq.desc())
            .limit(f.limit + 1)
            .select(AuditRow::as_select())
            .load(conn)?;
        rows.extend(tail);
        rows.sort_unstable_by_key(|r| std::cmp::Reverse(r.seq));
        rows.dedup_by_key(|r| r.seq);
        let more = rows.len() as i64 > f.limit;
        let items: Vec<AuditEntryView> = rows
            .into_iter()
            .take(f.limit as usize)
            .map(Into::into)
            .collect();
        let next = if more {
            items.last().map(|e| e.seq.to_string())
        } else {
            None
        };
        Ok((items, next))
    })
}

/// The CSV export's header line.
pub const CSV_HEADER: &str = "seq,at,actor,organization,role,action,record_kind,record_id,parts,outcome,request_id,purpose,client,changes,hash,channel,policy_hash\n";

/// Entries as CSV rows for a SIEM or a spreadsheet (RFC 4180 by the `csv` crate, every
/// field quoted). A field that a spreadsheet would run as a formula (`=`, `+`, `-`, `@`)
/// gets a leading `'`.
pub fn csv_rows(items: &[AuditEntryView]) -> Result<Vec<u8>, AppError> {
    fn cell(s: &str) -> std::borrow::Cow<'_, str> {
        if s.starts_with(['=', '+', '-', '@', '\t', '\r']) {
            format!("'{s}").into()
        } else {
            s.into()
        }
    }
    let mut w = csv::WriterBuilder::new()
        .quote_style(csv::QuoteStyle::Always)
        .from_writer(Vec::with_capacity(items.len() * 256));
    for e in items {
        let o = |v: &Option<String>| cell(v.as_deref().unwrap_or("")).into_owned();
        let changes = e
            .changes
            .as_ref()
            .map(|c| c.to_string())
            .unwrap_or_default();
        w.write_record([
            e.seq.to_string(),
            cell(&e.at).into_owned(),
            o(&e.actor),
            o(&e.organization),
            o(&e.role),
            cell(&e.action).into_owned(),
            o(&e.record_kind),
            o(&e.record_id),
            cell(&e.parts.join(";")).into_owned(),
            cell(&e.outcome).into_owned(),
            o(&e.request_id),
            o(&e.purpose),
            o(&e.client),
            cell(&changes).into_owned(),
            cell(&e.hash).into_owned(),
            o(&e.channel),
            o(&e.policy_hash),
        ])
        .map_err(AppError::internal)?;
    }
    w.into_inner().map_err(AppError::internal)
}

/// Per user and period: reads by record kind, writes, refusals.
#[derive(Debug, Serialize, ToSchema)]
pub struct UserActivity {
    pub actor: String,
    pub organization: Option<String>,
    pub role: Option<String>,
    /// Records read (detail and list) per record kind.
    pub reads_by_kind: BTreeMap<String, i64>,
    pub reads: i64,
    pub writes: i64,
    /// Refused or not-found attempts: worth a look when high.
    pub refused: i64,
}

pub fn summary(
    conn: &mut DbConnection,
    since: Option<i64>,
    until: Option<i64>,
) -> Result<Vec<UserActivity>, AppError> {
    let rows = crate::storage::snapshot(conn, |conn| summary_rows(conn, since, until))?;
    Ok(activity(rows))
}

type Row = (
    Option<String>,
    Option<String>,
    Option<String>,
    String,
    Option<String>,
    String,
    i64,
);

/// Counts per actor, action, kind and outcome: through audit_keys (a period is a range of
/// its time index), plus the entries not yet indexed.
fn summary_rows(
    conn: &mut DbConnection,
    since: Option<i64>,
    until: Option<i64>,
) -> Result<Vec<Row>, AppError> {
    let marks = marks(conn)?;
    let period = AuditFilter {
        actor: None,
        organization: None,
        record: None,
        action: None,
        outcome: None,
        purpose: None,
        since,
        until,
        before_seq: None,
        limit: 0,
    };
    let columns = (
        audit_log::actor_username,
        audit_log::actor_org_id,
        audit_log::actor_role,
        audit_log::action,
        audit_log::record_kind,
        audit_log::outcome,
    );
    let mut q = audit_keys::table
        .inner_join(audit_log::table.on(audit_log::seq.eq(audit_keys::seq)))
        .filter(audit_log::actor_username.is_not_null())
        .group_by(columns)
        .select((columns, count_star()))
        .into_boxed();
    if let Some(s) = since {
        q = q.filter(audit_keys::at.ge(s)).filter(audit_log::at.ge(s));
    }
    if let Some(u) = until {
        q = q.filter(audit_keys::at.lt(u)).filter(audit_log::at.lt(u));
    }
    type Grouped = (
        (
            Option<String>,
            Option<String>,
            Option<String>,
            String,
            Option<String>,
            String,
        ),
        i64,
    );
    let flat = |((a, o, r, ac, k, out), n): Grouped| (a, o, r, ac, k, out, n);
    let mut rows: Vec<Row> = q.load(conn)?.into_iter().map(flat).collect();
    let tail = audit_log::table
        .filter(unindexed(&marks))
        .filter(audit_log::actor_username.is_not_null())
        .filter(matching(&period))
        .group_by(columns)
        .select((columns, count_star()))
        .load(conn)?;
    rows.extend(tail.into_iter().map(flat));
    Ok(rows)
}

fn activity(rows: Vec<Row>) -> Vec<UserActivity> {
    let mut by_user: BTreeMap<String, UserActivity> = BTreeMap::new();
    for (actor, org, role, action, kind, outcome, n) in rows {
        let Some(actor) = actor else { continue };
        let a = by_user
            .entry(actor.clone())
            .or_insert_with(|| UserActivity {
                actor,
                organization: org.clone(),
                role: role.clone(),
                reads_by_kind: BTreeMap::new(),
                reads: 0,
                writes: 0,
                refused: 0,
            });
        if outcome == "denied" || outcome == "not_found" {
            a.refused += n;
        } else if action == "read" || action == "list" {
            if let Some(k) = kind {
                *a.reads_by_kind.entry(k).or_default() += n;
            }
            a.reads += n;
        } else if crate::audit::AuditAction::parse(&action).is_some_and(|a| a.writes_case_data()) {
            a.writes += n;
        }
    }
    by_user.into_values().collect()
}
