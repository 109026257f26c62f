//! Rows of events and sessions: stored events (and the answers a replay
//! gets), new events, the session row and its lock.

use sqlx::{AnyConnection, Row};

use super::{Result, Tx};
use crate::domain::event::ValidEvent;
use crate::domain::lifecycle::{EventStatus, RouteName, SessionStatus};
use crate::domain::Label;

/// An event stored earlier, as a replay of its id needs it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StoredEvent {
    /// The store's event id.
    pub event_id: String,
    /// Digest of the request that stored it.
    pub request_hash: String,
    /// Its route column (`auto_accepted`, `review`, …).
    pub route: String,
    /// Why it went to review.
    pub reason: Option<String>,
    /// Its review task, if one was opened.
    pub task_id: Option<String>,
}

fn stored_from_row(r: &sqlx::any::AnyRow) -> Result<StoredEvent> {
    Ok(StoredEvent {
        event_id: r.try_get("event_id")?,
        request_hash: r.try_get("request_hash")?,
        route: r.try_get("route")?,
        reason: r.try_get("route_reason")?,
        task_id: r.try_get("task_id")?,
    })
}

/// The events of a store already stored under any of `event_ids`.
pub async fn stored(tx: &mut Tx, store_id: &str, event_ids: &[&str]) -> Result<Vec<StoredEvent>> {
    let mut out = Vec::new();
    for chunk in event_ids.chunks(super::IN_LIST_MAX) {
        let sql = format!(
            "SELECT e.event_id, e.request_hash, e.route, e.route_reason, t.id AS task_id FROM events e \
             LEFT JOIN review_tasks t ON t.event_pk = e.id WHERE e.store_id = $1 AND e.event_id IN ({})",
            super::placeholders(2, chunk.len())
        );
        let mut q = sqlx::query(&sql).bind(store_id);
        for id in chunk {
            q = q.bind(*id);
        }
        for row in q.fetch_all(&mut **tx).await? {
            out.push(stored_from_row(&row)?);
        }
    }
    Ok(out)
}

/// A new event row.
#[derive(Debug, Clone, Copy)]
pub struct NewEvent<'a> {
    /// Its `events.id`.
    pub pk: &'a str,
    /// Store id.
    pub store_id: &'a str,
    /// The event as the store sent it, checked.
    pub event: &'a ValidEvent,
    /// Its clips: the ids it named, then the cuts of its camera windows.
    pub clip_ids: &'a [String],
    /// The top candidate and its confidence.
    pub top: Option<(&'a str, f64)>,
    /// Its route.
    pub route: RouteName,
    /// Why it goes to review.
    pub reason: Option<&'a str>,
    /// `resolved` when accepted as the model saw it, `review` otherwise.
    pub status: EventStatus,
    /// Drawn for the audit sample: settled with the model's answer at once,
    /// but counted by the rollups (its `resolved_at`) only once its audit
    /// gives the human label.
    pub audit: bool,
    /// Digest of the request.
    pub request_hash: &'a str,
    /// When it arrived, epoch ms.
    pub now: i64,
}

