//! Administration of organisations, places and users, shared by the admin API and the
//! `samverkan admin` commands. Admins manage accounts; they never read case content.

use diesel::prelude::*;
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

use crate::error::AppError;
use crate::records::{slug, text};
use crate::storage::models::{Organization, Place, User, UserPlace};
use crate::storage::schema::{organizations, places, user_places, users};
use crate::storage::{new_id, now_micros, DbConnection};

pub const ROLES: &[&str] = &[
    "police_officer",
    "police_analyst",
    "guard",
    "social_worker",
    "outreach_worker",
    "coordinator",
    "auditor",
    "admin",
];
pub const ORG_KINDS: &[&str] = &[
    "police",
    "security",
    "social_services",
    "outreach",
    "municipality",
];
const MAX_PLACES_PER_USER: usize = 100;

#[derive(Debug, Clone, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct NewOrganization {
    /// Slug id; made from the name when left out.
    pub id: Option<String>,
    pub name: String,
    /// police | security | social_services | outreach | municipality
    pub kind: String,
    /// Whether its staff are mandated reporters (entitled to feedback on referrals).
    pub mandated_reporter: bool,
}

#[derive(Debug, Clone, Default, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct OrganizationPatch {
    pub name: Option<String>,
    pub mandated_reporter: Option<bool>,
}

#[derive(Debug, Clone, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct NewPlace {
    /// Slug id, e.g. `sergels-torg`.
    pub id: String,
    pub name: String,
    /// Statistical area code, e.g. `101025`.
    pub basomrade: String,
}

#[derive(Debug, Clone, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct NewUser {
    pub username: String,
    pub display_name: String,
    /// Organisation id.
    pub organization: String,
    pub role: String,
    #[serde(default)]
    pub places: Vec<String>,
    pub password: String,
}

#[derive(Debug, Clone, Default, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct UserPatch {
    pub display_name: Option<String>,
    pub role: Option<String>,
    pub organization: Option<String>,
    pub places: Option<Vec<String>>,
    /// Disabling ends the user's sessions at once.
    pub disabled: Option<bool>,
    /// A new password ends the user's sessions at once.
    pub password: Option<String>,
}

/// An account as admins see it (never a password hash).
#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct UserView {
    pub id: String,
    pub username: String,
    pub display_name: String,
    pub organization: String,
    pub role: String,
    pub places: Vec<String>,
    pub disabled: bool,
    pub pseudonym: String,
}

pub fn username(value: &str) -> Result<String, AppError> {
    let v = value.trim();
    if v.len() < 2
        || v.len() > 64
        || !v
            .chars()
            .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || matches!(c, '.' | '_' | '-'))
    {
        return Err(AppError::bad_request(
            "invalid_username",
            "username must be 2–64 characters of a–z, 0–9, '.', '_' and '-'",
        ));
    }
    Ok(v.to_owned())
}

fn role(value: &str) -> Result<String, AppError> {
    if ROLES.contains(&value) {
        Ok(value.to_owned())
    } else {
        Err(AppError::bad_request(
            "invalid_role",
            format!("role must be one of: {}", ROLES.join(", ")),
        ))
    }
}

fn slugify(name: &str) -> String {
    let mut out = String::new();
    for c in name.to_lowercase().chars() {
        let c = match c {
            'å' | 'ä' | 'á' | 'à' => 'a',
            'ö' | 'ó' => 'o',
            'é' | 'è' => 'e',
            c if c.is_ascii_alphanumeric() => c,
            _ => '-',
        };
        if !(c == '-' && (out.is_empty() || out.ends_with('-'))) {
            out.push(c);
        }
    }
    out.trim_end_matches('-').chars().take(64).collect()
}

fn pseudonym_prefix(org_kind: &str) -> &'static str {
    match org_kind {
        "security" => "OV",
        "police" => "PO",
        "social_services" => "SO",
        "outreach" => "FA",
        _ => "KO",
    }
}

fn conflict_on_unique(e: AppError, what: &str) -> AppError {
    match e {
        AppError::Internal(m)
            if m.contains("UNIQUE") || m.contains("unique") || m.contains("duplicate") =>
        {
            AppError::Conflict(format!("{what} already exists"))
        }
        other => other,
    }
}

