//! A newcomer's first hour: errors that say what to do, the API page in the browser, and
//! a demo world with records in it.

use reqwest::StatusCode;
use serde_json::{json, Value};

use crate::helpers::{spawn_app, spawn_with, start, test_settings, TestApp};

async fn items(app: &TestApp, token: &str, path: &str) -> Vec<Value> {
    let r = app.get(path, token).await;
    assert_eq!(r.status, StatusCode::OK, "{path}: {}", r.text);
    r.json["items"].as_array().unwrap().clone()
}

fn observation(place: &str) -> Value {
    json!({"place": place, "observed_at": "2026-11-20T21:30:00Z", "category": "drug_sale",
           "description": "refused-marker"})
}

#[tokio::test]
async fn a_refused_filing_names_the_reason_the_users_own_request_shows() {
    let app = spawn_app().await;
    let cases = [
        // A guard at Hässelby torg files at Sergels torg.
        (
            "vakt2",
            "/api/v1/observations",
            observation("sergels-torg"),
            "not_assigned_to_place",
            "sergels-torg",
        ),
        // An analyst releases to partners: an officer's decision.
        (
            "analytiker1",
            "/api/v1/situation-reports",
            json!({"place": "sergels-torg", "title": "refused-marker", "sections": [
             {"audience": "general", "body": "refused-marker"}]}),
            "role_may_not_post_audience",
            "general",
        ),
        // A guard posts a lägesbild; an auditor files an observation: never theirs.
        (
            "vakt1",
            "/api/v1/situation-reports",
            json!({"place": "sergels-torg", "title": "refused-marker", "sections": [
             {"audience": "police_only", "body": "refused-marker"}]}),
            "role_may_not_create",
            "situation report",
        ),
        (
            "revisor1",
            "/api/v1/observations",
            observation("sergels-torg"),
            "role_may_not_create",
            "observation",
        ),
    ];
    for (user, path, body, code, named) in cases {
        let token = app.token(user).await;
        let r = app.post(path, &token, &body).await;
        assert_eq!(r.status, StatusCode::FORBIDDEN, "{user} {path}: {}", r.text);
        assert_eq!(r.json["error"], code, "{user} {path}: {}", r.text);
        assert!(
            r.json["message"].as_str().unwrap().contains(named),
            "{}",
            r.text
        );
    }
    // Nothing was stored, and every refusal is on record.
    let polis = app.token("polis1").await;
    for path in ["/api/v1/observations", "/api/v1/situation-reports"] {
        let r = app.get(path, &polis).await;
        assert!(!r.text.contains("refused-marker"), "{}", r.text);
    }
    let auditor = app.token("revisor1").await;
    let r = app
        .get("/api/v1/audit?action=create&outcome=denied", &auditor)
        .await;
    assert_eq!(r.json["items"].as_array().unwrap().len(), 4, "{}", r.text);
    // The same analyst may post the police-only section: the reason was the whole story.
    let analyst = app.token("analytiker1").await;
    let r = app
        .post(
            "/api/v1/situation-reports",
            &analyst,
            &json!({"place": "sergels-torg", "title": "Analys", "sections": [
                  {"audience": "police_only", "body": "Internal"}]}),
        )
        .await;
    assert_eq!(r.status, StatusCode::CREATED, "{}", r.text);
}

#[tokio::test]
async fn a_json_body_under_another_content_type_is_a_415_that_names_json() {
    let app = spawn_app().await;
    let token = app.token("vakt1").await;
    let body = observation("sergels-torg").to_string();
    for ctype in ["text/plain", "application/x-www-form-urlencoded"] {
        let r = app
            .send(
                app.client
                    .post(app.url("/api/v1/observations"))
                    .bearer_auth(&token)
                    .header("content-type", ctype)
                    .body(body.clone()),
            )
            .await;
        assert_eq!(
            r.status,
            StatusCode::UNSUPPORTED_MEDIA_TYPE,
            "{ctype}: {}",
            r.text
        );
        assert_eq!(r.json["error"], "unsupported_media_type");
        assert!(
            r.json["message"]
                .as_str()
                .unwrap()
                .contains("application/json"),
            "{}",
            r.text
        );
    }
    let r = app
        .send(
            app.client
                .post(app.url("/api/v1/auth/logout"))
                .bearer_auth(&token)
                .header("content-type", "text/plain")
                .body("{}"),
        )
        .await;
    assert_eq!(r.status, StatusCode::UNSUPPORTED_MEDIA_TYPE, "{}", r.text);
    // The session is still alive: the refused logout changed nothing.
    assert_eq!(app.get("/api/v1/me", &token).await.status, StatusCode::OK);
    // A signed-out session says to sign in again.
    let r = app.logout(&token).await;
    assert_eq!(r.status, StatusCode::NO_CONTENT, "{}", r.text);
    let r = app.get("/api/v1/me", &token).await;
    assert_eq!(r.status, StatusCode::UNAUTHORIZED);
    assert_eq!(r.json["error"], "invalid_token", "{}", r.text);
    assert!(
        r.json["message"]
            .as_str()
            .unwrap()
            .contains("sign in again"),
        "{}",
        r.text
    );
}

