//! Property test: random records at random places by random filers, read by every
//! role; whatever is generated, a marker reaches a reader exactly when the domain
//! table (encoded here independently of the policy files) allows it.

use std::collections::HashMap;
use std::sync::atomic::{AtomicUsize, Ordering};

use diesel::connection::SimpleConnection;
use proptest::prelude::*;
use proptest::test_runner::{Config, TestCaseError, TestRunner};
use reqwest::StatusCode;
use serde_json::json;

use crate::helpers::{spawn_app, TestApp, DEMO_USERS};

#[derive(Debug, Clone)]
enum Record {
    Observation {
        filer: &'static str,
        place: &'static str,
    },
    Report {
        filer: &'static str,
        place: &'static str,
        audiences: Vec<&'static str>,
    },
    Referral {
        filer: &'static str,
        feedback: Option<&'static str>,
        consent: Option<bool>,
    },
}

fn places(user: &str) -> &'static [&'static str] {
    match user {
        "polis1" | "analytiker1" => &["sergels-torg", "hasselby-torg"],
        "vakt2" => &["hasselby-torg"],
        "revisor1" | "admin1" => &[],
        _ => &["sergels-torg"],
    }
}

fn record() -> impl Strategy<Value = Record> {
    let obs = prop::sample::select(vec!["vakt1", "vakt2", "falt1", "polis1", "analytiker1"])
        .prop_flat_map(|filer| {
            prop::sample::select(places(filer).to_vec())
                .prop_map(move |place| Record::Observation { filer, place })
        });
    let report = (
        prop::sample::select(vec!["polis1", "analytiker1"]),
        prop::sample::select(vec!["sergels-torg", "hasselby-torg"]),
        prop::collection::vec(
            prop::sample::select(vec!["general", "on_site", "police_only"]),
            1..4,
        ),
    )
        .prop_map(|(filer, place, audiences)| Record::Report {
            // Releasing to partners is an officer's decision: an analyst posts
            // police-only sections only.
            filer: if audiences.iter().all(|a| *a == "police_only") {
                filer
            } else {
                "polis1"
            },
            place,
            audiences,
        });
    let referral = (
        prop::sample::select(vec![
            "polis1",
            "analytiker1",
            "vakt1",
            "vakt2",
            "falt1",
            "soc1",
            "samordnare1",
        ]),
        prop::option::of(prop::sample::select(vec![
            "investigation_opened",
            "not_opened",
            "already_ongoing",
            "withheld",
        ])),
        prop::option::of(any::<bool>()),
    )
        .prop_map(|(filer, feedback, consent)| Record::Referral {
            filer,
            feedback,
            consent,
        });
    prop_oneof![obs, report, referral]
}

fn role(user: &str) -> &'static str {
    match user {
        "polis1" => "police_officer",
        "analytiker1" => "police_analyst",
        "vakt1" | "vakt2" => "guard",
        "soc1" => "social_worker",
        "falt1" => "outreach_worker",
        "samordnare1" => "coordinator",
        "revisor1" => "auditor",
        _ => "admin",
    }
}

fn police(user: &str) -> bool {
    matches!(role(user), "police_officer" | "police_analyst")
}

/// The domain table: (markers the reader must see, whether the record is visible).
fn oracle(reader: &str, r: &Record, m: &str) -> (Vec<(String, bool)>, bool) {
    let assigned = |place: &str| places(reader).contains(&place);
    match r {
        Record::Observation { filer, place } => {
            let own = reader == *filer && role(reader) == "guard";
            let full = police(reader) || own;
            let core = full
                || (role(reader) == "guard" && assigned(place))
                || matches!(
                    role(reader),
                    "social_worker" | "outreach_worker" | "coordinator"
                );
            (
                vec![(format!("{m}-NARR"), full), (format!("{m}-PERS"), full)],
                core,
            )
        }
        Record::Report {
            place, audiences, ..
        } => {
            let general = !matches!(role(reader), "auditor" | "admin");
            let on_site = police(reader)
                || (matches!(role(reader), "guard" | "social_worker" | "outreach_worker")
                    && assigned(place));
            let sees = |a: &str| match a {
                "general" => general,
                "on_site" => on_site,
                _ => police(reader),
            };
            // The title only together with a section the reader may see.
            let visible = audiences.iter().any(|a| sees(a));
            let mut v = vec![(format!("{m}-TITLE"), visible)];
            for (i, a) in audiences.iter().enumerate() {
                v.push((format!("{m}-S{i}"), sees(a)));
            }
            (v, visible)
        }
        Record::Referral {
            filer,
            feedback,
            consent,
        } => {
            let social = reader == "soc1";
            let reporter = reader == *filer;
            let child = social || reporter;
            let mut v = vec![(format!("{m}-CHILD"), child)];
            if feedback.is_some() {
                v.push((format!("{m}-NOTE"), social));
            }
            if let Some(valid) = consent {
                let rel = social
                    || (reporter
                        && matches!(role(reader), "police_officer" | "outreach_worker")
                        && *valid);
                v.push((format!("{m}-REL"), rel));
            }
            (v, child)
        }
    }
}

