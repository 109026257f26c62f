//! `recount simulate --replay`: a store's past events through routing
//! policies ([`crate::sim::replay`]), with the store's calibration and
//! review cost as its ingest would use them now.

use std::collections::HashMap;

use serde::Serialize;

use crate::db::{calibration as stored_calibration, history, products, stores, Db};
use crate::domain::charge::{LaborCost, Priced};
use crate::domain::event::CandidateInput;
use crate::domain::Action;
use crate::sim::policy::{SimPolicy, Tune};
use crate::sim::replay::{self, Found, Past, Replayed, Settled};

/// What a replay shows.
#[derive(Debug, Clone, Serialize)]
pub struct ReplayReport {
    /// The store.
    pub store_id: String,
    /// Range start (epoch ms, inclusive).
    pub from: i64,
    /// Range end (epoch ms, exclusive).
    pub to: i64,
    /// Events replayed.
    pub events: u64,
    /// Events left out because a candidate is no longer in the catalog.
    pub skipped: u64,
    /// The audit rate the estimate weighs audit samples by (the store's).
    pub audit_rate: f64,
    /// One outcome per policy, in the order given.
    pub policies: Vec<Replayed>,
}

/// Why a replay did not run.
#[derive(Debug, thiserror::Error)]
pub enum ReplayError {
    /// What was asked for cannot be replayed: the reason, for the person
    /// who asked.
    #[error("{0}")]
    Refused(String),
    /// Reading the history failed.
    #[error(transparent)]
    Failed(#[from] anyhow::Error),
}

impl From<crate::db::Error> for ReplayError {
    fn from(e: crate::db::Error) -> ReplayError {
        ReplayError::Failed(e.into())
    }
}

impl From<crate::error::Error> for ReplayError {
    fn from(e: crate::error::Error) -> ReplayError {
        ReplayError::Failed(e.into())
    }
}

impl From<sqlx::Error> for ReplayError {
    fn from(e: sqlx::Error) -> ReplayError {
        ReplayError::Failed(e.into())
    }
}

/// Replays the store's events of `[from, to)` under `policies` (the
/// store's own first, as `current`). Refused, with the reason, for an
/// unknown store, a range the wrong way round, a policy tuned on a
/// simulated day, or a range without events.
pub async fn replay(
    db: &Db,
    store_id: &str,
    from: i64,
    to: i64,
    policies: &[SimPolicy],
    labor: LaborCost,
    now: i64,
) -> Result<ReplayReport, ReplayError> {
    let refuse = |m: String| Err(ReplayError::Refused(m));
    if from >= to {
        return refuse("the range must start before it ends".into());
    }
    if let Some(p) = policies.iter().find(|p| p.tune != Tune::Nothing) {
        return refuse(format!(
            "policy {:?} is tuned on a simulated day; a replay takes fixed policies",
            p.name
        ));
    }
    let mut conn = db.reader().acquire().await?;
    let Some(store) = stores::get(&mut conn, store_id).await? else {
        return refuse(format!("no store {store_id:?}"));
    };
    let rows = history::past_events(&mut conn, store_id, from, to).await?;
    if rows.is_empty() {
        return refuse(format!(
            "store {store_id:?} has no events between {} and {}",
            crate::domain::time::format_rfc3339_ms(from),
            crate::domain::time::format_rfc3339_ms(to)
        ));
    }
    let prices: HashMap<String, i64> = products::list(db, store_id)
        .await?
        .into_iter()
        .map(|p| (p.sku, p.price_cents))
        .collect();
    let model = stored_calibration::latest_model(&mut conn, store_id).await?;
    let calibration =
        super::ingest::calibration_of(&mut conn, &store, model.as_deref(), now).await?;
    let review_cost = super::ingest::review_cost_of(&mut conn, &store, labor).await?;

    let mut past = Vec::with_capacity(rows.len());
    let mut skipped = 0;
    for row in &rows {
        match past_of(row, &prices) {
            Some(p) => past.push(p),
            None => skipped += 1,
        }
    }
    let mut all = vec![crate::sim::whatif::current(&store.policy)];
    all.extend(policies.iter().cloned());
    let audit_rate = store.policy.audit_rate;
    Ok(ReplayReport {
        store_id: store.id,
        from,
        to,
        events: past.len() as u64,
        skipped,
        audit_rate,
        policies: replay::replay(&past, &all, audit_rate, &calibration, review_cost),
    })
}

/// A stored event as replay needs it; `None` when a candidate or the
/// labelled product has no price in today's catalog.
fn past_of(row: &history::PastRow, prices: &HashMap<String, i64>) -> Option<Past> {
    let candidates: Vec<CandidateInput> = serde_json::from_str(&row.candidates).ok()?;
    let priced = candidates
        .iter()
        .map(|c| {
            prices.get(&c.sku).map(|&p| Priced {
                confidence: c.confidence,
                unit_price_cents: p,
            })
        })
        .collect::<Option<Vec<_>>>()?;
    let settled = if row.reviewed {
        Settled::Reviewed
    } else if row.audited {
        Settled::Audited
    } else {
        Settled::Accepted
    };
    // People settled it; an audit sample carries the model's answer until
    // its audit ends (`resolved_at` is set then).
    let labelled = settled != Settled::Accepted && row.resolved_at.is_some();
    let label = match (
        labelled,
        row.final_action.as_deref().and_then(Action::parse),
    ) {
        (true, Some(Action::None)) => Some(Found {
            action: Action::None,
            quantity: 0,
            unit_price_cents: 0,
        }),
        (true, Some(action)) => Some(Found {
            action,
            quantity: row.final_quantity.unwrap_or(0),
            unit_price_cents: *prices.get(row.final_sku.as_deref()?)?,
        }),
        _ => None,
    };
    Some(Past {
        candidates: priced,
        action: Action::parse(&row.kind)?,
        quantity: row.quantity,
        settled,
        label,
    })
}
