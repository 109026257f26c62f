//! Video retention and a shopper's erasure.
//!
//! Each deletion happens in two steps. First the rows are marked erased,
//! with their audit row, in one transaction: from then on no one is shown
//! the video and no export includes it. Then the blobs are deleted and
//! each row forgets its keys. A crash (or a blob store that fails) between
//! the two leaves marked rows that still name their blobs; every later
//! retention run, and every erasure, deletes those first. So each video is
//! deleted, its deletion recorded once, whatever fails on the way.

use serde::Serialize;
use serde_json::json;

use crate::db::retention::{self as rows, Leftover};
use crate::db::{audit, Db};
use crate::domain::audit::{Action, Actor};
use crate::domain::retention::cutoff;
use crate::error::{Code, Error, Result};
use crate::storage::Blobs;

/// Rows marked in one transaction at most.
const BATCH: i64 = 500;

/// Blobs of erased rows deleted (or that could not be, yet).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize)]
pub struct Deleted {
    /// Blobs deleted.
    pub blobs: u64,
    /// Blobs whose deletion failed; the next run retries them.
    pub failed: u64,
}

/// Deletes the blobs of every erased row that still names some, and makes
/// the rows forget them.
pub async fn finish_leftovers(db: &Db, blobs: &Blobs) -> Result<Deleted> {
    let mut done = Deleted::default();
    loop {
        let mut conn = db.writer().acquire().await?;
        let batch = rows::leftovers(&mut conn, BATCH).await?;
        drop(conn);
        let mut progressed = false;
        let mut failed = 0;
        for (_, leftover) in &batch {
            let keys: Vec<&str> = match leftover {
                Leftover::Clip { keys, .. } => keys.iter().map(String::as_str).collect(),
                Leftover::Poster { key, .. } | Leftover::Footage { key, .. } => vec![key],
            };
            let mut ok = true;
            for key in keys {
                match blobs.delete(key).await {
                    Ok(()) => done.blobs += 1,
                    Err(e) => {
                        ok = false;
                        tracing::warn!(key, error = %format!("{e:#}"), "deleting erased media failed; retried by the next run");
                    }
                }
            }
            if ok {
                let mut conn = db.writer().acquire().await?;
                rows::forget(&mut conn, leftover).await?;
                progressed = true;
            } else {
                failed += 1;
            }
        }
        // Done when nothing is left, or when nothing that is left could be
        // deleted this round (the blob store fails): the next run retries.
        if !progressed {
            done.failed = failed;
            return Ok(done);
        }
    }
}

/// What a shopper's erasure did.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Erasure {
    /// Clips of the session erased now (each with its MP4, filmstrip and
    /// posters).
    pub clips: u64,
    /// Camera recordings they were cut from, erased now.
    pub footage: u64,
    /// Blobs deleted.
    pub blobs_deleted: u64,
    /// Blobs whose deletion failed: the daily retention run deletes them.
    pub blobs_pending: u64,
    /// Exports made before that may hold copies (their files are not
    /// touched; delete them to remove the copies).
    pub exports: Vec<String>,
}

/// Erases the video of a shopper's session at once: the clips that show it
/// and the recordings they were cut from (clips still to be cut from those
/// then fail as `footage-gap`). Labels and the receipt stay. `404
/// unknown-session` for a session the store never sent.
pub async fn erase_session(
    db: &Db,
    blobs: &Blobs,
    store: &crate::db::stores::Store,
    session_id: &str,
    now: i64,
) -> Result<Erasure> {
    let mut tx = db.begin().await?;
    if !crate::db::events::session_exists(&mut tx, &store.id, session_id).await? {
        return Err(Error::new(
            Code::UnknownSession,
            format!("no session {session_id:?}"),
        ));
    }
    let (clips, footage) = rows::session_media(&mut tx, &store.id, session_id).await?;
    let marked_clips = rows::mark_clips(&mut tx, &clips, now).await?;
    let marked_footage = rows::mark_footage(&mut tx, &footage, now).await?;
    let exports = rows::exports_with_copies(&mut tx, &store.id, 0).await?;
    if marked_clips + marked_footage > 0 {
        let entry = audit::Entry {
            actor: &store.actor(),
            action: Action::MediaErased,
            store_id: Some(&store.id),
            subject: Some(session_id),
            detail: json!({
                "clips": clips,
                "footage": footage,
                "exports_with_copies": exports,
            }),
        };
        audit::record(&mut tx, now, &entry).await?;
    }
    tx.commit().await?;
    if marked_clips + marked_footage > 0 {
        crate::metrics::media_erased("request", marked_clips, marked_footage);
    }
    let deleted = finish_leftovers(db, blobs).await?;
    Ok(Erasure {
        clips: marked_clips,
        footage: marked_footage,
        blobs_deleted: deleted.blobs,
        blobs_pending: deleted.failed,
        exports,
    })
}

