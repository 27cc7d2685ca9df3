//! OpenID Connect single sign-on: access tokens issued by an agency's OpenID Provider.
//!
//! The provider says who the person is; the local account (matched by the username claim)
//! holds the role, the organisation and the places. Checks, in order:
//! - the header names a `kid` of the provider's key set (discovered from
//!   `<issuer>/.well-known/openid-configuration`);
//! - the algorithm is the key's (its `alg`, else its type and curve), never the header's
//!   choice: a header that names another algorithm is refused (no `none`, no HS256 with
//!   the public key as secret);
//! - signature, then `iss`, `aud`, `exp` and `nbf` with a small leeway.
//!
//! Keys are cached: a token signed by a cached key verifies while the provider is down.
//! An unknown `kid` fetches the key set again, at most once per
//! `SAMVERKAN_OIDC_JWKS_MIN_REFRESH_SECS` (60), so rotation works and a flood of bogus
//! kids does not hammer the provider.

use std::collections::HashMap;
use std::sync::{Arc, RwLock};
use std::time::{Duration, Instant};

use jsonwebtoken::jwk::{AlgorithmParameters, EllipticCurve, Jwk, JwkSet, KeyAlgorithm};
use jsonwebtoken::{Algorithm, DecodingKey, Validation};

use crate::config::OidcSettings;

/// What a verified provider token says.
#[derive(Debug, Clone)]
pub struct Verified {
    /// The username claim: the local account's username.
    pub username: String,
    /// Expiry, Unix seconds.
    pub exp: i64,
}

/// Why a provider token was refused (said to the log, never to the client).
#[derive(Debug, thiserror::Error)]
pub enum Refused {
    #[error("malformed token or header: {0}")]
    Malformed(String),
    #[error("no kid in the header")]
    NoKid,
    #[error("unknown kid {0:?}")]
    UnknownKid(String),
    #[error("invalid: {0}")]
    Invalid(String),
    #[error("no {0:?} claim")]
    NoUsername(String),
}

struct Key {
    decoding: DecodingKey,
    alg: Algorithm,
}

#[derive(Default)]
struct KeySet {
    keys: HashMap<String, Arc<Key>>,
    /// When the key set was last fetched (or tried).
    fetched: Option<Instant>,
}

/// The provider: its settings, an HTTP client and the cached keys.
pub struct Oidc {
    settings: OidcSettings,
    http: reqwest::Client,
    keys: RwLock<KeySet>,
    /// One fetch at a time; the others wait for its result.
    fetching: tokio::sync::Mutex<()>,
    /// Fetches of the key set so far (for the metrics).
    pub fetches: prometheus::IntCounter,
    /// Provider tokens already turned into a session, by token: each is verified and
    /// recorded once (a bounded map, cleared when full).
    accepted: RwLock<HashMap<String, Arc<crate::auth::tokens::Claims>>>,
}

/// Most provider tokens remembered at once.
const ACCEPTED_MAX: usize = 10_000;

impl std::fmt::Debug for Oidc {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Oidc")
            .field("issuer", &self.settings.issuer)
            .finish_non_exhaustive()
    }
}

/// The name of the counter of key-set fetches.
pub const JWKS_FETCHES_METRIC: &str = "samverkan_oidc_jwks_fetches_total";

impl Oidc {
    pub fn new(settings: OidcSettings) -> anyhow::Result<Self> {
        // rustls without a built-in provider: ring, compiled from the crate (aws-lc-rs
        // would need cmake at build time). Its lack of post-quantum key exchange is the
        // deprecation; the provider's keys are public and the tokens short-lived.
        #[allow(deprecated)]
        let _ = rustls::crypto::ring::default_provider().install_default();
        let http = reqwest::Client::builder()
            .timeout(Duration::from_secs(5))
            .redirect(reqwest::redirect::Policy::none())
            .build()?;
        Ok(Oidc {
            settings,
            http,
            keys: RwLock::new(KeySet::default()),
            fetching: tokio::sync::Mutex::new(()),
            accepted: RwLock::new(HashMap::new()),
            fetches: prometheus::IntCounter::new(
                JWKS_FETCHES_METRIC,
                "Fetches of the OpenID Provider's key set (discovery, rotation, unknown kids)",
            )?,
        })
    }

