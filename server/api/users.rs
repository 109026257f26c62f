//! People: list and add them; disable and enable, sign out everywhere,
//! reset a password, pause from the queue and resume; the stores a person
//! covers. Admins manage everyone; a supervisor manages the labelers whose
//! pools lie within their own stores, and anyone else answers `404
//! unknown-user` to them, as if there were no such person. Every change
//! that ends a person's access revokes their tokens; this instance stops
//! accepting them at once, others within the token cache's freshness (10
//! s).

use axum::extract::State;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

use crate::auth::{generate_password, hash_password, Role};
use crate::db::users::{self, User};
use crate::db::{gold, stores};
use crate::domain::scope::{Manager, Scope};
use crate::domain::time::format_rfc3339_ms;
use crate::error::{Code, Error, Result};
use crate::http::error::ErrorBody;
use crate::http::extract::{JsonObject, Path, SupervisorCaller};
use crate::review::admin;
use crate::AppState;

/// A user's access after a change.
#[derive(Debug, Deserialize, Serialize, ToSchema)]
pub struct Access {
    /// Login name.
    pub username: String,
    /// What the user may do.
    pub role: Role,
    /// Whether the user is disabled.
    pub disabled: bool,
    /// Tokens (API tokens and console sessions) this change ended.
    pub tokens_revoked: u64,
}

/// A new password, shown once.
#[derive(Debug, Deserialize, Serialize, ToSchema)]
pub struct NewPassword {
    /// Login name.
    pub username: String,
    /// The generated password; it is not stored in a readable form.
    pub password: String,
    /// Tokens the reset ended.
    pub tokens_revoked: u64,
}

fn unknown(username: &str) -> Error {
    Error::new(Code::UnknownUser, format!("no user {username:?}"))
}

/// The manager `caller` is.
fn manager(caller: &User) -> Manager<'_> {
    Manager {
        is_admin: caller.role == Role::Admin,
        scope: &caller.scope,
    }
}

/// The account of a person `caller` manages, or `404 unknown-user`.
async fn managed(state: &AppState, caller: &User, username: &str) -> Result<users::Account> {
    let account = users::by_username(&state.db, username)
        .await?
        .ok_or_else(|| unknown(username))?;
    let person = &account.user;
    if !manager(caller).manages(person.role == Role::Labeler, &person.scope) {
        return Err(unknown(username));
    }
    Ok(account)
}

fn access(user: User, disabled: bool, tokens_revoked: u64) -> axum::Json<Access> {
    axum::Json(Access {
        username: user.username,
        role: user.role,
        disabled,
        tokens_revoked,
    })
}

/// A generated password and its hash (argon2 off the async threads).
async fn new_password() -> Result<(String, String)> {
    let password = generate_password();
    let hash = tokio::task::spawn_blocking({
        let p = password.clone();
        move || hash_password(&p)
    })
    .await
    .map_err(anyhow::Error::from)??;
    Ok((password, hash))
}

/// A person's gold answers over the last 7 days.
#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct GoldRecord {
    /// Answers to gold tasks.
    pub answers: i64,
    /// Of them, correct.
    pub correct: i64,
    /// `correct / answers`; none without answers.
    pub accuracy: Option<f64>,
    /// Under `gold_min_accuracy` over at least `gold_min_answers` answers.
    pub flagged: bool,
}

/// A person as the people page lists them.
#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct PersonView {
    /// Login name.
    pub username: String,
    /// What they may do.
    pub role: Role,
    /// Whether they cover every store.
    pub all_stores: bool,
    /// The stores they cover, when not every store.
    pub stores: Vec<String>,
    /// Disabled: cannot sign in.
    pub disabled: bool,
    /// Paused from the queue: claims nothing until resumed.
    pub paused: bool,
    /// Why they are paused.
    pub paused_reason: Option<String>,
    /// Their last sign-in or verdict (RFC 3339).
    pub last_active_at: Option<String>,
    /// Their gold answers over the last 7 days.
    pub gold: GoldRecord,
}

