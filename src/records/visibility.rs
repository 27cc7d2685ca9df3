//! The one visibility layer: every read, list and write of an existing record goes
//! through here, whatever its kind.
//!
//! A list reads only candidate rows: the policy's [`Scope`] for the principal (worked
//! out once per principal from Cedar, see `policy::scope`) becomes a few [`Slice`]s,
//! each an indexed query, merged newest first. A row the user cannot see is never
//! scanned, so nothing a user gets — items, cursor, length — nor the time it takes,
//! depends on records they cannot see. Cedar still decides every part of every row that
//! comes back (memoised per attribute set); a record with no visible part is left out of
//! lists and is a 404 on a read or a write, the same 404 as for an id that never
//! existed.

use std::collections::VecDeque;
use std::sync::OnceLock;

use actix_web::web::Bytes;
use diesel::expression::BoxableExpression;
use diesel::sql_types::Bool;
use serde::Serialize;

use super::{Cursor, Decider, ListFilter, Memo, Shown};
use crate::error::AppError;
use crate::policy::scope::{Content, OrgRelation, PlaceRelation};
use crate::policy::{self, PrincipalAttrs, Resource, Scope};
use crate::storage::cache::GenCache;
use crate::storage::DbConnection;

/// The backend of [`DbConnection`].
pub type Backend = <DbConnection as diesel::Connection>::Backend;

/// A boxed SQL condition on a row of `T`.
pub type Pred<T> = Box<dyn BoxableExpression<T, Backend, SqlType = Bool>>;

/// What one kind of record plugs into the pipeline.
pub trait RecordKind: Sized + Send + Sync + 'static {
    /// Its name in audit entries, cursors and legal holds.
    const KIND: policy::RecordKind;
    /// A row of its table.
    type Row: Send + 'static;
    /// A row with everything its decisions and its view need.
    type Stored: Send + Sync + 'static;
    /// One decidable part of a stored record.
    type Part: Copy + Eq + Send + Sync + 'static;
    /// The record as a user may see it: parts not allowed are absent.
    type View: Serialize + Send + 'static;

    /// Sort key (time, id): lists are newest first on it.
    fn key(row: &Self::Row) -> Cursor;
    fn row(stored: &Self::Stored) -> &Self::Row;
    /// The row with this id.
    fn load(conn: &mut DbConnection, id: &str) -> Result<Option<Self::Row>, AppError>;
    /// One slice of a list, newest first (see [`SliceQuery`]).
    fn load_slice(conn: &mut DbConnection, q: &SliceQuery<'_>) -> Result<Vec<Self::Row>, AppError>;
    /// The rows with what their decisions and views need, loaded for all at once.
    fn attach(conn: &mut DbConnection, rows: Vec<Self::Row>)
        -> Result<Vec<Self::Stored>, AppError>;
    /// Every part the record has, with the resource Cedar decides it on.
    fn parts(stored: &Self::Stored, now: i64) -> Vec<(Self::Part, Resource)>;
    /// The part's name in the audit trail.
    fn part_name(part: Self::Part) -> &'static str;
    /// The record with `parts` allowed (never empty).
    fn view(stored: &Self::Stored, parts: &[Self::Part]) -> Self::View;
    /// For kinds kept in memory: a small number (< [`MASKS`]) per set of allowed parts,
    /// under which the serialised answer is kept.
    fn mask(_parts: &[Self::Part]) -> Option<usize> {
        None
    }
}

/// The parts of `stored` this principal may read.
fn allowed<K: RecordKind>(memo: &mut Memo<'_>, stored: &K::Stored, now: i64) -> Vec<K::Part> {
    K::parts(stored, now)
        .into_iter()
        .filter_map(|(part, resource)| memo.reads(resource).then_some(part))
        .collect()
}

/// The audit names of `parts`, each once, in order.
pub fn names<K: RecordKind>(parts: &[K::Part]) -> Vec<&'static str> {
    let mut out: Vec<&'static str> = Vec::with_capacity(parts.len());
    for p in parts {
        let n = K::part_name(*p);
        if !out.contains(&n) {
            out.push(n);
        }
    }
    out
}

/// How a slice's query is narrowed by an index.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Drive {
    /// At this one place (the place index).
    Place(String),
    /// Filed by the principal (the filer index).
    Owner,
    /// Sent to the principal's organisation (referrals: the receiving index).
    Receiving,
    /// Every row, newest first, filtered.
    Scan,
}

/// One indexed query of a list: the rows of one cube of the scope.
#[derive(Debug, Clone)]
pub struct Slice {
    pub drive: Drive,
    /// `Some(true)`: filed by the principal; `Some(false)`: by someone else.
    pub own: Option<bool>,
    /// The organisation relations allowed; `None`: any.
    pub orgs: Option<Vec<OrgRelation>>,
    /// The place relations allowed; `None`: any.
    pub places: Option<Vec<PlaceRelation>>,
    /// What the record must hold (one of them); `[Always]`: nothing.
    pub contents: Vec<Content>,
}

