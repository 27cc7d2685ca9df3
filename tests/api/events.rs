//! Live alerts: every event reaches exactly the users who may GET its record (and whose
//! it is by kind), ids are opaque per user, a dropped stream resumes with
//! `Last-Event-ID` without loss or repeat, logout ends the stream, heartbeats come, and a
//! second instance on the same database delivers what the first one wrote.

use std::collections::{BTreeMap, BTreeSet};
use std::time::Duration;

use reqwest::StatusCode;
use serde_json::{json, Value};

use crate::helpers::{spawn_app, TestApp, DEMO_USERS, PASSWORD};

#[derive(Debug, Clone, PartialEq, Eq)]
struct SseEvent {
    id: String,
    event: String,
    data: Value,
}

/// An open event stream.
struct Sse {
    resp: reqwest::Response,
    buf: String,
    comments: Vec<String>,
    ended: bool,
}

impl Sse {
    async fn open(app: &TestApp, token: &str, last: Option<&str>) -> Sse {
        let mut req = app.client.get(app.url("/api/v1/events")).bearer_auth(token);
        if let Some(l) = last {
            req = req.header("Last-Event-ID", l);
        }
        let resp = req.send().await.expect("open the stream");
        assert_eq!(resp.status(), StatusCode::OK);
        assert_eq!(
            resp.headers()
                .get("content-type")
                .and_then(|v| v.to_str().ok()),
            Some("text/event-stream")
        );
        let mut s = Sse {
            resp,
            buf: String::new(),
            comments: Vec::new(),
            ended: false,
        };
        // The stream says it is open before anything happens: then it is subscribed.
        s.read_until(Duration::from_secs(5), |s| s.buf.contains("\n\n"))
            .await;
        assert!(s.take().is_empty());
        assert_eq!(
            s.comments.first().map(String::as_str),
            Some("open"),
            "{}",
            s.buf
        );
        s
    }

    /// Reads until `done` or the deadline; false when the stream ended.
    async fn read_until(&mut self, limit: Duration, done: impl Fn(&Sse) -> bool) -> bool {
        let deadline = tokio::time::Instant::now() + limit;
        while !done(self) && !self.ended {
            match tokio::time::timeout_at(deadline, self.resp.chunk()).await {
                Err(_) => break,
                Ok(Ok(Some(bytes))) => self.buf.push_str(&String::from_utf8_lossy(&bytes)),
                Ok(_) => self.ended = true,
            }
        }
        !self.ended
    }

    /// Every complete event read so far (taken), comments noted.
    fn take(&mut self) -> Vec<SseEvent> {
        let mut out = Vec::new();
        while let Some(end) = self.buf.find("\n\n") {
            let block: String = self.buf.drain(..end + 2).collect();
            let (mut id, mut event, mut data) = (String::new(), String::new(), Value::Null);
            for line in block.lines() {
                if let Some(c) = line.strip_prefix(": ") {
                    self.comments.push(c.to_owned());
                } else if let Some(v) = line.strip_prefix("id: ") {
                    id = v.to_owned();
                } else if let Some(v) = line.strip_prefix("event: ") {
                    event = v.to_owned();
                } else if let Some(v) = line.strip_prefix("data: ") {
                    data = serde_json::from_str(v).expect("data is JSON");
                }
            }
            if !event.is_empty() {
                out.push(SseEvent { id, event, data });
            }
        }
        out
    }

    /// The events that arrive within `limit`.
    async fn events_within(&mut self, limit: Duration) -> Vec<SseEvent> {
        self.read_until(limit, |_| false).await;
        self.take()
    }
}

async fn created(app: &TestApp, path: &str, token: &str, body: Value) -> String {
    let r = app.post(path, token, &body).await;
    assert_eq!(r.status, StatusCode::CREATED, "{path}: {}", r.text);
    r.json["id"].as_str().expect("id").to_owned()
}

async fn referral(app: &TestApp, token: &str, alias: &str) -> String {
    created(
        app,
        "/api/v1/referrals",
        token,
        json!({"receiving_organization": "socialtjansten-norrmalm",
               "child": {"alias": alias}, "concern": "Alone at the scene at night."}),
    )
    .await
}

