//! Labeler and supervisor endpoints: tokens, claim, lease, verdicts,
//! escalations, routing policy.

use std::time::{Duration, Instant};

use axum::extract::State;
use axum::response::{IntoResponse, Response};
use serde::{Deserialize, Serialize};
use utoipa::{IntoParams, ToSchema};

use super::ingest::{no_content, Product};
use super::media::TaskClip;
use crate::auth::Role;
use crate::db::products;
use crate::db::tasks::{CandidateRow, TaskCard, VerdictRow};
use crate::db::users;
use crate::domain::event::ClientId;
use crate::domain::gold;
use crate::domain::lifecycle::TaskStatus;
use crate::domain::receipt::ReceiptLine;
use crate::domain::routing::{RoutingMode, RoutingPolicy};
use crate::domain::time::format_rfc3339_ms;
use crate::domain::Action;
use crate::error::{Code, Error, Result};
use crate::http::error::ErrorBody;
use crate::http::extract::{
    AdminCaller, ClientAddr, Json, JsonObject, Path, Query, SupervisorCaller, UserCaller,
};
use crate::login;
use crate::review::queue::{self, Claimed, Context, Detail, Verdict};
use crate::AppState;

/// A candidate as a labeler sees it: the model's guess with catalog details.
#[derive(Debug, Clone, PartialEq, Serialize, ToSchema)]
pub struct CandidateView {
    /// Product sku.
    pub sku: String,
    /// Product name.
    pub name: String,
    /// Unit price in cents.
    pub price_cents: i64,
    /// Product image.
    pub image_url: Option<String>,
    /// The model's confidence; `null` on a blind task.
    pub confidence: Option<f64>,
}

impl CandidateView {
    fn of(c: CandidateRow, blind: bool) -> CandidateView {
        CandidateView {
            sku: c.sku,
            name: c.name,
            price_cents: c.price_cents,
            image_url: c.image_url,
            confidence: (!blind).then_some(c.confidence),
        }
    }
}

/// A review task as a labeler sees it. On a blind task (audit samples, gold
/// copies, disputes, and every task of a store with blind review on) the
/// model's answer is withheld: `kind`, `quantity`, `reason`,
/// `model_version` and every confidence are `null`, and the candidates come
/// in a neutral order (by name), so the answers measure the model instead
/// of echoing it.
#[derive(Debug, Clone, PartialEq, Serialize, ToSchema)]
pub struct TaskView {
    /// Task id.
    pub task_id: String,
    /// Store id.
    pub store_id: String,
    /// The store's session id.
    pub session_id: String,
    /// The store's event id.
    pub event_id: String,
    /// Whether the model's answer is withheld.
    pub blind: bool,
    /// What the model believes happened: `pick` or `return`.
    pub kind: Option<String>,
    /// Units the model believes moved.
    pub quantity: Option<i64>,
    /// When it happened (RFC 3339).
    pub occurred_at: String,
    /// Why the event needs a human.
    pub reason: Option<String>,
    /// Agreeing verdicts needed.
    pub required_verdicts: i64,
    /// Deadline (RFC 3339): the receipt's, or the store's wait for a dispute.
    pub deadline_at: String,
    /// The model that made the guess.
    pub model_version: Option<String>,
    /// The model's guesses, best first (by name on a blind task).
    pub candidates: Vec<CandidateView>,
    /// Video of the event, one clip per camera.
    pub clips: Vec<TaskClip>,
}

impl TaskView {
    /// The task as its labeler sees it: blind when the card says so.
    pub fn for_labeler(card: TaskCard) -> TaskView {
        let blind = card.blind;
        TaskView::shown(card, blind)
    }

    /// The task with everything the model said, for supervisors.
    pub fn full(card: TaskCard) -> TaskView {
        TaskView::shown(card, false)
    }

