//! Administration of organisations, places and users, shared by the admin API and the
//! `samverkan admin` commands. Admins manage accounts; they never read case content, nor
//! a guard's pseudonym (only the police resolve one, through an observation's
//! `reporter_identity`). Every change returns its changed fields before and after, for
//! the audit entry (never a password or its hash).

use diesel::prelude::*;
use serde::{Deserialize, Serialize};
use serde_json::{json, Map, Value};
use utoipa::ToSchema;

use crate::error::AppError;
use crate::fields::{slug, text};
use crate::policy::{Action, OrganizationKind, PolicyEngine, PrincipalAttrs, Resource, Role};
use crate::storage::models::{Organization, Place, User, UserPlace};
use crate::storage::schema::{organizations, places, user_places, users};
use crate::storage::{new_id, now_micros, DbConnection};

const MAX_PLACES_PER_USER: usize = 100;

/// The fields that changed, before and after: `{"before": {…}, "after": {…}}`.
#[derive(Debug, Default)]
pub struct Changes {
    before: Map<String, Value>,
    after: Map<String, Value>,
}

impl Changes {
    /// Notes a field, if it changed.
    pub fn field(&mut self, name: &str, before: Value, after: Value) {
        if before != after {
            self.before.insert(name.to_owned(), before);
            self.after.insert(name.to_owned(), after);
        }
    }

    /// Notes a field of something new.
    pub fn created(&mut self, name: &str, after: Value) {
        self.after.insert(name.to_owned(), after);
    }

    pub fn into_json(self) -> Value {
        if self.before.is_empty() {
            json!({ "after": self.after })
        } else {
            json!({ "before": self.before, "after": self.after })
        }
    }
}

/// Who acts for the command line and the demo seeding: an administrator no account is
/// (the operator of the host), for the questions the policy asks about accounts.
pub fn operator() -> PrincipalAttrs {
    PrincipalAttrs {
        user_id: "~operator".into(),
        role: Role::Admin.as_str().into(),
        organization_id: "~operator".into(),
        organization_kind: OrganizationKind::Municipality.as_str().into(),
        mandated_reporter: false,
        places: Vec::new(),
    }
}

/// Whether `actor` may give an account (`user_id`) this role in an organisation of this
/// kind — the policy's `administer` on an `Account`. A refusal says why: a 400 naming the
/// organisation kinds the role belongs to, or a 403 when the actor may not change this
/// account at all (their own: nobody changes their own access).
pub fn check_account(
    engine: &PolicyEngine,
    actor: &PrincipalAttrs,
    change: &AccountChange<'_>,
) -> Result<(), AppError> {
    let AccountChange {
        user_id,
        role,
        org_kind,
        grants_access,
    } = *change;
    let account = |user_id: &str, kind: &str| Resource::Account {
        user_id: user_id.to_owned(),
        role: role.to_owned(),
        organization_kind: kind.to_owned(),
        grants_access,
    };
    if engine.is_allowed(actor, Action::Administer, &account(user_id, org_kind)) {
        return Ok(());
    }
    // Asked again for every organisation kind: the kinds the policy lets this role
    // belong to, for this account and for another one. None for this account but some
    // for another: this account is not the actor's to change (their own).
    let kinds = |user_id: &str| -> Vec<&'static str> {
        OrganizationKind::ALL
            .iter()
            .map(|k| k.as_str())
            .filter(|k| engine.is_allowed(actor, Action::Administer, &account(user_id, k)))
            .collect()
    };
    let kinds = kinds(user_id);
    if kinds.is_empty() {
        return Err(AppError::Forbidden);
    }
    Err(AppError::bad_request(
        "role_not_for_organization",
        format!(
            "a {role} belongs to an organisation of kind {}; this organisation is of kind {org_kind}",
            kinds.join(" or ")
        ),
    ))
}

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
    /// Whether its people may sign in with a password (default true; false: single
    /// sign-on only).
    #[serde(default)]
    pub password_login: Option<bool>,
}

#[derive(Debug, Clone, Default, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct OrganizationPatch {
    pub name: Option<String>,
    pub mandated_reporter: Option<bool>,
    /// false: its people sign in through single sign-on only.
    pub password_login: Option<bool>,
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

