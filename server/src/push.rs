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
//!
//! Fairness (issue 16): one receiver holds at most [`MAX_IN_FLIGHT_PER_USER`] of the
//! [`MAX_IN_FLIGHT`] slots, so a user whose endpoints hang cannot starve everyone else;
//! requests time out quickly ([`CONNECT_TIMEOUT`], [`REQUEST_TIMEOUT`]); an endpoint that
//! fails is skipped for a growing while, and removed after [`MAX_ENDPOINT_FAILURES`]
//! failures in a row.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use chat_protocol::UserId;

use async_trait::async_trait;
use chat_protocol::rest::{PushKind, PushNotification};
use hmac::{Hmac, Mac};
use sha2::Sha256;
use tokio::sync::Semaphore;

use crate::slots::Slots;
use crate::store::{DynStore, StoredPush};

/// Attempts per notification (first try + retries).
const ATTEMPTS: u32 = 3;
/// Notifications in flight at once per instance; more are dropped (and logged).
pub const MAX_IN_FLIGHT: usize = 64;
/// Of those, at most this many for one receiver, unless configured
/// (`CHAT_PUSH_IN_FLIGHT_PER_USER`).
pub const MAX_IN_FLIGHT_PER_USER: usize = 4;
/// Subscriptions kept per user, unless configured (`CHAT_PUSH_MAX_SUBSCRIPTIONS`).
pub const MAX_SUBSCRIPTIONS: usize = 10;
/// TCP (and TLS) connect timeout for push requests.
pub const CONNECT_TIMEOUT: Duration = Duration::from_secs(3);
/// Whole-request timeout for push requests.
pub const REQUEST_TIMEOUT: Duration = Duration::from_secs(5);
/// Failures in a row after which a subscription is removed.
pub const MAX_ENDPOINT_FAILURES: u32 = 5;
/// First pause after a failed endpoint; doubles per failure up to [`MAX_BACKOFF`].
const FIRST_BACKOFF: Duration = Duration::from_secs(30);
const MAX_BACKOFF: Duration = Duration::from_secs(3600);

/// An HTTP client for push: short timeouts, and for user-supplied endpoints the
/// public-only resolver and no redirects.
fn push_client(public_only: bool) -> reqwest::Client {
    let mut b = reqwest::Client::builder()
        .connect_timeout(CONNECT_TIMEOUT)
        .timeout(REQUEST_TIMEOUT);
    if public_only {
        // Host names are checked where they are resolved, at connect time (no window
        // for DNS rebinding); IP literals never reach a resolver and are checked in
        // `notify`.
        b = b
            .dns_resolver(Arc::new(PublicOnly))
            .redirect(reqwest::redirect::Policy::none());
    }
    b.build().unwrap_or_default()
}

#[derive(Debug, thiserror::Error)]
pub enum PushError {
    #[error("push endpoint answered {0}")]
    Status(u16),
    #[error("push request failed: {0}")]
    Transport(String),
    #[error("web push: {0}")]
    WebPush(String),
}

/// What a provider reports back, per subscription.
#[derive(Debug, Default)]
pub struct PushOutcome {
    /// The push service says these no longer exist (404/410).
    pub gone: Vec<uuid::Uuid>,
    /// These failed (timeouts, refused connections, 5xx after retries).
    pub failed: Vec<uuid::Uuid>,
    /// These took the notification.
    pub delivered: Vec<uuid::Uuid>,
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

/// Per-endpoint health (failures in a row, backoff), shared by every delivery task.
#[derive(Default)]
struct EndpointHealth {
    /// subscription -> (failures in a row, not before)
    endpoints: Mutex<HashMap<uuid::Uuid, (u32, Instant)>>,
}

impl EndpointHealth {
    /// Whether the endpoint may be tried now (not backing off after failures).
    fn ready(&self, sub: uuid::Uuid, now: Instant) -> bool {
        let map = self.endpoints.lock().unwrap_or_else(|p| p.into_inner());
        map.get(&sub)
            .is_none_or(|(_, not_before)| *not_before <= now)
    }

