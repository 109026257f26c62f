//! The dashboard's rollups: reading facts from the raw tables, and keeping
//! their summaries (`domain::rollup`) in the `rollup_*` tables up to a
//! watermark.
//!
//! [`collect`] turns the raw rows of a time range into buckets. The rollup
//! job (`review::rollup::roll_up`) runs it from the watermark up to `now − LAG_MS` and
//! adds the result to the stored buckets; the dashboard runs the very same
//! function from the watermark to now (the live tail) and adds the result to
//! the buckets it reads. So a fact before the watermark is counted once, by
//! the tables, and a fact after it once, live.

use std::collections::BTreeMap;

use sqlx::{AnyConnection, Row};

use super::bulk::{insert_rows, Val};
use super::rollup_cache::{Settled, SettledSeries};
use super::{Db, Result, Tx};
use crate::domain::dashboard::ConfidenceBin;
use crate::domain::histogram::Histogram;
use crate::domain::lifecycle::RouteName;
use crate::domain::rollup::{
    bucket, model_right, ConfidenceKey, EventCreated, EventResolved, GoldAnswered, LabelerFlow,
    LabelerKey, ModelFlow, ModelKey, ReceiptFinalized, Rollup, StoreFlow, StoreKey, TaskResolved,
    VerdictGiven, DAY, HOUR, LABELER_GRAINS, MINUTE, STORE_GRAINS,
};
use crate::domain::routing::ReviewReason;
use crate::domain::stats::AlphaSums;
use crate::domain::{Action, Label};

/// How far behind now the rollup stays. Timestamps are taken when a request
/// starts, and its transaction commits a little later; with several
/// instances, their clocks differ a little too. A fact committed after the
/// job passed its timestamp would never be counted, so the job leaves the
/// last seconds to the live tail: only a transaction that commits more than
/// `LAG_MS` after its timestamp (or a clock that far behind) can be missed.
pub const LAG_MS: i64 = 5_000;

/// Longest span rolled up in one transaction: catching up on a month of
/// history takes many short transactions, so SQLite's single writer is never
/// held for long. Steps end on hour boundaries.
pub const STEP_MS: i64 = HOUR;

/// Minute buckets older than this are deleted; only the last hour reads them.
pub const MINUTE_RETENTION_MS: i64 = 2 * DAY;

/// How far the rollups reach: every fact before it is in the tables.
pub async fn watermark(conn: &mut AnyConnection) -> Result<i64> {
    Ok(
        sqlx::query_scalar("SELECT watermark FROM rollup_state WHERE id = 1")
            .fetch_one(conn)
            .await?,
    )
}

/// Locks the watermark row for the rest of the transaction (a no-op update,
/// which takes the row lock on PostgreSQL and the write lock on SQLite
/// before anything is read) and reads it.
pub async fn lock_watermark(tx: &mut Tx) -> Result<i64> {
    Ok(sqlx::query_scalar(
        "UPDATE rollup_state SET watermark = watermark WHERE id = 1 RETURNING watermark",
    )
    .fetch_one(&mut **tx)
    .await?)
}

/// Moves the watermark to `to`.
pub async fn advance_watermark(tx: &mut Tx, to: i64, now: i64) -> Result<()> {
    sqlx::query("UPDATE rollup_state SET watermark = $1, updated_at = $2 WHERE id = 1")
        .bind(to)
        .bind(now)
        .execute(&mut **tx)
        .await?;
    Ok(())
}

/// Deletes minute buckets that start before `before`.
pub async fn delete_minutes_before(db: &Db, before: i64) -> Result<()> {
    sqlx::query("DELETE FROM rollup_store WHERE grain_ms = $1 AND bucket_start < $2")
        .bind(MINUTE)
        .bind(before)
        .execute(db.writer())
        .await?;
    Ok(())
}

/// The earliest fact timestamp in `[from, to)`, if any.
pub async fn first_fact(conn: &mut AnyConnection, from: i64, to: i64) -> Result<Option<i64>> {
    let mut first: Option<i64> = None;
    for (table, column) in [
        ("events", "created_at"),
        ("events", "resolved_at"),
        ("verdicts", "created_at"),
        ("review_tasks", "resolved_at"),
        ("receipts", "finalized_at"),
        ("gold_answers", "answered_at"),
    ] {
        let t: Option<i64> = sqlx::query_scalar(&format!(
            "SELECT MIN({column}) FROM {table} WHERE {column} >= $1 AND {column} < $2"
        ))
        .bind(from)
        .bind(to)
        .fetch_one(&mut *conn)
        .await?;
        first = match (first, t) {
            (Some(a), Some(b)) => Some(a.min(b)),
            (a, b) => a.or(b),
        };
    }
    Ok(first)
}

