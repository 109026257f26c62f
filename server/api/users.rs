//! Admin endpoints over people's access: disable and enable a user, sign
//! them out everywhere, reset their password. Every change that ends a
//! user's access revokes their tokens; this instance stops accepting them
//! at once, others within the token cache's freshness (10 s).

use axum::extract::State;
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

use crate::auth::{generate_password, hash_password, Role};
use crate::db::users::{self, User};
use crate::error::{Code, Error, Result};
use crate::http::error::ErrorBody;
use crate::http::extract::{AdminCaller, Path};
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

async fn account_of(state: &AppState, username: &str) -> Result<users::Account> {
    users::by_username(&state.db, username)
        .await?
        .ok_or_else(|| unknown(username))
}

fn access(user: User, disabled: bool, tokens_revoked: u64) -> axum::Json<Access> {
    axum::Json(Access {
        username: user.username,
        role: user.role,
        disabled,
        tokens_revoked,
    })
}

/// Disables a user (admins): their tokens end and they can no longer sign
/// in (`403 user-disabled`, told only to whoever knows the password).
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
    AdminCaller(admin): AdminCaller,
    Path(username): Path<String>,
) -> Result<axum::Json<Access>> {
    if admin.username == username {
        return Err(Error::new(
            Code::OwnAccount,
            "an admin may not disable their own account; ask another admin",
        ));
    }
    let (user, revoked) =
        users::set_disabled(&state.db, &state.tokens, &username, Some(state.now()))
            .await?
            .ok_or_else(|| unknown(&username))?;
    Ok(access(user, true, revoked))
}

/// Enables a disabled user again (admins); their old tokens stay ended.
#[utoipa::path(post, path = "/api/v1/users/{username}/enable", tag = "admin",
    security(("bearer" = [])),
    params(("username" = String, Path)),
    responses(
        (status = 200, body = Access),
        (status = 404, description = "`unknown-user`", body = ErrorBody),
    ))]
pub async fn enable(
    State(state): State<AppState>,
    _admin: AdminCaller,
    Path(username): Path<String>,
) -> Result<axum::Json<Access>> {
    let (user, _) = users::set_disabled(&state.db, &state.tokens, &username, None)
        .await?
        .ok_or_else(|| unknown(&username))?;
    Ok(access(user, false, 0))
}

/// Ends every token of a user (admins): signed out of every console and
/// script at once; they can sign in again.
#[utoipa::path(post, path = "/api/v1/users/{username}/revoke-tokens", tag = "admin",
    security(("bearer" = [])),
    params(("username" = String, Path)),
    responses(
        (status = 200, body = Access),
        (status = 404, description = "`unknown-user`", body = ErrorBody),
    ))]
pub async fn revoke_tokens(
    State(state): State<AppState>,
    _admin: AdminCaller,
    Path(username): Path<String>,
) -> Result<axum::Json<Access>> {
    let account = account_of(&state, &username).await?;
    let revoked = users::revoke_all(&state.db, &state.tokens, &account.user.id).await?;
    Ok(access(account.user, account.disabled, revoked))
}

/// Resets a user's password to a generated one, shown once (admins); the
/// user's tokens end.
#[utoipa::path(post, path = "/api/v1/users/{username}/password", tag = "admin",
    security(("bearer" = [])),
    params(("username" = String, Path)),
    responses(
        (status = 200, body = NewPassword),
        (status = 404, description = "`unknown-user`", body = ErrorBody),
    ))]
pub async fn reset_password(
    State(state): State<AppState>,
    _admin: AdminCaller,
    Path(username): Path<String>,
) -> Result<axum::Json<NewPassword>> {
    let account = account_of(&state, &username).await?;
    let password = generate_password();
    let hash = tokio::task::spawn_blocking({
        let p = password.clone();
        move || hash_password(&p)
    })
    .await
    .map_err(anyhow::Error::from)??;
    let revoked = users::reset_password(&state.db, &state.tokens, &account.user.id, &hash).await?;
    Ok(axum::Json(NewPassword {
        username: account.user.username,
        password,
        tokens_revoked: revoked,
    }))
}
