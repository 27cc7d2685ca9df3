//! Input abuse on every endpoint that takes a body or a header: oversize, malformed,
//! wrong types, unknown fields, over-long strings and lists, bad timestamps and enums,
//! CRLF in headers. Each is a clear JSON error, changes nothing, and the service stays
//! ready.

use reqwest::StatusCode;
use serde_json::{json, Value};

use crate::helpers::{spawn_app, TestApp, PASSWORD};

const REFERRAL_ORG: &str = "socialtjansten-norrmalm";

fn observation() -> Value {
    json!({"place": "sergels-torg", "observed_at": "2026-11-01T20:00:00Z", "category": "drug_sale",
           "description": "stairs", "persons": [{"description": "a", "estimated_birth_year": 2008, "age_uncertain": true}]})
}

fn report() -> Value {
    json!({"place": "sergels-torg", "title": "t", "valid_from": "2026-11-01T20:00:00Z",
           "valid_until": "2026-11-02T20:00:00Z", "sections": [{"audience": "general", "body": "b"}]})
}

fn referral() -> Value {
    json!({"receiving_organization": REFERRAL_ORG, "place": "sergels-torg",
           "child": {"name": "n", "alias": "x", "description": "d", "personal_identity_number": "20110101-1234",
                     "estimated_birth_year": 2011, "age_uncertain": true}, "concern": "c"})
}

fn feedback() -> Value {
    json!({"status": "investigation_opened", "note": "n"})
}

fn consent() -> Value {
    json!({"given_by": "guardian", "scope": "s", "valid_until": "2099-01-01T00:00:00Z", "released_details": "d"})
}

/// Everything visible to the users who could have changed something.
async fn state(app: &TestApp) -> Vec<String> {
    let mut out = Vec::new();
    for user in ["polis1", "soc1"] {
        let t = app.token(user).await;
        for p in [
            "/api/v1/observations",
            "/api/v1/situation-reports",
            "/api/v1/referrals",
        ] {
            out.push(app.get(p, &t).await.text);
        }
    }
    let admin = app.token("admin1").await;
    for p in [
        "/api/v1/admin/users",
        "/api/v1/admin/organizations",
        "/api/v1/admin/places",
    ] {
        out.push(app.get(p, &admin).await.text);
    }
    out
}

async fn assert_ready(app: &TestApp) {
    let r = app.send(app.client.get(app.url("/readyz"))).await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.text);
}

fn assert_error(r: &crate::helpers::Resp, want: StatusCode, what: &str) {
    assert_eq!(r.status, want, "{what}: {}", r.text);
    assert!(
        r.json["error"].is_string() && r.json["message"].is_string(),
        "{what}: {}",
        r.text
    );
    assert!(
        r.headers["content-type"]
            .to_str()
            .unwrap()
            .starts_with("application/json"),
        "{what}"
    );
}

/// A referral filed by polis1 (as the target of feedback and consents).
async fn a_referral(app: &TestApp) -> String {
    let polis = app.token("polis1").await;
    let r = app.post("/api/v1/referrals", &polis, &referral()).await;
    assert_eq!(r.status, StatusCode::CREATED, "{}", r.text);
    r.json["id"].as_str().unwrap().to_owned()
}

/// (who, path, a valid body) for every endpoint that takes a JSON body.
fn endpoints(referral_id: &str) -> Vec<(&'static str, String, Value)> {
    vec![
        ("vakt1", "/api/v1/observations".into(), observation()),
        ("polis1", "/api/v1/situation-reports".into(), report()),
        ("polis1", "/api/v1/referrals".into(), referral()),
        (
            "soc1",
            format!("/api/v1/referrals/{referral_id}/feedback"),
            feedback(),
        ),
        (
            "soc1",
            format!("/api/v1/referrals/{referral_id}/consents"),
            consent(),
        ),
        (
            "admin1",
            "/api/v1/admin/organizations".into(),
            json!({"id": "ny-org", "name": "Ny", "kind": "outreach", "mandated_reporter": true}),
        ),
        (
            "admin1",
            "/api/v1/admin/places".into(),
            json!({"id": "ny-plats", "name": "Ny plats", "basomrade": "101025"}),
        ),
        (
            "admin1",
            "/api/v1/admin/users".into(),
            json!({"username": "ny1", "display_name": "Ny", "organization": "polisen-city",
                   "role": "police_officer", "places": [], "password": "a-long-enough-password"}),
        ),
        (
            "anon",
            "/api/v1/auth/login".into(),
            json!({"username": "polis1", "password": PASSWORD}),
        ),
        (
            "anon",
            "/api/v1/auth/refresh".into(),
            json!({"refresh_token": "x"}),
        ),
        (
            "polis1",
            "/api/v1/me/password".into(),
            json!({"current_password": PASSWORD, "new_password": "another-long-password"}),
        ),
        (
            "polis1",
            "/api/v1/auth/logout".into(),
            json!({"refresh_token": "x"}),
        ),
    ]
}

