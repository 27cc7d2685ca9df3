//! Observation — a guard's (or other field worker's) report from the scene. Parts:
//! `core` (place, time, category, reporter pseudonym), `narrative` (free text, which may
//! name people: the most restricted), `persons` (people described) and
//! `reporter_identity` (who the reporter really is; OSL 35:1, guards as witnesses).

use std::collections::{HashMap, HashSet};

use diesel::prelude::*;
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

use super::{
    birth_year, format_time, next_batch, parse_time, slug, text, Cursor, Decider, ListFilter,
    Shown, MAX_SCAN,
};
use crate::error::AppError;
use crate::policy::{Action, Resource};
use crate::storage::ids::in_ids;
use crate::storage::models::{Observation, ObservationPerson, Organization, User};
use crate::storage::schema::{observation_persons, observations, organizations, places, users};
use crate::storage::{new_id, now_micros, DbConnection};

pub const CATEGORIES: &[&str] = &[
    "drug_sale",
    "drug_use",
    "violence",
    "threat",
    "disorder",
    "weapon_found",
    "intoxication",
    "other",
];
const MAX_PERSONS: usize = 20;

pub const PART_CORE: &str = "core";
pub const PART_NARRATIVE: &str = "narrative";
pub const PART_PERSONS: &str = "persons";
pub const PART_REPORTER: &str = "reporter_identity";

/// A person described in an observation (often without identity: alias, looks, age).
#[derive(Debug, Clone, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct NewPerson {
    pub description: String,
    pub estimated_birth_year: Option<i32>,
    /// Age is a guess; if in doubt, the person is treated as a child.
    pub age_uncertain: Option<bool>,
}

/// Body of `POST /api/v1/observations`.
#[derive(Debug, Clone, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct NewObservation {
    /// Place slug, e.g. `sergels-torg`.
    pub place: String,
    /// When it happened (RFC 3339).
    pub observed_at: String,
    /// One of drug_sale, drug_use, violence, threat, disorder, weapon_found, intoxication, other.
    pub category: String,
    /// What was seen, in free text.
    #[serde(default)]
    pub description: Option<String>,
    #[serde(default)]
    pub persons: Vec<NewPerson>,
}

/// A validated observation, ready to store.
#[derive(Debug, Clone)]
pub struct ValidObservation {
    pub place: String,
    pub observed_at: i64,
    pub category: String,
    pub description: Option<String>,
    pub persons: Vec<(String, Option<i32>, bool)>,
}

impl NewObservation {
    pub fn validate(&self) -> Result<ValidObservation, AppError> {
        let observed_at = parse_time("observed_at", &self.observed_at)?;
        // A few minutes of clock skew on a phone is normal; the future is not.
        if observed_at > now_micros() + 5 * 60 * 1_000_000 {
            return Err(AppError::bad_request(
                "invalid_timestamp",
                "observed_at lies in the future",
            ));
        }
        if !CATEGORIES.contains(&self.category.as_str()) {
            return Err(AppError::bad_request(
                "invalid_category",
                format!("category must be one of: {}", CATEGORIES.join(", ")),
            ));
        }
        if self.persons.len() > MAX_PERSONS {
            return Err(AppError::bad_request(
                "too_many_persons",
                format!("at most {MAX_PERSONS} persons per observation"),
            ));
        }
        let persons = self
            .persons
            .iter()
            .map(|p| {
                let year = birth_year("persons.estimated_birth_year", p.estimated_birth_year)?;
                Ok((
                    text("persons.description", &p.description, 1, 1000)?,
                    year,
                    // No known age means uncertain: if in doubt, treat as a child.
                    p.age_uncertain.unwrap_or(year.is_none()),
                ))
            })
            .collect::<Result<Vec<_>, AppError>>()?;
        let description = match &self.description {
            Some(d) => Some(text("description", d, 0, 4000)?).filter(|d| !d.is_empty()),
            None => None,
        };
        Ok(ValidObservation {
            place: slug("place", &self.place)?,
            observed_at,
            category: self.category.clone(),
            description,
            persons,
        })
    }
}

#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct PersonView {
    pub description: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub estimated_birth_year: Option<i32>,
    pub age_uncertain: bool,
}

/// Who filed a record, for those allowed to know.
#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct ReporterView {
    pub username: String,
    pub display_name: String,
    pub organization: String,
    pub pseudonym: String,
}

/// An observation as one user may see it: parts not allowed are absent, not empty.
#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct ObservationView {
    pub id: String,
    pub place: String,
    pub created_at: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub observed_at: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub category: Option<String>,
    /// Stable per reporter, e.g. `OV-7F3A`; never the name.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub reporter_pseudonym: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub description: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub persons: Option<Vec<PersonView>>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub reporter: Option<ReporterView>,
}

