//! Recount: human-in-the-loop video review for checkout-free stores.
//!
//! Stores send the events their cameras' model saw (a shopper took or put
//! back a product, with its confidence) and the clips that show them.
//! Recount settles the sure ones at once, sends the unsure ones to
//! labelers, and answers each shopper's session with a receipt once every
//! event of it is settled.
//!
//! # Layout
//!
//! The modules, in the order data flows through them:
//!
//! * [`http`]: the HTTP edge under both faces: who is calling, the session
//!   cookie and its CSRF token, page sign-in, and the HTTP status of every
//!   error code.
//!
//! * [`api`]: the JSON API and its OpenAPI document: a store's catalog,
//!   clips, events, exits and receipts; labelers' claims and verdicts;
//!   supervisors' escalations, gold tasks, policies and exports.
//!
//! * [`web`]: the browser pages: sign-in, the labeling console and the
//!   supervisor pages (dashboard with server-drawn charts, escalations,
//!   gold, policy, exports). It never imports [`api`], nor [`api`] it.
//!
//! * [`review`]: the use cases: each request's transaction, the lock
//!   order (a session before its task), refusals with their codes, jobs
//!   enqueued and metrics recorded after commit.
//!
//! * [`login`]: one password check and one throttle for the sign-in form
//!   and `POST /api/v1/auth/token`.
//!
//! * [`error`]: the one error type of request handling, a registry code and
//!   a message, in no protocol's terms.
//!
//! * [`db`]: row I/O over SQLite and PostgreSQL, with its own error type:
//!   events and sessions, review tasks and leases, gold copies, receipts,
//!   clips, the job queue, rollups and the dashboard snapshot.
//!
//! * [`jobs`]: the background loops of every instance: lease expiry,
//!   workers for receipt webhooks, media and exports, dashboard rollups.
//!
//! * [`export`]: the training-data export writer (manifest, tar shards,
//!   dataset card), run by `recount export` and by the export job.
//!
//! * [`domain`]: crate `recount-domain`, the pure rules without I/O: the
//!   review lifecycle, routing, consensus, receipts, error codes, job
//!   retries, the dashboard's arithmetic.
//!
//! * [`media`]: crate `recount-media`, FFmpeg through `ffmpeg-next`: probe,
//!   browser MP4, poster, filmstrip, run in `recount media-worker`
//!   processes under the limits and timeouts of a `MediaRunner`.
//!
//! * [`storage`]: blobs (clips, posters, filmstrips, exports) in a local
//!   directory or S3, and per-process scratch directories.
//!
//! Beside the flow:
//!
//! * [`auth`]: store API keys, user tokens and passwords, roles.
//!
//! * [`config`]: settings from defaults, a TOML file, `RECOUNT_*` variables
//!   and flags.
//!
//! * [`clock`]: the time source, replaceable in tests.
//!
//! * [`metrics`]: the Prometheus metrics.
//!
//! * `demo` (feature `demo`): a demo store, users, and simulated shoppers
//!   and labelers with synthetic footage.
//!
//! * `bench` (feature `bench`): `recount bench`, load tests on a throw-away
//!   database.
//!
//! * `layout_tests` (tests only): the checks of the source tree's shape the
//!   compiler cannot make.
//!
//! [`AppState`] is what every handler and job shares; [`app`] builds the HTTP
//! router that `recount serve` and the tests run. `docs/architecture.md`
//! maps every source file.

pub mod api;
pub mod auth;
#[cfg(feature = "bench")]
pub mod bench;
pub mod clock;
pub mod config;
pub mod db;
#[cfg(feature = "demo")]
pub mod demo;
pub mod error;
pub mod export;
pub mod http;
pub mod jobs;
pub mod login;
pub mod metrics;
pub mod review;
pub mod sim;
pub mod storage;
pub mod web;

/// The pure rules (crate `recount-domain`).
pub use recount_domain as domain;
/// FFmpeg work (crate `recount-media`).
pub use recount_media as media;

#[cfg(test)]
mod layout_tests;

use std::sync::Arc;

use axum::extract::DefaultBodyLimit;
use axum::Router;
use std::time::Duration;

use tower_http::timeout::RequestBodyTimeoutLayer;
use tower_http::trace::TraceLayer;

use std::path::PathBuf;

use crate::clock::Clock;
use crate::config::Config;
use crate::db::users::TokenCache;
use crate::db::Db;
use crate::error::Code;
use crate::http::error::error_response;
use crate::media::{MediaLimits, MediaRunner};
use crate::storage::Blobs;

/// What every request handler and background job shares.
#[derive(Clone)]
pub struct AppState {
    /// The database.
    pub db: Db,
    /// Settings.
    pub config: Arc<Config>,
    /// The time source.
    pub clock: Arc<dyn Clock>,
    /// Clips, posters, filmstrips.
    pub blobs: Blobs,
    /// FFmpeg work under a concurrency limit and timeouts.
    pub media: Arc<MediaRunner>,
    /// This process's directory for temporary files.
    pub scratch: PathBuf,
    /// Recently seen API tokens.
    pub tokens: Arc<TokenCache>,
    /// Failed-login throttle.
    pub logins: Arc<login::LoginGuard>,
    /// Where each new event's audit draw comes from (uniform in `[0, 1)`):
    /// random in service; a run that must be repeatable (the simulator's
    /// agreement test) gives its own sequence, as it gives its own clock.
    pub audit_draw: AuditDraw,
    /// Staffing forecasts made on this instance.
    pub forecasts: review::staffing::Forecasts,
    /// The proxies whose `X-Forwarded-For` is believed (`trusted_proxies`).
    pub trusted_proxies: Arc<crate::domain::proxy::TrustedProxies>,
    /// Each store's uploads in progress here (`store_max_concurrent_uploads`).
    pub upload_slots: Arc<api::media::UploadSlots>,
}

