//! chatd as a library: configuration, HTTP surface, domain rules and storage.
//!
//! `main.rs` only parses configuration and calls [`serve`]; tests and `chatctl` use the
//! same pieces (the store, the JWT keys) so they can never disagree with the server.

pub mod admin;
pub mod app;
pub mod auth;
pub mod config;
pub mod domain;
pub mod error;
pub mod http;
pub mod media;
pub mod metrics;
pub mod model;
pub mod push;
pub mod ratelimit;
pub mod realtime;
pub mod redis_breaker;
pub mod slots;
pub mod store;
pub mod telemetry;

pub use app::serve;
pub use config::{CommonConfig, Config};
pub use error::Error;
pub use http::AppState;
