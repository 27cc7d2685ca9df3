//! `/api/v1/admin/…`: organisations, places and users. Decided by the policy like
//! everything else (action `administer`; an account's role, organisation, places and
//! disabled flag on the `Account` as it would be); every change is audited with the
//! changed fields before and after.

use actix_web::{get, patch, post, web, HttpResponse};

use super::extractors::JsonBody;
use super::records::{refusal, refuse, Written};
use crate::account::revoke_all_sessions;
use crate::admin::{
    self, Changes, NewOrganization, NewPlace, NewUser, OrganizationPatch, UserPatch, UserView,
};
use crate::api::reference::{all_organizations, all_places, OrganizationView, PlaceView};
use crate::api::state::AppState;
use crate::audit::{AuditAction, AuditEntry, Outcome};
use crate::auth::password::check_new_password;
use crate::auth::Principal;
use crate::error::{AppError, ErrorBody};
use crate::policy::{Action, AdminKind, Resource};

async fn authorize(
    state: &AppState,
    principal: &Principal,
    kind: AdminKind,
) -> Result<(), AppError> {
    let allowed = state.policy.current().is_allowed(
        &principal.attrs,
        Action::Administer,
        &Resource::Admin { kind },
    );
    if allowed {
        Ok(())
    } else {
        Err(refuse(
            state,
            principal,
            AuditAction::Administer,
            kind.as_str(),
            None,
            AppError::Forbidden,
        )
        .await)
    }
}

fn entry(
    principal: &Principal,
    action: AuditAction,
    kind: &str,
    id: &str,
    c: Changes,
) -> AuditEntry {
    AuditEntry::by(principal, action, Outcome::Success)
        .record(kind, id)
        .changes(c.into_json())
}

#[utoipa::path(get, path = "/api/v1/admin/organizations", tag = "admin", security(("bearer" = [])),
    responses((status = 200, body = Vec<OrganizationView>), (status = 401, body = ErrorBody), (status = 403, body = ErrorBody)))]
#[get("/admin/organizations")]
pub async fn list_organizations(
    state: web::Data<AppState>,
    principal: Principal,
) -> Result<web::Json<Vec<OrganizationView>>, AppError> {
    authorize(&state, &principal, AdminKind::Organizations).await?;
    Ok(web::Json(state.db.run(all_organizations).await?))
}

#[utoipa::path(post, path = "/api/v1/admin/organizations", tag = "admin", request_body = NewOrganization,
    security(("bearer" = [])),
    responses((status = 201, body = OrganizationView), (status = 400, body = ErrorBody), (status = 401, body = ErrorBody),
              (status = 403, body = ErrorBody), (status = 409, body = ErrorBody)))]
#[post("/admin/organizations")]
pub async fn create_organization(
    state: web::Data<AppState>,
    principal: Principal,
    body: JsonBody<NewOrganization>,
) -> Result<HttpResponse, AppError> {
    authorize(&state, &principal, AdminKind::Organizations).await?;
    let p = principal.clone();
    let org = state
        .writer
        .write_as(&principal, move |tx| {
            let (org, c) = admin::create_organization(tx.conn, &body)?;
            tx.audit(&entry(
                &p,
                AuditAction::AdminCreate,
                "organization",
                &org.id,
                c,
            ))?;
            Ok(org)
        })
        .await?;
    Ok(HttpResponse::Created().json(OrganizationView::from(org)))
}

#[utoipa::path(patch, path = "/api/v1/admin/organizations/{id}", tag = "admin", request_body = OrganizationPatch,
    params(("id" = String, Path)), security(("bearer" = [])),
    responses((status = 200, body = OrganizationView), (status = 400, body = ErrorBody), (status = 401, body = ErrorBody),
              (status = 403, body = ErrorBody), (status = 404, body = ErrorBody), (status = 409, body = ErrorBody)))]
#[patch("/admin/organizations/{id}")]
pub async fn update_organization(
    state: web::Data<AppState>,
    principal: Principal,
    path: web::Path<String>,
    body: JsonBody<OrganizationPatch>,
) -> Result<web::Json<OrganizationView>, AppError> {
    authorize(&state, &principal, AdminKind::Organizations).await?;
    let id = path.into_inner();
    let p = principal.clone();
    let org = state
        .writer
        .write_as(&principal, move |tx| {
            let (org, c) = admin::update_organization(tx.conn, &id, &body)?;
            tx.audit(&entry(&p, AuditAction::AdminUpdate, "organization", &id, c))?;
            Ok(org)
        })
        .await?;
    Ok(web::Json(org.into()))
}

