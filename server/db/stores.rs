//! Stores: API keys, webhooks and routing policies.

use sqlx::{AnyConnection, Row};

use super::{flag, new_id, Db, Result, Tx};
use crate::auth::{digest, generate_secret, generate_webhook_secret, STORE_KEY_PREFIX};
use crate::domain::routing::{RoutingMode, RoutingPolicy};

/// A store as the service needs it.
#[derive(Debug, Clone)]
pub struct Store {
    /// Store id.
    pub id: String,
    /// Display name.
    pub name: String,
    /// Where finalized receipts are posted.
    pub webhook_url: Option<String>,
    /// Key of the webhook signature.
    pub webhook_secret: String,
    /// The secret a rotation replaced, and until when (epoch ms) it still
    /// signs deliveries beside the new one.
    pub previous_webhook_secret: Option<(String, i64)>,
    /// Routing policy.
    pub policy: RoutingPolicy,
    /// Whether the store's events may become training data.
    pub training_allowed: bool,
    /// Whether every task of the store is shown blind (audits, gold copies
    /// and disputes always are).
    pub blind_review: bool,
    /// Days shopper video is kept after the receipt is final.
    pub media_retention_days: i64,
    /// Its catalog's version when the row was read: a new value on every
    /// catalog upload (`db::catalog_cache`).
    pub catalog_version: String,
}

/// A newly created store with its one-time secrets.
#[derive(Debug, Clone)]
pub struct NewStore {
    /// The store.
    pub store: Store,
    /// The API key, shown once; only its digest is kept.
    pub api_key: String,
}

const COLUMNS: &str = "id, name, webhook_url, webhook_secret, previous_webhook_secret, \
     previous_webhook_secret_until, threshold, margin, audit_rate, \
     audit_verdicts, high_value_cents, receipt_sla_ms, expected_exit_ms, training_allowed, blind_review, \
     routing_mode, review_cost_cents, media_retention_days, catalog_version";

fn from_row(r: &sqlx::any::AnyRow) -> Result<Store> {
    Ok(Store {
        id: r.try_get("id")?,
        name: r.try_get("name")?,
        webhook_url: r.try_get("webhook_url")?,
        webhook_secret: r.try_get("webhook_secret")?,
        previous_webhook_secret: r
            .try_get::<Option<String>, _>("previous_webhook_secret")?
            .zip(r.try_get::<Option<i64>, _>("previous_webhook_secret_until")?),
        policy: RoutingPolicy {
            mode: super::state(&r.try_get::<String, _>("routing_mode")?, RoutingMode::parse)?,
            review_cost_cents: r.try_get("review_cost_cents")?,
            threshold: r.try_get("threshold")?,
            margin: r.try_get("margin")?,
            audit_rate: r.try_get("audit_rate")?,
            audit_verdicts: r.try_get("audit_verdicts")?,
            high_value_cents: r.try_get("high_value_cents")?,
            receipt_sla_ms: r.try_get("receipt_sla_ms")?,
            expected_exit_ms: r.try_get("expected_exit_ms")?,
        },
        training_allowed: r.try_get::<i64, _>("training_allowed")? != 0,
        blind_review: r.try_get::<i64, _>("blind_review")? != 0,
        media_retention_days: r.try_get("media_retention_days")?,
        catalog_version: r.try_get("catalog_version")?,
    })
}

