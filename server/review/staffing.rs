//! Staffing forecasts ([`crate::sim::forecast`]) from a store's history in
//! the database, and the per-instance cache the dashboard reads them from.
//!
//! A forecast runs the simulator over a whole day (a second or more for a
//! big store), so each store's forecast for a day is made once per policy
//! and kept: the API makes it on request; the dashboard reads the history
//! of a store it has none for, answers at once when it is empty, and
//! otherwise simulates in the background and shows the forecast once it is
//! there.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use crate::db::{history, products, stores, stores::Store, Db};
use crate::domain::charge::LaborCost;
use crate::sim::forecast::{self, Forecast, History, DAY};
use crate::sim::whatif;

/// The history a forecast of the UTC day starting at `day_start` rests
/// on: the same weekday in each of the weeks before.
pub async fn history_of(db: &Db, store_id: &str, day_start: i64) -> anyhow::Result<History> {
    let mut conn = db.reader().acquire().await?;
    let mut h = History::default();
    for (from, to) in forecast::history_days(day_start) {
        h.shoppers
            .extend(history::past_shoppers(&mut conn, store_id, from, to).await?);
        let m = history::confidence_moments(&mut conn, store_id, from, to).await?;
        h.top_confidence.n += m.n;
        h.top_confidence.sum += m.sum;
        h.top_confidence.sum_sq += m.sum_sq;
        h.handling_ms
            .extend(history::handling_times(&mut conn, store_id, from, to).await?);
    }
    drop(conn);
    h.prices_cents = products::list(db, store_id)
        .await?
        .into_iter()
        .map(|p| p.price_cents)
        .collect();
    Ok(h)
}

/// `store`'s forecast for the UTC day starting at `day_start` under its
/// policy as it is; `None` when its history has no shoppers. The
/// simulation runs on the blocking pool.
pub async fn forecast_of(
    db: &Db,
    store: &Store,
    day_start: i64,
    labor: LaborCost,
) -> anyhow::Result<Option<Forecast>> {
    let history = history_of(db, &store.id, day_start).await?;
    simulate(db, store, history, day_start, labor).await
}

/// The forecast of `history` for `store` (see [`forecast_of`]).
async fn simulate(
    db: &Db,
    store: &Store,
    history: History,
    day_start: i64,
    labor: LaborCost,
) -> anyhow::Result<Option<Forecast>> {
    if history.shoppers.is_empty() {
        return Ok(None);
    }
    let review_cost = {
        let mut conn = db.reader().acquire().await?;
        super::ingest::review_cost_of(&mut conn, store, labor).await?
    };
    let policy = whatif::current(&store.policy);
    Ok(tokio::task::spawn_blocking(move || {
        forecast::forecast(&history, day_start, &policy, review_cost)
    })
    .await?)
}

/// Midnight UTC of the day holding `at`.
pub fn day_start(at: i64) -> i64 {
    at.div_euclid(DAY) * DAY
}

/// What the cache holds for a store and day.
#[derive(Debug, Clone)]
pub enum Cached {
    /// Being made.
    Making,
    /// Made: `None` when the store has no history for it.
    Made(Arc<Option<Forecast>>),
}

/// Forecasts made on this instance, by store, day and policy (a changed
/// policy is a new forecast); days before yesterday are dropped.
#[derive(Debug, Clone)]
pub struct Forecasts {
    made: Arc<Mutex<HashMap<Key, Cached>>>,
    labor: LaborCost,
}

/// Store id, day start, the policy as written.
type Key = (String, i64, String);

fn key(store: &Store, day_start: i64) -> Key {
    (
        store.id.clone(),
        day_start,
        serde_json::to_string(&store.policy).unwrap_or_default(),
    )
}

impl Forecasts {
    /// An empty cache; reviews cost `labor` where a store sets no cost.
    pub fn new(labor: LaborCost) -> Forecasts {
        Forecasts {
            made: Arc::default(),
            labor,
        }
    }

    /// `store`'s forecast for the day starting at `day_start`, made now
    /// unless it is cached.
    pub async fn get(
        &self,
        db: &Db,
        store: &Store,
        day_start: i64,
    ) -> anyhow::Result<Arc<Option<Forecast>>> {
        if let Some(Cached::Made(f)) = self.lookup(store, day_start) {
            return Ok(f);
        }
        let made = Arc::new(forecast_of(db, store, day_start, self.labor).await?);
        self.put(store, day_start, Cached::Made(made.clone()));
        Ok(made)
    }

    /// What the cache holds for `store` and the day. When it holds
    /// nothing, reads the store's history now: without shoppers there is
    /// nothing to simulate and the answer is made at once; otherwise the
    /// simulation starts in the background and the answer is
    /// [`Cached::Making`].
    pub async fn peek(&self, db: &Db, store: &Store, day_start: i64) -> anyhow::Result<Cached> {
        if let Some(c) = self.lookup(store, day_start) {
            return Ok(c);
        }
        // Marked first, so that a second look meanwhile starts nothing.
        self.put(store, day_start, Cached::Making);
        let history = match history_of(db, &store.id, day_start).await {
            Ok(h) => h,
            Err(e) => {
                self.forget(store, day_start);
                return Err(e);
            }
        };
        if history.shoppers.is_empty() {
            let none = Cached::Made(Arc::new(None));
            self.put(store, day_start, none.clone());
            return Ok(none);
        }
        let (this, db, store) = (self.clone(), db.clone(), store.clone());
        tokio::spawn(async move {
            match simulate(&db, &store, history, day_start, this.labor).await {
                Ok(f) => this.put(&store, day_start, Cached::Made(Arc::new(f))),
                Err(e) => {
                    tracing::warn!(store = %store.id, "staffing forecast failed: {e:#}");
                    // The next look tries again.
                    this.forget(&store, day_start);
                }
            }
        });
        Ok(Cached::Making)
    }

    fn forget(&self, store: &Store, day_start: i64) {
        let mut made = self.made.lock().expect("forecast cache");
        made.remove(&key(store, day_start));
    }

    fn lookup(&self, store: &Store, day_start: i64) -> Option<Cached> {
        let made = self.made.lock().expect("forecast cache");
        made.get(&key(store, day_start)).cloned()
    }

    fn put(&self, store: &Store, day_start: i64, value: Cached) {
        let mut made = self.made.lock().expect("forecast cache");
        made.retain(|k, _| k.1 >= day_start - DAY);
        made.insert(key(store, day_start), value);
    }
}

/// Each store's labelers needed in the hour holding `now`, from the
/// forecasts of `cache` (read or started where missing, see
/// [`Forecasts::peek`]).
pub async fn needed_now(
    db: &Db,
    cache: &Forecasts,
    now: i64,
) -> anyhow::Result<Vec<(Store, Cached, Option<u32>)>> {
    let today = day_start(now);
    let mut needs = Vec::new();
    for store in stores::list(db).await? {
        let cached = cache.peek(db, &store, today).await?;
        let needed = match &cached {
            Cached::Made(f) => f.as_ref().as_ref().map(|f| f.needed_at(now)),
            Cached::Making => None,
        };
        needs.push((store, cached, needed));
    }
    Ok(needs)
}
