//! Failed-login throttling: a sliding window of failures per key.
//!
//! A key (a username, a client address, the pair of both) that failed
//! `max_failures` times within `window_ms` is refused until the oldest of
//! those failures leaves the window. An attempt counts as a failure from
//! the moment it is let through ([`FailureWindows::attempt`]), before the
//! password is checked, so parallel guesses cannot all pass the check
//! before any failure is counted; a success takes its own count back.
//! Keys whose failures have all left the window are swept once a window.
//! Pure: the caller passes the time and keeps the state.

use std::collections::{HashMap, VecDeque};

/// How many failures a key may have within a window.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Limit {
    /// Failures allowed within the window; the next attempt is refused.
    pub max_failures: usize,
    /// Length of the window in milliseconds.
    pub window_ms: i64,
}

/// Failures per key.
#[derive(Debug, Default)]
pub struct FailureWindows {
    failures: HashMap<String, VecDeque<i64>>,
    /// When expired keys are next swept.
    next_sweep: i64,
}

impl FailureWindows {
    /// Keys remembered at most; beyond this the oldest-looking state is
    /// dropped wholesale (an attacker spraying keys cannot exhaust memory).
    const CAPACITY: usize = 100_000;

    /// `Some(retry_after_ms)` when `key` must wait before trying again.
    pub fn blocked(&mut self, key: &str, limit: Limit, now: i64) -> Option<i64> {
        let times = self.failures.get_mut(key)?;
        while times.front().is_some_and(|&t| t <= now - limit.window_ms) {
            times.pop_front();
        }
        if times.is_empty() {
            self.failures.remove(key);
            return None;
        }
        (times.len() >= limit.max_failures).then(|| {
            let oldest = times[times.len() - limit.max_failures];
            (oldest + limit.window_ms - now).max(1)
        })
    }

    /// Lets an attempt through when none of `keys` is blocked, counting it
    /// as a failure of each at once; otherwise the longest wait.
    pub fn attempt(&mut self, keys: &[(&str, Limit)], now: i64) -> Result<(), i64> {
        let wait = keys
            .iter()
            .filter_map(|(key, limit)| self.blocked(key, *limit, now))
            .max();
        if let Some(wait_ms) = wait {
            return Err(wait_ms);
        }
        for (key, limit) in keys {
            self.fail(key, *limit, now);
        }
        Ok(())
    }

    /// Takes back the failure an attempt at `at` counted for `key` (it
    /// succeeded).
    pub fn take_back(&mut self, key: &str, at: i64) {
        if let Some(times) = self.failures.get_mut(key) {
            if let Some(i) = times.iter().rposition(|&t| t == at) {
                times.remove(i);
            }
            if times.is_empty() {
                self.failures.remove(key);
            }
        }
    }

    /// Records a failed attempt of `key` at `now`.
    pub fn fail(&mut self, key: &str, limit: Limit, now: i64) {
        if now >= self.next_sweep {
            // Keys nobody asks about again would otherwise stay forever.
            let horizon = now - limit.window_ms;
            self.failures
                .retain(|_, times| times.back().is_some_and(|&t| t > horizon));
            self.next_sweep = now + limit.window_ms;
        }
        if self.failures.len() >= Self::CAPACITY && !self.failures.contains_key(key) {
            self.failures.clear();
        }
        let times = self.failures.entry(key.to_string()).or_default();
        times.push_back(now);
        while times.len() > limit.max_failures {
            times.pop_front();
        }
    }

    /// Forgets the failures of `key` (after a successful login).
    pub fn succeed(&mut self, key: &str) {
        self.failures.remove(key);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const LIMIT: Limit = Limit {
        max_failures: 3,
        window_ms: 60_000,
    };

    #[test]
    fn blocks_after_max_failures_until_the_oldest_leaves_the_window() {
        let mut w = FailureWindows::default();
        for t in [0, 10_000, 20_000] {
            assert_eq!(w.blocked("ana", LIMIT, t), None);
            w.fail("ana", LIMIT, t);
        }
        assert_eq!(w.blocked("ana", LIMIT, 30_000), Some(30_000));
        assert_eq!(w.blocked("ana", LIMIT, 59_999), Some(1));
        // The failure at 0 has left the window: two remain, one more try.
        assert_eq!(w.blocked("ana", LIMIT, 60_000), None);
        w.fail("ana", LIMIT, 60_000);
        assert_eq!(w.blocked("ana", LIMIT, 60_001), Some(9_999));
    }

    #[test]
    fn keys_are_independent_and_success_forgets() {
        let mut w = FailureWindows::default();
        for t in 0..3 {
            w.fail("ana", LIMIT, t);
        }
        assert!(w.blocked("ana", LIMIT, 5).is_some());
        assert_eq!(w.blocked("ben", LIMIT, 5), None);
        w.succeed("ana");
        assert_eq!(w.blocked("ana", LIMIT, 6), None);
    }

    #[test]
    fn an_attempt_counts_before_it_is_checked_and_a_success_takes_it_back() {
        let mut w = FailureWindows::default();
        let keys = [
            ("pair", LIMIT),
            (
                "user",
                Limit {
                    max_failures: 5,
                    ..LIMIT
                },
            ),
        ];
        // Three attempts in flight at once: the fourth is refused before
        // any of them has been checked.
        for t in 0..3 {
            assert_eq!(w.attempt(&keys, t), Ok(()));
        }
        assert_eq!(w.attempt(&keys, 3), Err(60_000 - 3));
        // One of them succeeds: its count is taken back, the others stay.
        w.take_back("pair", 2);
        w.take_back("user", 2);
        assert_eq!(w.attempt(&keys, 4), Ok(()));
        assert_eq!(w.attempt(&keys, 5), Err(60_000 - 5));
    }

    #[test]
    fn keys_nobody_asks_about_again_are_swept() {
        let mut w = FailureWindows::default();
        for i in 0..1_000 {
            w.fail(&format!("spray-{i}"), LIMIT, 10);
        }
        assert_eq!(w.failures.len(), 1_000);
        // A window later, the next failure sweeps what has expired.
        w.fail("late", LIMIT, 60_011);
        assert_eq!(w.failures.len(), 1, "only the new key is left");
    }

    #[test]
    fn old_failures_are_forgotten() {
        let mut w = FailureWindows::default();
        for t in 0..3 {
            w.fail("ana", LIMIT, t);
        }
        assert_eq!(w.blocked("ana", LIMIT, 200_000), None);
        assert!(w.failures.is_empty(), "expired keys are dropped");
    }
}
