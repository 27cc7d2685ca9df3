//! Live alerts (händelser): a record was filed or answered. The write stores one row
//! in `events` in its own transaction — the record's kind and id, nothing else — and
//! every instance reads that table and hands each new event to its open streams. Each
//! stream decides, with the same policy as a GET of the record, whether its user hears
//! of it; a user who may not see the record gets nothing, not even a gap (the ids a
//! stream sends are sealed per user, see `api::events`).

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use diesel::prelude::*;
use tokio::sync::broadcast;

use crate::config::EventSettings;
use crate::error::AppError;
use crate::policy::{self, Action, PolicyEngine, PrincipalAttrs, Resource};
use crate::records::observations::Observations;
use crate::records::referrals::Referrals;
use crate::records::situation_reports::SituationReports;
use crate::records::visibility::RecordKind;
use crate::storage::schema::events;
use crate::storage::{now_micros, Db, DbConnection};

/// What happened.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum EventKind {
    /// An observation was filed (to those who may read it, but its filer).
    ObservationFiled,
    /// A lägesbild was posted (to those who may read a section of it, at their places).
    SituationReportPublished,
    /// A referral came in (to the receiving organisation's readers).
    ReferralReceived,
    /// Feedback or a consent on a referral (to the person who filed it).
    ReferralFeedback,
}

impl EventKind {
    pub const ALL: [EventKind; 4] = [
        EventKind::ObservationFiled,
        EventKind::SituationReportPublished,
        EventKind::ReferralReceived,
        EventKind::ReferralFeedback,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            EventKind::ObservationFiled => "observation.filed",
            EventKind::SituationReportPublished => "situation_report.published",
            EventKind::ReferralReceived => "referral.received",
            EventKind::ReferralFeedback => "referral.feedback",
        }
    }

    pub fn parse(s: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|k| k.as_str() == s)
    }

    /// The event a new record of this kind makes.
    pub fn created(kind: policy::RecordKind) -> Self {
        match kind {
            policy::RecordKind::Observation => EventKind::ObservationFiled,
            policy::RecordKind::SituationReport => EventKind::SituationReportPublished,
            policy::RecordKind::Referral => EventKind::ReferralReceived,
        }
    }

    fn record_kind(self) -> policy::RecordKind {
        match self {
            EventKind::ObservationFiled => policy::RecordKind::Observation,
            EventKind::SituationReportPublished => policy::RecordKind::SituationReport,
            EventKind::ReferralReceived | EventKind::ReferralFeedback => {
                policy::RecordKind::Referral
            }
        }
    }
}

/// Stores an event (call inside the transaction of the write it tells of).
pub fn record(conn: &mut DbConnection, kind: EventKind, record_id: &str) -> QueryResult<()> {
    diesel::insert_into(events::table)
        .values((
            events::at.eq(now_micros()),
            events::kind.eq(kind.as_str()),
            events::record_kind.eq(kind.record_kind().as_str()),
            events::record_id.eq(record_id),
        ))
        .execute(conn)
        .map(|_| ())
}

/// An event with the parts of its record as the policy decides them.
#[derive(Debug)]
pub struct Event {
    /// Its row id: never sent as such (streams seal it per user).
    pub seq: i64,
    pub kind: EventKind,
    pub record_id: String,
    parts: Vec<Resource>,
}

impl Event {
    pub fn record_kind(&self) -> &'static str {
        self.kind.record_kind().as_str()
    }

    /// Whether this user hears of it: they may read a part of the record (as a GET
    /// would answer), and it is theirs by the event's kind.
    pub fn for_user(&self, engine: &PolicyEngine, p: &PrincipalAttrs) -> bool {
        if !self
            .parts
            .iter()
            .any(|r| engine.is_allowed(p, Action::Read, r))
        {
            return false;
        }
        self.parts.first().is_some_and(|r| match (self.kind, r) {
            (EventKind::ObservationFiled, Resource::ObservationPart { reporter_id, .. }) => {
                *reporter_id != p.user_id
            }
            (
                EventKind::SituationReportPublished,
                Resource::ReportSection {
                    place, author_id, ..
                },
            ) => *author_id != p.user_id && (p.places.is_empty() || p.places.contains(place)),
            (
                EventKind::ReferralReceived,
                Resource::ReferralPart {
                    receiving_org_id, ..
                },
            ) => *receiving_org_id == p.organization_id,
            (EventKind::ReferralFeedback, Resource::ReferralPart { reporter_id, .. }) => {
                *reporter_id == p.user_id
            }
            _ => false,
        })
    }
}

fn parts_of<K: RecordKind>(
    conn: &mut DbConnection,
    id: &str,
    now: i64,
) -> Result<Option<Vec<Resource>>, AppError> {
    let Some(row) = K::load(conn, id)? else {
        return Ok(None);
    };
    Ok(K::attach(conn, vec![row])?
        .first()
        .map(|s| K::parts(s, now).into_iter().map(|(_, r)| r).collect()))
}

