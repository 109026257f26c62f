//! Recount: human-in-the-loop video review for checkout-free stores.
//!
//! Data flows through the modules in this order:
//!
//! - [`api`] receives a store's catalog and events over HTTP, standing with
//!   the pages ([`web`]) on one edge, [`http`]: who is calling, sessions,
//!   and the HTTP status of each error code ([`error::Code`]);
//! - [`domain`] decides, without I/O, whether an event needs a human
//!   ([`domain::routing`]), when verdicts settle a task
//!   ([`domain::consensus`]) and what a receipt says ([`domain::receipt`]);
//! - [`db`] stores each decision in SQLite or PostgreSQL through one query
//!   layer, runs the review queue (claims, leases, verdicts) and finalizes
//!   receipts exactly once;
//! - [`jobs`] runs background work from the database: lease expiry and
//!   receipt webhooks with retries;
//! - `demo` (with the `demo` feature) fills a fresh install with a store,
//!   users and a stream of simulated shoppers.
//!
//! [`app`] builds the HTTP router that `recount serve` and the tests run.

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
}

impl AppState {
    /// The state of one instance: blob store and media limits from `config`.
    pub fn new(db: Db, config: Config, clock: Arc<dyn Clock>) -> anyhow::Result<AppState> {
        config.validate()?;
        let blobs = Blobs::from_config(&config)?;
        let scratch = storage::scratch_dir(&config.data_dir)?;
        let media = Arc::new(MediaRunner::with_observer(
            media_limits(&config),
            metrics::media_operation,
        ));
        Ok(AppState {
            db,
            config: Arc::new(config),
            clock,
            blobs,
            media,
            scratch,
            tokens: Arc::new(TokenCache::default()),
            logins: Arc::new(login::LoginGuard::default()),
        })
    }

    /// Now, in epoch milliseconds.
    pub fn now(&self) -> i64 {
        self.clock.now_ms()
    }
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
        .layer(TraceLayer::new_for_http())
        .with_state(state)
}
