use diesel::connection::SimpleConnection;
use diesel::prelude::*;
use reqwest::StatusCode;
use serde_json::{json, Value};

use samverkan::storage::schema::{audit_head, audit_keys, audit_log};

use crate::helpers::{spawn_app, spawn_with, TestApp, DEMO_USERS};

async fn file_observation(app: &TestApp, token: &str) -> String {
    let r = app
        .post(
            "/api/v1/observations",
            token,
            &json!({"place": "sergels-torg", "observed_at": "2026-11-01T21:00:00Z", "category": "drug_use",
                    "description": "AUDIT-NARRATIVE", "persons": [{"description": "AUDIT-PERSON"}]}),
        )
        .await;
    assert_eq!(r.status, StatusCode::CREATED, "{}", r.text);
    r.json["id"].as_str().unwrap().to_owned()
}

fn entries(v: &Value) -> Vec<Value> {
    v["items"].as_array().cloned().unwrap_or_default()
}

#[tokio::test]
async fn reads_writes_and_refusals_are_audited_with_the_parts_disclosed() {
    let app = spawn_app().await;
    let guard = app.token("vakt1").await;
    let id = file_observation(&app, &guard).await;
    let police = app.token("polis1").await;
    assert_eq!(
        app.send(
            app.client
                .get(app.url(&format!("/api/v1/observations/{id}")))
                .bearer_auth(&police)
                .header("X-Purpose", "ärende 2026-123")
        )
        .await
        .status,
        StatusCode::OK
    );
    let other_guard = app.token("vakt2").await;
    assert_eq!(
        app.get(&format!("/api/v1/observations/{id}"), &other_guard)
            .await
            .status,
        StatusCode::NOT_FOUND
    );
    let social = app.token("soc1").await;
    assert_eq!(
        app.get("/api/v1/observations", &social).await.status,
        StatusCode::OK
    );

    let auditor = app.token("revisor1").await;
    let r = app
        .get(&format!("/api/v1/audit?record={id}"), &auditor)
        .await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.text);
    let e = entries(&r.json);
    let find = |actor: &str, action: &str| {
        e.iter()
            .find(|x| x["actor"] == actor && x["action"] == action)
            .cloned()
            .unwrap_or_else(|| panic!("no {action} by {actor} in {e:?}"))
    };
    let created = find("vakt1", "create");
    assert_eq!(created["outcome"], "success");
    assert_eq!(created["record_kind"], "observation");
    let read = find("polis1", "read");
    assert_eq!(read["purpose"], "ärende 2026-123");
    for part in ["core", "narrative", "persons", "reporter_identity"] {
        assert!(
            read["parts"].as_array().unwrap().contains(&json!(part)),
            "{read}"
        );
    }
    assert_eq!(find("vakt2", "read")["outcome"], "not_found");
    let listed = find("soc1", "list");
    assert_eq!(listed["parts"], json!(["core"]));
    // Auditors see metadata, never content.
    assert!(!r.text.contains("AUDIT-NARRATIVE") && !r.text.contains("AUDIT-PERSON"));

    let logins = app
        .get("/api/v1/audit?action=login&actor=vakt1", &auditor)
        .await;
    assert!(entries(&logins.json)
        .iter()
        .all(|x| x["action"] == "login" && x["actor"] == "vakt1"));
    assert!(!entries(&logins.json).is_empty());
    let refused = app.get("/api/v1/audit?outcome=not_found", &auditor).await;
    assert!(entries(&refused.json).iter().any(|x| x["actor"] == "vakt2"));
}

