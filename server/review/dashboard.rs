//! The dashboard snapshot: rollup buckets for the windows, plus the live
//! tail after the watermark counted by the same code as the rollup job,
//! plus the state of the queue and of pending receipts, all read in one
//! consistent snapshot of the database; and the confidence bins and the
//! routing-threshold recommendation of one store.

use std::collections::{BTreeMap, BTreeSet};
use std::time::{Duration, Instant};

use crate::db::dashboard::{covered_users, pending_receipts, queue, usernames, working_labelers};
use crate::db::rollup::{self, BucketRanges};
use crate::db::Db;
use crate::domain::dashboard::{
    ConfidenceBin, Dashboard, Disputes, ForecastState, StoreNeed, WORKING_WINDOW_MS,
};
use crate::domain::figures::{self, GoldRule, Live, Windows};
use crate::domain::recommend::{self, Recommendation};
use crate::domain::rollup::{bucket, merge_confidence, Rollup, DAY};
use crate::domain::routing::RoutingPolicy;
use crate::domain::scope::Scope;
use crate::error::Result;
use crate::review::staffing::{self, Cached, Forecasts};

/// What the dashboard judges by, from the settings.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Rules {
    /// A labeler is flagged when their gold accuracy over the last 7 days
    /// is below this…
    pub gold_min_accuracy: f64,
    /// …over at least this many answers.
    pub gold_min_answers: u64,
    /// Tasks due within this are at risk (`deadline_lead_ms`).
    pub deadline_lead_ms: i64,
}

impl Rules {
    /// The rules of `config`.
    pub fn of(config: &crate::config::Config) -> Rules {
        Rules {
            gold_min_accuracy: config.gold_min_accuracy,
            gold_min_answers: config.gold_min_answers,
            deadline_lead_ms: config.deadline_lead_ms,
        }
    }
}

/// The dashboard at `now`, of the stores of `scope`.
pub async fn snapshot(db: &Db, scope: &Scope, now: i64, rules: Rules) -> Result<Dashboard> {
    snapshot_timed(db, scope, now, rules, &mut |_, _| {}).await
}

/// [`snapshot`] with each store's labelers needed this hour, from the
/// staffing forecasts of `forecasts` (those not made yet start in the
/// background and show as `making`).
pub async fn snapshot_with_staffing(
    db: &Db,
    scope: &Scope,
    now: i64,
    rules: Rules,
    forecasts: &Forecasts,
) -> Result<Dashboard> {
    let mut d = snapshot(db, scope, now, rules).await?;
    let needs = staffing::needed_now(db, forecasts, now).await?;
    d.staffing.stores = needs
        .into_iter()
        .filter(|(store, _, _)| scope.sees(&store.id))
        .map(|(store, cached, needed)| StoreNeed {
            store_id: store.id,
            store_name: store.name,
            forecast: match (&cached, needed) {
                (Cached::Making, _) => ForecastState::Making,
                (Cached::Made(_), Some(_)) => ForecastState::Ready,
                (Cached::Made(_), None) => ForecastState::NoHistory,
            },
            needed: needed.map(i64::from),
        })
        .collect();
    let ready: Vec<i64> = d.staffing.stores.iter().filter_map(|s| s.needed).collect();
    d.staffing.needed = (!ready.is_empty()).then(|| ready.iter().sum());
    Ok(d)
}

