//! Several instances of the binary on one database, as behind a load balancer: started
//! together on an empty database, writing through all of them, one frozen (SIGSTOP)
//! while the others carry on, a logout or a disable on one refused at once on the
//! others, and wrong passwords spread over them counted as one.

use std::process::{Child, Command};
use std::time::{Duration, Instant};

use reqwest::StatusCode;
use serde_json::{json, Value};

use crate::process::{
    audit_verify, client, fresh_database_url, start, token, wait_ready, PASSWORD,
};

struct Instance {
    base: String,
    child: Child,
}

impl Drop for Instance {
    fn drop(&mut self) {
        let _ = signal(&self.child, "CONT");
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn signal(child: &Child, sig: &str) -> bool {
    Command::new("kill")
        .args([format!("-{sig}"), child.id().to_string()])
        .status()
        .is_ok_and(|s| s.success())
}

fn is_postgres() -> bool {
    std::env::var("SAMVERKAN_TEST_DATABASE_URL").is_ok_and(|u| u.starts_with("postgres"))
}

/// Three instances started at the same moment on an empty database (migrations and the
/// demo seeding race each other).
async fn three(client: &reqwest::Client, url: &str) -> Vec<Instance> {
    let mut all: Vec<Instance> = (0..3)
        .map(|_| {
            let port = crate::process::free_port();
            Instance {
                base: format!("http://127.0.0.1:{port}"),
                child: start(url, port),
            }
        })
        .collect();
    for i in &mut all {
        wait_ready(client, &i.base, &mut i.child).await;
    }
    all
}

async fn file(client: &reqwest::Client, base: &str, token: &str, text: &str) -> Option<String> {
    let r = client
        .post(format!("{base}/api/v1/observations"))
        .bearer_auth(token)
        .json(
            &json!({"place": "sergels-torg", "observed_at": "2026-11-20T22:00:00Z",
                      "category": "drug_sale", "description": text}),
        )
        .send()
        .await
        .ok()?;
    if r.status() != StatusCode::CREATED {
        // Never a 2xx that is not a 201; a frozen instance's clients get a 5xx or nothing.
        assert!(!r.status().is_success(), "{}", r.status());
        return None;
    }
    let v: Value = r.json().await.ok()?;
    v["id"].as_str().map(str::to_owned)
}

async fn status(client: &reqwest::Client, url: String, token: &str) -> StatusCode {
    client
        .get(url)
        .bearer_auth(token)
        .send()
        .await
        .unwrap()
        .status()
}

/// Files from `writers` tasks through `base` until `until`; the ids acknowledged.
async fn keep_filing(
    client: &reqwest::Client,
    base: &str,
    token: &str,
    writers: usize,
    until: Instant,
) -> Vec<String> {
    let tasks: Vec<_> = (0..writers)
        .map(|w| {
            let (client, base, token) = (client.clone(), base.to_owned(), token.to_owned());
            tokio::spawn(async move {
                let mut ids = Vec::new();
                let mut i = 0;
                while Instant::now() < until {
                    if let Some(id) = file(&client, &base, &token, &format!("w{w} i{i}")).await {
                        ids.push(id);
                    }
                    i += 1;
                }
                ids
            })
        })
        .collect();
    let mut all = Vec::new();
    for t in tasks {
        all.extend(t.await.unwrap());
    }
    all
}

/// [`keep_filing`] as a task of its own.
fn spawn_filing(
    client: &reqwest::Client,
    base: &str,
    token: &str,
    writers: usize,
    until: Instant,
) -> tokio::task::JoinHandle<Vec<String>> {
    let (client, base, token) = (client.clone(), base.to_owned(), token.to_owned());
    tokio::spawn(async move { keep_filing(&client, &base, &token, writers, until).await })
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn three_instances_on_one_database_share_writes_revocation_and_the_login_count() {
    let (url, _dir) = fresh_database_url();
    let client = client(20);
    let nodes = three(&client, &url).await;

    // Concurrent writes through all three, the chains verifying while they run.
    let guard = token(&client, &nodes[0].base, "vakt1").await;
    let police = token(&client, &nodes[1].base, "polis1").await;
    let until = Instant::now() + Duration::from_secs(2);
    let writes: Vec<_> = nodes
        .iter()
        .map(|n| spawn_filing(&client, &n.base, &guard, 3, until))
        .collect();
    let verifier = tokio::task::spawn_blocking({
        let url = url.clone();
        move || {
            let mut runs = Vec::new();
            while Instant::now() < until {
                runs.push(audit_verify(&url));
            }
            runs
        }
    });
    let mut acked: Vec<String> = Vec::new();
    for w in writes {
        acked.extend(w.await.unwrap());
    }
    for (ok, out) in verifier.await.unwrap() {
        assert!(ok, "audit verify during writes: {out}");
    }
    assert!(acked.len() >= 30, "only {} writes", acked.len());
    for n in &nodes {
        for id in &acked {
            let s = status(
                &client,
                format!("{}/api/v1/observations/{id}", n.base),
                &police,
            )
            .await;
            assert_eq!(s, StatusCode::OK, "{id} through {}", n.base);
        }
    }
    let (ok, out) = audit_verify(&url);
    assert!(ok, "{out}");
    if is_postgres() {
        // Each writer of each instance appends to its own chain.
        let chains = 3 * samverkan::config::DEFAULT_WRITERS;
        assert!(out.contains(&format!("in {chains} chain(s)")), "{out}");
    }

    // A logout on one instance is refused on the others at once, even where the session
    // was just used (and cached).
    let session = token(&client, &nodes[0].base, "polis1").await;
    for n in &nodes {
        let s = status(&client, format!("{}/api/v1/observations", n.base), &session).await;
        assert_eq!(s, StatusCode::OK);
    }
    let r = client
        .post(format!("{}/api/v1/auth/logout", nodes[0].base))
        .bearer_auth(&session)
        .json(&json!({}))
        .send()
        .await
        .unwrap();
    assert!(r.status().is_success(), "{}", r.status());
    for n in &nodes[1..] {
        for path in [
            "/api/v1/observations",
            "/api/v1/me",
            "/api/v1/observations?limit=1",
        ] {
            let s = status(&client, format!("{}{path}", n.base), &session).await;
            assert_eq!(s, StatusCode::UNAUTHORIZED, "{path} through {}", n.base);
        }
    }

    // So is a user disabled through another instance.
    let soc = token(&client, &nodes[2].base, "soc1").await;
    let referrals = format!("{}/api/v1/referrals", nodes[2].base);
    assert_eq!(
        status(&client, referrals.clone(), &soc).await,
        StatusCode::OK
    );
    let admin = token(&client, &nodes[0].base, "admin1").await;
    let r = client
        .patch(format!("{}/api/v1/admin/users/soc1", nodes[0].base))
        .bearer_auth(&admin)
        .json(&json!({"disabled": true}))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::OK);
    assert_eq!(
        status(&client, referrals, &soc).await,
        StatusCode::UNAUTHORIZED
    );

    // A guard moved off a place through one instance never reads that place's on-site
    // section through another, not even from that instance's cache: the next answer is
    // a 409 (the request read the user before the change) or already without it.
    let r = client
        .post(format!("{}/api/v1/situation-reports", nodes[1].base))
        .bearer_auth(&police)
        .json(&json!({"place": "sergels-torg", "title": "T", "sections": [
            {"audience": "general", "body": "MULTI-GENERAL"}, {"audience": "on_site", "body": "MULTI-ON-SITE"}]}))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::CREATED);
    let report: Value = r.json().await.unwrap();
    let path = format!(
        "{}/api/v1/situation-reports/{}",
        nodes[1].base,
        report["id"].as_str().unwrap()
    );
    let read = |token: String| {
        let (client, path) = (client.clone(), path.clone());
        async move {
            let r = client.get(path).bearer_auth(token).send().await.unwrap();
            (r.status(), r.text().await.unwrap())
        }
    };
    let (s, body) = read(guard.clone()).await;
    assert_eq!(s, StatusCode::OK);
    assert!(body.contains("MULTI-ON-SITE"), "{body}");
    let r = client
        .patch(format!("{}/api/v1/admin/users/vakt1", nodes[0].base))
        .bearer_auth(token(&client, &nodes[0].base, "admin1").await)
        .json(&json!({"places": ["hasselby-torg"]}))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::OK);
    let (s, body) = read(guard.clone()).await;
    assert!(
        s == StatusCode::CONFLICT || (s == StatusCode::OK && !body.contains("MULTI-ON-SITE")),
        "{s} {body}"
    );
    assert!(!body.contains("MULTI-ON-SITE"), "{body}");
    let (s, body) = read(guard.clone()).await;
    assert_eq!(s, StatusCode::OK, "sent again: {body}");
    assert!(
        body.contains("MULTI-GENERAL") && !body.contains("MULTI-ON-SITE"),
        "{body}"
    );

