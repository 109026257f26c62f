//! Clip upload, status and serving: byte ranges, short private caching,
//! access only for the owning store, supervisors and the labeler holding a
//! lease on a task that shows the clip (for a task's poster, on that task),
//! decided in one place ([`authorize`]); every view recorded.

use std::ops::Range;
use std::path::PathBuf;

use axum::body::Body;
use axum::extract::{FromRequestParts, State};
use axum::http::request::Parts;
use axum::http::{header, HeaderMap, HeaderValue, Method, StatusCode};
use axum::response::{IntoResponse, Response};
use futures::StreamExt;
use serde::Deserialize;
use tokio::io::AsyncWriteExt;
use utoipa::{IntoParams, ToSchema};

use crate::api::contract::Binary;
use crate::db::clips::{self, ClipFailure, ClipRow, TaskClipRow};
use crate::db::{audit, new_id};
use crate::domain::audit::{Action, Actor};
use crate::domain::event::{check_id, ClientId};
use crate::domain::lifecycle::ClipStatus as ClipState;
use crate::domain::time::{format_rfc3339_ms, parse_rfc3339_ms};
use crate::error::{Code, Error, Result};
use crate::http::error::ErrorBody;
use crate::http::extract::{Caller, Path, Query, StoreCaller};
use crate::media::MediaError;
use crate::review::media::{self as review, NewClip, NewFootage};
use crate::AppState;

/// A clip's state as stores and labelers see it.
#[derive(Debug, Clone, PartialEq, serde::Serialize, ToSchema)]
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

impl From<&ClipRow> for ClipStatus {
    fn from(row: &ClipRow) -> ClipStatus {
        ClipStatus {
            clip_id: row.id.clone(),
            camera_id: row.camera_id.clone(),
            status: row.status.as_str().into(),
            error: row.failure().map(ClipError::from),
            duration_ms: row.duration_ms,
            width: row.width,
            height: row.height,
            started_at: row.started_at.map(format_rfc3339_ms),
        }
    }
}

/// A stored processing error.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, ToSchema)]
pub struct ClipError {
    /// Stable code, e.g. `corrupt-video`.
    pub code: String,
    /// Explanation.
    pub message: String,
}

impl From<ClipFailure> for ClipError {
    fn from(f: ClipFailure) -> ClipError {
        ClipError {
            code: f.code,
            message: f.message,
        }
    }
}

/// One clip of a task as the console needs it.
#[derive(Debug, Clone, PartialEq, serde::Serialize, ToSchema)]
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

impl TaskClip {
    /// The clip `r` of task `task_id`, with the URLs the console fetches.
    pub fn of(task_id: &str, r: TaskClipRow) -> TaskClip {
        let id = &r.clip_id;
        let ready = r.status == ClipState::Ready;
        TaskClip {
            video_url: ready.then(|| format!("/api/v1/clips/{id}/video?task_id={task_id}")),
            filmstrip_url: ready.then(|| format!("/api/v1/clips/{id}/filmstrip?task_id={task_id}")),
            poster_url: r
                .has_poster
                .then(|| format!("/api/v1/tasks/{task_id}/clips/{id}/poster")),
            clip_id: r.clip_id,
            camera_id: r.camera_id,
            status: r.status.as_str().into(),
            error: r.error.map(ClipError::from),
            filmstrip: r.filmstrip,
            event_offset_ms: r.event_offset_ms,
            duration_ms: r.duration_ms,
            width: r.width,
            height: r.height,
            frame_rate: r.frame_rate,
        }
    }
}

/// Deletes a temporary file when the request ends, however it ends.
struct TempFile(PathBuf);

impl Drop for TempFile {
    fn drop(&mut self) {
        let _ = std::fs::remove_file(&self.0);
    }
}

fn header_text<'a>(headers: &'a HeaderMap, name: &str) -> Option<&'a str> {
    headers.get(name).and_then(|v| v.to_str().ok())
}

/// Uploads one clip of one camera; the body is the video file.
///
/// The body is streamed to disk, never held in memory, and probed: what is
/// not a readable video is refused here, before anything is stored.
/// The upload routes (`POST`): they stream as long as their bytes keep
/// coming, so the request deadline does not apply to them (`crate::app`).
pub const UPLOAD_PATHS: [&str; 2] = ["/api/v1/clips", "/api/v1/footage"];

