//! Retention (gallring), legal holds and audit anchoring: through the HTTP API and the
//! real binary (`samverkan retention run`, `samverkan audit head|verify`) against the
//! test's own database.

use diesel::connection::SimpleConnection;
use diesel::prelude::*;
use reqwest::StatusCode;
use serde_json::{json, Value};

use samverkan::storage::schema::{
    audit_log, observation_persons, observations, referral_consents, referral_feedback, referrals,
    report_sections, situation_reports,
};

use crate::helpers::{spawn_app, spawn_with, TestApp, DEMO_USERS};

const DAY: i64 = 86_400 * 1_000_000;

async fn created(app: &TestApp, path: &str, token: &str, body: Value) -> String {
    let r = app.post(path, token, &body).await;
    assert_eq!(r.status, StatusCode::CREATED, "{path}: {}", r.text);
    r.json["id"].as_str().expect("id").to_owned()
}

async fn observation(app: &TestApp, token: &str) -> String {
    created(
        app,
        "/api/v1/observations",
        token,
        json!({"place": "sergels-torg", "observed_at": "2026-11-01T21:00:00Z", "category": "drug_sale",
               "description": "RETENTION-NARRATIVE",
               "persons": [{"description": "red jacket"}, {"description": "grey hoodie"}]}),
    )
    .await
}

async fn situation_report(app: &TestApp, token: &str) -> String {
    created(
        app,
        "/api/v1/situation-reports",
        token,
        json!({"place": "sergels-torg", "title": "Kväll",
               "sections": [{"audience": "general", "body": "Calm."},
                            {"audience": "police_only", "body": "Intelligence."}]}),
    )
    .await
}

/// A referral from the police with feedback and a consent from social services.
async fn referral(app: &TestApp, police: &str, social: &str) -> String {
    let id = created(
        app,
        "/api/v1/referrals",
        police,
        json!({"receiving_organization": "socialtjansten-norrmalm", "place": "sergels-torg",
               "child": {"alias": "Mille", "estimated_birth_year": 2010, "age_uncertain": true},
               "concern": "Seen buying pills."}),
    )
    .await;
    let r = app
        .post(
            &format!("/api/v1/referrals/{id}/feedback"),
            social,
            &json!({"status": "not_opened", "note": "Internal note"}),
        )
        .await;
    assert!(r.status.is_success(), "feedback: {}", r.text);
    let r = app
        .post(
            &format!("/api/v1/referrals/{id}/consents"),
            social,
            &json!({"given_by": "guardian", "scope": "measures", "valid_until": "2030-01-01T00:00:00Z",
                    "released_details": "Support programme."}),
        )
        .await;
    assert!(r.status.is_success(), "consent: {}", r.text);
    id
}

/// Moves a record's clock back by `days` (as if it had been filed that long ago).
fn backdate(app: &TestApp, kind: &str, id: &str, days: i64) {
    let mut c = app.connect();
    let by = days * DAY;
    let n = match kind {
        "observation" => diesel::update(observations::table.find(id))
            .set(observations::created_at.eq(observations::created_at - by))
            .execute(&mut c),
        "situation_report" => diesel::update(situation_reports::table.find(id))
            .set((
                situation_reports::created_at.eq(situation_reports::created_at - by),
                situation_reports::valid_from.eq(situation_reports::valid_from - by),
            ))
            .execute(&mut c),
        "referral" => diesel::update(referrals::table.find(id))
            .set((
                referrals::created_at.eq(referrals::created_at - by),
                referrals::status_changed_at.eq(referrals::status_changed_at - by),
            ))
            .execute(&mut c),
        other => panic!("kind {other}"),
    }
    .expect("backdate");
    assert_eq!(n, 1, "backdate {kind} {id}");
}