async fn send(
    app: &TestApp,
    tokens: &mut std::collections::HashMap<String, String>,
    who: &str,
    method: &str,
    path: &str,
    body: reqwest::Body,
) -> crate::helpers::Resp {
    let mut req = match method {
        "patch" => app.client.patch(app.url(path)),
        _ => app.client.post(app.url(path)),
    }
    .header("content-type", "application/json")
    .body(body);
    if who != "anon" {
        if !tokens.contains_key(who) {
            tokens.insert(who.to_owned(), app.token(who).await);
        }
        req = req.bearer_auth(&tokens[who]);
    }
    app.send(req).await
}

#[tokio::test]
async fn every_body_rejects_unknown_fields_wrong_types_malformed_json_and_oversize() {
    let app = spawn_app().await;
    let rid = a_referral(&app).await;
    let mut cases = endpoints(&rid);
    cases.push((
        "admin1",
        "/api/v1/admin/users/vakt1".into(),
        json!({"display_name": "x"}),
    ));
    cases.push((
        "admin1",
        "/api/v1/admin/organizations/polisen-city".into(),
        json!({"name": "x"}),
    ));
    let before = state(&app).await;
    let mut tokens = std::collections::HashMap::new();
    for (who, path, valid) in &cases {
        let method = if path.contains("/admin/users/") || path.contains("/admin/organizations/") {
            "patch"
        } else {
            "post"
        };
        // Unknown fields, at the top and (where there is one) nested.
        let mut extra = valid.clone();
        extra["is_admin"] = json!(true);
        let r = send(
            &app,
            &mut tokens,
            who,
            method,
            path,
            extra.to_string().into(),
        )
        .await;
        assert_error(
            &r,
            StatusCode::BAD_REQUEST,
            &format!("{path} unknown field"),
        );
        assert_eq!(r.json["error"], "invalid_body", "{path}");
        assert!(
            r.json["message"].as_str().unwrap().contains("is_admin"),
            "{path}"
        );
        // Wrong types for every field in turn.
        for key in valid.as_object().unwrap().keys() {
            for wrong in [json!(12345), json!({"$ne": null}), json!([[]])] {
                let mut b = valid.clone();
                b[key] = wrong.clone();
                let r = send(&app, &mut tokens, who, method, path, b.to_string().into()).await;
                assert_error(
                    &r,
                    StatusCode::BAD_REQUEST,
                    &format!("{path} {key}={wrong}"),
                );
            }
        }
        // Not JSON, truncated JSON, a JSON scalar, deep nesting, a NUL byte.
        for raw in [
            "not json".to_owned(),
            valid.to_string()[..valid.to_string().len() - 1].to_owned(),
            "null".to_owned(),
            "[]".to_owned(),
            // serde would fill a struct from an array of its fields in order.
            "[null, null]".to_owned(),
            "[null, null, null, null, null, null]".to_owned(),
            format!("{}1{}", "[".repeat(5000), "]".repeat(5000)),
            "{\"a\u{0}\": 1}".to_owned(),
        ] {
            let r = send(&app, &mut tokens, who, method, path, raw.clone().into()).await;
            assert_error(&r, StatusCode::BAD_REQUEST, &format!("{path} {raw:.30}"));
        }
        // Larger than the limit (1 MiB in the tests): 413 before anything is parsed.
        let big = format!("{{\"x\": \"{}\"}}", "a".repeat(1024 * 1024 + 10));
        let r = send(&app, &mut tokens, who, method, path, big.into()).await;
        assert_error(
            &r,
            StatusCode::PAYLOAD_TOO_LARGE,
            &format!("{path} oversize"),
        );
    }
    // Nested unknown fields.
    let vakt = app.token("vakt1").await;
    let mut b = observation();
    b["persons"][0]["personal_identity_number"] = json!("20100101-1234");
    let r = app.post("/api/v1/observations", &vakt, &b).await;
    assert_error(&r, StatusCode::BAD_REQUEST, "nested person field");
    let polis = app.token("polis1").await;
    let mut b = report();
    b["sections"][0]["author"] = json!("someone");
    let r = app.post("/api/v1/situation-reports", &polis, &b).await;
    assert_error(&r, StatusCode::BAD_REQUEST, "nested section field");
    let mut b = referral();
    b["child"]["status"] = json!("withheld");
    let r = app.post("/api/v1/referrals", &polis, &b).await;
    assert_error(&r, StatusCode::BAD_REQUEST, "nested child field");
    assert_eq!(state(&app).await, before);
    assert_ready(&app).await;
}