/// An account as admins see it: never a password hash, never the pseudonym (the link
/// pseudonym ↔ person is what OSL 35:1 protects; only the police resolve it).
#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct UserView {
    pub id: String,
    pub username: String,
    pub display_name: String,
    pub organization: String,
    pub role: String,
    pub places: Vec<String>,
    pub disabled: bool,
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

pub fn role(value: &str) -> Result<String, AppError> {
    match Role::parse(value) {
        Some(r) => Ok(r.as_str().to_owned()),
        None => Err(AppError::bad_request(
            "invalid_role",
            format!("role must be one of: {}", Role::listed()),
        )),
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

/// The organisation as the audit trail records it.
fn org_fields(c: &mut Changes, before: Option<&Organization>, after: &Organization) {
    match before {
        None => {
            c.created("id", json!(after.id));
            c.created("name", json!(after.name));
            c.created("kind", json!(after.kind));
            c.created("mandated_reporter", json!(after.mandated_reporter));
            c.created("password_login", json!(after.password_login));
        }
        Some(b) => {
            c.field("name", json!(b.name), json!(after.name));
            c.field(
                "mandated_reporter",
                json!(b.mandated_reporter),
                json!(after.mandated_reporter),
            );
            c.field(
                "password_login",
                json!(b.password_login),
                json!(after.password_login),
            );
        }
    }
}

pub fn create_organization(
    conn: &mut DbConnection,
    v: &NewOrganization,
) -> Result<(Organization, Changes), AppError> {
    let name = text("name", &v.name, 1, 200)?;
    if OrganizationKind::parse(&v.kind).is_none() {
        return Err(AppError::bad_request(
            "invalid_kind",
            format!("kind must be one of: {}", OrganizationKind::listed()),
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
        password_login: v.password_login.unwrap_or(true),
    };
    diesel::insert_into(organizations::table)
        .values(&org)
        .execute(conn)
        .map_err(|e| conflict_on_unique(e.into(), "an organisation with that id or name"))?;
    let mut changes = Changes::default();
    org_fields(&mut changes, None, &org);
    Ok((org, changes))
}

pub fn update_organization(
    conn: &mut DbConnection,
    id: &str,
    p: &OrganizationPatch,
) -> Result<(Organization, Changes), AppError> {
    let before = organizations::table
        .filter(organizations::id.eq(id))
        .select(Organization::as_select())
        .first(conn)
        .optional()?
        .ok_or(AppError::NotFound)?;
    let mut org = before.clone();
    if let Some(n) = &p.name {
        org.name = text("name", n, 1, 200)?;
    }
    if let Some(m) = p.mandated_reporter {
        org.mandated_reporter = m;
    }
    if let Some(p) = p.password_login {
        org.password_login = p;
    }
    diesel::update(organizations::table.filter(organizations::id.eq(id)))
        .set((
            organizations::name.eq(&org.name),
            organizations::mandated_reporter.eq(org.mandated_reporter),
            organizations::password_login.eq(org.password_login),
        ))
        .execute(conn)
        .map_err(|e| conflict_on_unique(e.into(), "an organisation with that name"))?;
    let mut changes = Changes::default();
    org_fields(&mut changes, Some(&before), &org);
    Ok((org, changes))
}

pub fn create_place(conn: &mut DbConnection, v: &NewPlace) -> Result<(Place, Changes), AppError> {
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
    let mut changes = Changes::default();
    changes.created("id", json!(place.id));
    changes.created("name", json!(place.name));
    changes.created("basomrade", json!(place.basomrade));
    Ok((place, changes))
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

fn places_of(conn: &mut DbConnection, user_id: &str) -> Result<Vec<String>, AppError> {
    Ok(user_places::table
        .filter(user_places::user_id.eq(user_id))
        .order(user_places::place_id.asc())
        .select(user_places::place_id)
        .load::<String>(conn)?)
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

/// An account as it would be after a change: the question [`check_account`] puts to the
/// policy.
#[derive(Debug, Clone, Copy)]
pub struct AccountChange<'a> {
    pub user_id: &'a str,
    pub role: &'a str,
    pub org_kind: &'a str,
    /// False only when the change takes access away (disabling).
    pub grants_access: bool,
}

/// Asked before an account is created or its access changes (see [`check_account`]).
pub type AccountCheck<'a> = &'a dyn Fn(&AccountChange<'_>) -> Result<(), AppError>;

/// Creates a user with an already computed password hash.
pub fn create_user(
    conn: &mut DbConnection,
    v: &NewUser,
    password_hash: String,
    check: AccountCheck<'_>,
) -> Result<(User, Changes), AppError> {
    let uname = username(&v.username)?;
    let role = role(&v.role)?;
    let org = load_org(conn, &v.organization)?;
    let places = check_places(conn, &v.places)?;
    let id = new_id();
    check(&AccountChange {
        user_id: &id,
        role: &role,
        org_kind: &org.kind,
        grants_access: true,
    })?;
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
        id,
        username: uname,
        display_name: text("display_name", &v.display_name, 1, 200)?,
        organization_id: org.id,
        role,
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
    let mut changes = Changes::default();
    changes.created("username", json!(user.username));
    changes.created("display_name", json!(user.display_name));
    changes.created("organization", json!(user.organization_id));
    changes.created("role", json!(user.role));
    changes.created("places", json!(places));
    changes.created("disabled", json!(false));
    Ok((user, changes))
}

pub fn find_user(conn: &mut DbConnection, uname: &str) -> Result<Option<User>, AppError> {
    Ok(users::table
        .filter(users::username.eq(uname))
        .select(User::as_select())
        .first(conn)
        .optional()?)
}

/// What an update did: the changed fields, and whether the user's sessions must end
/// (disabled, or a new password).
pub struct Updated {
    pub changes: Changes,
    pub end_sessions: bool,
}

/// Applies a patch. A change to the role, organisation, places or disabled flag is
/// asked about first (`check`), with the account as it would be afterwards.
pub fn update_user(
    conn: &mut DbConnection,
    user: &User,
    p: &UserPatch,
    new_hash: Option<String>,
    check: AccountCheck<'_>,
) -> Result<Updated, AppError> {
    let now = now_micros();
    let role = match &p.role {
        Some(r) => role(r)?,
        None => user.role.clone(),
    };
    let org = load_org(
        conn,
        p.organization.as_deref().unwrap_or(&user.organization_id),
    )?;
    let places_before = places_of(conn, &user.id)?;
    let places = match &p.places {
        Some(ps) => check_places(conn, ps)?,
        None => places_before.clone(),
    };
    let display_name = match &p.display_name {
        Some(n) => text("display_name", n, 1, 200)?,
        None => user.display_name.clone(),
    };
    let disabled = p.disabled.unwrap_or(user.disabled);
    let widens = role != user.role
        || org.id != user.organization_id
        || places != places_before
        || (user.disabled && !disabled);
    if widens || disabled != user.disabled {
        check(&AccountChange {
            user_id: &user.id,
            role: &role,
            org_kind: &org.kind,
            grants_access: widens,
        })?;
    }
    diesel::update(users::table.filter(users::id.eq(&user.id)))
        .set((
            users::display_name.eq(&display_name),
            users::role.eq(&role),
            users::organization_id.eq(&org.id),
            users::disabled.eq(disabled),
            users::updated_at.eq(now),
        ))
        .execute(conn)?;
    if places != places_before {
        set_places(conn, &user.id, &places)?;
    }
    if let Some(h) = &new_hash {
        diesel::update(users::table.filter(users::id.eq(&user.id)))
            .set(users::password_hash.eq(h))
            .execute(conn)?;
    }
    let mut changes = Changes::default();
    changes.field(
        "display_name",
        json!(user.display_name),
        json!(display_name),
    );
    changes.field("role", json!(user.role), json!(role));
    changes.field("organization", json!(user.organization_id), json!(org.id));
    changes.field("places", json!(places_before), json!(places));
    changes.field("disabled", json!(user.disabled), json!(disabled));
    if new_hash.is_some() {
        // That it changed, never what to.
        changes.field("password", json!("unchanged"), json!("changed"));
    }
    Ok(Updated {
        changes,
        end_sessions: p.disabled == Some(true) || new_hash.is_some(),
    })
}

pub fn user_view(conn: &mut DbConnection, user: &User) -> Result<UserView, AppError> {
    Ok(UserView {
        id: user.id.clone(),
        username: user.username.clone(),
        display_name: user.display_name.clone(),
        organization: user.organization_id.clone(),
        role: user.role.clone(),
        places: places_of(conn, &user.id)?,
        disabled: user.disabled,
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
