//! What handlers take from a request: the signed-in user, JSON bodies that must be
//! objects, the request's audit metadata.

use std::future::Future;
use std::pin::Pin;

use actix_web::dev::Payload;
use actix_web::{http::header, web, FromRequest, HttpMessage, HttpRequest};

use crate::api::state::AppState;
use crate::auth::{Bearer, Principal};
use crate::error::AppError;
use crate::request::RequestMeta;

/// Longest purpose accepted in `X-Purpose`, in characters.
pub const MAX_PURPOSE: usize = 120;

/// Whether `c` may appear in a purpose: letters (Swedish too), digits, spaces and plain
/// punctuation. A purpose names why (e.g. "ärende 2026-123, uppföljning"), never case
/// details: it is shown to auditors as it is.
fn purpose_char(c: char) -> bool {
    c.is_alphanumeric() || " -_.,:;/()#§".contains(c)
}

/// Request id, purpose and client address of a request, for its audit entries. A
/// purpose that is too long or holds other characters is refused (400), not cut.
pub fn request_meta(req: &HttpRequest) -> Result<RequestMeta, AppError> {
    let request_id = req
        .extensions()
        .get::<tracing_actix_web::RequestId>()
        .map(|id| id.to_string());
    let purpose = match req.headers().get("x-purpose") {
        None => None,
        Some(v) => {
            let bad = || {
                AppError::bad_request(
                    "invalid_purpose",
                    format!(
                        "X-Purpose must be at most {MAX_PURPOSE} characters of letters, digits, spaces and - _ . , : ; / ( ) # § (UTF-8); it names why, never case details"
                    ),
                )
            };
            let text = std::str::from_utf8(v.as_bytes()).map_err(|_| bad())?.trim();
            if text.chars().count() > MAX_PURPOSE || !text.chars().all(purpose_char) {
                return Err(bad());
            }
            (!text.is_empty()).then(|| text.to_owned())
        }
    };
    let client = client_address(req).map(|ip| ip.to_string());
    Ok(RequestMeta {
        request_id,
        purpose,
        client,
        channel: None,
    })
}

/// The client's address: the TCP peer, or, behind a trusted proxy, the address the
/// proxy forwarded (see [`crate::request::ProxySettings::client`]).
pub fn client_address(req: &HttpRequest) -> Option<std::net::IpAddr> {
    let peer = req.peer_addr()?.ip();
    let Some(state) = req.app_data::<web::Data<AppState>>() else {
        return Some(peer);
    };
    let proxies = &state.settings.proxies;
    if proxies.trusted.is_empty() {
        return Some(peer);
    }
    let values = req
        .headers()
        .get_all(proxies.header.name())
        .filter_map(|v| v.to_str().ok());
    Some(proxies.client(peer, values))
}

/// The request's audit metadata as an extractor.
pub struct Meta(pub RequestMeta);

impl FromRequest for Meta {
    type Error = AppError;
    type Future = std::future::Ready<Result<Self, Self::Error>>;

    fn from_request(req: &HttpRequest, _payload: &mut Payload) -> Self::Future {
        std::future::ready(request_meta(req).map(Meta))
    }
}

fn state(req: &HttpRequest) -> Result<web::Data<AppState>, AppError> {
    req.app_data::<web::Data<AppState>>()
        .cloned()
        .ok_or_else(|| AppError::internal("app state missing"))
}

/// A bearer token as sent: one of ours, verified, or an agency provider's, still to be
/// verified (which may fetch its keys) and turned into a session.
enum Sent {
    Ours(Bearer),
    Provider { token: String, meta: RequestMeta },
}

fn bearer(req: &HttpRequest) -> Result<(web::Data<AppState>, Sent), AppError> {
    bearer_with(req, false)
}

/// The bearer token; with `enrolling`, also one good only for enrolling a second factor.
fn bearer_with(
    req: &HttpRequest,
    enrolling: bool,
) -> Result<(web::Data<AppState>, Sent), AppError> {
    let state = state(req)?;
    let Some(sent) = req.headers().get(header::AUTHORIZATION) else {
        return Err(AppError::unauthorized(
            "Sign in: send Authorization: Bearer <access_token>.",
        ));
    };
    let token = sent
        .to_str()
        .ok()
        .and_then(|h| {
            h.strip_prefix("Bearer ")
                .or_else(|| h.strip_prefix("bearer "))
        })
        .map(str::trim)
        .ok_or_else(|| {
            AppError::invalid_token(
                "Send the access token as: Authorization: Bearer <access_token>.",
            )
        })?;
    let meta = request_meta(req)?;
    // Ours are HS256; anything else is the provider's to verify, when there is one.
    if state.oidc.is_some() && token.len() <= 8192 && !crate::auth::tokens::looks_like_ours(token) {
        return Ok((
            state,
            Sent::Provider {
                token: token.to_owned(),
                meta,
            },
        ));
    }
    let claims = if enrolling {
        state.tokens.verify_any(token)?
    } else {
        state.tokens.verify_access(token)?
    };
    Ok((state, Sent::Ours(Bearer::new(claims, meta))))
}