    fn shown(mut t: TaskCard, blind: bool) -> TaskView {
        let clips = t
            .clips
            .into_iter()
            .map(|c| TaskClip::of(&t.task_id, c))
            .collect();
        if blind {
            t.candidates
                .sort_by(|a, b| a.name.cmp(&b.name).then_with(|| a.sku.cmp(&b.sku)));
        }
        let unless_blind = |v| (!blind).then_some(v);
        TaskView {
            task_id: t.task_id,
            store_id: t.store_id,
            session_id: t.session_id,
            event_id: t.event_id,
            blind,
            kind: unless_blind(t.kind),
            quantity: (!blind).then_some(t.quantity),
            occurred_at: format_rfc3339_ms(t.occurred_at),
            reason: unless_blind(t.reason),
            required_verdicts: t.required_verdicts,
            deadline_at: format_rfc3339_ms(t.deadline_at),
            model_version: t.model_version.filter(|_| !blind),
            candidates: t
                .candidates
                .into_iter()
                .map(|c| CandidateView::of(c, blind))
                .collect(),
            clips,
        }
    }
}

/// The answer to a claim.
#[derive(Debug, Clone, PartialEq, Serialize, ToSchema)]
pub struct Claim {
    /// The task.
    pub task: TaskView,
    /// When the lease ends unless renewed by a heartbeat (RFC 3339).
    pub lease_expires_at: String,
    /// How often to send a heartbeat, in milliseconds.
    pub heartbeat_ms: i64,
}

impl From<Claimed> for Claim {
    fn from(c: Claimed) -> Claim {
        Claim {
            task: TaskView::for_labeler(c.card),
            lease_expires_at: format_rfc3339_ms(c.lease_expires_at),
            heartbeat_ms: c.heartbeat_ms,
        }
    }
}

/// A labeler's answer to `POST /api/v1/tasks/{id}/verdict`.
#[derive(Debug, Clone, PartialEq, Deserialize, Serialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct VerdictInput {
    /// What the shopper did; not needed with `cant_tell`.
    #[serde(default)]
    pub action: Option<Action>,
    /// The product; needed for pick and return.
    #[serde(default)]
    #[schema(value_type = Option<ClientId>)]
    pub sku: Option<String>,
    /// Units (1 to 1000); defaults to the event's quantity, except on a
    /// blind task (`missing-quantity`).
    #[serde(default, deserialize_with = "crate::domain::whole::optional")]
    #[schema(minimum = 1, maximum = 1000)]
    pub quantity: Option<i64>,
    /// The video does not show what happened.
    #[serde(default)]
    pub cant_tell: bool,
    /// Free text for supervisors, at most 2,000 characters.
    #[serde(default)]
    #[schema(max_length = 2000)]
    pub note: Option<String>,
}

impl From<VerdictInput> for Verdict {
    fn from(v: VerdictInput) -> Verdict {
        Verdict {
            action: v.action,
            sku: v.sku,
            quantity: v.quantity,
            cant_tell: v.cant_tell,
            note: v.note,
        }
    }
}

/// The state of a task after a verdict or resolution.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, ToSchema)]
pub struct VerdictOutcome {
    /// Task id.
    pub task_id: String,
    /// `ready` (needs another labeler), `resolved` or `escalated`.
    pub status: String,
}

impl VerdictOutcome {
    fn new(task_id: String, status: TaskStatus) -> VerdictOutcome {
        VerdictOutcome {
            task_id,
            status: status.as_str().into(),
        }
    }
}

/// One verdict as a supervisor sees it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, ToSchema)]
pub struct VerdictView {
    /// Who answered.
    pub labeler: String,
    /// Action, absent for "can't tell".
    pub action: Option<String>,
    /// Product.
    pub sku: Option<String>,
    /// Units.
    pub quantity: Option<i64>,
    /// The labeler could not tell.
    pub cant_tell: bool,
    /// The labeler's note.
    pub note: Option<String>,
    /// When (RFC 3339).
    pub created_at: String,
    /// Milliseconds from claim to verdict.
    pub handling_ms: i64,
}

impl From<VerdictRow> for VerdictView {
    fn from(v: VerdictRow) -> VerdictView {
        VerdictView {
            labeler: v.labeler,
            action: v.action,
            sku: v.sku,
            quantity: v.quantity,
            cant_tell: v.cant_tell,
            note: v.note,
            created_at: format_rfc3339_ms(v.created_at),
            handling_ms: v.handling_ms,
        }
    }
}

