//! A store's past events as replay reads them: what the model said, how
//! each event was settled and what people found.

use sqlx::{AnyConnection, Row};

use super::Result;
use crate::domain::lifecycle::RouteName;
use crate::domain::routing::ReviewReason;

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
