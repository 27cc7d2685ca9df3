//! Sign-in, token refresh, sign-out and the caller's own account.

use actix_web::{get, post, web, HttpResponse};
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

use super::extractors::{body_bytes, optional_json, Enrolling, JsonBody, Meta};
use crate::account::{LoginRequest, LogoutRequest, RefreshRequest, TokenResponse};
use crate::api::state::AppState;
use crate::auth::Principal;
use crate::error::{AppError, ErrorBody};

#[utoipa::path(post, path = "/api/v1/auth/login", tag = "auth", request_body = LoginRequest,
    responses((status = 200, body = TokenResponse), (status = 400, body = ErrorBody),
              (status = 401, body = ErrorBody), (status = 429, body = ErrorBody)))]
#[post("/auth/login")]
pub async fn login(
    state: web::Data<AppState>,
    meta: Meta,
    body: JsonBody<LoginRequest>,
) -> Result<web::Json<TokenResponse>, AppError> {
    Ok(web::Json(
        state.accounts().login(body.into_inner(), meta.0).await?,
    ))
}

#[utoipa::path(post, path = "/api/v1/auth/refresh", tag = "auth", request_body = RefreshRequest,
    responses((status = 200, body = TokenResponse), (status = 400, body = ErrorBody), (status = 401, body = ErrorBody)))]
#[post("/auth/refresh")]
pub async fn refresh(
    state: web::Data<AppState>,
    meta: Meta,
    body: JsonBody<RefreshRequest>,
) -> Result<web::Json<TokenResponse>, AppError> {
    Ok(web::Json(
        state.accounts().refresh(body.into_inner(), meta.0).await?,
    ))
}

#[utoipa::path(post, path = "/api/v1/auth/logout", tag = "auth", request_body(content = Option<LogoutRequest>),
    security(("bearer" = [])),
    responses((status = 204), (status = 400, body = ErrorBody), (status = 401, body = ErrorBody)))]
#[post("/auth/logout")]
pub async fn logout(
    state: web::Data<AppState>,
    Enrolling(principal): Enrolling,
    http: actix_web::HttpRequest,
    body: Result<web::Bytes, actix_web::Error>,
) -> Result<HttpResponse, AppError> {
    let req: LogoutRequest = optional_json(&http, &body_bytes(body)?)?;
    state.accounts().logout(&principal, req).await?;
    Ok(HttpResponse::NoContent().finish())
}

#[derive(Debug, Serialize, ToSchema)]
pub struct MeOrganization {
    pub id: String,
    pub name: String,
    pub kind: String,
    pub mandated_reporter: bool,
}

/// The signed-in user.
#[derive(Debug, Serialize, ToSchema)]
pub struct Me {
    pub username: String,
    pub display_name: String,
    pub role: String,
    pub organization: MeOrganization,
    /// Slugs of the places the user is assigned to.
    pub places: Vec<String>,
    /// The user's stable pseudonym as other organisations see it.
    pub pseudonym: String,
}

#[utoipa::path(get, path = "/api/v1/me", tag = "auth", security(("bearer" = [])),
    responses((status = 200, body = Me), (status = 401, body = ErrorBody)))]
#[get("/me")]
pub async fn me(principal: Principal) -> web::Json<Me> {
    web::Json(Me {
        username: principal.user.username.clone(),
        display_name: principal.user.display_name.clone(),
        role: principal.user.role.clone(),
        organization: MeOrganization {
            id: principal.organization.id.clone(),
            name: principal.organization.name.clone(),
            kind: principal.organization.kind.clone(),
            mandated_reporter: principal.organization.mandated_reporter,
        },
        places: principal.places.clone(),
        pseudonym: principal.user.pseudonym.clone(),
    })
}

#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct ChangePassword {
    pub current_password: String,
    pub new_password: String,
}

/// Changes the caller's password and ends all of the caller's sessions.
#[utoipa::path(post, path = "/api/v1/me/password", tag = "auth", request_body = ChangePassword,
    security(("bearer" = [])),
    responses((status = 204), (status = 400, body = ErrorBody), (status = 401, body = ErrorBody)))]
#[post("/me/password")]
pub async fn change_password(
    state: web::Data<AppState>,
    principal: Principal,
    body: JsonBody<ChangePassword>,
) -> Result<HttpResponse, AppError> {
    let body = body.into_inner();
    state
        .accounts()
        .change_password(&principal, body.current_password, body.new_password)
        .await?;
    Ok(HttpResponse::NoContent().finish())
}

/// A new second factor for the authenticator app (not yet in force).
#[derive(Debug, Serialize, ToSchema)]
pub struct TotpEnrolment {
    /// Base32, for typing into the app.
    pub secret: String,
    /// `otpauth://totp/…`, what the QR code holds.
    pub otpauth_uri: String,
    /// The URI as a QR code (an SVG document).
    pub qr_svg: String,
}

/// Starts enrolling a TOTP second factor: a fresh secret, in force once confirmed with a
/// code. Also open to a token good only for enrolling.
#[utoipa::path(post, path = "/api/v1/auth/totp/enroll", tag = "auth", security(("bearer" = [])),
    responses((status = 200, body = TotpEnrolment), (status = 401, body = ErrorBody),
              (status = 403, body = ErrorBody), (status = 409, body = ErrorBody)))]
#[post("/auth/totp/enroll")]
pub async fn totp_enroll(
    state: web::Data<AppState>,
    Enrolling(principal): Enrolling,
) -> Result<web::Json<TotpEnrolment>, AppError> {
    let e = state
        .accounts()
        .enrol_second_factor(&principal, false)
        .await?
        .ok_or_else(|| AppError::Conflict("A second factor is already confirmed.".into()))?;
    Ok(web::Json(TotpEnrolment {
        secret: e.secret,
        otpauth_uri: e.otpauth_uri,
        qr_svg: e.qr_svg,
    }))
}

#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct TotpConfirm {
    /// The six-digit code the app shows now.
    pub code: String,
}

/// The second factor is in force; keep the recovery codes (each works once).
#[derive(Debug, Serialize, ToSchema)]
pub struct TotpConfirmed {
    pub recovery_codes: Vec<String>,
    pub message: String,
}

/// Confirms the enrolment with a code from the app: the factor is in force from now on,
/// and ten single-use recovery codes are returned, once.
#[utoipa::path(post, path = "/api/v1/auth/totp/confirm", tag = "auth", request_body = TotpConfirm,
    security(("bearer" = [])),
    responses((status = 200, body = TotpConfirmed), (status = 400, body = ErrorBody),
              (status = 401, body = ErrorBody), (status = 403, body = ErrorBody)))]
#[post("/auth/totp/confirm")]
pub async fn totp_confirm(
    state: web::Data<AppState>,
    Enrolling(principal): Enrolling,
    body: JsonBody<TotpConfirm>,
) -> Result<web::Json<TotpConfirmed>, AppError> {
    let code = body.into_inner().code;
    if code.len() > crate::auth::second_factor::MAX_CODE_LEN {
        return Err(AppError::bad_request(
            "invalid_code",
            "a code is six digits",
        ));
    }
    let codes = state
        .accounts()
        .confirm_second_factor(&principal, code)
        .await?;
    match codes {
        Some(recovery_codes) => Ok(web::Json(TotpConfirmed {
            recovery_codes,
            message: "The second factor is in force: sign in again with a code from the app. Keep the recovery codes somewhere safe; each works once.".into(),
        })),
        None => Err(AppError::bad_request(
            "invalid_code",
            "Wrong or expired code, or no enrolment to confirm: start again at POST /api/v1/auth/totp/enroll.",
        )),
    }
}
