//! The two implementations of the domain's [`Bus`]: fan-out of server events to users'
//! sockets, wherever those sockets are.
//!
//! Domain code publishes a [`Delivery`] (who, what, which socket to skip); the bus gets
//! it to every instance's [`Hub`], which writes it to the local sockets of those users.
//! The in-process bus hands it straight to this instance's hub.

use std::sync::Arc;

use async_trait::async_trait;

use crate::domain::delivery::{echo_prefix, Bus, Delivery};
use crate::realtime::hub::Hub;
use crate::redis_breaker::{log_failure, GuardedConnection};

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
    let echo = echo_prefix(hub.instance());
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
                if payload.starts_with(&echo) {
                    continue; // this instance's own: delivered locally when published
                }
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
