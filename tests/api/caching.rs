//! The read caches (sessions, verified tokens, situation reports) never outlive what
//! they hold: a change through the API shows on the very next request, a change made
//! outside the server (the CLI, an operator's SQL, another instance) within the poll
//! interval, and a cached token still expires on the second.

use std::time::{Duration, Instant};

use diesel::connection::SimpleConnection;
use reqwest::StatusCode;
use serde_json::{json, Value};

use samverkan::config::CacheSettings;

use crate::helpers::{spawn_app, TestApp};

/// Longer than the shipped poll interval, with room for a loaded CI machine.
fn outside_change_window() -> Duration {
    Duration::from_millis(CacheSettings::default().poll_ms * 8)
}

async fn lagesbild(app: &TestApp) -> String {
    app.situation_report("CACHE").await
}

/// Reads until `done` holds for the answer, or the window passes; the last answer.
async fn read_until(
    app: &TestApp,
    path: &str,
    token: &str,
    done: impl Fn(StatusCode, &Value) -> bool,
) -> (StatusCode, Value, Duration) {
    let start = Instant::now();
    loop {
        let r = app.get(path, token).await;
        if done(r.status, &r.json) || start.elapsed() > outside_change_window() {
            return (r.status, r.json, start.elapsed());
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

/// A lägesbild read twice by vakt1 (so the second answer came from the caches): its
/// path and vakt1's token.
async fn read_from_cache(app: &TestApp) -> (String, String) {
    let id = lagesbild(app).await;
    let path = format!("/api/v1/situation-reports/{id}");
    let vakt = app.token("vakt1").await;
    for _ in 0..2 {
        let r = app.get(&path, &vakt).await;
        assert_eq!(r.status, StatusCode::OK, "{}", r.text);
        assert!(r.text.contains("CACHE-ON-SITE"), "{}", r.text);
    }
    (path, vakt)
}

#[tokio::test]
async fn a_guard_taken_off_a_place_loses_its_on_site_section_on_the_next_read() {
    let app = spawn_app().await;
    let (path, vakt) = read_from_cache(&app).await;
    let admin = app.token("admin1").await;
    let r = app
        .patch(
            "/api/v1/admin/users/vakt1",
            &admin,
            &json!({"places": ["hasselby-torg"]}),
        )
        .await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.text);
    // No waiting: the change went through this server's writer.
    let r = app.get(&path, &vakt).await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.text);
    assert!(r.text.contains("CACHE-GENERAL"), "{}", r.text);
    assert!(!r.text.contains("CACHE-ON-SITE"), "{}", r.text);
    assert!(!r.text.contains("CACHE-POLICE-ONLY"), "{}", r.text);
}

#[tokio::test]
async fn logging_out_ends_a_cached_session_on_the_next_request() {
    let app = spawn_app().await;
    let (path, vakt) = read_from_cache(&app).await;
    let r = app.logout(&vakt).await;
    assert!(r.status.is_success(), "{} {}", r.status, r.text);
    let r = app.get(&path, &vakt).await;
    assert_eq!(r.status, StatusCode::UNAUTHORIZED, "{}", r.text);
    assert!(!r.text.contains("CACHE-"), "{}", r.text);
}

#[tokio::test]
async fn a_user_disabled_from_the_command_line_is_refused_within_the_poll_interval() {
    let app = spawn_app().await;
    let (path, vakt) = read_from_cache(&app).await;
    let (ok, out) = app.cli(&["admin", "disable-user", "vakt1"]);
    assert!(ok, "{out}");
    let (status, body, took) =
        read_until(&app, &path, &vakt, |s, _| s == StatusCode::UNAUTHORIZED).await;
    assert_eq!(status, StatusCode::UNAUTHORIZED, "after {took:?}: {body}");
}

#[tokio::test]
async fn a_report_erased_outside_the_server_stops_being_served_within_the_poll_interval() {
    let app = spawn_app().await;
    let (path, vakt) = read_from_cache(&app).await;
    let id = path.rsplit('/').next().expect("id");
    // An operator's SQL (or another instance): the server hears of it only through the
    // database's change counter.
    let mut conn = app.connect();
    conn.batch_execute(&format!(
        "DELETE FROM report_sections WHERE report_id = '{id}'; \
         DELETE FROM situation_reports WHERE id = '{id}';"
    ))
    .expect("erase");
    let (status, body, took) =
        read_until(&app, &path, &vakt, |s, _| s == StatusCode::NOT_FOUND).await;
    assert_eq!(status, StatusCode::NOT_FOUND, "after {took:?}: {body}");
    assert!(!body.to_string().contains("CACHE-"), "{body}");
}

#[tokio::test]
async fn every_reader_gets_from_the_cached_copy_exactly_what_the_database_gives_them() {
    let app = spawn_app().await;
    let id = lagesbild(&app).await;
    let path = format!("/api/v1/situation-reports/{id}");
    // All sections, two, the general one only, and none at all (404).
    let readers = ["polis1", "vakt1", "vakt2", "soc1", "admin1", "revisor1"];
    let mut tokens = Vec::new();
    for reader in readers {
        tokens.push(app.token(reader).await);
    }
    // From the database: posting a report before each read drops the cached copy.
    let mut fresh = Vec::new();
    for token in &tokens {
        lagesbild(&app).await;
        let r = app.get(&path, token).await;
        fresh.push((r.status, r.text));
    }
    assert!(fresh[0].1.contains("CACHE-POLICE-ONLY"), "{}", fresh[0].1);
    assert!(fresh[1].1.contains("CACHE-ON-SITE"), "{}", fresh[1].1);
    assert!(!fresh[1].1.contains("CACHE-POLICE-ONLY"), "{}", fresh[1].1);
    assert!(fresh.iter().any(|(s, _)| *s == StatusCode::NOT_FOUND));
    // From one cached copy, in both orders: the first sweep caches the copy and every
    // session, the second is answered from memory alone. The answer serialised for one
    // set of parts is never handed to a reader with another.
    let forward: Vec<usize> = (0..readers.len()).collect();
    let backward: Vec<usize> = forward.iter().rev().copied().collect();
    for order in [forward, backward] {
        lagesbild(&app).await;
        for _sweep in 0..2 {
            for &i in &order {
                let r = app.get(&path, &tokens[i]).await;
                assert_eq!(
                    (r.status, &r.text),
                    (fresh[i].0, &fresh[i].1),
                    "{}",
                    readers[i]
                );
                if r.status == StatusCode::OK {
                    assert_eq!(r.headers["content-type"], "application/json");
                }
            }
        }
    }
    // Every read is on record, and each reader's five name the same parts.
    let auditor = app.token("revisor1").await;
    let r = app
        .get(
            &format!("/api/v1/audit?record={id}&action=read&limit=100"),
            &auditor,
        )
        .await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.text);
    let items = r.json["items"].as_array().cloned().unwrap_or_default();
    for reader in readers {
        let reads: Vec<&Value> = items.iter().filter(|e| e["actor"] == reader).collect();
        assert_eq!(reads.len(), 5, "{reader}: {reads:?}");
        assert!(
            reads
                .iter()
                .all(|e| e["parts"] == reads[0]["parts"] && e["outcome"] == reads[0]["outcome"]),
            "{reader}: {reads:?}"
        );
    }
}