#[utoipa::path(post, path = "/api/v1/clips", tag = "store", security(("bearer" = [])),
    params(
        ("X-Camera-Id" = ClientId, Header, description = "the camera that recorded the clip"),
        ("X-Clip-Start" = Option<String>, Header, format = DateTime, description = "RFC 3339 time of the first frame; places the event in the clip"),
    ),
    request_body(content = Binary, content_type = "video/*"),
    responses(
        (status = 202, description = "stored; processing", body = ClipStatus),
        (status = 400, description = "`upload-incomplete`", body = ErrorBody),
        (status = 413, description = "`upload-too-large`", body = ErrorBody),
        (status = 415, description = "`unsupported-media-type`", body = ErrorBody),
        (status = 429, description = "`too-many-uploads`", body = ErrorBody),
        (status = 507, description = "`storage-full`", body = ErrorBody),
        (status = 422, description = "`missing-camera-id`, `invalid-timestamp`, `empty-file`, `not-video`, `truncated`, `no-video-stream`, `unsupported-codec`, `dimensions-too-large`, `duration-too-long`, `media-crashed`", body = ErrorBody),
    ))]
pub async fn upload_clip(
    State(state): State<AppState>,
    StoreCaller(store): StoreCaller,
    headers: HeaderMap,
    body: Body,
) -> Result<Response> {
    let max_ms = state.config.media_max_clip_ms;
    let upload = accept_upload(
        &state,
        &store.id,
        &headers,
        body,
        "x-clip-start",
        false,
        max_ms,
    )
    .await?;
    let clip = NewClip {
        id: &upload.id,
        camera_id: &upload.camera_id,
        started_at: upload.started_at,
        path: &upload.temp.0,
    };
    review::store_clips(&state.db, &state.blobs, &store.id, &[clip], state.now()).await?;
    let mut conn = state.db.reader().acquire().await?;
    let row = clips::get(&mut conn, &upload.id)
        .await?
        .ok_or_else(|| anyhow::anyhow!("clip {} vanished after upload", upload.id))?;
    Ok((StatusCode::ACCEPTED, axum::Json(ClipStatus::from(&row))).into_response())
}

/// Uploads a continuous recording of one camera; events then name windows
/// of it (`"cameras"`) instead of clip ids.
#[utoipa::path(post, path = "/api/v1/footage", tag = "store", security(("bearer" = [])),
    params(
        ("X-Camera-Id" = ClientId, Header, description = "the camera that recorded it"),
        ("X-Footage-Start" = String, Header, format = DateTime, description = "RFC 3339 time of the first frame"),
    ),
    request_body(content = Binary, content_type = "video/*"),
    responses(
        (status = 201, body = Footage),
        (status = 400, description = "`upload-incomplete`", body = ErrorBody),
        (status = 413, description = "`upload-too-large`", body = ErrorBody),
        (status = 415, description = "`unsupported-media-type`", body = ErrorBody),
        (status = 429, description = "`too-many-uploads`", body = ErrorBody),
        (status = 507, description = "`storage-full`", body = ErrorBody),
        (status = 422, description = "`missing-footage-start`, the clip upload's codes", body = ErrorBody),
    ))]
pub async fn upload_footage(
    State(state): State<AppState>,
    StoreCaller(store): StoreCaller,
    headers: HeaderMap,
    body: Body,
) -> Result<Response> {
    let max_ms = state.config.media_max_footage_ms;
    let upload = accept_upload(
        &state,
        &store.id,
        &headers,
        body,
        "x-footage-start",
        true,
        max_ms,
    )
    .await?;
    let started_at = upload.started_at.unwrap_or_default();
    let ended_at = started_at + upload.info.duration_ms;
    let recording = NewFootage {
        id: &upload.id,
        camera_id: &upload.camera_id,
        started_at,
        ended_at,
        path: &upload.temp.0,
    };
    review::store_footage(&state.db, &state.blobs, &store.id, &recording, state.now()).await?;
    let footage = Footage {
        footage_id: upload.id.clone(),
        camera_id: upload.camera_id.clone(),
        started_at: format_rfc3339_ms(started_at),
        ended_at: format_rfc3339_ms(ended_at),
        duration_ms: upload.info.duration_ms,
    };
    Ok((StatusCode::CREATED, axum::Json(footage)).into_response())
}

/// A stored recording.
#[derive(Debug, Clone, serde::Serialize, ToSchema)]
pub struct Footage {
    /// Footage id.
    pub footage_id: String,
    /// The camera.
    pub camera_id: String,
    /// First frame (RFC 3339).
    pub started_at: String,
    /// End of the last frame (RFC 3339).
    pub ended_at: String,
    /// Length.
    pub duration_ms: i64,
}

