//! Statistics for every role (the policy decides; `read_statistics`): counts over whole
//! months and places with small and derivable counts suppressed; JSON or, by `Accept`,
//! CSV. Every read is audited before it is answered.

use actix_web::{get, http::header, web, HttpRequest, HttpResponse};
use serde::Serialize;

use crate::api::records::refuse;
use crate::api::state::AppState;
use crate::audit::{AuditAction, AuditEntry, Outcome};
use crate::auth::Principal;
use crate::error::{AppError, ErrorBody};
use crate::policy::{Action, Resource, StatisticsKind};
use crate::statistics::{
    self, ReferralStatistics, ReferralStatisticsQuery, Spec, StatisticsQuery, StatisticsTable,
    Tabular,
};

/// The answer's format, from the `Accept` header.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Format {
    Json,
    Csv,
    Svg,
}

impl Format {
    pub fn of(req: &HttpRequest) -> Format {
        let accept = req
            .headers()
            .get(header::ACCEPT)
            .and_then(|v| v.to_str().ok())
            .unwrap_or("");
        if accept.contains("text/csv") {
            Format::Csv
        } else if accept.contains("image/svg+xml") {
            Format::Svg
        } else {
            Format::Json
        }
    }
}

/// Asks the policy and audits the read (or the refusal) before anything is computed.
async fn authorize(
    state: &AppState,
    principal: &Principal,
    kind: StatisticsKind,
    spec: &Spec,
) -> Result<(), AppError> {
    let engine = state.policy.current();
    if !engine.is_allowed(
        &principal.attrs,
        Action::ReadStatistics,
        &Resource::Statistics { kind },
    ) {
        return Err(refuse(
            state,
            principal,
            AuditAction::StatisticsRead,
            "statistics",
            Some(kind.as_str()),
            AppError::Forbidden,
        )
        .await);
    }
    let entry = AuditEntry::by(principal, AuditAction::StatisticsRead, Outcome::Success)
        .record("statistics", kind.as_str())
        .parts(&spec.describe())
        .decided_by(&engine);
    state.writer.audit_as(principal, vec![entry]).await
}

/// Observations per place, category and period, for the API, the pages and the report.
pub async fn observation_table(
    state: &AppState,
    principal: &Principal,
    query: &StatisticsQuery,
) -> Result<StatisticsTable, AppError> {
    let spec = Spec::parse(query, statistics::this_month())?;
    authorize(state, principal, StatisticsKind::Observations, &spec).await?;
    let cache = state.statistics.clone();
    state
        .db
        .run(move |c| statistics::observations(c, &spec, &cache))
        .await
}

/// Referrals per receiving organisation, status and period, with feedback times.
pub async fn referral_table(
    state: &AppState,
    principal: &Principal,
    query: &ReferralStatisticsQuery,
) -> Result<ReferralStatistics, AppError> {
    let spec = Spec::parse_referrals(query, statistics::this_month())?;
    authorize(state, principal, StatisticsKind::Referrals, &spec).await?;
    let cache = state.statistics.clone();
    state
        .db
        .run(move |c| statistics::referrals(c, &spec, &cache))
        .await
}

/// A statistics answer in the format asked for (one way for every kind of table).
pub fn answer<T: Serialize + Tabular>(table: &T, format: Format) -> Result<HttpResponse, AppError> {
    Ok(match format {
        Format::Json => HttpResponse::Ok().json(table),
        Format::Csv => HttpResponse::Ok()
            .content_type("text/csv; charset=utf-8")
            .body(table.to_csv()?),
        Format::Svg => svg(table.to_svg()),
    })
}

fn svg(body: String) -> HttpResponse {
    HttpResponse::Ok()
        .content_type("image/svg+xml; charset=utf-8")
        .body(body)
}

#[utoipa::path(get, path = "/api/v1/statistics/observations.svg", tag = "statistics", params(StatisticsQuery),
    security(("bearer" = [])),
    responses((status = 200, description = "A bar chart with its numbers as text", content_type = "image/svg+xml", body = String),
              (status = 400, body = ErrorBody), (status = 401, body = ErrorBody), (status = 403, body = ErrorBody)))]
#[get("/statistics/observations.svg")]
pub async fn observations_svg(
    state: web::Data<AppState>,
    principal: Principal,
    query: web::Query<StatisticsQuery>,
) -> Result<HttpResponse, AppError> {
    let table = observation_table(&state, &principal, &query).await?;
    Ok(svg(table.to_svg()))
}

#[utoipa::path(get, path = "/api/v1/statistics/referrals.svg", tag = "statistics", params(ReferralStatisticsQuery),
    security(("bearer" = [])),
    responses((status = 200, description = "A bar chart with its numbers as text", content_type = "image/svg+xml", body = String),
              (status = 400, body = ErrorBody), (status = 401, body = ErrorBody), (status = 403, body = ErrorBody)))]
#[get("/statistics/referrals.svg")]
pub async fn referrals_svg(
    state: web::Data<AppState>,
    principal: Principal,
    query: web::Query<ReferralStatisticsQuery>,
) -> Result<HttpResponse, AppError> {
    let table = referral_table(&state, &principal, &query).await?;
    Ok(svg(table.to_svg()))
}

#[utoipa::path(get, path = "/api/v1/statistics/observations", tag = "statistics", params(StatisticsQuery),
    security(("bearer" = [])),
    responses((status = 200, description = "JSON, or CSV with `Accept: text/csv`", body = StatisticsTable,
               content((StatisticsTable = "application/json"), (String = "text/csv"))),
              (status = 400, body = ErrorBody), (status = 401, body = ErrorBody), (status = 403, body = ErrorBody)))]
#[get("/statistics/observations")]
pub async fn observations(
    state: web::Data<AppState>,
    principal: Principal,
    req: HttpRequest,
    query: web::Query<StatisticsQuery>,
) -> Result<HttpResponse, AppError> {
    let table = observation_table(&state, &principal, &query).await?;
    answer(&table, Format::of(&req))
}

#[utoipa::path(get, path = "/api/v1/statistics/referrals", tag = "statistics", params(ReferralStatisticsQuery),
    security(("bearer" = [])),
    responses((status = 200, description = "JSON, or CSV with `Accept: text/csv`", body = ReferralStatistics,
               content((ReferralStatistics = "application/json"), (String = "text/csv"))),
              (status = 400, body = ErrorBody), (status = 401, body = ErrorBody), (status = 403, body = ErrorBody)))]
#[get("/statistics/referrals")]
pub async fn referrals(
    state: web::Data<AppState>,
    principal: Principal,
    req: HttpRequest,
    query: web::Query<ReferralStatisticsQuery>,
) -> Result<HttpResponse, AppError> {
    let table = referral_table(&state, &principal, &query).await?;
    answer(&table, Format::of(&req))
}
