//! Orosanmälningar: anyone files one; social services work through their inbox (pending
//! first, days since filing, the 14-day decision date), answer with one click and
//! record consents; the filer sees the status and, under consent, the released details.

use actix_web::{web, HttpResponse, ResponseError};
use askama::Template;

use super::form::{self, Fields, Shape};
use super::session::{fixable, WebError, WebSession};
use super::{render, time, Frame};
use crate::api::state::AppState;
use crate::error::AppError;
use crate::records::referrals::{
    NewConsent, NewFeedback, NewReferral, ReferralView, Referrals, GIVEN_BY, STATUSES,
};
use crate::records::ListQuery;

/// Days social services have to decide whether to open an investigation (SoL 11:1a).
const DECISION_DAYS: i64 = 14;

pub struct ReferralRow {
    pub id: String,
    pub filed: String,
    pub days: i64,
    pub due: String,
    pub overdue: bool,
    pub place: Option<String>,
    pub child: Option<String>,
    pub concern: Option<String>,
    pub status: Option<String>,
    pub receiving: String,
    pub reporter_organization: Option<String>,
}

fn child_label(v: &ReferralView) -> Option<String> {
    v.child.as_ref().map(|c| {
        [c.name.clone(), c.alias.clone(), c.description.clone()]
            .into_iter()
            .flatten()
            .collect::<Vec<_>>()
            .join(" · ")
    })
}

impl ReferralRow {
    fn of(v: &ReferralView) -> Self {
        let days = time::days_since(&v.created_at);
        let status = v.status.clone();
        ReferralRow {
            id: v.id.clone(),
            filed: time::local(&v.created_at),
            days,
            due: time::local_plus_days(&v.created_at, DECISION_DAYS),
            overdue: status.as_deref() == Some("pending") && days > DECISION_DAYS,
            place: v.place.clone(),
            child: child_label(v),
            concern: v.concern.clone(),
            status,
            receiving: v.receiving_organization.name.clone(),
            reporter_organization: v.reporter_organization.clone(),
        }
    }
}

#[derive(Template)]
#[template(path = "referrals.html")]
struct ListPage {
    f: Frame,
    items: Vec<ReferralRow>,
    next: Option<String>,
}

#[derive(serde::Deserialize)]
pub struct ListParams {
    cursor: Option<String>,
}

/// `GET /referrals`: pending first, then newest first.
pub async fn list(
    state: web::Data<AppState>,
    s: WebSession,
    q: web::Query<ListParams>,
) -> Result<HttpResponse, WebError> {
    let (f, _) = Frame::of(&state, &s, "referrals").await?;
    let query = ListQuery {
        limit: Some(100),
        cursor: q.into_inner().cursor,
        ..Default::default()
    };
    let (_, page) = crate::api::records::list_page::<Referrals>(&state, s.bearer.clone(), query)
        .await
        .map_err(|e| s.fail(e))?;
    let mut items: Vec<ReferralRow> = page.items.iter().map(ReferralRow::of).collect();
    // Stable: within each group the list's newest-first order stays.
    items.sort_by_key(|r| r.status.as_deref() != Some("pending"));
    let next = page.next_cursor.map(|c| format!("/referrals?cursor={c}"));
    Ok(s.page(render(&ListPage { f, items, next }).map_err(|e| s.fail(e))?))
}

#[derive(Template)]
#[template(path = "referral.html")]
struct ShowPage {
    f: Frame,
    r: ReferralRow,
    v: ReferralView,
    statuses: &'static [&'static str],
    given_by: &'static [&'static str],
    consent_until: String,
    error: Option<String>,
}

async fn show_page(
    state: &AppState,
    s: &WebSession,
    id: &str,
    error: Option<String>,
) -> Result<String, WebError> {
    let (f, _) = Frame::of(state, s, "referrals").await?;
    let (_, answer) =
        crate::api::records::read_answer::<Referrals>(state, s.bearer.clone(), id, None)
            .await
            .map_err(|e| s.fail(e))?;
    let v: ReferralView =
        serde_json::from_slice(&answer.body).map_err(|e| s.fail(AppError::internal(e)))?;
    let page = ShowPage {
        r: ReferralRow::of(&v),
        v,
        statuses: &STATUSES[1..],
        given_by: GIVEN_BY,
        consent_until: time::input_value(Some(
            &(jiff::Timestamp::now() + jiff::SignedDuration::from_hours(24 * 90)).to_string(),
        )),
        error,
        f,
    };
    render(&page).map_err(|e| s.fail(e))
}

/// `GET /referrals/{id}`: the referral as the user may see it; the same 404 page for
/// one that does not exist and one the user may not see.
pub async fn show(
    state: web::Data<AppState>,
    s: WebSession,
    path: web::Path<String>,
) -> Result<HttpResponse, WebError> {
    let body = show_page(&state, &s, &path, None).await?;
    Ok(s.page(body))
}