/// An upload received and probed, in a temporary file removed on drop.
struct Upload {
    id: String,
    temp: TempFile,
    camera_id: String,
    started_at: Option<i64>,
    info: crate::media::ProbeInfo,
    /// Held until the upload is stored or refused.
    _slot: UploadSlot,
}

/// Receives an upload: checks its headers, streams it to disk within the
/// size limit, and probes it; what is not usable video is refused here,
/// before anything is stored.
async fn accept_upload(
    state: &AppState,
    store_id: &str,
    headers: &HeaderMap,
    body: Body,
    start_header: &str,
    start_required: bool,
    max_ms: i64,
) -> Result<Upload> {
    let admitted = match admit(state, store_id, headers, start_header, start_required).await {
        Ok(admitted) => admitted,
        Err(e) => {
            drain(body).await;
            return Err(e);
        }
    };
    let id = new_id();
    let temp = TempFile(state.scratch.join(format!("{id}.upload")));
    let size = receive(body, &temp.0, state.config.max_upload_bytes).await?;
    if size == 0 {
        return Err(Error::new(Code::EmptyFile, "the upload is empty"));
    }
    check_room(state, admitted.stored, size)?;
    let Admitted {
        camera_id,
        started_at,
        slot,
        ..
    } = admitted;
    let info = probe_upload(state, &temp.0).await?;
    if info.duration_ms > max_ms {
        return Err(Error::new(
            Code::DurationTooLong,
            format!(
                "the video lasts {} ms; at most {max_ms} ms are accepted here",
                info.duration_ms
            ),
        ));
    }
    Ok(Upload {
        id,
        temp,
        camera_id,
        started_at,
        info,
        _slot: slot,
    })
}

/// Probes an upload in a media worker. A worker that dies on it gets one
/// more try in a fresh worker (the first death may have had another cause):
/// a file that ends both is refused with `media-crashed`, as it most likely
/// crashes the decoder and sending it again would too.
async fn probe_upload(state: &AppState, path: &std::path::Path) -> Result<crate::media::ProbeInfo> {
    let crashed = |e: &MediaError| e.code == MediaError::CRASHED;
    match state.media.probe(path).await {
        Err(first) if crashed(&first) => match state.media.probe(path).await {
            Err(again) if crashed(&again) => Err(Error::new(
                Code::MediaCrashed,
                format!("the file ended the media worker twice: {}", again.message),
            )),
            other => other.map_err(Error::from),
        },
        other => other.map_err(Error::from),
    }
}

/// An upload let in: its checked headers, its store's upload slot, and the
/// bytes the store keeps already.
struct Admitted {
    camera_id: String,
    started_at: Option<i64>,
    slot: UploadSlot,
    stored: u64,
}

/// Lets an upload in before its body is read: a free upload slot of its
/// store on this instance, valid headers, and room for its declared size.
async fn admit(
    state: &AppState,
    store_id: &str,
    headers: &HeaderMap,
    start_header: &str,
    start_required: bool,
) -> Result<Admitted> {
    let slot = state
        .upload_slots
        .take(store_id, state.config.store_max_concurrent_uploads)
        .ok_or_else(|| Error::Throttled {
            code: Code::TooManyUploads,
            message: format!(
                "this store already sends {} uploads at once; send this one when one of them ends",
                state.config.store_max_concurrent_uploads
            ),
            retry_after_s: 1,
        })?;
    let (camera_id, started_at) =
        check_upload_headers(state, headers, start_header, start_required)?;
    let stored = if state.config.store_max_stored_bytes == 0 {
        0
    } else {
        let mut conn = state.db.reader().acquire().await?;
        clips::stored_bytes(&mut conn, store_id).await?.max(0) as u64
    };
    let declared = header_text(headers, "content-length")
        .and_then(|v| v.parse::<u64>().ok())
        .unwrap_or(0);
    check_room(state, stored, declared)?;
    Ok(Admitted {
        camera_id,
        started_at,
        slot,
        stored,
    })
}

/// Refuses an upload of `size` bytes that would take the store past
/// `store_max_stored_bytes` (0: no limit).
fn check_room(state: &AppState, stored: u64, size: u64) -> Result<()> {
    let limit = state.config.store_max_stored_bytes;
    if limit > 0 && stored.saturating_add(size) > limit {
        return Err(Error::new(
            Code::StorageFull,
            format!(
                "the store keeps {stored} bytes of video; {size} more would pass its limit of {limit}"
            ),
        ));
    }
    Ok(())
}

/// Each store's uploads in progress on this instance.
#[derive(Debug, Default)]
pub struct UploadSlots(std::sync::Mutex<std::collections::HashMap<String, usize>>);

