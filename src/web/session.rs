//! Browser sessions: a cookie holding an access token of an ordinary session, renewed
//! by every page view and lapsing after `SAMVERKAN_WEB_IDLE_*` without one; a CSRF token
//! bound to the session in every form; sign-in, sign-out and the language switch.

use std::sync::Arc;

use actix_web::cookie::{Cookie, SameSite};
use actix_web::http::StatusCode;
use actix_web::{web, FromRequest, HttpRequest, HttpResponse, ResponseError};
use askama::Template;

use super::i18n::{Lang, Texts, LANG_COOKIE};
use super::nav::Nav;
use super::{html, see_other};
use crate::account::{LoginRequest, LogoutRequest};
use crate::api::extractors::request_meta;
use crate::api::records::decider;
use crate::api::state::AppState;
use crate::auth::tokens::Claims;
use crate::auth::{Bearer, Principal};
use crate::error::AppError;

/// The session cookie over HTTPS: `__Host-` binds it to this exact origin.
pub const SECURE_COOKIE: &str = "__Host-samverkan";
/// The session cookie on plain-HTTP localhost, where `Secure` cookies are not kept.
pub const PLAIN_COOKIE: &str = "samverkan";

/// Whether cookies are `Secure` (and `__Host-`): as configured, else everywhere but a
/// loopback bind address.
fn secure(state: &AppState) -> bool {
    state.settings.web.secure_cookies.unwrap_or_else(|| {
        let bind = &state.settings.bind;
        let host = bind.rsplit_once(':').map_or(bind.as_str(), |(h, _)| h);
        let host = host.trim_start_matches('[').trim_end_matches(']');
        !(host == "localhost"
            || host
                .parse::<std::net::IpAddr>()
                .is_ok_and(|ip| ip.is_loopback()))
    })
}

fn cookie_name(secure: bool) -> &'static str {
    if secure {
        SECURE_COOKIE
    } else {
        PLAIN_COOKIE
    }
}

fn session_cookie(secure: bool, value: String) -> Cookie<'static> {
    Cookie::build(cookie_name(secure), value)
        .path("/")
        .http_only(true)
        .secure(secure)
        .same_site(SameSite::Strict)
        .finish()
}

fn expired_cookie(secure: bool) -> Cookie<'static> {
    let mut c = session_cookie(secure, String::new());
    c.make_removal();
    c
}

/// The CSRF token of a session: a keyed hash of its id, so it is the same in every form
/// of the session and useless in any other.
fn csrf_for(state: &AppState, sid: &str) -> String {
    let t = &state.tokens;
    format!(
        "{}{}",
        t.fingerprint(&format!("csrf:1:{sid}")),
        t.fingerprint(&format!("csrf:2:{sid}"))
    )
}

fn state_of(req: &HttpRequest) -> Result<web::Data<AppState>, AppError> {
    req.app_data::<web::Data<AppState>>()
        .cloned()
        .ok_or_else(|| AppError::internal("app state missing"))
}

/// What a page answers when it cannot go on.
#[derive(Debug)]
pub enum WebError {
    /// No live session: to the login page (the cookie is dropped).
    SignIn { secure: bool },
    /// Shown as a page in the user's language.
    Page(AppError, Lang),
    /// A session good only for enrolling a second factor: to the enrolment page.
    Enrol,
}

impl std::fmt::Display for WebError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            WebError::SignIn { .. } => f.write_str("sign in"),
            WebError::Enrol => f.write_str("enrol a second factor"),
            WebError::Page(e, _) => write!(f, "{e}"),
        }
    }
}

#[derive(Template)]
#[template(path = "error.html")]
struct ErrorPage<'a> {
    t: &'a Texts,
    style: &'a str,
    title: &'a str,
    message: &'a str,
}

impl ResponseError for WebError {
    fn status_code(&self) -> StatusCode {
        match self {
            WebError::SignIn { .. } | WebError::Enrol => StatusCode::SEE_OTHER,
            WebError::Page(e, _) => e.status_code(),
        }
    }

