//! Core values every layer shares, at the bottom of the crate: no HTTP, no database, no
//! rules. Users and conversations, the keyset [`Cursor`], validated inputs with their own
//! error, the rate-limited actions; ids and wire types are `chat-protocol`'s. The store
//! and the domain both speak in these (docs/architecture.md).

mod action;
mod conversation;
mod cursor;
mod input;
mod message;
pub mod search;

pub use action::Action;
pub use conversation::{ordered_pair, Conversation, ConversationView, User};
pub use cursor::{Cursor, InvalidCursor, PageCursor, SearchCursor};
pub use input::{
    is_invisible, now, truncate_micros, window_size, Emoji, InvalidInput, Limit, MessageBody,
    TempId, Username,
};
pub use message::StoredMessage;
pub use search::SearchTerms;
