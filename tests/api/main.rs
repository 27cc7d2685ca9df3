//! Black-box tests: the real service over HTTP against a real database.

mod helpers;

mod abuse;
mod abuse_input;
mod audit;
mod auth;
mod authorization;
mod browser;
mod caching;
mod cli;
mod crash;
mod events;
mod hardening;
mod hidden;
mod input;
mod lanes;
mod matrix;
mod multi_instance;
mod newcomer;
mod oidc;
mod operations;
mod pages;
mod policy_versions;
mod process;
mod properties;
mod retention;
mod second_factor;
mod statistics;
mod tokens;
