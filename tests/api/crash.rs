//! Crash safety: the real binary under concurrent writes is killed with SIGKILL and
//! restarted on the same database. Every write acknowledged with 201 is there, the audit
//! chain verifies, and nothing half-written is visible.

use std::time::{Duration, Instant};

use reqwest::StatusCode;
use serde_json::{json, Value};

use crate::process::{
    audit_verify, client, free_port, fresh_database_url, start, token, wait_ready,
};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn acknowledged_writes_survive_sigkill_and_nothing_half_written_shows() {
    let (url, _dir) = fresh_database_url();
    let client = client(10);
    let mut acked_obs: Vec<(String, usize)> = Vec::new();
    let mut acked_feedback: Vec<(String, String)> = Vec::new();
    let mut referral: Option<String> = None;
    let started = Instant::now();
    for round in 0..3 {
        let port = free_port();
        let base = format!("http://127.0.0.1:{port}");
        let mut child = start(&url, port);
        wait_ready(&client, &base, &mut child).await;
        let (vakt, soc, polis) = (
            token(&client, &base, "vakt1").await,
            token(&client, &base, "soc1").await,
            token(&client, &base, "polis1").await,
        );

        // Everything acknowledged before (in earlier rounds) is still there.
        check(&client, &base, &polis, &soc, &acked_obs, &acked_feedback).await;

        let rid = match &referral {
            Some(r) => r.clone(),
            None => {
                let r = client
                    .post(format!("{base}/api/v1/referrals"))
                    .bearer_auth(&polis)
                    .json(&json!({"receiving_organization": "socialtjansten-norrmalm",
                                  "child": {"alias": "crash"}, "concern": "crash test"}))
                    .send()
                    .await
                    .unwrap();
                assert_eq!(r.status(), StatusCode::CREATED);
                let v: Value = r.json().await.unwrap();
                let id = v["id"].as_str().unwrap().to_owned();
                referral = Some(id.clone());
                id
            }
        };

        // Many concurrent writers; the process is killed while they are busy.
        let mut tasks = Vec::new();
        for w in 0..8 {
            let (client, base, vakt, soc, rid) = (
                client.clone(),
                base.clone(),
                vakt.clone(),
                soc.clone(),
                rid.clone(),
            );
            tasks.push(tokio::spawn(async move {
                let mut obs = Vec::new();
                let mut fb = Vec::new();
                for i in 0.. {
                    if w % 2 == 0 {
                        let n = 1 + (i % 3);
                        let persons: Vec<Value> = (0..n)
                            .map(|p| json!({"description": format!("person {p}")}))
                            .collect();
                        let r = client
                            .post(format!("{base}/api/v1/observations"))
                            .bearer_auth(&vakt)
                            .json(&json!({"place": "sergels-torg", "observed_at": "2026-11-20T22:00:00Z",
                                          "category": "drug_sale", "description": format!("r{round} w{w} i{i}"),
                                          "persons": persons}))
                            .send()
                            .await;
                        let Ok(r) = r else { break };
                        if r.status() != StatusCode::CREATED {
                            break;
                        }
                        let Ok(v) = r.json::<Value>().await else { break };
                        obs.push((v["id"].as_str().unwrap().to_owned(), n));
                    } else {
                        let status = ["investigation_opened", "not_opened", "already_ongoing"][i % 3];
                        let r = client
                            .post(format!("{base}/api/v1/referrals/{rid}/feedback"))
                            .bearer_auth(&soc)
                            .json(&json!({"status": status, "note": format!("r{round} w{w} i{i}")}))
                            .send()
                            .await;
                        let Ok(r) = r else { break };
                        if r.status() != StatusCode::CREATED {
                            break;
                        }
                        if r.json::<Value>().await.is_err() {
                            break;
                        }
                        fb.push((format!("r{round} w{w} i{i}"), status.to_owned()));
                    }
                }
                (obs, fb)
            }));
        }
        tokio::time::sleep(Duration::from_millis(700 + 300 * round as u64)).await;
        // SIGKILL: no graceful shutdown, no flushing.
        child.kill().unwrap();
        child.wait().unwrap();
        for t in tasks {
            let (obs, fb) = t.await.unwrap();
            acked_obs.extend(obs);
            acked_feedback.extend(fb);
        }
        assert!(!acked_obs.is_empty() && !acked_feedback.is_empty());
        let (ok, out) = audit_verify(&url);
        assert!(ok, "round {round}: audit verify failed: {out}");
    }

    // A last restart: everything acknowledged is there and whole.
    let port = free_port();
    let base = format!("http://127.0.0.1:{port}");
    let mut child = start(&url, port);
    wait_ready(&client, &base, &mut child).await;
    let (soc, polis) = (
        token(&client, &base, "soc1").await,
        token(&client, &base, "polis1").await,
    );
    check(&client, &base, &polis, &soc, &acked_obs, &acked_feedback).await;
    child.kill().unwrap();
    child.wait().unwrap();
    let (ok, out) = audit_verify(&url);
    assert!(ok, "{out}");
    assert!(
        started.elapsed() < Duration::from_secs(60),
        "took {:?}",
        started.elapsed()
    );
}

