//! `/api/v1/situation-reports`: the police post the lägesbild; partners read the
//! sections released to them (the hot path: sessions and reports kept in memory).

use actix_web::{get, post, web, HttpResponse};

use super::extractors::JsonBody;
use super::records;
use crate::api::state::AppState;
use crate::auth::{Bearer, Principal};
use crate::error::{AppError, ErrorBody};
use crate::records::situation_reports::{
    self as sr, NewSituationReport, SituationReportView, SituationReports,
};
use crate::records::visibility::Answer;
use crate::records::{ListQuery, Page};

#[utoipa::path(post, path = "/api/v1/situation-reports", tag = "situation-reports", request_body = NewSituationReport,
    security(("bearer" = [])),
    responses((status = 201, body = SituationReportView), (status = 400, body = ErrorBody),
              (status = 401, body = ErrorBody), (status = 403, body = ErrorBody), (status = 413, body = ErrorBody)))]
#[post("/situation-reports")]
pub async fn create(
    state: web::Data<AppState>,
    principal: Principal,
    body: JsonBody<NewSituationReport>,
) -> Result<HttpResponse, AppError> {
    let (id, answer) = post(&state, &principal, &body).await?;
    Ok(records::created(id, answer))
}

/// Posts a lägesbild (API and pages): its id, and what its author may see of it.
pub async fn post(
    state: &AppState,
    principal: &Principal,
    body: &NewSituationReport,
) -> Result<(String, Option<Answer>), AppError> {
    let v = body.validate()?;
    records::known_place(state, Some(v.place.clone())).await?;
    let d = records::decider(state, principal);
    let resources = sr::create_resources(&v, &d);
    let parts = resources
        .iter()
        .filter_map(|r| match r {
            crate::policy::Resource::ReportSection { audience, .. } => Some(audience.as_str()),
            _ => None,
        })
        .collect();
    records::create::<SituationReports, _>(state, principal, resources, parts, move |c, user, _| {
        sr::insert(c, &v, user)
    })
    .await
}

#[utoipa::path(get, path = "/api/v1/situation-reports", tag = "situation-reports", params(ListQuery),
    security(("bearer" = [])),
    responses((status = 200, body = Page<SituationReportView>), (status = 400, body = ErrorBody), (status = 401, body = ErrorBody)))]
#[get("/situation-reports")]
pub async fn list(
    state: web::Data<AppState>,
    bearer: Bearer,
    query: web::Query<ListQuery>,
) -> Result<HttpResponse, AppError> {
    records::list::<SituationReports>(&state, bearer, query.into_inner()).await
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
    records::read::<SituationReports>(&state, bearer, &path, Some(state.reports.clone())).await
}
