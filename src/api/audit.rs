//! `/api/v1/audit…`: the audit trail for the `auditor` role (decided by the policy,
//! action `read_audit`). Reading the trail is itself audited.

use actix_web::{get, web, HttpResponse};
use futures_util::StreamExt;
use serde::Deserialize;
use utoipa::IntoParams;

use super::records::refuse;
use crate::api::state::AppState;
use crate::audit::review::{self, AuditPage, AuditQuery, UserActivity, EXPORT_LIMIT, PAGE_LIMIT};
use crate::audit::{AuditAction, AuditEntry, Outcome};
use crate::auth::Principal;
use crate::error::{AppError, ErrorBody};
use crate::fields::parse_time;
use crate::policy::{Action, Resource};
use crate::storage::Db;

async fn authorize(
    state: &AppState,
    principal: &Principal,
    what: AuditAction,
) -> Result<(), AppError> {
    if state
        .policy
        .current()
        .is_allowed(&principal.attrs, Action::ReadAudit, &Resource::AuditLog)
    {
        // Committed before the query runs, which then finds every entry before it, this
        // one included (see `review::search`).
        let e = AuditEntry::by(principal, what, Outcome::Success);
        state.writer.audit_as(principal, vec![e]).await
    } else {
        Err(refuse(
            state,
            principal,
            what,
            "audit_log",
            None,
            AppError::Forbidden,
        )
        .await)
    }
}

#[utoipa::path(get, path = "/api/v1/audit", tag = "audit", params(AuditQuery), security(("bearer" = [])),
    responses((status = 200, body = AuditPage), (status = 400, body = ErrorBody), (status = 401, body = ErrorBody), (status = 403, body = ErrorBody)))]
#[get("/audit")]
pub async fn list(
    state: web::Data<AppState>,
    principal: Principal,
    query: web::Query<AuditQuery>,
) -> Result<web::Json<AuditPage>, AppError> {
    Ok(web::Json(search(&state, &principal, &query).await?))
}

/// One page of the trail for an auditor (API and pages); the search is audited.
pub async fn search(
    state: &AppState,
    principal: &Principal,
    query: &AuditQuery,
) -> Result<AuditPage, AppError> {
    let f = query.validate(PAGE_LIMIT)?;
    authorize(state, principal, AuditAction::AuditReview).await?;
    let (items, next_cursor) = state.db.run(move |c| review::search(c, &f)).await?;
    Ok(AuditPage { items, next_cursor })
}

#[utoipa::path(get, path = "/api/v1/audit/export", tag = "audit", params(AuditQuery), security(("bearer" = [])),
    responses((status = 200, description = "One AuditEntryView per line as JSON lines (the default), or CSV with `format=csv`",
               content((String = "application/x-ndjson"), (String = "text/csv"))),
              (status = 400, body = ErrorBody), (status = 401, body = ErrorBody), (status = 403, body = ErrorBody)))]
#[get("/audit/export")]
pub async fn export(
    state: web::Data<AppState>,
    principal: Principal,
    query: web::Query<AuditQuery>,
) -> Result<HttpResponse, AppError> {
    export_as(&state, &principal, query.into_inner()).await
}

/// The trail as JSON lines or CSV for an auditor (API and pages); audited.
pub async fn export_as(
    state: &AppState,
    principal: &Principal,
    query: AuditQuery,
) -> Result<HttpResponse, AppError> {
    let format = query.format.clone().unwrap_or_else(|| "jsonl".into());
    if format != "jsonl" && format != "csv" {
        return Err(AppError::bad_request(
            "invalid_format",
            "format must be jsonl or csv",
        ));
    }
    let mut q = query;
    q.limit = Some(q.limit.unwrap_or(EXPORT_LIMIT));
    let f = q.validate(EXPORT_LIMIT)?;
    authorize(state, principal, AuditAction::AuditExport).await?;
    let csv = format == "csv";
    // The first page is read before the status line goes out, so a failing database is
    // a proper error, not a cut-off 200.
    let mut pages = Box::pin(export_stream(state.db.clone(), f, csv));
    let first = pages.next().await.transpose()?.unwrap_or_default();
    let body = futures_util::stream::once(std::future::ready(Ok(first))).chain(pages);
    Ok(HttpResponse::Ok()
        .content_type(if csv {
            "text/csv; charset=utf-8"
        } else {
            "application/x-ndjson"
        })
        .streaming(body))
}

