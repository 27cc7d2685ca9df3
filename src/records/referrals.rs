//! Referral — orosanmälan, a report of concern about a child, and what social services
//! return on it (återkoppling). Parts: `child_and_concern` (OSL 26:1), `feedback_status`
//! (the one of five statuses the reporter is told; SoL 14:1 b), `social_notes` (social
//! services' own notes, feedback history and consents: never outside the receiving
//! organisation) and `released_details` (what a consent releases, while it is valid;
//! OSL 12:2–3).

use std::collections::HashMap;

use diesel::prelude::*;
use diesel::sql_types::{BigInt, Bool, Text};
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

use super::visibility::{slice_rows, RecordKind, SliceQuery};
use super::{Cursor, Decider};
use crate::error::AppError;
use crate::fields::{birth_year, format_time, opt_text, parse_time, slug, text};
use crate::policy::scope::{OrgRelation, Validity};
use crate::policy::{self, ConsentFacts, ReferralPart, ReleasedTo, Resource};
use crate::storage::aggregates;
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
    /// The details the recipients may read while the consent is valid.
    pub released_details: String,
    /// Who may read the released details: `reporter` (the person who filed; the
    /// default) or `reporter_organization`.
    #[serde(default)]
    pub released_to: Option<String>,
}

#[derive(Debug, Clone)]
pub struct ValidConsent {
    pub given_by: String,
    pub scope: String,
    pub valid_until: i64,
    pub released_details: String,
    pub released_to: ReleasedTo,
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
            released_to: match self.released_to.as_deref() {
                None => ReleasedTo::Reporter,
                Some(r) => ReleasedTo::parse(r).ok_or_else(|| {
                    AppError::bad_request(
                        "invalid_released_to",
                        format!("released_to must be one of: {}", ReleasedTo::listed()),
                    )
                })?,
            },
        })
    }
}

#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct OrganizationRef {
    pub id: String,
    pub name: String,
}

#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct FeedbackStatusView {
    pub status: String,
    pub changed_at: String,
}

#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct ReleasedDetailView {
    pub given_by: String,
    pub scope: String,
    pub valid_until: String,
    pub released_to: ReleasedTo,
    pub details: String,
}

#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct FeedbackEntryView {
    pub status: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub note: Option<String>,
    pub author: String,
    pub created_at: String,
}

#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct ConsentView {
    pub id: String,
    pub given_by: String,
    pub scope: String,
    pub valid_until: String,
    pub released_details: String,
    /// `reporter` or `reporter_organization`.
    pub released_to: String,
    pub recorded_by: String,
    pub created_at: String,
    /// When the consent was withdrawn (the details are hidden from then on).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub withdrawn_at: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub withdrawn_by: Option<String>,
}

/// A referral as one user may see it.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
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

/// A part of a referral as decided: one of the fixed parts, or the details released by
/// one consent (by its position among the referral's consents).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Part {
    Fixed(ReferralPart),
    Released(usize),
}

fn resource(r: &Referral, kind: ReferralPart, consent: Option<ConsentFacts>) -> Resource {
    Resource::ReferralPart {
        kind,
        place: r.place_id.clone(),
        reporter_id: r.reporter_id.clone(),
        reporter_org_id: r.reporter_org_id.clone(),
        receiving_org_id: r.receiving_org_id.clone(),
        consent,
    }
}

/// What the rules know of a consent: whether it is valid now (not expired, not
/// withdrawn) and to whom it releases. An unknown recipient releases to no one.
pub fn consent_facts(c: &ReferralConsent, now: i64) -> Option<ConsentFacts> {
    Some(ConsentFacts {
        valid: c.valid_until > now && c.withdrawn_at.is_none(),
        released_to: ReleasedTo::parse(&c.released_to)?,
    })
}

/// The resource a new referral is decided on: the part filing stores.
pub fn create_resource(v: &ValidReferral, receiving_org_id: &str, d: &Decider) -> Resource {
    let p = d.principal();
    Resource::ReferralPart {
        kind: ReferralPart::ChildAndConcern,
        place: v.place.clone(),
        reporter_id: p.user_id.clone(),
        reporter_org_id: p.organization_id.clone(),
        receiving_org_id: receiving_org_id.to_owned(),
        consent: None,
    }
}

/// What a feedback writes: the status, and with a note social services' notes.
pub fn feedback_resources(s: &StoredReferral, with_note: bool) -> Vec<Resource> {
    let mut out = vec![resource(&s.row, ReferralPart::FeedbackStatus, None)];
    if with_note {
        out.push(resource(&s.row, ReferralPart::SocialNotes, None));
    }
    out
}

