//! Observations: a guard files one in under half a minute (place from the assignment,
//! category as big buttons, time defaulting to now); lists show what the policy allows.

use actix_web::{web, HttpResponse, ResponseError};
use askama::Template;

use super::form::{self, Fields, Shape};
use super::session::{fixable, WebError, WebSession};
use super::{render, time, Frame};
use crate::api::state::AppState;
use crate::records::observations::{NewObservation, ObservationView, Observations, CATEGORIES};
use crate::records::ListQuery;

/// An observation as a page shows it: parts the user may not see are absent.
pub struct ObservationRow {
    pub place: String,
    pub when: String,
    pub category: Option<String>,
    pub pseudonym: Option<String>,
    pub description: Option<String>,
    /// (description, birth year, age uncertain)
    pub persons: Option<Vec<(String, Option<i32>, bool)>>,
    pub reporter: Option<String>,
}

impl ObservationRow {
    fn of(v: ObservationView) -> Self {
        ObservationRow {
            place: v.place,
            when: time::local(v.observed_at.as_deref().unwrap_or(&v.created_at)),
            category: v.category,
            pseudonym: v.reporter_pseudonym,
            description: v.description,
            persons: v.persons.map(|ps| {
                ps.into_iter()
                    .map(|p| (p.description, p.estimated_birth_year, p.age_uncertain))
                    .collect()
            }),
            reporter: v
                .reporter
                .map(|r| format!("{} ({})", r.display_name, r.organization)),
        }
    }
}

#[derive(Template)]
#[template(path = "observations.html")]
struct ListPage {
    f: Frame,
    items: Vec<ObservationRow>,
    places: Vec<String>,
    place: String,
    categories: &'static [&'static str],
    category: String,
    since: String,
    until: String,
    next: Option<String>,
}

#[derive(serde::Deserialize)]
pub struct Filters {
    place: Option<String>,
    category: Option<String>,
    since: Option<String>,
    until: Option<String>,
    cursor: Option<String>,
}

/// `GET /observations`: newest first, by place and time.
pub async fn list(
    state: web::Data<AppState>,
    s: WebSession,
    q: web::Query<Filters>,
) -> Result<HttpResponse, WebError> {
    let (f, p) = Frame::of(&state, &s, "observations").await?;
    let q = q.into_inner();
    let nonempty = |v: &Option<String>| {
        v.as_deref()
            .map(str::trim)
            .filter(|v| !v.is_empty())
            .map(str::to_owned)
    };
    let (place, since, until) = (nonempty(&q.place), nonempty(&q.since), nonempty(&q.until));
    let category = nonempty(&q.category);
    let query = ListQuery {
        place: place.clone(),
        since: since
            .as_deref()
            .map(|t| time::from_input(t).unwrap_or_else(|| t.to_owned())),
        until: until
            .as_deref()
            .map(|t| time::from_input(t).unwrap_or_else(|| t.to_owned())),
        limit: Some(50),
        cursor: q.cursor,
        current: None,
        category: category.clone(),
    };
    let (_, page) = crate::api::records::list_page::<Observations>(&state, s.bearer.clone(), query)
        .await
        .map_err(|e| s.fail(e))?;
    let next = page.next_cursor.map(|c| {
        let mut link = format!("/observations?cursor={c}");
        for (k, v) in [
            ("place", &place),
            ("category", &category),
            ("since", &since),
            ("until", &until),
        ] {
            if let Some(v) = v {
                link.push_str(&format!("&{k}={}", urlencode(v)));
            }
        }
        link
    });
    let page = ListPage {
        items: page.items.into_iter().map(ObservationRow::of).collect(),
        places: p.places.clone(),
        place: place.unwrap_or_default(),
        categories: CATEGORIES,
        category: category.unwrap_or_default(),
        since: since.unwrap_or_default(),
        until: until.unwrap_or_default(),
        next,
        f,
    };
    Ok(s.page(render(&page).map_err(|e| s.fail(e))?))
}

pub fn urlencode(v: &str) -> String {
    v.bytes()
        .map(|b| match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'_' | b'.' => (b as char).to_string(),
            _ => format!("%{b:02X}"),
        })
        .collect()
}

#[derive(Template)]
#[template(path = "observation_new.html")]
struct NewPage {
    f: Frame,
    places: Vec<String>,
    place: String,
    categories: &'static [&'static str],
    category: String,
    observed_at: String,
    description: String,
    /// (description, birth year, age uncertain) per slot.
    persons: Vec<(String, String, bool)>,
    error: Option<String>,
}

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
        categories: CATEGORIES,
        category: get("category"),
        observed_at: fields
            .and_then(|x| form::field(x, "observed_at"))
            .map(str::to_owned)
            .unwrap_or_else(|| time::input_value(None)),
        description: get("description"),
        persons: (0..3)
            .map(|i| {
                (
                    get(&format!("persons[{i}].description")),
                    get(&format!("persons[{i}].estimated_birth_year")),
                    !get(&format!("persons[{i}].age_uncertain")).is_empty(),
                )
            })
            .collect(),
        error: None,
        f,
    }
}

/// `GET /observations/new`.
pub async fn new(state: web::Data<AppState>, s: WebSession) -> Result<HttpResponse, WebError> {
    let (f, p) = Frame::of(&state, &s, "observations").await?;
    let page = new_page(f, p.places.clone(), None);
    Ok(s.page(render(&page).map_err(|e| s.fail(e))?))
}

/// `POST /observations`: filed through the same service as the API.
pub async fn create(
    state: web::Data<AppState>,
    s: WebSession,
    fields: web::Form<Fields>,
) -> Result<HttpResponse, WebError> {
    s.check_csrf(&fields)?;
    let (f, p) = Frame::of(&state, &s, "observations").await?;
    let shape = Shape {
        numbers: &["estimated_birth_year"],
        flags: &["age_uncertain"],
        times: &["observed_at"],
        skip: &["csrf"],
    };
    let result = match form::body::<NewObservation>(&fields, &shape) {
        Ok(body) => crate::api::observations::file(&state, &p, &body).await,
        Err(e) => Err(e),
    };
    match result {
        Ok(_) => Ok(s.redirect("/observations")),
        Err(e) if fixable(&e) => {
            let status = e.status_code();
            let mut page = new_page(f, p.places.clone(), Some(&fields));
            page.error = Some(super::i18n::error_text(&e, s.texts()));
            Ok(s.refused(status, render(&page).map_err(|e| s.fail(e))?))
        }
        Err(e) => Err(s.fail(e)),
    }
}
