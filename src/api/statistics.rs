//! Statistics for every role (the policy decides; `read_statistics`): counts over whole
//! months and places with small and derivable counts suppressed; JSON or, by `Accept`,
//! CSV. Every read is audited before it is answered.

use actix_web::{get, http::header, web, HttpRequest, HttpResponse};

use crate::api::records::refuse;
use crate::api::state::AppState;
use crate::audit::{AuditAction, AuditEntry, Outcome};
use crate::auth::Principal;
use crate::error::{AppError, ErrorBody};
use crate::policy::{Action, Resource, StatisticsKind};
use crate::statistics::{self, Spec, StatisticsQuery, StatisticsTable};

/// The answer's format, from the `Accept` header.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Format {
    Json,
    Csv,
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
        } else {
            Format::Json
        }
    }
}

/// Asks the policy, audits the read (or the refusal) and computes the table.
pub async fn observation_table(
    state: &AppState,
    principal: &Principal,
    query: &StatisticsQuery,
) -> Result<StatisticsTable, AppError> {
    let spec = Spec::parse(query, statistics::this_month())?;
    let kind = StatisticsKind::Observations;
    if !state.policy.is_allowed(
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
        .parts(&spec.describe());
    state.writer.audit_as(principal, vec![entry]).await?;
    let cache = state.statistics.clone();
    state
        .db
        .run(move |c| statistics::observations(c, &spec, &cache))
        .await
}

pub fn answer(table: &StatisticsTable, format: Format) -> Result<HttpResponse, AppError> {
    Ok(match format {
        Format::Json => HttpResponse::Ok().json(table),
        Format::Csv => HttpResponse::Ok()
            .content_type("text/csv; charset=utf-8")
            .body(table.to_csv()?),
    })
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
