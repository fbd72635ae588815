//! Getting events and presence across sockets and instances: the socket [`hub::Hub`]
//! of this instance, the [`bus`] that fans deliveries out (in process or through Redis)
//! and presence shared through Redis. Above the domain (it implements the domain's
//! [`crate::domain::delivery::Bus`] and [`crate::domain::presence::Presence`]), below the
//! transports.

pub mod bus;
pub mod hub;
pub mod redis_presence;
