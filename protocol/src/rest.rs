//! REST request and response bodies for everything under `/chat`.

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

use crate::ids::{ConversationId, MessageId, UserId};

/// Every list endpoint answers with this envelope.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Page<T> {
    pub data: Vec<T>,
    /// Pass back as `before` (or `after` when paging forwards) to continue; `null` at the end.
    pub next_cursor: Option<String>,
    pub has_more: bool,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum MessageType {
    Text,
    Image,
    Video,
    File,
}

impl MessageType {
    pub fn as_str(self) -> &'static str {
        match self {
            MessageType::Text => "text",
            MessageType::Image => "image",
            MessageType::Video => "video",
            MessageType::File => "file",
        }
    }

    pub fn parse(s: &str) -> Option<Self> {
        Some(match s {
            "text" => MessageType::Text,
            "image" => MessageType::Image,
            "video" => MessageType::Video,
            "file" => MessageType::File,
            _ => return None,
        })
    }
}

/// One attachment of a media message.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct MediaItem {
    pub kind: MessageType,
    pub url: String,
    pub thumbnail_url: Option<String>,
    pub mime: String,
    pub size: u64,
    pub width: Option<u32>,
    pub height: Option<u32>,
    pub duration_ms: Option<u64>,
    pub name: Option<String>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Message {
    pub id: MessageId,
    pub conversation_id: ConversationId,
    pub sender_id: UserId,
    pub receiver_id: UserId,
    #[serde(rename = "type")]
    pub kind: MessageType,
    pub content: Option<String>,
    pub media: Vec<MediaItem>,
    pub temp_id: Option<String>,
    pub is_read: bool,
    pub read_at: Option<DateTime<Utc>>,
    pub created_at: DateTime<Utc>,
}

/// The other participant of a conversation, as seen by the caller.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct UserSummary {
    pub id: UserId,
    pub username: String,
    pub display_name: Option<String>,
    pub online: bool,
    pub last_seen_at: Option<DateTime<Utc>>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Conversation {
    pub id: ConversationId,
    pub other_user: UserSummary,
    pub last_message: Option<Message>,
    pub last_message_at: Option<DateTime<Utc>>,
    pub unread_count: u64,
    pub created_at: DateTime<Utc>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ConversationUnread {
    pub conversation_id: ConversationId,
    pub unread: u64,
}

/// `GET /chat/conversations/unread-count`
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct UnreadCount {
    pub total: u64,
    pub conversations: Vec<ConversationUnread>,
}

/// `POST /chat/conversations/:id/messages` with a JSON body.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct SendMessageRequest {
    pub content: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub temp_id: Option<String>,
}

/// `POST /chat/conversations/:id/read`; an empty body marks everything read.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct MarkReadRequest {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub up_to_message_id: Option<MessageId>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct MarkReadResponse {
    pub conversation_id: ConversationId,
    /// How many messages this call turned from unread to read.
    pub marked: u64,
    /// The newest message now read (the read mark), if any message was read.
    pub up_to_message_id: Option<MessageId>,
    pub read_at: DateTime<Utc>,
    /// Unread messages left in this conversation for the caller.
    pub unread_count: u64,
}

/// `GET /chat/messages/:id/context`: a window around one message, oldest first.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct MessageContext {
    pub target_id: MessageId,
    /// Oldest first; contains the target.
    pub data: Vec<Message>,
    pub has_more_before: bool,
    pub has_more_after: bool,
    /// Pass as `before` to `/conversations/:id/messages` to read further back.
    pub before_cursor: Option<String>,
    /// Pass as `after` to `/conversations/:id/messages` to read further forward.
    pub after_cursor: Option<String>,
}

/// One URL found in a text message (`GET /chat/conversations/:id/links`).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct LinkItem {
    pub url: String,
    pub message_id: MessageId,
    pub sender_id: UserId,
    pub created_at: DateTime<Utc>,
}

/// `POST /chat/blocks`
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct BlockRequest {
    pub username: String,
}

/// Answer of block/unblock.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct BlockChange {
    pub username: String,
    pub blocked: bool,
}

/// `GET /chat/blocks/status/:username`
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct BlockStatus {
    pub blocked_by_me: bool,
    pub blocked_me: bool,
}

/// One entry of `GET /chat/blocks`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct BlockedUser {
    pub user_id: UserId,
    pub username: String,
    pub display_name: Option<String>,
    pub blocked_at: DateTime<Utc>,
}

/// `GET /readyz`
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Readiness {
    pub ready: bool,
    pub database: String,
    pub redis: String,
}

/// Kinds of push subscription a client can register.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum PushKind {
    /// A browser's Web Push subscription (RFC 8030): `endpoint` + `keys`.
    Webpush,
    /// A Firebase Cloud Messaging device token, relayed through the webhook provider.
    Fcm,
    /// An Apple Push Notification service device token, relayed through the webhook provider.
    Apns,
}

impl PushKind {
    pub fn as_str(self) -> &'static str {
        match self {
            PushKind::Webpush => "webpush",
            PushKind::Fcm => "fcm",
            PushKind::Apns => "apns",
        }
    }

    pub fn parse(s: &str) -> Option<Self> {
        Some(match s {
            "webpush" => PushKind::Webpush,
            "fcm" => PushKind::Fcm,
            "apns" => PushKind::Apns,
            _ => return None,
        })
    }
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct WebPushKeys {
    pub p256dh: String,
    pub auth: String,
}

/// `POST /chat/push/subscriptions`: `token` for fcm/apns, `endpoint` + `keys` for webpush.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct PushSubscriptionRequest {
    pub kind: PushKind,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub token: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub endpoint: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub keys: Option<WebPushKeys>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct PushSubscription {
    pub id: uuid::Uuid,
    pub kind: PushKind,
    /// Device token or Web Push endpoint.
    pub target: String,
    pub created_at: DateTime<Utc>,
}

/// What the webhook provider POSTs for a message to a user with no live socket.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct PushNotification {
    pub event: String,
    pub user_id: UserId,
    pub conversation_id: ConversationId,
    pub message_id: MessageId,
    pub sender_id: UserId,
    pub sender_username: String,
    #[serde(rename = "type")]
    pub kind: MessageType,
    /// The first 120 characters of the text, if any.
    pub preview: Option<String>,
    pub created_at: DateTime<Utc>,
    /// The receiver's registered devices (Web Push endpoints are delivered directly).
    pub subscriptions: Vec<PushSubscription>,
}
