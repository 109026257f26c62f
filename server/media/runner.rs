//! Running blocking FFmpeg work from async code: one permit per operation,
//! a time limit, and a stop flag that really stops the work.

use std::path::PathBuf;
use std::sync::Arc;
use std::time::Instant;

use tokio::sync::Semaphore;

use super::cancel::Cancel;
use super::cut::{CutAccuracy, Window};
use super::error::{MediaError, MediaResult};
use super::filmstrip::{Decode, Filmstrip};
use super::limits::MediaLimits;
use super::poster::PosterInfo;
use super::probe::ProbeInfo;
use super::transcode::OutputInfo;

/// Runs media operations on tokio's blocking pool, at most
/// `limits.max_concurrent` at once, each within `limits.timeout`.
///
/// The time limit starts once the operation holds its permit: waiting in
/// line is not the clip's fault. When it runs out, the stop flag is set and
/// the runner waits for the blocking work to notice (it checks between
/// packets and frames, so within one frame's work) before it answers
/// `timeout`; the permit is released only then. A partly written output is
/// removed by the operation itself.
#[derive(Clone)]
pub struct MediaRunner {
    limits: Arc<MediaLimits>,
    permits: Arc<Semaphore>,
    observer: Option<Arc<Observer>>,
}

/// Told of every finished operation: its name, its error code if it failed,
/// and the seconds it ran. The server passes its metrics here, so this crate
/// needs nothing from the server.
pub type Observer = dyn Fn(&str, Option<&str>, f64) + Send + Sync;

impl MediaRunner {
    /// A runner enforcing `limits` that reports to no one.
    pub fn new(limits: MediaLimits) -> MediaRunner {
        let permits = Arc::new(Semaphore::new(limits.max_concurrent.max(1)));
        MediaRunner {
            limits: Arc::new(limits),
            permits,
            observer: None,
        }
    }

    /// A runner enforcing `limits` that tells `observer` of every operation.
    pub fn with_observer(
        limits: MediaLimits,
        observer: impl Fn(&str, Option<&str>, f64) + Send + Sync + 'static,
    ) -> MediaRunner {
        MediaRunner {
            observer: Some(Arc::new(observer)),
            ..MediaRunner::new(limits)
        }
    }

    /// The limits in force.
    pub fn limits(&self) -> &MediaLimits {
        &self.limits
    }

    /// Permits free right now (`max_concurrent` when idle).
    pub fn available_permits(&self) -> usize {
        self.permits.available_permits()
    }

    /// Runs `work` on the blocking pool under a permit and the time limit.
    /// `work` gets the limits and the stop flag it must check.
    pub async fn run<T, F>(&self, operation: &'static str, work: F) -> MediaResult<T>
    where
        T: Send + 'static,
        F: FnOnce(&MediaLimits, &Cancel) -> MediaResult<T> + Send + 'static,
    {
        let permit = self
            .permits
            .clone()
            .acquire_owned()
            .await
            .map_err(|_| MediaError::new(MediaError::INTERNAL, "the media runner is closed"))?;
        let cancel = Cancel::new();
        // Dropping this future (a job aborted) stops the work too.
        let _stop_on_drop = StopOnDrop(cancel.clone());
        let limits = self.limits.clone();
        let flag = cancel.clone();
        let started = Instant::now();
        let mut handle = tokio::task::spawn_blocking(move || {
            let _permit = permit;
            work(&limits, &flag)
        });
        let outcome = match tokio::time::timeout(self.limits.timeout, &mut handle).await {
            Ok(joined) => joined_result(joined),
            Err(_) => {
                cancel.cancel();
                // The work stops at its next check; wait so the permit and
                // the core are really free when we answer.
                let _ = handle.await;
                Err(MediaError::new(
                    MediaError::TIMEOUT,
                    format!(
                        "{operation} took longer than {} ms and was stopped",
                        self.limits.timeout.as_millis()
                    ),
                ))
            }
        };
        let elapsed = started.elapsed();
        let elapsed_ms = elapsed.as_millis() as u64;
        if let Some(observe) = &self.observer {
            observe(
                operation,
                outcome.as_ref().err().map(|e| e.code.as_str()),
                elapsed.as_secs_f64(),
            );
        }
        match &outcome {
            Ok(_) => tracing::debug!(operation, elapsed_ms, "media operation done"),
            Err(e) if e.client_fault() => {
                tracing::info!(operation, elapsed_ms, code = e.code.as_str(), message = %e.message, "clip refused")
            }
            Err(e) => {
                tracing::warn!(operation, elapsed_ms, code = e.code.as_str(), message = %e.message, "media operation failed")
            }
        }
        outcome
    }

    /// [`probe`](super::probe()) on the blocking pool.
    pub async fn probe(&self, input: impl Into<PathBuf>) -> MediaResult<ProbeInfo> {
        let input = input.into();
        self.run("probe", move |limits, cancel| {
            super::probe(&input, limits, cancel)
        })
        .await
    }

    /// [`make_browser_mp4`](super::make_browser_mp4()) on the blocking pool.
    pub async fn make_browser_mp4(
        &self,
        input: impl Into<PathBuf>,
        output: impl Into<PathBuf>,
        window: Option<Window>,
        accuracy: CutAccuracy,
    ) -> MediaResult<OutputInfo> {
        let (input, output) = (input.into(), output.into());
        self.run("make_browser_mp4", move |limits, cancel| {
            super::make_browser_mp4(&input, &output, window, accuracy, limits, cancel)
        })
        .await
    }

    /// [`poster`](super::poster()) on the blocking pool.
    pub async fn poster(
        &self,
        input: impl Into<PathBuf>,
        at_ms: i64,
        output: impl Into<PathBuf>,
        max_width: u32,
    ) -> MediaResult<PosterInfo> {
        let (input, output) = (input.into(), output.into());
        self.run("poster", move |limits, cancel| {
            super::poster(&input, at_ms, &output, max_width, limits, cancel)
        })
        .await
    }

    /// [`filmstrip`](super::filmstrip()) on the blocking pool.
    pub async fn filmstrip(
        &self,
        input: impl Into<PathBuf>,
        count: u32,
        tile_width: u32,
        decode: Decode,
        output: impl Into<PathBuf>,
    ) -> MediaResult<Filmstrip> {
        let (input, output) = (input.into(), output.into());
        self.run("filmstrip", move |limits, cancel| {
            super::filmstrip(&input, count, tile_width, decode, &output, limits, cancel)
        })
        .await
    }
}

struct StopOnDrop(Cancel);

impl Drop for StopOnDrop {
    fn drop(&mut self) {
        self.0.cancel();
    }
}

fn joined_result<T>(joined: Result<MediaResult<T>, tokio::task::JoinError>) -> MediaResult<T> {
    joined.unwrap_or_else(|e| {
        Err(MediaError::new(
            MediaError::INTERNAL,
            format!("media work panicked: {e}"),
        ))
    })
}
