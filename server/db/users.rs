//! Labelers, supervisors and admins, and their API tokens.

use std::collections::HashMap;
use std::time::{Duration, Instant};

use sqlx::{AnyConnection, Row};

use super::{new_id, Backend, Db, Result};
use crate::auth::{digest, generate_secret, Role, USER_TOKEN_PREFIX};
use crate::domain::scope::Scope;

/// A signed-in user.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct User {
    /// User id.
    pub id: String,
    /// Login name.
    pub username: String,
    /// What the user may do.
    pub role: Role,
    /// The stores they cover: every store for admins.
    pub scope: Scope,
    /// Paused from the queue by a supervisor or the gold-accuracy floor:
    /// claims nothing until resumed.
    pub paused: bool,
}

impl User {
    /// The person as the audit trail names an actor.
    pub fn actor(&self) -> crate::domain::audit::Actor {
        crate::domain::audit::Actor {
            kind: crate::domain::audit::ActorKind::User,
            id: Some(self.id.clone()),
            name: self.username.clone(),
        }
    }
}

/// The stored form of a scope: `NULL` for every store, else a JSON array.
pub fn stored_scope(scope: &Scope) -> Option<String> {
    scope
        .stores()
        .map(|s| serde_json::to_string(s).expect("a list of strings is JSON"))
}

/// The scope of a row with a user's `role` and `stores` columns.
pub fn scope_of_row(r: &sqlx::any::AnyRow) -> Result<Scope> {
    let role: String = r.try_get("role")?;
    let role =
        Role::parse(&role).ok_or_else(|| super::Error::Data(format!("unknown role {role}")))?;
    scope_from(role, r.try_get("stores")?)
}

/// A scope as stored; admins cover every store whatever is stored.
fn scope_from(role: Role, stored: Option<String>) -> Result<Scope> {
    match (role, stored) {
        (Role::Admin, _) | (_, None) => Ok(Scope::All),
        (_, Some(text)) => serde_json::from_str::<Vec<String>>(&text)
            .map(Scope::of)
            .map_err(|e| super::Error::Data(format!("unreadable user stores {text:?}: {e}"))),
    }
}

/// Creates a user, or replaces the password and role of an existing one
/// (a reset should then [`revoke_all`] their tokens).
pub async fn upsert(
    conn: &mut AnyConnection,
    username: &str,
    password_hash: &str,
    role: Role,
    scope: &Scope,
    now: i64,
) -> Result<User> {
    let id: String = sqlx::query_scalar(
        "INSERT INTO users (id, username, password_hash, role, stores, created_at) VALUES ($1, $2, $3, $4, $5, $6) \
         ON CONFLICT (username) DO UPDATE SET password_hash = excluded.password_hash, role = excluded.role, \
         stores = excluded.stores \
         RETURNING id",
    )
    .bind(new_id())
    .bind(username)
    .bind(password_hash)
    .bind(role.as_str())
    .bind(stored_scope(scope))
    .bind(now)
    .fetch_one(conn)
    .await?;
    Ok(User {
        id,
        username: username.to_string(),
        role,
        scope: scope_from(role, stored_scope(scope))?,
        paused: false,
    })
}

/// Creates a person unless the login name is taken; `None` when it is.
pub async fn insert_new(
    conn: &mut AnyConnection,
    username: &str,
    password_hash: &str,
    role: Role,
    scope: &Scope,
    now: i64,
) -> Result<Option<User>> {
    let id: Option<String> = sqlx::query_scalar(
        "INSERT INTO users (id, username, password_hash, role, stores, created_at) VALUES ($1, $2, $3, $4, $5, $6) \
         ON CONFLICT (username) DO NOTHING RETURNING id",
    )
    .bind(new_id())
    .bind(username)
    .bind(password_hash)
    .bind(role.as_str())
    .bind(stored_scope(scope))
    .bind(now)
    .fetch_optional(conn)
    .await?;
    id.map(|id| {
        Ok(User {
            id,
            username: username.to_string(),
            role,
            scope: scope_from(role, stored_scope(scope))?,
            paused: false,
        })
    })
    .transpose()
}