    // Thirty wrong passwords at once, spread over the three: five are checked.
    let attempts: Vec<_> = (0..30)
        .map(|i| {
            let (client, base) = (client.clone(), nodes[i % 3].base.clone());
            tokio::spawn(async move {
                client
                    .post(format!("{base}/api/v1/auth/login"))
                    .json(&json!({"username": "falt1", "password": format!("wrong-{i}")}))
                    .send()
                    .await
                    .unwrap()
                    .status()
            })
        })
        .collect();
    let mut statuses = Vec::new();
    for a in attempts {
        statuses.push(a.await.unwrap());
    }
    let checked = statuses
        .iter()
        .filter(|s| **s == StatusCode::UNAUTHORIZED)
        .count();
    assert_eq!(checked, 5, "{statuses:?}");
    assert_eq!(
        statuses
            .iter()
            .filter(|s| **s == StatusCode::TOO_MANY_REQUESTS)
            .count(),
        25,
        "{statuses:?}"
    );
    let _ = PASSWORD;
}

/// One instance frozen (SIGSTOP) in the middle of writing: the other two keep
/// acknowledging writes the whole time; thawed, it recovers, and nothing it acknowledged
/// is lost. PostgreSQL only: on SQLite, one file's write lock is the whole database's,
/// and a frozen holder stops every writer by design (one instance per file).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_frozen_instance_holds_up_the_others_for_seconds_at_most() {
    if !is_postgres() {
        eprintln!("PostgreSQL only (SAMVERKAN_TEST_DATABASE_URL=postgres://…)");
        return;
    }
    let (url, _dir) = fresh_database_url();
    let client = client(30);
    let nodes = three(&client, &url).await;
    let guard = token(&client, &nodes[0].base, "vakt1").await;
    let police = token(&client, &nodes[1].base, "polis1").await;

    // The first instance is busy writing when it is frozen.
    let frozen_writes = spawn_filing(
        &client,
        &nodes[0].base,
        &guard,
        8,
        Instant::now() + Duration::from_secs(12),
    );
    tokio::time::sleep(Duration::from_millis(500)).await;
    assert!(signal(&nodes[0].child, "STOP"));
    let frozen_at = Instant::now();
    // The others, meanwhile, second by second.
    let mut per_second = Vec::new();
    for _ in 0..6 {
        let until = Instant::now() + Duration::from_secs(1);
        let tasks: Vec<_> = nodes[1..]
            .iter()
            .map(|n| spawn_filing(&client, &n.base, &guard, 2, until))
            .collect();
        let mut n = 0;
        for t in tasks {
            n += t.await.unwrap().len();
        }
        per_second.push(n);
    }
    assert!(signal(&nodes[0].child, "CONT"));
    // Each instance appends to its own chain: nothing the frozen one holds is in the
    // others' way, so every second of the freeze has writes.
    assert!(
        per_second.iter().all(|n| *n > 0),
        "writes per second while one instance was frozen: {per_second:?} ({:?})",
        frozen_at.elapsed()
    );
    let acked_by_frozen = frozen_writes.await.unwrap();
    // Thawed, it serves again (possibly after reconnecting its writer).
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        if file(&client, &nodes[0].base, &guard, "after the thaw")
            .await
            .is_some()
        {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "the thawed instance never wrote again"
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    // Nothing it acknowledged is lost.
    for id in &acked_by_frozen {
        let s = status(
            &client,
            format!("{}/api/v1/observations/{id}", nodes[1].base),
            &police,
        )
        .await;
        assert_eq!(s, StatusCode::OK, "{id}");
    }
    drop(nodes);
    let (ok, out) = audit_verify(&url);
    assert!(ok, "{out}");
}

