//! The real binary as separate processes on one database: what an operator runs (crash
//! safety, several instances behind a load balancer).

use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use diesel::connection::SimpleConnection;
use diesel::Connection;
use reqwest::StatusCode;
use serde_json::{json, Value};

pub const PASSWORD: &str = "crash-test-demo-password";
pub const KEYS: &str = "crash-key:a-crash-test-signing-secret-of-enough-length";

pub fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

/// A fresh database: a temp SQLite file, or a new PostgreSQL database.
pub fn fresh_database_url() -> (String, Option<tempfile::TempDir>) {
    match std::env::var("SAMVERKAN_TEST_DATABASE_URL")
        .ok()
        .filter(|u| u.starts_with("postgres"))
    {
        Some(admin_url) => {
            let name = format!(
                "samverkan_tcrash_{}_{}",
                std::process::id(),
                uuid::Uuid::new_v4().simple()
            );
            let mut admin = diesel::PgConnection::establish(&admin_url).unwrap();
            admin
                .batch_execute(&format!("CREATE DATABASE \"{name}\""))
                .unwrap();
            let base = &admin_url[..admin_url.rfind('/').unwrap()];
            (format!("{base}/{name}"), None)
        }
        None => {
            let dir = tempfile::tempdir().unwrap();
            let path = dir.path().join("crash.db");
            (path.display().to_string(), Some(dir))
        }
    }
}

pub fn start(url: &str, port: u16) -> Child {
    Command::new(env!("CARGO_BIN_EXE_samverkan"))
        .args(["serve", "--demo", "--bind", &format!("127.0.0.1:{port}")])
        .env("DATABASE_URL", url)
        .env("SAMVERKAN_DEMO_PASSWORD", PASSWORD)
        .env("SAMVERKAN_JWT_KEYS", KEYS)
        .env("RUST_LOG", "error")
        .stdout(Stdio::null())
        // Errors only (RUST_LOG=error): they say why a start failed.
        .stderr(Stdio::inherit())
        .spawn()
        .expect("start samverkan")
}

pub async fn wait_ready(client: &reqwest::Client, base: &str, child: &mut Child) {
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        if let Ok(r) = client.get(format!("{base}/readyz")).send().await {
            if r.status() == StatusCode::OK {
                return;
            }
        }
        assert!(child.try_wait().unwrap().is_none(), "the server exited");
        assert!(Instant::now() < deadline, "the server did not get ready");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

pub async fn token(client: &reqwest::Client, base: &str, user: &str) -> String {
    let r: Value = client
        .post(format!("{base}/api/v1/auth/login"))
        .json(&json!({"username": user, "password": PASSWORD}))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    r["access_token"]
        .as_str()
        .unwrap_or_else(|| panic!("login as {user} gave no token: {r}"))
        .to_owned()
}

pub fn audit_verify(url: &str) -> (bool, String) {
    let out = Command::new(env!("CARGO_BIN_EXE_samverkan"))
        .args(["audit", "verify"])
        .env("DATABASE_URL", url)
        .output()
        .unwrap();
    (
        out.status.success(),
        format!(
            "{}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        ),
    )
}

/// An HTTP client whose every request gives up after `secs` (a frozen server fails the
/// test instead of hanging it).
pub fn client(secs: u64) -> reqwest::Client {
    crate::helpers::http_client_builder()
        .timeout(Duration::from_secs(secs))
        .build()
        .unwrap()
}
