//! Forged, altered, expired and misdirected access tokens: every one is a 401. Tokens are
//! built by hand (base64url JSON) or with jsonwebtoken from the claims of a real token,
//! so only the one property under test differs from a token the service would accept.

use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine;
use jsonwebtoken::{Algorithm, EncodingKey, Header};
use reqwest::StatusCode;
use serde_json::{json, Value};

use samverkan::config::Secret;
use samverkan::storage::DatabaseUrl;

use crate::helpers::{spawn_app, spawn_with, test_settings, TestApp, PASSWORD, TEST_SECRET};

const KID: &str = "test-key-1";

fn b64(v: &Value) -> String {
    URL_SAFE_NO_PAD.encode(serde_json::to_vec(v).unwrap())
}

fn now() -> i64 {
    time::OffsetDateTime::now_utc().unix_timestamp()
}

/// The claims of a real token (decoded without checking: we only copy them).
fn claims_of(token: &str) -> Value {
    let payload = token.split('.').nth(1).unwrap();
    serde_json::from_slice(&URL_SAFE_NO_PAD.decode(payload).unwrap()).unwrap()
}

fn sign(alg: Algorithm, kid: Option<&str>, secret: &[u8], claims: &Value) -> String {
    if secret.is_empty() {
        // jsonwebtoken 12 refuses to sign with an empty key; an attacker's script would not.
        assert_eq!(alg, Algorithm::HS256);
        return hs256(
            &json!({"typ": "JWT", "alg": "HS256", "kid": kid}),
            claims,
            secret,
        );
    }
    let mut header = Header::new(alg);
    header.kid = kid.map(str::to_owned);
    jsonwebtoken::encode(&header, claims, &EncodingKey::from_secret(secret).unwrap()).unwrap()
}

/// HS256 over a header and claims given as JSON, by hand (HMAC-SHA256): for headers
/// jsonwebtoken would not write, and keys it refuses (empty).
fn hs256(header: &Value, claims: &Value, secret: &[u8]) -> String {
    use hmac::{Hmac, Mac};
    let input = format!("{}.{}", b64(header), b64(claims));
    let mut mac = <Hmac<sha2::Sha256> as hmac::digest::KeyInit>::new_from_slice(secret).unwrap();
    mac.update(input.as_bytes());
    format!(
        "{input}.{}",
        URL_SAFE_NO_PAD.encode(mac.finalize().into_bytes())
    )
}

/// Signed exactly as the service signs: HS256, the test key and its kid.
fn good(claims: &Value) -> String {
    sign(Algorithm::HS256, Some(KID), TEST_SECRET.as_bytes(), claims)
}

