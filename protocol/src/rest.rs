//! REST request and response bodies for everything under `/chat`.

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

use crate::ids::{ConversationId, MessageId, UserId};

/// Every list endpoint answers with this envelope.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct Page<T> {
    pub data: Vec<T>,
    /// Pass back as `before` (or `after` when paging forwards) to continue; `null` at the end.
    #[schema(required = true)]
    pub next_cursor: Option<String>,
    pub has_more: bool,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize, ToSchema)]
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
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct MediaItem {
    pub kind: MessageType,
    /// Signed, expiring URL of the object (relative `/media/…` for local storage
    /// without `CHAT_PUBLIC_URL`).
    pub url: String,
    #[schema(required = true)]
    pub thumbnail_url: Option<String>,
    /// Sniffed from the bytes, never the declared type.
    pub mime: String,
    /// Bytes.
    pub size: u64,
    #[schema(required = true)]
    pub width: Option<u32>,
    #[schema(required = true)]
    pub height: Option<u32>,
    #[schema(required = true)]
    pub duration_ms: Option<u64>,
    /// Original file name (files and videos).
    #[schema(required = true)]
    pub name: Option<String>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct Message {
    pub id: MessageId,
    pub conversation_id: ConversationId,
    pub sender_id: UserId,
    pub receiver_id: UserId,
    #[serde(rename = "type")]
    pub kind: MessageType,
    /// Text, or the caption of a media message; trimmed, never escaped (escape on display).
    #[schema(required = true)]
    pub content: Option<String>,
    pub media: Vec<MediaItem>,
    /// The sender's idempotency key, if it sent one.
    #[schema(required = true)]
    pub temp_id: Option<String>,
    pub is_read: bool,
    #[schema(required = true)]
    pub read_at: Option<DateTime<Utc>>,
    pub created_at: DateTime<Utc>,
    /// The message this one answers, as it is now (following edits and deletes).
    #[serde(default)]
    #[schema(required = true)]
    pub reply_to: Option<ReplyTo>,
    /// When the content was last edited.
    #[serde(default)]
    #[schema(required = true)]
    pub edited_at: Option<DateTime<Utc>>,
    /// Deleted for everyone: a tombstone, with no content and no media.
    #[serde(default)]
    #[schema(required = true)]
    pub deleted_at: Option<DateTime<Utc>>,
    /// Reactions, one entry per emoji in the order they were first added.
    #[serde(default)]
    pub reactions: Vec<Reaction>,
}

/// The quoted original of a reply.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct ReplyTo {
    pub id: MessageId,
    /// `null` when the original is gone from storage (purged by retention).
    #[schema(required = true)]
    pub sender_id: Option<UserId>,
    /// `null` when the original is gone from storage.
    #[serde(rename = "type")]
    #[schema(required = true)]
    pub kind: Option<MessageType>,
    /// The first 100 characters of the original's text or caption, as edited; `null`
    /// when it has none or is deleted.
    #[schema(required = true)]
    pub preview: Option<String>,
    /// The original was deleted for everyone, or is gone from storage.
    pub deleted: bool,
}

/// Characters of a reply's `preview`.
pub const REPLY_PREVIEW_CHARS: usize = 100;

impl ReplyTo {
    /// The `preview` of an original with this text: its first [`REPLY_PREVIEW_CHARS`].
    pub fn preview_of(text: &str) -> String {
        text.chars().take(REPLY_PREVIEW_CHARS).collect()
    }
}

/// Everyone who reacted to a message with one emoji.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct Reaction {
    pub emoji: String,
    /// In the order they reacted.
    pub user_ids: Vec<UserId>,
}

/// Most distinct emoji on one message.
pub const MAX_REACTIONS_PER_MESSAGE: usize = 20;

/// `PATCH /chat/messages/:id`
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct EditMessageRequest {
    /// The new text (or caption): 1 to 4000 characters after trimming.
    #[schema(min_length = 1, max_length = 4000)]
    pub content: String,
}