#[tokio::test]
async fn the_api_page_comes_from_the_binary_and_loads_nothing_from_elsewhere() {
    let app = spawn_app().await;
    // Signed out, the address the README prints leads to the sign-in page.
    let root = app.send(app.client.get(app.url("/"))).await;
    assert_eq!(root.status, StatusCode::SEE_OTHER);
    assert_eq!(root.headers["location"], "/login");
    let page = app.send(app.client.get(app.url("/api/docs"))).await;
    assert_eq!(page.status, StatusCode::OK);
    assert!(page.headers["content-type"]
        .to_str()
        .unwrap()
        .starts_with("text/html"));
    let csp = page.headers["content-security-policy"].to_str().unwrap();
    for directive in [
        "default-src 'none'",
        "script-src 'self'",
        "style-src 'self'",
        "frame-ancestors 'none'",
    ] {
        assert!(csp.contains(directive), "{csp}");
    }
    assert!(!csp.contains("unsafe"), "{csp}");
    assert!(
        !page.text.contains("http://") && !page.text.contains("https://"),
        "{}",
        page.text
    );
    // Every script and stylesheet the page names is served here, with its type.
    let mut assets = 0;
    for attr in ["src=\"", "href=\""] {
        for part in page.text.split(attr).skip(1) {
            let path = part.split('"').next().unwrap();
            if !path.starts_with("/api/docs/") {
                continue;
            }
            let r = app.send(app.client.get(app.url(path))).await;
            assert_eq!(r.status, StatusCode::OK, "{path}");
            let ctype = r.headers["content-type"].to_str().unwrap();
            assert!(
                ctype.starts_with("text/javascript") || ctype.starts_with("text/css"),
                "{path}: {ctype}"
            );
            assert!(r.text.len() > 100, "{path}");
            assets += 1;
        }
    }
    assert_eq!(assets, 3, "{}", page.text);
    let r = app
        .send(app.client.get(app.url("/api/docs/other.js")))
        .await;
    assert_eq!(r.status, StatusCode::NOT_FOUND);
    // The document the page reads.
    let doc = app.send(app.client.get(app.url("/openapi.json"))).await;
    assert_eq!(doc.status, StatusCode::OK);
    assert!(doc.json["paths"]["/api/v1/observations"].is_object());
}

/// Section audiences of the visible lägesbild at `place` in a list.
fn audiences(reports: &[Value], place: &str) -> Vec<String> {
    let mut seen: Vec<String> = reports
        .iter()
        .filter(|r| r["place"] == place)
        .flat_map(|r| r["sections"].as_array().unwrap().clone())
        .map(|s| s["audience"].as_str().unwrap().to_owned())
        .collect();
    seen.sort();
    seen
}

#[tokio::test]
async fn the_demo_world_has_sample_records_and_each_role_sees_its_share() {
    let app = spawn_with(|s| s.demo = true).await;
    let vakt1 = app.token("vakt1").await;
    let vakt2 = app.token("vakt2").await;
    let polis = app.token("polis1").await;
    let soc = app.token("soc1").await;

    let seen_by_vakt1 = items(&app, &vakt1, "/api/v1/observations").await;
    assert!(seen_by_vakt1.len() >= 2, "{seen_by_vakt1:?}");
    assert!(seen_by_vakt1.iter().all(|o| o["place"] == "sergels-torg"));
    let seen_by_police = items(&app, &polis, "/api/v1/observations").await;
    assert!(seen_by_police.iter().any(|o| o["place"] == "hasselby-torg"));
    assert!(seen_by_police.len() > seen_by_vakt1.len());

    let reports = items(&app, &vakt1, "/api/v1/situation-reports?current=true").await;
    assert_eq!(audiences(&reports, "sergels-torg"), ["general", "on_site"]);
    let reports = items(&app, &vakt2, "/api/v1/situation-reports?current=true").await;
    assert_eq!(audiences(&reports, "sergels-torg"), ["general"]);
    assert_eq!(audiences(&reports, "hasselby-torg"), ["general"]);
    let reports = items(&app, &polis, "/api/v1/situation-reports?current=true").await;
    assert_eq!(
        audiences(&reports, "sergels-torg"),
        ["general", "on_site", "police_only"]
    );

    // The officer's referral: feedback and released details, never the social worker's note.
    let referrals = items(&app, &polis, "/api/v1/referrals").await;
    assert_eq!(referrals.len(), 1, "{referrals:?}");
    let text = referrals[0].to_string();
    assert_eq!(referrals[0]["status"], "investigation_opened", "{text}");
    assert!(text.contains("Stödkontakt utsedd"), "{text}");
    assert!(!text.contains("skolsköterskan"), "{text}");
    // Social services see both referrals in their inbox, with their own note.
    let inbox = items(&app, &soc, "/api/v1/referrals").await;
    assert_eq!(inbox.len(), 2, "{inbox:?}");
    assert!(Value::from(inbox).to_string().contains("skolsköterskan"));

    // Started again on the same database, the demo adds nothing twice.
    let count = |v: Vec<Value>| v.len();
    let before = count(items(&app, &polis, "/api/v1/observations").await);
    let mut settings = test_settings(app.db_url.clone());
    settings.demo = true;
    let again = tokio::task::spawn_blocking(move || start(settings))
        .await
        .unwrap();
    let polis = again.token("polis1").await;
    assert_eq!(
        count(items(&again, &polis, "/api/v1/observations").await),
        before
    );
    assert_eq!(items(&again, &polis, "/api/v1/referrals").await.len(), 1);
}
