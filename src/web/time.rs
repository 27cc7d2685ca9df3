//! Times on the pages are Europe/Stockholm; stored and sent to the services as UTC
//! (RFC 3339).

use jiff::{civil::DateTime, tz::TimeZone, Timestamp};

fn stockholm() -> TimeZone {
    // Compiled in (jiff's bundled database), so this cannot be missing.
    TimeZone::get("Europe/Stockholm").unwrap_or(TimeZone::UTC)
}

/// `2026-12-04 21:30` for an RFC 3339 time; the input itself if it is not one.
pub fn local(rfc3339: &str) -> String {
    match rfc3339.parse::<Timestamp>() {
        Ok(t) => t
            .to_zoned_datetime(stockholm())
            .strftime("%Y-%m-%d %H:%M")
            .to_string(),
        Err(_) => rfc3339.to_owned(),
    }
}

/// The value of a `datetime-local` input showing this RFC 3339 time (or now).
pub fn input_value(rfc3339: Option<&str>) -> String {
    let t = rfc3339
        .and_then(|s| s.parse::<Timestamp>().ok())
        .unwrap_or_else(Timestamp::now);
    t.to_zoned_datetime(stockholm())
        .strftime("%Y-%m-%dT%H:%M")
        .to_string()
}

/// A `datetime-local` value (Stockholm wall time) as RFC 3339 UTC; `None` when it is
/// not one (the service then answers as for any bad time).
pub fn from_input(value: &str) -> Option<String> {
    let civil: DateTime = value.trim().parse().ok()?;
    let zoned = civil.to_zoned_datetime(stockholm()).ok()?;
    Some(zoned.timestamp().to_string())
}

/// Whole days from an RFC 3339 time until now.
pub fn days_since(rfc3339: &str) -> i64 {
    rfc3339
        .parse::<Timestamp>()
        .map(|t| (Timestamp::now().as_second() - t.as_second()) / 86_400)
        .unwrap_or(0)
}

/// The RFC 3339 time `days` after this one, shown in Stockholm time.
pub fn local_plus_days(rfc3339: &str, days: i64) -> String {
    match rfc3339.parse::<Timestamp>() {
        Ok(t) => match t.checked_add(jiff::SignedDuration::from_hours(24 * days)) {
            Ok(later) => later
                .to_zoned_datetime(stockholm())
                .strftime("%Y-%m-%d")
                .to_string(),
            Err(_) => String::new(),
        },
        Err(_) => String::new(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn stockholm_wall_time_round_trips_through_utc_in_winter_and_summer() {
        assert_eq!(
            from_input("2026-12-04T21:30").as_deref(),
            Some("2026-12-04T20:30:00Z")
        );
        assert_eq!(
            from_input("2026-07-01T12:00").as_deref(),
            Some("2026-07-01T10:00:00Z")
        );
        assert_eq!(local("2026-12-04T20:30:00Z"), "2026-12-04 21:30");
        assert_eq!(local("2026-07-01T10:00:00.5Z"), "2026-07-01 12:00");
        assert_eq!(from_input("not a time"), None);
    }
}
