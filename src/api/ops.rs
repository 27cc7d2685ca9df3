//! Operations endpoints (no token): liveness, readiness, the OpenAPI document; and the
//! metrics, served only on the operator's own address (`SAMVERKAN_METRICS_BIND`).

use actix_web::{get, web, HttpResponse};
use diesel::connection::SimpleConnection;
use utoipa::openapi::security::{HttpAuthScheme, HttpBuilder, SecurityScheme};
use utoipa::{Modify, OpenApi};

use crate::api::state::AppState;
use crate::error::AppError;

#[utoipa::path(get, path = "/healthz", tag = "operations", responses((status = 200, description = "alive")))]
#[get("/healthz")]
pub async fn healthz() -> HttpResponse {
    HttpResponse::Ok().json(serde_json::json!({"status": "ok"}))
}

#[utoipa::path(get, path = "/readyz", tag = "operations",
    responses((status = 200, description = "database reachable"), (status = 503, description = "database unreachable")))]
#[get("/readyz")]
pub async fn readyz(state: web::Data<AppState>) -> HttpResponse {
    match state
        .db
        .run(|c| c.batch_execute("SELECT 1").map_err(AppError::from))
        .await
    {
        Ok(()) => HttpResponse::Ok().json(serde_json::json!({"status": "ready"})),
        Err(e) => {
            tracing::warn!(error = %e, "readiness check failed");
            HttpResponse::ServiceUnavailable().json(serde_json::json!({"status": "unavailable"}))
        }
    }
}

struct BearerAuth;

impl Modify for BearerAuth {
    fn modify(&self, openapi: &mut utoipa::openapi::OpenApi) {
        let components = openapi.components.get_or_insert_with(Default::default);
        components.add_security_scheme(
            "bearer",
            SecurityScheme::Http(
                HttpBuilder::new()
                    .scheme(HttpAuthScheme::Bearer)
                    .bearer_format("JWT")
                    .build(),
            ),
        );
    }
}

#[derive(OpenApi)]
#[openapi(
    info(title = "samverkan", description = "Multi-agency information sharing under Swedish secrecy law. Every response holds only the parts the Cedar policy lets the caller see."),
    modifiers(&BearerAuth),
    paths(
        healthz, readyz, openapi_json,
        super::auth::login, super::auth::refresh, super::auth::logout, super::auth::me, super::auth::change_password,
        super::auth::totp_enroll, super::auth::totp_confirm,
        super::reference::organizations, super::reference::places,
        super::observations::create, super::observations::list, super::observations::get,
        super::situation_reports::create, super::situation_reports::list, super::situation_reports::get,
        super::referrals::create, super::referrals::list, super::referrals::get, super::referrals::feedback, super::referrals::consent, super::referrals::withdraw_consent,
        super::admin::list_organizations, super::admin::create_organization, super::admin::update_organization,
        super::admin::list_places, super::admin::create_place,
        super::admin::list_users, super::admin::create_user, super::admin::get_user, super::admin::update_user,
        super::audit::list, super::audit::export, super::audit::summary,
        super::legal_holds::list, super::legal_holds::set, super::legal_holds::clear,
        super::statistics::observations, super::statistics::referrals,
        super::statistics::observations_svg, super::statistics::referrals_svg,
        super::events::stream,
    )
)]
pub struct ApiDoc;

#[utoipa::path(get, path = "/openapi.json", tag = "operations", responses((status = 200, description = "this document")))]
#[get("/openapi.json")]
pub async fn openapi_json() -> HttpResponse {
    HttpResponse::Ok().json(ApiDoc::openapi())
}

/// The metrics in Prometheus' text format: served by the separate operator listener,
/// never on the public address.
pub async fn metrics(registry: web::Data<prometheus::Registry>) -> HttpResponse {
    use prometheus::Encoder;
    let mut body = Vec::new();
    let encoder = prometheus::TextEncoder::new();
    match encoder.encode(&registry.gather(), &mut body) {
        Ok(()) => HttpResponse::Ok()
            .content_type(encoder.format_type())
            .body(body),
        Err(e) => {
            tracing::error!(error = %e, "cannot encode metrics");
            HttpResponse::InternalServerError().finish()
        }
    }
}
