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