#[utoipa::path(get, path = "/api/v1/admin/places", tag = "admin", security(("bearer" = [])),
    responses((status = 200, body = Vec<PlaceView>), (status = 401, body = ErrorBody), (status = 403, body = ErrorBody)))]
#[get("/admin/places")]
pub async fn list_places(
    state: web::Data<AppState>,
    principal: Principal,
) -> Result<web::Json<Vec<PlaceView>>, AppError> {
    authorize(&state, &principal, AdminKind::Places).await?;
    Ok(web::Json(state.db.run(all_places).await?))
}

#[utoipa::path(post, path = "/api/v1/admin/places", tag = "admin", request_body = NewPlace,
    security(("bearer" = [])),
    responses((status = 201, body = PlaceView), (status = 400, body = ErrorBody), (status = 401, body = ErrorBody),
              (status = 403, body = ErrorBody), (status = 409, body = ErrorBody)))]
#[post("/admin/places")]
pub async fn create_place(
    state: web::Data<AppState>,
    principal: Principal,
    body: JsonBody<NewPlace>,
) -> Result<HttpResponse, AppError> {
    authorize(&state, &principal, AdminKind::Places).await?;
    let p = principal.clone();
    let place = state
        .writer
        .write_as(&principal, move |tx| {
            let (place, c) = admin::create_place(tx.conn, &body)?;
            tx.audit(&entry(&p, AuditAction::AdminCreate, "place", &place.id, c))?;
            Ok(place)
        })
        .await?;
    Ok(HttpResponse::Created().json(PlaceView::from(place)))
}

#[utoipa::path(get, path = "/api/v1/admin/users", tag = "admin", security(("bearer" = [])),
    responses((status = 200, body = Vec<UserView>), (status = 401, body = ErrorBody), (status = 403, body = ErrorBody)))]
#[get("/admin/users")]
pub async fn list_users(
    state: web::Data<AppState>,
    principal: Principal,
) -> Result<web::Json<Vec<UserView>>, AppError> {
    authorize(&state, &principal, AdminKind::Users).await?;
    Ok(web::Json(state.db.run(admin::list_users).await?))
}

/// The outcome of an account change decided inside its transaction: a 403 is audited
/// there; a 400 (a role its organisation cannot hold) changes nothing.
fn account_refused(
    tx: &mut crate::audit::writer::Tx<'_>,
    p: &Principal,
    action: AuditAction,
    id: &str,
    err: AppError,
) -> Result<Written<UserView>, AppError> {
    match err {
        AppError::Forbidden => {
            tx.audit(&refusal(p, action, "user", Some(id), &err))?;
            Ok(Written::Refused(err))
        }
        other => Err(other),
    }
}

#[utoipa::path(post, path = "/api/v1/admin/users", tag = "admin", request_body = NewUser,
    security(("bearer" = [])),
    responses((status = 201, body = UserView), (status = 400, body = ErrorBody), (status = 401, body = ErrorBody),
              (status = 403, body = ErrorBody), (status = 409, body = ErrorBody)))]
#[post("/admin/users")]
pub async fn create_user(
    state: web::Data<AppState>,
    principal: Principal,
    body: JsonBody<NewUser>,
) -> Result<HttpResponse, AppError> {
    let view = add_user(&state, &principal, body.into_inner()).await?;
    Ok(HttpResponse::Created().json(view))
}

/// Creates an account (API and pages); decided, audited.
pub async fn add_user(
    state: &AppState,
    principal: &Principal,
    body: NewUser,
) -> Result<UserView, AppError> {
    authorize(state, principal, AdminKind::Users).await?;
    admin::username(&body.username)?;
    admin::role(&body.role)?;
    check_new_password(&body.password)?;
    let hash = state.hasher.hash(body.password.clone()).await?;
    let (p, policy) = (principal.clone(), state.policy.current());
    let written = state
        .writer
        .write_as(principal, move |tx| {
            let check =
                |change: &admin::AccountChange<'_>| admin::check_account(&policy, &p.attrs, change);
            let (user, c) = match admin::create_user(tx.conn, &body, hash, &check) {
                Ok(created) => created,
                Err(e) => {
                    return account_refused(tx, &p, AuditAction::AdminCreate, &body.username, e)
                }
            };
            tx.audit(&entry(
                &p,
                AuditAction::AdminCreate,
                "user",
                &user.username,
                c,
            ))?;
            Ok(Written::Done(admin::user_view(tx.conn, &user)?))
        })
        .await?;
    written.into_result()
}

