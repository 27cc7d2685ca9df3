//! Password hashing: argon2id at OWASP's minimum (19 MiB, 2 passes, 1 lane), computed on
//! the blocking pool with bounded concurrency so a login flood cannot starve the service.

use std::sync::Arc;
use std::time::Duration;

use argon2::password_hash::{rand_core::OsRng, PasswordHash, PasswordHasher, SaltString};
use argon2::{Algorithm, Argon2, Params, PasswordVerifier, Version};
use tokio::sync::Semaphore;

use crate::error::AppError;

/// Longest password accepted: hashing cost must not depend on what an attacker sends.
pub const MAX_PASSWORD_LEN: usize = 1024;
pub const MIN_PASSWORD_LEN: usize = 12;

fn argon2() -> Result<Argon2<'static>, AppError> {
    let params = Params::new(19 * 1024, 2, 1, None).map_err(AppError::internal)?;
    Ok(Argon2::new(Algorithm::Argon2id, Version::V0x13, params))
}

/// Hashes on the calling thread: for the CLI, seeding, and the blocking pool.
pub fn hash_blocking(password: &str) -> Result<String, AppError> {
    let salt = SaltString::generate(&mut OsRng);
    Ok(argon2()?
        .hash_password(password.as_bytes(), &salt)
        .map_err(AppError::internal)?
        .to_string())
}

fn verify_blocking(hash: &str, password: &str) -> bool {
    let Ok(parsed) = PasswordHash::new(hash) else {
        return false;
    };
    match argon2() {
        Ok(a) => a.verify_password(password.as_bytes(), &parsed).is_ok(),
        Err(_) => false,
    }
}

/// Checks a new password against the rules; the message says what to fix.
pub fn check_new_password(password: &str) -> Result<(), AppError> {
    let n = password.chars().count();
    if n < MIN_PASSWORD_LEN {
        return Err(AppError::bad_request(
            "weak_password",
            format!("a password needs at least {MIN_PASSWORD_LEN} characters"),
        ));
    }
    if password.len() > MAX_PASSWORD_LEN {
        return Err(AppError::bad_request(
            "password_too_long",
            format!("a password may have at most {MAX_PASSWORD_LEN} bytes"),
        ));
    }
    Ok(())
}

#[derive(Clone)]
pub struct Hasher {
    permits: Arc<Semaphore>,
    /// Verified against when the user does not exist, so both cases cost the same.
    dummy_hash: Arc<String>,
}

impl Hasher {
    pub fn new(concurrency: usize) -> Result<Self, AppError> {
        Ok(Hasher {
            permits: Arc::new(Semaphore::new(concurrency.max(1))),
            dummy_hash: Arc::new(hash_blocking("samverkan-dummy-password-for-timing")?),
        })
    }

    async fn with_permit<T: Send + 'static>(
        &self,
        f: impl FnOnce() -> T + Send + 'static,
    ) -> Result<T, AppError> {
        let permit =
            tokio::time::timeout(Duration::from_secs(5), self.permits.clone().acquire_owned())
                .await
                .map_err(|_| AppError::Unavailable)?
                .map_err(|_| AppError::Unavailable)?;
        let out = tokio::task::spawn_blocking(move || {
            let out = f();
            drop(permit);
            out
        })
        .await
        .map_err(AppError::internal)?;
        Ok(out)
    }

    /// True when `password` matches `hash`; with no hash, a dummy is checked (always false).
    pub async fn verify(&self, hash: Option<String>, password: String) -> Result<bool, AppError> {
        let known = hash.is_some();
        let hash = hash.unwrap_or_else(|| self.dummy_hash.as_str().to_owned());
        let ok = self
            .with_permit(move || verify_blocking(&hash, &password))
            .await?;
        Ok(ok && known)
    }

    pub async fn hash(&self, password: String) -> Result<String, AppError> {
        self.with_permit(move || hash_blocking(&password)).await?
    }
}
