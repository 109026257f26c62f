//! Background work: lease expiry, the database job queue (receipt
//! webhooks, media, exports), the dashboard's rollups, and at startup the
//! removal of what crashed uploads left behind. Every loop survives errors
//! and panics of a single run; the state it works on lives in the database,
//! so any instance can run it and a crash loses nothing.
//!
//! A kind of queued job is a type: its payload and name are plain data in
//! [`crate::domain::job`] (so `db` can enqueue it), and its
//! [`BackgroundJob`] impl here says how it runs, how it retries and how it
//! gives up. The worker finds a job's kind in [`REGISTRY`]; the retry
//! decision is [`RetryPolicy::after_failure`].
//!
//! Errors: a run returns [`JobError`] — `Retry` for what may succeed later
//! (the kind's policy decides whether it does), `Dead` for what never will.
//! A give-up returns an [`anyhow::Error`] only to be logged and kept on the
//! dead job. Only the queue's own database errors (`sqlx::Error`) leave
//! [`run_next_job`].

pub mod export;
pub mod media;
pub mod retention;
pub mod webhook;

use std::future::Future;
use std::panic::AssertUnwindSafe;
use std::time::Duration;

use futures::future::BoxFuture;
use futures::FutureExt;
use tokio::task::JoinHandle;

use crate::config::Config;
use crate::db::jobs;
use crate::db::jobs::Job;
use crate::domain::job::{
    AfterFailure, ApplyRetention, DeliverReceipt, JobKind, MakePosters, ProcessClip, RetryPolicy,
    RunExport,
};
use crate::AppState;

/// Jobs that deliver to stores.
pub const DELIVERY_JOBS: &[&str] = &[DeliverReceipt::KIND];
/// Training-data exports: long, so they have a worker of their own.
pub const EXPORT_JOBS: &[&str] = &[RunExport::KIND];
/// Housekeeping: the daily retention run.
pub const MAINTENANCE_JOBS: &[&str] = &[ApplyRetention::KIND];
/// Jobs that run FFmpeg.
pub const MEDIA_JOBS: &[&str] = &[ProcessClip::KIND, MakePosters::KIND];

