//! Values as they arrive at the edge, validated once: times, texts, slugs, ids. Every
//! message says what to send instead.

use time::format_description::well_known::Rfc3339;
use time::OffsetDateTime;

use crate::error::AppError;

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

/// The calendar month (`2026-03`) of a stored time, in Europe/Stockholm: statistics
/// count by the month people there lived it, not by UTC.
pub fn stockholm_month(micros: i64) -> String {
    // Compiled in (jiff's bundled database), so the zone cannot be missing.
    let tz = jiff::tz::TimeZone::get("Europe/Stockholm").unwrap_or(jiff::tz::TimeZone::UTC);
    match jiff::Timestamp::from_microsecond(micros) {
        Ok(t) => t.to_zoned_datetime(tz).strftime("%Y-%m").to_string(),
        Err(_) => "0000-00".to_owned(),
    }
}

#[cfg(test)]
mod month_tests {
    #[test]
    fn a_new_year_night_in_stockholm_counts_in_january() {
        // 2026-12-31T23:30Z is 00:30 on 1 January 2027 in Stockholm.
        assert_eq!(super::stockholm_month(1_798_759_800_000_000), "2027-01");
        assert_eq!(super::stockholm_month(1_798_756_200_000_000), "2026-12");
    }
}
