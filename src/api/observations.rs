//! `/api/v1/observations`: guards file what they see; each reader gets the parts the
//! policy allows.

use actix_web::{get, post, web, HttpResponse};

use super::extractors::JsonBody;
use super::records;
use crate::api::state::AppState;
use crate::auth::{Bearer, Principal};
use crate::error::{AppError, ErrorBody};
use crate::records::observations::{self as obs, NewObservation, ObservationView, Observations};
use crate::records::visibility::Answer;
use crate::records::{ListQuery, Page};

#[utoipa::path(post, path = "/api/v1/observations", tag = "observations", request_body = NewObservation,
    security(("bearer" = [])),
    responses((status = 201, body = ObservationView), (status = 400, body = ErrorBody),
              (status = 401, body = ErrorBody), (status = 403, body = ErrorBody), (status = 413, body = ErrorBody)))]
#[post("/observations")]
pub async fn create(
    state: web::Data<AppState>,
    principal: Principal,
    body: JsonBody<NewObservation>,
) -> Result<HttpResponse, AppError> {
    let (id, answer) = file(&state, &principal, &body).await?;
    Ok(records::created(id, answer))
}

/// Files an observation (API and pages): its id, and what its filer may see of it.
pub async fn file(
    state: &AppState,
    principal: &Principal,
    body: &NewObservation,
) -> Result<(String, Option<Answer>), AppError> {
    let v = body.validate()?;
    records::known_place(state, Some(v.place.clone())).await?;
    let d = records::decider(state, principal);
    let resources = obs::create_resources(&v, &d);
    let parts = resources.iter().filter_map(part_name).collect();
    records::create::<Observations, _>(state, principal, resources, parts, move |c, user, org| {
        obs::insert(c, &v, user, org)
    })
    .await
}

fn part_name(r: &crate::policy::Resource) -> Option<&'static str> {
    match r {
        crate::policy::Resource::ObservationPart { kind, .. } => Some(kind.as_str()),
        _ => None,
    }
}

#[utoipa::path(get, path = "/api/v1/observations", tag = "observations", params(ListQuery),
    security(("bearer" = [])),
    responses((status = 200, body = Page<ObservationView>), (status = 400, body = ErrorBody), (status = 401, body = ErrorBody)))]
#[get("/observations")]
pub async fn list(
    state: web::Data<AppState>,
    bearer: Bearer,
    query: web::Query<ListQuery>,
) -> Result<HttpResponse, AppError> {
    records::list::<Observations>(&state, bearer, query.into_inner()).await
}

#[utoipa::path(get, path = "/api/v1/observations/{id}", tag = "observations",
    params(("id" = String, Path, description = "Observation id")), security(("bearer" = [])),
    responses((status = 200, body = ObservationView), (status = 401, body = ErrorBody), (status = 404, body = ErrorBody)))]
#[get("/observations/{id}")]
pub async fn get(
    state: web::Data<AppState>,
    bearer: Bearer,
    path: web::Path<String>,
) -> Result<HttpResponse, AppError> {
    records::read::<Observations>(&state, bearer, &path, None).await
}
