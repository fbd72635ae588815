//! WebSocket frames on `/chat/ws`: every frame is `{"type": "...", "data": {...}}`.
//!
//! The socket itself is built by the real-time issue; the frame types live here already
//! so that REST and WS share one vocabulary from the start.

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

use crate::error::ErrorCode;
use crate::ids::{ConversationId, MessageId, UserId};
use crate::rest::Message;

/// Frames a client sends.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "type", content = "data")]
pub enum ClientEvent {
    #[serde(rename = "message.send")]
    MessageSend {
        conversation_id: ConversationId,
        content: String,
        #[serde(default)]
        temp_id: Option<String>,
    },
    #[serde(rename = "message.read")]
    MessageRead {
        conversation_id: ConversationId,
        #[serde(default)]
        up_to_message_id: Option<MessageId>,
    },
    #[serde(rename = "typing.start")]
    TypingStart { conversation_id: ConversationId },
    #[serde(rename = "typing.stop")]
    TypingStop { conversation_id: ConversationId },
    #[serde(rename = "ping")]
    Ping,
    #[serde(rename = "block.add")]
    BlockAdd { username: String },
    #[serde(rename = "block.remove")]
    BlockRemove { username: String },
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct PresenceEntry {
    pub user_id: UserId,
    pub online: bool,
    pub last_seen_at: Option<DateTime<Utc>>,
}

/// Frames the server sends.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "type", content = "data")]
pub enum ServerEvent {
    #[serde(rename = "connection.success")]
    ConnectionSuccess {
        user_id: UserId,
        username: String,
        server_time: DateTime<Utc>,
    },
    #[serde(rename = "message.sent")]
    MessageSent {
        temp_id: Option<String>,
        message: Message,
    },
    #[serde(rename = "message.new")]
    MessageNew { message: Message },
    #[serde(rename = "message.read_ack")]
    MessageReadAck {
        conversation_id: ConversationId,
        up_to_message_id: Option<MessageId>,
        read_at: DateTime<Utc>,
    },
    #[serde(rename = "message.read_update")]
    MessageReadUpdate {
        conversation_id: ConversationId,
        reader_id: UserId,
        up_to_message_id: Option<MessageId>,
        read_at: DateTime<Utc>,
    },
    #[serde(rename = "typing.start")]
    TypingStart {
        conversation_id: ConversationId,
        user_id: UserId,
    },
    #[serde(rename = "typing.stop")]
    TypingStop {
        conversation_id: ConversationId,
        user_id: UserId,
    },
    #[serde(rename = "user.online")]
    UserOnline { user_id: UserId },
    #[serde(rename = "user.offline")]
    UserOffline {
        user_id: UserId,
        last_seen_at: DateTime<Utc>,
    },
    #[serde(rename = "status.bulk")]
    StatusBulk { users: Vec<PresenceEntry> },
    #[serde(rename = "pong")]
    Pong,
    #[serde(rename = "block.updated")]
    BlockUpdated { username: String, blocked: bool },
    #[serde(rename = "error")]
    Error {
        code: ErrorCode,
        message: String,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        temp_id: Option<String>,
    },
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn client_frames_use_type_and_data() {
        let raw = r#"{"type":"typing.start","data":{"conversation_id":"0190c7f4-8e3a-7b7e-9a4e-1a2b3c4d5e6f"}}"#;
        let ev: ClientEvent = serde_json::from_str(raw).unwrap();
        assert!(matches!(ev, ClientEvent::TypingStart { .. }));
        let ping: ClientEvent = serde_json::from_str(r#"{"type":"ping"}"#).unwrap();
        assert_eq!(ping, ClientEvent::Ping);
    }

    #[test]
    fn server_error_frame_shape() {
        let ev = ServerEvent::Error {
            code: ErrorCode::RateLimited,
            message: "slow down".into(),
            temp_id: None,
        };
        let v = serde_json::to_value(&ev).unwrap();
        assert_eq!(v["type"], "error");
        assert_eq!(v["data"]["code"], "rate_limited");
    }
}
