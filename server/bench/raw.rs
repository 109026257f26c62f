//! The raw-SQL baseline of `recount bench queue`: the least SQL a claim and
//! a verdict take on the database Recount runs on, with nothing of Recount
//! between the labeler and the rows (no lease rows, no lease limit, no
//! consensus, no receipt). Its throughput is what the engine, its
//! durability and the machine allow; the HTTP figure is read against it.

use crate::db::{new_id, Backend, Db};
use crate::domain::lifecycle::TaskStatus;

/// Leases the next ready task to `user_id` in one statement, its own
/// transaction; its id, or `None` when the queue is empty.
pub async fn claim(db: &Db, user_id: &str, ttl_ms: i64) -> anyhow::Result<Option<String>> {
    let now = now_ms();
    let skip_locked = db.backend.skip_locked();
    let sql = format!(
        "UPDATE review_tasks SET status = '{leased}', leased_by = $1, lease_expires_at = $2, \
         updated_at = $3 WHERE id = (SELECT id FROM review_tasks WHERE status = '{ready}' \
         ORDER BY priority, deadline_at, created_at LIMIT 1{skip_locked}) RETURNING id",
        leased = TaskStatus::Leased,
        ready = TaskStatus::Ready,
    );
    let query = sqlx::query_scalar(&sql)
        .bind(user_id)
        .bind(now + ttl_ms)
        .bind(now);
    match db.backend {
        // One statement in its own transaction: one round trip.
        Backend::Postgres => {
            let id = query.fetch_optional(db.writer()).await?;
            crate::db::tally::committed();
            Ok(id)
        }
        // Through the writer, whose commits are shared as Recount's are.
        Backend::Sqlite => {
            let mut tx = db.begin().await?;
            let id = query.fetch_optional(&mut *tx).await?;
            tx.commit().await?;
            Ok(id)
        }
    }
}

/// Stores the verdict and resolves the task, in one transaction.
pub async fn verdict(db: &Db, user_id: &str, task_id: &str, sku: &str) -> anyhow::Result<()> {
    let now = now_ms();
    let mut tx = db.begin().await?;
    sqlx::query(
        "INSERT INTO verdicts (id, task_id, labeler_id, lease_id, action, sku, quantity, \
         cant_tell, note, created_at, handling_ms) \
         VALUES ($1, $2, $3, $4, 'pick', $5, 1, 0, NULL, $6, 0)",
    )
    .bind(new_id())
    .bind(task_id)
    .bind(user_id)
    .bind(new_id())
    .bind(sku)
    .bind(now)
    .execute(&mut *tx)
    .await?;
    sqlx::query(&format!(
        "UPDATE review_tasks SET status = '{}', leased_by = NULL, lease_expires_at = NULL, \
         verdict_count = 1, updated_at = $1 WHERE id = $2",
        TaskStatus::Resolved
    ))
    .bind(now)
    .bind(task_id)
    .execute(&mut *tx)
    .await?;
    tx.commit().await?;
    Ok(())
}

fn now_ms() -> i64 {
    crate::clock::Clock::now_ms(&crate::clock::SystemClock)
}
