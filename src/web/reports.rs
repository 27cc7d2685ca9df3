//! The lägesbild: the sections released to the user at their places, newest first; for
//! the police a form with a preview "as seen by" each partner, decided by the policy
//! for a stand-in of that partner.

use actix_web::{web, HttpResponse, ResponseError};
use askama::Template;

use super::form::{self, Fields, Shape};
use super::session::{fixable, WebError, WebSession};
use super::{render, time, Frame};
use crate::api::state::AppState;
use crate::policy::{Action, Audience, PrincipalAttrs, Resource};
use crate::records::situation_reports::{
    NewSituationReport, SituationReportView, SituationReports,
};
use crate::records::ListQuery;

/// A report as a page shows it.
pub struct ReportRow {
    pub title: String,
    pub place: String,
    pub from: String,
    pub until: Option<String>,
    pub sections: Vec<(&'static str, String)>,
}

impl ReportRow {
    fn of(v: SituationReportView) -> Self {
        ReportRow {
            title: v.title,
            place: v.place,
            from: time::local(&v.valid_from),
            until: v.valid_until.as_deref().map(time::local),
            sections: v
                .sections
                .into_iter()
                .map(|s| (s.audience.as_str(), s.body))
                .collect(),
        }
    }
}

#[derive(Template)]
#[template(path = "reports.html")]
struct ListPage {
    f: Frame,
    reports: Vec<ReportRow>,
    next: Option<String>,
}

#[derive(serde::Deserialize)]
pub struct ListParams {
    cursor: Option<String>,
}

/// `GET /situation-reports`: those valid now that the user may see, newest first.
pub async fn list(
    state: web::Data<AppState>,
    s: WebSession,
    q: web::Query<ListParams>,
) -> Result<HttpResponse, WebError> {
    let (f, _) = Frame::of(&state, &s, "reports").await?;
    let query = ListQuery {
        current: Some(true),
        limit: Some(20),
        cursor: q.into_inner().cursor,
        ..Default::default()
    };
    let (_, page) =
        crate::api::records::list_page::<SituationReports>(&state, s.bearer.clone(), query)
            .await
            .map_err(|e| s.fail(e))?;
    let next = page
        .next_cursor
        .map(|c| format!("/situation-reports?cursor={c}"));
    let reports = page.items.into_iter().map(ReportRow::of).collect();
    Ok(s.page(render(&ListPage { f, reports, next }).map_err(|e| s.fail(e))?))
}

/// What each partner would see of a draft: (viewer, sections shown).
pub struct Preview {
    pub viewer: &'static str,
    pub sections: Vec<(&'static str, String)>,
}

#[derive(Template)]
#[template(path = "report_new.html")]
struct NewPage {
    f: Frame,
    places: Vec<String>,
    place: String,
    title: String,
    valid_from: String,
    valid_until: String,
    bodies: [String; 3],
    audiences: [&'static str; 3],
    preview: Option<Vec<Preview>>,
    error: Option<String>,
}

const AUDIENCES: [Audience; 3] = [Audience::General, Audience::OnSite, Audience::PoliceOnly];

fn new_page(f: Frame, places: Vec<String>, fields: Option<&Fields>) -> NewPage {
    let get = |name: &str| {
        fields
            .and_then(|x| form::field(x, name))
            .unwrap_or_default()
            .to_owned()
    };
    NewPage {
        place: fields
            .and_then(|x| form::field(x, "place"))
            .map(str::to_owned)
            .or_else(|| places.first().cloned())
            .unwrap_or_default(),
        places,
        title: get("title"),
        valid_from: fields
            .and_then(|x| form::field(x, "valid_from"))
            .map(str::to_owned)
            .unwrap_or_else(|| time::input_value(None)),
        valid_until: get("valid_until"),
        bodies: [
            get("sections[0].body"),
            get("sections[1].body"),
            get("sections[2].body"),
        ],
        audiences: AUDIENCES.map(Audience::as_str),
        preview: None,
        error: None,
        f,
    }
}

/// `GET /situation-reports/new`.
pub async fn new(state: web::Data<AppState>, s: WebSession) -> Result<HttpResponse, WebError> {
    let (f, p) = Frame::of(&state, &s, "reports").await?;
    let page = new_page(f, p.places.clone(), None);
    Ok(s.page(render(&page).map_err(|e| s.fail(e))?))
}

/// The stand-ins a draft is previewed for: a partner of each kind at the report's place.
fn stand_ins(place: &str) -> [(&'static str, PrincipalAttrs); 3] {
    let at = |role: &str, org_kind: &str| PrincipalAttrs {
        user_id: format!("preview-{role}"),
        role: role.to_owned(),
        organization_id: format!("preview-{org_kind}"),
        organization_kind: org_kind.to_owned(),
        mandated_reporter: org_kind != "security",
        places: vec![place.to_owned()],
    };
    [
        ("guard", at("guard", "security")),
        ("social_worker", at("social_worker", "social_services")),
        ("coordinator", at("coordinator", "municipality")),
    ]
}

/// `POST /situation-reports`: `preview` shows the draft as each partner would see it;
/// `publish` posts it through the same service as the API.
pub async fn create(
    state: web::Data<AppState>,
    s: WebSession,
    fields: web::Form<Fields>,
) -> Result<HttpResponse, WebError> {
    s.check_csrf(&fields)?;
    let (f, p) = Frame::of(&state, &s, "reports").await?;
    let shape = Shape {
        numbers: &[],
        flags: &[],
        times: &["valid_from", "valid_until"],
        skip: &["csrf", "preview", "publish"],
    };
    // An empty body means no section of that audience (its hidden audience field stays).
    let empty: Vec<String> = fields
        .iter()
        .filter(|(k, v)| k.ends_with("].body") && v.trim().is_empty())
        .map(|(k, _)| k.trim_end_matches("body").to_owned())
        .collect();
    let kept: Fields = fields
        .iter()
        .filter(|(k, _)| !empty.iter().any(|prefix| k.starts_with(prefix.as_str())))
        .cloned()
        .collect();
    let draft = form::body::<NewSituationReport>(&kept, &shape);
    if form::field(&fields, "preview").is_some() {
        let mut page = new_page(f, p.places.clone(), Some(&fields));
        match draft {
            Ok(d) => {
                let author = &p.attrs;
                page.preview = Some(
                    stand_ins(&d.place)
                        .into_iter()
                        .map(|(viewer, who)| Preview {
                            viewer,
                            sections: d
                                .sections
                                .iter()
                                .filter(|sec| {
                                    Audience::parse(&sec.audience).is_some_and(|audience| {
                                        state.policy.current().is_allowed(
                                            &who,
                                            Action::Read,
                                            &Resource::ReportSection {
                                                audience,
                                                place: d.place.clone(),
                                                author_id: author.user_id.clone(),
                                                author_org_id: author.organization_id.clone(),
                                            },
                                        )
                                    })
                                })
                                .map(|sec| {
                                    let a =
                                        Audience::parse(&sec.audience).map_or("", Audience::as_str);
                                    (a, sec.body.clone())
                                })
                                .collect(),
                        })
                        .collect(),
                );
            }
            Err(e) => page.error = Some(super::i18n::error_text(&e, s.texts())),
        }
        return Ok(s.page(render(&page).map_err(|e| s.fail(e))?));
    }
    let result = match draft {
        Ok(d) => crate::api::situation_reports::post(&state, &p, &d).await,
        Err(e) => Err(e),
    };
    match result {
        Ok(_) => Ok(s.redirect("/situation-reports")),
        Err(e) if fixable(&e) => {
            let status = e.status_code();
            let mut page = new_page(f, p.places.clone(), Some(&fields));
            page.error = Some(super::i18n::error_text(&e, s.texts()));
            Ok(s.refused(status, render(&page).map_err(|e| s.fail(e))?))
        }
        Err(e) => Err(s.fail(e)),
    }
}
