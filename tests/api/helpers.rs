//! Spawns the real application on a random port against a real database: a migrated,
//! demo-seeded template is made once per test process and copied for every test, so
//! tests run in parallel without sharing state. `SAMVERKAN_TEST_DATABASE_URL` set to a
//! `postgres://` URL runs everything against PostgreSQL; otherwise SQLite.

use std::path::PathBuf;
use std::sync::{Mutex, OnceLock};

use diesel::connection::SimpleConnection;
use diesel::prelude::*;
use reqwest::StatusCode;
use serde_json::Value;

use samverkan::app::Application;
use samverkan::config::{
    CacheSettings, LoginSettings, RetentionSettings, Secret, Settings, TokenSettings,
};
use samverkan::storage::{self, DatabaseUrl, Db};

pub const PASSWORD: &str = "demo-password-for-tests";
pub const DEMO_USERS: &[&str] = &[
    "polis1",
    "analytiker1",
    "vakt1",
    "vakt2",
    "soc1",
    "falt1",
    "samordnare1",
    "revisor1",
    "admin1",
];

enum Template {
    Sqlite(PathBuf),
    Postgres { admin_url: String, name: String },
}

static TEMPLATE: OnceLock<Template> = OnceLock::new();
static CREATE_LOCK: Mutex<u32> = Mutex::new(0);

fn pg_admin_url() -> Option<String> {
    std::env::var("SAMVERKAN_TEST_DATABASE_URL")
        .ok()
        .filter(|u| u.starts_with("postgres"))
}

fn with_db_name(url: &str, name: &str) -> String {
    let base = match url.rfind('/') {
        Some(i) if i > "postgres://".len() => &url[..i],
        _ => url,
    };
    format!("{base}/{name}")
}

/// Migrates and seeds the demo world into `url`, on a runtime of its own.
fn seed(url: DatabaseUrl) {
    std::thread::spawn(move || {
        let rt = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(1)
            .enable_all()
            .build()
            .expect("runtime");
        rt.block_on(async move {
            storage::migrate(&url).expect("migrate template");
            let db = Db::connect(&url, 1).expect("pool");
            let generation = std::sync::Arc::new(storage::cache::Generation::default());
            let policy = std::sync::Arc::new(
                samverkan::policy::PolicyEngine::load_embedded().expect("policies"),
            );
            let policies = std::sync::Arc::new(samverkan::policy::Policies::new(
                samverkan::policy::PolicyEngine::load_embedded().expect("policies"),
            ));
            let writer = samverkan::audit::writer::Writer::start(
                &url,
                generation,
                samverkan::config::DEFAULT_AUDIT_INDEX_EVERY,
                1,
                policies,
            )
            .expect("writer");
            samverkan::demo::seed(&db, &writer, &policy, Some(Secret::new(PASSWORD)))
                .await
                .expect("seed template");
        });
    })
    .join()
    .expect("seeding thread");
}

fn process_alive(pid: &str) -> bool {
    std::path::Path::new(&format!("/proc/{pid}")).exists()
}

fn template() -> &'static Template {
    TEMPLATE.get_or_init(|| match pg_admin_url() {
        Some(admin_url) => {
            let pid = std::process::id();
            let name = format!("samverkan_tpl_{pid}");
            let mut admin = diesel::PgConnection::establish(&admin_url).expect("connect to PostgreSQL");
            // Databases left by earlier test processes that are gone.
            let stale: Vec<String> = diesel::sql_query(
                "SELECT datname AS name FROM pg_database WHERE datname LIKE 'samverkan_t%'",
            )
            .load::<DbName>(&mut admin)
            .expect("list databases")
            .into_iter()
            .map(|d| d.name)
            .filter(|n| n.split('_').nth(2).is_some_and(|p| !process_alive(p)))
            .collect();
            for n in stale {
                let _ = admin.batch_execute(&format!("DROP DATABASE IF EXISTS \"{n}\" WITH (FORCE)"));
            }
            admin
                .batch_execute(&format!("DROP DATABASE IF EXISTS \"{name}\" WITH (FORCE)"))
                .expect("drop old template database");
            admin
                .batch_execute(&format!("CREATE DATABASE \"{name}\""))
                .expect("create template database");
            seed(DatabaseUrl::Postgres(Secret::new(with_db_name(&admin_url, &name))));
            admin
                .batch_execute(&format!(
                    "SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE datname = '{name}' AND pid <> pg_backend_pid()"
                ))
                .expect("close template connections");
            Template::Postgres { admin_url, name }
        }
        None => {
            let dir = tempfile::Builder::new()
                .prefix("samverkan-tests-")
                .tempdir()
                .expect("tempdir")
                .keep();
            let path = dir.join("template.db");
            seed(DatabaseUrl::Sqlite(path.clone()));
            Template::Sqlite(path)
        }
    })
}

