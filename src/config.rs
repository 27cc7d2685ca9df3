//! Settings, read once from the environment (and flags) and passed in: no globals.

use std::path::PathBuf;

pub use crate::secret::Secret;

use crate::request::{ForwardedHeader, ProxySettings};
use crate::storage::DatabaseUrl;

/// Token settings. Keys are `(kid, secret)`; the first one signs, all of them verify,
/// so a new key can be put first without logging anyone out.
#[derive(Debug, Clone)]
pub struct TokenSettings {
    pub issuer: String,
    pub audience: String,
    pub access_ttl_secs: i64,
    pub refresh_ttl_secs: i64,
    pub keys: Vec<(String, Secret)>,
    /// Where to keep generated keys (default: beside the SQLite database).
    pub key_file: Option<PathBuf>,
}

#[derive(Debug, Clone)]
pub struct LoginSettings {
    /// Failed logins per username within the window before it is cooled off (429).
    pub max_failures_per_user: i64,
    /// Failed logins per client address within the window.
    pub max_failures_per_client: i64,
    pub window_secs: i64,
    /// Password hashes computed at once; more logins wait, then get 503.
    pub hash_concurrency: usize,
}

/// Retention periods (gallring) per record kind, in days, and how often the service
/// erases what is due. A period of 0 keeps that kind for ever; an interval of 0 turns the
/// background job off (`samverkan retention run` still works). The defaults and their
/// legal basis are in the README ("Audit log review and retention"); they are a
/// deployment's decision.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RetentionSettings {
    /// Observations, counted from when they were filed.
    pub observation_days: u32,
    /// Situation reports, counted from the end of their validity (or from when they were
    /// posted, for open-ended ones).
    pub situation_report_days: u32,
    /// Referrals, counted from the last status change (filing, or the latest feedback).
    pub referral_days: u32,
    /// Seconds between runs of the background job; 0 disables it.
    pub interval_secs: u64,
}

impl RetentionSettings {
    /// Observations: one year (GDPR art. 5(1)(e); Brottsdatalagen ch. 2, police-held data).
    pub const DEFAULT_OBSERVATION_DAYS: u32 = 365;
    /// Situation reports: one year after they stop being valid.
    pub const DEFAULT_SITUATION_REPORT_DAYS: u32 = 365;
    /// Referrals: five years after the last status change (SoL's five years for records
    /// of reports of concern, including those that led to no investigation).
    pub const DEFAULT_REFERRAL_DAYS: u32 = 1826;
    pub const DEFAULT_INTERVAL_SECS: u64 = 3600;
}

impl Default for RetentionSettings {
    fn default() -> Self {
        RetentionSettings {
            observation_days: Self::DEFAULT_OBSERVATION_DAYS,
            situation_report_days: Self::DEFAULT_SITUATION_REPORT_DAYS,
            referral_days: Self::DEFAULT_REFERRAL_DAYS,
            interval_secs: Self::DEFAULT_INTERVAL_SECS,
        }
    }
}

#[derive(Debug, Clone)]
pub struct Settings {
    pub database_url: DatabaseUrl,
    pub bind: String,
    /// Policy folder; `None` means `./policies` if present, else the built-in copy.
    pub policy_dir: Option<PathBuf>,
    pub tokens: TokenSettings,
    pub login: LoginSettings,
    pub max_body_bytes: usize,
    pub pool_size: u32,
    /// HTTP worker threads; 0 means one per core.
    pub workers: usize,
    pub demo: bool,
    pub demo_password: Option<Secret>,
    /// Log as JSON lines (default) or human-readable text.
    pub json_logs: bool,
    pub retention: RetentionSettings,
    pub cache: CacheSettings,
    /// Audit entries between two copies of their lookup keys into `audit_keys`.
    pub audit_index_every: i64,
    /// Writer threads on PostgreSQL, each with its own connection and audit chain
    /// (`SAMVERKAN_DB_WRITERS`, default 2: while one waits for its commit, the next group
    /// goes through the other). SQLite always has one.
    pub writers: usize,
    /// Where the metrics are served (an operator's address, never the public one);
    /// `None`: no metrics listener.
    pub metrics_bind: Option<String>,
    pub web: WebSettings,
    /// Proxies trusted to name the client (`SAMVERKAN_TRUSTED_PROXIES`); none by default.
    pub proxies: ProxySettings,
}

