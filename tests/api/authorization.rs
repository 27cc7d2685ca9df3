//! Object- and property-level authorization (OWASP API1, API3, API5): every demo role
//! tries every record id on every record endpoint and every write it may not make, and
//! lists with filters built to probe what it cannot see. Nothing succeeds, nothing of a
//! hidden record leaks, and the answers do not change when hidden records change.

use std::collections::BTreeSet;

use diesel::connection::SimpleConnection;
use reqwest::StatusCode;
use serde_json::{json, Value};

use crate::helpers::{spawn_app, TestApp, DEMO_USERS};
use crate::matrix::{all_markers, build_world, expected, path_of, World};

const NOT_FOUND: &str = r#"{"error":"not_found","message":"Not found."}"#;

fn leaks<'a>(body: &str, markers: &'a [String], allowed: &BTreeSet<String>) -> Vec<&'a str> {
    markers
        .iter()
        .filter(|m| !allowed.contains(*m) && body.contains(m.as_str()))
        .map(String::as_str)
        .collect()
}

fn feedback_body() -> Value {
    json!({"status": "withheld", "note": "ATTACK-NOTE"})
}

fn consent_body() -> Value {
    json!({"given_by": "youth", "scope": "ATTACK-SCOPE", "valid_until": "2099-01-01T00:00:00Z",
           "released_details": "ATTACK-DETAILS"})
}

/// Every record's state as the police and the receiving social services see it.
async fn snapshot(app: &TestApp, world: &World) -> Vec<String> {
    let mut out = Vec::new();
    for user in ["polis1", "soc1"] {
        let token = app.token(user).await;
        for (key, id) in &world.ids {
            let r = app.get(&path_of(key, id), &token).await;
            out.push(format!("{user} {key} {} {}", r.status, r.text));
        }
        for list in [
            "/api/v1/observations?limit=100",
            "/api/v1/situation-reports?limit=100",
            "/api/v1/referrals?limit=100",
        ] {
            out.push(format!(
                "{user} {list} {}",
                app.get(list, &token).await.text
            ));
        }
    }
    out
}

#[tokio::test]
async fn every_role_on_every_record_endpoint_gets_no_hidden_record_and_no_write_it_may_not_make() {
    let app = spawn_app().await;
    let world = build_world(&app).await;
    let markers = all_markers();
    let before = snapshot(&app, &world).await;
    // Feedback and consent are written by social workers of the receiving organisation
    // (soc1 for F1–F3) and nobody else; every other role tries every referral.
    for user in DEMO_USERS.iter().filter(|u| **u != "soc1") {
        let token = app.token(user).await;
        let (see, records) = expected(user);
        for (key, id) in &world.ids {
            let visible = records.contains(key);
            let r = app.get(&path_of(key, id), &token).await;
            if visible {
                assert_eq!(r.status, StatusCode::OK, "{user} GET {key}");
            } else {
                assert_eq!(r.status, StatusCode::NOT_FOUND, "{user} GET {key}");
                assert_eq!(r.text, NOT_FOUND, "{user} GET {key}");
            }
            assert_eq!(
                leaks(&r.text, &markers, &see),
                Vec::<&str>::new(),
                "{user} {key}"
            );
            // Writes on every id, whatever its kind: a referral the user cannot see is a
            // 404 that says nothing more; one it can see, a 403.
            for (sub, body) in [("feedback", feedback_body()), ("consents", consent_body())] {
                let r = app
                    .post(&format!("/api/v1/referrals/{id}/{sub}"), &token, &body)
                    .await;
                let want = if visible && key.starts_with('F') {
                    StatusCode::FORBIDDEN
                } else {
                    StatusCode::NOT_FOUND
                };
                assert_eq!(r.status, want, "{user} {sub} on {key}: {}", r.text);
                assert_eq!(leaks(&r.text, &markers, &see), Vec::<&str>::new());
                assert!(
                    !r.text.contains(id.as_str()),
                    "{user} {sub} {key}: {}",
                    r.text
                );
            }
        }
    }
    // soc1 may not write on a referral received by another social-services organisation,
    // nor on ids that are not referrals.
    let soc = app.token("soc1").await;
    for key in ["F4", "O1", "R1"] {
        for (sub, body) in [("feedback", feedback_body()), ("consents", consent_body())] {
            let r = app
                .post(
                    &format!("/api/v1/referrals/{}/{sub}", world.ids[key]),
                    &soc,
                    &body,
                )
                .await;
            assert_eq!(r.status, StatusCode::NOT_FOUND, "soc1 {sub} {key}");
            assert_eq!(r.text, NOT_FOUND);
        }
    }
    assert_eq!(
        snapshot(&app, &world).await,
        before,
        "a refused write changed something"
    );
}