/// A task with its verdicts, for supervisors.
#[derive(Debug, Clone, PartialEq, Serialize, ToSchema)]
pub struct TaskDetail {
    /// The task with everything the model said.
    pub task: TaskView,
    /// What it is for: `review`, `audit`, `dispute` or `gold`.
    pub purpose: String,
    /// `waiting`, `ready`, `leased`, `escalated` or `resolved`; for a gold
    /// copy `leased`, `gold-answered` or `gold-dropped`.
    pub status: String,
    /// Why it was escalated.
    pub escalation_reason: Option<String>,
    /// Every verdict so far.
    pub verdicts: Vec<VerdictView>,
}

impl From<Detail> for TaskDetail {
    fn from(d: Detail) -> TaskDetail {
        TaskDetail {
            purpose: d.card.purpose.as_str().into(),
            task: TaskView::full(d.card),
            status: d.status,
            escalation_reason: d.escalation_reason,
            verdicts: d.verdicts.into_iter().map(Into::into).collect(),
        }
    }
}

/// What else the shopper of a task has done: the cart as settled so far and
/// how many other events still wait for review.
#[derive(Debug, Clone, PartialEq, Serialize, ToSchema)]
pub struct TaskContext {
    /// The task.
    pub task_id: String,
    /// The store's session id.
    pub session_id: String,
    /// Net products of the session's settled events (model-accepted or
    /// reviewed), priced as the receipt will price them.
    pub cart: Vec<ReceiptLine>,
    /// Sum of the cart lines.
    pub cart_total_cents: i64,
    /// Other events of the session still in review.
    pub other_events_in_review: i64,
    /// Whether the shopper has left the store.
    pub exited: bool,
}

impl From<Context> for TaskContext {
    fn from(c: Context) -> TaskContext {
        TaskContext {
            task_id: c.task_id,
            session_id: c.session_id,
            cart: c.cart,
            cart_total_cents: c.cart_total_cents,
            other_events_in_review: c.other_events_in_review,
            exited: c.exited,
        }
    }
}

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
    ClientAddr(addr): ClientAddr,
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

/// Longest a claim may wait for a task, in milliseconds: well within the
/// request timeout, and short enough that a console behind a proxy that
/// drops idle connections hears back.
pub const MAX_CLAIM_WAIT_MS: u64 = 25_000;

/// How long a claim waits when nothing is ready.
#[derive(Debug, Deserialize, IntoParams)]
pub struct ClaimQuery {
    /// Wait up to this many milliseconds (0 to 25000; default 0: answer at
    /// once) for a task to become ready, then answer `204`.
    #[param(minimum = 0, maximum = 25000)]
    pub wait_ms: Option<u64>,
}

/// Claims the next task: earliest receipt deadline first. With `wait_ms`
/// and nothing ready, the answer comes when a task becomes ready (on any
/// instance) or the wait ends.
#[utoipa::path(post, path = "/api/v1/tasks/claim", tag = "queue", security(("bearer" = [])),
    params(ClaimQuery),
    responses(
        (status = 200, body = Claim),
        (status = 204, description = "nothing is ready (within `wait_ms`)"),
        (status = 409, description = "`too-many-leases`", body = ErrorBody),
        (status = 422, description = "`invalid-wait`", body = ErrorBody),
    ))]
