//! Rows of sessions' receipts: the exit, the exactly-once finalization
//! (a conditional update), the receipt as stores read it, the settled cart.

use sqlx::{AnyConnection, Row};

use super::{products, Result, Tx};
use crate::domain::lifecycle::{EventStatus, SessionStatus, TaskStatus};
use crate::domain::receipt::{
    self, Adjustment, Cause, LineChange, Receipt, ReceiptLine, SettledEvent,
};
use crate::domain::time::format_rfc3339_ms;
use crate::domain::{Action, Label};

/// Records the shopper's exit on a session, and the receipt deadline it
/// fixes (`deadline_at`) on the session's open tasks; gold copies keep
/// theirs: they do not wait for this shopper.
pub async fn record_exit(
    tx: &mut Tx,
    store_id: &str,
    session_id: &str,
    exited_at: i64,
    deadline_at: i64,
) -> Result<()> {
    sqlx::query(&format!(
        "UPDATE sessions SET status = '{}', exited_at = $1 \
         WHERE store_id = $2 AND session_id = $3",
        SessionStatus::Exited
    ))
    .bind(exited_at)
    .bind(store_id)
    .bind(session_id)
    .execute(&mut **tx)
    .await?;
    sqlx::query(&format!(
        "UPDATE review_tasks SET deadline_at = $1 WHERE store_id = $2 AND session_id = $3 \
         AND status IN ({}) AND gold_id IS NULL",
        super::sql_list(&TaskStatus::OPEN)
    ))
    .bind(deadline_at)
    .bind(store_id)
    .bind(session_id)
    .execute(&mut **tx)
    .await?;
    Ok(())
}

/// Marks the session finalized if it has exited and nothing of it is in
/// review ([`crate::domain::lifecycle::may_finalize`], checked by the
/// update's condition, so it happens once whoever calls it); its exit time
/// when this call finalized it.
pub async fn mark_finalized(tx: &mut Tx, store_id: &str, session_id: &str) -> Result<Option<i64>> {
    Ok(sqlx::query_scalar(&format!(
        "UPDATE sessions SET status = '{}' WHERE store_id = $1 AND session_id = $2 \
         AND status = '{}' AND open_reviews = 0 RETURNING exited_at",
        SessionStatus::Finalized,
        SessionStatus::Exited
    ))
    .bind(store_id)
    .bind(session_id)
    .fetch_optional(&mut **tx)
    .await?)
}

/// A final receipt to store.
#[derive(Debug, Clone, Copy)]
pub struct FinalReceipt<'a> {
    /// Store id.
    pub store_id: &'a str,
    /// The store's session id.
    pub session_id: &'a str,
    /// Net lines.
    pub lines: &'a [ReceiptLine],
    /// Their sum.
    pub total_cents: i64,
    /// When the shopper left, epoch ms.
    pub exited_at: i64,
    /// When it became final, epoch ms.
    pub finalized_at: i64,
}

/// Stores a final receipt, version 1 (with its latency from the exit).
pub async fn insert(tx: &mut Tx, r: &FinalReceipt<'_>) -> Result<()> {
    let lines = serde_json::to_string(r.lines)?;
    sqlx::query(
        "INSERT INTO receipt_versions (store_id, session_id, version, lines, total_cents, changes, created_at) \
         VALUES ($1, $2, 1, $3, $4, '[]', $5)",
    )
    .bind(r.store_id)
    .bind(r.session_id)
    .bind(&lines)
    .bind(r.total_cents)
    .bind(r.finalized_at)
    .execute(&mut **tx)
    .await?;
    sqlx::query(
        "INSERT INTO receipts (store_id, session_id, lines, total_cents, exited_at, finalized_at, latency_ms) \
         VALUES ($1, $2, $3, $4, $5, $6, $7)",
    )
    .bind(r.store_id)
    .bind(r.session_id)
    .bind(lines)
    .bind(r.total_cents)
    .bind(r.exited_at)
    .bind(r.finalized_at)
    .bind(r.finalized_at - r.exited_at)
    .execute(&mut **tx)
    .await?;
    Ok(())
}

