//! Core values every layer shares, at the bottom of the crate: no HTTP, no database, no
//! rules. Today the keyset [`Cursor`]; ids and wire types live in `chat-protocol`. The
//! store uses these without depending on the domain (docs/architecture.md).

use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine;
use chrono::{DateTime, Utc};
use uuid::Uuid;

/// A cursor that is not one this server made (bad base64, version, time or id).
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[error("invalid cursor")]
pub struct InvalidCursor;

/// A position in a list ordered by `(time, id)`: the keyset behind every cursor.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub struct Cursor {
    pub at: DateTime<Utc>,
    pub id: Uuid,
}

impl Cursor {
    pub fn new(at: DateTime<Utc>, id: Uuid) -> Self {
        Cursor { at, id }
    }

    /// Opaque to clients: base64url of `v1:<micros>:<uuid>`.
    pub fn encode(&self) -> String {
        URL_SAFE_NO_PAD.encode(format!("v1:{}:{}", self.at.timestamp_micros(), self.id))
    }

    pub fn decode(raw: &str) -> Result<Self, InvalidCursor> {
        if raw.len() > 128 {
            return Err(InvalidCursor);
        }
        let bytes = URL_SAFE_NO_PAD
            .decode(raw.as_bytes())
            .map_err(|_| InvalidCursor)?;
        let text = std::str::from_utf8(&bytes).map_err(|_| InvalidCursor)?;
        let mut parts = text.splitn(3, ':');
        if parts.next() != Some("v1") {
            return Err(InvalidCursor);
        }
        let micros: i64 = parts
            .next()
            .and_then(|p| p.parse().ok())
            .ok_or(InvalidCursor)?;
        let at = DateTime::from_timestamp_micros(micros).ok_or(InvalidCursor)?;
        let id = parts
            .next()
            .and_then(|p| Uuid::parse_str(p).ok())
            .ok_or(InvalidCursor)?;
        Ok(Cursor { at, id })
    }

    pub fn decode_opt(raw: Option<&str>) -> Result<Option<Self>, InvalidCursor> {
        raw.map(Self::decode).transpose()
    }
}