/// Every fact with its timestamp in `[from, to)`, counted into buckets.
/// Gold copies of events and gold tasks are left out; gold answers and the
/// verdicts that gave them are labelers' work and count.
pub async fn collect(conn: &mut AnyConnection, from: i64, to: i64) -> Result<Rollup> {
    let mut r = Rollup::default();
    collect_events_created(conn, from, to, &mut r).await?;
    collect_events_resolved(conn, from, to, &mut r).await?;
    collect_verdicts(conn, from, to, &mut r).await?;
    collect_tasks_resolved(conn, from, to, &mut r).await?;
    collect_receipts(conn, from, to, &mut r).await?;
    collect_gold_answers(conn, from, to, &mut r).await?;
    Ok(r)
}

async fn collect_events_created(
    conn: &mut AnyConnection,
    from: i64,
    to: i64,
    r: &mut Rollup,
) -> Result<()> {
    let rows = sqlx::query(&format!(
        "SELECT store_id, created_at, route FROM events \
         WHERE created_at >= $1 AND created_at < $2 AND route NOT IN ({})",
        super::sql_list(&RouteName::MADE)
    ))
    .bind(from)
    .bind(to)
    .fetch_all(conn)
    .await?;
    for row in rows {
        r.event_created(&EventCreated {
            store_id: row.try_get("store_id")?,
            at: row.try_get("created_at")?,
            reviewed: RouteName::parse(&row.try_get::<String, _>("route")?)
                == Some(RouteName::Review),
        });
    }
    Ok(())
}

/// Resolved events in `[from, to)` into their confidence and calibration
/// buckets (also the live tail of [`crate::review::dashboard::confidence_bins`]).
pub async fn collect_events_resolved(
    conn: &mut AnyConnection,
    from: i64,
    to: i64,
    r: &mut Rollup,
) -> Result<()> {
    let rows = sqlx::query(&format!(
        "SELECT store_id, resolved_at, model_version, kind, quantity, top_sku, top_confidence, \
         route, route_reason, final_action, final_sku, final_quantity FROM events \
         WHERE resolved_at >= $1 AND resolved_at < $2 AND route NOT IN ({})",
        super::sql_list(&RouteName::MADE)
    ))
    .bind(from)
    .bind(to)
    .fetch_all(conn)
    .await?;
    for row in rows {
        let label = label(
            row.try_get("final_action")?,
            row.try_get("final_sku")?,
            row.try_get("final_quantity")?,
        )?;
        let kind: String = row.try_get("kind")?;
        let top_sku: Option<String> = row.try_get("top_sku")?;
        r.event_resolved(&EventResolved {
            store_id: row.try_get("store_id")?,
            at: row.try_get("resolved_at")?,
            model_version: row.try_get("model_version")?,
            reviewed: RouteName::parse(&row.try_get::<String, _>("route")?)
                == Some(RouteName::Review),
            reason: row
                .try_get::<Option<String>, _>("route_reason")?
                .as_deref()
                .and_then(ReviewReason::parse),
            top_confidence: row.try_get("top_confidence")?,
            model_right: model_right(&kind, top_sku.as_deref(), row.try_get("quantity")?, &label),
        });
    }
    Ok(())
}

async fn collect_verdicts(
    conn: &mut AnyConnection,
    from: i64,
    to: i64,
    r: &mut Rollup,
) -> Result<()> {
    let rows = sqlx::query(
        "SELECT t.store_id, v.labeler_id, v.created_at, v.handling_ms FROM verdicts v \
         JOIN review_tasks t ON t.id = v.task_id WHERE v.created_at >= $1 AND v.created_at < $2",
    )
    .bind(from)
    .bind(to)
    .fetch_all(conn)
    .await?;
    for row in rows {
        r.verdict_given(&VerdictGiven {
            store_id: row.try_get("store_id")?,
            labeler_id: row.try_get("labeler_id")?,
            at: row.try_get("created_at")?,
            handling_ms: row.try_get("handling_ms")?,
        });
    }
    Ok(())
}