/// Everything a kind needs to build one slice's query.
pub struct SliceQuery<'a> {
    pub slice: &'a Slice,
    pub me: &'a PrincipalAttrs,
    pub filter: &'a ListFilter,
    /// Rows strictly after this key (older).
    pub after: Option<&'a Cursor>,
    pub limit: i64,
    pub now: i64,
}

/// The indexed queries that read exactly the scope's rows (with the place asked for).
pub fn plan(scope: &Scope, me: &PrincipalAttrs, place: Option<&str>) -> Vec<Slice> {
    let kind = scope.kind;
    let asked = place.map(|x| {
        if me.places.iter().any(|p| p == x) {
            PlaceRelation::Assigned
        } else {
            PlaceRelation::Elsewhere
        }
    });
    let mut slices = Vec::new();
    for cube in &scope.cubes {
        if asked.is_some_and(|rel| !cube.has_place(rel)) {
            continue;
        }
        let places: Option<Vec<PlaceRelation>> =
            (!cube.any_place(kind)).then(|| cube.places().collect());
        let orgs: Option<Vec<OrgRelation>> = (!cube.any_org(kind)).then(|| cube.orgs().collect());
        let template = Slice {
            drive: Drive::Scan,
            own: cube.own(),
            orgs: orgs.clone(),
            places: places.clone(),
            contents: cube.contents().to_vec(),
        };
        if places.as_deref() == Some(&[PlaceRelation::Assigned]) {
            // One query per place: each uses the place index.
            for p in me.places.iter().filter(|p| place.is_none_or(|x| x == *p)) {
                slices.push(Slice {
                    drive: Drive::Place(p.clone()),
                    places: None,
                    ..template.clone()
                });
            }
        } else if cube.own() == Some(true) {
            slices.push(Slice {
                drive: Drive::Owner,
                ..template
            });
        } else if orgs
            .as_ref()
            .is_some_and(|o| o.iter().all(|r| r.sent_here()))
        {
            slices.push(Slice {
                drive: Drive::Receiving,
                ..template
            });
        } else {
            slices.push(template);
        }
    }
    slices
}

/// One slice's rows, read a page at a time.
struct Stream<R> {
    slice: Slice,
    rows: VecDeque<R>,
    after: Option<Cursor>,
    done: bool,
}

/// One page of a list: what is shown, and where the next page starts (`None`: the end).
pub struct Listed<V> {
    pub shown: Vec<Shown<V>>,
    pub next: Option<Cursor>,
}

/// One page of the records of kind `K` this principal may see, newest first, after
/// `f.after`; the next page starts after its last record when the page is full.
pub fn list<K: RecordKind>(
    conn: &mut DbConnection,
    d: &Decider,
    f: &ListFilter,
    now: i64,
) -> Result<Listed<K::View>, AppError> {
    let scope = d.engine().scope(d.principal(), K::KIND);
    let limit = f.limit.max(1) as usize;
    let mut streams: Vec<Stream<K::Row>> = plan(&scope, d.principal(), f.place.as_deref())
        .into_iter()
        .map(|slice| Stream {
            slice,
            rows: VecDeque::new(),
            after: f.after.clone(),
            done: false,
        })
        .collect();
    let mut memo = Memo::new(d);
    let mut out: Vec<Shown<K::View>> = Vec::with_capacity(limit);
    // The key of the last row taken from the merged slices: a row in two slices comes
    // out of both, one right after the other.
    let mut taken: Option<Cursor> = None;
    loop {
        let want = limit - out.len();
        let mut batch: Vec<K::Row> = Vec::with_capacity(want);
        while batch.len() < want {
            for s in streams.iter_mut().filter(|s| s.rows.is_empty() && !s.done) {
                let rows = K::load_slice(
                    conn,
                    &SliceQuery {
                        slice: &s.slice,
                        me: d.principal(),
                        filter: f,
                        after: s.after.as_ref(),
                        limit: want as i64,
                        now,
                    },
                )?;
                s.done = rows.len() < want;
                s.after = rows.last().map(K::key).or(s.after.take());
                s.rows.extend(rows);
            }
            let next = streams
                .iter()
                .enumerate()
                .filter_map(|(i, s)| s.rows.front().map(|r| (i, K::key(r))))
                .max_by(|a, b| a.1.cmp(&b.1));
            let Some((i, key)) = next else { break };
            let Some(row) = streams[i].rows.pop_front() else {
                break;
            };
            if taken.as_ref() != Some(&key) {
                taken = Some(key);
                batch.push(row);
            }
        }
        let exhausted = batch.len() < want;
        if !batch.is_empty() {
            for stored in K::attach(conn, batch)? {
                let parts = allowed::<K>(&mut memo, &stored, now);
                if parts.is_empty() {
                    continue;
                }
                out.push(Shown {
                    view: K::view(&stored, &parts),
                    key: K::key(K::row(&stored)),
                    parts: names::<K>(&parts),
                });
            }
        }
        if out.len() == limit {
            let next = out.last().map(|s| s.key.clone());
            return Ok(Listed { shown: out, next });
        }
        if exhausted {
            return Ok(Listed {
                shown: out,
                next: None,
            });
        }
    }
}