pub fn load_org(conn: &mut DbConnection, id: &str) -> Result<Organization, AppError> {
    organizations::table
        .filter(organizations::id.eq(id))
        .select(Organization::as_select())
        .first(conn)
        .optional()?
        .ok_or_else(|| {
            AppError::bad_request(
                "unknown_organization",
                format!("no organisation with id {id:?}"),
            )
        })
}

pub fn create_organization(
    conn: &mut DbConnection,
    v: &NewOrganization,
) -> Result<Organization, AppError> {
    let name = text("name", &v.name, 1, 200)?;
    if !ORG_KINDS.contains(&v.kind.as_str()) {
        return Err(AppError::bad_request(
            "invalid_kind",
            format!("kind must be one of: {}", ORG_KINDS.join(", ")),
        ));
    }
    let id = match &v.id {
        Some(id) => slug("id", id)?,
        None => slug("id", &slugify(&name))?,
    };
    let org = Organization {
        id,
        name,
        kind: v.kind.clone(),
        mandated_reporter: v.mandated_reporter,
        created_at: now_micros(),
    };
    diesel::insert_into(organizations::table)
        .values(&org)
        .execute(conn)
        .map_err(|e| conflict_on_unique(e.into(), "an organisation with that id or name"))?;
    Ok(org)
}

pub fn update_organization(
    conn: &mut DbConnection,
    id: &str,
    p: &OrganizationPatch,
) -> Result<Organization, AppError> {
    let mut org = organizations::table
        .filter(organizations::id.eq(id))
        .select(Organization::as_select())
        .first(conn)
        .optional()?
        .ok_or(AppError::NotFound)?;
    if let Some(n) = &p.name {
        org.name = text("name", n, 1, 200)?;
    }
    if let Some(m) = p.mandated_reporter {
        org.mandated_reporter = m;
    }
    diesel::update(organizations::table.filter(organizations::id.eq(id)))
        .set((
            organizations::name.eq(&org.name),
            organizations::mandated_reporter.eq(org.mandated_reporter),
        ))
        .execute(conn)
        .map_err(|e| conflict_on_unique(e.into(), "an organisation with that name"))?;
    Ok(org)
}

pub fn create_place(conn: &mut DbConnection, v: &NewPlace) -> Result<Place, AppError> {
    let basomrade = text("basomrade", &v.basomrade, 1, 20)?;
    let place = Place {
        id: slug("id", &v.id)?,
        name: text("name", &v.name, 1, 200)?,
        basomrade,
        created_at: now_micros(),
    };
    diesel::insert_into(places::table)
        .values(&place)
        .execute(conn)
        .map_err(|e| conflict_on_unique(e.into(), "a place with that id"))?;
    Ok(place)
}

fn check_places(conn: &mut DbConnection, wanted: &[String]) -> Result<Vec<String>, AppError> {
    if wanted.len() > MAX_PLACES_PER_USER {
        return Err(AppError::bad_request(
            "too_many_places",
            format!("at most {MAX_PLACES_PER_USER} places"),
        ));
    }
    let mut ids: Vec<String> = wanted
        .iter()
        .map(|p| slug("places", p))
        .collect::<Result<_, _>>()?;
    ids.sort();
    ids.dedup();
    let known: Vec<String> = places::table
        .filter(places::id.eq_any(&ids))
        .select(places::id)
        .load(conn)?;
    if let Some(missing) = ids.iter().find(|p| !known.contains(p)) {
        return Err(AppError::bad_request(
            "unknown_place",
            format!("no place with id {missing:?}"),
        ));
    }
    Ok(ids)
}

fn set_places(conn: &mut DbConnection, user_id: &str, ids: &[String]) -> Result<(), AppError> {
    diesel::delete(user_places::table.filter(user_places::user_id.eq(user_id))).execute(conn)?;
    for p in ids {
        diesel::insert_into(user_places::table)
            .values(UserPlace {
                user_id: user_id.to_owned(),
                place_id: p.clone(),
            })
            .execute(conn)?;
    }
    Ok(())
}

