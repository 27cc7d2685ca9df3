//! The role × part matrix: a unique marker in every part of every record kind; every
//! demo role fetches every list and every detail; allowed markers must be there and
//! forbidden markers nowhere in any body.

use std::collections::{BTreeSet, HashMap};

use diesel::connection::SimpleConnection;
use reqwest::StatusCode;
use serde_json::json;

use crate::helpers::{spawn_app, TestApp, DEMO_USERS};

pub struct World {
    /// record key → id
    pub ids: HashMap<&'static str, String>,
}

async fn created(app: &TestApp, token: &str, path: &str, body: serde_json::Value) -> String {
    let r = app.post(path, token, &body).await;
    assert_eq!(r.status, StatusCode::CREATED, "{path}: {}", r.text);
    r.json["id"].as_str().expect("id").to_owned()
}

fn observation(place: &str, key: &str) -> serde_json::Value {
    json!({"place": place, "observed_at": "2026-11-20T22:00:00Z", "category": "drug_sale",
           "description": format!("M-{key}-NARR"), "persons": [{"description": format!("M-{key}-PERS"), "estimated_birth_year": 2009}]})
}

fn report(place: &str, key: &str) -> serde_json::Value {
    json!({"place": place, "title": format!("M-{key}-TITLE"), "sections": [
        {"audience": "general", "body": format!("M-{key}-GEN")},
        {"audience": "on_site", "body": format!("M-{key}-ONS")},
        {"audience": "police_only", "body": format!("M-{key}-POL")}]})
}

fn referral(org: &str, place: Option<&str>, key: &str) -> serde_json::Value {
    json!({"receiving_organization": org, "place": place,
           "child": {"name": format!("M-{key}-CHILD"), "estimated_birth_year": 2011},
           "concern": format!("M-{key}-CONCERN")})
}

pub async fn build_world(app: &TestApp) -> World {
    let t = |u: &'static str| app.token(u);
    let (vakt1, vakt2, falt1, polis1, soc1, admin) = (
        t("vakt1").await,
        t("vakt2").await,
        t("falt1").await,
        t("polis1").await,
        t("soc1").await,
        t("admin1").await,
    );
    let mut ids = HashMap::new();
    ids.insert(
        "O1",
        created(
            app,
            &vakt1,
            "/api/v1/observations",
            observation("sergels-torg", "O1"),
        )
        .await,
    );
    ids.insert(
        "O2",
        created(
            app,
            &vakt2,
            "/api/v1/observations",
            observation("hasselby-torg", "O2"),
        )
        .await,
    );
    ids.insert(
        "O3",
        created(
            app,
            &falt1,
            "/api/v1/observations",
            observation("sergels-torg", "O3"),
        )
        .await,
    );
    ids.insert(
        "O4",
        created(
            app,
            &polis1,
            "/api/v1/observations",
            observation("hasselby-torg", "O4"),
        )
        .await,
    );
    ids.insert(
        "R1",
        created(
            app,
            &polis1,
            "/api/v1/situation-reports",
            report("sergels-torg", "R1"),
        )
        .await,
    );
    ids.insert(
        "R2",
        created(
            app,
            &polis1,
            "/api/v1/situation-reports",
            report("hasselby-torg", "R2"),
        )
        .await,
    );

    // A second social-services organisation, to show the receiving-organisation rule.
    let r = app
        .post("/api/v1/admin/organizations", &admin, &json!({"id": "socialtjansten-hasselby", "name": "Socialtjänsten Hässelby", "kind": "social_services", "mandated_reporter": true}))
        .await;
    assert_eq!(r.status, StatusCode::CREATED, "{}", r.text);

    let soc = "socialtjansten-norrmalm";
    ids.insert(
        "F1",
        created(
            app,
            &polis1,
            "/api/v1/referrals",
            referral(soc, Some("sergels-torg"), "F1"),
        )
        .await,
    );
    ids.insert(
        "F2",
        created(
            app,
            &vakt1,
            "/api/v1/referrals",
            referral(soc, Some("sergels-torg"), "F2"),
        )
        .await,
    );
    ids.insert(
        "F3",
        created(app, &falt1, "/api/v1/referrals", referral(soc, None, "F3")).await,
    );
    ids.insert(
        "F4",
        created(
            app,
            &polis1,
            "/api/v1/referrals",
            referral("socialtjansten-hasselby", Some("hasselby-torg"), "F4"),
        )
        .await,
    );
    for (key, status) in [
        ("F1", "investigation_opened"),
        ("F2", "not_opened"),
        ("F3", "already_ongoing"),
    ] {
        let r = app
            .post(
                &format!("/api/v1/referrals/{}/feedback", ids[key]),
                &soc1,
                &json!({"status": status, "note": format!("M-{key}-NOTE")}),
            )
            .await;
        assert_eq!(r.status, StatusCode::CREATED, "{}", r.text);
    }
    for key in ["F1", "F3"] {
        let r = app
            .post(
                &format!("/api/v1/referrals/{}/consents", ids[key]),
                &soc1,
                &json!({"given_by": "guardian", "scope": format!("M-{key}-SCOPE"), "valid_until": "2099-01-01T00:00:00Z", "released_details": format!("M-{key}-REL")}),
            )
            .await;
        assert_eq!(r.status, StatusCode::CREATED, "{}", r.text);
    }
    // F3's consent has run out: its details must no longer reach the reporter.
    app.connect()
        .batch_execute(&format!(
            "UPDATE referral_consents SET valid_until = 1 WHERE referral_id = '{}'",
            ids["F3"]
        ))
        .unwrap();
    World { ids }
}

