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
//! `records` → `account`, `admin`, `retention`, `demo` → `api` → `app`, `cli`.

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
pub mod fields;
pub mod policy;
pub mod records;
pub mod request;
pub mod retention;
pub mod storage;
pub mod telemetry;

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