#[tokio::test]
async fn every_event_reaches_exactly_the_users_who_may_get_its_record() {
    let app = spawn_app().await;
    let mut tokens = BTreeMap::new();
    let mut me = BTreeMap::new();
    let mut streams = BTreeMap::new();
    for user in DEMO_USERS {
        let token = app.token(user).await;
        me.insert(*user, app.get("/api/v1/me", &token).await.json);
        streams.insert(*user, Sse::open(&app, &token, None).await);
        tokens.insert(*user, token);
    }
    let t = |u: &str| tokens[u].clone();
    // One of each: an observation by a guard at Sergels torg, a lägesbild at Hässelby
    // torg with a general and a police-only section, a referral to social services, and
    // feedback on it.
    let obs = created(&app, "/api/v1/observations", &t("vakt1"),
        json!({"place": "sergels-torg", "observed_at": "2026-11-30T21:00:00Z", "category": "drug_sale",
               "description": "CANARY-EVENT-NARRATIVE"})).await;
    let report = created(&app, "/api/v1/situation-reports", &t("polis1"),
        json!({"place": "hasselby-torg", "title": "Natt",
               "sections": [{"audience": "general", "body": "Calm."}, {"audience": "police_only", "body": "CANARY"}]})).await;
    let secret_report = created(
        &app,
        "/api/v1/situation-reports",
        &t("polis1"),
        json!({"place": "sergels-torg", "title": "Endast polis",
               "sections": [{"audience": "police_only", "body": "CANARY-ONLY"}]}),
    )
    .await;
    let ref_id = referral(&app, &t("polis1"), "Kim").await;
    let r = app
        .post(
            &format!("/api/v1/referrals/{ref_id}/feedback"),
            &t("soc1"),
            &json!({"status": "not_opened"}),
        )
        .await;
    assert!(r.status.is_success(), "{}", r.text);

    // Who should hear of what: may GET the record, and it is theirs by kind.
    let mut expected: BTreeMap<&str, BTreeSet<(String, String)>> = BTreeMap::new();
    for user in DEMO_USERS {
        let m = &me[user];
        let places: Vec<&str> = m["places"]
            .as_array()
            .expect("places")
            .iter()
            .filter_map(Value::as_str)
            .collect();
        let gets = |path: String| {
            let app = &app;
            let token = t(user);
            async move { app.get(&path, &token).await.status == StatusCode::OK }
        };
        let set = expected.entry(user).or_default();
        if *user != "vakt1" && gets(format!("/api/v1/observations/{obs}")).await {
            set.insert(("observation.filed".into(), obs.clone()));
        }
        for (id, place) in [(&report, "hasselby-torg"), (&secret_report, "sergels-torg")] {
            if *user != "polis1"
                && (places.is_empty() || places.contains(&place))
                && gets(format!("/api/v1/situation-reports/{id}")).await
            {
                set.insert(("situation_report.published".into(), id.clone()));
            }
        }
        if m["organization"]["id"] == "socialtjansten-norrmalm"
            && gets(format!("/api/v1/referrals/{ref_id}")).await
        {
            set.insert(("referral.received".into(), ref_id.clone()));
        }
        if *user == "polis1" {
            set.insert(("referral.feedback".into(), ref_id.clone()));
        }
    }
    // Not vacuous: the guard hears of the general lägesbild at its place only if assigned.
    assert!(expected["polis1"].contains(&("observation.filed".to_string(), obs.clone())));
    assert!(expected["soc1"].contains(&("referral.received".to_string(), ref_id.clone())));
    assert!(!expected["vakt1"].iter().any(|(_, id)| *id == secret_report));

    let mut ids_seen = BTreeSet::new();
    // Delivery takes a poll interval or two; then every stream has its events waiting.
    tokio::time::sleep(Duration::from_millis(1500)).await;
    for user in DEMO_USERS {
        let s = streams.get_mut(user).expect("stream");
        let want = &expected[user];
        s.read_until(Duration::from_millis(300), |_| false).await;
        let got: Vec<SseEvent> = s.take();
        let set: BTreeSet<(String, String)> = got
            .iter()
            .map(|e| {
                (
                    e.event.clone(),
                    e.data["id"].as_str().expect("id").to_owned(),
                )
            })
            .collect();
        assert_eq!(&set, want, "{user}: {got:?}");
        assert_eq!(set.len(), got.len(), "{user}: an event came twice: {got:?}");
        for e in &got {
            // The record's kind and id only, and an id that names nothing.
            assert_eq!(e.data.as_object().map(|o| o.len()), Some(2), "{e:?}");
            assert!(
                !e.id.contains(e.data["id"].as_str().unwrap_or("-")),
                "{e:?}"
            );
            assert!(e.id.parse::<i64>().is_err(), "{e:?}");
            assert!(
                ids_seen.insert(e.id.clone()),
                "two users got the same id: {e:?}"
            );
        }
        assert!(!format!("{got:?}").contains("CANARY"), "{user}");
    }
}

