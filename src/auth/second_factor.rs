//! A second factor for local accounts: TOTP (RFC 6238, by the `totp-rs` crate) and ten
//! single-use recovery codes.
//!
//! - The TOTP secret is stored sealed (AES-256-GCM-SIV under `SAMVERKAN_TOTP_KEY`, bound
//!   to the user's id), never in the clear.
//! - A code is accepted once: the last accepted time step is stored and a code of the
//!   same or an earlier step is refused (RFC 6238 §5.2), decided by a conditional update
//!   so two instances cannot both accept it.
//! - Recovery codes are random (60 bits) and stored as keyed hashes (HMAC-SHA-256 under
//!   the same key): a database copy alone cannot test guesses.
//! - Guesses are throttled with the passwords (see `account::Accounts::login`).

use aes_gcm_siv::aead::{Aead, KeyInit, Payload};
use aes_gcm_siv::{Aes256GcmSiv, Nonce};
use base64::Engine;
use diesel::prelude::*;
use rand::RngCore;
use sha2::{Digest, Sha256};

use crate::error::AppError;
use crate::storage::schema::{recovery_codes, totp_factors};
use crate::storage::{now_micros, DbConnection};

/// The issuer shown in authenticator apps.
const ISSUER: &str = "samverkan";
/// Recovery codes handed out at confirmation.
pub const RECOVERY_CODES: usize = 10;
/// Longest code accepted (a recovery code with its hyphens).
pub const MAX_CODE_LEN: usize = 32;

/// The key that seals TOTP secrets and keys the recovery codes' hashes.
#[derive(Clone)]
pub struct FactorKey {
    seal: [u8; 32],
    mac: [u8; 32],
}

impl std::fmt::Debug for FactorKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("FactorKey(..)")
    }
}

impl FactorKey {
    /// Two keys derived from the configured secret (one to seal, one to hash codes).
    pub fn derive(secret: &str) -> Self {
        let derive = |label: &str| -> [u8; 32] {
            let mut h = Sha256::new();
            h.update(label.as_bytes());
            h.update(secret.as_bytes());
            h.finalize().into()
        };
        FactorKey {
            seal: derive("samverkan totp seal\0"),
            mac: derive("samverkan recovery code\0"),
        }
    }

    fn seal(&self, user_id: &str, secret: &[u8]) -> Result<String, AppError> {
        let cipher = Aes256GcmSiv::new((&self.seal).into());
        let mut nonce = [0u8; 12];
        rand::thread_rng().fill_bytes(&mut nonce);
        let sealed = cipher
            .encrypt(
                &Nonce::from(nonce),
                Payload {
                    msg: secret,
                    aad: user_id.as_bytes(),
                },
            )
            .map_err(|_| AppError::internal("sealing a TOTP secret"))?;
        let mut out = nonce.to_vec();
        out.extend_from_slice(&sealed);
        Ok(base64::engine::general_purpose::STANDARD.encode(out))
    }

    fn open(&self, user_id: &str, stored: &str) -> Result<Vec<u8>, AppError> {
        let raw = base64::engine::general_purpose::STANDARD
            .decode(stored)
            .map_err(|_| AppError::internal("a stored TOTP secret is not base64"))?;
        if raw.len() < 12 {
            return Err(AppError::internal("a stored TOTP secret is too short"));
        }
        let (nonce, sealed) = raw.split_at(12);
        let mut n = [0u8; 12];
        n.copy_from_slice(nonce);
        Aes256GcmSiv::new((&self.seal).into())
            .decrypt(
                &Nonce::from(n),
                Payload {
                    msg: sealed,
                    aad: user_id.as_bytes(),
                },
            )
            .map_err(|_| {
                AppError::internal("a TOTP secret does not open: SAMVERKAN_TOTP_KEY changed?")
            })
    }

    fn code_hash(&self, user_id: &str, code: &str) -> Result<String, AppError> {
        use hmac::{Hmac, Mac};
        let mut mac = <Hmac<Sha256> as Mac>::new_from_slice(&self.mac)
            .map_err(|_| AppError::internal("recovery-code key"))?;
        mac.update(user_id.as_bytes());
        mac.update(b"\0");
        mac.update(normalise_recovery(code).as_bytes());
        Ok(hex::encode(mac.finalize().into_bytes()))
    }
}

/// Who must have a second factor, and the key (none: second factors are not offered).
#[derive(Debug, Clone, Default)]
pub struct SecondFactor {
    pub key: Option<FactorKey>,
    pub required_roles: Vec<String>,
}

impl SecondFactor {
    /// Whether `role` may do nothing but enrol until it has a confirmed second factor.
    pub fn required_for(&self, role: &str) -> bool {
        self.required_roles.iter().any(|r| r == role)
    }

