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

type HashJob = Box<dyn FnOnce() + Send>;

/// Hashing runs on its own few threads: each argon2id call needs 19 MiB, and on the
/// runtime's ever-changing blocking threads that memory piles up in per-thread malloc
/// arenas (over a gigabyte under a login flood). A fixed set keeps it at a few blocks.
#[derive(Clone)]
pub struct Hasher {
    permits: Arc<Semaphore>,
    jobs: std::sync::mpsc::SyncSender<HashJob>,
    /// Verified against when the user does not exist, so both cases cost the same.
    dummy_hash: Arc<String>,
}

impl Hasher {
    pub fn new(concurrency: usize) -> Result<Self, AppError> {
        let n = concurrency.max(1);
        let (jobs, rx) = std::sync::mpsc::sync_channel::<HashJob>(n);
        let rx = Arc::new(std::sync::Mutex::new(rx));
        for i in 0..n {
            let rx = rx.clone();
            std::thread::Builder::new()
                .name(format!("samverkan-hash-{i}"))
                .spawn(move || loop {
                    let job = match rx.lock() {
                        Ok(guard) => guard.recv(),
                        Err(_) => return,
                    };
                    match job {
                        Ok(job) => job(),
                        Err(_) => return,
                    }
                })
                .map_err(AppError::internal)?;
        }
        Ok(Hasher {
            permits: Arc::new(Semaphore::new(n)),
            jobs,
            dummy_hash: Arc::new(hash_blocking("samverkan-dummy-password-for-timing")?),
        })
    }

    /// Waits (at most 5 s, then 503) for a hashing slot and runs `f` on a hashing thread.
    async fn with_permit<T: Send + 'static>(
        &self,
        f: impl FnOnce() -> T + Send + 'static,
    ) -> Result<T, AppError> {
        let permit =
            tokio::time::timeout(Duration::from_secs(5), self.permits.clone().acquire_owned())
                .await
                .map_err(|_| AppError::Unavailable)?
                .map_err(|_| AppError::Unavailable)?;
        let (tx, rx) = tokio::sync::oneshot::channel();
        // A permit is held, so a hashing thread is free and the queue has room.
        self.jobs
            .try_send(Box::new(move || {
                let _ = tx.send(f());
            }))
            .map_err(|_| AppError::Unavailable)?;
        let out = rx
            .await
            .map_err(|_| AppError::internal("hashing thread stopped"))?;
        drop(permit);
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