/// Creates a user with an already computed password hash.
pub fn create_user(
    conn: &mut DbConnection,
    v: &NewUser,
    password_hash: String,
) -> Result<User, AppError> {
    let uname = username(&v.username)?;
    let org = load_org(conn, &v.organization)?;
    let places = check_places(conn, &v.places)?;
    let now = now_micros();
    // A stable pseudonym per user, e.g. OV-7F3A, for other organisations to see.
    let mut pseudonym = String::new();
    for _ in 0..64 {
        let candidate = format!(
            "{}-{:04X}",
            pseudonym_prefix(&org.kind),
            rand::random::<u16>()
        );
        let taken: i64 = users::table
            .filter(users::pseudonym.eq(&candidate))
            .count()
            .get_result(conn)?;
        if taken == 0 {
            pseudonym = candidate;
            break;
        }
    }
    if pseudonym.is_empty() {
        return Err(AppError::internal("no free pseudonym"));
    }
    let user = User {
        id: new_id(),
        username: uname,
        display_name: text("display_name", &v.display_name, 1, 200)?,
        organization_id: org.id,
        role: role(&v.role)?,
        password_hash,
        disabled: false,
        token_epoch: 0,
        pseudonym,
        created_at: now,
        updated_at: now,
    };
    diesel::insert_into(users::table)
        .values(&user)
        .execute(conn)
        .map_err(|e| conflict_on_unique(e.into(), "a user with that username"))?;
    set_places(conn, &user.id, &places)?;
    Ok(user)
}

pub fn find_user(conn: &mut DbConnection, uname: &str) -> Result<Option<User>, AppError> {
    Ok(users::table
        .filter(users::username.eq(uname))
        .select(User::as_select())
        .first(conn)
        .optional()?)
}

/// Applies a patch; returns whether the user's sessions must end (disabled or new password).
pub fn update_user(
    conn: &mut DbConnection,
    user: &User,
    p: &UserPatch,
    new_hash: Option<String>,
) -> Result<bool, AppError> {
    let now = now_micros();
    if let Some(n) = &p.display_name {
        let n = text("display_name", n, 1, 200)?;
        diesel::update(users::table.filter(users::id.eq(&user.id)))
            .set(users::display_name.eq(n))
            .execute(conn)?;
    }
    if let Some(r) = &p.role {
        let r = role(r)?;
        diesel::update(users::table.filter(users::id.eq(&user.id)))
            .set(users::role.eq(r))
            .execute(conn)?;
    }
    if let Some(o) = &p.organization {
        let org = load_org(conn, o)?;
        diesel::update(users::table.filter(users::id.eq(&user.id)))
            .set(users::organization_id.eq(org.id))
            .execute(conn)?;
    }
    if let Some(ps) = &p.places {
        let ids = check_places(conn, ps)?;
        set_places(conn, &user.id, &ids)?;
    }
    if let Some(d) = p.disabled {
        diesel::update(users::table.filter(users::id.eq(&user.id)))
            .set(users::disabled.eq(d))
            .execute(conn)?;
    }
    if let Some(h) = new_hash {
        diesel::update(users::table.filter(users::id.eq(&user.id)))
            .set(users::password_hash.eq(h))
            .execute(conn)?;
    }
    diesel::update(users::table.filter(users::id.eq(&user.id)))
        .set(users::updated_at.eq(now))
        .execute(conn)?;
    Ok(p.disabled == Some(true) || p.password.is_some())
}

pub fn user_view(conn: &mut DbConnection, user: &User) -> Result<UserView, AppError> {
    let places = user_places::table
        .filter(user_places::user_id.eq(&user.id))
        .order(user_places::place_id.asc())
        .select(user_places::place_id)
        .load::<String>(conn)?;
    Ok(UserView {
        id: user.id.clone(),
        username: user.username.clone(),
        display_name: user.display_name.clone(),
        organization: user.organization_id.clone(),
        role: user.role.clone(),
        places,
        disabled: user.disabled,
        pseudonym: user.pseudonym.clone(),
    })
}

pub fn list_users(conn: &mut DbConnection) -> Result<Vec<UserView>, AppError> {
    let all = users::table
        .order(users::username.asc())
        .limit(10_000)
        .select(User::as_select())
        .load::<User>(conn)?;
    all.iter().map(|u| user_view(conn, u)).collect()
}
