//! Hidden records leave no trace in lists: whatever a user cannot see, every list answer
//! they get — items, cursor, status, length, page after page — is byte for byte the one
//! they got before those records existed; and a cursor works only for the list it came
//! from.

use diesel::connection::SimpleConnection;
use reqwest::StatusCode;
use serde_json::json;

use crate::helpers::{spawn_app, TestApp, DEMO_USERS};
use crate::matrix::build_world;

/// Filters that probe around the times of the hidden records, to the microsecond.
const FILTERS: &[&str] = &[
    "",
    "&place=sergels-torg",
    "&place=hasselby-torg",
    "&since=2026-11-20T21:59:59.999000Z&until=2026-11-20T22:00:00.000001Z",
    "&until=2026-11-20T22:00:00Z",
    "&since=2000-01-01T00:00:00Z&place=sergels-torg",
    "&current=true",
];

/// Every answer of `list` for this user: each filter, in pages of 1 and of 50, following
/// every cursor to the end.
async fn every_page(app: &TestApp, token: &str, list: &str) -> Vec<String> {
    let mut out = Vec::new();
    for filter in FILTERS {
        for limit in [1, 50] {
            let mut cursor: Option<String> = None;
            for _ in 0..60 {
                let url = match &cursor {
                    Some(c) => format!("{list}?limit={limit}{filter}&cursor={c}"),
                    None => format!("{list}?limit={limit}{filter}"),
                };
                let r = app.get(&url, token).await;
                out.push(format!(
                    "{url} {} {:?} {}",
                    r.status,
                    r.headers.get("content-length"),
                    r.text
                ));
                match r.json["next_cursor"].as_str() {
                    Some(c) => cursor = Some(c.to_owned()),
                    None => break,
                }
            }
        }
    }
    out
}

/// Which lists hide all of the records [`hide`] adds, for each demo user.
fn lists_hiding_everything_added(user: &str) -> &'static [&'static str] {
    const ALL: &[&str] = &[
        "/api/v1/observations",
        "/api/v1/situation-reports",
        "/api/v1/referrals",
    ];
    match user {
        // A guard at Sergels torg sees none of another guard's observations at Hässelby
        // (the other partners see their core).
        "vakt1" | "revisor1" | "admin1" => ALL,
        "polis1" => &["/api/v1/referrals"],
        // The analyst filed the referrals, and the police see every lägesbild.
        "analytiker1" => &[],
        _ => &["/api/v1/situation-reports", "/api/v1/referrals"],
    }
}

/// Adds, straight into the database, records interleaved in time with the visible ones:
/// 2,100 observations by vakt2 at Hässelby torg (more than the old scan limit), 300
/// lägesbilder at Sergels torg whose only section is police-only, and 300 referrals an
/// analyst filed to another social-services organisation.
fn hide(app: &TestApp, world: &crate::matrix::World) {
    let mut sql = String::from("BEGIN;");
    let (o2, r1, f4) = (&world.ids["O2"], &world.ids["R1"], &world.ids["F4"]);
    for i in 0..2100 {
        let id = uuid::Uuid::now_v7();
        sql.push_str(&format!(
            "INSERT INTO observations (id, place_id, observed_at, category, description, reporter_id, reporter_org_id, created_at, legal_hold) \
             SELECT '{id}', place_id, observed_at + {} , category, 'HIDDEN', reporter_id, reporter_org_id, created_at, legal_hold \
             FROM observations WHERE id = '{o2}';",
            (i % 7) - 3
        ));
    }
    for i in 0..300 {
        let (id, sid) = (uuid::Uuid::now_v7(), uuid::Uuid::now_v7());
        sql.push_str(&format!(
            "INSERT INTO situation_reports (id, place_id, title, valid_from, valid_until, author_id, author_org_id, created_at, legal_hold) \
             SELECT '{id}', place_id, 'HIDDEN-TITLE', valid_from, valid_until, author_id, author_org_id, created_at + {}, legal_hold \
             FROM situation_reports WHERE id = '{r1}';\
             INSERT INTO report_sections (id, report_id, position, audience, body) VALUES ('{sid}', '{id}', 0, 'police_only', 'HIDDEN');",
            (i % 5) - 2
        ));
    }
    for i in 0..300 {
        let id = uuid::Uuid::now_v7();
        sql.push_str(&format!(
            "INSERT INTO referrals (id, receiving_org_id, place_id, reporter_id, reporter_org_id, child_name, child_personal_identity_number, child_alias, child_estimated_birth_year, child_age_uncertain, child_description, concern, status, status_changed_at, created_at, legal_hold) \
             SELECT '{id}', receiving_org_id, place_id, (SELECT id FROM users WHERE username = 'analytiker1'), reporter_org_id, 'HIDDEN', NULL, NULL, NULL, child_age_uncertain, NULL, 'HIDDEN', status, status_changed_at, created_at + {}, legal_hold \
             FROM referrals WHERE id = '{f4}';",
            (i % 5) - 2
        ));
    }
    sql.push_str("COMMIT;");
    app.connect().batch_execute(&sql).unwrap();
}

