//! Observation — a guard's (or other field worker's) report from the scene. Parts:
//! `core` (place, time, category, reporter pseudonym), `narrative` (free text, which may
//! name people: the most restricted), `persons` (people described) and
//! `reporter_identity` (who the reporter really is; OSL 35:1, guards as witnesses).

use std::collections::HashMap;

use diesel::prelude::*;
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

use super::visibility::{slice_rows, RecordKind, SliceQuery};
use super::{Cursor, Decider};
use crate::error::AppError;
use crate::fields::{birth_year, format_time, parse_time, slug, text};
use crate::policy::scope::OrgRelation;
use crate::policy::{self, ObservationPart, Resource};
use crate::storage::aggregates;
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

#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct PersonView {
    pub description: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub estimated_birth_year: Option<i32>,
    pub age_uncertain: bool,
}

/// Who filed a record, for those allowed to know.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct ReporterView {
    pub username: String,
    pub display_name: String,
    pub organization: String,
    pub pseudonym: String,
}

/// An observation as one user may see it: parts not allowed are absent, not empty.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
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

/// Every part a new observation stores, as it will be stored: its core, the description
/// when there is one, the persons when there are any, and who filed it. Each must be
/// allowed.
pub fn create_resources(v: &ValidObservation, d: &Decider) -> Vec<Resource> {
    let p = d.principal();
    let mut kinds = vec![ObservationPart::Core];
    if v.description.is_some() {
        kinds.push(ObservationPart::Narrative);
    }
    if !v.persons.is_empty() {
        kinds.push(ObservationPart::Persons);
    }
    kinds.push(ObservationPart::ReporterIdentity);
    kinds
        .into_iter()
        .map(|kind| Resource::ObservationPart {
            kind,
            place: v.place.clone(),
            reporter_id: p.user_id.clone(),
            reporter_org_id: p.organization_id.clone(),
        })
        .collect()
}

pub fn place_exists(conn: &mut DbConnection, place: &str) -> Result<bool, AppError> {
    Ok(places::table
        .filter(places::id.eq(place))
        .count()
        .get_result::<i64>(conn)?
        > 0)
}

/// Stores a validated observation filed by `reporter` (of `org`); returns it as stored.
pub fn insert(
    conn: &mut DbConnection,
    v: &ValidObservation,
    reporter: &User,
    org: &Organization,
) -> Result<StoredObservation, AppError> {
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
    // Counted in the same transaction: the statistics never miss or double a record.
    aggregates::count_observation(conn, obs.observed_at, &obs.place_id, &obs.category)?;
    let mut persons = Vec::with_capacity(v.persons.len());
    for (i, (description, year, uncertain)) in v.persons.iter().enumerate() {
        let person = ObservationPerson {
            id: new_id(),
            observation_id: obs.id.clone(),
            position: i as i32,
            description: description.clone(),
            estimated_birth_year: *year,
            age_uncertain: *uncertain,
        };
        diesel::insert_into(observation_persons::table)
            .values(&person)
            .execute(conn)?;
        persons.push(person);
    }
    Ok(StoredObservation {
        row: obs,
        persons,
        reporter: Some((reporter.clone(), org.clone())),
    })
}

/// An observation with the persons it describes and who filed it.
pub struct StoredObservation {
    row: Observation,
    persons: Vec<ObservationPerson>,
    reporter: Option<(User, Organization)>,
}

impl StoredObservation {
    pub fn id(&self) -> &str {
        &self.row.id
    }
}

/// The observation kind in the visibility pipeline.
pub struct Observations;

impl RecordKind for Observations {
    const KIND: policy::RecordKind = policy::RecordKind::Observation;
    type Row = Observation;
    type Stored = StoredObservation;
    type Part = ObservationPart;
    type View = ObservationView;

    /// Newest first by the time observed.
    fn key(row: &Observation) -> Cursor {
        Cursor {
            time: row.observed_at,
            id: row.id.clone(),
        }
    }

    fn row(stored: &StoredObservation) -> &Observation {
        &stored.row
    }