/// Who a delete is for (`DELETE /chat/messages/:id?scope=`).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Hash, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum DeleteScope {
    /// Hidden for the caller only (any participant).
    #[default]
    Me,
    /// A tombstone for both (the sender, within the edit window).
    Everyone,
}

impl DeleteScope {
    pub fn as_str(self) -> &'static str {
        match self {
            DeleteScope::Me => "me",
            DeleteScope::Everyone => "everyone",
        }
    }
}

/// Answer of `DELETE /chat/messages/:id`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct DeletedMessage {
    pub conversation_id: ConversationId,
    pub message_id: MessageId,
    pub scope: DeleteScope,
}

/// Answer of `PUT` / `DELETE /chat/messages/:id/reactions/:emoji`: the message's reactions now.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct ReactionsResponse {
    pub message_id: MessageId,
    pub reactions: Vec<Reaction>,
}

/// One hit of `GET /chat/search`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct SearchHit {
    pub message: Message,
    /// A piece of the text around the match, matched words between `[` and `]`.
    pub snippet: String,
}

/// The other participant of a conversation, as seen by the caller.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct UserSummary {
    pub id: UserId,
    pub username: String,
    #[schema(required = true)]
    pub display_name: Option<String>,
    pub online: bool,
    #[schema(required = true)]
    pub last_seen_at: Option<DateTime<Utc>>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct Conversation {
    pub id: ConversationId,
    pub other_user: UserSummary,
    #[schema(required = true)]
    pub last_message: Option<Message>,
    #[schema(required = true)]
    pub last_message_at: Option<DateTime<Utc>>,
    pub unread_count: u64,
    pub created_at: DateTime<Utc>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct ConversationUnread {
    pub conversation_id: ConversationId,
    pub unread: u64,
}

/// `GET /chat/conversations/unread-count`
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct UnreadCount {
    pub total: u64,
    pub conversations: Vec<ConversationUnread>,
}

/// The most characters (Unicode scalar values, after trimming) a text message or caption
/// may have; the server refuses more with `validation_failed`.
pub const MAX_MESSAGE_CHARS: usize = 4000;

/// `POST /chat/conversations/:id/messages` with a JSON body.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct SendMessageRequest {
    /// 1 to 4000 characters after trimming; no control characters but newline and tab.
    #[schema(min_length = 1, max_length = 4000)]
    pub content: String,
    /// Idempotency key: the same sender and `temp_id` twice store one message
    /// (1 to 128 characters, no control characters).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schema(min_length = 1, max_length = 128)]
    pub temp_id: Option<String>,
    /// Answer this message (of the same conversation, not deleted).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub reply_to_id: Option<MessageId>,
}

/// `POST /chat/conversations/:id/read`; an empty body marks everything read.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct MarkReadRequest {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub up_to_message_id: Option<MessageId>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct MarkReadResponse {
    pub conversation_id: ConversationId,
    /// How many messages this call turned from unread to read.
    pub marked: u64,
    /// The newest message now read (the read mark), if any message was read.
    #[schema(required = true)]
    pub up_to_message_id: Option<MessageId>,
    pub read_at: DateTime<Utc>,
    /// Unread messages left in this conversation for the caller.
    pub unread_count: u64,
}

/// `GET /chat/messages/:id/context`: a window around one message, oldest first.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct MessageContext {
    pub target_id: MessageId,
    /// Oldest first; contains the target.
    pub data: Vec<Message>,
    pub has_more_before: bool,
    pub has_more_after: bool,
    /// Pass as `before` to `/conversations/:id/messages` to read further back.
    #[schema(required = true)]
    pub before_cursor: Option<String>,
    /// Pass as `after` to `/conversations/:id/messages` to read further forward.
    #[schema(required = true)]
    pub after_cursor: Option<String>,
}

/// One URL found in a text message (`GET /chat/conversations/:id/links`).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct LinkItem {
    pub url: String,
    pub message_id: MessageId,
    pub sender_id: UserId,
    pub created_at: DateTime<Utc>,
}

/// `POST /chat/blocks`
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct BlockRequest {
    pub username: String,
}