async fn me(app: &TestApp, token: &str) -> StatusCode {
    let r = app.get("/api/v1/me", token).await;
    if r.status == StatusCode::UNAUTHORIZED {
        // A token was sent: RFC 6750's invalid_token, and whether refreshing helps.
        let code = r.json["error"].as_str().unwrap_or_default();
        assert!(
            code == "invalid_token" || code == "token_expired",
            "{}",
            r.text
        );
        let challenge = r.headers["www-authenticate"].to_str().unwrap();
        assert!(
            challenge.starts_with(r#"Bearer error="invalid_token", error_description=""#),
            "{challenge}"
        );
    }
    r.status
}

/// The error code of a refused token.
async fn refusal(app: &TestApp, token: &str) -> String {
    let r = app.get("/api/v1/me", token).await;
    assert_eq!(r.status, StatusCode::UNAUTHORIZED, "{}", r.text);
    r.json["error"].as_str().unwrap().to_owned()
}

/// A live session's claims, and a check that re-signing them unchanged is accepted (so
/// each refusal below is down to the one thing changed).
async fn live_claims(app: &TestApp, user: &str) -> Value {
    let token = app.token(user).await;
    let claims = claims_of(&token);
    assert_eq!(me(app, &good(&claims)).await, StatusCode::OK);
    claims
}

#[tokio::test]
async fn alg_none_in_any_spelling_is_refused() {
    let app = spawn_app().await;
    let claims = live_claims(&app, "polis1").await;
    for alg in ["none", "None", "NONE", "nOnE"] {
        let header = json!({"alg": alg, "typ": "JWT", "kid": KID});
        let unsigned = format!("{}.{}", b64(&header), b64(&claims));
        for token in [
            format!("{unsigned}."),
            unsigned.clone(),
            format!("{unsigned}.{}", good(&claims).split('.').nth(2).unwrap()),
        ] {
            assert_eq!(me(&app, &token).await, StatusCode::UNAUTHORIZED, "{alg}");
        }
    }
}

#[tokio::test]
async fn other_algorithms_other_keys_and_guessable_secrets_are_refused() {
    let app = spawn_app().await;
    let claims = live_claims(&app, "polis1").await;
    let secret = TEST_SECRET.as_bytes();
    let forged = [
        sign(Algorithm::HS384, Some(KID), secret, &claims),
        sign(Algorithm::HS512, Some(KID), secret, &claims),
        hs256(
            &json!({"alg": "HS256", "typ": "JWT", "kid": KID}),
            &claims,
            b"",
        ),
        sign(Algorithm::HS256, Some(KID), b"secret", &claims),
        sign(Algorithm::HS256, Some(KID), b"samverkan", &claims),
        sign(
            Algorithm::HS256,
            Some(KID),
            b"another-secret-that-is-at-least-32-bytes!!",
            &claims,
        ),
    ];
    for token in forged {
        assert_eq!(me(&app, &token).await, StatusCode::UNAUTHORIZED, "{token}");
    }
    // An RS256 header over an HMAC signature (the key-confusion attack).
    let header = json!({"alg": "RS256", "typ": "JWT", "kid": KID});
    let sig = good(&claims).split('.').nth(2).unwrap().to_owned();
    let token = format!("{}.{}.{sig}", b64(&header), b64(&claims));
    assert_eq!(me(&app, &token).await, StatusCode::UNAUTHORIZED);
}

/// RFC 7515 §4.1.11: a header naming a critical extension the service does not know must
/// be refused, even with a good signature (jsonwebtoken 12; 11 accepted it). Claims of
/// the wrong JSON type (an `aud` list, a numeric `sub`, an `iss` list) are refused too.
#[tokio::test]
async fn unknown_critical_header_extensions_and_type_confused_claims_are_refused() {
    let app = spawn_app().await;
    let claims = live_claims(&app, "polis1").await;
    let secret = TEST_SECRET.as_bytes();
    let plain = json!({"alg": "HS256", "typ": "JWT", "kid": KID});
    assert_eq!(
        me(&app, &hs256(&plain, &claims, secret)).await,
        StatusCode::OK
    );
    let crit = json!({"alg": "HS256", "typ": "JWT", "kid": KID,
        "crit": ["x-samverkan-scope"], "x-samverkan-scope": "all"});
    assert_eq!(
        me(&app, &hs256(&crit, &claims, secret)).await,
        StatusCode::UNAUTHORIZED
    );
    for (name, value) in [
        ("aud", json!([claims["aud"].clone()])),
        ("iss", json!([claims["iss"].clone()])),
        ("sub", json!(12345)),
    ] {
        let mut confused = claims.clone();
        confused[name] = value;
        assert_eq!(
            me(&app, &hs256(&plain, &confused, secret)).await,
            StatusCode::UNAUTHORIZED,
            "{name}"
        );
    }
}

#[tokio::test]
async fn altered_claims_under_the_old_signature_and_stripped_signatures_are_refused() {
    let app = spawn_app().await;
    let claims = live_claims(&app, "vakt1").await;
    let token = good(&claims);
    let parts: Vec<&str> = token.split('.').collect();
    let polis = claims_of(&app.token("polis1").await);
    let mut tampered = Vec::new();
    for (k, v) in [
        ("sub", polis["sub"].clone()),
        ("sid", polis["sid"].clone()),
        ("exp", json!(now() + 86_400 * 365)),
        ("epoch", json!(claims["epoch"].as_i64().unwrap() + 1)),
    ] {
        let mut c = claims.clone();
        c[k] = v;
        tampered.push(format!("{}.{}.{}", parts[0], b64(&c), parts[2]));
    }
    for t in tampered {
        assert_eq!(me(&app, &t).await, StatusCode::UNAUTHORIZED);
    }
    for t in [
        format!("{}.{}.", parts[0], parts[1]),
        format!("{}.{}", parts[0], parts[1]),
        format!("{}.{}.{}x", parts[0], parts[1], parts[2]),
        format!(
            "{}.{}.{}",
            parts[0],
            parts[1],
            &parts[2][..parts[2].len() - 2]
        ),
        "a.b.c".to_owned(),
        "".to_owned(),
        "x".repeat(5000),
    ] {
        assert_eq!(me(&app, &t).await, StatusCode::UNAUTHORIZED, "{t:.40}");
    }
    // The original still works: nothing above was the reason for a 401 but the change.
    assert_eq!(me(&app, &token).await, StatusCode::OK);
}

#[tokio::test]
async fn expiry_and_not_before_are_enforced_to_the_second() {
    let app = spawn_app().await;
    let claims = live_claims(&app, "polis1").await;
    let cases = [
        ("exp", json!(now() - 1)),
        ("exp", json!(now() - 3600)),
        ("nbf", json!(now() + 2)),
        ("nbf", json!(now() + 3600)),
    ];
    for (k, v) in cases {
        let mut c = claims.clone();
        c[k] = v.clone();
        assert_eq!(
            me(&app, &good(&c)).await,
            StatusCode::UNAUTHORIZED,
            "{k}={v}"
        );
        // Past its lifetime: refresh. Not yet valid: no refresh helps.
        let want = if k == "exp" {
            "token_expired"
        } else {
            "invalid_token"
        };
        assert_eq!(refusal(&app, &good(&c)).await, want, "{k}={v}");
    }
    // Expired and forged is forged: "expired" is said only of this service's tokens.
    let mut c = claims.clone();
    c["exp"] = json!(now() - 60);
    let forged = sign(
        Algorithm::HS256,
        Some(KID),
        b"another-secret-of-at-least-32-bytes!!",
        &c,
    );
    assert_eq!(refusal(&app, &forged).await, "invalid_token");
    // Without a token: the bare challenge.
    let r = app.send(app.client.get(app.url("/api/v1/me"))).await;
    assert_eq!(r.status, StatusCode::UNAUTHORIZED);
    assert_eq!(r.json["error"], "unauthorized");
    assert_eq!(r.headers["www-authenticate"], "Bearer");
}

#[tokio::test]
async fn wrong_or_missing_issuer_audience_and_times_are_refused() {
    let app = spawn_app().await;
    let claims = live_claims(&app, "polis1").await;
    let mut changed = Vec::new();
    for (k, v) in [
        ("iss", json!("someone-else")),
        ("iss", json!("samverkan ")),
        ("aud", json!("other-api")),
        ("aud", json!(["other-api"])),
        ("aud", json!("")),
        ("iss", json!(null)),
    ] {
        let mut c = claims.clone();
        c[k] = v;
        changed.push(c);
    }
    for k in ["aud", "iss", "exp", "nbf", "iat", "sub", "sid", "epoch"] {
        let mut c = claims.clone();
        c.as_object_mut().unwrap().remove(k);
        changed.push(c);
    }
    for c in changed {
        assert_eq!(me(&app, &good(&c)).await, StatusCode::UNAUTHORIZED, "{c}");
    }
}

#[tokio::test]
async fn unknown_missing_or_hostile_kids_are_refused() {
    let app = spawn_app().await;
    let claims = live_claims(&app, "polis1").await;
    let secret = TEST_SECRET.as_bytes();
    let mut tokens = vec![sign(Algorithm::HS256, None, secret, &claims)];
    for kid in [
        "test-key-2",
        "",
        "../../../../dev/null",
        "/etc/passwd",
        "test-key-1' OR '1'='1",
        "test-key-1\"; DROP TABLE users; --",
        "TEST-KEY-1",
        "test-key-1 ",
    ] {
        tokens.push(sign(Algorithm::HS256, Some(kid), secret, &claims));
        // With the kid's own text as the secret, too (a key lookup by path or query).
        tokens.push(sign(Algorithm::HS256, Some(kid), kid.as_bytes(), &claims));
    }
    tokens.push(sign(
        Algorithm::HS256,
        Some("../../../../dev/null"),
        b"",
        &claims,
    ));
    for t in tokens {
        assert_eq!(me(&app, &t).await, StatusCode::UNAUTHORIZED);
    }
    // The service still answers and still knows its own key.
    assert_eq!(me(&app, &good(&claims)).await, StatusCode::OK);
}

#[tokio::test]
async fn a_validly_signed_token_of_a_disabled_user_or_a_stale_epoch_is_refused() {
    let app = spawn_app().await;
    let admin = app.token("admin1").await;
    let vakt = live_claims(&app, "vakt1").await;
    // Disabled: a fresh signature with the real key does not help.
    let r = app
        .patch(
            "/api/v1/admin/users/vakt1",
            &admin,
            &json!({"disabled": true}),
        )
        .await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.text);
    let mut c = vakt.clone();
    c["iat"] = json!(now());
    c["jti"] = json!("fresh");
    assert_eq!(me(&app, &good(&c)).await, StatusCode::UNAUTHORIZED);
    c["epoch"] = json!(vakt["epoch"].as_i64().unwrap() + 1);
    assert_eq!(me(&app, &good(&c)).await, StatusCode::UNAUTHORIZED);

    // Issued before a password change: the epoch moved on and the session ended.
    let soc = live_claims(&app, "soc1").await;
    let token = good(&soc);
    let r = app
        .post(
            "/api/v1/me/password",
            &token,
            &json!({"current_password": PASSWORD, "new_password": "a-new-password-for-soc1"}),
        )
        .await;
    assert_eq!(r.status, StatusCode::NO_CONTENT, "{}", r.text);
    assert_eq!(me(&app, &token).await, StatusCode::UNAUTHORIZED);
    // Re-signed with the new epoch but the old (revoked) session: still refused.
    let mut c = soc.clone();
    c["epoch"] = json!(soc["epoch"].as_i64().unwrap() + 1);
    assert_eq!(me(&app, &good(&c)).await, StatusCode::UNAUTHORIZED);
    // A session of another user under this user's id: refused.
    let polis = claims_of(&app.token("polis1").await);
    let mut c = polis.clone();
    c["sub"] = soc["sub"].clone();
    assert_eq!(me(&app, &good(&c)).await, StatusCode::UNAUTHORIZED);
}

