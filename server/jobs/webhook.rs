//! Receipt webhooks: signed with HMAC-SHA256, retried with exponential backoff.
//!
//! Each delivery carries `Recount-Timestamp` (Unix seconds) and
//! `Recount-Signature: v1=<hex>`, the HMAC-SHA256 of `"{timestamp}.{body}"`
//! under the store's webhook secret. Stores recompute it and reject stale
//! timestamps, which stops both forgery and replay. `Recount-Delivery` is
//! stable across retries so a store can drop duplicates.

use std::time::Duration;

use hmac::{Hmac, Mac};
use serde::Serialize;
use sha2::Sha256;

use super::JobError;
use crate::config::Config;
use crate::db::jobs::Job;
use crate::db::receipts::{self, Receipt, WebhookJob};
use crate::db::stores;
use crate::AppState;

/// Body of a receipt webhook.
#[derive(Debug, Serialize)]
pub struct ReceiptWebhook<'a> {
    /// Always `receipt.finalized`.
    #[serde(rename = "type")]
    pub kind: &'static str,
    /// The store.
    pub store_id: &'a str,
    /// The final receipt.
    pub receipt: &'a Receipt,
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

/// Delay before attempt `attempts + 1`: `base × 2^(attempts-1)`, capped.
pub fn backoff_ms(attempts: i64, base_ms: i64, max_ms: i64) -> i64 {
    let exp = (attempts - 1).clamp(0, 40) as u32;
    base_ms.saturating_mul(1i64 << exp).min(max_ms)
}

/// Delivers one receipt webhook.
pub async fn deliver(
    state: &AppState,
    client: &reqwest::Client,
    job: &Job,
) -> Result<(), JobError> {
    let args: WebhookJob = serde_json::from_str(&job.payload)
        .map_err(|e| JobError::Dead(format!("bad payload: {e}")))?;
    let retry = |e: &dyn std::fmt::Display| JobError::Retry(e.to_string());
    let mut conn = state.db.reader().acquire().await.map_err(|e| retry(&e))?;
    let store = stores::get(&mut conn, &args.store_id)
        .await
        .map_err(|e| retry(&e))?
        .ok_or_else(|| JobError::Dead("store no longer exists".into()))?;
    let Some(url) = &store.webhook_url else {
        return Err(JobError::Dead("store has no webhook URL any more".into()));
    };
    let receipt = receipts::read(&mut conn, &args.store_id, &args.session_id)
        .await
        .map_err(|e| retry(&e))?
        .ok_or_else(|| JobError::Dead("session no longer exists".into()))?;
    drop(conn);
    let body = serde_json::to_vec(&ReceiptWebhook {
        kind: "receipt.finalized",
        store_id: &store.id,
        receipt: &receipt,
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
        .map_err(|e| JobError::Retry(format!("request failed: {e}")))?;
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

    #[test]
    fn backoff_doubles_and_is_capped() {
        assert_eq!(backoff_ms(1, 1000, 60_000), 1000);
        assert_eq!(backoff_ms(2, 1000, 60_000), 2000);
        assert_eq!(backoff_ms(4, 1000, 60_000), 8000);
        assert_eq!(backoff_ms(30, 1000, 60_000), 60_000);
        assert_eq!(backoff_ms(100, i64::MAX / 2, i64::MAX), i64::MAX);
    }
}
