//! Clips: uploaded video, its processing state and artifacts, and the clips
//! each review task shows.

use std::path::Path;

use futures::StreamExt;
use serde::Serialize;
use sqlx::{AnyConnection, Row};
use utoipa::ToSchema;

use super::{jobs, new_id, placeholders, Db, Tx};
use crate::domain::job::{MakePosters, ProcessClip};
use crate::domain::lifecycle::{
    self, ClipStatus as ClipState, FootageStatus, PosterStatus, TaskStatus,
};
use crate::domain::time::format_rfc3339_ms;
use crate::error::{Code, Error, Result};
use crate::storage::Blobs;

/// A clip's state as stores and labelers see it.
#[derive(Debug, Clone, PartialEq, Serialize, ToSchema)]
pub struct ClipStatus {
    /// Clip id.
    pub clip_id: String,
    /// The camera that recorded it.
    pub camera_id: String,
    /// `processing`, `ready` or `failed`.
    pub status: String,
    /// Why processing failed.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub error: Option<ClipError>,
    /// Length of the processed clip.
    pub duration_ms: Option<i64>,
    /// Displayed width.
    pub width: Option<i64>,
    /// Displayed height.
    pub height: Option<i64>,
    /// Wall-clock time of the first frame (RFC 3339), when the store sent it.
    pub started_at: Option<String>,
}

/// A stored processing error.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, ToSchema)]
pub struct ClipError {
    /// Stable code, e.g. `corrupt-video`.
    pub code: String,
    /// Explanation.
    pub message: String,
}

/// The stored row of a clip.
#[derive(Debug, Clone)]
pub struct ClipRow {
    /// Clip id.
    pub id: String,
    /// Owning store.
    pub store_id: String,
    /// Camera.
    pub camera_id: String,
    /// `processing`, `ready`, `failed`.
    pub status: String,
    /// First frame's wall-clock time, epoch ms.
    pub started_at: Option<i64>,
    /// Key of the uploaded original.
    pub source_key: Option<String>,
    /// Key of the browser MP4.
    pub video_key: Option<String>,
    /// Key of the filmstrip sprite.
    pub filmstrip_key: Option<String>,
    /// Filmstrip layout and times (JSON).
    pub filmstrip: Option<String>,
    /// Processed duration.
    pub duration_ms: Option<i64>,
    /// Displayed width.
    pub width: Option<i64>,
    /// Displayed height.
    pub height: Option<i64>,
    /// Failure code.
    pub error_code: Option<String>,
    /// Failure message.
    pub error_message: Option<String>,
    /// For a cut of footage: the recording.
    pub footage_id: Option<String>,
    /// For a cut of footage: the window, ms from the recording's start.
    pub window: Option<(i64, i64)>,
    /// Cut within one frame of the window (re-encode).
    pub frame_accurate: bool,
}

const COLUMNS: &str = "id, store_id, camera_id, status, started_at, source_key, video_key, \
     filmstrip_key, filmstrip, duration_ms, width, height, error_code, error_message, \
     footage_id, window_from, window_to, frame_accurate";

fn from_row(r: &sqlx::any::AnyRow) -> Result<ClipRow, sqlx::Error> {
    Ok(ClipRow {
        id: r.try_get("id")?,
        store_id: r.try_get("store_id")?,
        camera_id: r.try_get("camera_id")?,
        status: r.try_get("status")?,
        started_at: r.try_get("started_at")?,
        source_key: r.try_get("source_key")?,
        video_key: r.try_get("video_key")?,
        filmstrip_key: r.try_get("filmstrip_key")?,
        filmstrip: r.try_get("filmstrip")?,
        duration_ms: r.try_get("duration_ms")?,
        width: r.try_get("width")?,
        height: r.try_get("height")?,
        error_code: r.try_get("error_code")?,
        error_message: r.try_get("error_message")?,
        footage_id: r.try_get("footage_id")?,
        window: match (r.try_get("window_from")?, r.try_get("window_to")?) {
            (Some(from), Some(to)) => Some((from, to)),
            _ => None,
        },
        frame_accurate: r.try_get::<i64, _>("frame_accurate")? != 0,
    })
}

