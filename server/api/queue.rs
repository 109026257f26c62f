//! Labeler and supervisor endpoints: tokens, claim, lease, verdicts,
//! escalations, routing policy.

use std::time::Instant;

use axum::extract::State;
use axum::response::{IntoResponse, Response};
use serde::{Deserialize, Serialize};
use utoipa::{IntoParams, ToSchema};

use super::ingest::no_content;
use crate::auth::Role;
use crate::db::products::{self, Product};
use crate::db::tasks::{self, Claim, TaskContext, TaskDetail, VerdictInput, VerdictOutcome};
use crate::db::{stores, users};
use crate::domain::gold;
use crate::domain::routing::RoutingPolicy;
use crate::domain::time::format_rfc3339_ms;
use crate::error::{Code, Error, Result};
use crate::http::error::ErrorBody;
use crate::http::extract::{
    AdminCaller, ConnectAddr, Json, Path, Query, SupervisorCaller, UserCaller,
};
use crate::login;
use crate::AppState;

/// Login for the API.
#[derive(Debug, Deserialize, Serialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct TokenRequest {
    /// Login name.
    pub username: String,
    /// Password.
    pub password: String,
}

/// A bearer token for the API.
#[derive(Debug, Deserialize, Serialize, ToSchema)]
pub struct TokenResponse {
    /// Send as `Authorization: Bearer <token>`.
    pub token: String,
    /// When it stops working (RFC 3339).
    pub expires_at: String,
    /// The user's role.
    pub role: Role,
}

/// Exchanges a username and password for an API token.
#[utoipa::path(post, path = "/api/v1/auth/token", tag = "queue",
    request_body = TokenRequest,
    responses(
        (status = 200, body = TokenResponse),
        (status = 401, description = "`invalid-credentials`", body = ErrorBody),
        (status = 429, description = "`too-many-attempts` (with `Retry-After`)", body = ErrorBody),
    ))]
pub async fn issue_token(
    State(state): State<AppState>,
    ConnectAddr(addr): ConnectAddr,
    Json(req): Json<TokenRequest>,
) -> Result<axum::Json<TokenResponse>> {
    let user = login::authenticate(&state, &req.username, &req.password, addr).await?;
    let now = state.now();
    let token = users::issue_token(&state.db, &user.id, now, state.config.token_ttl_ms).await?;
    Ok(axum::Json(TokenResponse {
        token,
        expires_at: format_rfc3339_ms(now + state.config.token_ttl_ms),
        role: user.role,
    }))
}

/// Claims the next task: earliest receipt deadline first.
#[utoipa::path(post, path = "/api/v1/tasks/claim", tag = "queue", security(("bearer" = [])),
    responses(
        (status = 200, body = Claim),
        (status = 204, description = "nothing is ready"),
        (status = 409, description = "`too-many-leases`", body = ErrorBody),
    ))]
pub async fn claim(
    State(state): State<AppState>,
    UserCaller(user): UserCaller,
) -> Result<Response> {
    let started = Instant::now();
    let try_gold = gold::serves_gold(state.config.gold_rate, rand::random::<f64>());
    let claim = tasks::claim(
        &state.db,
        &user,
        state.now(),
        state.config.lease_ttl_ms,
        state.config.max_leases_per_labeler,
        try_gold,
    )
    .await?;
    crate::metrics::claim_observed(started.elapsed().as_secs_f64());
    Ok(match claim {
        Some(c) => axum::Json(c).into_response(),
        None => no_content(),
    })
}

/// A renewed lease.
#[derive(Debug, Deserialize, Serialize, ToSchema)]
pub struct LeaseResponse {
    /// Task id.
    pub task_id: String,
    /// New end of the lease (RFC 3339).
    pub lease_expires_at: String,
}

