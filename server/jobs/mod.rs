//! Background work: lease expiry, the database job queue (receipt
//! webhooks, media), the dashboard's rollups, and at startup the removal of
//! what crashed uploads left behind. Every loop survives errors and panics of a single run; the state
//! it works on lives in the database, so any instance can run it and a crash
//! loses nothing.

pub mod export;
pub mod media;
pub mod webhook;

use std::panic::AssertUnwindSafe;
use std::time::Duration;

use futures::FutureExt;
use tokio::task::JoinHandle;

use crate::db::{jobs, tasks};
use crate::AppState;

/// Jobs that deliver to stores.
pub const DELIVERY_JOBS: &[&str] = &[crate::db::receipts::WEBHOOK_JOB];
/// Training-data exports: long, so they have a worker of their own.
pub const EXPORT_JOBS: &[&str] = &[crate::db::export::EXPORT_JOB];
/// Jobs that run FFmpeg.
pub const MEDIA_JOBS: &[&str] = &[crate::db::clips::PROCESS_JOB, crate::db::clips::POSTERS_JOB];

/// Starts the background loops of one instance: lease expiry, one webhook
/// worker, and as many media workers as media jobs may run at once, so slow
/// video never delays a receipt.
pub fn spawn(state: AppState) -> Vec<JoinHandle<()>> {
    let client = webhook::client(&state.config);
    let mut handles = vec![
        tokio::spawn(upload_cleanup(state.clone())),
        tokio::spawn(lease_loop(state.clone())),
        tokio::spawn(job_loop(state.clone(), client.clone(), DELIVERY_JOBS)),
        tokio::spawn(job_loop(state.clone(), client.clone(), EXPORT_JOBS)),
    ];
    if state.config.rollup_interval_ms > 0 {
        handles.push(tokio::spawn(rollup_loop(state.clone())));
    }
    if state.db.backend == crate::db::Backend::Postgres && state.config.queue_vacuum_interval_ms > 0
    {
        handles.push(tokio::spawn(vacuum_loop(state.clone())));
    }
    for _ in 0..state.config.media_concurrency.max(1) {
        handles.push(tokio::spawn(job_loop(
            state.clone(),
            client.clone(),
            MEDIA_JOBS,
        )));
    }
    handles
}

/// Returns tasks whose lease ran out to the queue, once.
pub async fn sweep_leases(state: &AppState) -> crate::error::Result<u64> {
    let n = tasks::expire_leases(&state.db, state.now()).await?;
    if n > 0 {
        crate::metrics::leases_expired(n);
        tracing::info!(
            expired = n,
            "returned tasks with expired leases to the queue"
        );
    }
    Ok(n)
}

/// Adds the facts that arrived since the last run to the dashboard's
/// rollup tables, up to a few seconds before now (see
/// [`crate::db::rollup::roll_up`]).
pub async fn roll_up(state: &AppState) -> crate::error::Result<crate::db::rollup::RollupRun> {
    let started = std::time::Instant::now();
    let run = crate::db::rollup::roll_up(&state.db, state.now()).await?;
    // Catching up (the first run after a start, or after a pause) is worth a
    // line in the log; the regular few-second step is not.
    if run.steps > 1 {
        tracing::info!(
            steps = run.steps,
            from = %crate::domain::time::format_rfc3339_ms(run.from),
            to = %crate::domain::time::format_rfc3339_ms(run.to),
            elapsed_ms = started.elapsed().as_millis() as u64,
            "dashboard rollups caught up"
        );
    }
    Ok(run)
}

/// Runs [`roll_up`] every `rollup_interval_ms`, forever; the first run at
/// once, so a starting instance catches up on what arrived while none ran.
async fn rollup_loop(state: AppState) {
    let mut tick = tokio::time::interval(Duration::from_millis(state.config.rollup_interval_ms));
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tick.tick().await;
        let run = AssertUnwindSafe(roll_up(&state)).catch_unwind().await;
        match run {
            Ok(Ok(_)) => {}
            Ok(Err(e)) => tracing::warn!(error = %e, "dashboard rollup failed; retrying next tick"),
            Err(_) => tracing::error!("dashboard rollup panicked; retrying next tick"),
        }
    }
}

/// Removes what uploads interrupted by a crash left behind (see
/// [`crate::db::clips::sweep_uploads`]): rows still `uploading` and blobs
/// without a row, older than [`crate::db::clips::UPLOAD_GRACE_MS`].
pub async fn sweep_uploads(state: &AppState) -> crate::error::Result<crate::db::clips::Swept> {
    let stale_before = state.now() - crate::db::clips::UPLOAD_GRACE_MS;
    let swept = crate::db::clips::sweep_uploads(&state.db, &state.blobs, stale_before).await?;
    if swept != crate::db::clips::Swept::default() {
        tracing::info!(
            rows = swept.rows,
            blobs = swept.blobs,
            "removed what interrupted uploads left behind"
        );
    }
    Ok(swept)
}

/// The startup cleanup: sweeps once now and once more when the uploads the
/// crash interrupted just before this start are past their grace period.
async fn upload_cleanup(state: AppState) {
    let grace = Duration::from_millis(crate::db::clips::UPLOAD_GRACE_MS as u64);
    for wait in [Duration::ZERO, grace] {
        tokio::time::sleep(wait).await;
        if let Err(e) = sweep_uploads(&state).await {
            tracing::warn!(error = %format!("{e:#}"), "sweeping interrupted uploads failed");
        }
    }
}