/// One upload's place among its store's; given back when dropped.
pub struct UploadSlot {
    slots: std::sync::Arc<UploadSlots>,
    store_id: String,
}

impl UploadSlots {
    /// Uploads of `store_id` in progress.
    pub fn held(&self, store_id: &str) -> usize {
        let held = self.0.lock().unwrap_or_else(|e| e.into_inner());
        held.get(store_id).copied().unwrap_or(0)
    }

    /// A slot for one more upload of `store_id`, unless it has `max` already.
    pub fn take(self: &std::sync::Arc<Self>, store_id: &str, max: usize) -> Option<UploadSlot> {
        let mut held = self.0.lock().unwrap_or_else(|e| e.into_inner());
        let n = held.entry(store_id.to_string()).or_default();
        if *n >= max {
            return None;
        }
        *n += 1;
        Some(UploadSlot {
            slots: self.clone(),
            store_id: store_id.to_string(),
        })
    }
}

impl Drop for UploadSlot {
    fn drop(&mut self) {
        let mut held = self.slots.0.lock().unwrap_or_else(|e| e.into_inner());
        if let Some(n) = held.get_mut(&self.store_id) {
            *n -= 1;
            if *n == 0 {
                held.remove(&self.store_id);
            }
        }
    }
}

/// Reads and drops what the client is still sending (up to a bound), so it
/// hears the error instead of a reset connection.
async fn drain(body: Body) {
    let mut stream = body.into_data_stream();
    let mut seen = 0usize;
    while let Some(Ok(chunk)) = stream.next().await {
        seen += chunk.len();
        if seen > 8 * 1024 * 1024 {
            break;
        }
    }
}

/// Checks the upload's headers: camera, start time, type, declared size.
fn check_upload_headers(
    state: &AppState,
    headers: &HeaderMap,
    start_header: &str,
    start_required: bool,
) -> Result<(String, Option<i64>)> {
    let content_type = header_text(headers, "content-type").unwrap_or("");
    if !(content_type.starts_with("video/") || content_type == "application/octet-stream") {
        return Err(Error::new(
            Code::UnsupportedMediaType,
            "send the clip as Content-Type: video/*",
        ));
    }
    let camera_id = header_text(headers, "x-camera-id").unwrap_or("");
    if camera_id.is_empty() {
        return Err(Error::new(
            Code::MissingCameraId,
            "the X-Camera-Id header is required",
        ));
    }
    check_id("X-Camera-Id", camera_id)?;
    let started_at = match header_text(headers, start_header) {
        None if start_required => {
            return Err(Error::new(
                Code::MissingFootageStart,
                format!("the {start_header} header (RFC 3339) is required"),
            ))
        }
        None => None,
        Some(s) => Some(parse_rfc3339_ms(s).ok_or_else(|| {
            Error::new(
                Code::InvalidTimestamp,
                format!("{start_header} must be RFC 3339, not {s:?}"),
            )
        })?),
    };
    let limit = state.config.max_upload_bytes;
    let declared: Option<u64> = header_text(headers, "content-length").and_then(|v| v.parse().ok());
    if declared.is_some_and(|n| n > limit) {
        return Err(too_large(limit));
    }
    Ok((camera_id.to_string(), started_at))
}

fn too_large(limit: u64) -> Error {
    Error::new(
        Code::UploadTooLarge,
        format!("uploads are limited to {limit} bytes"),
    )
}

/// Streams the body to `path`; refuses it past `limit` bytes or when the
/// client stops sending before the end.
async fn receive(body: Body, path: &std::path::Path, limit: u64) -> Result<u64> {
    let mut file = tokio::fs::File::create(path)
        .await
        .map_err(|e| anyhow::anyhow!("creating {}: {e}", path.display()))?;
    let mut stream = body.into_data_stream();
    let mut size = 0u64;
    while let Some(chunk) = stream.next().await {
        let chunk = chunk.map_err(|e| {
            Error::new(
                Code::UploadIncomplete,
                format!("the upload ended early: {e}"),
            )
        })?;
        size += chunk.len() as u64;
        if size > limit {
            return Err(too_large(limit));
        }
        file.write_all(&chunk)
            .await
            .map_err(|e| anyhow::anyhow!("writing upload: {e}"))?;
    }
    file.flush()
        .await
        .map_err(|e| anyhow::anyhow!("writing upload: {e}"))?;
    Ok(size)
}

