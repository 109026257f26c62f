//! The export job: runs one training-data export (`crate::export`) into
//! blob storage, reporting progress as it goes.
//!
//! A run that dies (crash, lost lease) is taken over by another worker and
//! starts over: files are uploaded only when complete and listed only when
//! the whole export is, so a half-written export is never downloadable.

use serde::Deserialize;

use super::media::{last_attempt, Scratch};
use super::JobError;
use crate::db::export as exports;
use crate::db::jobs::{self, Job};
use crate::export::{self, Destination};
use crate::AppState;

#[derive(Deserialize)]
struct ExportJob {
    export_id: String,
}

/// Runs the export a job names.
pub async fn run(state: &AppState, job: &Job) -> Result<(), JobError> {
    let args: ExportJob = serde_json::from_str(&job.payload)
        .map_err(|e| JobError::Dead(format!("bad payload: {e}")))?;
    let id = &args.export_id;
    let result = run_once(state, job, id).await;
    match result {
        Err(JobError::Retry(message)) if last_attempt(state, job) => {
            let _ = exports::fail(&state.db, id, &message, state.now()).await;
            Err(JobError::Dead(message))
        }
        Err(JobError::Dead(message)) => {
            let _ = exports::fail(&state.db, id, &message, state.now()).await;
            Err(JobError::Dead(message))
        }
        other => other,
    }
}

async fn run_once(state: &AppState, job: &Job, id: &str) -> Result<(), JobError> {
    let retry = |e: crate::error::Error| JobError::Retry(e.to_string());
    let Some((spec, as_of)) = exports::start(&state.db, id, state.now())
        .await
        .map_err(retry)?
    else {
        // Already done or failed: nothing to do.
        return Ok(());
    };
    // The consent switch may have changed since the export was asked for.
    if let Err(e) = exports::check(&state.db, &spec).await {
        return Err(JobError::Dead(e.to_string()));
    }
    let scratch = Scratch::new(state, job)?;
    let dest = Destination::Blobs {
        blobs: state.blobs.clone(),
        export_id: id.to_string(),
        scratch: scratch.0.clone(),
    };
    let lease_ms = state.config.job_lease_ms;
    let summary = export::run(
        &state.db,
        &state.blobs,
        &spec,
        as_of,
        &dest,
        |p| async move {
            exports::progress(&state.db, id, p.looked_at, p.total, p.samples, p.bytes).await?;
            // Still working: keep the job from being taken over.
            jobs::extend(&state.db, &job.id, state.now() + lease_ms).await?;
            Ok(())
        },
    )
    .await
    .map_err(|e| JobError::Retry(format!("{e:#}")))?;
    exports::finish(
        &state.db,
        id,
        &summary.files,
        summary.card.samples,
        state.now(),
    )
    .await
    .map_err(retry)?;
    tracing::info!(
        export = %id,
        samples = summary.card.samples,
        bytes = summary.bytes(),
        "export finished"
    );
    Ok(())
}
