//! The application: one documented state shared by all handlers, and `Application::build`
//! which binds (port 0 in tests), migrates, seeds the demo world if asked and serves.

use std::net::TcpListener;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use actix_web::dev::Server;
use actix_web::{web, App, HttpServer};
use anyhow::Context;

use crate::auth::password::Hasher;
use crate::auth::tokens::{generate_secret, TokenService};
use crate::config::{parse_keys, Secret, Settings};
use crate::policy::PolicyEngine;
use crate::storage::cache::{self, Caches};
use crate::storage::writer::Writer;
use crate::storage::{self, DatabaseUrl, Db};

/// Everything a handler may use. Built once per process; nothing global.
pub struct AppState {
    pub settings: Arc<Settings>,
    /// Read pool (blocking work runs on the blocking pool).
    pub db: Db,
    /// The single write path: group commit of writes and their audit entries.
    pub writer: Writer,
    /// The Cedar policy set, validated at start; decides every part.
    pub policy: Arc<PolicyEngine>,
    pub tokens: TokenService,
    pub hasher: Hasher,
    /// Sessions and situation reports kept in memory, dropped on any change to them.
    pub caches: Arc<Caches>,
}

/// Loads the policies named by the settings: an explicit folder, else `./policies`,
/// else the copy built into the binary.
pub fn load_policies(settings: &Settings) -> anyhow::Result<PolicyEngine> {
    let dir = settings.policy_dir.clone().or_else(|| {
        Some(PathBuf::from("policies")).filter(|p| p.join("schema.cedarschema").exists())
    });
    let engine = match &dir {
        Some(d) => PolicyEngine::load(d).map_err(|e| anyhow::anyhow!("{e}"))?,
        None => PolicyEngine::load_embedded().map_err(|e| anyhow::anyhow!("{e}"))?,
    };
    tracing::info!(
        policies = engine.policy_count(),
        source = %dir.as_deref().map(|d| d.display().to_string()).unwrap_or_else(|| "built-in".into()),
        "policies loaded and validated"
    );
    Ok(engine)
}

fn default_key_file(url: &DatabaseUrl) -> Option<PathBuf> {
    match url {
        DatabaseUrl::Sqlite(p) => {
            let mut name = p.file_name()?.to_os_string();
            name.push(".signing-keys");
            Some(p.with_file_name(name))
        }
        DatabaseUrl::Postgres(_) => None,
    }
}

fn write_private(path: &Path, content: &str) -> anyhow::Result<()> {
    use std::io::Write;
    let mut opts = std::fs::OpenOptions::new();
    opts.write(true).create_new(true);
    #[cfg(unix)]
    {
        use std::os::unix::fs::OpenOptionsExt;
        opts.mode(0o600);
    }
    let mut f = opts
        .open(path)
        .with_context(|| format!("cannot create {}", path.display()))?;
    f.write_all(content.as_bytes())?;
    Ok(())
}

/// Signing keys: configured ones, else a key file (generated on first start beside a
/// SQLite database, owner-only), else — with `--demo` on PostgreSQL — a key for this run.
pub fn resolve_keys(settings: &Settings) -> anyhow::Result<Vec<(String, Secret)>> {
    if !settings.tokens.keys.is_empty() {
        return Ok(settings.tokens.keys.clone());
    }
    let file = settings
        .tokens
        .key_file
        .clone()
        .or_else(|| default_key_file(&settings.database_url));
    if let Some(path) = file {
        if path.exists() {
            let raw = std::fs::read_to_string(&path)
                .with_context(|| format!("cannot read signing keys from {}", path.display()))?;
            return parse_keys(&raw).map_err(|e| anyhow::anyhow!("{}: {e}", path.display()));
        }
        let kid = format!("k{}", time::OffsetDateTime::now_utc().unix_timestamp());
        let secret = generate_secret();
        write_private(&path, &format!("{kid}:{}\n", secret.expose()))?;
        tracing::info!(file = %path.display(), "generated a token signing key");
        return Ok(vec![(kid, secret)]);
    }
    if settings.demo {
        tracing::warn!("no signing key configured: using a key for this run only (demo)");
        return Ok(vec![("demo".into(), generate_secret())]);
    }
    anyhow::bail!("no token signing key: set SAMVERKAN_JWT_KEYS=kid:secret (32+ bytes) or SAMVERKAN_JWT_KEY_FILE")
}

