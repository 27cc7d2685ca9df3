//! Roles cannot be bent, the admin cannot resolve pseudonyms, throttling holds under
//! parallel guessing, the audit trail keeps no text nobody meant to give, and the rules
//! follow the brief (titles, releases, consent recipients and withdrawal, who files).

use std::collections::HashMap;

use diesel::connection::SimpleConnection;
use diesel::prelude::*;
use reqwest::StatusCode;
use serde_json::{json, Value};

use crate::helpers::{spawn_app, spawn_with, TestApp, PASSWORD};

const NOT_FOUND: &str = r#"{"error":"not_found","message":"Not found."}"#;

/// The audit entries an auditor finds for this query, newest first.
async fn audit(app: &TestApp, query: &str) -> Vec<Value> {
    let auditor = app.token("revisor1").await;
    let r = app
        .get(&format!("/api/v1/audit?limit=100&{query}"), &auditor)
        .await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.text);
    r.json["items"].as_array().unwrap().clone()
}

// ---- 2. Roles cannot be bent ------------------------------------------------------

#[tokio::test]
async fn nobody_changes_their_own_role_organisation_places_or_disabled_flag() {
    let app = spawn_app().await;
    let admin = app.token("admin1").await;
    let before = app.get("/api/v1/admin/users/admin1", &admin).await.text;
    for change in [
        json!({"role": "police_officer"}),
        json!({"organization": "polisen-stockholm"}),
        json!({"places": ["sergels-torg"]}),
        json!({"disabled": true}),
        json!({"role": "auditor", "display_name": "Someone else"}),
    ] {
        let r = app
            .patch("/api/v1/admin/users/admin1", &admin, &change)
            .await;
        assert_eq!(r.status, StatusCode::FORBIDDEN, "{change}: {}", r.text);
    }
    assert_eq!(
        app.get("/api/v1/admin/users/admin1", &admin).await.text,
        before
    );
    let refused = audit(&app, "action=admin_update&outcome=denied").await;
    assert_eq!(refused.len(), 5, "{refused:?}");
    // Their own name is theirs to change.
    let r = app
        .patch(
            "/api/v1/admin/users/admin1",
            &admin,
            &json!({"display_name": "Admin Ett B"}),
        )
        .await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.text);
    // Another admin may change this one's access.
    let r = app
        .post(
            "/api/v1/admin/users",
            &admin,
            &json!({"username": "admin2", "display_name": "Admin Två", "organization": "trygghetssamordning-stockholm",
                    "role": "admin", "places": [], "password": "a-long-password-for-admin2"}),
        )
        .await;
    assert_eq!(r.status, StatusCode::CREATED, "{}", r.text);
    let admin2 = app
        .login_full("admin2", "a-long-password-for-admin2")
        .await
        .json["access_token"]
        .as_str()
        .unwrap()
        .to_owned();
    let r = app
        .patch(
            "/api/v1/admin/users/admin1",
            &admin2,
            &json!({"places": ["sergels-torg"]}),
        )
        .await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.text);
}

