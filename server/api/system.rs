//! Health, metrics.

use axum::extract::State;
use axum::http::header;
use axum::response::IntoResponse;
use serde::Serialize;
use utoipa::ToSchema;

use crate::db::{dashboard, tasks};
use crate::domain::scope::Scope;
use crate::error::Result;
use crate::AppState;

/// Liveness and database reachability.
#[derive(Debug, Serialize, ToSchema)]
pub struct Health {
    /// `ok`.
    pub status: String,
    /// `sqlite` or `postgres`.
    pub database: String,
}

/// Answers when the service and its database are up.
#[utoipa::path(get, path = "/healthz", tag = "system",
    responses((status = 200, body = Health), (status = 503, description = "database unreachable")))]
pub async fn healthz(State(state): State<AppState>) -> Result<axum::Json<Health>> {
    sqlx::query("SELECT 1").execute(state.db.reader()).await?;
    Ok(axum::Json(Health {
        status: "ok".into(),
        database: format!("{:?}", state.db.backend).to_lowercase(),
    }))
}

/// Prometheus metrics in text format.
#[utoipa::path(get, path = "/metrics", tag = "system",
    responses((status = 200, content_type = "text/plain", body = String)))]
pub async fn metrics(State(state): State<AppState>) -> Result<impl IntoResponse> {
    let counts = tasks::counts_by_status(&state.db).await?;
    let now = state.now();
    let mut conn = state.db.reader().acquire().await?;
    // The dashboard's per-store queue already counts both, by the same rule.
    let queue =
        dashboard::queue(&mut conn, &Scope::All, now, state.config.deadline_lead_ms).await?;
    let (_, receipts_past) = dashboard::pending_receipts(&mut conn, &Scope::All, now).await?;
    let deadlines = crate::metrics::Deadlines {
        tasks_past: queue.iter().map(|q| q.past_deadline).sum(),
        tasks_at_risk: queue.iter().map(|q| q.at_risk).sum(),
        receipts_past,
    };
    Ok((
        [(header::CONTENT_TYPE, "text/plain; version=0.0.4")],
        crate::metrics::render(&counts, deadlines),
    ))
}