    /// Record a failure; true when the endpoint has now failed too often to keep.
    fn failed(&self, sub: uuid::Uuid, now: Instant) -> bool {
        let mut map = self.endpoints.lock().unwrap_or_else(|p| p.into_inner());
        let entry = map.entry(sub).or_insert((0, now));
        entry.0 += 1;
        let backoff = FIRST_BACKOFF
            .saturating_mul(1 << (entry.0 - 1).min(16))
            .min(MAX_BACKOFF);
        entry.1 = now + backoff;
        let drop_it = entry.0 >= MAX_ENDPOINT_FAILURES;
        if drop_it {
            map.remove(&sub);
        }
        drop_it
    }

    fn succeeded(&self, sub: uuid::Uuid) {
        let mut map = self.endpoints.lock().unwrap_or_else(|p| p.into_inner());
        map.remove(&sub);
    }
}

/// Fans a notification out to every configured provider, in the background.
#[derive(Clone)]
pub struct Pusher {
    providers: Vec<Arc<dyn PushProvider>>,
    in_flight: Arc<Semaphore>,
    /// Each receiver's share of `in_flight`.
    per_user: Arc<Slots<UserId>>,
    health: Arc<EndpointHealth>,
    /// Subscriptions kept per user.
    max_subscriptions: usize,
    /// Where gone and failing subscriptions are removed.
    store: Option<DynStore>,
}

impl Pusher {
    pub fn new(providers: Vec<Arc<dyn PushProvider>>) -> Self {
        Pusher {
            providers,
            in_flight: Arc::new(Semaphore::new(MAX_IN_FLIGHT)),
            per_user: Slots::new(MAX_IN_FLIGHT_PER_USER),
            health: Arc::default(),
            max_subscriptions: MAX_SUBSCRIPTIONS,
            store: None,
        }
    }

    pub fn with_store(mut self, store: DynStore) -> Self {
        self.store = Some(store);
        self
    }

    /// The per-user caps in force (`CHAT_PUSH_*`).
    pub fn with_caps(mut self, caps: &crate::config::UserCaps) -> Self {
        self.per_user = Slots::new(caps.push_in_flight_per_user.max(1));
        self.max_subscriptions = caps.push_max_subscriptions.max(1);
        self
    }

    /// Subscriptions kept per user; registering one more replaces the oldest.
    pub fn max_subscriptions(&self) -> usize {
        self.max_subscriptions
    }

    pub fn disabled() -> Self {
        Self::new(Vec::new())
    }

    pub fn enabled(&self) -> bool {
        !self.providers.is_empty()
    }

    /// Start delivery and return at once. Dropped (logged, counted) when the receiver
    /// already has its share of deliveries in flight, or the instance is at its limit.
    pub fn dispatch(&self, n: PushNotification, subs: Vec<StoredPush>) {
        let Some(slot) = self.per_user.take(n.user_id) else {
            tracing::debug!(user = %n.user_id, "push share of this receiver in use; notification dropped");
            crate::metrics::METRICS.refused("push_per_user");
            return;
        };
        let Ok(permit) = self.in_flight.clone().try_acquire_owned() else {
            tracing::warn!("push backlog full; notification dropped");
            crate::metrics::METRICS.refused("push_backlog");
            return;
        };
        let now = Instant::now();
        let subs: Vec<StoredPush> = subs
            .into_iter()
            .filter(|s| self.health.ready(s.subscription.id, now))
            .collect();
        let this = self.clone();
        tokio::spawn(async move {
            let _permit = permit;
            let _slot = slot;
            for p in &this.providers {
                let result = p.notify(&n, &subs).await;
                let ok = result.as_ref().is_ok_and(|o| o.failed.is_empty());
                crate::metrics::METRICS.push(p.name(), ok);
                match result {
                    Ok(outcome) => this.settle(n.user_id, outcome).await,
                    Err(e) => tracing::warn!(provider = p.name(), error = %e, "push failed"),
                }
            }
        });
    }