/// Stores a new event; false when another request stored the same event id
/// first (nothing is written then).
pub async fn insert(tx: &mut Tx, e: &NewEvent<'_>) -> Result<bool> {
    let ev = e.event;
    // Accepted as the model saw it: the event is settled with its top
    // candidate at once.
    let auto = e.status == EventStatus::Resolved;
    let top_sku = e.top.map(|(sku, _)| sku.to_string());
    let inserted = sqlx::query(
        "INSERT INTO events (id, store_id, event_id, session_id, kind, quantity, occurred_at, \
         candidates, clips, model_version, top_sku, top_confidence, route, route_reason, status, \
         final_action, final_sku, final_quantity, resolution, request_hash, created_at, resolved_at) \
         VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, NULLIF($12, -1.0), $13, $14, $15, $16, $17, $18, \
         $19, $20, $21, $22) ON CONFLICT (store_id, event_id) DO NOTHING",
    )
    .bind(e.pk)
    .bind(e.store_id)
    .bind(&ev.event_id)
    .bind(&ev.session_id)
    .bind(ev.kind.as_str())
    .bind(ev.quantity)
    .bind(ev.occurred_at)
    .bind(serde_json::to_string(&ev.candidates)?)
    .bind(serde_json::to_string(e.clip_ids)?)
    .bind(&ev.model_version)
    .bind(top_sku.clone())
    .bind(super::non_negative_or_null(e.top.map(|(_, c)| c)))
    .bind(e.route.as_str())
    .bind(e.reason)
    .bind(e.status.as_str())
    .bind(auto.then(|| ev.kind.as_str()))
    .bind(if auto { top_sku } else { None })
    .bind(auto.then_some(ev.quantity))
    .bind(auto.then_some("auto"))
    .bind(e.request_hash)
    .bind(e.now)
    .bind((auto && !e.audit).then_some(e.now))
    .execute(&mut **tx)
    .await?;
    if inserted.rows_affected() != 1 {
        return Ok(false);
    }
    record_clip_sessions(tx, e.store_id, &ev.session_id, e.clip_ids).await?;
    Ok(true)
}

/// Records that `clip_ids` show the shopper of `session_id`: retention keeps
/// a clip until every such receipt is past it, and an erasure finds them.
async fn record_clip_sessions(
    tx: &mut Tx,
    store_id: &str,
    session_id: &str,
    clip_ids: &[String],
) -> Result<()> {
    for chunk in clip_ids.chunks(super::IN_LIST_MAX / 3) {
        let values: Vec<String> = (0..chunk.len())
            .map(|i| format!("(${}, $1, $2)", i + 3))
            .collect();
        let sql = format!(
            "INSERT INTO clip_sessions (clip_id, store_id, session_id) VALUES {} \
             ON CONFLICT (clip_id, session_id) DO NOTHING",
            values.join(", ")
        );
        let mut q = sqlx::query(&sql).bind(store_id).bind(session_id);
        for id in chunk {
            q = q.bind(id);
        }
        q.execute(&mut **tx).await?;
    }
    Ok(())
}

/// Whether a store has a session of this id (a shopper it sent events or
/// an exit for).
pub async fn session_exists(
    conn: &mut AnyConnection,
    store_id: &str,
    session_id: &str,
) -> Result<bool> {
    let found: Option<i64> =
        sqlx::query_scalar("SELECT 1 FROM sessions WHERE store_id = $1 AND session_id = $2")
            .bind(store_id)
            .bind(session_id)
            .fetch_optional(conn)
            .await?;
    Ok(found.is_some())
}

/// A session's state, read under its lock.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SessionLock {
    /// Its state.
    pub status: SessionStatus,
    /// When the shopper left, once known.
    pub exited_at: Option<i64>,
}

/// Creates the session if needed and locks its row for the rest of the
/// transaction; returns its status and exit time.
pub async fn lock_session(
    tx: &mut Tx,
    store_id: &str,
    session_id: &str,
    now: i64,
) -> Result<SessionLock> {
    sqlx::query(&format!(
        "INSERT INTO sessions (store_id, session_id, status, open_reviews, created_at) \
         VALUES ($1, $2, '{}', 0, $3) ON CONFLICT (store_id, session_id) DO NOTHING",
        SessionStatus::Open
    ))
    .bind(store_id)
    .bind(session_id)
    .bind(now)
    .execute(&mut **tx)
    .await?;
    lock_existing_session(tx, store_id, session_id)
        .await?
        .ok_or_else(|| super::Error::Data(format!("session {session_id} vanished")))
}

