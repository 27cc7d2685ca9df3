//! `/api/v1/admin/…`: organisations, places and users. Decided by the policy like
//! everything else (action `administer`); every change is audited.

use actix_web::{get, patch, post, web, HttpResponse};

use crate::admin::{
    self, NewOrganization, NewPlace, NewUser, OrganizationPatch, UserPatch, UserView,
};
use crate::api::reference::{all_organizations, all_places, OrganizationView, PlaceView};
use crate::app::AppState;
use crate::audit::AuditEntry;
use crate::auth::password::check_new_password;
use crate::auth::service::revoke_all_sessions;
use crate::auth::Principal;
use crate::error::{AppError, ErrorBody};
use crate::policy::{Action, Resource};

async fn authorize(
    state: &AppState,
    principal: &Principal,
    kind: &'static str,
) -> Result<(), AppError> {
    if super::decider(state, principal).allows(Action::Administer, &Resource::Admin { kind }) {
        Ok(())
    } else {
        Err(super::refuse(
            state,
            principal,
            "administer",
            kind,
            None,
            AppError::Forbidden,
        )
        .await)
    }
}

fn entry(principal: &Principal, action: &str, kind: &str, id: &str) -> AuditEntry {
    AuditEntry::new(action, "success", &principal.meta)
        .actor(principal.actor())
        .record(kind, id)
}

#[utoipa::path(get, path = "/api/v1/admin/organizations", tag = "admin", security(("bearer" = [])),
    responses((status = 200, body = Vec<OrganizationView>), (status = 401, body = ErrorBody), (status = 403, body = ErrorBody)))]
#[get("/admin/organizations")]
pub async fn list_organizations(
    state: web::Data<AppState>,
    principal: Principal,
) -> Result<web::Json<Vec<OrganizationView>>, AppError> {
    authorize(&state, &principal, "organizations").await?;
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
    body: super::JsonBody<NewOrganization>,
) -> Result<HttpResponse, AppError> {
    authorize(&state, &principal, "organizations").await?;
    let e = entry(&principal, "admin_create", "organization", "");
    let org = state
        .writer
        .write(move |tx| {
            let org = admin::create_organization(tx.conn, &body)?;
            tx.audit(&e.record("organization", &org.id))?;
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
    body: super::JsonBody<OrganizationPatch>,
) -> Result<web::Json<OrganizationView>, AppError> {
    authorize(&state, &principal, "organizations").await?;
    let id = path.into_inner();
    let e = entry(&principal, "admin_update", "organization", &id);
    let org = state
        .writer
        .write(move |tx| {
            let org = admin::update_organization(tx.conn, &id, &body)?;
            tx.audit(&e)?;
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
    authorize(&state, &principal, "places").await?;
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
    body: super::JsonBody<NewPlace>,
) -> Result<HttpResponse, AppError> {
    authorize(&state, &principal, "places").await?;
    let e = entry(&principal, "admin_create", "place", "");
    let place = state
        .writer
        .write(move |tx| {
            let place = admin::create_place(tx.conn, &body)?;
            tx.audit(&e.record("place", &place.id))?;
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
    authorize(&state, &principal, "users").await?;
    Ok(web::Json(state.db.run(admin::list_users).await?))
}

#[utoipa::path(post, path = "/api/v1/admin/users", tag = "admin", request_body = NewUser,
    security(("bearer" = [])),
    responses((status = 201, body = UserView), (status = 400, body = ErrorBody), (status = 401, body = ErrorBody),
              (status = 403, body = ErrorBody), (status = 409, body = ErrorBody)))]
#[post("/admin/users")]
pub async fn create_user(
    state: web::Data<AppState>,
    principal: Principal,
    body: super::JsonBody<NewUser>,
) -> Result<HttpResponse, AppError> {
    authorize(&state, &principal, "users").await?;
    let body = body.into_inner();
    admin::username(&body.username)?;
    check_new_password(&body.password)?;
    let hash = state.hasher.hash(body.password.clone()).await?;
    let e = entry(&principal, "admin_create", "user", "");
    let view = state
        .writer
        .write(move |tx| {
            let user = admin::create_user(tx.conn, &body, hash)?;
            tx.audit(&e.record("user", &user.username))?;
            admin::user_view(tx.conn, &user)
        })
        .await?;
    Ok(HttpResponse::Created().json(view))
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
    authorize(&state, &principal, "users").await?;
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
    body: super::JsonBody<UserPatch>,
) -> Result<web::Json<UserView>, AppError> {
    authorize(&state, &principal, "users").await?;
    let patch = body.into_inner();
    let new_hash = match &patch.password {
        Some(p) => {
            check_new_password(p)?;
            Some(state.hasher.hash(p.clone()).await?)
        }
        None => None,
    };
    let uname = path.into_inner();
    let e = entry(&principal, "admin_update", "user", &uname);
    let view = state
        .writer
        .write(move |tx| {
            let user = admin::find_user(tx.conn, &uname)?.ok_or(AppError::NotFound)?;
            if admin::update_user(tx.conn, &user, &patch, new_hash)? {
                revoke_all_sessions(tx, &user.id)?;
            }
            tx.audit(&e)?;
            let user = admin::find_user(tx.conn, &uname)?.ok_or(AppError::NotFound)?;
            admin::user_view(tx.conn, &user)
        })
        .await?;
    Ok(web::Json(view))
}
