//! A request of events written as one statement, on PostgreSQL: no `BEGIN`,
//! no `COMMIT`, one round trip for its writes.
//!
//! What the transactional path ([`super::ingest`]) reads under locks before
//! it writes, this path assumes, and the statement checks it in the same
//! breath ([`crate::db::batch::Batch::run_alone`]): that no event id is
//! stored yet (each event row must be written) and that every session is
//! new or still open (each session row must be created or counted; an
//! exited one would change the receipt's deadlines). When an assumption
//! fails, the statement writes nothing and the request takes the
//! transactional path, which reads first. Refusals are left to that path
//! too: a refused event may be a store's retry of a stored one, whose
//! answer must be replayed, not refused.
//!
//! Events with clips or camera windows always take that path: their rows
//! depend on clip rows read under lock.

use super::{decide, tasks_of, Batch, Incoming, Outcome, Plan};
use crate::db::events::{self, NewEvent, SessionLock};
use crate::db::stores::Store;
use crate::db::{batch, bulk, tasks, Backend, Db};
use crate::domain::charge::LaborCost;
use crate::domain::event::ValidEvent;
use crate::domain::lifecycle::SessionStatus;
use crate::error::Result;

/// What came of trying.
#[derive(Debug)]
pub enum Tried {
    /// Stored: the answers, in request order.
    Written(Vec<Outcome>),
    /// The request is not for this path (SQLite, clips, too large).
    NotApplicable,
    /// Tried, and nothing written: an event id was stored, a session was
    /// not open, or an event is refused.
    Deferred,
}

/// The state every session is assumed to be in, and checked to be.
const OPEN: SessionLock = SessionLock {
    status: SessionStatus::Open,
    exited_at: None,
};

/// Tries `incoming` as one statement; `draws` are the events' audit draws.
pub async fn ingest(
    db: &Db,
    store: &Store,
    incoming: &[Incoming<'_>],
    draws: &[f64],
    now: i64,
    labor: LaborCost,
) -> Result<Tried> {
    let plain = incoming
        .iter()
        .all(|i| i.event.clips.is_empty() && i.event.cameras.is_empty());
    if db.backend != Backend::Postgres || !plain || incoming.is_empty() {
        return Ok(Tried::NotApplicable);
    }
    let events: Vec<&ValidEvent> = incoming.iter().map(|i| i.event).collect();
    let mut conn = db.writer().acquire().await?;
    let mut batch = Batch::read(&mut conn, db, store, &events, now, labor).await?;
    batch.sessions = events
        .iter()
        .map(|e| (e.session_id.clone(), OPEN))
        .collect();
    let mut plans = Vec::with_capacity(incoming.len());
    for (inc, draw) in incoming.iter().zip(draws) {
        let planned = match batch.replayed(inc) {
            // A repeat of an id earlier in the same request.
            Ok(Some(replay)) => Ok(replay),
            Ok(None) => batch
                .check_catalog(inc.event)
                .and_then(|()| decide(&mut batch, store, inc, Vec::new(), *draw)),
            Err(e) => Err(e),
        };
        match planned {
            Ok(p) => plans.push(p),
            Err(_) => return Ok(Tried::Deferred),
        }
    }
    let Some(writes) = statement(store, &plans, now)? else {
        return Ok(Tried::NotApplicable);
    };
    match writes.run_alone(db, &mut conn).await? {
        Some(_) => Ok(Tried::Written(
            plans.into_iter().map(|p| p.outcome).collect(),
        )),
        None => Ok(Tried::Deferred),
    }
}

/// The request's writes as one batch: its sessions (created, or counted
/// while open), its events, its tasks; `None` when they exceed one
/// statement's parameters.
fn statement(store: &Store, plans: &[Plan<'_>], now: i64) -> Result<Option<batch::Batch>> {
    let new: Vec<(&Outcome, &super::NewRows<'_>)> = plans
        .iter()
        .filter_map(|p| p.new.as_ref().map(|n| (&p.outcome, n)))
        .collect();
    let rows: Vec<NewEvent<'_>> = new
        .iter()
        .map(|(_, n)| n.event_row(&store.id, now))
        .collect();
    let (opened, holding) = tasks_of(store, &new, now);
    let mut writes = batch::Batch::default();
    // Sessions first: every request locks sessions before anything else.
    writes.push(events::open_with_reviews(&store.id, &holding, now));
    writes.push(events::insert_stmt(&rows)?);
    if !opened.is_empty() {
        let list: Vec<tasks::NewTask<'_>> = opened.iter().map(|(t, _)| *t).collect();
        writes.push(tasks::insert_stmt(&list));
    }
    Ok((writes.params() <= bulk::MAX_PARAMS).then_some(writes))
}
