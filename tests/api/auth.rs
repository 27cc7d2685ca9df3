use reqwest::StatusCode;
use serde_json::json;

use crate::helpers::{spawn_app, spawn_with, Resp, TestApp, DEMO_USERS, PASSWORD};

const EXPECTED: &[(&str, &str, &str, &[&str])] = &[
    (
        "polis1",
        "police_officer",
        "police",
        &["hasselby-torg", "sergels-torg"],
    ),
    (
        "analytiker1",
        "police_analyst",
        "police",
        &["hasselby-torg", "sergels-torg"],
    ),
    ("vakt1", "guard", "security", &["sergels-torg"]),
    ("vakt2", "guard", "security", &["hasselby-torg"]),
    (
        "soc1",
        "social_worker",
        "social_services",
        &["sergels-torg"],
    ),
    ("falt1", "outreach_worker", "outreach", &["sergels-torg"]),
    (
        "samordnare1",
        "coordinator",
        "municipality",
        &["sergels-torg"],
    ),
    ("revisor1", "auditor", "municipality", &[]),
    ("admin1", "admin", "municipality", &[]),
];

#[tokio::test]
async fn every_demo_user_logs_in_and_me_shows_role_organisation_and_places() {
    let app = spawn_app().await;
    for (user, role, kind, places) in EXPECTED {
        let r = app.login_full(user, PASSWORD).await;
        assert_eq!(r.status, StatusCode::OK, "{user}: {}", r.text);
        assert_eq!(r.json["token_type"], "Bearer");
        assert_eq!(r.json["expires_in"], 900);
        assert!(r.json["refresh_token"]
            .as_str()
            .is_some_and(|t| t.len() >= 32));
        let token = r.json["access_token"].as_str().unwrap();
        let me = app.get("/api/v1/me", token).await;
        assert_eq!(me.status, StatusCode::OK);
        assert_eq!(me.json["username"], *user);
        assert_eq!(me.json["role"], *role);
        assert_eq!(me.json["organization"]["kind"], *kind);
        assert!(me.json["organization"]["id"].is_string());
        assert!(me.json["organization"]["name"].is_string());
        let got: Vec<&str> = me.json["places"]
            .as_array()
            .unwrap()
            .iter()
            .map(|p| p.as_str().unwrap())
            .collect();
        assert_eq!(got, *places, "{user}");
    }
}

#[tokio::test]
async fn wrong_password_and_unknown_user_get_the_same_answer() {
    let app = spawn_app().await;
    let wrong = app.login_full("vakt1", "not-the-password").await;
    let unknown = app.login_full("nobody-here", "not-the-password").await;
    assert_eq!(wrong.status, StatusCode::UNAUTHORIZED);
    assert_eq!(unknown.status, StatusCode::UNAUTHORIZED);
    assert_eq!(wrong.json, unknown.json);
    assert_eq!(wrong.json["error"], "invalid_credentials");
}

#[tokio::test]
async fn repeated_failures_cool_off_the_username_even_for_the_right_password() {
    let app = spawn_app().await;
    for _ in 0..5 {
        let r = app.login_full("falt1", "wrong-password-123").await;
        assert_eq!(r.status, StatusCode::UNAUTHORIZED);
    }
    let r = app.login_full("falt1", PASSWORD).await;
    assert_eq!(r.status, StatusCode::TOO_MANY_REQUESTS, "{}", r.text);
    assert!(r.headers.get("retry-after").is_some());
    assert_eq!(r.json["error"], "too_many_requests");
    // The body says how long to wait, as the header does.
    let wait = r.headers["retry-after"]
        .to_str()
        .unwrap()
        .parse::<u64>()
        .unwrap();
    assert!(wait > 0 && wait <= 900, "{wait}");
    assert_eq!(r.json["retry_after_secs"], wait, "{}", r.text);
    assert!(
        r.json["message"]
            .as_str()
            .unwrap()
            .contains(&format!("wait {wait} seconds")),
        "{}",
        r.text
    );
    // Other users are not affected by one user's cooling-off.
    assert_eq!(
        app.login_full("vakt1", PASSWORD).await.status,
        StatusCode::OK
    );
}

#[tokio::test]
async fn a_flood_from_one_client_is_throttled_per_client() {
    let app = spawn_with(|s| s.login.max_failures_per_client = 4).await;
    for i in 0..4 {
        app.login_full(&format!("ghost{i}"), "wrong-password-123")
            .await;
    }
    let r = app.login_full("polis1", PASSWORD).await;
    assert_eq!(r.status, StatusCode::TOO_MANY_REQUESTS);
}

