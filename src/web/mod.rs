//! The pages people use, rendered on the server by the same binary: the same service
//! functions as the API (every part decided by the same Cedar decision, every view and
//! post audited like the API call it stands for, with channel `web`), phone first,
//! Swedish first, working without JavaScript (one small script, `static/alerts.js`,
//! only adds the live-alert banner).
//!
//! A browser session is a cookie holding an access token of an ordinary server-side
//! session (see `session`): logging out, disabling, a password change and idle time end
//! it exactly as they end API tokens.

mod admin;
mod audit;
mod form;
mod i18n;
mod nav;
mod observations;
mod referrals;
mod reports;
mod session;
mod sso;
mod statistics;
mod time;

use actix_web::http::header::{self, ContentType};
use actix_web::{web, HttpResponse};

pub use session::WebSession;

/// Our stylesheet and the live-alert banner's script, each served under a name that
/// changes with its content.
const STYLE: &str = include_str!("static/app.css");
const SCRIPT: &str = include_str!("static/alerts.js");

/// Pages: our one script file and styles and images from here only, the event stream
/// from here only, forms post here only; no inline code.
pub const CSP: &str = "default-src 'none'; script-src 'self'; connect-src 'self'; \
                       style-src 'self'; img-src 'self'; form-action 'self'; \
                       base-uri 'none'; frame-ancestors 'none'";

fn hashed(name: &str, ext: &str, body: &str) -> String {
    use sha2::Digest;
    let hash = hex::encode(&sha2::Sha256::digest(body.as_bytes())[..6]);
    format!("/static/{name}-{hash}.{ext}")
}

/// The stylesheet's path: its content hash in the name, so it is cached for good.
pub fn style_path() -> &'static str {
    static PATH: std::sync::OnceLock<String> = std::sync::OnceLock::new();
    PATH.get_or_init(|| hashed("app", "css", STYLE))
}

/// The banner script's path, likewise.
pub fn script_path() -> &'static str {
    static PATH: std::sync::OnceLock<String> = std::sync::OnceLock::new();
    PATH.get_or_init(|| hashed("alerts", "js", SCRIPT))
}

async fn style(path: web::Path<String>) -> HttpResponse {
    let asked = format!("/static/{}", path.into_inner());
    let (kind, body) = if asked == style_path() {
        ("text/css; charset=utf-8", STYLE)
    } else if asked == script_path() {
        ("text/javascript; charset=utf-8", SCRIPT)
    } else {
        return HttpResponse::NotFound().finish();
    };
    HttpResponse::Ok()
        .insert_header((header::CONTENT_TYPE, kind))
        .insert_header((header::CACHE_CONTROL, "public, max-age=31536000, immutable"))
        .body(body)
}

/// An HTML page answer: never cached, never framed, no inline code.
pub fn html(status: actix_web::http::StatusCode, body: String) -> HttpResponse {
    HttpResponse::build(status)
        .insert_header(ContentType::html())
        .insert_header((header::CONTENT_SECURITY_POLICY, CSP))
        .insert_header((header::CACHE_CONTROL, "no-store"))
        .body(body)
}

/// A 303 to `to` (after a post, or to the login page).
pub fn see_other(to: &str) -> HttpResponse {
    HttpResponse::SeeOther()
        .insert_header((header::LOCATION, to))
        .insert_header((header::CACHE_CONTROL, "no-store"))
        .finish()
}

pub fn configure(cfg: &mut web::ServiceConfig) {
    // Forms are small; a lägesbild with long sections fits well within this.
    cfg.app_data(web::FormConfig::default().limit(256 * 1024))
        .route("/static/{file}", web::get().to(style))
        .route("/login", web::get().to(session::login_page))
        .route("/login", web::post().to(session::login))
        .route("/logout", web::post().to(session::logout))
        .route("/login/oidc", web::get().to(sso::start))
        .route("/auth/oidc/callback", web::get().to(sso::callback))
        .route("/second-factor", web::get().to(session::second_factor_page))
        .route(
            "/second-factor",
            web::post().to(session::second_factor_confirm),
        )
        .route("/lang/{code}", web::get().to(session::switch_language))
        .route("/", web::get().to(session::home))
        .route("/observations", web::get().to(observations::list))
        .route("/observations", web::post().to(observations::create))
        .route("/observations/new", web::get().to(observations::new))
        .route("/situation-reports", web::get().to(reports::list))
        .route("/situation-reports", web::post().to(reports::create))
        .route("/situation-reports/new", web::get().to(reports::new))
        .route("/referrals", web::get().to(referrals::list))
        .route("/referrals", web::post().to(referrals::create))
        .route("/referrals/new", web::get().to(referrals::new))
        .route("/referrals/{id}", web::get().to(referrals::show))
        .route(
            "/referrals/{id}/feedback",
            web::post().to(referrals::feedback),
        )
        .route(
            "/referrals/{id}/consents",
            web::post().to(referrals::consent),
        )
        .route("/statistics", web::get().to(statistics::show))
        .route("/statistics/{file}", web::get().to(statistics::csv))
        .route("/events", web::get().to(alerts))
        .route("/audit", web::get().to(audit::search))
        .route("/audit/export", web::get().to(audit::export))
        .route("/admin", web::get().to(admin::overview))
        .route("/admin/users", web::post().to(admin::create_user))
        .route(
            "/admin/users/{username}/{change}",
            web::post().to(admin::change_user),
        );
}

/// What every signed-in page shows around its content: the menu the policy allows,
/// who is signed in, the language switch, the sign-out form.
pub struct Frame {
    pub t: &'static i18n::Texts,
    pub style: &'static str,
    pub script: &'static str,
    pub csrf: String,
    pub nav: nav::Nav,
    pub user: String,
    pub lang: &'static str,
    /// This page's path (the language switch comes back to it).
    pub path: String,
    /// The menu entry of this page.
    pub active: &'static str,
}

impl Frame {
    pub async fn of(
        state: &crate::api::state::AppState,
        s: &WebSession,
        active: &'static str,
    ) -> Result<(Frame, crate::auth::Principal), session::WebError> {
        let p = s.principal(state).await?;
        let d = crate::api::records::decider(state, &p);
        Ok((
            Frame {
                t: s.texts(),
                style: style_path(),
                script: script_path(),
                csrf: s.csrf.clone(),
                nav: nav::Nav::of(&d, &p),
                user: p.user.display_name.clone(),
                lang: s.lang.code(),
                path: s.path.clone(),
                active,
            },
            p,
        ))
    }
}

/// Renders a template (a failure is an internal error: the cause to the log).
pub fn render(t: &impl askama::Template) -> Result<String, crate::error::AppError> {
    t.render().map_err(crate::error::AppError::internal)
}

/// `GET /events`: the live alerts of the signed-in user, for the banner (the API's
/// stream, opened with the browser session).
async fn alerts(
    state: web::Data<crate::api::state::AppState>,
    s: WebSession,
    req: actix_web::HttpRequest,
) -> Result<HttpResponse, crate::error::AppError> {
    crate::api::events::open(state, s.bearer.clone(), &req).await
}
