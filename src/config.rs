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
    /// How often each instance looks for a newer policy set in the database
    /// (`SAMVERKAN_POLICY_POLL_MS`).
    pub policy_poll_ms: u64,
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
    /// (`SAMVERKAN_DB_WRITERS`, default 3: one for reads' audit entries, two for writes,
    /// so that while one write group waits for its commit the next goes through the
    /// other; with 1 or 2 every writer takes both). SQLite always has one.
    pub writers: usize,
    /// Where the metrics are served (an operator's address, never the public one);
    /// `None`: no metrics listener.
    pub metrics_bind: Option<String>,
    pub web: WebSettings,
    /// Proxies trusted to name the client (`SAMVERKAN_TRUSTED_PROXIES`); none by default.
    pub proxies: ProxySettings,
    /// Live alerts (`GET /api/v1/events`).
    pub events: EventSettings,
    pub second_factor: SecondFactorSettings,
    /// Single sign-on through an agency's OpenID Provider; `None`: local accounts only.
    pub oidc: Option<OidcSettings>,
}

/// An agency's OpenID Provider (`SAMVERKAN_OIDC_*`).
#[derive(Debug, Clone)]
pub struct OidcSettings {
    /// Exactly as the provider names itself (`iss`); discovery is read from
    /// `<issuer>/.well-known/openid-configuration`.
    pub issuer: String,
    /// The `aud` its access tokens for this service carry.
    pub audience: String,
    /// The claim that names the local account.
    pub username_claim: String,
    /// Clock skew allowed on `exp` and `nbf`, seconds.
    pub leeway_secs: u64,
    /// An unknown `kid` fetches the key set again at most this often.
    pub jwks_min_refresh_secs: u64,
    /// The pages' client (authorization code with PKCE); `None`: API tokens only.
    pub client_id: Option<String>,
    pub client_secret: Option<Secret>,
    /// Shown as "Log in with <name>".
    pub name: String,
}

fn oidc_settings() -> Result<Option<OidcSettings>, ConfigError> {
    let Some(issuer) = env("SAMVERKAN_OIDC_ISSUER") else {
        return Ok(None);
    };
    Ok(Some(OidcSettings {
        issuer,
        audience: env("SAMVERKAN_OIDC_AUDIENCE").unwrap_or_else(|| "samverkan-api".into()),
        username_claim: env("SAMVERKAN_OIDC_USERNAME_CLAIM")
            .unwrap_or_else(|| "preferred_username".into()),
        leeway_secs: env_num("SAMVERKAN_OIDC_LEEWAY_SECS", 30)?,
        jwks_min_refresh_secs: env_num("SAMVERKAN_OIDC_JWKS_MIN_REFRESH_SECS", 60)?,
        client_id: env("SAMVERKAN_OIDC_CLIENT_ID"),
        client_secret: env("SAMVERKAN_OIDC_CLIENT_SECRET").map(Secret::new),
        name: env("SAMVERKAN_OIDC_NAME").unwrap_or_else(|| "single sign-on".into()),
    }))
}

/// The second factor (TOTP) for local accounts.
#[derive(Debug, Clone, Default)]
pub struct SecondFactorSettings {
    /// Seals TOTP secrets and keys recovery-code hashes (`SAMVERKAN_TOTP_KEY`); `None`:
    /// a key file beside a SQLite database, a key for the run with `--demo`, else none.
    pub key: Option<Secret>,
    /// Roles that can do nothing but enrol until they have a second factor
    /// (`SAMVERKAN_TOTP_REQUIRED_ROLES`); `None`: [`DEFAULT_TOTP_REQUIRED_ROLES`], or none
    /// with `--demo`.
    pub required_roles: Option<Vec<String>>,
}

/// The roles that see person data: police, analysts and social workers.
pub const DEFAULT_TOTP_REQUIRED_ROLES: &[&str] =
    &["police_officer", "police_analyst", "social_worker"];

/// `SAMVERKAN_TOTP_REQUIRED_ROLES`: roles by name, comma-separated; empty or `none`: no role.
fn required_roles() -> Result<Option<Vec<String>>, ConfigError> {
    let Ok(raw) = std::env::var("SAMVERKAN_TOTP_REQUIRED_ROLES") else {
        return Ok(None);
    };
    let raw = raw.trim();
    if raw.is_empty() || raw.eq_ignore_ascii_case("none") {
        return Ok(Some(Vec::new()));
    }
    raw.split(',')
        .map(|r| {
            let r = r.trim();
            crate::policy::Role::parse(r)
                .map(|role| role.as_str().to_owned())
                .ok_or_else(|| {
                    ConfigError(format!(
                        "SAMVERKAN_TOTP_REQUIRED_ROLES: unknown role {r:?} (roles: {})",
                        crate::policy::Role::listed()
                    ))
                })
        })
        .collect::<Result<Vec<_>, _>>()
        .map(Some)
}