/// Every marker, and the display names that only the reporter-identity part carries.
pub fn all_markers() -> Vec<String> {
    let mut m = Vec::new();
    for o in ["O1", "O2", "O3", "O4"] {
        m.push(format!("M-{o}-NARR"));
        m.push(format!("M-{o}-PERS"));
    }
    for r in ["R1", "R2"] {
        for s in ["TITLE", "GEN", "ONS", "POL"] {
            m.push(format!("M-{r}-{s}"));
        }
    }
    for f in ["F1", "F2", "F3", "F4"] {
        for s in ["CHILD", "CONCERN", "NOTE", "REL", "SCOPE"] {
            m.push(format!("M-{f}-{s}"));
        }
    }
    for s in [
        "investigation_opened",
        "not_opened",
        "already_ongoing",
        "Vakt Ett",
        "Vakt Två",
        "Fältassistent Ett",
        "Polis Ett",
    ] {
        m.push(s.to_owned());
    }
    m
}

fn add(see: &mut BTreeSet<String>, keys: &[&str]) {
    for k in keys {
        see.insert((*k).to_owned());
    }
}

/// What each role must see (markers) and which records it may see at all.
pub fn expected(user: &str) -> (BTreeSet<String>, BTreeSet<&'static str>) {
    let mut see = BTreeSet::new();
    let mut records = BTreeSet::new();

    let obs_all = |o: &str| [format!("M-{o}-NARR"), format!("M-{o}-PERS")];
    match user {
        "polis1" | "analytiker1" => {
            for o in ["O1", "O2", "O3", "O4"] {
                for m in obs_all(o) {
                    see.insert(m);
                }
            }
            add(
                &mut see,
                &["Vakt Ett", "Vakt Två", "Fältassistent Ett", "Polis Ett"],
            );
            for r in ["R1", "R2"] {
                for s in ["TITLE", "GEN", "ONS", "POL"] {
                    see.insert(format!("M-{r}-{s}"));
                }
            }
            records.extend(["O1", "O2", "O3", "O4", "R1", "R2"]);
            if user == "polis1" {
                add(
                    &mut see,
                    &[
                        "M-F1-CHILD",
                        "M-F1-CONCERN",
                        "M-F1-REL",
                        "M-F1-SCOPE",
                        "investigation_opened",
                        "M-F4-CHILD",
                        "M-F4-CONCERN",
                    ],
                );
                records.extend(["F1", "F4"]);
            }
        }
        "vakt1" => {
            add(
                &mut see,
                &[
                    "M-O1-NARR",
                    "M-O1-PERS",
                    "Vakt Ett",
                    "M-R1-TITLE",
                    "M-R1-GEN",
                    "M-R1-ONS",
                    "M-R2-TITLE",
                    "M-R2-GEN",
                ],
            );
            add(&mut see, &["M-F2-CHILD", "M-F2-CONCERN"]);
            records.extend(["O1", "O3", "R1", "R2", "F2"]);
        }
        "vakt2" => {
            add(
                &mut see,
                &[
                    "M-O2-NARR",
                    "M-O2-PERS",
                    "Vakt Två",
                    "M-R2-TITLE",
                    "M-R2-GEN",
                    "M-R2-ONS",
                    "M-R1-TITLE",
                    "M-R1-GEN",
                ],
            );
            records.extend(["O2", "O4", "R1", "R2"]);
        }
        "soc1" => {
            add(
                &mut see,
                &[
                    "M-R1-TITLE",
                    "M-R1-GEN",
                    "M-R1-ONS",
                    "M-R2-TITLE",
                    "M-R2-GEN",
                ],
            );
            for f in ["F1", "F2", "F3"] {
                for s in ["CHILD", "CONCERN", "NOTE", "REL", "SCOPE"] {
                    see.insert(format!("M-{f}-{s}"));
                }
            }
            see.remove("M-F2-REL");
            see.remove("M-F2-SCOPE");
            add(
                &mut see,
                &["investigation_opened", "not_opened", "already_ongoing"],
            );
            records.extend(["O1", "O2", "O3", "O4", "R1", "R2", "F1", "F2", "F3"]);
        }
        "falt1" => {
            add(
                &mut see,
                &[
                    "M-R1-TITLE",
                    "M-R1-GEN",
                    "M-R1-ONS",
                    "M-R2-TITLE",
                    "M-R2-GEN",
                ],
            );
            add(&mut see, &["M-F3-CHILD", "M-F3-CONCERN", "already_ongoing"]);
            records.extend(["O1", "O2", "O3", "O4", "R1", "R2", "F3"]);
        }
        "samordnare1" => {
            add(
                &mut see,
                &["M-R1-TITLE", "M-R1-GEN", "M-R2-TITLE", "M-R2-GEN"],
            );
            records.extend(["O1", "O2", "O3", "O4", "R1", "R2"]);
        }
        _ => {}
    }
    (see, records)
}

