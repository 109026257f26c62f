//! Changes to stores and people, each with its audit row in the same
//! transaction: the change and its record commit together or not at all.
//! Token caches forget a person only after the commit, so a concurrent
//! request cannot cache the token again from the row about to change.

use serde_json::json;

use crate::db::stores::{self, NewStore, RotatedSecret};
use crate::db::users::{self, TokenCache, User};
use crate::db::{audit, Db, Tx};
use crate::domain::audit::{Action, Actor};
use crate::domain::routing::RoutingPolicy;
use crate::domain::scope::Scope;
use crate::error::{Code, Error, Result};

/// Tells the other instances, when `tx` commits, that `user_id`'s cached
/// tokens are stale: on PostgreSQL they forget them at once; on SQLite
/// (one database file, usually one instance) within the cache's freshness.
async fn announce(tx: &mut Tx, user_id: &str) -> Result<()> {
    let backend = tx.backend();
    users::announce(tx, backend, &users::AccessChange::User(user_id.to_string())).await?;
    Ok(())
}

/// Appends the audit row of a change to `tx`.
async fn record(
    tx: &mut Tx,
    actor: &Actor,
    action: Action,
    store_id: Option<&str>,
    subject: Option<&str>,
    detail: serde_json::Value,
    now: i64,
) -> Result<()> {
    let entry = audit::Entry {
        actor,
        action,
        store_id,
        subject,
        detail,
    };
    audit::record(tx, now, &entry).await?;
    Ok(())
}

/// The store `store_id` if `user` covers it; `unknown-store` for any
/// other, as if it did not exist. The one scope check of every route and
/// page that names a store in its path.
pub async fn covered_store(db: &Db, user: &User, store_id: &str) -> Result<stores::Store> {
    let mut conn = db.reader().acquire().await?;
    stores::get(&mut conn, store_id)
        .await?
        .filter(|s| user.scope.sees(&s.id))
        .ok_or_else(|| Error::unknown_store(store_id))
}

/// Appends the audit row of a change to a store, about that store.
async fn record_store(
    tx: &mut Tx,
    actor: &Actor,
    action: Action,
    store_id: &str,
    detail: serde_json::Value,
    now: i64,
) -> Result<()> {
    record(
        tx,
        actor,
        action,
        Some(store_id),
        Some(store_id),
        detail,
        now,
    )
    .await
}

/// Creates a store with the default policy and fresh secrets.
pub async fn create_store(
    db: &Db,
    actor: &Actor,
    name: &str,
    webhook_url: Option<&str>,
    now: i64,
) -> Result<NewStore> {
    if let Some(url) = webhook_url {
        check_webhook_url(url).map_err(|m| Error::new(Code::InvalidWebhookUrl, m))?;
    }
    let mut tx = db.begin().await?;
    let created = stores::create(&mut tx, name, webhook_url, now).await?;
    let id = created.store.id.as_str();
    let detail = json!({"name": name, "webhook_url": webhook_url});
    record(
        &mut tx,
        actor,
        Action::StoreCreated,
        Some(id),
        Some(id),
        detail,
        now,
    )
    .await?;
    tx.commit().await?;
    Ok(created)
}

/// Changes a store's routing policy with `change`, which sees the current
/// one (`unknown-store`, `invalid-policy`); the new policy. Before and
/// after are recorded.
pub async fn change_policy(
    db: &Db,
    actor: &Actor,
    store_id: &str,
    change: impl FnOnce(&RoutingPolicy) -> RoutingPolicy,
    now: i64,
) -> Result<RoutingPolicy> {
    let mut tx = db.begin().await?;
    let store = stores::lock(&mut tx, store_id)
        .await?
        .ok_or_else(|| Error::unknown_store(store_id))?;
    let policy = change(&store.policy);
    policy
        .validate()
        .map_err(|e| Error::new(Code::InvalidPolicy, e.to_string()))?;
    stores::set_policy(&mut tx, store_id, &policy).await?;
    let detail = json!({"before": store.policy, "after": policy});
    record_store(&mut tx, actor, Action::PolicyChanged, store_id, detail, now).await?;
    tx.commit().await?;
    Ok(policy)
}