async fn collect_tasks_resolved(
    conn: &mut AnyConnection,
    from: i64,
    to: i64,
    r: &mut Rollup,
) -> Result<()> {
    let rows = sqlx::query(
        "SELECT t.id, t.store_id, t.resolved_at, e.final_action, e.final_sku, e.final_quantity, \
         v.labeler_id, v.action, v.sku, v.quantity, v.cant_tell FROM review_tasks t \
         JOIN events e ON e.id = t.event_pk JOIN verdicts v ON v.task_id = t.id \
         WHERE t.resolved_at >= $1 AND t.resolved_at < $2 AND t.gold_id IS NULL \
         ORDER BY t.id, v.created_at, v.id",
    )
    .bind(from)
    .bind(to)
    .fetch_all(conn)
    .await?;
    let mut current: Option<(String, TaskResolved)> = None;
    for row in rows {
        let id: String = row.try_get("id")?;
        if current.as_ref().is_none_or(|(c, _)| *c != id) {
            if let Some((_, task)) = current.take() {
                r.task_resolved(&task);
            }
            let task = TaskResolved {
                store_id: row.try_get("store_id")?,
                at: row.try_get("resolved_at")?,
                label: label(
                    row.try_get("final_action")?,
                    row.try_get("final_sku")?,
                    row.try_get("final_quantity")?,
                )?,
                verdicts: Vec::new(),
            };
            current = Some((id, task));
        }
        let answer = verdict_answer(&row)?;
        if let Some((_, task)) = current.as_mut() {
            task.verdicts.push((row.try_get("labeler_id")?, answer));
        }
    }
    if let Some((_, task)) = current {
        r.task_resolved(&task);
    }
    Ok(())
}

async fn collect_receipts(
    conn: &mut AnyConnection,
    from: i64,
    to: i64,
    r: &mut Rollup,
) -> Result<()> {
    let rows = sqlx::query(&format!(
        "SELECT r.store_id, r.finalized_at, r.latency_ms, \
         CASE WHEN EXISTS (SELECT 1 FROM events e WHERE e.store_id = r.store_id \
         AND e.session_id = r.session_id AND e.route = '{}') THEN 1 ELSE 0 END AS reviewed \
         FROM receipts r WHERE r.finalized_at >= $1 AND r.finalized_at < $2",
        RouteName::Review
    ))
    .bind(from)
    .bind(to)
    .fetch_all(conn)
    .await?;
    for row in rows {
        r.receipt_finalized(&ReceiptFinalized {
            store_id: row.try_get("store_id")?,
            at: row.try_get("finalized_at")?,
            latency_ms: row.try_get("latency_ms")?,
            reviewed: int(&row, "reviewed")? != 0,
        });
    }
    Ok(())
}

async fn collect_gold_answers(
    conn: &mut AnyConnection,
    from: i64,
    to: i64,
    r: &mut Rollup,
) -> Result<()> {
    let rows = sqlx::query(
        "SELECT labeler_id, answered_at, correct FROM gold_answers \
         WHERE answered_at >= $1 AND answered_at < $2",
    )
    .bind(from)
    .bind(to)
    .fetch_all(conn)
    .await?;
    for row in rows {
        r.gold_answered(&GoldAnswered {
            labeler_id: row.try_get("labeler_id")?,
            at: int(&row, "answered_at")?,
            correct: int(&row, "correct")? != 0,
        });
    }
    Ok(())
}

/// An integer column whatever its width: PostgreSQL answers a literal or an
/// `INTEGER` column as a 32-bit value.
fn int(row: &sqlx::any::AnyRow, column: &str) -> Result<i64> {
    Ok(row
        .try_get::<i64, _>(column)
        .or_else(|_| row.try_get::<i32, _>(column).map(i64::from))?)
}

/// A verdict's answer from its `action`, `sku`, `quantity` and
/// `cant_tell` columns: `None` for "can't tell".
pub(super) fn verdict_answer(row: &sqlx::any::AnyRow) -> Result<Option<Label>> {
    if row.try_get::<i64, _>("cant_tell")? != 0 {
        return Ok(None);
    }
    label(
        row.try_get("action")?,
        row.try_get("sku")?,
        row.try_get("quantity")?,
    )
    .map(Some)
}

