//! The audit trail, for supervisors (their stores' rows) and admins: a page
//! of rows as JSON, or the rows a filter keeps as CSV.

use axum::extract::State;
use axum::http::header;
use axum::response::{IntoResponse, Response};
use serde::Serialize;
use utoipa::ToSchema;

use crate::db::audit::{self, AuditRow};
use crate::domain::audit::{csv_field, Action, ActorKind};
use crate::domain::time::format_rfc3339_ms;
use crate::error::{Code, Error, Result};
use crate::http::error::ErrorBody;
use crate::http::extract::{Query, SupervisorCaller};
use crate::http::query::AuditQuery;
use crate::AppState;

/// One recorded action.
#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct AuditEntry {
    /// Row id; rows are listed newest first in id order.
    pub id: String,
    /// When (RFC 3339).
    pub at: String,
    /// `user`, `store`, `operator` (the command line) or `system` (a job).
    pub actor_kind: ActorKind,
    /// The user's or store's id.
    pub actor_id: Option<String>,
    /// Their name at the time.
    pub actor: String,
    /// What they did.
    pub action: Action,
    /// The store it concerns.
    pub store_id: Option<String>,
    /// What it was done to: a clip, task, export, session or username.
    pub subject: Option<String>,
    /// The particulars (before and after, counts, the task a clip was
    /// watched for).
    #[schema(value_type = Object)]
    pub detail: serde_json::Value,
}

impl From<AuditRow> for AuditEntry {
    fn from(r: AuditRow) -> AuditEntry {
        AuditEntry {
            id: r.id,
            at: format_rfc3339_ms(r.at),
            actor_kind: r.actor_kind,
            actor_id: r.actor_id,
            actor: r.actor_name,
            action: r.action,
            store_id: r.store_id,
            subject: r.subject,
            detail: r.detail,
        }
    }
}

/// A page of the audit trail.
#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct AuditPage {
    /// Newest first.
    pub entries: Vec<AuditEntry>,
    /// Pass as `before` for the next (older) page; absent on the last.
    pub next_before: Option<String>,
}

/// Most rows of one CSV download.
pub const CSV_MAX_ROWS: i64 = 100_000;

/// Rows per page unless `limit` says otherwise.
pub const DEFAULT_PAGE: i64 = 100;

/// The filter of a query, or `400 invalid-query`.
fn filter_of(q: &AuditQuery) -> Result<audit::Filter> {
    q.filter().map_err(|m| Error::new(Code::InvalidQuery, m))
}

/// The audit trail, newest first (supervisors: rows of their stores;
/// rows about no store, such as people's changes, to those who cover
/// every store).
#[utoipa::path(get, path = "/api/v1/audit", tag = "admin", security(("bearer" = [])),
    params(AuditQuery),
    responses(
        (status = 200, body = AuditPage),
        (status = 400, description = "`invalid-query`: an unreadable time or an unknown action", body = ErrorBody),
    ))]
pub async fn list(
    State(state): State<AppState>,
    SupervisorCaller(user): SupervisorCaller,
    Query(q): Query<AuditQuery>,
) -> Result<axum::Json<AuditPage>> {
    let filter = filter_of(&q)?;
    let limit = q.limit.unwrap_or(DEFAULT_PAGE).clamp(1, 500);
    // One more than asked tells whether an older page exists.
    let mut rows = audit::list(&state.db, &user.scope, &filter, limit + 1).await?;
    let more = rows.len() as i64 > limit;
    rows.truncate(limit as usize);
    let next_before = more.then(|| rows.last().map(|r| r.id.clone())).flatten();
    Ok(axum::Json(AuditPage {
        entries: rows.into_iter().map(AuditEntry::from).collect(),
        next_before,
    }))
}

/// The rows the filters keep as CSV, newest first, at most 100,000
/// (supervisors, as for the list).
#[utoipa::path(get, path = "/api/v1/audit.csv", tag = "admin", security(("bearer" = [])),
    params(AuditQuery),
    responses(
        (status = 200, description = "`text/csv`: at, actor_kind, actor, action, store_id, subject, detail", content_type = "text/csv"),
        (status = 400, description = "`invalid-query`", body = ErrorBody),
    ))]
pub async fn csv(
    State(state): State<AppState>,
    SupervisorCaller(user): SupervisorCaller,
    Query(q): Query<AuditQuery>,
) -> Result<Response> {
    let filter = filter_of(&q)?;
    let rows = audit::list(&state.db, &user.scope, &filter, CSV_MAX_ROWS).await?;
    let mut out = String::from("at,actor_kind,actor,action,store_id,subject,detail\n");
    for r in rows {
        let fields = [
            format_rfc3339_ms(r.at),
            r.actor_kind.as_str().to_string(),
            r.actor_name,
            r.action.as_str().to_string(),
            r.store_id.unwrap_or_default(),
            r.subject.unwrap_or_default(),
            r.detail.to_string(),
        ];
        let line: Vec<String> = fields.iter().map(|f| csv_field(f)).collect();
        out.push_str(&line.join(","));
        out.push('\n');
    }
    Ok((
        [
            (header::CONTENT_TYPE, "text/csv; charset=utf-8"),
            (
                header::CONTENT_DISPOSITION,
                "attachment; filename=\"recount-audit.csv\"",
            ),
        ],
        out,
    )
        .into_response())
}
