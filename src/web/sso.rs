//! "Log in with <provider>": the authorization-code flow with PKCE (S256), `state` and
//! `nonce`, ending in the same cookie session as a local sign-in. The provider says who
//! the person is; the local account holds role, organisation and places.
//!
//! The browser keeps `state`, `nonce` and the PKCE verifier in a short-lived cookie of its
//! own (`SameSite=Lax`: the provider's redirect back is a cross-site navigation), so no
//! server state is needed and any instance can take the callback.

use actix_web::cookie::{Cookie, SameSite};
use actix_web::http::StatusCode;
use actix_web::{web, HttpRequest, HttpResponse};
use base64::Engine;
use rand::RngCore;
use serde::Deserialize;
use sha2::{Digest, Sha256};

use super::i18n::Lang;
use super::see_other;
use super::session::{login_form, start_web_session};
use crate::api::extractors::request_meta;
use crate::api::state::AppState;
use crate::error::AppError;

const FLOW_COOKIE: &str = "samverkan_oidc";
const CALLBACK: &str = "/auth/oidc/callback";

fn random() -> String {
    let mut b = [0u8; 32];
    rand::rngs::OsRng.fill_bytes(&mut b);
    base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(b)
}

fn redirect_uri(req: &HttpRequest) -> String {
    let info = req.connection_info();
    format!("{}://{}{CALLBACK}", info.scheme(), info.host())
}

fn refused(state: &AppState, lang: Lang, message: String, status: StatusCode) -> HttpResponse {
    let mut r = login_form(state, lang, "", Some(message), status);
    let mut gone = Cookie::build(FLOW_COOKIE, "").path(CALLBACK).finish();
    gone.make_removal();
    let _ = r.add_cookie(&gone);
    r
}

/// `GET /login/oidc`: to the provider's authorization endpoint.
pub async fn start(req: HttpRequest, state: web::Data<AppState>) -> HttpResponse {
    let lang = Lang::of(&req);
    let t = lang.texts();
    let (Some(oidc), Some(client_id)) = (
        state.oidc.as_ref(),
        state
            .oidc
            .as_ref()
            .and_then(|o| o.settings().client_id.clone()),
    ) else {
        return see_other("/login");
    };
    let endpoint = match oidc.discovery().await {
        Ok(doc) => doc["authorization_endpoint"].as_str().map(str::to_owned),
        Err(e) => {
            tracing::warn!(error = %e, "the OpenID Provider cannot be reached");
            None
        }
    };
    let Some(endpoint) = endpoint else {
        return refused(
            &state,
            lang,
            t.get("login.sso_unavailable").to_owned(),
            StatusCode::SERVICE_UNAVAILABLE,
        );
    };
    let (flow_state, nonce, verifier) = (random(), random(), random());
    let challenge =
        base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(Sha256::digest(&verifier));
    let mut url = match reqwest::Url::parse(&endpoint) {
        Ok(u) => u,
        Err(_) => {
            return refused(
                &state,
                lang,
                t.get("login.sso_unavailable").to_owned(),
                StatusCode::SERVICE_UNAVAILABLE,
            )
        }
    };
    url.query_pairs_mut()
        .append_pair("response_type", "code")
        .append_pair("client_id", &client_id)
        .append_pair("redirect_uri", &redirect_uri(&req))
        .append_pair("scope", "openid profile")
        .append_pair("state", &flow_state)
        .append_pair("nonce", &nonce)
        .append_pair("code_challenge", &challenge)
        .append_pair("code_challenge_method", "S256");
    let secure = state
        .settings
        .web
        .secure_cookies
        .unwrap_or_else(|| req.connection_info().scheme() == "https");
    let cookie = Cookie::build(FLOW_COOKIE, format!("{flow_state}.{nonce}.{verifier}"))
        .path(CALLBACK)
        .http_only(true)
        .secure(secure)
        .same_site(SameSite::Lax)
        .max_age(actix_web::cookie::time::Duration::minutes(10))
        .finish();
    let mut r = see_other(url.as_str());
    let _ = r.add_cookie(&cookie);
    r
}

#[derive(Debug, Deserialize)]
pub struct Callback {
    code: Option<String>,
    state: Option<String>,
    error: Option<String>,
}