/// Creates a store with the default policy and fresh secrets.
pub async fn create(
    conn: &mut AnyConnection,
    name: &str,
    webhook_url: Option<&str>,
    now: i64,
) -> Result<NewStore> {
    let api_key = generate_secret(STORE_KEY_PREFIX);
    let store = Store {
        id: new_id(),
        name: name.to_string(),
        webhook_url: webhook_url.map(str::to_string),
        webhook_secret: generate_webhook_secret(),
        previous_webhook_secret: None,
        policy: RoutingPolicy::default(),
        training_allowed: false,
        blind_review: false,
        media_retention_days: crate::domain::retention::DEFAULT_RETENTION_DAYS,
        catalog_version: String::new(),
    };
    let p = &store.policy;
    sqlx::query(
        "INSERT INTO stores (id, name, api_key_hash, webhook_url, webhook_secret, threshold, \
         margin, audit_rate, audit_verdicts, high_value_cents, receipt_sla_ms, expected_exit_ms, \
         training_allowed, created_at) \
         VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14)",
    )
    .bind(&store.id)
    .bind(&store.name)
    .bind(digest(&api_key))
    .bind(&store.webhook_url)
    .bind(&store.webhook_secret)
    .bind(p.threshold)
    .bind(p.margin)
    .bind(p.audit_rate)
    .bind(p.audit_verdicts)
    .bind(p.high_value_cents)
    .bind(p.receipt_sla_ms)
    .bind(p.expected_exit_ms)
    .bind(flag(store.training_allowed))
    .bind(now)
    .execute(conn)
    .await?;
    Ok(NewStore { store, api_key })
}

/// The store an API key belongs to, by the key's digest (callers go
/// through the cache, [`super::store_keys`]).
pub(super) async fn by_key_hash(db: &Db, key_hash: &str) -> Result<Option<Store>> {
    let row = sqlx::query(&format!(
        "SELECT {COLUMNS} FROM stores WHERE api_key_hash = $1"
    ))
    .bind(key_hash)
    .fetch_optional(db.reader())
    .await?;
    row.as_ref().map(from_row).transpose()
}

/// A store by id, read on the given connection (inside a transaction when needed).
pub async fn get(conn: &mut AnyConnection, id: &str) -> Result<Option<Store>> {
    let row = sqlx::query(&format!("SELECT {COLUMNS} FROM stores WHERE id = $1"))
        .bind(id)
        .fetch_optional(conn)
        .await?;
    row.as_ref().map(from_row).transpose()
}

/// A store by id, its row locked for the rest of the transaction (on
/// PostgreSQL; SQLite's one writer serializes anyway).
pub async fn lock(tx: &mut super::Tx, id: &str) -> Result<Option<Store>> {
    let row = sqlx::query(&format!(
        "SELECT {COLUMNS} FROM stores WHERE id = $1{}",
        tx.backend().for_update()
    ))
    .bind(id)
    .fetch_optional(&mut **tx)
    .await?;
    row.as_ref().map(from_row).transpose()
}

impl Store {
    /// The store as the audit trail names an actor.
    pub fn actor(&self) -> crate::domain::audit::Actor {
        crate::domain::audit::Actor {
            kind: crate::domain::audit::ActorKind::Store,
            id: Some(self.id.clone()),
            name: self.name.clone(),
        }
    }
}

/// Every store, by name (supervisor pages list them).
pub async fn list(db: &Db) -> Result<Vec<Store>> {
    let rows = sqlx::query(&format!("SELECT {COLUMNS} FROM stores ORDER BY name, id"))
        .fetch_all(db.reader())
        .await?;
    rows.iter().map(from_row).collect()
}

/// A store by name (the demo reuses its store across restarts).
pub async fn by_name(db: &Db, name: &str) -> Result<Option<Store>> {
    let row = sqlx::query(&format!(
        "SELECT {COLUMNS} FROM stores WHERE name = $1 ORDER BY created_at LIMIT 1"
    ))
    .bind(name)
    .fetch_optional(db.reader())
    .await?;
    row.as_ref().map(from_row).transpose()
}

/// Replaces a store's routing policy; false when the store does not exist.
pub async fn set_policy(tx: &mut Tx, id: &str, p: &RoutingPolicy) -> Result<bool> {
    tx.store_changed(id);
    let done = sqlx::query(
        "UPDATE stores SET threshold = $1, margin = $2, audit_rate = $3, audit_verdicts = $4, \
         high_value_cents = $5, receipt_sla_ms = $6, expected_exit_ms = $7, routing_mode = $9, \
         review_cost_cents = $10 WHERE id = $8",
    )
    .bind(p.threshold)
    .bind(p.margin)
    .bind(p.audit_rate)
    .bind(p.audit_verdicts)
    .bind(p.high_value_cents)
    .bind(p.receipt_sla_ms)
    .bind(p.expected_exit_ms)
    .bind(id)
    .bind(p.mode.as_str())
    .bind(p.review_cost_cents)
    .execute(&mut **tx)
    .await?;
    Ok(done.rows_affected() == 1)
}