    pub fn key(&self) -> Result<&FactorKey, AppError> {
        self.key.as_ref().ok_or(AppError::Refused {
            code: "second_factor_unavailable",
            message: "Second factors are not configured on this server (SAMVERKAN_TOTP_KEY)."
                .into(),
        })
    }
}

fn totp(secret: Vec<u8>, username: &str) -> Result<totp_rs::Totp, AppError> {
    totp_rs::Builder::new()
        .with_secret(secret)
        .with_issuer(Some(ISSUER))
        // A colon would split the label; usernames never hold one, but be sure.
        .with_account_name(username.replace(':', "_"))
        .build()
        .map_err(AppError::internal)
}

fn unix_now() -> u64 {
    u64::try_from(now_micros() / 1_000_000).unwrap_or_default()
}

/// A new, not yet confirmed factor: what the user's authenticator app needs.
#[derive(Debug)]
pub struct Enrolment {
    /// Base32, for typing into the app.
    pub secret: String,
    pub otpauth_uri: String,
    /// The URI as a QR code, an SVG document.
    pub qr_svg: String,
}

/// Whether the user has a confirmed factor.
pub fn is_confirmed(conn: &mut DbConnection, user_id: &str) -> Result<bool, AppError> {
    Ok(totp_factors::table
        .find(user_id)
        .select(totp_factors::confirmed_at)
        .first::<Option<i64>>(conn)
        .optional()?
        .flatten()
        .is_some())
}

/// Starts (or restarts) enrolment: a fresh secret, unconfirmed. A user with a confirmed
/// factor cannot replace it this way (409): an administrator resets it.
pub fn enrol(
    conn: &mut DbConnection,
    key: &FactorKey,
    user_id: &str,
    username: &str,
) -> Result<Enrolment, AppError> {
    if is_confirmed(conn, user_id)? {
        return Err(AppError::Conflict(
            "A second factor is already confirmed for this account; an administrator can reset it."
                .into(),
        ));
    }
    let mut secret = vec![0u8; 20];
    rand::thread_rng().fill_bytes(&mut secret);
    let sealed = key.seal(user_id, &secret)?;
    diesel::delete(totp_factors::table.find(user_id)).execute(conn)?;
    diesel::insert_into(totp_factors::table)
        .values((
            totp_factors::user_id.eq(user_id),
            totp_factors::secret_sealed.eq(&sealed),
            totp_factors::created_at.eq(now_micros()),
            totp_factors::last_step.eq(0_i64),
        ))
        .execute(conn)?;
    enrolment(totp(secret, username)?)
}

/// The enrolment in progress (not yet confirmed), or a new one: what the enrolment page
/// shows, so that a wrong code or a reload does not change the secret being scanned.
pub fn enrol_or_resume(
    conn: &mut DbConnection,
    key: &FactorKey,
    user_id: &str,
    username: &str,
) -> Result<Enrolment, AppError> {
    let pending = totp_factors::table
        .find(user_id)
        .filter(totp_factors::confirmed_at.is_null())
        .select(totp_factors::secret_sealed)
        .first::<String>(conn)
        .optional()?;
    match pending {
        Some(sealed) => enrolment(totp(key.open(user_id, &sealed)?, username)?),
        None => enrol(conn, key, user_id, username),
    }
}

fn enrolment(t: totp_rs::Totp) -> Result<Enrolment, AppError> {
    let otpauth_uri = t.to_url().map_err(AppError::internal)?;
    let qr_svg = qrcode::QrCode::new(otpauth_uri.as_bytes())
        .map_err(AppError::internal)?
        .render::<qrcode::render::svg::Color<'_>>()
        .min_dimensions(200, 200)
        .build();
    Ok(Enrolment {
        secret: t.secret().to_base32(),
        otpauth_uri,
        qr_svg,
    })
}

/// Checks a six-digit code against the user's secret and, if right and of a later time
/// step than any accepted before, takes that step (so the code is spent).
fn take_code(
    conn: &mut DbConnection,
    key: &FactorKey,
    user_id: &str,
    username: &str,
    sealed: &str,
    code: &str,
) -> Result<bool, AppError> {
    let t = totp(key.open(user_id, sealed)?, username)?;
    let Some(step) = t.check(code, unix_now()) else {
        return Ok(false);
    };
    let step = i64::try_from(step).unwrap_or(i64::MAX);
    let taken = diesel::update(
        totp_factors::table
            .filter(totp_factors::user_id.eq(user_id))
            .filter(totp_factors::last_step.lt(step)),
    )
    .set(totp_factors::last_step.eq(step))
    .execute(conn)?;
    Ok(taken == 1)
}