pub struct Application {
    server: Server,
    port: u16,
    state: web::Data<AppState>,
}

impl Application {
    /// Migrates, seeds (with `settings.demo`), validates the policies and binds; the
    /// server is not yet running until `run_until_stopped` is awaited.
    pub async fn build(settings: Settings) -> anyhow::Result<Self> {
        let url = settings.database_url.clone();
        let policy = Arc::new(load_policies(&settings)?);
        {
            let url = url.clone();
            tokio::task::spawn_blocking(move || storage::migrate(&url))
                .await?
                .context("migrating the database")?;
        }
        let keys = resolve_keys(&settings)?;
        let tokens = TokenService::new(&settings.tokens, &keys).map_err(|e| anyhow::anyhow!(e))?;
        let db = {
            let (url, size) = (url.clone(), settings.pool_size);
            tokio::task::spawn_blocking(move || Db::connect(&url, size)).await??
        };
        let caches = Arc::new(Caches::new(settings.cache.entries));
        // Started before anything is cached: see `storage::cache`.
        cache::spawn_poller(
            caches.clone(),
            url.clone(),
            std::time::Duration::from_millis(settings.cache.poll_ms),
        )?;
        let writer = Writer::start(&url, caches.clone(), settings.audit_index_every)?;
        let hasher = {
            let n = settings.login.hash_concurrency;
            tokio::task::spawn_blocking(move || Hasher::new(n))
                .await?
                .map_err(|e| anyhow::anyhow!("{e}"))?
        };
        if settings.demo {
            crate::demo::seed(&db, &writer, settings.demo_password.clone()).await?;
        }
        let listener = TcpListener::bind(&settings.bind)
            .with_context(|| format!("cannot listen on {}", settings.bind))?;
        let port = listener.local_addr()?.port();
        let state = web::Data::new(AppState {
            settings: Arc::new(settings),
            db,
            writer,
            policy,
            tokens,
            hasher,
            caches,
        });
        crate::retention::spawn_job(
            state.writer.clone(),
            state.db.clone(),
            state.settings.retention.clone(),
        );
        let workers = state.settings.workers;
        let prometheus = crate::api::metrics()?;
        let app_state = state.clone();
        let mut server = HttpServer::new(move || {
            App::new()
                .app_data(app_state.clone())
                .configure(|cfg| crate::api::configure(cfg, &app_state.settings))
                .wrap(actix_web::middleware::from_fn(
                    crate::api::reject_nul_in_uri,
                ))
                .wrap(prometheus.clone())
                .wrap(crate::api::security_headers())
                .wrap(tracing_actix_web::TracingLogger::default())
        })
        .listen(listener)?;
        if workers > 0 {
            server = server.workers(workers);
        }
        let server = server.disable_signals().shutdown_timeout(10).run();
        tracing::info!(port, database = %url.redacted(), "samverkan listening");
        Ok(Application {
            server,
            port,
            state,
        })
    }

    pub fn port(&self) -> u16 {
        self.port
    }

    pub fn state(&self) -> web::Data<AppState> {
        self.state.clone()
    }

    pub fn server(&self) -> &Server {
        &self.server
    }

    pub async fn run_until_stopped(self) -> std::io::Result<()> {
        let handle = self.server.handle();
        // Stop gracefully on SIGINT/SIGTERM: in-flight requests finish, then the writer drains.
        tokio::spawn(async move {
            crate::shutdown_signal().await;
            handle.stop(true).await;
        });
        self.server.await
    }
}
