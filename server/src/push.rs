//! Push notifications for a receiver with no live socket anywhere.
//!
//! Providers sit behind [`PushProvider`]. The Web Push provider (RFC 8030, payload
//! encrypted per RFC 8291 `aes128gcm`, VAPID per RFC 8292 via the `web-push` crate) sends
//! to every browser subscription of the receiver and forgets subscriptions the push
//! service reports gone (404/410). The webhook provider POSTs a JSON
//! [`PushNotification`] to the operator's URL, signed with HMAC-SHA256 over
//! `"{timestamp}.{body}"` (headers `X-Chat-Timestamp`, `X-Chat-Signature: sha256=<hex>`),
//! retrying transient failures. Delivery runs in background tasks, bounded in number, so a
//! slow push service never slows a send.

use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use chat_protocol::rest::{PushKind, PushNotification};
use hmac::{Hmac, Mac};
use sha2::Sha256;
use tokio::sync::Semaphore;

use crate::store::{DynStore, StoredPush};

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
    #[error("web push: {0}")]
    WebPush(String),
}

/// What a provider reports back: subscriptions the push service says no longer exist.
#[derive(Debug, Default)]
pub struct PushOutcome {
    pub gone: Vec<uuid::Uuid>,
}

#[async_trait]
pub trait PushProvider: Send + Sync + 'static {
    fn name(&self) -> &'static str;
    async fn notify(
        &self,
        n: &PushNotification,
        subs: &[StoredPush],
    ) -> Result<PushOutcome, PushError>;
}

/// Whether an HTTP status is worth retrying.
fn transient(status: u16) -> bool {
    status >= 500 || status == 408 || status == 429
}