/// Pauses (`Some((now, why))`) or resumes (`None`, at `resumed_at`) a
/// person by login name; the person, or `None` when there is no such
/// person.
pub async fn set_paused(
    conn: &mut AnyConnection,
    username: &str,
    pause: Option<(i64, &str)>,
    resumed_at: i64,
) -> Result<Option<User>> {
    let query = match pause {
        Some((at, why)) => sqlx::query(
            "UPDATE users SET paused_at = $2, paused_reason = $3 WHERE username = $1 \
             RETURNING id, username, role, stores, paused_at",
        )
        .bind(username)
        .bind(at)
        .bind(why),
        None => sqlx::query(
            "UPDATE users SET paused_at = NULL, paused_reason = NULL, resumed_at = $2 \
             WHERE username = $1 RETURNING id, username, role, stores, paused_at",
        )
        .bind(username)
        .bind(resumed_at),
    };
    let row = query.fetch_optional(conn).await?;
    row.as_ref().map(user_from_row).transpose()
}

/// When a person was last let back into the queue, if ever.
pub async fn resumed_at(conn: &mut AnyConnection, user_id: &str) -> Result<Option<i64>> {
    Ok(
        sqlx::query_scalar("SELECT resumed_at FROM users WHERE id = $1")
            .bind(user_id)
            .fetch_optional(conn)
            .await?
            .flatten(),
    )
}

/// A person as the people page lists them.
#[derive(Debug, Clone)]
pub struct Person {
    /// The person.
    pub user: User,
    /// Whether an admin or supervisor disabled them.
    pub disabled: bool,
    /// Why they are paused, when they are.
    pub paused_reason: Option<String>,
    /// When they were added.
    pub created_at: i64,
    /// Their last sign-in or verdict, if any.
    pub last_active_at: Option<i64>,
}

/// Everyone, by login name.
pub async fn list(conn: &mut AnyConnection) -> Result<Vec<Person>> {
    let rows = sqlx::query(
        "SELECT u.id, u.username, u.role, u.stores, u.paused_at, u.paused_reason, u.disabled_at, \
         u.created_at, \
         (SELECT MAX(t.created_at) FROM api_tokens t WHERE t.user_id = u.id) AS signed_in, \
         (SELECT MAX(v.created_at) FROM verdicts v WHERE v.labeler_id = u.id) AS answered \
         FROM users u ORDER BY u.username",
    )
    .fetch_all(conn)
    .await?;
    rows.iter()
        .map(|r| {
            let signed_in: Option<i64> = r.try_get("signed_in")?;
            let answered: Option<i64> = r.try_get("answered")?;
            Ok(Person {
                user: user_from_row(r)?,
                disabled: r.try_get::<Option<i64>, _>("disabled_at")?.is_some(),
                paused_reason: r.try_get("paused_reason")?,
                created_at: r.try_get("created_at")?,
                last_active_at: signed_in.max(answered),
            })
        })
        .collect()
}

/// Sets the stores a user covers; the user, or `None` when there is no
/// such user. (The caller has caches forget the user's tokens after
/// commit, so the new scope holds from their next request.)
pub async fn set_scope(
    conn: &mut AnyConnection,
    username: &str,
    scope: &Scope,
) -> Result<Option<User>> {
    let row = sqlx::query(
        "UPDATE users SET stores = $2 WHERE username = $1 RETURNING id, username, role, stores, paused_at",
    )
    .bind(username)
    .bind(stored_scope(scope))
    .fetch_optional(conn)
    .await?;
    row.as_ref().map(user_from_row).transpose()
}

/// Ends every token of a user (signs them out everywhere); how many. (The
/// caller has caches forget them after commit.)
pub async fn revoke_all(conn: &mut AnyConnection, user_id: &str) -> Result<u64> {
    Ok(sqlx::query("DELETE FROM api_tokens WHERE user_id = $1")
        .bind(user_id)
        .execute(conn)
        .await?
        .rows_affected())
}

/// Disables (`Some(now)`) or enables (`None`) a user by login name; the
/// user, or `None` when there is no such user. Disabling revokes every
/// token of the user.
pub async fn set_disabled(
    conn: &mut AnyConnection,
    username: &str,
    disabled_at: Option<i64>,
) -> Result<Option<(User, u64)>> {
    let row = sqlx::query(
        "UPDATE users SET disabled_at = $2 WHERE username = $1 RETURNING id, username, role, stores, paused_at",
    )
    .bind(username)
    .bind(disabled_at)
    .fetch_optional(&mut *conn)
    .await?;
    let Some(row) = row else {
        return Ok(None);
    };
    let user = user_from_row(&row)?;
    let revoked = match disabled_at {
        Some(_) => revoke_all(conn, &user.id).await?,
        None => 0,
    };
    Ok(Some((user, revoked)))
}

/// Replaces a user's password hash and ends their tokens; how many.
pub async fn reset_password(
    conn: &mut AnyConnection,
    user_id: &str,
    password_hash: &str,
) -> Result<u64> {
    sqlx::query("UPDATE users SET password_hash = $2 WHERE id = $1")
        .bind(user_id)
        .bind(password_hash)
        .execute(&mut *conn)
        .await?;
    revoke_all(conn, user_id).await
}