    fn error_response(&self) -> HttpResponse {
        match self {
            WebError::Enrol => see_other("/second-factor"),
            WebError::SignIn { secure } => {
                let mut r = see_other("/login");
                let _ = r.add_cookie(&expired_cookie(*secure));
                r
            }
            WebError::Page(e, lang) => {
                if let AppError::Internal(cause) = e {
                    tracing::error!(cause = %cause, "internal error (page)");
                }
                let t = lang.texts();
                // The same page for a record that does not exist and one not visible.
                let (title, message) = match e.status_code() {
                    StatusCode::NOT_FOUND => (
                        t.get("error.not_found"),
                        t.get("error.not_found.text").to_owned(),
                    ),
                    StatusCode::FORBIDDEN => (
                        t.get("error.forbidden"),
                        t.get("error.forbidden.text").to_owned(),
                    ),
                    StatusCode::TOO_MANY_REQUESTS => (t.get("error.busy"), e.to_string()),
                    s if s.is_server_error() => (
                        t.get("error.internal"),
                        t.get("error.internal.text").to_owned(),
                    ),
                    _ => (t.get("error.bad_request"), super::i18n::error_text(e, t)),
                };
                let page = ErrorPage {
                    t,
                    style: super::style_path(),
                    title,
                    message: &message,
                };
                html(e.status_code(), page.render().unwrap_or_default())
            }
        }
    }
}

/// The signed-in browser user of a request.
pub struct WebSession {
    pub bearer: Bearer,
    pub claims: Arc<Claims>,
    pub csrf: String,
    pub lang: Lang,
    secure: bool,
    /// The request came from a page of this site (or said nothing about its origin).
    same_origin: bool,
    /// The path of this page (where the language switch returns to).
    pub path: String,
    /// A fresh token for the cookie, when this request renews the idle time.
    renewed: Option<String>,
}

impl FromRequest for WebSession {
    type Error = WebError;
    type Future = std::future::Ready<Result<Self, Self::Error>>;

    fn from_request(req: &HttpRequest, _: &mut actix_web::dev::Payload) -> Self::Future {
        std::future::ready(session(req))
    }
}

fn session(req: &HttpRequest) -> Result<WebSession, WebError> {
    session_with(req, false).map(|(_, s)| s)
}

/// The signed-in browser user; with `enrolling`, also a session good only for enrolling a
/// second factor (never renewed: it is not a session to keep).
fn session_with(
    req: &HttpRequest,
    enrolling: bool,
) -> Result<(web::Data<AppState>, WebSession), WebError> {
    let lang = Lang::of(req);
    let state = state_of(req).map_err(|e| WebError::Page(e, lang))?;
    let secure = secure(&state);
    let sign_in = || WebError::SignIn { secure };
    let cookie = req.cookie(cookie_name(secure)).ok_or_else(sign_in)?;
    let verified = if enrolling {
        state.tokens.verify_any(cookie.value())
    } else {
        state.tokens.verify_access(cookie.value())
    };
    let claims = match verified {
        Ok(claims) => claims,
        Err(AppError::Refused {
            code: "second_factor_required",
            ..
        }) => return Err(WebError::Enrol),
        Err(_) => return Err(sign_in()),
    };
    let meta = request_meta(req)
        .map_err(|e| WebError::Page(e, lang))?
        .web();
    let now = ::time::OffsetDateTime::now_utc().unix_timestamp();
    let idle = state.settings.web.idle_secs;
    // Renewed at most every quarter of the idle time (and once a minute at most).
    let renewed = if !claims.enrol && now - claims.iat >= (idle / 4).clamp(1, 60) {
        state
            .tokens
            .issue_access_for(&claims.sub, &claims.sid, claims.epoch, idle)
            .ok()
    } else {
        None
    };
    let session = WebSession {
        csrf: csrf_for(&state, &claims.sid),
        bearer: Bearer::new(claims.clone(), meta),
        claims,
        lang,
        secure,
        same_origin: same_origin(req),
        path: req.path().to_owned(),
        renewed,
    };
    Ok((state, session))
}

