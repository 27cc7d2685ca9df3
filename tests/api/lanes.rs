//! The write path as shipped: on PostgreSQL one writer for reads' audit entries and two
//! for writes, each on its own chain, and a group of reads that waits a little for more
//! while other requests are in flight (SQLite has one writer whatever is asked, so there
//! the same checks hold for the one queue). Many reads and writes at once: every
//! acknowledged one is in the trail and readable, the chains verify, and a logout still
//! refuses the very next read while the read lane's groups wait for others.

use diesel::prelude::*;
use reqwest::StatusCode;
use serde_json::json;

use samverkan::config::DEFAULT_WRITERS;
use samverkan::storage::schema::audit_log;
use samverkan::storage::DatabaseUrl;

use crate::helpers::{spawn_with, TestApp};

/// The app with the shipped number of writers (the suite's other apps run one).
async fn app_with_lanes() -> TestApp {
    spawn_with(|s| s.writers = DEFAULT_WRITERS).await
}

async fn lagesbild(app: &TestApp) -> String {
    app.situation_report("LANE").await
}

/// Reads of `record` audited as `username`'s.
fn reads_of(app: &TestApp, record: &str, username: &str) -> Vec<i64> {
    audit_log::table
        .filter(audit_log::action.eq("read"))
        .filter(audit_log::record_id.eq(record))
        .filter(audit_log::actor_username.eq(username))
        .select(audit_log::chain)
        .load(&mut app.connect())
        .expect("the trail")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn concurrent_reads_and_writes_through_the_lanes_are_all_in_the_trail_and_it_verifies() {
    let app = std::sync::Arc::new(app_with_lanes().await);
    let report = lagesbild(&app).await;
    let path = format!("/api/v1/situation-reports/{report}");
    let vakt = app.token("vakt1").await;
    let filer = app.token("vakt1").await;
    let (readers, reads_each, writers, writes_each) = (8, 25, 4, 10);
    let mut tasks = Vec::new();
    for _ in 0..readers {
        let (app, path, vakt) = (app.clone(), path.clone(), vakt.clone());
        tasks.push(tokio::spawn(async move {
            let mut ok = 0;
            for _ in 0..reads_each {
                let r = app.get(&path, &vakt).await;
                assert_eq!(r.status, StatusCode::OK, "{}", r.text);
                assert!(r.text.contains("LANE-ON-SITE"), "{}", r.text);
                ok += 1;
            }
            (ok, Vec::new())
        }));
    }
    for w in 0..writers {
        let (app, filer) = (app.clone(), filer.clone());
        tasks.push(tokio::spawn(async move {
            let mut ids = Vec::new();
            for i in 0..writes_each {
                let r = app
                    .post(
                        "/api/v1/observations",
                        &filer,
                        &json!({"place": "sergels-torg", "observed_at": "2026-11-01T21:00:00Z",
                                "category": "drug_use", "description": format!("LANE-{w}-{i}")}),
                    )
                    .await;
                assert_eq!(r.status, StatusCode::CREATED, "{}", r.text);
                ids.push(r.json["id"].as_str().expect("id").to_owned());
            }
            (0, ids)
        }));
    }
    let (mut reads, mut filed) = (0, Vec::new());
    for t in tasks {
        let (ok, ids) = t.await.expect("task");
        reads += ok;
        filed.extend(ids);
    }
    assert_eq!(reads, readers * reads_each);
    assert_eq!(filed.len(), writers * writes_each);

    // Every acknowledged read has its entry; every acknowledged write is readable.
    let read_chains = reads_of(&app, &report, "vakt1");
    assert_eq!(read_chains.len(), reads);
    let polis = app.token("polis1").await;
    for id in &filed {
        let r = app.get(&format!("/api/v1/observations/{id}"), &polis).await;
        assert_eq!(r.status, StatusCode::OK, "{id}: {}", r.text);
    }
    if matches!(app.db_url, DatabaseUrl::Postgres(_)) {
        // The reads went through their own writer, on its own chain; the filings not.
        let mut chains = read_chains.clone();
        chains.sort_unstable();
        chains.dedup();
        assert_eq!(chains.len(), 1, "reads on chains {chains:?}");
        let filing_chains: Vec<i64> = audit_log::table
            .filter(audit_log::action.eq("create"))
            .filter(audit_log::record_id.eq_any(&filed))
            .select(audit_log::chain)
            .load(&mut app.connect())
            .expect("the trail");
        assert_eq!(filing_chains.len(), filed.len());
        assert!(
            !filing_chains.contains(&chains[0]),
            "a filing on the read chain {}",
            chains[0]
        );
    }
    let (ok, out) = app.cli(&["audit", "verify"]);
    assert!(ok, "{out}");
    assert!(out.contains("verified"), "{out}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_logout_refuses_the_next_read_while_other_reads_keep_the_read_lane_busy() {
    let app = std::sync::Arc::new(app_with_lanes().await);
    let report = lagesbild(&app).await;
    let path = format!("/api/v1/situation-reports/{report}");
    // Others read all the while, so the read lane's groups wait for more.
    let stop = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
    let polis = app.token("polis1").await;
    let mut busy = Vec::new();
    for _ in 0..6 {
        let (app, path, polis, stop) = (app.clone(), path.clone(), polis.clone(), stop.clone());
        busy.push(tokio::spawn(async move {
            let mut n = 0;
            while !stop.load(std::sync::atomic::Ordering::Relaxed) {
                let r = app.get(&path, &polis).await;
                assert_eq!(r.status, StatusCode::OK, "{}", r.text);
                n += 1;
            }
            n
        }));
    }
    for round in 0..5 {
        let vakt = app.token("vakt1").await;
        for _ in 0..2 {
            let r = app.get(&path, &vakt).await;
            assert_eq!(r.status, StatusCode::OK, "round {round}: {}", r.text);
        }
        let r = app.logout(&vakt).await;
        assert!(r.status.is_success(), "{} {}", r.status, r.text);
        let r = app.get(&path, &vakt).await;
        assert_eq!(
            r.status,
            StatusCode::UNAUTHORIZED,
            "round {round}: {}",
            r.text
        );
        assert!(!r.text.contains("LANE-"), "{}", r.text);
    }
    stop.store(true, std::sync::atomic::Ordering::Relaxed);
    let mut others = 0;
    for t in busy {
        others += t.await.expect("reader");
    }
    assert!(others > 0);
    assert_eq!(reads_of(&app, &report, "polis1").len(), others);
}
