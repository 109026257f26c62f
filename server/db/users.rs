//! Labelers, supervisors and admins, and their API tokens.

use std::collections::HashMap;
use std::time::{Duration, Instant};

use sqlx::Row;

use super::{new_id, Db, Result, Tx};
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

/// Creates a user, or replaces the password and role of an existing one
/// (a reset should then [`revoke_all`] their tokens).
pub async fn upsert(
    db: &Db,
    username: &str,
    password_hash: &str,
    role: Role,
    now: i64,
) -> Result<User> {
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

/// Ends every token of a user (signs them out everywhere); how many.
/// This instance forgets them at once, others within
/// [`TokenCache::FRESH`].
pub async fn revoke_all(db: &Db, cache: &TokenCache, user_id: &str) -> Result<u64> {
    let n = sqlx::query("DELETE FROM api_tokens WHERE user_id = $1")
        .bind(user_id)
        .execute(db.writer())
        .await?
        .rows_affected();
    cache.forget_user(user_id);
    Ok(n)
}

/// Disables (`Some(now)`) or enables (`None`) a user by login name; the
/// user, or `None` when there is no such user. Disabling revokes every
/// token of the user.
pub async fn set_disabled(
    db: &Db,
    cache: &TokenCache,
    username: &str,
    disabled_at: Option<i64>,
) -> Result<Option<(User, u64)>> {
    let row = sqlx::query(
        "UPDATE users SET disabled_at = $2 WHERE username = $1 RETURNING id, username, role",
    )
    .bind(username)
    .bind(disabled_at)
    .fetch_optional(db.writer())
    .await?;
    let Some(row) = row else {
        return Ok(None);
    };
    let user = user_from_row(&row)?;
    let revoked = match disabled_at {
        Some(_) => revoke_all(db, cache, &user.id).await?,
        None => 0,
    };
    Ok(Some((user, revoked)))
}

/// Replaces a user's password hash and ends their tokens; how many.
pub async fn reset_password(
    db: &Db,
    cache: &TokenCache,
    user_id: &str,
    password_hash: &str,
) -> Result<u64> {
    sqlx::query("UPDATE users SET password_hash = $2 WHERE id = $1")
        .bind(user_id)
        .bind(password_hash)
        .execute(db.writer())
        .await?;
    revoke_all(db, cache, user_id).await
}

/// Deletes tokens that expired at or before `now`; how many.
pub async fn purge_expired_tokens(db: &Db, now: i64) -> Result<u64> {
    Ok(sqlx::query("DELETE FROM api_tokens WHERE expires_at <= $1")
        .bind(now)
        .execute(db.writer())
        .await?
        .rows_affected())
}

/// Locks a user's row for the rest of the transaction: one user's
/// concurrent claims queue behind each other, so the lease limit holds.
pub async fn lock(tx: &mut Tx, user_id: &str) -> Result<()> {
    sqlx::query(&format!(
        "SELECT id FROM users WHERE id = $1{}",
        tx.backend().for_update()
    ))
    .bind(user_id)
    .fetch_optional(&mut **tx)
    .await?;
    Ok(())
}

/// What signing in needs of a user.
#[derive(Debug, Clone)]
pub struct Account {
    /// The user.
    pub user: User,
    /// Their password's argon2 hash.
    pub password_hash: String,
    /// Whether an admin disabled them.
    pub disabled: bool,
}

/// A user's account by login name.
pub async fn by_username(db: &Db, username: &str) -> Result<Option<Account>> {
    let row = sqlx::query(
        "SELECT id, username, role, password_hash, disabled_at FROM users WHERE username = $1",
    )
    .bind(username)
    .fetch_optional(db.reader())
    .await?;
    row.map(|r| {
        Ok(Account {
            user: user_from_row(&r)?,
            password_hash: r.try_get("password_hash")?,
            disabled: r.try_get::<Option<i64>, _>("disabled_at")?.is_some(),
        })
    })
    .transpose()
}

fn user_from_row(r: &sqlx::any::AnyRow) -> Result<User> {
    let role: String = r.try_get("role")?;
    Ok(User {
        id: r.try_get("id")?,
        username: r.try_get("username")?,
        role: Role::parse(&role)
            .ok_or_else(|| super::Error::Data(format!("unknown role {role}")))?,
    })
}

/// Issues an API token for a user.
pub async fn issue_token(db: &Db, user_id: &str, now: i64, ttl_ms: i64) -> Result<String> {
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

/// The user a live token (by digest) belongs to, with the token's expiry.
async fn token_owner(db: &Db, token_hash: &str, now: i64) -> Result<Option<(User, i64)>> {
    let row = sqlx::query(
        "SELECT u.id, u.username, u.role, t.expires_at FROM api_tokens t JOIN users u ON u.id = t.user_id \
         WHERE t.token_hash = $1 AND t.expires_at > $2 AND u.disabled_at IS NULL",
    )
    .bind(token_hash)
    .bind(now)
    .fetch_optional(db.reader())
    .await?;
    row.map(|r| Ok((user_from_row(&r)?, r.try_get("expires_at")?)))
        .transpose()
}

/// Recently seen tokens, so a labeler's claim, heartbeat and verdict do not
/// each pay a database read to learn who is calling. An entry is trusted for
/// [`TokenCache::FRESH`]: a changed role takes effect within that time; a
/// token's own expiry is checked on every use.
#[derive(Debug, Default)]
pub struct TokenCache {
    entries: std::sync::Mutex<HashMap<String, (User, i64, Instant)>>,
}

impl TokenCache {
    /// How long a looked-up token is trusted without asking the database.
    pub const FRESH: Duration = Duration::from_secs(10);
    /// Entries kept at most; the cache is emptied when full.
    const CAPACITY: usize = 50_000;

    /// The user of a live token, from the cache or the database.
    pub async fn user(&self, db: &Db, token: &str, now: i64) -> Result<Option<User>> {
        let hash = digest(token);
        if let Some((user, expires_at, seen)) = self.entries.lock().expect("token cache").get(&hash)
        {
            if seen.elapsed() < Self::FRESH {
                return Ok((*expires_at > now).then(|| user.clone()));
            }
        }
        let found = token_owner(db, &hash, now).await?;
        let mut entries = self.entries.lock().expect("token cache");
        match &found {
            Some((user, expires_at)) => {
                if entries.len() >= Self::CAPACITY {
                    entries.clear();
                }
                entries.insert(hash, (user.clone(), *expires_at, Instant::now()));
            }
            None => {
                entries.remove(&hash);
            }
        }
        Ok(found.map(|(user, _)| user))
    }

    /// Forgets every cached token of a user (revoked or disabled).
    pub fn forget_user(&self, user_id: &str) {
        self.entries
            .lock()
            .expect("token cache")
            .retain(|_, (user, _, _)| user.id != user_id);
    }
}

/// Ends a token (console logout). This instance forgets it at once; other
/// instances may accept it for up to [`TokenCache::FRESH`] from their cache.
pub async fn revoke_token(db: &Db, cache: &TokenCache, token: &str) -> Result<()> {
    let hash = digest(token);
    sqlx::query("DELETE FROM api_tokens WHERE token_hash = $1")
        .bind(&hash)
        .execute(db.writer())
        .await?;
    cache.entries.lock().expect("token cache").remove(&hash);
    Ok(())
}
