//! Reference data every signed-in user may list: organisations and places.

use actix_web::{get, web};
use diesel::prelude::*;
use serde::Serialize;
use utoipa::ToSchema;

use crate::api::state::AppState;
use crate::auth::Principal;
use crate::error::{AppError, ErrorBody};
use crate::storage::models::{Organization, Place};
use crate::storage::schema;

#[derive(Debug, Serialize, ToSchema)]
pub struct OrganizationView {
    pub id: String,
    pub name: String,
    /// police | security | social_services | outreach | municipality
    pub kind: String,
    /// Whether its staff must report concern for children (and so get feedback).
    pub mandated_reporter: bool,
    /// Whether its people may sign in with a password; false: single sign-on only.
    pub password_login: bool,
}

impl From<Organization> for OrganizationView {
    fn from(o: Organization) -> Self {
        OrganizationView {
            id: o.id,
            name: o.name,
            kind: o.kind,
            mandated_reporter: o.mandated_reporter,
            password_login: o.password_login,
        }
    }
}

/// A place (drug scene) with its basområde code.
#[derive(Debug, Serialize, ToSchema)]
pub struct PlaceView {
    pub id: String,
    pub name: String,
    pub basomrade: String,
}

impl From<Place> for PlaceView {
    fn from(p: Place) -> Self {
        PlaceView {
            id: p.id,
            name: p.name,
            basomrade: p.basomrade,
        }
    }
}

pub fn all_organizations(
    conn: &mut crate::storage::DbConnection,
) -> Result<Vec<OrganizationView>, AppError> {
    Ok(schema::organizations::table
        .order(schema::organizations::name.asc())
        .limit(1000)
        .select(Organization::as_select())
        .load::<Organization>(conn)?
        .into_iter()
        .map(Into::into)
        .collect())
}

pub fn all_places(conn: &mut crate::storage::DbConnection) -> Result<Vec<PlaceView>, AppError> {
    Ok(schema::places::table
        .order(schema::places::id.asc())
        .limit(1000)
        .select(Place::as_select())
        .load::<Place>(conn)?
        .into_iter()
        .map(Into::into)
        .collect())
}

#[utoipa::path(get, path = "/api/v1/organizations", tag = "reference", security(("bearer" = [])),
    responses((status = 200, body = Vec<OrganizationView>), (status = 401, body = ErrorBody)))]
#[get("/organizations")]
pub async fn organizations(
    state: web::Data<AppState>,
    _p: Principal,
) -> Result<web::Json<Vec<OrganizationView>>, AppError> {
    Ok(web::Json(state.db.run(all_organizations).await?))
}

#[utoipa::path(get, path = "/api/v1/places", tag = "reference", security(("bearer" = [])),
    responses((status = 200, body = Vec<PlaceView>), (status = 401, body = ErrorBody)))]
#[get("/places")]
pub async fn places(
    state: web::Data<AppState>,
    _p: Principal,
) -> Result<web::Json<Vec<PlaceView>>, AppError> {
    Ok(web::Json(state.db.run(all_places).await?))
}
