//! Shopper disputes: a store contests a line of a final receipt; one review
//! task re-checks every event behind it, ahead of ordinary work and shown
//! blind; its answer ends the dispute as a receipt adjustment (upheld) or a
//! confirmation.

use crate::db::disputes::{self, DisputeRow};
use crate::db::events::{self, DisputeEvent};
use crate::db::stores::Store;
use crate::db::tasks::{self, NewTask, Resolution, TaskRow};
use crate::db::{new_id, receipts, Db, Tx};
use crate::domain::dispute::{self, DisputeRefused};
use crate::domain::event::CandidateInput;
use crate::domain::lifecycle::{self, DisputeStatus, TaskPurpose, TaskStatus};
use crate::domain::receipt::{self, Cause};
use crate::domain::routing::ReviewReason;
use crate::error::{Code, Error, Result};
use crate::review::receipts::{self as receipt_flow, Adjusted};
use crate::review::{locks, media};

/// Longest reason a store may attach to a dispute.
pub const MAX_REASON_LEN: usize = 2000;

/// A newly opened dispute.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Opened {
    /// The dispute.
    pub dispute_id: String,
    /// Its review task.
    pub task_id: String,
}

fn refused(r: DisputeRefused, session_id: &str, sku: &str) -> Error {
    match r {
        DisputeRefused::ReceiptNotFinal => Error::new(
            Code::ReceiptNotFinal,
            format!("the receipt of session {session_id:?} is not final yet"),
        ),
        DisputeRefused::SkuNotOnReceipt => Error::new(
            Code::SkuNotOnReceipt,
            format!("the receipt of session {session_id:?} has no line for sku {sku:?}"),
        ),
        DisputeRefused::AlreadyOpen => Error::new(
            Code::DisputeOpen,
            format!("a dispute of sku {sku:?} on session {session_id:?} is already open"),
        ),
    }
}

/// Opens a dispute of the line of `sku` on the final receipt of
/// `session_id`: one task showing every clip of the events behind the line.
pub async fn open(
    db: &Db,
    store: &Store,
    session_id: &str,
    sku: &str,
    reason: Option<&str>,
    now: i64,
) -> Result<Opened> {
    if reason.is_some_and(|r| r.chars().count() > MAX_REASON_LEN) {
        return Err(Error::new(
            Code::ReasonTooLong,
            format!("reason must be at most {MAX_REASON_LEN} characters"),
        ));
    }
    let mut tx = db.begin().await?;
    let session = locks::existing_session(&mut tx, &store.id, session_id).await?;
    let lines = receipts::current(&mut tx, &store.id, session_id)
        .await?
        .map(|(_, lines)| lines)
        .unwrap_or_default();
    let quantity = receipt::quantity_of(&lines, sku);
    let open_already = disputes::open_exists(&mut tx, &store.id, session_id, sku).await?;
    dispute::may_open(session.status, quantity, open_already)
        .map_err(|r| refused(r, session_id, sku))?;

    let behind = events::behind_line(&mut tx, &store.id, session_id, sku).await?;
    let mut clip_ids: Vec<String> = Vec::new();
    let mut candidates: Vec<CandidateInput> = Vec::new();
    let mut occurred_at = 0;
    for e in &behind {
        occurred_at = occurred_at.max(e.occurred_at);
        for clip in serde_json::from_str::<Vec<String>>(&e.clips).map_err(crate::db::Error::from)? {
            if !clip_ids.contains(&clip) {
                clip_ids.push(clip);
            }
        }
        let listed: Vec<CandidateInput> =
            serde_json::from_str(&e.candidates).map_err(crate::db::Error::from)?;
        for c in listed {
            if !candidates.iter().any(|k| k.sku == c.sku) {
                candidates.push(c);
            }
        }
    }
    if !candidates.iter().any(|c| c.sku == sku) {
        candidates.push(CandidateInput {
            sku: sku.to_string(),
            confidence: 0.0,
        });
    }

    let dispute_id = new_id();
    let task_id = new_id();
    let event_pk = new_id();
    let candidates_json = serde_json::to_string(&candidates).map_err(crate::db::Error::from)?;
    let clips_json = serde_json::to_string(&clip_ids).map_err(crate::db::Error::from)?;
    events::insert_dispute(
        &mut tx,
        &DisputeEvent {
            pk: &event_pk,
            dispute_id: &dispute_id,
            store_id: &store.id,
            session_id,
            quantity,
            occurred_at,
            candidates: &candidates_json,
            clips: &clips_json,
            sku,
            now,
        },
    )
    .await?;
    let task = NewTask {
        id: &task_id,
        event_pk: &event_pk,
        store_id: &store.id,
        session_id,
        reason: ReviewReason::Dispute.as_str(),
        purpose: TaskPurpose::Dispute,
        // Money goes back on this answer: as many agreeing verdicts as an
        // audit sample needs.
        required_verdicts: store.policy.audit_verdicts,
        status: TaskStatus::Ready,
        deadline_at: now + store.policy.receipt_sla_ms,
        now,
    };
    tasks::insert(&mut tx, &task).await?;
    let posters =
        media::attach_to_task(&mut tx, &store.id, &task_id, &clip_ids, occurred_at, now).await?;
    let status = lifecycle::new_task_status(&posters);
    if status != TaskStatus::Ready {
        tasks::set_status(&mut tx, &task_id, status).await?;
    }
    disputes::insert(
        &mut tx,
        &DisputeRow {
            id: dispute_id.clone(),
            store_id: store.id.clone(),
            session_id: session_id.to_string(),
            sku: sku.to_string(),
            reason: reason.map(str::to_string),
            status: DisputeStatus::Open,
            task_id: task_id.clone(),
            quantity,
            adjusted_version: None,
            opened_at: now,
            closed_at: None,
        },
    )
    .await?;
    tx.commit().await?;
    Ok(Opened {
        dispute_id,
        task_id,
    })
}

