//! A store's past as replay and the staffing forecast read it: what the
//! model said, how each event was settled and what people found; who came
//! when, and how long labelers took.

use sqlx::{AnyConnection, Row};

use super::Result;
use crate::domain::lifecycle::RouteName;
use crate::domain::routing::ReviewReason;
use crate::domain::Action;
use crate::sim::forecast::{Moments, PastShopper};

/// One past event, as stored.
#[derive(Debug, Clone, PartialEq)]
pub struct PastRow {
    /// `pick` or `return`.
    pub kind: String,
    /// Units the store reported.
    pub quantity: i64,
    /// The candidates as stored (JSON).
    pub candidates: String,
    /// Whether people reviewed it (its receipt waited for them).
    pub reviewed: bool,
    /// Whether it was an audit sample.
    pub audited: bool,
    /// When people settled it (an audit sample: when its audit ended).
    pub resolved_at: Option<i64>,
    /// The final label: action, sku, quantity.
    pub final_action: Option<String>,
    /// Its sku.
    pub final_sku: Option<String>,
    /// Its units.
    pub final_quantity: Option<i64>,
}

/// The store's events that occurred in `[from, to)`, oldest first; gold
/// copies and dispute rows (made, not observed) left out.
pub async fn past_events(
    conn: &mut AnyConnection,
    store_id: &str,
    from: i64,
    to: i64,
) -> Result<Vec<PastRow>> {
    let sql = format!(
        "SELECT kind, quantity, candidates, route, route_reason, resolved_at, final_action, \
         final_sku, final_quantity FROM events WHERE store_id = $1 AND occurred_at >= $2 \
         AND occurred_at < $3 AND route NOT IN ({made}) ORDER BY occurred_at, id",
        made = super::sql_list(&RouteName::MADE),
    );
    let rows = sqlx::query(&sql)
        .bind(store_id)
        .bind(from)
        .bind(to)
        .fetch_all(conn)
        .await?;
    rows.iter()
        .map(|r| {
            let route: String = r.try_get("route")?;
            let reason: Option<String> = r.try_get("route_reason")?;
            Ok(PastRow {
                kind: r.try_get("kind")?,
                quantity: r.try_get("quantity")?,
                candidates: r.try_get("candidates")?,
                reviewed: route == RouteName::Review.as_str(),
                audited: reason.as_deref() == Some(ReviewReason::AuditSample.as_str()),
                resolved_at: r.try_get("resolved_at")?,
                final_action: r.try_get("final_action")?,
                final_sku: r.try_get("final_sku")?,
                final_quantity: r.try_get("final_quantity")?,
            })
        })
        .collect()
}

/// The store's shoppers whose events occurred in `[from, to)`: one row a
/// session, with its first event, exit, events and returns (gold copies
/// and dispute rows left out).
pub async fn past_shoppers(
    conn: &mut AnyConnection,
    store_id: &str,
    from: i64,
    to: i64,
) -> Result<Vec<PastShopper>> {
    let sql = format!(
        "SELECT MIN(e.occurred_at) AS first_at, COUNT(*) AS events, \
         SUM(CASE WHEN e.kind = $4 THEN 1 ELSE 0 END) AS returns, MAX(s.exited_at) AS exited_at \
         FROM events e JOIN sessions s ON s.store_id = e.store_id AND s.session_id = e.session_id \
         WHERE e.store_id = $1 AND e.occurred_at >= $2 AND e.occurred_at < $3 \
         AND e.route NOT IN ({made}) GROUP BY e.session_id",
        made = super::sql_list(&RouteName::MADE),
    );
    let rows = sqlx::query(&sql)
        .bind(store_id)
        .bind(from)
        .bind(to)
        .bind(Action::Return.as_str())
        .fetch_all(conn)
        .await?;
    rows.iter()
        .map(|r| {
            Ok(PastShopper {
                first_at: r.try_get("first_at")?,
                exited_at: r.try_get("exited_at")?,
                events: r.try_get::<i64, _>("events")? as u32,
                returns: r.try_get::<i64, _>("returns")? as u32,
            })
        })
        .collect()
}

/// Count, sum and sum of squares of the model's top confidence over the
/// store's events that occurred in `[from, to)`.
pub async fn confidence_moments(
    conn: &mut AnyConnection,
    store_id: &str,
    from: i64,
    to: i64,
) -> Result<Moments> {
    let sql = format!(
        "SELECT COUNT(top_confidence) AS n, SUM(top_confidence) AS s, \
         SUM(top_confidence * top_confidence) AS s2 FROM events \
         WHERE store_id = $1 AND occurred_at >= $2 AND occurred_at < $3 \
         AND route NOT IN ({made})",
        made = super::sql_list(&RouteName::MADE),
    );
    let row = sqlx::query(&sql)
        .bind(store_id)
        .bind(from)
        .bind(to)
        .fetch_one(conn)
        .await?;
    Ok(Moments {
        n: row.try_get::<i64, _>("n")? as u64,
        sum: row.try_get::<Option<f64>, _>("s")?.unwrap_or(0.0),
        sum_sq: row.try_get::<Option<f64>, _>("s2")?.unwrap_or(0.0),
    })
}

/// Handling times (ms) of verdicts given in `[from, to)` on the store's
/// tasks.
pub async fn handling_times(
    conn: &mut AnyConnection,
    store_id: &str,
    from: i64,
    to: i64,
) -> Result<Vec<i64>> {
    let rows = sqlx::query(
        "SELECT v.handling_ms FROM verdicts v JOIN review_tasks t ON t.id = v.task_id \
         WHERE t.store_id = $1 AND v.created_at >= $2 AND v.created_at < $3",
    )
    .bind(store_id)
    .bind(from)
    .bind(to)
    .fetch_all(conn)
    .await?;
    rows.iter()
        .map(|r| Ok(r.try_get::<i64, _>("handling_ms")?))
        .collect()
}