/// Confirms the enrolment with a code from the app and hands out the recovery codes
/// (shown once; stored hashed). `Ok(None)`: wrong code, or nothing to confirm.
pub fn confirm(
    conn: &mut DbConnection,
    key: &FactorKey,
    user_id: &str,
    username: &str,
    code: &str,
) -> Result<Option<Vec<String>>, AppError> {
    let Some((sealed, confirmed)) = totp_factors::table
        .find(user_id)
        .select((totp_factors::secret_sealed, totp_factors::confirmed_at))
        .first::<(String, Option<i64>)>(conn)
        .optional()?
    else {
        return Ok(None);
    };
    if confirmed.is_some() || !take_code(conn, key, user_id, username, &sealed, code.trim())? {
        return Ok(None);
    }
    diesel::update(totp_factors::table.find(user_id))
        .set(totp_factors::confirmed_at.eq(now_micros()))
        .execute(conn)?;
    diesel::delete(recovery_codes::table.filter(recovery_codes::user_id.eq(user_id)))
        .execute(conn)?;
    let codes: Vec<String> = (0..RECOVERY_CODES).map(|_| new_recovery_code()).collect();
    for c in &codes {
        diesel::insert_into(recovery_codes::table)
            .values((
                recovery_codes::user_id.eq(user_id),
                recovery_codes::code_hash.eq(key.code_hash(user_id, c)?),
            ))
            .execute(conn)?;
    }
    Ok(Some(codes))
}

/// At sign-in: a six-digit code or an unused recovery code, spent if right.
pub fn verify_at_login(
    conn: &mut DbConnection,
    key: &FactorKey,
    user_id: &str,
    username: &str,
    code: &str,
) -> Result<bool, AppError> {
    let code = code.trim();
    if code.is_empty() || code.len() > MAX_CODE_LEN {
        return Ok(false);
    }
    if code.chars().all(|c| c.is_ascii_digit()) {
        let Some(sealed) = totp_factors::table
            .find(user_id)
            .filter(totp_factors::confirmed_at.is_not_null())
            .select(totp_factors::secret_sealed)
            .first::<String>(conn)
            .optional()?
        else {
            return Ok(false);
        };
        return take_code(conn, key, user_id, username, &sealed, code);
    }
    let spent = diesel::update(
        recovery_codes::table
            .filter(recovery_codes::user_id.eq(user_id))
            .filter(recovery_codes::code_hash.eq(key.code_hash(user_id, code)?))
            .filter(recovery_codes::used_at.is_null()),
    )
    .set(recovery_codes::used_at.eq(now_micros()))
    .execute(conn)?;
    Ok(spent == 1)
}

/// Twelve characters of an alphabet without look-alikes, as `xxxx-xxxx-xxxx` (60 bits).
fn new_recovery_code() -> String {
    const ALPHABET: &[u8; 32] = b"abcdefghjkmnpqrstuvwxyz23456789-";
    let mut bytes = [0u8; 12];
    rand::thread_rng().fill_bytes(&mut bytes);
    let mut out = String::with_capacity(14);
    for (i, b) in bytes.iter().enumerate() {
        if i > 0 && i % 4 == 0 {
            out.push('-');
        }
        // 31 letters and digits: the last entry (the hyphen) is never drawn.
        out.push(ALPHABET[usize::from(*b) % 31] as char);
    }
    out
}

/// Recovery codes compare without hyphens, spaces or case.
fn normalise_recovery(code: &str) -> String {
    code.chars()
        .filter(char::is_ascii_alphanumeric)
        .map(|c| c.to_ascii_lowercase())
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_sealed_secret_opens_only_for_its_user_and_key() {
        let key = FactorKey::derive("a test key of some length, 32 bytes or more");
        let sealed = key.seal("u1", b"secret bytes").unwrap();
        assert_eq!(key.open("u1", &sealed).unwrap(), b"secret bytes");
        assert!(key.open("u2", &sealed).is_err());
        let other = FactorKey::derive("another key of some length, 32 bytes or more");
        assert!(other.open("u1", &sealed).is_err());
    }

    #[test]
    fn recovery_codes_are_distinct_and_compare_loosely() {
        let key = FactorKey::derive("k");
        let a = new_recovery_code();
        assert_eq!(a.len(), 14);
        assert_ne!(a, new_recovery_code());
        assert_eq!(
            key.code_hash("u", &a).unwrap(),
            key.code_hash("u", &a.to_uppercase().replace('-', " "))
                .unwrap()
        );
        assert_ne!(
            key.code_hash("u", &a).unwrap(),
            key.code_hash("v", &a).unwrap()
        );
    }
}