/// A store's dispute (`unknown-dispute` for another store's or none).
pub async fn get(db: &Db, store: &Store, dispute_id: &str) -> Result<DisputeRow> {
    let mut conn = db.reader().acquire().await?;
    disputes::get(&mut conn, &store.id, dispute_id)
        .await?
        .ok_or_else(|| {
            Error::new(
                Code::UnknownDispute,
                format!("no dispute {dispute_id:?} in this store"),
            )
        })
}

/// Ends the dispute a resolved task re-checked: the answer is recorded on
/// the dispute's event, its correcting labels ([`dispute::corrections`])
/// are settled beside the session's events, and the receipt is adjusted
/// when they change it (upheld) or left as it is (confirmed). Runs inside
/// the resolution's transaction, under the session's lock.
pub async fn decide(
    tx: &mut Tx,
    store: &Store,
    task: &TaskRow,
    resolution: &Resolution<'_>,
    now: i64,
) -> Result<Adjusted> {
    let d = disputes::of_task(tx, &task.id)
        .await?
        .ok_or_else(|| anyhow::anyhow!("dispute task {} has no dispute", task.id))?;
    let label = resolution.label;
    events::relabel(tx, &task.event_pk, label, resolution.by).await?;
    let lines = receipts::current(tx, &store.id, &d.session_id)
        .await?
        .map(|(_, lines)| lines)
        .unwrap_or_default();
    let quantity = receipt::quantity_of(&lines, &d.sku);
    let occurred_at = tasks::event_occurred_at(tx, &task.event_pk).await?;
    for (i, fix) in dispute::corrections(&d.sku, quantity, label)
        .iter()
        .enumerate()
    {
        let event_id = format!("dispute:{}:{i}", d.id);
        events::insert_correction(
            tx,
            &store.id,
            &d.session_id,
            &event_id,
            fix,
            occurred_at,
            now,
        )
        .await?;
    }
    let adjusted =
        receipt_flow::adjust(tx, store, &d.session_id, Cause::Dispute, &d.id, now).await?;
    let status = match adjusted.version() {
        Some(_) => DisputeStatus::Upheld,
        None => DisputeStatus::Confirmed,
    };
    disputes::close(tx, &d.id, status, adjusted.version(), now).await?;
    Ok(adjusted)
}
