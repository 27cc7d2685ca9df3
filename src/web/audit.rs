//! The auditor's page: search the trail (by user, record, action, time), per-user
//! activity, the chain's head to compare with the anchored copy, verification on
//! request, and the export. Every search is itself audited (as through the API).

use actix_web::{web, HttpResponse};
use askama::Template;

use super::session::{WebError, WebSession};
use super::{render, time, Frame};
use crate::api::audit::SummaryQuery;
use crate::api::state::AppState;
use crate::audit::review::{AuditEntryView, AuditQuery, UserActivity};
use crate::policy::{Action, Resource};

#[derive(Template)]
#[template(path = "audit.html")]
struct AuditPage {
    f: Frame,
    actor: String,
    record: String,
    action: String,
    purpose: String,
    since: String,
    until: String,
    entries: Vec<AuditEntryView>,
    summary: Vec<UserActivity>,
    /// Every writer's chain: its id and head.
    heads: Vec<(i64, crate::audit::ChainHead)>,
    verified: Option<String>,
    export: String,
    next: Option<String>,
}

impl AuditPage {
    fn at(&self, e: &AuditEntryView) -> String {
        time::local(&e.at)
    }
}

#[derive(serde::Deserialize, Default)]
pub struct Search {
    actor: Option<String>,
    record: Option<String>,
    action: Option<String>,
    purpose: Option<String>,
    since: Option<String>,
    until: Option<String>,
    cursor: Option<String>,
    verify: Option<String>,
}

fn filled(v: &Option<String>) -> Option<String> {
    v.as_deref()
        .map(str::trim)
        .filter(|v| !v.is_empty())
        .map(str::to_owned)
}

fn query_of(q: &Search) -> AuditQuery {
    let time = |v: &Option<String>| filled(v).map(|t| time::from_input(&t).unwrap_or(t));
    AuditQuery {
        actor: filled(&q.actor),
        record: filled(&q.record),
        action: filled(&q.action),
        purpose: filled(&q.purpose),
        since: time(&q.since),
        until: time(&q.until),
        cursor: filled(&q.cursor),
        limit: Some(100),
        ..Default::default()
    }
}

/// `GET /audit`.
pub async fn search(
    state: web::Data<AppState>,
    s: WebSession,
    q: web::Query<Search>,
) -> Result<HttpResponse, WebError> {
    let (f, p) = Frame::of(&state, &s, "audit").await?;
    let q = q.into_inner();
    let page = crate::api::audit::search(&state, &p, &query_of(&q))
        .await
        .map_err(|e| s.fail(e))?;
    let summary_query = SummaryQuery {
        since: query_of(&q).since,
        until: query_of(&q).until,
    };
    let summary = crate::api::audit::summarise(&state, &p, &summary_query)
        .await
        .map_err(|e| s.fail(e))?;
    // Verification walks the whole chain: on request only, and only for those who may
    // read the trail (the search above already asked).
    let verify = q.verify.is_some()
        && state
            .policy
            .current()
            .is_allowed(&p.attrs, Action::ReadAudit, &Resource::AuditLog);
    let (heads, verified) = state
        .db
        .run(move |c| {
            let heads = crate::audit::heads(c)?;
            let verified = if verify {
                Some(match crate::audit::verify(c)? {
                    Ok(sum) => format!("ok: {} · {} chain(s)", sum.entries, sum.chains.len()),
                    Err(fault) => format!("FAULT: {fault:?}"),
                })
            } else {
                None
            };
            Ok((heads, verified))
        })
        .await
        .map_err(|e| s.fail(e))?;
    let mut params = String::new();
    for (k, v) in [
        ("actor", &q.actor),
        ("record", &q.record),
        ("action", &q.action),
        ("purpose", &q.purpose),
        ("since", &q.since),
        ("until", &q.until),
    ] {
        if let Some(v) = filled(v) {
            params.push_str(&format!("&{k}={}", super::observations::urlencode(&v)));
        }
    }
    let page = AuditPage {
        actor: filled(&q.actor).unwrap_or_default(),
        record: filled(&q.record).unwrap_or_default(),
        action: filled(&q.action).unwrap_or_default(),
        purpose: filled(&q.purpose).unwrap_or_default(),
        since: filled(&q.since).unwrap_or_default(),
        until: filled(&q.until).unwrap_or_default(),
        entries: page.items,
        summary,
        heads,
        verified,
        export: format!("/audit/export?format=csv{params}"),
        next: page
            .next_cursor
            .map(|c| format!("/audit?cursor={c}{params}")),
        f,
    };
    Ok(s.page(render(&page).map_err(|e| s.fail(e))?))
}

/// `GET /audit/export`: the search as CSV (audited as an export).
pub async fn export(
    state: web::Data<AppState>,
    s: WebSession,
    q: web::Query<Search>,
) -> Result<HttpResponse, WebError> {
    let p = s.principal(&state).await?;
    let mut query = query_of(&q);
    query.limit = None;
    query.format = Some("csv".into());
    let mut r = crate::api::audit::export_as(&state, &p, query)
        .await
        .map_err(|e| s.fail(e))?;
    r.headers_mut().insert(
        actix_web::http::header::CONTENT_DISPOSITION,
        actix_web::http::header::HeaderValue::from_static("attachment; filename=\"audit.csv\""),
    );
    Ok(r)
}
