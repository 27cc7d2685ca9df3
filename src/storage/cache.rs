//! In-memory caches of what the hot read path would otherwise fetch on every request
//! (the signed-in user behind a session, situation reports), and the one counter that
//! keeps them correct.
//!
//! Database triggers bump `cache_generation` on every change that could make an entry
//! wrong (a user disabled, a session revoked, places reassigned, a report erased…),
//! whoever makes the change. The writer compares the counter before and after each
//! group commit and moves the [`Generation`] on before it answers anyone, so a change
//! made through this server takes effect at once; a poller notices changes made
//! elsewhere (the CLI, another instance) within its interval.
//!
//! An entry is tagged with the generation current when its database read *began*; it is
//! served only while that generation is still current, so a read racing a change can
//! never put stale data in the cache.

use std::collections::HashMap;
use std::hash::Hash;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, RwLock};
use std::time::Duration;

use diesel::prelude::*;

use super::schema::cache_generation;
use super::{reconnect, DatabaseUrl, DbConnection};

/// The generation every cached entry is checked against.
#[derive(Debug, Default)]
pub struct Generation(AtomicU64);

impl Generation {
    /// The generation to tag a read with: take it *before* the read starts.
    pub fn current(&self) -> u64 {
        self.0.load(Ordering::Acquire)
    }

    /// Makes every cached entry stale.
    pub fn invalidate(&self) {
        self.0.fetch_add(1, Ordering::AcqRel);
    }
}

/// A bounded map whose entries are valid for one generation.
pub struct GenCache<K, V> {
    map: RwLock<HashMap<K, (u64, V)>>,
    capacity: usize,
    generation: Arc<Generation>,
}

impl<K: Eq + Hash, V: Clone> GenCache<K, V> {
    /// `capacity` 0 turns the cache off.
    pub fn new(capacity: usize, generation: Arc<Generation>) -> Self {
        GenCache {
            map: RwLock::new(HashMap::new()),
            capacity,
            generation,
        }
    }

    /// The generation to tag a read with: take it *before* the read starts.
    pub fn generation(&self) -> u64 {
        self.generation.current()
    }

    /// The entry for `key`, if it was read in the current generation.
    pub fn get<Q>(&self, key: &Q) -> Option<V>
    where
        K: std::borrow::Borrow<Q>,
        Q: Eq + Hash + ?Sized,
    {
        let current = self.generation.current();
        let map = self.map.read().ok()?;
        match map.get(key) {
            Some((generation, v)) if *generation == current => Some(v.clone()),
            _ => None,
        }
    }

    /// Keeps `value`, read in generation `read_in`; when full, entries of older
    /// generations go first, then everything (a bound, not an LRU: misses are cheap).
    pub fn insert(&self, key: K, value: V, read_in: u64) {
        if self.capacity == 0 {
            return;
        }
        let Ok(mut map) = self.map.write() else {
            return;
        };
        if map.len() >= self.capacity {
            map.retain(|_, (g, _)| *g == read_in);
            if map.len() >= self.capacity {
                map.clear();
            }
        }
        map.insert(key, (read_in, value));
    }

    pub fn len(&self) -> usize {
        self.map.read().map(|m| m.len()).unwrap_or(0)
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

/// The database's change counter (bumped by triggers).
pub fn stored_generation(conn: &mut DbConnection) -> QueryResult<i64> {
    cache_generation::table
        .filter(cache_generation::id.eq(1))
        .select(cache_generation::generation)
        .first(conn)
}

/// Watches the database's counter on its own connection and moves `generation` on when
/// a change made outside this process shows up (or when the database cannot be asked).
pub fn spawn_poller(
    generation: Arc<Generation>,
    url: DatabaseUrl,
    poll_interval: Duration,
) -> std::io::Result<()> {
    // Holds the generation weakly: the thread ends with the application. (The strong
    // reference must not move into the thread, or the thread keeps itself alive.)
    let generation = Arc::downgrade(&generation);
    std::thread::Builder::new()
        .name("samverkan-cache".into())
        .spawn(move || {
            let mut conn = reconnect(&url, "cache poller");
            let mut last = None;
            loop {
                let Some(generation) = generation.upgrade() else {
                    return;
                };
                // Invalidate only after reading the counter: whatever is cached from then
                // on was read after it, so any later change shows as a new value.
                match stored_generation(&mut conn) {
                    Ok(g) => {
                        if last != Some(g) {
                            generation.invalidate();
                        }
                        last = Some(g);
                    }
                    Err(e) => {
                        tracing::warn!(error = %e, "cache poller cannot read the change counter");
                        generation.invalidate();
                        last = None;
                        conn = reconnect(&url, "cache poller");
                        continue;
                    }
                }
                drop(generation);
                std::thread::sleep(poll_interval);
            }
        })
        .map(|_| ())
}
