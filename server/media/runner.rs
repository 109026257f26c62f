//! Running media work from async code: one permit per operation, a time
//! limit, and a stop that really stops the work, whether the work runs in a
//! worker process or on this process's blocking pool.

use std::path::PathBuf;
use std::sync::Arc;
use std::time::Instant;

use tokio::sync::Semaphore;

use super::cancel::Cancel;
use super::cut::{CutAccuracy, Window};
use super::error::{MediaError, MediaResult};
use super::filmstrip::{Decode, Filmstrip};
use super::limits::MediaLimits;
use super::operation::{Operation, Outcome};
use super::pool::{BusyWorker, WorkerCommand, WorkerPool};
use super::poster::PosterInfo;
use super::probe::ProbeInfo;
use super::transcode::OutputInfo;

/// Runs media operations, at most `limits.max_concurrent` at once, each
/// within `limits.timeout`.
///
/// The server's runner sends them to worker processes
/// ([`MediaRunner::with_workers`]): a crash or a hang of FFmpeg on a hostile
/// file ends a worker, never the server. [`MediaRunner::new`] runs them on
/// this process's blocking pool instead (tests of the media code itself,
/// and the benchmark's in-process column).
///
/// The time limit starts once the operation holds its permit: waiting in
/// line is not the clip's fault. In process, when it runs out, the stop flag
/// is set and the runner waits for the blocking work to notice (it checks
/// between packets and frames, so within one frame's work) before it
/// answers `timeout`; in a worker, the worker is killed. The permit is
/// released only then. A partly written output is removed by the operation
/// itself, or left as a `.partial` file in the job's scratch directory,
/// which the job removes.
#[derive(Clone)]
pub struct MediaRunner {
    limits: Arc<MediaLimits>,
    permits: Arc<Semaphore>,
    observer: Option<Arc<Observer>>,
    workers: Option<Arc<WorkerPool>>,
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
            workers: None,
        }
    }

    /// A runner that sends operations to worker processes started with
    /// `command`.
    pub fn with_workers(self, command: WorkerCommand) -> MediaRunner {
        MediaRunner {
            workers: Some(Arc::new(WorkerPool::new(command))),
            ..self
        }
    }

    /// Starts as many workers as operations may run at once, so the first
    /// clips do not wait for processes to start (nothing in process).
    pub fn warm(&self) -> MediaResult<()> {
        match &self.workers {
            Some(pool) => pool.warm(self.limits.max_concurrent.max(1)),
            None => Ok(()),
        }
    }

    /// Worker processes running an operation now (none in process).
    pub fn busy_workers(&self) -> Vec<BusyWorker> {
        self.workers.as_ref().map(|p| p.busy()).unwrap_or_default()
    }

    /// Process ids of the live workers, idle or busy (none in process).
    pub fn worker_pids(&self) -> Vec<u32> {
        self.workers.as_ref().map(|p| p.pids()).unwrap_or_default()
    }

    /// Worker processes started so far (0 in process).
    pub fn workers_started(&self) -> u64 {
        self.workers.as_ref().map_or(0, |p| p.started())
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

    /// Runs `operation` under a permit and the time limit: in a worker
    /// process, or on the blocking pool.
    pub async fn perform(&self, operation: Operation) -> Outcome {
        let Some(pool) = self.workers.clone() else {
            return self
                .run(operation.name(), move |limits, cancel| {
                    operation.run(limits, cancel)
                })
                .await;
        };
        let _permit = self.permit().await?;
        let started = Instant::now();
        let outcome = pool.call(&operation, &self.limits).await;
        self.report(operation.name(), started, &outcome);
        outcome
    }

    async fn permit(&self) -> MediaResult<tokio::sync::OwnedSemaphorePermit> {
        self.permits
            .clone()
            .acquire_owned()
            .await
            .map_err(|_| MediaError::new(MediaError::INTERNAL, "the media runner is closed"))
    }

    /// Runs `work` on this process's blocking pool under a permit and the
    /// time limit, whatever the runner's mode: for work on trusted input
    /// (the demo's own footage). `work` gets the limits and the stop flag
    /// it must check.
    pub async fn run<T, F>(&self, operation: &'static str, work: F) -> MediaResult<T>
    where
        T: Send + 'static,
        F: FnOnce(&MediaLimits, &Cancel) -> MediaResult<T> + Send + 'static,
    {
        let permit = self.permit().await?;
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
        self.report(operation, started, &outcome);
        outcome
    }

    /// Tells the observer and the log how an operation went.
    fn report<T>(&self, operation: &str, started: Instant, outcome: &MediaResult<T>) {
        let elapsed = started.elapsed();
        let elapsed_ms = elapsed.as_millis() as u64;
        if let Some(observe) = &self.observer {
            observe(
                operation,
                outcome.as_ref().err().map(|e| e.code.as_str()),
                elapsed.as_secs_f64(),
            );
        }
        match outcome {
            Ok(_) => tracing::debug!(operation, elapsed_ms, "media operation done"),
            Err(e) if e.client_fault() => {
                tracing::info!(operation, elapsed_ms, code = e.code.as_str(), message = %e.message, "clip refused")
            }
            Err(e) => {
                tracing::warn!(operation, elapsed_ms, code = e.code.as_str(), message = %e.message, "media operation failed")
            }
        }
    }

    /// [`probe`](super::probe()).
    pub async fn probe(&self, input: impl Into<PathBuf>) -> MediaResult<ProbeInfo> {
        self.perform(Operation::Probe {
            input: input.into(),
        })
        .await?
        .into_probe()
    }

    /// [`make_browser_mp4`](super::make_browser_mp4()).
    pub async fn make_browser_mp4(
        &self,
        input: impl Into<PathBuf>,
        output: impl Into<PathBuf>,
        window: Option<Window>,
        accuracy: CutAccuracy,
    ) -> MediaResult<OutputInfo> {
        self.perform(Operation::MakeBrowserMp4 {
            input: input.into(),
            output: output.into(),
            window,
            accuracy,
        })
        .await?
        .into_browser_mp4()
    }

    /// [`poster`](super::poster()).
    pub async fn poster(
        &self,
        input: impl Into<PathBuf>,
        at_ms: i64,
        output: impl Into<PathBuf>,
        max_width: u32,
    ) -> MediaResult<PosterInfo> {
        self.perform(Operation::Poster {
            input: input.into(),
            at_ms,
            output: output.into(),
            max_width,
        })
        .await?
        .into_poster()
    }

    /// [`filmstrip`](super::filmstrip()).
    pub async fn filmstrip(
        &self,
        input: impl Into<PathBuf>,
        count: u32,
        tile_width: u32,
        decode: Decode,
        output: impl Into<PathBuf>,
    ) -> MediaResult<Filmstrip> {
        self.perform(Operation::Filmstrip {
            input: input.into(),
            count,
            tile_width,
            decode,
            output: output.into(),
        })
        .await?
        .into_filmstrip()
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
