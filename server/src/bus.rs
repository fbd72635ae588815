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
    pub event: ServerEvent,
}

impl Delivery {
    pub fn to(users: Vec<UserId>, event: ServerEvent) -> Self {
        Delivery {
            users,
            except: None,
            event,
        }
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