/// What a media request reads of a clip.
#[derive(Debug, Clone, Copy)]
enum Scope<'a> {
    /// The clip's own status, video and filmstrip, watched for a task when
    /// the request names one (`?task_id=`, as the URLs of a task's clips
    /// do): a labeler then needs a lease on that very task.
    Clip(Option<&'a str>),
    /// What one task shows of the clip: its poster for that task.
    Task(&'a str),
}

impl<'a> Scope<'a> {
    fn task(self) -> Option<&'a str> {
        match self {
            Scope::Clip(task) => task,
            Scope::Task(task) => Some(task),
        }
    }
}

/// A clip the caller may see, and the task they watch it for, when known
/// (recorded with the view).
struct Seen {
    clip: ClipRow,
    task_id: Option<String>,
}

/// The task a media request names (`?task_id=`): which task the clip is
/// watched for.
#[derive(Debug, Deserialize, IntoParams)]
pub struct ViewQuery {
    /// The task the clip is watched for; a labeler must hold its lease.
    pub task_id: Option<String>,
}

/// The one access decision of every media route: loads the clip and checks
/// that the caller may see it in `scope`.
///
/// - A store sees its own clips; another store's clip answers `404
///   unknown-clip`, as if it did not exist (the tasks showing a clip are
///   always of the clip's store).
/// - Supervisors and admins see every clip of the stores they cover; any
///   other clip answers `404 unknown-clip`.
/// - A labeler sees a clip only while holding a live lease on a task that
///   shows it; for [`Scope::Task`], on that very task. Otherwise `403
///   clip-forbidden`.
async fn authorize(
    state: &AppState,
    caller: &Caller,
    clip_id: &str,
    scope: Scope<'_>,
) -> Result<Seen> {
    let mut conn = state.db.reader().acquire().await?;
    let clip = clips::get(&mut conn, clip_id).await?;
    drop(conn);
    let unknown = || Error::new(Code::UnknownClip, format!("no clip {clip_id:?}"));
    let clip = clip.ok_or_else(unknown)?;
    let task_id = match caller {
        Caller::Store(store) => {
            // Another store's clip does not exist, as far as this caller knows.
            if store.id != clip.store_id {
                return Err(unknown());
            }
            None
        }
        Caller::User(user) if user.role.is_supervisor() => {
            if !user.scope.sees(&clip.store_id) {
                return Err(unknown());
            }
            match scope.task() {
                Some(t) if clips::task_shows(&state.db, t, clip_id).await? => Some(t.to_string()),
                _ => None,
            }
        }
        Caller::User(user) => {
            let held =
                clips::leased_to(&state.db, clip_id, &user.id, scope.task(), state.now()).await?;
            if held.is_none() {
                return Err(Error::new(
                    Code::ClipForbidden,
                    match scope {
                        Scope::Clip(_) => {
                            "only the labeler holding a task that shows this clip may fetch it"
                        }
                        Scope::Task(_) => "only the labeler holding this task may fetch its poster",
                    },
                ));
            }
            held
        }
    };
    Ok(Seen { clip, task_id })
}

/// `410 clip-erased` for a clip whose video was deleted, else its key.
fn artifact(clip: &ClipRow, key: &Option<String>) -> Result<String> {
    if clip.status == ClipState::Erased {
        return Err(Error::new(
            Code::ClipErased,
            "this clip's video was deleted (its store's retention, or the shopper's request)",
        ));
    }
    key.clone().ok_or_else(not_ready)
}

fn caller_actor(caller: &Caller) -> Actor {
    match caller {
        Caller::Store(s) => s.actor(),
        Caller::User(u) => u.actor(),
    }
}

/// A clip's processing state.
#[utoipa::path(get, path = "/api/v1/clips/{clip_id}", tag = "store", security(("bearer" = [])),
    params(("clip_id" = String, Path)),
    responses(
        (status = 200, body = ClipStatus),
        (status = 403, description = "`clip-forbidden`", body = ErrorBody),
        (status = 404, description = "`unknown-clip`", body = ErrorBody),
    ))]
pub async fn clip_status(
    State(state): State<AppState>,
    caller: Caller,
    Path(clip_id): Path<String>,
) -> Result<axum::Json<ClipStatus>> {
    let clip = authorize(&state, &caller, &clip_id, Scope::Clip(None))
        .await?
        .clip;
    Ok(axum::Json(ClipStatus::from(&clip)))
}

