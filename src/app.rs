//! The application: `Application::build` assembles the one state all handlers share
//! (`api::state::AppState`), binds (port 0 in tests), migrates, seeds the demo world if
//! asked and serves.

use std::net::TcpListener;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use actix_web::dev::Server;
use actix_web::{web, App, HttpServer};
use anyhow::Context;

pub use crate::api::state::AppState;
use crate::audit::writer::Writer;
use crate::auth::password::Hasher;
use crate::auth::second_factor::{FactorKey, SecondFactor};
use crate::auth::tokens::{generate_secret, TokenService};
use crate::config::{parse_keys, Secret, Settings, DEFAULT_TOTP_REQUIRED_ROLES};
use crate::policy::{Policies, PolicyEngine};
use crate::records::CursorSeal;
use crate::storage::cache::{self, GenCache, Generation};
use crate::storage::{self, DatabaseUrl, Db};

/// Who did it, for `policy_versions.loaded_by`: this host and process.
pub fn instance_name(what: &str) -> String {
    let host = std::fs::read_to_string("/proc/sys/kernel/hostname")
        .map(|h| h.trim().to_owned())
        .unwrap_or_else(|_| "unknown host".into());
    format!("{what} {host} (pid {})", std::process::id())
}

/// The policy folder the settings name (an explicit folder, else `./policies` when it
/// holds a schema); `None`: the copy built into the binary.
pub fn policy_folder(settings: &Settings) -> Option<PathBuf> {
    settings.policy_dir.clone().or_else(|| {
        Some(PathBuf::from("policies")).filter(|p| p.join("schema.cedarschema").exists())
    })
}

