//! What stores send: their catalog, and events, each stored once, routed,
//! and opened as a review task when a human must look.

use std::collections::{BTreeSet, HashMap};

use crate::auth::digest;
use crate::db::calibration;
use crate::db::events::{self, NewEvent, SessionLock, StoredEvent};
use crate::db::products::{self, Product};
use crate::db::stores::Store;
use crate::db::tasks::{self, NewTask};
use crate::db::{new_id, Db, Tx};
use crate::domain::calibration::Calibration;
use crate::domain::charge::{self, LaborCost};
use crate::domain::event::{EventInput, ValidEvent};
use crate::domain::lifecycle::{self, EventStatus, RouteName, TaskPurpose, TaskStatus};
use crate::domain::routing::{self, Route, RoutingMode};
use crate::error::{Code, Error, Result};
use crate::review::receipts::session_refused;
use crate::review::{locks, media};

/// Inserts or updates products of a store's catalog, in one transaction.
pub async fn upsert_products(db: &Db, store_id: &str, list: &[Product], now: i64) -> Result<()> {
    let mut tx = db.begin().await?;
    products::upsert(&mut tx, store_id, list, now).await?;
    tx.commit().await?;
    Ok(())
}

/// What happened to one event (also the answer replayed on a retry).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Outcome {
    /// The store's event id.
    pub event_id: String,
    /// Its route column: `auto_accepted` or `review`.
    pub route: String,
    /// Why the event went to review.
    pub reason: Option<String>,
    /// The review task, when one was opened.
    pub task_id: Option<String>,
    /// Whether this answers a replay of an event stored earlier.
    pub replayed: bool,
}

impl Outcome {
    fn replay_of(stored: &StoredEvent) -> Outcome {
        Outcome {
            event_id: stored.event_id.clone(),
            route: stored.route.clone(),
            reason: stored.reason.clone(),
            task_id: stored.task_id.clone(),
            replayed: true,
        }
    }
}

/// An event to ingest: checked, with the digest of its request content.
#[derive(Debug, Clone, Copy)]
pub struct Incoming<'a> {
    /// The checked event.
    pub event: &'a ValidEvent,
    /// Identifies the request's content: a replay with the same digest gets
    /// the stored answer, one with another digest is refused.
    pub request_hash: &'a str,
}

impl<'a> Incoming<'a> {
    /// The checked events paired with their request digests, in order.
    pub fn list(events: &'a [ValidEvent], hashes: &'a [String]) -> Vec<Incoming<'a>> {
        events
            .iter()
            .zip(hashes)
            .map(|(event, request_hash)| Incoming {
                event,
                request_hash,
            })
            .collect()
    }
}

/// The digest that identifies an event's content as the store sent it.
pub fn request_hash(input: &EventInput) -> String {
    digest(&serde_json::to_string(input).expect("an event serializes to JSON"))
}

/// A refusal of a request of several events, with the index of the event
/// that caused it (`None` when no one event did).
#[derive(Debug)]
pub struct Refusal {
    /// Position of the event in the request.
    pub index: Option<usize>,
    /// Why.
    pub error: Error,
}

impl From<Error> for Refusal {
    fn from(error: Error) -> Refusal {
        Refusal { index: None, error }
    }
}

impl From<crate::db::Error> for Refusal {
    fn from(e: crate::db::Error) -> Refusal {
        Error::from(e).into()
    }
}

impl From<sqlx::Error> for Refusal {
    fn from(e: sqlx::Error) -> Refusal {
        Error::from(e).into()
    }
}

/// The store's latest verdicts whose median handling time prices a review.
const HANDLING_SAMPLE: i64 = 500;

/// What one review costs `store`, in cents: its own setting, or the labor
/// cost at its median handling time of recent verdicts.
pub async fn review_cost_of(
    conn: &mut sqlx::AnyConnection,
    store: &Store,
    labor: LaborCost,
) -> Result<f64> {
    Ok(match store.policy.review_cost_cents {
        Some(cents) => cents as f64,
        None => {
            let recent = tasks::recent_handling_ms(conn, &store.id, HANDLING_SAMPLE).await?;
            labor.measured(&recent).review_cents()
        }
    })
}

/// A store's calibration for `model` at `now`: fitted on the events people
/// labelled within [`crate::domain::calibration::WINDOW_MS`].
pub async fn calibration_of(
    conn: &mut sqlx::AnyConnection,
    store: &Store,
    model: Option<&str>,
    now: i64,
) -> Result<Calibration> {
    let seen = calibration::observations(
        conn,
        &store.id,
        model,
        now - crate::domain::calibration::WINDOW_MS,
        store.policy.audit_rate,
    )
    .await?;
    Ok(Calibration::fit(&seen))
}