/// The people `caller` manages (admins: everyone), by login name.
pub async fn people_of(state: &AppState, caller: &User) -> Result<Vec<PersonView>> {
    let mut conn = state.db.reader().acquire().await?;
    let everyone = users::list(&mut conn).await?;
    drop(conn);
    let since = crate::domain::gold::quality_window_start(state.now());
    let answers = gold::answers_since(&state.db, since).await?;
    let c = &state.config;
    let m = manager(caller);
    Ok(everyone
        .into_iter()
        .filter(|p| m.manages(p.user.role == Role::Labeler, &p.user.scope))
        .map(|p| {
            let (n, ok) = answers
                .iter()
                .find(|a| a.labeler_id == p.user.id)
                .map_or((0, 0), |a| (a.answers, a.correct));
            PersonView {
                all_stores: p.user.scope.is_all(),
                stores: p
                    .user
                    .scope
                    .stores()
                    .map(|s| s.iter().cloned().collect())
                    .unwrap_or_default(),
                username: p.user.username,
                role: p.user.role,
                disabled: p.disabled,
                paused: p.user.paused,
                paused_reason: p.paused_reason,
                last_active_at: p.last_active_at.map(format_rfc3339_ms),
                gold: GoldRecord {
                    answers: n,
                    correct: ok,
                    accuracy: crate::domain::gold::accuracy(n, ok),
                    flagged: crate::domain::gold::flagged(
                        n,
                        ok,
                        c.gold_min_accuracy,
                        c.gold_min_answers,
                    ),
                },
            }
        })
        .collect())
}

/// The people the caller manages (admins: everyone; supervisors: the
/// labelers within their stores), by login name.
#[utoipa::path(get, path = "/api/v1/users", tag = "admin", security(("bearer" = [])),
    responses((status = 200, body = Vec<PersonView>)))]
pub async fn list(
    State(state): State<AppState>,
    SupervisorCaller(caller): SupervisorCaller,
) -> Result<axum::Json<Vec<PersonView>>> {
    Ok(axum::Json(people_of(&state, &caller).await?))
}

/// A person to add.
#[derive(Debug, Deserialize, Serialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct NewPerson {
    /// Login name: 1 to 64 letters, digits, `.`, `_` or `-`.
    #[schema(
        min_length = 1,
        max_length = 64,
        pattern = r"^[A-Za-z0-9][A-Za-z0-9._-]*$"
    )]
    pub username: String,
    /// What they may do (supervisors add labelers only).
    pub role: Role,
    /// Every store, as for `PUT /api/v1/users/{username}/stores`.
    #[serde(default)]
    pub all_stores: bool,
    /// The stores they cover, when not every store (at most 1000).
    #[serde(default)]
    #[schema(max_items = 1000)]
    pub stores: Vec<String>,
}

/// A person added, with their password shown this once.
#[derive(Debug, Deserialize, Serialize, ToSchema)]
pub struct AddedPerson {
    /// Login name.
    pub username: String,
    /// What they may do.
    pub role: Role,
    /// The generated password; it is not stored in a readable form.
    pub password: String,
    /// Whether they cover every store.
    pub all_stores: bool,
    /// The stores they cover, when not every store.
    pub stores: Vec<String>,
}

/// Adds a person with a generated password, shown once (admins anyone;
/// supervisors labelers of their own stores).
#[utoipa::path(post, path = "/api/v1/users", tag = "admin", security(("bearer" = [])),
    request_body = NewPerson,
    responses(
        (status = 201, body = AddedPerson),
        (status = 403, description = "`role-forbidden`: a supervisor adding anyone but a labeler", body = ErrorBody),
        (status = 409, description = "`user-exists`", body = ErrorBody),
        (status = 422, description = "`invalid-username`, `invalid-stores`", body = ErrorBody),
    ))]