/// Answer of block/unblock.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct BlockChange {
    pub username: String,
    pub blocked: bool,
}

/// `GET /chat/blocks/status/:username`
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct BlockStatus {
    pub blocked_by_me: bool,
    pub blocked_me: bool,
}

/// One entry of `GET /chat/blocks`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct BlockedUser {
    pub user_id: UserId,
    pub username: String,
    #[schema(required = true)]
    pub display_name: Option<String>,
    pub blocked_at: DateTime<Utc>,
}

/// `GET /readyz`
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct Readiness {
    pub ready: bool,
    /// `ok`, or `error: …`.
    pub database: String,
    /// `ok`, `not configured`, or `error: …`.
    pub redis: String,
}

/// `GET /healthz`
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct Health {
    /// Always `ok`.
    pub status: String,
}

/// `GET /chat/push/vapid-public-key`
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct VapidPublicKey {
    /// The VAPID application server key (base64url, uncompressed P-256 point), for
    /// `pushManager.subscribe`.
    pub public_key: String,
}

/// Kinds of push subscription a client can register.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize, ToSchema)]
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

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct WebPushKeys {
    /// The subscription's P-256 public key (1 to 256 characters).
    #[schema(min_length = 1, max_length = 256)]
    pub p256dh: String,
    /// The subscription's authentication secret (1 to 256 characters).
    #[schema(min_length = 1, max_length = 256)]
    pub auth: String,
}

/// `POST /chat/push/subscriptions`: `token` for fcm/apns, `endpoint` + `keys` for webpush.
/// Its OpenAPI schema is written by hand below: the one struct carries two shapes.
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

/// The two shapes the server accepts, as `oneOf` (the kinds are disjoint, so a body
/// matches exactly one). Fields of the other shape are ignored.
impl utoipa::PartialSchema for PushSubscriptionRequest {
    fn schema() -> utoipa::openapi::RefOr<utoipa::openapi::schema::Schema> {
        use utoipa::openapi::schema::{ObjectBuilder, OneOfBuilder, Type};
        use utoipa::openapi::Ref;
        let kinds = |kinds: &[&str]| {
            ObjectBuilder::new()
                .schema_type(Type::String)
                .enum_values(Some(kinds.to_vec()))
        };
        let device = ObjectBuilder::new()
            .title(Some("Device token (fcm, apns)"))
            .property("kind", kinds(&["fcm", "apns"]))
            .required("kind")
            .property(
                "token",
                ObjectBuilder::new()
                    .schema_type(Type::String)
                    .min_length(Some(1))
                    .max_length(Some(4096))
                    .description(Some("Device token: 1 to 4096 bytes, no control characters")),
            )
            .required("token");
        let webpush = ObjectBuilder::new()
            .title(Some("Web Push subscription"))
            .property("kind", kinds(&["webpush"]))
            .required("kind")
            .property(
                "endpoint",
                ObjectBuilder::new()
                    .schema_type(Type::String)
                    .max_length(Some(2048))
                    .pattern(Some(r"^(https://|http://(127\.0\.0\.1|localhost|\[::1\]))"))
                    .description(Some(
                        "The push service URL: https, up to 2048 bytes (plain http only \
                         on loopback, for development)",
                    )),
            )
            .required("endpoint")
            .property("keys", Ref::from_schema_name("WebPushKeys"))
            .required("keys");
        OneOfBuilder::new()
            .description(Some(
                "`token` for fcm and apns; `endpoint` and `keys` for webpush",
            ))
            .item(device)
            .item(webpush)
            .into()
    }
}

impl ToSchema for PushSubscriptionRequest {
    fn schemas(
        schemas: &mut Vec<(
            String,
            utoipa::openapi::RefOr<utoipa::openapi::schema::Schema>,
        )>,
    ) {
        schemas.push((
            WebPushKeys::name().into(),
            <WebPushKeys as utoipa::PartialSchema>::schema(),
        ));
        <WebPushKeys as ToSchema>::schemas(schemas);
    }
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
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
