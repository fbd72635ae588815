//! The Web Push provider (RFC 8030, RFC 8291 `aes128gcm`, VAPID RFC 8292).

use std::time::Duration;

use async_trait::async_trait;
use chat_protocol::rest::{PushKind, PushNotification};

use super::*;

/// One encrypted, signed Web Push request, ready to POST.
struct PushRequest {
    url: String,
    headers: Vec<(String, Vec<u8>)>,
    body: Vec<u8>,
}

/// Web Push to browsers (RFC 8030 + RFC 8291 + VAPID RFC 8292).
pub struct WebPushProvider {
    client: reqwest::Client,
    allow_private: bool,
    key: web_push::PartialVapidSignatureBuilder,
    subject: String,
    backoff: Duration,
}

impl WebPushProvider {
    /// `private_key`: base64url (no padding) of the raw 32-byte P-256 VAPID private key.
    /// `subject`: a `mailto:` or `https:` contact for push services.
    /// `allow_private`: also deliver to endpoints on loopback, private, link-local or
    /// otherwise non-public addresses (development and tests only: endpoints come from
    /// users, and without this chatd would POST wherever they point, SSRF).
    pub fn new(private_key: &str, subject: String, allow_private: bool) -> Result<Self, PushError> {
        let key = web_push::VapidSignatureBuilder::from_base64_no_sub(private_key.trim())
            .map_err(|e| PushError::WebPush(format!("bad VAPID private key: {e}")))?;
        Ok(WebPushProvider {
            client: push_client(!allow_private),
            allow_private,
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
        // Every endpoint at once: one that hangs does not hold up the others.
        let payload = payload.as_bytes();
        let sends = subs
            .iter()
            .filter(|s| s.subscription.kind == PushKind::Webpush)
            .map(|sub| async move {
                let allowed = if self.allow_private {
                    Ok(())
                } else {
                    check_literal(&sub.subscription.target)
                };
                let sent = match allowed.and_then(|()| self.request(sub, payload)) {
                    Ok(r) => {
                        post_with_retries(&self.client, &r.url, &r.headers, &r.body, self.backoff)
                            .await
                    }
                    Err(e) => Err(e),
                };
                (sub.subscription.id, sent)
            });
        // Per-subscription results, failures included: the caller backs off from (and
        // eventually removes) the endpoints that failed.
        let mut outcome = PushOutcome::default();
        for (id, sent) in futures_util::future::join_all(sends).await {
            match sent {
                Ok(()) => outcome.delivered.push(id),
                Err(PushError::Status(404 | 410)) => outcome.gone.push(id),
                Err(e) => {
                    tracing::debug!(subscription = %id, error = %e, "web push failed");
                    outcome.failed.push(id);
                }
            }
        }
        Ok(outcome)
    }
}