pub async fn claim(
    State(state): State<AppState>,
    UserCaller(user): UserCaller,
    Query(q): Query<ClaimQuery>,
) -> Result<Response> {
    let wait_ms = q.wait_ms.unwrap_or(0);
    if wait_ms > MAX_CLAIM_WAIT_MS {
        return Err(Error::new(
            Code::InvalidWait,
            format!("wait_ms must be at most {MAX_CLAIM_WAIT_MS}, not {wait_ms}"),
        ));
    }
    let started = Instant::now();
    let try_gold = gold::serves_gold(state.config.gold_rate, rand::random::<f64>());
    let rules = queue::ClaimRules::of(&state.config);
    let claim = if wait_ms == 0 {
        let claim = queue::claim(&state.db, &user, state.now(), rules, try_gold).await?;
        // Only a claim that did not wait measures the queue's speed.
        crate::metrics::claim_observed(started.elapsed().as_secs_f64());
        claim
    } else {
        let wait = Duration::from_millis(wait_ms);
        queue::claim_waiting(&state.db, &user, || state.now(), rules, try_gold, wait).await?
    };
    Ok(match claim {
        Some(c) => axum::Json(Claim::from(c)).into_response(),
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
    /// When to renew it next, in milliseconds: a third of the lease, or
    /// `audit_yield_check_ms` on a task that gives way to receipt work.
    pub heartbeat_ms: i64,
}

/// Keeps the caller's lease alive.
#[utoipa::path(post, path = "/api/v1/tasks/{task_id}/heartbeat", tag = "queue", security(("bearer" = [])),
    params(("task_id" = String, Path)),
    responses(
        (status = 200, body = LeaseResponse),
        (status = 403, description = "`lease-not-held`", body = ErrorBody),
        (status = 404, description = "`unknown-task`", body = ErrorBody),
        (status = 409, description = "`lease-expired`, `lease-yielded`", body = ErrorBody),
    ))]
pub async fn heartbeat(
    State(state): State<AppState>,
    UserCaller(user): UserCaller,
    Path(task_id): Path<String>,
) -> Result<axum::Json<LeaseResponse>> {
    let renewed = queue::heartbeat(
        &state.db,
        &user,
        &task_id,
        state.now(),
        queue::ClaimRules::of(&state.config),
    )
    .await?;
    Ok(axum::Json(LeaseResponse {
        task_id,
        lease_expires_at: format_rfc3339_ms(renewed.expires_at),
        heartbeat_ms: renewed.heartbeat_ms,
    }))
}

/// Gives the task back to the queue.
#[utoipa::path(post, path = "/api/v1/tasks/{task_id}/release", tag = "queue", security(("bearer" = [])),
    params(("task_id" = String, Path)),
    responses(
        (status = 204, description = "released"),
        (status = 403, description = "`lease-not-held`", body = ErrorBody),
        (status = 404, description = "`unknown-task`", body = ErrorBody),
        (status = 409, description = "`lease-expired`, `lease-yielded`", body = ErrorBody),
    ))]
pub async fn release(
    State(state): State<AppState>,
    UserCaller(user): UserCaller,
    Path(task_id): Path<String>,
) -> Result<Response> {
    queue::release(&state.db, &user, &task_id, state.now()).await?;
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
        (status = 409, description = "`lease-expired`, `lease-yielded`, `verdict-conflict`", body = ErrorBody),
        (status = 422, description = "`missing-action`, `missing-sku`, `unknown-sku`, `invalid-quantity`, `note-too-long`", body = ErrorBody),
    ))]
pub async fn verdict(
    State(state): State<AppState>,
    UserCaller(user): UserCaller,
    Path(task_id): Path<String>,
    Json(input): Json<VerdictInput>,
) -> Result<axum::Json<VerdictOutcome>> {
    let status =
        queue::submit_verdict(&state.db, &user, &task_id, &input.into(), state.now()).await?;
    // A gold answer may take the labeler under the floor; the answer's
    // reported status does not tell a gold copy, so with a floor set every
    // verdict asks (one indexed count).
    if state.config.gold_pause_floor > 0.0 {
        let floor = crate::review::admin::GoldFloor {
            floor: state.config.gold_pause_floor,
            min_answers: state.config.gold_min_answers,
        };
        crate::review::admin::pause_below_floor(
            &state.db,
            &state.tokens,
            &user,
            floor,
            state.now(),
        )
        .await?;
    }
    Ok(axum::Json(VerdictOutcome::new(task_id, status)))
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
    SupervisorCaller(user): SupervisorCaller,
    Path(task_id): Path<String>,
) -> Result<axum::Json<TaskDetail>> {
    Ok(axum::Json(
        queue::detail(&state.db, &user.scope, &task_id)
            .await?
            .into(),
    ))
}

