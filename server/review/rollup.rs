//! The dashboard's rollups advanced: every fact up to `now − LAG_MS` added
//! to the rollup tables, one short transaction per step, each moving the
//! watermark with what it counted.

use crate::db::rollup::{self, LAG_MS, MINUTE_RETENTION_MS, STEP_MS};
use crate::db::Db;
use crate::domain::rollup::bucket;
use crate::error::Result;

/// What one [`roll_up`] call did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RollupRun {
    /// The watermark before.
    pub from: i64,
    /// The watermark after.
    pub to: i64,
    /// Transactions that advanced it.
    pub steps: u64,
}

/// Adds every fact in `[watermark, now − LAG_MS)` to the rollup tables and
/// moves the watermark there, an hour at most per transaction.
///
/// Each transaction starts by locking the watermark row
/// ([`rollup::lock_watermark`]), then counts, writes and advances it. A
/// concurrent call on another instance waits for the lock and then sees the
/// advanced watermark, so no fact is ever counted twice.
pub async fn roll_up(db: &Db, now: i64) -> Result<RollupRun> {
    let target = now - LAG_MS;
    let mut run: Option<RollupRun> = None;
    loop {
        let mut tx = db.begin().await?;
        let from = rollup::lock_watermark(&mut tx).await?;
        let run = run.get_or_insert(RollupRun {
            from,
            to: from,
            steps: 0,
        });
        if from >= target {
            // Another instance may have advanced it since our last step.
            run.to = from;
            tx.commit().await?;
            break;
        }
        // Skip empty stretches (a fresh install, a quiet night) at once.
        let to = match rollup::first_fact(&mut tx, from, target).await? {
            Some(first) => (bucket(first, STEP_MS) + STEP_MS).min(target),
            None => target,
        };
        let counted = rollup::collect(&mut tx, from, to).await?;
        rollup::write(&mut tx, &counted).await?;
        rollup::advance_watermark(&mut tx, to, now).await?;
        tx.commit().await?;
        run.to = to;
        run.steps += 1;
    }
    let run = run.unwrap_or(RollupRun {
        from: target,
        to: target,
        steps: 0,
    });
    if run.steps > 0 {
        rollup::delete_minutes_before(db, now - MINUTE_RETENTION_MS).await?;
    }
    Ok(run)
}
