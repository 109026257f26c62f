//! Clip and footage uploads, camera-window cuts, and the clips of a task as
//! it is opened and as its clips settle.
//!
//! An upload is stored in an order no crash can break: its rows are
//! recorded as `uploading` first, then its blobs are written under keys
//! derived from them, then one transaction makes the rows usable and queues
//! their processing. A failure removes what was stored; what a crash leaves
//! behind, [`sweep_uploads`] removes. Here too: the refusal of a clip the
//! store does not have, and the processing and poster jobs a change queues.

use std::path::Path;

use futures::StreamExt;

use crate::db::clips::{self, Owner, Processed};
use crate::db::{jobs, new_id, Db, Tx};
use crate::domain::event::CameraWindow;
use crate::domain::job::{MakePosters, ProcessClip};
use crate::domain::lifecycle::{self, ClipStatus as ClipState, PosterStatus};
use crate::error::{Code, Error, Result};
use crate::storage::Blobs;

/// Records a clip whose source blob is already stored and queues its
/// processing. Uploads go through [`store_clips`] instead, which never
/// leaves a blob without its row.
pub async fn create(
    db: &Db,
    clip_id: &str,
    store_id: &str,
    camera_id: &str,
    started_at: Option<i64>,
    size_bytes: i64,
    now: i64,
) -> Result<()> {
    let mut tx = db.begin().await?;
    clips::insert(
        &mut tx, clip_id, store_id, camera_id, started_at, size_bytes, now,
    )
    .await?;
    let job = ProcessClip {
        clip_id: clip_id.to_string(),
    };
    jobs::enqueue(&mut tx, &job, Some(store_id), now, now).await?;
    tx.commit().await?;
    Ok(())
}

/// How long an upload may take to store its blob. A row still `uploading`
/// after that, and a blob older than that without a row, are left over
/// from a crash: [`sweep_uploads`] removes them.
pub const UPLOAD_GRACE_MS: i64 = 15 * 60 * 1000;

/// A probed file to store as the source of a new clip.
#[derive(Debug, Clone, Copy)]
pub struct NewClip<'a> {
    /// Clip id.
    pub id: &'a str,
    /// The camera.
    pub camera_id: &'a str,
    /// First frame's wall-clock time, epoch ms.
    pub started_at: Option<i64>,
    /// The local file.
    pub path: &'a Path,
}

/// A probed file to store as a recording of one camera.
#[derive(Debug, Clone, Copy)]
pub struct NewFootage<'a> {
    /// Footage id.
    pub id: &'a str,
    /// The camera.
    pub camera_id: &'a str,
    /// First frame, epoch ms.
    pub started_at: i64,
    /// End of the last frame, epoch ms.
    pub ended_at: i64,
    /// The local file.
    pub path: &'a Path,
}

/// A row recorded as `uploading` and the blob it will own.
struct Reserved<'a> {
    id: &'a str,
    key: String,
    path: &'a Path,
}

