//! What stores send: their catalog, and events, each stored once, routed,
//! and opened as a review task when a human must look.

use std::collections::{BTreeMap, BTreeSet, HashMap};

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

mod at_once;

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

/// Times a request of events is tried: first without reading which of its
/// event ids are stored already (the common case: none), then reading them
/// when the first attempt found one stored (a store's retry) or refused an
/// event (which a stored event's replay must not be), and once more when
/// another request stored one of the ids between this one's read and write.
const ATTEMPTS: usize = 3;

/// Ingests events all or none, in order; their outcomes in request order. `audit_draw` gives each new event its uniform draw for
/// the audit sample; `labor` is what labeler time costs, for a store in
/// charge-aware mode that does not set its own review cost (its measured
/// median handling time replaces the configured one once it has
/// [`charge::MIN_MEASURED`] verdicts).
///
/// Every event is decided in memory first, from what the request reads in a
/// few set statements ([`Batch::read`], [`Batch::lock`]); then its rows are
/// written in multi-row statements ([`write`]): a request of a hundred
/// events costs about as many round trips as one of a single event. On
/// PostgreSQL a request of events without clips is first tried as one
/// statement that reads nothing under lock ([`at_once`]).
pub async fn ingest(
    db: &Db,
    store: &Store,
    incoming: &[Incoming<'_>],
    now: i64,
    labor: LaborCost,
    mut audit_draw: impl FnMut() -> f64,
) -> Result<Vec<Outcome>, Refusal> {
    let events: Vec<&ValidEvent> = incoming.iter().map(|i| i.event).collect();
    // Drawn once: an event's audit sample does not depend on retries.
    let draws: Vec<f64> = incoming.iter().map(|_| audit_draw()).collect();
    let mut read_stored = match at_once::ingest(db, store, incoming, &draws, now, labor).await? {
        at_once::Tried::Written(outcomes) => {
            crate::metrics::ingest_path("one_statement");
            return Ok(counted(outcomes));
        }
        at_once::Tried::NotApplicable => false,
        // Something it assumed was not so: read everything, stored events too.
        at_once::Tried::Deferred => true,
    };
    'attempts: for attempt in 1..=ATTEMPTS {
        let mut tx = db.begin().await?;
        let mut batch = Batch::read(&mut tx, db, store, &events, now, labor).await?;
        batch
            .lock(&mut tx, store, &events, now, read_stored)
            .await?;
        let mut plans = Vec::with_capacity(incoming.len());
        for (i, inc) in incoming.iter().enumerate() {
            match plan(&mut tx, &mut batch, store, inc, now, draws[i]).await {
                Ok(planned) => plans.push(planned),
                Err(_) if !read_stored && attempt < ATTEMPTS => {
                    read_stored = true;
                    continue 'attempts;
                }
                Err(error) => {
                    return Err(Refusal {
                        index: Some(i),
                        error,
                    })
                }
            }
        }
        if !write(&mut tx, store, &plans, now).await? {
            // Dropping `tx` rolls it back; the next attempt reads the stored
            // event and replays or refuses it.
            read_stored = true;
            continue;
        }
        tx.commit().await?;
        crate::metrics::ingest_path("transaction");
        return Ok(counted(plans.into_iter().map(|p| p.outcome).collect()));
    }
    Err(Error::new(
        Code::Unavailable,
        "other requests kept storing the same event ids; retry",
    )
    .into())
}

/// Counts the new events of stored outcomes.
fn counted(outcomes: Vec<Outcome>) -> Vec<Outcome> {
    for o in outcomes.iter().filter(|o| !o.replayed) {
        crate::metrics::event_ingested(&o.route);
    }
    outcomes
}

