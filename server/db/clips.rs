//! Clips: uploaded video, its processing state and artifacts, and the clips
//! each review task shows.
//!
//! Row I/O only: the upload protocol (blobs first, then rows and jobs), the
//! refusals of unknown clips and the jobs a change queues are
//! [`crate::review::media`]'s.

use std::collections::HashSet;

use sqlx::any::AnyRow;
use sqlx::{AnyConnection, Row};

use super::{placeholders, Db, Result, Tx};
use crate::domain::event::CameraWindow;
use crate::domain::lifecycle::{
    self, ClipStatus as ClipState, FootageStatus, PosterStatus, TaskStatus,
};
use crate::domain::time::format_rfc3339_ms;

/// A stored processing error.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ClipFailure {
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
    /// Its state.
    pub status: ClipState,
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

fn from_row(r: &sqlx::any::AnyRow) -> Result<ClipRow> {
    Ok(ClipRow {
        id: r.try_get("id")?,
        store_id: r.try_get("store_id")?,
        camera_id: r.try_get("camera_id")?,
        status: super::state(&r.try_get::<String, _>("status")?, ClipState::parse)?,
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
    /// The stored processing error, if processing failed.
    pub fn failure(&self) -> Option<ClipFailure> {
        self.error_code.as_ref().map(|code| ClipFailure {
            code: code.clone(),
            message: self.error_message.clone().unwrap_or_default(),
        })
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

/// Records a clip whose source blob is already stored, `processing`.
pub async fn insert(
    tx: &mut Tx,
    clip_id: &str,
    store_id: &str,
    camera_id: &str,
    started_at: Option<i64>,
    size_bytes: i64,
    now: i64,
) -> Result<()> {
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
    .execute(&mut **tx)
    .await?;
    Ok(())
}

/// The two tables whose rows own an uploaded source blob; each is also the
/// first segment of its blob keys (`clips/<store>/<id>/…`,
/// `footage/<store>/<id>/source`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Owner {
    /// `clips`.
    Clip,
    /// `footage`.
    Footage,
}

impl Owner {
    /// Both owners.
    pub const ALL: [Owner; 2] = [Owner::Clip, Owner::Footage];

    /// The table, and the first segment of its blob keys.
    pub fn table(self) -> &'static str {
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

/// Records a clip as `uploading`, its source blob to be written under `key`.
pub async fn insert_uploading(
    tx: &mut Tx,
    clip_id: &str,
    store_id: &str,
    camera_id: &str,
    started_at: Option<i64>,
    key: &str,
    now: i64,
) -> Result<()> {
    sqlx::query(&format!(
        "INSERT INTO clips (id, store_id, camera_id, status, started_at, source_key, \
         created_at, updated_at) VALUES ($1, $2, $3, '{}', $4, $5, $6, $6)",
        ClipState::Uploading
    ))
    .bind(clip_id)
    .bind(store_id)
    .bind(camera_id)
    .bind(started_at)
    .bind(key)
    .bind(now)
    .execute(&mut **tx)
    .await?;
    Ok(())
}

/// Records a recording as `uploading`, its source blob to be written under
/// `key`.
#[allow(clippy::too_many_arguments)]
pub async fn insert_footage_uploading(
    db: &Db,
    footage_id: &str,
    store_id: &str,
    camera_id: &str,
    started_at: i64,
    ended_at: i64,
    key: &str,
    now: i64,
) -> Result<()> {
    sqlx::query(&format!(
        "INSERT INTO footage (id, store_id, camera_id, started_at, ended_at, size_bytes, \
         source_key, created_at, status) VALUES ($1, $2, $3, $4, $5, 0, $6, $7, '{}')",
        FootageStatus::Uploading
    ))
    .bind(footage_id)
    .bind(store_id)
    .bind(camera_id)
    .bind(started_at)
    .bind(ended_at)
    .bind(key)
    .bind(now)
    .execute(db.writer())
    .await?;
    Ok(())
}

/// Makes an `uploading` row usable, its blob of `size` bytes stored: a clip
/// `processing`, a recording `ready`. False when the row is no longer
/// `uploading` (the sweep took it for abandoned).
pub async fn commit_upload(
    tx: &mut Tx,
    owner: Owner,
    id: &str,
    size: u64,
    now: i64,
) -> Result<bool> {
    let updated = match owner {
        Owner::Clip => sqlx::query(&format!(
            "UPDATE clips SET status = '{}', size_bytes = $1, updated_at = $2 \
             WHERE id = $3 AND status = '{}'",
            ClipState::Processing,
            ClipState::Uploading
        ))
        .bind(size as i64)
        .bind(now)
        .bind(id)
        .execute(&mut **tx)
        .await?
        .rows_affected(),
        Owner::Footage => sqlx::query(&format!(
            "UPDATE footage SET status = '{}', size_bytes = $1 WHERE id = $2 AND status = '{}'",
            FootageStatus::Ready,
            FootageStatus::Uploading
        ))
        .bind(size as i64)
        .bind(id)
        .execute(&mut **tx)
        .await?
        .rows_affected(),
    };
    Ok(updated == 1)
}

/// Deletes an upload's row if it is still `uploading`; true when it did.
pub async fn delete_uploading(db: &Db, owner: Owner, id: &str) -> Result<bool> {
    let removed = sqlx::query(&format!(
        "DELETE FROM {} WHERE id = $1 AND status = '{}'",
        owner.table(),
        owner.uploading()
    ))
    .bind(id)
    .execute(db.writer())
    .await?
    .rows_affected();
    Ok(removed == 1)
}

/// Whether a row of `owner` with this id exists, in any state. Read on the
/// writer, so a commit just made is seen.
pub async fn exists(db: &Db, owner: Owner, id: &str) -> Result<bool> {
    let left: Option<String> =
        sqlx::query_scalar(&format!("SELECT id FROM {} WHERE id = $1", owner.table()))
            .bind(id)
            .fetch_optional(db.writer())
            .await?;
    Ok(left.is_some())
}

/// Rows still `uploading` that were recorded before `stale_before`, with
/// their source keys (empty when none was recorded).
pub async fn stale_uploads(
    db: &Db,
    owner: Owner,
    stale_before: i64,
) -> Result<Vec<(String, String)>> {
    let stuck = sqlx::query(&format!(
        "SELECT id, source_key FROM {} WHERE status = '{}' AND created_at < $1",
        owner.table(),
        owner.uploading()
    ))
    .bind(stale_before)
    .fetch_all(db.reader())
    .await?;
    let mut out = Vec::with_capacity(stuck.len());
    for row in stuck {
        let id: String = row.try_get("id")?;
        let key: Option<String> = row.try_get("source_key")?;
        out.push((id, key.unwrap_or_default()));
    }
    Ok(out)
}

/// Of `ids`, those that have a row of `owner`.
pub async fn existing(db: &Db, owner: Owner, ids: &[&str]) -> Result<HashSet<String>> {
    let sql = format!(
        "SELECT id FROM {} WHERE id IN ({})",
        owner.table(),
        placeholders(1, ids.len())
    );
    let mut query = sqlx::query_scalar::<_, String>(&sql);
    for id in ids {
        query = query.bind(*id);
    }
    Ok(query.fetch_all(db.reader()).await?.into_iter().collect())
}

/// A ready recording that covers a camera window.
#[derive(Debug, Clone)]
pub struct Covering {
    /// Footage id.
    pub id: String,
    /// Its first frame, epoch ms.
    pub started_at: i64,
    /// Key of its source blob.
    pub source_key: String,
}

/// The latest ready recording of the window's camera that covers the whole
/// window.
pub async fn covering_footage(
    tx: &mut Tx,
    store_id: &str,
    window: &CameraWindow,
) -> Result<Option<Covering>> {
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
    let Some(f) = footage else {
        return Ok(None);
    };
    Ok(Some(Covering {
        id: f.try_get("id")?,
        started_at: f.try_get("started_at")?,
        source_key: f.try_get("source_key")?,
    }))
}

/// Records the clip of a camera window cut from `footage`, `processing`.
pub async fn insert_cut(
    tx: &mut Tx,
    clip_id: &str,
    store_id: &str,
    window: &CameraWindow,
    footage: &Covering,
    now: i64,
) -> Result<()> {
    let footage_start = footage.started_at;
    sqlx::query(&format!(
        "INSERT INTO clips (id, store_id, camera_id, status, started_at, source_key, footage_id, \
         window_from, window_to, frame_accurate, created_at, updated_at) \
         VALUES ($1, $2, $3, '{}', $4, $5, $6, $7, $8, $9, $10, $10)",
        ClipState::Processing
    ))
    .bind(clip_id)
    .bind(store_id)
    .bind(&window.camera_id)
    .bind(window.from)
    .bind(&footage.source_key)
    .bind(&footage.id)
    .bind(window.from - footage_start)
    .bind(window.to - footage_start)
    .bind(super::flag(window.frame_accurate))
    .bind(now)
    .execute(&mut **tx)
    .await?;
    Ok(())
}

/// Records the clip of a camera window no recording covers: failed with
/// `footage-gap`.
pub async fn insert_gap(
    tx: &mut Tx,
    clip_id: &str,
    store_id: &str,
    window: &CameraWindow,
    now: i64,
) -> Result<()> {
    sqlx::query(&format!(
        "INSERT INTO clips (id, store_id, camera_id, status, started_at, error_code, error_message, \
         created_at, updated_at) VALUES ($1, $2, $3, '{}', $4, 'footage-gap', $5, $6, $6)",
        ClipState::Failed
    ))
    .bind(clip_id)
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
    Ok(())
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
    row.as_ref().map(from_row).transpose()
}

/// A store's clip as a task being opened sees it, its row locked.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct LockedClip {
    /// Its processing state.
    pub status: ClipState,
    /// First frame's wall-clock time, epoch ms.
    pub started_at: Option<i64>,
}

/// Reads a clip of the store (not one still `uploading`) and locks its row
/// until the transaction ends, so a clip finishing processing at the same
/// moment either sees the task being opened or is seen as ready by it.
pub async fn lock_of_store(
    tx: &mut Tx,
    store_id: &str,
    clip_id: &str,
) -> Result<Option<LockedClip>> {
    let row = sqlx::query(&format!(
        "SELECT status, started_at FROM clips WHERE id = $1 AND store_id = $2 \
         AND status <> '{}'{}",
        ClipState::Uploading,
        tx.backend().for_update()
    ))
    .bind(clip_id)
    .bind(store_id)
    .fetch_optional(&mut **tx)
    .await?;
    let Some(row) = row else {
        return Ok(None);
    };
    Ok(Some(LockedClip {
        status: super::state(&row.try_get::<String, _>("status")?, ClipState::parse)?,
        started_at: row.try_get("started_at")?,
    }))
}

/// Shows a clip in a task, at `position` of the event's list.
pub async fn insert_task_clip(
    tx: &mut Tx,
    task_id: &str,
    clip_id: &str,
    position: i64,
    event_offset_ms: Option<i64>,
    poster_status: PosterStatus,
) -> Result<()> {
    sqlx::query(
        "INSERT INTO task_clips (task_id, clip_id, position, event_offset_ms, poster_status) \
         VALUES ($1, $2, $3, $4, $5)",
    )
    .bind(task_id)
    .bind(clip_id)
    .bind(position)
    .bind(event_offset_ms)
    .bind(poster_status.as_str())
    .execute(&mut **tx)
    .await?;
    Ok(())
}

/// Whether the store has a clip of this id (not one still `uploading`).
pub async fn of_store(conn: &mut AnyConnection, store_id: &str, clip_id: &str) -> Result<bool> {
    let found: Option<String> = sqlx::query_scalar(&format!(
        "SELECT id FROM clips WHERE id = $1 AND store_id = $2 AND status <> '{}'",
        ClipState::Uploading
    ))
    .bind(clip_id)
    .bind(store_id)
    .fetch_optional(conn)
    .await?;
    Ok(found.is_some())
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

/// Marks a clip processed with its artifacts.
pub async fn mark_processed(tx: &mut Tx, clip_id: &str, p: &Processed, now: i64) -> Result<()> {
    if let Some(started_at) = p.started_at {
        // Event offsets were counted from the window's start; the cut
        // begins at the keyframe before it.
        sqlx::query(
            "UPDATE task_clips SET event_offset_ms = event_offset_ms + \
             (SELECT started_at FROM clips WHERE id = $1) - $2 WHERE clip_id = $1",
        )
        .bind(clip_id)
        .bind(started_at)
        .execute(&mut **tx)
        .await?;
        sqlx::query("UPDATE clips SET started_at = $1 WHERE id = $2")
            .bind(started_at)
            .bind(clip_id)
            .execute(&mut **tx)
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
    .execute(&mut **tx)
    .await?;
    Ok(())
}

/// Marks a clip failed with its code and message; its tasks will get no
/// poster of it.
pub async fn mark_failed(
    tx: &mut Tx,
    clip_id: &str,
    code: &str,
    message: &str,
    now: i64,
) -> Result<()> {
    sqlx::query(&format!(
        "UPDATE clips SET status = '{}', error_code = $1, error_message = $2, updated_at = $3 \
         WHERE id = $4",
        lifecycle::clip_processed(false)
    ))
    .bind(code)
    .bind(message)
    .bind(now)
    .bind(clip_id)
    .execute(&mut **tx)
    .await?;
    sqlx::query(&format!(
        "UPDATE task_clips SET poster_status = '{}' WHERE clip_id = $1",
        lifecycle::poster_for(ClipState::Failed)
    ))
    .bind(clip_id)
    .execute(&mut **tx)
    .await?;
    Ok(())
}

/// The tasks that show a clip.
/// Bytes of video a store uploaded and keeps: its clips and footage as
/// sent, erased ones aside (cuts of footage add nothing; derived files are
/// not counted).
pub async fn stored_bytes(conn: &mut AnyConnection, store_id: &str) -> Result<i64> {
    Ok(sqlx::query_scalar(
        "SELECT CAST(COALESCE((SELECT SUM(size_bytes) FROM clips WHERE store_id = $1 AND erased_at IS NULL), 0) \
         + COALESCE((SELECT SUM(size_bytes) FROM footage WHERE store_id = $1 AND erased_at IS NULL), 0) AS BIGINT)",
    )
    .bind(store_id)
    .fetch_one(conn)
    .await?)
}

/// The store a clip belongs to (`None` for an unknown clip).
pub async fn store_of(conn: &mut AnyConnection, clip_id: &str) -> Result<Option<String>> {
    Ok(
        sqlx::query_scalar("SELECT store_id FROM clips WHERE id = $1")
            .bind(clip_id)
            .fetch_optional(conn)
            .await?,
    )
}

pub async fn tasks_showing(conn: &mut AnyConnection, clip_id: &str) -> Result<Vec<String>> {
    Ok(
        sqlx::query_scalar("SELECT task_id FROM task_clips WHERE clip_id = $1")
            .bind(clip_id)
            .fetch_all(conn)
            .await?,
    )
}

/// A task whose every clip has its poster (or failed) becomes claimable
/// ([`lifecycle::clips_settled`], as the update's condition).
pub async fn release_if_settled(tx: &mut Tx, task_id: &str, now: i64) -> Result<()> {
    let released = sqlx::query(&format!(
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
    if released.rows_affected() > 0 {
        tx.tasks_ready();
    }
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
        .collect()
}

/// Records a task clip's poster (`None`: it could not be made).
pub async fn set_poster(
    tx: &mut Tx,
    task_id: &str,
    clip_id: &str,
    key: Option<&str>,
) -> Result<()> {
    sqlx::query(
        "UPDATE task_clips SET poster_key = $1, poster_status = $2 WHERE task_id = $3 AND clip_id = $4",
    )
    .bind(key)
    .bind(if key.is_some() { PosterStatus::Ready } else { PosterStatus::Failed }.as_str())
    .bind(task_id)
    .bind(clip_id)
    .execute(&mut **tx)
    .await?;
    Ok(())
}

/// One clip of a task as the console needs it.
#[derive(Debug, Clone, PartialEq)]
pub struct TaskClipRow {
    /// Clip id.
    pub clip_id: String,
    /// The camera.
    pub camera_id: String,
    /// `ready` or `failed` (`processing` only while the task waits).
    pub status: ClipState,
    /// Why the clip cannot be shown.
    pub error: Option<ClipFailure>,
    /// Whether the task has its poster of this clip.
    pub has_poster: bool,
    /// Layout and times of the filmstrip tiles (the stored JSON, parsed;
    /// `None` when missing or unreadable).
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

/// The columns [`task_clip`] reads, from `task_clips tc` joined to `clips
/// c`; a task's card reads them with the task ([`super::tasks::card`]).
pub const TASK_CLIP_COLUMNS: &str = "c.id AS clip_id, c.camera_id, c.status AS clip_status, \
     c.error_code, c.error_message, c.duration_ms, c.width, c.height, c.frame_rate, c.filmstrip, \
     tc.event_offset_ms, tc.poster_key";

/// The clip of a row with [`TASK_CLIP_COLUMNS`]; `None` when the row has
/// none (a task without clips, read with a `LEFT JOIN`).
pub fn task_clip(r: &AnyRow) -> Result<Option<TaskClipRow>> {
    let Some(id) = r.try_get::<Option<String>, _>("clip_id")? else {
        return Ok(None);
    };
    let status = super::state(&r.try_get::<String, _>("clip_status")?, ClipState::parse)?;
    let duration_ms: Option<i64> = r.try_get("duration_ms")?;
    let offset: Option<i64> = r.try_get("event_offset_ms")?;
    let filmstrip: Option<String> = r.try_get("filmstrip")?;
    let error_code: Option<String> = r.try_get("error_code")?;
    Ok(Some(TaskClipRow {
        has_poster: r.try_get::<Option<String>, _>("poster_key")?.is_some(),
        filmstrip: filmstrip.and_then(|f| serde_json::from_str(&f).ok()),
        event_offset_ms: offset.or(duration_ms.map(|d| d / 2)),
        error: error_code.map(|code| ClipFailure {
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
    }))
}

/// The task showing the clip that a user holds a live lease on: any such
/// task, or `task_id` when given; `None` when they hold none.
pub async fn leased_to(
    db: &Db,
    clip_id: &str,
    user_id: &str,
    task_id: Option<&str>,
    now: i64,
) -> Result<Option<String>> {
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
    Ok(query.fetch_optional(db.reader()).await?)
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

/// Whether task `task_id` shows clip `clip_id`.
pub async fn task_shows(db: &Db, task_id: &str, clip_id: &str) -> Result<bool> {
    let found: Option<i64> =
        sqlx::query_scalar("SELECT 1 FROM task_clips WHERE task_id = $1 AND clip_id = $2")
            .bind(task_id)
            .bind(clip_id)
            .fetch_optional(db.reader())
            .await?;
    Ok(found.is_some())
}
