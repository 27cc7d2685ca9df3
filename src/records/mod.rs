//! The three record kinds and their parts: what can be filed, how it is validated once at
//! the edge, and how a response is assembled from the parts the policy allows.

pub mod observations;
pub mod referrals;
pub mod situation_reports;

use std::sync::Arc;

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
}

impl ListQuery {
    pub fn validate(&self) -> Result<ListFilter, AppError> {
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
            cursor: self.cursor.as_deref().map(Cursor::parse).transpose()?,
            current: self.current.unwrap_or(false),
        })
    }
}

/// Keyset position: (sort time, id) of the last item seen.
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