#[tokio::test]
async fn a_refresh_token_works_once() {
    let app = spawn_app().await;
    let first = app.login_full("falt1", PASSWORD).await;
    let rt = first.json["refresh_token"].as_str().unwrap().to_owned();
    let body = json!({ "refresh_token": rt });
    let once = app.post_anon("/api/v1/auth/refresh", &body).await;
    assert_eq!(once.status, StatusCode::OK, "{}", once.text);
    let twice = app.post_anon("/api/v1/auth/refresh", &body).await;
    assert_eq!(twice.status, StatusCode::UNAUTHORIZED);
    // The reuse ended the family: the token from the first refresh is dead too.
    let access = once.json["access_token"].as_str().unwrap();
    assert_eq!(me(&app, access).await, StatusCode::UNAUTHORIZED);
    let next = json!({"refresh_token": once.json["refresh_token"]});
    assert_eq!(
        app.post_anon("/api/v1/auth/refresh", &next).await.status,
        StatusCode::UNAUTHORIZED
    );
    // An access token is not a refresh token, and vice versa.
    let access = first.json["access_token"].as_str().unwrap();
    let r = app
        .post_anon("/api/v1/auth/refresh", &json!({ "refresh_token": access }))
        .await;
    assert_eq!(r.status, StatusCode::UNAUTHORIZED);
    let fresh = app.login_full("falt1", PASSWORD).await;
    let rt = fresh.json["refresh_token"].as_str().unwrap();
    assert_eq!(me(&app, rt).await, StatusCode::UNAUTHORIZED);
}