/// Locks a session row for the rest of the transaction if it exists; its
/// status and exit time.
pub async fn lock_existing_session(
    tx: &mut Tx,
    store_id: &str,
    session_id: &str,
) -> Result<Option<SessionLock>> {
    // A plain read on SQLite, whose writer is alone; a row lock on
    // PostgreSQL. (A no-op UPDATE would lock too, but writes a row version.)
    let row = sqlx::query(&format!(
        "SELECT status, exited_at FROM sessions WHERE store_id = $1 AND session_id = $2{}",
        tx.backend().for_update()
    ))
    .bind(store_id)
    .bind(session_id)
    .fetch_optional(&mut **tx)
    .await?;
    let Some(row) = row else { return Ok(None) };
    Ok(Some(SessionLock {
        status: super::state(&row.try_get::<String, _>("status")?, SessionStatus::parse)?,
        exited_at: row.try_get("exited_at")?,
    }))
}

/// Locks the session of real task `task_id` for the rest of the transaction
/// (the task itself is read, not locked); false when there is no such task
/// with a session row, or the task is a gold copy.
pub async fn lock_session_of_task(tx: &mut Tx, task_id: &str) -> Result<bool> {
    let found: Option<String> = sqlx::query_scalar(&format!(
        "SELECT s.status FROM sessions s JOIN review_tasks t \
         ON t.store_id = s.store_id AND t.session_id = s.session_id \
         WHERE t.id = $1 AND t.gold_id IS NULL{}",
        tx.backend().for_update_of("s")
    ))
    .bind(task_id)
    .fetch_optional(&mut **tx)
    .await?;
    Ok(found.is_some())
}

/// Counts one more open review on a session (its receipt waits for it).
pub async fn add_open_review(tx: &mut Tx, store_id: &str, session_id: &str) -> Result<()> {
    sqlx::query(
        "UPDATE sessions SET open_reviews = open_reviews + 1 WHERE store_id = $1 AND session_id = $2",
    )
    .bind(store_id)
    .bind(session_id)
    .execute(&mut **tx)
    .await?;
    Ok(())
}

/// Counts one open review fewer on a session.
pub async fn release_open_review(tx: &mut Tx, store_id: &str, session_id: &str) -> Result<()> {
    sqlx::query(
        "UPDATE sessions SET open_reviews = open_reviews - 1 WHERE store_id = $1 AND session_id = $2",
    )
    .bind(store_id)
    .bind(session_id)
    .execute(&mut **tx)
    .await?;
    Ok(())
}

/// Settles an event with a human label: `by` is `human` (consensus) or
/// `supervisor`. Its `resolved_at` is when people settled it, which is when
/// the rollups count its label.
pub async fn settle(tx: &mut Tx, event_pk: &str, label: &Label, by: &str, now: i64) -> Result<()> {
    sqlx::query(&format!(
        "UPDATE events SET status = '{}', final_action = $1, final_sku = $2, final_quantity = $3, \
         resolution = $4, resolved_at = $5 WHERE id = $6",
        EventStatus::Resolved
    ))
    .bind(label.action.as_str())
    .bind(&label.sku)
    .bind(label.quantity)
    .bind(by)
    .bind(now)
    .bind(event_pk)
    .execute(&mut **tx)
    .await?;
    Ok(())
}

/// Changes the label of an event settled earlier (a supervisor's
/// correction), keeping its status and when it was settled: the rollups
/// counted it then, and a correction is recorded as a receipt adjustment.
pub async fn relabel(tx: &mut Tx, event_pk: &str, label: &Label, by: &str) -> Result<()> {
    sqlx::query(
        "UPDATE events SET final_action = $1, final_sku = $2, final_quantity = $3, resolution = $4 \
         WHERE id = $5",
    )
    .bind(label.action.as_str())
    .bind(&label.sku)
    .bind(label.quantity)
    .bind(by)
    .bind(event_pk)
    .execute(&mut **tx)
    .await?;
    Ok(())
}

/// An event behind a receipt line, as a dispute needs it.
#[derive(Debug, Clone, PartialEq)]
pub struct LineEvent {
    /// Its `events.id`.
    pub pk: String,
    /// When it happened, epoch ms.
    pub occurred_at: i64,
    /// The model's candidates as stored (JSON).
    pub candidates: String,
    /// Its clip ids as stored (JSON).
    pub clips: String,
}

