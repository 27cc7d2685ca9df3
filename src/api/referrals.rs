//! `/api/v1/referrals`: every case role files an orosanmälan; social services of the
//! receiving organisation return feedback, record consents and withdraw them.

use actix_web::{get, post, web, HttpResponse};

use super::extractors::JsonBody;
use super::records::{self, Written};
use crate::api::state::AppState;
use crate::audit::{AuditAction, AuditEntry, Outcome};
use crate::auth::{Bearer, Principal};
use crate::error::{AppError, ErrorBody};
use crate::events::{self, EventKind};
use crate::fields::record_id;
use crate::policy::{Action, ReferralPart, Resource};
use crate::records::referrals::{
    self as rf, NewConsent, NewFeedback, NewReferral, ReferralView, Referrals, StoredReferral,
};
use crate::records::visibility::{self, Answer, RecordKind};
use crate::records::{ListQuery, Page};
use crate::storage::models::User;
use crate::storage::{now_micros, DbConnection};

#[utoipa::path(post, path = "/api/v1/referrals", tag = "referrals", request_body = NewReferral,
    security(("bearer" = [])),
    responses((status = 201, body = ReferralView), (status = 400, body = ErrorBody),
              (status = 401, body = ErrorBody), (status = 403, body = ErrorBody), (status = 413, body = ErrorBody)))]
#[post("/referrals")]
pub async fn create(
    state: web::Data<AppState>,
    principal: Principal,
    body: JsonBody<NewReferral>,
) -> Result<HttpResponse, AppError> {
    let (id, answer) = file(&state, &principal, &body).await?;
    Ok(records::created(id, answer))
}

/// Files an orosanmälan (API and pages): its id, and what its filer may see of it.
pub async fn file(
    state: &AppState,
    principal: &Principal,
    body: &NewReferral,
) -> Result<(String, Option<Answer>), AppError> {
    let v = body.validate()?;
    records::known_place(state, v.place.clone()).await?;
    let key = v.receiving_organization.clone();
    let receiving = state.db.run(move |c| rf::receiving_org(c, &key)).await?;
    let d = records::decider(state, principal);
    let resources = vec![rf::create_resource(&v, &receiving.id, &d)];
    records::create::<Referrals, _>(
        state,
        principal,
        resources,
        vec![ReferralPart::ChildAndConcern.as_str()],
        move |c, user, _| {
            let id = rf::insert(c, &v, &receiving, user)?;
            crate::records::visibility::stored::<Referrals>(c, &id)
        },
    )
    .await
}

#[utoipa::path(get, path = "/api/v1/referrals", tag = "referrals", params(ListQuery),
    security(("bearer" = [])),
    responses((status = 200, body = Page<ReferralView>), (status = 400, body = ErrorBody), (status = 401, body = ErrorBody)))]
#[get("/referrals")]
pub async fn list(
    state: web::Data<AppState>,
    bearer: Bearer,
    query: web::Query<ListQuery>,
) -> Result<HttpResponse, AppError> {
    records::list::<Referrals>(&state, bearer, query.into_inner()).await
}

#[utoipa::path(get, path = "/api/v1/referrals/{id}", tag = "referrals",
    params(("id" = String, Path, description = "Referral id")), security(("bearer" = [])),
    responses((status = 200, body = ReferralView), (status = 401, body = ErrorBody), (status = 404, body = ErrorBody)))]
#[get("/referrals/{id}")]
pub async fn get(
    state: web::Data<AppState>,
    bearer: Bearer,
    path: web::Path<String>,
) -> Result<HttpResponse, AppError> {
    records::read::<Referrals>(&state, bearer, &path, None).await
}

/// What a write on an existing referral is: how it is audited, the action the policy is
/// asked about, and the parts it writes (for the audit entry).
struct WriteOn {
    audit: AuditAction,
    action: Action,
    parts: Vec<&'static str>,
    /// 201 (something new was recorded) or 200 (something was changed).
    creates: bool,
}

