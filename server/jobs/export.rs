//! The export job: runs one training-data export (`crate::export`) into
//! blob storage, reporting progress as it goes.
//!
//! A run that dies (crash, lost lease) is taken over by another worker and
//! starts over: files are uploaded only when complete and listed only when
//! the whole export is, so a half-written export is never downloadable.
//! Each run has its own token; a run that was taken over stops at its next
//! progress report and can never mark the export done.

use futures::future::BoxFuture;
use futures::StreamExt;

use super::media::Scratch;
use super::{BackgroundJob, JobContext, JobError};
use crate::config::Config;
use crate::db::export::{self as exports, Run};
use crate::db::jobs::Job;
use crate::domain::job::{RetryPolicy, RunExport};
use crate::export::{self, Destination, Progress};
use crate::review::exports as review;
use crate::AppState;

/// What runs after each progress report of an export job, once the report
/// is stored: nothing in the server; tests use it to change the world at a
/// known point of a run (delete the export, withdraw consent).
pub type Watch = dyn Fn(Progress) -> BoxFuture<'static, ()> + Send + Sync;

/// An export: retried as webhooks are (it has no settings of its own);
/// when the attempts run out (a panic among them) the export is failed with
/// `export-failed` and what its runs uploaded is removed.
impl BackgroundJob for RunExport {
    fn retry_policy(config: &Config) -> RetryPolicy {
        super::webhook::retry_policy(config)
    }

    async fn run(&self, ctx: &JobContext<'_>) -> Result<(), JobError> {
        run(ctx.state, ctx.job, self, &|_| Box::pin(async {})).await
    }

    async fn give_up(&self, ctx: &JobContext<'_>, error: &str) -> anyhow::Result<()> {
        give_up(ctx.state, &self.export_id, exports::ERROR_FAILED, error).await;
        Ok(())
    }
}

/// Runs the export a taken job names once, calling `watch` after each
/// progress report; giving up after the last attempt is left to the worker
/// ([`super::run_next_job`]).
pub async fn run_watched(state: &AppState, job: &Job, watch: &Watch) -> Result<(), JobError> {
    let args: RunExport = super::payload(job)?;
    run(state, job, &args, watch).await
}

async fn run(state: &AppState, job: &Job, args: &RunExport, watch: &Watch) -> Result<(), JobError> {
    let id = &args.export_id;
    let outcome = run_once(state, job, id, watch).await;
    if outcome.is_err() && exports::is_deleted(&state.db, id).await.unwrap_or(false) {
        // Deleted while it ran: the run stopped at its next report; what it
        // uploaded after the deletion removed the files goes too.
        remove_files(state, id).await;
        return Ok(());
    }
    match outcome {
        Ok(()) => Ok(()),
        Err(Stop::Retry(message)) => Err(JobError::Retry(message)),
        Err(Stop::Fail(code, message)) => {
            give_up(state, id, code, &message).await;
            Err(JobError::Dead(message))
        }
    }
}

/// Why a run of an export stopped short.
enum Stop {
    /// Try again later: a database or storage hiccup, a run taken over.
    Retry(String),
    /// Never again: the export fails with this `error_code` and message.
    Fail(&'static str, String),
}

impl From<JobError> for Stop {
    fn from(e: JobError) -> Stop {
        match e {
            JobError::Retry(m) => Stop::Retry(m),
            JobError::Dead(m) => Stop::Fail(exports::ERROR_FAILED, m),
        }
    }
}

/// Marks the export of a job that will not run again failed and removes
/// what its runs uploaded.
pub async fn give_up(state: &AppState, export_id: &str, code: &str, message: &str) {
    remove_files(state, export_id).await;
    if let Err(e) = exports::fail(&state.db, export_id, code, message, state.now()).await {
        tracing::error!(export = %export_id, error = %e, "could not mark the export failed");
    }
}

/// Deletes every blob under `exports/<id>/` (what its runs uploaded).
pub async fn remove_files(state: &AppState, export_id: &str) {
    let prefix = exports::blob_key(export_id, "");
    let mut listed = state.blobs.list(prefix.trim_end_matches('/'));
    while let Some(entry) = listed.next().await {
        let removed = match entry {
            Ok((key, _)) => state.blobs.delete(&key).await,
            Err(e) => Err(e),
        };
        if let Err(e) = removed {
            tracing::warn!(export = %export_id, error = %e, "could not remove an export file");
        }
    }
}

async fn run_once(state: &AppState, job: &Job, id: &str, watch: &Watch) -> Result<(), Stop> {
    fn retry(e: impl std::fmt::Display) -> Stop {
        Stop::Retry(e.to_string())
    }
    let Some(Run {
        spec,
        as_of,
        run_id,
    }) = exports::start(&state.db, id, state.now())
        .await
        .map_err(retry)?
    else {
        // Already done, failed or deleted: nothing to run. A deleted one may
        // still hold what a run that died uploaded after the deletion.
        if exports::is_deleted(&state.db, id).await.map_err(retry)? {
            remove_files(state, id).await;
        }
        return Ok(());
    };
    // Files of an earlier run that died are rewritten whole; none may stay.
    remove_files(state, id).await;
    // The consent switch may have changed since the export was asked for.
    consented(state, &spec.filter.stores).await?;
    let scratch = Scratch::new(state, job)?;
    let dest = Destination::Blobs {
        blobs: state.blobs.clone(),
        export_id: id.to_string(),
        scratch: scratch.0.clone(),
    };
    let run_id = run_id.as_str();
    let summary = export::run(
        &state.db,
        &state.blobs,
        &spec,
        as_of,
        &dest,
        |p| async move {
            review::progress(
                &state.db,
                id,
                run_id,
                p.looked_at,
                p.total,
                p.samples,
                p.bytes,
            )
            .await?;
            watch(p).await;
            Ok(())
        },
    )
    .await
    .map_err(|e| Stop::Retry(format!("{e:#}")))?;
    // Consent withdrawn while it ran: what was read before must not ship.
    let stores: Vec<String> = summary.card.stores.keys().cloned().collect();
    let finished = review::finish(
        &state.db,
        id,
        run_id,
        &stores,
        &summary.files,
        summary.card.samples,
        state.now(),
    )
    .await
    .map_err(retry)?;
    if let review::Finish::Refused(refused) = finished {
        return Err(refusal(&refused));
    }
    tracing::info!(
        export = %id,
        samples = summary.card.samples,
        bytes = summary.bytes(),
        "export finished"
    );
    Ok(())
}

/// Fails for good when one of `stores` no longer allows training use; a
/// database hiccup is retried.
async fn consented(state: &AppState, stores: &[String]) -> Result<(), Stop> {
    let refused = exports::refused_stores(&state.db, stores)
        .await
        .map_err(|e| Stop::Retry(e.to_string()))?;
    if refused.is_empty() {
        return Ok(());
    }
    Err(refusal(&refused))
}

fn refusal(refused: &[String]) -> Stop {
    Stop::Fail(
        exports::ERROR_REFUSED,
        format!(
            "store(s) {} no longer allow their data to be used for training",
            refused.join(", ")
        ),
    )
}
