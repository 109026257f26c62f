//! Ingest: store an event once, route it, open a review task when needed.

use std::collections::{BTreeSet, HashMap};

use sqlx::Row;

use super::{new_id, products, Tx};
use crate::db::products::Product;
use crate::db::stores::Store;
use crate::domain::event::ValidEvent;
use crate::domain::lifecycle::{self, EventStatus, RouteName, SessionStatus, TaskStatus};
use crate::domain::routing::{self, Route};
use crate::error::{Code, Error, Result};

/// The answer to one ingested event (also the answer replayed on a retry).
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, utoipa::ToSchema)]
pub struct IngestOutcome {
    /// The store's event id.
    pub event_id: String,
    /// `auto_accepted` or `review`.
    pub route: String,
    /// Why the event went to review.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub reason: Option<String>,
    /// The review task, when one was opened.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub task_id: Option<String>,
    /// Whether this answers a replay of an event stored earlier.
    #[serde(skip)]
    pub replayed: bool,
}

/// What a batch of events needs from the database, read once for the whole
/// batch instead of once per event: the catalog entries its candidates name,
/// the events already stored under its event ids, and its sessions — locked
/// in sorted order, so two batches naming the same sessions can never
/// deadlock on PostgreSQL.
#[derive(Debug, Default)]
pub struct Batch {
    catalog: HashMap<String, Product>,
    stored: HashMap<String, (String, IngestOutcome)>,
    sessions: HashMap<String, (SessionStatus, Option<i64>)>,
}

/// Largest `IN (…)` list sent at once.
const CHUNK: usize = 500;

impl Batch {
    /// Reads and locks what `events` need, inside `tx`.
    pub async fn prepare(
        tx: &mut Tx,
        store: &Store,
        events: &[ValidEvent],
        now: i64,
    ) -> Result<Batch> {
        let mut batch = Batch::default();
        let skus: BTreeSet<&str> = events
            .iter()
            .flat_map(|e| e.candidates.iter().map(|c| c.sku.as_str()))
            .collect();
        let skus: Vec<&str> = skus.into_iter().collect();
        for chunk in skus.chunks(CHUNK) {
            batch
                .catalog
                .extend(products::find(tx, &store.id, chunk).await?);
        }
        let ids: BTreeSet<&str> = events.iter().map(|e| e.event_id.as_str()).collect();
        let ids: Vec<&str> = ids.into_iter().collect();
        for chunk in ids.chunks(CHUNK) {
            let sql = format!(
                "SELECT e.event_id, e.request_hash, e.route, e.route_reason, t.id AS task_id FROM events e \
                 LEFT JOIN review_tasks t ON t.event_pk = e.id WHERE e.store_id = $1 AND e.event_id IN ({})",
                super::placeholders(2, chunk.len())
            );
            let mut q = sqlx::query(&sql).bind(&store.id);
            for id in chunk {
                q = q.bind(*id);
            }
            for row in q.fetch_all(&mut **tx).await? {
                let event_id: String = row.try_get("event_id")?;
                let outcome = IngestOutcome {
                    event_id: event_id.clone(),
                    route: row.try_get("route")?,
                    reason: row.try_get("route_reason")?,
                    task_id: row.try_get("task_id")?,
                    replayed: true,
                };
                batch
                    .stored
                    .insert(event_id, (row.try_get("request_hash")?, outcome));
            }
        }
        let sessions: BTreeSet<&str> = events.iter().map(|e| e.session_id.as_str()).collect();
        for session_id in sessions {
            let state = lock_session(tx, &store.id, session_id, now).await?;
            batch.sessions.insert(session_id.to_string(), state);
        }
        Ok(batch)
    }

    /// The stored answer for an event id, or a conflict when the content differs.
    fn replay(&self, event_id: &str, request_hash: &str) -> Result<Option<IngestOutcome>> {
        match self.stored.get(event_id) {
            None => Ok(None),
            Some((hash, _)) if hash != request_hash => Err(Error::new(
                Code::EventConflict,
                format!("event {event_id:?} was already received with different content"),
            )),
            Some((_, outcome)) => Ok(Some(IngestOutcome {
                replayed: true,
                ..outcome.clone()
            })),
        }
    }
}

