//! Media jobs: turn an uploaded clip into a browser MP4 and a filmstrip, and
//! make each task's posters at the event instant.
//!
//! Every frame of a clip's video is decoded once before the clip is ready:
//! by the transcode, or, for a remuxed video, by its filmstrip.
//!
//! A bad file (the uploader's fault) marks the clip failed with its code at
//! once; our own failures (timeouts, storage, a media worker that died) are
//! retried up to `media_max_attempts` times, and the clip is marked failed
//! only when the attempts run out, so a task never waits forever for video:
//! with `media-crashed` when the last attempt ended its worker too,
//! `processing-failed` otherwise.

use std::path::PathBuf;

use super::{BackgroundJob, JobContext, JobError};
use crate::config::Config;
use crate::db::clips::{self, Processed};
use crate::db::jobs::Job;
use crate::domain::job::{MakePosters, ProcessClip, RetryPolicy};
use crate::domain::lifecycle::ClipStatus;
use crate::media::{CutAccuracy, Decode, MediaError, Window};
use crate::review::media as review;
use crate::AppState;

/// Width of a filmstrip tile.
const TILE_WIDTH: u32 = 160;
/// Widest poster.
const POSTER_WIDTH: u32 = 960;

/// A job's own scratch directory, removed when the job ends.
pub(super) struct Scratch(pub(super) PathBuf);

impl Scratch {
    pub(super) fn new(state: &AppState, job: &Job) -> Result<Scratch, JobError> {
        let dir = state.scratch.join(&job.id);
        std::fs::create_dir_all(&dir).map_err(|e| JobError::Retry(format!("scratch dir: {e}")))?;
        Ok(Scratch(dir))
    }
}

impl Drop for Scratch {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

fn retry(e: impl std::fmt::Display) -> JobError {
    JobError::Retry(e.to_string())
}

/// The media settings: `media_max_attempts` attempts, backed off as every
/// job is (`webhook_backoff_base_ms` up to `webhook_backoff_max_ms`).
pub fn retry_policy(config: &Config) -> RetryPolicy {
    RetryPolicy {
        max_attempts: config.media_max_attempts,
        backoff_base_ms: config.webhook_backoff_base_ms,
        backoff_max_ms: config.webhook_backoff_max_ms,
        // Media retries are per clip and few: exact delays keep them
        // predictable for the uploader.
        jitter: false,
    }
}

/// Processing a clip (an upload, or a cut of footage). When our side keeps
/// failing (storage, database, timeouts) and the attempts run out, the clip
/// is marked failed with `processing-failed` so its tasks do not wait
/// forever.
impl BackgroundJob for ProcessClip {
    fn retry_policy(config: &Config) -> RetryPolicy {
        retry_policy(config)
    }

    async fn run(&self, ctx: &JobContext<'_>) -> Result<(), JobError> {
        process_clip(ctx, self).await
    }

    async fn give_up(&self, ctx: &JobContext<'_>, error: &str) -> anyhow::Result<()> {
        let state = ctx.state;
        let mut conn = state.db.reader().acquire().await?;
        let clip = clips::get(&mut conn, &self.clip_id).await?;
        drop(conn);
        // Gone, or settled by an attempt that then failed: nothing waits.
        if clip.is_none_or(|c| c.status != ClipStatus::Processing) {
            return Ok(());
        }
        let message = format!(
            "processing failed after {} attempts: {error}",
            ctx.attempt()
        );
        review::settle(
            &state.db,
            &self.clip_id,
            Err(("processing-failed".into(), message)),
            state.now(),
        )
        .await?;
        Ok(())
    }
}

async fn process_clip(ctx: &JobContext<'_>, args: &ProcessClip) -> Result<(), JobError> {
    let (state, job) = (ctx.state, ctx.job);
    let mut conn = state.db.reader().acquire().await.map_err(retry)?;
    let clip = clips::get(&mut conn, &args.clip_id)
        .await
        .map_err(retry)?
        .ok_or_else(|| JobError::Dead("the clip no longer exists".into()))?;
    drop(conn);
    if clip.status != ClipStatus::Processing {
        return Ok(());
    }
    let source_key = clip
        .source_key
        .clone()
        .ok_or_else(|| JobError::Dead("clip has no source".into()))?;
    let scratch = Scratch::new(state, job)?;
    let source = scratch.0.join("source");
    state
        .blobs
        .download(&source_key, &source)
        .await
        .map_err(retry)?;

    let video = scratch.0.join("video.mp4");
    let strip = scratch.0.join("filmstrip.jpg");
    let window = clip.window.map(|(from, to)| Window::new(from, to));
    let accuracy = if clip.frame_accurate {
        CutAccuracy::Frame
    } else {
        CutAccuracy::Keyframe
    };
    let made = async {
        let out = state
            .media
            .make_browser_mp4(source.clone(), video.clone(), window, accuracy)
            .await?;
        // A remux copies the camera's frames without decoding them; the
        // filmstrip decodes them all then, so a damaged frame fails the clip
        // before the clip is ready and a labeler is shown it.
        let decode = if out.frames_checked {
            Decode::TilesOnly
        } else {
            Decode::EveryFrame
        };
        let film = state
            .media
            .filmstrip(
                video.clone(),
                state.config.filmstrip_frames,
                TILE_WIDTH,
                decode,
                strip.clone(),
            )
            .await?;
        Ok::<_, MediaError>((out, film))
    }
    .await;
    let now = state.now();
    match made {
        Ok((out, film)) => {
            let video_key = clips::blob_key(&clip.store_id, &clip.id, "video.mp4");
            let filmstrip_key = clips::blob_key(&clip.store_id, &clip.id, "filmstrip.jpg");
            state
                .blobs
                .put_file(&video_key, &video)
                .await
                .map_err(retry)?;
            state
                .blobs
                .put_file(&filmstrip_key, &strip)
                .await
                .map_err(retry)?;
            let processed = Processed {
                started_at: match (clip.footage_id.is_some(), clip.window) {
                    (true, Some((from, _))) => {
                        clip.started_at.map(|s| s - from + out.source_start_ms)
                    }
                    _ => None,
                },
                video_key,
                filmstrip_key,
                filmstrip: serde_json::to_string(&film).map_err(retry)?,
                duration_ms: out.duration_ms,
                width: i64::from(out.width),
                height: i64::from(out.height),
                frame_rate: frame_rate(out.frame_count, out.duration_ms),
            };
            review::settle(&state.db, &clip.id, Ok(processed), now)
                .await
                .map_err(retry)?;
            Ok(())
        }
        Err(e) => {
            let failure = settled_failure(e, ctx, &clip.id)?;
            review::settle(&state.db, &clip.id, Err(failure), now)
                .await
                .map_err(retry)?;
            Ok(())
        }
    }
}

/// What a media error makes of the clip: its final `(code, message)` when
/// the clip fails for good, the retry when the job should try again.
///
/// The uploader's fault fails it at once. A clip that ended its worker on
/// the last attempt too is most likely a file that crashes the decoder: it
/// fails as `media-crashed`, not as our failure. Anything else is retried.
fn settled_failure(
    e: MediaError,
    ctx: &JobContext<'_>,
    clip_id: &str,
) -> Result<(String, String), JobError> {
    if e.client_fault() {
        tracing::info!(clip = %clip_id, code = e.code.as_str(), "clip cannot be processed");
        return Ok((e.code.to_string(), e.message));
    }
    if e.code == MediaError::CRASHED && ctx.is_last_attempt() {
        tracing::warn!(clip = %clip_id, attempts = ctx.attempt(), "clip crashed the media worker on its last attempt");
        let message = format!(
            "the clip ended the media worker on the last of {} attempts: {}",
            ctx.attempt(),
            e.message
        );
        return Ok((e.code.to_string(), message));
    }
    Err(JobError::Retry(e.to_string()))
}

/// Making the posters of a task's processed clips at the event instant; on
/// the last attempt a poster that fails through our fault is left out, and
/// when the attempts run out all missing posters are given up, so the task
/// becomes claimable without them.
impl BackgroundJob for MakePosters {
    fn retry_policy(config: &Config) -> RetryPolicy {
        retry_policy(config)
    }