/// What one store's retention removed in a run.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct StoreExpiry {
    /// Store id.
    pub store_id: String,
    /// Clips erased.
    pub clips: u64,
    /// Recordings erased.
    pub footage: u64,
}

/// What a retention run did.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct Report {
    /// Per store with anything erased.
    pub stores: Vec<StoreExpiry>,
    /// Blobs deleted (this run's and those earlier runs left).
    pub deleted: Deleted,
    /// Audit rows past `audit_retention_days` deleted.
    pub audit_rows_purged: u64,
}

/// One retention run at `now`: first the blobs earlier runs or erasures
/// left, then each store's video past its retention (receipts final before
/// `now` minus its days), then audit rows older than `audit_retention_days`
/// (0: none).
pub async fn run(db: &Db, blobs: &Blobs, now: i64, audit_retention_days: i64) -> Result<Report> {
    let earlier = finish_leftovers(db, blobs).await?;
    let stores = mark_expired(db, now).await?;
    let now_deleted = finish_leftovers(db, blobs).await?;
    let audit_rows_purged = if audit_retention_days > 0 {
        audit::purge_before(db, cutoff(now, audit_retention_days)).await?
    } else {
        0
    };
    Ok(Report {
        stores,
        deleted: Deleted {
            blobs: earlier.blobs + now_deleted.blobs,
            failed: now_deleted.failed,
        },
        audit_rows_purged,
    })
}

/// The first step of a run: marks each store's video past its retention
/// erased, with an audit row per transaction; what it marked, per store.
/// Its blobs are deleted by [`finish_leftovers`].
pub async fn mark_expired(db: &Db, now: i64) -> Result<Vec<StoreExpiry>> {
    let mut marked = Vec::new();
    let mut conn = db.reader().acquire().await?;
    let stores = rows::store_retention(&mut conn).await?;
    drop(conn);
    let job = Actor::system("retention");
    for (store_id, days) in stores {
        let before = cutoff(now, days);
        let mut expiry = StoreExpiry {
            store_id: store_id.clone(),
            clips: 0,
            footage: 0,
        };
        loop {
            let mut tx = db.begin().await?;
            let clips = rows::expired_clips(&mut tx, &store_id, before, BATCH).await?;
            let marked_clips = rows::mark_clips(&mut tx, &clips, now).await?;
            // Recordings go once every clip cut from them has.
            let footage = rows::expired_footage(&mut tx, &store_id, before, BATCH).await?;
            let marked_footage = rows::mark_footage(&mut tx, &footage, now).await?;
            if marked_clips + marked_footage == 0 {
                break;
            }
            let exports = rows::exports_with_copies(&mut tx, &store_id, 0).await?;
            let entry = audit::Entry {
                actor: &job,
                action: Action::MediaExpired,
                store_id: Some(&store_id),
                subject: None,
                detail: json!({
                    "retention_days": days,
                    "receipts_final_before": crate::domain::time::format_rfc3339_ms(before),
                    "clips": clips,
                    "footage": footage,
                    "exports_with_copies": exports,
                }),
            };
            audit::record(&mut tx, now, &entry).await?;
            tx.commit().await?;
            crate::metrics::media_erased("retention", marked_clips, marked_footage);
            expiry.clips += marked_clips;
            expiry.footage += marked_footage;
        }
        if expiry.clips + expiry.footage > 0 {
            marked.push(expiry);
        }
    }
    Ok(marked)
}