/// A write on an existing referral, decided and done in one transaction: a referral the
/// user cannot see at all is a 404 (as one that does not exist); one they can see but
/// may not change this way a 403. `decide` names what the write stores (`None`: the
/// target inside the referral does not exist, a 404 too); every one must be allowed
/// under `action`. Each refusal is audited.
async fn write_on<D, W>(
    state: &AppState,
    principal: &Principal,
    raw_id: &str,
    WriteOn {
        audit,
        action,
        parts,
        creates,
    }: WriteOn,
    decide: D,
    write: W,
) -> Result<HttpResponse, AppError>
where
    D: FnOnce(&StoredReferral, i64) -> Option<Vec<Resource>> + Send + 'static,
    W: FnOnce(&mut DbConnection, &str, &User) -> Result<(), AppError> + Send + 'static,
{
    let kind = Referrals::KIND.as_str();
    let Ok(id) = record_id(raw_id) else {
        return Err(records::refuse(state, principal, audit, kind, None, AppError::NotFound).await);
    };
    let d = records::decider(state, principal);
    let p = principal.clone();
    let user = principal.user.clone();
    let rid = id.clone();
    let written = state
        .writer
        .write_as(principal, move |tx| {
            let now = now_micros();
            let refused = |tx: &mut crate::audit::writer::Tx<'_>, err: AppError| {
                tx.audit(&records::refusal(&p, audit, kind, Some(&rid), &err))?;
                Ok::<_, AppError>(Written::Refused(err))
            };
            let Some(target) = visibility::target::<Referrals>(tx.conn, &d, &rid, now)? else {
                return refused(tx, AppError::NotFound);
            };
            let Some(resources) = decide(&target, now) else {
                return refused(tx, AppError::NotFound);
            };
            if !resources.iter().all(|r| d.allows(action, r)) {
                return refused(tx, AppError::Forbidden);
            }
            write(tx.conn, &rid, &user)?;
            tx.audit(
                &AuditEntry::by(&p, audit, Outcome::Success)
                    .record(kind, &rid)
                    .parts(&parts),
            )?;
            let answer: Option<Answer> =
                visibility::read::<Referrals>(tx.conn, &d, &rid, now, None)?;
            Ok(Written::Done(answer))
        })
        .await?;
    let answer = written.into_result()?;
    Ok(match (creates, answer) {
        (true, answer) => records::created(id, answer),
        (false, Some(a)) => HttpResponse::Ok()
            .content_type(actix_web::http::header::ContentType::json())
            .body(a.body),
        (false, None) => HttpResponse::Ok().json(serde_json::json!({ "id": id })),
    })
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
    body: JsonBody<NewFeedback>,
) -> Result<HttpResponse, AppError> {
    give_feedback(&state, &principal, &path, &body).await
}

/// Records social services' feedback on a referral (API and pages).
pub async fn give_feedback(
    state: &AppState,
    principal: &Principal,
    id: &str,
    body: &NewFeedback,
) -> Result<HttpResponse, AppError> {
    let (status, note) = body.validate()?;
    let with_note = note.is_some();
    let mut parts = vec![ReferralPart::FeedbackStatus.as_str()];
    if with_note {
        parts.push(ReferralPart::SocialNotes.as_str());
    }
    write_on(
        state,
        principal,
        id,
        WriteOn {
            audit: AuditAction::Feedback,
            action: Action::WriteFeedback,
            parts,
            creates: true,
        },
        move |s, _| Some(rf::feedback_resources(s, with_note)),
        move |c, id, user| {
            rf::insert_feedback(c, id, &status, note, user)?;
            Ok(events::record(c, EventKind::ReferralFeedback, id)?)
        },
    )
    .await
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
    body: JsonBody<NewConsent>,
) -> Result<HttpResponse, AppError> {
    record_consent(&state, &principal, &path, &body).await
}

/// Records a consent on a referral (API and pages).
pub async fn record_consent(
    state: &AppState,
    principal: &Principal,
    id: &str,
    body: &NewConsent,
) -> Result<HttpResponse, AppError> {
    let c = body.validate()?;
    let decided = c.clone();
    write_on(
        state,
        principal,
        id,
        WriteOn {
            audit: AuditAction::Consent,
            action: Action::RecordConsent,
            parts: vec![
                ReferralPart::ReleasedDetails.as_str(),
                ReferralPart::SocialNotes.as_str(),
            ],
            creates: true,
        },
        move |s, _| Some(rf::consent_resources(s, &decided)),
        move |conn, id, user| {
            rf::insert_consent(conn, id, &c, user)?;
            Ok(events::record(conn, EventKind::ReferralFeedback, id)?)
        },
    )
    .await
}

#[utoipa::path(post, path = "/api/v1/referrals/{id}/consents/{consent_id}/withdraw", tag = "referrals",
    params(("id" = String, Path, description = "Referral id"), ("consent_id" = String, Path, description = "The consent's id (in `consents`)")),
    security(("bearer" = [])),
    responses((status = 200, description = "withdrawn: the details it released are hidden from now on", body = ReferralView),
              (status = 401, body = ErrorBody), (status = 403, body = ErrorBody), (status = 404, body = ErrorBody)))]
#[post("/referrals/{id}/consents/{consent_id}/withdraw")]
pub async fn withdraw_consent(
    state: web::Data<AppState>,
    principal: Principal,
    path: web::Path<(String, String)>,
) -> Result<HttpResponse, AppError> {
    let (id, consent_id) = path.into_inner();
    let consent_id = record_id(&consent_id).unwrap_or_default();
    let target = consent_id.clone();
    write_on(
        &state,
        &principal,
        &id,
        WriteOn {
            audit: AuditAction::ConsentWithdraw,
            action: Action::WithdrawConsent,
            parts: vec![ReferralPart::ReleasedDetails.as_str()],
            creates: false,
        },
        move |s, now| rf::withdraw_resources(s, &target, now),
        move |c, id, user| {
            rf::withdraw_consent(c, id, &consent_id, user)?;
            Ok(events::record(c, EventKind::ReferralFeedback, id)?)
        },
    )
    .await
}
