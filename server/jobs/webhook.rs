//! Receipt webhooks: signed with HMAC-SHA256, retried with exponential backoff.
//!
//! One delivery per receipt version: version 1 is `receipt.finalized`, each
//! later one `receipt.adjusted`. The body names its event type, the receipt
//! version and the delivery id, and carries the receipt as it was at that
//! version (so a late or retried delivery never shows a newer one).
//!
//! Deliveries follow the Standard Webhooks format, so a store can verify
//! them with any of its libraries: `webhook-id` (the delivery id, stable
//! across retries, so a store can drop duplicates), `webhook-timestamp`
//! (Unix seconds) and `webhook-signature`: `v1,` and the base64 HMAC-SHA256
//! of `"{id}.{timestamp}.{body}"` under the key the store's `whsec_` secret
//! encodes. Stores recompute it and reject stale timestamps, which stops
//! forgery and replay. During a secret's rotation the header holds one
//! signature per valid secret, space-separated, so a verifier holding
//! either accepts the delivery.

use std::time::Duration;

use base64::Engine;
use hmac::{Hmac, Mac};
use serde::Serialize;
use sha2::Sha256;

use super::{BackgroundJob, JobContext, JobError};
use crate::config::Config;
use crate::db::receipts;
use crate::db::stores;
use crate::domain::job::{DeliverReceipt, RetryPolicy};
use crate::domain::receipt::{Adjustment, Receipt};

/// Body of a receipt webhook.
#[derive(Debug, Serialize)]
pub struct ReceiptWebhook<'a> {
    /// `receipt.finalized` (version 1) or `receipt.adjusted`.
    #[serde(rename = "type")]
    pub kind: &'static str,
    /// Stable across retries; also the `webhook-id` header.
    pub delivery_id: &'a str,
    /// The receipt version announced.
    pub version: i64,
    /// The store.
    pub store_id: &'a str,
    /// The receipt as it was at `version`.
    pub receipt: &'a Receipt,
    /// What this version changed, for `receipt.adjusted`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub adjustment: Option<&'a Adjustment>,
}

/// The event type of a delivery announcing receipt `version`.
pub fn event_type(version: i64) -> &'static str {
    if version <= 1 {
        "receipt.finalized"
    } else {
        "receipt.adjusted"
    }
}

/// The HTTP client for deliveries.
pub fn client(config: &Config) -> reqwest::Client {
    reqwest::Client::builder()
        .timeout(Duration::from_millis(config.webhook_timeout_ms))
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .expect("a client with only a timeout and redirect policy always builds")
}

/// The signing key a secret stands for: the base64 after `whsec_`
/// (standard, or the URL-safe form of secrets made before the Standard
/// Webhooks format); a secret that is not base64 signs with its own bytes.
pub fn key_of(secret: &str) -> Vec<u8> {
    use base64::engine::general_purpose::{STANDARD, URL_SAFE_NO_PAD};
    let encoded = secret.strip_prefix("whsec_").unwrap_or(secret);
    STANDARD
        .decode(encoded)
        .or_else(|_| URL_SAFE_NO_PAD.decode(encoded))
        .unwrap_or_else(|_| secret.as_bytes().to_vec())
}

/// The HMAC-SHA256 of `"{id}.{timestamp}.{body}"` under `secret`'s key.
fn mac_of(secret: &str, id: &str, timestamp: i64, body: &[u8]) -> Hmac<Sha256> {
    let mut mac =
        Hmac::<Sha256>::new_from_slice(&key_of(secret)).expect("HMAC takes any key length");
    mac.update(id.as_bytes());
    mac.update(b".");
    mac.update(timestamp.to_string().as_bytes());
    mac.update(b".");
    mac.update(body);
    mac
}

/// One signature: `v1,` and the base64 of [`mac_of`].
pub fn sign(secret: &str, id: &str, timestamp: i64, body: &[u8]) -> String {
    let tag = mac_of(secret, id, timestamp, body).finalize().into_bytes();
    format!(
        "v1,{}",
        base64::engine::general_purpose::STANDARD.encode(tag)
    )
}