/// The browser pages' sessions.
#[derive(Debug, Clone)]
pub struct WebSettings {
    /// A browser session ends after this long without a request.
    pub idle_secs: i64,
    /// `Secure` cookies with the `__Host-` prefix; `None`: decided by the bind address
    /// (plain HTTP on a loopback address is a developer's machine, anything else is
    /// behind TLS).
    pub secure_cookies: Option<bool>,
}

impl Default for WebSettings {
    fn default() -> Self {
        WebSettings {
            idle_secs: 15 * 60,
            secure_cookies: None,
        }
    }
}

/// Audit entries between two copies of their lookup keys into the indexed `audit_keys`
/// (see `audit::index_keys`): one batch writes a few dozen index pages where as many
/// entries committed one group at a time wrote a few hundred.
pub const DEFAULT_AUDIT_INDEX_EVERY: i64 = 2048;

/// Writer threads on PostgreSQL: measured on 2 cores, 2 beat 1, 3 and 4 (benches/README.md).
pub const DEFAULT_WRITERS: usize = 2;

/// The in-memory caches of sessions and situation reports (see `storage::cache`).
#[derive(Debug, Clone)]
pub struct CacheSettings {
    /// Entries per cache; 0 turns caching off.
    pub entries: usize,
    /// How soon a change made outside this process (CLI, another instance) is noticed.
    pub poll_ms: u64,
}

impl Default for CacheSettings {
    fn default() -> Self {
        CacheSettings {
            entries: 10_000,
            poll_ms: 250,
        }
    }
}

fn env(name: &str) -> Option<String> {
    std::env::var(name).ok().filter(|v| !v.trim().is_empty())
}

/// A setting that cannot be used; the message names it and says what to write.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{0}")]
pub struct ConfigError(String);

fn env_num<T: std::str::FromStr>(name: &str, default: T) -> Result<T, ConfigError> {
    match env(name) {
        None => Ok(default),
        Some(v) => v
            .trim()
            .parse()
            .map_err(|_| ConfigError(format!("{name} must be a number, got {v:?}"))),
    }
}

/// Parses `kid:secret,kid2:secret2` (secrets of at least 32 bytes).
pub fn parse_keys(raw: &str) -> Result<Vec<(String, Secret)>, ConfigError> {
    let mut keys = Vec::new();
    for item in raw
        .split([',', '\n'])
        .map(str::trim)
        .filter(|s| !s.is_empty())
    {
        let (kid, secret) = item
            .split_once(':')
            .ok_or_else(|| ConfigError("signing keys are written kid:secret".to_owned()))?;
        if kid.is_empty() || !kid.chars().all(|c| c.is_ascii_alphanumeric() || c == '-') {
            return Err(ConfigError(format!(
                "key id {kid:?} must be letters, digits or '-'"
            )));
        }
        if secret.len() < 32 {
            return Err(ConfigError(format!(
                "signing key {kid:?} is shorter than 32 bytes"
            )));
        }
        keys.push((kid.to_owned(), Secret::new(secret)));
    }
    Ok(keys)
}