/// How many rows each table holds for these records.
fn rows(app: &TestApp, obs: &str, report: &str, referral: &str) -> [i64; 7] {
    let mut c = app.connect();
    let count = |r: QueryResult<i64>| r.expect("count");
    [
        count(
            observations::table
                .filter(observations::id.eq(obs))
                .count()
                .get_result(&mut c),
        ),
        count(
            observation_persons::table
                .filter(observation_persons::observation_id.eq(obs))
                .count()
                .get_result(&mut c),
        ),
        count(
            situation_reports::table
                .filter(situation_reports::id.eq(report))
                .count()
                .get_result(&mut c),
        ),
        count(
            report_sections::table
                .filter(report_sections::report_id.eq(report))
                .count()
                .get_result(&mut c),
        ),
        count(
            referrals::table
                .filter(referrals::id.eq(referral))
                .count()
                .get_result(&mut c),
        ),
        count(
            referral_feedback::table
                .filter(referral_feedback::referral_id.eq(referral))
                .count()
                .get_result(&mut c),
        ),
        count(
            referral_consents::table
                .filter(referral_consents::referral_id.eq(referral))
                .count()
                .get_result(&mut c),
        ),
    ]
}

fn ids_in(list: &Value) -> Vec<String> {
    list["items"]
        .as_array()
        .map(|items| {
            items
                .iter()
                .filter_map(|i| i["id"].as_str().map(str::to_owned))
                .collect()
        })
        .unwrap_or_default()
}

async fn audit_of(app: &TestApp, auditor: &str, record: &str) -> Vec<Value> {
    let r = app
        .get(
            &format!("/api/v1/audit?record={record}&action=erase"),
            auditor,
        )
        .await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.text);
    r.json["items"].as_array().cloned().unwrap_or_default()
}

async fn hold(app: &TestApp, admin: &str, kind: &str, id: &str) {
    let r = app
        .send(
            app.client
                .put(app.url(&format!("/api/v1/legal-holds/{kind}/{id}")))
                .bearer_auth(admin)
                .header("X-Purpose", "JO inquiry 2026-42"),
        )
        .await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.text);
    assert_eq!(
        r.json,
        json!({"kind": kind, "id": id, "legal_hold": true}),
        "{}",
        r.text
    );
}