/// Starts the background loops of one instance: lease expiry, one webhook
/// worker, and as many media workers as media jobs may run at once, so slow
/// video never delays a receipt.
pub fn spawn(state: AppState) -> Vec<JoinHandle<()>> {
    let client = webhook::client(&state.config);
    let mut handles = vec![
        tokio::spawn(upload_cleanup(state.clone())),
        tokio::spawn(lease_loop(state.clone())),
        tokio::spawn(token_purge_loop(state.clone())),
        tokio::spawn(job_loop(state.clone(), client.clone(), DELIVERY_JOBS)),
        tokio::spawn(job_loop(state.clone(), client.clone(), EXPORT_JOBS)),
        tokio::spawn(job_loop(state.clone(), client.clone(), MAINTENANCE_JOBS)),
        tokio::spawn(retention::schedule_loop(state.clone())),
    ];
    if state.db.listen_url().is_some() {
        handles.push(tokio::spawn(listener(state.clone())));
    }
    if state.config.rollup_interval_ms > 0 {
        handles.push(tokio::spawn(rollup_loop(state.clone())));
    }
    if state.config.deadline_sweep_interval_ms > 0 {
        handles.push(tokio::spawn(deadline_loop(state.clone())));
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
    let n = crate::review::queue::expire_leases(&state.db, state.now()).await?;
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
/// [`crate::review::rollup::roll_up`]).
pub async fn roll_up(state: &AppState) -> crate::error::Result<crate::review::rollup::RollupRun> {
    let started = std::time::Instant::now();
    let run = crate::review::rollup::roll_up(&state.db, state.now()).await?;
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

/// How often expired tokens are deleted.
const TOKEN_PURGE_EVERY: Duration = Duration::from_secs(3_600);

/// Deletes expired tokens once an hour, forever (the first time at once):
/// an expired token already fails, but its row would stay forever.
async fn token_purge_loop(state: AppState) {
    let mut tick = tokio::time::interval(TOKEN_PURGE_EVERY);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tick.tick().await;
        match crate::db::users::purge_expired_tokens(&state.db, state.now()).await {
            Ok(0) => {}
            Ok(n) => tracing::info!(tokens = n, "expired tokens purged"),
            Err(e) => {
                tracing::warn!(error = %e, "purging expired tokens failed; retrying next hour")
            }
        }
    }
}

/// Listens, on PostgreSQL, for what other instances announce:
///
/// - access changes (a user disabled, signed out, paused, given other
///   stores; a token ended; a store's row changed): the cached tokens or
///   store are forgotten at once, so such a change holds on every instance
///   at once, not within the cache's freshness;
/// - ready tasks: this instance's waiting claims look again
///   ([`crate::db::ready`]).
///
/// After a lost connection announcements may have been missed meanwhile:
/// the whole token and store caches are forgotten and the waiting claims
/// look again.
pub async fn listener(state: AppState) {
    use crate::db::ready::{listener, READY_CHANNEL};
    use crate::db::users::{AccessChange, ACCESS_CHANNEL};
    let missed = |state: &AppState| {
        state.tokens.clear();
        state.db.store_keys.clear();
        state.db.ready.bump();
    };
    loop {
        match listener(&state.db).await {
            Ok(Some(mut listener)) => {
                missed(&state);
                loop {
                    match listener.try_recv().await {
                        Ok(Some(n)) if n.channel() == READY_CHANNEL => state.db.ready.bump(),
                        Ok(Some(n)) if n.channel() == ACCESS_CHANNEL => {
                            match AccessChange::parse(n.payload()) {
                                Some(AccessChange::Store(id)) => state.db.store_keys.forget(&id),
                                Some(change) => state.tokens.apply(&change),
                                None => {}
                            }
                        }
                        Ok(Some(_)) => {}
                        // The connection dropped (the next call reconnects):
                        // what was announced meanwhile is lost.
                        Ok(None) => missed(&state),
                        Err(e) => {
                            tracing::warn!(error = %e, "notifications lost; reconnecting");
                            break;
                        }
                    }
                }
            }
            Ok(None) => return,
            Err(e) => tracing::warn!(error = %e, "listening for notifications failed; retrying"),
        }
        tokio::time::sleep(Duration::from_secs(1)).await;
    }
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
/// [`crate::review::media::sweep_uploads`]): rows still `uploading` and
/// blobs without a row, older than [`crate::review::media::UPLOAD_GRACE_MS`].
pub async fn sweep_uploads(state: &AppState) -> crate::error::Result<crate::review::media::Swept> {
    let stale_before = state.now() - crate::review::media::UPLOAD_GRACE_MS;
    let swept = crate::review::media::sweep_uploads(&state.db, &state.blobs, stale_before).await?;
    if swept != crate::review::media::Swept::default() {
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
    let grace = Duration::from_millis(crate::review::media::UPLOAD_GRACE_MS as u64);
    for wait in [Duration::ZERO, grace] {
        tokio::time::sleep(wait).await;
        if let Err(e) = sweep_uploads(&state).await {
            tracing::warn!(error = %format!("{e:#}"), "sweeping interrupted uploads failed");
        }
    }
}

/// Tables whose rows change state on every claim, verdict or job.
const QUEUE_TABLES: &str = "review_tasks, task_leases, jobs";

/// Tables that grow with every event, whose statistics steer ingest's plans.
const GROWING_TABLES: &str = "events, sessions";

/// Vacuums the queue tables on PostgreSQL (SQLite reuses freed pages itself
/// and has no dead row versions to walk over), and refreshes the statistics
/// of the growing tables: a statement planned while they were small (a new
/// database's first requests) scans them whole until new statistics make
/// PostgreSQL plan it again, which autovacuum, when it is on, does only once
/// enough rows have changed.
pub async fn vacuum_queue(state: &AppState) -> Result<(), sqlx::Error> {
    if state.db.backend == crate::db::Backend::Postgres {
        // VACUUM cannot run in a transaction (nor in a string of several
        // statements, which is one): plain statements on the pool.
        sqlx::raw_sql(&format!("VACUUM (ANALYZE) {QUEUE_TABLES}"))
            .execute(state.db.writer())
            .await?;
        sqlx::raw_sql(&format!("ANALYZE {GROWING_TABLES}"))
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

/// Hands tasks at risk of a late receipt to supervisors
/// ([`crate::review::queue::escalate_at_risk`]); the number escalated.
pub async fn escalate_at_risk(state: &AppState) -> crate::error::Result<usize> {
    let escalated = crate::review::queue::escalate_at_risk(
        &state.db,
        state.now(),
        state.config.deadline_lead_ms,
        state.config.labeler_active_window_ms,
    )
    .await?;
    for (task, reason) in &escalated {
        tracing::info!(task = %task, reason = reason.as_str(), "task escalated to keep its receipt on time");
    }
    Ok(escalated.len())
}

async fn deadline_loop(state: AppState) {
    let mut tick = tokio::time::interval(Duration::from_millis(
        state.config.deadline_sweep_interval_ms,
    ));
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tick.tick().await;
        if let Err(e) = escalate_at_risk(&state).await {
            tracing::warn!(error = %e, "deadline sweep failed; retrying next tick");
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

/// A kind of job the workers can run: what an attempt does, how failed
/// attempts are retried and what is left behind when they run out.
pub trait BackgroundJob: JobKind + Send + Sync + 'static {
    /// How failed attempts of this kind are retried, from the settings.
    fn retry_policy(config: &Config) -> RetryPolicy;

    /// Makes one attempt at the job.
    fn run(&self, ctx: &JobContext<'_>) -> impl Future<Output = Result<(), JobError>> + Send;

    /// Leaves what the job works on in a final state once its last attempt
    /// has failed (a panic included), so nothing waits for it forever. Not
    /// called for [`JobError::Dead`]: a run that says so has settled what it
    /// could itself. Nothing, unless the kind says otherwise.
    fn give_up(
        &self,
        ctx: &JobContext<'_>,
        error: &str,
    ) -> impl Future<Output = anyhow::Result<()>> + Send {
        let _ = (ctx, error);
        async { Ok(()) }
    }
}

/// What an attempt at a job may use.
pub struct JobContext<'a> {
    /// The instance.
    pub state: &'a AppState,
    /// The HTTP client for webhook deliveries.
    pub client: &'a reqwest::Client,
    /// The job as taken from the queue.
    pub job: &'a Job,
    /// Its kind's retry policy.
    pub policy: RetryPolicy,
}

impl JobContext<'_> {
    /// The number of this attempt, 1 for the first.
    pub fn attempt(&self) -> i64 {
        self.job.attempts + 1
    }

    /// Whether this attempt is the last the kind's policy allows.
    pub fn is_last_attempt(&self) -> bool {
        self.policy.is_last(self.attempt())
    }
}

/// How a job run failed.
#[derive(Debug)]
pub enum JobError {
    /// Worth trying again later, if the kind's policy allows.
    Retry(String),
    /// Can never succeed (e.g. its store is gone); kept as dead with the error.
    Dead(String),
}

/// One kind the workers know: its name and how to make an attempt at it.
pub struct Registration {
    /// The [`JobKind::KIND`] it runs.
    pub kind: &'static str,
    attempt: for<'a> fn(&'a AppState, &'a reqwest::Client, &'a Job) -> BoxFuture<'a, Outcome>,
}

impl Registration {
    /// Registers the kind `K`.
    pub const fn of<K: BackgroundJob>() -> Registration {
        Registration {
            kind: K::KIND,
            attempt: boxed_attempt::<K>,
        }
    }
}

/// Every kind of job this build can run. A job of any other kind dies.
pub const REGISTRY: &[Registration] = &[
    Registration::of::<DeliverReceipt>(),
    Registration::of::<ProcessClip>(),
    Registration::of::<MakePosters>(),
    Registration::of::<RunExport>(),
    Registration::of::<ApplyRetention>(),
];

/// How one attempt at a job ended.
enum Outcome {
    /// It succeeded.
    Done,
    /// It failed and runs again at `at`.
    Retry { at: i64, error: String },
    /// Its last attempt failed; its kind gave up.
    OutOfAttempts(String),
    /// It can never succeed.
    Dead(String),
}

fn boxed_attempt<'a, K: BackgroundJob>(
    state: &'a AppState,
    client: &'a reqwest::Client,
    job: &'a Job,
) -> BoxFuture<'a, Outcome> {
    Box::pin(attempt::<K>(state, client, job))
}

/// Decodes the payload of a job of kind `K`; one that does not decode can
/// never run.
pub fn payload<K: JobKind>(job: &Job) -> Result<K, JobError> {
    serde_json::from_str(&job.payload).map_err(|e| JobError::Dead(format!("bad payload: {e}")))
}

/// Makes one attempt at `job` as a `K`, and on its last failure gives up.
async fn attempt<K: BackgroundJob>(
    state: &AppState,
    client: &reqwest::Client,
    job: &Job,
) -> Outcome {
    let payload = match payload::<K>(job) {
        Ok(p) => p,
        Err(JobError::Dead(e) | JobError::Retry(e)) => return Outcome::Dead(e),
    };
    let ctx = JobContext {
        state,
        client,
        job,
        policy: K::retry_policy(&state.config),
    };
    let error = match AssertUnwindSafe(payload.run(&ctx)).catch_unwind().await {
        Ok(Ok(())) => return Outcome::Done,
        Ok(Err(JobError::Dead(e))) => return Outcome::Dead(e),
        Ok(Err(JobError::Retry(e))) => e,
        Err(_) => "the job panicked".to_string(),
    };
    match ctx
        .policy
        .after_failure(ctx.attempt(), state.now(), rand::random::<f64>())
    {
        AfterFailure::RetryAt(at) => Outcome::Retry { at, error },
        AfterFailure::GiveUp => {
            let given_up = AssertUnwindSafe(payload.give_up(&ctx, &error))
                .catch_unwind()
                .await;
            match given_up {
                Ok(Ok(())) => Outcome::OutOfAttempts(error),
                Ok(Err(e)) => Outcome::Dead(format!("{error}; giving up failed too: {e:#}")),
                Err(_) => Outcome::Dead(format!("{error}; giving up panicked")),
            }
        }
    }
}

/// Runs `work` while renewing the job's lease every third of
/// `job_lease_ms`. The lease is short, so a job whose instance died is taken
/// over within one lease (a receipt webhook waits seconds, not minutes);
/// renewing keeps a job that runs longer than one lease from being taken
/// over while its worker is alive. A renewal that fails is logged: the job
/// goes on, and at worst runs twice, which every job kind tolerates.
pub async fn renewing_lease<F: Future>(state: &AppState, job_id: &str, work: F) -> F::Output {
    let lease_ms = state.config.job_lease_ms;
    let every = Duration::from_millis((lease_ms / 3).max(1) as u64);
    let mut tick = tokio::time::interval_at(tokio::time::Instant::now() + every, every);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    let mut work = std::pin::pin!(work);
    loop {
        tokio::select! {
            out = &mut work => return out,
            _ = tick.tick() => {
                if let Err(e) = jobs::extend(&state.db, job_id, state.now() + lease_ms).await {
                    tracing::warn!(job = %job_id, error = %e, "could not renew a job's lease");
                }
            }
        }
    }
}

/// Takes the next due job of one of `kinds`, fairly across stores
/// ([`jobs::take_due`]), and records the store's turn in the same
/// transaction: a store with thousands of due jobs delays another store's
/// next job by at most one job per worker.
pub async fn take_due(
    db: &crate::db::Db,
    kinds: &[&str],
    now: i64,
    lease_ms: i64,
) -> crate::db::Result<Option<jobs::Job>> {
    let mut tx = db.begin().await?;
    let job = jobs::take_due(&mut tx, kinds, now, lease_ms).await?;
    if let Some(store_id) = job.as_ref().and_then(|j| j.store_id.as_deref()) {
        jobs::record_turn(&mut tx, store_id, now).await?;
    }
    tx.commit().await?;
    Ok(job)
}

/// Takes and runs one due job of the given kinds; false when none was due.
pub async fn run_next_job(
    state: &AppState,
    client: &reqwest::Client,
    kinds: &[&str],
) -> crate::db::Result<bool> {
    let Some(job) = take_due(&state.db, kinds, state.now(), state.config.job_lease_ms).await?
    else {
        return Ok(false);
    };
    let started = std::time::Instant::now();
    let outcome = match REGISTRY.iter().find(|r| r.kind == job.kind) {
        Some(kind) => renewing_lease(state, &job.id, (kind.attempt)(state, client, &job)).await,
        None => Outcome::Dead(format!("unknown job kind {:?}", job.kind)),
    };
    let now = state.now();
    let seconds = started.elapsed().as_secs_f64();
    let attempts = job.attempts + 1;
    match outcome {
        Outcome::Done => {
            crate::metrics::job_attempt(&job.kind, "done", seconds);
            jobs::complete(&state.db, &job.id, now).await?
        }
        Outcome::Retry { at, error } => {
            crate::metrics::job_attempt(&job.kind, "failed", seconds);
            tracing::warn!(job = %job.id, kind = %job.kind, attempts, error = %error, "job failed");
            jobs::fail(&state.db, &job.id, &error, Some(at), now).await?;
        }
        Outcome::OutOfAttempts(error) => {
            crate::metrics::job_attempt(&job.kind, "dead", seconds);
            tracing::warn!(job = %job.id, kind = %job.kind, attempts, error = %error, "job failed");
            tracing::error!(job = %job.id, kind = %job.kind, attempts, "job gave up after its last attempt");
            jobs::fail(&state.db, &job.id, &error, None, now).await?;
        }
        Outcome::Dead(error) => {
            crate::metrics::job_attempt(&job.kind, "dead", seconds);
            tracing::error!(job = %job.id, kind = %job.kind, error = %error, "job cannot succeed");
            jobs::fail(&state.db, &job.id, &error, None, now).await?;
        }
    }
    Ok(true)
}