pub async fn create(
    State(state): State<AppState>,
    SupervisorCaller(caller): SupervisorCaller,
    JsonObject(body): JsonObject<NewPerson>,
) -> Result<Response> {
    let m = manager(&caller);
    if !m.is_admin && body.role != Role::Labeler {
        return Err(Error::new(
            Code::RoleForbidden,
            "a supervisor adds labelers only; ask an admin for other roles",
        ));
    }
    let assignment = StoreAssignment {
        all_stores: body.all_stores,
        stores: body.stores.clone(),
    };
    let scope = assigned_scope(&state, &assignment).await?;
    if !m.may_assign(&scope) {
        return Err(Error::new(
            Code::InvalidStores,
            "you may give only stores you cover yourself",
        ));
    }
    let (password, hash) = new_password().await?;
    let user = admin::create_user(
        &state.db,
        &caller.actor(),
        &body.username,
        &hash,
        body.role,
        &scope,
        state.now(),
    )
    .await?;
    let added = AddedPerson {
        username: user.username,
        role: user.role,
        password,
        all_stores: scope.is_all(),
        stores: scope
            .stores()
            .map(|s| s.iter().cloned().collect())
            .unwrap_or_default(),
    };
    Ok((StatusCode::CREATED, axum::Json(added)).into_response())
}

/// Disables a person: their tokens end and they can no longer sign in
/// (`403 user-disabled`, told only to whoever knows the password).
#[utoipa::path(post, path = "/api/v1/users/{username}/disable", tag = "admin",
    security(("bearer" = [])),
    params(("username" = String, Path)),
    responses(
        (status = 200, body = Access),
        (status = 404, description = "`unknown-user`", body = ErrorBody),
        (status = 409, description = "`own-account`", body = ErrorBody),
    ))]
pub async fn disable(
    State(state): State<AppState>,
    SupervisorCaller(caller): SupervisorCaller,
    Path(username): Path<String>,
) -> Result<axum::Json<Access>> {
    if caller.username == username {
        return Err(Error::new(
            Code::OwnAccount,
            "you may not disable your own account; ask an admin",
        ));
    }
    managed(&state, &caller, &username).await?;
    let (user, revoked) = admin::set_disabled(
        &state.db,
        &state.tokens,
        &caller.actor(),
        &username,
        true,
        state.now(),
    )
    .await?
    .ok_or_else(|| unknown(&username))?;
    Ok(access(user, true, revoked))
}

/// Enables a disabled person again; their old tokens stay ended.
#[utoipa::path(post, path = "/api/v1/users/{username}/enable", tag = "admin",
    security(("bearer" = [])),
    params(("username" = String, Path)),
    responses(
        (status = 200, body = Access),
        (status = 404, description = "`unknown-user`", body = ErrorBody),
    ))]
pub async fn enable(
    State(state): State<AppState>,
    SupervisorCaller(caller): SupervisorCaller,
    Path(username): Path<String>,
) -> Result<axum::Json<Access>> {
    managed(&state, &caller, &username).await?;
    let (user, _) = admin::set_disabled(
        &state.db,
        &state.tokens,
        &caller.actor(),
        &username,
        false,
        state.now(),
    )
    .await?
    .ok_or_else(|| unknown(&username))?;
    Ok(access(user, false, 0))
}

/// Ends every token of a person: signed out of every console and script
/// at once; they can sign in again.
#[utoipa::path(post, path = "/api/v1/users/{username}/revoke-tokens", tag = "admin",
    security(("bearer" = [])),
    params(("username" = String, Path)),
    responses(
        (status = 200, body = Access),
        (status = 404, description = "`unknown-user`", body = ErrorBody),
    ))]
pub async fn revoke_tokens(
    State(state): State<AppState>,
    SupervisorCaller(caller): SupervisorCaller,
    Path(username): Path<String>,
) -> Result<axum::Json<Access>> {
    let account = managed(&state, &caller, &username).await?;
    let revoked = admin::sign_out_everywhere(
        &state.db,
        &state.tokens,
        &caller.actor(),
        &account.user,
        state.now(),
    )
    .await?;
    Ok(access(account.user, account.disabled, revoked))
}

