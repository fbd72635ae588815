//! Push notifications for a receiver with no live socket anywhere.
//!
//! Providers sit behind [`PushProvider`]. The webhook provider POSTs a JSON
//! [`PushNotification`] to the operator's URL, signed with HMAC-SHA256 over
//! `"{timestamp}.{body}"` (headers `X-Chat-Timestamp`, `X-Chat-Signature: sha256=<hex>`),
//! retrying transient failures. Delivery runs in background tasks, bounded in number, so a
//! slow push service never slows a send.

use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use chat_protocol::rest::PushNotification;
use hmac::{Hmac, Mac};
use sha2::Sha256;
use tokio::sync::Semaphore;

use crate::store::StoredPush;

/// Attempts per notification (first try + retries).
const ATTEMPTS: u32 = 3;
/// Notifications in flight at once per instance; more are dropped (and logged).
const MAX_IN_FLIGHT: usize = 64;

#[derive(Debug, thiserror::Error)]
pub enum PushError {
    #[error("push endpoint answered {0}")]
    Status(u16),
    #[error("push request failed: {0}")]
    Transport(String),
}

#[async_trait]
pub trait PushProvider: Send + Sync + 'static {
    fn name(&self) -> &'static str;
    async fn notify(&self, n: &PushNotification, subs: &[StoredPush]) -> Result<(), PushError>;
}

/// `sha256=<hex>` of HMAC-SHA256(secret, "{timestamp}.{body}").
pub fn signature(secret: &[u8], timestamp: i64, body: &[u8]) -> String {
    let mut mac = <Hmac<Sha256> as Mac>::new_from_slice(secret).expect("HMAC takes any key length");
    mac.update(timestamp.to_string().as_bytes());
    mac.update(b".");
    mac.update(body);
    let bytes = mac.finalize().into_bytes();
    let hex: String = bytes.iter().map(|b| format!("{b:02x}")).collect();
    format!("sha256={hex}")
}

pub struct WebhookProvider {
    client: reqwest::Client,
    url: String,
    secret: Option<Vec<u8>>,
    backoff: Duration,
}

impl WebhookProvider {
    pub fn new(url: String, secret: Option<String>) -> Self {
        if secret.is_none() {
            tracing::warn!("CHAT_PUSH_WEBHOOK_SECRET is not set: webhook calls are unsigned");
        }
        WebhookProvider {
            client: reqwest::Client::builder()
                .timeout(Duration::from_secs(10))
                .build()
                .unwrap_or_default(),
            url,
            secret: secret.map(String::into_bytes),
            backoff: Duration::from_millis(200),
        }
    }

    async fn attempt(&self, body: &[u8]) -> Result<(), (PushError, bool)> {
        let ts = chrono::Utc::now().timestamp();
        let mut req = self
            .client
            .post(&self.url)
            .header("content-type", "application/json")
            .header("x-chat-timestamp", ts.to_string())
            .body(body.to_vec());
        if let Some(secret) = &self.secret {
            req = req.header("x-chat-signature", signature(secret, ts, body));
        }
        match req.send().await {
            Ok(resp) if resp.status().is_success() => Ok(()),
            Ok(resp) => {
                let status = resp.status().as_u16();
                // 4xx other than 408/429 will not get better by retrying.
                let retry = status >= 500 || status == 408 || status == 429;
                Err((PushError::Status(status), retry))
            }
            Err(e) => Err((PushError::Transport(e.to_string()), true)),
        }
    }
}

#[async_trait]
impl PushProvider for WebhookProvider {
    fn name(&self) -> &'static str {
        "webhook"
    }

    async fn notify(&self, n: &PushNotification, _subs: &[StoredPush]) -> Result<(), PushError> {
        let body = serde_json::to_vec(n).map_err(|e| PushError::Transport(e.to_string()))?;
        let mut wait = self.backoff;
        let mut last = PushError::Transport("not attempted".into());
        for attempt in 1..=ATTEMPTS {
            match self.attempt(&body).await {
                Ok(()) => return Ok(()),
                Err((e, retry)) => {
                    tracing::debug!(attempt, error = %e, "webhook push failed");
                    last = e;
                    if !retry || attempt == ATTEMPTS {
                        break;
                    }
                    tokio::time::sleep(wait).await;
                    wait *= 4;
                }
            }
        }
        Err(last)
    }
}

/// Fans a notification out to every configured provider, in the background.
pub struct Pusher {
    providers: Vec<Arc<dyn PushProvider>>,
    in_flight: Arc<Semaphore>,
}

impl Pusher {
    pub fn new(providers: Vec<Arc<dyn PushProvider>>) -> Self {
        Pusher {
            providers,
            in_flight: Arc::new(Semaphore::new(MAX_IN_FLIGHT)),
        }
    }

    pub fn disabled() -> Self {
        Self::new(Vec::new())
    }

    pub fn enabled(&self) -> bool {
        !self.providers.is_empty()
    }

    /// Start delivery and return at once.
    pub fn dispatch(&self, n: PushNotification, subs: Vec<StoredPush>) {
        let Ok(permit) = self.in_flight.clone().try_acquire_owned() else {
            tracing::warn!("push backlog full; notification dropped");
            return;
        };
        let providers = self.providers.clone();
        tokio::spawn(async move {
            let _permit = permit;
            for p in providers {
                if let Err(e) = p.notify(&n, &subs).await {
                    tracing::warn!(provider = p.name(), error = %e, "push failed");
                }
            }
        });
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn signature_is_hmac_sha256_of_timestamp_dot_body() {
        // Known answer computed with: printf '1700000000.{}' | openssl dgst -sha256 -hmac key
        let sig = signature(b"key", 1_700_000_000, b"{}");
        assert_eq!(
            sig,
            "sha256=9d713ed406bb7076d4123f0dc2c39d2df5c654ed4b0cd56b52c8b4c940bd63ae"
        );
        assert_ne!(sig, signature(b"key", 1_700_000_001, b"{}"));
        assert_ne!(sig, signature(b"other", 1_700_000_000, b"{}"));
    }
}