#[tokio::test]
async fn retention_erases_what_is_due_keeps_the_rest_and_audits_both() {
    let app = spawn_app().await;
    let (guard, police, social, admin, auditor) = (
        app.token("vakt1").await,
        app.token("polis1").await,
        app.token("soc1").await,
        app.token("admin1").await,
        app.token("revisor1").await,
    );
    // Due: older than the default periods (365 / 365 / 1826 days).
    let (old_obs, old_report, old_ref) = (
        observation(&app, &guard).await,
        situation_report(&app, &police).await,
        referral(&app, &police, &social).await,
    );
    backdate(&app, "observation", &old_obs, 400);
    backdate(&app, "situation_report", &old_report, 400);
    backdate(&app, "referral", &old_ref, 2000);
    // Not yet due.
    let (new_obs, new_report, new_ref) = (
        observation(&app, &guard).await,
        situation_report(&app, &police).await,
        referral(&app, &police, &social).await,
    );
    backdate(&app, "observation", &new_obs, 300);
    backdate(&app, "situation_report", &new_report, 300);
    backdate(&app, "referral", &new_ref, 1700);
    // Posted long ago, but valid until recently: counts from the end of its validity.
    let valid_report = situation_report(&app, &police).await;
    backdate(&app, "situation_report", &valid_report, 800);
    diesel::update(situation_reports::table.find(&valid_report))
        .set(situation_reports::valid_until.eq(samverkan::storage::now_micros() - 30 * DAY))
        .execute(&mut app.connect())
        .expect("set valid_until");
    // Due, but under legal hold.
    let (held_obs, held_ref) = (
        observation(&app, &guard).await,
        referral(&app, &police, &social).await,
    );
    backdate(&app, "observation", &held_obs, 400);
    backdate(&app, "referral", &held_ref, 2000);
    hold(&app, &admin, "observation", &held_obs).await;
    hold(&app, &admin, "referral", &held_ref).await;

    let before = rows(&app, &old_obs, &old_report, &old_ref);
    assert_eq!(before, [1, 2, 1, 2, 1, 1, 1]);

    // A dry run counts and changes nothing.
    let (ok, out) = app.cli(&["retention", "run", "--dry-run"]);
    assert!(ok, "{out}");
    assert!(out.contains("observation: would erase 1, held 1"), "{out}");
    assert!(
        out.contains("situation_report: would erase 1, held 0"),
        "{out}"
    );
    assert!(out.contains("referral: would erase 1, held 1"), "{out}");
    assert_eq!(rows(&app, &old_obs, &old_report, &old_ref), before);
    assert!(audit_of(&app, &auditor, &old_obs).await.is_empty());
    assert!(audit_of(&app, &auditor, &held_obs).await.is_empty());

    let (ok, out) = app.cli(&["retention", "run"]);
    assert!(ok, "{out}");
    assert!(out.contains("observation: erased 1, held 1"), "{out}");
    assert!(out.contains("situation_report: erased 1, held 0"), "{out}");
    assert!(out.contains("referral: erased 1, held 1"), "{out}");

    // Really gone: the rows and every dependent row.
    assert_eq!(
        rows(&app, &old_obs, &old_report, &old_ref),
        [0, 0, 0, 0, 0, 0, 0]
    );
    // The live alerts that named them too; a held record keeps its own.
    let alerts = |id: &str| -> i64 {
        samverkan::storage::schema::events::table
            .filter(samverkan::storage::schema::events::record_id.eq(id))
            .count()
            .get_result(&mut app.connect())
            .expect("count events")
    };
    for id in [&old_obs, &old_report, &old_ref] {
        assert_eq!(alerts(id), 0, "{id}");
    }
    assert_eq!(alerts(&held_obs), 1);
    assert!(alerts(&held_ref) >= 1);
    for (path, token) in [
        (format!("/api/v1/observations/{old_obs}"), &police),
        (format!("/api/v1/situation-reports/{old_report}"), &police),
        (format!("/api/v1/referrals/{old_ref}"), &social),
    ] {
        assert_eq!(
            app.get(&path, token).await.status,
            StatusCode::NOT_FOUND,
            "{path}"
        );
    }
    let listed = ids_in(&app.get("/api/v1/observations", &police).await.json);
    assert!(!listed.contains(&old_obs));
    assert!(listed.contains(&new_obs) && listed.contains(&held_obs));
    let listed = ids_in(&app.get("/api/v1/situation-reports", &police).await.json);
    assert!(!listed.contains(&old_report));
    assert!(listed.contains(&new_report) && listed.contains(&valid_report));
    let listed = ids_in(&app.get("/api/v1/referrals", &social).await.json);
    assert!(!listed.contains(&old_ref));
    assert!(listed.contains(&new_ref) && listed.contains(&held_ref));
    // Kept, with their dependent rows.
    assert_eq!(
        rows(&app, &new_obs, &new_report, &new_ref),
        [1, 2, 1, 2, 1, 1, 1]
    );
    assert_eq!(rows(&app, &held_obs, &valid_report, &held_ref), before);
    for (path, token) in [
        (format!("/api/v1/observations/{held_obs}"), &police),
        (format!("/api/v1/referrals/{held_ref}"), &social),
    ] {
        assert_eq!(app.get(&path, token).await.status, StatusCode::OK, "{path}");
    }

    // Audited: each erasure by the system, each hold once per run.
    for (kind, id) in [
        ("observation", &old_obs),
        ("situation_report", &old_report),
        ("referral", &old_ref),
    ] {
        let e = audit_of(&app, &auditor, id).await;
        assert_eq!(e.len(), 1, "{e:?}");
        assert_eq!(e[0]["outcome"], "success");
        assert_eq!(e[0]["record_kind"], kind);
        assert_eq!(e[0]["actor"], Value::Null);
    }
    for (kind, id) in [("observation", &held_obs), ("referral", &held_ref)] {
        let e = audit_of(&app, &auditor, id).await;
        assert_eq!(e.len(), 1, "{e:?}");
        assert_eq!(e[0]["outcome"], "held");
        assert_eq!(e[0]["record_kind"], kind);
    }
    for id in [&new_obs, &new_report, &new_ref, &valid_report] {
        assert!(audit_of(&app, &auditor, id).await.is_empty());
    }
    let r = app
        .get("/api/v1/audit?action=legal_hold_set&actor=admin1", &auditor)
        .await;
    let set = r.json["items"].as_array().cloned().unwrap_or_default();
    assert_eq!(set.len(), 2, "{}", r.text);
    assert_eq!(set[0]["purpose"], "JO inquiry 2026-42");

    // The chain still verifies after the erasure.
    let (ok, out) = app.cli(&["audit", "verify"]);
    assert!(ok, "{out}");

    // Lifting the hold lets the next run erase the record.
    let r = app
        .send(
            app.client
                .delete(app.url(&format!("/api/v1/legal-holds/observation/{held_obs}")))
                .bearer_auth(&admin),
        )
        .await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.text);
    assert_eq!(r.json["legal_hold"], false);
    let (ok, out) = app.cli(&["retention", "run"]);
    assert!(ok, "{out}");
    assert!(out.contains("observation: erased 1, held 0"), "{out}");
    assert!(out.contains("referral: erased 0, held 1"), "{out}");
    assert_eq!(
        app.get(&format!("/api/v1/observations/{held_obs}"), &police)
            .await
            .status,
        StatusCode::NOT_FOUND
    );
    let outcomes: Vec<Value> = audit_of(&app, &auditor, &held_obs)
        .await
        .iter()
        .map(|e| e["outcome"].clone())
        .collect();
    assert_eq!(outcomes, vec![json!("success"), json!("held")]);
    let (ok, out) = app.cli(&["audit", "verify"]);
    assert!(ok, "{out}");
}