#[tokio::test]
async fn admin_and_audit_endpoints_refuse_every_other_role_and_change_nothing() {
    let app = spawn_app().await;
    let admin = app.token("admin1").await;
    let users_before = app.get("/api/v1/admin/users", &admin).await.text;
    let orgs_before = app.get("/api/v1/admin/organizations", &admin).await.text;
    let places_before = app.get("/api/v1/admin/places", &admin).await.text;
    for user in DEMO_USERS.iter().filter(|u| **u != "admin1") {
        let token = app.token(user).await;
        let reads = [
            "/api/v1/admin/users",
            "/api/v1/admin/users/vakt1",
            "/api/v1/admin/users/no-such-user",
            "/api/v1/admin/organizations",
            "/api/v1/admin/places",
        ];
        for path in reads {
            let r = app.get(path, &token).await;
            assert_eq!(r.status, StatusCode::FORBIDDEN, "{user} GET {path}");
            assert!(!r.text.contains("pseudonym") && !r.text.contains("Vakt Ett"));
        }
        let writes: [(&str, &str, Value); 5] = [
            (
                "post",
                "/api/v1/admin/users",
                json!({"username": "mallory", "display_name": "M",
              "organization": "polisen-city", "role": "admin", "places": [], "password": "mallory-password-123"}),
            ),
            (
                "patch",
                &format!("/api/v1/admin/users/{user}"),
                json!({"role": "admin"}),
            ),
            (
                "patch",
                "/api/v1/admin/users/vakt1",
                json!({"places": ["hasselby-torg"]}),
            ),
            (
                "post",
                "/api/v1/admin/places",
                json!({"id": "mallory", "name": "M", "basomrade": "1"}),
            ),
            (
                "patch",
                "/api/v1/admin/organizations/stockholms-stad-ordningsvakter",
                json!({"mandated_reporter": true}),
            ),
        ];
        for (method, path, body) in writes {
            let r = if method == "post" {
                app.post(path, &token, &body).await
            } else {
                app.patch(path, &token, &body).await
            };
            assert_eq!(
                r.status,
                StatusCode::FORBIDDEN,
                "{user} {method} {path}: {}",
                r.text
            );
        }
        if *user != "revisor1" {
            for path in [
                "/api/v1/audit",
                "/api/v1/audit/export",
                "/api/v1/audit/summary",
            ] {
                let r = app.get(path, &token).await;
                assert_eq!(r.status, StatusCode::FORBIDDEN, "{user} GET {path}");
            }
        }
    }
    // The administrator manages accounts but reads no case content and no audit trail.
    for path in [
        "/api/v1/audit",
        "/api/v1/audit/export",
        "/api/v1/audit/summary",
    ] {
        assert_eq!(app.get(path, &admin).await.status, StatusCode::FORBIDDEN);
    }
    assert_eq!(
        app.get("/api/v1/admin/users", &admin).await.text,
        users_before
    );
    assert_eq!(
        app.get("/api/v1/admin/organizations", &admin).await.text,
        orgs_before
    );
    assert_eq!(
        app.get("/api/v1/admin/places", &admin).await.text,
        places_before
    );
}

/// Every list answer a user gets under a set of probing filters.
async fn probe(app: &TestApp, token: &str) -> Vec<(String, String)> {
    let mut out = Vec::new();
    for list in [
        "/api/v1/observations",
        "/api/v1/situation-reports",
        "/api/v1/referrals",
    ] {
        for q in [
            "",
            "?limit=1",
            "?limit=100",
            "?place=sergels-torg",
            "?place=sergels-torg&limit=1",
            "?place=hasselby-torg",
            "?place=no-such-place",
            "?since=2026-11-20T21:59:00Z&until=2026-11-20T22:01:00Z",
            "?since=2026-11-20T21:59:00Z&until=2026-11-20T22:01:00Z&limit=1",
            "?since=2000-01-01T00:00:00Z",
            "?until=2099-01-01T00:00:00Z&place=sergels-torg",
            "?current=true",
            "?current=true&place=sergels-torg",
        ] {
            let r = app.get(&format!("{list}{q}"), token).await;
            assert_eq!(r.status, StatusCode::OK, "{list}{q}: {}", r.text);
            out.push((format!("{list}{q}"), r.text));
        }
    }
    out
}