impl WebSession {
    pub fn texts(&self) -> &'static Texts {
        self.lang.texts()
    }

    /// The user as stored now (the session checked like an API token's, in the
    /// database: see the API's `Principal` extractor).
    pub async fn principal(&self, state: &AppState) -> Result<Principal, WebError> {
        let bearer = self.bearer.clone();
        let sessions = state.sessions.clone();
        state
            .db
            .run(move |c| bearer.resolve(c, &sessions))
            .await
            .map_err(|e| self.fail(e))
    }

    /// An error of a service call, as this user's page: an ended session goes to sign-in.
    pub fn fail(&self, e: AppError) -> WebError {
        match e {
            AppError::Unauthorized { .. } => WebError::SignIn {
                secure: self.secure,
            },
            e => WebError::Page(e, self.lang),
        }
    }

    /// A posted form must come from this site and carry this session's CSRF token.
    pub fn check_csrf(&self, fields: &super::form::Fields) -> Result<(), WebError> {
        match super::form::field(fields, "csrf") {
            Some(t) if self.same_origin && constant_eq(t.as_bytes(), self.csrf.as_bytes()) => {
                Ok(())
            }
            _ => Err(WebError::Page(
                AppError::Refused {
                    code: "csrf",
                    message: self.texts().get("error.csrf").to_owned(),
                },
                self.lang,
            )),
        }
    }

    /// The page, with the renewed cookie when there is one.
    pub fn page(&self, body: String) -> HttpResponse {
        self.with_cookie(html(StatusCode::OK, body))
    }

    /// A page answering a refused form (400, filled in, the error beside the form).
    pub fn refused(&self, status: StatusCode, body: String) -> HttpResponse {
        self.with_cookie(html(status, body))
    }

    pub fn redirect(&self, to: &str) -> HttpResponse {
        self.with_cookie(see_other(to))
    }

    fn with_cookie(&self, mut r: HttpResponse) -> HttpResponse {
        if let Some(token) = &self.renewed {
            let _ = r.add_cookie(&session_cookie(self.secure, token.clone()));
        }
        r
    }
}

/// Whether a refusal is the user's to fix in the form (shown again, filled in, with the
/// reason): a 4xx, but not a 404 (the not-found page) nor a 401 (to sign-in).
pub fn fixable(e: &AppError) -> bool {
    let s = e.status_code();
    s.is_client_error() && s != StatusCode::NOT_FOUND && s != StatusCode::UNAUTHORIZED
}

fn constant_eq(a: &[u8], b: &[u8]) -> bool {
    a.len() == b.len() && a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
}

/// A post from a page of another origin is refused whatever it carries (SameSite and
/// the CSRF token already stop it; this says so plainly). Our own pages send `no-referrer`,
/// under which browsers say `Origin: null` for their form posts: that, like no header,
/// leaves the decision to the token.
fn same_origin(req: &HttpRequest) -> bool {
    let Some(origin) = req.headers().get(actix_web::http::header::ORIGIN) else {
        return true;
    };
    if origin.as_bytes() == b"null" {
        return true;
    }
    let host = req.connection_info().host().to_owned();
    origin
        .to_str()
        .ok()
        .and_then(|o| o.split_once("://"))
        .is_some_and(|(_, h)| h == host)
}

#[derive(Template)]
#[template(path = "login.html")]
struct LoginPage<'a> {
    t: &'a Texts,
    style: &'a str,
    username: &'a str,
    csrf: &'a str,
    error: Option<String>,
    /// "Log in with <name>", when the pages have a single sign-on client.
    sso: Option<String>,
}

/// A browser session for `claims` (a session already recorded): the cookie, and home.
pub fn start_web_session(state: &AppState, claims: &Claims) -> HttpResponse {
    match state.tokens.issue_access_for(
        &claims.sub,
        &claims.sid,
        claims.epoch,
        state.settings.web.idle_secs,
    ) {
        Ok(token) => {
            let mut r = see_other("/");
            let _ = r.add_cookie(&session_cookie(secure(state), token));
            r
        }
        Err(e) => WebError::Page(e, Lang::Sv).error_response(),
    }
}

/// The cookie a sign-in form is bound to (before there is a session): a random value,
/// whose keyed hash the form carries, so no other site can sign a browser in.
const LOGIN_COOKIE: &str = "samverkan_login";

/// The sign-in form, with a fresh pre-session cookie (also for the single sign-on pages'
/// refusals).
pub fn login_form(
    state: &AppState,
    lang: Lang,
    username: &str,
    error: Option<String>,
    status: StatusCode,
) -> HttpResponse {
    let nonce = {
        use rand::RngCore;
        let mut b = [0u8; 16];
        rand::rngs::OsRng.fill_bytes(&mut b);
        hex::encode(b)
    };
    let csrf = csrf_for(state, &format!("login:{nonce}"));
    let page = LoginPage {
        t: lang.texts(),
        style: super::style_path(),
        username,
        csrf: &csrf,
        error,
        sso: state
            .oidc
            .as_ref()
            .filter(|o| o.settings().client_id.is_some())
            .map(|o| o.settings().name.clone()),
    };
    let mut r = html(status, page.render().unwrap_or_default());
    let cookie = Cookie::build(LOGIN_COOKIE, nonce)
        .path("/login")
        .http_only(true)
        .secure(secure(state))
        .same_site(SameSite::Strict)
        .finish();
    let _ = r.add_cookie(&cookie);
    r
}