#[tokio::test]
async fn strings_and_lists_over_their_limits_and_bad_values_are_refused() {
    let app = spawn_app().await;
    let rid = a_referral(&app).await;
    let before = state(&app).await;
    let long = |n: usize| json!("x".repeat(n));
    let person = json!({"description": "p"});
    let section = json!({"audience": "general", "body": "b"});
    // (who, path, field pointer, value, expected error code)
    let cases: Vec<(&str, String, &str, Value, &str)> = vec![
        (
            "vakt1",
            "/api/v1/observations".into(),
            "/description",
            long(4001),
            "invalid_field",
        ),
        (
            "vakt1",
            "/api/v1/observations".into(),
            "/persons",
            json!(vec![person; 21]),
            "too_many_persons",
        ),
        (
            "vakt1",
            "/api/v1/observations".into(),
            "/persons/0/description",
            long(1001),
            "invalid_field",
        ),
        (
            "vakt1",
            "/api/v1/observations".into(),
            "/persons/0/description",
            json!("   "),
            "invalid_field",
        ),
        (
            "vakt1",
            "/api/v1/observations".into(),
            "/persons/0/estimated_birth_year",
            json!(3000),
            "invalid_field",
        ),
        (
            "vakt1",
            "/api/v1/observations".into(),
            "/description",
            json!("bell\u{7}"),
            "invalid_field",
        ),
        (
            "vakt1",
            "/api/v1/observations".into(),
            "/observed_at",
            json!("2026-13-01T00:00:00Z"),
            "invalid_timestamp",
        ),
        (
            "vakt1",
            "/api/v1/observations".into(),
            "/observed_at",
            json!("2026-11-01 20:00"),
            "invalid_timestamp",
        ),
        (
            "vakt1",
            "/api/v1/observations".into(),
            "/observed_at",
            json!("1969-12-31T23:59:59Z"),
            "invalid_timestamp",
        ),
        (
            "vakt1",
            "/api/v1/observations".into(),
            "/category",
            json!("DRUG_SALE"),
            "invalid_category",
        ),
        (
            "vakt1",
            "/api/v1/observations".into(),
            "/category",
            json!(""),
            "invalid_category",
        ),
        (
            "vakt1",
            "/api/v1/observations".into(),
            "/place",
            json!("Sergels Torg"),
            "invalid_field",
        ),
        (
            "vakt1",
            "/api/v1/observations".into(),
            "/place",
            long(65),
            "invalid_field",
        ),
        (
            "polis1",
            "/api/v1/situation-reports".into(),
            "/sections",
            json!(vec![section; 21]),
            "too_many_sections",
        ),
        (
            "polis1",
            "/api/v1/situation-reports".into(),
            "/sections/0/body",
            long(10_001),
            "invalid_field",
        ),
        (
            "polis1",
            "/api/v1/situation-reports".into(),
            "/sections/0/audience",
            json!("everyone"),
            "invalid_audience",
        ),
        (
            "polis1",
            "/api/v1/situation-reports".into(),
            "/title",
            long(201),
            "invalid_field",
        ),
        (
            "polis1",
            "/api/v1/situation-reports".into(),
            "/title",
            json!(""),
            "invalid_field",
        ),
        (
            "polis1",
            "/api/v1/situation-reports".into(),
            "/valid_until",
            json!("2026-10-01T00:00:00Z"),
            "invalid_validity",
        ),
        (
            "polis1",
            "/api/v1/situation-reports".into(),
            "/valid_from",
            json!("tomorrow"),
            "invalid_timestamp",
        ),
        (
            "polis1",
            "/api/v1/referrals".into(),
            "/concern",
            long(10_001),
            "invalid_field",
        ),
        (
            "polis1",
            "/api/v1/referrals".into(),
            "/concern",
            json!(""),
            "invalid_field",
        ),
        (
            "polis1",
            "/api/v1/referrals".into(),
            "/child",
            json!({}),
            "child_unidentified",
        ),
        (
            "polis1",
            "/api/v1/referrals".into(),
            "/child/name",
            long(201),
            "invalid_field",
        ),
        (
            "polis1",
            "/api/v1/referrals".into(),
            "/child/description",
            long(2001),
            "invalid_field",
        ),
        (
            "polis1",
            "/api/v1/referrals".into(),
            "/child/personal_identity_number",
            json!("12345"),
            "invalid_personal_identity_number",
        ),
        (
            "polis1",
            "/api/v1/referrals".into(),
            "/child/personal_identity_number",
            json!("2010010-1234' OR 1=1"),
            "invalid_personal_identity_number",
        ),
        (
            "polis1",
            "/api/v1/referrals".into(),
            "/receiving_organization",
            json!("polisen-city"),
            "invalid_receiving_organization",
        ),
        (
            "polis1",
            "/api/v1/referrals".into(),
            "/receiving_organization",
            long(201),
            "invalid_receiving_organization",
        ),
        (
            "soc1",
            format!("/api/v1/referrals/{rid}/feedback"),
            "/status",
            json!("closed"),
            "invalid_status",
        ),
        (
            "soc1",
            format!("/api/v1/referrals/{rid}/feedback"),
            "/note",
            long(4001),
            "invalid_field",
        ),
        (
            "soc1",
            format!("/api/v1/referrals/{rid}/consents"),
            "/given_by",
            json!("police"),
            "invalid_given_by",
        ),
        (
            "soc1",
            format!("/api/v1/referrals/{rid}/consents"),
            "/valid_until",
            json!("2020-01-01T00:00:00Z"),
            "invalid_validity",
        ),
        (
            "soc1",
            format!("/api/v1/referrals/{rid}/consents"),
            "/valid_until",
            json!("forever"),
            "invalid_timestamp",
        ),
        (
            "soc1",
            format!("/api/v1/referrals/{rid}/consents"),
            "/scope",
            long(501),
            "invalid_field",
        ),
        (
            "soc1",
            format!("/api/v1/referrals/{rid}/consents"),
            "/released_details",
            long(4001),
            "invalid_field",
        ),
    ];
    let bodies = [
        ("/api/v1/observations", observation()),
        ("/api/v1/situation-reports", report()),
        ("/api/v1/referrals", referral()),
    ];
    for (who, path, pointer, value, code) in cases {
        let mut body = bodies
            .iter()
            .find(|(p, _)| *p == path)
            .map(|(_, b)| b.clone())
            .unwrap_or_else(|| {
                if path.ends_with("feedback") {
                    feedback()
                } else {
                    consent()
                }
            });
        *body
            .pointer_mut(pointer)
            .unwrap_or_else(|| panic!("{pointer}")) = value;
        let token = app.token(who).await;
        let r = app.post(&path, &token, &body).await;
        assert_error(&r, StatusCode::BAD_REQUEST, &format!("{path}{pointer}"));
        assert_eq!(r.json["error"], code, "{path}{pointer}: {}", r.text);
    }
    // Logins with absurd names or passwords are plain refusals, not errors.
    for (u, p) in [
        ("x".repeat(65), "p".to_owned()),
        ("polis1".to_owned(), "p".repeat(5000)),
        ("".to_owned(), "p".to_owned()),
        ("polis1' OR '1'='1".to_owned(), "x".to_owned()),
    ] {
        let r = app
            .post_anon("/api/v1/auth/login", &json!({"username": u, "password": p}))
            .await;
        assert!(
            r.status == StatusCode::BAD_REQUEST || r.status == StatusCode::UNAUTHORIZED,
            "{u:.20}: {}",
            r.text
        );
        assert!(r.json["error"].is_string());
        assert!(r.json.get("access_token").is_none());
    }
    assert_eq!(state(&app).await, before);
    assert_ready(&app).await;
}

