//! samverkan — multi-agency information sharing under Swedish secrecy law.
//!
//! Request path: actix middleware (request id, tracing, body limit, security headers) →
//! `api::extractors` (token → `auth::Principal`, the user as stored now) → thin handler
//! in `api` → validated input (`fields`, `records`) → `records::visibility` (the rows the
//! policy's scope admits, from `storage`) → `policy` decides every part → view from the
//! allowed parts only → `audit` entry durable (group commit) → response.
//!
//! Layers, lowest first; a module imports only from those below it:
//! `error`, `fields`, `request` → `storage` → `policy` → `config` → `auth` → `audit` →
//! `records` → `account`, `admin`, `retention`, `demo`, `statistics`, `events`,
//! `policy_versions` → `api` → `web` → `app`, `cli`.

pub mod account;
pub mod admin;
pub mod api;
pub mod app;
pub mod audit;
pub mod auth;
pub mod cli;
pub mod config;
pub mod demo;
pub mod error;
pub mod events;
pub mod fields;
pub mod policy;
pub mod policy_versions;
pub mod records;
pub mod request;
pub mod retention;
pub mod secret;
pub mod statistics;
pub mod storage;
pub mod telemetry;
pub mod web;

/// Resolves on SIGINT or SIGTERM.
pub async fn shutdown_signal() {
    let ctrl_c = async {
        let _ = tokio::signal::ctrl_c().await;
    };
    #[cfg(unix)]
    let term = async {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut s) => {
                s.recv().await;
            }
            Err(_) => std::future::pending::<()>().await,
        }
    };
    #[cfg(not(unix))]
    let term = std::future::pending::<()>();
    tokio::select! {
        _ = ctrl_c => {},
        _ = term => {},
    }
}

#[cfg(test)]
mod layers {
    use std::path::Path;

    /// The layer of each top-level module, lowest first (see the crate docs).
    const LAYERS: &[&[&str]] = &[
        &["error", "fields", "request", "secret", "telemetry"],
        &["storage"],
        &["policy"],
        &["config"],
        &["auth"],
        &["audit"],
        &["records"],
        &[
            "account",
            "admin",
            "retention",
            "demo",
            "statistics",
            "events",
            "policy_versions",
        ],
        &["api"],
        &["web"],
        &["app", "cli"],
    ];

    fn layer(module: &str) -> Option<usize> {
        LAYERS.iter().position(|l| l.contains(&module))
    }

    fn sources(dir: &Path, out: &mut Vec<std::path::PathBuf>) {
        for entry in std::fs::read_dir(dir).unwrap() {
            let path = entry.unwrap().path();
            if path.is_dir() {
                sources(&path, out);
            } else if path.extension().is_some_and(|e| e == "rs") {
                out.push(path);
            }
        }
    }

    #[test]
    fn no_module_imports_from_a_layer_above_it() {
        let src = Path::new(env!("CARGO_MANIFEST_DIR")).join("src");
        let mut files = Vec::new();
        sources(&src, &mut files);
        let mut wrong = Vec::new();
        for file in files {
            let rel = file.strip_prefix(&src).unwrap();
            let top = rel
                .components()
                .next()
                .unwrap()
                .as_os_str()
                .to_string_lossy()
                .trim_end_matches(".rs")
                .to_owned();
            let Some(own) = layer(&top) else { continue };
            let text = std::fs::read_to_string(&file).unwrap();
            for (n, line) in text.lines().enumerate() {
                let code = line.split("//").next().unwrap_or_default();
                for (i, _) in code.match_indices("crate::") {
                    let name: String = code[i + "crate::".len()..]
                        .chars()
                        .take_while(|c| c.is_ascii_alphanumeric() || *c == '_')
                        .collect();
                    if layer(&name).is_some_and(|l| l > own) {
                        wrong.push(format!(
                            "{}:{}: {top} uses crate::{name}",
                            rel.display(),
                            n + 1
                        ));
                    }
                }
            }
        }
        assert!(wrong.is_empty(), "{}", wrong.join("\n"));
    }
}
