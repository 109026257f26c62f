//! Shopper disputes (stores) and the per-store blind review switch (admins).

use axum::extract::State;
use axum::http::StatusCode;
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

use crate::db::disputes::DisputeRow;
use crate::domain::event::{check_id, ClientId};
use crate::domain::time::format_rfc3339_ms;
use crate::error::{Error, Result};
use crate::http::error::ErrorBody;
use crate::http::extract::{AdminCaller, Json, Path, StoreCaller};
use crate::review::disputes;
use crate::AppState;

/// A shopper contests a line of a final receipt.
#[derive(Debug, Deserialize, Serialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct DisputeInput {
    /// The sku of the contested line.
    #[schema(value_type = ClientId)]
    pub sku: String,
    /// The shopper's words (at most 2,000 characters); reviewers never see
    /// it, so it cannot steer their answer.
    #[serde(default)]
    #[schema(max_length = 2000)]
    pub reason: Option<String>,
}

/// A dispute just opened.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct DisputeOpened {
    /// The dispute, for `GET /api/v1/disputes/{dispute_id}`.
    pub dispute_id: String,
    /// The review task that re-checks the line.
    pub task_id: String,
}

/// A dispute and how it ended.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct Dispute {
    /// Dispute id.
    pub dispute_id: String,
    /// The store's session id.
    pub session_id: String,
    /// The contested line's sku.
    pub sku: String,
    /// The shopper's words, as sent.
    pub reason: Option<String>,
    /// `open`, `upheld` (the receipt was adjusted) or `confirmed` (the
    /// reviewers saw what the receipt charges).
    pub status: String,
    /// The review task.
    pub task_id: String,
    /// Units of the line when the dispute was opened.
    pub quantity: i64,
    /// The receipt version an upheld dispute made.
    pub receipt_version: Option<i64>,
    /// When it was opened (RFC 3339).
    pub opened_at: String,
    /// When it ended (RFC 3339).
    pub closed_at: Option<String>,
}

impl From<DisputeRow> for Dispute {
    fn from(d: DisputeRow) -> Dispute {
        Dispute {
            dispute_id: d.id,
            session_id: d.session_id,
            sku: d.sku,
            reason: d.reason,
            status: d.status.as_str().into(),
            task_id: d.task_id,
            quantity: d.quantity,
            receipt_version: d.adjusted_version,
            opened_at: format_rfc3339_ms(d.opened_at),
            closed_at: d.closed_at.map(format_rfc3339_ms),
        }
    }
}

/// Opens a dispute of one line of a final receipt: a review task for the
/// events behind the line, ahead of ordinary work and shown blind. It ends
/// as a receipt adjustment (`receipt.adjusted` webhook) or a confirmation.
#[utoipa::path(post, path = "/api/v1/sessions/{session_id}/disputes", tag = "store", security(("bearer" = [])),
    params(("session_id" = ClientId, Path, description = "the store's session id")),
    request_body = DisputeInput,
    responses(
        (status = 201, body = DisputeOpened),
        (status = 404, description = "`unknown-session`", body = ErrorBody),
        (status = 409, description = "`receipt-not-final`, `dispute-open`", body = ErrorBody),
        (status = 422, description = "`sku-not-on-receipt`, `reason-too-long`, `invalid-id`", body = ErrorBody),
    ))]
pub async fn open(
    State(state): State<AppState>,
    StoreCaller(store): StoreCaller,
    Path(session_id): Path<String>,
    Json(input): Json<DisputeInput>,
) -> Result<(StatusCode, axum::Json<DisputeOpened>)> {
    check_id("session_id", &session_id)?;
    check_id("sku", &input.sku)?;
    let opened = disputes::open(
        &state.db,
        &store,
        &session_id,
        &input.sku,
        input.reason.as_deref(),
        state.now(),
    )
    .await?;
    Ok((
        StatusCode::CREATED,
        axum::Json(DisputeOpened {
            dispute_id: opened.dispute_id,
            task_id: opened.task_id,
        }),
    ))
}

/// A dispute of the calling store.
#[utoipa::path(get, path = "/api/v1/disputes/{dispute_id}", tag = "store", security(("bearer" = [])),
    params(("dispute_id" = String, Path)),
    responses(
        (status = 200, body = Dispute),
        (status = 404, description = "`unknown-dispute`", body = ErrorBody),
    ))]
pub async fn get(
    State(state): State<AppState>,
    StoreCaller(store): StoreCaller,
    Path(dispute_id): Path<String>,
) -> Result<axum::Json<Dispute>> {
    Ok(axum::Json(
        disputes::get(&state.db, &store, &dispute_id).await?.into(),
    ))
}

/// Whether every task of a store is shown blind.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, Serialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct BlindReview {
    /// True to withhold the model's answer on every task of the store;
    /// false to withhold it only where answers measure the model (audit
    /// samples, gold copies, disputes).
    pub blind: bool,
}

/// Turns blind review of every task of a store on or off (admins). Tasks
/// claimed afterwards follow it.
#[utoipa::path(put, path = "/api/v1/stores/{store_id}/blind-review", tag = "queue", security(("bearer" = [])),
    params(("store_id" = String, Path)),
    request_body = BlindReview,
    responses(
        (status = 200, body = BlindReview),
        (status = 404, description = "`unknown-store`", body = ErrorBody),
    ))]
pub async fn put_blind_review(
    State(state): State<AppState>,
    AdminCaller(admin): AdminCaller,
    Path(store_id): Path<String>,
    Json(body): Json<BlindReview>,
) -> Result<axum::Json<BlindReview>> {
    let changed = crate::review::admin::set_blind_review(
        &state.db,
        &admin.actor(),
        &store_id,
        body.blind,
        state.now(),
    )
    .await?;
    if !changed {
        return Err(Error::unknown_store(&store_id));
    }
    Ok(axum::Json(body))
}