/// The browser-playable MP4 of a clip (byte ranges supported).
#[utoipa::path(get, path = "/api/v1/clips/{clip_id}/video", tag = "store", security(("bearer" = [])),
    params(("clip_id" = String, Path), ("Range" = Option<String>, Header), ViewQuery),
    responses(
        (status = 200, content_type = "video/mp4", body = Binary),
        (status = 206, content_type = "video/mp4", body = Binary),
        (status = 403, description = "`clip-forbidden`", body = ErrorBody),
        (status = 404, description = "`unknown-clip`, `clip-not-ready`", body = ErrorBody),
        (status = 410, description = "`clip-erased`", body = ErrorBody),
        (status = 416, description = "`range-not-satisfiable`", body = ErrorBody),
    ))]
pub async fn clip_video(
    State(state): State<AppState>,
    fetch: Fetch,
    Path(clip_id): Path<String>,
    Query(q): Query<ViewQuery>,
) -> Result<Response> {
    let seen = authorize(
        &state,
        &fetch.caller,
        &clip_id,
        Scope::Clip(q.task_id.as_deref()),
    )
    .await?;
    let key = artifact(&seen.clip, &seen.clip.video_key)?;
    serve(&state, &fetch, &seen, "video", &key, "video/mp4").await
}

/// The filmstrip sprite of a clip (JPEG).
#[utoipa::path(get, path = "/api/v1/clips/{clip_id}/filmstrip", tag = "store", security(("bearer" = [])),
    params(("clip_id" = String, Path), ViewQuery),
    responses(
        (status = 200, content_type = "image/jpeg", body = Binary),
        (status = 403, description = "`clip-forbidden`", body = ErrorBody),
        (status = 404, description = "`unknown-clip`, `clip-not-ready`", body = ErrorBody),
        (status = 410, description = "`clip-erased`", body = ErrorBody),
    ))]
pub async fn clip_filmstrip(
    State(state): State<AppState>,
    fetch: Fetch,
    Path(clip_id): Path<String>,
    Query(q): Query<ViewQuery>,
) -> Result<Response> {
    let seen = authorize(
        &state,
        &fetch.caller,
        &clip_id,
        Scope::Clip(q.task_id.as_deref()),
    )
    .await?;
    let key = artifact(&seen.clip, &seen.clip.filmstrip_key)?;
    serve(&state, &fetch, &seen, "filmstrip", &key, "image/jpeg").await
}

/// The poster of a task's clip: the frame at the event instant (JPEG). A
/// labeler needs a live lease on this task, not just on one showing the clip.
#[utoipa::path(get, path = "/api/v1/tasks/{task_id}/clips/{clip_id}/poster", tag = "queue", security(("bearer" = [])),
    params(("task_id" = String, Path), ("clip_id" = String, Path)),
    responses(
        (status = 200, content_type = "image/jpeg", body = Binary),
        (status = 403, description = "`clip-forbidden`", body = ErrorBody),
        (status = 404, description = "`unknown-clip`, `clip-not-ready`", body = ErrorBody),
        (status = 410, description = "`clip-erased`", body = ErrorBody),
    ))]
pub async fn task_clip_poster(
    State(state): State<AppState>,
    fetch: Fetch,
    Path((task_id, clip_id)): Path<(String, String)>,
) -> Result<Response> {
    let seen = authorize(&state, &fetch.caller, &clip_id, Scope::Task(&task_id)).await?;
    let key = artifact(
        &seen.clip,
        &clips::poster_key(&state.db, &task_id, &clip_id).await?,
    )?;
    serve(&state, &fetch, &seen, "poster", &key, "image/jpeg").await
}

fn not_ready() -> Error {
    Error::new(
        Code::ClipNotReady,
        "this artifact does not exist (yet); see the clip's status",
    )
}

/// Largest response read into memory in one piece.
const STREAM_ABOVE: u64 = 8 * 1024 * 1024;

/// A request for a clip's artifact: who asks, with which method and headers.
pub struct Fetch {
    caller: Caller,
    method: Method,
    headers: HeaderMap,
}

impl FromRequestParts<AppState> for Fetch {
    type Rejection = Error;

    async fn from_request_parts(parts: &mut Parts, state: &AppState) -> Result<Self, Error> {
        Ok(Fetch {
            caller: Caller::from_request_parts(parts, state).await?,
            method: parts.method.clone(),
            headers: parts.headers.clone(),
        })
    }
}

/// A range from byte 0 shorter than this is a probe, not a view: Safari's
/// `<video>` opens every load with `bytes=0-1` to learn the size, then asks
/// again from byte 0 for the picture.
const PROBE_BYTES: u64 = 16;

