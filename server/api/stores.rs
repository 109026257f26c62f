//! A store's settings: what supervisors of the store read (settings,
//! receipt deliveries) and what admins change (name, webhook URL,
//! retention, secrets and key, test deliveries, redeliveries). Every change
//! is recorded in the audit trail.

use axum::extract::State;
use serde::{Deserialize, Serialize};
use utoipa::{IntoParams, ToSchema};

use crate::db::stores;
use crate::domain::time::format_rfc3339_ms;
use crate::error::{Code, Error, Result};
use crate::http::error::ErrorBody;
use crate::http::extract::{AdminCaller, JsonObject, Path, Query, SupervisorCaller};
use crate::review::admin as review;
use crate::AppState;

/// A store's new webhook secret.
#[derive(Debug, Deserialize, Serialize, ToSchema)]
pub struct RotatedWebhookSecret {
    /// Store id.
    pub store_id: String,
    /// The new secret (`whsec_` and base64), shown once: every delivery is
    /// signed with it from now on.
    pub webhook_secret: String,
    /// Until when (RFC 3339) the replaced secret signs deliveries beside
    /// it: switch the receiver's verifier before then.
    pub previous_valid_until: String,
}

/// Replaces a store's webhook secret (admins). The old secret keeps
/// signing deliveries beside the new one for `webhook_secret_overlap_ms`,
/// so no delivery fails verification while the store switches over.
#[utoipa::path(post, path = "/api/v1/stores/{store_id}/webhook-secret/rotate", tag = "queue", security(("bearer" = [])),
    params(("store_id" = String, Path)),
    responses(
        (status = 200, body = RotatedWebhookSecret),
        (status = 404, description = "`unknown-store`", body = ErrorBody),
    ))]
pub async fn rotate_webhook_secret(
    State(state): State<AppState>,
    AdminCaller(admin): AdminCaller,
    Path(store_id): Path<String>,
) -> Result<axum::Json<RotatedWebhookSecret>> {
    let rotated = crate::review::admin::rotate_webhook_secret(
        &state.db,
        &admin.actor(),
        &store_id,
        state.now(),
        state.config.webhook_secret_overlap_ms,
    )
    .await?
    .ok_or_else(|| Error::unknown_store(&store_id))?;
    Ok(axum::Json(RotatedWebhookSecret {
        store_id,
        webhook_secret: rotated.secret,
        previous_valid_until: format_rfc3339_ms(rotated.previous_valid_until),
    }))
}

/// A store's settings as supervisors and admins see them.
#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct StoreSettings {
    /// Store id.
    pub store_id: String,
    /// Display name.
    pub name: String,
    /// Where receipts are posted; none: no deliveries.
    pub webhook_url: Option<String>,
    /// Until when (RFC 3339) a rotated webhook secret still signs beside
    /// the new one, during a rotation.
    pub previous_secret_valid_until: Option<String>,
    /// Whether its events may become training data.
    pub training_allowed: bool,
    /// Whether every task is shown blind.
    pub blind_review: bool,
    /// Days shopper video is kept after the receipt is final.
    pub media_retention_days: i64,
}

impl StoreSettings {
    fn of(s: &stores::Store, now: i64) -> StoreSettings {
        StoreSettings {
            store_id: s.id.clone(),
            name: s.name.clone(),
            webhook_url: s.webhook_url.clone(),
            previous_secret_valid_until: s
                .previous_webhook_secret
                .as_ref()
                .filter(|(_, until)| *until > now)
                .map(|(_, until)| format_rfc3339_ms(*until)),
            training_allowed: s.training_allowed,
            blind_review: s.blind_review,
            media_retention_days: s.media_retention_days,
        }
    }
}

/// The stores the caller covers, by name (supervisors).
#[utoipa::path(get, path = "/api/v1/stores", tag = "admin", security(("bearer" = [])),
    responses((status = 200, body = Vec<StoreSettings>)))]
pub async fn list(
    State(state): State<AppState>,
    SupervisorCaller(user): SupervisorCaller,
) -> Result<axum::Json<Vec<StoreSettings>>> {
    let now = state.now();
    Ok(axum::Json(
        stores::list(&state.db)
            .await?
            .iter()
            .filter(|s| user.scope.sees(&s.id))
            .map(|s| StoreSettings::of(s, now))
            .collect(),
    ))
}

/// A store's settings (supervisors of the store).
#[utoipa::path(get, path = "/api/v1/stores/{store_id}", tag = "admin", security(("bearer" = [])),
    params(("store_id" = String, Path)),
    responses(
        (status = 200, body = StoreSettings),
        (status = 404, description = "`unknown-store`", body = ErrorBody),
    ))]
pub async fn get(
    State(state): State<AppState>,
    SupervisorCaller(user): SupervisorCaller,
    Path(store_id): Path<String>,
) -> Result<axum::Json<StoreSettings>> {
    let store = review::covered_store(&state.db, &user, &store_id).await?;
    Ok(axum::Json(StoreSettings::of(&store, state.now())))
}

