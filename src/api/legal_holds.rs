//! `/api/v1/legal-holds…`: putting a record under legal hold stops its retention erasure.
//! Who may is decided by the policy only (action `administer` on the admin kind
//! `legal_holds`). The answer names the record's kind and id, never its content; an
//! unknown record is a 404. Every change is audited (`legal_hold_set`,
//! `legal_hold_cleared`); the reason goes in the `X-Purpose` header.

use actix_web::{delete, get, put, web};

use super::records::refuse;
use crate::api::state::AppState;
use crate::audit::{AuditAction, AuditEntry, Outcome};
use crate::auth::Principal;
use crate::error::{AppError, ErrorBody};
use crate::fields::record_id;
use crate::policy::{Action, AdminKind, Resource};
use crate::retention::{self, LegalHold, RecordKind};

async fn authorize(
    state: &AppState,
    principal: &Principal,
    action: AuditAction,
) -> Result<(), AppError> {
    let resource = Resource::Admin {
        kind: AdminKind::LegalHolds,
    };
    if state
        .policy
        .current()
        .is_allowed(&principal.attrs, Action::Administer, &resource)
    {
        Ok(())
    } else {
        Err(refuse(
            state,
            principal,
            action,
            "legal_hold",
            None,
            AppError::Forbidden,
        )
        .await)
    }
}

async fn change(
    state: &AppState,
    principal: &Principal,
    (kind, id): (String, String),
    hold: bool,
) -> Result<web::Json<LegalHold>, AppError> {
    let action = if hold {
        AuditAction::LegalHoldSet
    } else {
        AuditAction::LegalHoldCleared
    };
    authorize(state, principal, action).await?;
    let (kind, id) = match (RecordKind::parse(&kind), record_id(&id)) {
        (Some(kind), Ok(id)) => (kind, id),
        _ => {
            let err = AppError::NotFound;
            return Err(refuse(state, principal, action, "legal_hold", None, err).await);
        }
    };
    let entry = AuditEntry::by(principal, action, Outcome::Success).record(kind.as_str(), &id);
    let target = id.clone();
    let result = state
        .writer
        .write_as(principal, move |tx| {
            retention::set_hold(tx.conn, kind, &target, hold)?;
            tx.audit(&entry)
        })
        .await;
    match result {
        Ok(()) => Ok(web::Json(LegalHold {
            kind,
            id,
            legal_hold: hold,
        })),
        Err(AppError::NotFound) => Err(refuse(
            state,
            principal,
            action,
            kind.as_str(),
            Some(&id),
            AppError::NotFound,
        )
        .await),
        Err(e) => Err(e),
    }
}

#[utoipa::path(put, path = "/api/v1/legal-holds/{kind}/{id}", tag = "legal_holds",
    params(("kind" = RecordKind, Path, description = "observation | situation_report | referral"),
           ("id" = String, Path, description = "the record's id")),
    security(("bearer" = [])),
    responses((status = 200, description = "the record is under legal hold: retention keeps it", body = LegalHold),
              (status = 401, body = ErrorBody), (status = 403, body = ErrorBody), (status = 404, body = ErrorBody)))]
#[put("/legal-holds/{kind}/{id}")]
pub async fn set(
    state: web::Data<AppState>,
    principal: Principal,
    path: web::Path<(String, String)>,
) -> Result<web::Json<LegalHold>, AppError> {
    change(&state, &principal, path.into_inner(), true).await
}

#[utoipa::path(delete, path = "/api/v1/legal-holds/{kind}/{id}", tag = "legal_holds",
    params(("kind" = RecordKind, Path, description = "observation | situation_report | referral"),
           ("id" = String, Path, description = "the record's id")),
    security(("bearer" = [])),
    responses((status = 200, description = "the hold is lifted: retention erases the record when it is due", body = LegalHold),
              (status = 401, body = ErrorBody), (status = 403, body = ErrorBody), (status = 404, body = ErrorBody)))]
#[delete("/legal-holds/{kind}/{id}")]
pub async fn clear(
    state: web::Data<AppState>,
    principal: Principal,
    path: web::Path<(String, String)>,
) -> Result<web::Json<LegalHold>, AppError> {
    change(&state, &principal, path.into_inner(), false).await
}

#[utoipa::path(get, path = "/api/v1/legal-holds", tag = "legal_holds", security(("bearer" = [])),
    responses((status = 200, description = "every record under legal hold (kind and id only)", body = Vec<LegalHold>),
              (status = 401, body = ErrorBody), (status = 403, body = ErrorBody)))]
#[get("/legal-holds")]
pub async fn list(
    state: web::Data<AppState>,
    principal: Principal,
) -> Result<web::Json<Vec<LegalHold>>, AppError> {
    authorize(&state, &principal, AuditAction::LegalHoldList).await?;
    let holds = state.db.run(retention::holds).await?;
    let e = AuditEntry::by(&principal, AuditAction::LegalHoldList, Outcome::Success);
    state
        .writer
        .write_as(&principal, move |tx| tx.audit(&e))
        .await?;
    Ok(web::Json(holds))
}