/// The resolved events of a session with the prices valid when each
/// happened, all of them or all but the event `except` (its `events.id`).
pub async fn settled_events(
    conn: &mut AnyConnection,
    store_id: &str,
    session_id: &str,
    except: Option<&str>,
) -> Result<Vec<SettledEvent>> {
    let sql = format!(
        "SELECT e.final_action, e.final_sku, e.final_quantity, e.occurred_at, p.name \
         FROM events e LEFT JOIN products p ON p.store_id = e.store_id AND p.sku = e.final_sku \
         WHERE e.store_id = $1 AND e.session_id = $2 AND e.status = '{}'{} ORDER BY e.occurred_at",
        EventStatus::Resolved,
        if except.is_some() {
            " AND e.id <> $3"
        } else {
            ""
        }
    );
    let mut query = sqlx::query(&sql).bind(store_id).bind(session_id);
    if let Some(except) = except {
        query = query.bind(except);
    }
    let rows = query.fetch_all(&mut *conn).await?;
    let mut settled = Vec::with_capacity(rows.len());
    for r in rows {
        let action: String = r.try_get("final_action")?;
        let action = Action::parse(&action)
            .ok_or_else(|| super::Error::Data(format!("stored action {action:?} is unknown")))?;
        let sku: Option<String> = r.try_get("final_sku")?;
        let occurred_at: i64 = r.try_get("occurred_at")?;
        let unit_price_cents = match &sku {
            Some(sku) => products::price_at(conn, store_id, sku, occurred_at)
                .await?
                .unwrap_or(0),
            None => 0,
        };
        settled.push(SettledEvent {
            label: Label::new(
                action,
                sku,
                r.try_get::<Option<i64>, _>("final_quantity")?.unwrap_or(0),
            ),
            occurred_at,
            unit_price_cents,
            name: r.try_get::<Option<String>, _>("name")?.unwrap_or_default(),
        });
    }
    Ok(settled)
}

/// The receipt of a session, final or as settled so far; `None` for an
/// unknown session.
pub async fn read(
    conn: &mut AnyConnection,
    store_id: &str,
    session_id: &str,
) -> Result<Option<Receipt>> {
    let session = sqlx::query(
        "SELECT s.status, s.exited_at, s.open_reviews, r.lines, r.total_cents, r.finalized_at, r.version \
         FROM sessions s LEFT JOIN receipts r ON r.store_id = s.store_id AND r.session_id = s.session_id \
         WHERE s.store_id = $1 AND s.session_id = $2",
    )
    .bind(store_id)
    .bind(session_id)
    .fetch_optional(&mut *conn)
    .await?;
    let Some(s) = session else { return Ok(None) };
    let exited_at: Option<i64> = s.try_get("exited_at")?;
    let finalized_at: Option<i64> = s.try_get("finalized_at")?;
    let version: Option<i64> = s.try_get("version")?;
    let (lines, total_cents) = match s.try_get::<Option<String>, _>("lines")? {
        Some(lines) => (serde_json::from_str(&lines)?, s.try_get("total_cents")?),
        None => receipt::compute(&settled_events(conn, store_id, session_id, None).await?),
    };
    let adjustments = match version {
        Some(v) if v > 1 => adjustments(conn, store_id, session_id, v).await?,
        _ => Vec::new(),
    };
    Ok(Some(Receipt {
        version,
        adjustments,
        session_id: session_id.to_string(),
        status: if finalized_at.is_some() {
            "final"
        } else {
            "pending"
        }
        .into(),
        lines,
        total_cents,
        exited_at: exited_at.map(format_rfc3339_ms),
        finalized_at: finalized_at.map(format_rfc3339_ms),
        events_in_review: s.try_get("open_reviews")?,
    }))
}

/// The lines and total of a session's settled events without the event
/// `event_pk` (its `events.id`), computed now even when the receipt is final.
pub async fn cart_without(
    conn: &mut AnyConnection,
    store_id: &str,
    session_id: &str,
    event_pk: &str,
) -> Result<(Vec<ReceiptLine>, i64)> {
    Ok(receipt::compute(
        &settled_events(conn, store_id, session_id, Some(event_pk)).await?,
    ))
}

/// The adjustments of a final receipt up to `version`, oldest first.
async fn adjustments(
    conn: &mut AnyConnection,
    store_id: &str,
    session_id: &str,
    version: i64,
) -> Result<Vec<Adjustment>> {
    let rows = sqlx::query(
        "SELECT version, cause, cause_id, changes, created_at, \
         total_cents - COALESCE((SELECT p.total_cents FROM receipt_versions p WHERE p.store_id = v.store_id \
           AND p.session_id = v.session_id AND p.version = v.version - 1), 0) AS delta \
         FROM receipt_versions v WHERE store_id = $1 AND session_id = $2 AND version > 1 AND version <= $3 \
         ORDER BY version",
    )
    .bind(store_id)
    .bind(session_id)
    .bind(version)
    .fetch_all(conn)
    .await?;
    let mut out = Vec::with_capacity(rows.len());
    for r in rows {
        let cause: Option<String> = r.try_get("cause")?;
        let cause = cause.unwrap_or_default();
        let dispute = cause == Cause::Dispute.as_str();
        let changes: Vec<LineChange> = serde_json::from_str(&r.try_get::<String, _>("changes")?)?;
        out.push(Adjustment {
            version: r.try_get("version")?,
            dispute_id: if dispute {
                r.try_get("cause_id")?
            } else {
                None
            },
            cause,
            adjusted_at: format_rfc3339_ms(r.try_get("created_at")?),
            changes,
            total_cents_delta: r.try_get("delta")?,
        });
    }
    Ok(out)
}

