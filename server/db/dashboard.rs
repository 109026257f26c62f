//! Rows the dashboard reads beside the rollups: the state of the queue per
//! store, receipts waiting past their deadline, usernames. The snapshot
//! that combines them with the rollup buckets in one consistent read is
//! `review::dashboard`'s.

use std::collections::{BTreeMap, BTreeSet};

use sqlx::{AnyConnection, Row};

use super::{in_scope, Result};
use crate::domain::dashboard::StoreQueue;
use crate::domain::lifecycle::{SessionStatus, TaskPurpose, TaskStatus};
use crate::domain::scope::Scope;

/// Open tasks per store (every store is listed, busy or not), with those
/// past their deadline and those due within `lead_ms`. Gold tasks are
/// labelers' tests, not a store's work, and are left out.
pub async fn queue(
    conn: &mut AnyConnection,
    scope: &Scope,
    now: i64,
    lead_ms: i64,
) -> Result<Vec<StoreQueue>> {
    let stores = sqlx::query("SELECT id, name FROM stores ORDER BY name, id")
        .fetch_all(&mut *conn)
        .await?;
    let mut queue: BTreeMap<String, StoreQueue> = BTreeMap::new();
    let mut order = Vec::with_capacity(stores.len());
    for s in stores {
        let store_id: String = s.try_get("id")?;
        // Other stores' counts are read below and skipped: one grouped
        // scan serves every scope.
        if !scope.sees(&store_id) {
            continue;
        }
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
pub async fn pending_receipts(
    conn: &mut AnyConnection,
    scope: &Scope,
    now: i64,
) -> Result<(i64, i64)> {
    let stores = in_scope("s.store_id", scope, 2);
    let sql = format!(
        "SELECT COUNT(*) AS n, SUM(CASE WHEN s.exited_at + st.receipt_sla_ms < $1 THEN 1 ELSE 0 END) AS late \
         FROM sessions s JOIN stores st ON st.id = s.store_id WHERE s.status = '{}'{}",
        SessionStatus::Exited,
        stores.sql
    );
    let r = stores
        .bind_rows(sqlx::query(&sql).bind(now))
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

/// Labelers who hold a task of a store of `scope` now or gave a verdict on
/// one at or after `since`.
pub async fn working_labelers(
    conn: &mut AnyConnection,
    scope: &Scope,
    now: i64,
    since: i64,
) -> Result<i64> {
    let sql = if scope.is_all() {
        "SELECT COUNT(*) AS n FROM (SELECT labeler_id FROM task_leases \
         WHERE ended_at IS NULL AND expires_at > $1 \
         UNION SELECT labeler_id FROM verdicts WHERE created_at >= $2) w"
            .to_string()
    } else {
        let stores = in_scope("t.store_id", scope, 3);
        format!(
            "SELECT COUNT(*) AS n FROM (SELECT l.labeler_id FROM task_leases l \
             JOIN review_tasks t ON t.id = l.task_id \
             WHERE l.ended_at IS NULL AND l.expires_at > $1{s} \
             UNION SELECT v.labeler_id FROM verdicts v JOIN review_tasks t ON t.id = v.task_id \
             WHERE v.created_at >= $2{s}) w",
            s = stores.sql
        )
    };
    let mut query = sqlx::query(&sql).bind(now).bind(since);
    // The list is written twice in the text but bound once: both refer to
    // the same `$3…` parameters.
    for id in scope.stores().into_iter().flatten() {
        query = query.bind(id.as_str());
    }
    let r = query.fetch_one(conn).await?;
    Ok(r.try_get("n")?)
}

/// The users whose scope `scope` covers: the labelers a supervisor of
/// those stores sees on the dashboard.
pub async fn covered_users(conn: &mut AnyConnection, scope: &Scope) -> Result<BTreeSet<String>> {
    let rows = sqlx::query("SELECT id, role, stores FROM users")
        .fetch_all(conn)
        .await?;
    let mut ids = BTreeSet::new();
    for r in &rows {
        if scope.covers(&super::users::scope_of_row(r)?) {
            ids.insert(r.try_get("id")?);
        }
    }
    Ok(ids)
}
