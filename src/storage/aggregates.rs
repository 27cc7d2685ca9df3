//! Aggregates kept for statistics (uppföljning): counts without personal data, written
//! in the same transaction as the record they count and never erased with it.

use std::collections::HashMap;

use diesel::prelude::*;
use diesel::upsert::excluded;

use super::schema::{observation_counts, observations};
use super::{lock_key, DbConnection};
use crate::fields::stockholm_month;

/// The row the statistics migration leaves for [`backfill`] to find.
const BACKFILL_MARKER: &str = "backfill";
const PAGE: i64 = 10_000;

/// Adds `n` to the count of (month, place, category).
fn add(
    conn: &mut DbConnection,
    month: &str,
    place: &str,
    category: &str,
    n: i64,
) -> QueryResult<()> {
    let row = (
        observation_counts::month.eq(month),
        observation_counts::place_id.eq(place),
        observation_counts::category.eq(category),
        observation_counts::count.eq(n),
    );
    let key = (
        observation_counts::month,
        observation_counts::place_id,
        observation_counts::category,
    );
    let sum = observation_counts::count
        .eq(observation_counts::count + excluded(observation_counts::count));
    // The same statement on both backends; diesel types the upsert per backend.
    match conn {
        DbConnection::Pg(c) => diesel::insert_into(observation_counts::table)
            .values(row)
            .on_conflict(key)
            .do_update()
            .set(sum)
            .execute(c),
        DbConnection::Sqlite(c) => diesel::insert_into(observation_counts::table)
            .values(row)
            .on_conflict(key)
            .do_update()
            .set(sum)
            .execute(c),
    }
    .map(|_| ())
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
/// migration's marker is there, in one transaction that removes it (under a lock, so
/// replicas started together count once).
pub fn backfill(conn: &mut DbConnection) -> QueryResult<usize> {
    conn.transaction(|c| {
        lock_key(c, "samverkan.statistics.backfill")?;
        let marker = observation_counts::table
            .filter(observation_counts::month.eq(BACKFILL_MARKER))
            .count()
            .get_result::<i64>(c)?;
        if marker == 0 {
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
