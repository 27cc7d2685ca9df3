//! The pages clicked through in a real browser (Debian's chromium driven by
//! playwright-core, `tests/web/run.mjs`) against this test's app and database: each
//! role's flow at a phone's 360 px, secrecy in the HTML, CSRF, framing, cookies, idle
//! time-out and axe-core accessibility checks in both languages and colour schemes.
//!
//! Needs node, chromium and `npm ci --prefix tests/web`; without them the test says so
//! and passes, unless `SAMVERKAN_BROWSER_TESTS=required` (as `.ci/run` sets).

use std::path::Path;
use std::process::Command;

use crate::helpers::{spawn_with, PASSWORD};

/// Seconds a browser session may idle in this test: longer than any pause between two
/// requests of a flow (axe-core checks run between them), short enough to wait out once.
const IDLE_SECS: i64 = 15;

fn missing() -> Option<String> {
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    let chromium = std::env::var("CHROMIUM").unwrap_or_else(|_| "/usr/bin/chromium".into());
    if Command::new("node").arg("--version").output().is_err() {
        return Some("node is not installed".into());
    }
    if !Path::new(&chromium).exists() {
        return Some(format!(
            "no chromium at {chromium} (apt-get install chromium)"
        ));
    }
    if !root.join("tests/web/node_modules/playwright-core").exists() {
        return Some("tests/web has no node_modules (npm ci --prefix tests/web)".into());
    }
    None
}

#[tokio::test]
async fn every_role_does_its_work_in_a_real_browser_and_sees_only_its_share() {
    let required = std::env::var("SAMVERKAN_BROWSER_TESTS").as_deref() == Ok("required");
    if let Some(why) = missing() {
        assert!(!required, "browser tests required, but {why}");
        eprintln!("browser tests skipped: {why}");
        return;
    }
    let app = spawn_with(|s| {
        s.web.idle_secs = IDLE_SECS;
        // The flows run one after another; give the page views room.
        s.workers = 2;
    })
    .await;
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    let address = app.address.clone();
    let out = tokio::task::spawn_blocking(move || {
        Command::new("node")
            .arg(root.join("tests/web/run.mjs"))
            .current_dir(root.join("tests/web"))
            .env("BASE_URL", address)
            .env("DEMO_PASSWORD", PASSWORD)
            .env("IDLE_SECS", IDLE_SECS.to_string())
            .output()
    })
    .await
    .unwrap()
    .expect("run node");
    let text = format!(
        "{}\n{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(out.status.success(), "browser tests failed:\n{text}");
    eprintln!("{text}");
}