#[derive(QueryableByName)]
struct DbName {
    #[diesel(sql_type = diesel::sql_types::Text)]
    name: String,
}

/// A fresh copy of the template for one test.
fn fresh_database() -> DatabaseUrl {
    let tpl = template();
    let mut n = CREATE_LOCK.lock().unwrap_or_else(|e| e.into_inner());
    *n += 1;
    let pid = std::process::id();
    match tpl {
        Template::Sqlite(path) => {
            let target = path.with_file_name(format!("t{pid}_{n}.db"));
            let mut conn = diesel::SqliteConnection::establish(&path.to_string_lossy())
                .expect("open template");
            // The seeding writer may still be closing its connection: wait for the lock.
            conn.batch_execute(&format!(
                "PRAGMA busy_timeout = 10000; VACUUM INTO '{}'",
                target.display()
            ))
            .expect("copy template");
            DatabaseUrl::Sqlite(target)
        }
        Template::Postgres { admin_url, name } => {
            let db = format!("samverkan_t_{pid}_{n}");
            let mut admin =
                diesel::PgConnection::establish(admin_url).expect("connect to PostgreSQL");
            admin
                .batch_execute(&format!("CREATE DATABASE \"{db}\" TEMPLATE \"{name}\""))
                .expect("clone template database");
            DatabaseUrl::Postgres(Secret::new(with_db_name(admin_url, &db)))
        }
    }
}

pub fn test_settings(url: DatabaseUrl) -> Settings {
    Settings {
        database_url: url,
        bind: "127.0.0.1:0".into(),
        policy_dir: Some(PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("policies")),
        // Quick, so a test sees another instance's reload soon.
        policy_poll_ms: 50,
        // The suite signs in the demo users with passwords; the second-factor tests
        // require it for a role themselves.
        oidc: None,
        second_factor: samverkan::config::SecondFactorSettings {
            key: Some(Secret::new("a-test-second-factor-key-of-enough-length")),
            required_roles: Some(Vec::new()),
        },
        tokens: TokenSettings {
            issuer: "samverkan".into(),
            audience: "samverkan-api".into(),
            access_ttl_secs: 900,
            refresh_ttl_secs: 3600,
            keys: vec![("test-key-1".into(), Secret::new(TEST_SECRET))],
            key_file: None,
        },
        login: LoginSettings {
            max_failures_per_user: 5,
            max_failures_per_client: 50,
            window_secs: 900,
            hash_concurrency: 2,
        },
        max_body_bytes: 1024 * 1024,
        pool_size: 4,
        workers: 1,
        demo: false,
        demo_password: None,
        json_logs: false,
        // Tests run retention themselves (`samverkan retention run`), never in the background.
        retention: RetentionSettings {
            interval_secs: 0,
            ..RetentionSettings::default()
        },
        // The shipped defaults: the suite runs with the caches on.
        cache: CacheSettings::default(),
        audit_index_every: samverkan::config::DEFAULT_AUDIT_INDEX_EVERY,
        // One chain per app, so that the audit tests can tamper with "the" chain; the
        // binaries the process tests start (crash, multi_instance) run the default.
        writers: 1,
        metrics_bind: None,
        web: samverkan::config::WebSettings::default(),
        proxies: Default::default(),
        // Quick heartbeats, so a test sees one.
        events: samverkan::config::EventSettings {
            heartbeat_secs: 1,
            poll_ms: 50,
            ..Default::default()
        },
    }
}