#[tokio::test]
async fn refresh_rotates_and_reuse_of_a_spent_token_revokes_the_family() {
    let app = spawn_app().await;
    let login = app.login_full("polis1", PASSWORD).await;
    let first = login.json["refresh_token"].as_str().unwrap().to_owned();
    let r1 = app
        .post_anon("/api/v1/auth/refresh", &json!({"refresh_token": first}))
        .await;
    assert_eq!(r1.status, StatusCode::OK, "{}", r1.text);
    let second = r1.json["refresh_token"].as_str().unwrap().to_owned();
    assert_ne!(first, second);
    let access2 = r1.json["access_token"].as_str().unwrap().to_owned();
    assert_eq!(app.get("/api/v1/me", &access2).await.status, StatusCode::OK);

    // The spent token comes back: refused, and the whole family ends.
    let reuse = app
        .post_anon("/api/v1/auth/refresh", &json!({"refresh_token": first}))
        .await;
    assert_eq!(reuse.status, StatusCode::UNAUTHORIZED);
    let after = app
        .post_anon("/api/v1/auth/refresh", &json!({"refresh_token": second}))
        .await;
    assert_eq!(after.status, StatusCode::UNAUTHORIZED);
    assert_eq!(
        app.get("/api/v1/me", &access2).await.status,
        StatusCode::UNAUTHORIZED
    );
}

#[tokio::test]
async fn logout_ends_access_and_refresh_token_at_once() {
    let app = spawn_app().await;
    let login = app.login_full("soc1", PASSWORD).await;
    let access = login.json["access_token"].as_str().unwrap().to_owned();
    let refresh = login.json["refresh_token"].as_str().unwrap().to_owned();
    let r = app
        .send(
            app.client
                .post(app.url("/api/v1/auth/logout"))
                .bearer_auth(&access)
                .json(&json!({"refresh_token": refresh})),
        )
        .await;
    assert_eq!(r.status, StatusCode::NO_CONTENT, "{}", r.text);
    assert_eq!(
        app.get("/api/v1/me", &access).await.status,
        StatusCode::UNAUTHORIZED
    );
    let again = app
        .post_anon("/api/v1/auth/refresh", &json!({"refresh_token": refresh}))
        .await;
    assert_eq!(again.status, StatusCode::UNAUTHORIZED);
}

#[tokio::test]
async fn logout_without_a_body_works_too() {
    let app = spawn_app().await;
    let token = app.token("vakt2").await;
    let r = app.logout(&token).await;
    assert_eq!(r.status, StatusCode::NO_CONTENT);
    assert_eq!(
        app.get("/api/v1/me", &token).await.status,
        StatusCode::UNAUTHORIZED
    );
}

#[tokio::test]
async fn disabling_a_user_ends_their_tokens_and_logins_immediately() {
    let app = spawn_app().await;
    let login = app.login_full("vakt1", PASSWORD).await;
    let access = login.json["access_token"].as_str().unwrap().to_owned();
    let refresh = login.json["refresh_token"].as_str().unwrap().to_owned();
    let admin = app.token("admin1").await;
    let r = app
        .patch(
            "/api/v1/admin/users/vakt1",
            &admin,
            &json!({"disabled": true}),
        )
        .await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.text);
    assert_eq!(r.json["disabled"], true);
    assert_eq!(
        app.get("/api/v1/me", &access).await.status,
        StatusCode::UNAUTHORIZED
    );
    assert_eq!(
        app.post_anon("/api/v1/auth/refresh", &json!({"refresh_token": refresh}))
            .await
            .status,
        StatusCode::UNAUTHORIZED
    );
    assert_eq!(
        app.login_full("vakt1", PASSWORD).await.status,
        StatusCode::UNAUTHORIZED
    );
}

#[tokio::test]
async fn changing_a_password_ends_the_old_tokens() {
    let app = spawn_app().await;
    let old = app.token("falt1").await;
    let other = app.token("falt1").await;
    let r = app
        .post(
            "/api/v1/me/password",
            &old,
            &json!({"current_password": PASSWORD, "new_password": "a-brand-new-long-password"}),
        )
        .await;
    assert_eq!(r.status, StatusCode::NO_CONTENT, "{}", r.text);
    assert_eq!(
        app.get("/api/v1/me", &old).await.status,
        StatusCode::UNAUTHORIZED
    );
    assert_eq!(
        app.get("/api/v1/me", &other).await.status,
        StatusCode::UNAUTHORIZED
    );
    assert_eq!(
        app.login_full("falt1", PASSWORD).await.status,
        StatusCode::UNAUTHORIZED
    );
    assert_eq!(
        app.login_full("falt1", "a-brand-new-long-password")
            .await
            .status,
        StatusCode::OK
    );
}

