//! Rows as stored. Conversion to what a user may see happens in `records` and `api`.

use diesel::prelude::*;

use super::schema::*;

#[derive(Debug, Clone, Queryable, Selectable, Insertable, AsChangeset)]
#[diesel(table_name = organizations)]
pub struct Organization {
    pub id: String,
    pub name: String,
    pub kind: String,
    pub mandated_reporter: bool,
    pub created_at: i64,
    /// Whether its people may sign in with a local password (false: single sign-on only).
    pub password_login: bool,
}

#[derive(Debug, Clone, Queryable, Selectable, Insertable)]
#[diesel(table_name = places)]
pub struct Place {
    pub id: String,
    pub name: String,
    pub basomrade: String,
    pub created_at: i64,
}

#[derive(Debug, Clone, Queryable, Selectable, Insertable)]
#[diesel(table_name = users)]
pub struct User {
    pub id: String,
    pub username: String,
    pub display_name: String,
    pub organization_id: String,
    pub role: String,
    pub password_hash: String,
    pub disabled: bool,
    pub token_epoch: i64,
    pub pseudonym: String,
    pub created_at: i64,
    pub updated_at: i64,
}

#[derive(Debug, Clone, Queryable, Selectable, Insertable)]
#[diesel(table_name = user_places)]
pub struct UserPlace {
    pub user_id: String,
    pub place_id: String,
}

#[derive(Debug, Clone, Queryable, Selectable, Insertable)]
#[diesel(table_name = sessions)]
// None is NULL, never "the column default": one fixed statement, prepared once.
#[diesel(treat_none_as_default_value = false)]
pub struct Session {
    pub id: String,
    pub user_id: String,
    pub created_at: i64,
    pub expires_at: i64,
    pub revoked_at: Option<i64>,
}

#[derive(Debug, Clone, Queryable, Selectable, Insertable)]
#[diesel(table_name = refresh_tokens)]
// None is NULL, never "the column default": one fixed statement, prepared once.
#[diesel(treat_none_as_default_value = false)]
pub struct RefreshToken {
    pub token_hash: String,
    pub session_id: String,
    pub created_at: i64,
    pub expires_at: i64,
    pub used_at: Option<i64>,
}

#[derive(Debug, Clone, Queryable, Selectable, Insertable)]
#[diesel(table_name = login_failures)]
pub struct LoginFailure {
    pub id: String,
    pub throttle_key: String,
    pub failed_at: i64,
}

#[derive(Debug, Clone, Queryable, Selectable, Insertable)]
#[diesel(table_name = observations)]
// None is NULL, never "the column default": one fixed statement, prepared once.
#[diesel(treat_none_as_default_value = false)]
pub struct Observation {
    pub id: String,
    pub place_id: String,
    pub observed_at: i64,
    pub category: String,
    pub description: Option<String>,
    pub reporter_id: String,
    pub reporter_org_id: String,
    pub created_at: i64,
    pub legal_hold: bool,
}

#[derive(Debug, Clone, Queryable, Selectable, Insertable)]
#[diesel(table_name = observation_persons)]
// None is NULL, never "the column default": one fixed statement, prepared once.
#[diesel(treat_none_as_default_value = false)]
pub struct ObservationPerson {
    pub id: String,
    pub observation_id: String,
    pub position: i32,
    pub description: String,
    pub estimated_birth_year: Option<i32>,
    pub age_uncertain: bool,
}

#[derive(Debug, Clone, Queryable, Selectable, Insertable)]
#[diesel(table_name = situation_reports)]
// None is NULL, never "the column default": one fixed statement, prepared once.
#[diesel(treat_none_as_default_value = false)]
pub struct SituationReport {
    pub id: String,
    pub place_id: String,
    pub title: String,
    pub valid_from: i64,
    pub valid_until: Option<i64>,
    pub author_id: String,
    pub author_org_id: String,
    pub created_at: i64,
    pub legal_hold: bool,
}

#[derive(Debug, Clone, Queryable, Selectable, Insertable)]
#[diesel(table_name = report_sections)]
pub struct ReportSection {
    pub id: String,
    pub report_id: String,
    pub position: i32,
    pub audience: String,
    pub body: String,
}

#[derive(Debug, Clone, Queryable, Selectable, Insertable)]
#[diesel(table_name = referrals)]
// None is NULL, never "the column default": one fixed statement, prepared once.
#[diesel(treat_none_as_default_value = false)]
pub struct Referral {
    pub id: String,
    pub receiving_org_id: String,
    pub place_id: Option<String>,
    pub reporter_id: String,
    pub reporter_org_id: String,
    pub child_name: Option<String>,
    pub child_personal_identity_number: Option<String>,
    pub child_alias: Option<String>,
    pub child_estimated_birth_year: Option<i32>,
    pub child_age_uncertain: bool,
    pub child_description: Option<String>,
    pub concern: Option<String>,
    pub status: String,
    pub status_changed_at: i64,
    pub created_at: i64,
    pub legal_hold: bool,
}

#[derive(Debug, Clone, Queryable, Selectable, Insertable)]
#[diesel(table_name = referral_feedback)]
// None is NULL, never "the column default": one fixed statement, prepared once.
#[diesel(treat_none_as_default_value = false)]
pub struct ReferralFeedback {
    pub id: String,
    pub referral_id: String,
    pub status: String,
    pub note: Option<String>,
    pub author_id: String,
    pub created_at: i64,
}

#[derive(Debug, Clone, Queryable, Selectable, Insertable)]
#[diesel(table_name = referral_consents)]
// None is NULL, never "the column default": one fixed statement, prepared once.
#[diesel(treat_none_as_default_value = false)]
pub struct ReferralConsent {
    pub id: String,
    pub referral_id: String,
    pub given_by: String,
    pub scope: String,
    pub valid_until: i64,
    pub released_details: Option<String>,
    pub recorded_by: String,
    pub created_at: i64,
    /// `reporter` or `reporter_organization` (see `policy::ReleasedTo`).
    pub released_to: String,
    pub withdrawn_at: Option<i64>,
    pub withdrawn_by: Option<String>,
}

#[derive(Debug, Clone, Queryable, Selectable, Insertable)]
#[diesel(table_name = audit_log)]
// NULL, not DEFAULT, for a missing value: SQLite's multi-row insert has no DEFAULT.
#[diesel(treat_none_as_default_value = false)]
pub struct AuditRow {
    pub seq: i64,
    pub at: i64,
    pub actor_id: Option<String>,
    pub actor_username: Option<String>,
    pub actor_org_id: Option<String>,
    pub actor_role: Option<String>,
    pub action: String,
    pub record_kind: Option<String>,
    pub record_id: Option<String>,
    pub parts: String,
    pub outcome: String,
    pub request_id: Option<String>,
    pub purpose: Option<String>,
    pub client: Option<String>,
    pub prev_hash: String,
    pub hash: String,
    /// Administrative changes: the changed fields before and after, as JSON.
    pub changes: Option<String>,
    /// `web` for the pages; NULL for the API and the CLI.
    pub channel: Option<String>,
    /// The writer's chain (`audit_head.id`); 1 on SQLite and before issue 20.
    pub chain: i64,
    /// The hash of the policy set in force for the entry (`policy_versions.hash`).
    pub policy_hash: Option<String>,
}
