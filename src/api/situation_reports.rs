//! `/api/v1/situation-reports`: the police post the lägesbild; partners read the
//! sections released to them.

use actix_web::http::header::ContentType;
use actix_web::{get, post, web, HttpResponse};

use crate::app::AppState;
use crate::audit::AuditEntry;
use crate::auth::principal::Bearer;
use crate::auth::Principal;
use crate::error::{AppError, ErrorBody};
use crate::policy::Action;
use crate::records::observations::place_exists;
use crate::records::situation_reports::{self as sr, NewSituationReport, SituationReportView};
use crate::records::{ListQuery, Page};

const KIND: &str = "situation_report";

#[utoipa::path(post, path = "/api/v1/situation-reports", tag = "situation-reports", request_body = NewSituationReport,
    security(("bearer" = [])),
    responses((status = 201, body = SituationReportView), (status = 400, body = ErrorBody),
              (status = 401, body = ErrorBody), (status = 403, body = ErrorBody), (status = 413, body = ErrorBody)))]
#[post("/situation-reports")]
pub async fn create(
    state: web::Data<AppState>,
    principal: Principal,
    body: super::JsonBody<NewSituationReport>,
) -> Result<HttpResponse, AppError> {
    let v = body.validate()?;
    let place = v.place.clone();
    if !state.db.run(move |c| place_exists(c, &place)).await? {
        return Err(AppError::bad_request(
            "unknown_place",
            "place is not a known place (see GET /api/v1/places)",
        ));
    }
    let d = super::decider(&state, &principal);
    let resources = sr::create_resources(&v, &d);
    if !resources.iter().all(|r| d.allows(Action::Create, r)) {
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
    let mut parts: Vec<String> = vec!["general".into()];
    for (a, _) in &v.sections {
        if !parts.contains(a) {
            parts.push(a.clone());
        }
    }
    let user = principal.user.clone();
    let entry = AuditEntry::new("create", "success", &principal.meta).actor(principal.actor());
    let (id, shown) = state
        .writer
        .write(move |tx| {
            let id = sr::insert(tx.conn, &v, &user)?;
            tx.audit(&entry.record(KIND, &id).parts(&parts))?;
            let shown = sr::get(tx.conn, &d, &id)?;
            Ok((id, shown))
        })
        .await?;
    Ok(super::created(id, shown.map(|s| s.view)))
}

#[utoipa::path(get, path = "/api/v1/situation-reports", tag = "situation-reports", params(ListQuery),
    security(("bearer" = [])),
    responses((status = 200, body = Page<SituationReportView>), (status = 400, body = ErrorBody), (status = 401, body = ErrorBody)))]
#[get("/situation-reports")]
pub async fn list(
    state: web::Data<AppState>,
    bearer: Bearer,
    query: web::Query<ListQuery>,
) -> Result<web::Json<Page<SituationReportView>>, AppError> {
    super::list_records(&state, bearer, &query, KIND, sr::list).await
}

#[utoipa::path(get, path = "/api/v1/situation-reports/{id}", tag = "situation-reports",
    params(("id" = String, Path, description = "Situation report id")), security(("bearer" = [])),
    responses((status = 200, body = SituationReportView), (status = 401, body = ErrorBody), (status = 404, body = ErrorBody)))]
#[get("/situation-reports/{id}")]
pub async fn get(
    state: web::Data<AppState>,
    bearer: Bearer,
    path: web::Path<String>,
) -> Result<HttpResponse, AppError> {
    // The hot path (guards re-reading the lägesbild): session and report from memory,
    // parts decided by the policy and the read audited as always; the body for that set
    // of parts is serialised once per cached copy.
    let caches = state.caches.clone();
    let id = crate::records::record_id(&path).ok();
    if let (Some(principal), Some(id)) = (bearer.cached(&caches), id.as_deref()) {
        if let Some(stored) = caches.reports.get(id, caches.generation()) {
            let decider = super::decider(&state, &principal);
            let Some(answer) = stored.answer(&decider) else {
                return Err(super::refuse(
                    &state,
                    &principal,
                    "read",
                    KIND,
                    Some(id),
                    AppError::NotFound,
                )
                .await);
            };
            super::audit_parts(&state, &principal, "read", KIND, id, &answer.parts).await?;
            return Ok(HttpResponse::Ok()
                .content_type(ContentType::json())
                .body(answer.body.clone()));
        }
    }
    let view = super::get_record(&state, bearer, &path, KIND, move |c, d, id| {
        let generation = caches.generation();
        let stored = sr::load(c, id)?.map(std::sync::Arc::new);
        if let Some(s) = &stored {
            caches.reports.insert(id.to_owned(), s.clone(), generation);
        }
        Ok(stored.and_then(|s| sr::show(d, &s)))
    })
    .await?;
    Ok(HttpResponse::Ok().json(view.0))
}
