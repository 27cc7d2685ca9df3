//! The binary as an operator runs it: demo start, key generation, admin bootstrap,
//! policy check and test.

use std::io::{BufRead, BufReader};
use std::net::TcpListener;
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use serde_json::json;

const BIN: &str = env!("CARGO_BIN_EXE_samverkan");

fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

fn command() -> Command {
    let mut c = Command::new(BIN);
    for (k, _) in std::env::vars() {
        if k.starts_with("SAMVERKAN_") || k == "DATABASE_URL" {
            c.env_remove(k);
        }
    }
    c.env("SAMVERKAN_LOG_FORMAT", "text")
        .env("RUST_LOG", "warn");
    c
}

struct Server {
    child: Child,
    base: String,
    stdout: Vec<String>,
}

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Starts `serve --demo` and waits for /readyz; collects what it printed to stdout.
fn start_demo(db: &str, extra: &[(&str, &str)]) -> Server {
    let port = free_port();
    let mut cmd = command();
    cmd.args(["serve", "--demo", "--bind", &format!("127.0.0.1:{port}")])
        .env("DATABASE_URL", db)
        .stdout(Stdio::piped())
        .stderr(Stdio::null());
    for (k, v) in extra {
        cmd.env(k, v);
    }
    let mut child = cmd.spawn().expect("start samverkan");
    let base = format!("http://127.0.0.1:{port}");
    let out = child.stdout.take().unwrap();
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        for line in BufReader::new(out).lines().map_while(Result::ok) {
            let _ = tx.send(line);
        }
    });
    let deadline = Instant::now() + Duration::from_secs(30);
    assert!(ready::wait(&base, deadline), "server did not become ready");
    let stdout: Vec<String> = rx.try_iter().collect();
    Server {
        child,
        base,
        stdout,
    }
}

mod ready {
    //! Readiness polling without an async runtime.
    use std::io::{Read, Write};
    use std::net::TcpStream;
    use std::time::{Duration, Instant};

    pub fn wait(base: &str, deadline: Instant) -> bool {
        let addr = base.trim_start_matches("http://").to_owned();
        while Instant::now() < deadline {
            if let Ok(mut s) = TcpStream::connect(&addr) {
                let _ =
                    s.write_all(b"GET /readyz HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n");
                let mut buf = String::new();
                let _ = s.read_to_string(&mut buf);
                if buf.starts_with("HTTP/1.1 200") {
                    return true;
                }
            }
            std::thread::sleep(Duration::from_millis(100));
        }
        false
    }
}

async fn login(base: &str, user: &str, password: &str) -> (u16, serde_json::Value) {
    let r = crate::helpers::http_client()
        .post(format!("{base}/api/v1/auth/login"))
        .json(&json!({"username": user, "password": password}))
        .send()
        .await
        .unwrap();
    let status = r.status().as_u16();
    (status, r.json().await.unwrap_or_default())
}

#[tokio::test]
async fn demo_on_sqlite_prints_a_password_once_and_keeps_an_owner_only_signing_key() {
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("samverkan.db");
    let db = db.to_str().unwrap();
    let first = start_demo(db, &[]);
    let line = first
        .stdout
        .iter()
        .find(|l| l.contains("password"))
        .unwrap_or_else(|| panic!("no password printed: {:?}", first.stdout));
    let password = line.rsplit(' ').next().unwrap().to_owned();
    let (status, body) = login(&first.base, "vakt1", &password).await;
    assert_eq!(status, 200);
    let token = body["access_token"].as_str().unwrap().to_owned();
    let key = Path::new(db).with_file_name("samverkan.db.signing-keys");
    let mode =
        std::os::unix::fs::PermissionsExt::mode(&std::fs::metadata(&key).unwrap().permissions());
    assert_eq!(mode & 0o777, 0o600);
    drop(first);

    // Idempotent: a second start seeds nothing, prints no password, and the kept key
    // still verifies the token issued before the restart.
    let second = start_demo(db, &[]);
    assert!(
        !second.stdout.iter().any(|l| l.contains("password")),
        "{:?}",
        second.stdout
    );
    let me = crate::helpers::http_client()
        .get(format!("{}/api/v1/me", second.base))
        .bearer_auth(&token)
        .send()
        .await
        .unwrap();
    assert_eq!(me.status().as_u16(), 200);
    assert_eq!(login(&second.base, "soc1", &password).await.0, 200);
}