/// Settings to change; absent fields keep their value.
#[derive(Debug, Default, Deserialize, Serialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct StorePatch {
    /// Display name (1 to 200 characters).
    #[schema(min_length = 1, max_length = 200)]
    pub name: Option<String>,
    /// Where receipts are posted: an http(s) URL without credentials;
    /// `null` stops deliveries.
    #[serde(default, deserialize_with = "present_text")]
    #[schema(value_type = Option<String>, max_length = 2048)]
    pub webhook_url: Option<Option<String>>,
    /// Days shopper video is kept after the receipt is final (1 to 3650).
    #[serde(default, deserialize_with = "crate::domain::whole::optional")]
    #[schema(minimum = 1, maximum = 3650)]
    pub media_retention_days: Option<i64>,
}

/// Tells a field sent as `null` (`Some(None)`) from one not sent (`None`).
fn present_text<'de, D: serde::Deserializer<'de>>(
    d: D,
) -> Result<Option<Option<String>>, D::Error> {
    Option::<String>::deserialize(d).map(Some)
}

/// Changes a store's name, webhook URL or retention (admins). Each change
/// is recorded in the audit trail with its before and after.
#[utoipa::path(patch, path = "/api/v1/stores/{store_id}", tag = "admin", security(("bearer" = [])),
    params(("store_id" = String, Path)),
    request_body = StorePatch,
    responses(
        (status = 200, body = StoreSettings),
        (status = 404, description = "`unknown-store`", body = ErrorBody),
        (status = 422, description = "`invalid-name`, `invalid-webhook-url`, `invalid-retention`", body = ErrorBody),
    ))]
pub async fn patch(
    State(state): State<AppState>,
    AdminCaller(admin): AdminCaller,
    Path(store_id): Path<String>,
    JsonObject(body): JsonObject<StorePatch>,
) -> Result<axum::Json<StoreSettings>> {
    let change = review::StoreChange {
        name: body.name,
        webhook_url: body.webhook_url,
        media_retention_days: body.media_retention_days,
    };
    let now = state.now();
    let store = review::change_store(&state.db, &admin.actor(), &store_id, &change, now).await?;
    Ok(axum::Json(StoreSettings::of(&store, now)))
}

/// A store's new API key.
#[derive(Debug, Deserialize, Serialize, ToSchema)]
pub struct RotatedKey {
    /// Store id.
    pub store_id: String,
    /// The new key, shown once; the old one stops working at once.
    pub api_key: String,
}

/// Replaces a store's API key (admins): the new key is shown once and the
/// old one stops working at once.
#[utoipa::path(post, path = "/api/v1/stores/{store_id}/api-key/rotate", tag = "admin", security(("bearer" = [])),
    params(("store_id" = String, Path)),
    responses(
        (status = 200, body = RotatedKey),
        (status = 404, description = "`unknown-store`", body = ErrorBody),
    ))]
pub async fn rotate_api_key(
    State(state): State<AppState>,
    AdminCaller(admin): AdminCaller,
    Path(store_id): Path<String>,
) -> Result<axum::Json<RotatedKey>> {
    let key = review::rotate_api_key(&state.db, &admin.actor(), &store_id, state.now())
        .await?
        .ok_or_else(|| Error::unknown_store(&store_id))?;
    Ok(axum::Json(RotatedKey {
        store_id,
        api_key: key,
    }))
}

/// How a test delivery went.
#[derive(Debug, Deserialize, Serialize, ToSchema)]
pub struct TestDeliveryResult {
    /// Whether the store answered 2xx.
    pub delivered: bool,
    /// The delivery's `webhook-id`.
    pub delivery_id: String,
    /// The store's HTTP status, if it answered.
    pub status: Option<u16>,
    /// Why it failed, if it did.
    pub error: Option<String>,
    /// How long it took, in milliseconds.
    pub took_ms: u64,
}

/// Sends a signed `webhook.test` delivery to the store's webhook URL now
/// (admins), signed as receipts are, and says how it went; nothing is
/// queued or retried.
#[utoipa::path(post, path = "/api/v1/stores/{store_id}/webhook-test", tag = "admin", security(("bearer" = [])),
    params(("store_id" = String, Path)),
    responses(
        (status = 200, body = TestDeliveryResult),
        (status = 404, description = "`unknown-store`", body = ErrorBody),
        (status = 422, description = "`no-webhook-url`", body = ErrorBody),
    ))]
pub async fn test_delivery(
    State(state): State<AppState>,
    AdminCaller(admin): AdminCaller,
    Path(store_id): Path<String>,
) -> Result<axum::Json<TestDeliveryResult>> {
    let store = review::covered_store(&state.db, &admin, &store_id).await?;
    let url = store.webhook_url.clone().ok_or_else(|| {
        Error::new(
            Code::NoWebhookUrl,
            "the store has no webhook URL; set one first",
        )
    })?;
    let client = crate::jobs::webhook::client(&state.config);
    let sent = crate::jobs::webhook::send_test(&client, &store, &url, state.now()).await;
    Ok(axum::Json(TestDeliveryResult {
        delivered: sent.error.is_none(),
        delivery_id: sent.delivery_id,
        status: sent.status,
        error: sent.error,
        took_ms: sent.took_ms,
    }))
}

