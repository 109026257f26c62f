//! Timestamps: epoch milliseconds inside, RFC 3339 at the edges.

use time::format_description::well_known::Rfc3339;
use time::OffsetDateTime;

/// Parses an RFC 3339 timestamp into epoch milliseconds.
pub fn parse_rfc3339_ms(s: &str) -> Option<i64> {
    let t = OffsetDateTime::parse(s, &Rfc3339).ok()?;
    i64::try_from(t.unix_timestamp_nanos() / 1_000_000).ok()
}

/// Formats epoch milliseconds as RFC 3339 in UTC with millisecond precision.
pub fn format_rfc3339_ms(ms: i64) -> String {
    let t = OffsetDateTime::from_unix_timestamp_nanos(ms as i128 * 1_000_000)
        .unwrap_or(OffsetDateTime::UNIX_EPOCH);
    let f = time::macros::format_description!(
        "[year]-[month]-[day]T[hour]:[minute]:[second].[subsecond digits:3]Z"
    );
    t.format(&f).unwrap_or_default()
}

/// Midnight UTC of a calendar day written `YYYY-MM-DD`, in epoch
/// milliseconds.
pub fn parse_date_ms(s: &str) -> Option<i64> {
    let well_formed = s.len() == 10
        && s.bytes().enumerate().all(|(i, b)| {
            if i == 4 || i == 7 {
                b == b'-'
            } else {
                b.is_ascii_digit()
            }
        });
    well_formed.then(|| parse_rfc3339_ms(&format!("{s}T00:00:00Z")))?
}

/// The UTC calendar day of epoch milliseconds, `YYYY-MM-DD`, and its
/// weekday's English name.
pub fn date_and_weekday(ms: i64) -> (String, String) {
    let t = OffsetDateTime::from_unix_timestamp_nanos(ms as i128 * 1_000_000)
        .unwrap_or(OffsetDateTime::UNIX_EPOCH);
    (
        format_rfc3339_ms(ms)[..10].to_string(),
        t.weekday().to_string(),
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn dates_are_utc_days() {
        assert_eq!(parse_date_ms("2026-11-25"), Some(1_795_564_800_000));
        for bad in [
            "2026-11-31",
            "2026-1-25",
            "25.11.2026",
            "2026-11-25T00:00:00Z",
            "",
        ] {
            assert_eq!(parse_date_ms(bad), None, "{bad}");
        }
        assert_eq!(
            date_and_weekday(1_795_600_800_000),
            ("2026-11-25".to_string(), "Wednesday".to_string())
        );
    }

    #[test]
    fn round_trips_with_millisecond_precision() {
        let ms = parse_rfc3339_ms("2026-11-25T10:15:30.123Z").unwrap();
        assert_eq!(ms, 1_795_601_730_123);
        assert_eq!(format_rfc3339_ms(ms), "2026-11-25T10:15:30.123Z");
    }

    #[test]
    fn offsets_are_normalized_to_utc() {
        assert_eq!(
            parse_rfc3339_ms("2026-11-25T11:15:30.123+01:00"),
            parse_rfc3339_ms("2026-11-25T10:15:30.123Z")
        );
    }

    #[test]
    fn garbage_is_refused() {
        assert_eq!(parse_rfc3339_ms("yesterday"), None);
        assert_eq!(parse_rfc3339_ms("2026-13-01T00:00:00Z"), None);
    }
}