/// Live alerts (Server-Sent Events).
#[derive(Debug, Clone)]
pub struct EventSettings {
    /// Events are kept this long, for resuming a dropped stream with `Last-Event-ID`.
    pub retain_minutes: i64,
    /// Every stream gets a comment line this often, events or not.
    pub heartbeat_secs: u64,
    /// How often the events table is read (it holds every instance's events).
    pub poll_ms: u64,
    /// At most this many open streams per instance; more get 503.
    pub max_streams: usize,
}

impl Default for EventSettings {
    fn default() -> Self {
        EventSettings {
            retain_minutes: 60,
            heartbeat_secs: 15,
            poll_ms: 200,
            max_streams: 5000,
        }
    }
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

/// Writer threads on PostgreSQL: measured on 2 cores, one for reads and two for writes
/// beat 1, 2 (sharing one queue) and 4 (benches/README.md).
pub const DEFAULT_WRITERS: usize = 3;

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
            policy_poll_ms: env_num("SAMVERKAN_POLICY_POLL_MS", 1000)?,
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
            oidc: oidc_settings()?,
            second_factor: SecondFactorSettings {
                key: env("SAMVERKAN_TOTP_KEY").map(Secret::new),
                required_roles: required_roles()?,
            },
            events: EventSettings {
                retain_minutes: env_num(
                    "SAMVERKAN_EVENTS_RETAIN_MINUTES",
                    EventSettings::default().retain_minutes,
                )?
                .max(1),
                heartbeat_secs: env_num(
                    "SAMVERKAN_EVENTS_HEARTBEAT_SECS",
                    EventSettings::default().heartbeat_secs,
                )?
                .max(1),
                poll_ms: env_num("SAMVERKAN_EVENTS_POLL_MS", EventSettings::default().poll_ms)?
                    .max(10),
                max_streams: env_num(
                    "SAMVERKAN_EVENTS_MAX_STREAMS",
                    EventSettings::default().max_streams,
                )?,
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

/// One environment variable the service reads: the configuration reference
/// (`samverkan config reference`, and the table in deploy/README.md) is written from
/// this list, and a test holds the list to the variables the code reads.
#[derive(Debug, Clone, Copy)]
pub struct Variable {
    pub name: &'static str,
    pub default: &'static str,
    pub meaning: &'static str,
}

const fn var(name: &'static str, default: &'static str, meaning: &'static str) -> Variable {
    Variable {
        name,
        default,
        meaning,
    }
}

/// Every variable, in the order an operator meets them.
pub const VARIABLES: &[Variable] = &[
    var("DATABASE_URL", "`samverkan.db`", "`postgres://…` or a SQLite file path"),
    var("SAMVERKAN_BIND", "`127.0.0.1:8080`", "listen address (also `serve --bind`)"),
    var("SAMVERKAN_JWT_KEYS", "—", "`kid:secret[,kid:secret…]`, secrets ≥ 32 bytes; the first signs, all verify (rotate by putting a new key first)"),
    var("SAMVERKAN_JWT_KEY_FILE", "beside a SQLite database: `<db>.signing-keys`", "keys in the same format; generated (mode 0600) on first start when absent"),
    var("SAMVERKAN_JWT_ISSUER", "`samverkan`", "the tokens' issuer, checked on every token"),
    var("SAMVERKAN_JWT_AUDIENCE", "`samverkan-api`", "the tokens' audience, checked on every token"),
    var("SAMVERKAN_ACCESS_TOKEN_TTL_SECS", "900", "access token lifetime"),
    var("SAMVERKAN_REFRESH_TOKEN_TTL_SECS", "43200", "refresh token (session) lifetime, renewed on each refresh"),
    var("SAMVERKAN_LOGIN_MAX_FAILURES", "5", "failed logins per username in the window before 429"),
    var("SAMVERKAN_LOGIN_MAX_FAILURES_PER_CLIENT", "50", "the same per client address"),
    var("SAMVERKAN_LOGIN_WINDOW_SECS", "900", "throttling window (the cooling-off period)"),
    var("SAMVERKAN_TRUSTED_PROXIES", "none", "comma-separated addresses or CIDRs of the proxies in front (ingress, load balancer) that may name the client. Only when the TCP peer is one of them is the forwarding header read, and the right-most address in it that is not a trusted proxy is the client (for the per-client login limit and the audit trail). Empty: the headers are ignored"),
    var("SAMVERKAN_FORWARDED_HEADER", "`x-forwarded-for`", "which header the trusted proxies write: `x-forwarded-for` or `forwarded` (RFC 7239 `for=`). Only that one is read: a proxy that writes one passes the other through from the client"),
    var("SAMVERKAN_HASH_CONCURRENCY", "2", "argon2id hashes at once; more logins wait up to 5 s, then 503"),
    var("SAMVERKAN_MAX_BODY_BYTES", "1048576", "larger bodies get 413"),
    var("SAMVERKAN_DB_POOL_SIZE", "8", "read connections"),
    var("SAMVERKAN_DB_WRITERS", "3", "writer threads on PostgreSQL, each with its own connection and audit chain (SQLite: always 1); from 3, reads get one of their own and writes the rest (measured best on 2 cores)"),
    var("SAMVERKAN_WORKERS", "one per core", "HTTP worker threads"),
    var("SAMVERKAN_CACHE_ENTRIES", "10000", "sessions and situation reports kept in memory (each); 0 turns the caches off"),
    var("SAMVERKAN_CACHE_POLL_MS", "250", "how soon a change made outside this process (CLI, SQL, another instance) reaches the caches"),
    var("SAMVERKAN_POLICY_DIR", "`./policies`, else the built-in copy", "Cedar policies, schema and decision table; at start-up they become the set in force on every instance unless they already are (see \"Changing the rules\")"),
    var("SAMVERKAN_POLICY_POLL_MS", "1000", "how often each instance looks for a newer policy set (from `policy reload`, SIGHUP or another instance's start) and swaps it in"),
    var("SAMVERKAN_DEMO_PASSWORD", "generated, printed once", "the password of demo users `serve --demo` creates (existing users are never changed)"),
    var("SAMVERKAN_LOG_FORMAT", "`json`", "`text` for human-readable logs; `RUST_LOG` filters"),
    var("SAMVERKAN_RETENTION_OBSERVATION_DAYS", "365", "retention of observations, from filing; 0 keeps them for ever (see \"Retention\")"),
    var("SAMVERKAN_RETENTION_SITUATION_REPORT_DAYS", "365", "retention of situation reports, from the end of their validity; 0 keeps them"),
    var("SAMVERKAN_RETENTION_REFERRAL_DAYS", "1826", "retention of referrals, from their last status change; 0 keeps them"),
    var("SAMVERKAN_RETENTION_INTERVAL_SECS", "3600", "how often the service erases what is due (first run a minute after start); 0 turns the job off"),
    var("SAMVERKAN_METRICS_BIND", "off", "the operator's address for Prometheus metrics (`GET /metrics`), e.g. `127.0.0.1:9464`; never served on the public address (see \"Metrics\")"),
    var("SAMVERKAN_WEB_IDLE_MINUTES", "15", "a browser session ends after this long without a request"),
    var("SAMVERKAN_WEB_IDLE_SECS", "—", "the same in seconds (for tests); wins over the minutes"),
    var("SAMVERKAN_SECURE_COOKIES", "by the bind address", "`true`: the session cookie is `__Host-samverkan`, `Secure` (behind TLS); `false`: `samverkan`, for plain HTTP. Unset: `false` on a loopback address (a developer's machine), `true` on any other"),
    var("SAMVERKAN_EVENTS_RETAIN_MINUTES", "60", "how long live alerts are kept, so a dropped stream resumes with `Last-Event-ID` without losing one"),
    var("SAMVERKAN_EVENTS_HEARTBEAT_SECS", "15", "every event stream gets a heartbeat comment this often, events or not"),
    var("SAMVERKAN_EVENTS_POLL_MS", "200", "how often each instance reads new events (every instance's) from the database"),
    var("SAMVERKAN_EVENTS_MAX_STREAMS", "5000", "open event streams per instance; more are answered 503"),
    var("SAMVERKAN_AUDIT_INDEX_EVERY", "2048", "audit entries between two copies of their lookup keys (actor, record, time) into the indexed `audit_keys`; an auditor's query reads the entries not yet copied from the trail itself, so it always sees everything"),
    var("SAMVERKAN_TOTP_KEY", "beside a SQLite database: `<db>.totp-key`; with `--demo`: one for the run", "seals second-factor (TOTP) secrets and keys the recovery codes' hashes (32+ bytes); required on PostgreSQL when any role requires a second factor. Changing it voids every enrolment"),
    var("SAMVERKAN_TOTP_REQUIRED_ROLES", "`police_officer,police_analyst,social_worker` (none with `--demo`)", "roles that can do nothing but enrol a second factor until they have one; empty or `none`: no role"),
    var("SAMVERKAN_OIDC_ISSUER", "off", "an agency's OpenID Provider, exactly as its tokens name it (`iss`); its access tokens are then accepted as bearer tokens for the local account the username claim names (see \"Single sign-on\")"),
    var("SAMVERKAN_OIDC_AUDIENCE", "`samverkan-api`", "the `aud` the provider's access tokens for this service carry"),
    var("SAMVERKAN_OIDC_USERNAME_CLAIM", "`preferred_username`", "the claim that names the local account"),
    var("SAMVERKAN_OIDC_LEEWAY_SECS", "30", "clock skew allowed on `exp` and `nbf`"),
    var("SAMVERKAN_OIDC_JWKS_MIN_REFRESH_SECS", "60", "an unknown `kid` fetches the provider's keys again at most this often (key rotation; a flood of bogus kids does not reach the provider)"),
    var("SAMVERKAN_OIDC_CLIENT_ID", "—", "the pages' client at the provider (authorization code with PKCE); without it, API tokens only"),
    var("SAMVERKAN_OIDC_CLIENT_SECRET", "—", "that client's secret"),
    var("SAMVERKAN_OIDC_NAME", "`single sign-on`", "shown on the login page as \"Log in with …\""),
    var("SAMVERKAN_NEW_PASSWORD", "—", "the command line only: the password for `admin create-user` and `admin set-password`, instead of reading it from standard input"),
];

/// The configuration reference as a Markdown table (deploy/README.md holds this text
/// between its `config-reference` markers; a test keeps the two equal).
pub fn reference_markdown() -> String {
    let mut out = String::from("| variable | default | meaning |\n|---|---|---|\n");
    for v in VARIABLES {
        out.push_str(&format!(
            "| `{}` | {} | {} |\n",
            v.name, v.default, v.meaning
        ));
    }
    out
}

#[cfg(test)]
mod reference_tests {
    use std::collections::BTreeSet;
    use std::path::Path;

    use super::VARIABLES;

    /// Every `SAMVERKAN_*` name in the sources (and `DATABASE_URL`).
    fn names_in_sources(dir: &Path, out: &mut BTreeSet<String>) {
        for entry in std::fs::read_dir(dir).unwrap() {
            let path = entry.unwrap().path();
            if path.is_dir() {
                names_in_sources(&path, out);
            } else if path.extension().is_some_and(|e| e == "rs") {
                let text = std::fs::read_to_string(&path).unwrap();
                for (i, _) in text.match_indices("\"SAMVERKAN_") {
                    let name: String = text[i + 1..]
                        .chars()
                        .take_while(|c| c.is_ascii_uppercase() || c.is_ascii_digit() || *c == '_')
                        .collect();
                    // (This test's own search string is only the prefix.)
                    if name.len() > "SAMVERKAN_".len() {
                        out.insert(name);
                    }
                }
                if text.contains("env(\"DATABASE_URL\")") {
                    out.insert("DATABASE_URL".into());
                }
            }
        }
    }

    #[test]
    fn the_reference_lists_exactly_the_variables_the_code_reads() {
        let src = Path::new(env!("CARGO_MANIFEST_DIR")).join("src");
        let mut read = BTreeSet::new();
        names_in_sources(&src, &mut read);
        let listed: BTreeSet<String> = VARIABLES.iter().map(|v| v.name.to_owned()).collect();
        assert_eq!(listed.len(), VARIABLES.len(), "a variable is listed twice");
        let unlisted: Vec<_> = read.difference(&listed).collect();
        let stale: Vec<_> = listed.difference(&read).collect();
        assert!(
            unlisted.is_empty(),
            "read but not in config::VARIABLES: {unlisted:?}"
        );
        assert!(
            stale.is_empty(),
            "in config::VARIABLES but never read: {stale:?}"
        );
    }

    #[test]
    fn deploy_readme_holds_the_generated_reference() {
        let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("deploy/README.md");
        let text = std::fs::read_to_string(path).unwrap();
        let start = "<!-- config-reference: generated by `samverkan config reference`; a test keeps it so -->\n";
        let end = "<!-- /config-reference -->";
        let from = text.find(start).expect("the start marker") + start.len();
        let to = text[from..].find(end).expect("the end marker") + from;
        assert_eq!(
            &text[from..to],
            super::reference_markdown(),
            "deploy/README.md's configuration table is stale: replace it with the output of `samverkan config reference`"
        );
    }
}
