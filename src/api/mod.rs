//! HTTP: routes per resource, the JSON error handlers, security headers, health,
//! metrics and the OpenAPI document generated from the code.

pub mod admin;
pub mod audit;
pub mod auth;
pub mod legal_holds;
pub mod observations;
pub mod ops;
pub mod reference;
pub mod referrals;
pub mod situation_reports;

use actix_web::error::{JsonPayloadError, PathError, QueryPayloadError};
use actix_web::middleware::DefaultHeaders;
use actix_web::{web, HttpRequest, HttpResponse};
use actix_web_prom::{PrometheusMetrics, PrometheusMetricsBuilder};

use crate::audit::AuditEntry;
use crate::auth::Principal;
use crate::config::Settings;
use crate::error::AppError;
use crate::records::{Decider, Shown};

pub use ops::ApiDoc;

pub fn metrics() -> anyhow::Result<PrometheusMetrics> {
    PrometheusMetricsBuilder::new("samverkan")
        .endpoint("/metrics")
        .build()
        .map_err(|e| anyhow::anyhow!("metrics: {e}"))
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

fn json_error(err: JsonPayloadError, _req: &HttpRequest) -> actix_web::Error {
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

fn query_error(err: QueryPayloadError, _req: &HttpRequest) -> actix_web::Error {
    AppError::bad_request("invalid_query", format!("invalid query parameters: {err}")).into()
}

fn path_error(_err: PathError, _req: &HttpRequest) -> actix_web::Error {
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

async fn not_found(
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

/// A JSON request body that must be an object. serde would also fill a struct from an
/// array of its fields in order (`[null, null]`), which no client is meant to send and
/// the OpenAPI document does not allow.
pub struct JsonBody<T>(pub T);

impl<T> JsonBody<T> {
    pub fn into_inner(self) -> T {
        self.0
    }
}

impl<T> std::ops::Deref for JsonBody<T> {
    type Target = T;
    fn deref(&self) -> &T {
        &self.0
    }
}

impl<T: serde::de::DeserializeOwned + 'static> actix_web::FromRequest for JsonBody<T> {
    type Error = actix_web::Error;
    type Future = std::pin::Pin<Box<dyn std::future::Future<Output = Result<Self, Self::Error>>>>;

    fn from_request(req: &HttpRequest, payload: &mut actix_web::dev::Payload) -> Self::Future {
        // The JSON extractor keeps the size limit, content type and error shapes.
        let value = web::Json::<serde_json::Value>::from_request(req, payload);
        Box::pin(async move {
            let value = value.await?.into_inner();
            reject_nul_in(&value)?;
            if !value.is_object() {
                return Err(AppError::bad_request(
                    "invalid_body",
                    "the request body must be a JSON object",
                )
                .into());
            }
            serde_json::from_value(value)
                .map(JsonBody)
                .map_err(|e| AppError::bad_request("invalid_body", e.to_string()).into())
        })
    }
}

fn nul_error() -> AppError {
    AppError::bad_request("invalid_text", "text may not contain NUL characters")
}

/// NUL is valid JSON but no database text can hold it (PostgreSQL refuses it): refuse it
/// at the edge, in any string or key, rather than fail deep inside a query.
pub fn reject_nul_in(value: &serde_json::Value) -> Result<(), AppError> {
    match value {
        serde_json::Value::String(s) if s.contains('\0') => Err(nul_error()),
        serde_json::Value::Array(items) => items.iter().try_for_each(reject_nul_in),
        serde_json::Value::Object(map) => map.iter().try_for_each(|(k, v)| {
            if k.contains('\0') {
                Err(nul_error())
            } else {
                reject_nul_in(v)
            }
        }),
        _ => Ok(()),
    }
}

/// The same for the request line: an encoded NUL in a path or query is refused before
/// routing, so no filter or path parameter can carry one into a query.
pub async fn reject_nul_in_uri(
    req: actix_web::dev::ServiceRequest,
    next: actix_web::middleware::Next<impl actix_web::body::MessageBody + 'static>,
) -> Result<actix_web::dev::ServiceResponse<actix_web::body::BoxBody>, actix_web::Error> {
    let uri = req.uri();
    let has_nul = |s: &str| s.to_ascii_lowercase().contains("%00");
    if has_nul(uri.path()) || uri.query().is_some_and(has_nul) {
        let resp = actix_web::ResponseError::error_response(&nul_error());
        return Ok(req.into_response(resp));
    }
    Ok(next.call(req).await?.map_into_boxed_body())
}

/// A raw body, or the JSON error a client gets for one too large or unreadable.
pub fn body_bytes(body: Result<web::Bytes, actix_web::Error>) -> Result<web::Bytes, AppError> {
    body.map_err(|e| {
        if e.as_response_error().status_code() == actix_web::http::StatusCode::PAYLOAD_TOO_LARGE {
            AppError::PayloadTooLarge
        } else {
            AppError::bad_request("invalid_body", "the request body could not be read")
        }
    })
}

/// Parses an optional JSON body read as bytes (empty means absent), with the same
/// errors as the JSON extractor.
pub fn optional_json<T: serde::de::DeserializeOwned + Default>(body: &[u8]) -> Result<T, AppError> {
    if body.iter().all(|b| b.is_ascii_whitespace()) {
        return Ok(T::default());
    }
    let value: serde_json::Value = serde_json::from_slice(body).map_err(|d| {
        AppError::bad_request("malformed_json", format!("the body is not valid JSON: {d}"))
    })?;
    reject_nul_in(&value)?;
    serde_json::from_value(value).map_err(|d| {
        if d.is_data() {
            AppError::bad_request("invalid_body", d.to_string())
        } else {
            AppError::bad_request("malformed_json", format!("the body is not valid JSON: {d}"))
        }
    })
}

pub fn configure(cfg: &mut web::ServiceConfig, settings: &Settings) {
    let limit = settings.max_body_bytes;
    cfg.app_data(
        web::JsonConfig::default()
            .limit(limit)
            .content_type_required(false)
            .error_handler(json_error),
    )
    .app_data(web::PayloadConfig::new(limit))
    .app_data(web::Data::new(KnownPaths::from_doc()))
    .app_data(web::QueryConfig::default().error_handler(query_error))
    .app_data(web::PathConfig::default().error_handler(path_error))
    .service(ops::healthz)
    .service(ops::readyz)
    .service(ops::openapi_json)
    .service(
        web::scope("/api/v1")
            .service(auth::login)
            .service(auth::refresh)
            .service(auth::logout)
            .service(auth::me)
            .service(auth::change_password)
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
            .service(legal_holds::clear),
    )
    .default_service(web::to(not_found));
}

/// Writes one audit entry per record shown (with the parts disclosed) and waits until
/// they are durable: no case data leaves before its read is on record.
pub async fn audit_reads<T>(
    state: &crate::app::AppState,
    principal: &Principal,
    action: &str,
    kind: &str,
    shown: &[Shown<T>],
) -> Result<(), AppError> {
    let entries: Vec<AuditEntry> = shown
        .iter()
        .map(|s| {
            AuditEntry::new(action, "success", &principal.meta)
                .actor(principal.actor())
                .record(kind, &s.id)
                .parts(&s.parts)
        })
        .collect();
    if entries.is_empty() {
        return Ok(());
    }
    state.writer.audit(entries).await
}

/// Writes the audit entry of one record read with `parts` disclosed, and waits until it
/// is durable.
pub async fn audit_parts(
    state: &crate::app::AppState,
    principal: &Principal,
    action: &str,
    kind: &str,
    id: &str,
    parts: &[&'static str],
) -> Result<(), AppError> {
    let entry = AuditEntry::new(action, "success", &principal.meta)
        .actor(principal.actor())
        .record(kind, id)
        .parts(parts);
    state.writer.audit(vec![entry]).await
}

/// Records a refusal and returns the error to answer with.
pub async fn refuse(
    state: &crate::app::AppState,
    principal: &Principal,
    action: &str,
    kind: &str,
    id: Option<&str>,
    err: AppError,
) -> AppError {
    let outcome = match err {
        AppError::NotFound => "not_found",
        _ => "denied",
    };
    let mut entry = AuditEntry::new(action, outcome, &principal.meta).actor(principal.actor());
    entry.record_kind = Some(kind.to_owned());
    entry.record_id = id.map(str::to_owned);
    match state.writer.write(move |tx| tx.audit(&entry)).await {
        Ok(()) => err,
        Err(e) => e,
    }
}

/// 201 with the record as its creator may see it, or just its id when the creator may
/// see none of it.
pub fn created<T: serde::Serialize>(id: String, view: Option<T>) -> actix_web::HttpResponse {
    match view {
        Some(v) => actix_web::HttpResponse::Created().json(v),
        None => actix_web::HttpResponse::Created().json(serde_json::json!({ "id": id })),
    }
}

/// Resolves the caller and runs `f` for them in the same database job: one hand-off on
/// the hot read paths.
pub async fn read_as<T, F>(
    state: &crate::app::AppState,
    bearer: crate::auth::principal::Bearer,
    f: F,
) -> Result<(Principal, T), AppError>
where
    F: FnOnce(&mut crate::storage::DbConnection, &Decider) -> Result<T, AppError> + Send + 'static,
    T: Send + 'static,
{
    let policy = state.policy.clone();
    let caches = state.caches.clone();
    let cached = bearer.cached(&caches);
    state
        .db
        .run(move |c| {
            let principal = match cached {
                Some(p) => p,
                None => bearer.resolve(c, &caches)?,
            };
            let d = Decider::new(policy, principal.attrs.clone());
            let out = f(c, &d)?;
            Ok((principal, out))
        })
        .await
}

/// A record lister: filters in, visible records and the next cursor out.
pub type ListFn<V> = fn(
    &mut crate::storage::DbConnection,
    &Decider,
    &crate::records::ListFilter,
) -> Result<(Vec<Shown<V>>, Option<String>), AppError>;

/// `GET /…/{kind}`: one page of the records the caller may see, each read audited.
pub async fn list_records<V: Send + 'static>(
    state: &crate::app::AppState,
    bearer: crate::auth::principal::Bearer,
    query: &crate::records::ListQuery,
    kind: &str,
    list: ListFn<V>,
) -> Result<actix_web::web::Json<crate::records::Page<V>>, AppError> {
    let f = query.validate(state.tokens.cursor_seal())?;
    let (principal, (shown, next_cursor)) =
        read_as(state, bearer, move |c, d| list(c, d, &f)).await?;
    audit_reads(state, &principal, "list", kind, &shown).await?;
    Ok(actix_web::web::Json(crate::records::Page {
        items: shown.into_iter().map(|s| s.view).collect(),
        next_cursor,
    }))
}

/// `GET /…/{kind}/{id}`: the record as the caller may see it; nothing visible is a 404.
pub async fn get_record<V, F>(
    state: &crate::app::AppState,
    bearer: crate::auth::principal::Bearer,
    raw_id: &str,
    kind: &str,
    get: F,
) -> Result<actix_web::web::Json<V>, AppError>
where
    V: Send + 'static,
    F: FnOnce(
            &mut crate::storage::DbConnection,
            &Decider,
            &str,
        ) -> Result<Option<Shown<V>>, AppError>
        + Send
        + 'static,
{
    // The session is checked before the id's shape: a revoked token is a 401 whatever it asks.
    let id = crate::records::record_id(raw_id).ok();
    let lookup = id.clone();
    let (principal, shown) = read_as(state, bearer, move |c, d| {
        get(c, d, &lookup.ok_or(AppError::NotFound)?)
    })
    .await?;
    answer_read(state, &principal, kind, id.as_deref(), shown).await
}

/// The answer to a read of one record: audited with the parts disclosed, or a 404 (and
/// its refusal on record) when nothing is visible.
pub async fn answer_read<V>(
    state: &crate::app::AppState,
    principal: &Principal,
    kind: &str,
    id: Option<&str>,
    shown: Option<Shown<V>>,
) -> Result<actix_web::web::Json<V>, AppError> {
    match shown {
        Some(s) => {
            audit_reads(state, principal, "read", kind, std::slice::from_ref(&s)).await?;
            Ok(actix_web::web::Json(s.view))
        }
        None => Err(refuse(state, principal, "read", kind, id, AppError::NotFound).await),
    }
}

pub fn decider(state: &crate::app::AppState, principal: &Principal) -> Decider {
    Decider::new(state.policy.clone(), principal.attrs.clone())
}