#[tokio::test]
async fn demo_password_comes_from_the_environment_on_either_backend() {
    let dir = tempfile::tempdir().unwrap();
    let db = match std::env::var("SAMVERKAN_TEST_DATABASE_URL") {
        Ok(admin) if admin.starts_with("postgres") => {
            use diesel::connection::SimpleConnection;
            use diesel::Connection;
            let name = format!("samverkan_cli_{}", std::process::id());
            let mut c = diesel::PgConnection::establish(&admin).unwrap();
            c.batch_execute(&format!("DROP DATABASE IF EXISTS \"{name}\" WITH (FORCE)"))
                .unwrap();
            c.batch_execute(&format!("CREATE DATABASE \"{name}\""))
                .unwrap();
            format!("{}/{name}", &admin[..admin.rfind('/').unwrap()])
        }
        _ => dir.path().join("demo.db").to_string_lossy().into_owned(),
    };
    let server = start_demo(
        &db,
        &[("SAMVERKAN_DEMO_PASSWORD", "a-chosen-demo-password")],
    );
    for user in crate::helpers::DEMO_USERS {
        assert_eq!(
            login(&server.base, user, "a-chosen-demo-password").await.0,
            200,
            "{user}"
        );
    }
}

#[test]
fn the_first_admin_is_bootstrapped_from_the_command_line() {
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("admin.db");
    let db = db.to_str().unwrap();
    let run = |args: &[&str]| {
        let out = command()
            .args(args)
            .env("DATABASE_URL", db)
            .env("SAMVERKAN_NEW_PASSWORD", "first-admin-password")
            .output()
            .unwrap();
        assert!(
            out.status.success(),
            "{args:?}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        String::from_utf8_lossy(&out.stdout).into_owned()
    };
    run(&["migrate"]);
    run(&[
        "admin",
        "create-org",
        "--id",
        "it",
        "--name",
        "IT-avdelningen",
        "--kind",
        "municipality",
    ]);
    run(&[
        "admin",
        "create-user",
        "--username",
        "root1",
        "--display-name",
        "Root",
        "--organization",
        "it",
        "--role",
        "admin",
    ]);
    assert!(run(&["admin", "list-users"]).contains("root1\tadmin\tit"));
    run(&["admin", "disable-user", "root1"]);
    assert!(run(&["admin", "list-users"]).contains("disabled"));
    assert!(run(&["audit", "verify"]).contains("verified"));
}

#[test]
fn policy_check_and_test_pass_on_the_shipped_policies_and_name_the_line_of_a_broken_one() {
    let shipped = concat!(env!("CARGO_MANIFEST_DIR"), "/policies");
    for sub in ["check", "test"] {
        let out = command().args(["policy", sub, shipped]).output().unwrap();
        assert!(
            out.status.success(),
            "policy {sub}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
    }
    let dir = tempfile::tempdir().unwrap();
    for entry in std::fs::read_dir(shipped).unwrap() {
        let p = entry.unwrap().path();
        std::fs::copy(&p, dir.path().join(p.file_name().unwrap())).unwrap();
    }
    let file = dir.path().join("referrals.cedar");
    let mut text = std::fs::read_to_string(&file).unwrap();
    // The error points at the condition, on the line after the @id.
    let line = text.lines().count() + 3;
    text.push_str("\n@id(\"broken\")\npermit (principal, action, resource) when { principal.no_such_attribute };\n");
    std::fs::write(&file, text).unwrap();
    let out = command()
        .args(["policy", "check", dir.path().to_str().unwrap()])
        .output()
        .unwrap();
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains(&format!("referrals.cedar:{line}:")), "{err}");
    // The service refuses to start on it.
    let out = command()
        .args(["serve", "--bind", "127.0.0.1:0"])
        .env("SAMVERKAN_POLICY_DIR", dir.path())
        .env("DATABASE_URL", dir.path().join("x.db"))
        .output()
        .unwrap();
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("referrals.cedar"));
}

/// The configuration reference names every variable with its default, as a table.
#[test]
fn config_reference_lists_every_variable_with_its_default() {
    let out = command()
        .args(["config", "reference"])
        .output()
        .expect("run samverkan");
    assert!(out.status.success());
    let text = String::from_utf8(out.stdout).unwrap();
    assert!(
        text.starts_with("| variable | default | meaning |"),
        "{text}"
    );
    for row in [
        "| `DATABASE_URL` | `samverkan.db` |",
        "| `SAMVERKAN_TRUSTED_PROXIES` | none |",
        "| `SAMVERKAN_DB_WRITERS` | 3 |",
    ] {
        assert!(text.contains(row), "{row} missing from:\n{text}");
    }
}