#[tokio::test]
async fn the_audit_trail_is_for_auditors_only_and_auditors_see_no_case_content() {
    let app = spawn_app().await;
    let guard = app.token("vakt1").await;
    let id = file_observation(&app, &guard).await;
    for user in DEMO_USERS.iter().filter(|u| **u != "revisor1") {
        let token = app.token(user).await;
        for path in [
            "/api/v1/audit",
            "/api/v1/audit/export",
            "/api/v1/audit/summary",
        ] {
            assert_eq!(
                app.get(path, &token).await.status,
                StatusCode::FORBIDDEN,
                "{user} {path}"
            );
        }
    }
    let auditor = app.token("revisor1").await;
    assert_eq!(
        app.get(&format!("/api/v1/observations/{id}"), &auditor)
            .await
            .status,
        StatusCode::NOT_FOUND
    );
    assert_eq!(
        app.get("/api/v1/observations", &auditor).await.json["items"],
        json!([])
    );
    // The refusals themselves are on record.
    let denied = app
        .get("/api/v1/audit?outcome=denied&actor=polis1", &auditor)
        .await;
    assert!(entries(&denied.json)
        .iter()
        .any(|x| x["record_kind"] == "audit_log"));
}

#[tokio::test]
async fn audit_pages_exports_and_summary_work() {
    let app = spawn_app().await;
    let guard = app.token("vakt1").await;
    for _ in 0..3 {
        file_observation(&app, &guard).await;
    }
    let police = app.token("polis1").await;
    app.get("/api/v1/observations", &police).await;
    let auditor = app.token("revisor1").await;
    let p1 = app.get("/api/v1/audit?limit=2", &auditor).await;
    assert_eq!(entries(&p1.json).len(), 2);
    let cursor = p1.json["next_cursor"].as_str().unwrap().to_owned();
    let p2 = app
        .get(&format!("/api/v1/audit?limit=2&cursor={cursor}"), &auditor)
        .await;
    let (a, b) = (entries(&p1.json), entries(&p2.json));
    assert!(
        a[1]["seq"].as_i64().unwrap() > b[0]["seq"].as_i64().unwrap(),
        "newest first, no overlap"
    );

    let csv = app
        .get("/api/v1/audit/export?format=csv&actor=vakt1", &auditor)
        .await;
    assert_eq!(csv.status, StatusCode::OK);
    assert!(csv.headers["content-type"]
        .to_str()
        .unwrap()
        .starts_with("text/csv"));
    assert!(csv.text.starts_with("seq,at,actor"));
    assert!(csv.text.lines().skip(1).all(|l| l.contains("\"vakt1\"")));
    let jsonl = app.get("/api/v1/audit/export?actor=polis1", &auditor).await;
    for line in jsonl.text.lines() {
        let v: Value = serde_json::from_str(line).expect("json line");
        assert_eq!(v["actor"], "polis1");
    }
    let summary = app.get("/api/v1/audit/summary", &auditor).await;
    let rows = summary.json.as_array().unwrap();
    let polis = rows.iter().find(|r| r["actor"] == "polis1").unwrap();
    assert_eq!(polis["reads_by_kind"]["observation"], 3);
    let vakt = rows.iter().find(|r| r["actor"] == "vakt1").unwrap();
    assert_eq!(vakt["writes"], 3);
}

/// The chain's last entry and how far the lookup keys go, as stored.
fn head_and_indexed(app: &TestApp) -> (i64, i64) {
    audit_head::table
        .select((audit_head::seq, audit_head::indexed_seq))
        .first(&mut app.connect())
        .unwrap()
}

/// Files an observation and has the police read it `reads` times.
async fn read_often(app: &TestApp, reads: usize) -> String {
    let guard = app.token("vakt1").await;
    let id = file_observation(app, &guard).await;
    let police = app.token("polis1").await;
    for _ in 0..reads {
        let r = app
            .get(&format!("/api/v1/observations/{id}"), &police)
            .await;
        assert_eq!(r.status, StatusCode::OK, "{}", r.text);
    }
    id
}

