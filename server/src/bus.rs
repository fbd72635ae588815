//! Fan-out of server events to users' sockets, wherever those sockets are.
//!
//! Domain code publishes a [`Delivery`] (who, what, which socket to skip); the bus gets
//! it to every instance's [`Hub`], which writes it to the local sockets of those users.
//! The in-process bus hands it straight to this instance's hub.

use std::sync::Arc;

use async_trait::async_trait;
use chat_protocol::ws::ServerEvent;
use chat_protocol::UserId;
use serde::{Deserialize, Serialize};
use uuid::Uuid;

use crate::redis_breaker::{log_failure, GuardedConnection};
use crate::ws::hub::Hub;

/// One socket, globally: the instance it lives on and its number there.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct ConnKey {
    pub instance: Uuid,
    pub conn: u64,
}

/// An event for every socket of `users`, except `except` (the socket that caused it).
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Delivery {
    pub users: Vec<UserId>,
    #[serde(default)]
    pub except: Option<ConnKey>,
    /// The instance that published it (on the Redis bus): that instance has already
    /// delivered it to its own sockets and skips its own echo.
    #[serde(default)]
    pub source: Option<Uuid>,
    /// When it was published (Unix µs), for the pub/sub lag metric.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub published_us: Option<i64>,
    pub event: ServerEvent,
    /// Each user's position of this event in their event log, in the order of `users`
    /// (empty: not a logged event). Sent to the client as the frame's `seq`.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub seqs: Vec<u64>,
}

impl Delivery {
    pub fn to(users: Vec<UserId>, event: ServerEvent) -> Self {
        Delivery {
            users,
            except: None,
            source: None,
            published_us: None,
            event,
            seqs: Vec::new(),
        }
    }

    pub fn with_seqs(mut self, seqs: Vec<u64>) -> Self {
        self.seqs = seqs;
        self
    }

    pub fn except(mut self, origin: Option<ConnKey>) -> Self {
        self.except = origin;
        self
    }
}

#[async_trait]
pub trait Bus: Send + Sync + 'static {
    /// Deliver, best effort: a socket that is gone or too slow is skipped (and closed).
    async fn publish(&self, delivery: Delivery);
}

pub type DynBus = Arc<dyn Bus>;

/// Single-instance bus: straight into the local hub.
pub struct LocalBus {
    hub: Arc<Hub>,
}

impl LocalBus {
    pub fn new(hub: Arc<Hub>) -> Self {
        LocalBus { hub }
    }
}

#[async_trait]
impl Bus for LocalBus {
    async fn publish(&self, delivery: Delivery) {
        self.hub.deliver(&delivery);
    }
}

/// Bus across instances: every delivery is published on one Redis channel; every
/// instance subscribes and hands what it receives to its own hub.
pub struct RedisBus {
    conn: GuardedConnection,
    channel: String,
    hub: Arc<Hub>,
}

impl RedisBus {
    /// Subscribe first (so nothing published after this returns is missed), then build.
    pub async fn start(
        client: redis::Client,
        conn: GuardedConnection,
        prefix: &str,
        hub: Arc<Hub>,
    ) -> Result<(Arc<Self>, tokio::task::JoinHandle<()>), redis::RedisError> {
        let channel = format!("{prefix}chat:events");
        let mut pubsub = client.get_async_pubsub().await?;
        pubsub.subscribe(&channel).await?;
        let task = tokio::spawn(subscriber(client, pubsub, channel.clone(), hub.clone()));
        Ok((Arc::new(RedisBus { conn, channel, hub }), task))
    }
}

async fn subscriber(
    client: redis::Client,
    mut pubsub: redis::aio::PubSub,
    channel: String,
    hub: Arc<Hub>,
) {
    use futures_util::StreamExt;
    loop {
        {
            let mut messages = pubsub.on_message();
            while let Some(msg) = messages.next().await {
                let payload: String = match msg.get_payload() {
                    Ok(p) => p,
                    Err(e) => {
                        tracing::warn!(error = %e, "bad pub/sub payload");
                        continue;
                    }
                };
                match serde_json::from_str::<Delivery>(&payload) {
                    Ok(d) if d.source == Some(hub.instance()) => {}
                    Ok(d) => {
                        if let Some(at) = d.published_us {
                            let lag = chrono::Utc::now().timestamp_micros() - at;
                            crate::metrics::METRICS
                                .bus_lag
                                .observe(lag.max(0) as f64 / 1e6);
                        }
                        hub.deliver(&d)
                    }
                    Err(e) => tracing::warn!(error = %e, "undecodable delivery on the bus"),
                }
            }
        }
        tracing::warn!("redis pub/sub connection lost; resubscribing");
        loop {
            tokio::time::sleep(std::time::Duration::from_millis(500)).await;
            match client.get_async_pubsub().await {
                Ok(mut p) => {
                    if p.subscribe(&channel).await.is_ok() {
                        pubsub = p;
                        tracing::info!("redis pub/sub resubscribed");
                        break;
                    }
                }
                Err(e) => tracing::debug!(error = %e, "redis still unreachable"),
            }
        }
    }
}

#[async_trait]
impl Bus for RedisBus {
    async fn publish(&self, mut delivery: Delivery) {
        // This instance's sockets get it now, without a round trip through Redis; the
        // others get it from the channel (and this instance skips its own echo).
        self.hub.deliver(&delivery);
        delivery.source = Some(self.hub.instance());
        delivery.published_us = Some(chrono::Utc::now().timestamp_micros());
        let payload = match serde_json::to_string(&delivery) {
            Ok(p) => p,
            Err(e) => {
                tracing::error!(error = %e, "cannot serialise delivery");
                return;
            }
        };
        let mut conn = self.conn.clone();
        let res: redis::RedisResult<i64> = redis::cmd("PUBLISH")
            .arg(&self.channel)
            .arg(payload)
            .query_async(&mut conn)
            .await;
        if let Err(e) = res {
            // Redis is down: only this instance's sockets got the event.
            log_failure(&e, "redis publish failed; delivered locally only");
        }
    }
}