/// The answer to a filing is built from what was just stored, not read back from the
/// database: it must be exactly what its filer reads of the record afterwards.
#[tokio::test]
async fn what_a_filer_gets_back_is_what_the_filer_reads_afterwards() {
    let app = spawn_app().await;
    let filings = [
        (
            "vakt1",
            "/api/v1/observations",
            json!({"place": "sergels-torg",
            "observed_at": "2026-11-20T21:30:00Z", "category": "drug_sale",
            "description": "FILED-NARRATIVE", "persons": [
                {"description": "FILED-PERSON-1", "estimated_birth_year": 2008, "age_uncertain": true},
                {"description": "FILED-PERSON-2"}]}),
        ),
        (
            "polis1",
            "/api/v1/situation-reports",
            json!({"place": "hasselby-torg",
            "title": "FILED-TITLE", "sections": [
                {"audience": "police_only", "body": "FILED-POLICE"},
                {"audience": "general", "body": "FILED-GENERAL"},
                {"audience": "on_site", "body": "FILED-ON-SITE"}]}),
        ),
        (
            "vakt1",
            "/api/v1/referrals",
            json!({"receiving_organization": "socialtjansten-norrmalm",
            "place": "sergels-torg", "child": {"alias": "FILED-ALIAS", "description": "FILED-CHILD",
            "estimated_birth_year": 2011}, "concern": "FILED-CONCERN"}),
        ),
    ];
    for (user, path, body) in filings {
        let token = app.token(user).await;
        let filed = app.post(path, &token, &body).await;
        assert_eq!(
            filed.status,
            StatusCode::CREATED,
            "{user} {path}: {}",
            filed.text
        );
        let id = filed.json["id"].as_str().expect("an id");
        let read = app.get(&format!("{path}/{id}"), &token).await;
        assert_eq!(
            read.status,
            StatusCode::OK,
            "{user} {path}/{id}: {}",
            read.text
        );
        assert_eq!(
            filed.json, read.json,
            "{user} {path}: the answer and the read differ"
        );
        assert!(
            filed.text.contains("FILED-"),
            "{user} {path}: {}",
            filed.text
        );
    }
}