/// Keeps the caller's lease alive.
#[utoipa::path(post, path = "/api/v1/tasks/{task_id}/heartbeat", tag = "queue", security(("bearer" = [])),
    params(("task_id" = String, Path)),
    responses(
        (status = 200, body = LeaseResponse),
        (status = 403, description = "`lease-not-held`", body = ErrorBody),
        (status = 404, description = "`unknown-task`", body = ErrorBody),
        (status = 409, description = "`lease-expired`", body = ErrorBody),
    ))]
pub async fn heartbeat(
    State(state): State<AppState>,
    UserCaller(user): UserCaller,
    Path(task_id): Path<String>,
) -> Result<axum::Json<LeaseResponse>> {
    let expires = tasks::heartbeat(
        &state.db,
        &user,
        &task_id,
        state.now(),
        state.config.lease_ttl_ms,
    )
    .await?;
    Ok(axum::Json(LeaseResponse {
        task_id,
        lease_expires_at: expires,
    }))
}

/// Gives the task back to the queue.
#[utoipa::path(post, path = "/api/v1/tasks/{task_id}/release", tag = "queue", security(("bearer" = [])),
    params(("task_id" = String, Path)),
    responses(
        (status = 204, description = "released"),
        (status = 403, description = "`lease-not-held`", body = ErrorBody),
        (status = 404, description = "`unknown-task`", body = ErrorBody),
        (status = 409, description = "`lease-expired`", body = ErrorBody),
    ))]
pub async fn release(
    State(state): State<AppState>,
    UserCaller(user): UserCaller,
    Path(task_id): Path<String>,
) -> Result<Response> {
    tasks::release(&state.db, &user, &task_id, state.now()).await?;
    Ok(no_content())
}

/// Answers the task; idempotent for the same answer.
#[utoipa::path(post, path = "/api/v1/tasks/{task_id}/verdict", tag = "queue", security(("bearer" = [])),
    params(("task_id" = String, Path)),
    request_body = VerdictInput,
    responses(
        (status = 200, body = VerdictOutcome),
        (status = 403, description = "`lease-not-held`", body = ErrorBody),
        (status = 404, description = "`unknown-task`", body = ErrorBody),
        (status = 409, description = "`lease-expired`, `verdict-conflict`", body = ErrorBody),
        (status = 422, description = "`missing-action`, `missing-sku`, `unknown-sku`, `invalid-quantity`, `note-too-long`", body = ErrorBody),
    ))]
pub async fn verdict(
    State(state): State<AppState>,
    UserCaller(user): UserCaller,
    Path(task_id): Path<String>,
    Json(input): Json<VerdictInput>,
) -> Result<axum::Json<VerdictOutcome>> {
    Ok(axum::Json(
        tasks::submit_verdict(&state.db, &user, &task_id, &input, state.now()).await?,
    ))
}

/// A task with every verdict (supervisors).
#[utoipa::path(get, path = "/api/v1/tasks/{task_id}", tag = "queue", security(("bearer" = [])),
    params(("task_id" = String, Path)),
    responses(
        (status = 200, body = TaskDetail),
        (status = 404, description = "`unknown-task`", body = ErrorBody),
    ))]
pub async fn task_detail(
    State(state): State<AppState>,
    _supervisor: SupervisorCaller,
    Path(task_id): Path<String>,
) -> Result<axum::Json<TaskDetail>> {
    Ok(axum::Json(tasks::detail(&state.db, &task_id).await?))
}

/// The shopper context of a task: the cart so far (lease holder or
/// supervisor).
#[utoipa::path(get, path = "/api/v1/tasks/{task_id}/context", tag = "queue", security(("bearer" = [])),
    params(("task_id" = String, Path)),
    responses(
        (status = 200, body = TaskContext),
        (status = 403, description = "`lease-not-held`", body = ErrorBody),
        (status = 404, description = "`unknown-task`", body = ErrorBody),
        (status = 409, description = "`lease-expired`", body = ErrorBody),
    ))]