/// Tables whose rows change state on every claim, verdict or job.
const QUEUE_TABLES: &str = "review_tasks, task_leases, jobs";

/// Vacuums the queue tables on PostgreSQL (SQLite reuses freed pages itself
/// and has no dead row versions to walk over).
pub async fn vacuum_queue(state: &AppState) -> Result<(), sqlx::Error> {
    if state.db.backend == crate::db::Backend::Postgres {
        // VACUUM cannot run in a transaction: a plain statement on the pool.
        sqlx::raw_sql(&format!("VACUUM (ANALYZE) {QUEUE_TABLES}"))
            .execute(state.db.writer())
            .await?;
    }
    Ok(())
}

/// Vacuums the queue tables every `queue_vacuum_interval_ms`, forever (the
/// first time one interval after the start).
pub async fn vacuum_loop(state: AppState) {
    let mut tick =
        tokio::time::interval(Duration::from_millis(state.config.queue_vacuum_interval_ms));
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    tick.tick().await;
    loop {
        tick.tick().await;
        if let Err(e) = vacuum_queue(&state).await {
            tracing::warn!(error = %e, "vacuuming the queue tables failed; retrying next tick");
        }
    }
}

async fn lease_loop(state: AppState) {
    let mut tick =
        tokio::time::interval(Duration::from_millis(state.config.lease_sweep_interval_ms));
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tick.tick().await;
        if let Err(e) = sweep_leases(&state).await {
            tracing::warn!(error = %e, "lease sweep failed; retrying next tick");
        }
    }
}

async fn job_loop(state: AppState, client: reqwest::Client, kinds: &'static [&'static str]) {
    let idle = Duration::from_millis(state.config.job_poll_interval_ms);
    loop {
        match run_next_job(&state, &client, kinds).await {
            Ok(true) => {}
            Ok(false) => tokio::time::sleep(idle).await,
            Err(e) => {
                tracing::warn!(error = %e, "job queue unavailable; retrying");
                tokio::time::sleep(idle).await;
            }
        }
    }
}

/// Takes and runs one due job of the given kinds; false when none was due.
pub async fn run_next_job(
    state: &AppState,
    client: &reqwest::Client,
    kinds: &[&str],
) -> Result<bool, sqlx::Error> {
    let Some(job) =
        jobs::take_due(&state.db, kinds, state.now(), state.config.job_lease_ms).await?
    else {
        return Ok(false);
    };
    let started = std::time::Instant::now();
    let run = AssertUnwindSafe(run_job(state, client, &job))
        .catch_unwind()
        .await;
    let result = match run {
        Ok(r) => r,
        Err(_) => Err(JobError::Retry("the job panicked".into())),
    };
    let now = state.now();
    let seconds = started.elapsed().as_secs_f64();
    match result {
        Ok(()) => {
            crate::metrics::job_attempt(&job.kind, "done", seconds);
            jobs::complete(&state.db, &job.id, now).await?
        }
        Err(JobError::Retry(msg)) => {
            let attempts = job.attempts + 1;
            let retry_at = (attempts < state.config.webhook_max_attempts).then(|| {
                now + webhook::backoff_ms(
                    attempts,
                    state.config.webhook_backoff_base_ms,
                    state.config.webhook_backoff_max_ms,
                )
            });
            crate::metrics::job_attempt(
                &job.kind,
                if retry_at.is_some() { "failed" } else { "dead" },
                seconds,
            );
            tracing::warn!(job = %job.id, kind = %job.kind, attempts, error = %msg, "job failed");
            jobs::fail(&state.db, &job.id, &msg, retry_at, now).await?;
            if retry_at.is_none() && job.kind == crate::db::export::EXPORT_JOB {
                // Out of attempts (a panic among them): the export says so.
                if let Ok(args) = serde_json::from_str::<serde_json::Value>(&job.payload) {
                    if let Some(id) = args["export_id"].as_str() {
                        export::give_up(state, id, crate::db::export::ERROR_FAILED, &msg).await;
                    }
                }
            }
        }
        Err(JobError::Dead(msg)) => {
            crate::metrics::job_attempt(&job.kind, "dead", seconds);
            tracing::error!(job = %job.id, kind = %job.kind, error = %msg, "job cannot succeed");
            jobs::fail(&state.db, &job.id, &msg, None, now).await?;
        }
    }
    Ok(true)
}

/// How a job run failed.
#[derive(Debug)]
pub enum JobError {
    /// Worth trying again later.
    Retry(String),
    /// Can never succeed (e.g. its store is gone); kept as dead with the error.
    Dead(String),
}

async fn run_job(
    state: &AppState,
    client: &reqwest::Client,
    job: &jobs::Job,
) -> Result<(), JobError> {
    match job.kind.as_str() {
        crate::db::receipts::WEBHOOK_JOB => webhook::deliver(state, client, job).await,
        crate::db::clips::PROCESS_JOB => media::process_clip(state, job).await,
        crate::db::clips::POSTERS_JOB => media::make_posters(state, job).await,
        crate::db::export::EXPORT_JOB => export::run(state, job).await,
        other => Err(JobError::Dead(format!("unknown job kind {other:?}"))),
    }
}
