//! Access tokens (short-lived HS256 JWTs, algorithm pinned, issuer/audience/exp/nbf all
//! required, no leeway) and opaque refresh tokens (stored only as SHA-256 hashes).

use std::collections::HashMap;
use std::sync::{Arc, RwLock};

use base64::Engine;
use jsonwebtoken::{Algorithm, DecodingKey, EncodingKey, Header, Validation};
use rand::RngCore;
use secrecy::{ExposeSecret, ExposeSecretMut, SecretBox};
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

use crate::config::{Secret, TokenSettings};
use crate::error::AppError;

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Claims {
    /// User id.
    pub sub: String,
    /// Session (refresh-token family) id: revoking it ends this token at once.
    pub sid: String,
    /// The user's token epoch at issue; a password change or disabling bumps it.
    pub epoch: i64,
    pub iss: String,
    pub aud: String,
    pub iat: i64,
    pub nbf: i64,
    pub exp: i64,
    pub jti: String,
    /// Good for enrolling a second factor and nothing else: the user's role requires one
    /// and they have none yet (`SAMVERKAN_TOTP_REQUIRED_ROLES`). Absent on every other
    /// token.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub enrol: bool,
}

/// No usable signing key was configured (none, or one jsonwebtoken refuses, e.g. empty).
#[derive(Debug, thiserror::Error)]
#[error("no usable token signing key configured")]
pub struct NoSigningKey;

#[derive(Clone)]
pub struct TokenService {
    signing_kid: String,
    encoding: EncodingKey,
    decoding: HashMap<String, DecodingKey>,
    validation: Validation,
    issuer: String,
    audience: String,
    pub access_ttl_secs: i64,
    pub refresh_ttl_secs: i64,
    /// Keys [`TokenService::fingerprint`].
    fingerprint_key: Arc<SecretBox<[u8; 64]>>,
    /// Tokens whose signature and claims were verified, by their exact text: a guard
    /// re-reading the lägesbild presents the same token for its whole lifetime. The
    /// time checks (exp, nbf) still run on every use; the keys never change while the
    /// process runs.
    verified: Arc<RwLock<HashMap<String, Arc<Claims>>>>,
}

/// Verified tokens kept; when full the set starts over (misses only cost a verification).
const VERIFIED_TOKENS: usize = 10_000;

impl TokenService {
    pub fn new(settings: &TokenSettings, keys: &[(String, Secret)]) -> Result<Self, NoSigningKey> {
        let (kid, secret) = keys.first().ok_or(NoSigningKey)?;
        let decoding = keys
            .iter()
            .map(|(k, s)| {
                DecodingKey::from_secret(s.expose().as_bytes())
                    .map(|d| (k.clone(), d))
                    .map_err(|_| NoSigningKey)
            })
            .collect::<Result<_, _>>()?;
        let mut validation = Validation::new(Algorithm::HS256);
        // jsonwebtoken's defaults are lenient: 60 s leeway, nbf unchecked, aud optional.
        validation.leeway = 0;
        validation.validate_exp = true;
        validation.validate_nbf = true;
        validation.set_issuer(&[settings.issuer.as_str()]);
        validation.set_audience(&[settings.audience.as_str()]);
        validation.set_required_spec_claims(&["exp", "nbf", "iat", "iss", "aud", "sub"]);
        Ok(TokenService {
            signing_kid: kid.clone(),
            encoding: EncodingKey::from_secret(secret.expose().as_bytes())
                .map_err(|_| NoSigningKey)?,
            decoding,
            validation,
            issuer: settings.issuer.clone(),
            audience: settings.audience.clone(),
            access_ttl_secs: settings.access_ttl_secs,
            refresh_ttl_secs: settings.refresh_ttl_secs,
            // One HMAC-SHA256 block: a key of this length is used as it is.
            fingerprint_key: {
                let mut key = SecretBox::new(Box::new([0u8; 64]));
                for (i, half) in key.expose_secret_mut().chunks_mut(32).enumerate() {
                    let mut h = Sha256::new();
                    h.update(b"samverkan fingerprint v1\0");
                    h.update([i as u8]);
                    h.update(secret.expose().as_bytes());
                    half.copy_from_slice(&h.finalize());
                }
                Arc::new(key)
            },
            verified: Arc::default(),
        })
    }

    pub fn issue_access(
        &self,
        user_id: &str,
        session_id: &str,
        epoch: i64,
    ) -> Result<String, AppError> {
        self.issue_access_for(user_id, session_id, epoch, self.access_ttl_secs)
    }

    /// An access token of the same session living `ttl_secs` (a browser session's idle
    /// time: each page view renews it).
    pub fn issue_access_for(
        &self,
        user_id: &str,
        session_id: &str,
        epoch: i64,
        ttl_secs: i64,
    ) -> Result<String, AppError> {
        self.issue(user_id, session_id, epoch, ttl_secs, false)
    }

    /// An access token good only for enrolling a second factor (see [`Claims::enrol`]).
    pub fn issue_enrolment(
        &self,
        user_id: &str,
        session_id: &str,
        epoch: i64,
    ) -> Result<String, AppError> {
        self.issue(user_id, session_id, epoch, self.access_ttl_secs, true)
    }