/// A stored label (final or a verdict's).
pub(super) fn label(
    action: Option<String>,
    sku: Option<String>,
    quantity: Option<i64>,
) -> Result<Label> {
    let action = action
        .as_deref()
        .and_then(Action::parse)
        .ok_or_else(|| super::Error::Data(format!("stored action {action:?} is unknown")))?;
    Ok(Label::new(action, sku, quantity.unwrap_or(0)))
}

/// The windows of buckets a snapshot reads (`… >= from`, per grain).
#[derive(Debug, Clone, Copy)]
pub struct BucketRanges {
    /// First minute bucket of the store rollup.
    pub store_minutes_from: i64,
    /// First hour bucket of the store rollup.
    pub store_hours_from: i64,
    /// First hour bucket of the labeler rollup.
    pub labeler_hours_from: i64,
    /// First day bucket of the labeler rollup.
    pub labeler_days_from: i64,
    /// First day of the model rollup.
    pub models_from: i64,
}

/// The stored buckets a snapshot needs, as of `watermark` (the snapshot's
/// own): settled buckets from `settled` where it has them, the rest (and
/// whatever it lacks) from the database.
pub async fn read(
    conn: &mut AnyConnection,
    ranges: &BucketRanges,
    watermark: i64,
    settled: &Settled,
) -> Result<Rollup> {
    let at = |grain| bucket(watermark, grain);
    let plan = settled.with(|s| BucketRanges {
        store_minutes_from: s
            .store_minutes
            .read_from(ranges.store_minutes_from, at(MINUTE)),
        store_hours_from: s.store_hours.read_from(ranges.store_hours_from, at(HOUR)),
        labeler_hours_from: s
            .labeler_hours
            .read_from(ranges.labeler_hours_from, at(HOUR)),
        labeler_days_from: s.labeler_days.read_from(ranges.labeler_days_from, at(DAY)),
        models_from: s.models.read_from(ranges.models_from, at(DAY)),
    });
    let fresh = read_from(conn, &plan).await?;
    if let Some(r) = settled.with(|s| windows(s, ranges, &plan, watermark, fresh)) {
        return Ok(r);
    }
    // A concurrent snapshot of a later window moved the kept buckets on:
    // read the whole windows and keep them again.
    let fresh = read_from(conn, ranges).await?;
    settled
        .with(|s| windows(s, ranges, ranges, watermark, fresh))
        .ok_or_else(|| super::Error::Data("settled rollup buckets refused a whole read".into()))
}

/// Every bucket from the given starts on.
async fn read_from(conn: &mut AnyConnection, from: &BucketRanges) -> Result<Rollup> {
    Ok(Rollup {
        stores: {
            let mut m = read_stores(conn, MINUTE, from.store_minutes_from, i64::MAX).await?;
            m.extend(read_stores(conn, HOUR, from.store_hours_from, i64::MAX).await?);
            m
        },
        labelers: {
            let mut m = read_labelers(conn, HOUR, from.labeler_hours_from, i64::MAX).await?;
            m.extend(read_labelers(conn, DAY, from.labeler_days_from, i64::MAX).await?);
            m
        },
        models: read_models(conn, from.models_from, i64::MAX).await?,
        ..Rollup::default()
    })
}

/// The windows' buckets from what is kept and what was just read from
/// `read_from` on; `None` when what is kept falls short (see
/// [`Series::window`]).
fn windows(
    s: &mut SettledSeries,
    ranges: &BucketRanges,
    read_from: &BucketRanges,
    watermark: i64,
    fresh: Rollup,
) -> Option<Rollup> {
    let at = |grain| bucket(watermark, grain);
    let (minutes, hours): (BTreeMap<_, _>, BTreeMap<_, _>) = fresh
        .stores
        .into_iter()
        .partition(|(k, _)| k.grain == MINUTE);
    let (labeler_hours, labeler_days): (BTreeMap<_, _>, BTreeMap<_, _>) = fresh
        .labelers
        .into_iter()
        .partition(|(k, _)| k.grain == HOUR);
    let mut stores = s.store_minutes.window(
        ranges.store_minutes_from,
        read_from.store_minutes_from,
        at(MINUTE),
        minutes,
    )?;
    stores.extend(s.store_hours.window(
        ranges.store_hours_from,
        read_from.store_hours_from,
        at(HOUR),
        hours,
    )?);
    let mut labelers = s.labeler_hours.window(
        ranges.labeler_hours_from,
        read_from.labeler_hours_from,
        at(HOUR),
        labeler_hours,
    )?;
    labelers.extend(s.labeler_days.window(
        ranges.labeler_days_from,
        read_from.labeler_days_from,
        at(DAY),
        labeler_days,
    )?);
    let models = s.models.window(
        ranges.models_from,
        read_from.models_from,
        at(DAY),
        fresh.models,
    )?;
    Some(Rollup {
        stores,
        labelers,
        models,
        ..Rollup::default()
    })
}

