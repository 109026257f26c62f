//! A shopper's erasure: the store deletes the video of one session at once.

use axum::extract::State;
use serde::Serialize;
use utoipa::ToSchema;

use crate::domain::event::ClientId;
use crate::error::Result;
use crate::http::error::ErrorBody;
use crate::http::extract::{Path, StoreCaller};
use crate::review::retention;
use crate::AppState;

/// What an erasure deleted.
#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct Erased {
    /// The store's session id.
    pub session_id: String,
    /// Clips that showed the shopper, erased now with their MP4s,
    /// filmstrips and posters (0 when asked again).
    pub clips: u64,
    /// Camera recordings those clips were cut from, erased now.
    pub footage: u64,
    /// Files deleted from blob storage.
    pub blobs_deleted: u64,
    /// Files whose deletion failed this time: the daily retention run
    /// deletes them. Nobody is shown them meanwhile.
    pub blobs_pending: u64,
    /// Training-data exports made before that may hold copies: their files
    /// are not changed; delete those exports to remove the copies.
    pub exports_with_copies: Vec<String>,
}

/// Erases the video of one shopper's session at once (store key): the
/// clips that show them, their posters and filmstrips, and the camera
/// recordings they were cut from. The labels, the receipt and the audit
/// trail stay; the erasure is recorded there. Exports made afterwards
/// never include the erased video. Asking again erases nothing more and
/// answers the same way.
#[utoipa::path(delete, path = "/api/v1/sessions/{session_id}/media", tag = "store", security(("bearer" = [])),
    params(("session_id" = ClientId, Path, description = "the store's session id")),
    responses(
        (status = 200, body = Erased),
        (status = 404, description = "`unknown-session`", body = ErrorBody),
    ))]
pub async fn erase_session_media(
    State(state): State<AppState>,
    StoreCaller(store): StoreCaller,
    Path(session_id): Path<String>,
) -> Result<axum::Json<Erased>> {
    let done =
        retention::erase_session(&state.db, &state.blobs, &store, &session_id, state.now()).await?;
    tracing::info!(store = %store.id, session = %session_id, clips = done.clips, footage = done.footage, "shopper video erased on request");
    Ok(axum::Json(Erased {
        session_id,
        clips: done.clips,
        footage: done.footage,
        blobs_deleted: done.blobs_deleted,
        blobs_pending: done.blobs_pending,
        exports_with_copies: done.exports,
    }))
}