    /// Forget gone subscriptions, back off from failing ones and remove those that keep
    /// failing.
    async fn settle(&self, user: UserId, outcome: PushOutcome) {
        let now = Instant::now();
        let mut remove = outcome.gone;
        for id in outcome.failed {
            if self.health.failed(id, now) {
                tracing::info!(subscription = %id, "push endpoint keeps failing; removing");
                remove.push(id);
            }
        }
        for id in outcome.delivered {
            self.health.succeeded(id);
        }
        for id in remove {
            tracing::info!(subscription = %id, "push subscription removed");
            if let Some(store) = &self.store {
                let _ = store.delete_push_subscription(user, id).await;
            }
        }
    }
}

/// Whether chatd may send to this address on a user's behalf: public unicast only.
///
/// IPv6 is allow-listed rather than deny-listed: only global unicast (2000::/3) passes,
/// minus the ranges inside it that are not plain public hosts or that embed an IPv4
/// address chatd would then reach by translation (6to4 2002::/16, Teredo and the IETF
/// special block 2001::/23, documentation 2001:db8::/32 and 3fff::/20, the old 6bone
/// 3ffe::/16). Everything outside 2000::/3 is refused with it: NAT64 (64:ff9b::/96,
/// 64:ff9b:1::/48), IPv4-compatible (::/96), discard (100::/64), unique-local, site-local
/// (fec0::/10), link-local and multicast. IPv4-mapped addresses are judged as the IPv4
/// address they carry.
pub fn is_public(ip: std::net::IpAddr) -> bool {
    use std::net::IpAddr;
    match ip {
        IpAddr::V4(v4) => {
            let o = v4.octets();
            !(v4.is_loopback()
                || v4.is_private()
                || v4.is_link_local()
                || v4.is_unspecified()
                || v4.is_broadcast()
                || v4.is_multicast()
                || v4.is_documentation()
                || o[0] == 0
                || (o[0] == 100 && (o[1] & 0xc0) == 64) // 100.64/10 carrier-grade NAT
                || (o[0] == 198 && (o[1] & 0xfe) == 18) // 198.18/15 benchmarking
                || (o[0] == 192 && o[1] == 0 && o[2] == 0) // 192.0.0/24 IETF assignments
                || (o[0] == 192 && o[1] == 88 && o[2] == 99) // 192.88.99/24 6to4 relays
                || o[0] >= 240)
        }
        IpAddr::V6(v6) => {
            if let Some(v4) = v6.to_ipv4_mapped() {
                return is_public(IpAddr::V4(v4));
            }
            let seg = v6.segments();
            let global_unicast = (seg[0] & 0xe000) == 0x2000;
            let special = match seg[0] {
                // 2001::/23 (Teredo, benchmarking, ORCHID, …) and 2001:db8::/32
                0x2001 => seg[1] < 0x0200 || seg[1] == 0x0db8,
                0x2002 | 0x3ffe => true,   // 6to4, 6bone
                0x3fff => seg[1] < 0x1000, // 3fff::/20 documentation
                _ => false,
            };
            global_unicast && !special
        }
    }
}

/// A resolver that drops every non-public address (and fails when none is left).
struct PublicOnly;

impl reqwest::dns::Resolve for PublicOnly {
    fn resolve(&self, name: reqwest::dns::Name) -> reqwest::dns::Resolving {
        Box::pin(async move {
            let host = name.as_str().to_string();
            let addrs: Vec<std::net::SocketAddr> = tokio::net::lookup_host((host.as_str(), 0))
                .await?
                .filter(|a| is_public(a.ip()))
                .collect();
            if addrs.is_empty() {
                return Err(format!("{host} resolves to no public address").into());
            }
            Ok(Box::new(addrs.into_iter()) as reqwest::dns::Addrs)
        })
    }
}

/// Refuse an endpoint whose host is a non-public IP literal (those bypass the resolver).
fn check_literal(endpoint: &str) -> Result<(), PushError> {
    let url = reqwest::Url::parse(endpoint)
        .map_err(|e| PushError::WebPush(format!("bad endpoint: {e}")))?;
    let Some(host) = url.host_str() else {
        return Err(PushError::WebPush("endpoint without a host".into()));
    };
    let Ok(ip) = host
        .trim_start_matches('[')
        .trim_end_matches(']')
        .parse::<std::net::IpAddr>()
    else {
        return Ok(()); // a name: the resolver checks it
    };
    if is_public(ip) {
        Ok(())
    } else {
        Err(PushError::WebPush(format!(
            "endpoint address {ip} is not public (CHAT_PUSH_ALLOW_PRIVATE is off)"
        )))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_public_addresses_pass() {
        for bad in [
            "127.0.0.1",
            "10.1.2.3",
            "172.16.0.1",
            "192.168.1.1",
            "169.254.169.254",
            "0.0.0.0",
            "100.64.0.1",
            "::1",
            "fe80::1",
            "fd00::1",
            "::ffff:127.0.0.1",
            "224.0.0.1",
            // Every other non-global form (issue 16): translation and tunnelling
            // prefixes that embed an IPv4 address, and the rest outside 2000::/3.
            "64:ff9b::7f00:1",    // NAT64 of 127.0.0.1
            "64:ff9b::a9fe:a9fe", // NAT64 of 169.254.169.254
            "64:ff9b:1::7f00:1",  // local-use NAT64
            "2002:7f00:1::",      // 6to4 of 127.0.0.1
            "2002:c0a8:101::1",   // 6to4 of 192.168.1.1
            "::127.0.0.1",        // IPv4-compatible
            "::10.0.0.1",         // IPv4-compatible
            "::ffff:0:7f00:1",    // IPv4-translated (SIIT)
            "fec0::1",            // site-local
            "100::1",             // discard-only
            "2001::1",            // Teredo
            "2001:2::1",          // benchmarking
            "2001:db8::1",        // documentation
            "3fff::1",            // documentation (RFC 9637)
            "3ffe::1",            // 6bone
            "ff02::1",            // multicast
            "::",                 // unspecified
            "4000::1",            // outside global unicast
            "192.0.0.8",          // IETF protocol assignments
            "192.88.99.1",        // 6to4 relay anycast
            "198.18.0.1",         // benchmarking
            "255.255.255.255",    // broadcast
            "240.0.0.1",          // reserved
            "192.0.2.1",          // documentation
        ] {
            assert!(!is_public(bad.parse().expect("ip")), "{bad}");
        }
        for good in [
            "8.8.8.8",
            "1.1.1.1",
            "2606:4700::1111",
            "2a00:1450:4001:80b::200a",
            "::ffff:8.8.8.8",
        ] {
            assert!(is_public(good.parse().expect("ip")), "{good}");
        }
        assert!(check_literal("https://169.254.169.254/latest/meta-data").is_err());
        assert!(check_literal("http://[::1]:8080/push").is_err());
        assert!(check_literal("https://fcm.googleapis.com/fcm/send/abc").is_ok());
    }

    #[test]
    fn one_receiver_gets_a_bounded_share_of_the_slots() {
        let pusher = Pusher::disabled();
        let (hog, other) = (UserId::new(), UserId::new());
        let held: Vec<_> = (0..MAX_IN_FLIGHT_PER_USER)
            .map(|_| pusher.per_user.take(hog).expect("within the share"))
            .collect();
        assert!(pusher.per_user.take(hog).is_none(), "over the share");
        assert!(
            pusher.per_user.take(other).is_some(),
            "another receiver is unaffected"
        );
        drop(held);
        assert!(
            pusher.per_user.take(hog).is_some(),
            "slots come back when deliveries end"
        );
        assert_eq!(pusher.per_user.held(other), 0);
    }

    #[test]
    fn failing_endpoints_back_off_then_are_removed() {
        let f = EndpointHealth::default();
        let sub = uuid::Uuid::new_v4();
        let t0 = Instant::now();
        assert!(f.ready(sub, t0));
        assert!(!f.failed(sub, t0));
        assert!(!f.ready(sub, t0 + Duration::from_secs(29)));
        assert!(f.ready(sub, t0 + FIRST_BACKOFF));
        // The pause doubles per failure in a row; a success forgets them.
        assert!(!f.failed(sub, t0));
        assert!(!f.ready(sub, t0 + FIRST_BACKOFF));
        assert!(f.ready(sub, t0 + FIRST_BACKOFF * 2));
        f.succeeded(sub);
        assert!(f.ready(sub, t0));
        for i in 1..MAX_ENDPOINT_FAILURES {
            assert!(!f.failed(sub, t0), "removed after only {i} failures");
        }
        assert!(
            f.failed(sub, t0),
            "kept after {MAX_ENDPOINT_FAILURES} failures"
        );
    }

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
