//! Wire types shared by `chatd`, its clients and its tests.
//!
//! Everything that crosses the wire (REST request and response bodies, WebSocket
//! frames, error codes) is defined here once, so a rename breaks the build of every
//! party instead of a user's client.

pub mod auth;
pub mod error;
pub mod ids;
pub mod rest;
pub mod units;
pub mod ws;

pub use error::{ErrorBody, ErrorCode, ErrorDetail};
pub use ids::{ConversationId, MessageId, UserId};
