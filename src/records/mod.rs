//! The three record kinds and their parts: what can be filed, how it is validated once at
//! the edge, and how a response is assembled from the parts the policy allows.

pub mod observations;
pub mod referrals;
pub mod situation_reports;

use std::sync::Arc;

use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine;
use hmac::digest::KeyInit;
use hmac::{Hmac, Mac};
use rand::RngCore;
use sha2::{Digest, Sha256};

use serde::{Deserialize, Serialize};
use time::format_description::well_known::Rfc3339;
use time::OffsetDateTime;
use utoipa::{IntoParams, ToSchema};

use crate::error::AppError;
use crate::policy::{Action, PolicyEngine, PrincipalAttrs, Resource};

/// Most items a list returns at once, and the default.
pub const MAX_PAGE: i64 = 100;
pub const DEFAULT_PAGE: i64 = 50;
/// Most stored rows one list request examines before it answers with a cursor to go on.
pub const MAX_SCAN: usize = 2000;

/// Rows a list reads in its next pass, `scanned` read so far and `last` in the pass
/// before (0 before the first): first one page's worth, since most callers may see most
/// of what they filter for and rows read beyond the page are thrown away (profiled: half
/// of the police list's query time), then twice the last pass, never past `MAX_SCAN`.
pub fn next_batch(limit: i64, last: i64, scanned: usize) -> i64 {
    let left = MAX_SCAN.saturating_sub(scanned) as i64;
    let want = if last == 0 { limit } else { last * 2 };
    want.min(left).max(1)
}

/// Decides parts for one principal; every read and write asks this, nothing else.
#[derive(Clone)]
pub struct Decider {
    engine: Arc<PolicyEngine>,
    principal: PrincipalAttrs,
}

impl Decider {
    pub fn new(engine: Arc<PolicyEngine>, principal: PrincipalAttrs) -> Self {
        Decider { engine, principal }
    }

    pub fn allows(&self, action: Action, resource: &Resource) -> bool {
        self.engine.is_allowed(&self.principal, action, resource)
    }

    pub fn principal(&self) -> &PrincipalAttrs {
        &self.principal
    }
}

/// RFC 3339 text → microseconds since the epoch.
pub fn parse_time(field: &str, value: &str) -> Result<i64, AppError> {
    let t = OffsetDateTime::parse(value.trim(), &Rfc3339).map_err(|_| {
        AppError::bad_request(
            "invalid_timestamp",
            format!("{field} must be an RFC 3339 timestamp such as 2026-11-25T21:30:00Z"),
        )
    })?;
    let micros = t.unix_timestamp_nanos() / 1_000;
    // Years 1970–9999 keep every stored time positive and printable.
    if !(0..=253_402_300_799_000_000).contains(&micros) {
        return Err(AppError::bad_request(
            "invalid_timestamp",
            format!("{field} is out of range"),
        ));
    }
    Ok(micros as i64)
}

/// Microseconds since the epoch → RFC 3339 (UTC).
pub fn format_time(micros: i64) -> String {
    OffsetDateTime::from_unix_timestamp_nanos(micros as i128 * 1_000)
        .ok()
        .and_then(|t| t.format(&Rfc3339).ok())
        .unwrap_or_default()
}

/// Checks a text field's length (in characters) and trims it.
pub fn text(field: &str, value: &str, min: usize, max: usize) -> Result<String, AppError> {
    let v = value.trim();
    let n = v.chars().count();
    if n < min || n > max {
        return Err(AppError::bad_request(
            "invalid_field",
            if min > 0 {
                format!("{field} must have {min}–{max} characters")
            } else {
                format!("{field} may have at most {max} characters")
            },
        ));
    }
    if v.chars()
        .any(|c| c.is_control() && c != '\n' && c != '\t' && c != '\r')
    {
        return Err(AppError::bad_request(
            "invalid_field",
            format!("{field} contains control characters"),
        ));
    }
    Ok(v.to_owned())
}

pub fn opt_text(
    field: &str,
    value: &Option<String>,
    max: usize,
) -> Result<Option<String>, AppError> {
    match value {
        None => Ok(None),
        Some(v) => {
            let t = text(field, v, 0, max)?;
            Ok((!t.is_empty()).then_some(t))
        }
    }
}