/// Loads the policies named by the settings: an explicit folder, else `./policies`,
/// else the copy built into the binary.
pub fn load_policies(settings: &Settings) -> anyhow::Result<PolicyEngine> {
    let dir = policy_folder(settings);
    let engine = match &dir {
        Some(d) => PolicyEngine::load(d)?,
        None => PolicyEngine::load_embedded()?,
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
            return parse_keys(&raw).with_context(|| path.display().to_string());
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

/// The second factor's key and required roles: `SAMVERKAN_TOTP_KEY`, else a key file
/// beside a SQLite database (generated owner-only), else with `--demo` a key for the run.
/// On PostgreSQL without a key, start-up fails if any role requires a second factor.
/// `--demo` requires none by default: its users and passwords are published.
pub fn resolve_second_factor(settings: &Settings) -> anyhow::Result<SecondFactor> {
    let required_roles = match &settings.second_factor.required_roles {
        Some(roles) => roles.clone(),
        None if settings.demo => Vec::new(),
        None => DEFAULT_TOTP_REQUIRED_ROLES
            .iter()
            .map(|r| (*r).to_owned())
            .collect(),
    };
    let secret = if let Some(key) = &settings.second_factor.key {
        Some(key.expose().to_owned())
    } else if let DatabaseUrl::Sqlite(db) = &settings.database_url {
        let mut name = db.file_name().unwrap_or_default().to_os_string();
        name.push(".totp-key");
        let path = db.with_file_name(name);
        if path.exists() {
            Some(
                std::fs::read_to_string(&path)
                    .with_context(|| format!("cannot read {}", path.display()))?
                    .trim()
                    .to_owned(),
            )
        } else {
            let secret = generate_secret();
            write_private(&path, &format!("{}\n", secret.expose()))?;
            tracing::info!(file = %path.display(), "generated the second-factor key");
            Some(secret.expose().to_owned())
        }
    } else if settings.demo {
        Some(generate_secret().expose().to_owned())
    } else {
        None
    };
    if let Some(s) = &secret {
        if s.len() < 32 {
            anyhow::bail!("SAMVERKAN_TOTP_KEY must be at least 32 bytes");
        }
    }
    if secret.is_none() && !required_roles.is_empty() {
        anyhow::bail!(
            "{} require a second factor (SAMVERKAN_TOTP_REQUIRED_ROLES), but there is no key to seal them: set SAMVERKAN_TOTP_KEY (32+ bytes), or SAMVERKAN_TOTP_REQUIRED_ROLES=none",
            required_roles.join(", ")
        );
    }
    Ok(SecondFactor {
        key: secret.as_deref().map(FactorKey::derive),
        required_roles,
    })
}

pub struct Application {
    server: Server,
    port: u16,
    /// The operator's listener for metrics, when `SAMVERKAN_METRICS_BIND` is set.
    metrics: Option<(Server, u16)>,
    state: web::Data<AppState>,
}

impl Application {
    /// Migrates, seeds (with `settings.demo`), validates the policies and binds; the
    /// server is not yet running until `run_until_stopped` is awaited.
    pub async fn build(settings: Settings) -> anyhow::Result<Self> {
        let url = settings.database_url.clone();
        let policy = Arc::new(Policies::new(load_policies(&settings)?));
        {
            let url = url.clone();
            tokio::task::spawn_blocking(move || storage::migrate(&url))
                .await?
                .context("migrating the database")?;
        }
        let keys = resolve_keys(&settings)?;
        let second_factor = resolve_second_factor(&settings)?;
        let oidc = match &settings.oidc {
            Some(o) => Some(Arc::new(crate::auth::oidc::Oidc::new(o.clone())?)),
            None => None,
        };
        let tokens = TokenService::new(&settings.tokens, &keys)?;
        let cursor_seal = CursorSeal::new(
            keys.first()
                .map(|(_, secret)| secret.expose().as_bytes())
                .unwrap_or_default(),
        );
        let db = {
            let (url, size) = (url.clone(), settings.pool_size);
            tokio::task::spawn_blocking(move || Db::connect(&url, size)).await??
        };
        let generation = Arc::new(Generation::default());
        // Started before anything is cached: see `storage::cache`.
        cache::spawn_poller(
            generation.clone(),
            url.clone(),
            std::time::Duration::from_millis(settings.cache.poll_ms),
        )?;
        let writer = Writer::start(
            &url,
            generation.clone(),
            settings.audit_index_every,
            settings.writers,
            policy.clone(),
        )?;
        // This instance's files become the set in force unless they already are; from
        // then on it follows whatever set becomes current (reload, SIGHUP, a deployment).
        crate::policy_versions::adopt_at_start(&writer, &policy, &instance_name("start-up of"))
            .await?;
        crate::policy_versions::spawn_watcher(
            &policy,
            url.clone(),
            std::time::Duration::from_millis(settings.policy_poll_ms.max(10)),
        )?;
        let hasher = {
            let n = settings.login.hash_concurrency;
            tokio::task::spawn_blocking(move || Hasher::new(n)).await??
        };
        if settings.demo {
            crate::demo::seed(
                &db,
                &writer,
                &policy.current(),
                settings.demo_password.clone(),
            )
            .await?;
            crate::demo::seed_samples(&db, &writer).await?;
        }
        let listener = TcpListener::bind(&settings.bind)
            .with_context(|| format!("cannot listen on {}", settings.bind))?;
        let port = listener.local_addr()?.port();
        let capacity = settings.cache.entries;
        let (events_db, events_settings) = (db.clone(), settings.events.clone());
        let state = web::Data::new(AppState {
            settings: Arc::new(settings),
            db,
            writer,
            policy,
            tokens,
            hasher,
            cursor_seal,
            sessions: Arc::new(GenCache::new(capacity, generation.clone())),
            reports: Arc::new(GenCache::new(capacity, generation.clone())),
            generation,
            statistics: Arc::new(crate::statistics::DecisionCache::default()),
            events: crate::events::EventBus::start(events_db, events_settings),
            second_factor,
            oidc,
        });
        crate::retention::spawn_job(
            state.writer.clone(),
            state.db.clone(),
            state.settings.retention.clone(),
        );
        let workers = state.settings.workers;
        let registry = prometheus::Registry::new();
        let prometheus = crate::api::middleware::metrics(registry.clone())?;
        registry
            .register(Box::new(state.writer.commits_metric()))
            .context("registering the writer's metrics")?;
        if let Some(oidc) = &state.oidc {
            registry
                .register(Box::new(oidc.fetches.clone()))
                .context("registering the OpenID Provider metrics")?;
        }
        let app_state = state.clone();
        let mut server = HttpServer::new(move || {
            use crate::api::middleware::{count_in_flight, reject_odd_requests, security_headers};
            App::new()
                .app_data(app_state.clone())
                .configure(|cfg| {
                    crate::api::configure(cfg, &app_state.settings);
                    crate::web::configure(cfg);
                })
                .wrap(actix_web::middleware::from_fn(count_in_flight))
                .wrap(prometheus.clone())
                // Outside the metrics: a refused method never becomes a label.
                .wrap(actix_web::middleware::from_fn(reject_odd_requests))
                .wrap(security_headers())
                .wrap(tracing_actix_web::TracingLogger::default())
        })
        .listen(listener)?;
        if workers > 0 {
            server = server.workers(workers);
        }
        let server = server.disable_signals().shutdown_timeout(10).run();
        let metrics = match &state.settings.metrics_bind {
            Some(bind) => Some(metrics_server(bind, registry)?),
            None => None,
        };
        tracing::info!(port, database = %url.redacted(), "samverkan listening");
        if let Some((_, metrics_port)) = &metrics {
            tracing::info!(port = metrics_port, "metrics on the operator listener");
        }
        Ok(Application {
            server,
            port,
            metrics,
            state,
        })
    }

    /// The port of the operator's metrics listener, when there is one.
    pub fn metrics_port(&self) -> Option<u16> {
        self.metrics.as_ref().map(|(_, port)| *port)
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
        // SIGHUP: read the policy folder again and, if it passes, put it in force here and
        // (through the database) on every instance.
        #[cfg(unix)]
        {
            let state = self.state.clone();
            tokio::spawn(async move {
                use tokio::signal::unix::{signal, SignalKind};
                let Ok(mut hangups) = signal(SignalKind::hangup()) else {
                    tracing::warn!(
                        "cannot listen for SIGHUP: reload the rules with `samverkan policy reload`"
                    );
                    return;
                };
                while hangups.recv().await.is_some() {
                    match policy_folder(&state.settings) {
                        Some(dir) => {
                            crate::policy_versions::reload_from(
                                &dir,
                                &state.writer,
                                &state.policy,
                                &instance_name("SIGHUP to"),
                            )
                            .await
                        }
                        None => tracing::warn!(
                            "SIGHUP: the rules in force are the built-in copy, there is no folder to reload"
                        ),
                    }
                }
            });
        }
        let metrics = self.metrics.map(|(server, _)| {
            let handle = server.handle();
            (handle, tokio::spawn(server))
        });
        let served = self.server.await;
        // However the service stopped, the operator's listener stops with it.
        if let Some((handle, task)) = metrics {
            handle.stop(true).await;
            let _ = task.await;
        }
        served
    }
}

/// The operator's listener: `GET /metrics` and nothing else, on its own address.
fn metrics_server(bind: &str, registry: prometheus::Registry) -> anyhow::Result<(Server, u16)> {
    let listener =
        TcpListener::bind(bind).with_context(|| format!("cannot listen for metrics on {bind}"))?;
    let port = listener.local_addr()?.port();
    let registry = web::Data::new(registry);
    let server = HttpServer::new(move || {
        App::new()
            .app_data(registry.clone())
            .route("/metrics", web::get().to(crate::api::ops::metrics))
    })
    .listen(listener)?
    .workers(1)
    .disable_signals()
    .shutdown_timeout(5)
    .run();
    Ok((server, port))
}