/// GET with a token, the body parsed as JSON.
async fn get_json(client: &reqwest::Client, url: &str, token: &str) -> Value {
    client
        .get(url)
        .bearer_auth(token)
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap()
}

async fn check(
    client: &reqwest::Client,
    base: &str,
    polis: &str,
    soc: &str,
    acked_obs: &[(String, usize)],
    acked_feedback: &[(String, String)],
) {
    for (id, n) in acked_obs {
        let r = client
            .get(format!("{base}/api/v1/observations/{id}"))
            .bearer_auth(polis)
            .send()
            .await
            .unwrap();
        assert_eq!(
            r.status(),
            StatusCode::OK,
            "acknowledged observation {id} lost"
        );
        let v: Value = r.json().await.unwrap();
        assert_eq!(v["persons"].as_array().unwrap().len(), *n, "{id}");
    }
    // Every observation listed has all its persons (none half-written), page by page.
    let mut cursor: Option<String> = None;
    loop {
        let q = match &cursor {
            Some(c) => format!("{base}/api/v1/observations?limit=100&cursor={c}"),
            None => format!("{base}/api/v1/observations?limit=100"),
        };
        let v = get_json(client, &q, polis).await;
        for item in v["items"].as_array().unwrap() {
            // This test's observations ("r… w… i…", each with persons); the others are
            // the demo's sample records, filed before any writer started.
            if !item["description"].as_str().unwrap().starts_with('r') {
                continue;
            }
            assert!(!item["persons"].as_array().unwrap().is_empty(), "{item}");
        }
        match v["next_cursor"].as_str() {
            Some(c) => cursor = Some(c.to_owned()),
            None => break,
        }
    }
    // Every acknowledged feedback is in the history with its status, and the referral's
    // status is one of those written.
    let list = get_json(client, &format!("{base}/api/v1/referrals"), soc).await;
    for item in list["items"].as_array().unwrap() {
        // This test's referral; the others are the demo's samples.
        if item["concern"] != "crash test" {
            continue;
        }
        let id = item["id"].as_str().unwrap();
        let r = get_json(client, &format!("{base}/api/v1/referrals/{id}"), soc).await;
        let history = r["feedback_history"]
            .as_array()
            .cloned()
            .unwrap_or_default();
        for entry in &history {
            assert!(
                entry["status"].is_string() && entry["note"].is_string(),
                "{entry}"
            );
        }
        for (note, status) in acked_feedback {
            assert!(
                history
                    .iter()
                    .any(|e| e["note"] == note.as_str() && e["status"] == status.as_str()),
                "acknowledged feedback {note} lost"
            );
        }
        if !history.is_empty() {
            assert!(
                history.iter().any(|e| e["status"] == r["status"]),
                "status {} was never written",
                r["status"]
            );
        }
    }
}
