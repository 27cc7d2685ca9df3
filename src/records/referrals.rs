//! Referral — orosanmälan, a report of concern about a child, and what social services
//! return on it (återkoppling). Parts: `child_and_concern` (OSL 26:1), `feedback_status`
//! (the one of five statuses the reporter is told; SoL 14:1 b), `social_notes` (social
//! services' own notes, feedback history and consents: never outside the receiving
//! organisation) and `released_details` (what a consent releases, while it is valid;
//! OSL 12:2–3).

use std::collections::HashMap;

use diesel::prelude::*;
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

use super::{
    birth_year, format_time, next_batch, opt_text, parse_time, slug, text, Cursor, Decider,
    ListFilter, Shown, MAX_SCAN,
};
use crate::error::AppError;
use crate::policy::{Action, Resource};
use crate::storage::ids::in_ids;
use crate::storage::models::{Organization, Referral, ReferralConsent, ReferralFeedback, User};
use crate::storage::schema::{
    organizations, referral_consents, referral_feedback, referrals, users,
};
use crate::storage::{new_id, now_micros, DbConnection};

pub const STATUSES: &[&str] = &[
    "pending",
    "investigation_opened",
    "not_opened",
    "already_ongoing",
    "withheld",
];
pub const GIVEN_BY: &[&str] = &["guardian", "youth", "both"];

pub const PART_CHILD: &str = "child_and_concern";
pub const PART_STATUS: &str = "feedback_status";
pub const PART_NOTES: &str = "social_notes";
pub const PART_RELEASED: &str = "released_details";

/// The child, often without identity: an alias, a look, a guessed age.
#[derive(Debug, Clone, Default, Deserialize, Serialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct Child {
    #[serde(skip_serializing_if = "Option::is_none")]
    pub name: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub personal_identity_number: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub alias: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub estimated_birth_year: Option<i32>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub age_uncertain: Option<bool>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub description: Option<String>,
}

/// Body of `POST /api/v1/referrals`.
#[derive(Debug, Clone, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct NewReferral {
    /// Id (or exact name) of the receiving social-services organisation.
    pub receiving_organization: String,
    pub place: Option<String>,
    pub child: Child,
    pub concern: String,
}

#[derive(Debug, Clone)]
pub struct ValidReferral {
    pub receiving_organization: String,
    pub place: Option<String>,
    pub child: Child,
    pub concern: String,
}

fn personal_identity_number(v: &str) -> Result<String, AppError> {
    let digits: String = v.chars().filter(|c| c.is_ascii_digit()).collect();
    let shape_ok = v
        .chars()
        .all(|c| c.is_ascii_digit() || c == '-' || c == '+');
    if !shape_ok || !(digits.len() == 10 || digits.len() == 12) {
        return Err(AppError::bad_request(
            "invalid_personal_identity_number",
            "personal_identity_number must be 10 or 12 digits, e.g. 20100101-1234",
        ));
    }
    Ok(v.trim().to_owned())
}

impl NewReferral {
    pub fn validate(&self) -> Result<ValidReferral, AppError> {
        let c = &self.child;
        let year = birth_year("child.estimated_birth_year", c.estimated_birth_year)?;
        let pin = c
            .personal_identity_number
            .as_deref()
            .map(str::trim)
            .filter(|s| !s.is_empty())
            .map(personal_identity_number)
            .transpose()?;
        let child = Child {
            name: opt_text("child.name", &c.name, 200)?,
            alias: opt_text("child.alias", &c.alias, 200)?,
            description: opt_text("child.description", &c.description, 2000)?,
            estimated_birth_year: year,
            // Without a known identity or age: if in doubt, treat as a child.
            age_uncertain: Some(c.age_uncertain.unwrap_or(pin.is_none() && year.is_none())),
            personal_identity_number: pin,
        };
        if child.name.is_none()
            && child.personal_identity_number.is_none()
            && child.alias.is_none()
            && child.description.is_none()
        {
            return Err(AppError::bad_request(
                "child_unidentified",
                "child needs at least one of name, personal_identity_number, alias or description",
            ));
        }
        let receiving = self.receiving_organization.trim();
        if receiving.is_empty() || receiving.len() > 200 {
            return Err(AppError::bad_request(
                "invalid_receiving_organization",
                "receiving_organization must name a social-services organisation",
            ));
        }
        Ok(ValidReferral {
            receiving_organization: receiving.to_owned(),
            place: self
                .place
                .as_deref()
                .map(|p| slug("place", p))
                .transpose()?,
            child,
            concern: text("concern", &self.concern, 1, 10_000)?,
        })
    }
}