/// Whether an answer shows the artifact to its caller: a `GET` that sends
/// bytes, anywhere in the blob, unless it is a probe of the first bytes.
/// `HEAD` sends none. The many ranges of one playback are one view:
/// [`audit::record_view`] keeps one per viewer, artifact and task within
/// [`VIEW_WINDOW_MS`].
fn is_view(method: &Method, status: StatusCode, sent: &Range<u64>) -> bool {
    let probe = status == StatusCode::PARTIAL_CONTENT && sent.start == 0 && sent.end < PROBE_BYTES;
    *method == Method::GET && !sent.is_empty() && !probe
}

/// How long a browser may keep a clip's artifact: long enough for a
/// player's seeks and a page's reloads during one review, short enough
/// that shopper video does not stay on a labeler's disk.
pub const MEDIA_CACHE_CONTROL: &str = "private, max-age=300";

/// One viewing: the ranges a player fetches, and fetches again after a
/// reload, within this long of the viewer's last recorded view of the same
/// artifact are part of it.
pub const VIEW_WINDOW_MS: i64 = 10 * 60_000;

/// Sends a clip's artifact (see [`send_blob`]) and records the view in
/// the audit trail: who watched which artifact of which clip, for which
/// task.
async fn serve(
    state: &AppState,
    fetch: &Fetch,
    seen: &Seen,
    artifact: &str,
    key: &str,
    content_type: &'static str,
) -> Result<Response> {
    let (resp, sent) = send_blob(
        state,
        &fetch.method,
        &fetch.headers,
        key,
        content_type,
        MEDIA_CACHE_CONTROL,
    )
    .await?;
    if let Some(sent) = sent {
        if is_view(&fetch.method, resp.status(), &sent) {
            let actor = caller_actor(&fetch.caller);
            let entry = audit::Entry {
                actor: &actor,
                action: Action::ClipViewed,
                store_id: Some(&seen.clip.store_id),
                subject: Some(&seen.clip.id),
                detail: serde_json::json!({"artifact": artifact, "task_id": seen.task_id}),
            };
            audit::record_view(&state.db, &entry, state.now(), VIEW_WINDOW_MS).await?;
        }
    }
    Ok(resp)
}

/// Sends a blob, whole or the requested byte range (for `HEAD`, only the
/// headers: nothing is read), with the byte range it answers with (`None`
/// when the range was not satisfiable). Small ranges are read in one piece,
/// larger ones streamed, so memory stays bounded whatever the blob.
pub async fn send_blob(
    state: &AppState,
    method: &Method,
    headers: &HeaderMap,
    key: &str,
    content_type: &str,
    cache_control: &'static str,
) -> Result<(Response, Option<Range<u64>>)> {
    let size = state.blobs.size(key).await?;
    let range = match header_text(headers, "range") {
        None => None,
        Some(spec) => match parse_range(spec, size) {
            RangeRequest::Satisfiable(r) => Some(r),
            RangeRequest::Ignored => None,
            RangeRequest::Unsatisfiable => {
                let mut resp = Error::new(
                    Code::RangeNotSatisfiable,
                    format!("the blob has {size} bytes"),
                )
                .into_response();
                resp.headers_mut().insert(
                    header::CONTENT_RANGE,
                    HeaderValue::from_str(&format!("bytes */{size}")).expect("ascii"),
                );
                return Ok((resp, None));
            }
        },
    };
    let (status, bytes_range) = match range {
        Some(r) => (StatusCode::PARTIAL_CONTENT, r),
        None => (StatusCode::OK, 0..size),
    };
    let body = if bytes_range.is_empty() || *method == Method::HEAD {
        Body::empty()
    } else if bytes_range.end - bytes_range.start <= STREAM_ABOVE {
        Body::from(state.blobs.get_range(key, bytes_range.clone()).await?)
    } else {
        Body::from_stream(state.blobs.stream_range(key, bytes_range.clone()).await?)
    };
    let mut resp = Response::new(body);
    *resp.status_mut() = status;
    let h = resp.headers_mut();
    h.insert(
        header::CONTENT_TYPE,
        HeaderValue::from_str(content_type).map_err(anyhow::Error::from)?,
    );
    h.insert(header::ACCEPT_RANGES, HeaderValue::from_static("bytes"));
    h.insert(
        header::CACHE_CONTROL,
        HeaderValue::from_static(cache_control),
    );
    // Said here, not taken from the body: a HEAD answer has none.
    h.insert(
        header::CONTENT_LENGTH,
        HeaderValue::from(bytes_range.end - bytes_range.start),
    );
    if status == StatusCode::PARTIAL_CONTENT {
        let value = format!("bytes {}-{}/{size}", bytes_range.start, bytes_range.end - 1);
        h.insert(
            header::CONTENT_RANGE,
            HeaderValue::from_str(&value).expect("ascii"),
        );
    }
    Ok((resp, Some(bytes_range)))
}