impl ClipRow {
    /// The public view.
    pub fn status(&self) -> ClipStatus {
        ClipStatus {
            clip_id: self.id.clone(),
            camera_id: self.camera_id.clone(),
            status: self.status.clone(),
            error: self.error_code.as_ref().map(|code| ClipError {
                code: code.clone(),
                message: self.error_message.clone().unwrap_or_default(),
            }),
            duration_ms: self.duration_ms,
            width: self.width,
            height: self.height,
            started_at: self.started_at.map(format_rfc3339_ms),
        }
    }
}

/// Blob key of a clip's artifact.
pub fn blob_key(store_id: &str, clip_id: &str, artifact: &str) -> String {
    format!("clips/{store_id}/{clip_id}/{artifact}")
}

/// Blob key of a recording's source.
pub fn footage_key(store_id: &str, footage_id: &str) -> String {
    format!("footage/{store_id}/{footage_id}/source")
}

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
    sqlx::query(&format!(
        "INSERT INTO clips (id, store_id, camera_id, status, started_at, source_key, size_bytes, \
         created_at, updated_at) VALUES ($1, $2, $3, '{}', $4, $5, $6, $7, $7)",
        ClipState::Processing
    ))
    .bind(clip_id)
    .bind(store_id)
    .bind(camera_id)
    .bind(started_at)
    .bind(blob_key(store_id, clip_id, "source"))
    .bind(size_bytes)
    .bind(now)
    .execute(&mut *tx)
    .await?;
    let job = ProcessClip {
        clip_id: clip_id.to_string(),
    };
    jobs::enqueue(&mut tx, &job, now, now).await?;
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

/// The two tables whose rows own an uploaded source blob; each is also the
/// first segment of its blob keys (`clips/<store>/<id>/…`,
/// `footage/<store>/<id>/source`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Owner {
    Clip,
    Footage,
}

impl Owner {
    const ALL: [Owner; 2] = [Owner::Clip, Owner::Footage];

    fn table(self) -> &'static str {
        match self {
            Owner::Clip => "clips",
            Owner::Footage => "footage",
        }
    }

    /// The column value of a row whose bytes are still arriving.
    fn uploading(self) -> &'static str {
        match self {
            Owner::Clip => ClipState::Uploading.as_str(),
            Owner::Footage => FootageStatus::Uploading.as_str(),
        }
    }
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
            key: blob_key(store_id, c.id, "source"),
            path: c.path,
        })
        .collect();
    let mut tx = db.begin().await?;
    for (c, r) in clips.iter().zip(&reserved) {
        sqlx::query(&format!(
            "INSERT INTO clips (id, store_id, camera_id, status, started_at, source_key, \
             created_at, updated_at) VALUES ($1, $2, $3, '{}', $4, $5, $6, $6)",
            ClipState::Uploading
        ))
        .bind(c.id)
        .bind(store_id)
        .bind(c.camera_id)
        .bind(c.started_at)
        .bind(&r.key)
        .bind(now)
        .execute(&mut *tx)
        .await?;
    }
    tx.commit().await?;
    store_reserved(db, blobs, Owner::Clip, &reserved, now).await
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
    let key = footage_key(store_id, footage.id);
    sqlx::query(&format!(
        "INSERT INTO footage (id, store_id, camera_id, started_at, ended_at, size_bytes, \
         source_key, created_at, status) VALUES ($1, $2, $3, $4, $5, 0, $6, $7, '{}')",
        FootageStatus::Uploading
    ))
    .bind(footage.id)
    .bind(store_id)
    .bind(footage.camera_id)
    .bind(footage.started_at)
    .bind(footage.ended_at)
    .bind(&key)
    .bind(now)
    .execute(db.writer())
    .await?;
    let reserved = [Reserved {
        id: footage.id,
        key,
        path: footage.path,
    }];
    store_reserved(db, blobs, Owner::Footage, &reserved, now).await
}