/// Allows or forbids training use of a store's data; false for an unknown
/// store.
pub async fn set_training(
    db: &Db,
    actor: &Actor,
    store_id: &str,
    allowed: bool,
    now: i64,
) -> Result<bool> {
    let mut tx = db.begin().await?;
    if !stores::set_training_allowed(&mut tx, store_id, allowed).await? {
        return Ok(false);
    }
    let detail = json!({"allowed": allowed});
    record_store(
        &mut tx,
        actor,
        Action::TrainingConsentChanged,
        store_id,
        detail,
        now,
    )
    .await?;
    tx.commit().await?;
    Ok(true)
}

/// Turns a store's blind review on or off; false for an unknown store.
pub async fn set_blind_review(
    db: &Db,
    actor: &Actor,
    store_id: &str,
    blind: bool,
    now: i64,
) -> Result<bool> {
    let mut tx = db.begin().await?;
    if !stores::set_blind_review(&mut tx, store_id, blind).await? {
        return Ok(false);
    }
    let detail = json!({"blind": blind});
    record_store(
        &mut tx,
        actor,
        Action::BlindReviewChanged,
        store_id,
        detail,
        now,
    )
    .await?;
    tx.commit().await?;
    Ok(true)
}

/// Sets how many days a store keeps shopper video after the receipt is
/// final (`invalid-retention` outside 1 to 3650); false for an unknown
/// store. Before and after are recorded.
pub async fn set_retention(
    db: &Db,
    actor: &Actor,
    store_id: &str,
    days: i64,
    now: i64,
) -> Result<bool> {
    crate::domain::retention::check_days(days)
        .map_err(|m| Error::new(Code::InvalidRetention, m))?;
    let mut tx = db.begin().await?;
    let Some(store) = stores::lock(&mut tx, store_id).await? else {
        return Ok(false);
    };
    stores::set_retention(&mut tx, store_id, days).await?;
    let detail = json!({
        "before": {"media_retention_days": store.media_retention_days},
        "after": {"media_retention_days": days},
    });
    record_store(
        &mut tx,
        actor,
        Action::StoreSettingsChanged,
        store_id,
        detail,
        now,
    )
    .await?;
    tx.commit().await?;
    Ok(true)
}

/// Replaces a store's API key; the new key (shown once), or `None` for an
/// unknown store.
pub async fn rotate_api_key(
    db: &Db,
    actor: &Actor,
    store_id: &str,
    now: i64,
) -> Result<Option<String>> {
    let mut tx = db.begin().await?;
    let Some(key) = stores::rotate_api_key(&mut tx, store_id).await? else {
        return Ok(None);
    };
    record_store(&mut tx, actor, Action::KeyRotated, store_id, json!({}), now).await?;
    tx.commit().await?;
    Ok(Some(key))
}

/// Replaces a store's webhook secret; the replaced one signs beside it for
/// `overlap_ms`. `None` for an unknown store.
pub async fn rotate_webhook_secret(
    db: &Db,
    actor: &Actor,
    store_id: &str,
    now: i64,
    overlap_ms: i64,
) -> Result<Option<RotatedSecret>> {
    let mut tx = db.begin().await?;
    let Some(rotated) = stores::rotate_webhook_secret(&mut tx, store_id, now, overlap_ms).await?
    else {
        return Ok(None);
    };
    let detail = json!({"previous_valid_until": rotated.previous_valid_until});
    record_store(
        &mut tx,
        actor,
        Action::WebhookSecretRotated,
        store_id,
        detail,
        now,
    )
    .await?;
    tx.commit().await?;
    Ok(Some(rotated))
}

/// The stores of a scope as the trail records them: `"all"` or the ids.
fn stores_detail(scope: &Scope) -> serde_json::Value {
    match scope.stores() {
        None => json!("all"),
        Some(ids) => json!(ids),
    }
}

/// Creates a person, or sets the password, role and stores of an existing
/// one and ends their tokens (whoever held the old password is signed
/// out); the person and how many tokens ended.
#[allow(clippy::too_many_arguments)]
pub async fn add_user(
    db: &Db,
    cache: &TokenCache,
    actor: &Actor,
    username: &str,
    password_hash: &str,
    role: crate::auth::Role,
    scope: &Scope,
    now: i64,
) -> Result<(User, u64)> {
    let mut tx = db.begin().await?;
    let user = users::upsert(&mut tx, username, password_hash, role, scope, now).await?;
    let revoked = users::revoke_all(&mut tx, &user.id).await?;
    let detail = json!({"role": role, "stores": stores_detail(scope)});
    record(
        &mut tx,
        actor,
        Action::UserCreated,
        None,
        Some(username),
        detail,
        now,
    )
    .await?;
    announce(&mut tx, &user.id).await?;
    tx.commit().await?;
    cache.forget_user(&user.id);
    Ok((user, revoked))
}