#[tokio::test]
async fn crlf_and_control_characters_in_headers_do_not_reach_responses_or_the_audit_trail() {
    let app = spawn_app().await;
    let vakt = app.token("vakt1").await;
    // reqwest refuses to send a raw CRLF header value: write the request by hand.
    let addr = app.address.trim_start_matches("http://").to_owned();
    let body = observation().to_string();
    let request = format!(
        "POST /api/v1/observations HTTP/1.1\r\nHost: {addr}\r\nAuthorization: Bearer {vakt}\r\n\
         Content-Type: application/json\r\nX-Purpose: patrol\rSet-Cookie: evil=1\r\n\
         Content-Length: {}\r\nConnection: close\r\n\r\n{body}",
        body.len()
    );
    let raw = raw_http(&addr, request.as_bytes()).await;
    assert!(
        raw.starts_with("HTTP/1.1 400") || raw.starts_with("HTTP/1.1 201"),
        "{raw}"
    );
    assert!(!raw.to_ascii_lowercase().contains("set-cookie"), "{raw}");
    // Header folding (obsolete line continuation) is not accepted as a purpose either.
    let request = format!(
        "GET /api/v1/observations HTTP/1.1\r\nHost: {addr}\r\nAuthorization: Bearer {vakt}\r\n\
         X-Purpose: patrol\r\n Injected: yes\r\nConnection: close\r\n\r\n"
    );
    let raw = raw_http(&addr, request.as_bytes()).await;
    assert!(!raw.to_ascii_lowercase().contains("injected"), "{raw}");
    // A tab (which HTTP allows in a value) or bytes that are not UTF-8 make the purpose
    // invalid: the request is refused and nothing of it is kept.
    let r = app
        .send(
            app.client
                .get(app.url("/api/v1/observations"))
                .bearer_auth(&vakt)
                .header(
                    "x-purpose",
                    reqwest::header::HeaderValue::from_bytes(b"patrol\t\xe5end").unwrap(),
                ),
        )
        .await;
    assert_eq!(r.status, StatusCode::BAD_REQUEST, "{}", r.text);
    assert_eq!(r.json["error"], "invalid_purpose");
    let auditor = app.token("revisor1").await;
    let trail = app.get("/api/v1/audit?limit=100", &auditor).await;
    assert!(
        !trail.text.contains('\u{7f}') && !trail.text.contains("\\t"),
        "{}",
        trail.text
    );
    assert!(!trail.text.contains("Set-Cookie") && !trail.text.contains("Injected"));
    assert_ready(&app).await;
}

