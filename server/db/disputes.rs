//! Rows of shopper disputes: one per contested receipt line, with the task
//! that re-checks it and how it ended.

use sqlx::{AnyConnection, Row};

use super::{Result, Tx};
use crate::domain::lifecycle::DisputeStatus;
use crate::domain::scope::Scope;

/// A dispute row.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DisputeRow {
    /// Dispute id.
    pub id: String,
    /// Store id.
    pub store_id: String,
    /// The store's session id.
    pub session_id: String,
    /// The contested line's sku.
    pub sku: String,
    /// The shopper's words, as the store sent them.
    pub reason: Option<String>,
    /// Where it is.
    pub status: DisputeStatus,
    /// The task that re-checks the line.
    pub task_id: String,
    /// The line's units when the dispute was opened.
    pub quantity: i64,
    /// The receipt version an upheld dispute made.
    pub adjusted_version: Option<i64>,
    /// When it was opened, epoch ms.
    pub opened_at: i64,
    /// When it ended, epoch ms.
    pub closed_at: Option<i64>,
}

const COLUMNS: &str = "id, store_id, session_id, sku, reason, status, task_id, quantity, \
     adjusted_version, opened_at, closed_at";

fn from_row(r: &sqlx::any::AnyRow) -> Result<DisputeRow> {
    Ok(DisputeRow {
        id: r.try_get("id")?,
        store_id: r.try_get("store_id")?,
        session_id: r.try_get("session_id")?,
        sku: r.try_get("sku")?,
        reason: r.try_get("reason")?,
        status: super::state(&r.try_get::<String, _>("status")?, DisputeStatus::parse)?,
        task_id: r.try_get("task_id")?,
        quantity: r.try_get("quantity")?,
        adjusted_version: r.try_get("adjusted_version")?,
        opened_at: r.try_get("opened_at")?,
        closed_at: r.try_get("closed_at")?,
    })
}

/// Whether a dispute of the line is open (read under the session's lock).
pub async fn open_exists(tx: &mut Tx, store_id: &str, session_id: &str, sku: &str) -> Result<bool> {
    let found: Option<String> = sqlx::query_scalar(&format!(
        "SELECT id FROM disputes WHERE store_id = $1 AND session_id = $2 AND sku = $3 AND status = '{}'",
        DisputeStatus::Open
    ))
    .bind(store_id)
    .bind(session_id)
    .bind(sku)
    .fetch_optional(&mut **tx)
    .await?;
    Ok(found.is_some())
}

/// Stores a new open dispute.
pub async fn insert(tx: &mut Tx, d: &DisputeRow) -> Result<()> {
    sqlx::query(&format!(
        "INSERT INTO disputes ({COLUMNS}) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11)"
    ))
    .bind(&d.id)
    .bind(&d.store_id)
    .bind(&d.session_id)
    .bind(&d.sku)
    .bind(&d.reason)
    .bind(d.status.as_str())
    .bind(&d.task_id)
    .bind(d.quantity)
    .bind(d.adjusted_version)
    .bind(d.opened_at)
    .bind(d.closed_at)
    .execute(&mut **tx)
    .await?;
    Ok(())
}

/// A store's dispute; `None` when it has no such dispute.
pub async fn get(conn: &mut AnyConnection, store_id: &str, id: &str) -> Result<Option<DisputeRow>> {
    sqlx::query(&format!(
        "SELECT {COLUMNS} FROM disputes WHERE id = $1 AND store_id = $2"
    ))
    .bind(id)
    .bind(store_id)
    .fetch_optional(conn)
    .await?
    .as_ref()
    .map(from_row)
    .transpose()
}

/// The dispute a task re-checks, if it is a dispute's task.
pub async fn of_task(conn: &mut AnyConnection, task_id: &str) -> Result<Option<DisputeRow>> {
    sqlx::query(&format!(
        "SELECT {COLUMNS} FROM disputes WHERE task_id = $1"
    ))
    .bind(task_id)
    .fetch_optional(conn)
    .await?
    .as_ref()
    .map(from_row)
    .transpose()
}

/// Ends an open dispute.
pub async fn close(
    tx: &mut Tx,
    id: &str,
    status: DisputeStatus,
    adjusted_version: Option<i64>,
    now: i64,
) -> Result<()> {
    sqlx::query(&format!(
        "UPDATE disputes SET status = $1, adjusted_version = $2, closed_at = $3 WHERE id = $4 AND status = '{}'",
        DisputeStatus::Open
    ))
    .bind(status.as_str())
    .bind(adjusted_version)
    .bind(now)
    .bind(id)
    .execute(&mut **tx)
    .await?;
    Ok(())
}

/// Disputes opened since `since` and how they ended, and the receipts
/// finalized since then (all stores).
pub async fn counts_since(
    conn: &mut AnyConnection,
    scope: &Scope,
    since: i64,
) -> Result<DisputeCounts> {
    let stores = super::in_scope("store_id", scope, 2);
    let sql = format!(
        "SELECT (SELECT COUNT(*) FROM receipts WHERE finalized_at >= $1{s}) AS receipts, \
         COUNT(*) AS opened, \
         SUM(CASE WHEN status = '{upheld}' THEN 1 ELSE 0 END) AS upheld, \
         SUM(CASE WHEN status = '{confirmed}' THEN 1 ELSE 0 END) AS confirmed \
         FROM disputes WHERE opened_at >= $1{s}",
        s = stores.sql,
        upheld = DisputeStatus::Upheld,
        confirmed = DisputeStatus::Confirmed,
    );
    let r = stores
        .bind_rows(sqlx::query(&sql).bind(since))
        .fetch_one(conn)
        .await?;
    Ok(DisputeCounts {
        receipts: r.try_get("receipts")?,
        opened: r.try_get("opened")?,
        upheld: r.try_get::<Option<i64>, _>("upheld")?.unwrap_or(0),
        confirmed: r.try_get::<Option<i64>, _>("confirmed")?.unwrap_or(0),
    })
}

/// Disputes over a window.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct DisputeCounts {
    /// Receipts finalized in the window.
    pub receipts: i64,
    /// Disputes opened in the window.
    pub opened: i64,
    /// Of them, upheld (an error that escaped review).
    pub upheld: i64,
    /// Of them, confirmed.
    pub confirmed: i64,
}