/// `samverkan backup` while guards file observations: the copy is consistent (its trail
/// verifies, and every observation in it was acknowledged), it restores into a new
/// database that verifies against the copy's head, and a restore over an existing file
/// or from a damaged copy changes nothing.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_backup_under_write_load_restores_and_verifies() {
    use diesel::connection::SimpleConnection;
    use diesel::prelude::*;
    let dir = tempfile::tempdir().unwrap();
    let live = dir.path().join("live.db");
    let server = start_demo(
        live.to_str().unwrap(),
        &[("SAMVERKAN_DEMO_PASSWORD", "backup-test-password-1")],
    );
    let (_, body) = login(&server.base, "vakt1", "backup-test-password-1").await;
    let token = body["access_token"].as_str().unwrap().to_owned();
    // Writes go on, unpaced, until the backup is done.
    let stop = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
    let load = {
        let (base, token, stop) = (server.base.clone(), token.clone(), stop.clone());
        tokio::spawn(async move {
            let client = crate::helpers::http_client();
            let mut filed = Vec::new();
            while !stop.load(std::sync::atomic::Ordering::Relaxed) {
                let r = client
                    .post(format!("{base}/api/v1/observations"))
                    .bearer_auth(&token)
                    .json(
                        &json!({"place": "sergels-torg", "observed_at": "2026-11-20T21:30:00Z",
                        "category": "drug_sale", "description": "load"}),
                    )
                    .send()
                    .await
                    .unwrap();
                assert_eq!(r.status().as_u16(), 201);
                let v: serde_json::Value = r.json().await.unwrap();
                filed.push(v["id"].as_str().unwrap().to_owned());
            }
            filed
        })
    };
    tokio::time::sleep(Duration::from_millis(300)).await;
    let copy = dir.path().join("copy.db");
    let out = command()
        .args(["backup", "--out", copy.to_str().unwrap()])
        .env("DATABASE_URL", &live)
        .output()
        .unwrap();
    stop.store(true, std::sync::atomic::Ordering::Relaxed);
    let filed = load.await.unwrap();
    let text = String::from_utf8_lossy(&out.stdout).to_string();
    assert!(
        out.status.success(),
        "{text}{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(text.contains("audit trail verified"), "{text}");
    let mode =
        std::os::unix::fs::PermissionsExt::mode(&std::fs::metadata(&copy).unwrap().permissions());
    assert_eq!(mode & 0o777, 0o600);
    // The copy's head, as printed (`SEQ HASH chain N`): the anchor to restore against.
    let head = text
        .lines()
        .find(|l| l.ends_with("chain 1"))
        .map(|l| l.split(' ').take(2).collect::<Vec<_>>().join(":"))
        .expect("the copy's head");
    drop(server);

    // Restored into a new file: the trail verifies against the copy's head, and the
    // observations in it are ones that were acknowledged.
    let restored = dir.path().join("restored.db");
    let out = command()
        .args([
            "restore",
            "--from",
            copy.to_str().unwrap(),
            "--anchor",
            &head,
        ])
        .env("DATABASE_URL", &restored)
        .output()
        .unwrap();
    let text = String::from_utf8_lossy(&out.stdout).to_string();
    assert!(
        out.status.success(),
        "{text}{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(text.contains("matches"), "{text}");
    let verify = command()
        .args(["audit", "verify"])
        .env("DATABASE_URL", &restored)
        .output()
        .unwrap();
    assert!(
        verify.status.success(),
        "{}",
        String::from_utf8_lossy(&verify.stderr)
    );
    let mut conn = diesel::SqliteConnection::establish(restored.to_str().unwrap()).unwrap();
    let ids: Vec<String> = samverkan::storage::schema::observations::table
        .select(samverkan::storage::schema::observations::id)
        .filter(samverkan::storage::schema::observations::description.eq("load"))
        .load(&mut conn)
        .unwrap();
    assert!(!ids.is_empty(), "the copy holds some of the writes");
    assert!(
        ids.iter().all(|id| filed.contains(id)),
        "only acknowledged writes"
    );

    // Over an existing database without --force: refused, the file unchanged.
    let before = std::fs::read(&restored).unwrap();
    let out = command()
        .args(["restore", "--from", copy.to_str().unwrap()])
        .env("DATABASE_URL", &restored)
        .output()
        .unwrap();
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("--force"));
    assert_eq!(std::fs::read(&restored).unwrap(), before);

    // A damaged copy is refused with the entry named, and nothing is restored.
    diesel::SqliteConnection::establish(copy.to_str().unwrap())
        .unwrap()
        .batch_execute(
            "UPDATE audit_log SET outcome = 'denied' WHERE seq = (SELECT MIN(seq) FROM audit_log)",
        )
        .unwrap();
    let elsewhere = dir.path().join("elsewhere.db");
    let out = command()
        .args(["restore", "--from", copy.to_str().unwrap()])
        .env("DATABASE_URL", &elsewhere)
        .output()
        .unwrap();
    assert!(!out.status.success());
    assert!(
        String::from_utf8_lossy(&out.stderr).contains("BROKEN"),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(!elsewhere.exists());
}