/// What a request of events needs from the database, read once for all of
/// them instead of once per event: the catalog entries its candidates name,
/// the events already stored under its event ids (on a second attempt,
/// see [`ATTEMPTS`]), and its sessions — locked
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
    /// Reads what `events` need that no lock guards: their catalog entries
    /// and, for a charge-aware store, its review cost and calibrations.
    async fn read(
        conn: &mut sqlx::AnyConnection,
        db: &Db,
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
        batch.catalog = db
            .catalogs
            .find(conn, &store.id, &store.catalog_version, &skus)
            .await?;
        if store.policy.mode == RoutingMode::ChargeAware {
            batch.review_cost_cents = review_cost_of(conn, store, labor).await?;
            let models: BTreeSet<Option<&str>> =
                events.iter().map(|e| e.model_version.as_deref()).collect();
            for model in models {
                let fitted = calibration_of(conn, store, model, now).await?;
                batch.calibrations.insert(model.map(str::to_string), fitted);
            }
        }
        Ok(batch)
    }

    /// Locks the sessions of `events` inside `tx` (creating the new ones)
    /// and reads their states; which of their ids are stored already only
    /// when `read_stored`.
    async fn lock(
        &mut self,
        tx: &mut Tx,
        store: &Store,
        events: &[&ValidEvent],
        now: i64,
        read_stored: bool,
    ) -> Result<()> {
        if read_stored {
            let ids: BTreeSet<&str> = events.iter().map(|e| e.event_id.as_str()).collect();
            let ids: Vec<&str> = ids.into_iter().collect();
            for stored in events::stored(tx, &store.id, &ids).await? {
                let outcome = Outcome::replay_of(&stored);
                self.stored
                    .insert(stored.event_id, (stored.request_hash, outcome));
            }
        }
        let sessions: Vec<&str> = events.iter().map(|e| e.session_id.as_str()).collect();
        self.sessions = locks::sessions(tx, &store.id, &sessions, now).await?;
        Ok(())
    }

    /// For an event that is not new: its stored answer (a replay), or a
    /// conflict when the content differs.
    fn replayed<'a>(&self, inc: &Incoming<'a>) -> Result<Option<Plan<'a>>> {
        Ok(self
            .replay(&inc.event.event_id, inc.request_hash)?
            .map(|previous| Plan {
                outcome: previous,
                new: None,
            }))
    }

    /// Refuses an event naming a sku the catalog does not have.
    fn check_catalog(&self, ev: &ValidEvent) -> Result<()> {
        match ev
            .candidates
            .iter()
            .find(|c| !self.catalog.contains_key(&c.sku))
        {
            Some(unknown) => Err(Error::new(
                Code::UnknownSku,
                format!("sku {:?} is not in the store's catalog", unknown.sku),
            )),
            None => Ok(()),
        }
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
    fn remember(&mut self, request_hash: &str, outcome: &Outcome) {
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
    }
}

fn conflict(event_id: &str) -> Error {
    Error::new(
        Code::EventConflict,
        format!("event {event_id:?} was already received with different content"),
    )
}

/// One event of a request, decided: its answer, and for a new event the
/// rows to write.
struct Plan<'a> {
    outcome: Outcome,
    /// `None` for a replay.
    new: Option<NewRows<'a>>,
}

/// The rows of a new event.
struct NewRows<'a> {
    event: &'a ValidEvent,
    request_hash: &'a str,
    pk: String,
    clip_ids: Vec<String>,
    route: Route,
    purpose: Option<TaskPurpose>,
    /// How the event is stored: its route column and status.
    stored_as: (RouteName, EventStatus),
    /// Why it goes to review.
    reason: Option<&'static str>,
    /// The receipt deadline of its task, when it has one.
    deadline_at: i64,
}

impl NewRows<'_> {
    fn event_row<'r>(&'r self, store_id: &'r str, now: i64) -> NewEvent<'r> {
        let ev = self.event;
        let (route, status) = self.stored_as;
        let confidences: Vec<f64> = ev.candidates.iter().map(|c| c.confidence).collect();
        let top = routing::top_index(&confidences).map(|i| &ev.candidates[i]);
        NewEvent {
            pk: &self.pk,
            store_id,
            event: ev,
            clip_ids: &self.clip_ids,
            top: top.map(|c| (c.sku.as_str(), c.confidence)),
            route,
            reason: self.reason,
            status,
            audit: self.purpose == Some(TaskPurpose::Audit),
            request_hash: self.request_hash,
            now,
        }
    }
}

/// Decides one event inside `tx`, with `batch` prepared for it: a replay's
/// stored answer, a refusal, or the rows of a new event. Only clips touch
/// the database here (the ids it names are checked, its camera windows are
/// cut); everything else is decided in memory.
async fn plan<'a>(
    tx: &mut Tx,
    batch: &mut Batch,
    store: &Store,
    inc: &Incoming<'a>,
    now: i64,
    audit_draw: f64,
) -> Result<Plan<'a>> {
    let ev: &'a ValidEvent = inc.event;
    if let Some(replay) = batch.replayed(inc)? {
        return Ok(replay);
    }
    batch.check_catalog(ev)?;
    media::check_owned(tx, &store.id, &ev.clips).await?;
    let mut clip_ids = ev.clips.clone();
    for window in &ev.cameras {
        clip_ids.push(media::cut_window(tx, &store.id, window, now).await?);
    }
    decide(batch, store, inc, clip_ids, audit_draw)
}

