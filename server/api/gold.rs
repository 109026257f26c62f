//! Supervisor endpoints of gold tasks: mark, list, retire, and labelers'
//! gold accuracy. Serving and scoring gold happen in the ordinary claim and
//! verdict endpoints, which look the same for gold copies.

use axum::extract::State;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

use super::queue::ListQuery;
use crate::db::gold::{GoldRow, LabelerAnswers};
use crate::domain::gold;
use crate::domain::time::format_rfc3339_ms;
use crate::domain::Label;
use crate::error::Result;
use crate::http::error::ErrorBody;
use crate::http::extract::{Json, Path, Query, SupervisorCaller};
use crate::AppState;

/// A gold task as supervisors see it.
#[derive(Debug, Clone, PartialEq, Serialize, ToSchema)]
pub struct GoldTask {
    /// Gold task id.
    pub gold_id: String,
    /// The resolved task it was made from.
    pub task_id: String,
    /// The store's event id of that task.
    pub event_id: String,
    /// Store id.
    pub store_id: String,
    /// The known answer: the source event's final label.
    pub label: Label,
    /// Still served to labelers (false once retired).
    pub active: bool,
    /// The supervisor who marked it (username).
    pub created_by: String,
    /// When it was marked (RFC 3339).
    pub created_at: String,
    /// When it was retired (RFC 3339).
    pub retired_at: Option<String>,
    /// Answers given to its copies, all time (retired or not).
    pub answers: i64,
    /// Of them, those matching the label.
    pub correct: i64,
    /// `correct / answers`; absent without answers. A gold task most
    /// labelers get "wrong" may carry a wrong label.
    pub accuracy: Option<f64>,
}

impl From<GoldRow> for GoldTask {
    fn from(r: GoldRow) -> GoldTask {
        GoldTask {
            accuracy: gold::accuracy(r.answers, r.correct),
            gold_id: r.gold_id,
            task_id: r.task_id,
            event_id: r.event_id,
            store_id: r.store_id,
            label: r.label,
            active: r.active,
            created_by: r.created_by,
            created_at: format_rfc3339_ms(r.created_at),
            retired_at: r.retired_at.map(format_rfc3339_ms),
            answers: r.answers,
            correct: r.correct,
        }
    }
}

/// One labeler's gold record over the quality window.
#[derive(Debug, Clone, PartialEq, Serialize, ToSchema)]
pub struct LabelerQuality {
    /// User id.
    pub labeler_id: String,
    /// Login name.
    pub username: String,
    /// Gold answers in the window.
    pub answers: i64,
    /// Of them, correct ones.
    pub correct: i64,
    /// `correct / answers`.
    pub accuracy: Option<f64>,
    /// Lower end of the 95 % Wilson interval of the accuracy.
    pub accuracy_low: Option<f64>,
    /// Upper end of the same.
    pub accuracy_high: Option<f64>,
    /// At least `min_answers` answers and accuracy below `min_accuracy`.
    pub flagged: bool,
}

/// Gold accuracy of every labeler who answered gold in the window.
#[derive(Debug, Clone, PartialEq, Serialize, ToSchema)]
pub struct QualityReport {
    /// Start of the window (RFC 3339): answers after it count.
    pub since: String,
    /// Accuracy below which a labeler is flagged (`gold_min_accuracy`).
    pub min_accuracy: f64,
    /// Answers needed before a labeler is flagged (`gold_min_answers`).
    pub min_answers: u64,
    /// Flagged labelers first, then lowest accuracy first.
    pub labelers: Vec<LabelerQuality>,
}

/// Labelers' gold accuracy over their answers since
/// [`gold::quality_window_start`] (`since`, epoch ms).
fn quality_report(
    rows: Vec<LabelerAnswers>,
    since: i64,
    min_accuracy: f64,
    min_answers: u64,
) -> QualityReport {
    let mut scored: Vec<(LabelerAnswers, gold::Score)> = rows
        .into_iter()
        .map(|r| {
            let score = gold::score(r.answers, r.correct, min_accuracy, min_answers);
            (r, score)
        })
        .collect();
    scored.sort_by(|a, b| gold::report_order((&a.1, &a.0.username), (&b.1, &b.0.username)));
    let labelers = scored
        .into_iter()
        .map(|(r, score)| LabelerQuality {
            labeler_id: r.labeler_id,
            username: r.username,
            answers: r.answers,
            correct: r.correct,
            accuracy: score.accuracy,
            accuracy_low: score.interval.map(|i| i.0),
            accuracy_high: score.interval.map(|i| i.1),
            flagged: score.flagged,
        })
        .collect();
    QualityReport {
        since: format_rfc3339_ms(since),
        min_accuracy,
        min_answers,
        labelers,
    }
}

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
    let gold = crate::review::gold::mark(&state.db, &user, &body.task_id, state.now()).await?;
    Ok((StatusCode::CREATED, axum::Json(GoldTask::from(gold))).into_response())
}

/// Gold tasks, newest first, with their answers so far (supervisors).
#[utoipa::path(get, path = "/api/v1/gold", tag = "queue", security(("bearer" = [])),
    params(ListQuery),
    responses((status = 200, body = Vec<GoldTask>)))]
pub async fn list(
    State(state): State<AppState>,
    SupervisorCaller(user): SupervisorCaller,
    Query(q): Query<ListQuery>,
) -> Result<axum::Json<Vec<GoldTask>>> {
    let limit = q.limit.unwrap_or(50).clamp(1, 500);
    let rows = crate::db::gold::list(&state.db, &user.scope, limit).await?;
    Ok(axum::Json(rows.into_iter().map(GoldTask::from).collect()))
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
    SupervisorCaller(user): SupervisorCaller,
    Path(gold_id): Path<String>,
) -> Result<axum::Json<GoldTask>> {
    Ok(axum::Json(
        crate::review::gold::retire(&state.db, &user, &gold_id, state.now())
            .await?
            .into(),
    ))
}

/// Each labeler's gold accuracy over the last 7 days, with its 95 % Wilson
/// interval and whether it is below `gold_min_accuracy` over at least
/// `gold_min_answers` answers (supervisors).
#[utoipa::path(get, path = "/api/v1/labelers/quality", tag = "queue", security(("bearer" = [])),
    responses((status = 200, body = QualityReport)))]
pub async fn quality(
    State(state): State<AppState>,
    SupervisorCaller(user): SupervisorCaller,
) -> Result<axum::Json<QualityReport>> {
    let config = &state.config;
    let since = gold::quality_window_start(state.now());
    let mut rows = crate::db::gold::answers_since(&state.db, since).await?;
    // A supervisor sees the labelers whose pools lie within their stores.
    rows.retain(|r| user.scope.covers(&r.scope));
    Ok(axum::Json(quality_report(
        rows,
        since,
        config.gold_min_accuracy,
        config.gold_min_answers,
    )))
}
