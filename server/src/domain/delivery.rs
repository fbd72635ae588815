//! How the rules reach sockets: a [`Delivery`] (who, what, which socket to skip) handed
//! to a [`Bus`]. The domain defines this port; `realtime` implements it (in process, or
//! across instances through Redis) and the socket hub consumes it.

use std::sync::Arc;

use async_trait::async_trait;
use chat_protocol::ws::ServerEvent;
use chat_protocol::UserId;
use serde::{Deserialize, Serialize};
use uuid::Uuid;

/// One socket, globally: the instance it lives on and its number there.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct ConnKey {
    pub instance: Uuid,
    pub conn: u64,
}

/// An event for every socket of `users`, except `except` (the socket that caused it).
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Delivery {
    /// The instance that published it (on the Redis bus): that instance has already
    /// delivered it to its own sockets and skips its own echo. First, so that the echo is
    /// recognised by the payload's first bytes without parsing it ([`echo_prefix`]).
    #[serde(default)]
    pub source: Option<Uuid>,
    pub users: Vec<UserId>,
    #[serde(default)]
    pub except: Option<ConnKey>,
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

/// How a delivery published by `instance` begins once serialised: a subscriber skips its
/// own echo by this prefix, without parsing the event (one parse per message saved).
pub fn echo_prefix(instance: Uuid) -> String {
    format!("{{\"source\":\"{instance}\"")
}

#[async_trait]
pub trait Bus: Send + Sync + 'static {
    /// Deliver, best effort: a socket that is gone or too slow is skipped (and closed).
    async fn publish(&self, delivery: Delivery);
}

pub type DynBus = Arc<dyn Bus>;

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_published_delivery_starts_with_its_echo_prefix() {
        let instance = Uuid::now_v7();
        let mut d = Delivery::to(
            vec![UserId::new()],
            ServerEvent::UserOffline {
                user_id: UserId::new(),
                last_seen_at: chrono::Utc::now(),
            },
        );
        d.source = Some(instance);
        let json = serde_json::to_string(&d).expect("serialise");
        assert!(json.starts_with(&echo_prefix(instance)), "{json}");
        assert!(!json.starts_with(&echo_prefix(Uuid::now_v7())));
        let back: Delivery = serde_json::from_str(&json).expect("parse");
        assert_eq!(back.source, Some(instance));
    }
}
