//! Retention (gallring): records older than their kind's retention period are erased —
//! really deleted, with every dependent row — and each erasure is audited in the same
//! transaction. A record under legal hold is kept and the hold is audited instead.
//!
//! Every step runs as a job of the [`Writer`], so it is serialised with all other writes:
//! on PostgreSQL the writer's transaction first locks the audit chain head, which every
//! instance's writer takes, so a legal hold set on another instance is either committed
//! before the due records are selected (and then respected) or waits until the erasure
//! has committed.

use std::fmt;
use std::time::Duration;

use diesel::prelude::*;
use serde::Serialize;
use utoipa::ToSchema;

use crate::audit::writer::Writer;
use crate::audit::{AuditAction, AuditEntry, Outcome, RequestMeta};
use crate::config::RetentionSettings;
use crate::error::AppError;
pub use crate::policy::RecordKind;
use crate::storage::schema::{
    events, observation_persons, observations, referral_consents, referral_feedback, referrals,
    report_sections, situation_reports,
};
use crate::storage::{now_micros, Db, DbConnection};

/// Marks entries written by the retention job (no user acts).
pub const SYSTEM_CLIENT: &str = "system:retention";
/// Most records erased in one transaction: keeps each group commit short.
const BATCH: i64 = 200;
const MICROS_PER_DAY: i64 = 86_400 * 1_000_000;
/// The background job's first run comes this long after start (or after one interval,
/// when that is shorter), so that a restart does not wait a whole interval.
const FIRST_RUN_DELAY: Duration = Duration::from_secs(60);

/// The retention period of `kind` in days (0: kept for ever).
pub fn period_days(kind: RecordKind, s: &RetentionSettings) -> u32 {
    match kind {
        RecordKind::Observation => s.observation_days,
        RecordKind::SituationReport => s.situation_report_days,
        RecordKind::Referral => s.referral_days,
    }
}

/// Records whose age is counted from before this time are due; `None` when the kind is
/// kept for ever.
pub fn cutoff(days: u32, now: i64) -> Option<i64> {
    (days > 0).then(|| now - i64::from(days) * MICROS_PER_DAY)
}

/// Ids of the records of `kind` that are due at `cutoff`, under legal hold or not, oldest
/// first. The age counts from:
/// - observation: when it was filed (`created_at`);
/// - situation report: the end of its validity (`valid_until`) when set, else when it
///   was posted — a lägesbild still in force is never erased;
/// - referral: its last status change (`status_changed_at`: filing, or the latest
///   feedback) — "after the last entry", as social services count.
///
/// (Both times are checked, so a record is due only when the later of them is.)
pub fn due(
    conn: &mut DbConnection,
    kind: RecordKind,
    cutoff: i64,
    held: bool,
    limit: i64,
) -> Result<Vec<String>, AppError> {
    let ids = match kind {
        RecordKind::Observation => observations::table
            .filter(observations::created_at.lt(cutoff))
            .filter(observations::legal_hold.eq(held))
            .order((observations::created_at.asc(), observations::id.asc()))
            .limit(limit)
            .select(observations::id)
            .load::<String>(conn)?,
        RecordKind::SituationReport => situation_reports::table
            .filter(situation_reports::created_at.lt(cutoff))
            .filter(
                situation_reports::valid_until
                    .is_null()
                    .or(situation_reports::valid_until.lt(cutoff)),
            )
            .filter(situation_reports::legal_hold.eq(held))
            .order((
                situation_reports::created_at.asc(),
                situation_reports::id.asc(),
            ))
            .limit(limit)
            .select(situation_reports::id)
            .load::<String>(conn)?,
        RecordKind::Referral => referrals::table
            .filter(referrals::created_at.lt(cutoff))
            .filter(referrals::status_changed_at.lt(cutoff))
            .filter(referrals::legal_hold.eq(held))
            .order((referrals::created_at.asc(), referrals::id.asc()))
            .limit(limit)
            .select(referrals::id)
            .load::<String>(conn)?,
    };
    Ok(ids)
}