/// The events after `after` that are not in `skip`, oldest first, with their records'
/// parts (an event whose record has been erased since is left out).
pub fn load_after(
    conn: &mut DbConnection,
    after: i64,
    limit: i64,
    skip: &dyn Fn(i64) -> bool,
) -> Result<(Vec<i64>, Vec<Event>), AppError> {
    let rows: Vec<(i64, String, String)> = events::table
        .filter(events::id.gt(after))
        .order(events::id.asc())
        .limit(limit)
        .select((events::id, events::kind, events::record_id))
        .load(conn)?;
    let now = now_micros();
    let mut out = Vec::new();
    let ids = rows.iter().map(|r| r.0).collect();
    for (seq, kind, record_id) in rows {
        if skip(seq) {
            continue;
        }
        let Some(kind) = EventKind::parse(&kind) else {
            continue;
        };
        let parts = match kind.record_kind() {
            policy::RecordKind::Observation => parts_of::<Observations>(conn, &record_id, now)?,
            policy::RecordKind::SituationReport => {
                parts_of::<SituationReports>(conn, &record_id, now)?
            }
            policy::RecordKind::Referral => parts_of::<Referrals>(conn, &record_id, now)?,
        };
        if let Some(parts) = parts {
            out.push(Event {
                seq,
                kind,
                record_id,
                parts,
            });
        }
    }
    Ok((ids, out))
}

/// How long an id below a seen one may stay missing before it is taken as never coming
/// (a rolled-back PostgreSQL sequence value); longer than any of our transactions.
const GAP_WAIT: Duration = Duration::from_secs(10);

/// Hands every instance's new events to this instance's streams.
pub struct EventBus {
    tx: broadcast::Sender<Arc<Event>>,
    streams: AtomicUsize,
    pub settings: EventSettings,
}

/// An open stream's place in the bound; freed when dropped.
pub struct StreamSlot(Arc<EventBus>);

impl Drop for StreamSlot {
    fn drop(&mut self) {
        self.0.streams.fetch_sub(1, Ordering::SeqCst);
    }
}

impl EventBus {
    /// Starts reading the events table (from its newest row: older events are for
    /// streams that resume, which read them themselves).
    pub fn start(db: Db, settings: EventSettings) -> Arc<EventBus> {
        let (tx, _) = broadcast::channel(4096);
        let bus = Arc::new(EventBus {
            tx,
            streams: AtomicUsize::new(0),
            settings,
        });
        tokio::spawn(poll(bus.clone(), db));
        bus
    }

    pub fn subscribe(&self) -> broadcast::Receiver<Arc<Event>> {
        self.tx.subscribe()
    }

    /// A place for one more stream, if the bound allows.
    pub fn open_stream(self: &Arc<Self>) -> Option<StreamSlot> {
        let n = self.streams.fetch_add(1, Ordering::SeqCst);
        if n >= self.settings.max_streams {
            self.streams.fetch_sub(1, Ordering::SeqCst);
            return None;
        }
        Some(StreamSlot(self.clone()))
    }

    pub fn open_streams(&self) -> usize {
        self.streams.load(Ordering::SeqCst)
    }
}

async fn poll(bus: Arc<EventBus>, db: Db) {
    let mut low = loop {
        match db
            .run(|c| {
                Ok(events::table
                    .select(diesel::dsl::max(events::id))
                    .first::<Option<i64>>(c)?
                    .unwrap_or(0))
            })
            .await
        {
            Ok(n) => break n,
            Err(e) => {
                tracing::warn!(error = %e, "events: cannot read the newest event; retrying");
                tokio::time::sleep(Duration::from_secs(1)).await;
            }
        }
    };
    // Ids above `low` already handed on, with when each was first seen.
    let mut seen: BTreeMap<i64, Instant> = BTreeMap::new();
    let mut tick = tokio::time::interval(Duration::from_millis(bus.settings.poll_ms));
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    let mut pruned = Instant::now();
    loop {
        tick.tick().await;
        let known: Vec<i64> = seen.keys().copied().collect();
        let after = low;
        let read = db
            .run(move |c| load_after(c, after, 1000, &|seq| known.binary_search(&seq).is_ok()))
            .await;
        let (ids, fresh) = match read {
            Ok(r) => r,
            Err(e) => {
                tracing::warn!(error = %e, "events: cannot read new events");
                continue;
            }
        };
        let now = Instant::now();
        for id in ids {
            seen.entry(id).or_insert(now);
        }
        for e in fresh {
            // No receiver is not an error: no stream is open.
            let _ = bus.tx.send(Arc::new(e));
        }
        // Everything up to `low` is handed on; a missing id holds it back for a while.
        while let Some((&first, &at)) = seen.first_key_value() {
            if first == low + 1 || now.duration_since(at) > GAP_WAIT {
                low = first;
                seen.pop_first();
            } else {
                break;
            }
        }
        if pruned.elapsed() > Duration::from_secs(60) {
            pruned = Instant::now();
            let cutoff = now_micros() - bus.settings.retain_minutes * 60 * 1_000_000;
            let deleted = db
                .run(move |c| {
                    Ok(diesel::delete(events::table.filter(events::at.lt(cutoff))).execute(c)?)
                })
                .await;
            if let Err(e) = deleted {
                tracing::warn!(error = %e, "events: cannot delete old events");
            }
        }
    }
}