fn hist(row: &sqlx::any::AnyRow, column: &str) -> Result<Histogram> {
    let text: String = row.try_get(column)?;
    Histogram::decode(&text)
        .ok_or_else(|| super::Error::Data(format!("unreadable histogram in {column}: {text:?}")))
}

async fn read_stores(
    conn: &mut AnyConnection,
    grain: i64,
    from: i64,
    to: i64,
) -> Result<BTreeMap<StoreKey, StoreFlow>> {
    let rows = sqlx::query(
        "SELECT bucket_start, store_id, events, events_reviewed, verdicts, handling_hist, receipts, \
         receipts_reviewed, latency_hist, alpha_units, alpha_marginals, alpha_pairs FROM rollup_store \
         WHERE grain_ms = $1 AND bucket_start >= $2 AND bucket_start <= $3",
    )
    .bind(grain)
    .bind(from)
    .bind(to)
    .fetch_all(conn)
    .await?;
    let mut out = BTreeMap::new();
    for row in rows {
        let alpha = AlphaSums {
            units: row.try_get::<i64, _>("alpha_units")? as u64,
            marginals: serde_json::from_str(&row.try_get::<String, _>("alpha_marginals")?)?,
            disagreeing_pairs: serde_json::from_str(&row.try_get::<String, _>("alpha_pairs")?)?,
        };
        out.insert(
            StoreKey {
                grain,
                start: row.try_get("bucket_start")?,
                store_id: row.try_get("store_id")?,
            },
            StoreFlow {
                events: row.try_get("events")?,
                events_reviewed: row.try_get("events_reviewed")?,
                verdicts: row.try_get("verdicts")?,
                handling: hist(&row, "handling_hist")?,
                receipts: row.try_get("receipts")?,
                receipts_reviewed: row.try_get("receipts_reviewed")?,
                latency: hist(&row, "latency_hist")?,
                alpha,
            },
        );
    }
    Ok(out)
}

async fn read_labelers(
    conn: &mut AnyConnection,
    grain: i64,
    from: i64,
    to: i64,
) -> Result<BTreeMap<LabelerKey, LabelerFlow>> {
    let rows = sqlx::query(
        "SELECT bucket_start, labeler_id, verdicts, handling_hist, judged, agreed, gold_answers, \
         gold_correct FROM rollup_labeler WHERE grain_ms = $1 AND bucket_start >= $2 AND bucket_start <= $3",
    )
    .bind(grain)
    .bind(from)
    .bind(to)
    .fetch_all(conn)
    .await?;
    let mut out = BTreeMap::new();
    for row in rows {
        out.insert(
            LabelerKey {
                grain,
                start: row.try_get("bucket_start")?,
                labeler_id: row.try_get("labeler_id")?,
            },
            LabelerFlow {
                verdicts: row.try_get("verdicts")?,
                handling: hist(&row, "handling_hist")?,
                judged: row.try_get("judged")?,
                agreed: row.try_get("agreed")?,
                gold_answers: row.try_get("gold_answers")?,
                gold_correct: row.try_get("gold_correct")?,
            },
        );
    }
    Ok(out)
}

async fn read_models(
    conn: &mut AnyConnection,
    from: i64,
    to: i64,
) -> Result<BTreeMap<ModelKey, ModelFlow>> {
    let rows = sqlx::query(
        "SELECT day, model_version, bin, labelled, correct, confidence_micros, audited, audited_wrong \
         FROM rollup_model WHERE day >= $1 AND day <= $2",
    )
    .bind(from)
    .bind(to)
    .fetch_all(conn)
    .await?;
    let mut out = BTreeMap::new();
    for row in rows {
        out.insert(
            ModelKey {
                day: row.try_get("day")?,
                model_version: row.try_get("model_version")?,
                bin: row.try_get("bin")?,
            },
            ModelFlow {
                labelled: row.try_get("labelled")?,
                correct: row.try_get("correct")?,
                confidence_micros: row.try_get("confidence_micros")?,
                audited: row.try_get("audited")?,
                audited_wrong: row.try_get("audited_wrong")?,
            },
        );
    }
    Ok(out)
}