#[tokio::test]
async fn filters_and_pages_are_no_oracle_for_records_a_user_cannot_see() {
    let app = spawn_app().await;
    let world = build_world(&app).await;
    for user in DEMO_USERS {
        let token = app.token(user).await;
        let (_, records) = expected(user);
        let visible: BTreeSet<&str> = records.iter().map(|k| world.ids[k].as_str()).collect();
        for (q, body) in probe(&app, &token).await {
            let v: Value = serde_json::from_str(&body).unwrap();
            for item in v["items"].as_array().unwrap() {
                let id = item["id"].as_str().unwrap();
                assert!(visible.contains(id), "{user} {q} lists a hidden record");
            }
            // A cursor names only a record the user was shown.
            if let Some(c) = v["next_cursor"].as_str() {
                for id in world.ids.values() {
                    if !visible.contains(id.as_str()) {
                        assert!(
                            !c.contains(id.as_str()),
                            "{user} {q}: cursor names a hidden record"
                        );
                    }
                }
            }
        }
    }
    // A place the user is not assigned to gives an empty list, not a 403.
    let vakt2 = app.token("vakt2").await;
    let r = app
        .get("/api/v1/observations?place=sergels-torg", &vakt2)
        .await;
    assert_eq!(r.status, StatusCode::OK);
    assert_eq!(r.json, json!({"items": [], "next_cursor": null}));
    let coordinator = app.token("samordnare1").await;
    let r = app
        .get("/api/v1/referrals?place=sergels-torg", &coordinator)
        .await;
    assert_eq!(r.json, json!({"items": [], "next_cursor": null}));
}

#[tokio::test]
async fn a_guard_learns_nothing_about_another_guards_observations() {
    let app = spawn_app().await;
    let vakt1 = app.token("vakt1").await;
    let vakt2 = app.token("vakt2").await;
    let before = probe(&app, &vakt2).await;
    // vakt1 files at vakt1's own place, at the very times vakt2 probes for.
    let r = app
        .post(
            "/api/v1/observations",
            &vakt1,
            &json!({"place": "sergels-torg", "observed_at": "2026-11-20T22:00:00Z",
                    "category": "violence", "description": "HIDDEN-NARR",
                    "persons": [{"description": "HIDDEN-PERS"}]}),
        )
        .await;
    assert_eq!(r.status, StatusCode::CREATED);
    let id = r.json["id"].as_str().unwrap().to_owned();
    assert_eq!(probe(&app, &vakt2).await, before);
    let r = app.get(&format!("/api/v1/observations/{id}"), &vakt2).await;
    assert_eq!(r.text, NOT_FOUND);
    // The same answer as for an id that never existed.
    let r2 = app
        .get(
            &format!("/api/v1/observations/{}", uuid::Uuid::now_v7()),
            &vakt2,
        )
        .await;
    assert_eq!((r.status, r.text), (r2.status, r2.text));
}