#[tokio::test]
async fn requests_without_or_with_a_bad_token_get_401() {
    let app = spawn_app().await;
    let none = app.send(app.client.get(app.url("/api/v1/me"))).await;
    assert_eq!(none.status, StatusCode::UNAUTHORIZED);
    assert_eq!(none.json["error"], "unauthorized");
    let bad = app.get("/api/v1/me", "not.a.token").await;
    assert_eq!(bad.status, StatusCode::UNAUTHORIZED);
}

#[tokio::test]
async fn admin_endpoints_are_refused_to_every_other_role() {
    let app = spawn_app().await;
    for user in DEMO_USERS.iter().filter(|u| **u != "admin1") {
        let token = app.token(user).await;
        for path in [
            "/api/v1/admin/users",
            "/api/v1/admin/organizations",
            "/api/v1/admin/places",
            "/api/v1/admin/users/vakt1",
        ] {
            let r = app.get(path, &token).await;
            assert_eq!(r.status, StatusCode::FORBIDDEN, "{user} GET {path}");
        }
        let r = app
            .post(
                "/api/v1/admin/users",
                &token,
                &json!({"username": "sneaky", "display_name": "S", "organization": "polisen-stockholm",
                        "role": "admin", "places": [], "password": "long-enough-password"}),
            )
            .await;
        assert_eq!(r.status, StatusCode::FORBIDDEN, "{user} POST users");
        let r = app
            .patch(
                "/api/v1/admin/users/vakt1",
                &token,
                &json!({"disabled": true}),
            )
            .await;
        assert_eq!(r.status, StatusCode::FORBIDDEN, "{user} PATCH user");
        let r = app
            .post(
                "/api/v1/admin/places",
                &token,
                &json!({"id": "x-torg", "name": "X", "basomrade": "1"}),
            )
            .await;
        assert_eq!(r.status, StatusCode::FORBIDDEN, "{user} POST places");
    }
    let admin = app.token("admin1").await;
    assert_eq!(
        app.login_full("sneaky", "long-enough-password")
            .await
            .status,
        StatusCode::UNAUTHORIZED
    );
    assert_eq!(
        app.get("/api/v1/admin/users", &admin)
            .await
            .json
            .as_array()
            .unwrap()
            .len(),
        DEMO_USERS.len()
    );
}

#[tokio::test]
async fn admins_manage_organisations_places_and_users() {
    let app = spawn_app().await;
    let admin = app.token("admin1").await;
    let org = app
        .post(
            "/api/v1/admin/organizations",
            &admin,
            &json!({"name": "Securitas Hässelby", "kind": "security", "mandated_reporter": false}),
        )
        .await;
    assert_eq!(org.status, StatusCode::CREATED, "{}", org.text);
    let org_id = org.json["id"].as_str().unwrap().to_owned();
    let place = app
        .post(
            "/api/v1/admin/places",
            &admin,
            &json!({"id": "medborgarplatsen", "name": "Medborgarplatsen", "basomrade": "180010"}),
        )
        .await;
    assert_eq!(place.status, StatusCode::CREATED, "{}", place.text);
    let user = app
        .post(
            "/api/v1/admin/users",
            &admin,
            &json!({"username": "vakt9", "display_name": "Vakt Nio", "organization": org_id,
                    "role": "guard", "places": ["medborgarplatsen"], "password": "a-long-password-for-vakt9"}),
        )
        .await;
    assert_eq!(user.status, StatusCode::CREATED, "{}", user.text);
    // The admin never sees a pseudonym: only the police resolve one to a person.
    assert!(user.json.get("pseudonym").is_none(), "{}", user.text);
    let dup = app
        .post(
            "/api/v1/admin/users",
            &admin,
            &json!({"username": "vakt9", "display_name": "Again", "organization": org_id,
                    "role": "guard", "places": [], "password": "a-long-password-for-vakt9"}),
        )
        .await;
    assert_eq!(dup.status, StatusCode::CONFLICT);
    let token = app.login_full("vakt9", "a-long-password-for-vakt9").await;
    assert_eq!(token.status, StatusCode::OK);
    let me = app
        .get("/api/v1/me", token.json["access_token"].as_str().unwrap())
        .await;
    assert_eq!(me.json["places"], json!(["medborgarplatsen"]));
    assert_eq!(me.json["organization"]["name"], "Securitas Hässelby");
    // Admins manage accounts; they never read case content.
    assert_eq!(
        app.get("/api/v1/observations", &admin).await.json["items"],
        json!([])
    );
}