#[tokio::test]
async fn an_auditors_query_finds_the_newest_entries_before_the_writer_has_indexed_them() {
    // Lookup keys are copied in batches; with batches this large none runs in this test.
    let app = spawn_with(|s| s.audit_index_every = 1_000_000).await;
    let (_, indexed_at_start) = head_and_indexed(&app);
    let id = read_often(&app, 7).await;
    let (head, indexed) = head_and_indexed(&app);
    assert_eq!(indexed, indexed_at_start, "no batch ran yet");
    assert!(head > indexed);

    let auditor = app.token("revisor1").await;
    let r = app
        .get(&format!("/api/v1/audit?record={id}"), &auditor)
        .await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.text);
    let e = entries(&r.json);
    assert_eq!(
        e.iter().filter(|x| x["action"] == "read").count(),
        7,
        "{e:?}"
    );
    assert_eq!(
        e.iter().filter(|x| x["action"] == "create").count(),
        1,
        "{e:?}"
    );
    let by_actor = app
        .get("/api/v1/audit?actor=polis1&action=read", &auditor)
        .await;
    assert_eq!(entries(&by_actor.json).len(), 7, "{}", by_actor.text);
    // Found without indexing anything (each writer indexes only its own chain): the
    // entries not yet copied were read from the trail itself, the query's own included.
    let (head_after, indexed_after) = head_and_indexed(&app);
    assert_eq!(indexed_after, indexed_at_start);
    assert!(head_after > head);
    let reviews = app
        .get("/api/v1/audit?actor=revisor1&action=audit_review", &auditor)
        .await;
    assert_eq!(entries(&reviews.json).len(), 3, "{}", reviews.text);
}

#[tokio::test]
async fn the_writer_indexes_entries_in_batches_without_gaps_or_doubles() {
    let app = spawn_with(|s| s.audit_index_every = 3).await;
    let (_, indexed_at_start) = head_and_indexed(&app);
    let id = read_often(&app, 10).await;
    let (head, indexed) = head_and_indexed(&app);
    assert!(
        indexed > indexed_at_start,
        "the writer copied keys by itself"
    );
    assert!(
        head - indexed < 3,
        "at most a batch waits: head {head}, indexed {indexed}"
    );
    let mut conn = app.connect();
    let (keys, low, high): (i64, Option<i64>, Option<i64>) = audit_keys::table
        .select((
            diesel::dsl::count_star(),
            diesel::dsl::min(audit_keys::seq),
            diesel::dsl::max(audit_keys::seq),
        ))
        .first(&mut conn)
        .unwrap();
    // Every entry up to `indexed` has its keys, once (numbers may skip: PostgreSQL draws
    // them ahead for groups of reads, and a number not used is not reused).
    let (entries_upto, first): (i64, Option<i64>) = audit_log::table
        .filter(audit_log::seq.le(indexed))
        .select((diesel::dsl::count_star(), diesel::dsl::min(audit_log::seq)))
        .first(&mut conn)
        .unwrap();
    assert_eq!((keys, low, high), (entries_upto, first, Some(indexed)));

    // A period is a time range of the index: the reads fall in it, nothing after it does.
    let auditor = app.token("revisor1").await;
    let all = app
        .get(&format!("/api/v1/audit?record={id}"), &auditor)
        .await;
    let reads: Vec<Value> = entries(&all.json)
        .into_iter()
        .filter(|x| x["action"] == "read")
        .collect();
    assert_eq!(reads.len(), 10, "{}", all.text);
    let (newest, oldest) = (
        reads[0]["at"].as_str().unwrap(),
        reads[9]["at"].as_str().unwrap(),
    );
    let window = app
        .get(
            &format!("/api/v1/audit?record={id}&action=read&since={oldest}&until={newest}"),
            &auditor,
        )
        .await;
    // `until` is exclusive: the newest read (one request after the other, so alone at
    // its microsecond) is outside, the other nine are in.
    let inside: Vec<Value> = entries(&window.json)
        .iter()
        .map(|x| x["seq"].clone())
        .collect();
    let expected: Vec<Value> = reads[1..].iter().map(|x| x["seq"].clone()).collect();
    assert_eq!(inside, expected, "{}", window.text);
}

/// The number of the trail's `n`th entry (1-based): numbers may skip (PostgreSQL draws
/// them ahead), so tests that tamper with an entry ask for it by position.
pub fn nth_seq(app: &TestApp, n: i64) -> i64 {
    audit_log::table
        .select(audit_log::seq)
        .order(audit_log::seq)
        .offset(n - 1)
        .first(&mut app.connect())
        .expect("the trail has that many entries")
}