/// What a `Range` header asks for.
#[derive(Debug, PartialEq, Eq)]
pub enum RangeRequest {
    /// One satisfiable range (end exclusive).
    Satisfiable(Range<u64>),
    /// Not a single byte range we serve (multi-range, other unit, garbage):
    /// answer with the whole blob, as RFC 9110 allows.
    Ignored,
    /// A byte range wholly outside the blob.
    Unsatisfiable,
}

/// Parses `bytes=a-b`, `bytes=a-` and `bytes=-n` against a blob of `size` bytes.
pub fn parse_range(spec: &str, size: u64) -> RangeRequest {
    let Some(set) = spec.trim().strip_prefix("bytes=") else {
        return RangeRequest::Ignored;
    };
    if set.contains(',') {
        return RangeRequest::Ignored;
    }
    let Some((a, b)) = set.trim().split_once('-') else {
        return RangeRequest::Ignored;
    };
    let (a, b) = (a.trim(), b.trim());
    let range = match (a.is_empty(), b.is_empty()) {
        (true, true) => return RangeRequest::Ignored,
        (true, false) => {
            let Ok(n) = b.parse::<u64>() else {
                return RangeRequest::Ignored;
            };
            if n == 0 {
                return RangeRequest::Unsatisfiable;
            }
            size.saturating_sub(n)..size
        }
        (false, _) => {
            let Ok(start) = a.parse::<u64>() else {
                return RangeRequest::Ignored;
            };
            let end = if b.is_empty() {
                size
            } else {
                let Ok(last) = b.parse::<u64>() else {
                    return RangeRequest::Ignored;
                };
                if last < start {
                    return RangeRequest::Ignored;
                }
                // `last` may be any u64 (bytes=0-18446744073709551615):
                // past the end is cut to the end, without overflowing.
                last.saturating_add(1).min(size)
            };
            if start >= size {
                return RangeRequest::Unsatisfiable;
            }
            start..end
        }
    };
    RangeRequest::Satisfiable(range)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn byte_ranges_follow_rfc_9110() {
        use RangeRequest::*;
        assert_eq!(parse_range("bytes=0-99", 1000), Satisfiable(0..100));
        assert_eq!(parse_range("bytes=900-", 1000), Satisfiable(900..1000));
        assert_eq!(parse_range("bytes=-100", 1000), Satisfiable(900..1000));
        assert_eq!(parse_range("bytes=-5000", 1000), Satisfiable(0..1000));
        assert_eq!(parse_range("bytes=990-2000", 1000), Satisfiable(990..1000));
        assert_eq!(parse_range("bytes=1000-", 1000), Unsatisfiable);
        assert_eq!(parse_range("bytes=-0", 1000), Unsatisfiable);
        assert_eq!(parse_range("bytes=0-1,5-6", 1000), Ignored);
        assert_eq!(parse_range("items=0-1", 1000), Ignored);
        assert_eq!(parse_range("bytes=5-1", 1000), Ignored);
        assert_eq!(
            parse_range("bytes=0-18446744073709551615", 1000),
            Satisfiable(0..1000),
            "an end past u64 arithmetic is cut, not wrapped"
        );
        assert_eq!(
            parse_range("bytes=18446744073709551615-", 1000),
            Unsatisfiable
        );
        assert_eq!(parse_range("bytes=0-18446744073709551616", 1000), Ignored);
        assert_eq!(parse_range("bytes=x-1", 1000), Ignored);
    }

    #[test]
    fn gets_that_send_bytes_are_views_but_probes() {
        let (get, head) = (Method::GET, Method::HEAD);
        assert!(is_view(&get, StatusCode::OK, &(0..1000)));
        assert!(is_view(&get, StatusCode::OK, &(0..3)), "a whole tiny blob");
        assert!(is_view(&get, StatusCode::PARTIAL_CONTENT, &(0..1000)));
        assert!(is_view(&get, StatusCode::PARTIAL_CONTENT, &(0..16)));
        assert!(
            !is_view(&get, StatusCode::PARTIAL_CONTENT, &(0..2)),
            "a probe"
        );
        assert!(
            is_view(&get, StatusCode::PARTIAL_CONTENT, &(10..1000)),
            "a range from anywhere shows the clip"
        );
        assert!(is_view(&get, StatusCode::PARTIAL_CONTENT, &(10..12)));
        assert!(!is_view(&get, StatusCode::OK, &(0..0)), "nothing sent");
        assert!(!is_view(&head, StatusCode::OK, &(0..1000)));
    }
}