/// Entries fetched per round trip while an export streams: the response is written page
/// by page (newest first, each page before the last one's oldest), never held whole.
pub const EXPORT_CHUNK: i64 = 500;

/// Where a streaming export has got to.
struct ExportState {
    db: Db,
    filter: review::AuditFilter,
    before: Option<i64>,
    left: i64,
    first: bool,
    csv: bool,
}

fn export_stream(
    db: Db,
    filter: review::AuditFilter,
    csv: bool,
) -> impl futures_util::Stream<Item = Result<web::Bytes, AppError>> {
    let start = ExportState {
        db,
        before: filter.before_seq(),
        left: filter.limit,
        filter,
        first: true,
        csv,
    };
    futures_util::stream::unfold(Some(start), |st| async move {
        let mut st = st?;
        let page = st.filter.page(st.before, EXPORT_CHUNK.min(st.left));
        let (items, next) = match st.db.run(move |c| review::search(c, &page)).await {
            Ok(found) => found,
            Err(e) => {
                // The status line is gone; the client sees a cut-off body.
                tracing::error!(error = %e, "audit export stopped");
                return Some((Err(e), None));
            }
        };
        let mut out = Vec::new();
        if st.first && st.csv {
            out.extend_from_slice(review::CSV_HEADER.as_bytes());
        }
        if st.csv {
            match review::csv_rows(&items) {
                Ok(rows) => out.extend_from_slice(&rows),
                Err(e) => return Some((Err(e), None)),
            }
        } else {
            for e in &items {
                match serde_json::to_writer(&mut out, e) {
                    Ok(()) => out.push(b'\n'),
                    Err(e) => return Some((Err(AppError::internal(e)), None)),
                }
            }
        }
        st.first = false;
        st.left -= items.len() as i64;
        st.before = next.and_then(|n| n.parse().ok());
        let more = st.left > 0 && st.before.is_some();
        Some((Ok(web::Bytes::from(out)), more.then_some(st)))
    })
}

#[derive(Debug, Default, Deserialize, IntoParams)]
#[serde(deny_unknown_fields)]
#[into_params(parameter_in = Query)]
pub struct SummaryQuery {
    pub since: Option<String>,
    pub until: Option<String>,
}

#[utoipa::path(get, path = "/api/v1/audit/summary", tag = "audit", params(SummaryQuery), security(("bearer" = [])),
    responses((status = 200, body = Vec<UserActivity>), (status = 400, body = ErrorBody), (status = 401, body = ErrorBody), (status = 403, body = ErrorBody)))]
#[get("/audit/summary")]
pub async fn summary(
    state: web::Data<AppState>,
    principal: Principal,
    query: web::Query<SummaryQuery>,
) -> Result<web::Json<Vec<UserActivity>>, AppError> {
    Ok(web::Json(summarise(&state, &principal, &query).await?))
}

/// Per-user activity for an auditor (API and pages); audited.
pub async fn summarise(
    state: &AppState,
    principal: &Principal,
    query: &SummaryQuery,
) -> Result<Vec<UserActivity>, AppError> {
    let since = query
        .since
        .as_deref()
        .map(|s| parse_time("since", s))
        .transpose()?;
    let until = query
        .until
        .as_deref()
        .map(|s| parse_time("until", s))
        .transpose()?;
    authorize(state, principal, AuditAction::AuditSummary).await?;
    state
        .db
        .run(move |c| review::summary(c, since, until))
        .await
}
