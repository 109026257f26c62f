//! A flag that stops blocking FFmpeg work between frames.

use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;

use super::error::{MediaError, MediaResult};

/// Shared stop flag: the async side sets it, the blocking side checks it
/// between packets and frames (and FFmpeg polls it inside blocking reads), so
/// a timed-out job really stops instead of burning a core in the background.
#[derive(Debug, Clone, Default)]
pub struct Cancel {
    inner: Arc<Inner>,
}

#[derive(Debug, Default)]
struct Inner {
    cancelled: AtomicBool,
    checks: AtomicU64,
    /// Cancels itself at this check (0 = never).
    budget: u64,
}

impl Cancel {
    /// A flag that is not set.
    pub fn new() -> Cancel {
        Cancel::default()
    }

    /// A flag that sets itself at its `n`-th [`check`](Cancel::check): caps
    /// work by step count, and lets tests stop a job mid-way deterministically.
    pub fn after_checks(n: u64) -> Cancel {
        Cancel {
            inner: Arc::new(Inner {
                budget: n,
                ..Inner::default()
            }),
        }
    }

    /// Asks the work to stop at its next check.
    pub fn cancel(&self) {
        self.inner.cancelled.store(true, Ordering::SeqCst);
    }

    /// Whether the flag is set.
    pub fn is_cancelled(&self) -> bool {
        self.inner.cancelled.load(Ordering::SeqCst)
    }

    /// How many checks the work has made so far.
    pub fn checks(&self) -> u64 {
        self.inner.checks.load(Ordering::SeqCst)
    }

    /// A checkpoint of the blocking work: `cancelled` once the flag is set.
    pub fn check(&self) -> MediaResult<()> {
        let n = self.inner.checks.fetch_add(1, Ordering::SeqCst) + 1;
        if self.inner.budget != 0 && n >= self.inner.budget {
            self.cancel();
        }
        if self.is_cancelled() {
            return Err(MediaError::new(
                MediaError::CANCELLED,
                "the media operation was stopped before it finished",
            ));
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn check_fails_once_cancelled() {
        let cancel = Cancel::new();
        assert!(cancel.check().is_ok());
        cancel.clone().cancel();
        assert_eq!(cancel.check().unwrap_err().code, "cancelled");
    }

    #[test]
    fn after_checks_trips_at_the_nth_check() {
        let cancel = Cancel::after_checks(3);
        assert!(cancel.check().is_ok());
        assert!(cancel.check().is_ok());
        assert!(cancel.check().is_err());
        assert_eq!(cancel.checks(), 3);
    }
}