/// The current version of a final receipt and its lines; `None` while the
/// receipt is not final. Read under the session's lock.
pub async fn current(
    tx: &mut Tx,
    store_id: &str,
    session_id: &str,
) -> Result<Option<(i64, Vec<ReceiptLine>)>> {
    let Some(r) =
        sqlx::query("SELECT version, lines FROM receipts WHERE store_id = $1 AND session_id = $2")
            .bind(store_id)
            .bind(session_id)
            .fetch_optional(&mut **tx)
            .await?
    else {
        return Ok(None);
    };
    Ok(Some((
        r.try_get("version")?,
        serde_json::from_str(&r.try_get::<String, _>("lines")?)?,
    )))
}

/// A new version of a final receipt.
#[derive(Debug, Clone, Copy)]
pub struct NewVersion<'a> {
    /// Store id.
    pub store_id: &'a str,
    /// The store's session id.
    pub session_id: &'a str,
    /// Its number (the current one plus one).
    pub version: i64,
    /// Its lines.
    pub lines: &'a [ReceiptLine],
    /// Their sum.
    pub total_cents: i64,
    /// Why it was made.
    pub cause: Cause,
    /// The task or dispute behind it.
    pub cause_id: &'a str,
    /// What changed from the version before.
    pub changes: &'a [LineChange],
    /// When, epoch ms.
    pub now: i64,
}

/// Stores a new version of a final receipt and makes it the current one.
/// The primary key (store, session, version) makes a second writer of the
/// same version fail rather than fork the receipt.
pub async fn add_version(tx: &mut Tx, v: &NewVersion<'_>) -> Result<()> {
    let lines = serde_json::to_string(v.lines)?;
    sqlx::query(
        "INSERT INTO receipt_versions (store_id, session_id, version, lines, total_cents, cause, cause_id, \
         changes, created_at) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9)",
    )
    .bind(v.store_id)
    .bind(v.session_id)
    .bind(v.version)
    .bind(&lines)
    .bind(v.total_cents)
    .bind(v.cause.as_str())
    .bind(v.cause_id)
    .bind(serde_json::to_string(v.changes)?)
    .bind(v.now)
    .execute(&mut **tx)
    .await?;
    sqlx::query(
        "UPDATE receipts SET lines = $1, total_cents = $2, version = $3 WHERE store_id = $4 AND session_id = $5",
    )
    .bind(lines)
    .bind(v.total_cents)
    .bind(v.version)
    .bind(v.store_id)
    .bind(v.session_id)
    .execute(&mut **tx)
    .await?;
    Ok(())
}

/// A final receipt as it was at `version` (what that version's webhook
/// sends, whatever came after); `None` when there is no such version.
pub async fn at_version(
    conn: &mut AnyConnection,
    store_id: &str,
    session_id: &str,
    version: i64,
) -> Result<Option<Receipt>> {
    let Some(r) = sqlx::query(
        "SELECT v.lines, v.total_cents, r.exited_at, r.finalized_at FROM receipt_versions v \
         JOIN receipts r ON r.store_id = v.store_id AND r.session_id = v.session_id \
         WHERE v.store_id = $1 AND v.session_id = $2 AND v.version = $3",
    )
    .bind(store_id)
    .bind(session_id)
    .bind(version)
    .fetch_optional(&mut *conn)
    .await?
    else {
        return Ok(None);
    };
    let exited_at: i64 = r.try_get("exited_at")?;
    let finalized_at: i64 = r.try_get("finalized_at")?;
    Ok(Some(Receipt {
        session_id: session_id.to_string(),
        status: "final".into(),
        version: Some(version),
        lines: serde_json::from_str(&r.try_get::<String, _>("lines")?)?,
        total_cents: r.try_get("total_cents")?,
        exited_at: Some(format_rfc3339_ms(exited_at)),
        finalized_at: Some(format_rfc3339_ms(finalized_at)),
        events_in_review: 0,
        adjustments: adjustments(conn, store_id, session_id, version).await?,
    }))
}
