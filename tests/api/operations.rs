use reqwest::StatusCode;

use crate::helpers::{spawn_app, spawn_with};

#[tokio::test]
async fn health_readiness_and_openapi_need_no_token() {
    let app = spawn_app().await;
    for path in ["/healthz", "/readyz", "/openapi.json"] {
        let r = app.send(app.client.get(app.url(path))).await;
        assert_eq!(r.status, StatusCode::OK, "{path}: {}", r.text);
    }
    let doc = app
        .send(app.client.get(app.url("/openapi.json")))
        .await
        .json;
    for path in [
        "/api/v1/auth/login",
        "/api/v1/auth/refresh",
        "/api/v1/auth/logout",
        "/api/v1/me",
        "/api/v1/observations",
        "/api/v1/observations/{id}",
        "/api/v1/situation-reports",
        "/api/v1/referrals/{id}/feedback",
        "/api/v1/referrals/{id}/consents",
        "/api/v1/admin/users",
        "/api/v1/audit",
    ] {
        assert!(doc["paths"][path].is_object(), "openapi lacks {path}");
    }
    assert!(doc["components"]["schemas"]["NewObservation"].is_object());
}

#[tokio::test]
async fn metrics_are_served_only_on_the_operator_address_and_junk_paths_do_not_grow_them() {
    let app = spawn_with(|s| s.metrics_bind = Some("127.0.0.1:0".into())).await;
    // Never on the public address.
    let r = app.send(app.client.get(app.url("/metrics"))).await;
    assert_eq!(r.status, StatusCode::NOT_FOUND, "{}", r.text);
    let metrics = app.metrics_address.clone().expect("a metrics listener");
    let scrape = || async { app.send(app.client.get(format!("{metrics}/metrics"))).await };
    app.send(app.client.get(app.url("/healthz"))).await;
    let before = scrape().await;
    assert_eq!(before.status, StatusCode::OK);
    assert!(
        before.text.contains("samverkan_http_requests_total"),
        "{}",
        before.text
    );
    // A thousand unique junk paths, and methods nobody uses: one label each at most.
    for i in 0..1000 {
        app.send(app.client.get(app.url(&format!("/junk-{i}/x"))))
            .await;
    }
    for method in ["FOO", "BAR", "PROPFIND"] {
        let m = reqwest::Method::from_bytes(method.as_bytes()).unwrap();
        let r = app
            .send(app.client.request(m, app.url("/api/v1/referrals")))
            .await;
        assert_eq!(r.status, StatusCode::METHOD_NOT_ALLOWED, "{method}");
    }
    let after = scrape().await;
    assert!(!after.text.contains("junk"), "a raw path became a label");
    assert!(!after.text.contains("PROPFIND") && !after.text.contains("FOO"));
    assert!(
        after.text.contains("endpoint=\"unmatched\""),
        "{}",
        after.text
    );
    assert!(
        after.text.len() < before.text.len() + 8_000,
        "metrics grew from {} to {} bytes",
        before.text.len(),
        after.text.len()
    );
    // Filings show as a route pattern, never with an id.
    let soc = app.token("soc1").await;
    let r = app
        .post(
            "/api/v1/referrals",
            &soc,
            &serde_json::json!({"receiving_organization": "socialtjansten-norrmalm",
                "child": {"alias": "X"}, "concern": "worried"}),
        )
        .await;
    assert_eq!(r.status, StatusCode::CREATED);
    let id = r.json["id"].as_str().unwrap().to_owned();
    app.get(&format!("/api/v1/referrals/{id}"), &soc).await;
    let last = scrape().await;
    assert!(!last.text.contains(&id));
    assert!(
        last.text.contains("/api/v1/referrals/{id}"),
        "{}",
        last.text
    );
    // The writers' group commits, which the alert on failing audit writes watches.
    let committed = last
        .text
        .lines()
        .find(|l| l.starts_with("samverkan_audit_group_commits_total{outcome=\"committed\"}"))
        .and_then(|l| l.rsplit(' ').next()?.parse::<u64>().ok())
        .unwrap_or_else(|| panic!("no committed group commits in:\n{}", last.text));
    assert!(committed >= 2, "{committed}");
    // Every samverkan metric the alert rules and the dashboard use is one the service
    // serves (they would silently never fire, or draw nothing, otherwise).
    let deploy = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("deploy");
    for file in ["prometheus-alerts.yml", "grafana-dashboard.json"] {
        let text = std::fs::read_to_string(deploy.join(file)).unwrap();
        let mut names: Vec<String> = text
            .match_indices("samverkan_")
            .map(|(i, _)| {
                text[i..]
                    .chars()
                    .take_while(|c| c.is_ascii_lowercase() || *c == '_')
                    .collect()
            })
            .filter(|n: &String| n.ends_with("_total") || n.ends_with("_bucket"))
            .collect();
        names.sort();
        names.dedup();
        assert!(!names.is_empty(), "{file}");
        for name in names {
            assert!(
                last.text
                    .lines()
                    .any(|l| l.starts_with(&format!("{name}{{"))),
                "{file} uses {name}, which the service does not serve"
            );
        }
    }
}

#[tokio::test]
async fn every_response_carries_security_headers_and_no_cors() {
    let app = spawn_app().await;
    let r = app
        .send(
            app.client
                .get(app.url("/api/v1/me"))
                .header("Origin", "https://evil.example"),
        )
        .await;
    assert_eq!(r.status, StatusCode::UNAUTHORIZED);
    assert_eq!(r.headers["x-content-type-options"], "nosniff");
    assert_eq!(r.headers["x-frame-options"], "DENY");
    assert_eq!(r.headers["cache-control"], "no-store");
    assert!(r.headers.get("access-control-allow-origin").is_none());
}

#[tokio::test]
async fn unknown_routes_get_a_json_404() {
    let app = spawn_app().await;
    let r = app
        .send(app.client.get(app.url("/api/v1/nothing-here")))
        .await;
    assert_eq!(r.status, StatusCode::NOT_FOUND);
    assert_eq!(r.json["error"], "not_found");
}

/// On SQLite, commits land in the write-ahead log and the checkpointer copies them into
/// the database file as the service runs (every few dozen commits), so the log stays
/// small and a restart has little to replay. Without it the file would not grow until
/// the writer's safety-net checkpoint at 20,000 log pages.
#[tokio::test]
async fn the_log_is_copied_into_the_database_file_while_the_service_runs() {
    let app = spawn_app().await;
    let samverkan::storage::DatabaseUrl::Sqlite(path) = app.db_url.clone() else {
        return; // PostgreSQL keeps its own log.
    };
    let size = || std::fs::metadata(&path).map(|m| m.len()).unwrap_or(0);
    let before = size();
    let token = app.token("vakt1").await;
    // One request at a time: each is a commit of its own.
    for i in 0..100 {
        let body = serde_json::json!({"place": "sergels-torg", "observed_at": "2026-11-01T21:00:00Z",
            "category": "drug_use", "description": format!("CHECKPOINT-{i} {}", "x".repeat(400))});
        let r = app.post("/api/v1/observations", &token, &body).await;
        assert_eq!(r.status, StatusCode::CREATED, "{}", r.text);
    }
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
    while size() <= before && std::time::Instant::now() < deadline {
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    }
    assert!(
        size() > before,
        "the database file stayed at {before} bytes: nothing was checkpointed"
    );
}