/// What recording a consent writes: the details it releases, as it would release them,
/// and the record of it in social services' notes.
pub fn consent_resources(s: &StoredReferral, c: &ValidConsent) -> Vec<Resource> {
    vec![
        resource(
            &s.row,
            ReferralPart::ReleasedDetails,
            Some(ConsentFacts {
                valid: true,
                released_to: c.released_to,
            }),
        ),
        resource(&s.row, ReferralPart::SocialNotes, None),
    ]
}

/// What withdrawing consent `consent_id` changes: the details it releases; `None` when
/// the referral has no such consent.
pub fn withdraw_resources(s: &StoredReferral, consent_id: &str, now: i64) -> Option<Vec<Resource>> {
    let c = s.consents.iter().find(|c| c.id == consent_id)?;
    Some(vec![resource(
        &s.row,
        ReferralPart::ReleasedDetails,
        Some(consent_facts(c, now).unwrap_or(ConsentFacts {
            valid: false,
            released_to: ReleasedTo::Reporter,
        })),
    )])
}

/// Finds the receiving organisation by id or exact name; it must be social services.
pub fn receiving_org(conn: &mut DbConnection, key: &str) -> Result<Organization, AppError> {
    let org = organizations::table
        .filter(organizations::id.eq(key).or(organizations::name.eq(key)))
        .select(Organization::as_select())
        .first::<Organization>(conn)
        .optional()?;
    match org {
        Some(o) if o.kind == policy::OrganizationKind::SocialServices.as_str() => Ok(o),
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
    // Counted in the same transaction: the statistics never miss or double a referral.
    aggregates::count_referral(conn, r.created_at, &r.receiving_org_id)?;
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
    let (old_status, created_at, receiving) = referrals::table
        .filter(referrals::id.eq(referral_id))
        .select((
            referrals::status,
            referrals::created_at,
            referrals::receiving_org_id,
        ))
        .first::<(String, i64, String)>(conn)?;
    let first_decision = referral_feedback::table
        .filter(referral_feedback::referral_id.eq(referral_id))
        .filter(referral_feedback::status.ne("pending"))
        .select(diesel::dsl::min(referral_feedback::created_at))
        .first::<Option<i64>>(conn)?;
    aggregates::count_feedback(
        conn,
        created_at,
        &receiving,
        &old_status,
        status,
        first_decision,
        now,
    )?;
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

/// Records a consent; returns its id.
pub fn insert_consent(
    conn: &mut DbConnection,
    referral_id: &str,
    c: &ValidConsent,
    by: &User,
) -> Result<String, AppError> {
    let id = new_id();
    diesel::insert_into(referral_consents::table)
        .values(ReferralConsent {
            id: id.clone(),
            referral_id: referral_id.to_owned(),
            given_by: c.given_by.clone(),
            scope: c.scope.clone(),
            valid_until: c.valid_until,
            released_details: Some(c.released_details.clone()),
            recorded_by: by.id.clone(),
            created_at: now_micros(),
            released_to: c.released_to.as_str().to_owned(),
            withdrawn_at: None,
            withdrawn_by: None,
        })
        .execute(conn)?;
    Ok(id)
}

/// Marks a consent withdrawn (once: a second withdrawal changes nothing).
pub fn withdraw_consent(
    conn: &mut DbConnection,
    referral_id: &str,
    consent_id: &str,
    by: &User,
) -> Result<(), AppError> {
    diesel::update(
        referral_consents::table
            .filter(referral_consents::id.eq(consent_id))
            .filter(referral_consents::referral_id.eq(referral_id))
            .filter(referral_consents::withdrawn_at.is_null()),
    )
    .set((
        referral_consents::withdrawn_at.eq(now_micros()),
        referral_consents::withdrawn_by.eq(&by.id),
    ))
    .execute(conn)?;
    Ok(())
}

/// A referral with its consents, its feedback history and the names its view shows.
pub struct StoredReferral {
    row: Referral,
    consents: Vec<ReferralConsent>,
    history: Vec<FeedbackEntryView>,
    receiving_name: String,
    reporter_org_name: Option<String>,
    /// Usernames of those who recorded or withdrew a consent, by user id.
    usernames: HashMap<String, String>,
}

/// The orosanmälan kind in the visibility pipeline.
pub struct Referrals;

impl RecordKind for Referrals {
    const KIND: policy::RecordKind = policy::RecordKind::Referral;
    type Row = Referral;
    type Stored = StoredReferral;
    type Part = Part;
    type View = ReferralView;

    /// Newest first by the time filed.
    fn key(row: &Referral) -> Cursor {
        Cursor {
            time: row.created_at,
            id: row.id.clone(),
        }
    }

    fn row(stored: &StoredReferral) -> &Referral {
        &stored.row
    }

    fn load(conn: &mut DbConnection, id: &str) -> Result<Option<Referral>, AppError> {
        Ok(referrals::table
            .filter(referrals::id.eq(id))
            .select(Referral::as_select())
            .first::<Referral>(conn)
            .optional()?)
    }

    fn load_slice(conn: &mut DbConnection, q: &SliceQuery<'_>) -> Result<Vec<Referral>, AppError> {
        slice_rows!(
            conn, q, referrals, Referral,
            time: created_at, owner: reporter_id, owner_org: reporter_org_id,
            place: referrals::place_id.assume_not_null(), place_column: place_id,
            orgs: |rel: OrgRelation, org: String| -> Pred<referrals::table> {
                let filed: Pred<referrals::table> = if rel.filed_here() {
                    Box::new(referrals::reporter_org_id.eq(org.clone()))
                } else {
                    Box::new(referrals::reporter_org_id.ne(org.clone()))
                };
                let sent: Pred<referrals::table> = if rel.sent_here() {
                    Box::new(referrals::receiving_org_id.eq(org))
                } else {
                    Box::new(referrals::receiving_org_id.ne(org))
                };
                match rel {
                    OrgRelation::OtherToItself => Box::new(
                        filed.and(sent).and(referrals::reporter_org_id.eq(referrals::receiving_org_id)),
                    ),
                    OrgRelation::OtherToOther => Box::new(
                        filed.and(sent).and(referrals::reporter_org_id.ne(referrals::receiving_org_id)),
                    ),
                    _ => Box::new(filed.and(sent)),
                }
            },
            contents: |c: &Content, now: i64| -> Option<Pred<referrals::table>> {
                let Content::Consent(to, validity) = c else {
                    return None;
                };
                let exists = diesel::dsl::sql::<Bool>(
                    "EXISTS (SELECT 1 FROM referral_consents c \
                     WHERE c.referral_id = referrals.id AND c.released_to = ",
                )
                .bind::<Text, _>(to.as_str());
                Some(match validity {
                    Validity::Any => Box::new(exists.sql(")")),
                    Validity::Valid => Box::new(
                        exists
                            .sql(" AND c.withdrawn_at IS NULL AND c.valid_until > ")
                            .bind::<BigInt, _>(now)
                            .sql(")"),
                    ),
                })
            },
            extra: |_| None,
        )
    }

    fn attach(
        conn: &mut DbConnection,
        rows: Vec<Referral>,
    ) -> Result<Vec<StoredReferral>, AppError> {
        if rows.is_empty() {
            return Ok(Vec::new());
        }
        let ids: Vec<&str> = rows.iter().map(|r| r.id.as_str()).collect();
        let mut consents = consents_of(conn, &ids)?;
        let mut org_ids: Vec<&str> = rows
            .iter()
            .flat_map(|r| [r.receiving_org_id.as_str(), r.reporter_org_id.as_str()])
            .collect();
        org_ids.sort_unstable();
        org_ids.dedup();
        let orgs: HashMap<String, String> = organizations::table
            .filter(in_ids(organizations::id, org_ids.iter().copied()))
            .select((organizations::id, organizations::name))
            .load::<(String, String)>(conn)?
            .into_iter()
            .collect();
        let mut history: HashMap<String, Vec<FeedbackEntryView>> = HashMap::new();
        for (f, author) in referral_feedback::table
            .inner_join(users::table)
            .filter(in_ids(referral_feedback::referral_id, ids.iter().copied()))
            .order(referral_feedback::created_at.asc())
            .select((ReferralFeedback::as_select(), users::username))
            .load::<(ReferralFeedback, String)>(conn)?
        {
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
        let mut people: Vec<&str> = consents
            .values()
            .flatten()
            .flat_map(|c| [Some(c.recorded_by.as_str()), c.withdrawn_by.as_deref()])
            .flatten()
            .collect();
        people.sort_unstable();
        people.dedup();
        let usernames: HashMap<String, String> = if people.is_empty() {
            HashMap::new()
        } else {
            users::table
                .filter(in_ids(users::id, people.iter().copied()))
                .select((users::id, users::username))
                .load::<(String, String)>(conn)?
                .into_iter()
                .collect()
        };
        Ok(rows
            .into_iter()
            .map(|row| {
                let mine: Vec<ReferralConsent> = consents.remove(&row.id).unwrap_or_default();
                let names = mine
                    .iter()
                    .flat_map(|c| [Some(&c.recorded_by), c.withdrawn_by.as_ref()])
                    .flatten()
                    .filter_map(|id| usernames.get(id).map(|n| (id.clone(), n.clone())))
                    .collect();
                StoredReferral {
                    consents: mine,
                    history: history.remove(&row.id).unwrap_or_default(),
                    receiving_name: orgs.get(&row.receiving_org_id).cloned().unwrap_or_default(),
                    reporter_org_name: orgs.get(&row.reporter_org_id).cloned(),
                    usernames: names,
                    row,
                }
            })
            .collect())
    }

    /// The three fixed parts, then each consent's release.
    fn parts(s: &StoredReferral, now: i64) -> Vec<(Part, Resource)> {
        let mut out: Vec<(Part, Resource)> = [
            ReferralPart::ChildAndConcern,
            ReferralPart::FeedbackStatus,
            ReferralPart::SocialNotes,
        ]
        .into_iter()
        .map(|k| (Part::Fixed(k), resource(&s.row, k, None)))
        .collect();
        for (i, c) in s.consents.iter().enumerate() {
            if let Some(facts) = consent_facts(c, now) {
                out.push((
                    Part::Released(i),
                    resource(&s.row, ReferralPart::ReleasedDetails, Some(facts)),
                ));
            }
        }
        out
    }

    fn part_name(part: Part) -> &'static str {
        match part {
            Part::Fixed(k) => k.as_str(),
            Part::Released(_) => ReferralPart::ReleasedDetails.as_str(),
        }
    }

    fn view(s: &StoredReferral, parts: &[Part]) -> ReferralView {
        let r = &s.row;
        let has = |k: ReferralPart| parts.contains(&Part::Fixed(k));
        let child = has(ReferralPart::ChildAndConcern);
        let status = has(ReferralPart::FeedbackStatus);
        let notes = has(ReferralPart::SocialNotes);
        let released: Vec<&ReferralConsent> = parts
            .iter()
            .filter_map(|p| match p {
                Part::Released(i) => s.consents.get(*i),
                Part::Fixed(_) => None,
            })
            .collect();
        let username = |id: &str| s.usernames.get(id).cloned().unwrap_or_default();
        ReferralView {
            id: r.id.clone(),
            created_at: format_time(r.created_at),
            receiving_organization: OrganizationRef {
                id: r.receiving_org_id.clone(),
                name: s.receiving_name.clone(),
            },
            place: r.place_id.clone(),
            child: child.then(|| Child {
                name: r.child_name.clone(),
                personal_identity_number: r.child_personal_identity_number.clone(),
                alias: r.child_alias.clone(),
                estimated_birth_year: r.child_estimated_birth_year,
                age_uncertain: Some(r.child_age_uncertain),
                description: r.child_description.clone(),
            }),
            concern: if child { r.concern.clone() } else { None },
            reporter_organization: if child {
                s.reporter_org_name.clone()
            } else {
                None
            },
            status: status.then(|| r.status.clone()),
            feedback: status.then(|| FeedbackStatusView {
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
                        released_to: ReleasedTo::parse(&c.released_to)
                            .unwrap_or(ReleasedTo::Reporter),
                        details: c.released_details.clone().unwrap_or_default(),
                    })
                    .collect()
            }),
            feedback_history: notes.then(|| s.history.clone()),
            consents: notes.then(|| {
                s.consents
                    .iter()
                    .map(|c| ConsentView {
                        id: c.id.clone(),
                        given_by: c.given_by.clone(),
                        scope: c.scope.clone(),
                        valid_until: format_time(c.valid_until),
                        released_details: c.released_details.clone().unwrap_or_default(),
                        released_to: c.released_to.clone(),
                        recorded_by: username(&c.recorded_by),
                        created_at: format_time(c.created_at),
                        withdrawn_at: c.withdrawn_at.map(format_time),
                        withdrawn_by: c.withdrawn_by.as_deref().map(username),
                    })
                    .collect()
            }),
        }
    }
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
        .order((
            referral_consents::created_at.asc(),
            referral_consents::id.asc(),
        ))
        .select(ReferralConsent::as_select())
        .load::<ReferralConsent>(conn)?
    {
        map.entry(c.referral_id.clone()).or_default().push(c);
    }
    Ok(map)
}
