//! Counts the SQL statements the query layer sends while a bench asks for
//! it, from sqlx's statement log (target `sqlx::query`, one event per
//! statement executed). Transaction control (`BEGIN`, `COMMIT`, savepoints)
//! is left out: PostgreSQL's driver logs it and SQLite's does not, and
//! commits are counted on their own ([`crate::db::tally`]).
//!
//! Off, the filter refuses every event, so sqlx neither formats nor sends
//! its log line: the timed runs pay one atomic load per statement.

use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};

use tracing::field::{Field, Visit};
use tracing::subscriber::Interest;
use tracing::{Event, Subscriber};
use tracing_subscriber::filter::{dynamic_filter_fn, Filtered};
use tracing_subscriber::layer::{Context, Layer};

static ON: AtomicBool = AtomicBool::new(false);
static STATEMENTS: AtomicU64 = AtomicU64::new(0);

/// sqlx's statement log.
const TARGET: &str = "sqlx::query";

/// The layer main installs for `recount bench`. It raises tracing's
/// maximum level to DEBUG (sqlx logs statements there); main keeps the `log`
/// crate's maximum where the log filter has it, so that other crates' debug
/// records are not turned into events only to be dropped.
pub fn layer<S>() -> impl Layer<S>
where
    S: Subscriber + for<'a> tracing_subscriber::registry::LookupSpan<'a>,
{
    let filter = dynamic_filter_fn(|meta, _| meta.target() == TARGET && ON.load(Ordering::Relaxed))
        .with_max_level_hint(tracing::level_filters::LevelFilter::DEBUG)
        .with_callsite_filter(|meta| {
            if meta.target() == TARGET {
                Interest::sometimes()
            } else {
                Interest::never()
            }
        });
    let counter: Filtered<Counter, _, S> = Counter.with_filter(filter);
    counter
}

struct Counter;

impl<S: Subscriber> Layer<S> for Counter {
    fn on_event(&self, event: &Event<'_>, _: Context<'_, S>) {
        let mut summary = Summary(false);
        event.record(&mut summary);
        if !summary.0 {
            STATEMENTS.fetch_add(1, Ordering::Relaxed);
        }
    }
}

/// Whether the statement's summary is transaction control.
struct Summary(bool);

impl Visit for Summary {
    fn record_str(&mut self, field: &Field, value: &str) {
        if field.name() == "summary" {
            self.0 = is_transaction_control(value);
        }
    }

    fn record_debug(&mut self, field: &Field, value: &dyn std::fmt::Debug) {
        if field.name() == "summary" {
            self.0 = is_transaction_control(&format!("{value:?}").replace('"', ""));
        }
    }
}

/// Whether every statement the summary shows is transaction control. A
/// write that opens its transaction's savepoint first (`SAVEPOINT …; UPDATE
/// …`, see `db::group`) is a statement.
fn is_transaction_control(sql: &str) -> bool {
    sql.split(';')
        .filter_map(|part| part.split_whitespace().next())
        .all(|first| {
            matches!(
                first.to_ascii_uppercase().as_str(),
                "BEGIN" | "COMMIT" | "ROLLBACK" | "SAVEPOINT" | "RELEASE" | "START"
            )
        })
}

/// Statements and commits over a stretch of work.
#[derive(Debug, Clone, Copy, Default, PartialEq)]
pub struct Counts {
    /// Statements sent, transaction control excluded.
    pub statements: u64,
    /// Durable commits ([`crate::db::tally`]).
    pub commits: u64,
}

/// Counts from now until [`Counting::stop`].
pub struct Counting {
    statements: u64,
    commits: u64,
}

impl Counting {
    /// Starts counting.
    pub fn start() -> Counting {
        ON.store(true, Ordering::Relaxed);
        Counting {
            statements: STATEMENTS.load(Ordering::Relaxed),
            commits: crate::db::tally::commits(),
        }
    }

    /// Stops counting; what was counted since [`Counting::start`].
    pub fn stop(self) -> Counts {
        ON.store(false, Ordering::Relaxed);
        Counts {
            statements: STATEMENTS.load(Ordering::Relaxed) - self.statements,
            commits: crate::db::tally::commits() - self.commits,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn transaction_control_is_told_from_statements() {
        assert!(is_transaction_control("BEGIN"));
        assert!(is_transaction_control("commit"));
        assert!(is_transaction_control("SAVEPOINT recount_tx"));
        assert!(is_transaction_control("ROLLBACK TO recount_tx; RELEASE"));
        assert!(!is_transaction_control(
            "SAVEPOINT recount_tx; SELECT COUNT(*)"
        ));
        assert!(!is_transaction_control("UPDATE review_tasks SET …"));
        assert!(!is_transaction_control("SELECT 1"));
    }
}