/// The secrets that sign a store's deliveries at `now`: its secret, and
/// the one a rotation replaced while that one's overlap runs.
pub fn secrets_at(store: &stores::Store, now: i64) -> Vec<&str> {
    let mut secrets = vec![store.webhook_secret.as_str()];
    if let Some((previous, until)) = &store.previous_webhook_secret {
        if now < *until {
            secrets.push(previous);
        }
    }
    secrets
}

/// The `webhook-signature` header: one signature per secret, space-separated.
pub fn signature_header(secrets: &[&str], id: &str, timestamp: i64, body: &[u8]) -> String {
    secrets
        .iter()
        .map(|s| sign(s, id, timestamp, body))
        .collect::<Vec<_>>()
        .join(" ")
}

/// Whether a delivery's headers verify under `secret`, as a store checks
/// them: any of the header's signatures matching (HMAC's own constant-time
/// check). Checking the timestamp's age is the receiver's.
pub fn verify(secret: &str, id: &str, timestamp: i64, header: &str, body: &[u8]) -> bool {
    header.split(' ').any(|candidate| {
        candidate
            .strip_prefix("v1,")
            .and_then(|b64| base64::engine::general_purpose::STANDARD.decode(b64).ok())
            .is_some_and(|tag| {
                mac_of(secret, id, timestamp, body)
                    .verify_slice(&tag)
                    .is_ok()
            })
    })
}

/// The webhook settings: `webhook_max_attempts` deliveries, backed off
/// from `webhook_backoff_base_ms` up to `webhook_backoff_max_ms`.
pub fn retry_policy(config: &Config) -> RetryPolicy {
    RetryPolicy {
        max_attempts: config.webhook_max_attempts,
        backoff_base_ms: config.webhook_backoff_base_ms,
        backoff_max_ms: config.webhook_backoff_max_ms,
        jitter: true,
    }
}

/// A receipt webhook: retried under the webhook settings; a delivery that
/// runs out of attempts leaves nothing else to settle (the store can still
/// read the receipt).
impl BackgroundJob for DeliverReceipt {
    fn retry_policy(config: &Config) -> RetryPolicy {
        retry_policy(config)
    }

    async fn run(&self, ctx: &JobContext<'_>) -> Result<(), JobError> {
        deliver(ctx, self).await
    }
}

/// Delivers one receipt webhook.
async fn deliver(ctx: &JobContext<'_>, args: &DeliverReceipt) -> Result<(), JobError> {
    let (state, client, job) = (ctx.state, ctx.client, ctx.job);
    let retry = |e: &dyn std::fmt::Display| JobError::Retry(e.to_string());
    let mut conn = state.db.reader().acquire().await.map_err(|e| retry(&e))?;
    let store = stores::get(&mut conn, &args.store_id)
        .await
        .map_err(|e| retry(&e))?
        .ok_or_else(|| JobError::Dead("store no longer exists".into()))?;
    let Some(url) = &store.webhook_url else {
        return Err(JobError::Dead("store has no webhook URL any more".into()));
    };
    let version = args.version.unwrap_or(1);
    let receipt = receipts::at_version(&mut conn, &args.store_id, &args.session_id, version)
        .await
        .map_err(|e| retry(&e))?
        .ok_or_else(|| JobError::Dead("the receipt version no longer exists".into()))?;
    drop(conn);
    let body = serde_json::to_vec(&ReceiptWebhook {
        kind: event_type(version),
        delivery_id: &job.id,
        version,
        store_id: &store.id,
        receipt: &receipt,
        adjustment: receipt.adjustments.iter().find(|a| a.version == version),
    })
    .map_err(|e| JobError::Dead(e.to_string()))?;
    let now = state.now();
    let timestamp = now / 1000;
    let signature = signature_header(&secrets_at(&store, now), &job.id, timestamp, &body);
    let response = client
        .post(url)
        .header("content-type", "application/json")
        .header("webhook-id", &job.id)
        .header("webhook-timestamp", timestamp.to_string())
        .header("webhook-signature", signature)
        .body(body)
        .send()
        .await
        // The URL may carry a store's credentials: it stays out of the
        // job's error and the logs.
        .map_err(|e| JobError::Retry(format!("request failed: {}", e.without_url())))?;
    if response.status().is_success() {
        Ok(())
    } else {
        Err(JobError::Retry(format!(
            "the store answered {}",
            response.status()
        )))
    }
}