pub async fn task_context(
    State(state): State<AppState>,
    UserCaller(user): UserCaller,
    Path(task_id): Path<String>,
) -> Result<axum::Json<TaskContext>> {
    let (store_id, session_id) = tasks::viewable(&state.db, &user, &task_id, state.now()).await?;
    Ok(axum::Json(
        tasks::context(&state.db, &task_id, &store_id, &session_id).await?,
    ))
}

/// A catalog search.
#[derive(Debug, Deserialize, IntoParams)]
pub struct ProductQuery {
    /// Words that must all appear in the product's name or sku.
    pub q: String,
    /// Most products (default 20, at most 100).
    pub limit: Option<i64>,
}

/// Searches the catalog of a task's store, for a product the model did not
/// propose (lease holder or supervisor).
#[utoipa::path(get, path = "/api/v1/tasks/{task_id}/products", tag = "queue", security(("bearer" = [])),
    params(("task_id" = String, Path), ProductQuery),
    responses(
        (status = 200, body = Vec<Product>),
        (status = 403, description = "`lease-not-held`", body = ErrorBody),
        (status = 404, description = "`unknown-task`", body = ErrorBody),
        (status = 409, description = "`lease-expired`", body = ErrorBody),
    ))]
pub async fn task_products(
    State(state): State<AppState>,
    UserCaller(user): UserCaller,
    Path(task_id): Path<String>,
    Query(q): Query<ProductQuery>,
) -> Result<axum::Json<Vec<Product>>> {
    let (store_id, _) = tasks::viewable(&state.db, &user, &task_id, state.now()).await?;
    let mut conn = state.db.reader().acquire().await?;
    let limit = q.limit.unwrap_or(20);
    Ok(axum::Json(
        products::search(&mut conn, &store_id, &q.q, limit).await?,
    ))
}

/// The tasks the caller holds leases on, oldest claim first (a console
/// that was reloaded takes them up again).
#[utoipa::path(get, path = "/api/v1/tasks/leased", tag = "queue", security(("bearer" = [])),
    responses((status = 200, body = Vec<Claim>)))]
pub async fn leased(
    State(state): State<AppState>,
    UserCaller(user): UserCaller,
) -> Result<axum::Json<Vec<Claim>>> {
    Ok(axum::Json(
        tasks::held(&state.db, &user, state.now()).await?,
    ))
}

/// Paging of lists.
#[derive(Debug, Deserialize, IntoParams)]
pub struct ListQuery {
    /// Most items (default 50, at most 500).
    pub limit: Option<i64>,
}

/// Escalated tasks, most urgent first (supervisors).
#[utoipa::path(get, path = "/api/v1/escalations", tag = "queue", security(("bearer" = [])),
    params(ListQuery),
    responses((status = 200, body = Vec<TaskDetail>)))]
pub async fn escalations(
    State(state): State<AppState>,
    _supervisor: SupervisorCaller,
    Query(q): Query<ListQuery>,
) -> Result<axum::Json<Vec<TaskDetail>>> {
    let limit = q.limit.unwrap_or(50).clamp(1, 500);
    Ok(axum::Json(tasks::escalated(&state.db, limit).await?))
}

/// Resolves an escalated task (supervisors).
#[utoipa::path(post, path = "/api/v1/tasks/{task_id}/resolve", tag = "queue", security(("bearer" = [])),
    params(("task_id" = String, Path)),
    request_body = VerdictInput,
    responses(
        (status = 200, body = VerdictOutcome),
        (status = 404, description = "`unknown-task`", body = ErrorBody),
        (status = 409, description = "`task-not-escalated`", body = ErrorBody),
        (status = 422, description = "`cant-tell-not-allowed`, `missing-sku`, `unknown-sku`", body = ErrorBody),
    ))]
pub async fn resolve(
    State(state): State<AppState>,
    SupervisorCaller(user): SupervisorCaller,
    Path(task_id): Path<String>,
    Json(input): Json<VerdictInput>,
) -> Result<axum::Json<VerdictOutcome>> {
    Ok(axum::Json(
        tasks::resolve_escalation(&state.db, &user, &task_id, &input, state.now()).await?,
    ))
}