/// Disables (`true`) or enables a person by login name; the person and the
/// tokens ended, or `None` when there is no such person. Disabling ends
/// every token of theirs.
pub async fn set_disabled(
    db: &Db,
    cache: &TokenCache,
    actor: &Actor,
    username: &str,
    disabled: bool,
    now: i64,
) -> Result<Option<(User, u64)>> {
    let mut tx = db.begin().await?;
    let at = disabled.then_some(now);
    let Some((user, revoked)) = users::set_disabled(&mut tx, username, at).await? else {
        return Ok(None);
    };
    let action = if disabled {
        Action::UserDisabled
    } else {
        Action::UserEnabled
    };
    let detail = json!({"tokens_revoked": revoked});
    record(&mut tx, actor, action, None, Some(username), detail, now).await?;
    announce(&mut tx, &user.id).await?;
    tx.commit().await?;
    cache.forget_user(&user.id);
    Ok(Some((user, revoked)))
}

/// Ends every token of `user` (signed out everywhere); how many.
pub async fn sign_out_everywhere(
    db: &Db,
    cache: &TokenCache,
    actor: &Actor,
    user: &User,
    now: i64,
) -> Result<u64> {
    let mut tx = db.begin().await?;
    let revoked = users::revoke_all(&mut tx, &user.id).await?;
    let detail = json!({"tokens_revoked": revoked});
    record(
        &mut tx,
        actor,
        Action::SessionsRevoked,
        None,
        Some(&user.username),
        detail,
        now,
    )
    .await?;
    announce(&mut tx, &user.id).await?;
    tx.commit().await?;
    cache.forget_user(&user.id);
    Ok(revoked)
}

/// Sets `user`'s password hash and ends their tokens; how many.
pub async fn reset_password(
    db: &Db,
    cache: &TokenCache,
    actor: &Actor,
    user: &User,
    password_hash: &str,
    now: i64,
) -> Result<u64> {
    let mut tx = db.begin().await?;
    let revoked = users::reset_password(&mut tx, &user.id, password_hash).await?;
    let detail = json!({"tokens_revoked": revoked});
    record(
        &mut tx,
        actor,
        Action::PasswordReset,
        None,
        Some(&user.username),
        detail,
        now,
    )
    .await?;
    announce(&mut tx, &user.id).await?;
    tx.commit().await?;
    cache.forget_user(&user.id);
    Ok(revoked)
}

/// Sets the stores a person covers; the person, or `None` when there is
/// no such person.
pub async fn assign_stores(
    db: &Db,
    cache: &TokenCache,
    actor: &Actor,
    username: &str,
    scope: &Scope,
    now: i64,
) -> Result<Option<User>> {
    let mut tx = db.begin().await?;
    let Some(user) = users::set_scope(&mut tx, username, scope).await? else {
        return Ok(None);
    };
    let detail = json!({"stores": stores_detail(scope)});
    record(
        &mut tx,
        actor,
        Action::StoresAssigned,
        None,
        Some(username),
        detail,
        now,
    )
    .await?;
    announce(&mut tx, &user.id).await?;
    tx.commit().await?;
    cache.forget_user(&user.id);
    Ok(Some(user))
}

/// Adds a person who does not exist yet (`409 user-exists` otherwise,
/// `422 invalid-username` for a name that cannot be one).
#[allow(clippy::too_many_arguments)]
pub async fn create_user(
    db: &Db,
    actor: &Actor,
    username: &str,
    password_hash: &str,
    role: crate::auth::Role,
    scope: &Scope,
    now: i64,
) -> Result<User> {
    crate::domain::person::check_username(username)
        .map_err(|m| Error::new(Code::InvalidUsername, m))?;
    let mut tx = db.begin().await?;
    let Some(user) = users::insert_new(&mut tx, username, password_hash, role, scope, now).await?
    else {
        return Err(Error::new(
            Code::UserExists,
            format!("there is already a user {username:?}"),
        ));
    };
    let detail = json!({"role": role, "stores": stores_detail(scope)});
    record(
        &mut tx,
        actor,
        Action::UserCreated,
        None,
        Some(username),
        detail,
        now,
    )
    .await?;
    tx.commit().await?;
    Ok(user)
}