/// A slug id (places, organisations): lowercase letters, digits and '-'.
pub fn slug(field: &str, value: &str) -> Result<String, AppError> {
    let v = value.trim();
    if v.is_empty()
        || v.len() > 64
        || !v
            .chars()
            .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '-')
    {
        return Err(AppError::bad_request(
            "invalid_field",
            format!("{field} must be 1–64 characters of a–z, 0–9 and '-'"),
        ));
    }
    Ok(v.to_owned())
}

/// A record id as issued (a UUID); anything else cannot exist, so it is a 404.
pub fn record_id(value: &str) -> Result<String, AppError> {
    uuid::Uuid::parse_str(value)
        .map(|u| u.hyphenated().to_string())
        .map_err(|_| AppError::NotFound)
}

pub fn birth_year(field: &str, year: Option<i32>) -> Result<Option<i32>, AppError> {
    let this_year = OffsetDateTime::now_utc().year();
    match year {
        Some(y) if !(1900..=this_year).contains(&y) => Err(AppError::bad_request(
            "invalid_field",
            format!("{field} must be between 1900 and {this_year}"),
        )),
        other => Ok(other),
    }
}

/// Filters and paging shared by the record lists.
#[derive(Debug, Default, Deserialize, IntoParams)]
#[serde(deny_unknown_fields)]
#[into_params(parameter_in = Query)]
pub struct ListQuery {
    /// Only records at this place (slug).
    pub place: Option<String>,
    /// Only records at or after this time (RFC 3339).
    pub since: Option<String>,
    /// Only records before this time (RFC 3339).
    pub until: Option<String>,
    /// Page size, 1–100 (default 50).
    pub limit: Option<i64>,
    /// `next_cursor` of the previous page.
    pub cursor: Option<String>,
    /// Situation reports only: just those valid now.
    pub current: Option<bool>,
}

/// Validated list filters.
#[derive(Debug, Clone)]
pub struct ListFilter {
    pub place: Option<String>,
    pub since: Option<i64>,
    pub until: Option<i64>,
    pub limit: i64,
    pub cursor: Option<Cursor>,
    pub current: bool,
    /// Seals the `next_cursor` handed out.
    pub seal: CursorSeal,
}

impl ListQuery {
    pub fn validate(&self, seal: &CursorSeal) -> Result<ListFilter, AppError> {
        let limit = self.limit.unwrap_or(DEFAULT_PAGE);
        if !(1..=MAX_PAGE).contains(&limit) {
            return Err(AppError::bad_request(
                "invalid_limit",
                format!("limit must be between 1 and {MAX_PAGE}"),
            ));
        }
        Ok(ListFilter {
            place: self
                .place
                .as_deref()
                .map(|p| slug("place", p))
                .transpose()?,
            since: self
                .since
                .as_deref()
                .map(|s| parse_time("since", s))
                .transpose()?,
            until: self
                .until
                .as_deref()
                .map(|s| parse_time("until", s))
                .transpose()?,
            limit,
            cursor: self.cursor.as_deref().map(|c| seal.open(c)).transpose()?,
            current: self.current.unwrap_or(false),
            seal: seal.clone(),
        })
    }
}

/// Keyset position: (sort time, id) of the last item seen; handed out sealed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Cursor {
    pub time: i64,
    pub id: String,
}

impl Cursor {
    pub fn encode(&self) -> String {
        format!("{}_{}", self.time, self.id)
    }

    pub fn parse(raw: &str) -> Result<Self, AppError> {
        let bad = || {
            AppError::bad_request(
                "invalid_cursor",
                "cursor must be a next_cursor value from a previous page",
            )
        };
        let (t, id) = raw.split_once('_').ok_or_else(bad)?;
        let time = t.parse::<i64>().map_err(|_| bad())?;
        let id = uuid::Uuid::parse_str(id)
            .map_err(|_| bad())?
            .hyphenated()
            .to_string();
        Ok(Cursor { time, id })
    }
}

type HmacSha256 = Hmac<Sha256>;

/// Makes cursors opaque and tamper-proof. A list may stop at its scan limit on a record
/// the user cannot see; a plain cursor would then name that record's id and time. The
/// sealed one (random nonce, HMAC-SHA256 keystream, HMAC-SHA256 tag) names nothing, and a
/// changed one is refused as a whole, so it is no oracle either.
#[derive(Clone)]
pub struct CursorSeal {
    /// One HMAC-SHA256 block: HMAC keys of this length are used as they are.
    key: [u8; 64],
}

