//! Supervisor endpoints of gold tasks: mark, list, retire, and labelers'
//! gold accuracy. Serving and scoring gold happen in the ordinary claim and
//! verdict endpoints, which look the same for gold copies.

use axum::extract::State;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

use super::queue::ListQuery;
use crate::db::gold::{self, GoldTask, QualityReport};
use crate::error::Result;
use crate::http::error::ErrorBody;
use crate::http::extract::{Json, Path, Query, SupervisorCaller};
use crate::AppState;

/// The task to mark as gold.
#[derive(Debug, Deserialize, Serialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct MarkGold {
    /// A resolved review task; its event's final label becomes the known answer.
    pub task_id: String,
}

/// Marks a resolved task as gold (supervisors).
#[utoipa::path(post, path = "/api/v1/gold", tag = "queue", security(("bearer" = [])),
    request_body = MarkGold,
    responses(
        (status = 201, body = GoldTask),
        (status = 404, description = "`unknown-task`", body = ErrorBody),
        (status = 409, description = "`task-not-resolved`, `already-gold`, `task-is-gold`", body = ErrorBody),
    ))]
pub async fn mark(
    State(state): State<AppState>,
    SupervisorCaller(user): SupervisorCaller,
    Json(body): Json<MarkGold>,
) -> Result<Response> {
    let gold = gold::mark(&state.db, &user, &body.task_id, state.now()).await?;
    Ok((StatusCode::CREATED, axum::Json(gold)).into_response())
}

/// Gold tasks, newest first, with their answers so far (supervisors).
#[utoipa::path(get, path = "/api/v1/gold", tag = "queue", security(("bearer" = [])),
    params(ListQuery),
    responses((status = 200, body = Vec<GoldTask>)))]
pub async fn list(
    State(state): State<AppState>,
    _supervisor: SupervisorCaller,
    Query(q): Query<ListQuery>,
) -> Result<axum::Json<Vec<GoldTask>>> {
    let limit = q.limit.unwrap_or(50).clamp(1, 500);
    Ok(axum::Json(gold::list(&state.db, limit).await?))
}

/// Retires a gold task: no longer served; its answers still count
/// (supervisors).
#[utoipa::path(delete, path = "/api/v1/gold/{gold_id}", tag = "queue", security(("bearer" = [])),
    params(("gold_id" = String, Path)),
    responses(
        (status = 200, body = GoldTask),
        (status = 404, description = "`unknown-gold`", body = ErrorBody),
    ))]
pub async fn retire(
    State(state): State<AppState>,
    _supervisor: SupervisorCaller,
    Path(gold_id): Path<String>,
) -> Result<axum::Json<GoldTask>> {
    Ok(axum::Json(
        gold::retire(&state.db, &gold_id, state.now()).await?,
    ))
}

/// Each labeler's gold accuracy over the last 7 days, with its 95 % Wilson
/// interval and whether it is below `gold_min_accuracy` over at least
/// `gold_min_answers` answers (supervisors).
#[utoipa::path(get, path = "/api/v1/labelers/quality", tag = "queue", security(("bearer" = [])),
    responses((status = 200, body = QualityReport)))]
pub async fn quality(
    State(state): State<AppState>,
    _supervisor: SupervisorCaller,
) -> Result<axum::Json<QualityReport>> {
    let config = &state.config;
    Ok(axum::Json(
        gold::quality(
            &state.db,
            state.now(),
            config.gold_min_accuracy,
            config.gold_min_answers,
        )
        .await?,
    ))
}
