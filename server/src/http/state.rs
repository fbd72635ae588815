//! [`AppState`]: what every REST and WebSocket handler can reach. Built and wired by
//! `app`; the transports only read it.

use std::sync::Arc;

use crate::auth::JwtKeys;
use crate::domain::ChatService;
use crate::http::ws::WsSettings;
use crate::realtime::hub::Hub;

/// What every handler can reach.
#[derive(Clone)]
pub struct AppState {
    pub service: Arc<ChatService>,
    pub hub: Arc<Hub>,
    pub ws: WsSettings,
    pub keys: Arc<JwtKeys>,
    pub redis: Option<redis::aio::ConnectionManager>,
    /// VAPID public key for browsers, when Web Push is configured.
    pub vapid_public_key: Option<String>,
}
