//! Session exit and receipts: finalized exactly once, announced by webhook.

use crate::db::stores::Store;
use crate::db::{jobs, receipts, Db, Tx};
use crate::domain::job::DeliverReceipt;
use crate::domain::lifecycle::{self, Exit, SessionRefused};
use crate::domain::receipt::{self, Cause, Receipt};
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
    write_final(tx, store, session_id, exited_at, now).await
}

/// Writes the final receipt of a session its caller has just marked
/// finalized (exactly once: the mark is a conditional update), and queues
/// its webhook when the store has one.
pub async fn write_final(
    tx: &mut Tx,
    store: &Store,
    session_id: &str,
    exited_at: i64,
    now: i64,
) -> Result<Finalized> {
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
    announce(tx, store, session_id, 1, now).await?;
    Ok(Finalized(Some(now - exited_at)))
}

/// Queues the webhook of receipt `version` in the transaction that made it
/// (the outbox): it goes out once the change commits, and never without it.
async fn announce(
    tx: &mut Tx,
    store: &Store,
    session_id: &str,
    version: i64,
    now: i64,
) -> Result<()> {
    if store.webhook_url.is_some() {
        let job = DeliverReceipt {
            store_id: store.id.clone(),
            session_id: session_id.to_string(),
            version: Some(version),
        };
        jobs::enqueue(tx, &job, Some(&store.id), now, now).await?;
    }
    Ok(())
}

/// Whether a transaction adjusted a final receipt, to be recorded once it
/// commits.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
#[must_use = "record() it after the transaction commits"]
pub struct Adjusted(Option<(Cause, i64)>);

impl Adjusted {
    /// The receipt version the adjustment made.
    pub fn version(self) -> Option<i64> {
        self.0.map(|(_, v)| v)
    }

    /// Counts the adjustment by cause; call after commit.
    pub fn record(self) {
        if let Some((cause, _)) = self.0 {
            crate::metrics::receipt_adjusted(cause.as_str());
        }
    }
}

/// Brings a final receipt in line with its session's settled events after
/// human evidence changed one of them: when the lines differ from the
/// current version, stores the next version with what changed and queues
/// its `receipt.adjusted` webhook, all in `tx`, so an adjustment and its
/// delivery commit together or not at all (exactly once across crashes).
/// Nothing happens to a receipt that is not final yet: it will be computed
/// from the corrected events when it is. Called under the session's lock.
pub async fn adjust(
    tx: &mut Tx,
    store: &Store,
    session_id: &str,
    cause: Cause,
    cause_id: &str,
    now: i64,
) -> Result<Adjusted> {
    let Some((version, before)) = receipts::current(tx, &store.id, session_id).await? else {
        return Ok(Adjusted(None));
    };
    let settled = receipts::settled_events(tx, &store.id, session_id, None).await?;
    let (lines, total_cents) = receipt::compute(&settled);
    let changes = receipt::changes(&before, &lines);
    if changes.is_empty() {
        return Ok(Adjusted(None));
    }
    let next = version + 1;
    let row = receipts::NewVersion {
        store_id: &store.id,
        session_id,
        version: next,
        lines: &lines,
        total_cents,
        cause,
        cause_id,
        changes: &changes,
        now,
    };
    receipts::add_version(tx, &row).await?;
    announce(tx, store, session_id, next, now).await?;
    Ok(Adjusted(Some((cause, next))))
}