/// The shopper context of a task: the cart so far (lease holder or
/// supervisor).
#[utoipa::path(get, path = "/api/v1/tasks/{task_id}/context", tag = "queue", security(("bearer" = [])),
    params(("task_id" = String, Path)),
    responses(
        (status = 200, body = TaskContext),
        (status = 403, description = "`lease-not-held`", body = ErrorBody),
        (status = 404, description = "`unknown-task`", body = ErrorBody),
        (status = 409, description = "`lease-expired`, `lease-yielded`", body = ErrorBody),
    ))]
pub async fn task_context(
    State(state): State<AppState>,
    UserCaller(user): UserCaller,
    Path(task_id): Path<String>,
) -> Result<axum::Json<TaskContext>> {
    let (store_id, session_id) = queue::viewable(&state.db, &user, &task_id, state.now()).await?;
    Ok(axum::Json(
        queue::context(&state.db, &task_id, &store_id, &session_id)
            .await?
            .into(),
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
        (status = 409, description = "`lease-expired`, `lease-yielded`", body = ErrorBody),
    ))]
pub async fn task_products(
    State(state): State<AppState>,
    UserCaller(user): UserCaller,
    Path(task_id): Path<String>,
    Query(q): Query<ProductQuery>,
) -> Result<axum::Json<Vec<Product>>> {
    let (store_id, _) = queue::viewable(&state.db, &user, &task_id, state.now()).await?;
    let mut conn = state.db.reader().acquire().await?;
    let limit = q.limit.unwrap_or(20);
    let found = products::search(&mut conn, &store_id, &q.q, limit).await?;
    Ok(axum::Json(found.into_iter().map(Into::into).collect()))
}

/// The tasks the caller holds leases on, oldest claim first (a console
/// that was reloaded takes them up again).
#[utoipa::path(get, path = "/api/v1/tasks/leased", tag = "queue", security(("bearer" = [])),
    responses((status = 200, body = Vec<Claim>)))]
pub async fn leased(
    State(state): State<AppState>,
    UserCaller(user): UserCaller,
) -> Result<axum::Json<Vec<Claim>>> {
    let held = queue::held(
        &state.db,
        &user,
        state.now(),
        queue::ClaimRules::of(&state.config),
    )
    .await?;
    Ok(axum::Json(held.into_iter().map(Into::into).collect()))
}

/// Paging of lists.
#[derive(Debug, Deserialize, IntoParams)]
pub struct ListQuery {
    /// Most items (default 50, at most 500).
    pub limit: Option<i64>,
}

/// Escalated tasks in queue order: disputes, receipt work, audits; then by
/// deadline (supervisors).
#[utoipa::path(get, path = "/api/v1/escalations", tag = "queue", security(("bearer" = [])),
    params(ListQuery),
    responses((status = 200, body = Vec<TaskDetail>)))]
pub async fn escalations(
    State(state): State<AppState>,
    SupervisorCaller(user): SupervisorCaller,
    Query(q): Query<ListQuery>,
) -> Result<axum::Json<Vec<TaskDetail>>> {
    let limit = q.limit.unwrap_or(50).clamp(1, 500);
    let escalated = queue::escalated(&state.db, &user.scope, limit).await?;
    Ok(axum::Json(escalated.into_iter().map(Into::into).collect()))
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
    let status =
        queue::resolve_escalation(&state.db, &user, &task_id, &input.into(), state.now()).await?;
    Ok(axum::Json(VerdictOutcome::new(task_id, status)))
}

/// The answer to a correction.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, ToSchema)]
pub struct CorrectionOutcome {
    /// Task id.
    pub task_id: String,
    /// The receipt's version afterwards (a new one when the correction
    /// changed a final receipt); `null` while the receipt is not final, in
    /// which case it will be computed with the corrected label.
    pub receipt_version: Option<i64>,
}