#[tokio::test]
async fn a_role_its_organisation_cannot_hold_is_refused_with_the_reason() {
    let app = spawn_app().await;
    let admin = app.token("admin1").await;
    let r = app
        .post(
            "/api/v1/admin/users",
            &admin,
            &json!({"username": "fakepolis", "display_name": "Fake", "organization": "ordningsvakter-stockholm",
                    "role": "police_officer", "places": ["sergels-torg"], "password": "a-long-password-for-fake"}),
        )
        .await;
    assert_eq!(r.status, StatusCode::BAD_REQUEST, "{}", r.text);
    assert_eq!(r.json["error"], "role_not_for_organization");
    let message = r.json["message"].as_str().unwrap();
    assert!(
        message.contains("police") && message.contains("security"),
        "{message}"
    );
    assert_eq!(
        app.get("/api/v1/admin/users/fakepolis", &admin)
            .await
            .status,
        StatusCode::NOT_FOUND
    );
    for (user, change) in [
        ("vakt1", json!({"role": "police_officer"})),
        (
            "polis1",
            json!({"organization": "ordningsvakter-stockholm"}),
        ),
        ("soc1", json!({"role": "coordinator"})),
    ] {
        let before = app
            .get(&format!("/api/v1/admin/users/{user}"), &admin)
            .await
            .text;
        let r = app
            .patch(&format!("/api/v1/admin/users/{user}"), &admin, &change)
            .await;
        assert_eq!(
            r.status,
            StatusCode::BAD_REQUEST,
            "{user} {change}: {}",
            r.text
        );
        assert_eq!(r.json["error"], "role_not_for_organization");
        assert_eq!(
            app.get(&format!("/api/v1/admin/users/{user}"), &admin)
                .await
                .text,
            before
        );
    }
    // Municipal guards are guards too; the command line follows the same rule.
    let r = app
        .post(
            "/api/v1/admin/users",
            &admin,
            &json!({"username": "stadsvakt", "display_name": "Stadsvakt", "organization": "trygghetssamordning-stockholm",
                    "role": "guard", "places": ["sergels-torg"], "password": "a-long-password-for-stadsvakt"}),
        )
        .await;
    assert_eq!(r.status, StatusCode::CREATED, "{}", r.text);
    let url = match &app.db_url {
        samverkan::storage::DatabaseUrl::Sqlite(p) => p.display().to_string(),
        samverkan::storage::DatabaseUrl::Postgres(u) => u.expose().to_owned(),
    };
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_samverkan"))
        .args([
            "admin",
            "create-user",
            "--username",
            "clipolis",
            "--display-name",
            "C",
            "--organization",
            "ordningsvakter-stockholm",
            "--role",
            "police_analyst",
        ])
        .env("DATABASE_URL", url)
        .env("SAMVERKAN_NEW_PASSWORD", "a-long-password-for-cli")
        .env("SAMVERKAN_LOG_FORMAT", "text")
        .env("RUST_LOG", "warn")
        .output()
        .unwrap();
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("organisation of kind police"));
}

#[tokio::test]
async fn a_police_role_outside_a_police_organisation_sees_no_more_than_its_guard_colleagues() {
    let app = spawn_app().await;
    let world = crate::matrix::build_world(&app).await;
    // An account bent behind the API's back: vakt1 made a police officer, still in the
    // security company.
    app.connect()
        .batch_execute("UPDATE users SET role = 'police_officer' WHERE username = 'vakt1'")
        .unwrap();
    let bent = app.token("vakt1").await;
    // Another guard's observation at a place vakt1 is not assigned to: nothing.
    let r = app
        .get(&format!("/api/v1/observations/{}", world.ids["O2"]), &bent)
        .await;
    assert_eq!(r.text, NOT_FOUND);
    // Another reporter's observation at vakt1's place: no narrative, persons or identity.
    let r = app
        .get(&format!("/api/v1/observations/{}", world.ids["O3"]), &bent)
        .await;
    assert!(
        !r.text.contains("M-O3-NARR") && !r.text.contains("M-O3-PERS"),
        "{}",
        r.text
    );
    assert!(r.json.get("reporter").is_none(), "{}", r.text);
    // No police-only section, anywhere; no lägesbild posted in the police's name.
    let lists = app.get("/api/v1/situation-reports?limit=100", &bent).await;
    assert!(!lists.text.contains("-POL"), "{}", lists.text);
    let r = app
        .post(
            "/api/v1/situation-reports",
            &bent,
            &json!({"place": "sergels-torg", "title": "bent", "sections": [{"audience": "general", "body": "x"}]}),
        )
        .await;
    assert_eq!(r.status, StatusCode::FORBIDDEN);
    // The administrator can take such an account's access away, not give it back.
    let admin = app.token("admin1").await;
    let r = app
        .patch(
            "/api/v1/admin/users/vakt1",
            &admin,
            &json!({"disabled": true}),
        )
        .await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.text);
    assert_eq!(
        app.get("/api/v1/me", &bent).await.status,
        StatusCode::UNAUTHORIZED
    );
    let r = app
        .patch(
            "/api/v1/admin/users/vakt1",
            &admin,
            &json!({"disabled": false}),
        )
        .await;
    assert_eq!(r.status, StatusCode::BAD_REQUEST, "{}", r.text);
    assert_eq!(r.json["error"], "role_not_for_organization");
}