/// Another instance of the service on the same database with other signing keys.
async fn instance_on(url: &DatabaseUrl, keys: Vec<(String, Secret)>) -> TestApp {
    let mut settings = test_settings(url.clone());
    settings.tokens.keys = keys;
    tokio::task::spawn_blocking(move || crate::helpers::start(settings))
        .await
        .unwrap()
}

#[tokio::test]
async fn key_rotation_keeps_old_tokens_while_the_old_key_is_listed_and_not_after() {
    const NEW: &str = "a-brand-new-signing-secret-of-enough-length";
    let old_key = ("test-key-1".to_owned(), Secret::new(TEST_SECRET));
    let new_key = ("test-key-2".to_owned(), Secret::new(NEW));
    let before = spawn_app().await;
    let old_token = before.token("polis1").await;
    assert_eq!(me(&before, &old_token).await, StatusCode::OK);

    // The new key is put first; the old one stays for verification.
    let rotated = instance_on(&before.db_url, vec![new_key.clone(), old_key]).await;
    assert_eq!(me(&rotated, &old_token).await, StatusCode::OK);
    let new_token = rotated.token("polis1").await;
    let header: Value = serde_json::from_slice(
        &URL_SAFE_NO_PAD
            .decode(new_token.split('.').next().unwrap())
            .unwrap(),
    )
    .unwrap();
    assert_eq!(header["kid"], "test-key-2");
    assert_eq!(header["alg"], "HS256");
    assert_eq!(me(&rotated, &new_token).await, StatusCode::OK);
    // Tokens of the new key are not accepted by an instance that does not know it.
    assert_eq!(me(&before, &new_token).await, StatusCode::UNAUTHORIZED);

    // The old key is removed: its tokens stop working, the new key's keep working.
    let after = instance_on(&before.db_url, vec![new_key]).await;
    assert_eq!(me(&after, &old_token).await, StatusCode::UNAUTHORIZED);
    assert_eq!(me(&after, &new_token).await, StatusCode::OK);
    // Nor does signing with the removed key under the new key's kid help.
    let c = claims_of(&new_token);
    let t = sign(
        Algorithm::HS256,
        Some("test-key-2"),
        TEST_SECRET.as_bytes(),
        &c,
    );
    assert_eq!(me(&after, &t).await, StatusCode::UNAUTHORIZED);
}

#[tokio::test]
async fn a_short_lived_token_expires_without_leeway() {
    let app = spawn_with(|s| s.tokens.access_ttl_secs = 1).await;
    let token = app.token("polis1").await;
    assert_eq!(me(&app, &token).await, StatusCode::OK);
    tokio::time::sleep(std::time::Duration::from_millis(2100)).await;
    assert_eq!(me(&app, &token).await, StatusCode::UNAUTHORIZED);
}

#[tokio::test]
async fn a_token_verified_once_still_expires_on_the_second() {
    let app = spawn_app().await;
    let mut claims = live_claims(&app, "vakt1").await;
    let exp = now() + 2;
    claims["exp"] = json!(exp);
    let token = good(&claims);
    // Accepted twice: the second time from the verified-token cache.
    assert_eq!(me(&app, &token).await, StatusCode::OK);
    assert_eq!(me(&app, &token).await, StatusCode::OK);
    while now() <= exp {
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    }
    assert_eq!(me(&app, &token).await, StatusCode::UNAUTHORIZED);
    assert_eq!(refusal(&app, &token).await, "token_expired");
}