impl std::fmt::Debug for CursorSeal {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("CursorSeal(***)")
    }
}

const NONCE: usize = 12;
const TAG: usize = 16;

impl CursorSeal {
    /// A seal keyed from a secret (the token signing key), so every instance agrees.
    pub fn new(secret: &[u8]) -> Self {
        let mut key = [0u8; 64];
        for (i, half) in key.chunks_mut(32).enumerate() {
            let mut h = Sha256::new();
            h.update(b"samverkan list cursor v1\0");
            h.update([i as u8]);
            h.update(secret);
            half.copy_from_slice(&h.finalize());
        }
        CursorSeal { key }
    }

    fn mac(&self, label: &[u8], parts: &[&[u8]]) -> [u8; 32] {
        let mut m = <HmacSha256 as KeyInit>::new((&self.key).into());
        m.update(label);
        for p in parts {
            m.update(p);
        }
        m.finalize().into_bytes().into()
    }

    fn keystream_xor(&self, nonce: &[u8], data: &mut [u8]) {
        for (block, chunk) in data.chunks_mut(32).enumerate() {
            let ks = self.mac(b"enc", &[nonce, &(block as u32).to_be_bytes()]);
            for (b, k) in chunk.iter_mut().zip(ks.iter()) {
                *b ^= k;
            }
        }
    }

    pub fn seal(&self, c: &Cursor) -> String {
        let mut nonce = [0u8; NONCE];
        rand::rngs::OsRng.fill_bytes(&mut nonce);
        let mut body = c.encode().into_bytes();
        self.keystream_xor(&nonce, &mut body);
        let tag = self.mac(b"tag", &[&nonce, &body]);
        let mut out = nonce.to_vec();
        out.extend_from_slice(&body);
        out.extend_from_slice(&tag[..TAG]);
        URL_SAFE_NO_PAD.encode(out)
    }

    pub fn open(&self, raw: &str) -> Result<Cursor, AppError> {
        let bad = || {
            AppError::bad_request(
                "invalid_cursor",
                "cursor must be a next_cursor value from a previous page",
            )
        };
        if raw.len() > 512 {
            return Err(bad());
        }
        let bytes = URL_SAFE_NO_PAD.decode(raw.trim()).map_err(|_| bad())?;
        if bytes.len() <= NONCE + TAG {
            return Err(bad());
        }
        let (nonce, rest) = bytes.split_at(NONCE);
        let (body, tag) = rest.split_at(rest.len() - TAG);
        let mut m = <HmacSha256 as KeyInit>::new((&self.key).into());
        m.update(b"tag");
        m.update(nonce);
        m.update(body);
        m.verify_truncated_left(tag).map_err(|_| bad())?;
        let mut body = body.to_vec();
        self.keystream_xor(nonce, &mut body);
        Cursor::parse(std::str::from_utf8(&body).map_err(|_| bad())?)
    }
}

/// A page of a list, newest first.
#[derive(Debug, Serialize, ToSchema)]
pub struct Page<T> {
    pub items: Vec<T>,
    /// Pass as `cursor` to get the next page; null at the end.
    pub next_cursor: Option<String>,
}

/// A view and the parts it discloses (for the audit entry).
pub struct Shown<T> {
    pub view: T,
    pub id: String,
    pub parts: Vec<&'static str>,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_sealed_cursor_opens_only_unchanged_and_only_with_its_key() {
        let seal = CursorSeal::new(b"a-secret-of-some-length-for-the-test");
        let c = Cursor {
            time: 1_795_212_000_000_000,
            id: "01a21405-80df-750b-80fa-41ae32f02b4c".into(),
        };
        let sealed = seal.seal(&c);
        assert!(!sealed.contains("1795") && !sealed.contains("80df"));
        assert_eq!(seal.open(&sealed).ok(), Some(c.clone()));
        assert_ne!(seal.seal(&c), sealed, "a fresh nonce every time");
        let mut bytes = URL_SAFE_NO_PAD.decode(&sealed).unwrap_or_default();
        for i in 0..bytes.len() {
            bytes[i] ^= 1;
            assert!(
                seal.open(&URL_SAFE_NO_PAD.encode(&bytes)).is_err(),
                "bit {i}"
            );
            bytes[i] ^= 1;
        }
        assert!(CursorSeal::new(b"another key").open(&sealed).is_err());
        assert!(seal.open(&c.encode()).is_err());
    }
}