fn part(kind: &'static str, o: &Observation) -> Resource {
    Resource::ObservationPart {
        kind,
        place: o.place_id.clone(),
        reporter_id: o.reporter_id.clone(),
        reporter_org_id: o.reporter_org_id.clone(),
    }
}

/// Which parts of `o` the user may read.
fn allowed_parts(d: &Decider, o: &Observation) -> Vec<&'static str> {
    [PART_CORE, PART_NARRATIVE, PART_PERSONS, PART_REPORTER]
        .into_iter()
        .filter(|k| d.allows(Action::Read, &part(k, o)))
        .collect()
}

/// The parts decided once per distinct (place, reporter, reporter's organisation) in a
/// page: those are all a part's decision depends on, and a page has few of them.
#[derive(Default)]
struct PartsMemo(Vec<(String, String, String, Vec<&'static str>)>);

impl PartsMemo {
    fn allowed(&mut self, d: &Decider, o: &Observation) -> Vec<&'static str> {
        let hit = self.0.iter().find(|(place, reporter, org, _)| {
            *place == o.place_id && *reporter == o.reporter_id && *org == o.reporter_org_id
        });
        if let Some((_, _, _, parts)) = hit {
            return parts.clone();
        }
        let parts = allowed_parts(d, o);
        self.0.push((
            o.place_id.clone(),
            o.reporter_id.clone(),
            o.reporter_org_id.clone(),
            parts.clone(),
        ));
        parts
    }
}

/// The resource a create is decided on: the core part as it would be stored.
pub fn create_resource(v: &ValidObservation, d: &Decider) -> Resource {
    let p = d.principal();
    Resource::ObservationPart {
        kind: PART_CORE,
        place: v.place.clone(),
        reporter_id: p.user_id.clone(),
        reporter_org_id: p.organization_id.clone(),
    }
}

fn assemble(
    o: &Observation,
    parts: Vec<&'static str>,
    persons: &[ObservationPerson],
    reporter: Option<&(User, Organization)>,
) -> Shown<ObservationView> {
    let has = |k: &str| parts.contains(&k);
    let core = has(PART_CORE);
    let view = ObservationView {
        id: o.id.clone(),
        place: o.place_id.clone(),
        created_at: format_time(o.created_at),
        observed_at: core.then(|| format_time(o.observed_at)),
        category: core.then(|| o.category.clone()),
        reporter_pseudonym: if core {
            reporter.map(|(u, _)| u.pseudonym.clone())
        } else {
            None
        },
        description: if has(PART_NARRATIVE) {
            Some(o.description.clone().unwrap_or_default())
        } else {
            None
        },
        persons: has(PART_PERSONS).then(|| {
            persons
                .iter()
                .map(|p| PersonView {
                    description: p.description.clone(),
                    estimated_birth_year: p.estimated_birth_year,
                    age_uncertain: p.age_uncertain,
                })
                .collect()
        }),
        reporter: if has(PART_REPORTER) {
            reporter.map(|(u, org)| ReporterView {
                username: u.username.clone(),
                display_name: u.display_name.clone(),
                organization: org.name.clone(),
                pseudonym: u.pseudonym.clone(),
            })
        } else {
            None
        },
    };
    Shown {
        view,
        id: o.id.clone(),
        parts,
    }
}

pub fn place_exists(conn: &mut DbConnection, place: &str) -> Result<bool, AppError> {
    Ok(places::table
        .filter(places::id.eq(place))
        .count()
        .get_result::<i64>(conn)?
        > 0)
}

/// Stores a validated observation filed by `reporter`.
pub fn insert(
    conn: &mut DbConnection,
    v: &ValidObservation,
    reporter: &User,
) -> Result<String, AppError> {
    let now = now_micros();
    let obs = Observation {
        id: new_id(),
        place_id: v.place.clone(),
        observed_at: v.observed_at,
        category: v.category.clone(),
        description: v.description.clone(),
        reporter_id: reporter.id.clone(),
        reporter_org_id: reporter.organization_id.clone(),
        created_at: now,
        legal_hold: false,
    };
    diesel::insert_into(observations::table)
        .values(&obs)
        .execute(conn)?;
    for (i, (description, year, uncertain)) in v.persons.iter().enumerate() {
        diesel::insert_into(observation_persons::table)
            .values(ObservationPerson {
                id: new_id(),
                observation_id: obs.id.clone(),
                position: i as i32,
                description: description.clone(),
                estimated_birth_year: *year,
                age_uncertain: *uncertain,
            })
            .execute(conn)?;
    }
    Ok(obs.id)
}

fn reporters(
    conn: &mut DbConnection,
    ids: &HashSet<&str>,
) -> Result<HashMap<String, (User, Organization)>, AppError> {
    if ids.is_empty() {
        return Ok(HashMap::new());
    }
    let rows = users::table
        .inner_join(organizations::table)
        .filter(in_ids(users::id, ids.iter().copied()))
        .select((User::as_select(), Organization::as_select()))
        .load::<(User, Organization)>(conn)?;
    Ok(rows
        .into_iter()
        .map(|(u, o)| (u.id.clone(), (u, o)))
        .collect())
}

fn persons_of(
    conn: &mut DbConnection,
    ids: &[&str],
) -> Result<HashMap<String, Vec<ObservationPerson>>, AppError> {
    let mut map: HashMap<String, Vec<ObservationPerson>> = HashMap::new();
    if ids.is_empty() {
        return Ok(map);
    }
    let rows = observation_persons::table
        .filter(in_ids(
            observation_persons::observation_id,
            ids.iter().copied(),
        ))
        .order((
            observation_persons::observation_id,
            observation_persons::position,
        ))
        .select(ObservationPerson::as_select())
        .load::<ObservationPerson>(conn)?;
    for p in rows {
        map.entry(p.observation_id.clone()).or_default().push(p);
    }
    Ok(map)
}

/// Views for the given rows with their decided parts, leaving out those with none.
fn views(
    conn: &mut DbConnection,
    decided: Vec<(Observation, Vec<&'static str>)>,
) -> Result<Vec<Shown<ObservationView>>, AppError> {
    let decided: Vec<(Observation, Vec<&'static str>)> = decided
        .into_iter()
        .filter(|(_, parts)| !parts.is_empty())
        .collect();
    let need_persons: Vec<&str> = decided
        .iter()
        .filter(|(_, p)| p.contains(&PART_PERSONS))
        .map(|(o, _)| o.id.as_str())
        .collect();
    let persons = persons_of(conn, &need_persons)?;
    let reporter_ids: HashSet<&str> = decided
        .iter()
        .map(|(o, _)| o.reporter_id.as_str())
        .collect();
    let reporters = reporters(conn, &reporter_ids)?;
    Ok(decided
        .iter()
        .map(|(o, parts)| {
            let ps = persons.get(&o.id).map(Vec::as_slice).unwrap_or(&[]);
            assemble(o, parts.clone(), ps, reporters.get(&o.reporter_id))
        })
        .collect())
}

/// One observation as the user may see it; `None` when nothing of it is visible.
pub fn get(
    conn: &mut DbConnection,
    d: &Decider,
    id: &str,
) -> Result<Option<Shown<ObservationView>>, AppError> {
    let row = observations::table
        .filter(observations::id.eq(id))
        .select(Observation::as_select())
        .first::<Observation>(conn)
        .optional()?;
    Ok(match row {
        Some(o) => {
            let parts = allowed_parts(d, &o);
            views(conn, vec![(o, parts)])?.pop()
        }
        None => None,
    })
}

/// Newest first by time observed; only rows with a visible part count toward the page.
pub fn list(
    conn: &mut DbConnection,
    d: &Decider,
    f: &ListFilter,
) -> Result<(Vec<Shown<ObservationView>>, Option<String>), AppError> {
    let mut out = Vec::new();
    let mut cursor = f.cursor.clone();
    let mut scanned = 0usize;
    let mut batch = 0;
    let mut memo = PartsMemo::default();
    loop {
        batch = next_batch(f.limit, batch, scanned);
        let mut q = observations::table
            .select(Observation::as_select())
            .into_boxed();
        if let Some(p) = &f.place {
            q = q.filter(observations::place_id.eq(p.clone()));
        }
        if let Some(s) = f.since {
            q = q.filter(observations::observed_at.ge(s));
        }
        if let Some(u) = f.until {
            q = q.filter(observations::observed_at.lt(u));
        }
        if let Some(c) = &cursor {
            q = q.filter(
                observations::observed_at
                    .lt(c.time)
                    .or(observations::observed_at
                        .eq(c.time)
                        .and(observations::id.lt(c.id.clone()))),
            );
        }
        let rows: Vec<Observation> = q
            .order((observations::observed_at.desc(), observations::id.desc()))
            .limit(batch)
            .load(conn)?;
        let exhausted = (rows.len() as i64) < batch;
        scanned += rows.len();
        let mut last_key = None;
        let mut page_full = false;
        let mut picked = Vec::new();
        for o in rows {
            last_key = Some(Cursor {
                time: o.observed_at,
                id: o.id.clone(),
            });
            let parts = memo.allowed(d, &o);
            if !parts.is_empty() {
                picked.push((o, parts));
                if (out.len() + picked.len()) as i64 == f.limit {
                    page_full = true;
                    break;
                }
            }
        }
        out.extend(views(conn, picked)?);
        if page_full {
            return Ok((out, last_key.map(|c| f.seal.seal(&c))));
        }
        if exhausted {
            return Ok((out, None));
        }
        if scanned >= MAX_SCAN {
            return Ok((out, last_key.map(|c| f.seal.seal(&c))));
        }
        cursor = last_key;
    }
}
