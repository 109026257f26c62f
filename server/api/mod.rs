//! The review-queue API: JSON handlers and the OpenAPI document generated
//! from their own types. Who is calling and how errors are answered is the
//! HTTP edge's part ([`crate::http`]).

pub mod audit;
pub mod contract;
pub mod dashboard;
pub mod disputes;
pub mod erasure;
pub mod exports;
pub mod gold;
pub mod ingest;
pub mod media;
pub mod queue;
pub mod stores;
pub mod system;
pub mod users;

use utoipa::openapi::security::{HttpAuthScheme, HttpBuilder, SecurityScheme};
use utoipa::{Modify, OpenApi};
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use crate::http::error::ErrorCodes;
use crate::AppState;

#[derive(OpenApi)]
#[openapi(
    info(
        title = "Recount review-queue API",
        description = "Store systems send events and read receipts; labelers and supervisors claim and answer review tasks."
    ),
    modifiers(&BearerAuth),
    tags(
        (name = "store", description = "For store systems, with the store's API key"),
        (name = "queue", description = "For labelers and supervisors, with a user token"),
        (name = "dashboard", description = "For supervisors: queue health, throughput, receipt latency, labeler quality, model calibration"),
        (name = "exports", description = "For supervisors: training-data exports; for admins: each store's consent to training use"),
        (name = "admin", description = "For admins: people's access (disable, enable, sign out everywhere, reset a password)"),
        (name = "system", description = "Health, metrics and this document")
    )
)]
struct ApiDoc;

struct BearerAuth;

impl Modify for BearerAuth {
    fn modify(&self, openapi: &mut utoipa::openapi::OpenApi) {
        let components = openapi.components.get_or_insert_with(Default::default);
        components.add_security_scheme(
            "bearer",
            SecurityScheme::Http(HttpBuilder::new().scheme(HttpAuthScheme::Bearer).build()),
        );
    }
}

/// Every API route, with its OpenAPI description collected alongside.
pub fn router() -> OpenApiRouter<AppState> {
    let mut router = OpenApiRouter::with_openapi(ApiDoc::openapi())
        .routes(routes!(ingest::put_products, ingest::list_products))
        .routes(routes!(ingest::post_events))
        .routes(routes!(ingest::exit_session))
        .routes(routes!(ingest::get_receipt))
        .routes(routes!(erasure::erase_session_media))
        .routes(routes!(disputes::open))
        .routes(routes!(disputes::get))
        .routes(routes!(disputes::put_blind_review))
        .routes(routes!(stores::rotate_webhook_secret))
        .routes(routes!(stores::list))
        .routes(routes!(stores::get, stores::patch))
        .routes(routes!(stores::rotate_api_key))
        .routes(routes!(stores::test_delivery))
        .routes(routes!(stores::deliveries))
        .routes(routes!(stores::redeliver))
        .routes(routes!(media::upload_clip))
        .routes(routes!(media::upload_footage))
        .routes(routes!(media::clip_status))
        .routes(routes!(media::clip_video))
        .routes(routes!(media::clip_filmstrip))
        .routes(routes!(media::task_clip_poster))
        .routes(routes!(queue::issue_token))
        .routes(routes!(queue::claim))
        .routes(routes!(queue::heartbeat))
        .routes(routes!(queue::release))
        .routes(routes!(queue::verdict))
        .routes(routes!(queue::task_detail))
        .routes(routes!(queue::task_context))
        .routes(routes!(queue::leased))
        .routes(routes!(queue::task_products))
        .routes(routes!(queue::escalations))
        .routes(routes!(queue::resolve))
        .routes(routes!(queue::correct))
        .routes(routes!(queue::get_policy, queue::put_policy))
        .routes(routes!(gold::mark, gold::list))
        .routes(routes!(gold::retire))
        .routes(routes!(gold::quality))
        .routes(routes!(dashboard::get_dashboard))
        .routes(routes!(dashboard::get_confidence_bins))
        .routes(routes!(dashboard::get_calibration))
        .routes(routes!(dashboard::get_recommendation))
        .routes(routes!(dashboard::get_staffing))
        .routes(routes!(users::list, users::create))
        .routes(routes!(users::pause))
        .routes(routes!(users::resume))
        .routes(routes!(users::disable))
        .routes(routes!(users::enable))
        .routes(routes!(users::revoke_tokens))
        .routes(routes!(users::reset_password))
        .routes(routes!(users::put_stores))
        .routes(routes!(audit::list))
        .routes(routes!(audit::csv))
        .routes(routes!(exports::create, exports::list))
        .routes(routes!(exports::get, exports::delete))
        .routes(routes!(exports::file))
        .routes(routes!(exports::put_training))
        .routes(routes!(system::healthz))
        .routes(routes!(system::metrics));
    // The error schema exists once a route has used it.
    ErrorCodes.modify(router.get_openapi_mut());
    contract::SharedAnswers.modify(router.get_openapi_mut());
    router
}