/// A read of one record: the JSON body and the parts it discloses.
#[derive(Debug, Clone)]
pub struct Answer {
    pub body: Bytes,
    pub parts: Vec<&'static str>,
}

/// How many sets of allowed parts a record kept in memory keeps an answer for.
pub const MASKS: usize = 8;

/// A record kept in memory between reads, with the answer for each set of allowed parts
/// serialised the first time a reader with that set asks (the decisions themselves are
/// made on every read).
pub struct Cached<K: RecordKind> {
    stored: K::Stored,
    bodies: [OnceLock<Answer>; MASKS],
}

impl<K: RecordKind> Cached<K> {
    pub fn new(stored: K::Stored) -> Self {
        Cached {
            stored,
            bodies: Default::default(),
        }
    }
}

/// Records of one kind kept in memory by id (see `storage::cache`).
pub type RecordCache<K> = GenCache<String, std::sync::Arc<Cached<K>>>;

fn answer<K: RecordKind>(stored: &K::Stored, parts: &[K::Part]) -> Answer {
    Answer {
        // A view is plain data: serialising it cannot fail.
        body: Bytes::from(serde_json::to_vec(&K::view(stored, parts)).unwrap_or_default()),
        parts: names::<K>(parts),
    }
}

/// The parts of one record this principal may read (no memo: each part is asked once).
fn allowed_one<K: RecordKind>(d: &Decider, stored: &K::Stored, now: i64) -> Vec<K::Part> {
    K::parts(stored, now)
        .into_iter()
        .filter_map(|(part, resource)| d.allows(policy::Action::Read, &resource).then_some(part))
        .collect()
}

/// The read of a record kept in memory; `None` when no part is visible.
pub fn read_cached<K: RecordKind>(d: &Decider, cached: &Cached<K>, now: i64) -> Option<Answer> {
    let parts = allowed_one::<K>(d, &cached.stored, now);
    if parts.is_empty() {
        return None;
    }
    match K::mask(&parts).and_then(|m| cached.bodies.get(m)) {
        Some(slot) => Some(
            slot.get_or_init(|| answer::<K>(&cached.stored, &parts))
                .clone(),
        ),
        None => Some(answer::<K>(&cached.stored, &parts)),
    }
}

/// Loads one record with everything it needs; `None` when there is none.
pub fn load<K: RecordKind>(
    conn: &mut DbConnection,
    id: &str,
) -> Result<Option<K::Stored>, AppError> {
    match K::load(conn, id)? {
        Some(row) => Ok(K::attach(conn, vec![row])?.pop()),
        None => Ok(None),
    }
}

/// One record as this principal may see it; `None` when no part is visible (a 404,
/// the same as for an id that does not exist). With `cache`, what was loaded is kept.
pub fn read<K: RecordKind>(
    conn: &mut DbConnection,
    d: &Decider,
    id: &str,
    now: i64,
    cache: Option<&RecordCache<K>>,
) -> Result<Option<Answer>, AppError> {
    let Some(cache) = cache else {
        return Ok(load::<K>(conn, id)?.and_then(|stored| answer_of::<K>(d, &stored, now)));
    };
    // Tagged with the generation current before the read began (see `storage::cache`).
    let generation = cache.generation();
    let Some(stored) = load::<K>(conn, id)? else {
        return Ok(None);
    };
    let cached = std::sync::Arc::new(Cached::<K>::new(stored));
    cache.insert(id.to_owned(), cached.clone(), generation);
    Ok(read_cached(d, &cached, now))
}

/// A record in hand (one just stored, say) as this principal may see it; `None` when no
/// part is visible.
pub fn answer_of<K: RecordKind>(d: &Decider, stored: &K::Stored, now: i64) -> Option<Answer> {
    let parts = allowed_one::<K>(d, stored, now);
    (!parts.is_empty()).then(|| answer::<K>(stored, &parts))
}

/// A record read back in the transaction that stored it (it must be there).
pub fn stored<K: RecordKind>(conn: &mut DbConnection, id: &str) -> Result<K::Stored, AppError> {
    load::<K>(conn, id)?.ok_or_else(|| {
        AppError::Internal(format!(
            "{} {id} is gone right after its insert",
            K::KIND.as_str()
        ))
    })
}