/// `GET /auth/oidc/callback`: checks `state`, exchanges the code (with the PKCE
/// verifier), verifies the ID token (signature, issuer, audience, `nonce`), and signs the
/// local account in.
pub async fn callback(
    req: HttpRequest,
    state: web::Data<AppState>,
    query: web::Query<Callback>,
) -> HttpResponse {
    let lang = Lang::of(&req);
    let t = lang.texts();
    let fail = |key: &str, status| refused(&state, lang, t.get(key).to_owned(), status);
    let Some(oidc) = state.oidc.clone() else {
        return see_other("/login");
    };
    let Some(client_id) = oidc.settings().client_id.clone() else {
        return see_other("/login");
    };
    let flow = req.cookie(FLOW_COOKIE).map(|c| c.value().to_owned());
    let parts: Vec<&str> = flow.as_deref().unwrap_or_default().split('.').collect();
    let [flow_state, nonce, verifier] = parts.as_slice() else {
        return fail("login.sso_failed", StatusCode::BAD_REQUEST);
    };
    let sent_state = query.state.as_deref().unwrap_or_default();
    if sent_state.len() != flow_state.len()
        || sent_state
            .bytes()
            .zip(flow_state.bytes())
            .fold(0u8, |acc, (a, b)| acc | (a ^ b))
            != 0
    {
        return fail("login.sso_failed", StatusCode::BAD_REQUEST);
    }
    if query.error.is_some() {
        return fail("login.sso_failed", StatusCode::UNAUTHORIZED);
    }
    let Some(code) = query.code.clone() else {
        return fail("login.sso_failed", StatusCode::BAD_REQUEST);
    };
    let id_token = match exchange(&oidc, &client_id, &code, &redirect_uri(&req), verifier).await {
        Ok(t) => t,
        Err(e) => {
            tracing::warn!(error = %e, "the OpenID Provider's code exchange failed");
            return fail("login.sso_failed", StatusCode::UNAUTHORIZED);
        }
    };
    let mut verified = match oidc.verify_id_token(&id_token, &client_id, nonce).await {
        Ok(v) => v,
        Err(e) => {
            tracing::info!(reason = %e, "an ID token was refused");
            return fail("login.sso_failed", StatusCode::UNAUTHORIZED);
        }
    };
    // A browser session lives as long as a local one, not as long as the ID token.
    verified.exp = crate::storage::now_micros() / 1_000_000 + state.tokens.refresh_ttl_secs;
    let meta = match request_meta(&req) {
        Ok(m) => m.web(),
        Err(e) => return refused(&state, lang, e.to_string(), StatusCode::BAD_REQUEST),
    };
    let sid = format!(
        "oidc-{}",
        &crate::auth::tokens::hash_refresh_token(&id_token)[..32]
    );
    match crate::account::record_provider_session(&state.accounts(), &verified, &sid, &oidc, &meta)
        .await
    {
        Ok(Ok(claims)) => {
            let mut r = start_web_session(&state, &claims);
            let mut gone = Cookie::build(FLOW_COOKIE, "").path(CALLBACK).finish();
            gone.make_removal();
            let _ = r.add_cookie(&gone);
            r
        }
        Ok(Err(AppError::Refused { message, .. })) => {
            refused(&state, lang, message, StatusCode::FORBIDDEN)
        }
        Ok(Err(_)) | Err(_) => fail("login.sso_failed", StatusCode::UNAUTHORIZED),
    }
}

/// The code for tokens at the provider's token endpoint (client_secret_post); the ID token.
async fn exchange(
    oidc: &crate::auth::oidc::Oidc,
    client_id: &str,
    code: &str,
    redirect_uri: &str,
    verifier: &str,
) -> Result<String, String> {
    let doc = oidc.discovery().await.map_err(|e| e.to_string())?;
    let endpoint = doc["token_endpoint"]
        .as_str()
        .ok_or("no token_endpoint")?
        .to_owned();
    let secret = oidc
        .settings()
        .client_secret
        .as_ref()
        .map(|s| s.expose().to_owned())
        .unwrap_or_default();
    let form = [
        ("grant_type", "authorization_code"),
        ("code", code),
        ("redirect_uri", redirect_uri),
        ("client_id", client_id),
        ("client_secret", secret.as_str()),
        ("code_verifier", verifier),
    ];
    let body: serde_json::Value = oidc
        .http()
        .post(endpoint)
        .form(&form)
        .send()
        .await
        .and_then(reqwest::Response::error_for_status)
        .map_err(|e| e.to_string())?
        .json()
        .await
        .map_err(|e| e.to_string())?;
    body["id_token"]
        .as_str()
        .map(str::to_owned)
        .ok_or_else(|| "no id_token".to_owned())
}
