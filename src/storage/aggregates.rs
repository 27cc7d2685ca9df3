//! Aggregates kept for statistics (uppföljning): counts without personal data, written
//! in the same transaction as the record they count and never erased with it.

use std::collections::HashMap;

use diesel::prelude::*;
use diesel::upsert::excluded;

use super::schema::{
    observation_counts, observations, referral_counts, referral_decision_days, referral_feedback,
    referrals,
};
use super::DbConnection;
use crate::fields::stockholm_month;

/// The row the statistics migration leaves for [`backfill`] to find.
const BACKFILL_MARKER: &str = "backfill";
const PAGE: i64 = 10_000;

/// `INSERT … ON CONFLICT (key) DO UPDATE SET count = count + excluded.count`: the same
/// statement on both backends, typed by diesel per backend.
macro_rules! add_to_count {
    ($conn:expr, $table:ident, $row:expr, $key:expr) => {{
        let sum = $table::count.eq($table::count + excluded($table::count));
        match $conn {
            DbConnection::Pg(c) => diesel::insert_into($table::table)
                .values($row)
                .on_conflict($key)
                .do_update()
                .set(sum)
                .execute(c),
            DbConnection::Sqlite(c) => diesel::insert_into($table::table)
                .values($row)
                .on_conflict($key)
                .do_update()
                .set(sum)
                .execute(c),
        }
        .map(|_| ())
    }};
}

/// This thread's shard of the counts: drawn once per thread, so each writer (on any
/// instance) adds to rows of its own and never waits for another's row lock; a frozen
/// instance holds up no one. Readers add the shards up.
fn shard() -> i64 {
    thread_local! {
        static SHARD: i64 = rand::random::<u32>() as i64;
    }
    SHARD.with(|s| *s)
}

/// Adds `n` to the count of (month, place, category).
fn add(
    conn: &mut DbConnection,
    month: &str,
    place: &str,
    category: &str,
    n: i64,
) -> QueryResult<()> {
    use observation_counts as t;
    add_to_count!(
        conn,
        t,
        (
            t::month.eq(month),
            t::place_id.eq(place),
            t::category.eq(category),
            t::count.eq(n),
            t::shard.eq(shard())
        ),
        (t::month, t::place_id, t::category, t::shard)
    )
}

/// A referral's place in the statistics: receiving organisation, filing month, status
/// and the timing of its first decision.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct ReferralKey {
    pub month: String,
    pub receiving_org_id: String,
    pub status: String,
    /// `none`, `within_14` or `after_14`.
    pub timing: &'static str,
}

/// Days within which a first decision counts as prompt.
pub const PROMPT_DAYS: i64 = 14;
const DAY_MICROS: i64 = 86_400 * 1_000_000;

/// Whole days from filing to the first decision.
pub fn decision_days(filed: i64, decided: i64) -> i64 {
    (decided - filed).max(0) / DAY_MICROS
}

/// `within_14` or `after_14`, or `none` without a decision.
pub fn timing(days: Option<i64>) -> &'static str {
    match days {
        None => "none",
        Some(d) if d <= PROMPT_DAYS => "within_14",
        Some(_) => "after_14",
    }
}

/// Adds `n` to a referral key's count.
pub fn add_referral(conn: &mut DbConnection, k: &ReferralKey, n: i64) -> QueryResult<()> {
    use referral_counts as t;
    add_to_count!(
        conn,
        t,
        (
            t::month.eq(&k.month),
            t::receiving_org_id.eq(&k.receiving_org_id),
            t::status.eq(&k.status),
            t::timing.eq(k.timing),
            t::count.eq(n),
            t::shard.eq(shard())
        ),
        (
            t::month,
            t::receiving_org_id,
            t::status,
            t::timing,
            t::shard
        )
    )
}