    fn issue(
        &self,
        user_id: &str,
        session_id: &str,
        epoch: i64,
        ttl_secs: i64,
        enrol: bool,
    ) -> Result<String, AppError> {
        let now = time::OffsetDateTime::now_utc().unix_timestamp();
        let claims = Claims {
            sub: user_id.to_owned(),
            sid: session_id.to_owned(),
            epoch,
            iss: self.issuer.clone(),
            aud: self.audience.clone(),
            iat: now,
            nbf: now,
            exp: now + ttl_secs,
            jti: uuid::Uuid::new_v4().to_string(),
            enrol,
        };
        let mut header = Header::new(Algorithm::HS256);
        header.kid = Some(self.signing_kid.clone());
        jsonwebtoken::encode(&header, &claims, &self.encoding).map_err(AppError::internal)
    }

    /// A keyed hash of `text` (16 hex digits), the same on every instance: what is
    /// stored instead of a typed username that is no account (it may be a password), so
    /// that repeated attempts still show as one name without the text being kept.
    pub fn fingerprint(&self, text: &str) -> String {
        use hmac::{Hmac, Mac};
        let mut mac = <Hmac<Sha256> as hmac::digest::KeyInit>::new(
            self.fingerprint_key.expose_secret().into(),
        );
        mac.update(text.as_bytes());
        hex::encode(&mac.finalize().into_bytes()[..8])
    }

    /// Verifies signature, algorithm, kid, issuer, audience, exp and nbf. A token that
    /// passes everything but its lifetime is `token_expired` (the client should refresh);
    /// anything else is `invalid_token`.
    pub fn verify_access(&self, token: &str) -> Result<Arc<Claims>, AppError> {
        let claims = self.verify_any(token)?;
        if claims.enrol {
            return Err(AppError::second_factor_required());
        }
        Ok(claims)
    }

    /// [`TokenService::verify_access`] that also admits a token good only for enrolling
    /// a second factor (the enrolment endpoints and sign-out take this).
    pub fn verify_any(&self, token: &str) -> Result<Arc<Claims>, AppError> {
        let invalid = || AppError::invalid_token("The access token is not valid: sign in again.");
        if token.len() > 4096 {
            return Err(invalid());
        }
        let cached = self
            .verified
            .read()
            .ok()
            .and_then(|m| m.get(token).cloned());
        if let Some(claims) = cached {
            let now = time::OffsetDateTime::now_utc().unix_timestamp();
            // As jsonwebtoken checks them, with no leeway.
            return if claims.nbf > now {
                Err(invalid())
            } else if claims.exp < now {
                Err(AppError::token_expired())
            } else {
                Ok(claims)
            };
        }
        let claims = match self.verify_uncached(token) {
            Ok(c) => Arc::new(c),
            Err(Refusal::Expired) => return Err(AppError::token_expired()),
            Err(Refusal::Invalid) => return Err(invalid()),
        };
        if let Ok(mut m) = self.verified.write() {
            if m.len() >= VERIFIED_TOKENS {
                m.clear();
            }
            m.insert(token.to_owned(), claims.clone());
        }
        Ok(claims)
    }

    fn verify_uncached(&self, token: &str) -> Result<Claims, Refusal> {
        let header = jsonwebtoken::decode_header(token).map_err(|_| Refusal::Invalid)?;
        if header.alg != Algorithm::HS256 {
            return Err(Refusal::Invalid);
        }
        let key = header
            .kid
            .as_deref()
            .and_then(|kid| self.decoding.get(kid))
            .ok_or(Refusal::Invalid)?;
        // jsonwebtoken checks the signature before the claims, so "expired" is only ever
        // said of a token this service signed.
        match jsonwebtoken::decode::<Claims>(token, key, &self.validation) {
            Ok(data) => Ok(data.claims),
            Err(e) if *e.kind() == jsonwebtoken::errors::ErrorKind::ExpiredSignature => {
                Err(Refusal::Expired)
            }
            Err(_) => Err(Refusal::Invalid),
        }
    }
}

/// Whether a token's header says HS256, as every token this service signs does (the
/// header only; nothing is verified). Anything else may be an agency provider's.
pub fn looks_like_ours(token: &str) -> bool {
    jsonwebtoken::decode_header(token).is_ok_and(|h| h.alg == Algorithm::HS256)
}

/// Why an access token was refused.
enum Refusal {
    Expired,
    Invalid,
}

/// A new opaque refresh token and the hash that is stored.
pub fn new_refresh_token() -> (String, String) {
    let mut bytes = [0u8; 32];
    rand::rngs::OsRng.fill_bytes(&mut bytes);
    let token = base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(bytes);
    let hash = hash_refresh_token(&token);
    (token, hash)
}

pub fn hash_refresh_token(token: &str) -> String {
    hex::encode(Sha256::digest(token.as_bytes()))
}

/// A fresh signing secret (for generated keys).
pub fn generate_secret() -> Secret {
    let mut bytes = [0u8; 48];
    rand::rngs::OsRng.fill_bytes(&mut bytes);
    Secret::new(base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(bytes))
}