fn verify_cli(app: &TestApp) -> (bool, String) {
    app.cli(&["audit", "verify"])
}

async fn busy_app() -> TestApp {
    let app = spawn_app().await;
    let guard = app.token("vakt1").await;
    for _ in 0..3 {
        file_observation(&app, &guard).await;
    }
    let police = app.token("polis1").await;
    app.get("/api/v1/observations", &police).await;
    app
}

#[tokio::test]
async fn the_chain_verifies_and_an_altered_entry_is_named() {
    let app = busy_app().await;
    let (ok, out) = verify_cli(&app);
    assert!(ok, "{out}");
    assert!(out.contains("verified"), "{out}");
    let fifth = nth_seq(&app, 5);
    app.connect()
        .batch_execute(&format!(
            "UPDATE audit_log SET outcome = 'denied' WHERE seq = {fifth}"
        ))
        .unwrap();
    let (ok, out) = verify_cli(&app);
    assert!(!ok);
    assert!(out.contains(&format!("entry {fifth}")), "{out}");
}

#[tokio::test]
async fn a_deleted_entry_breaks_the_chain() {
    let app = busy_app().await;
    let (fourth, fifth) = (nth_seq(&app, 4), nth_seq(&app, 5));
    app.connect()
        .batch_execute(&format!("DELETE FROM audit_log WHERE seq = {fourth}"))
        .unwrap();
    let (ok, out) = verify_cli(&app);
    assert!(!ok);
    assert!(
        out.contains(&format!("entry {fifth}")) && out.contains("does not link"),
        "{out}"
    );
}

#[tokio::test]
async fn reordered_entries_break_the_chain() {
    let app = busy_app().await;
    let (third, fourth) = (nth_seq(&app, 3), nth_seq(&app, 4));
    app.connect()
        .batch_execute(&format!(
            "UPDATE audit_log SET seq = -1 WHERE seq = {third}; \
             UPDATE audit_log SET seq = {third} WHERE seq = {fourth}; \
             UPDATE audit_log SET seq = {fourth} WHERE seq = -1;"
        ))
        .unwrap();
    let (ok, out) = verify_cli(&app);
    assert!(!ok);
    assert!(out.contains(&format!("entry {third}")), "{out}");
}

#[tokio::test]
async fn a_truncated_tail_breaks_the_chain() {
    let app = busy_app().await;
    app.connect()
        .batch_execute("DELETE FROM audit_log WHERE seq = (SELECT MAX(seq) FROM audit_log)")
        .unwrap();
    let (ok, out) = verify_cli(&app);
    assert!(!ok);
    assert!(out.contains("truncated"), "{out}");
}

