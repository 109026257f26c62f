//! Rows the dashboard reads beside the rollups: the state of the queue per
//! store, receipts waiting past their deadline, usernames. The snapshot
//! that combines them with the rollup buckets in one consistent read is
//! `review::dashboard`'s.

use std::collections::BTreeMap;

use sqlx::{AnyConnection, Row};

use super::Result;
use crate::domain::dashboard::StoreQueue;
use crate::domain::lifecycle::{SessionStatus, TaskPurpose, TaskStatus};

/// Open tasks per store (every store is listed, busy or not), with those
/// past their deadline and those due within `lead_ms`. Gold tasks are
/// labelers' tests, not a store's work, and are left out.
pub async fn queue(conn: &mut AnyConnection, now: i64, lead_ms: i64) -> Result<Vec<StoreQueue>> {
    let stores = sqlx::query("SELECT id, name FROM stores ORDER BY name, id")
        .fetch_all(&mut *conn)
        .await?;
    let mut queue: BTreeMap<String, StoreQueue> = BTreeMap::new();
    let mut order = Vec::with_capacity(stores.len());
    for s in stores {
        let store_id: String = s.try_get("id")?;
        order.push(store_id.clone());
        queue.insert(
            store_id.clone(),
            StoreQueue {
                store_id,
                store_name: s.try_get("name")?,
                waiting: 0,
                ready: 0,
                leased: 0,
                escalated: 0,
                oldest_ready_ms: None,
                past_deadline: 0,
                at_risk: 0,
            },
        );
    }
    // An index range scan of review_tasks_status per open status: only open
    // tasks are read, however many resolved ones the table holds.
    let rows = sqlx::query(&format!(
        "SELECT store_id, status, COUNT(*) AS n, MIN(created_at) AS oldest, \
         SUM(CASE WHEN purpose IN ({due}) AND deadline_at < $1 THEN 1 ELSE 0 END) AS late, \
         SUM(CASE WHEN purpose IN ({due}) AND deadline_at >= $1 AND deadline_at <= $2 THEN 1 ELSE 0 END) AS at_risk \
         FROM review_tasks \
         WHERE status IN ({open}) AND gold_id IS NULL \
         GROUP BY store_id, status",
        open = super::sql_list(&TaskStatus::OPEN),
        due = super::sql_list(&TaskPurpose::WITH_DEADLINE),
    ))
    .bind(now)
    .bind(now + lead_ms)
    .fetch_all(&mut *conn)
    .await?;
    for r in rows {
        let store_id: String = r.try_get("store_id")?;
        let Some(q) = queue.get_mut(&store_id) else {
            continue;
        };
        let n: i64 = r.try_get("n")?;
        match super::task_status(&r.try_get::<String, _>("status")?)? {
            TaskStatus::Ready => {
                q.ready = n;
                q.oldest_ready_ms = r
                    .try_get::<Option<i64>, _>("oldest")?
                    .map(|t| (now - t).max(0));
            }
            TaskStatus::Waiting => q.waiting = n,
            TaskStatus::Leased => q.leased = n,
            _ => q.escalated = n,
        }
        q.past_deadline += r.try_get::<Option<i64>, _>("late")?.unwrap_or(0);
        q.at_risk += r.try_get::<Option<i64>, _>("at_risk")?.unwrap_or(0);
    }
    Ok(order
        .into_iter()
        .filter_map(|id| queue.remove(&id))
        .collect())
}

/// Sessions that exited and wait for their receipt, and those of them past
/// their store's receipt deadline (exit + `receipt_sla_ms`).
pub async fn pending_receipts(conn: &mut AnyConnection, now: i64) -> Result<(i64, i64)> {
    let r = sqlx::query(&format!(
        "SELECT COUNT(*) AS n, SUM(CASE WHEN s.exited_at + st.receipt_sla_ms < $1 THEN 1 ELSE 0 END) AS late \
         FROM sessions s JOIN stores st ON st.id = s.store_id WHERE s.status = '{}'",
        SessionStatus::Exited
    ))
    .bind(now)
    .fetch_one(conn)
    .await?;
    Ok((
        r.try_get("n")?,
        r.try_get::<Option<i64>, _>("late")?.unwrap_or(0),
    ))
}

pub async fn usernames(conn: &mut AnyConnection) -> Result<BTreeMap<String, String>> {
    let rows = sqlx::query("SELECT id, username FROM users")
        .fetch_all(conn)
        .await?;
    rows.iter()
        .map(|r| Ok((r.try_get("id")?, r.try_get("username")?)))
        .collect::<Result<_>>()
}

/// Labelers who hold a task now or gave a verdict at or after `since`.
pub async fn working_labelers(conn: &mut AnyConnection, now: i64, since: i64) -> Result<i64> {
    let r = sqlx::query(
        "SELECT COUNT(*) AS n FROM (SELECT labeler_id FROM task_leases \
         WHERE ended_at IS NULL AND expires_at > $1 \
         UNION SELECT labeler_id FROM verdicts WHERE created_at >= $2) w",
    )
    .bind(now)
    .bind(since)
    .fetch_one(conn)
    .await?;
    Ok(r.try_get("n")?)
}
