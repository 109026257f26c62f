//! Failed-login throttling: a sliding window of failures per key.
//!
//! A key (a username, a client address) that failed `max_failures` times
//! within `window_ms` is refused until the oldest of those failures leaves
//! the window. A success forgets the key's failures. Pure: the caller passes
//! the time and keeps the state.

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

    /// Records a failed attempt of `key` at `now`.
    pub fn fail(&mut self, key: &str, limit: Limit, now: i64) {
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
    fn old_failures_are_forgotten() {
        let mut w = FailureWindows::default();
        for t in 0..3 {
            w.fail("ana", LIMIT, t);
        }
        assert_eq!(w.blocked("ana", LIMIT, 200_000), None);
        assert!(w.failures.is_empty(), "expired keys are dropped");
    }
}