/// One receipt delivery to a store.
#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct DeliveryView {
    /// Its `webhook-id`.
    pub delivery_id: String,
    /// The shopper's session whose receipt it announces.
    pub session_id: Option<String>,
    /// The receipt version (1: `receipt.finalized`, later:
    /// `receipt.adjusted`).
    pub version: i64,
    /// `queued` (waiting for its next attempt), `running`, `done` or
    /// `dead` (gave up; can be sent again).
    pub status: String,
    /// Attempts made.
    pub attempts: i64,
    /// The last failure.
    pub last_error: Option<String>,
    /// When it was queued (RFC 3339).
    pub created_at: String,
    /// Its next attempt while queued; otherwise when it last changed.
    pub next_attempt_at: Option<String>,
    /// When it last changed.
    pub updated_at: String,
}

impl From<crate::db::jobs::Delivery> for DeliveryView {
    fn from(d: crate::db::jobs::Delivery) -> DeliveryView {
        let payload: Option<crate::domain::job::DeliverReceipt> =
            serde_json::from_str(&d.payload).ok();
        let queued = d.status == crate::domain::job::JobStatus::Queued;
        DeliveryView {
            delivery_id: d.id,
            session_id: payload.as_ref().map(|p| p.session_id.clone()),
            version: payload.and_then(|p| p.version).unwrap_or(1),
            status: d.status.as_str().into(),
            attempts: d.attempts,
            last_error: d.last_error,
            created_at: format_rfc3339_ms(d.created_at),
            next_attempt_at: queued.then(|| format_rfc3339_ms(d.run_at)),
            updated_at: format_rfc3339_ms(d.updated_at),
        }
    }
}

/// Where a delivery is.
#[derive(Debug, Clone, Copy, Deserialize, Serialize, ToSchema)]
#[serde(rename_all = "lowercase")]
pub enum DeliveryStatus {
    /// Waiting for its (next) attempt.
    Queued,
    /// Being sent.
    Running,
    /// Delivered.
    Done,
    /// Gave up after `webhook_max_attempts`; can be sent again.
    Dead,
}

impl DeliveryStatus {
    fn job_status(self) -> crate::domain::job::JobStatus {
        use crate::domain::job::JobStatus;
        match self {
            DeliveryStatus::Queued => JobStatus::Queued,
            DeliveryStatus::Running => JobStatus::Running,
            DeliveryStatus::Done => JobStatus::Done,
            DeliveryStatus::Dead => JobStatus::Dead,
        }
    }
}

/// Which deliveries to list.
#[derive(Debug, Deserialize, IntoParams)]
pub struct DeliveryQuery {
    /// Only these.
    #[param(inline)]
    pub status: Option<DeliveryStatus>,
    /// Most deliveries (default 50, at most 500).
    pub limit: Option<i64>,
}

/// A store's receipt deliveries, newest first (supervisors of the store).
#[utoipa::path(get, path = "/api/v1/stores/{store_id}/deliveries", tag = "admin", security(("bearer" = [])),
    params(("store_id" = String, Path), DeliveryQuery),
    responses(
        (status = 200, body = Vec<DeliveryView>),
        (status = 404, description = "`unknown-store`", body = ErrorBody),
    ))]
pub async fn deliveries(
    State(state): State<AppState>,
    SupervisorCaller(user): SupervisorCaller,
    Path(store_id): Path<String>,
    Query(q): Query<DeliveryQuery>,
) -> Result<axum::Json<Vec<DeliveryView>>> {
    let store = review::covered_store(&state.db, &user, &store_id).await?;
    let status = q.status.map(DeliveryStatus::job_status);
    let limit = q.limit.unwrap_or(50).clamp(1, 500);
    let rows = crate::db::jobs::of_store(
        &state.db,
        &store.id,
        <crate::domain::job::DeliverReceipt as crate::domain::job::JobKind>::KIND,
        status,
        limit,
    )
    .await?;
    Ok(axum::Json(
        rows.into_iter().map(DeliveryView::from).collect(),
    ))
}

/// Sends a dead delivery again (admins): queued at once with its attempts
/// counted afresh; the store can tell a repeat by its `webhook-id`.
#[utoipa::path(post, path = "/api/v1/stores/{store_id}/deliveries/{delivery_id}/redeliver", tag = "admin", security(("bearer" = [])),
    params(("store_id" = String, Path), ("delivery_id" = String, Path)),
    responses(
        (status = 204, description = "queued again"),
        (status = 404, description = "`unknown-store`, `unknown-delivery`", body = ErrorBody),
        (status = 409, description = "`delivery-not-dead`", body = ErrorBody),
    ))]
pub async fn redeliver(
    State(state): State<AppState>,
    AdminCaller(admin): AdminCaller,
    Path((store_id, delivery_id)): Path<(String, String)>,
) -> Result<axum::response::Response> {
    review::covered_store(&state.db, &admin, &store_id).await?;
    review::redeliver(
        &state.db,
        &admin.actor(),
        &store_id,
        &delivery_id,
        state.now(),
    )
    .await?;
    Ok(super::ingest::no_content())
}