#[tokio::test]
async fn the_background_job_erases_what_is_due() {
    let app = spawn_with(|s| s.retention.interval_secs = 1).await;
    let guard = app.token("vakt1").await;
    let (old, new) = (
        observation(&app, &guard).await,
        observation(&app, &guard).await,
    );
    backdate(&app, "observation", &old, 400);
    let count = |id: &str| -> i64 {
        observations::table
            .filter(observations::id.eq(id))
            .count()
            .get_result(&mut app.connect())
            .expect("count")
    };
    let mut waited = 0;
    while count(&old) > 0 {
        assert!(waited < 100, "the background job did not erase {old}");
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
        waited += 1;
    }
    assert_eq!(count(&new), 1);
    let erased: i64 = audit_log::table
        .filter(audit_log::record_id.eq(&old))
        .filter(audit_log::action.eq("erase"))
        .filter(audit_log::outcome.eq("success"))
        .count()
        .get_result(&mut app.connect())
        .expect("count");
    assert_eq!(erased, 1);
}

#[tokio::test]
async fn legal_holds_are_for_the_administrator_only_and_reveal_nothing() {
    let app = spawn_app().await;
    let guard = app.token("vakt1").await;
    let id = observation(&app, &guard).await;
    for user in DEMO_USERS.iter().filter(|u| **u != "admin1") {
        let token = app.token(user).await;
        let path = format!("/api/v1/legal-holds/observation/{id}");
        for r in [
            app.send(app.client.put(app.url(&path)).bearer_auth(&token))
                .await,
            app.send(app.client.delete(app.url(&path)).bearer_auth(&token))
                .await,
            app.get("/api/v1/legal-holds", &token).await,
        ] {
            assert_eq!(r.status, StatusCode::FORBIDDEN, "{user}: {}", r.text);
            assert_eq!(r.json["error"], "forbidden");
        }
    }
    let held: bool = observations::table
        .find(&id)
        .select(observations::legal_hold)
        .first(&mut app.connect())
        .expect("row");
    assert!(!held);
    assert_eq!(
        app.send(
            app.client
                .put(app.url(&format!("/api/v1/legal-holds/observation/{id}")))
        )
        .await
        .status,
        StatusCode::UNAUTHORIZED
    );

    let admin = app.token("admin1").await;
    let unknown = "0190d5a2-0000-7000-8000-000000000000";
    for path in [
        format!("/api/v1/legal-holds/observation/{unknown}"),
        format!("/api/v1/legal-holds/referral/{id}"),
        format!("/api/v1/legal-holds/situation_report/{id}"),
        "/api/v1/legal-holds/observation/not-an-id".to_owned(),
        format!("/api/v1/legal-holds/user/{id}"),
    ] {
        let r = app
            .send(app.client.put(app.url(&path)).bearer_auth(&admin))
            .await;
        assert_eq!(r.status, StatusCode::NOT_FOUND, "{path}: {}", r.text);
        assert_eq!(r.json["error"], "not_found");
    }
    hold(&app, &admin, "observation", &id).await;
    hold(&app, &admin, "observation", &id).await;
    let list = app.get("/api/v1/legal-holds", &admin).await;
    assert_eq!(list.status, StatusCode::OK);
    assert_eq!(
        list.json,
        json!([{"kind": "observation", "id": id, "legal_hold": true}])
    );
    // The administrator still sees no case content.
    assert!(!list.text.contains("RETENTION-NARRATIVE"));
    assert_eq!(
        app.get(&format!("/api/v1/observations/{id}"), &admin)
            .await
            .status,
        StatusCode::NOT_FOUND
    );

    let auditor = app.token("revisor1").await;
    let r = app.get("/api/v1/audit?actor=vakt2", &auditor).await;
    assert!(r.json["items"]
        .as_array()
        .unwrap()
        .iter()
        .any(|e| e["action"] == "legal_hold_set" && e["outcome"] == "denied"));
    let r = app
        .get(&format!("/api/v1/audit?record={unknown}"), &auditor)
        .await;
    assert_eq!(r.json["items"][0]["outcome"], "not_found", "{}", r.text);
}