/// Records a first decision `days` after filing.
pub fn add_decision_days(
    conn: &mut DbConnection,
    month: &str,
    receiving_org_id: &str,
    days: i64,
    n: i64,
) -> QueryResult<()> {
    use referral_decision_days as t;
    let days = days.clamp(0, i32::MAX as i64) as i32;
    add_to_count!(
        conn,
        t,
        (
            t::month.eq(month),
            t::receiving_org_id.eq(receiving_org_id),
            t::days.eq(days),
            t::count.eq(n),
            t::shard.eq(shard())
        ),
        (t::month, t::receiving_org_id, t::days, t::shard)
    )
}

/// Counts a new referral (call inside the transaction that stores it).
pub fn count_referral(
    conn: &mut DbConnection,
    created_at: i64,
    receiving_org_id: &str,
) -> QueryResult<()> {
    let key = ReferralKey {
        month: stockholm_month(created_at),
        receiving_org_id: receiving_org_id.to_owned(),
        status: "pending".to_owned(),
        timing: "none",
    };
    add_referral(conn, &key, 1)
}

/// Moves a referral from its old status to its new one (call inside the transaction
/// that records the feedback, before the feedback row is stored). `first_decision` is
/// when its first decision was recorded, if there was one before this feedback.
pub fn count_feedback(
    conn: &mut DbConnection,
    created_at: i64,
    receiving_org_id: &str,
    old_status: &str,
    new_status: &str,
    first_decision: Option<i64>,
    now: i64,
) -> QueryResult<()> {
    let month = stockholm_month(created_at);
    let before_days = first_decision.map(|d| decision_days(created_at, d));
    let after_days = match before_days {
        Some(d) => Some(d),
        None if new_status != "pending" => {
            let d = decision_days(created_at, now);
            add_decision_days(conn, &month, receiving_org_id, d, 1)?;
            Some(d)
        }
        None => None,
    };
    let key = |status: &str, days| ReferralKey {
        month: month.clone(),
        receiving_org_id: receiving_org_id.to_owned(),
        status: status.to_owned(),
        timing: timing(days),
    };
    add_referral(conn, &key(old_status, before_days), -1)?;
    add_referral(conn, &key(new_status, after_days), 1)
}

/// Counts one new observation (call inside the transaction that stores it).
pub fn count_observation(
    conn: &mut DbConnection,
    observed_at: i64,
    place: &str,
    category: &str,
) -> QueryResult<()> {
    add(conn, &stockholm_month(observed_at), place, category, 1)
}

/// Counts the observations stored before the statistics existed, once: when the
/// migration's marker is there, in one transaction that removes it.
pub fn backfill(conn: &mut DbConnection) -> QueryResult<usize> {
    let marker = observation_counts::table.filter(observation_counts::month.eq(BACKFILL_MARKER));
    if marker.count().get_result::<i64>(conn)? == 0 {
        return Ok(0);
    }
    conn.transaction(|c| {
        // A write first: it takes SQLite's write lock before any read (no stale snapshot
        // to upgrade) and the marker row's lock on PostgreSQL, so replicas started
        // together count once and the later ones find no marker.
        if diesel::update(marker)
            .set(observation_counts::count.eq(0))
            .execute(c)?
            == 0
        {
            return Ok(0);
        }
        let mut counts: HashMap<(String, String, String), i64> = HashMap::new();
        let mut after = String::new();
        let mut seen = 0;
        loop {
            let page = observations::table
                .filter(observations::id.gt(&after))
                .order(observations::id.asc())
                .limit(PAGE)
                .select((
                    observations::id,
                    observations::place_id,
                    observations::category,
                    observations::observed_at,
                ))
                .load::<(String, String, String, i64)>(c)?;
            let Some(last) = page.last().map(|r| r.0.clone()) else {
                break;
            };
            seen += page.len();
            for (_, place, category, at) in page {
                *counts
                    .entry((stockholm_month(at), place, category))
                    .or_default() += 1;
            }
            after = last;
        }
        for ((month, place, category), n) in &counts {
            add(c, month, place, category, *n)?;
        }
        diesel::delete(
            observation_counts::table.filter(observation_counts::month.eq(BACKFILL_MARKER)),
        )
        .execute(c)?;
        Ok(seen)
    })
}

