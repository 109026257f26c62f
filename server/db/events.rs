//! Rows of events and sessions: stored events (and the answers a replay
//! gets), new events, the session row and its lock.

use std::collections::{BTreeMap, BTreeSet, HashMap};

use sqlx::{AnyConnection, Row};

use super::batch::Stmt;
use super::bulk::Val;

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
        // Planned on every run, never from a cached generic plan: a plan
        // made while the tables were small (a new database's first
        // requests) scans every event of the store instead of the
        // (store_id, event_id) index, and would be kept until the next
        // ANALYZE. One plan costs far less than one such scan.
        let mut q = sqlx::query(&sql).persistent(false).bind(store_id);
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

/// Stores new events, in as few statements as the parameter limit allows
/// (rows in event id order, so two requests storing the same ids wait for
/// each other instead of deadlocking on PostgreSQL), and records which
/// sessions their clips show. Returns how many were stored: fewer than
/// `rows` when another request stored one of the event ids first (nothing
/// is written for that one).
pub async fn insert_many(tx: &mut Tx, rows: &[NewEvent<'_>]) -> Result<u64> {
    let values = sorted_values(rows)?;
    let inserted = super::bulk::insert_shaped(
        tx,
        INSERT_EVENTS,
        &event_shape(),
        &values,
        ON_EVENT_CONFLICT,
    )
    .await?;
    if inserted == rows.len() as u64 {
        record_clip_sessions(tx, rows).await?;
    }
    Ok(inserted)
}

/// New events without clips as one statement of a [`super::batch::Batch`]
/// that must store every one of them: rows as [`insert_many`] writes
/// them, and nothing for an event id stored before (the statement's count
/// falls short).
pub fn insert_stmt(rows: &[NewEvent<'_>]) -> Result<Stmt> {
    if rows.iter().any(|e| !e.clip_ids.is_empty()) {
        return Err(super::Error::Data(
            "events with clips record their clips' sessions too".into(),
        ));
    }
    Ok(super::bulk::insert_stmt(
        INSERT_EVENTS,
        &event_shape(),
        &sorted_values(rows)?,
        ON_EVENT_CONFLICT,
    )
    .expect_rows(rows.len() as u64, "an event id was stored already"))
}

const INSERT_EVENTS: &str = "INSERT INTO events (id, store_id, event_id, session_id, kind, \
     quantity, occurred_at, candidates, clips, model_version, top_sku, top_confidence, route, \
     route_reason, status, final_action, final_sku, final_quantity, resolution, request_hash, \
     created_at, resolved_at)";
const ON_EVENT_CONFLICT: &str = "ON CONFLICT (store_id, event_id) DO NOTHING";

/// The rows' values in event id order, so two requests storing the same
/// ids wait for each other instead of deadlocking on PostgreSQL.
fn sorted_values(rows: &[NewEvent<'_>]) -> Result<Vec<Vec<Val>>> {
    let mut sorted: Vec<&NewEvent<'_>> = rows.iter().collect();
    sorted.sort_by(|a, b| a.event.event_id.cmp(&b.event.event_id));
    sorted.into_iter().map(event_values).collect()
}

fn event_shape() -> Vec<&'static str> {
    let mut shape = vec!["?"; EVENT_COLUMNS];
    shape[TOP_CONFIDENCE] = "NULLIF(?, -1.0)";
    shape
}

/// Columns of an event row, and the place of its optional double.
const EVENT_COLUMNS: usize = 22;
const TOP_CONFIDENCE: usize = 11;

fn event_values(e: &NewEvent<'_>) -> Result<Vec<Val>> {
    let ev = e.event;
    // Accepted as the model saw it: the event is settled with its top
    // candidate at once.
    let auto = e.status == EventStatus::Resolved;
    let top_sku = e.top.map(|(sku, _)| sku.to_string());
    let values = vec![
        Val::Text(e.pk.to_string()),
        Val::Text(e.store_id.to_string()),
        Val::Text(ev.event_id.clone()),
        Val::Text(ev.session_id.clone()),
        Val::Text(ev.kind.as_str().into()),
        Val::Int(ev.quantity),
        Val::Int(ev.occurred_at),
        Val::Text(serde_json::to_string(&ev.candidates)?),
        Val::Text(serde_json::to_string(e.clip_ids)?),
        Val::MaybeText(ev.model_version.clone()),
        Val::MaybeText(top_sku.clone()),
        Val::Real(super::non_negative_or_null(e.top.map(|(_, c)| c))),
        Val::Text(e.route.as_str().into()),
        Val::MaybeText(e.reason.map(str::to_string)),
        Val::Text(e.status.as_str().into()),
        Val::MaybeText(auto.then(|| ev.kind.as_str().to_string())),
        Val::MaybeText(if auto { top_sku } else { None }),
        Val::MaybeInt(auto.then_some(ev.quantity)),
        Val::MaybeText(auto.then(|| "auto".to_string())),
        Val::Text(e.request_hash.to_string()),
        Val::Int(e.now),
        Val::MaybeInt((auto && !e.audit).then_some(e.now)),
    ];
    debug_assert_eq!(values.len(), EVENT_COLUMNS);
    Ok(values)
}

/// Records that the events' clips show the shoppers of their sessions:
/// retention keeps a clip until every such receipt is past it, and an
/// erasure finds them.
async fn record_clip_sessions(tx: &mut Tx, rows: &[NewEvent<'_>]) -> Result<()> {
    let pairs: BTreeSet<(&str, &str, &str)> = rows
        .iter()
        .flat_map(|e| {
            e.clip_ids
                .iter()
                .map(|c| (c.as_str(), e.store_id, e.event.session_id.as_str()))
        })
        .collect();
    let values: Vec<Vec<Val>> = pairs
        .into_iter()
        .map(|(clip, store, session)| {
            vec![
                Val::Text(clip.into()),
                Val::Text(store.into()),
                Val::Text(session.into()),
            ]
        })
        .collect();
    super::bulk::insert_rows(
        tx,
        "INSERT INTO clip_sessions (clip_id, store_id, session_id)",
        &values,
        "ON CONFLICT (clip_id, session_id) DO NOTHING",
    )
    .await?;
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
    lock_sessions(tx, store_id, &[session_id], now)
        .await?
        .remove(session_id)
        .ok_or_else(|| super::Error::Data(format!("session {session_id} vanished")))
}

/// Creates the sessions that do not exist yet and locks every one of them
/// for the rest of the transaction, in session id order (so requests
/// naming the same sessions wait for each other instead of deadlocking);
/// their states by session id.
///
/// One upsert per [`super::IN_LIST_MAX`] sessions both inserts the new rows
/// and locks the old ones, each in turn in the order of its `VALUES`
/// (sorted): an existing row is rewritten as it was, which locks it and
/// returns it as it is now, also when another request created it while
/// this one waited. (Inserting the new rows first and then locking the old
/// ones with `SELECT … FOR UPDATE`, as Recount once did, took the locks in
/// two passes, and a session created meanwhile had to be locked last, out
/// of order: concurrent batches naming the same sessions deadlocked.)
pub async fn lock_sessions(
    tx: &mut Tx,
    store_id: &str,
    session_ids: &[&str],
    now: i64,
) -> Result<HashMap<String, SessionLock>> {
    let sorted: BTreeSet<&str> = session_ids.iter().copied().collect();
    let sorted: Vec<&str> = sorted.into_iter().collect();
    let mut locked = HashMap::with_capacity(sorted.len());
    for chunk in sorted.chunks(super::IN_LIST_MAX) {
        let values: Vec<String> = (0..chunk.len())
            .map(|i| format!("($1, ${}, '{}', 0, $2)", i + 3, SessionStatus::Open))
            .collect();
        let sql = format!(
            "INSERT INTO sessions (store_id, session_id, status, open_reviews, created_at) \
             VALUES {} ON CONFLICT (store_id, session_id) DO UPDATE SET status = sessions.status \
             RETURNING session_id, status, exited_at",
            values.join(", ")
        );
        let mut q = sqlx::query(&sql).bind(store_id).bind(now);
        for id in chunk {
            q = q.bind(*id);
        }
        for row in q.fetch_all(&mut **tx).await? {
            let id: String = row.try_get("session_id")?;
            locked.insert(id, session_from_row(&row)?);
        }
    }
    if let Some(missing) = sorted.iter().find(|id| !locked.contains_key(**id)) {
        return Err(super::Error::Data(format!(
            "session {missing} was not locked"
        )));
    }
    Ok(locked)
}

fn session_from_row(row: &sqlx::any::AnyRow) -> Result<SessionLock> {
    Ok(SessionLock {
        status: super::state(&row.try_get::<String, _>("status")?, SessionStatus::parse)?,
        exited_at: row.try_get("exited_at")?,
    })
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
    row.as_ref().map(session_from_row).transpose()
}

/// Counts more open reviews on sessions (their receipts wait for them):
/// `(session id, reviews)` pairs, in one statement per
/// [`super::IN_LIST_MAX`] sessions.
pub async fn add_open_reviews(tx: &mut Tx, store_id: &str, added: &[(&str, i64)]) -> Result<()> {
    for chunk in added.chunks(super::IN_LIST_MAX) {
        let cases: Vec<String> = (0..chunk.len())
            .map(|i| format!("WHEN ${} THEN ${}", 2 * i + 2, 2 * i + 3))
            .collect();
        let ids: Vec<String> = (0..chunk.len())
            .map(|i| format!("${}", 2 * i + 2))
            .collect();
        let sql = format!(
            "UPDATE sessions SET open_reviews = open_reviews + CASE session_id {} END \
             WHERE store_id = $1 AND session_id IN ({})",
            cases.join(" "),
            ids.join(", ")
        );
        let mut q = sqlx::query(&sql).bind(store_id);
        for (id, n) in chunk {
            q = q.bind(*id).bind(*n);
        }
        q.execute(&mut **tx).await?;
    }
    Ok(())
}

/// Creates each session not there yet with its new open reviews, and adds
/// them to each one there already while it is open (not exited): one row
/// per session. A session exited or finalized changes none, so the
/// statement's count falls short and its batch writes nothing
/// ([`super::batch::Batch::run_alone`]); the caller then reads and locks
/// the sessions ([`lock_sessions`]) to decide. Rows go in session id order,
/// the order in which every request locks sessions.
pub fn open_with_reviews(store_id: &str, added: &BTreeMap<&str, i64>, now: i64) -> Stmt {
    let values: Vec<String> = (0..added.len())
        .map(|i| {
            format!(
                "($1, ${}, '{}', ${}, $2)",
                2 * i + 3,
                SessionStatus::Open,
                2 * i + 4
            )
        })
        .collect();
    let mut stmt = Stmt::new(format!(
        "INSERT INTO sessions (store_id, session_id, status, open_reviews, created_at) \
         VALUES {} ON CONFLICT (store_id, session_id) DO UPDATE \
         SET open_reviews = sessions.open_reviews + excluded.open_reviews \
         WHERE sessions.status = '{}' AND sessions.exited_at IS NULL",
        values.join(", "),
        SessionStatus::Open
    ))
    .bind(store_id)
    .bind(now);
    for (session_id, n) in added {
        stmt = stmt.bind(*session_id).bind(*n);
    }
    stmt.expect_rows(added.len() as u64, "a session is no longer open")
}

/// Counts one open review fewer on a session; with `finalize`, the session
/// also becomes finalized (the caller read it exited with this review its
/// last, under its lock: [`crate::domain::lifecycle::may_finalize`]).
pub fn release_open_review(store_id: &str, session_id: &str, finalize: bool) -> Stmt {
    if !finalize {
        return Stmt::new(
            "UPDATE sessions SET open_reviews = open_reviews - 1 \
             WHERE store_id = $1 AND session_id = $2",
        )
        .bind(store_id)
        .bind(session_id);
    }
    Stmt::new(format!(
        "UPDATE sessions SET open_reviews = open_reviews - 1, status = '{}' \
         WHERE store_id = $1 AND session_id = $2 AND status = '{}' AND open_reviews = 1",
        SessionStatus::Finalized,
        SessionStatus::Exited
    ))
    .bind(store_id)
    .bind(session_id)
    .expect_rows(
        1,
        format!("session {session_id:?} was read exited with one review open"),
    )
}

/// Settles an event with a human label: `by` is `human` (consensus) or
/// `supervisor`. Its `resolved_at` is when people settled it, which is when
/// the rollups count its label.
pub fn settle(event_pk: &str, label: &Label, by: &str, now: i64) -> Stmt {
    Stmt::new(format!(
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