pub const TEST_SECRET: &str = "test-secret-that-is-at-least-32-bytes-long!!";

/// An HTTP client builder for the tests. The crate's reqwest has rustls without a built-in
/// crypto provider (the service installs ring before it builds a client); the tests'
/// clients share that reqwest, so they install it too.
pub fn http_client_builder() -> reqwest::ClientBuilder {
    #[allow(deprecated)]
    let _ = rustls::crypto::ring::default_provider().install_default();
    reqwest::Client::builder()
}

pub fn http_client() -> reqwest::Client {
    http_client_builder().build().expect("client")
}

pub async fn http_get(url: impl reqwest::IntoUrl) -> reqwest::Result<reqwest::Response> {
    http_client().get(url).send().await
}

pub struct TestApp {
    pub address: String,
    /// The operator's metrics listener, when the settings ask for one.
    pub metrics_address: Option<String>,
    pub client: reqwest::Client,
    pub db_url: DatabaseUrl,
    /// Stops the server when the test is done (see `start`).
    pub handle: Option<actix_web::dev::ServerHandle>,
}

impl Drop for TestApp {
    /// The server runs on a thread of its own: told to stop, it ends there, and with it
    /// every connection the app holds (a suite of many apps stays within PostgreSQL's
    /// connection limit).
    fn drop(&mut self) {
        if let Some(h) = self.handle.take() {
            // Sends the command at once; the server's own runtime carries it out.
            drop(h.stop(false));
        }
    }
}

/// Builds and runs the application on a thread and runtime of its own, so that it can
/// be stopped whatever becomes of the test's runtime.
pub fn start(settings: Settings) -> TestApp {
    let url = settings.database_url.clone();
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        let rt = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(1)
            .enable_all()
            .build()
            .expect("runtime");
        rt.block_on(async move {
            let app = Application::build(settings).await.expect("build app");
            let handle = app.server().handle();
            tx.send((app.port(), app.metrics_port(), handle))
                .expect("test waits");
            let _ = app.run_until_stopped().await;
        });
    });
    let (port, metrics_port, handle) = rx.recv().expect("the app started");
    TestApp {
        address: format!("http://127.0.0.1:{port}"),
        metrics_address: metrics_port.map(|p| format!("http://127.0.0.1:{p}")),
        client: crate::helpers::http_client_builder()
            .redirect(reqwest::redirect::Policy::none())
            .build()
            .expect("client"),
        db_url: url,
        handle: Some(handle),
    }
}

pub async fn spawn_app() -> TestApp {
    spawn_with(|_| {}).await
}

/// Spawns with adjusted settings.
pub async fn spawn_with(adjust: impl FnOnce(&mut Settings)) -> TestApp {
    let url = tokio::task::spawn_blocking(fresh_database)
        .await
        .expect("fresh database");
    let mut settings = test_settings(url);
    adjust(&mut settings);
    tokio::task::spawn_blocking(move || start(settings))
        .await
        .expect("start the app")
}

/// A response read whole: status, headers and the JSON body (Null when not JSON).
pub struct Resp {
    pub status: StatusCode,
    pub headers: reqwest::header::HeaderMap,
    pub text: String,
    pub json: Value,
}

impl TestApp {
    pub fn url(&self, path: &str) -> String {
        format!("{}{}", self.address, path)
    }

    pub async fn send(&self, req: reqwest::RequestBuilder) -> Resp {
        let r = req.send().await.expect("request");
        let status = r.status();
        let headers = r.headers().clone();
        let text = r.text().await.expect("body");
        let json = serde_json::from_str(&text).unwrap_or(Value::Null);
        Resp {
            status,
            headers,
            text,
            json,
        }
    }