async fn settle(state: &AppState, sent: Sent) -> Result<Bearer, AppError> {
    match sent {
        Sent::Ours(b) => Ok(b),
        Sent::Provider { token, meta } => {
            crate::account::provider_bearer(state.accounts(), state.oidc.as_deref(), &token, meta)
                .await
        }
    }
}

/// The signed-in user as [`Principal`], also when the token is good only for enrolling
/// a second factor: what the enrolment endpoints and sign-out take.
pub struct Enrolling(pub Principal);

impl FromRequest for Enrolling {
    type Error = AppError;
    type Future = Pin<Box<dyn Future<Output = Result<Self, Self::Error>>>>;

    fn from_request(req: &HttpRequest, _payload: &mut Payload) -> Self::Future {
        let checked = bearer_with(req, true);
        Box::pin(async move {
            let (state, sent) = checked?;
            let bearer = settle(&state, sent).await?;
            let st = state.clone();
            state
                .db
                .run(move |c| bearer.resolve(c, &st.sessions))
                .await
                .map(Enrolling)
        })
    }
}

/// A verified token whose session the handler resolves itself (the hot read paths).
impl FromRequest for Bearer {
    type Error = AppError;
    type Future = Pin<Box<dyn Future<Output = Result<Self, Self::Error>>>>;

    fn from_request(req: &HttpRequest, _payload: &mut Payload) -> Self::Future {
        let checked = bearer(req);
        Box::pin(async move {
            let (state, sent) = checked?;
            settle(&state, sent).await
        })
    }
}

/// The signed-in user, as stored now. Always from the database (a lookup by key): the
/// handlers that take it may answer without a group commit (which would check a cached
/// session), and a session ended on another instance must be refused at once. The hot
/// read paths take a [`Bearer`] instead, and the group commit of their audit entries
/// checks the session.
impl FromRequest for Principal {
    type Error = AppError;
    type Future = Pin<Box<dyn Future<Output = Result<Self, Self::Error>>>>;

    fn from_request(req: &HttpRequest, _payload: &mut Payload) -> Self::Future {
        let checked = bearer(req);
        Box::pin(async move {
            let (state, sent) = checked?;
            let bearer = settle(&state, sent).await?;
            let st = state.clone();
            state.db.run(move |c| bearer.resolve(c, &st.sessions)).await
        })
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

impl<T: serde::de::DeserializeOwned + 'static> FromRequest for JsonBody<T> {
    type Error = actix_web::Error;
    type Future = Pin<Box<dyn Future<Output = Result<Self, Self::Error>>>>;

    fn from_request(req: &HttpRequest, payload: &mut Payload) -> Self::Future {
        let declared = json_declared(req);
        // The JSON extractor keeps the size limit and error shapes.
        let value = web::Json::<serde_json::Value>::from_request(req, payload);
        Box::pin(async move {
            declared?;
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

/// A body declared as anything but JSON is a 415 that names the type to send. No
/// declaration at all is read as JSON (clients that send none).
fn json_declared(req: &HttpRequest) -> Result<(), AppError> {
    match req.mime_type() {
        Ok(None) => Ok(()),
        Ok(Some(m)) if m.subtype() == "json" || m.suffix().is_some_and(|s| s == "json") => Ok(()),
        _ => Err(AppError::UnsupportedMediaType),
    }
}

pub(super) fn nul_error() -> AppError {
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
/// errors as the JSON extractor: a body under another declared content type is a 415.
pub fn optional_json<T: serde::de::DeserializeOwned + Default>(
    req: &HttpRequest,
    body: &[u8],
) -> Result<T, AppError> {
    if body.iter().all(|b| b.is_ascii_whitespace()) {
        return Ok(T::default());
    }
    json_declared(req)?;
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