/// The stored confidence buckets of one store from day `from` on.
pub async fn read_confidence(
    conn: &mut AnyConnection,
    store_id: &str,
    from: i64,
    to: i64,
) -> Result<BTreeMap<ConfidenceKey, ConfidenceBin>> {
    let rows = sqlx::query(
        "SELECT day, bin, events, forced, low_confidence, low_confidence_wrong, audited, \
         audited_wrong, auto_accepted FROM rollup_confidence \
         WHERE store_id = $1 AND day >= $2 AND day <= $3",
    )
    .bind(store_id)
    .bind(from)
    .bind(to)
    .fetch_all(conn)
    .await?;
    let mut out = BTreeMap::new();
    for row in rows {
        let bin: i64 = row.try_get("bin")?;
        out.insert(
            ConfidenceKey {
                store_id: store_id.to_string(),
                day: row.try_get("day")?,
                bin,
            },
            ConfidenceBin {
                bin,
                events: row.try_get("events")?,
                forced: row.try_get("forced")?,
                low_confidence: row.try_get("low_confidence")?,
                low_confidence_wrong: row.try_get("low_confidence_wrong")?,
                audited: row.try_get("audited")?,
                audited_wrong: row.try_get("audited_wrong")?,
                auto_accepted: row.try_get("auto_accepted")?,
            },
        );
    }
    Ok(out)
}

/// The range `[min, max]` of `start` among `keys`, if any.
fn span(starts: impl Iterator<Item = i64>) -> Option<(i64, i64)> {
    starts.fold(None, |acc, s| match acc {
        None => Some((s, s)),
        Some((a, b)) => Some((a.min(s), b.max(s))),
    })
}

