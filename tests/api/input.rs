use reqwest::StatusCode;
use serde_json::json;

use crate::helpers::spawn_app;

fn observation() -> serde_json::Value {
    json!({"place": "sergels-torg", "observed_at": "2026-11-01T20:00:00Z", "category": "drug_sale",
           "description": "Two people selling near the stairs", "persons": []})
}

#[tokio::test]
async fn an_oversize_body_gets_413_and_changes_nothing() {
    let app = spawn_app().await;
    let token = app.token("vakt1").await;
    let mut body = observation();
    body["description"] = json!("x".repeat(2 * 1024 * 1024));
    let r = app.post("/api/v1/observations", &token, &body).await;
    assert_eq!(r.status, StatusCode::PAYLOAD_TOO_LARGE, "{}", r.text);
    assert_eq!(r.json["error"], "payload_too_large");
    let list = app.get("/api/v1/observations", &token).await;
    assert_eq!(list.json["items"], json!([]));
}

#[tokio::test]
async fn malformed_json_gets_400() {
    let app = spawn_app().await;
    let token = app.token("vakt1").await;
    let r = app
        .send(
            app.client
                .post(app.url("/api/v1/observations"))
                .bearer_auth(&token)
                .header("content-type", "application/json")
                .body("{\"place\": "),
        )
        .await;
    assert_eq!(r.status, StatusCode::BAD_REQUEST);
    assert_eq!(r.json["error"], "malformed_json");
    assert!(r.json["message"].is_string());
}

#[tokio::test]
async fn unknown_fields_are_refused_so_nothing_can_be_mass_assigned() {
    let app = spawn_app().await;
    let token = app.token("vakt1").await;
    let mut body = observation();
    body["reporter_id"] = json!("someone-else");
    let r = app.post("/api/v1/observations", &token, &body).await;
    assert_eq!(r.status, StatusCode::BAD_REQUEST, "{}", r.text);
    assert_eq!(r.json["error"], "invalid_body");
    assert!(r.json["message"].as_str().unwrap().contains("reporter_id"));
    let r = app
        .post_anon(
            "/api/v1/auth/login",
            &json!({"username": "vakt1", "password": "x", "role": "admin"}),
        )
        .await;
    assert_eq!(r.status, StatusCode::BAD_REQUEST);
}

#[tokio::test]
async fn wrong_types_bad_timestamps_and_enums_get_clear_400s() {
    let app = spawn_app().await;
    let token = app.token("vakt1").await;
    let cases = [
        (json!({"observed_at": 12}), "invalid_body"),
        (json!({"observed_at": "yesterday"}), "invalid_timestamp"),
        (
            json!({"observed_at": "2999-01-01T00:00:00Z"}),
            "invalid_timestamp",
        ),
        (json!({"category": "jaywalking"}), "invalid_category"),
        (json!({"place": "../../etc/passwd"}), "invalid_field"),
        (json!({"place": "no-such-place"}), "unknown_place"),
        (
            json!({"persons": [{"description": "x", "estimated_birth_year": 1200}]}),
            "invalid_field",
        ),
    ];
    for (patch, code) in cases {
        let mut body = observation();
        for (k, v) in patch.as_object().unwrap() {
            body[k] = v.clone();
        }
        let r = app.post("/api/v1/observations", &token, &body).await;
        assert_eq!(r.status, StatusCode::BAD_REQUEST, "{patch}: {}", r.text);
        assert_eq!(r.json["error"], code, "{patch}");
    }
    let list = app.get("/api/v1/observations", &token).await;
    assert_eq!(list.json["items"], json!([]));
    assert_eq!(
        app.send(app.client.get(app.url("/readyz"))).await.status,
        StatusCode::OK
    );
}

#[tokio::test]
async fn list_parameters_are_validated() {
    let app = spawn_app().await;
    let token = app.token("polis1").await;
    for q in [
        "limit=0",
        "limit=100000",
        "limit=abc",
        "cursor=garbage",
        "since=not-a-time",
        "place=%27%3B%20DROP%20TABLE%20observations%3B--",
        "unknown=1",
    ] {
        let r = app.get(&format!("/api/v1/observations?{q}"), &token).await;
        assert_eq!(r.status, StatusCode::BAD_REQUEST, "{q}: {}", r.text);
        assert!(r.json["error"].is_string());
    }
    assert_eq!(
        app.get("/api/v1/observations", &token).await.status,
        StatusCode::OK
    );
}

#[tokio::test]
async fn ids_of_the_wrong_shape_are_404() {
    let app = spawn_app().await;
    let token = app.token("polis1").await;
    for path in [
        "/api/v1/observations/1",
        "/api/v1/observations/..%2F..%2Fetc",
        "/api/v1/situation-reports/not-an-id",
        "/api/v1/referrals/00000000-0000-0000-0000-000000000000",
    ] {
        let r = app.get(path, &token).await;
        assert_eq!(r.status, StatusCode::NOT_FOUND, "{path}");
        assert_eq!(r.json["error"], "not_found");
    }
}

#[tokio::test]
async fn nul_characters_are_refused_at_the_edge_on_every_backend() {
    let app = spawn_app().await;
    let police = app.token("polis1").await;
    let admin = app.token("admin1").await;
    let auditor = app.token("revisor1").await;
    let bodies = [
        (
            "/api/v1/referrals",
            &police,
            json!({"receiving_organization": "soc\u{0}x", "child": {"alias": "A"}, "concern": "c"}),
        ),
        ("/api/v1/observations", &police, {
            let mut b = observation();
            b["description"] = json!("a\u{0}b");
            b
        }),
    ];
    for (path, token, body) in bodies {
        let r = app.post(path, token, &body).await;
        assert_eq!(r.status, StatusCode::BAD_REQUEST, "{path}: {}", r.text);
        assert_eq!(r.json["error"], "invalid_text");
    }
    let r = app
        .post_anon(
            "/api/v1/auth/login",
            &json!({"username": "vakt\u{0}1", "password": "x"}),
        )
        .await;
    assert_eq!(r.status, StatusCode::BAD_REQUEST);
    for (path, token) in [
        ("/api/v1/audit?actor=a%00b", &auditor),
        ("/api/v1/admin/users/a%00b", &admin),
        ("/api/v1/observations?place=a%00", &police),
    ] {
        let r = app.get(path, token).await;
        assert_eq!(r.status, StatusCode::BAD_REQUEST, "{path}: {}", r.text);
        assert_eq!(r.json["error"], "invalid_text");
        assert_eq!(r.headers["x-content-type-options"], "nosniff");
    }
    assert_eq!(
        app.send(app.client.get(app.url("/readyz"))).await.status,
        StatusCode::OK
    );
}