/// Ingests one validated event inside `tx`, with `batch` prepared for it.
///
/// `request_hash` identifies the request's content: a replay with the same
/// hash gets the stored answer, one with another hash is refused.
/// `audit_draw` is the uniform draw for the audit sample.
#[allow(clippy::too_many_arguments)]
pub async fn ingest(
    tx: &mut Tx,
    batch: &mut Batch,
    store: &Store,
    ev: &ValidEvent,
    request_hash: &str,
    now: i64,
    audit_draw: f64,
) -> Result<IngestOutcome> {
    if let Some(previous) = batch.replay(&ev.event_id, request_hash)? {
        return Ok(previous);
    }

    let skus: Vec<&str> = ev.candidates.iter().map(|c| c.sku.as_str()).collect();
    let catalog = &batch.catalog;
    if let Some(unknown) = skus.iter().find(|s| !catalog.contains_key(**s)) {
        return Err(Error::new(
            Code::UnknownSku,
            format!("sku {unknown:?} is not in the store's catalog"),
        ));
    }

    crate::review::media::check_owned(tx, &store.id, &ev.clips).await?;
    let mut clip_ids = ev.clips.clone();
    for window in &ev.cameras {
        clip_ids.push(crate::review::media::cut_window(tx, &store.id, window, now).await?);
    }

    let exited_at = match batch.sessions.get(&ev.session_id) {
        Some((status, exited_at)) => {
            if lifecycle::accepts_events(*status).is_err() {
                return Err(Error::new(
                    Code::SessionFinalized,
                    format!(
                        "the receipt of session {:?} is already final",
                        ev.session_id
                    ),
                ));
            }
            *exited_at
        }
        None => return Err(anyhow::anyhow!("session {} was not prepared", ev.session_id).into()),
    };

    let confidences: Vec<f64> = ev.candidates.iter().map(|c| c.confidence).collect();
    let top = routing::top_index(&confidences).map(|i| &ev.candidates[i]);
    let top_value = top.map(|c| catalog[&c.sku].price_cents * ev.quantity);
    let route = routing::route(&store.policy, &confidences, top_value, audit_draw);

    let event_pk = new_id();
    let (route_name, reason, status) = match route {
        Route::AutoAccepted => (RouteName::AutoAccepted, None, EventStatus::Resolved),
        Route::Review { reason, .. } => (
            RouteName::Review,
            Some(reason.as_str()),
            EventStatus::Review,
        ),
    };
    let auto = route == Route::AutoAccepted;
    let inserted = sqlx::query(
        "INSERT INTO events (id, store_id, event_id, session_id, kind, quantity, occurred_at, \
         candidates, clips, model_version, top_sku, top_confidence, route, route_reason, status, \
         final_action, final_sku, final_quantity, resolution, request_hash, created_at, resolved_at) \
         VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, NULLIF($12, -1.0), $13, $14, $15, $16, $17, $18, \
         $19, $20, $21, $22) ON CONFLICT (store_id, event_id) DO NOTHING",
    )
    .bind(&event_pk)
    .bind(&store.id)
    .bind(&ev.event_id)
    .bind(&ev.session_id)
    .bind(ev.kind.as_str())
    .bind(ev.quantity)
    .bind(ev.occurred_at)
    .bind(serde_json::to_string(&ev.candidates).map_err(anyhow::Error::from)?)
    .bind(serde_json::to_string(&clip_ids).map_err(anyhow::Error::from)?)
    .bind(&ev.model_version)
    .bind(top.map(|c| c.sku.clone()))
    .bind(super::non_negative_or_null(top.map(|c| c.confidence)))
    .bind(route_name.as_str())
    .bind(reason)
    .bind(status.as_str())
    .bind(auto.then(|| ev.kind.as_str()))
    .bind(if auto { top.map(|c| c.sku.clone()) } else { None })
    .bind(auto.then_some(ev.quantity))
    .bind(auto.then_some("auto"))
    .bind(request_hash)
    .bind(now)
    .bind(auto.then_some(now))
    .execute(&mut **tx)
    .await?;
    if inserted.rows_affected() == 0 {
        // Another request stored the same event id between our check and insert.
        return replay(tx, store, &ev.event_id, request_hash)
            .await?
            .ok_or_else(|| {
                anyhow::anyhow!("event {} vanished after a conflict", ev.event_id).into()
            });
    }

    let Route::Review {
        reason,
        required_verdicts,
    } = route
    else {
        return Ok(batch.remember(
            request_hash,
            IngestOutcome {
                event_id: ev.event_id.clone(),
                route: route_name.as_str().into(),
                reason: None,
                task_id: None,
                replayed: false,
            },
        ));
    };

    let deadline = lifecycle::receipt_deadline(&store.policy, exited_at, ev.occurred_at);
    let task_id = new_id();
    sqlx::query(&format!(
        "INSERT INTO review_tasks (id, event_pk, store_id, session_id, reason, required_verdicts, \
         status, deadline_at, created_at, updated_at) VALUES ($1, $2, $3, $4, $5, $6, '{}', $7, $8, $8)",
        TaskStatus::Ready
    ))
    .bind(&task_id)
    .bind(&event_pk)
    .bind(&store.id)
    .bind(&ev.session_id)
    .bind(reason.as_str())
    .bind(required_verdicts)
    .bind(deadline)
    .bind(now)
    .execute(&mut **tx)
    .await?;
    // A task is claimable once its clips are processed (or have failed).
    let posters = crate::review::media::attach_to_task(
        tx,
        &store.id,
        &task_id,
        &clip_ids,
        ev.occurred_at,
        now,
    )
    .await?;
    if lifecycle::new_task_status(&posters) == TaskStatus::Waiting {
        sqlx::query(&format!(
            "UPDATE review_tasks SET status = '{}' WHERE id = $1",
            TaskStatus::Waiting
        ))
        .bind(&task_id)
        .execute(&mut **tx)
        .await?;
    }
    sqlx::query(
        "UPDATE sessions SET open_reviews = open_reviews + 1 WHERE store_id = $1 AND session_id = $2",
    )
    .bind(&store.id)
    .bind(&ev.session_id)
    .execute(&mut **tx)
    .await?;
    Ok(batch.remember(
        request_hash,
        IngestOutcome {
            event_id: ev.event_id.clone(),
            route: route_name.as_str().into(),
            reason: Some(reason.as_str().into()),
            task_id: Some(task_id),
            replayed: false,
        },
    ))
}