impl Settings {
    /// Reads `DATABASE_URL`, `SAMVERKAN_*` variables; every one has a safe default.
    pub fn from_env() -> Result<Self, ConfigError> {
        let keys = match env("SAMVERKAN_JWT_KEYS") {
            Some(raw) => parse_keys(&raw)?,
            None => Vec::new(),
        };
        Ok(Settings {
            database_url: DatabaseUrl::parse(
                &env("DATABASE_URL").unwrap_or_else(|| "samverkan.db".to_owned()),
            ),
            bind: env("SAMVERKAN_BIND").unwrap_or_else(|| "127.0.0.1:8080".to_owned()),
            policy_dir: env("SAMVERKAN_POLICY_DIR").map(PathBuf::from),
            tokens: TokenSettings {
                issuer: env("SAMVERKAN_JWT_ISSUER").unwrap_or_else(|| "samverkan".to_owned()),
                audience: env("SAMVERKAN_JWT_AUDIENCE")
                    .unwrap_or_else(|| "samverkan-api".to_owned()),
                access_ttl_secs: env_num("SAMVERKAN_ACCESS_TOKEN_TTL_SECS", 900)?,
                refresh_ttl_secs: env_num("SAMVERKAN_REFRESH_TOKEN_TTL_SECS", 12 * 3600)?,
                keys,
                key_file: env("SAMVERKAN_JWT_KEY_FILE").map(PathBuf::from),
            },
            login: LoginSettings {
                max_failures_per_user: env_num("SAMVERKAN_LOGIN_MAX_FAILURES", 5)?,
                max_failures_per_client: env_num("SAMVERKAN_LOGIN_MAX_FAILURES_PER_CLIENT", 50)?,
                window_secs: env_num("SAMVERKAN_LOGIN_WINDOW_SECS", 900)?,
                hash_concurrency: env_num("SAMVERKAN_HASH_CONCURRENCY", 2)?,
            },
            max_body_bytes: env_num("SAMVERKAN_MAX_BODY_BYTES", 1024 * 1024)?,
            pool_size: env_num("SAMVERKAN_DB_POOL_SIZE", 8)?,
            workers: env_num("SAMVERKAN_WORKERS", 0)?,
            demo: false,
            demo_password: env("SAMVERKAN_DEMO_PASSWORD").map(Secret::new),
            json_logs: env("SAMVERKAN_LOG_FORMAT").as_deref() != Some("text"),
            retention: RetentionSettings {
                observation_days: env_num(
                    "SAMVERKAN_RETENTION_OBSERVATION_DAYS",
                    RetentionSettings::DEFAULT_OBSERVATION_DAYS,
                )?,
                situation_report_days: env_num(
                    "SAMVERKAN_RETENTION_SITUATION_REPORT_DAYS",
                    RetentionSettings::DEFAULT_SITUATION_REPORT_DAYS,
                )?,
                referral_days: env_num(
                    "SAMVERKAN_RETENTION_REFERRAL_DAYS",
                    RetentionSettings::DEFAULT_REFERRAL_DAYS,
                )?,
                interval_secs: env_num(
                    "SAMVERKAN_RETENTION_INTERVAL_SECS",
                    RetentionSettings::DEFAULT_INTERVAL_SECS,
                )?,
            },
            cache: CacheSettings {
                entries: env_num("SAMVERKAN_CACHE_ENTRIES", CacheSettings::default().entries)?,
                poll_ms: env_num("SAMVERKAN_CACHE_POLL_MS", CacheSettings::default().poll_ms)?
                    .max(10),
            },
            audit_index_every: env_num("SAMVERKAN_AUDIT_INDEX_EVERY", DEFAULT_AUDIT_INDEX_EVERY)?
                .max(1),
            writers: env_num("SAMVERKAN_DB_WRITERS", DEFAULT_WRITERS)?.clamp(1, 16),
            metrics_bind: env("SAMVERKAN_METRICS_BIND"),
            proxies: ProxySettings {
                trusted: ProxySettings::parse_trusted(
                    &env("SAMVERKAN_TRUSTED_PROXIES").unwrap_or_default(),
                )
                .map_err(|e| ConfigError(format!("SAMVERKAN_TRUSTED_PROXIES: {e}")))?,
                header: match env("SAMVERKAN_FORWARDED_HEADER") {
                    None => ForwardedHeader::default(),
                    Some(v) => ForwardedHeader::parse(&v).ok_or_else(|| {
                        ConfigError(format!(
                            "SAMVERKAN_FORWARDED_HEADER must be x-forwarded-for or forwarded, got {v:?}"
                        ))
                    })?,
                },
            },
            web: WebSettings {
                // Minutes for people; seconds for tests that watch a session time out.
                idle_secs: match env("SAMVERKAN_WEB_IDLE_SECS") {
                    Some(_) => env_num("SAMVERKAN_WEB_IDLE_SECS", 900)?,
                    None => env_num::<i64>("SAMVERKAN_WEB_IDLE_MINUTES", 15)? * 60,
                }
                .max(1),
                secure_cookies: match env("SAMVERKAN_SECURE_COOKIES").as_deref() {
                    None => None,
                    Some("true" | "1") => Some(true),
                    Some("false" | "0") => Some(false),
                    Some(v) => {
                        return Err(ConfigError(format!(
                            "SAMVERKAN_SECURE_COOKIES must be true or false, got {v:?}"
                        )))
                    }
                },
            },
        })
    }
}
