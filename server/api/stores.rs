//! Store secrets an admin manages: the webhook secret's rotation.

use axum::extract::State;
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

use crate::domain::time::format_rfc3339_ms;
use crate::error::{Error, Result};
use crate::http::error::ErrorBody;
use crate::http::extract::{AdminCaller, Path};
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