/// Pauses a labeler from the queue (`Some(why)`) or lets them back in
/// (`None`); the person, or `None` when there is no such person. Their
/// tokens here are forgotten, so their next claim is refused at once.
pub async fn set_paused(
    db: &Db,
    cache: &TokenCache,
    actor: &Actor,
    username: &str,
    why: Option<&str>,
    now: i64,
) -> Result<Option<User>> {
    let mut tx = db.begin().await?;
    let Some(user) = users::set_paused(&mut tx, username, why.map(|w| (now, w)), now).await? else {
        return Ok(None);
    };
    let (action, detail) = match why {
        Some(w) => (Action::UserPaused, json!({"reason": w})),
        None => (Action::UserResumed, json!({})),
    };
    record(&mut tx, actor, action, None, Some(username), detail, now).await?;
    announce(&mut tx, &user.id).await?;
    tx.commit().await?;
    cache.forget_user(&user.id);
    Ok(Some(user))
}

/// The gold-accuracy floor: labelers whose gold accuracy over the last 7
/// days falls under it (over at least `min_answers` answers) are paused
/// from the queue until a supervisor lets them back in.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct GoldFloor {
    /// Accuracy under which a labeler is paused (0: never).
    pub floor: f64,
    /// Answers needed before judging.
    pub min_answers: u64,
}

/// Pauses `user` if their gold accuracy is now under `rule`'s floor (and
/// they are not paused already); whether this paused them.
pub async fn pause_below_floor(
    db: &Db,
    cache: &TokenCache,
    user: &User,
    rule: GoldFloor,
    now: i64,
) -> Result<bool> {
    if rule.floor <= 0.0 || user.paused {
        return Ok(false);
    }
    // Judged again only on answers given since a supervisor let them back.
    let mut conn = db.reader().acquire().await?;
    let resumed = users::resumed_at(&mut conn, &user.id).await?;
    let since = crate::domain::gold::quality_window_start(now).max(resumed.unwrap_or(0));
    let (answers, correct) = crate::db::gold::answers_of(&mut conn, &user.id, since).await?;
    drop(conn);
    if !crate::domain::gold::flagged(answers, correct, rule.floor, rule.min_answers) {
        return Ok(false);
    }
    let why = format!(
        "gold accuracy {correct} of {answers} over 7 days is under the floor of {:.0} %",
        rule.floor * 100.0
    );
    let floor = Actor::system("gold-floor");
    set_paused(db, cache, &floor, &user.username, Some(&why), now).await?;
    Ok(true)
}

/// Why a webhook URL cannot be used, if it cannot: an absolute `http` or
/// `https` URL with a host, and no user name or password in it (a
/// credential in a URL ends up in logs and screens; the signature
/// authenticates deliveries).
pub fn check_webhook_url(url: &str) -> std::result::Result<(), String> {
    if url.len() > 2048 {
        return Err("a webhook URL has at most 2048 characters".into());
    }
    let parsed = reqwest::Url::parse(url).map_err(|e| format!("not a URL: {e}"))?;
    if !matches!(parsed.scheme(), "http" | "https") {
        return Err(format!(
            "a webhook URL is http or https, not {}",
            parsed.scheme()
        ));
    }
    if parsed.host_str().is_none_or(str::is_empty) {
        return Err("a webhook URL names a host".into());
    }
    if !parsed.username().is_empty() || parsed.password().is_some() {
        return Err(
            "a webhook URL carries no user name or password: deliveries are signed instead".into(),
        );
    }
    Ok(())
}

/// Changes to a store's settings; absent fields keep their value.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct StoreChange {
    /// Its display name.
    pub name: Option<String>,
    /// Where receipts are posted: `Some(None)` turns deliveries off.
    pub webhook_url: Option<Option<String>>,
    /// Days shopper video is kept after the receipt is final.
    pub media_retention_days: Option<i64>,
}

/// Most characters of a store's name.
pub const MAX_STORE_NAME: usize = 200;

