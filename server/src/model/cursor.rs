//! The keyset [`Cursor`] behind every paginated list, opaque to clients.

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
        let text = unwrap_text(raw)?;
        Self::from_key(text.strip_prefix("v1:").ok_or(InvalidCursor)?)
    }

    /// `<micros>:<uuid>`, the key part of both cursor kinds.
    fn from_key(text: &str) -> Result<Self, InvalidCursor> {
        let (micros, id) = text.split_once(':').ok_or(InvalidCursor)?;
        let micros: i64 = micros.parse().map_err(|_| InvalidCursor)?;
        let at = DateTime::from_timestamp_micros(micros).ok_or(InvalidCursor)?;
        let id = Uuid::parse_str(id).map_err(|_| InvalidCursor)?;
        Ok(Cursor { at, id })
    }

    pub fn decode_opt(raw: Option<&str>) -> Result<Option<Self>, InvalidCursor> {
        raw.map(Self::decode).transpose()
    }
}

/// What a page of results hands out as `next_cursor` (a list or a search cursor).
pub trait PageCursor {
    fn encode(&self) -> String;
}

impl PageCursor for Cursor {
    fn encode(&self) -> String {
        Cursor::encode(self)
    }
}

impl PageCursor for SearchCursor {
    fn encode(&self) -> String {
        SearchCursor::encode(self)
    }
}

/// A cursor's text: base64url, at most 128 characters, UTF-8.
fn unwrap_text(raw: &str) -> Result<String, InvalidCursor> {
    if raw.len() > 128 {
        return Err(InvalidCursor);
    }
    let bytes = URL_SAFE_NO_PAD
        .decode(raw.as_bytes())
        .map_err(|_| InvalidCursor)?;
    String::from_utf8(bytes).map_err(|_| InvalidCursor)
}

/// A position in search results, which follow the viewer's event log newest first
/// (`pos`, the viewer's position of the message; 0 for history stored before the log
/// existed), then `(time, id)`. Opaque to clients: base64url of `s1:<pos>:<micros>:<uuid>`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub struct SearchCursor {
    pub pos: u64,
    pub key: Cursor,
}

impl SearchCursor {
    pub fn encode(&self) -> String {
        URL_SAFE_NO_PAD.encode(format!(
            "s1:{}:{}:{}",
            self.pos,
            self.key.at.timestamp_micros(),
            self.key.id
        ))
    }

    pub fn decode(raw: &str) -> Result<Self, InvalidCursor> {
        let text = unwrap_text(raw)?;
        let (pos, key) = text
            .strip_prefix("s1:")
            .and_then(|t| t.split_once(':'))
            .ok_or(InvalidCursor)?;
        // Positions are stored as signed 64-bit integers.
        let pos: u64 = pos
            .parse()
            .ok()
            .filter(|p| *p <= i64::MAX as u64)
            .ok_or(InvalidCursor)?;
        let key = Cursor::from_key(key)?;
        Ok(SearchCursor { pos, key })
    }

    pub fn decode_opt(raw: Option<&str>) -> Result<Option<Self>, InvalidCursor> {
        raw.map(Self::decode).transpose()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::now;

    #[test]
    fn cursor_round_trips_and_rejects_garbage() {
        let c = Cursor::new(now(), Uuid::now_v7());
        assert_eq!(Cursor::decode(&c.encode()).unwrap(), c);
        for bad in ["", "!!!", "djE6eHl6", "not-a-cursor", &"A".repeat(500)] {
            assert!(Cursor::decode(bad).is_err(), "{bad} accepted");
        }
        let wrong_version = URL_SAFE_NO_PAD.encode(format!("v2:1:{}", Uuid::nil()));
        assert!(Cursor::decode(&wrong_version).is_err());
    }

    #[test]
    fn search_cursor_round_trips_and_is_not_a_list_cursor() {
        let c = SearchCursor {
            pos: 42,
            key: Cursor::new(now(), Uuid::now_v7()),
        };
        assert_eq!(SearchCursor::decode(&c.encode()).unwrap(), c);
        assert!(SearchCursor::decode(&c.key.encode()).is_err());
        assert!(Cursor::decode(&c.encode()).is_err());
        let too_far = URL_SAFE_NO_PAD.encode(format!("s1:{}:1:{}", u64::MAX, Uuid::nil()));
        let negative = URL_SAFE_NO_PAD.encode(format!("s1:-1:1:{}", Uuid::nil()));
        for bad in ["", "!!!", too_far.as_str(), negative.as_str()] {
            assert!(SearchCursor::decode(bad).is_err(), "{bad} accepted");
        }
    }
}
