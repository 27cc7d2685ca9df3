//! Abuse of the service as a whole: floods of wrong-password logins against the bounded
//! hashing, security headers on every kind of response, CORS closed, undeclared methods.

use std::time::{Duration, Instant};

use reqwest::{Method, StatusCode};
use serde_json::json;

use crate::helpers::{spawn_app, spawn_with, Resp, TestApp};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_login_flood_does_not_starve_health_or_signed_in_users() {
    // Throttling would cut the flood short: lift it to load the hashing itself.
    let app = spawn_with(|s| {
        s.login.max_failures_per_user = 1_000_000;
        s.login.max_failures_per_client = 1_000_000;
        s.workers = 2;
    })
    .await;
    let token = app.token("polis1").await;
    let mut flood = Vec::new();
    for i in 0..60 {
        let (client, url) = (app.client.clone(), app.url("/api/v1/auth/login"));
        flood.push(tokio::spawn(async move {
            client
                .post(url)
                .json(&json!({"username": format!("user{}", i % 7), "password": "wrong"}))
                .send()
                .await
                .map(|r| r.status())
        }));
    }
    tokio::time::sleep(Duration::from_millis(100)).await;
    // While the logins queue for the hasher, health and reads answer.
    for _ in 0..3 {
        let t = Instant::now();
        let h = app.send(app.client.get(app.url("/healthz"))).await;
        assert_eq!(h.status, StatusCode::OK);
        let me = app.get("/api/v1/me", &token).await;
        assert_eq!(me.status, StatusCode::OK);
        let list = app.get("/api/v1/observations", &token).await;
        assert_eq!(list.status, StatusCode::OK);
        assert!(t.elapsed() < Duration::from_secs(5), "{:?}", t.elapsed());
    }
    for f in flood {
        let status = f.await.unwrap().unwrap();
        // Wrong password, or told to come back when the hashing queue is full.
        assert!(
            status == StatusCode::UNAUTHORIZED || status == StatusCode::SERVICE_UNAVAILABLE,
            "{status}"
        );
    }
    assert_eq!(
        app.send(app.client.get(app.url("/readyz"))).await.status,
        StatusCode::OK
    );
}

#[tokio::test]
async fn throttling_answers_429_with_retry_after_per_username_across_clients() {
    let app = spawn_app().await;
    for _ in 0..5 {
        let r = app.login_full("vakt2", "wrong").await;
        assert_eq!(r.status, StatusCode::UNAUTHORIZED);
    }
    let r = app.login_full("vakt2", crate::helpers::PASSWORD).await;
    assert_eq!(r.status, StatusCode::TOO_MANY_REQUESTS);
    assert!(r.headers.get("retry-after").is_some());
    assert_eq!(r.json["error"], "too_many_requests");
    // Another user from the same client is not locked out by it.
    assert_eq!(
        app.login_full("vakt1", crate::helpers::PASSWORD)
            .await
            .status,
        StatusCode::OK
    );
}

fn assert_security_headers(r: &Resp, what: &str) {
    for (h, v) in [
        ("x-content-type-options", "nosniff"),
        ("x-frame-options", "DENY"),
        ("cache-control", "no-store"),
        ("referrer-policy", "no-referrer"),
        (
            "content-security-policy",
            "default-src 'none'; frame-ancestors 'none'",
        ),
    ] {
        assert_eq!(
            r.headers.get(h).map(|x| x.to_str().unwrap()),
            Some(v),
            "{what}: {h}"
        );
    }
    assert!(
        r.headers.get("strict-transport-security").is_some(),
        "{what}"
    );
    for h in [
        "access-control-allow-origin",
        "access-control-allow-credentials",
        "access-control-allow-methods",
        "access-control-allow-headers",
    ] {
        assert!(r.headers.get(h).is_none(), "{what}: {h}");
    }
    assert!(r.headers.get("server").is_none(), "{what}: server header");
}

async fn evil(app: &TestApp, method: Method, path: &str, token: Option<&str>) -> Resp {
    let mut req = app
        .client
        .request(method, app.url(path))
        .header("Origin", "https://evil.example");
    if let Some(t) = token {
        req = req.bearer_auth(t);
    }
    app.send(req).await
}

#[tokio::test]
async fn every_kind_of_response_carries_security_headers_and_cors_stays_closed() {
    let app = spawn_app().await;
    let token = app.token("vakt1").await;
    let cases = vec![
        (Method::GET, "/healthz", None, StatusCode::OK),
        (Method::GET, "/readyz", None, StatusCode::OK),
        (Method::GET, "/openapi.json", None, StatusCode::OK),
        (
            Method::GET,
            "/api/v1/me",
            Some(token.as_str()),
            StatusCode::OK,
        ),
        (
            Method::GET,
            "/api/v1/observations",
            Some(token.as_str()),
            StatusCode::OK,
        ),
        (Method::GET, "/api/v1/me", None, StatusCode::UNAUTHORIZED),
        (
            Method::GET,
            "/api/v1/admin/users",
            Some(token.as_str()),
            StatusCode::FORBIDDEN,
        ),
        (
            Method::GET,
            "/api/v1/observations/00000000-0000-0000-0000-000000000000",
            Some(token.as_str()),
            StatusCode::NOT_FOUND,
        ),
        (Method::GET, "/nothing", None, StatusCode::NOT_FOUND),
        (
            Method::GET,
            "/api/v1/observations?limit=0",
            Some(token.as_str()),
            StatusCode::BAD_REQUEST,
        ),
        (
            Method::DELETE,
            "/api/v1/observations",
            Some(token.as_str()),
            StatusCode::METHOD_NOT_ALLOWED,
        ),
        (
            Method::TRACE,
            "/api/v1/me",
            None,
            StatusCode::METHOD_NOT_ALLOWED,
        ),
    ];
    for (method, path, token, want) in cases {
        let r = evil(&app, method.clone(), path, token).await;
        assert_eq!(r.status, want, "{method} {path}: {}", r.text);
        assert_security_headers(&r, &format!("{method} {path}"));
        if !want.is_success() {
            assert!(r.json["error"].is_string(), "{method} {path}: {}", r.text);
        }
    }
    // A 405 says what the path takes.
    let r = evil(&app, Method::PUT, "/api/v1/observations", None).await;
    assert_eq!(r.headers["allow"], "GET, POST");
    // Too large and rate-limited answers too.
    let mut body = json!({"x": "y".repeat(1024 * 1024 + 1)});
    body["y"] = json!(1);
    let r = app.post("/api/v1/observations", &token, &body).await;
    assert_eq!(r.status, StatusCode::PAYLOAD_TOO_LARGE);
    assert_security_headers(&r, "413");

    // A CORS preflight from another origin is not granted.
    for path in ["/api/v1/observations", "/api/v1/auth/login", "/api/v1/me"] {
        let r = app
            .send(
                app.client
                    .request(Method::OPTIONS, app.url(path))
                    .header("Origin", "https://evil.example")
                    .header("Access-Control-Request-Method", "POST")
                    .header(
                        "Access-Control-Request-Headers",
                        "authorization, content-type",
                    ),
            )
            .await;
        assert!(!r.status.is_success(), "preflight {path}: {}", r.status);
        assert_security_headers(&r, &format!("OPTIONS {path}"));
    }
}

#[tokio::test]
async fn throttled_logins_carry_security_headers_too() {
    let app = spawn_app().await;
    for _ in 0..6 {
        app.login_full("falt1", "wrong").await;
    }
    let r = app.login_full("falt1", "wrong").await;
    assert_eq!(r.status, StatusCode::TOO_MANY_REQUESTS);
    assert_security_headers(&r, "429");
}