/// Ingests events in one transaction, all or none, in order; their outcomes
/// in request order. `audit_draw` gives each new event its uniform draw for
/// the audit sample; `labor` is what labeler time costs, for a store in
/// charge-aware mode that does not set its own review cost (its measured
/// median handling time replaces the configured one once it has
/// [`charge::MIN_MEASURED`] verdicts).
pub async fn ingest(
    db: &Db,
    store: &Store,
    incoming: &[Incoming<'_>],
    now: i64,
    labor: LaborCost,
    mut audit_draw: impl FnMut() -> f64,
) -> Result<Vec<Outcome>, Refusal> {
    let mut tx = db.begin().await?;
    let events: Vec<&ValidEvent> = incoming.iter().map(|i| i.event).collect();
    let mut batch = Batch::prepare(&mut tx, store, &events, now, labor).await?;
    let mut outcomes = Vec::with_capacity(incoming.len());
    for (i, inc) in incoming.iter().enumerate() {
        let outcome = one(&mut tx, &mut batch, store, inc, now, audit_draw())
            .await
            .map_err(|error| Refusal {
                index: Some(i),
                error,
            })?;
        outcomes.push(outcome);
    }
    tx.commit().await?;
    for o in outcomes.iter().filter(|o| !o.replayed) {
        crate::metrics::event_ingested(&o.route);
    }
    Ok(outcomes)
}

/// What a request of events needs from the database, read once for all of
/// them instead of once per event: the catalog entries its candidates name,
/// the events already stored under its event ids, and its sessions — locked
/// in sorted order, so two requests naming the same sessions can never
/// deadlock on PostgreSQL.
#[derive(Debug, Default)]
struct Batch {
    catalog: HashMap<String, Product>,
    stored: HashMap<String, (String, Outcome)>,
    sessions: HashMap<String, SessionLock>,
    /// For charge-aware routing: the store's calibration per model version
    /// of the batch.
    calibrations: HashMap<Option<String>, Calibration>,
    /// For charge-aware routing: what a review costs the store, in cents.
    review_cost_cents: f64,
}

impl Batch {
    /// Reads and locks what `events` need, inside `tx`.
    async fn prepare(
        tx: &mut Tx,
        store: &Store,
        events: &[&ValidEvent],
        now: i64,
        labor: LaborCost,
    ) -> Result<Batch> {
        let mut batch = Batch::default();
        let skus: BTreeSet<&str> = events
            .iter()
            .flat_map(|e| e.candidates.iter().map(|c| c.sku.as_str()))
            .collect();
        let skus: Vec<&str> = skus.into_iter().collect();
        batch.catalog = products::find(tx, &store.id, &skus).await?;
        let ids: BTreeSet<&str> = events.iter().map(|e| e.event_id.as_str()).collect();
        let ids: Vec<&str> = ids.into_iter().collect();
        for stored in events::stored(tx, &store.id, &ids).await? {
            let outcome = Outcome::replay_of(&stored);
            batch
                .stored
                .insert(stored.event_id, (stored.request_hash, outcome));
        }
        let sessions: BTreeSet<&str> = events.iter().map(|e| e.session_id.as_str()).collect();
        for session_id in sessions {
            let state = locks::session(tx, &store.id, session_id, now).await?;
            batch.sessions.insert(session_id.to_string(), state);
        }
        if store.policy.mode == RoutingMode::ChargeAware {
            batch.review_cost_cents = review_cost_of(tx, store, labor).await?;
            let models: BTreeSet<Option<&str>> =
                events.iter().map(|e| e.model_version.as_deref()).collect();
            for model in models {
                let fitted = calibration_of(tx, store, model, now).await?;
                batch.calibrations.insert(model.map(str::to_string), fitted);
            }
        }
        Ok(batch)
    }

    /// The stored answer for an event id, or a conflict when the content differs.
    fn replay(&self, event_id: &str, request_hash: &str) -> Result<Option<Outcome>> {
        match self.stored.get(event_id) {
            None => Ok(None),
            Some((hash, _)) if hash != request_hash => Err(conflict(event_id)),
            Some((_, outcome)) => Ok(Some(outcome.clone())),
        }
    }

    /// Records a new event's answer, so a repeat of its id later in the same
    /// request replays it.
    fn remember(&mut self, request_hash: &str, outcome: Outcome) -> Outcome {
        self.stored.insert(
            outcome.event_id.clone(),
            (
                request_hash.to_string(),
                Outcome {
                    replayed: true,
                    ..outcome.clone()
                },
            ),
        );
        outcome
    }
}

fn conflict(event_id: &str) -> Error {
    Error::new(
        Code::EventConflict,
        format!("event {event_id:?} was already received with different content"),
    )
}

/// Ingests one event inside `tx`, with `batch` prepared for it.
async fn one(
    tx: &mut Tx,
    batch: &mut Batch,
    store: &Store,
    inc: &Incoming<'_>,
    now: i64,
    audit_draw: f64,
) -> Result<Outcome> {
    let ev = inc.event;
    if let Some(previous) = batch.replay(&ev.event_id, inc.request_hash)? {
        return Ok(previous);
    }

    let catalog = &batch.catalog;
    if let Some(unknown) = ev.candidates.iter().find(|c| !catalog.contains_key(&c.sku)) {
        return Err(Error::new(
            Code::UnknownSku,
            format!("sku {:?} is not in the store's catalog", unknown.sku),
        ));
    }

    media::check_owned(tx, &store.id, &ev.clips).await?;
    let mut clip_ids = ev.clips.clone();
    for window in &ev.cameras {
        clip_ids.push(media::cut_window(tx, &store.id, window, now).await?);
    }

    let Some(session) = batch.sessions.get(&ev.session_id) else {
        return Err(anyhow::anyhow!("session {} was not prepared", ev.session_id).into());
    };
    lifecycle::accepts_events(session.status).map_err(|r| session_refused(r, &ev.session_id))?;
    let exited_at = session.exited_at;

    let confidences: Vec<f64> = ev.candidates.iter().map(|c| c.confidence).collect();
    let top = routing::top_index(&confidences).map(|i| &ev.candidates[i]);
    let priced: Vec<charge::Priced> = ev
        .candidates
        .iter()
        .map(|c| charge::Priced {
            confidence: c.confidence,
            unit_price_cents: catalog[&c.sku].price_cents,
        })
        .collect();
    // Fitted only for charge-aware stores; the prior serves the others.
    let prior;
    let calibration = match batch.calibrations.get(&ev.model_version) {
        Some(fitted) => fitted,
        None => {
            prior = Calibration::default();
            &prior
        }
    };
    let route = charge::route_event(
        &store.policy,
        &priced,
        ev.quantity,
        calibration,
        batch.review_cost_cents,
        audit_draw,
    );

    let event_pk = new_id();
    let purpose = lifecycle::purpose_of(route);
    let (route_name, status) = match purpose {
        Some(TaskPurpose::Review) => (RouteName::Review, EventStatus::Review),
        _ => (RouteName::AutoAccepted, EventStatus::Resolved),
    };
    let reason = match route {
        Route::Review { reason, .. } => Some(reason.as_str()),
        Route::AutoAccepted => None,
    };
    let row = NewEvent {
        pk: &event_pk,
        store_id: &store.id,
        event: ev,
        clip_ids: &clip_ids,
        top: top.map(|c| (c.sku.as_str(), c.confidence)),
        route: route_name,
        reason,
        status,
        audit: purpose == Some(TaskPurpose::Audit),
        request_hash: inc.request_hash,
        now,
    };
    if !events::insert(tx, &row).await? {
        // Another request stored the same event id between our read and insert.
        let stored = events::stored(tx, &store.id, &[ev.event_id.as_str()])
            .await?
            .pop()
            .ok_or_else(|| anyhow::anyhow!("event {} vanished after a conflict", ev.event_id))?;
        if stored.request_hash != inc.request_hash {
            return Err(conflict(&ev.event_id));
        }
        return Ok(Outcome::replay_of(&stored));
    }

    let Route::Review {
        reason,
        required_verdicts,
    } = route
    else {
        return Ok(batch.remember(
            inc.request_hash,
            Outcome {
                event_id: ev.event_id.clone(),
                route: route_name.as_str().into(),
                reason: None,
                task_id: None,
                replayed: false,
            },
        ));
    };

    let purpose = purpose.unwrap_or(TaskPurpose::Review);
    let task_id = new_id();
    let task = NewTask {
        id: &task_id,
        event_pk: &event_pk,
        store_id: &store.id,
        session_id: &ev.session_id,
        reason: reason.as_str(),
        purpose,
        required_verdicts,
        status: TaskStatus::Ready,
        deadline_at: lifecycle::receipt_deadline(&store.policy, exited_at, ev.occurred_at),
        now,
    };
    tasks::insert(tx, &task).await?;
    // A task is claimable once its clips are processed (or have failed).
    let posters =
        media::attach_to_task(tx, &store.id, &task_id, &clip_ids, ev.occurred_at, now).await?;
    let status = lifecycle::new_task_status(&posters);
    if status != TaskStatus::Ready {
        tasks::set_status(tx, &task_id, status).await?;
    }
    if purpose.holds_receipt() {
        events::add_open_review(tx, &store.id, &ev.session_id).await?;
    }
    Ok(batch.remember(
        inc.request_hash,
        Outcome {
            event_id: ev.event_id.clone(),
            route: route_name.as_str().into(),
            reason: Some(reason.as_str().into()),
            task_id: Some(task_id),
            replayed: false,
        },
    ))
}
