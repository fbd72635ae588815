//! Business rules, once: who may read or send, blocks, idempotency, pagination.
//! No HTTP and no SQL here; REST and WebSocket handlers call [`ChatService`].

pub mod delivery;
pub mod links;
pub mod participants;
pub mod presence;
pub mod service;

pub use service::ChatService;
