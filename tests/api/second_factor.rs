//! A second factor for local accounts: TOTP enrolment with a QR code, confirmation, sign-in
//! with a code or a single-use recovery code, no replay, throttled guesses, secrets sealed
//! at rest, and roles that can do nothing but enrol until they have one.

use diesel::prelude::*;
use reqwest::StatusCode;
use serde_json::{json, Value};

use crate::helpers::{spawn_with, TestApp, PASSWORD};

/// The code the app shows `steps` time steps from now.
pub fn code(secret: &str, steps: i64) -> String {
    let secret = totp_rs::Secret::try_from_base32(secret).expect("base32 secret");
    let totp = totp_rs::Builder::new()
        .with_secret(secret)
        .build()
        .expect("totp");
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .expect("clock")
        .as_secs() as i64;
    totp.generate((now + steps * 30) as u64).to_string()
}

async fn login(app: &TestApp, user: &str, totp: Option<&str>) -> (StatusCode, Value) {
    let mut body = json!({"username": user, "password": PASSWORD});
    if let Some(c) = totp {
        body["totp"] = json!(c);
    }
    let r = app.post_anon("/api/v1/auth/login", &body).await;
    (r.status, r.json)
}

/// Enrols and confirms `user`'s factor: (secret, recovery codes, the code spent).
async fn enrol(app: &TestApp, token: &str) -> (String, Vec<String>, String) {
    let r = app
        .post("/api/v1/auth/totp/enroll", token, &json!({}))
        .await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.text);
    let secret = r.json["secret"].as_str().expect("secret").to_owned();
    let now = code(&secret, 0);
    let r = app
        .post("/api/v1/auth/totp/confirm", token, &json!({"code": now}))
        .await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.text);
    let codes: Vec<String> = r.json["recovery_codes"]
        .as_array()
        .expect("codes")
        .iter()
        .map(|c| c.as_str().expect("code").to_owned())
        .collect();
    (secret, codes, now)
}

