//! Labelers, supervisors and admins, and their API tokens.

use sqlx::Row;

use super::{new_id, Db};
use crate::auth::{digest, generate_secret, Role, USER_TOKEN_PREFIX};

/// A signed-in user.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct User {
    /// User id.
    pub id: String,
    /// Login name.
    pub username: String,
    /// What the user may do.
    pub role: Role,
}

/// Creates a user, or replaces the password and role of an existing one.
pub async fn upsert(
    db: &Db,
    username: &str,
    password_hash: &str,
    role: Role,
    now: i64,
) -> Result<User, sqlx::Error> {
    let id: String = sqlx::query_scalar(
        "INSERT INTO users (id, username, password_hash, role, created_at) VALUES ($1, $2, $3, $4, $5) \
         ON CONFLICT (username) DO UPDATE SET password_hash = excluded.password_hash, role = excluded.role \
         RETURNING id",
    )
    .bind(new_id())
    .bind(username)
    .bind(password_hash)
    .bind(role.as_str())
    .bind(now)
    .fetch_one(db.writer())
    .await?;
    Ok(User {
        id,
        username: username.to_string(),
        role,
    })
}

/// A user and password hash by login name.
pub async fn by_username(db: &Db, username: &str) -> Result<Option<(User, String)>, sqlx::Error> {
    let row =
        sqlx::query("SELECT id, username, role, password_hash FROM users WHERE username = $1")
            .bind(username)
            .fetch_optional(db.reader())
            .await?;
    row.map(|r| Ok((user_from_row(&r)?, r.try_get("password_hash")?)))
        .transpose()
}

fn user_from_row(r: &sqlx::any::AnyRow) -> Result<User, sqlx::Error> {
    let role: String = r.try_get("role")?;
    Ok(User {
        id: r.try_get("id")?,
        username: r.try_get("username")?,
        role: Role::parse(&role)
            .ok_or_else(|| sqlx::Error::Decode(format!("unknown role {role}").into()))?,
    })
}

/// Issues an API token for a user.
pub async fn issue_token(
    db: &Db,
    user_id: &str,
    now: i64,
    ttl_ms: i64,
) -> Result<String, sqlx::Error> {
    let token = generate_secret(USER_TOKEN_PREFIX);
    sqlx::query("INSERT INTO api_tokens (token_hash, user_id, created_at, expires_at) VALUES ($1, $2, $3, $4)")
        .bind(digest(&token))
        .bind(user_id)
        .bind(now)
        .bind(now + ttl_ms)
        .execute(db.writer())
        .await?;
    Ok(token)
}

/// The user a live token belongs to.
pub async fn by_token(db: &Db, token: &str, now: i64) -> Result<Option<User>, sqlx::Error> {
    let row = sqlx::query(
        "SELECT u.id, u.username, u.role FROM api_tokens t JOIN users u ON u.id = t.user_id \
         WHERE t.token_hash = $1 AND t.expires_at > $2",
    )
    .bind(digest(token))
    .bind(now)
    .fetch_optional(db.reader())
    .await?;
    row.as_ref().map(user_from_row).transpose()
}