/// Allows or forbids the use of a store's data for training exports; false
/// when there is no such store.
pub async fn set_training_allowed(tx: &mut Tx, id: &str, allowed: bool) -> Result<bool> {
    tx.store_changed(id);
    let done = sqlx::query("UPDATE stores SET training_allowed = $1 WHERE id = $2")
        .bind(flag(allowed))
        .bind(id)
        .execute(&mut **tx)
        .await?;
    Ok(done.rows_affected() == 1)
}

/// Turns blind review of every task of a store on or off; false when there
/// is no such store.
pub async fn set_blind_review(tx: &mut Tx, id: &str, blind: bool) -> Result<bool> {
    tx.store_changed(id);
    let done = sqlx::query("UPDATE stores SET blind_review = $1 WHERE id = $2")
        .bind(flag(blind))
        .bind(id)
        .execute(&mut **tx)
        .await?;
    Ok(done.rows_affected() == 1)
}

/// Sets how many days a store keeps shopper video after the receipt is
/// final; false when there is no such store.
pub async fn set_retention(tx: &mut Tx, id: &str, days: i64) -> Result<bool> {
    tx.store_changed(id);
    let done = sqlx::query("UPDATE stores SET media_retention_days = $1 WHERE id = $2")
        .bind(days)
        .bind(id)
        .execute(&mut **tx)
        .await?;
    Ok(done.rows_affected() == 1)
}

/// Writes a store's name, webhook URL and retention.
pub async fn set_settings(tx: &mut Tx, store: &Store) -> Result<()> {
    tx.store_changed(&store.id);
    sqlx::query(
        "UPDATE stores SET name = $1, webhook_url = $2, media_retention_days = $3 WHERE id = $4",
    )
    .bind(&store.name)
    .bind(&store.webhook_url)
    .bind(store.media_retention_days)
    .bind(&store.id)
    .execute(&mut **tx)
    .await?;
    Ok(())
}

/// A store's webhook secrets after a rotation.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RotatedSecret {
    /// The new secret, which signs every delivery from now on.
    pub secret: String,
    /// Until when (epoch ms) the replaced one signs beside it.
    pub previous_valid_until: i64,
}

/// Replaces a store's webhook secret with a new one; the replaced secret
/// keeps signing deliveries beside it until `now + overlap_ms`, so the
/// store can switch its verifier without losing one. (A secret replaced
/// earlier, still in its overlap, ends now.) `None` for an unknown store.
pub async fn rotate_webhook_secret(
    tx: &mut Tx,
    id: &str,
    now: i64,
    overlap_ms: i64,
) -> Result<Option<RotatedSecret>> {
    tx.store_changed(id);
    let rotated = RotatedSecret {
        secret: generate_webhook_secret(),
        previous_valid_until: now.saturating_add(overlap_ms),
    };
    let done = sqlx::query(
        "UPDATE stores SET previous_webhook_secret = webhook_secret, \
         previous_webhook_secret_until = $1, webhook_secret = $2 WHERE id = $3",
    )
    .bind(rotated.previous_valid_until)
    .bind(&rotated.secret)
    .bind(id)
    .execute(&mut **tx)
    .await?;
    Ok((done.rows_affected() == 1).then_some(rotated))
}

/// Issues a new API key for a store, invalidating the old one.
pub async fn rotate_api_key(tx: &mut Tx, id: &str) -> Result<Option<String>> {
    tx.store_changed(id);
    let key = generate_secret(STORE_KEY_PREFIX);
    let done = sqlx::query("UPDATE stores SET api_key_hash = $1 WHERE id = $2")
        .bind(digest(&key))
        .bind(id)
        .execute(&mut **tx)
        .await?;
    Ok((done.rows_affected() == 1).then_some(key))
}