#[utoipa::path(get, path = "/api/v1/admin/users/{username}", tag = "admin",
    params(("username" = String, Path)), security(("bearer" = [])),
    responses((status = 200, body = UserView), (status = 401, body = ErrorBody), (status = 403, body = ErrorBody), (status = 404, body = ErrorBody)))]
#[get("/admin/users/{username}")]
pub async fn get_user(
    state: web::Data<AppState>,
    principal: Principal,
    path: web::Path<String>,
) -> Result<web::Json<UserView>, AppError> {
    authorize(&state, &principal, AdminKind::Users).await?;
    let uname = path.into_inner();
    let view = state
        .db
        .run(move |c| match admin::find_user(c, &uname)? {
            Some(u) => admin::user_view(c, &u),
            None => Err(AppError::NotFound),
        })
        .await?;
    Ok(web::Json(view))
}

#[utoipa::path(patch, path = "/api/v1/admin/users/{username}", tag = "admin", request_body = UserPatch,
    params(("username" = String, Path)), security(("bearer" = [])),
    responses((status = 200, body = UserView), (status = 400, body = ErrorBody), (status = 401, body = ErrorBody),
              (status = 403, body = ErrorBody), (status = 404, body = ErrorBody)))]
#[patch("/admin/users/{username}")]
pub async fn update_user(
    state: web::Data<AppState>,
    principal: Principal,
    path: web::Path<String>,
    body: JsonBody<UserPatch>,
) -> Result<web::Json<UserView>, AppError> {
    let view = change_user(&state, &principal, path.into_inner(), body.into_inner()).await?;
    Ok(web::Json(view))
}

/// Changes an account (API and pages); decided, audited with before and after.
pub async fn change_user(
    state: &AppState,
    principal: &Principal,
    uname: String,
    patch: UserPatch,
) -> Result<UserView, AppError> {
    authorize(state, principal, AdminKind::Users).await?;
    if let Some(r) = &patch.role {
        admin::role(r)?;
    }
    let new_hash = match &patch.password {
        Some(p) => {
            check_new_password(p)?;
            Some(state.hasher.hash(p.clone()).await?)
        }
        None => None,
    };
    let (p, policy) = (principal.clone(), state.policy.current());
    let written = state
        .writer
        .write_as(principal, move |tx| {
            let user = admin::find_user(tx.conn, &uname)?.ok_or(AppError::NotFound)?;
            let check =
                |change: &admin::AccountChange<'_>| admin::check_account(&policy, &p.attrs, change);
            let updated = match admin::update_user(tx.conn, &user, &patch, new_hash, &check) {
                Ok(u) => u,
                Err(e) => return account_refused(tx, &p, AuditAction::AdminUpdate, &uname, e),
            };
            if updated.end_sessions {
                revoke_all_sessions(tx, &user.id)?;
            }
            tx.audit(&entry(
                &p,
                AuditAction::AdminUpdate,
                "user",
                &uname,
                updated.changes,
            ))?;
            let user = admin::find_user(tx.conn, &uname)?.ok_or(AppError::NotFound)?;
            Ok(Written::Done(admin::user_view(tx.conn, &user)?))
        })
        .await?;
    written.into_result()
}

/// Every account, organisation and place, for an administrator (pages).
pub async fn overview(
    state: &AppState,
    principal: &Principal,
) -> Result<(Vec<UserView>, Vec<OrganizationView>, Vec<PlaceView>), AppError> {
    authorize(state, principal, AdminKind::Users).await?;
    authorize(state, principal, AdminKind::Organizations).await?;
    authorize(state, principal, AdminKind::Places).await?;
    state
        .db
        .run(|c| Ok((admin::list_users(c)?, all_organizations(c)?, all_places(c)?)))
        .await
}