#[tokio::test]
async fn more_hidden_records_than_one_scan_covers_still_leave_no_trace() {
    let app = spawn_app().await;
    let vakt1 = app.token("vakt1").await;
    let vakt2 = app.token("vakt2").await;
    let r = app
        .post(
            "/api/v1/observations",
            &vakt1,
            &json!({"place": "sergels-torg", "observed_at": "2026-11-20T22:00:00Z",
                    "category": "violence", "description": "seed", "persons": []}),
        )
        .await;
    let seed = app
        .get(
            &format!("/api/v1/observations/{}", r.json["id"].as_str().unwrap()),
            &app.token("polis1").await,
        )
        .await;
    assert_eq!(seed.status, StatusCode::OK);
    // Many more of vakt1's observations than one list request examines.
    let reporter = seed.json["reporter"]["username"]
        .as_str()
        .unwrap()
        .to_owned();
    assert_eq!(reporter, "vakt1");
    let seed_id = r.json["id"].as_str().unwrap().to_owned();
    let hidden: Vec<String> = (0..2100)
        .map(|_| uuid::Uuid::now_v7().to_string())
        .collect();
    let mut sql = String::from("BEGIN;");
    for (i, id) in hidden.iter().enumerate() {
        sql.push_str(&format!(
            "INSERT INTO observations (id, place_id, observed_at, category, description, reporter_id, reporter_org_id, created_at, legal_hold) \
             SELECT '{id}', place_id, observed_at - {i}, category, description, reporter_id, reporter_org_id, created_at, legal_hold \
             FROM observations WHERE id = '{seed_id}';"
        ));
    }
    sql.push_str("COMMIT;");
    app.connect().batch_execute(&sql).unwrap();
    for q in [
        "/api/v1/observations?place=sergels-torg",
        "/api/v1/observations?limit=1",
        "/api/v1/observations",
    ] {
        let r = app.get(q, &vakt2).await;
        assert_eq!(r.status, StatusCode::OK, "{q}");
        assert_eq!(r.json["items"], json!([]), "{q}");
        // Going on from any cursor given never reveals a hidden record either.
        let mut cursor = r.json["next_cursor"].as_str().map(str::to_owned);
        let mut pages = 0;
        while let Some(c) = cursor {
            // 2026-11-20T22:00:00Z is 1795203600 s after the epoch.
            assert!(!c.contains("179521"), "{q}: cursor {c} names a hidden time");
            assert!(
                !hidden.iter().any(|id| c.contains(id.as_str())),
                "{q}: cursor {c}"
            );
            let next = app
                .get(&format!("/api/v1/observations?cursor={c}"), &vakt2)
                .await;
            assert_eq!(next.status, StatusCode::OK, "{}", next.text);
            assert_eq!(next.json["items"], json!([]));
            cursor = next.json["next_cursor"].as_str().map(str::to_owned);
            pages += 1;
            assert!(pages < 10);
        }
    }
}

/// Every page of `list` for this caller, `limit` items at a time.
async fn all_pages(app: &TestApp, token: &str, list: &str, limit: usize) -> Vec<Value> {
    let mut items = Vec::new();
    let mut cursor: Option<String> = None;
    for _ in 0..200 {
        let q = match &cursor {
            Some(c) => format!("{list}?limit={limit}&cursor={c}"),
            None => format!("{list}?limit={limit}"),
        };
        let r = app.get(&q, token).await;
        assert_eq!(r.status, StatusCode::OK, "{q}: {}", r.text);
        items.extend(r.json["items"].as_array().unwrap().iter().cloned());
        match r.json["next_cursor"].as_str() {
            Some(c) => cursor = Some(c.to_owned()),
            None => return items,
        }
    }
    panic!("{list}: more than 200 pages");
}

#[tokio::test]
async fn small_pages_hold_the_same_records_as_one_large_page_for_every_user() {
    let app = spawn_app().await;
    build_world(&app).await;
    // Observations at both places, interleaved in time, each with a person: a caller who
    // sees one place sees every other row hidden, so a list needs several passes.
    let (vakt1, vakt2) = (app.token("vakt1").await, app.token("vakt2").await);
    for minute in 0..9 {
        for (token, place) in [(&vakt1, "sergels-torg"), (&vakt2, "hasselby-torg")] {
            let r = app
                .post(
                    "/api/v1/observations",
                    token,
                    &json!({"place": place, "observed_at": format!("2026-11-21T20:{minute:02}:00Z"),
                            "category": "drug_use", "description": format!("P-{place}-{minute}"),
                            "persons": [{"description": format!("P-{place}-{minute}-PERSON")}]}),
                )
                .await;
            assert_eq!(r.status, StatusCode::CREATED, "{}", r.text);
        }
    }
    for user in DEMO_USERS {
        let token = app.token(user).await;
        for list in [
            "/api/v1/observations",
            "/api/v1/situation-reports",
            "/api/v1/referrals",
        ] {
            let whole = all_pages(&app, &token, list, 100).await;
            for limit in [1, 2, 5] {
                let paged = all_pages(&app, &token, list, limit).await;
                // The same records, in the same order, each shown with the same parts.
                assert_eq!(paged, whole, "{user} {list} in pages of {limit}");
            }
        }
    }
    // The police see all eighteen new observations with their persons.
    let polis = app.token("polis1").await;
    let whole = all_pages(&app, &polis, "/api/v1/observations", 100).await;
    let persons: Vec<&str> = whole
        .iter()
        .filter_map(|o| o["persons"][0]["description"].as_str())
        .filter(|d| d.starts_with("P-"))
        .collect();
    assert_eq!(persons.len(), 18, "{whole:?}");
}