/// Stores probed files as new clips, all or none, in an order no crash can
/// break: the rows are recorded as `uploading` first, then the blobs are
/// written under keys derived from them, then one transaction makes every
/// clip `processing` and queues its processing. A failure removes what was
/// stored; a crash leaves `uploading` rows that [`sweep_uploads`] removes
/// with their blobs. Once this returns `Ok`, every clip is accepted.
pub async fn store_clips(
    db: &Db,
    blobs: &Blobs,
    store_id: &str,
    clips: &[NewClip<'_>],
    now: i64,
) -> Result<()> {
    let reserved: Vec<Reserved> = clips
        .iter()
        .map(|c| Reserved {
            id: c.id,
            key: clips::blob_key(store_id, c.id, "source"),
            path: c.path,
        })
        .collect();
    let mut tx = db.begin().await?;
    for (c, r) in clips.iter().zip(&reserved) {
        clips::insert_uploading(
            &mut tx,
            c.id,
            store_id,
            c.camera_id,
            c.started_at,
            &r.key,
            now,
        )
        .await?;
    }
    tx.commit().await?;
    store_reserved(db, blobs, Owner::Clip, store_id, &reserved, now).await
}

/// Stores a probed recording the way [`store_clips`] stores clips: the row
/// as `uploading`, the blob, then the row `ready`, when events may cut it.
pub async fn store_footage(
    db: &Db,
    blobs: &Blobs,
    store_id: &str,
    footage: &NewFootage<'_>,
    now: i64,
) -> Result<()> {
    let key = clips::footage_key(store_id, footage.id);
    clips::insert_footage_uploading(
        db,
        footage.id,
        store_id,
        footage.camera_id,
        footage.started_at,
        footage.ended_at,
        &key,
        now,
    )
    .await?;
    let reserved = [Reserved {
        id: footage.id,
        key,
        path: footage.path,
    }];
    store_reserved(db, blobs, Owner::Footage, store_id, &reserved, now).await
}

/// Writes the blobs of reserved rows and commits the rows; on any failure
/// removes them all and fails.
async fn store_reserved(
    db: &Db,
    blobs: &Blobs,
    owner: Owner,
    store_id: &str,
    reserved: &[Reserved<'_>],
    now: i64,
) -> Result<()> {
    let mut sizes = Vec::with_capacity(reserved.len());
    for r in reserved {
        match blobs.put_file(&r.key, r.path).await {
            Ok(size) => sizes.push(size),
            Err(e) => {
                abandon(db, blobs, owner, reserved).await;
                return Err(e.into());
            }
        }
    }
    if let Err(e) = commit(db, owner, store_id, reserved, &sizes, now).await {
        abandon(db, blobs, owner, reserved).await;
        return Err(e);
    }
    Ok(())
}

/// Makes reserved rows usable, in one transaction: a clip `processing` with
/// its job queued, a recording `ready`. Fails when a row is no longer
/// `uploading` (the sweep took it for abandoned): the upload is then refused,
/// never half accepted.
async fn commit(
    db: &Db,
    owner: Owner,
    store_id: &str,
    reserved: &[Reserved<'_>],
    sizes: &[u64],
    now: i64,
) -> Result<()> {
    let mut tx = db.begin().await?;
    for (r, size) in reserved.iter().zip(sizes) {
        if !clips::commit_upload(&mut tx, owner, r.id, *size, now).await? {
            return Err(anyhow::anyhow!(
                "the upload of {} {} was swept as abandoned before it was stored",
                owner.table(),
                r.id
            )
            .into());
        }
        if owner == Owner::Clip {
            let job = ProcessClip {
                clip_id: r.id.to_string(),
            };
            jobs::enqueue(&mut tx, &job, Some(store_id), now, now).await?;
        }
    }
    tx.commit().await?;
    Ok(())
}

/// Removes reserved uploads that will not be committed. What cannot be
/// removed now is left to [`sweep_uploads`].
async fn abandon(db: &Db, blobs: &Blobs, owner: Owner, reserved: &[Reserved<'_>]) {
    for r in reserved {
        if let Err(e) = remove_upload(db, blobs, owner, r.id, &r.key).await {
            tracing::warn!(id = r.id, error = %format!("{e:#}"),
                "could not remove an abandoned upload; the startup sweep will");
        }
    }
}

/// Deletes an upload's row if it is still `uploading`, then its blob if no
/// row is left: a row committed meanwhile keeps its blob. True when the
/// row was removed here.
async fn remove_upload(db: &Db, blobs: &Blobs, owner: Owner, id: &str, key: &str) -> Result<bool> {
    let removed = clips::delete_uploading(db, owner, id).await?;
    if !clips::exists(db, owner, id).await? && !key.is_empty() {
        blobs.delete(key).await?;
    }
    Ok(removed)
}

/// What [`sweep_uploads`] removed.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Swept {
    /// Rows left `uploading` (with their blobs).
    pub rows: u64,
    /// Blobs that no row owns.
    pub blobs: u64,
}

/// Removes what crashed uploads left behind, for clips and recordings
/// alike: rows still `uploading` that were recorded before `stale_before`
/// (with their blobs), and source or artifact blobs whose clip or recording
/// has no row, last written before `stale_before`. Rows and blobs younger
/// than that may belong to an upload in progress, here or on another
/// instance, and are left alone. Anything accepted has its row out of
/// `uploading`, so it is never touched.
pub async fn sweep_uploads(db: &Db, blobs: &Blobs, stale_before: i64) -> Result<Swept> {
    let mut swept = Swept::default();
    for owner in Owner::ALL {
        for (id, key) in clips::stale_uploads(db, owner, stale_before).await? {
            if remove_upload(db, blobs, owner, &id, &key).await? {
                swept.rows += 1;
            }
        }
        // Blobs by the id their key names: `<table>/<store>/<id>/<name>`.
        let mut listed = blobs.list(owner.table());
        let mut batch: Vec<(String, String)> = Vec::new();
        while let Some((key, modified)) = listed.next().await.transpose()? {
            let id = key.split('/').nth(2).unwrap_or_default().to_string();
            if modified < stale_before && !id.is_empty() {
                batch.push((id, key));
            }
            if batch.len() >= 500 {
                swept.blobs += delete_unowned(db, blobs, owner, &batch).await?;
                batch.clear();
            }
        }
        if !batch.is_empty() {
            swept.blobs += delete_unowned(db, blobs, owner, &batch).await?;
        }
    }
    Ok(swept)
}

/// Deletes the blobs of `(id, key)` pairs whose id has no row.
async fn delete_unowned(
    db: &Db,
    blobs: &Blobs,
    owner: Owner,
    batch: &[(String, String)],
) -> Result<u64> {
    let ids: Vec<&str> = batch.iter().map(|(id, _)| id.as_str()).collect();
    let owned = clips::existing(db, owner, &ids).await?;
    let mut deleted = 0;
    for (id, key) in batch {
        if !owned.contains(id) {
            blobs.delete(key).await?;
            deleted += 1;
        }
    }
    Ok(deleted)
}

/// Creates the clip of one camera window inside the ingest transaction: a
/// cut of the latest recording that covers the whole window, queued for
/// processing, or a failed clip with `footage-gap` when none covers it.
pub async fn cut_window(
    tx: &mut Tx,
    store_id: &str,
    window: &CameraWindow,
    now: i64,
) -> Result<String> {
    let footage = clips::covering_footage(tx, store_id, window).await?;
    let clip_id = new_id();
    match footage {
        Some(f) => {
            clips::insert_cut(tx, &clip_id, store_id, window, &f, now).await?;
            let job = ProcessClip {
                clip_id: clip_id.clone(),
            };
            jobs::enqueue(tx, &job, Some(store_id), now, now).await?;
        }
        None => clips::insert_gap(tx, &clip_id, store_id, window, now).await?,
    }
    Ok(clip_id)
}

/// Attaches an event's clips to its review task, inside the ingest
/// transaction. Each clip row is locked so a clip finishing processing at
/// the same moment either sees this task or is seen as ready here.
pub async fn attach_to_task(
    tx: &mut Tx,
    store_id: &str,
    task_id: &str,
    clip_ids: &[String],
    occurred_at: i64,
    now: i64,
) -> Result<Vec<PosterStatus>> {
    let mut posters = Vec::with_capacity(clip_ids.len());
    let mut needs_posters = false;
    for (position, clip_id) in clip_ids.iter().enumerate() {
        let clip = clips::lock_of_store(tx, store_id, clip_id)
            .await?
            .ok_or_else(|| unknown_clip(clip_id))?;
        let poster_status = lifecycle::poster_for(clip.status);
        posters.push(poster_status);
        needs_posters |= clip.status == ClipState::Ready;
        let offset = clip.started_at.map(|s| occurred_at - s);
        clips::insert_task_clip(tx, task_id, clip_id, position as i64, offset, poster_status)
            .await?;
    }
    if needs_posters {
        let job = MakePosters {
            task_id: task_id.to_string(),
        };
        jobs::enqueue(tx, &job, Some(store_id), now, now).await?;
    }
    Ok(posters)
}

/// Checks that every clip id belongs to the store.
pub async fn check_owned(tx: &mut Tx, store_id: &str, clip_ids: &[String]) -> Result<()> {
    for clip_id in clip_ids {
        if !clips::of_store(tx, store_id, clip_id).await? {
            return Err(unknown_clip(clip_id));
        }
    }
    Ok(())
}

fn unknown_clip(clip_id: &str) -> Error {
    Error::new(
        Code::UnknownClipInEvent,
        format!("no clip {clip_id:?} of this store"),
    )
}

/// Marks a clip processed (or failed) and queues the posters of every task
/// waiting for it; tasks that waited only for a failed clip become ready.
pub async fn settle(
    db: &Db,
    clip_id: &str,
    outcome: Result<Processed, (String, String)>,
    now: i64,
) -> Result<()> {
    let mut tx = db.begin().await?;
    match &outcome {
        Ok(p) => clips::mark_processed(&mut tx, clip_id, p, now).await?,
        Err((code, message)) => clips::mark_failed(&mut tx, clip_id, code, message, now).await?,
    }
    let tasks = clips::tasks_showing(&mut tx, clip_id).await?;
    let store_id = clips::store_of(&mut tx, clip_id).await?;
    for task_id in &tasks {
        if outcome.is_ok() {
            let job = MakePosters {
                task_id: task_id.clone(),
            };
            jobs::enqueue(&mut tx, &job, store_id.as_deref(), now, now).await?;
        } else {
            clips::release_if_settled(&mut tx, task_id, now).await?;
        }
    }
    tx.commit().await?;
    Ok(())
}

/// Records a task clip's poster (`None`: it could not be made) and releases
/// the task when nothing else is pending.
pub async fn poster_done(
    db: &Db,
    task_id: &str,
    clip_id: &str,
    key: Option<&str>,
    now: i64,
) -> Result<()> {
    let mut tx = db.begin().await?;
    clips::set_poster(&mut tx, task_id, clip_id, key).await?;
    clips::release_if_settled(&mut tx, task_id, now).await?;
    tx.commit().await?;
    Ok(())
}