#[tokio::test]
async fn every_administrative_change_is_audited_with_before_and_after() {
    let app = spawn_app().await;
    let admin = app.token("admin1").await;
    let r = app
        .patch(
            "/api/v1/admin/users/vakt2",
            &admin,
            &json!({"places": ["hasselby-torg", "sergels-torg"], "display_name": "Vakt Två B",
                    "password": "a-brand-new-password-for-vakt2"}),
        )
        .await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.text);
    let r = app
        .patch(
            "/api/v1/admin/organizations/ordningsvakter-stockholm",
            &admin,
            &json!({"mandated_reporter": true}),
        )
        .await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.text);
    let r = app
        .post(
            "/api/v1/admin/places",
            &admin,
            &json!({"id": "medborgarplatsen", "name": "Medborgarplatsen", "basomrade": "180010"}),
        )
        .await;
    assert_eq!(r.status, StatusCode::CREATED);
    let entries = audit(&app, "actor=admin1").await;
    let find = |action: &str, id: &str| {
        entries
            .iter()
            .find(|e| e["action"] == action && e["record_id"] == id)
            .unwrap_or_else(|| panic!("no {action} of {id} in {entries:?}"))
            .clone()
    };
    let user = find("admin_update", "vakt2");
    assert_eq!(
        user["changes"]["before"]["places"],
        json!(["hasselby-torg"])
    );
    assert_eq!(
        user["changes"]["after"]["places"],
        json!(["hasselby-torg", "sergels-torg"])
    );
    assert_eq!(user["changes"]["before"]["display_name"], "Vakt Två");
    assert_eq!(user["changes"]["after"]["display_name"], "Vakt Två B");
    assert_eq!(user["changes"]["after"]["password"], "changed");
    assert!(
        user["changes"]["after"].get("role").is_none(),
        "unchanged fields stay out"
    );
    let org = find("admin_update", "ordningsvakter-stockholm");
    assert_eq!(org["changes"]["before"]["mandated_reporter"], false);
    assert_eq!(org["changes"]["after"]["mandated_reporter"], true);
    let place = find("admin_create", "medborgarplatsen");
    assert_eq!(place["changes"]["after"]["basomrade"], "180010");
    // No password, no hash, anywhere in the trail or its export.
    let auditor = app.token("revisor1").await;
    let export = app.get("/api/v1/audit/export?actor=admin1", &auditor).await;
    for text in [&export.text, &serde_json::to_string(&entries).unwrap()] {
        assert!(!text.contains("argon2") && !text.contains("a-brand-new-password"));
    }
    // The chain still verifies with the changes in it.
    let (ok, out) = app.cli(&["audit", "verify"]);
    assert!(ok, "{out}");
}

// ---- 3. The admin cannot resolve pseudonyms -----------------------------------------

#[tokio::test]
async fn no_admin_view_export_or_command_shows_a_pseudonym() {
    let app = spawn_app().await;
    let vakt1 = app.token("vakt1").await;
    let pseudonym = app.get("/api/v1/me", &vakt1).await.json["pseudonym"]
        .as_str()
        .unwrap()
        .to_owned();
    assert!(pseudonym.starts_with("OV-"));
    let admin = app.token("admin1").await;
    for path in ["/api/v1/admin/users", "/api/v1/admin/users/vakt1"] {
        let r = app.get(path, &admin).await;
        assert_eq!(r.status, StatusCode::OK);
        assert!(
            !r.text.contains(&pseudonym) && !r.text.contains("pseudonym"),
            "{path}: {}",
            r.text
        );
    }
    let r = app
        .post(
            "/api/v1/admin/users",
            &admin,
            &json!({"username": "vakt7", "display_name": "Vakt Sju", "organization": "ordningsvakter-stockholm",
                    "role": "guard", "places": [], "password": "a-long-password-for-vakt7"}),
        )
        .await;
    assert_eq!(r.status, StatusCode::CREATED);
    assert!(
        !r.text.contains("pseudonym") && !r.text.contains("OV-"),
        "{}",
        r.text
    );
    let (ok, out) = app.cli(&["admin", "list-users"]);
    assert!(ok, "{out}");
    assert!(out.contains("vakt1") && !out.contains(&pseudonym), "{out}");
    assert!(!out.contains("OV-") && !out.contains("PO-"), "{out}");
}