pub fn path_of(key: &str, id: &str) -> String {
    match &key[..1] {
        "O" => format!("/api/v1/observations/{id}"),
        "R" => format!("/api/v1/situation-reports/{id}"),
        _ => format!("/api/v1/referrals/{id}"),
    }
}

#[tokio::test]
async fn every_role_sees_exactly_the_parts_the_rules_allow() {
    let app = spawn_app().await;
    let world = build_world(&app).await;
    let markers = all_markers();
    for user in DEMO_USERS {
        let token = app.token(user).await;
        let (see, records) = expected(user);
        let mut bodies: Vec<(String, String)> = Vec::new();
        let mut listed: BTreeSet<String> = BTreeSet::new();
        for list in [
            "/api/v1/observations",
            "/api/v1/situation-reports",
            "/api/v1/referrals",
        ] {
            for q in ["?limit=100", "?place=sergels-torg", "?place=hasselby-torg"] {
                let r = app.get(&format!("{list}{q}"), &token).await;
                assert_eq!(r.status, StatusCode::OK, "{user} {list}{q}");
                for item in r.json["items"].as_array().unwrap() {
                    listed.insert(item["id"].as_str().unwrap().to_owned());
                }
                bodies.push((format!("{list}{q}"), r.text));
            }
        }
        for (key, id) in &world.ids {
            let path = path_of(key, id);
            let r = app.get(&path, &token).await;
            let visible = records.contains(key);
            let want = if visible {
                StatusCode::OK
            } else {
                StatusCode::NOT_FOUND
            };
            assert_eq!(r.status, want, "{user} GET {key}: {}", r.text);
            assert_eq!(listed.contains(id), visible, "{user} list shows {key}?");
            bodies.push((path, r.text));
        }
        for m in &markers {
            let holders: Vec<&str> = bodies
                .iter()
                .filter(|(_, b)| b.contains(m.as_str()))
                .map(|(p, _)| p.as_str())
                .collect();
            if see.contains(m) {
                assert!(!holders.is_empty(), "{user} should see {m}");
            } else {
                assert!(
                    holders.is_empty(),
                    "{user} must not see {m}, but {holders:?} show it"
                );
            }
        }
    }
}