/// [`snapshot`], telling `step` how long each of its steps took (`recount
/// bench dashboard` prints where the time goes).
pub async fn snapshot_timed(
    db: &Db,
    scope: &Scope,
    now: i64,
    rules: Rules,
    step: &mut (dyn FnMut(&'static str, Duration) + Send),
) -> Result<Dashboard> {
    let mut clock = Instant::now();
    let mut lap = |name: &'static str| {
        let t = Instant::now();
        step(name, t - clock);
        clock = t;
    };
    let w = Windows::at(now);
    let mut tx = db.begin_snapshot().await?;
    let watermark = rollup::watermark(&mut tx).await?;
    lap("begin");
    let ranges = BucketRanges {
        store_minutes_from: w.hour_from,
        store_hours_from: w.day_from,
        labeler_hours_from: w.day_from,
        labeler_days_from: w.week_from,
        models_from: w.week_from,
    };
    let mut counted = rollup::read(&mut tx, &ranges, watermark, &db.settled).await?;
    lap("rollup rows");
    // Facts after the watermark are not in the tables yet: count them live.
    let tail_from = watermark.max(w.earliest());
    if tail_from <= now {
        counted.merge(&rollup::collect(&mut tx, tail_from, now + 1).await?);
    }
    lap("live tail");
    if !scope.is_all() {
        let labelers = covered_users(&mut tx, scope).await?;
        keep_scope(&mut counted, scope, &labelers);
    }
    let queue = queue(&mut tx, scope, now, rules.deadline_lead_ms).await?;
    lap("queue");
    let (pending, pending_past_deadline) = pending_receipts(&mut tx, scope, now).await?;
    lap("pending receipts");
    let usernames = usernames(&mut tx).await?;
    let d = crate::db::disputes::counts_since(&mut tx, scope, w.week_from).await?;
    let working = working_labelers(&mut tx, scope, now, now - WORKING_WINDOW_MS).await?;
    tx.commit().await?;
    lap("usernames");
    let live = Live {
        queue,
        pending,
        pending_past_deadline,
        watermark,
        usernames,
        disputes: Disputes::of(d.receipts, d.opened, d.upheld, d.confirmed),
        working,
    };
    let dashboard = figures::build(
        &w,
        live,
        &counted,
        GoldRule {
            min_accuracy: rules.gold_min_accuracy,
            min_answers: rules.gold_min_answers,
        },
    );
    lap("figures");
    Ok(dashboard)
}

/// Keeps of `counted` what a supervisor of `scope` may see: their stores'
/// buckets, and the labelers whose pools lie within their stores (a
/// labeler who also works for other stores shows to whoever covers those
/// too). Model calibration is counted across stores, so it shows only to
/// those who cover every store; each store's own calibration is on its
/// policy page.
fn keep_scope(counted: &mut Rollup, scope: &Scope, labelers: &BTreeSet<String>) {
    counted.stores.retain(|k, _| scope.sees(&k.store_id));
    counted.confidence.retain(|k, _| scope.sees(&k.store_id));
    counted
        .labelers
        .retain(|k, _| labelers.contains(&k.labeler_id));
    counted.models.clear();
}

/// Days of audit samples and labels a threshold recommendation looks at.
pub const RECOMMENDATION_DAYS: i64 = 30;

/// The start of the last `days` UTC days, today included: the window of
/// the confidence bins a store's page and API show, and of the
/// recommendation, so the bins the API returns reproduce it.
pub fn days_window_start(now: i64, days: i64) -> i64 {
    bucket(now, DAY) - (days - 1) * DAY
}

/// The routing-threshold recommendation for a store with `policy`, from
/// its last [`RECOMMENDATION_DAYS`] days of resolved events (today
/// included), for an auto-accept error under `target_error` (at 95 %
/// confidence).
pub async fn recommendation(
    db: &Db,
    store_id: &str,
    now: i64,
    policy: &RoutingPolicy,
    target_error: f64,
) -> Result<Recommendation> {
    let since = days_window_start(now, RECOMMENDATION_DAYS);
    let bins = confidence_bins(db, store_id, since, now).await?;
    Ok(recommend::recommend(
        &bins,
        policy,
        target_error,
        recommend::DEFAULT_Z,
    ))
}

/// Resolved events of a store per top-confidence bin, from the start of the
/// UTC day of `since` to `now`: the non-empty bins, lowest first.
pub async fn confidence_bins(
    db: &Db,
    store_id: &str,
    since: i64,
    now: i64,
) -> Result<Vec<ConfidenceBin>> {
    let from = bucket(since, DAY);
    let mut tx = db.begin_snapshot().await?;
    let watermark = rollup::watermark(&mut tx).await?;
    let mut counted = Rollup {
        confidence: rollup::read_confidence(&mut tx, store_id, from, i64::MAX).await?,
        ..Rollup::default()
    };
    let tail_from = watermark.max(from);
    if tail_from <= now {
        let mut tail = Rollup::default();
        rollup::collect_events_resolved(&mut tx, tail_from, now + 1, &mut tail).await?;
        tail.confidence.retain(|k, _| k.store_id == store_id);
        counted.merge(&tail);
    }
    tx.commit().await?;
    let mut bins: BTreeMap<i64, ConfidenceBin> = BTreeMap::new();
    for (k, b) in &counted.confidence {
        merge_confidence(
            bins.entry(k.bin).or_insert_with(|| ConfidenceBin {
                bin: k.bin,
                ..ConfidenceBin::default()
            }),
            b,
        );
    }
    Ok(bins.into_values().collect())
}

/// A store's calibration for the model version of its latest event, with
/// that version (`None`: events that named none).
pub async fn latest_calibration(
    db: &Db,
    store: &crate::db::stores::Store,
    now: i64,
) -> Result<(Option<String>, crate::domain::calibration::Calibration)> {
    let mut conn = db.reader().acquire().await?;
    let model = crate::db::calibration::latest_model(&mut conn, &store.id).await?;
    let fitted =
        crate::review::ingest::calibration_of(&mut conn, store, model.as_deref(), now).await?;
    Ok((model, fitted))
}