    fn load(conn: &mut DbConnection, id: &str) -> Result<Option<Observation>, AppError> {
        Ok(observations::table
            .filter(observations::id.eq(id))
            .select(Observation::as_select())
            .first::<Observation>(conn)
            .optional()?)
    }

    fn load_slice(
        conn: &mut DbConnection,
        q: &SliceQuery<'_>,
    ) -> Result<Vec<Observation>, AppError> {
        slice_rows!(
            conn, q, observations, Observation,
            time: observed_at, owner: reporter_id, owner_org: reporter_org_id,
            place: observations::place_id, place_column: place_id,
            orgs: |rel: OrgRelation, org: String| -> Pred<observations::table> {
                if rel.filed_here() {
                    Box::new(observations::reporter_org_id.eq(org))
                } else {
                    Box::new(observations::reporter_org_id.ne(org))
                }
            },
            contents: |_, _| None,
            // `category`: one category only.
            extra: |sq| -> Option<Pred<observations::table>> {
                sq.filter
                    .category
                    .clone()
                    .map(|c| -> Pred<observations::table> { Box::new(observations::category.eq(c)) })
            },
        )
    }

    fn attach(
        conn: &mut DbConnection,
        rows: Vec<Observation>,
    ) -> Result<Vec<StoredObservation>, AppError> {
        let ids: Vec<&str> = rows.iter().map(|o| o.id.as_str()).collect();
        let mut persons = persons_of(conn, &ids)?;
        let mut reporter_ids: Vec<&str> = rows.iter().map(|o| o.reporter_id.as_str()).collect();
        reporter_ids.sort_unstable();
        reporter_ids.dedup();
        let reporters = reporters(conn, &reporter_ids)?;
        Ok(rows
            .into_iter()
            .map(|row| StoredObservation {
                persons: persons.remove(&row.id).unwrap_or_default(),
                reporter: reporters.get(&row.reporter_id).cloned(),
                row,
            })
            .collect())
    }

    fn parts(s: &StoredObservation, _now: i64) -> Vec<(ObservationPart, Resource)> {
        ObservationPart::ALL
            .iter()
            .map(|&kind| {
                (
                    kind,
                    Resource::ObservationPart {
                        kind,
                        place: s.row.place_id.clone(),
                        reporter_id: s.row.reporter_id.clone(),
                        reporter_org_id: s.row.reporter_org_id.clone(),
                    },
                )
            })
            .collect()
    }

    fn part_name(part: ObservationPart) -> &'static str {
        part.as_str()
    }

    fn view(s: &StoredObservation, parts: &[ObservationPart]) -> ObservationView {
        let has = |k: ObservationPart| parts.contains(&k);
        let o = &s.row;
        let core = has(ObservationPart::Core);
        ObservationView {
            id: o.id.clone(),
            place: o.place_id.clone(),
            created_at: format_time(o.created_at),
            observed_at: core.then(|| format_time(o.observed_at)),
            category: core.then(|| o.category.clone()),
            reporter_pseudonym: if core {
                s.reporter.as_ref().map(|(u, _)| u.pseudonym.clone())
            } else {
                None
            },
            description: has(ObservationPart::Narrative)
                .then(|| o.description.clone().unwrap_or_default()),
            persons: has(ObservationPart::Persons).then(|| {
                s.persons
                    .iter()
                    .map(|p| PersonView {
                        description: p.description.clone(),
                        estimated_birth_year: p.estimated_birth_year,
                        age_uncertain: p.age_uncertain,
                    })
                    .collect()
            }),
            reporter: if has(ObservationPart::ReporterIdentity) {
                s.reporter.as_ref().map(|(u, org)| ReporterView {
                    username: u.username.clone(),
                    display_name: u.display_name.clone(),
                    organization: org.name.clone(),
                    pseudonym: u.pseudonym.clone(),
                })
            } else {
                None
            },
        }
    }
}

fn reporters(
    conn: &mut DbConnection,
    ids: &[&str],
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
