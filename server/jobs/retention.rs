//! The daily retention run: every instance asks for today's run once an
//! hour, and the job's id is the day's, so exactly one job a day exists;
//! whichever worker takes it runs it ([`crate::review::retention::run`]).
//! A run cut short (a crash, a lost lease) is taken over by another worker
//! and picks up where it stopped: what it marked erased is deleted first.

use std::time::Duration;

use super::{BackgroundJob, JobContext, JobError};
use crate::config::Config;
use crate::db::jobs;
use crate::domain::job::{ApplyRetention, RetryPolicy};
use crate::domain::retention::day_of;
use crate::AppState;

/// Retried like webhooks; a day whose attempts all failed is caught up by
/// the next day's run, which deletes everything past retention by then.
impl BackgroundJob for ApplyRetention {
    fn retry_policy(config: &Config) -> RetryPolicy {
        super::webhook::retry_policy(config)
    }

    async fn run(&self, ctx: &JobContext<'_>) -> Result<(), JobError> {
        let state = ctx.state;
        let work = crate::review::retention::run(
            &state.db,
            &state.blobs,
            state.now(),
            state.config.audit_retention_days,
        );
        let report = super::renewing_lease(state, &ctx.job.id, work)
            .await
            .map_err(|e| JobError::Retry(format!("{e:#}")))?;
        let clips: u64 = report.stores.iter().map(|s| s.clips).sum();
        let footage: u64 = report.stores.iter().map(|s| s.footage).sum();
        tracing::info!(
            day = %crate::domain::time::format_rfc3339_ms(self.day),
            stores = report.stores.len(),
            clips,
            footage,
            blobs_deleted = report.deleted.blobs,
            blobs_left = report.deleted.failed,
            audit_rows_purged = report.audit_rows_purged,
            "retention run"
        );
        if report.deleted.failed > 0 {
            return Err(JobError::Retry(format!(
                "{} blobs of erased media could not be deleted yet",
                report.deleted.failed
            )));
        }
        Ok(())
    }
}

/// The id of the retention job of the day of `now`.
pub fn job_id(now: i64) -> String {
    format!("retention-{}", day_of(now))
}

/// Asks for the retention run of the day of `now`; whether this call made
/// the job (false: it exists already, made by this or another instance).
pub async fn schedule(state: &AppState) -> crate::error::Result<bool> {
    let now = state.now();
    let day = day_of(now);
    Ok(jobs::enqueue_once(&state.db, &job_id(now), &ApplyRetention { day }, now, now).await?)
}

/// How often an instance asks for the day's run.
const SCHEDULE_EVERY: Duration = Duration::from_secs(3_600);

/// Asks for the day's retention run at start and then once an hour.
pub async fn schedule_loop(state: AppState) {
    let mut tick = tokio::time::interval(SCHEDULE_EVERY);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tick.tick().await;
        if let Err(e) = schedule(&state).await {
            tracing::warn!(error = %e, "scheduling the retention run failed; retrying next hour");
        }
    }
}