/// Changes a store's name, webhook URL and retention (`unknown-store`,
/// `invalid-name`, `invalid-webhook-url`, `invalid-retention`); the store
/// after. Before and after of what changed are recorded.
pub async fn change_store(
    db: &Db,
    actor: &Actor,
    store_id: &str,
    change: &StoreChange,
    now: i64,
) -> Result<stores::Store> {
    if let Some(name) = &change.name {
        let n = name.trim().chars().count();
        if n == 0 || n > MAX_STORE_NAME {
            return Err(Error::new(
                Code::InvalidName,
                format!("a store's name has 1 to {MAX_STORE_NAME} characters"),
            ));
        }
    }
    if let Some(Some(url)) = &change.webhook_url {
        check_webhook_url(url).map_err(|m| Error::new(Code::InvalidWebhookUrl, m))?;
    }
    if let Some(days) = change.media_retention_days {
        crate::domain::retention::check_days(days)
            .map_err(|m| Error::new(Code::InvalidRetention, m))?;
    }
    let mut tx = db.begin().await?;
    let before = stores::lock(&mut tx, store_id)
        .await?
        .ok_or_else(|| Error::unknown_store(store_id))?;
    let after = stores::Store {
        name: change
            .name
            .as_ref()
            .map_or(before.name.clone(), |n| n.trim().to_string()),
        webhook_url: change
            .webhook_url
            .clone()
            .unwrap_or_else(|| before.webhook_url.clone()),
        media_retention_days: change
            .media_retention_days
            .unwrap_or(before.media_retention_days),
        ..before.clone()
    };
    stores::set_settings(&mut tx, &after).await?;
    let mut old = serde_json::Map::new();
    let mut new = serde_json::Map::new();
    if before.name != after.name {
        old.insert("name".into(), json!(before.name));
        new.insert("name".into(), json!(after.name));
    }
    if before.webhook_url != after.webhook_url {
        old.insert("webhook_url".into(), json!(before.webhook_url));
        new.insert("webhook_url".into(), json!(after.webhook_url));
    }
    if before.media_retention_days != after.media_retention_days {
        old.insert(
            "media_retention_days".into(),
            json!(before.media_retention_days),
        );
        new.insert(
            "media_retention_days".into(),
            json!(after.media_retention_days),
        );
    }
    if !new.is_empty() {
        let detail = json!({"before": old, "after": new});
        record_store(
            &mut tx,
            actor,
            Action::StoreSettingsChanged,
            store_id,
            detail,
            now,
        )
        .await?;
    }
    tx.commit().await?;
    Ok(after)
}

/// Sends a dead receipt delivery of a store again, its attempts counted
/// afresh (`unknown-delivery`, `delivery-not-dead`).
pub async fn redeliver(
    db: &Db,
    actor: &Actor,
    store_id: &str,
    delivery_id: &str,
    now: i64,
) -> Result<()> {
    use crate::domain::job::{DeliverReceipt, JobKind};
    let mut tx = db.begin().await?;
    if !crate::db::jobs::revive(&mut tx, delivery_id, store_id, DeliverReceipt::KIND, now).await? {
        let status =
            crate::db::jobs::status_of(&mut tx, delivery_id, store_id, DeliverReceipt::KIND)
                .await?;
        return Err(match status {
            None => Error::new(
                Code::UnknownDelivery,
                format!("no delivery {delivery_id:?} of this store"),
            ),
            Some(s) => Error::new(
                Code::DeliveryNotDead,
                format!("delivery {delivery_id:?} is {s}: only a dead delivery is sent again"),
            ),
        });
    }
    record(
        &mut tx,
        actor,
        Action::WebhookRedelivered,
        Some(store_id),
        Some(delivery_id),
        json!({}),
        now,
    )
    .await?;
    tx.commit().await?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::check_webhook_url;

    #[test]
    fn webhook_urls_are_http_with_a_host_and_no_credentials() {
        for good in [
            "https://store.example/hooks/recount",
            "http://10.0.0.5:8080/receipts?x=1",
        ] {
            assert!(check_webhook_url(good).is_ok(), "{good}");
        }
        for bad in [
            "ftp://store.example/x",
            "https://user:pass@store.example/x",
            "https://token@store.example/x",
            "not a url",
            "https://",
            "javascript:alert(1)",
        ] {
            assert!(check_webhook_url(bad).is_err(), "{bad}");
        }
        assert!(check_webhook_url(&format!("https://a.example/{}", "x".repeat(2100))).is_err());
    }
}