#[tokio::test]
async fn organisations_and_places_are_listed_for_any_signed_in_user() {
    let app = spawn_app().await;
    let token = app.token("vakt2").await;
    let orgs = app.get("/api/v1/organizations", &token).await;
    assert_eq!(orgs.status, StatusCode::OK);
    let names: Vec<&str> = orgs
        .json
        .as_array()
        .unwrap()
        .iter()
        .map(|o| o["name"].as_str().unwrap())
        .collect();
    for n in [
        "Polisen region Stockholm",
        "Stockholms stad ordningsvakter",
        "Socialtjänsten Norrmalm",
        "Fältassistenterna Norrmalm",
        "Stockholms stad trygghetssamordning",
    ] {
        assert!(names.contains(&n), "{n}");
    }
    let places = app.get("/api/v1/places", &token).await;
    let p = places.json.as_array().unwrap();
    assert!(p.iter().any(|x| x["id"] == "sergels-torg"
        && x["basomrade"] == "101025"
        && x["name"] == "Sergels torg"));
    assert!(p
        .iter()
        .any(|x| x["id"] == "hasselby-torg" && x["basomrade"] == "225012"));
    assert_eq!(
        app.send(app.client.get(app.url("/api/v1/places")))
            .await
            .status,
        StatusCode::UNAUTHORIZED
    );
}

/// A login sent with `X-Forwarded-For: forwarded` (when a proxy is in front).
async fn login_via(app: &TestApp, forwarded: &str, username: &str, password: &str) -> Resp {
    app.send(
        app.client
            .post(app.url("/api/v1/auth/login"))
            .header("x-forwarded-for", forwarded)
            .json(&json!({"username": username, "password": password})),
    )
    .await
}

/// The client addresses the audit trail recorded for failed logins, newest first.
async fn audited_login_clients(app: &TestApp, auditor: &str) -> Vec<String> {
    let r = app
        .get(
            "/api/v1/audit?action=login&outcome=failed&limit=100",
            auditor,
        )
        .await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.text);
    r.json["items"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["client"].as_str().unwrap_or_default().to_owned())
        .collect()
}

/// Behind a trusted proxy (here the test's own 127.0.0.1), the client is the right-most
/// address the proxy forwarded: one client's failures lock out that client, not everyone
/// behind the proxy, and what a client writes to the left of the header changes nothing.
#[tokio::test]
async fn behind_a_trusted_proxy_the_forwarded_client_is_throttled_and_audited() {
    let app = spawn_with(|s| {
        s.login.max_failures_per_client = 3;
        s.proxies.trusted = vec!["127.0.0.1/32".parse().unwrap()];
    })
    .await;
    let auditor = app.token("revisor1").await;
    for i in 0..3 {
        // A spoofed left-hand address each time: the proxy's right-most entry counts.
        let forwarded = format!("198.51.100.{i}, 203.0.113.7");
        let r = login_via(&app, &forwarded, &format!("ghost{i}"), "wrong-password-123").await;
        assert_eq!(r.status, StatusCode::UNAUTHORIZED, "{}", r.text);
    }
    let r = login_via(&app, "203.0.113.7", "polis1", PASSWORD).await;
    assert_eq!(r.status, StatusCode::TOO_MANY_REQUESTS, "{}", r.text);
    // Another client behind the same proxy signs in.
    let r = login_via(&app, "203.0.113.8", "polis1", PASSWORD).await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.text);
    let clients = audited_login_clients(&app, &auditor).await;
    assert_eq!(clients.len(), 3, "{clients:?}");
    assert!(clients.iter().all(|c| c == "203.0.113.7"), "{clients:?}");
}

/// Without trusted proxies (the default) the forwarding headers are ignored: a client
/// cannot name itself anything to escape the per-client limit, and the audit trail
/// records the TCP peer.
#[tokio::test]
async fn forwarded_headers_from_an_untrusted_peer_are_ignored() {
    let app = spawn_with(|s| s.login.max_failures_per_client = 3).await;
    let auditor = app.token("revisor1").await;
    for i in 0..3 {
        let r = login_via(
            &app,
            &format!("203.0.113.{i}"),
            &format!("ghost{i}"),
            "wrong-password-123",
        )
        .await;
        assert_eq!(r.status, StatusCode::UNAUTHORIZED, "{}", r.text);
    }
    let r = login_via(&app, "203.0.113.99", "polis1", PASSWORD).await;
    assert_eq!(r.status, StatusCode::TOO_MANY_REQUESTS, "{}", r.text);
    let clients = audited_login_clients(&app, &auditor).await;
    assert_eq!(clients.len(), 3, "{clients:?}");
    assert!(clients.iter().all(|c| c == "127.0.0.1"), "{clients:?}");
}