/// Resets a person's password to a generated one, shown once; their
/// tokens end.
#[utoipa::path(post, path = "/api/v1/users/{username}/password", tag = "admin",
    security(("bearer" = [])),
    params(("username" = String, Path)),
    responses(
        (status = 200, body = NewPassword),
        (status = 404, description = "`unknown-user`", body = ErrorBody),
    ))]
pub async fn reset_password(
    State(state): State<AppState>,
    SupervisorCaller(caller): SupervisorCaller,
    Path(username): Path<String>,
) -> Result<axum::Json<NewPassword>> {
    let account = managed(&state, &caller, &username).await?;
    let (password, hash) = new_password().await?;
    let revoked = admin::reset_password(
        &state.db,
        &state.tokens,
        &caller.actor(),
        &account.user,
        &hash,
        state.now(),
    )
    .await?;
    Ok(axum::Json(NewPassword {
        username: account.user.username,
        password,
        tokens_revoked: revoked,
    }))
}

/// Why a labeler is paused.
#[derive(Debug, Default, Deserialize, Serialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct PauseReason {
    /// Shown on the people page (at most 500 characters).
    #[schema(max_length = 500)]
    pub reason: Option<String>,
}

/// A person's place in the queue after a change.
#[derive(Debug, Deserialize, Serialize, ToSchema)]
pub struct QueueAccess {
    /// Login name.
    pub username: String,
    /// Whether they are paused from the queue.
    pub paused: bool,
}

/// Pauses a person from the queue: their claims answer `403
/// labeler-paused` until a supervisor resumes them. Tasks they hold stay
/// theirs to finish.
#[utoipa::path(post, path = "/api/v1/users/{username}/pause", tag = "admin",
    security(("bearer" = [])),
    params(("username" = String, Path)),
    request_body = PauseReason,
    responses(
        (status = 200, body = QueueAccess),
        (status = 404, description = "`unknown-user`", body = ErrorBody),
        (status = 422, description = "`note-too-long`", body = ErrorBody),
    ))]
pub async fn pause(
    State(state): State<AppState>,
    SupervisorCaller(caller): SupervisorCaller,
    Path(username): Path<String>,
    JsonObject(body): JsonObject<PauseReason>,
) -> Result<axum::Json<QueueAccess>> {
    // The limit holds for what was sent, blank or not, as the contract
    // says; only then does a blank reason give way to the default.
    if body
        .reason
        .as_ref()
        .is_some_and(|r| r.chars().count() > 500)
    {
        return Err(Error::new(
            Code::NoteTooLong,
            "a reason has at most 500 characters",
        ));
    }
    let reason = body
        .reason
        .filter(|r| !r.trim().is_empty())
        .unwrap_or_else(|| format!("by {}", caller.username));
    set_paused(&state, &caller, &username, Some(&reason)).await
}

/// Lets a paused person claim again.
#[utoipa::path(post, path = "/api/v1/users/{username}/resume", tag = "admin",
    security(("bearer" = [])),
    params(("username" = String, Path)),
    responses(
        (status = 200, body = QueueAccess),
        (status = 404, description = "`unknown-user`", body = ErrorBody),
    ))]
pub async fn resume(
    State(state): State<AppState>,
    SupervisorCaller(caller): SupervisorCaller,
    Path(username): Path<String>,
) -> Result<axum::Json<QueueAccess>> {
    set_paused(&state, &caller, &username, None).await
}

async fn set_paused(
    state: &AppState,
    caller: &User,
    username: &str,
    why: Option<&str>,
) -> Result<axum::Json<QueueAccess>> {
    managed(state, caller, username).await?;
    let user = admin::set_paused(
        &state.db,
        &state.tokens,
        &caller.actor(),
        username,
        why,
        state.now(),
    )
    .await?
    .ok_or_else(|| unknown(username))?;
    Ok(axum::Json(QueueAccess {
        username: user.username,
        paused: user.paused,
    }))
}