async fn create(
    app: &TestApp,
    tokens: &HashMap<&str, String>,
    r: &Record,
    m: &str,
) -> (String, String) {
    let (path, filer, body) = match r {
        Record::Observation { filer, place } => (
            "/api/v1/observations",
            *filer,
            json!({"place": place, "observed_at": "2026-11-10T12:00:00Z", "category": "other",
                   "description": format!("{m}-NARR"), "persons": [{"description": format!("{m}-PERS")}]}),
        ),
        Record::Report {
            filer,
            place,
            audiences,
        } => (
            "/api/v1/situation-reports",
            *filer,
            json!({"place": place, "title": format!("{m}-TITLE"),
                   "sections": audiences.iter().enumerate().map(|(i, a)| json!({"audience": a, "body": format!("{m}-S{i}")})).collect::<Vec<_>>()}),
        ),
        Record::Referral { filer, .. } => (
            "/api/v1/referrals",
            *filer,
            json!({"receiving_organization": "socialtjansten-norrmalm", "child": {"alias": format!("{m}-CHILD")}, "concern": "worried"}),
        ),
    };
    let resp = app.post(path, &tokens[filer], &body).await;
    assert_eq!(
        resp.status,
        StatusCode::CREATED,
        "{filer} {path}: {}",
        resp.text
    );
    let id = resp.json["id"].as_str().expect("id").to_owned();
    if let Record::Referral {
        feedback, consent, ..
    } = r
    {
        if let Some(status) = feedback {
            let f = app
                .post(
                    &format!("{path}/{id}/feedback"),
                    &tokens["soc1"],
                    &json!({"status": status, "note": format!("{m}-NOTE")}),
                )
                .await;
            assert_eq!(f.status, StatusCode::CREATED, "{}", f.text);
        }
        if let Some(valid) = consent {
            let c = app
                .post(
                    &format!("{path}/{id}/consents"),
                    &tokens["soc1"],
                    &json!({"given_by": "both", "scope": "s", "valid_until": "2099-01-01T00:00:00Z", "released_details": format!("{m}-REL")}),
                )
                .await;
            assert_eq!(c.status, StatusCode::CREATED, "{}", c.text);
            if !valid {
                app.connect()
                    .batch_execute(&format!(
                        "UPDATE referral_consents SET valid_until = 1 WHERE referral_id = '{id}'"
                    ))
                    .expect("expire consent");
            }
        }
    }
    (path.to_owned(), id)
}

static CASE: AtomicUsize = AtomicUsize::new(0);

async fn check(
    app: &TestApp,
    tokens: &HashMap<&str, String>,
    records: Vec<Record>,
) -> Result<(), TestCaseError> {
    let case = CASE.fetch_add(1, Ordering::SeqCst);
    let mut made = Vec::new();
    for (i, r) in records.iter().enumerate() {
        let m = format!("P{case}R{i}");
        let (path, id) = create(app, tokens, r, &m).await;
        made.push((r, m, path, id));
    }
    for reader in DEMO_USERS {
        let token = &tokens[reader];
        let mut lists = String::new();
        for l in [
            "/api/v1/observations",
            "/api/v1/situation-reports",
            "/api/v1/referrals",
        ] {
            lists.push_str(&app.get(&format!("{l}?limit=100"), token).await.text);
        }
        for (r, m, path, id) in &made {
            let (markers, visible) = oracle(reader, r, m);
            let detail = app.get(&format!("{path}/{id}"), token).await;
            let want = if visible {
                StatusCode::OK
            } else {
                StatusCode::NOT_FOUND
            };
            prop_assert_eq!(detail.status, want, "{} GET {:?}", reader, r);
            prop_assert_eq!(
                lists.contains(id.as_str()),
                visible,
                "{} list {:?}",
                reader,
                r
            );
            for (marker, see) in markers {
                prop_assert_eq!(
                    detail.text.contains(&marker),
                    see,
                    "{} detail {} of {:?}",
                    reader,
                    marker,
                    r
                );
                prop_assert_eq!(
                    lists.contains(&marker),
                    see,
                    "{} lists {} of {:?}",
                    reader,
                    marker,
                    r
                );
            }
        }
    }
    Ok(())
}

#[test]
fn any_records_reach_each_reader_only_as_the_rules_allow() {
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .expect("runtime");
    let (app, tokens) = rt.block_on(async {
        let app = spawn_app().await;
        let mut tokens = HashMap::new();
        for u in DEMO_USERS {
            tokens.insert(*u, app.token(u).await);
        }
        (app, tokens)
    });
    let cases: u32 = std::env::var("SAMVERKAN_PROPTEST_CASES")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(12);
    let mut runner = TestRunner::new(Config {
        cases,
        failure_persistence: None,
        ..Config::default()
    });
    runner
        .run(&prop::collection::vec(record(), 1..5), |records| {
            rt.block_on(check(&app, &tokens, records))
        })
        .expect("property holds");
}