#[tokio::test]
async fn a_role_that_requires_a_second_factor_can_only_enrol_then_signs_in_with_a_code() {
    let app = spawn_with(|s| {
        s.second_factor.required_roles = Some(vec!["police_officer".into()]);
    })
    .await;

    // Password only: a token good for enrolling and nothing else.
    let (status, pair) = login(&app, "polis1", None).await;
    assert_eq!(status, StatusCode::OK, "{pair}");
    assert_eq!(pair["second_factor"], "enrolment_required");
    let limited = pair["access_token"].as_str().expect("token").to_owned();
    for path in ["/api/v1/observations", "/api/v1/me", "/api/v1/referrals"] {
        let r = app.get(path, &limited).await;
        assert_eq!(r.status, StatusCode::FORBIDDEN, "{path}: {}", r.text);
        assert_eq!(
            r.json["error"], "second_factor_required",
            "{path}: {}",
            r.text
        );
    }
    // Its refresh stays limited.
    let r = app
        .post_anon(
            "/api/v1/auth/refresh",
            &json!({"refresh_token": pair["refresh_token"]}),
        )
        .await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.text);
    assert_eq!(r.json["second_factor"], "enrolment_required");
    let limited = r.json["access_token"].as_str().expect("token").to_owned();
    // Roles that need none are unaffected.
    let (status, guard) = login(&app, "vakt1", None).await;
    assert_eq!(status, StatusCode::OK);
    assert!(guard.get("second_factor").is_none(), "{guard}");

    // Enrolment: secret, otpauth URI and a QR code.
    let r = app
        .post("/api/v1/auth/totp/enroll", &limited, &json!({}))
        .await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.text);
    let secret = r.json["secret"].as_str().expect("secret").to_owned();
    let uri = r.json["otpauth_uri"].as_str().expect("uri");
    assert!(uri.starts_with("otpauth://totp/samverkan:polis1?"), "{uri}");
    assert!(uri.contains(&format!("secret={secret}")), "{uri}");
    let svg = r.json["qr_svg"].as_str().expect("svg");
    assert!(svg.contains("<svg") && svg.contains("</svg>"), "{svg}");

    // A wrong code confirms nothing.
    let right = code(&secret, 0);
    let wrong = if right == "000000" {
        "111111"
    } else {
        "000000"
    };
    let r = app
        .post(
            "/api/v1/auth/totp/confirm",
            &limited,
            &json!({"code": wrong}),
        )
        .await;
    assert_eq!(r.status, StatusCode::BAD_REQUEST, "{}", r.text);
    let r = app
        .post(
            "/api/v1/auth/totp/confirm",
            &limited,
            &json!({"code": right}),
        )
        .await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.text);
    let recovery: Vec<String> = r.json["recovery_codes"]
        .as_array()
        .expect("codes")
        .iter()
        .map(|c| c.as_str().expect("code").to_owned())
        .collect();
    assert_eq!(recovery.len(), 10);
    let distinct: std::collections::BTreeSet<_> = recovery.iter().collect();
    assert_eq!(distinct.len(), 10);

    // From now on the password alone is not enough, and a spent code is spent.
    let (status, body) = login(&app, "polis1", None).await;
    assert_eq!(status, StatusCode::UNAUTHORIZED);
    assert_eq!(body["error"], "second_factor_required", "{body}");
    let (status, body) = login(&app, "polis1", Some(&right)).await;
    assert_eq!(status, StatusCode::UNAUTHORIZED, "replayed code: {body}");
    assert_eq!(body["error"], "invalid_second_factor");
    let (status, full) = login(&app, "polis1", Some(&code(&secret, 1))).await;
    assert_eq!(status, StatusCode::OK, "{full}");
    assert!(full.get("second_factor").is_none(), "{full}");
    let token = full["access_token"].as_str().expect("token");
    assert_eq!(
        app.get("/api/v1/observations", token).await.status,
        StatusCode::OK
    );

    // A recovery code works once, whatever its case and hyphens.
    let typed = recovery[3].to_uppercase().replace('-', " ");
    let (status, body) = login(&app, "polis1", Some(&typed)).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    let (status, _) = login(&app, "polis1", Some(&recovery[3])).await;
    assert_eq!(status, StatusCode::UNAUTHORIZED);

    // Nothing readable at rest: the secret is sealed, the recovery codes hashed.
    let (sealed, hashes) = {
        use samverkan::storage::schema::{recovery_codes, totp_factors, users};
        let mut conn = app.connect();
        let uid: String = users::table
            .filter(users::username.eq("polis1"))
            .select(users::id)
            .first(&mut conn)
            .expect("user");
        let sealed: String = totp_factors::table
            .find(&uid)
            .select(totp_factors::secret_sealed)
            .first(&mut conn)
            .expect("factor");
        let hashes: Vec<String> = recovery_codes::table
            .filter(recovery_codes::user_id.eq(&uid))
            .select(recovery_codes::code_hash)
            .load(&mut conn)
            .expect("codes");
        (sealed, hashes)
    };
    assert!(
        !sealed.contains(&secret),
        "the secret is stored in the clear"
    );
    let raw = totp_rs::Secret::try_from_base32(&secret).expect("secret");
    assert!(!sealed.contains(&hex::encode(raw.as_ref())));
    assert_eq!(hashes.len(), 10);
    for c in &recovery {
        assert!(hashes.iter().all(|h| !h.contains(c.as_str())));
    }

    // Every step is on the audit trail.
    let auditor = app.token("revisor1").await;
    let r = app
        .get("/api/v1/audit?actor=polis1&action=totp_confirm", &auditor)
        .await;
    let outcomes: Vec<&str> = r.json["items"]
        .as_array()
        .expect("items")
        .iter()
        .filter_map(|e| e["outcome"].as_str())
        .collect();
    assert!(
        outcomes.contains(&"failed") && outcomes.contains(&"success"),
        "{outcomes:?}"
    );
    let r = app
        .get(
            "/api/v1/audit?actor=polis1&action=login&outcome=failed",
            &auditor,
        )
        .await;
    let parts: Vec<String> = r.json["items"]
        .as_array()
        .expect("items")
        .iter()
        .flat_map(|e| e["parts"].as_array().cloned().unwrap_or_default())
        .filter_map(|p| p.as_str().map(str::to_owned))
        .collect();
    assert!(parts.iter().any(|p| p == "totp_missing"), "{parts:?}");
    assert!(parts.iter().any(|p| p == "totp_refused"), "{parts:?}");
}

#[tokio::test]
async fn code_guesses_are_throttled_like_password_guesses() {
    let app = spawn_with(|_| {}).await;
    // A guard enrols of their own accord (no role requires it here).
    let token = app.token("vakt1").await;
    let (secret, _, spent) = enrol(&app, &token).await;
    let right = code(&secret, 1);
    let mut wrong = 100_000;
    for _ in 0..5 {
        let mut guess = wrong.to_string();
        if guess == right || guess == spent {
            wrong += 1;
            guess = wrong.to_string();
        }
        wrong += 1;
        let (status, body) = login(&app, "vakt1", Some(&guess)).await;
        assert_eq!(status, StatusCode::UNAUTHORIZED, "{body}");
        assert_eq!(body["error"], "invalid_second_factor");
    }
    // The window is spent: even the right password and code wait.
    let (status, body) = login(&app, "vakt1", Some(&right)).await;
    assert_eq!(status, StatusCode::TOO_MANY_REQUESTS, "{body}");
}

#[tokio::test]
async fn by_default_the_roles_that_see_person_data_must_enrol() {
    // The shipped default (the suite's settings turn it off).
    let app = spawn_with(|s| s.second_factor.required_roles = None).await;
    for (user, limited) in [
        ("polis1", true),
        ("analytiker1", true),
        ("soc1", true),
        ("vakt1", false),
        ("falt1", false),
        ("samordnare1", false),
        ("revisor1", false),
        ("admin1", false),
    ] {
        let (status, body) = login(&app, user, None).await;
        assert_eq!(status, StatusCode::OK, "{user}: {body}");
        assert_eq!(
            body.get("second_factor").is_some(),
            limited,
            "{user}: {body}"
        );
    }
}