/// Adds `counted` to the stored buckets: reads the buckets it touches,
/// merges in memory (`domain::rollup`), writes them back. Only the rollup
/// job writes these tables, under the watermark lock.
pub async fn write(conn: &mut AnyConnection, counted: &Rollup) -> Result<()> {
    let mut stores = BTreeMap::new();
    for grain in STORE_GRAINS {
        let keys = counted.stores.keys().filter(|k| k.grain == grain);
        if let Some((from, to)) = span(keys.map(|k| k.start)) {
            stores.extend(read_stores(conn, grain, from, to).await?);
        }
    }
    let mut labelers = BTreeMap::new();
    for grain in LABELER_GRAINS {
        let keys = counted.labelers.keys().filter(|k| k.grain == grain);
        if let Some((from, to)) = span(keys.map(|k| k.start)) {
            labelers.extend(read_labelers(conn, grain, from, to).await?);
        }
    }
    let models = match span(counted.models.keys().map(|k| k.day)) {
        Some((from, to)) => read_models(conn, from, to).await?,
        None => BTreeMap::new(),
    };
    let mut confidence = BTreeMap::new();
    let store_ids: std::collections::BTreeSet<&str> = counted
        .confidence
        .keys()
        .map(|k| k.store_id.as_str())
        .collect();
    for store_id in store_ids {
        let keys = counted.confidence.keys().filter(|k| k.store_id == store_id);
        if let Some((from, to)) = span(keys.map(|k| k.day)) {
            confidence.extend(read_confidence(conn, store_id, from, to).await?);
        }
    }
    let mut stored = Rollup {
        stores,
        labelers,
        models,
        confidence,
    };
    stored.merge(counted);

    let store_rows: Vec<Vec<Val>> = counted
        .stores
        .keys()
        .map(|k| {
            let s = &stored.stores[k];
            vec![
                Val::Int(k.grain),
                Val::Int(k.start),
                Val::Text(k.store_id.clone()),
                Val::Int(s.events),
                Val::Int(s.events_reviewed),
                Val::Int(s.verdicts),
                Val::Text(s.handling.encode()),
                Val::Int(s.receipts),
                Val::Int(s.receipts_reviewed),
                Val::Text(s.latency.encode()),
                Val::Int(s.alpha.units as i64),
                Val::Text(json(&s.alpha.marginals)),
                Val::Text(json(&s.alpha.disagreeing_pairs)),
            ]
        })
        .collect();
    insert_rows(
        conn,
        "INSERT INTO rollup_store (grain_ms, bucket_start, store_id, events, events_reviewed, \
         verdicts, handling_hist, receipts, receipts_reviewed, latency_hist, alpha_units, \
         alpha_marginals, alpha_pairs)",
        &store_rows,
        &upsert(
            "grain_ms, bucket_start, store_id",
            &[
                "events",
                "events_reviewed",
                "verdicts",
                "handling_hist",
                "receipts",
                "receipts_reviewed",
                "latency_hist",
                "alpha_units",
                "alpha_marginals",
                "alpha_pairs",
            ],
        ),
    )
    .await?;

    let labeler_rows: Vec<Vec<Val>> = counted
        .labelers
        .keys()
        .map(|k| {
            let l = &stored.labelers[k];
            vec![
                Val::Int(k.grain),
                Val::Int(k.start),
                Val::Text(k.labeler_id.clone()),
                Val::Int(l.verdicts),
                Val::Text(l.handling.encode()),
                Val::Int(l.judged),
                Val::Int(l.agreed),
                Val::Int(l.gold_answers),
                Val::Int(l.gold_correct),
            ]
        })
        .collect();
    insert_rows(
        conn,
        "INSERT INTO rollup_labeler (grain_ms, bucket_start, labeler_id, verdicts, handling_hist, \
         judged, agreed, gold_answers, gold_correct)",
        &labeler_rows,
        &upsert(
            "grain_ms, bucket_start, labeler_id",
            &[
                "verdicts",
                "handling_hist",
                "judged",
                "agreed",
                "gold_answers",
                "gold_correct",
            ],
        ),
    )
    .await?;

    let model_rows: Vec<Vec<Val>> = counted
        .models
        .keys()
        .map(|k| {
            let m = &stored.models[k];
            vec![
                Val::Int(k.day),
                Val::Text(k.model_version.clone()),
                Val::Int(k.bin),
                Val::Int(m.labelled),
                Val::Int(m.correct),
                Val::Int(m.confidence_micros),
                Val::Int(m.audited),
                Val::Int(m.audited_wrong),
            ]
        })
        .collect();
    insert_rows(
        conn,
        "INSERT INTO rollup_model (day, model_version, bin, labelled, correct, confidence_micros, \
         audited, audited_wrong)",
        &model_rows,
        &upsert(
            "day, model_version, bin",
            &[
                "labelled",
                "correct",
                "confidence_micros",
                "audited",
                "audited_wrong",
            ],
        ),
    )
    .await?;

    let confidence_rows: Vec<Vec<Val>> = counted
        .confidence
        .keys()
        .map(|k| {
            let b = &stored.confidence[k];
            vec![
                Val::Text(k.store_id.clone()),
                Val::Int(k.day),
                Val::Int(k.bin),
                Val::Int(b.events),
                Val::Int(b.forced),
                Val::Int(b.low_confidence),
                Val::Int(b.low_confidence_wrong),
                Val::Int(b.audited),
                Val::Int(b.audited_wrong),
                Val::Int(b.auto_accepted),
            ]
        })
        .collect();
    insert_rows(
        conn,
        "INSERT INTO rollup_confidence (store_id, day, bin, events, forced, low_confidence, \
         low_confidence_wrong, audited, audited_wrong, auto_accepted)",
        &confidence_rows,
        &upsert(
            "store_id, day, bin",
            &[
                "events",
                "forced",
                "low_confidence",
                "low_confidence_wrong",
                "audited",
                "audited_wrong",
                "auto_accepted",
            ],
        ),
    )
    .await?;
    Ok(())
}

/// `ON CONFLICT (key) DO UPDATE SET c = excluded.c, …`: the row written is
/// already the merged bucket.
fn upsert(key: &str, columns: &[&str]) -> String {
    let set = columns
        .iter()
        .map(|c| format!("{c} = excluded.{c}"))
        .collect::<Vec<_>>()
        .join(", ");
    format!("ON CONFLICT ({key}) DO UPDATE SET {set}")
}

fn json<T: serde::Serialize>(value: &T) -> String {
    // Maps of strings and integers always serialize.
    serde_json::to_string(value).unwrap_or_default()
}
