//! `/api/v1/observations`: guards file what they see; each reader gets the parts the
//! policy allows.

use actix_web::{get, post, web, HttpResponse};

use crate::app::AppState;
use crate::audit::AuditEntry;
use crate::auth::principal::Bearer;
use crate::auth::Principal;
use crate::error::{AppError, ErrorBody};
use crate::policy::Action;
use crate::records::observations::{self as obs, NewObservation, ObservationView};
use crate::records::{ListQuery, Page};

const KIND: &str = "observation";

#[utoipa::path(post, path = "/api/v1/observations", tag = "observations", request_body = NewObservation,
    security(("bearer" = [])),
    responses((status = 201, body = ObservationView), (status = 400, body = ErrorBody),
              (status = 401, body = ErrorBody), (status = 403, body = ErrorBody), (status = 413, body = ErrorBody)))]
#[post("/observations")]
pub async fn create(
    state: web::Data<AppState>,
    principal: Principal,
    body: super::JsonBody<NewObservation>,
) -> Result<HttpResponse, AppError> {
    let v = body.validate()?;
    let place = v.place.clone();
    if !state.db.run(move |c| obs::place_exists(c, &place)).await? {
        return Err(AppError::bad_request(
            "unknown_place",
            "place is not a known place (see GET /api/v1/places)",
        ));
    }
    let d = super::decider(&state, &principal);
    if !d.allows(Action::Create, &obs::create_resource(&v, &d)) {
        return Err(super::refuse(
            &state,
            &principal,
            "create",
            KIND,
            None,
            AppError::Forbidden,
        )
        .await);
    }
    let user = principal.user.clone();
    let entry = AuditEntry::new("create", "success", &principal.meta).actor(principal.actor());
    // The record as its creator sees it is read back in the same transaction: the
    // filing and what it shows are one audited event.
    let (id, shown) = state
        .writer
        .write(move |tx| {
            let id = obs::insert(tx.conn, &v, &user)?;
            tx.audit(&entry.record(KIND, &id).parts(&[
                obs::PART_CORE,
                obs::PART_NARRATIVE,
                obs::PART_PERSONS,
            ]))?;
            let shown = obs::get(tx.conn, &d, &id)?;
            Ok((id, shown))
        })
        .await?;
    Ok(super::created(id, shown.map(|s| s.view)))
}

#[utoipa::path(get, path = "/api/v1/observations", tag = "observations", params(ListQuery),
    security(("bearer" = [])),
    responses((status = 200, body = Page<ObservationView>), (status = 400, body = ErrorBody), (status = 401, body = ErrorBody)))]
#[get("/observations")]
pub async fn list(
    state: web::Data<AppState>,
    bearer: Bearer,
    query: web::Query<ListQuery>,
) -> Result<web::Json<Page<ObservationView>>, AppError> {
    super::list_records(&state, bearer, &query, KIND, obs::list).await
}

#[utoipa::path(get, path = "/api/v1/observations/{id}", tag = "observations",
    params(("id" = String, Path, description = "Observation id")), security(("bearer" = [])),
    responses((status = 200, body = ObservationView), (status = 401, body = ErrorBody), (status = 404, body = ErrorBody)))]
#[get("/observations/{id}")]
pub async fn get(
    state: web::Data<AppState>,
    bearer: Bearer,
    path: web::Path<String>,
) -> Result<web::Json<ObservationView>, AppError> {
    super::get_record(&state, bearer, &path, KIND, obs::get).await
}