/// `GET /login`; a signed-in user goes home.
pub async fn login_page(req: HttpRequest, state: web::Data<AppState>) -> HttpResponse {
    if session(&req).is_ok() {
        return see_other("/");
    }
    login_form(&state, Lang::of(&req), "", None, StatusCode::OK)
}

/// `POST /login`: the API's sign-in (throttled alike), then a session cookie.
pub async fn login(
    req: HttpRequest,
    state: web::Data<AppState>,
    fields: web::Form<super::form::Fields>,
) -> HttpResponse {
    let lang = Lang::of(&req);
    let t = lang.texts();
    let bound = req
        .cookie(LOGIN_COOKIE)
        .map(|c| csrf_for(&state, &format!("login:{}", c.value())));
    let sent = super::form::field(&fields, "csrf").unwrap_or_default();
    if !same_origin(&req) || !bound.is_some_and(|b| constant_eq(b.as_bytes(), sent.as_bytes())) {
        // An expired or foreign form: a fresh one, saying so.
        let message = Some(t.get("error.csrf").to_owned());
        return login_form(&state, lang, "", message, StatusCode::FORBIDDEN);
    }
    let username = super::form::field(&fields, "username")
        .unwrap_or_default()
        .to_owned();
    let password = super::form::field(&fields, "password")
        .unwrap_or_default()
        .to_owned();
    let meta = match request_meta(&req) {
        Ok(m) => m.web(),
        Err(e) => return WebError::Page(e, lang).error_response(),
    };
    let tokens = state
        .accounts()
        .login(
            LoginRequest {
                username: username.clone(),
                password,
                totp: super::form::field(&fields, "totp")
                    .map(str::trim)
                    .filter(|c| !c.is_empty())
                    .map(str::to_owned),
            },
            meta,
        )
        .await;
    let issued = tokens.and_then(|pair| {
        if pair.second_factor.is_some() {
            // Good for enrolling and nothing else: the pages send it to enrolment.
            return Ok((pair.access_token, "/second-factor"));
        }
        let claims = state.tokens.verify_access(&pair.access_token)?;
        let token = state.tokens.issue_access_for(
            &claims.sub,
            &claims.sid,
            claims.epoch,
            state.settings.web.idle_secs,
        )?;
        Ok((token, "/"))
    });
    match issued {
        Ok((token, to)) => {
            let mut r = see_other(to);
            let _ = r.add_cookie(&session_cookie(secure(&state), token));
            r
        }
        Err(e) => {
            let (status, message) = match &e {
                AppError::TooManyRequests { retry_after_secs } => (
                    StatusCode::TOO_MANY_REQUESTS,
                    t.with("login.wait", &retry_after_secs.to_string()),
                ),
                AppError::Unauthorized { code, .. }
                    if *code == "second_factor_required" || *code == "invalid_second_factor" =>
                {
                    (
                        StatusCode::UNAUTHORIZED,
                        t.get("login.second_factor").to_owned(),
                    )
                }
                AppError::Unauthorized { .. } | AppError::BadRequest { .. } => {
                    (StatusCode::UNAUTHORIZED, t.get("login.wrong").to_owned())
                }
                AppError::Unavailable => (
                    StatusCode::SERVICE_UNAVAILABLE,
                    t.get("error.busy").to_owned(),
                ),
                _ => return WebError::Page(e, lang).error_response(),
            };
            login_form(&state, lang, &username, Some(message), status)
        }
    }
}

/// `POST /logout`: ends the session (the cookie's and the API's alike).
pub async fn logout(
    state: web::Data<AppState>,
    s: WebSession,
    fields: web::Form<super::form::Fields>,
) -> Result<HttpResponse, WebError> {
    s.check_csrf(&fields)?;
    let principal = s.principal(&state).await?;
    state
        .accounts()
        .logout(
            &principal,
            LogoutRequest {
                refresh_token: None,
            },
        )
        .await
        .map_err(|e| s.fail(e))?;
    let mut r = see_other("/login");
    let _ = r.add_cookie(&expired_cookie(s.secure));
    Ok(r)
}

#[derive(serde::Deserialize)]
pub struct Back {
    next: Option<String>,
}

