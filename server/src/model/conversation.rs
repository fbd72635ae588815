//! The people and conversations every layer speaks of, as the store keeps them.

use chat_protocol::{ConversationId, MessageId, UserId};
use chrono::{DateTime, Utc};

use crate::model::{Cursor, StoredMessage};

#[derive(Debug, Clone, PartialEq)]
pub struct User {
    pub id: UserId,
    pub username: String,
    pub display_name: Option<String>,
    pub created_at: DateTime<Utc>,
    pub last_seen_at: Option<DateTime<Utc>>,
}

#[derive(Debug, Clone, PartialEq)]
pub struct Conversation {
    pub id: ConversationId,
    /// The smaller of the two user ids.
    pub user1_id: UserId,
    pub user2_id: UserId,
    pub created_by: UserId,
    pub last_message_id: Option<MessageId>,
    pub last_message_at: Option<DateTime<Utc>>,
    pub activity_at: DateTime<Utc>,
    pub user1_unread: u64,
    pub user2_unread: u64,
    pub created_at: DateTime<Utc>,
}

/// Two users as a conversation stores them: the smaller id first.
pub fn ordered_pair(a: UserId, b: UserId) -> (UserId, UserId) {
    if a < b {
        (a, b)
    } else {
        (b, a)
    }
}

impl Conversation {
    /// A new, empty conversation between `created_by` and `other`, created `at`.
    pub fn between(created_by: UserId, other: UserId, at: DateTime<Utc>) -> Self {
        let (user1_id, user2_id) = ordered_pair(created_by, other);
        Conversation {
            id: ConversationId::new(),
            user1_id,
            user2_id,
            created_by,
            last_message_id: None,
            last_message_at: None,
            activity_at: at,
            user1_unread: 0,
            user2_unread: 0,
            created_at: at,
        }
    }

    pub fn has_participant(&self, user: UserId) -> bool {
        self.user1_id == user || self.user2_id == user
    }

    /// The participant that is not `me`.
    pub fn other(&self, me: UserId) -> UserId {
        if self.user1_id == me {
            self.user2_id
        } else {
            self.user1_id
        }
    }

    pub fn unread_for(&self, me: UserId) -> u64 {
        if self.user1_id == me {
            self.user1_unread
        } else {
            self.user2_unread
        }
    }

    pub fn cursor(&self) -> Cursor {
        Cursor::new(self.activity_at, self.id.0)
    }
}

/// A conversation as one participant sees it in their list.
#[derive(Debug, Clone, PartialEq)]
pub struct ConversationView {
    pub conversation: Conversation,
    pub other: User,
    pub last_message: Option<StoredMessage>,
}