// ---- 5. Throttling holds under parallel guessing ------------------------------------

/// Sends every attempt at once, taking turns between the given instances.
async fn parallel_logins(
    apps: &[&TestApp],
    attempts: Vec<(&'static str, String)>,
) -> Vec<StatusCode> {
    let mut tasks = Vec::new();
    for (i, (user, password)) in attempts.into_iter().enumerate() {
        let app = apps[i % apps.len()];
        let (client, url) = (app.client.clone(), app.url("/api/v1/auth/login"));
        tasks.push(tokio::spawn(async move {
            client
                .post(url)
                .json(&json!({"username": user, "password": password}))
                .send()
                .await
                .unwrap()
                .status()
        }));
    }
    let mut out = Vec::new();
    for t in tasks {
        out.push(t.await.unwrap());
    }
    out
}

#[tokio::test]
async fn at_most_the_allowed_number_of_passwords_are_checked_however_many_arrive_at_once() {
    let app = spawn_app().await;
    // A second instance on the same database: the count is the database's, not a process's.
    let other = tokio::task::spawn_blocking({
        let url = app.db_url.clone();
        move || crate::helpers::start(crate::helpers::test_settings(url))
    })
    .await
    .unwrap();
    // Thirty wrong passwords at once for one username, over both instances: five are
    // checked, the rest wait.
    let wrong = (0..30)
        .map(|i| ("vakt1", format!("wrong-password-{i}")))
        .collect();
    let statuses = parallel_logins(&[&app, &other], wrong).await;
    let count = |s: StatusCode| statuses.iter().filter(|x| **x == s).count();
    assert_eq!(count(StatusCode::UNAUTHORIZED), 5, "{statuses:?}");
    assert_eq!(count(StatusCode::TOO_MANY_REQUESTS), 25, "{statuses:?}");
    // The right password among fourteen wrong ones: still at most five are checked, so it
    // gets in only if it was among them.
    let mut mixed: Vec<(&'static str, String)> = (0..14)
        .map(|i| ("soc1", format!("wrong-password-{i}")))
        .collect();
    mixed.insert(7, ("soc1", PASSWORD.to_owned()));
    let statuses = parallel_logins(&[&app, &other], mixed).await;
    let checked = statuses
        .iter()
        .filter(|s| **s == StatusCode::UNAUTHORIZED || **s == StatusCode::OK)
        .count();
    // The right password takes back its own attempt, which frees one place if it
    // finishes before the others are counted.
    assert!(checked <= 6, "{statuses:?}");
    assert!(
        statuses.iter().all(|s| [
            StatusCode::UNAUTHORIZED,
            StatusCode::OK,
            StatusCode::TOO_MANY_REQUESTS
        ]
        .contains(s)),
        "{statuses:?}"
    );
    // Every refusal is on record; the throttle store holds no typed name.
    let throttled = audit(&app, "action=login&outcome=throttled").await;
    assert!(throttled.len() >= 25, "{}", throttled.len());
}

// ---- 6. The audit trail stores no text the user did not mean to give ------------------

#[tokio::test]
async fn a_name_that_is_no_account_is_kept_only_as_a_fingerprint() {
    let app = spawn_app().await;
    // A password typed into the username field.
    let typed = "Hemligt-Lösen-2026";
    for _ in 0..2 {
        let r = app.login_full(typed, "anything").await;
        assert_eq!(r.status, StatusCode::UNAUTHORIZED);
    }
    let entries = audit(&app, "action=login&outcome=failed").await;
    let text = serde_json::to_string(&entries).unwrap();
    assert!(
        !text.to_lowercase().contains(&typed.to_lowercase()),
        "{text}"
    );
    let ids: Vec<&str> = entries
        .iter()
        .filter_map(|e| e["record_id"].as_str())
        .filter(|id| id.starts_with("unknown:"))
        .collect();
    // The same name twice: the same fingerprint, so repeated attempts still show.
    assert_eq!(ids.len(), 2, "{entries:?}");
    assert_eq!(ids[0], ids[1]);
    // Nor in the throttling store.
    let keys: Vec<String> = {
        use samverkan::storage::schema::login_failures;
        login_failures::table
            .select(login_failures::throttle_key)
            .load(&mut app.connect())
            .unwrap()
    };
    assert!(!keys.is_empty());
    assert!(
        keys.iter().all(|k| !k.to_lowercase().contains("hemligt")),
        "{keys:?}"
    );
    // A real account is named by its username.
    let r = app.login_full("vakt1", "wrong-password").await;
    assert_eq!(r.status, StatusCode::UNAUTHORIZED);
    let named = audit(&app, "action=login&actor=vakt1").await;
    assert_eq!(named[0]["record_id"], "vakt1");
}

#[tokio::test]
async fn a_purpose_is_short_plain_text_or_the_request_is_refused() {
    let app = spawn_app().await;
    let vakt1 = app.token("vakt1").await;
    // A read that is audited whatever it finds (here: a refusal, 404).
    let path = format!("/api/v1/observations/{}", uuid::Uuid::now_v7());
    let with_purpose = |p: &str| {
        app.client
            .get(app.url(&path))
            .bearer_auth(&vakt1)
            .header("x-purpose", p)
    };
    for bad in [
        "x".repeat(121),
        "<script>alert(1)</script>".to_owned(),
        "namn: Kalle Anka, pnr 20100101-1234 \"citat\"".to_owned(),
        "tab\tin".to_owned(),
    ] {
        let r = app.send(with_purpose(&bad)).await;
        assert_eq!(r.status, StatusCode::BAD_REQUEST, "{bad}: {}", r.text);
        assert_eq!(r.json["error"], "invalid_purpose");
    }
    let good = "Ärende 2026-123: uppföljning (§ 14)";
    let r = app.send(with_purpose(good)).await;
    assert_eq!(r.status, StatusCode::NOT_FOUND, "{}", r.text);
    let entries = audit(&app, "actor=vakt1").await;
    assert!(entries.iter().any(|e| e["purpose"] == good), "{entries:?}");
    assert!(!serde_json::to_string(&entries).unwrap().contains("script"));
}

// ---- 7. Rules that follow the brief ---------------------------------------------------

#[tokio::test]
async fn a_report_with_only_police_only_sections_does_not_exist_for_partners() {
    let app = spawn_app().await;
    let polis = app.token("polis1").await;
    let r = app
        .post(
            "/api/v1/situation-reports",
            &polis,
            &json!({"place": "sergels-torg", "title": "Tillslag planerat torsdag",
                    "sections": [{"audience": "police_only", "body": "Källa säger torsdag."}]}),
        )
        .await;
    assert_eq!(r.status, StatusCode::CREATED, "{}", r.text);
    let id = r.json["id"].as_str().unwrap().to_owned();
    let never = uuid::Uuid::now_v7().to_string();
    for user in [
        "vakt1",
        "vakt2",
        "soc1",
        "falt1",
        "samordnare1",
        "revisor1",
        "admin1",
    ] {
        let token = app.token(user).await;
        let r = app
            .get(&format!("/api/v1/situation-reports/{id}"), &token)
            .await;
        let none = app
            .get(&format!("/api/v1/situation-reports/{never}"), &token)
            .await;
        assert_eq!((r.status, &r.text), (none.status, &none.text), "{user}");
        for q in ["", "?place=sergels-torg", "?current=true", "?limit=100"] {
            let l = app
                .get(&format!("/api/v1/situation-reports{q}"), &token)
                .await;
            assert!(
                !l.text.contains(&id) && !l.text.contains("Tillslag"),
                "{user} {q}"
            );
        }
    }
    for user in ["polis1", "analytiker1"] {
        let token = app.token(user).await;
        let r = app
            .get(&format!("/api/v1/situation-reports/{id}"), &token)
            .await;
        assert_eq!(r.json["title"], "Tillslag planerat torsdag", "{user}");
    }
    // With a general section beside it, partners see the title and that section only.
    let r = app
        .post(
            "/api/v1/situation-reports",
            &polis,
            &json!({"place": "sergels-torg", "title": "Kväll",
                    "sections": [{"audience": "police_only", "body": "HEMLIGT"}, {"audience": "general", "body": "Lugnt"}]}),
        )
        .await;
    let id = r.json["id"].as_str().unwrap().to_owned();
    let coordinator = app.token("samordnare1").await;
    let r = app
        .get(&format!("/api/v1/situation-reports/{id}"), &coordinator)
        .await;
    assert_eq!(r.json["title"], "Kväll");
    assert_eq!(
        r.json["sections"],
        json!([{"audience": "general", "body": "Lugnt"}])
    );
    // A report without sections would be shown to no one: refused.
    let r = app
        .post(
            "/api/v1/situation-reports",
            &polis,
            &json!({"place": "sergels-torg", "title": "Tom", "sections": []}),
        )
        .await;
    assert_eq!(r.status, StatusCode::BAD_REQUEST);
}

#[tokio::test]
async fn releasing_to_partners_is_an_officers_decision() {
    let app = spawn_app().await;
    let analyst = app.token("analytiker1").await;
    for audience in ["general", "on_site"] {
        let r = app
            .post(
                "/api/v1/situation-reports",
                &analyst,
                &json!({"place": "sergels-torg", "title": "Analys",
                        "sections": [{"audience": "police_only", "body": "intel"}, {"audience": audience, "body": "släppt"}]}),
            )
            .await;
        assert_eq!(r.status, StatusCode::FORBIDDEN, "{audience}: {}", r.text);
    }
    let r = app
        .post(
            "/api/v1/situation-reports",
            &analyst,
            &json!({"place": "hasselby-torg", "title": "Analys", "sections": [{"audience": "police_only", "body": "intel"}]}),
        )
        .await;
    assert_eq!(r.status, StatusCode::CREATED, "{}", r.text);
    let polis = app.token("polis1").await;
    let r = app
        .post(
            "/api/v1/situation-reports",
            &polis,
            &json!({"place": "hasselby-torg", "title": "Kväll", "sections": [{"audience": "on_site", "body": "släppt"}]}),
        )
        .await;
    assert_eq!(r.status, StatusCode::CREATED, "{}", r.text);
    let refused = audit(&app, "actor=analytiker1&action=create&outcome=denied").await;
    assert_eq!(refused.len(), 2);
}

/// A referral filed by polis1 to Socialtjänsten Norrmalm, and polis2, polis1's colleague.
async fn referral_and_colleague(app: &TestApp) -> (String, HashMap<&'static str, String>) {
    let admin = app.token("admin1").await;
    let r = app
        .post(
            "/api/v1/admin/users",
            &admin,
            &json!({"username": "polis2", "display_name": "Polis Två", "organization": "polisen-stockholm",
                    "role": "police_officer", "places": ["sergels-torg"], "password": "a-long-password-for-polis2"}),
        )
        .await;
    assert_eq!(r.status, StatusCode::CREATED, "{}", r.text);
    let mut tokens = HashMap::new();
    for user in ["polis1", "soc1", "vakt1", "falt1", "samordnare1"] {
        tokens.insert(user, app.token(user).await);
    }
    tokens.insert(
        "polis2",
        app.login_full("polis2", "a-long-password-for-polis2")
            .await
            .json["access_token"]
            .as_str()
            .unwrap()
            .to_owned(),
    );
    let r = app
        .post(
            "/api/v1/referrals",
            &tokens["polis1"],
            &json!({"receiving_organization": "socialtjansten-norrmalm", "place": "sergels-torg",
                    "child": {"alias": "Mille"}, "concern": "Köper tabletter."}),
        )
        .await;
    assert_eq!(r.status, StatusCode::CREATED);
    (r.json["id"].as_str().unwrap().to_owned(), tokens)
}

fn consent(details: &str, released_to: Option<&str>) -> Value {
    let mut c = json!({"given_by": "guardian", "scope": "planned measures", "valid_until": "2099-01-01T00:00:00Z",
                       "released_details": details});
    if let Some(to) = released_to {
        c["released_to"] = json!(to);
    }
    c
}

#[tokio::test]
async fn a_consent_releases_to_whom_it_names_until_it_is_withdrawn() {
    let app = spawn_app().await;
    let (id, t) = referral_and_colleague(&app).await;
    let path = format!("/api/v1/referrals/{id}");
    let r = app
        .post(
            &format!("{path}/consents"),
            &t["soc1"],
            &consent("TO-REPORTER", None),
        )
        .await;
    assert_eq!(r.status, StatusCode::CREATED, "{}", r.text);
    let r = app
        .post(
            &format!("{path}/consents"),
            &t["soc1"],
            &consent("TO-ORGANISATION", Some("reporter_organization")),
        )
        .await;
    assert_eq!(r.status, StatusCode::CREATED, "{}", r.text);
    let consents = r.json["consents"].as_array().unwrap().clone();
    let org_consent = consents
        .iter()
        .find(|c| c["released_to"] == "reporter_organization")
        .unwrap()["id"]
        .as_str()
        .unwrap()
        .to_owned();
    let bad = app
        .post(
            &format!("{path}/consents"),
            &t["soc1"],
            &consent("X", Some("everyone")),
        )
        .await;
    assert_eq!(bad.status, StatusCode::BAD_REQUEST);

    // The reporter sees both; the colleague only what was released to the organisation,
    // and nothing else of the referral.
    let own = app.get(&path, &t["polis1"]).await;
    assert!(own.text.contains("TO-REPORTER") && own.text.contains("TO-ORGANISATION"));
    let colleague = app.get(&path, &t["polis2"]).await;
    assert_eq!(colleague.status, StatusCode::OK, "{}", colleague.text);
    assert!(
        colleague.text.contains("TO-ORGANISATION"),
        "{}",
        colleague.text
    );
    assert!(!colleague.text.contains("TO-REPORTER") && !colleague.text.contains("Mille"));
    assert!(colleague.json.get("status").is_none() && colleague.json.get("child").is_none());
    let listed = app.get("/api/v1/referrals", &t["polis2"]).await;
    assert!(listed.text.contains(&id));
    // Others in other organisations: nothing.
    for user in ["vakt1", "falt1", "samordnare1"] {
        assert_eq!(app.get(&path, &t[user]).await.text, NOT_FOUND, "{user}");
    }

    // Only the receiving social services withdraw; others get a 403 (seen) or 404.
    let withdraw = format!("{path}/consents/{org_consent}/withdraw");
    let r = app.post(&withdraw, &t["polis1"], &json!({})).await;
    assert_eq!(r.status, StatusCode::FORBIDDEN, "{}", r.text);
    let r = app.post(&withdraw, &t["vakt1"], &json!({})).await;
    assert_eq!(r.text, NOT_FOUND);
    let r = app
        .post(
            &format!("{path}/consents/{}/withdraw", uuid::Uuid::now_v7()),
            &t["soc1"],
            &json!({}),
        )
        .await;
    assert_eq!(r.status, StatusCode::NOT_FOUND);
    let r = app.post(&withdraw, &t["soc1"], &json!({})).await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.text);
    let withdrawn = r.json["consents"]
        .as_array()
        .unwrap()
        .iter()
        .find(|c| c["id"] == org_consent.as_str())
        .unwrap()
        .clone();
    assert_eq!(withdrawn["withdrawn_by"], "soc1");

    // Hidden at once: the colleague sees nothing; the reporter only what is still valid.
    assert_eq!(app.get(&path, &t["polis2"]).await.text, NOT_FOUND);
    let own = app.get(&path, &t["polis1"]).await;
    assert!(own.text.contains("TO-REPORTER") && !own.text.contains("TO-ORGANISATION"));
    let entries = audit(&app, &format!("record={id}&action=consent_withdraw")).await;
    let outcomes: Vec<&str> = entries
        .iter()
        .filter_map(|e| e["outcome"].as_str())
        .collect();
    assert!(
        outcomes.contains(&"success") && outcomes.contains(&"denied"),
        "{outcomes:?}"
    );
}

#[tokio::test]
async fn every_case_role_files_an_orosanmalan_and_only_mandated_reporters_get_feedback() {
    let app = spawn_app().await;
    let soc = app.token("soc1").await;
    for user in ["analytiker1", "samordnare1", "vakt1"] {
        let token = app.token(user).await;
        let r = app
            .post(
                "/api/v1/referrals",
                &token,
                &json!({"receiving_organization": "socialtjansten-norrmalm",
                        "child": {"alias": format!("{user}-child")}, "concern": "worried"}),
            )
            .await;
        assert_eq!(r.status, StatusCode::CREATED, "{user}: {}", r.text);
        let id = r.json["id"].as_str().unwrap().to_owned();
        let f = app
            .post(
                &format!("/api/v1/referrals/{id}/feedback"),
                &soc,
                &json!({"status": "investigation_opened", "note": "internal"}),
            )
            .await;
        assert_eq!(f.status, StatusCode::CREATED);
        let seen = app.get(&format!("/api/v1/referrals/{id}"), &token).await;
        assert_eq!(seen.json["child"]["alias"], format!("{user}-child"));
        assert!(!seen.text.contains("internal"));
        // The police and the municipality are mandated reporters; the guards' company is not.
        let mandated = user != "vakt1";
        assert_eq!(
            seen.json.get("status").is_some(),
            mandated,
            "{user}: {}",
            seen.text
        );
    }
    for user in ["revisor1", "admin1"] {
        let token = app.token(user).await;
        let r = app
            .post(
                "/api/v1/referrals",
                &token,
                &json!({"receiving_organization": "socialtjansten-norrmalm", "child": {"alias": "x"}, "concern": "x"}),
            )
            .await;
        assert_eq!(r.status, StatusCode::FORBIDDEN, "{user}");
    }
}

#[tokio::test]
async fn every_part_an_observation_stores_is_asked_about() {
    // A deployment that lets guards file only an observation's core (and who filed it):
    // a description or persons are then refused, not stored unasked.
    let dir = tempfile::tempdir().unwrap();
    let source = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("policies");
    for entry in std::fs::read_dir(&source).unwrap() {
        let entry = entry.unwrap();
        std::fs::copy(entry.path(), dir.path().join(entry.file_name())).unwrap();
    }
    let file = dir.path().join("observations.cedar");
    let text = std::fs::read_to_string(&file).unwrap();
    let narrowed = text.replacen(
        "[Samverkan::Role::\"guard\", Samverkan::Role::\"outreach_worker\"] &&\n  resource.reporter == principal &&",
        "[Samverkan::Role::\"guard\", Samverkan::Role::\"outreach_worker\"] &&\n  resource.kind in [Samverkan::ObservationPartKind::\"core\", Samverkan::ObservationPartKind::\"reporter_identity\"] &&\n  resource.reporter == principal &&",
        1,
    );
    assert_ne!(narrowed, text);
    std::fs::write(&file, narrowed).unwrap();
    let path = dir.path().to_owned();
    let app = spawn_with(move |s| s.policy_dir = Some(path)).await;
    let vakt1 = app.token("vakt1").await;
    let body = |description: Option<&str>, persons: Value| {
        let mut b = json!({"place": "sergels-torg", "observed_at": "2026-11-20T22:00:00Z",
                           "category": "drug_sale", "persons": persons});
        if let Some(d) = description {
            b["description"] = json!(d);
        }
        b
    };
    let r = app
        .post(
            "/api/v1/observations",
            &vakt1,
            &body(Some("named people"), json!([])),
        )
        .await;
    assert_eq!(r.status, StatusCode::FORBIDDEN, "{}", r.text);
    let r = app
        .post(
            "/api/v1/observations",
            &vakt1,
            &body(None, json!([{"description": "red jacket"}])),
        )
        .await;
    assert_eq!(r.status, StatusCode::FORBIDDEN, "{}", r.text);
    let r = app
        .post("/api/v1/observations", &vakt1, &body(None, json!([])))
        .await;
    assert_eq!(r.status, StatusCode::CREATED, "{}", r.text);
    let polis = app.token("polis1").await;
    let all = app.get("/api/v1/observations", &polis).await;
    assert_eq!(all.json["items"].as_array().unwrap().len(), 1);
}