/// Routes a new event whose skus are in the catalog, with its clips:
/// its answer and its rows.
fn decide<'a>(
    batch: &mut Batch,
    store: &Store,
    inc: &Incoming<'a>,
    clip_ids: Vec<String>,
    audit_draw: f64,
) -> Result<Plan<'a>> {
    let ev: &'a ValidEvent = inc.event;
    let catalog = &batch.catalog;
    let Some(session) = batch.sessions.get(&ev.session_id) else {
        return Err(anyhow::anyhow!("session {} was not prepared", ev.session_id).into());
    };
    lifecycle::accepts_events(session.status).map_err(|r| session_refused(r, &ev.session_id))?;
    let exited_at = session.exited_at;

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
    let purpose = lifecycle::purpose_of(route);
    // An audit sample is settled with the model's answer at once.
    let stored_as = match purpose {
        Some(TaskPurpose::Review) => (RouteName::Review, EventStatus::Review),
        _ => (RouteName::AutoAccepted, EventStatus::Resolved),
    };
    let reason = match route {
        Route::Review { reason, .. } => Some(reason.as_str()),
        Route::AutoAccepted => None,
    };
    let outcome = Outcome {
        event_id: ev.event_id.clone(),
        route: stored_as.0.as_str().into(),
        reason: reason.map(Into::into),
        task_id: reason.is_some().then(new_id),
        replayed: false,
    };
    batch.remember(inc.request_hash, &outcome);
    Ok(Plan {
        outcome,
        new: Some(NewRows {
            event: ev,
            request_hash: inc.request_hash,
            pk: new_id(),
            clip_ids,
            route,
            purpose,
            stored_as,
            reason,
            deadline_at: lifecycle::receipt_deadline(&store.policy, exited_at, ev.occurred_at),
        }),
    })
}

/// Writes the rows of the new events of `plans`: the events, their tasks,
/// the tasks' clips and the sessions' open review counts, each kind in
/// multi-row statements. False, with nothing else written, when another
/// request stored one of the event ids first: the caller rolls back and
/// tries again.
async fn write(tx: &mut Tx, store: &Store, plans: &[Plan<'_>], now: i64) -> Result<bool> {
    let new: Vec<(&Outcome, &NewRows<'_>)> = plans
        .iter()
        .filter_map(|p| p.new.as_ref().map(|n| (&p.outcome, n)))
        .collect();
    if new.is_empty() {
        return Ok(true);
    }
    let rows: Vec<NewEvent<'_>> = new
        .iter()
        .map(|(_, n)| n.event_row(&store.id, now))
        .collect();
    if events::insert_many(tx, &rows).await? != rows.len() as u64 {
        return Ok(false);
    }

    let (opened, holding) = tasks_of(store, &new, now);
    let tasks: Vec<NewTask<'_>> = opened.iter().map(|(t, _)| *t).collect();
    tasks::insert_many(tx, &tasks).await?;
    // A task is claimable once its clips are processed (or have failed).
    for (task, n) in opened.iter().filter(|(_, n)| !n.clip_ids.is_empty()) {
        let posters = media::attach_to_task(
            tx,
            &store.id,
            task.id,
            &n.clip_ids,
            n.event.occurred_at,
            now,
        )
        .await?;
        let status = lifecycle::new_task_status(&posters);
        if status != TaskStatus::Ready {
            tasks::set_status(tx, task.id, status).await?;
        }
    }
    let holding: Vec<(&str, i64)> = holding.into_iter().filter(|(_, n)| *n > 0).collect();
    events::add_open_reviews(tx, &store.id, &holding).await?;
    Ok(true)
}

/// The tasks new events open, and the open reviews they add per session
/// (every session of `new`, zero where none holds its receipt).
fn tasks_of<'p>(
    store: &'p Store,
    new: &[(&'p Outcome, &'p NewRows<'p>)],
    now: i64,
) -> (Vec<(NewTask<'p>, &'p NewRows<'p>)>, BTreeMap<&'p str, i64>) {
    let mut opened = Vec::new();
    let mut holding: BTreeMap<&str, i64> = BTreeMap::new();
    for (outcome, n) in new {
        let held = holding.entry(n.event.session_id.as_str()).or_default();
        let (
            Some(task_id),
            Route::Review {
                reason,
                required_verdicts,
            },
        ) = (outcome.task_id.as_deref(), n.route)
        else {
            continue;
        };
        let purpose = n.purpose.unwrap_or(TaskPurpose::Review);
        let task = NewTask {
            id: task_id,
            event_pk: &n.pk,
            store_id: &store.id,
            session_id: &n.event.session_id,
            reason: reason.as_str(),
            purpose,
            required_verdicts,
            status: TaskStatus::Ready,
            deadline_at: n.deadline_at,
            now,
        };
        opened.push((task, *n));
        if purpose.holds_receipt() {
            *held += 1;
        }
    }
    (opened, holding)
}