    async fn run(&self, ctx: &JobContext<'_>) -> Result<(), JobError> {
        make_posters(ctx, self).await
    }

    async fn give_up(&self, ctx: &JobContext<'_>, _error: &str) -> anyhow::Result<()> {
        let state = ctx.state;
        for p in clips::pending_posters(&state.db, &self.task_id).await? {
            review::poster_done(&state.db, &self.task_id, &p.clip.id, None, state.now()).await?;
        }
        Ok(())
    }
}

async fn make_posters(ctx: &JobContext<'_>, args: &MakePosters) -> Result<(), JobError> {
    let (state, job) = (ctx.state, ctx.job);
    let pending = clips::pending_posters(&state.db, &args.task_id)
        .await
        .map_err(retry)?;
    for p in pending {
        let scratch = Scratch::new(state, job)?;
        let video_key = p
            .clip
            .video_key
            .clone()
            .ok_or_else(|| JobError::Dead("ready clip without video".into()))?;
        let video = scratch.0.join("video.mp4");
        state
            .blobs
            .download(&video_key, &video)
            .await
            .map_err(retry)?;
        let duration = p.clip.duration_ms.unwrap_or(0);
        // An event just outside its clip (clock skew between cameras) still
        // gets the nearest frame rather than no poster.
        let at = p
            .event_offset_ms
            .unwrap_or(duration / 2)
            .clamp(0, (duration - 1).max(0));
        let out = scratch.0.join("poster.jpg");
        let key = match state
            .media
            .poster(video.clone(), at, out.clone(), POSTER_WIDTH)
            .await
        {
            Ok(_) => {
                let key = clips::blob_key(
                    &p.clip.store_id,
                    &p.clip.id,
                    &format!("poster-{}.jpg", args.task_id),
                );
                state.blobs.put_file(&key, &out).await.map_err(retry)?;
                Some(key)
            }
            Err(e) if e.client_fault() || ctx.is_last_attempt() => {
                tracing::warn!(task = %args.task_id, clip = %p.clip.id, code = e.code.as_str(), "no poster");
                None
            }
            Err(e) => return Err(JobError::Retry(e.to_string())),
        };
        review::poster_done(
            &state.db,
            &args.task_id,
            &p.clip.id,
            key.as_deref(),
            state.now(),
        )
        .await
        .map_err(retry)?;
    }
    Ok(())
}

/// The average frame rate of a clip, rounded to a thousandth; `None` when
/// it cannot be told (no frames, no duration).
fn frame_rate(frames: u64, duration_ms: i64) -> Option<f64> {
    (frames > 0 && duration_ms > 0)
        .then(|| (frames as f64 * 1000.0 / duration_ms as f64 * 1000.0).round() / 1000.0)
}

#[cfg(test)]
mod tests {
    use super::frame_rate;

    #[test]
    fn frame_rate_is_the_average_over_the_clip() {
        assert_eq!(frame_rate(60, 4_000), Some(15.0));
        assert_eq!(frame_rate(47, 1_567), Some(29.994));
        assert_eq!(frame_rate(0, 4_000), None);
        assert_eq!(frame_rate(10, 0), None);
    }
}