/// Body of `POST /api/v1/referrals/{id}/feedback`.
#[derive(Debug, Clone, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct NewFeedback {
    /// pending | investigation_opened | not_opened | already_ongoing | withheld
    pub status: String,
    /// Social services' own note: never shown outside the receiving organisation.
    pub note: Option<String>,
}

impl NewFeedback {
    pub fn validate(&self) -> Result<(String, Option<String>), AppError> {
        if !STATUSES.contains(&self.status.as_str()) {
            return Err(AppError::bad_request(
                "invalid_status",
                format!("status must be one of: {}", STATUSES.join(", ")),
            ));
        }
        Ok((self.status.clone(), opt_text("note", &self.note, 4000)?))
    }
}

/// Body of `POST /api/v1/referrals/{id}/consents` (samtycke).
#[derive(Debug, Clone, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct NewConsent {
    /// guardian | youth | both
    pub given_by: String,
    /// What the consent covers, e.g. "status and planned measures to the reporting officer".
    pub scope: String,
    /// RFC 3339; the details are released until then.
    pub valid_until: String,
    /// The details the reporter may read while the consent is valid.
    pub released_details: String,
}

#[derive(Debug, Clone)]
pub struct ValidConsent {
    pub given_by: String,
    pub scope: String,
    pub valid_until: i64,
    pub released_details: String,
}

impl NewConsent {
    pub fn validate(&self) -> Result<ValidConsent, AppError> {
        if !GIVEN_BY.contains(&self.given_by.as_str()) {
            return Err(AppError::bad_request(
                "invalid_given_by",
                format!("given_by must be one of: {}", GIVEN_BY.join(", ")),
            ));
        }
        let valid_until = parse_time("valid_until", &self.valid_until)?;
        if valid_until <= now_micros() {
            return Err(AppError::bad_request(
                "invalid_validity",
                "valid_until must lie in the future",
            ));
        }
        Ok(ValidConsent {
            given_by: self.given_by.clone(),
            scope: text("scope", &self.scope, 1, 500)?,
            valid_until,
            released_details: text("released_details", &self.released_details, 1, 4000)?,
        })
    }
}

#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct OrganizationRef {
    pub id: String,
    pub name: String,
}

#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct FeedbackStatusView {
    pub status: String,
    pub changed_at: String,
}

#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct ReleasedDetailView {
    pub given_by: String,
    pub scope: String,
    pub valid_until: String,
    pub details: String,
}

#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct FeedbackEntryView {
    pub status: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub note: Option<String>,
    pub author: String,
    pub created_at: String,
}

#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct ConsentView {
    pub id: String,
    pub given_by: String,
    pub scope: String,
    pub valid_until: String,
    pub released_details: String,
    pub recorded_by: String,
    pub created_at: String,
}

/// A referral as one user may see it.
#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct ReferralView {
    pub id: String,
    pub created_at: String,
    pub receiving_organization: OrganizationRef,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub place: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub child: Option<Child>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub concern: Option<String>,
    /// The filing organisation (not the person).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub reporter_organization: Option<String>,
    /// The feedback status (återkoppling).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub status: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub feedback: Option<FeedbackStatusView>,
    /// What valid consents release to the reporter.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub released_details: Option<Vec<ReleasedDetailView>>,
    /// Social services only: every feedback decision with its internal note.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub feedback_history: Option<Vec<FeedbackEntryView>>,
    /// Social services only: every consent recorded.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub consents: Option<Vec<ConsentView>>,
}

pub fn part(kind: &'static str, r: &Referral, consent_valid: bool) -> Resource {
    Resource::ReferralPart {
        kind,
        place: r.place_id.clone(),
        reporter_id: r.reporter_id.clone(),
        reporter_org_id: r.reporter_org_id.clone(),
        receiving_org_id: r.receiving_org_id.clone(),
        consent_valid,
    }
}