    /// The session claims a provider token was turned into, while it has not expired.
    pub fn accepted(&self, token: &str) -> Option<Arc<crate::auth::tokens::Claims>> {
        let claims = self.accepted.read().ok()?.get(token).cloned()?;
        let now = crate::storage::now_micros() / 1_000_000;
        (claims.exp > now).then_some(claims)
    }

    pub fn accept(&self, token: &str, claims: Arc<crate::auth::tokens::Claims>) {
        if let Ok(mut m) = self.accepted.write() {
            if m.len() >= ACCEPTED_MAX {
                m.clear();
            }
            m.insert(token.to_owned(), claims);
        }
    }

    pub fn settings(&self) -> &OidcSettings {
        &self.settings
    }

    pub fn http(&self) -> &reqwest::Client {
        &self.http
    }

    /// The provider's discovery document.
    pub async fn discovery(&self) -> Result<serde_json::Value, Refused> {
        let url = format!(
            "{}/.well-known/openid-configuration",
            self.settings.issuer.trim_end_matches('/')
        );
        let doc: serde_json::Value = self
            .http
            .get(&url)
            .send()
            .await
            .and_then(reqwest::Response::error_for_status)
            .map_err(|e| Refused::Invalid(format!("discovery: {e}")))?
            .json()
            .await
            .map_err(|e| Refused::Invalid(format!("discovery: {e}")))?;
        // OpenID Connect Discovery §4.3: the document must name the issuer it was asked of.
        if doc["issuer"].as_str() != Some(self.settings.issuer.as_str()) {
            return Err(Refused::Invalid(format!(
                "discovery names issuer {} instead of {}",
                doc["issuer"], self.settings.issuer
            )));
        }
        Ok(doc)
    }

    fn cached(&self, kid: &str) -> Option<Arc<Key>> {
        self.keys.read().ok()?.keys.get(kid).cloned()
    }

    /// Fetches the key set again unless that was done within the minimum interval.
    async fn refresh(&self) {
        let _one = self.fetching.lock().await;
        let min = Duration::from_secs(self.settings.jwks_min_refresh_secs);
        let recent = self
            .keys
            .read()
            .ok()
            .and_then(|k| k.fetched)
            .is_some_and(|at| at.elapsed() < min);
        if recent {
            return;
        }
        if let Ok(mut k) = self.keys.write() {
            k.fetched = Some(Instant::now());
        }
        self.fetches.inc();
        match self.fetch_keys().await {
            Ok(keys) => {
                tracing::info!(keys = keys.len(), "OpenID Provider keys fetched");
                if let Ok(mut k) = self.keys.write() {
                    k.keys = keys;
                }
            }
            // The cached keys stay: tokens they signed still verify.
            Err(e) => tracing::warn!(error = %e, "cannot fetch the OpenID Provider's keys"),
        }
    }

    async fn fetch_keys(&self) -> Result<HashMap<String, Arc<Key>>, Refused> {
        let doc = self.discovery().await?;
        let uri = doc["jwks_uri"]
            .as_str()
            .ok_or_else(|| Refused::Invalid("discovery has no jwks_uri".into()))?;
        let set: JwkSet = self
            .http
            .get(uri)
            .send()
            .await
            .and_then(reqwest::Response::error_for_status)
            .map_err(|e| Refused::Invalid(format!("jwks: {e}")))?
            .json()
            .await
            .map_err(|e| Refused::Invalid(format!("jwks: {e}")))?;
        let mut keys = HashMap::new();
        for jwk in &set.keys {
            let (Some(kid), Some(alg)) = (jwk.common.key_id.clone(), key_algorithm(jwk)) else {
                continue;
            };
            if let Ok(decoding) = DecodingKey::from_jwk(jwk) {
                keys.insert(kid, Arc::new(Key { decoding, alg }));
            }
        }
        Ok(keys)
    }

    /// Verifies a provider access token (see the module docs).
    pub async fn verify(&self, token: &str) -> Result<Verified, Refused> {
        let audience = self.settings.audience.clone();
        let claims = self.verify_claims(token, &audience).await?;
        self.verified(&claims)
    }