/// Deletes the records `ids` of `kind` that are not under legal hold, dependent rows
/// first (the schema has no cascading deletes); returns how many records went.
pub fn erase(conn: &mut DbConnection, kind: RecordKind, ids: &[String]) -> Result<usize, AppError> {
    if ids.is_empty() {
        return Ok(0);
    }
    let n = match kind {
        RecordKind::Observation => {
            let erasable = observations::table
                .filter(observations::id.eq_any(ids))
                .filter(observations::legal_hold.eq(false))
                .select(observations::id);
            diesel::delete(
                observation_persons::table
                    .filter(observation_persons::observation_id.eq_any(erasable)),
            )
            .execute(conn)?;
            let n = diesel::delete(
                observations::table
                    .filter(observations::id.eq_any(ids))
                    .filter(observations::legal_hold.eq(false)),
            )
            .execute(conn)?;
            // Live alerts about the erased records go with them (they name the record).
            let kept = observations::table
                .filter(observations::id.eq_any(ids))
                .select(observations::id);
            diesel::delete(
                events::table
                    .filter(events::record_kind.eq(kind.as_str()))
                    .filter(events::record_id.eq_any(ids))
                    .filter(diesel::dsl::not(events::record_id.eq_any(kept))),
            )
            .execute(conn)?;
            n
        }
        RecordKind::SituationReport => {
            let erasable = situation_reports::table
                .filter(situation_reports::id.eq_any(ids))
                .filter(situation_reports::legal_hold.eq(false))
                .select(situation_reports::id);
            diesel::delete(
                report_sections::table.filter(report_sections::report_id.eq_any(erasable)),
            )
            .execute(conn)?;
            let n = diesel::delete(
                situation_reports::table
                    .filter(situation_reports::id.eq_any(ids))
                    .filter(situation_reports::legal_hold.eq(false)),
            )
            .execute(conn)?;
            // Live alerts about the erased records go with them (they name the record).
            let kept = situation_reports::table
                .filter(situation_reports::id.eq_any(ids))
                .select(situation_reports::id);
            diesel::delete(
                events::table
                    .filter(events::record_kind.eq(kind.as_str()))
                    .filter(events::record_id.eq_any(ids))
                    .filter(diesel::dsl::not(events::record_id.eq_any(kept))),
            )
            .execute(conn)?;
            n
        }
        RecordKind::Referral => {
            let erasable = || {
                referrals::table
                    .filter(referrals::id.eq_any(ids))
                    .filter(referrals::legal_hold.eq(false))
                    .select(referrals::id)
            };
            diesel::delete(
                referral_feedback::table.filter(referral_feedback::referral_id.eq_any(erasable())),
            )
            .execute(conn)?;
            diesel::delete(
                referral_consents::table.filter(referral_consents::referral_id.eq_any(erasable())),
            )
            .execute(conn)?;
            let n = diesel::delete(
                referrals::table
                    .filter(referrals::id.eq_any(ids))
                    .filter(referrals::legal_hold.eq(false)),
            )
            .execute(conn)?;
            // Live alerts about the erased records go with them (they name the record).
            let kept = referrals::table
                .filter(referrals::id.eq_any(ids))
                .select(referrals::id);
            diesel::delete(
                events::table
                    .filter(events::record_kind.eq(kind.as_str()))
                    .filter(events::record_id.eq_any(ids))
                    .filter(diesel::dsl::not(events::record_id.eq_any(kept))),
            )
            .execute(conn)?;
            n
        }
    };
    Ok(n)
}

/// Sets or clears the legal hold on one record; `NotFound` when there is no such record.
pub fn set_hold(
    conn: &mut DbConnection,
    kind: RecordKind,
    id: &str,
    hold: bool,
) -> Result<(), AppError> {
    let n = match kind {
        RecordKind::Observation => {
            diesel::update(observations::table.filter(observations::id.eq(id)))
                .set(observations::legal_hold.eq(hold))
                .execute(conn)?
        }
        RecordKind::SituationReport => {
            diesel::update(situation_reports::table.filter(situation_reports::id.eq(id)))
                .set(situation_reports::legal_hold.eq(hold))
                .execute(conn)?
        }
        RecordKind::Referral => diesel::update(referrals::table.filter(referrals::id.eq(id)))
            .set(referrals::legal_hold.eq(hold))
            .execute(conn)?,
    };
    if n == 0 {
        Err(AppError::NotFound)
    } else {
        Ok(())
    }
}

/// A record under legal hold: its kind and id only (the administrator sees no content).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, ToSchema)]
pub struct LegalHold {
    pub kind: RecordKind,
    pub id: String,
    pub legal_hold: bool,
}

/// Every record under legal hold, by kind, then id.
pub fn holds(conn: &mut DbConnection) -> Result<Vec<LegalHold>, AppError> {
    let mut out = Vec::new();
    for &kind in RecordKind::ALL {
        let ids: Vec<String> = match kind {
            RecordKind::Observation => observations::table
                .filter(observations::legal_hold.eq(true))
                .order(observations::id.asc())
                .select(observations::id)
                .load(conn)?,
            RecordKind::SituationReport => situation_reports::table
                .filter(situation_reports::legal_hold.eq(true))
                .order(situation_reports::id.asc())
                .select(situation_reports::id)
                .load(conn)?,
            RecordKind::Referral => referrals::table
                .filter(referrals::legal_hold.eq(true))
                .order(referrals::id.asc())
                .select(referrals::id)
                .load(conn)?,
        };
        out.extend(ids.into_iter().map(|id| LegalHold {
            kind,
            id,
            legal_hold: true,
        }));
    }
    Ok(out)
}

/// What one run did (or, in a dry run, would do) for one kind.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct KindReport {
    pub kind: RecordKind,
    /// The retention period applied (0: kept for ever).
    pub days: u32,
    pub erased: usize,
    /// Due, but kept because of a legal hold.
    pub held: usize,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RetentionReport {
    pub dry_run: bool,
    pub kinds: Vec<KindReport>,
}

