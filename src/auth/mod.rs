//! Authentication: passwords, tokens, login throttling and the `Principal` extractor.

pub mod password;
pub mod principal;
pub mod service;
pub mod tokens;

pub use principal::Principal;
