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
use crate::records::{record_id, ListQuery, Page};

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
    let f = query.validate(state.tokens.cursor_seal())?;
    let (principal, (shown, next_cursor)) =
        super::read_as(&state, bearer, move |c, d| obs::list(c, d, &f)).await?;
    super::audit_reads(&state, &principal, "list", KIND, &shown).await?;
    Ok(web::Json(Page {
        items: shown.into_iter().map(|s| s.view).collect(),
        next_cursor,
    }))
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
    // The session is checked before the id's shape: a revoked token is a 401 whatever it asks.
    let id = record_id(&path).ok();
    let lookup = id.clone();
    let (principal, shown) = super::read_as(&state, bearer, move |c, d| {
        obs::get(c, d, &lookup.ok_or(AppError::NotFound)?)
    })
    .await?;
    let id = id.unwrap_or_default();
    match shown {
        Some(s) => {
            super::audit_reads(&state, &principal, "read", KIND, std::slice::from_ref(&s)).await?;
            Ok(web::Json(s.view))
        }
        None => Err(super::refuse(
            &state,
            &principal,
            "read",
            KIND,
            Some(&id),
            AppError::NotFound,
        )
        .await),
    }
}