/// The settled events of a session whose label names `sku`, oldest first.
pub async fn behind_line(
    tx: &mut Tx,
    store_id: &str,
    session_id: &str,
    sku: &str,
) -> Result<Vec<LineEvent>> {
    sqlx::query(&format!(
        "SELECT id, occurred_at, candidates, clips FROM events WHERE store_id = $1 AND session_id = $2 \
         AND status = '{}' AND final_sku = $3 ORDER BY occurred_at, id",
        EventStatus::Resolved
    ))
    .bind(store_id)
    .bind(session_id)
    .bind(sku)
    .fetch_all(&mut **tx)
    .await?
    .iter()
    .map(|r| {
        Ok(LineEvent {
            pk: r.try_get("id")?,
            occurred_at: r.try_get("occurred_at")?,
            candidates: r.try_get("candidates")?,
            clips: r.try_get("clips")?,
        })
    })
    .collect()
}

/// The event row a dispute's task shows: the contested line's product and
/// units, every clip and candidate of the events behind it. Its status
/// (`dispute`) keeps it out of the receipt and of every count.
#[derive(Debug, Clone, Copy)]
pub struct DisputeEvent<'a> {
    /// Its `events.id`.
    pub pk: &'a str,
    /// The dispute.
    pub dispute_id: &'a str,
    /// Store id.
    pub store_id: &'a str,
    /// The store's session id.
    pub session_id: &'a str,
    /// The contested line's units.
    pub quantity: i64,
    /// The latest event behind the line, epoch ms.
    pub occurred_at: i64,
    /// Candidates (JSON).
    pub candidates: &'a str,
    /// Clip ids (JSON).
    pub clips: &'a str,
    /// The contested sku.
    pub sku: &'a str,
    /// When, epoch ms.
    pub now: i64,
}

/// Stores the event row of a dispute's task.
pub async fn insert_dispute(tx: &mut Tx, d: &DisputeEvent<'_>) -> Result<()> {
    sqlx::query(
        "INSERT INTO events (id, store_id, event_id, session_id, kind, quantity, occurred_at, \
         candidates, clips, top_sku, route, status, request_hash, created_at) \
         VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, '', $13)",
    )
    .bind(d.pk)
    .bind(d.store_id)
    .bind(format!("dispute:{}", d.dispute_id))
    .bind(d.session_id)
    .bind(crate::domain::Action::Pick.as_str())
    .bind(d.quantity)
    .bind(d.occurred_at)
    .bind(d.candidates)
    .bind(d.clips)
    .bind(d.sku)
    .bind(RouteName::Dispute.as_str())
    .bind(EventStatus::Dispute.as_str())
    .bind(d.now)
    .execute(&mut **tx)
    .await?;
    Ok(())
}

/// Stores one correcting label of an upheld dispute as a settled event of
/// the session (route `dispute`, so no count of the model or the crew sees
/// it), dated at `occurred_at` so it is priced as the line was.
pub async fn insert_correction(
    tx: &mut Tx,
    store_id: &str,
    session_id: &str,
    event_id: &str,
    label: &Label,
    occurred_at: i64,
    now: i64,
) -> Result<()> {
    sqlx::query(
        "INSERT INTO events (id, store_id, event_id, session_id, kind, quantity, occurred_at, \
         candidates, clips, route, status, final_action, final_sku, final_quantity, resolution, \
         request_hash, created_at, resolved_at) \
         VALUES ($1, $2, $3, $4, $5, $6, $7, '[]', '[]', $8, $9, $5, $10, $6, $11, '', $12, $12)",
    )
    .bind(super::new_id())
    .bind(store_id)
    .bind(event_id)
    .bind(session_id)
    .bind(label.action.as_str())
    .bind(label.quantity)
    .bind(occurred_at)
    .bind(RouteName::Dispute.as_str())
    .bind(EventStatus::Resolved.as_str())
    .bind(&label.sku)
    .bind(RouteName::Dispute.as_str())
    .bind(now)
    .execute(&mut **tx)
    .await?;
    Ok(())
}