/// The resource a new referral is decided on.
pub fn create_resource(v: &ValidReferral, receiving_org_id: &str, d: &Decider) -> Resource {
    let p = d.principal();
    Resource::ReferralPart {
        kind: PART_CHILD,
        place: v.place.clone(),
        reporter_id: p.user_id.clone(),
        reporter_org_id: p.organization_id.clone(),
        receiving_org_id: receiving_org_id.to_owned(),
        consent_valid: false,
    }
}

/// Finds the receiving organisation by id or exact name; it must be social services.
pub fn receiving_org(conn: &mut DbConnection, key: &str) -> Result<Organization, AppError> {
    let org = organizations::table
        .filter(organizations::id.eq(key).or(organizations::name.eq(key)))
        .select(Organization::as_select())
        .first::<Organization>(conn)
        .optional()?;
    match org {
        Some(o) if o.kind == "social_services" => Ok(o),
        _ => Err(AppError::bad_request(
            "invalid_receiving_organization",
            "receiving_organization must be the id of a social-services organisation (see GET /api/v1/organizations)",
        )),
    }
}

pub fn insert(
    conn: &mut DbConnection,
    v: &ValidReferral,
    receiving: &Organization,
    reporter: &User,
) -> Result<String, AppError> {
    let now = now_micros();
    let r = Referral {
        id: new_id(),
        receiving_org_id: receiving.id.clone(),
        place_id: v.place.clone(),
        reporter_id: reporter.id.clone(),
        reporter_org_id: reporter.organization_id.clone(),
        child_name: v.child.name.clone(),
        child_personal_identity_number: v.child.personal_identity_number.clone(),
        child_alias: v.child.alias.clone(),
        child_estimated_birth_year: v.child.estimated_birth_year,
        child_age_uncertain: v.child.age_uncertain.unwrap_or(true),
        child_description: v.child.description.clone(),
        concern: Some(v.concern.clone()),
        status: "pending".into(),
        status_changed_at: now,
        created_at: now,
        legal_hold: false,
    };
    diesel::insert_into(referrals::table)
        .values(&r)
        .execute(conn)?;
    Ok(r.id)
}

pub fn insert_feedback(
    conn: &mut DbConnection,
    referral_id: &str,
    status: &str,
    note: Option<String>,
    author: &User,
) -> Result<(), AppError> {
    let now = now_micros();
    diesel::insert_into(referral_feedback::table)
        .values(ReferralFeedback {
            id: new_id(),
            referral_id: referral_id.to_owned(),
            status: status.to_owned(),
            note,
            author_id: author.id.clone(),
            created_at: now,
        })
        .execute(conn)?;
    diesel::update(referrals::table.filter(referrals::id.eq(referral_id)))
        .set((
            referrals::status.eq(status),
            referrals::status_changed_at.eq(now),
        ))
        .execute(conn)?;
    Ok(())
}

pub fn insert_consent(
    conn: &mut DbConnection,
    referral_id: &str,
    c: &ValidConsent,
    by: &User,
) -> Result<(), AppError> {
    diesel::insert_into(referral_consents::table)
        .values(ReferralConsent {
            id: new_id(),
            referral_id: referral_id.to_owned(),
            given_by: c.given_by.clone(),
            scope: c.scope.clone(),
            valid_until: c.valid_until,
            released_details: Some(c.released_details.clone()),
            recorded_by: by.id.clone(),
            created_at: now_micros(),
        })
        .execute(conn)?;
    Ok(())
}

pub fn load(conn: &mut DbConnection, id: &str) -> Result<Option<Referral>, AppError> {
    Ok(referrals::table
        .filter(referrals::id.eq(id))
        .select(Referral::as_select())
        .first::<Referral>(conn)
        .optional()?)
}

fn consents_of(
    conn: &mut DbConnection,
    ids: &[&str],
) -> Result<HashMap<String, Vec<ReferralConsent>>, AppError> {
    let mut map: HashMap<String, Vec<ReferralConsent>> = HashMap::new();
    if ids.is_empty() {
        return Ok(map);
    }
    for c in referral_consents::table
        .filter(in_ids(referral_consents::referral_id, ids.iter().copied()))
        .order(referral_consents::created_at.asc())
        .select(ReferralConsent::as_select())
        .load::<ReferralConsent>(conn)?
    {
        map.entry(c.referral_id.clone()).or_default().push(c);
    }
    Ok(map)
}

