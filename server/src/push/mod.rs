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
use chat_protocol::rest::PushNotification;
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

mod ssrf;
mod webhook;
mod webpush;

pub use ssrf::is_public;
use ssrf::{check_literal, PublicOnly};
pub use webhook::{signature, WebhookProvider};
pub use webpush::WebPushProvider;

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
