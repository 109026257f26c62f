//! How many transactions the query layer commits. `recount bench queue`
//! reports commits per claim+verdict pair from it: on SQLite a commit is an
//! fsync of the log, the cost group commit shares between requests.

use std::sync::atomic::{AtomicU64, Ordering};

static COMMITS: AtomicU64 = AtomicU64::new(0);

/// Notes one durable commit: a PostgreSQL transaction, or one SQLite group.
pub(crate) fn committed() {
    COMMITS.fetch_add(1, Ordering::Relaxed);
}

/// Commits since the process started.
pub fn commits() -> u64 {
    COMMITS.load(Ordering::Relaxed)
}