/// After a write on a referral: back to it, or the page again with the reason.
async fn after_write(
    state: &AppState,
    s: &WebSession,
    id: &str,
    result: Result<HttpResponse, AppError>,
) -> Result<HttpResponse, WebError> {
    match result {
        Ok(_) => Ok(s.redirect(&format!("/referrals/{id}"))),
        Err(e) if fixable(&e) => {
            let status = e.status_code();
            let body =
                show_page(state, s, id, Some(super::i18n::error_text(&e, s.texts()))).await?;
            Ok(s.refused(status, body))
        }
        Err(e) => Err(s.fail(e)),
    }
}

/// `POST /referrals/{id}/feedback`: one click sets the status (with an optional note).
pub async fn feedback(
    state: web::Data<AppState>,
    s: WebSession,
    path: web::Path<String>,
    fields: web::Form<Fields>,
) -> Result<HttpResponse, WebError> {
    s.check_csrf(&fields)?;
    let p = s.principal(&state).await?;
    let shape = Shape {
        numbers: &[],
        flags: &[],
        times: &[],
        skip: &["csrf"],
    };
    let result = match form::body::<NewFeedback>(&fields, &shape) {
        Ok(body) => crate::api::referrals::give_feedback(&state, &p, &path, &body).await,
        Err(e) => Err(e),
    };
    after_write(&state, &s, &path, result).await
}

/// `POST /referrals/{id}/consents`: records a consent (samtycke).
pub async fn consent(
    state: web::Data<AppState>,
    s: WebSession,
    path: web::Path<String>,
    fields: web::Form<Fields>,
) -> Result<HttpResponse, WebError> {
    s.check_csrf(&fields)?;
    let p = s.principal(&state).await?;
    let shape = Shape {
        numbers: &[],
        flags: &[],
        times: &["valid_until"],
        skip: &["csrf"],
    };
    let result = match form::body::<NewConsent>(&fields, &shape) {
        Ok(body) => crate::api::referrals::record_consent(&state, &p, &path, &body).await,
        Err(e) => Err(e),
    };
    after_write(&state, &s, &path, result).await
}

#[derive(Template)]
#[template(path = "referral_new.html")]
struct NewPage {
    f: Frame,
    organizations: Vec<(String, String)>,
    places: Vec<String>,
    values: Fields,
    error: Option<String>,
}

impl NewPage {
    fn value(&self, name: &str) -> &str {
        form::field(&self.values, name).unwrap_or_default()
    }
}

async fn new_page(
    state: &AppState,
    s: &WebSession,
    values: Fields,
    error: Option<String>,
) -> Result<String, WebError> {
    let (f, _) = Frame::of(state, s, "referrals").await?;
    let orgs = state
        .db
        .run(crate::api::reference::all_organizations)
        .await
        .map_err(|e| s.fail(e))?;
    let places = state
        .db
        .run(crate::api::reference::all_places)
        .await
        .map_err(|e| s.fail(e))?;
    let page = NewPage {
        // Referrals go to social services (the one rule of this kind kept in code; see
        // policies/README.md).
        organizations: orgs
            .into_iter()
            .filter(|o| o.kind == crate::policy::OrganizationKind::SocialServices.as_str())
            .map(|o| (o.id, o.name))
            .collect(),
        places: places.into_iter().map(|p| p.id).collect(),
        values,
        error,
        f,
    };
    render(&page).map_err(|e| s.fail(e))
}

/// `GET /referrals/new`.
pub async fn new(state: web::Data<AppState>, s: WebSession) -> Result<HttpResponse, WebError> {
    let body = new_page(&state, &s, Vec::new(), None).await?;
    Ok(s.page(body))
}

/// `POST /referrals`: filed through the same service as the API.
pub async fn create(
    state: web::Data<AppState>,
    s: WebSession,
    fields: web::Form<Fields>,
) -> Result<HttpResponse, WebError> {
    s.check_csrf(&fields)?;
    let p = s.principal(&state).await?;
    let shape = Shape {
        numbers: &["estimated_birth_year"],
        flags: &["age_uncertain"],
        times: &[],
        skip: &["csrf"],
    };
    let result = match form::body::<NewReferral>(&fields, &shape) {
        Ok(body) => crate::api::referrals::file(&state, &p, &body).await,
        Err(e) => Err(e),
    };
    match result {
        Ok((id, _)) => Ok(s.redirect(&format!("/referrals/{id}"))),
        Err(e) if fixable(&e) => {
            let status = e.status_code();
            let body = new_page(
                &state,
                &s,
                fields.into_inner(),
                Some(super::i18n::error_text(&e, s.texts())),
            )
            .await?;
            Ok(s.refused(status, body))
        }
        Err(e) => Err(s.fail(e)),
    }
}
