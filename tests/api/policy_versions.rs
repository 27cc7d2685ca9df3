//! Rules that change without a restart: `samverkan policy reload` and SIGHUP put a new
//! policy set in force on every instance of a database, only after it validates and its
//! decision table passes; every audit entry names the set that decided it, and `policy
//! history` lists the sets with when and by whom they were loaded.

use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use reqwest::StatusCode;
use serde_json::Value;

use crate::helpers::{spawn_with, start, test_settings, TestApp};

const STATS: &str = "/api/v1/statistics/observations?from=2025-01&to=2025-03";

/// A copy of the shipped policy folder the test may edit.
fn policy_copy() -> tempfile::TempDir {
    let dir = tempfile::tempdir().expect("temp dir");
    let shipped = Path::new(env!("CARGO_MANIFEST_DIR")).join("policies");
    for entry in std::fs::read_dir(shipped).expect("policies") {
        let path = entry.expect("entry").path();
        if path.is_file() {
            std::fs::copy(&path, dir.path().join(path.file_name().expect("name"))).expect("copy");
        }
    }
    dir
}

/// The edit a jurist would make: guards no longer read statistics. With `table`, the
/// decision table is updated to match; without, it still expects `allow` and must fail.
fn forbid_guards_statistics(dir: &Path, table: bool) {
    let rules = dir.join("statistics.cedar");
    let mut text = std::fs::read_to_string(&rules).expect("read rules");
    text.push_str(
        "\n@id(\"guards-do-not-read-statistics\")\nforbid (\n  principal,\n  \
         action == Samverkan::Action::\"read_statistics\",\n  resource is Samverkan::Statistics\n) \
         when { principal.role == Samverkan::Role::\"guard\" };\n",
    );
    std::fs::write(&rules, text).expect("write rules");
    if table {
        let csv = dir.join("decisions.csv");
        let text = std::fs::read_to_string(&csv).expect("read table");
        let changed: Vec<String> = text
            .lines()
            .map(|l| {
                if l.starts_with("guard,") && l.contains(",read_statistics,") {
                    l.replace(",allow", ",deny")
                } else {
                    l.to_owned()
                }
            })
            .collect();
        assert!(changed
            .iter()
            .any(|l| l.starts_with("guard,") && l.ends_with(",deny")));
        std::fs::write(&csv, changed.join("\n") + "\n").expect("write table");
    }
}