/// A restart with `--demo` adds only what is missing: a demo user's changed password
/// stays changed, and so does the session it signed in with.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_restart_with_demo_changes_no_existing_user() {
    let (url, _dir) = fresh_database_url();
    let client = crate::helpers::http_client();
    let port = crate::process::free_port();
    let base = format!("http://127.0.0.1:{port}");
    let mut first = Instance {
        base: base.clone(),
        child: start(&url, port),
    };
    wait_ready(&client, &first.base, &mut first.child).await;
    let old = token(&client, &base, "vakt1").await;
    let r = client
        .post(format!("{base}/api/v1/me/password"))
        .bearer_auth(&old)
        .json(&json!({"current_password": PASSWORD, "new_password": "vakt1-chose-this-one"}))
        .send()
        .await
        .unwrap();
    assert!(r.status().is_success(), "{}", r.status());
    let login = |base: String, password: &'static str| {
        let client = client.clone();
        async move {
            client
                .post(format!("{base}/api/v1/auth/login"))
                .json(&json!({"username": "vakt1", "password": password}))
                .send()
                .await
                .unwrap()
        }
    };
    let fresh: Value = login(base.clone(), "vakt1-chose-this-one")
        .await
        .json()
        .await
        .unwrap();
    let session = fresh["access_token"].as_str().unwrap().to_owned();
    drop(first);

    // Started again with the demo password in the environment.
    let port = crate::process::free_port();
    let base = format!("http://127.0.0.1:{port}");
    let mut second = Instance {
        base: base.clone(),
        child: start(&url, port),
    };
    wait_ready(&client, &second.base, &mut second.child).await;
    assert_eq!(
        login(base.clone(), PASSWORD).await.status(),
        StatusCode::UNAUTHORIZED
    );
    assert_eq!(
        login(base.clone(), "vakt1-chose-this-one").await.status(),
        StatusCode::OK
    );
    assert_eq!(
        status(&client, format!("{base}/api/v1/me"), &session).await,
        StatusCode::OK
    );
}
