//! The administrator's page: organisations, places and accounts (create, disable,
//! enable, reset a password, assign places) through the same use cases as the API;
//! never case content, never a pseudonym.

use actix_web::{web, HttpResponse, ResponseError};
use askama::Template;

use super::form::{self, Fields};
use super::session::{fixable, WebError, WebSession};
use super::{render, Frame};
use crate::admin::{NewUser, UserPatch, UserView};
use crate::api::reference::{OrganizationView, PlaceView};
use crate::api::state::AppState;
use crate::error::AppError;
use crate::policy::Role;

#[derive(Template)]
#[template(path = "admin.html")]
struct AdminPage {
    f: Frame,
    users: Vec<UserView>,
    organizations: Vec<OrganizationView>,
    places: Vec<PlaceView>,
    roles: &'static [Role],
    error: Option<String>,
    done: Option<String>,
}

async fn page(
    state: &AppState,
    s: &WebSession,
    error: Option<String>,
    done: Option<String>,
) -> Result<String, WebError> {
    let (f, p) = Frame::of(state, s, "admin").await?;
    let (users, organizations, places) = crate::api::admin::overview(state, &p)
        .await
        .map_err(|e| s.fail(e))?;
    render(&AdminPage {
        f,
        users,
        organizations,
        places,
        roles: Role::ALL,
        error,
        done,
    })
    .map_err(|e| s.fail(e))
}

/// `GET /admin`.
pub async fn overview(state: web::Data<AppState>, s: WebSession) -> Result<HttpResponse, WebError> {
    let body = page(&state, &s, None, None).await?;
    Ok(s.page(body))
}

async fn answer(
    state: &AppState,
    s: &WebSession,
    result: Result<UserView, AppError>,
) -> Result<HttpResponse, WebError> {
    match result {
        Ok(_) => Ok(s.redirect("/admin")),
        Err(e) if fixable(&e) => {
            let status = e.status_code();
            let body = page(state, s, Some(super::i18n::error_text(&e, s.texts())), None).await?;
            Ok(s.refused(status, body))
        }
        Err(e) => Err(s.fail(e)),
    }
}

/// `POST /admin/users`: a new account.
pub async fn create_user(
    state: web::Data<AppState>,
    s: WebSession,
    fields: web::Form<Fields>,
) -> Result<HttpResponse, WebError> {
    s.check_csrf(&fields)?;
    let p = s.principal(&state).await?;
    let get = |n: &str| {
        form::field(&fields, n)
            .unwrap_or_default()
            .trim()
            .to_owned()
    };
    let body = NewUser {
        username: get("username"),
        display_name: get("display_name"),
        organization: get("organization"),
        role: get("role"),
        places: fields
            .iter()
            .filter(|(k, v)| k == "places" && !v.is_empty())
            .map(|(_, v)| v.clone())
            .collect(),
        password: form::field(&fields, "password")
            .unwrap_or_default()
            .to_owned(),
    };
    let result = crate::api::admin::add_user(&state, &p, body).await;
    answer(&state, &s, result).await
}

/// `POST /admin/users/{username}/{disable|enable|password|places}`.
pub async fn change_user(
    state: web::Data<AppState>,
    s: WebSession,
    path: web::Path<(String, String)>,
    fields: web::Form<Fields>,
) -> Result<HttpResponse, WebError> {
    s.check_csrf(&fields)?;
    let p = s.principal(&state).await?;
    let (username, change) = path.into_inner();
    let patch = match change.as_str() {
        "disable" => UserPatch {
            disabled: Some(true),
            ..Default::default()
        },
        "enable" => UserPatch {
            disabled: Some(false),
            ..Default::default()
        },
        "password" => UserPatch {
            password: Some(
                form::field(&fields, "password")
                    .unwrap_or_default()
                    .to_owned(),
            ),
            ..Default::default()
        },
        "places" => UserPatch {
            places: Some(
                fields
                    .iter()
                    .filter(|(k, v)| k == "places" && !v.is_empty())
                    .map(|(_, v)| v.clone())
                    .collect(),
            ),
            ..Default::default()
        },
        _ => return Err(s.fail(AppError::NotFound)),
    };
    let result = crate::api::admin::change_user(&state, &p, username, patch).await;
    answer(&state, &s, result).await
}
