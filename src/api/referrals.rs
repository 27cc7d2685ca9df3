//! `/api/v1/referrals`: anyone mandated files an orosanmälan; social services of the
//! receiving organisation return feedback and record consents.

use actix_web::{get, post, web, HttpResponse};

use crate::app::AppState;
use crate::audit::AuditEntry;
use crate::auth::principal::Bearer;
use crate::auth::Principal;
use crate::error::{AppError, ErrorBody};
use crate::policy::Action;
use crate::records::observations::place_exists;
use crate::records::referrals::{self as rf, NewConsent, NewFeedback, NewReferral, ReferralView};
use crate::records::{record_id, Decider, ListQuery, Page};
use crate::storage::models::Referral;

const KIND: &str = "referral";

#[utoipa::path(post, path = "/api/v1/referrals", tag = "referrals", request_body = NewReferral,
    security(("bearer" = [])),
    responses((status = 201, body = ReferralView), (status = 400, body = ErrorBody),
              (status = 401, body = ErrorBody), (status = 403, body = ErrorBody), (status = 413, body = ErrorBody)))]
#[post("/referrals")]
pub async fn create(
    state: web::Data<AppState>,
    principal: Principal,
    body: super::JsonBody<NewReferral>,
) -> Result<HttpResponse, AppError> {
    let v = body.validate()?;
    let (key, place) = (v.receiving_organization.clone(), v.place.clone());
    let receiving = state
        .db
        .run(move |c| {
            if let Some(p) = &place {
                if !place_exists(c, p)? {
                    return Err(AppError::bad_request(
                        "unknown_place",
                        "place is not a known place (see GET /api/v1/places)",
                    ));
                }
            }
            rf::receiving_org(c, &key)
        })
        .await?;
    let d = super::decider(&state, &principal);
    if !d.allows(Action::Create, &rf::create_resource(&v, &receiving.id, &d)) {
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
    let (id, shown) = state
        .writer
        .write(move |tx| {
            let id = rf::insert(tx.conn, &v, &receiving, &user)?;
            tx.audit(&entry.record(KIND, &id).parts(&[rf::PART_CHILD]))?;
            let shown = rf::get(tx.conn, &d, &id)?;
            Ok((id, shown))
        })
        .await?;
    Ok(super::created(id, shown.map(|s| s.view)))
}

#[utoipa::path(get, path = "/api/v1/referrals", tag = "referrals", params(ListQuery),
    security(("bearer" = [])),
    responses((status = 200, body = Page<ReferralView>), (status = 400, body = ErrorBody), (status = 401, body = ErrorBody)))]
#[get("/referrals")]
pub async fn list(
    state: web::Data<AppState>,
    bearer: Bearer,
    query: web::Query<ListQuery>,
) -> Result<web::Json<Page<ReferralView>>, AppError> {
    super::list_records(&state, bearer, &query, KIND, rf::list).await
}

#[utoipa::path(get, path = "/api/v1/referrals/{id}", tag = "referrals",
    params(("id" = String, Path, description = "Referral id")), security(("bearer" = [])),
    responses((status = 200, body = ReferralView), (status = 401, body = ErrorBody), (status = 404, body = ErrorBody)))]
#[get("/referrals/{id}")]
pub async fn get(
    state: web::Data<AppState>,
    bearer: Bearer,
    path: web::Path<String>,
) -> Result<web::Json<ReferralView>, AppError> {
    super::get_record(&state, bearer, &path, KIND, rf::get).await
}

/// Loads a referral for a write on it: a referral the user cannot see at all is a 404,
/// one they can see but may not change this way a 403.
async fn target(
    state: &AppState,
    principal: &Principal,
    d: &Decider,
    id: &str,
    action: Action,
    part_kind: &'static str,
    audit_action: &str,
) -> Result<Referral, AppError> {
    let (lookup, dd) = (id.to_owned(), d.clone());
    let found = state
        .db
        .run(move |c| {
            let visible = rf::get(c, &dd, &lookup)?.is_some();
            Ok(rf::load(c, &lookup)?.filter(|_| visible))
        })
        .await?;
    let Some(r) = found else {
        return Err(super::refuse(
            state,
            principal,
            audit_action,
            KIND,
            Some(id),
            AppError::NotFound,
        )
        .await);
    };
    if !d.allows(action, &rf::part(part_kind, &r, true)) {
        return Err(super::refuse(
            state,
            principal,
            audit_action,
            KIND,
            Some(id),
            AppError::Forbidden,
        )
        .await);
    }
    Ok(r)
}

#[utoipa::path(post, path = "/api/v1/referrals/{id}/feedback", tag = "referrals", request_body = NewFeedback,
    params(("id" = String, Path, description = "Referral id")), security(("bearer" = [])),
    responses((status = 201, body = ReferralView), (status = 400, body = ErrorBody), (status = 401, body = ErrorBody),
              (status = 403, body = ErrorBody), (status = 404, body = ErrorBody)))]
#[post("/referrals/{id}/feedback")]
pub async fn feedback(
    state: web::Data<AppState>,
    principal: Principal,
    path: web::Path<String>,
    body: super::JsonBody<NewFeedback>,
) -> Result<HttpResponse, AppError> {
    let id = record_id(&path)?;
    let (status, note) = body.validate()?;
    let d = super::decider(&state, &principal);
    target(
        &state,
        &principal,
        &d,
        &id,
        Action::WriteFeedback,
        rf::PART_STATUS,
        "feedback",
    )
    .await?;
    let user = principal.user.clone();
    let mut parts = vec![rf::PART_STATUS];
    if note.is_some() {
        parts.push(rf::PART_NOTES);
    }
    let entry = AuditEntry::new("feedback", "success", &principal.meta)
        .actor(principal.actor())
        .record(KIND, &id)
        .parts(&parts);
    let rid = id.clone();
    let shown = state
        .writer
        .write(move |tx| {
            rf::insert_feedback(tx.conn, &rid, &status, note, &user)?;
            tx.audit(&entry)?;
            rf::get(tx.conn, &d, &rid)
        })
        .await?;
    Ok(super::created(id, shown.map(|s| s.view)))
}

#[utoipa::path(post, path = "/api/v1/referrals/{id}/consents", tag = "referrals", request_body = NewConsent,
    params(("id" = String, Path, description = "Referral id")), security(("bearer" = [])),
    responses((status = 201, body = ReferralView), (status = 400, body = ErrorBody), (status = 401, body = ErrorBody),
              (status = 403, body = ErrorBody), (status = 404, body = ErrorBody)))]
#[post("/referrals/{id}/consents")]
pub async fn consent(
    state: web::Data<AppState>,
    principal: Principal,
    path: web::Path<String>,
    body: super::JsonBody<NewConsent>,
) -> Result<HttpResponse, AppError> {
    let id = record_id(&path)?;
    let c = body.validate()?;
    let d = super::decider(&state, &principal);
    target(
        &state,
        &principal,
        &d,
        &id,
        Action::RecordConsent,
        rf::PART_RELEASED,
        "consent",
    )
    .await?;
    let user = principal.user.clone();
    let entry = AuditEntry::new("consent", "success", &principal.meta)
        .actor(principal.actor())
        .record(KIND, &id)
        .parts(&[rf::PART_RELEASED, rf::PART_NOTES]);
    let rid = id.clone();
    let shown = state
        .writer
        .write(move |tx| {
            rf::insert_consent(tx.conn, &rid, &c, &user)?;
            tx.audit(&entry)?;
            rf::get(tx.conn, &d, &rid)
        })
        .await?;
    Ok(super::created(id, shown.map(|s| s.view)))
}
