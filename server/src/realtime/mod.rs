//! What realtime needs from outside the process: presence shared through Redis. Above
//! the domain (it implements the domain's [`crate::domain::presence::Presence`]), below
//! the transports.

pub mod redis_presence;
