//! The raw-SQL baseline of `recount bench queue`: the least SQL a claim and
//! a verdict take on the database Recount runs on, with nothing of Recount
//! between the labeler and the rows (no lease rows, no lease limit, no
//! consensus, no receipt). Its throughput is what the engine, its
//! durability and the machine allow; the HTTP figure is read against it.

use sqlx::Row;

use crate::db::{batch, new_id, Backend, Db};
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
    match db.backend {
        // One statement in its own transaction: one round trip.
        Backend::Postgres => {
            let id = sqlx::query_scalar(&sql)
                .bind(user_id)
                .bind(now + ttl_ms)
                .bind(now)
                .fetch_optional(db.writer())
                .await?;
            crate::db::tally::committed();
            Ok(id)
        }
        // Through the writer, whose commits are shared as Recount's are,
        // its savepoint opened with the statement as Recount's claim does.
        Backend::Sqlite => {
            let mut tx = db.begin_deferred().await?;
            let opening = tx.opening().await?;
            let sql = batch::after_open(opening, &sql);
            let query = sqlx::query(&sql).bind(user_id).bind(now + ttl_ms).bind(now);
            let each = batch::after_opening(batch::rows_of_each(&mut tx, query).await?, opening)?;
            let id = match each.first().and_then(|o| o.rows.first()) {
                Some(row) => Some(row.try_get(0)?),
                None => None,
            };
            tx.commit().await?;
            Ok(id)
        }
    }
}

/// Stores the verdict and resolves the task, in one transaction: two
/// statements, each its own round trip (on SQLite the first opens the
/// savepoint, as a verdict's batch does).
pub async fn verdict(db: &Db, user_id: &str, task_id: &str, sku: &str) -> anyhow::Result<()> {
    let now = now_ms();
    let mut tx = db.begin_deferred().await?;
    let opening = tx.opening().await?;
    let insert = "INSERT INTO verdicts (id, task_id, labeler_id, lease_id, action, sku, quantity, \
         cant_tell, note, created_at, handling_ms) \
         VALUES ($1, $2, $3, $4, 'pick', $5, 1, 0, NULL, $6, 0)";
    let insert = batch::after_open(opening, insert);
    let query = sqlx::query(&insert)
        .bind(new_id())
        .bind(task_id)
        .bind(user_id)
        .bind(new_id())
        .bind(sku)
        .bind(now);
    match opening {
        Some(_) => {
            batch::rows_of_each(&mut tx, query).await?;
        }
        None => {
            query.execute(&mut *tx).await?;
        }
    }
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