/// Deletes tokens that expired at or before `now`; how many.
pub async fn purge_expired_tokens(db: &Db, now: i64) -> Result<u64> {
    Ok(sqlx::query("DELETE FROM api_tokens WHERE expires_at <= $1")
        .bind(now)
        .execute(db.writer())
        .await?
        .rows_affected())
}

/// The statement that locks `user`'s row (an SQL expression) for the rest
/// of the transaction, on an engine that locks rows.
fn lock_statement(user: &str) -> String {
    format!(
        "SELECT id FROM users WHERE id = {user}{}",
        Backend::Postgres.for_update()
    )
}

/// `BEGIN` and the lock of `user_id`'s row as one simple query: one round
/// trip for [`super::Db::begin_as`] on an engine that locks rows. A simple
/// query takes no parameters, so the id goes in as a quoted literal.
pub(super) fn begin_locked(user_id: &str) -> String {
    format!("BEGIN; {}", lock_statement(&super::literal(user_id)))
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
        "SELECT id, username, role, stores, paused_at, password_hash, disabled_at FROM users WHERE username = $1",
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
        scope: scope_of_row(r)?,
        paused: r.try_get::<Option<i64>, _>("paused_at")?.is_some(),
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
        "SELECT u.id, u.username, u.role, u.stores, u.paused_at, t.expires_at FROM api_tokens t JOIN users u ON u.id = t.user_id \
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

/// The channel on which instances tell each other of access changes.
pub const ACCESS_CHANNEL: &str = "recount_access";

/// What changed: every token of a user (disabled, signed out, new
/// password, other stores, paused), one token (a sign-out), or a store's
/// row (its key, policy, catalog version, settings: [`super::store_keys`]).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum AccessChange {
    /// A user's cached tokens are stale.
    User(String),
    /// One token (by digest) ended.
    Token(String),
    /// A store's cached row is stale.
    Store(String),
}

impl AccessChange {
    pub(super) fn payload(&self) -> String {
        match self {
            AccessChange::User(id) => format!("user:{id}"),
            AccessChange::Token(hash) => format!("token:{hash}"),
            AccessChange::Store(id) => format!("store:{id}"),
        }
    }

    /// Reads a notification's payload.
    pub fn parse(payload: &str) -> Option<AccessChange> {
        if let Some(id) = payload.strip_prefix("user:") {
            return Some(AccessChange::User(id.into()));
        }
        if let Some(id) = payload.strip_prefix("store:") {
            return Some(AccessChange::Store(id.into()));
        }
        payload
            .strip_prefix("token:")
            .map(|h| AccessChange::Token(h.into()))
    }
}

/// Tells every instance of `change` when the caller's transaction commits
/// (PostgreSQL delivers a notification only then, and never one of a
/// transaction rolled back); nothing on SQLite.
pub async fn announce(
    conn: &mut AnyConnection,
    backend: super::Backend,
    change: &AccessChange,
) -> Result<()> {
    if backend == super::Backend::Postgres {
        sqlx::query("SELECT pg_notify($1, $2)")
            .bind(ACCESS_CHANNEL)
            .bind(change.payload())
            .execute(conn)
            .await?;
    }
    Ok(())
}

impl TokenCache {
    /// Applies an access change another instance announced.
    pub fn apply(&self, change: &AccessChange) {
        match change {
            AccessChange::User(id) => self.forget_user(id),
            AccessChange::Token(hash) => {
                self.entries.lock().expect("token cache").remove(hash);
            }
            // No token changes with a store.
            AccessChange::Store(_) => {}
        }
    }

    /// Forgets every token (after missing announcements).
    pub fn clear(&self) {
        self.entries.lock().expect("token cache").clear();
    }
}

/// Ends a token (console logout). This instance forgets it at once; on
/// PostgreSQL every other instance too (announced), on SQLite others
/// within [`TokenCache::FRESH`].
pub async fn revoke_token(db: &Db, cache: &TokenCache, token: &str) -> Result<()> {
    let hash = digest(token);
    let mut conn = db.writer().acquire().await?;
    sqlx::query("DELETE FROM api_tokens WHERE token_hash = $1")
        .bind(&hash)
        .execute(&mut *conn)
        .await?;
    announce(&mut conn, db.backend, &AccessChange::Token(hash.clone())).await?;
    cache.entries.lock().expect("token cache").remove(&hash);
    Ok(())
}