/// Counts the referrals stored before their statistics existed, once (as [`backfill`]).
pub fn backfill_referrals(conn: &mut DbConnection) -> QueryResult<usize> {
    let marker = referral_counts::table.filter(referral_counts::month.eq(BACKFILL_MARKER));
    if marker.count().get_result::<i64>(conn)? == 0 {
        return Ok(0);
    }
    conn.transaction(|c| {
        // As in `backfill`: the marker's write first.
        if diesel::update(marker)
            .set(referral_counts::count.eq(0))
            .execute(c)?
            == 0
        {
            return Ok(0);
        }
        let rows = referrals::table
            .select((
                referrals::id,
                referrals::receiving_org_id,
                referrals::status,
                referrals::created_at,
            ))
            .load::<(String, String, String, i64)>(c)?;
        let mut firsts: HashMap<String, i64> = HashMap::new();
        for (id, at) in referral_feedback::table
            .filter(referral_feedback::status.ne("pending"))
            .select((
                referral_feedback::referral_id,
                referral_feedback::created_at,
            ))
            .load::<(String, i64)>(c)?
        {
            let e = firsts.entry(id).or_insert(at);
            *e = (*e).min(at);
        }
        let mut counts: HashMap<ReferralKey, i64> = HashMap::new();
        let mut days: HashMap<(String, String, i64), i64> = HashMap::new();
        for (id, org, status, created) in &rows {
            let month = stockholm_month(*created);
            let d = firsts.get(id).map(|f| decision_days(*created, *f));
            if let Some(d) = d {
                *days.entry((month.clone(), org.clone(), d)).or_default() += 1;
            }
            let key = ReferralKey {
                month,
                receiving_org_id: org.clone(),
                status: status.clone(),
                timing: timing(d),
            };
            *counts.entry(key).or_default() += 1;
        }
        for (k, n) in &counts {
            add_referral(c, k, *n)?;
        }
        for ((month, org, d), n) in &days {
            add_decision_days(c, month, org, *d, *n)?;
        }
        diesel::delete(referral_counts::table.filter(referral_counts::month.eq(BACKFILL_MARKER)))
            .execute(c)?;
        Ok(rows.len())
    })
}

/// (month, receiving organisation, status, timing, count).
pub type ReferralCount = (String, String, String, String, i64);

/// The referral counts of the months `from..=to` (`YYYY-MM`).
pub fn referral_counts_between(
    conn: &mut DbConnection,
    from: &str,
    to: &str,
) -> QueryResult<Vec<ReferralCount>> {
    referral_counts::table
        .filter(referral_counts::month.ge(from))
        .filter(referral_counts::month.le(to))
        .select((
            referral_counts::month,
            referral_counts::receiving_org_id,
            referral_counts::status,
            referral_counts::timing,
            referral_counts::count,
        ))
        .load(conn)
}

/// Days to the first decision in the months `from..=to`: (month, organisation, days, count).
pub fn decision_days_between(
    conn: &mut DbConnection,
    from: &str,
    to: &str,
) -> QueryResult<Vec<(String, String, i32, i64)>> {
    referral_decision_days::table
        .filter(referral_decision_days::month.ge(from))
        .filter(referral_decision_days::month.le(to))
        .select((
            referral_decision_days::month,
            referral_decision_days::receiving_org_id,
            referral_decision_days::days,
            referral_decision_days::count,
        ))
        .load(conn)
}

/// The counts of the months `from..=to` (`YYYY-MM`) as (month, place, category, count).
pub fn observation_counts_between(
    conn: &mut DbConnection,
    from: &str,
    to: &str,
) -> QueryResult<Vec<(String, String, String, i64)>> {
    observation_counts::table
        .filter(observation_counts::month.ge(from))
        .filter(observation_counts::month.le(to))
        .select((
            observation_counts::month,
            observation_counts::place_id,
            observation_counts::category,
            observation_counts::count,
        ))
        .load(conn)
}