    pub async fn get(&self, path: &str, token: &str) -> Resp {
        self.send(self.client.get(self.url(path)).bearer_auth(token))
            .await
    }

    pub async fn post(&self, path: &str, token: &str, body: &Value) -> Resp {
        self.send(
            self.client
                .post(self.url(path))
                .bearer_auth(token)
                .json(body),
        )
        .await
    }

    pub async fn patch(&self, path: &str, token: &str, body: &Value) -> Resp {
        self.send(
            self.client
                .patch(self.url(path))
                .bearer_auth(token)
                .json(body),
        )
        .await
    }

    pub async fn post_anon(&self, path: &str, body: &Value) -> Resp {
        self.send(self.client.post(self.url(path)).json(body)).await
    }

    pub async fn login_full(&self, username: &str, password: &str) -> Resp {
        self.post_anon(
            "/api/v1/auth/login",
            &serde_json::json!({"username": username, "password": password}),
        )
        .await
    }

    /// A lägesbild at sergels-torg posted by polis1, one section for each audience, each
    /// body `{marker}-GENERAL`, `{marker}-ON-SITE` or `{marker}-POLICE-ONLY`; its id.
    pub async fn situation_report(&self, marker: &str) -> String {
        let polis = self.token("polis1").await;
        let r = self
            .post(
                "/api/v1/situation-reports",
                &polis,
                &serde_json::json!({"place": "sergels-torg", "title": format!("{marker}-TITLE"), "sections": [
                    {"audience": "general", "body": format!("{marker}-GENERAL")},
                    {"audience": "on_site", "body": format!("{marker}-ON-SITE")},
                    {"audience": "police_only", "body": format!("{marker}-POLICE-ONLY")}]}),
            )
            .await;
        assert_eq!(r.status, StatusCode::CREATED, "{}", r.text);
        r.json["id"].as_str().expect("id").to_owned()
    }

    /// Signs out the session of `token` (no body).
    pub async fn logout(&self, token: &str) -> Resp {
        self.send(
            self.client
                .post(self.url("/api/v1/auth/logout"))
                .bearer_auth(token),
        )
        .await
    }

    /// Signs in a demo user and returns the access token.
    pub async fn token(&self, username: &str) -> String {
        let r = self.login_full(username, PASSWORD).await;
        assert_eq!(r.status, StatusCode::OK, "login {username}: {}", r.text);
        r.json["access_token"]
            .as_str()
            .expect("access_token")
            .to_owned()
    }

    /// Runs the real binary on this test's database, with the documented retention
    /// defaults; (success, stdout + stderr).
    pub fn cli(&self, args: &[&str]) -> (bool, String) {
        let url = match &self.db_url {
            DatabaseUrl::Sqlite(p) => p.display().to_string(),
            DatabaseUrl::Postgres(u) => u.expose().to_owned(),
        };
        let out = std::process::Command::new(env!("CARGO_BIN_EXE_samverkan"))
            .args(args)
            .env("DATABASE_URL", url)
            .env("SAMVERKAN_LOG_FORMAT", "text")
            .env("RUST_LOG", "warn")
            .env_remove("SAMVERKAN_RETENTION_OBSERVATION_DAYS")
            .env_remove("SAMVERKAN_RETENTION_SITUATION_REPORT_DAYS")
            .env_remove("SAMVERKAN_RETENTION_REFERRAL_DAYS")
            .output()
            .expect("run samverkan");
        (
            out.status.success(),
            format!(
                "{}{}",
                String::from_utf8_lossy(&out.stdout),
                String::from_utf8_lossy(&out.stderr)
            ),
        )
    }

    /// A direct connection to this test's database (for tampering and checking storage).
    pub fn connect(&self) -> storage::DbConnection {
        storage::establish(&self.db_url).expect("connect")
    }
}
