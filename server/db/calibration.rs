//! The human-labelled events a store's calibration is fitted on: per
//! confidence bin, whether they were audit samples, and whether the model's
//! top candidate was right, counted in SQL.

use sqlx::{AnyConnection, Row};

use super::Result;
use crate::domain::calibration::{self, Observation, BINS};
use crate::domain::lifecycle::{EventStatus, RouteName};
use crate::domain::routing::ReviewReason;

/// The SQL of a top confidence's bin, the same on both engines (casts
/// round differently on them, so the edges are spelled out).
fn bin_sql() -> String {
    let mut sql = String::from("CASE");
    for b in 1..BINS {
        sql.push_str(&format!(
            " WHEN e.top_confidence < {} THEN {}",
            b as f64 / BINS as f64,
            b - 1
        ));
    }
    sql.push_str(&format!(" ELSE {} END", BINS - 1));
    sql
}

/// The store's events of `model_version` a person labelled since `since`,
/// as calibration observations: a reviewed event weighs 1, an audit sample
/// `1 / audit_rate` (the inverse of its chance of being drawn). Groups of
/// identical observations are expanded at their bin's mean confidence.
pub async fn observations(
    conn: &mut AnyConnection,
    store_id: &str,
    model_version: Option<&str>,
    since: i64,
    audit_rate: f64,
) -> Result<Vec<Observation>> {
    let sql = format!(
        "SELECT {bin} AS bin, \
         CASE WHEN e.route_reason = '{audit}' THEN 1 ELSE 0 END AS audited, \
         CASE WHEN e.final_action = e.kind AND e.final_sku = e.top_sku \
           AND e.final_quantity = e.quantity THEN 1 ELSE 0 END AS right_answer, \
         COUNT(*) AS n, AVG(e.top_confidence) AS confidence \
         FROM events e WHERE e.store_id = $1 AND COALESCE(e.model_version, '') = $2 \
         AND e.status = '{resolved}' AND e.resolved_at >= $3 AND e.top_confidence IS NOT NULL \
         AND e.route NOT IN ({made}) AND (e.route = '{review}' OR e.route_reason = '{audit}') \
         GROUP BY 1, 2, 3",
        bin = bin_sql(),
        audit = ReviewReason::AuditSample.as_str(),
        resolved = EventStatus::Resolved,
        made = super::sql_list(&RouteName::MADE),
        review = RouteName::Review,
    );
    let rows = sqlx::query(&sql)
        .bind(store_id)
        .bind(model_version.unwrap_or(""))
        .bind(since)
        .fetch_all(conn)
        .await?;
    let mut out = Vec::new();
    for r in rows {
        let n: i64 = r.try_get("n")?;
        let confidence: f64 = r.try_get("confidence")?;
        let audited = r.try_get::<i64, _>("audited")? != 0;
        let right = r.try_get::<i64, _>("right_answer")? != 0;
        let weight = calibration::weight(audited, audit_rate);
        out.extend((0..n).map(|_| Observation {
            confidence,
            right,
            weight,
        }));
    }
    Ok(out)
}

/// The model version of the store's latest event (`None` when it named
/// none, or the store has no event).
pub async fn latest_model(conn: &mut AnyConnection, store_id: &str) -> Result<Option<String>> {
    let row: Option<(Option<String>,)> = sqlx::query_as(&format!(
        "SELECT model_version FROM events WHERE store_id = $1 AND route NOT IN ({}) \
         ORDER BY created_at DESC LIMIT 1",
        super::sql_list(&RouteName::MADE)
    ))
    .bind(store_id)
    .fetch_optional(conn)
    .await?;
    Ok(row.and_then(|(m,)| m))
}