/// POST `body` with `headers`, retrying transient failures with growing waits.
async fn post_with_retries(
    client: &reqwest::Client,
    url: &str,
    headers: &[(String, Vec<u8>)],
    body: &[u8],
    backoff: Duration,
) -> Result<(), PushError> {
    let mut wait = backoff;
    let mut last = PushError::Transport("not attempted".into());
    for attempt in 1..=ATTEMPTS {
        let mut req = client.post(url).body(body.to_vec());
        for (k, v) in headers {
            req = req.header(k.as_str(), v.as_slice());
        }
        let retry = match req.send().await {
            Ok(resp) if resp.status().is_success() => return Ok(()),
            Ok(resp) => {
                let status = resp.status().as_u16();
                last = PushError::Status(status);
                transient(status)
            }
            Err(e) => {
                last = PushError::Transport(e.to_string());
                true
            }
        };
        tracing::debug!(attempt, error = %last, url, "push delivery failed");
        if !retry || attempt == ATTEMPTS {
            break;
        }
        tokio::time::sleep(wait).await;
        wait *= 4;
    }
    Err(last)
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

/// One encrypted, signed Web Push request, ready to POST.
struct PushRequest {
    url: String,
    headers: Vec<(String, Vec<u8>)>,
    body: Vec<u8>,
}

/// Web Push to browsers (RFC 8030 + RFC 8291 + VAPID RFC 8292).
pub struct WebPushProvider {
    client: reqwest::Client,
    key: web_push::PartialVapidSignatureBuilder,
    subject: String,
    backoff: Duration,
}

impl WebPushProvider {
    /// `private_key`: base64url (no padding) of the raw 32-byte P-256 VAPID private key.
    /// `subject`: a `mailto:` or `https:` contact for push services.
    pub fn new(private_key: &str, subject: String) -> Result<Self, PushError> {
        let key = web_push::VapidSignatureBuilder::from_base64_no_sub(private_key.trim())
            .map_err(|e| PushError::WebPush(format!("bad VAPID private key: {e}")))?;
        Ok(WebPushProvider {
            client: reqwest::Client::builder()
                .timeout(Duration::from_secs(10))
                .build()
                .unwrap_or_default(),
            key,
            subject,
            backoff: Duration::from_millis(200),
        })
    }

    /// The VAPID public key (base64url, uncompressed point) browsers subscribe with.
    pub fn public_key(&self) -> String {
        use base64::Engine;
        base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(self.key.get_public_key())
    }

    fn request(&self, sub: &StoredPush, payload: &[u8]) -> Result<PushRequest, PushError> {
        let (Some(p256dh), Some(auth)) = (sub.p256dh.as_deref(), sub.auth.as_deref()) else {
            return Err(PushError::WebPush("subscription without keys".into()));
        };
        let info = web_push::SubscriptionInfo::new(sub.subscription.target.as_str(), p256dh, auth);
        // RFC 8292: the audience is the push resource's origin, port included (the crate's
        // default drops a non-default port).
        let origin = reqwest::Url::parse(&sub.subscription.target)
            .map_err(|e| PushError::WebPush(format!("bad endpoint: {e}")))?
            .origin()
            .ascii_serialization();
        let mut vapid = self.key.clone().add_sub_info(&info);
        vapid.add_claim("sub", self.subject.as_str());
        vapid.add_claim("aud", origin.as_str());
        let vapid = vapid
            .build()
            .map_err(|e| PushError::WebPush(e.to_string()))?;
        let mut builder = web_push::WebPushMessageBuilder::new(&info);
        builder.set_ttl(3600);
        builder.set_payload(web_push::ContentEncoding::Aes128Gcm, payload);
        builder.set_vapid_signature(vapid);
        let message = builder
            .build()
            .map_err(|e| PushError::WebPush(e.to_string()))?;
        let req: http02::Request<Vec<u8>> = web_push::request_builder::build_request(message);
        let url = req.uri().to_string();
        let headers = req
            .headers()
            .iter()
            .map(|(k, v)| (k.as_str().to_string(), v.as_bytes().to_vec()))
            .collect();
        Ok(PushRequest {
            url,
            headers,
            body: req.into_body(),
        })
    }
}

#[async_trait]
impl PushProvider for WebPushProvider {
    fn name(&self) -> &'static str {
        "webpush"
    }

    async fn notify(
        &self,
        n: &PushNotification,
        subs: &[StoredPush],
    ) -> Result<PushOutcome, PushError> {
        // The browser payload leaves out the device list (size limit ~4 KB).
        let payload = serde_json::json!({
            "event": n.event, "conversation_id": n.conversation_id, "message_id": n.message_id,
            "sender_id": n.sender_id, "sender_username": n.sender_username, "type": n.kind,
            "preview": n.preview, "created_at": n.created_at,
        })
        .to_string();
        let mut outcome = PushOutcome::default();
        let mut failure = None;
        for sub in subs
            .iter()
            .filter(|s| s.subscription.kind == PushKind::Webpush)
        {
            let sent = match self.request(sub, payload.as_bytes()) {
                Ok(r) => {
                    post_with_retries(&self.client, &r.url, &r.headers, &r.body, self.backoff).await
                }
                Err(e) => Err(e),
            };
            match sent {
                Ok(()) => {}
                Err(PushError::Status(404 | 410)) => outcome.gone.push(sub.subscription.id),
                Err(e) => failure = Some(e),
            }
        }
        match failure {
            Some(e) => Err(e),
            None => Ok(outcome),
        }
    }
}

/// Fans a notification out to every configured provider, in the background.
pub struct Pusher {
    providers: Vec<Arc<dyn PushProvider>>,
    in_flight: Arc<Semaphore>,
    /// Where gone subscriptions are removed.
    store: Option<DynStore>,
}

impl Pusher {
    pub fn new(providers: Vec<Arc<dyn PushProvider>>) -> Self {
        Pusher {
            providers,
            in_flight: Arc::new(Semaphore::new(MAX_IN_FLIGHT)),
            store: None,
        }
    }

    pub fn with_store(mut self, store: DynStore) -> Self {
        self.store = Some(store);
        self
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
        let store = self.store.clone();
        tokio::spawn(async move {
            let _permit = permit;
            for p in providers {
                let result = p.notify(&n, &subs).await;
                crate::metrics::METRICS.push(p.name(), result.is_ok());
                match result {
                    Ok(outcome) => {
                        for id in outcome.gone {
                            tracing::info!(subscription = %id, "push subscription gone; removing");
                            if let Some(store) = &store {
                                let _ = store.delete_push_subscription(n.user_id, id).await;
                            }
                        }
                    }
                    Err(e) => tracing::warn!(provider = p.name(), error = %e, "push failed"),
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