/// Writes the blobs of reserved rows and commits the rows; on any failure
/// removes them all and fails.
async fn store_reserved(
    db: &Db,
    blobs: &Blobs,
    owner: Owner,
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
    if let Err(e) = commit(db, owner, reserved, &sizes, now).await {
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
    reserved: &[Reserved<'_>],
    sizes: &[u64],
    now: i64,
) -> Result<()> {
    let mut tx = db.begin().await?;
    let clip_sql = format!(
        "UPDATE clips SET status = '{}', size_bytes = $1, updated_at = $2 \
         WHERE id = $3 AND status = '{}'",
        ClipState::Processing,
        ClipState::Uploading
    );
    let footage_sql = format!(
        "UPDATE footage SET status = '{}', size_bytes = $1 WHERE id = $2 AND status = '{}'",
        FootageStatus::Ready,
        FootageStatus::Uploading
    );
    for (r, size) in reserved.iter().zip(sizes) {
        let updated = match owner {
            Owner::Clip => sqlx::query(&clip_sql)
                .bind(*size as i64)
                .bind(now)
                .bind(r.id),
            Owner::Footage => sqlx::query(&footage_sql).bind(*size as i64).bind(r.id),
        }
        .execute(&mut *tx)
        .await?
        .rows_affected();
        if updated != 1 {
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
            jobs::enqueue(&mut tx, &job, now, now).await?;
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
    let table = owner.table();
    let removed = sqlx::query(&format!(
        "DELETE FROM {table} WHERE id = $1 AND status = '{}'",
        owner.uploading()
    ))
    .bind(id)
    .execute(db.writer())
    .await?
    .rows_affected();
    let left: Option<String> = sqlx::query_scalar(&format!("SELECT id FROM {table} WHERE id = $1"))
        .bind(id)
        .fetch_optional(db.writer())
        .await?;
    if left.is_none() && !key.is_empty() {
        blobs.delete(key).await?;
    }
    Ok(removed == 1)
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
        let table = owner.table();
        let stuck = sqlx::query(&format!(
            "SELECT id, source_key FROM {table} WHERE status = '{}' AND created_at < $1",
            owner.uploading()
        ))
        .bind(stale_before)
        .fetch_all(db.reader())
        .await?;
        for row in stuck {
            let id: String = row.try_get("id")?;
            let key: Option<String> = row.try_get("source_key")?;
            let key = key.unwrap_or_default();
            if remove_upload(db, blobs, owner, &id, &key).await? {
                swept.rows += 1;
            }
        }
        // Blobs by the id their key names: `<table>/<store>/<id>/<name>`.
        let mut listed = blobs.list(table);
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
    let sql = format!(
        "SELECT id FROM {} WHERE id IN ({})",
        owner.table(),
        placeholders(1, batch.len())
    );
    let mut query = sqlx::query_scalar::<_, String>(&sql);
    for (id, _) in batch {
        query = query.bind(id);
    }
    let owned: std::collections::HashSet<String> =
        query.fetch_all(db.reader()).await?.into_iter().collect();
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
    window: &crate::domain::event::CameraWindow,
    now: i64,
) -> Result<String> {
    let footage = sqlx::query(&format!(
        "SELECT id, started_at, source_key FROM footage WHERE store_id = $1 AND camera_id = $2 \
         AND started_at <= $3 AND ended_at >= $4 AND status = '{}' \
         ORDER BY started_at DESC LIMIT 1",
        FootageStatus::Ready
    ))
    .bind(store_id)
    .bind(&window.camera_id)
    .bind(window.from)
    .bind(window.to)
    .fetch_optional(&mut **tx)
    .await?;
    let clip_id = new_id();
    match footage {
        Some(f) => {
            let footage_start: i64 = f.try_get("started_at")?;
            sqlx::query(&format!(
                "INSERT INTO clips (id, store_id, camera_id, status, started_at, source_key, footage_id, \
                 window_from, window_to, frame_accurate, created_at, updated_at) \
                 VALUES ($1, $2, $3, '{}', $4, $5, $6, $7, $8, $9, $10, $10)",
                ClipState::Processing
            ))
            .bind(&clip_id)
            .bind(store_id)
            .bind(&window.camera_id)
            .bind(window.from)
            .bind(f.try_get::<String, _>("source_key")?)
            .bind(f.try_get::<String, _>("id")?)
            .bind(window.from - footage_start)
            .bind(window.to - footage_start)
            .bind(super::flag(window.frame_accurate))
            .bind(now)
            .execute(&mut **tx)
            .await?;
            let job = ProcessClip {
                clip_id: clip_id.clone(),
            };
            jobs::enqueue(tx, &job, now, now).await?;
        }
        None => {
            sqlx::query(&format!(
                "INSERT INTO clips (id, store_id, camera_id, status, started_at, error_code, error_message, \
                 created_at, updated_at) VALUES ($1, $2, $3, '{}', $4, 'footage-gap', $5, $6, $6)",
                ClipState::Failed
            ))
            .bind(&clip_id)
            .bind(store_id)
            .bind(&window.camera_id)
            .bind(window.from)
            .bind(format!(
                "no footage of camera {:?} covers {} to {}",
                window.camera_id,
                format_rfc3339_ms(window.from),
                format_rfc3339_ms(window.to)
            ))
            .bind(now)
            .execute(&mut **tx)
            .await?;
        }
    }
    Ok(clip_id)
}

/// A clip by id; one still `uploading` does not exist yet.
pub async fn get(conn: &mut AnyConnection, clip_id: &str) -> Result<Option<ClipRow>> {
    let row = sqlx::query(&format!(
        "SELECT {COLUMNS} FROM clips WHERE id = $1 AND status <> '{}'",
        ClipState::Uploading
    ))
    .bind(clip_id)
    .fetch_optional(conn)
    .await?;
    Ok(row.as_ref().map(from_row).transpose()?)
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
        let row = sqlx::query(&format!(
            "SELECT status, started_at FROM clips WHERE id = $1 AND store_id = $2 \
             AND status <> '{}'{}",
            ClipState::Uploading,
            tx.backend().for_update()
        ))
        .bind(clip_id)
        .bind(store_id)
        .fetch_optional(&mut **tx)
        .await?
        .ok_or_else(|| unknown_clip(clip_id))?;
        let status = super::state(&row.try_get::<String, _>("status")?, ClipState::parse)?;
        let started_at: Option<i64> = row.try_get("started_at")?;
        let poster_status = lifecycle::poster_for(status);
        posters.push(poster_status);
        needs_posters |= status == ClipState::Ready;
        sqlx::query(
            "INSERT INTO task_clips (task_id, clip_id, position, event_offset_ms, poster_status) \
             VALUES ($1, $2, $3, $4, $5)",
        )
        .bind(task_id)
        .bind(clip_id)
        .bind(position as i64)
        .bind(started_at.map(|s| occurred_at - s))
        .bind(poster_status.as_str())
        .execute(&mut **tx)
        .await?;
    }
    if needs_posters {
        let job = MakePosters {
            task_id: task_id.to_string(),
        };
        jobs::enqueue(tx, &job, now, now).await?;
    }
    Ok(posters)
}

/// Checks that every clip id belongs to the store.
pub async fn check_owned(tx: &mut Tx, store_id: &str, clip_ids: &[String]) -> Result<()> {
    for clip_id in clip_ids {
        let found: Option<String> = sqlx::query_scalar(&format!(
            "SELECT id FROM clips WHERE id = $1 AND store_id = $2 AND status <> '{}'",
            ClipState::Uploading
        ))
        .bind(clip_id)
        .bind(store_id)
        .fetch_optional(&mut **tx)
        .await?;
        if found.is_none() {
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

/// Artifacts of a processed clip.
#[derive(Debug, Clone)]
pub struct Processed {
    /// Wall-clock time of the first frame, when known: a cut of footage
    /// starts at the keyframe before its window.
    pub started_at: Option<i64>,
    /// Key of the browser MP4.
    pub video_key: String,
    /// Key of the filmstrip sprite.
    pub filmstrip_key: String,
    /// Filmstrip layout (JSON).
    pub filmstrip: String,
    /// Duration.
    pub duration_ms: i64,
    /// Width.
    pub width: i64,
    /// Height.
    pub height: i64,
    /// Frames per second (the average over the clip), for frame stepping.
    pub frame_rate: Option<f64>,
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
        Ok(p) => {
            if let Some(started_at) = p.started_at {
                // Event offsets were counted from the window's start; the cut
                // begins at the keyframe before it.
                sqlx::query(
                    "UPDATE task_clips SET event_offset_ms = event_offset_ms + \
                     (SELECT started_at FROM clips WHERE id = $1) - $2 WHERE clip_id = $1",
                )
                .bind(clip_id)
                .bind(started_at)
                .execute(&mut *tx)
                .await?;
                sqlx::query("UPDATE clips SET started_at = $1 WHERE id = $2")
                    .bind(started_at)
                    .bind(clip_id)
                    .execute(&mut *tx)
                    .await?;
            }
            sqlx::query(&format!(
                "UPDATE clips SET status = '{}', video_key = $1, filmstrip_key = $2, filmstrip = $3, \
                 duration_ms = $4, width = $5, height = $6, updated_at = $7, frame_rate = NULLIF($9, -1.0) \
                 WHERE id = $8",
                lifecycle::clip_processed(true)
            ))
            .bind(&p.video_key)
            .bind(&p.filmstrip_key)
            .bind(&p.filmstrip)
            .bind(p.duration_ms)
            .bind(p.width)
            .bind(p.height)
            .bind(now)
            .bind(clip_id)
            .bind(super::non_negative_or_null(p.frame_rate))
            .execute(&mut *tx)
            .await?;
        }
        Err((code, message)) => {
            sqlx::query(&format!(
                "UPDATE clips SET status = '{}', error_code = $1, error_message = $2, updated_at = $3 \
                 WHERE id = $4",
                lifecycle::clip_processed(false)
            ))
            .bind(code)
            .bind(message)
            .bind(now)
            .bind(clip_id)
            .execute(&mut *tx)
            .await?;
            sqlx::query(&format!(
                "UPDATE task_clips SET poster_status = '{}' WHERE clip_id = $1",
                lifecycle::poster_for(ClipState::Failed)
            ))
            .bind(clip_id)
            .execute(&mut *tx)
            .await?;
        }
    }
    let tasks: Vec<String> =
        sqlx::query_scalar("SELECT task_id FROM task_clips WHERE clip_id = $1")
            .bind(clip_id)
            .fetch_all(&mut *tx)
            .await?;
    for task_id in &tasks {
        if outcome.is_ok() {
            let job = MakePosters {
                task_id: task_id.clone(),
            };
            jobs::enqueue(&mut tx, &job, now, now).await?;
        } else {
            release_if_settled(&mut tx, task_id, now).await?;
        }
    }
    tx.commit().await?;
    Ok(())
}

/// A task whose every clip has its poster (or failed) becomes claimable
/// ([`lifecycle::clips_settled`], as the update's condition).
pub async fn release_if_settled(tx: &mut Tx, task_id: &str, now: i64) -> Result<()> {
    sqlx::query(&format!(
        "UPDATE review_tasks SET status = '{ready}', updated_at = $1 WHERE id = $2 AND status = '{waiting}' \
         AND NOT EXISTS (SELECT 1 FROM task_clips WHERE task_id = $2 AND poster_status = '{pending}')",
        ready = TaskStatus::Ready,
        waiting = TaskStatus::Waiting,
        pending = PosterStatus::Pending
    ))
    .bind(now)
    .bind(task_id)
    .execute(&mut **tx)
    .await?;
    Ok(())
}

/// A task's clip still needing a poster.
#[derive(Debug, Clone)]
pub struct PendingPoster {
    /// The clip.
    pub clip: ClipRow,
    /// Where the event is in the clip; `None` when the clip's start is unknown.
    pub event_offset_ms: Option<i64>,
}

/// The task's clips that are processed but have no poster yet.
pub async fn pending_posters(db: &Db, task_id: &str) -> Result<Vec<PendingPoster>> {
    let rows = sqlx::query(&format!(
        "SELECT {}, tc.event_offset_ms FROM task_clips tc JOIN clips c ON c.id = tc.clip_id \
         WHERE tc.task_id = $1 AND tc.poster_status = '{}' AND c.status = '{}'",
        COLUMNS
            .split(", ")
            .map(|c| format!("c.{c}"))
            .collect::<Vec<_>>()
            .join(", "),
        PosterStatus::Pending,
        ClipState::Ready
    ))
    .bind(task_id)
    .fetch_all(db.reader())
    .await?;
    rows.iter()
        .map(|r| {
            Ok(PendingPoster {
                clip: from_row(r)?,
                event_offset_ms: r.try_get("event_offset_ms")?,
            })
        })
        .collect::<Result<_, sqlx::Error>>()
        .map_err(Error::from)
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
    sqlx::query(
        "UPDATE task_clips SET poster_key = $1, poster_status = $2 WHERE task_id = $3 AND clip_id = $4",
    )
    .bind(key)
    .bind(if key.is_some() { PosterStatus::Ready } else { PosterStatus::Failed }.as_str())
    .bind(task_id)
    .bind(clip_id)
    .execute(&mut *tx)
    .await?;
    release_if_settled(&mut tx, task_id, now).await?;
    tx.commit().await?;
    Ok(())
}

/// One clip of a task as the console needs it.
#[derive(Debug, Clone, PartialEq, Serialize, ToSchema)]
pub struct TaskClip {
    /// Clip id.
    pub clip_id: String,
    /// The camera.
    pub camera_id: String,
    /// `ready` or `failed` (`processing` only while the task waits).
    pub status: String,
    /// Why the clip cannot be shown.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub error: Option<ClipError>,
    /// The browser MP4 (byte ranges supported).
    pub video_url: Option<String>,
    /// The frame at the event instant.
    pub poster_url: Option<String>,
    /// The filmstrip sprite.
    pub filmstrip_url: Option<String>,
    /// Layout and times of the filmstrip tiles.
    #[schema(value_type = Option<Object>)]
    pub filmstrip: Option<serde_json::Value>,
    /// Where the event happens in the clip.
    pub event_offset_ms: Option<i64>,
    /// Length of the clip.
    pub duration_ms: Option<i64>,
    /// Width.
    pub width: Option<i64>,
    /// Height.
    pub height: Option<i64>,
    /// Frames per second, for stepping frame by frame.
    pub frame_rate: Option<f64>,
}

/// The clips of a task in the order the event listed them.
pub async fn for_task(conn: &mut AnyConnection, task_id: &str) -> Result<Vec<TaskClip>> {
    let rows = sqlx::query(
        "SELECT c.id, c.camera_id, c.status, c.error_code, c.error_message, c.duration_ms, c.width, \
         c.height, c.frame_rate, c.filmstrip, tc.event_offset_ms, tc.poster_key FROM task_clips tc \
         JOIN clips c ON c.id = tc.clip_id WHERE tc.task_id = $1 ORDER BY tc.position",
    )
    .bind(task_id)
    .fetch_all(conn)
    .await?;
    let mut out = Vec::with_capacity(rows.len());
    for r in rows {
        let id: String = r.try_get("id")?;
        let status: String = r.try_get("status")?;
        let ready = ClipState::parse(&status) == Some(ClipState::Ready);
        let duration_ms: Option<i64> = r.try_get("duration_ms")?;
        let offset: Option<i64> = r.try_get("event_offset_ms")?;
        let filmstrip: Option<String> = r.try_get("filmstrip")?;
        let error_code: Option<String> = r.try_get("error_code")?;
        out.push(TaskClip {
            video_url: ready.then(|| format!("/api/v1/clips/{id}/video")),
            filmstrip_url: ready.then(|| format!("/api/v1/clips/{id}/filmstrip")),
            poster_url: r
                .try_get::<Option<String>, _>("poster_key")?
                .map(|_| format!("/api/v1/tasks/{task_id}/clips/{id}/poster")),
            filmstrip: filmstrip.and_then(|f| serde_json::from_str(&f).ok()),
            event_offset_ms: offset.or(duration_ms.map(|d| d / 2)),
            error: error_code.map(|code| ClipError {
                code,
                message: r
                    .try_get::<Option<String>, _>("error_message")
                    .ok()
                    .flatten()
                    .unwrap_or_default(),
            }),
            camera_id: r.try_get("camera_id")?,
            duration_ms,
            width: r.try_get("width")?,
            height: r.try_get("height")?,
            frame_rate: r.try_get("frame_rate")?,
            clip_id: id,
            status,
        });
    }
    Ok(out)
}

/// Whether a user holds a live lease on a task that shows the clip: on any
/// such task, or on `task_id` when given.
pub async fn leased_to(
    db: &Db,
    clip_id: &str,
    user_id: &str,
    task_id: Option<&str>,
    now: i64,
) -> Result<bool> {
    let sql = format!(
        "SELECT t.id FROM task_clips tc JOIN review_tasks t ON t.id = tc.task_id WHERE tc.clip_id = $1 \
         AND t.status = '{}' AND t.leased_by = $2 AND t.lease_expires_at > $3{} LIMIT 1",
        TaskStatus::Leased,
        if task_id.is_some() { " AND t.id = $4" } else { "" }
    );
    let mut query = sqlx::query_scalar(&sql)
        .bind(clip_id)
        .bind(user_id)
        .bind(now);
    if let Some(task_id) = task_id {
        query = query.bind(task_id);
    }
    let found: Option<String> = query.fetch_optional(db.reader()).await?;
    Ok(found.is_some())
}

/// The poster key of a task's clip.
pub async fn poster_key(db: &Db, task_id: &str, clip_id: &str) -> Result<Option<String>> {
    Ok(
        sqlx::query_scalar("SELECT poster_key FROM task_clips WHERE task_id = $1 AND clip_id = $2")
            .bind(task_id)
            .bind(clip_id)
            .fetch_optional(db.reader())
            .await?
            .flatten(),
    )
}

/// Records that someone looked at a clip's artifact.
pub async fn record_view(
    db: &Db,
    clip_id: &str,
    artifact: &str,
    viewer_kind: &str,
    viewer_id: &str,
    now: i64,
) -> Result<()> {
    sqlx::query(
        "INSERT INTO clip_views (id, clip_id, artifact, viewer_kind, viewer_id, viewed_at) \
         VALUES ($1, $2, $3, $4, $5, $6)",
    )
    .bind(new_id())
    .bind(clip_id)
    .bind(artifact)
    .bind(viewer_kind)
    .bind(viewer_id)
    .bind(now)
    .execute(db.writer())
    .await?;
    Ok(())
}