/// Corrects the label of a resolved review or audit task after the fact
/// (supervisors). When it changes a final receipt, the receipt gets a new
/// version and the store a `receipt.adjusted` webhook.
#[utoipa::path(post, path = "/api/v1/tasks/{task_id}/correction", tag = "queue", security(("bearer" = [])),
    params(("task_id" = String, Path)),
    request_body = VerdictInput,
    responses(
        (status = 200, body = CorrectionOutcome),
        (status = 404, description = "`unknown-task`", body = ErrorBody),
        (status = 409, description = "`not-correctable`: not resolved, a dispute or a gold copy", body = ErrorBody),
        (status = 422, description = "`cant-tell-not-allowed`, `missing-action`, `missing-sku`, `unknown-sku`, `invalid-quantity`", body = ErrorBody),
    ))]
pub async fn correct(
    State(state): State<AppState>,
    SupervisorCaller(user): SupervisorCaller,
    Path(task_id): Path<String>,
    Json(input): Json<VerdictInput>,
) -> Result<axum::Json<CorrectionOutcome>> {
    let receipt_version =
        queue::correct(&state.db, &user, &task_id, &input.into(), state.now()).await?;
    Ok(axum::Json(CorrectionOutcome {
        task_id,
        receipt_version,
    }))
}

/// Fields of a routing policy to change; absent fields keep their value.
#[derive(Debug, Default, Deserialize, Serialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct PolicyPatch {
    /// Review below this top confidence (0 to 1).
    #[schema(minimum = 0, maximum = 1)]
    pub threshold: Option<f64>,
    /// Review when the top two are closer than this (0 to 1).
    #[schema(minimum = 0, maximum = 1)]
    pub margin: Option<f64>,
    /// Share of confident events audited (0 to 1).
    #[schema(minimum = 0, maximum = 1)]
    pub audit_rate: Option<f64>,
    /// Agreeing verdicts an audit sample needs (1 to 10).
    #[serde(default, deserialize_with = "crate::domain::whole::optional")]
    #[schema(minimum = 1, maximum = 10)]
    pub audit_verdicts: Option<i64>,
    /// High-value rule in cents (0 or more): a number sets it, `null`
    /// turns it off, absent keeps it.
    #[serde(default, deserialize_with = "present")]
    #[schema(value_type = Option<i64>, minimum = 0)]
    pub high_value_cents: Option<Option<i64>>,
    /// Receipt deadline after exit (at least 1 ms).
    #[serde(default, deserialize_with = "crate::domain::whole::optional")]
    #[schema(minimum = 1)]
    pub receipt_sla_ms: Option<i64>,
    /// Expected exit after an event of an open session (0 or more).
    #[serde(default, deserialize_with = "crate::domain::whole::optional")]
    #[schema(minimum = 0)]
    pub expected_exit_ms: Option<i64>,
    /// `threshold` or `charge-aware`.
    pub mode: Option<RoutingMode>,
    /// What a review costs, in cents (0 or more): a number sets it, `null`
    /// takes it from the labeler hourly cost, absent keeps it.
    #[serde(default, deserialize_with = "present")]
    #[schema(value_type = Option<i64>, minimum = 0)]
    pub review_cost_cents: Option<Option<i64>>,
}

/// Tells a field sent as `null` (`Some(None)`) from one not sent (`None`).
fn present<'de, D: serde::Deserializer<'de>>(d: D) -> Result<Option<Option<i64>>, D::Error> {
    crate::domain::whole::optional(d).map(Some)
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
            mode: self.mode.unwrap_or(p.mode),
            review_cost_cents: self.review_cost_cents.unwrap_or(p.review_cost_cents),
        }
    }
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
    SupervisorCaller(user): SupervisorCaller,
    Path(store_id): Path<String>,
) -> Result<axum::Json<RoutingPolicy>> {
    let store = crate::review::admin::covered_store(&state.db, &user, &store_id).await?;
    Ok(axum::Json(store.policy))
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
    AdminCaller(user): AdminCaller,
    Path(store_id): Path<String>,
    JsonObject(patch): JsonObject<PolicyPatch>,
) -> Result<axum::Json<RoutingPolicy>> {
    let policy = crate::review::admin::change_policy(
        &state.db,
        &user.actor(),
        &store_id,
        |p| patch.apply(p),
        state.now(),
    )
    .await?;
    Ok(axum::Json(policy))
}