/// Waits (up to 5 s) until `app` answers `user`'s statistics read with `want`.
async fn wait_for_status(app: &TestApp, token: &str, want: StatusCode) -> Duration {
    let started = Instant::now();
    loop {
        let status = app.get(STATS, token).await.status;
        if status == want {
            return started.elapsed();
        }
        assert!(
            started.elapsed() < Duration::from_secs(5),
            "still {status} after 5 s, expected {want}"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

async fn statistics_entries(app: &TestApp) -> Vec<Value> {
    let auditor = app.token("revisor1").await;
    let r = app
        .get("/api/v1/audit?action=statistics_read&actor=vakt1", &auditor)
        .await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.text);
    r.json["items"].as_array().expect("items").clone()
}

fn history(app: &TestApp) -> String {
    let (ok, out) = app.cli(&["policy", "history"]);
    assert!(ok, "policy history: {out}");
    out
}

#[tokio::test]
async fn a_reloaded_rule_is_in_force_on_every_instance_and_each_entry_names_its_set() {
    let folder = policy_copy();
    let dir: PathBuf = folder.path().to_path_buf();
    let first = {
        let dir = dir.clone();
        spawn_with(move |s| s.policy_dir = Some(dir)).await
    };
    let mut settings = test_settings(first.db_url.clone());
    settings.policy_dir = Some(dir.clone());
    let second = tokio::task::spawn_blocking(move || start(settings))
        .await
        .expect("second instance");
    let guard = first.token("vakt1").await;
    assert_eq!(second.get(STATS, &guard).await.status, StatusCode::OK);
    let before = history(&first);
    assert_eq!(before.matches("start-up of").count(), 1, "{before}");

    forbid_guards_statistics(&dir, true);
    let (ok, out) = first.cli(&[
        "policy",
        "reload",
        dir.to_str().expect("utf-8 path"),
        "--by",
        "jurist Anna",
    ]);
    assert!(ok, "reload: {out}");
    assert!(out.contains("now in force (version 2"), "{out}");
    // Both instances follow the database, neither was told directly.
    let took = wait_for_status(&second, &guard, StatusCode::FORBIDDEN).await;
    wait_for_status(&first, &guard, StatusCode::FORBIDDEN).await;
    assert!(took < Duration::from_secs(2), "took {took:?}");

    let after = history(&first);
    let current = after
        .lines()
        .find(|l| l.ends_with("(current)"))
        .unwrap_or_else(|| panic!("no current line: {after}"));
    assert!(current.contains("jurist Anna"), "{after}");
    assert!(current.trim_start().starts_with('2'), "{after}");
    let new_prefix = current.split_whitespace().nth(1).expect("hash column");

    // The allowed read and the refused one name different sets: the refusal the new one.
    let entries = statistics_entries(&first).await;
    let hash_of = |outcome: &str| -> String {
        entries
            .iter()
            .find(|e| e["outcome"] == outcome)
            .and_then(|e| e["policy_hash"].as_str())
            .unwrap_or_else(|| panic!("no {outcome} entry with a policy hash: {entries:?}"))
            .to_owned()
    };
    let (allowed, denied) = (hash_of("success"), hash_of("denied"));
    assert_ne!(allowed, denied);
    assert!(denied.starts_with(new_prefix), "{denied} vs {after}");
    assert_eq!(allowed.len(), 64);

    // The load itself is on the trail, and the trail still verifies.
    let auditor = first.token("revisor1").await;
    let loads = first
        .get("/api/v1/audit?action=policy_loaded", &auditor)
        .await;
    let loads = loads.json["items"].as_array().expect("items").clone();
    assert!(
        loads.iter().any(|e| e["record_id"] == denied.as_str()),
        "{loads:?}"
    );
    let (ok, out) = first.cli(&["audit", "verify"]);
    assert!(ok, "audit verify: {out}");

    // Reloading the same files again changes nothing.
    let (ok, out) = first.cli(&["policy", "reload", dir.to_str().expect("utf-8 path")]);
    assert!(ok && out.contains("already in force"), "{out}");
    assert_eq!(history(&first).lines().count(), after.lines().count());
}

#[tokio::test]
async fn a_set_that_fails_validation_or_its_decision_table_is_refused_and_the_rules_stay() {
    let folder = policy_copy();
    let dir: PathBuf = folder.path().to_path_buf();
    let app = {
        let dir = dir.clone();
        spawn_with(move |s| s.policy_dir = Some(dir)).await
    };
    let guard = app.token("vakt1").await;
    let before = history(&app);

    // The rule changed, the decision table not: the table says what the jurists meant.
    forbid_guards_statistics(&dir, false);
    let (ok, out) = app.cli(&["policy", "reload", dir.to_str().expect("utf-8 path")]);
    assert!(!ok, "a failing decision table was accepted: {out}");
    assert!(out.contains("decisions.csv"), "{out}");
    assert!(out.contains("refused"), "{out}");

    // Not even valid Cedar: refused with the file and line.
    std::fs::write(
        dir.join("broken.cedar"),
        "permit (principal, action, resource\n",
    )
    .expect("write");
    let (ok, out) = app.cli(&["policy", "reload", dir.to_str().expect("utf-8 path")]);
    assert!(!ok, "{out}");
    assert!(out.contains("broken.cedar:"), "{out}");

    tokio::time::sleep(Duration::from_millis(300)).await;
    assert_eq!(history(&app), before);
    assert_eq!(app.get(STATS, &guard).await.status, StatusCode::OK);
}

#[cfg(unix)]
#[tokio::test]
async fn sighup_puts_the_edited_folder_in_force() {
    use crate::process::{free_port, fresh_database_url, token, wait_ready, KEYS, PASSWORD};
    let folder = policy_copy();
    let (url, _db_dir) = fresh_database_url();
    let port = free_port();
    let mut child = std::process::Command::new(env!("CARGO_BIN_EXE_samverkan"))
        .args(["serve", "--demo", "--bind", &format!("127.0.0.1:{port}")])
        .env("DATABASE_URL", &url)
        .env("SAMVERKAN_DEMO_PASSWORD", PASSWORD)
        .env("SAMVERKAN_JWT_KEYS", KEYS)
        .env("SAMVERKAN_POLICY_DIR", folder.path())
        .env("RUST_LOG", "error")
        .stdout(std::process::Stdio::null())
        .spawn()
        .expect("start samverkan");
    let base = format!("http://127.0.0.1:{port}");
    let client = crate::helpers::http_client();
    wait_ready(&client, &base, &mut child).await;
    let guard = token(&client, &base, "vakt1").await;
    let status = |client: reqwest::Client, base: String, guard: String| async move {
        client
            .get(format!("{base}{STATS}"))
            .bearer_auth(guard)
            .send()
            .await
            .expect("request")
            .status()
    };
    assert_eq!(
        status(client.clone(), base.clone(), guard.clone()).await,
        StatusCode::OK
    );

    forbid_guards_statistics(folder.path(), true);
    let pid = i32::try_from(child.id()).expect("pid");
    // SAFETY: kill(2) with a child's pid and a signal number has no memory effects.
    assert_eq!(unsafe { libc::kill(pid, libc::SIGHUP) }, 0);
    let started = Instant::now();
    while status(client.clone(), base.clone(), guard.clone()).await != StatusCode::FORBIDDEN {
        assert!(
            started.elapsed() < Duration::from_secs(5),
            "SIGHUP did not put the folder in force"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_samverkan"))
        .args(["policy", "history"])
        .env("DATABASE_URL", &url)
        .output()
        .expect("history");
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(
        text.lines()
            .any(|l| l.contains("SIGHUP to") && l.ends_with("(current)")),
        "{text}"
    );
    let _ = child.kill();
    let _ = child.wait();
}