/// How a test delivery went.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TestDelivery {
    /// The delivery's `webhook-id`.
    pub delivery_id: String,
    /// The store's answer, if it answered.
    pub status: Option<u16>,
    /// Why it failed, if it did (never the URL: it may hold credentials).
    pub error: Option<String>,
    /// How long it took, in milliseconds.
    pub took_ms: u64,
}

/// Sends a signed `webhook.test` delivery to the store's URL now, as a
/// receipt is sent: the store checks its endpoint and its verifier.
pub async fn send_test(
    client: &reqwest::Client,
    store: &stores::Store,
    url: &str,
    now: i64,
) -> TestDelivery {
    let delivery_id = crate::db::new_id();
    let body = serde_json::json!({
        "type": "webhook.test",
        "delivery_id": delivery_id,
        "store_id": store.id,
        "sent_at": crate::domain::time::format_rfc3339_ms(now),
    })
    .to_string()
    .into_bytes();
    let timestamp = now / 1000;
    let signature = signature_header(&secrets_at(store, now), &delivery_id, timestamp, &body);
    let started = std::time::Instant::now();
    let sent = client
        .post(url)
        .header("content-type", "application/json")
        .header("webhook-id", &delivery_id)
        .header("webhook-timestamp", timestamp.to_string())
        .header("webhook-signature", signature)
        .body(body)
        .send()
        .await;
    let took_ms = started.elapsed().as_millis() as u64;
    match sent {
        Ok(r) if r.status().is_success() => TestDelivery {
            delivery_id,
            status: Some(r.status().as_u16()),
            error: None,
            took_ms,
        },
        Ok(r) => TestDelivery {
            delivery_id,
            status: Some(r.status().as_u16()),
            error: Some(format!("the store answered {}", r.status())),
            took_ms,
        },
        Err(e) => TestDelivery {
            delivery_id,
            status: None,
            error: Some(format!("request failed: {}", e.without_url())),
            took_ms,
        },
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn signature_matches_the_standard_webhooks_example() {
        // The Standard Webhooks specification's example delivery.
        let secret = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw";
        let (id, ts, body) = (
            "msg_p5jXN8AQM9LWM0D4loKWxJek",
            1_614_265_330,
            br#"{"test": 2432232314}"#,
        );
        let expected = "v1,g0hM9SsE+OTPJTGt/tmIKtSyZlE3uFJELVlNIOLJ1OE=";
        assert_eq!(sign(secret, id, ts, body), expected);
        assert!(verify(secret, id, ts, expected, body));
        assert!(
            !verify(secret, "msg_other", ts, expected, body),
            "the id is signed"
        );
        assert!(
            !verify(secret, id, ts + 1, expected, body),
            "the time is signed"
        );
    }

    #[test]
    fn a_rotation_signs_with_both_secrets_until_the_overlap_ends() {
        let store = stores::Store {
            id: "s".into(),
            name: "S".into(),
            webhook_url: None,
            webhook_secret: crate::auth::generate_webhook_secret(),
            previous_webhook_secret: Some(("whsec_b2xkIHNlY3JldA==".into(), 1_000)),
            policy: Default::default(),
            training_allowed: false,
            blind_review: false,
            media_retention_days: 30,
            catalog_version: String::new(),
        };
        assert_eq!(secrets_at(&store, 999).len(), 2);
        assert_eq!(secrets_at(&store, 1_000), [store.webhook_secret.as_str()]);
        let header = signature_header(&secrets_at(&store, 999), "d1", 7, b"{}");
        for secret in secrets_at(&store, 999) {
            assert!(verify(secret, "d1", 7, &header, b"{}"), "{header}");
        }
        assert!(!verify("whsec_c3RyYW5nZXI=", "d1", 7, &header, b"{}"));
    }

    #[test]
    fn older_url_safe_secrets_keep_their_key() {
        let key = [0xfbu8; 32];
        let url_safe = format!(
            "whsec_{}",
            base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(key)
        );
        assert_eq!(key_of(&url_safe), key);
        assert_eq!(key_of("whsec_not base64!"), b"whsec_not base64!");
    }
}