/// Parts allowed for one referral: the fixed parts, then each consent's release.
fn decide(
    d: &Decider,
    r: &Referral,
    consents: &[ReferralConsent],
    now: i64,
) -> (Vec<&'static str>, Vec<usize>) {
    let parts: Vec<&'static str> = [PART_CHILD, PART_STATUS, PART_NOTES]
        .into_iter()
        .filter(|k| d.allows(Action::Read, &part(k, r, false)))
        .collect();
    let released: Vec<usize> = consents
        .iter()
        .enumerate()
        .filter(|(_, c)| d.allows(Action::Read, &part(PART_RELEASED, r, c.valid_until > now)))
        .map(|(i, _)| i)
        .collect();
    (parts, released)
}

fn views(
    conn: &mut DbConnection,
    d: &Decider,
    rows: Vec<Referral>,
) -> Result<Vec<Shown<ReferralView>>, AppError> {
    let now = now_micros();
    let ids: Vec<&str> = rows.iter().map(|r| r.id.as_str()).collect();
    let consents = consents_of(conn, &ids)?;
    let decided: Vec<(&Referral, Vec<&'static str>, Vec<&ReferralConsent>)> = rows
        .iter()
        .map(|r| {
            let cs = consents.get(&r.id).map(Vec::as_slice).unwrap_or(&[]);
            let (parts, released) = decide(d, r, cs, now);
            (
                r,
                parts,
                released.into_iter().map(|i| &cs[i]).collect::<Vec<_>>(),
            )
        })
        .filter(|(_, p, rel)| !p.is_empty() || !rel.is_empty())
        .collect();
    if decided.is_empty() {
        return Ok(Vec::new());
    }
    let mut org_ids: Vec<&str> = decided
        .iter()
        .flat_map(|(r, _, _)| [r.receiving_org_id.as_str(), r.reporter_org_id.as_str()])
        .collect();
    org_ids.sort_unstable();
    org_ids.dedup();
    let orgs: HashMap<String, String> = organizations::table
        .filter(in_ids(organizations::id, org_ids.iter().copied()))
        .select((organizations::id, organizations::name))
        .load::<(String, String)>(conn)?
        .into_iter()
        .collect();
    let notes_ids: Vec<&str> = decided
        .iter()
        .filter(|(_, p, _)| p.contains(&PART_NOTES))
        .map(|(r, _, _)| r.id.as_str())
        .collect();
    let mut history: HashMap<String, Vec<FeedbackEntryView>> = HashMap::new();
    let mut usernames: HashMap<String, String> = HashMap::new();
    if !notes_ids.is_empty() {
        let rows = referral_feedback::table
            .inner_join(users::table)
            .filter(in_ids(
                referral_feedback::referral_id,
                notes_ids.iter().copied(),
            ))
            .order(referral_feedback::created_at.asc())
            .select((ReferralFeedback::as_select(), users::username))
            .load::<(ReferralFeedback, String)>(conn)?;
        for (f, author) in rows {
            history
                .entry(f.referral_id.clone())
                .or_default()
                .push(FeedbackEntryView {
                    status: f.status,
                    note: f.note,
                    author,
                    created_at: format_time(f.created_at),
                });
        }
        let recorders: Vec<&str> = notes_ids
            .iter()
            .flat_map(|id| {
                consents
                    .get(*id)
                    .into_iter()
                    .flatten()
                    .map(|c| c.recorded_by.as_str())
            })
            .collect();
        if !recorders.is_empty() {
            usernames = users::table
                .filter(in_ids(users::id, recorders.iter().copied()))
                .select((users::id, users::username))
                .load::<(String, String)>(conn)?
                .into_iter()
                .collect();
        }
    }
    Ok(decided
        .into_iter()
        .map(|(r, parts, released)| {
            let has = |k: &str| parts.contains(&k);
            let mut shown_parts = parts.clone();
            if !released.is_empty() {
                shown_parts.push(PART_RELEASED);
            }
            let view = ReferralView {
                id: r.id.clone(),
                created_at: format_time(r.created_at),
                receiving_organization: OrganizationRef {
                    id: r.receiving_org_id.clone(),
                    name: orgs.get(&r.receiving_org_id).cloned().unwrap_or_default(),
                },
                place: r.place_id.clone(),
                child: has(PART_CHILD).then(|| Child {
                    name: r.child_name.clone(),
                    personal_identity_number: r.child_personal_identity_number.clone(),
                    alias: r.child_alias.clone(),
                    estimated_birth_year: r.child_estimated_birth_year,
                    age_uncertain: Some(r.child_age_uncertain),
                    description: r.child_description.clone(),
                }),
                concern: if has(PART_CHILD) {
                    r.concern.clone()
                } else {
                    None
                },
                reporter_organization: if has(PART_CHILD) {
                    orgs.get(&r.reporter_org_id).cloned()
                } else {
                    None
                },
                status: has(PART_STATUS).then(|| r.status.clone()),
                feedback: has(PART_STATUS).then(|| FeedbackStatusView {
                    status: r.status.clone(),
                    changed_at: format_time(r.status_changed_at),
                }),
                released_details: (!released.is_empty()).then(|| {
                    released
                        .iter()
                        .map(|c| ReleasedDetailView {
                            given_by: c.given_by.clone(),
                            scope: c.scope.clone(),
                            valid_until: format_time(c.valid_until),
                            details: c.released_details.clone().unwrap_or_default(),
                        })
                        .collect()
                }),
                feedback_history: has(PART_NOTES)
                    .then(|| history.remove(&r.id).unwrap_or_default()),
                consents: has(PART_NOTES).then(|| {
                    consents
                        .get(&r.id)
                        .map(Vec::as_slice)
                        .unwrap_or(&[])
                        .iter()
                        .map(|c| ConsentView {
                            id: c.id.clone(),
                            given_by: c.given_by.clone(),
                            scope: c.scope.clone(),
                            valid_until: format_time(c.valid_until),
                            released_details: c.released_details.clone().unwrap_or_default(),
                            recorded_by: usernames.get(&c.recorded_by).cloned().unwrap_or_default(),
                            created_at: format_time(c.created_at),
                        })
                        .collect()
                }),
            };
            Shown {
                view,
                id: r.id.clone(),
                parts: shown_parts,
            }
        })
        .collect())
}

pub fn get(
    conn: &mut DbConnection,
    d: &Decider,
    id: &str,
) -> Result<Option<Shown<ReferralView>>, AppError> {
    Ok(match load(conn, id)? {
        Some(r) => views(conn, d, vec![r])?.pop(),
        None => None,
    })
}

/// Newest first by time filed.
pub fn list(
    conn: &mut DbConnection,
    d: &Decider,
    f: &ListFilter,
) -> Result<(Vec<Shown<ReferralView>>, Option<String>), AppError> {
    let mut out = Vec::new();
    let mut cursor = f.cursor.clone();
    let mut scanned = 0usize;
    let mut batch = 0;
    loop {
        batch = next_batch(f.limit, batch, scanned);
        let mut q = referrals::table.select(Referral::as_select()).into_boxed();
        if let Some(p) = &f.place {
            q = q.filter(referrals::place_id.eq(p.clone()));
        }
        if let Some(s) = f.since {
            q = q.filter(referrals::created_at.ge(s));
        }
        if let Some(u) = f.until {
            q = q.filter(referrals::created_at.lt(u));
        }
        if let Some(c) = &cursor {
            q = q.filter(
                referrals::created_at.lt(c.time).or(referrals::created_at
                    .eq(c.time)
                    .and(referrals::id.lt(c.id.clone()))),
            );
        }
        let rows: Vec<Referral> = q
            .order((referrals::created_at.desc(), referrals::id.desc()))
            .limit(batch)
            .load(conn)?;
        let exhausted = (rows.len() as i64) < batch;
        scanned += rows.len();
        let keys: Vec<Cursor> = rows
            .iter()
            .map(|r| Cursor {
                time: r.created_at,
                id: r.id.clone(),
            })
            .collect();
        let shown = views(conn, d, rows)?;
        let room = (f.limit as usize).saturating_sub(out.len());
        if shown.len() >= room {
            let taken: Vec<_> = shown.into_iter().take(room).collect();
            let last_id = taken.last().map(|s| s.id.clone());
            out.extend(taken);
            let next = last_id
                .and_then(|id| keys.iter().find(|k| k.id == id))
                .map(|c| f.seal.seal(c));
            return Ok((out, next));
        }
        out.extend(shown);
        if exhausted {
            return Ok((out, None));
        }
        let last = keys.last().cloned();
        if scanned >= MAX_SCAN {
            return Ok((out, last.map(|c| f.seal.seal(&c))));
        }
        cursor = last;
    }
}