#[tokio::test]
async fn a_guard_sees_other_guards_only_under_a_pseudonym_and_the_police_can_resolve_it() {
    let app = spawn_app().await;
    let world = build_world(&app).await;
    let soc = app.token("soc1").await;
    let o1 = app.get(&path_of("O1", &world.ids["O1"]), &soc).await;
    let pseudonym = o1.json["reporter_pseudonym"].as_str().unwrap().to_owned();
    assert!(
        pseudonym.starts_with("OV-") && pseudonym.len() == 7,
        "{pseudonym}"
    );
    assert!(o1.json.get("reporter").is_none() && o1.json.get("description").is_none());
    let polis = app.token("polis1").await;
    let seen = app.get(&path_of("O1", &world.ids["O1"]), &polis).await;
    assert_eq!(seen.json["reporter_pseudonym"], pseudonym.as_str());
    assert_eq!(seen.json["reporter"]["username"], "vakt1");
    // Stable: the same guard has the same pseudonym on every record.
    let vakt1 = app.token("vakt1").await;
    let again = created(
        &app,
        &vakt1,
        "/api/v1/observations",
        observation("sergels-torg", "X"),
    )
    .await;
    assert_eq!(
        app.get(&path_of("O", &again), &soc).await.json["reporter_pseudonym"],
        pseudonym.as_str()
    );
}

#[tokio::test]
async fn a_hidden_section_leaves_no_trace() {
    let app = spawn_app().await;
    let world = build_world(&app).await;
    let coordinator = app.token("samordnare1").await;
    let r = app
        .get(&path_of("R1", &world.ids["R1"]), &coordinator)
        .await;
    let sections = r.json["sections"].as_array().unwrap();
    assert_eq!(sections.len(), 1);
    assert_eq!(sections[0]["audience"], "general");
    assert!(
        !r.text.contains("police_only") && !r.text.contains("on_site"),
        "{}",
        r.text
    );
}

