//! What wraps every request: security headers, the JSON shape of framework errors, the
//! 404/405 for unknown paths, refusals of NUL bytes and unknown methods, and metrics
//! labelled by route pattern only (served on the operator's own address, see `ops`).

use actix_web::error::{JsonPayloadError, PathError, QueryPayloadError};
use actix_web::http::Method;
use actix_web::middleware::DefaultHeaders;
use actix_web::{web, HttpRequest, HttpResponse};
use actix_web_prom::{PrometheusMetrics, PrometheusMetricsBuilder};

use super::extractors::nul_error;
use super::ops::ApiDoc;
use crate::error::AppError;

/// The label of every request that matched no route: whatever a client sends, the
/// metrics have one series for it.
pub const UNMATCHED: &str = "unmatched";

/// Request metrics recorded into `registry`, labelled by matched route pattern (never
/// the raw path), method and status.
pub fn metrics(registry: prometheus::Registry) -> Result<PrometheusMetrics, AppError> {
    PrometheusMetricsBuilder::new("samverkan")
        .registry(registry)
        .mask_unmatched_patterns(UNMATCHED)
        .build()
        .map_err(|e| AppError::internal(format!("metrics: {e}")))
}

/// Headers on every response: no sniffing, no framing, no caching of case data, no
/// referrer; and no CORS headers at all, so browsers on other origins are refused.
pub fn security_headers() -> DefaultHeaders {
    DefaultHeaders::new()
        .add(("X-Content-Type-Options", "nosniff"))
        .add(("X-Frame-Options", "DENY"))
        .add(("Cache-Control", "no-store"))
        .add(("Referrer-Policy", "no-referrer"))
        .add((
            "Content-Security-Policy",
            "default-src 'none'; frame-ancestors 'none'",
        ))
        .add(("Strict-Transport-Security", "max-age=31536000"))
}

pub(super) fn json_error(err: JsonPayloadError, _req: &HttpRequest) -> actix_web::Error {
    let e = match &err {
        JsonPayloadError::Overflow { .. } | JsonPayloadError::OverflowKnownLength { .. } => {
            AppError::PayloadTooLarge
        }
        JsonPayloadError::Deserialize(d) if d.is_data() => {
            AppError::bad_request("invalid_body", d.to_string())
        }
        JsonPayloadError::Deserialize(d) => {
            AppError::bad_request("malformed_json", format!("the body is not valid JSON: {d}"))
        }
        JsonPayloadError::ContentType => AppError::UnsupportedMediaType,
        _ => AppError::bad_request("invalid_body", "the request body could not be read"),
    };
    e.into()
}

pub(super) fn query_error(err: QueryPayloadError, _req: &HttpRequest) -> actix_web::Error {
    AppError::bad_request("invalid_query", format!("invalid query parameters: {err}")).into()
}

pub(super) fn path_error(_err: PathError, _req: &HttpRequest) -> actix_web::Error {
    AppError::NotFound.into()
}

/// The documented paths (templates split in segments, `{…}` matching any segment) and
/// the methods each takes: a known path with another method is a 405, not a 404.
pub struct KnownPaths(Vec<(Vec<String>, String)>);

impl KnownPaths {
    pub fn from_doc() -> Self {
        use utoipa::OpenApi;
        let doc = ApiDoc::openapi();
        let paths = doc
            .paths
            .paths
            .iter()
            .map(|(path, item)| {
                let methods: Vec<&str> = [
                    ("GET", item.get.is_some()),
                    ("POST", item.post.is_some()),
                    ("PUT", item.put.is_some()),
                    ("PATCH", item.patch.is_some()),
                    ("DELETE", item.delete.is_some()),
                ]
                .into_iter()
                .filter_map(|(m, has)| has.then_some(m))
                .collect();
                (
                    path.split('/').map(str::to_owned).collect(),
                    methods.join(", "),
                )
            })
            .collect();
        KnownPaths(paths)
    }

    fn allowed(&self, path: &str) -> Option<&str> {
        let segments: Vec<&str> = path.split('/').collect();
        self.0
            .iter()
            .find(|(template, _)| {
                template.len() == segments.len()
                    && template
                        .iter()
                        .zip(&segments)
                        .all(|(t, s)| t == s || (t.starts_with('{') && !s.is_empty()))
            })
            .map(|(_, methods)| methods.as_str())
    }
}

pub(super) async fn not_found(
    req: HttpRequest,
    known: Option<web::Data<KnownPaths>>,
) -> Result<HttpResponse, AppError> {
    match known.as_deref().and_then(|k| k.allowed(req.path())) {
        Some(allow) => Err(AppError::MethodNotAllowed {
            allow: allow.to_owned(),
        }),
        None => Err(AppError::NotFound),
    }
}

/// Refuses, before routing (and before metrics), an encoded NUL in the path or query —
/// no filter or path parameter can carry one into a query — and any method the service
/// does not use, so no client-chosen method name becomes a metrics label.
pub async fn reject_odd_requests(
    req: actix_web::dev::ServiceRequest,
    next: actix_web::middleware::Next<impl actix_web::body::MessageBody + 'static>,
) -> Result<actix_web::dev::ServiceResponse<actix_web::body::BoxBody>, actix_web::Error> {
    let uri = req.uri();
    let has_nul = |s: &str| s.to_ascii_lowercase().contains("%00");
    let refusal = if has_nul(uri.path()) || uri.query().is_some_and(has_nul) {
        Some(nul_error())
    } else if ![
        Method::GET,
        Method::HEAD,
        Method::POST,
        Method::PUT,
        Method::PATCH,
        Method::DELETE,
        Method::OPTIONS,
    ]
    .contains(req.method())
    {
        Some(AppError::MethodNotAllowed {
            allow: "GET, POST, PUT, PATCH, DELETE".into(),
        })
    } else {
        None
    };
    if let Some(e) = refusal {
        let resp = actix_web::ResponseError::error_response(&e);
        return Ok(req.into_response(resp));
    }
    Ok(next.call(req).await?.map_into_boxed_body())
}

/// Counts the request as in flight in this instance until its response's head is ready
/// (a stream's body does not count): the audit writer's groups of reads wait a little
/// for the others (`audit::writer::Linger`).
pub async fn count_in_flight(
    req: actix_web::dev::ServiceRequest,
    next: actix_web::middleware::Next<impl actix_web::body::MessageBody + 'static>,
) -> Result<actix_web::dev::ServiceResponse<impl actix_web::body::MessageBody>, actix_web::Error> {
    let _counted = req
        .app_data::<web::Data<crate::api::state::AppState>>()
        .map(|state| state.writer.in_flight());
    next.call(req).await
}