/// The record a write on an existing record acts on, with the parts the principal may
/// read: `None` when none (a 404, and the write is refused as for an id that does not
/// exist).
pub fn target<K: RecordKind>(
    conn: &mut DbConnection,
    d: &Decider,
    id: &str,
    now: i64,
) -> Result<Option<K::Stored>, AppError> {
    Ok(load::<K>(conn, id)?.filter(|stored| !allowed_one::<K>(d, stored, now).is_empty()))
}

/// The WHERE clause and order of one slice over a record table (see [`Slice`]), and
/// its rows. Every kind's `load_slice` is this, with its own columns.
macro_rules! slice_rows {
    (
        $conn:expr, $sq:expr, $table:ident, $row:ty,
        time: $time:ident, owner: $owner:ident, owner_org: $owner_org:ident,
        place: $place:expr, place_column: $place_column:ident,
        orgs: $orgs:expr, contents: $contents:expr, extra: $extra:expr $(,)?
    ) => {{
        use diesel::prelude::*;
        use $crate::policy::scope::{Content, PlaceRelation};
        use $crate::records::visibility::{Drive, Pred};
        use $crate::storage::ids::in_ids;
        use $crate::storage::schema::$table as t;
        let sq: &$crate::records::visibility::SliceQuery<'_> = $sq;
        let me = sq.me;
        let mut q = t::table.select(<$row>::as_select()).into_boxed();
        // What the user asked for.
        if let Some(p) = &sq.filter.place {
            q = q.filter($place.eq(p.clone()));
        }
        if let Some(s) = sq.filter.since {
            q = q.filter(t::$time.ge(s));
        }
        if let Some(u) = sq.filter.until {
            q = q.filter(t::$time.lt(u));
        }
        if let Some(c) = sq.after {
            q = q.filter(
                t::$time
                    .lt(c.time)
                    .or(t::$time.eq(c.time).and(t::id.lt(c.id.clone()))),
            );
        }
        // The slice: its index first, then the rest of its cube.
        match &sq.slice.drive {
            Drive::Place(p) => q = q.filter($place.eq(p.clone())),
            Drive::Owner | Drive::Receiving | Drive::Scan => {}
        }
        match sq.slice.own {
            Some(true) => q = q.filter(t::$owner.eq(me.user_id.clone())),
            Some(false) => q = q.filter(t::$owner.ne(me.user_id.clone())),
            None => {}
        }
        if let Some(orgs) = &sq.slice.orgs {
            let org_of: fn(_, String) -> Pred<t::table> = $orgs;
            let mut any: Option<Pred<t::table>> = None;
            for rel in orgs {
                let p = org_of(*rel, me.organization_id.clone());
                any = Some(match any {
                    None => p,
                    Some(a) => Box::new(a.or(p)),
                });
            }
            if let Some(any) = any {
                q = q.filter(any);
            }
        }
        if let Some(places) = &sq.slice.places {
            let mut any: Option<Pred<t::table>> = None;
            for rel in places {
                let mine = me.places.iter().map(String::as_str);
                let p: Pred<t::table> = match rel {
                    PlaceRelation::Assigned => Box::new(in_ids($place, mine)),
                    PlaceRelation::Elsewhere => Box::new(
                        diesel::dsl::not(in_ids($place, mine)).and(t::$place_column.is_not_null()),
                    ),
                    PlaceRelation::Unset => Box::new(t::$place_column.is_null()),
                };
                any = Some(match any {
                    None => p,
                    Some(a) => Box::new(a.or(p)),
                });
            }
            if let Some(any) = any {
                q = q.filter(any);
            }
        }
        if !sq.slice.contents.contains(&Content::Always) {
            let content_of: fn(&Content, i64) -> Option<Pred<t::table>> = $contents;
            let mut any: Option<Pred<t::table>> = None;
            for c in &sq.slice.contents {
                if let Some(p) = content_of(c, sq.now) {
                    any = Some(match any {
                        None => p,
                        Some(a) => Box::new(a.or(p)),
                    });
                }
            }
            // Nothing the kind can hold: no row.
            q =
                q.filter(any.unwrap_or_else(|| {
                    Box::new(diesel::dsl::sql::<diesel::sql_types::Bool>("1 = 0"))
                }));
        }
        let extra: fn(&$crate::records::visibility::SliceQuery<'_>) -> Option<Pred<t::table>> =
            $extra;
        if let Some(p) = extra(sq) {
            q = q.filter(p);
        }
        q.order((t::$time.desc(), t::id.desc()))
            .limit(sq.limit)
            .load::<$row>($conn)
            .map_err($crate::error::AppError::from)
    }};
}
pub(crate) use slice_rows;