#[tokio::test]
async fn writes_are_refused_where_the_rules_do_not_allow_them_and_change_nothing() {
    let app = spawn_app().await;
    let world = build_world(&app).await;
    let cases: Vec<(&str, &str, serde_json::Value)> = vec![
        (
            "vakt1",
            "/api/v1/observations",
            observation("hasselby-torg", "W"),
        ),
        (
            "soc1",
            "/api/v1/observations",
            observation("sergels-torg", "W"),
        ),
        (
            "samordnare1",
            "/api/v1/observations",
            observation("sergels-torg", "W"),
        ),
        (
            "revisor1",
            "/api/v1/observations",
            observation("sergels-torg", "W"),
        ),
        (
            "admin1",
            "/api/v1/observations",
            observation("sergels-torg", "W"),
        ),
        (
            "vakt1",
            "/api/v1/situation-reports",
            report("sergels-torg", "W"),
        ),
        (
            "soc1",
            "/api/v1/situation-reports",
            report("sergels-torg", "W"),
        ),
        (
            "samordnare1",
            "/api/v1/situation-reports",
            report("sergels-torg", "W"),
        ),
        (
            "revisor1",
            "/api/v1/referrals",
            referral("socialtjansten-norrmalm", None, "W"),
        ),
        (
            "admin1",
            "/api/v1/referrals",
            referral("socialtjansten-norrmalm", None, "W"),
        ),
        // Releasing to partners is an officer's decision: an analyst posts police-only
        // sections only.
        (
            "analytiker1",
            "/api/v1/situation-reports",
            report("sergels-torg", "W"),
        ),
    ];
    for (user, path, body) in cases {
        let token = app.token(user).await;
        let r = app.post(path, &token, &body).await;
        assert_eq!(
            r.status,
            StatusCode::FORBIDDEN,
            "{user} POST {path}: {}",
            r.text
        );
    }
    // Feedback and consents: only social workers of the receiving organisation. A
    // referral the user cannot see at all is a 404.
    let f1 = &world.ids["F1"];
    let f4 = &world.ids["F4"];
    for (user, id, want) in [
        ("polis1", f1, StatusCode::FORBIDDEN),
        ("vakt1", f1, StatusCode::NOT_FOUND),
        ("soc1", f4, StatusCode::NOT_FOUND),
        ("samordnare1", f1, StatusCode::NOT_FOUND),
    ] {
        let token = app.token(user).await;
        let r = app
            .post(
                &format!("/api/v1/referrals/{id}/feedback"),
                &token,
                &json!({"status": "withheld"}),
            )
            .await;
        assert_eq!(r.status, want, "{user} feedback");
        let r = app
            .post(
                &format!("/api/v1/referrals/{id}/consents"),
                &token,
                &json!({"given_by": "youth", "scope": "x", "valid_until": "2099-01-01T00:00:00Z", "released_details": "y"}),
            )
            .await;
        assert_eq!(r.status, want, "{user} consent");
    }
    // Nothing changed: the police see the same lists as before.
    let polis = app.token("polis1").await;
    assert_eq!(
        app.get("/api/v1/observations", &polis).await.json["items"]
            .as_array()
            .unwrap()
            .len(),
        4
    );
    assert_eq!(
        app.get("/api/v1/situation-reports", &polis).await.json["items"]
            .as_array()
            .unwrap()
            .len(),
        2
    );
    assert_eq!(
        app.get(&format!("/api/v1/referrals/{f1}"), &polis)
            .await
            .json["status"],
        "investigation_opened"
    );
}

#[tokio::test]
async fn lists_paginate_newest_first_with_a_cursor() {
    let app = spawn_app().await;
    let vakt1 = app.token("vakt1").await;
    let mut ids = Vec::new();
    for minute in 0..7 {
        let mut body = observation("sergels-torg", "P");
        body["observed_at"] = json!(format!("2026-11-20T21:{minute:02}:00Z"));
        ids.push(created(&app, &vakt1, "/api/v1/observations", body).await);
    }
    let polis = app.token("polis1").await;
    let mut seen = Vec::new();
    let mut cursor: Option<String> = None;
    loop {
        let q = match &cursor {
            Some(c) => format!("/api/v1/observations?limit=3&cursor={c}"),
            None => "/api/v1/observations?limit=3".into(),
        };
        let r = app.get(&q, &polis).await;
        for item in r.json["items"].as_array().unwrap() {
            seen.push(item["id"].as_str().unwrap().to_owned());
        }
        match r.json["next_cursor"].as_str() {
            Some(c) => cursor = Some(c.to_owned()),
            None => break,
        }
    }
    ids.reverse();
    assert_eq!(seen, ids);
    let since = app
        .get("/api/v1/observations?since=2026-11-20T21:05:00Z", &polis)
        .await;
    assert_eq!(since.json["items"].as_array().unwrap().len(), 2);
    let elsewhere = app
        .get("/api/v1/observations?place=hasselby-torg", &vakt1)
        .await;
    assert_eq!(elsewhere.status, StatusCode::OK);
    assert_eq!(elsewhere.json["items"], json!([]));
}