/// A source of audit draws.
pub type AuditDraw = Arc<dyn Fn() -> f64 + Send + Sync>;

impl AppState {
    /// The state of one instance: blob store and media limits from `config`.
    pub fn new(db: Db, config: Config, clock: Arc<dyn Clock>) -> anyhow::Result<AppState> {
        config.validate()?;
        let blobs = Blobs::from_config(&config)?;
        let scratch = storage::scratch_dir(&config.data_dir)?;
        let forecasts = review::staffing::Forecasts::new(config.labor_cost());
        let trusted_proxies = Arc::new(config.trusted_proxies()?);
        let media = Arc::new(
            MediaRunner::with_observer(media_limits(&config), metrics::media_operation)
                .with_workers(media_worker_command(&config)?),
        );
        Ok(AppState {
            db,
            config: Arc::new(config),
            clock,
            blobs,
            media,
            scratch,
            tokens: Arc::new(TokenCache::default()),
            logins: Arc::new(login::LoginGuard::default()),
            audit_draw: Arc::new(rand::random::<f64>),
            forecasts,
            trusted_proxies,
            upload_slots: Arc::default(),
        })
    }

    /// Now, in epoch milliseconds.
    pub fn now(&self) -> i64 {
        self.clock.now_ms()
    }
}

/// How the media runner starts a worker process: `media_worker_command`, or
/// this program, with `media-worker` and the worker's limits.
pub fn media_worker_command(config: &Config) -> anyhow::Result<crate::media::WorkerCommand> {
    let (program, mut args): (std::path::PathBuf, Vec<std::ffi::OsString>) =
        match config.media_worker_command.split_first() {
            Some((program, args)) => (program.into(), args.iter().map(Into::into).collect()),
            None => (
                std::env::current_exe().map_err(|e| {
                    anyhow::anyhow!("finding this program to run media workers: {e}")
                })?,
                Vec::new(),
            ),
        };
    args.push("media-worker".into());
    args.push("--memory-mb".into());
    args.push(config.media_worker_memory_mb.to_string().into());
    Ok(crate::media::WorkerCommand {
        program,
        args,
        cpu_seconds: config.media_worker_cpu_s,
    })
}

/// Media limits from the settings.
pub fn media_limits(config: &Config) -> MediaLimits {
    let defaults = MediaLimits::default();
    let side = u64::from(config.media_max_dimension);
    MediaLimits {
        max_width: config.media_max_dimension,
        max_height: config.media_max_dimension,
        max_pixels: defaults.max_pixels.min(side * side),
        max_duration_ms: config.media_max_footage_ms.max(config.media_max_clip_ms),
        timeout: std::time::Duration::from_millis(config.media_timeout_ms),
        max_concurrent: config.media_concurrency.max(1),
        ..defaults
    }
}

/// The HTTP application.
pub fn app(state: AppState) -> Router {
    let (router, openapi) = api::router().split_for_parts();
    let openapi = Arc::new(openapi);
    router
        .merge(web::router())
        .route(
            "/api/openapi.json",
            axum::routing::get(move || {
                let doc = openapi.clone();
                async move { axum::Json(doc.as_ref().clone()) }
            }),
        )
        .fallback(|| async { error_response(Code::NotFound, "no such endpoint") })
        .method_not_allowed_fallback(|| async {
            error_response(
                Code::MethodNotAllowed,
                "this endpoint does not take that method",
            )
        })
        .layer(DefaultBodyLimit::max(state.config.json_body_limit))
        .layer(axum::middleware::from_fn_with_state(
            state.clone(),
            answer_in_time,
        ))
        .layer(RequestBodyTimeoutLayer::new(Duration::from_millis(
            state.config.body_idle_timeout_ms,
        )))
        .layer(TraceLayer::new_for_http())
        .with_state(state)
}

/// Answers `408 request-timeout` to a request not answered within
/// `request_timeout_ms` (its work is dropped: a transaction in flight rolls
/// back). Uploads are exempt: a large video on a slow link takes what it
/// takes, as long as its bytes keep coming (`body_idle_timeout_ms`).
async fn answer_in_time(
    axum::extract::State(state): axum::extract::State<AppState>,
    req: axum::extract::Request,
    next: axum::middleware::Next,
) -> axum::response::Response {
    let upload = req.method() == axum::http::Method::POST
        && api::media::UPLOAD_PATHS.contains(&req.uri().path());
    if upload {
        return next.run(req).await;
    }
    let limit = Duration::from_millis(state.config.request_timeout_ms);
    match tokio::time::timeout(limit, next.run(req)).await {
        Ok(response) => response,
        Err(_) => error_response(
            Code::RequestTimeout,
            "the request took longer than the server waits",
        ),
    }
}
