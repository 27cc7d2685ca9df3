//! HTTP: routes per resource, the extractors, the middleware and the OpenAPI document
//! generated from the code. Handlers are thin: they parse, call the service or the
//! visibility pipeline, and answer.

pub mod admin;
pub mod audit;
pub mod auth;
pub mod docs;
pub mod events;
pub mod extractors;
pub mod legal_holds;
pub mod middleware;
pub mod observations;
pub mod ops;
pub mod records;
pub mod reference;
pub mod referrals;
pub mod situation_reports;
pub mod state;
pub mod statistics;

use actix_web::web;

use crate::config::Settings;

pub use extractors::JsonBody;
pub use ops::ApiDoc;

pub fn configure(cfg: &mut web::ServiceConfig, settings: &Settings) {
    let limit = settings.max_body_bytes;
    cfg.app_data(
        web::JsonConfig::default()
            .limit(limit)
            .content_type_required(false)
            .error_handler(middleware::json_error),
    )
    .app_data(web::PayloadConfig::new(limit))
    .app_data(web::Data::new(middleware::KnownPaths::from_doc()))
    .app_data(web::QueryConfig::default().error_handler(middleware::query_error))
    .app_data(web::PathConfig::default().error_handler(middleware::path_error))
    .service(ops::healthz)
    .service(ops::readyz)
    .service(ops::openapi_json)
    .service(docs::index)
    .service(docs::file)
    .service(
        web::scope("/api/v1")
            .service(auth::login)
            .service(auth::refresh)
            .service(auth::logout)
            .service(auth::me)
            .service(auth::change_password)
            .service(auth::totp_enroll)
            .service(auth::totp_confirm)
            .service(reference::organizations)
            .service(reference::places)
            .service(observations::create)
            .service(observations::list)
            .service(observations::get)
            .service(situation_reports::create)
            .service(situation_reports::list)
            .service(situation_reports::get)
            .service(referrals::create)
            .service(referrals::list)
            .service(referrals::get)
            .service(referrals::feedback)
            .service(referrals::consent)
            .service(referrals::withdraw_consent)
            .service(admin::list_organizations)
            .service(admin::create_organization)
            .service(admin::update_organization)
            .service(admin::list_places)
            .service(admin::create_place)
            .service(admin::list_users)
            .service(admin::create_user)
            .service(admin::get_user)
            .service(admin::update_user)
            .service(audit::list)
            .service(audit::export)
            .service(audit::summary)
            .service(legal_holds::list)
            .service(legal_holds::set)
            .service(legal_holds::clear)
            .service(events::stream)
            .service(statistics::observations_svg)
            .service(statistics::referrals_svg)
            .service(statistics::observations)
            .service(statistics::referrals),
    )
    .default_service(web::to(middleware::not_found));
}