#[tokio::test]
async fn an_anchor_shows_a_truncated_tail_that_the_chain_alone_does_not() {
    let app = spawn_app().await;
    let guard = app.token("vakt1").await;
    observation(&app, &guard).await;
    let (ok, head) = app.cli(&["audit", "head"]);
    assert!(ok, "{head}");
    let mut parts = head.split_whitespace();
    let (seq, hash) = (
        parts.next().unwrap().parse::<i64>().expect("seq"),
        parts.next().expect("hash").to_owned(),
    );
    assert_eq!(hash.len(), 64, "{head}");
    let anchor = format!("{seq}:{hash}");
    // More happens after the anchor was taken.
    for _ in 0..2 {
        observation(&app, &guard).await;
    }
    let (ok, out) = app.cli(&["audit", "verify", "--anchor", &anchor]);
    assert!(ok, "{out}");

    // Someone cuts the tail off below the anchor and moves the recorded head back, so
    // the chain on its own still verifies... (entry numbers may skip: the entries before
    // the anchored one are asked for.)
    let before: Vec<i64> = audit_log::table
        .select(audit_log::seq)
        .filter(audit_log::seq.lt(seq))
        .order(audit_log::seq.desc())
        .limit(2)
        .load(&mut app.connect())
        .expect("entries before the anchor");
    assert_eq!(before.len(), 2, "{before:?}");
    app.connect()
        .batch_execute(&format!(
            "DELETE FROM audit_log WHERE seq >= {}; \
             UPDATE audit_head SET seq = (SELECT MAX(seq) FROM audit_log), \
               hash = (SELECT hash FROM audit_log WHERE seq = (SELECT MAX(seq) FROM audit_log)) \
             WHERE id = 1;",
            before[0]
        ))
        .expect("truncate");
    let (ok, out) = app.cli(&["audit", "verify"]);
    assert!(ok, "{out}");
    // ...but not against the anchor kept elsewhere.
    let (ok, out) = app.cli(&["audit", "verify", "--anchor", &anchor]);
    assert!(!ok, "{out}");
    assert!(
        out.contains(&format!("entry {seq} is missing")) && out.contains("truncated"),
        "{out}"
    );

    // An entry with another hash than the anchored one (the chain was rebuilt).
    let other = format!("{}:{}", before[1], "f".repeat(64));
    let (ok, out) = app.cli(&["audit", "verify", "--anchor", &other]);
    assert!(!ok, "{out}");
    assert!(
        out.contains(&format!("entry {}", before[1])) && out.contains("rewritten"),
        "{out}"
    );
    // A malformed anchor is a usage error, not a pass.
    let (ok, out) = app.cli(&["audit", "verify", "--anchor", "12"]);
    assert!(!ok, "{out}");
}
