//! A message as the store keeps it, which is not yet what a client may see.

use std::ops::Deref;

use chat_protocol::rest::Message;

use crate::model::Cursor;

/// A stored message: its media `url` and `thumbnail_url` hold object keys, not URLs.
///
/// It is a different type from the wire [`Message`] on purpose: it has no `Serialize`,
/// and the only ways to a `Message` are `Media::present` (keys become signed, expiring
/// URLs) or the explicitly named [`StoredMessage::into_keyed`]. So a handler that forgets
/// to sign cannot leak storage keys to a client without the compiler noticing. Reading
/// fields goes through `Deref`.
#[derive(Debug, Clone, PartialEq)]
pub struct StoredMessage(Message);

impl StoredMessage {
    /// `m` as stored (media fields holding object keys).
    pub fn new(m: Message) -> Self {
        StoredMessage(m)
    }

    /// The message in wire shape with the object keys left in its media fields: for
    /// operators (chatctl, purges), for signing, and for a message without media, where
    /// stored and presented are the same.
    pub fn into_keyed(self) -> Message {
        self.0
    }

    /// Its position in a conversation's `(created_at, id)` order.
    pub fn cursor(&self) -> Cursor {
        Cursor::new(self.0.created_at, self.0.id.0)
    }
}

impl Deref for StoredMessage {
    type Target = Message;

    fn deref(&self) -> &Message {
        &self.0
    }
}
