//! List cursors: the keyset position of the last item shown, sealed so it names nothing
//! and works only for the list it came from.

use aes_gcm_siv::aead::{Aead, KeyInit, Payload};
use aes_gcm_siv::{Aes256GcmSiv, Nonce};
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine;
use secrecy::{ExposeSecret, SecretBox};
use sha2::{Digest, Sha256};

use crate::error::AppError;

/// Keyset position: (sort time, id) of the last item shown. Ordered as lists are sorted
/// (by time, then id).
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
pub struct Cursor {
    pub time: i64,
    pub id: String,
}

impl Cursor {
    fn encode(&self) -> String {
        format!("{}_{}", self.time, self.id)
    }

    fn parse(raw: &str) -> Option<Self> {
        let (t, id) = raw.split_once('_')?;
        Some(Cursor {
            time: t.parse::<i64>().ok()?,
            id: uuid::Uuid::parse_str(id).ok()?.hyphenated().to_string(),
        })
    }
}

fn invalid() -> AppError {
    AppError::bad_request(
        "invalid_cursor",
        "cursor must be the next_cursor of a previous page of this same list (same user, same filters)",
    )
}

const NONCE: usize = 12;

/// Seals cursors with AES-256-GCM-SIV. What a cursor is bound to — the user, the record
/// kind and the filters — is its associated data, so a cursor used by someone else, on
/// another list or with other filters does not open. The nonce is derived from the
/// cursor and its binding (deterministic authenticated encryption, which GCM-SIV is
/// built for): the same page gives the same bytes, so an answer never differs by a
/// random nonce, and equal cursors are all it reveals.
#[derive(Clone)]
pub struct CursorSeal {
    cipher: Aes256GcmSiv,
    nonce_key: std::sync::Arc<SecretBox<[u8; 32]>>,
}

impl std::fmt::Debug for CursorSeal {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("CursorSeal(***)")
    }
}

/// What a cursor is bound to, written once: the user, the kind and the filters.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Binding(String);

impl Binding {
    pub fn new(user_id: &str, kind: &str, filters: &[(&str, String)]) -> Self {
        let mut s = format!("user={user_id}\0kind={kind}");
        for (name, value) in filters {
            s.push('\0');
            s.push_str(name);
            s.push('=');
            s.push_str(value);
        }
        Binding(s)
    }
}

impl CursorSeal {
    /// A seal keyed from a secret (the token signing key), so every instance agrees.
    pub fn new(secret: &[u8]) -> Self {
        let derive = |label: &[u8]| -> [u8; 32] {
            let mut h = Sha256::new();
            h.update(b"samverkan list cursor v2\0");
            h.update(label);
            h.update(secret);
            h.finalize().into()
        };
        let key = SecretBox::new(Box::new(derive(b"aead")));
        CursorSeal {
            cipher: Aes256GcmSiv::new(key.expose_secret().into()),
            nonce_key: std::sync::Arc::new(SecretBox::new(Box::new(derive(b"nonce")))),
        }
    }

    fn nonce(&self, binding: &Binding, plain: &[u8]) -> [u8; NONCE] {
        // Only uniqueness per (binding, cursor) matters here: GCM-SIV stays secure when
        // a nonce repeats, revealing then only that two cursors are equal.
        let mut h = Sha256::new();
        h.update(self.nonce_key.expose_secret());
        h.update((binding.0.len() as u64).to_be_bytes());
        h.update(binding.0.as_bytes());
        h.update(plain);
        let digest = h.finalize();
        let mut nonce = [0u8; NONCE];
        nonce.copy_from_slice(&digest[..NONCE]);
        nonce
    }

    pub fn seal(&self, c: &Cursor, binding: &Binding) -> String {
        let plain = c.encode();
        let nonce = self.nonce(binding, plain.as_bytes());
        let payload = Payload {
            msg: plain.as_bytes(),
            aad: binding.0.as_bytes(),
        };
        // Encryption fails only for inputs of gigabytes.
        let sealed = self
            .cipher
            .encrypt(&Nonce::from(nonce), payload)
            .unwrap_or_default();
        let mut out = nonce.to_vec();
        out.extend_from_slice(&sealed);
        URL_SAFE_NO_PAD.encode(out)
    }

    pub fn open(&self, raw: &str, binding: &Binding) -> Result<Cursor, AppError> {
        if raw.len() > 512 {
            return Err(invalid());
        }
        let bytes = URL_SAFE_NO_PAD.decode(raw.trim()).map_err(|_| invalid())?;
        if bytes.len() <= NONCE {
            return Err(invalid());
        }
        let (nonce, sealed) = bytes.split_at(NONCE);
        let nonce: [u8; NONCE] = nonce.try_into().map_err(|_| invalid())?;
        let plain = self
            .cipher
            .decrypt(
                &Nonce::from(nonce),
                Payload {
                    msg: sealed,
                    aad: binding.0.as_bytes(),
                },
            )
            .map_err(|_| invalid())?;
        Cursor::parse(std::str::from_utf8(&plain).map_err(|_| invalid())?).ok_or_else(invalid)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_sealed_cursor_opens_only_unchanged_with_its_key_and_binding() {
        let seal = CursorSeal::new(b"a-secret-of-some-length-for-the-test");
        let c = Cursor {
            time: 1_795_212_000_000_000,
            id: "01a21405-80df-750b-80fa-41ae32f02b4c".into(),
        };
        let bound = Binding::new("user-1", "observation", &[("place", "a".into())]);
        let sealed = seal.seal(&c, &bound);
        assert!(!sealed.contains("1795") && !sealed.contains("80df"));
        assert_eq!(seal.open(&sealed, &bound).ok(), Some(c.clone()));
        assert_eq!(
            seal.seal(&c, &bound),
            sealed,
            "the same page, the same bytes"
        );
        let mut bytes = URL_SAFE_NO_PAD.decode(&sealed).unwrap_or_default();
        for i in 0..bytes.len() {
            bytes[i] ^= 1;
            assert!(
                seal.open(&URL_SAFE_NO_PAD.encode(&bytes), &bound).is_err(),
                "bit {i}"
            );
            bytes[i] ^= 1;
        }
        assert!(CursorSeal::new(b"another key")
            .open(&sealed, &bound)
            .is_err());
        for other in [
            Binding::new("user-2", "observation", &[("place", "a".into())]),
            Binding::new("user-1", "referral", &[("place", "a".into())]),
            Binding::new("user-1", "observation", &[("place", "b".into())]),
            Binding::new("user-1", "observation", &[]),
        ] {
            assert!(seal.open(&sealed, &other).is_err(), "{other:?}");
        }
        assert!(seal.open(&c.encode(), &bound).is_err());
    }
}