async fn raw_http(addr: &str, request: &[u8]) -> String {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let mut s = tokio::net::TcpStream::connect(addr).await.unwrap();
    s.write_all(request).await.unwrap();
    let mut out = Vec::new();
    let _ = tokio::time::timeout(std::time::Duration::from_secs(5), s.read_to_end(&mut out)).await;
    String::from_utf8_lossy(&out).into_owned()
}

#[tokio::test]
async fn wrong_content_types_methods_and_query_abuse_get_json_errors() {
    let app = spawn_app().await;
    let vakt = app.token("vakt1").await;
    let before = state(&app).await;
    let r = app
        .send(
            app.client
                .post(app.url("/api/v1/observations"))
                .bearer_auth(&vakt)
                .header("content-type", "application/x-www-form-urlencoded")
                .body("place=sergels-torg"),
        )
        .await;
    assert!(r.status.is_client_error(), "{}", r.text);
    assert!(r.json["error"].is_string(), "{}", r.text);
    for method in [reqwest::Method::PUT, reqwest::Method::DELETE] {
        let r = app
            .send(
                app.client
                    .request(method.clone(), app.url("/api/v1/observations"))
                    .bearer_auth(&vakt),
            )
            .await;
        assert!(r.status.is_client_error(), "{method}: {}", r.status);
        assert!(r.json["error"].is_string(), "{method}: {}", r.text);
    }
    let long = "a".repeat(10_000);
    for q in [
        format!("place={long}"),
        "limit=-1".to_owned(),
        "limit=99999999999999999999".to_owned(),
        "since=2026-11-01T20:00:00Z&since=2026-11-02T20:00:00Z".to_owned(),
        "current=maybe".to_owned(),
        format!("cursor={long}"),
        "place=sergels-torg%00".to_owned(),
    ] {
        let r = app.get(&format!("/api/v1/observations?{q}"), &vakt).await;
        assert!(r.status.is_client_error(), "{q:.40}: {}", r.status);
        assert!(r.json["error"].is_string(), "{q:.40}: {}", r.text);
    }
    assert_eq!(state(&app).await, before);
    assert_ready(&app).await;
}