#[tokio::test]
async fn a_dropped_stream_resumes_from_last_event_id_without_loss_or_repeat() {
    let app = spawn_app().await;
    let (police, social, guard) = (
        app.token("polis1").await,
        app.token("soc1").await,
        app.token("vakt1").await,
    );
    let mut s = Sse::open(&app, &social, None).await;
    let first = referral(&app, &police, "A").await;
    s.read_until(Duration::from_secs(3), |s| {
        s.buf.contains("\n\n") && s.buf.contains("referral.received")
    })
    .await;
    let got = s.take();
    assert_eq!(got.len(), 1, "{got:?}");
    assert_eq!(got[0].data["id"], first.as_str());
    let last = got[0].id.clone();
    drop(s);
    // While the social worker is away.
    let second = referral(&app, &police, "B").await;
    let third = referral(&app, &police, "C").await;
    let mut s = Sse::open(&app, &social, Some(&last)).await;
    let fourth = referral(&app, &police, "D").await;
    let got = s.events_within(Duration::from_millis(1500)).await;
    let ids: Vec<&str> = got.iter().filter_map(|e| e.data["id"].as_str()).collect();
    assert_eq!(
        ids,
        [second.as_str(), third.as_str(), fourth.as_str()],
        "{got:?}"
    );
    // Another user's id does not resume anything.
    let r = app
        .send(
            app.client
                .get(app.url("/api/v1/events"))
                .bearer_auth(&guard)
                .header("Last-Event-ID", &last),
        )
        .await;
    assert_eq!(r.status, StatusCode::BAD_REQUEST, "{}", r.text);
    assert_eq!(r.json["error"], "invalid_last_event_id");
}

#[tokio::test]
async fn logout_ends_the_stream_within_a_second_and_heartbeats_keep_coming() {
    let app = spawn_app().await;
    let login = app.login_full("vakt1", PASSWORD).await;
    let token = login.json["access_token"]
        .as_str()
        .expect("token")
        .to_owned();
    let mut s = Sse::open(&app, &token, None).await;
    // Test settings send a heartbeat every second.
    s.read_until(Duration::from_millis(2500), |s| {
        s.buf.contains(": heartbeat")
    })
    .await;
    s.take();
    assert!(
        s.comments.iter().any(|c| c == "heartbeat"),
        "{:?}",
        s.comments
    );
    let r = app.logout(&token).await;
    assert_eq!(r.status, StatusCode::NO_CONTENT);
    let started = std::time::Instant::now();
    let open = s.read_until(Duration::from_secs(3), |_| false).await;
    assert!(!open, "the stream did not end");
    assert!(
        started.elapsed() < Duration::from_millis(1500),
        "{:?}",
        started.elapsed()
    );
    let r = app
        .send(
            app.client
                .get(app.url("/api/v1/events"))
                .bearer_auth(&token),
        )
        .await;
    assert_eq!(r.status, StatusCode::UNAUTHORIZED);
}

#[tokio::test]
async fn a_second_instance_delivers_what_the_first_one_wrote() {
    let app = spawn_app().await;
    let url = app.db_url.clone();
    let second = tokio::task::spawn_blocking(move || {
        crate::helpers::start(crate::helpers::test_settings(url))
    })
    .await
    .expect("second instance");
    let police = app.token("polis1").await;
    let social = second.token("soc1").await;
    let mut s = Sse::open(&second, &social, None).await;
    let id = referral(&app, &police, "Elsewhere").await;
    s.read_until(Duration::from_secs(3), |s| s.buf.contains(&id))
        .await;
    let got = s.take();
    assert_eq!(got.len(), 1, "{got:?}");
    assert_eq!(
        (got[0].event.as_str(), got[0].data["id"].as_str()),
        ("referral.received", Some(id.as_str()))
    );
}

#[tokio::test]
async fn a_stream_ends_when_its_token_expires_and_resumes_with_a_fresh_one() {
    let app = crate::helpers::spawn_with(|s| s.tokens.access_ttl_secs = 2).await;
    let police = app.token("polis1").await;
    let social = app.token("soc1").await;
    let mut s = Sse::open(&app, &social, None).await;
    let first = referral(&app, &police, "Before").await;
    s.read_until(Duration::from_secs(2), |s| s.buf.contains(&first))
        .await;
    let got = s.take();
    assert_eq!(got.len(), 1, "{got:?}");
    let open = s.read_until(Duration::from_secs(4), |_| false).await;
    assert!(!open, "the stream outlived its token");
    let police = app.token("polis1").await;
    let missed = referral(&app, &police, "Meanwhile").await;
    let fresh = app.token("soc1").await;
    let mut s = Sse::open(&app, &fresh, Some(&got[0].id)).await;
    s.read_until(Duration::from_secs(2), |s| s.buf.contains(&missed))
        .await;
    let again = s.take();
    assert_eq!(again.len(), 1, "{again:?}");
    assert_eq!(again[0].data["id"], missed.as_str());
}
