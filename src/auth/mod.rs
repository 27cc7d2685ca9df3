//! Authentication: passwords (argon2id, bounded), tokens (JWT access, opaque refresh)
//! and the signed-in user behind a token. What is recorded of it, and the sign-in use
//! cases, are in `account`.

pub mod oidc;
pub mod password;
pub mod principal;
pub mod second_factor;
pub mod tokens;

pub use principal::{Bearer, Principal, SessionCache};
