//! Video retention: how long a store keeps shopper video after the receipt
//! is final, and the day a retention run belongs to. Labels, receipts and
//! the audit trail are not video and stay.

/// A day in milliseconds.
pub const DAY_MS: i64 = 86_400_000;

/// The longest retention a store may set (ten years).
pub const MAX_RETENTION_DAYS: i64 = 3_650;

/// The retention of a new store.
pub const DEFAULT_RETENTION_DAYS: i64 = 30;

/// Why a retention cannot be set, if it cannot: one day at least (a
/// receipt may still be disputed the day it is final), ten years at most.
pub fn check_days(days: i64) -> Result<(), String> {
    if (1..=MAX_RETENTION_DAYS).contains(&days) {
        Ok(())
    } else {
        Err(format!(
            "media_retention_days must be between 1 and {MAX_RETENTION_DAYS}, not {days}"
        ))
    }
}

/// Video whose receipts were final before this time (epoch ms) is past a
/// retention of `days` at `now`.
pub fn cutoff(now: i64, days: i64) -> i64 {
    now.saturating_sub(days.saturating_mul(DAY_MS))
}

/// The UTC day (its start, epoch ms) of `now`: the daily run's key, so
/// every instance that schedules today's run schedules the same one.
pub fn day_of(now: i64) -> i64 {
    now.div_euclid(DAY_MS) * DAY_MS
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn retention_is_one_day_to_ten_years() {
        assert!(check_days(0).is_err());
        assert!(check_days(-3).is_err());
        assert!(check_days(1).is_ok());
        assert!(check_days(MAX_RETENTION_DAYS).is_ok());
        assert!(check_days(MAX_RETENTION_DAYS + 1).is_err());
        assert!(check_days(DEFAULT_RETENTION_DAYS).is_ok());
    }

    #[test]
    fn the_cutoff_is_that_many_days_before_now() {
        assert_eq!(cutoff(10 * DAY_MS, 3), 7 * DAY_MS);
        assert_eq!(cutoff(0, i64::MAX), -i64::MAX, "no overflow");
    }

    #[test]
    fn a_day_is_keyed_by_its_utc_midnight() {
        assert_eq!(day_of(0), 0);
        assert_eq!(day_of(DAY_MS - 1), 0);
        assert_eq!(day_of(DAY_MS), DAY_MS);
        assert_eq!(day_of(5 * DAY_MS + 123), 5 * DAY_MS);
    }
}
