//! Receipt webhooks: signed with HMAC-SHA256, retried with exponential backoff.
//!
//! One delivery per receipt version: version 1 is `receipt.finalized`, each
//! later one `receipt.adjusted`. The body names its event type, the receipt
//! version and the delivery id, and carries the receipt as it was at that
//! version (so a late or retried delivery never shows a newer one).
//!
//! Each delivery carries `Recount-Timestamp` (Unix seconds) and
//! `Recount-Signature: v1=<hex>`, the HMAC-SHA256 of `"{timestamp}.{body}"`
//! under the store's webhook secret; the body holds the delivery id, so the
//! signature covers it. Stores recompute it and reject stale timestamps,
//! which stops both forgery and replay. `Recount-Delivery` (the same id) is
//! stable across retries so a store can drop duplicates.

use std::time::Duration;

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
    /// Stable across retries; also in the `Recount-Delivery` header.
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

/// The signature header value for a body sent at `timestamp`.
pub fn sign(secret: &str, timestamp: i64, body: &[u8]) -> String {
    let mut mac =
        Hmac::<Sha256>::new_from_slice(secret.as_bytes()).expect("HMAC takes any key length");
    mac.update(timestamp.to_string().as_bytes());
    mac.update(b".");
    mac.update(body);
    format!("v1={}", hex::encode(mac.finalize().into_bytes()))
}

/// The webhook settings: `webhook_max_attempts` deliveries, backed off
/// from `webhook_backoff_base_ms` up to `webhook_backoff_max_ms`.
pub fn retry_policy(config: &Config) -> RetryPolicy {
    RetryPolicy {
        max_attempts: config.webhook_max_attempts,
        backoff_base_ms: config.webhook_backoff_base_ms,
        backoff_max_ms: config.webhook_backoff_max_ms,
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
    let timestamp = state.now() / 1000;
    let response = client
        .post(url)
        .header("content-type", "application/json")
        .header("recount-timestamp", timestamp.to_string())
        .header(
            "recount-signature",
            sign(&store.webhook_secret, timestamp, &body),
        )
        .header("recount-delivery", &job.id)
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn signature_matches_an_independent_hmac() {
        // echo -n '1700000000.{"a":1}' | openssl dgst -sha256 -hmac whsec_test
        assert_eq!(
            sign("whsec_test", 1_700_000_000, br#"{"a":1}"#),
            "v1=38877139021993b830af32feea6e18a8da83eb2f6e49ee50bd9e4cf4ca4d3789"
        );
    }
}