    /// Verifies an ID token from the code exchange of the pages' sign-in: addressed to
    /// `client_id`, carrying the `nonce` this browser was given.
    pub async fn verify_id_token(
        &self,
        token: &str,
        client_id: &str,
        nonce: &str,
    ) -> Result<Verified, Refused> {
        let claims = self.verify_claims(token, client_id).await?;
        let sent = claims["nonce"].as_str().unwrap_or_default();
        if sent.len() != nonce.len()
            || sent
                .bytes()
                .zip(nonce.bytes())
                .fold(0u8, |acc, (a, b)| acc | (a ^ b))
                != 0
        {
            return Err(Refused::Invalid("the nonce does not match".into()));
        }
        self.verified(&claims)
    }

    fn verified(&self, claims: &serde_json::Value) -> Result<Verified, Refused> {
        let claim = &self.settings.username_claim;
        let username = claims[claim.as_str()]
            .as_str()
            .filter(|u| !u.is_empty() && u.len() <= 64)
            .ok_or_else(|| Refused::NoUsername(claim.clone()))?
            .to_owned();
        let exp = claims["exp"].as_i64().unwrap_or_default();
        Ok(Verified { username, exp })
    }

    async fn verify_claims(
        &self,
        token: &str,
        audience: &str,
    ) -> Result<serde_json::Value, Refused> {
        let header =
            jsonwebtoken::decode_header(token).map_err(|e| Refused::Malformed(e.to_string()))?;
        let kid = header.kid.ok_or(Refused::NoKid)?;
        let key = match self.cached(&kid) {
            Some(k) => k,
            None => {
                self.refresh().await;
                self.cached(&kid).ok_or(Refused::UnknownKid(kid))?
            }
        };
        let mut v = Validation::new(key.alg);
        v.set_issuer(&[&self.settings.issuer]);
        v.set_audience(&[audience]);
        v.leeway = self.settings.leeway_secs;
        v.validate_nbf = true;
        v.set_required_spec_claims(&["exp", "iss", "aud"]);
        let data = jsonwebtoken::decode::<serde_json::Value>(token, &key.decoding, &v)
            .map_err(|e| Refused::Invalid(e.to_string()))?;
        Ok(data.claims)
    }
}

/// The algorithm a key is for: its `alg`, else what its type and curve allow.
fn key_algorithm(jwk: &Jwk) -> Option<Algorithm> {
    let by_type = match &jwk.algorithm {
        AlgorithmParameters::RSA(_) => Some(Algorithm::RS256),
        AlgorithmParameters::EllipticCurve(p) => match p.curve {
            EllipticCurve::P256 => Some(Algorithm::ES256),
            EllipticCurve::P384 => Some(Algorithm::ES384),
            _ => None,
        },
        AlgorithmParameters::OctetKeyPair(p) if p.curve == EllipticCurve::Ed25519 => {
            Some(Algorithm::EdDSA)
        }
        _ => None,
    }?;
    match jwk.common.key_algorithm {
        None => Some(by_type),
        // Only an asymmetric algorithm of the key's own family.
        Some(alg) => {
            let alg = match alg {
                KeyAlgorithm::RS256 => Algorithm::RS256,
                KeyAlgorithm::RS384 => Algorithm::RS384,
                KeyAlgorithm::RS512 => Algorithm::RS512,
                KeyAlgorithm::PS256 => Algorithm::PS256,
                KeyAlgorithm::PS384 => Algorithm::PS384,
                KeyAlgorithm::PS512 => Algorithm::PS512,
                KeyAlgorithm::ES256 => Algorithm::ES256,
                KeyAlgorithm::ES384 => Algorithm::ES384,
                KeyAlgorithm::EdDSA => Algorithm::EdDSA,
                _ => return None,
            };
            let same_family = matches!(
                (by_type, alg),
                (
                    Algorithm::RS256,
                    Algorithm::RS256
                        | Algorithm::RS384
                        | Algorithm::RS512
                        | Algorithm::PS256
                        | Algorithm::PS384
                        | Algorithm::PS512
                ) | (Algorithm::ES256, Algorithm::ES256)
                    | (Algorithm::ES384, Algorithm::ES384)
                    | (Algorithm::EdDSA, Algorithm::EdDSA)
            );
            same_family.then_some(alg)
        }
    }
}
