use reqwest::StatusCode;

use crate::helpers::spawn_app;

#[tokio::test]
async fn health_readiness_and_openapi_need_no_token() {
    let app = spawn_app().await;
    for path in ["/healthz", "/readyz", "/openapi.json"] {
        let r = app.send(app.client.get(app.url(path))).await;
        assert_eq!(r.status, StatusCode::OK, "{path}: {}", r.text);
    }
    let doc = app
        .send(app.client.get(app.url("/openapi.json")))
        .await
        .json;
    for path in [
        "/api/v1/auth/login",
        "/api/v1/auth/refresh",
        "/api/v1/auth/logout",
        "/api/v1/me",
        "/api/v1/observations",
        "/api/v1/observations/{id}",
        "/api/v1/situation-reports",
        "/api/v1/referrals/{id}/feedback",
        "/api/v1/referrals/{id}/consents",
        "/api/v1/admin/users",
        "/api/v1/audit",
    ] {
        assert!(doc["paths"][path].is_object(), "openapi lacks {path}");
    }
    assert!(doc["components"]["schemas"]["NewObservation"].is_object());
}

#[tokio::test]
async fn metrics_are_exposed_in_prometheus_format() {
    let app = spawn_app().await;
    app.send(app.client.get(app.url("/healthz"))).await;
    let r = app.send(app.client.get(app.url("/metrics"))).await;
    assert_eq!(r.status, StatusCode::OK);
    assert!(
        r.text.contains("samverkan_http_requests_total"),
        "{}",
        r.text
    );
}

#[tokio::test]
async fn every_response_carries_security_headers_and_no_cors() {
    let app = spawn_app().await;
    let r = app
        .send(
            app.client
                .get(app.url("/api/v1/me"))
                .header("Origin", "https://evil.example"),
        )
        .await;
    assert_eq!(r.status, StatusCode::UNAUTHORIZED);
    assert_eq!(r.headers["x-content-type-options"], "nosniff");
    assert_eq!(r.headers["x-frame-options"], "DENY");
    assert_eq!(r.headers["cache-control"], "no-store");
    assert!(r.headers.get("access-control-allow-origin").is_none());
}

#[tokio::test]
async fn unknown_routes_get_a_json_404() {
    let app = spawn_app().await;
    let r = app
        .send(app.client.get(app.url("/api/v1/nothing-here")))
        .await;
    assert_eq!(r.status, StatusCode::NOT_FOUND);
    assert_eq!(r.json["error"], "not_found");
}
