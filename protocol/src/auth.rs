//! The JWT claims chatd accepts, defined once for the server (verifying and issuing) and
//! for every crate that mints or reads tokens (client, load generator, tests).
//!
//! Only the claims; signing and verifying stay with the crates that use `jsonwebtoken`.

use serde::{Deserialize, Serialize};

/// The claims chatd reads: `sub` (user id, UUID), `username`, `exp`; `iat` is optional
/// (required only when the server caps token lifetime) and left out when absent.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Claims {
    pub sub: String,
    pub username: String,
    pub exp: i64,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub iat: Option<i64>,
}