impl RetentionReport {
    pub fn erased(&self) -> usize {
        self.kinds.iter().map(|k| k.erased).sum()
    }

    pub fn held(&self) -> usize {
        self.kinds.iter().map(|k| k.held).sum()
    }
}

impl fmt::Display for RetentionReport {
    /// One line per kind, e.g. `observation: erased 3, held 1 (retention 365 days)`.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let verb = if self.dry_run {
            "would erase"
        } else {
            "erased"
        };
        for (i, k) in self.kinds.iter().enumerate() {
            if i > 0 {
                writeln!(f)?;
            }
            let period = if k.days == 0 {
                "kept for ever".to_owned()
            } else {
                format!("retention {} days", k.days)
            };
            write!(
                f,
                "{}: {verb} {}, held {} ({period})",
                k.kind, k.erased, k.held
            )?;
        }
        Ok(())
    }
}

fn entry(kind: RecordKind, id: &str, outcome: Outcome, days: u32) -> AuditEntry {
    let meta = RequestMeta {
        request_id: None,
        purpose: Some(format!("gallring: retention period {days} days")),
        client: Some(SYSTEM_CLIENT.to_owned()),
        channel: None,
    };
    AuditEntry::new(AuditAction::Erase, outcome, &meta).record(kind.as_str(), id)
}

/// One retention run: for each kind, erases what is due (in batches, each erasure audited
/// as `erase`/`success` in the same transaction) and audits each due record under legal
/// hold once (`erase`/`held`). A dry run only counts, and records that it happened.
pub async fn run(
    writer: &Writer,
    db: &Db,
    settings: &RetentionSettings,
    dry_run: bool,
) -> Result<RetentionReport, AppError> {
    let now = now_micros();
    let mut kinds = Vec::new();
    for &kind in RecordKind::ALL {
        let days = period_days(kind, settings);
        let mut report = KindReport {
            kind,
            days,
            erased: 0,
            held: 0,
        };
        if let Some(cutoff) = cutoff(days, now) {
            if dry_run {
                let (erasable, held) = db
                    .run(move |c| {
                        Ok((
                            due(c, kind, cutoff, false, i64::MAX)?.len(),
                            due(c, kind, cutoff, true, i64::MAX)?.len(),
                        ))
                    })
                    .await?;
                report.erased = erasable;
                report.held = held;
            } else {
                loop {
                    let n = writer
                        .write(move |tx| {
                            let ids = due(tx.conn, kind, cutoff, false, BATCH)?;
                            let n = erase(tx.conn, kind, &ids)?;
                            if n != ids.len() {
                                return Err(AppError::internal(format!(
                                    "retention: {n} of {} {kind} records erased",
                                    ids.len()
                                )));
                            }
                            for id in &ids {
                                tx.audit(&entry(kind, id, Outcome::Success, days))?;
                            }
                            Ok(n)
                        })
                        .await?;
                    report.erased += n;
                    if (n as i64) < BATCH {
                        break;
                    }
                }
                report.held = writer
                    .write(move |tx| {
                        let ids = due(tx.conn, kind, cutoff, true, i64::MAX)?;
                        for id in &ids {
                            tx.audit(&entry(kind, id, Outcome::Held, days))?;
                        }
                        Ok(ids.len())
                    })
                    .await?;
            }
        }
        kinds.push(report);
    }
    if dry_run {
        let meta = RequestMeta {
            client: Some(SYSTEM_CLIENT.to_owned()),
            ..Default::default()
        };
        let e = AuditEntry::new(AuditAction::RetentionDryRun, Outcome::Success, &meta);
        writer.write(move |tx| tx.audit(&e)).await?;
    }
    Ok(RetentionReport { dry_run, kinds })
}

/// Starts the background job (every `interval_secs`; none when it is 0).
pub fn spawn_job(
    writer: Writer,
    db: Db,
    settings: RetentionSettings,
) -> Option<tokio::task::JoinHandle<()>> {
    if settings.interval_secs == 0 {
        tracing::info!("retention job disabled (SAMVERKAN_RETENTION_INTERVAL_SECS=0)");
        return None;
    }
    let period = Duration::from_secs(settings.interval_secs);
    let first = tokio::time::Instant::now() + period.min(FIRST_RUN_DELAY);
    Some(tokio::spawn(async move {
        let mut ticks = tokio::time::interval_at(first, period);
        ticks.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            ticks.tick().await;
            match run(&writer, &db, &settings, false).await {
                Ok(report) if report.erased() > 0 || report.held() > 0 => {
                    tracing::info!(
                        erased = report.erased(),
                        held = report.held(),
                        "retention run: {}",
                        report.to_string().replace('\n', "; ")
                    );
                }
                Ok(_) => tracing::debug!("retention run: nothing due"),
                Err(e) => tracing::error!(error = %e, "retention run failed"),
            }
        }
    }))
}