/// `GET /lang/{code}?next=/page`: remembers the language, back to the page (a path of
/// this site only).
pub async fn switch_language(
    req: HttpRequest,
    path: web::Path<String>,
    back: web::Query<Back>,
) -> HttpResponse {
    let next = back
        .next
        .as_deref()
        .filter(|n| n.starts_with('/') && !n.starts_with("//") && !n.contains('\\'))
        .unwrap_or("/");
    let Some(lang) = Lang::parse(&path) else {
        return see_other(next);
    };
    let mut r = see_other(next);
    let cookie = Cookie::build(LANG_COOKIE, lang.code())
        .path("/")
        .same_site(SameSite::Strict)
        .max_age(actix_web::cookie::time::Duration::days(365))
        .finish();
    let _ = r.add_cookie(&cookie);
    let _ = req;
    r
}

/// `GET /`: the page the user's work starts from (what the policy lets them do decides).
pub async fn home(state: web::Data<AppState>, req: HttpRequest) -> HttpResponse {
    let s = match session(&req) {
        Ok(s) => s,
        Err(WebError::Enrol) => return see_other("/second-factor"),
        Err(_) => return see_other("/login"),
    };
    match s.principal(&state).await {
        Ok(p) => s.redirect(Nav::of(&decider(&state, &p), &p).home()),
        Err(e) => e.error_response(),
    }
}

/// The signed-in user of the enrolment page: an ordinary session, or one good only for
/// enrolling a second factor.
fn enrolling(req: &HttpRequest) -> Result<(web::Data<AppState>, WebSession), WebError> {
    session_with(req, true)
}

#[derive(Template)]
#[template(path = "second_factor.html")]
struct SecondFactorPage<'a> {
    t: &'a Texts,
    style: &'a str,
    csrf: &'a str,
    error: Option<String>,
    enrolment: Option<crate::auth::second_factor::Enrolment>,
    recovery_codes: Option<Vec<String>>,
}

impl SecondFactorPage<'_> {
    fn respond(&self, s: &WebSession, status: StatusCode) -> HttpResponse {
        s.refused(status, self.render().unwrap_or_default())
    }
}

/// `GET /second-factor`: the secret being enrolled (a fresh one if none is) as a QR code,
/// and a form for the first code.
pub async fn second_factor_page(req: HttpRequest) -> Result<HttpResponse, WebError> {
    let (state, s) = enrolling(&req)?;
    enrolment_page(&state, &s, None, StatusCode::OK).await
}

async fn enrolment_page(
    state: &AppState,
    s: &WebSession,
    error: Option<String>,
    status: StatusCode,
) -> Result<HttpResponse, WebError> {
    let principal = s.principal(state).await?;
    let enrolment = state
        .accounts()
        .enrol_second_factor(&principal, true)
        .await
        .map_err(|e| s.fail(e))?;
    let mut enrolment = enrolment;
    if let Some(e) = enrolment.as_mut() {
        // Inline in the page: no XML prolog.
        if let Some(start) = e.qr_svg.find("<svg") {
            e.qr_svg = e.qr_svg[start..].to_owned();
        }
    }
    let page = SecondFactorPage {
        t: s.texts(),
        style: super::style_path(),
        csrf: &s.csrf,
        error,
        enrolment,
        recovery_codes: None,
    };
    Ok(page.respond(s, status))
}

/// `POST /second-factor`: the first code confirms the factor; the recovery codes are
/// shown once, and an enrolment-only session ends (sign in again with a code).
pub async fn second_factor_confirm(
    req: HttpRequest,
    fields: web::Form<super::form::Fields>,
) -> Result<HttpResponse, WebError> {
    let (state, s) = enrolling(&req)?;
    s.check_csrf(&fields)?;
    let principal = s.principal(&state).await?;
    let code = super::form::field(&fields, "code")
        .unwrap_or_default()
        .chars()
        .take(crate::auth::second_factor::MAX_CODE_LEN)
        .collect::<String>();
    let codes = state
        .accounts()
        .confirm_second_factor(&principal, code)
        .await
        .map_err(|e| s.fail(e))?;
    let t = s.texts();
    match codes {
        Some(codes) => {
            let page = SecondFactorPage {
                t,
                style: super::style_path(),
                csrf: &s.csrf,
                error: None,
                enrolment: None,
                recovery_codes: Some(codes),
            };
            let mut r = page.respond(&s, StatusCode::OK);
            if s.claims.enrol {
                let _ = r.add_cookie(&expired_cookie(s.secure));
            }
            Ok(r)
        }
        // The same secret again, with the reason.
        None => {
            enrolment_page(
                &state,
                &s,
                Some(t.get("totp.wrong").to_owned()),
                StatusCode::BAD_REQUEST,
            )
            .await
        }
    }
}