impl Batch {
    /// Records a new event's answer, so a repeat of its id later in the same
    /// batch replays it.
    fn remember(&mut self, request_hash: &str, outcome: IngestOutcome) -> IngestOutcome {
        self.stored.insert(
            outcome.event_id.clone(),
            (
                request_hash.to_string(),
                IngestOutcome {
                    replayed: true,
                    ..outcome.clone()
                },
            ),
        );
        outcome
    }
}

/// The stored answer for an event id already ingested, or a conflict when the
/// content differs.
async fn replay(
    tx: &mut Tx,
    store: &Store,
    event_id: &str,
    request_hash: &str,
) -> Result<Option<IngestOutcome>> {
    let row = sqlx::query(
        "SELECT e.request_hash, e.route, e.route_reason, t.id AS task_id FROM events e \
         LEFT JOIN review_tasks t ON t.event_pk = e.id WHERE e.store_id = $1 AND e.event_id = $2",
    )
    .bind(&store.id)
    .bind(event_id)
    .fetch_optional(&mut **tx)
    .await?;
    let Some(row) = row else { return Ok(None) };
    let stored_hash: String = row.try_get("request_hash")?;
    if stored_hash != request_hash {
        return Err(Error::new(
            Code::EventConflict,
            format!("event {event_id:?} was already received with different content"),
        ));
    }
    Ok(Some(IngestOutcome {
        event_id: event_id.to_string(),
        route: row.try_get("route")?,
        reason: row.try_get("route_reason")?,
        task_id: row.try_get("task_id")?,
        replayed: true,
    }))
}

/// Creates the session if needed and locks its row for the rest of the
/// transaction; returns its status and exit time.
pub async fn lock_session(
    tx: &mut Tx,
    store_id: &str,
    session_id: &str,
    now: i64,
) -> Result<(SessionStatus, Option<i64>)> {
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
    // A no-op update takes the row lock on PostgreSQL and is portable.
    let row = sqlx::query(
        "UPDATE sessions SET open_reviews = open_reviews WHERE store_id = $1 AND session_id = $2 \
         RETURNING status, exited_at",
    )
    .bind(store_id)
    .bind(session_id)
    .fetch_one(&mut **tx)
    .await?;
    Ok((
        super::state(&row.try_get::<String, _>("status")?, SessionStatus::parse)?,
        row.try_get("exited_at")?,
    ))
}