#[tokio::test]
async fn lists_are_byte_identical_whether_or_not_hidden_records_exist() {
    let app = spawn_app().await;
    let world = build_world(&app).await;
    let mut before = Vec::new();
    for user in DEMO_USERS {
        let token = app.token(user).await;
        for list in lists_hiding_everything_added(user) {
            before.push((user, list, every_page(&app, &token, list).await));
        }
    }
    hide(&app, &world);
    for (user, list, answers) in before {
        let token = app.token(user).await;
        let now = every_page(&app, &token, list).await;
        assert_eq!(answers.len(), now.len(), "{user} {list}: pages differ");
        for (a, b) in answers.iter().zip(&now) {
            assert_eq!(a, b, "{user} {list}");
        }
        assert!(!now.iter().any(|a| a.contains("HIDDEN")), "{user} {list}");
    }
    // The police see the hidden observations and lägesbilder: they were really there.
    let polis = app.token("polis1").await;
    let r = app.get("/api/v1/situation-reports?limit=100", &polis).await;
    assert!(r.text.contains("HIDDEN-TITLE"));
}

#[tokio::test]
async fn a_cursor_works_only_for_its_user_its_list_and_its_filters() {
    let app = spawn_app().await;
    build_world(&app).await;
    let (vakt1, falt1) = (app.token("vakt1").await, app.token("falt1").await);
    let first = app
        .get("/api/v1/observations?limit=1&place=sergels-torg", &vakt1)
        .await;
    let cursor = first.json["next_cursor"]
        .as_str()
        .expect("a second page")
        .to_owned();
    let next = app
        .get(
            &format!("/api/v1/observations?limit=1&place=sergels-torg&cursor={cursor}"),
            &vakt1,
        )
        .await;
    assert_eq!(next.status, StatusCode::OK, "{}", next.text);
    assert_ne!(next.json["items"], first.json["items"]);
    for (who, path) in [
        // Another user, who sees the same records.
        (
            &falt1,
            format!("/api/v1/observations?limit=1&place=sergels-torg&cursor={cursor}"),
        ),
        // Another record kind.
        (
            &vakt1,
            format!("/api/v1/referrals?limit=1&place=sergels-torg&cursor={cursor}"),
        ),
        (
            &vakt1,
            format!("/api/v1/situation-reports?limit=1&place=sergels-torg&cursor={cursor}"),
        ),
        // Other filters.
        (
            &vakt1,
            format!("/api/v1/observations?limit=1&cursor={cursor}"),
        ),
        (
            &vakt1,
            format!("/api/v1/observations?limit=1&place=sergels-torg&since=2000-01-01T00:00:00Z&cursor={cursor}"),
        ),
    ] {
        let r = app.get(&path, who).await;
        assert_eq!(r.status, StatusCode::BAD_REQUEST, "{path}: {}", r.text);
        assert_eq!(r.json["error"], "invalid_cursor");
    }
    // The page size may change from page to page.
    let r = app
        .get(
            &format!("/api/v1/observations?limit=5&place=sergels-torg&cursor={cursor}"),
            &vakt1,
        )
        .await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.text);
    // The same page gives the same cursor: nothing random in an answer.
    let again = app
        .get("/api/v1/observations?limit=1&place=sergels-torg", &vakt1)
        .await;
    assert_eq!(again.text, first.text);
    assert_eq!(json!(cursor), again.json["next_cursor"]);
}