/// Fields of a routing policy to change; absent fields keep their value.
#[derive(Debug, Default, Deserialize, Serialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct PolicyPatch {
    /// Review below this top confidence.
    pub threshold: Option<f64>,
    /// Review when the top two are closer than this.
    pub margin: Option<f64>,
    /// Share of confident events audited.
    pub audit_rate: Option<f64>,
    /// Agreeing verdicts an audit sample needs.
    pub audit_verdicts: Option<i64>,
    /// High-value rule in cents: a number sets it, `null` turns it off,
    /// absent keeps it.
    #[serde(default, deserialize_with = "present")]
    #[schema(value_type = Option<i64>)]
    pub high_value_cents: Option<Option<i64>>,
    /// Receipt deadline after exit.
    pub receipt_sla_ms: Option<i64>,
    /// Expected exit after an event of an open session.
    pub expected_exit_ms: Option<i64>,
}

/// Tells a field sent as `null` (`Some(None)`) from one not sent (`None`).
fn present<'de, D: serde::Deserializer<'de>>(d: D) -> Result<Option<Option<i64>>, D::Error> {
    Option::<i64>::deserialize(d).map(Some)
}

impl PolicyPatch {
    /// The policy with this patch applied.
    pub fn apply(&self, p: &RoutingPolicy) -> RoutingPolicy {
        RoutingPolicy {
            threshold: self.threshold.unwrap_or(p.threshold),
            margin: self.margin.unwrap_or(p.margin),
            audit_rate: self.audit_rate.unwrap_or(p.audit_rate),
            audit_verdicts: self.audit_verdicts.unwrap_or(p.audit_verdicts),
            high_value_cents: self.high_value_cents.unwrap_or(p.high_value_cents),
            receipt_sla_ms: self.receipt_sla_ms.unwrap_or(p.receipt_sla_ms),
            expected_exit_ms: self.expected_exit_ms.unwrap_or(p.expected_exit_ms),
        }
    }
}

async fn load_policy(state: &AppState, store_id: &str) -> Result<RoutingPolicy> {
    let mut conn = state.db.reader().acquire().await?;
    stores::get(&mut conn, store_id)
        .await?
        .map(|s| s.policy)
        .ok_or_else(|| Error::new(Code::UnknownStore, format!("no store {store_id:?}")))
}

/// A store's routing policy (supervisors).
#[utoipa::path(get, path = "/api/v1/stores/{store_id}/policy", tag = "queue", security(("bearer" = [])),
    params(("store_id" = String, Path)),
    responses(
        (status = 200, body = RoutingPolicy),
        (status = 404, description = "`unknown-store`", body = ErrorBody),
    ))]
pub async fn get_policy(
    State(state): State<AppState>,
    _supervisor: SupervisorCaller,
    Path(store_id): Path<String>,
) -> Result<axum::Json<RoutingPolicy>> {
    Ok(axum::Json(load_policy(&state, &store_id).await?))
}

/// Changes a store's routing policy (admins).
#[utoipa::path(put, path = "/api/v1/stores/{store_id}/policy", tag = "queue", security(("bearer" = [])),
    params(("store_id" = String, Path)),
    request_body = PolicyPatch,
    responses(
        (status = 200, body = RoutingPolicy),
        (status = 404, description = "`unknown-store`", body = ErrorBody),
        (status = 422, description = "`invalid-policy`", body = ErrorBody),
    ))]
pub async fn put_policy(
    State(state): State<AppState>,
    _admin: AdminCaller,
    Path(store_id): Path<String>,
    Json(patch): Json<PolicyPatch>,
) -> Result<axum::Json<RoutingPolicy>> {
    let policy = patch.apply(&load_policy(&state, &store_id).await?);
    policy
        .validate()
        .map_err(|e| Error::new(Code::InvalidPolicy, e.to_string()))?;
    stores::set_policy(&state.db, &store_id, &policy).await?;
    Ok(axum::Json(policy))
}
