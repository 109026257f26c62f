//! Session exit and receipts: finalized exactly once, announced by webhook.

use crate::db::stores::Store;
use crate::db::{jobs, receipts, Db, Tx};
use crate::domain::job::DeliverReceipt;
use crate::domain::lifecycle::{self, Exit, SessionRefused};
use crate::domain::receipt::{self, Receipt};
use crate::error::{Code, Error, Result};
use crate::review::locks;

/// Records the shopper's exit; finalizes the receipt when nothing is in review.
pub async fn exit(
    db: &Db,
    store: &Store,
    session_id: &str,
    exited_at: i64,
    now: i64,
) -> Result<Receipt> {
    let mut tx = db.begin().await?;
    let mut finalized = Finalized::default();
    let recorded = locks::session(&mut tx, &store.id, session_id, now)
        .await?
        .exited_at;
    match lifecycle::exit(recorded, exited_at) {
        Ok(Exit::AlreadyRecorded) => {}
        Err(refusal) => return Err(session_refused(refusal, session_id)),
        Ok(Exit::Leaves) => {
            // The shopper is gone: the receipt deadline is now known exactly.
            let deadline = lifecycle::deadline_after_exit(&store.policy, exited_at);
            receipts::record_exit(&mut tx, &store.id, session_id, exited_at, deadline).await?;
            finalized = try_finalize(&mut tx, store, session_id, now).await?;
        }
    }
    let receipt = receipts::read(&mut tx, &store.id, session_id).await?;
    tx.commit().await?;
    finalized.record();
    receipt.ok_or_else(|| anyhow::anyhow!("session vanished during exit").into())
}

/// The error answer for a refused change to session `session_id`.
pub fn session_refused(r: SessionRefused, session_id: &str) -> Error {
    match r {
        SessionRefused::AlreadyExited => Error::new(
            Code::SessionAlreadyExited,
            format!("session {session_id:?} already exited at another time"),
        ),
        SessionRefused::SessionFinalized => Error::new(
            Code::SessionFinalized,
            format!("the receipt of session {session_id:?} is already final"),
        ),
    }
}

/// Whether a transaction finalized a receipt, to be recorded once it commits.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
#[must_use = "record() it after the transaction commits"]
pub struct Finalized(Option<i64>);

impl Finalized {
    /// Records the receipt latency metric; call after commit.
    pub fn record(self) {
        if let Some(latency_ms) = self.0 {
            crate::metrics::receipt_finalized(latency_ms);
        }
    }
}

/// Finalizes the receipt if the session has exited and nothing is in review;
/// exactly once, whoever calls it ([`receipts::mark_finalized`] is a
/// conditional update). Queues the receipt webhook when the store has one.
pub async fn try_finalize(
    tx: &mut Tx,
    store: &Store,
    session_id: &str,
    now: i64,
) -> Result<Finalized> {
    let Some(exited_at) = receipts::mark_finalized(tx, &store.id, session_id).await? else {
        return Ok(Finalized(None));
    };
    let settled = receipts::settled_events(tx, &store.id, session_id, None).await?;
    let (lines, total_cents) = receipt::compute(&settled);
    let row = receipts::FinalReceipt {
        store_id: &store.id,
        session_id,
        lines: &lines,
        total_cents,
        exited_at,
        finalized_at: now,
    };
    receipts::insert(tx, &row).await?;
    if store.webhook_url.is_some() {
        let job = DeliverReceipt {
            store_id: store.id.clone(),
            session_id: session_id.to_string(),
        };
        jobs::enqueue(tx, &job, now, now).await?;
    }
    Ok(Finalized(Some(now - exited_at)))
}
