//! Session exit and receipts: finalized exactly once, announced by webhook.

use serde::Serialize;
use sqlx::{AnyConnection, Row};
use utoipa::ToSchema;

use super::{jobs, products, Db, Tx};
use crate::db::events::lock_session;
use crate::db::stores::Store;
use crate::domain::job::DeliverReceipt;
use crate::domain::lifecycle::{self, EventStatus, Exit, SessionStatus, TaskStatus};
use crate::domain::receipt::{self, ReceiptLine, SettledEvent};
use crate::domain::time::format_rfc3339_ms;
use crate::domain::{Action, Label};
use crate::error::{Code, Error, Result};

/// A receipt as stores read it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, ToSchema)]
pub struct Receipt {
    /// The store's session id.
    pub session_id: String,
    /// `pending` until every event is settled after exit, then `final`.
    pub status: String,
    /// Net lines; while pending, what is settled so far.
    pub lines: Vec<ReceiptLine>,
    /// Sum of the lines in cents.
    pub total_cents: i64,
    /// When the shopper left (RFC 3339), once known.
    pub exited_at: Option<String>,
    /// When the receipt became final (RFC 3339).
    pub finalized_at: Option<String>,
    /// Events of the session still waiting for a human.
    pub events_in_review: i64,
}

/// Records the shopper's exit; finalizes the receipt when nothing is in review.
pub async fn exit(
    db: &Db,
    store: &Store,
    session_id: &str,
    exited_at: i64,
    now: i64,
) -> Result<Receipt> {
    let mut tx = db.begin().await?;
    let mut finalized = Finalized::default();
    let recorded = lock_session(&mut tx, &store.id, session_id, now).await?.1;
    match lifecycle::exit(recorded, exited_at) {
        Ok(Exit::AlreadyRecorded) => {}
        Err(_) => {
            return Err(Error::new(
                Code::SessionAlreadyExited,
                format!("session {session_id:?} already exited at another time"),
            ))
        }
        Ok(Exit::Leaves) => {
            sqlx::query(&format!(
                "UPDATE sessions SET status = '{}', exited_at = $1 \
                 WHERE store_id = $2 AND session_id = $3",
                SessionStatus::Exited
            ))
            .bind(exited_at)
            .bind(&store.id)
            .bind(session_id)
            .execute(&mut *tx)
            .await?;
            // The shopper is gone: the receipt deadline is now known exactly.
            // Gold copies keep theirs: they do not wait for this shopper.
            sqlx::query(&format!(
                "UPDATE review_tasks SET deadline_at = $1 WHERE store_id = $2 AND session_id = $3 \
                 AND status IN ({}) AND gold_id IS NULL",
                super::sql_list(&TaskStatus::OPEN)
            ))
            .bind(lifecycle::deadline_after_exit(&store.policy, exited_at))
            .bind(&store.id)
            .bind(session_id)
            .execute(&mut *tx)
            .await?;
            finalized = try_finalize(&mut tx, store, session_id, now).await?;
        }
    }
    let receipt = read(&mut tx, &store.id, session_id).await?;
    tx.commit().await?;
    finalized.record();
    receipt.ok_or_else(|| anyhow::anyhow!("session vanished during exit").into())
}

/// Whether a transaction finalized a receipt, to be recorded once it commits.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
#[must_use = "record() it after the transaction commits"]
pub struct Finalized(Option<i64>);

impl Finalized {
    /// Records the receipt latency metric; call after commit.
    pub fn record(self) {
        if let Some(latency_ms) = self.0 {
            crate::metrics::receipt_finalized(latency_ms);
        }
    }
}

/// Finalizes the receipt if the session has exited and nothing is in review
/// ([`lifecycle::may_finalize`], checked by the update's condition). The
/// conditional update makes this happen exactly once, whoever calls it.
pub async fn try_finalize(
    tx: &mut Tx,
    store: &Store,
    session_id: &str,
    now: i64,
) -> Result<Finalized> {
    let exited_at: Option<i64> = sqlx::query_scalar(&format!(
        "UPDATE sessions SET status = '{}' WHERE store_id = $1 AND session_id = $2 \
         AND status = '{}' AND open_reviews = 0 RETURNING exited_at",
        SessionStatus::Finalized,
        SessionStatus::Exited
    ))
    .bind(&store.id)
    .bind(session_id)
    .fetch_optional(&mut **tx)
    .await?;
    let Some(exited_at) = exited_at else {
        return Ok(Finalized(None));
    };
    let settled = settled_events(tx, &store.id, session_id, None).await?;
    let (lines, total) = receipt::compute(&settled);
    sqlx::query(
        "INSERT INTO receipts (store_id, session_id, lines, total_cents, exited_at, finalized_at, latency_ms) \
         VALUES ($1, $2, $3, $4, $5, $6, $7)",
    )
    .bind(&store.id)
    .bind(session_id)
    .bind(serde_json::to_string(&lines).map_err(anyhow::Error::from)?)
    .bind(total)
    .bind(exited_at)
    .bind(now)
    .bind(now - exited_at)
    .execute(&mut **tx)
    .await?;
    if store.webhook_url.is_some() {
        let job = DeliverReceipt {
            store_id: store.id.clone(),
            session_id: session_id.to_string(),
        };
        jobs::enqueue(tx, &job, now, now).await?;
    }
    Ok(Finalized(Some(now - exited_at)))
}

/// The resolved events of a session with the prices valid when each
/// happened, all of them or all but the event `except` (its `events.id`).
async fn settled_events(
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
            .ok_or_else(|| anyhow::anyhow!("stored action {action:?} is unknown"))?;
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
        "SELECT s.status, s.exited_at, s.open_reviews, r.lines, r.total_cents, r.finalized_at \
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
    let (lines, total_cents) = match s.try_get::<Option<String>, _>("lines")? {
        Some(lines) => (
            serde_json::from_str(&lines).map_err(anyhow::Error::from)?,
            s.try_get("total_cents")?,
        ),
        None => receipt::compute(&settled_events(conn, store_id, session_id, None).await?),
    };
    Ok(Some(Receipt {
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