/// The stores a person covers: every store, or the listed ones.
#[derive(Debug, Default, Deserialize, Serialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct StoreAssignment {
    /// Every store, including stores created later (only an admin or a
    /// supervisor who covers every store may give it).
    #[serde(default)]
    pub all_stores: bool,
    /// Store ids, when not every store (at most 1000).
    #[serde(default)]
    #[schema(max_items = 1000)]
    pub stores: Vec<String>,
}

/// Most stores one assignment lists.
pub const MAX_ASSIGNED_STORES: usize = 1000;

/// A person's stores after a change.
#[derive(Debug, Deserialize, Serialize, ToSchema)]
pub struct Assignment {
    /// Login name.
    pub username: String,
    /// What the user may do.
    pub role: Role,
    /// Whether they cover every store (always, for admins).
    pub all_stores: bool,
    /// The stores they cover, when not every store.
    pub stores: Vec<String>,
}

impl Assignment {
    fn of(user: &User) -> Assignment {
        Assignment {
            username: user.username.clone(),
            role: user.role,
            all_stores: user.scope.is_all(),
            stores: user
                .scope
                .stores()
                .map(|s| s.iter().cloned().collect())
                .unwrap_or_default(),
        }
    }
}

/// Sets the stores a person covers (admins; supervisors for labelers whose
/// pool lies within their own stores, and only with stores they cover): a
/// supervisor then sees only these stores, a labeler's queue hands them
/// only these stores' tasks. Their cached tokens here are forgotten, so the
/// change holds from their next request.
#[utoipa::path(put, path = "/api/v1/users/{username}/stores", tag = "admin",
    security(("bearer" = [])),
    params(("username" = String, Path)),
    request_body = StoreAssignment,
    responses(
        (status = 200, body = Assignment),
        (status = 404, description = "`unknown-user` (also a person the caller does not manage)", body = ErrorBody),
        (status = 422, description = "`invalid-stores`", body = ErrorBody),
    ))]
pub async fn put_stores(
    State(state): State<AppState>,
    SupervisorCaller(caller): SupervisorCaller,
    Path(username): Path<String>,
    JsonObject(body): JsonObject<StoreAssignment>,
) -> Result<axum::Json<Assignment>> {
    managed(&state, &caller, &username).await?;
    let scope = assigned_scope(&state, &body).await?;
    if !manager(&caller).may_assign(&scope) {
        return Err(Error::new(
            Code::InvalidStores,
            "you may give only stores you cover yourself",
        ));
    }
    let user = admin::assign_stores(
        &state.db,
        &state.tokens,
        &caller.actor(),
        &username,
        &scope,
        state.now(),
    )
    .await?
    .ok_or_else(|| unknown(&username))?;
    Ok(axum::Json(Assignment::of(&user)))
}

/// The scope an assignment asks for, every listed store checked to exist.
async fn assigned_scope(state: &AppState, body: &StoreAssignment) -> Result<Scope> {
    let invalid = |m: String| Error::new(Code::InvalidStores, m);
    if body.all_stores {
        if !body.stores.is_empty() {
            return Err(invalid(
                "give either all_stores or a list of stores, not both".into(),
            ));
        }
        return Ok(Scope::All);
    }
    if body.stores.len() > MAX_ASSIGNED_STORES {
        return Err(invalid(format!(
            "at most {MAX_ASSIGNED_STORES} stores in one assignment"
        )));
    }
    let known: std::collections::HashSet<String> = stores::list(&state.db)
        .await?
        .into_iter()
        .map(|s| s.id)
        .collect();
    if let Some(missing) = body.stores.iter().find(|s| !known.contains(*s)) {
        return Err(invalid(format!("no store {missing:?}")));
    }
    Ok(Scope::of(body.stores.iter().cloned()))
}