/// Reads (whose entries a group commit writes together at its end) and writes (which
/// write theirs at once, in their own savepoint) and an auditor's query, all in the same
/// group commits: every entry is there once and the chain verifies.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn reads_and_writes_committed_together_keep_every_entry_and_the_chain() {
    let app = spawn_app().await;
    let police = app.token("polis1").await;
    let guard = app.token("vakt1").await;
    let auditor = app.token("revisor1").await;
    let r = app
        .post(
            "/api/v1/situation-reports",
            &police,
            &json!({"place": "sergels-torg", "title": "T", "sections": [
                {"audience": "general", "body": "G"}, {"audience": "on_site", "body": "O"}]}),
        )
        .await;
    assert_eq!(r.status, StatusCode::CREATED, "{}", r.text);
    let report = r.json["id"].as_str().unwrap().to_owned();
    // Every fourth request files an observation, every fifteenth is an auditor's query
    // (which writes out the group's read entries before it copies their lookup keys),
    // the rest read the lägesbild.
    let mut tasks = Vec::new();
    for i in 0..180 {
        let client = app.client.clone();
        let request = if i % 15 == 7 {
            client
                .get(app.url("/api/v1/audit?limit=1"))
                .bearer_auth(&auditor)
        } else if i % 4 == 0 {
            client
                .post(app.url("/api/v1/observations"))
                .bearer_auth(&guard)
                .json(
                    &json!({"place": "sergels-torg", "observed_at": "2026-11-01T21:00:00Z",
                              "category": "drug_use", "description": "MIXED"}),
                )
        } else {
            client
                .get(app.url(&format!("/api/v1/situation-reports/{report}")))
                .bearer_auth(&guard)
        };
        tasks.push(tokio::spawn(async move {
            request.send().await.map(|r| r.status())
        }));
    }
    let mut statuses = Vec::new();
    for t in tasks {
        statuses.push(t.await.expect("task").expect("response"));
    }
    assert!(statuses.iter().all(|s| s.is_success()), "{statuses:?}");
    let created = statuses
        .iter()
        .filter(|s| **s == StatusCode::CREATED)
        .count();
    let read = statuses.len() - created - 12;
    let (ok, out) = verify_cli(&app);
    assert!(ok, "{out}");
    let count = |filter: String| {
        let app = &app;
        let auditor = auditor.clone();
        async move {
            let r = app
                .get(&format!("/api/v1/audit/export?{filter}"), &auditor)
                .await;
            assert_eq!(r.status, StatusCode::OK, "{}", r.text);
            r.text.lines().filter(|l| !l.trim().is_empty()).count()
        }
    };
    assert_eq!(count(format!("record={report}&action=read")).await, read);
    assert_eq!(count("actor=vakt1&action=create".into()).await, created);
}

/// An export longer than one streamed page (500 entries) comes whole: every entry once,
/// newest first, the CSV parseable by an RFC 4180 reader with the same rows as the JSON
/// lines, Swedish letters intact and a formula-like purpose defused.
#[tokio::test]
async fn an_export_longer_than_a_page_streams_every_entry_once() {
    let app = spawn_app().await;
    // A list read is audited per record shown: one observation to show.
    let guard = app.token("vakt1").await;
    file_observation(&app, &guard).await;
    let police = app.token("polis1").await;
    for i in 0..520 {
        let purpose = if i == 7 { "-1 ärende" } else { "uppföljning" };
        let r = app
            .send(
                app.client
                    .get(app.url("/api/v1/observations"))
                    .bearer_auth(&police)
                    .header("x-purpose", purpose),
            )
            .await;
        assert_eq!(r.status, StatusCode::OK, "{}", r.text);
    }
    let auditor = app.token("revisor1").await;
    let jsonl = app.get("/api/v1/audit/export?actor=polis1", &auditor).await;
    assert_eq!(jsonl.status, StatusCode::OK);
    let seqs: Vec<i64> = jsonl
        .text
        .lines()
        .map(|l| {
            serde_json::from_str::<Value>(l).unwrap()["seq"]
                .as_i64()
                .unwrap()
        })
        .collect();
    assert!(seqs.len() > 520, "{}", seqs.len());
    assert!(
        seqs.windows(2).all(|w| w[0] > w[1]),
        "newest first, each once"
    );

    let csv = app
        .get("/api/v1/audit/export?format=csv&actor=polis1", &auditor)
        .await;
    assert_eq!(csv.status, StatusCode::OK);
    let mut reader = csv::Reader::from_reader(csv.text.as_bytes());
    assert_eq!(reader.headers().unwrap().get(0), Some("seq"));
    let rows: Vec<csv::StringRecord> = reader.records().collect::<Result<_, _>>().unwrap();
    let csv_seqs: Vec<i64> = rows.iter().map(|r| r[0].parse().unwrap()).collect();
    assert_eq!(csv_seqs, seqs);
    let purposes: Vec<&str> = rows.iter().map(|r| &r[11]).collect();
    assert_eq!(
        purposes.iter().filter(|p| **p == "'-1 ärende").count(),
        1,
        "{purposes:?}"
    );
    assert!(!purposes.contains(&"-1 ärende"));
}
