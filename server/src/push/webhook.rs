//! The webhook provider: a signed JSON POST of each notification to the operator's URL.

use std::time::Duration;

use async_trait::async_trait;
use chat_protocol::rest::PushNotification;
use hmac::{Hmac, Mac};
use sha2::Sha256;

use super::*;

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
            client: push_client(false),
            url,
            secret: secret.map(String::into_bytes),
            backoff: Duration::from_millis(200),
        }
    }
}

#[async_trait]
impl PushProvider for WebhookProvider {
    fn name(&self) -> &'static str {
        "webhook"
    }

    async fn notify(
        &self,
        n: &PushNotification,
        _subs: &[StoredPush],
    ) -> Result<PushOutcome, PushError> {
        let body = serde_json::to_vec(n).map_err(|e| PushError::Transport(e.to_string()))?;
        // The timestamp is signed, so a captured call cannot be replayed later unnoticed;
        // retries reuse it (receivers should accept a few minutes of skew).
        let ts = chrono::Utc::now().timestamp();
        let mut headers = vec![
            ("content-type".to_string(), b"application/json".to_vec()),
            ("x-chat-timestamp".to_string(), ts.to_string().into_bytes()),
        ];
        if let Some(secret) = &self.secret {
            headers.push((
                "x-chat-signature".to_string(),
                signature(secret, ts, &body).into_bytes(),
            ));
        }
        post_with_retries(&self.client, &self.url, &headers, &body, self.backoff).await?;
        Ok(PushOutcome::default())
    }
}
