//! WebSocket frames on `/chat/ws`: every frame is `{"type": "...", "data": {...}}`.
//!
//! The socket itself is built by the real-time issue; the frame types live here already
//! so that REST and WS share one vocabulary from the start.

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

use crate::error::ErrorCode;
use crate::ids::{ConversationId, MessageId, UserId};
use crate::rest::{DeleteScope, Message};

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
        #[serde(default, skip_serializing_if = "Option::is_none")]
        reply_to_id: Option<MessageId>,
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
    /// `data` is `{}` (SPEC: always an object).
    #[serde(rename = "ping")]
    Ping {},
    #[serde(rename = "block.add")]
    BlockAdd { username: String },
    #[serde(rename = "block.remove")]
    BlockRemove { username: String },
    /// Same as `PATCH /chat/messages/:id`; answered with `message.edited`.
    #[serde(rename = "message.edit")]
    MessageEdit {
        message_id: MessageId,
        content: String,
    },
    /// Same as `DELETE /chat/messages/:id?scope=`; answered with `message.deleted`.
    #[serde(rename = "message.delete")]
    MessageDelete {
        message_id: MessageId,
        #[serde(default)]
        scope: DeleteScope,
    },
    /// Same as `PUT` (`add`) / `DELETE /chat/messages/:id/reactions/:emoji`; answered with
    /// `reaction.updated` when something changed.
    #[serde(rename = "reaction.set")]
    ReactionSet {
        message_id: MessageId,
        emoji: String,
        add: bool,
    },
}

impl ClientEvent {
    /// Every `type` a client may send, as on the wire.
    pub const TYPES: [&'static str; 10] = [
        "message.send",
        "message.read",
        "typing.start",
        "typing.stop",
        "ping",
        "block.add",
        "block.remove",
        "message.edit",
        "message.delete",
        "reaction.set",
    ];

    /// This frame's `type` on the wire.
    pub fn kind(&self) -> &'static str {
        match self {
            ClientEvent::MessageSend { .. } => "message.send",
            ClientEvent::MessageRead { .. } => "message.read",
            ClientEvent::TypingStart { .. } => "typing.start",
            ClientEvent::TypingStop { .. } => "typing.stop",
            ClientEvent::Ping {} => "ping",
            ClientEvent::BlockAdd { .. } => "block.add",
            ClientEvent::BlockRemove { .. } => "block.remove",
            ClientEvent::MessageEdit { .. } => "message.edit",
            ClientEvent::MessageDelete { .. } => "message.delete",
            ClientEvent::ReactionSet { .. } => "reaction.set",
        }
    }
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
    Pong {},
    #[serde(rename = "block.updated")]
    BlockUpdated { username: String, blocked: bool },
    /// A message's content changed: the message as it is now.
    #[serde(rename = "message.edited")]
    MessageEdited { message: Message },
    /// Deleted for everyone (a tombstone now), or for this user only (`scope: me`: gone
    /// from this user's view).
    #[serde(rename = "message.deleted")]
    MessageDeleted {
        conversation_id: ConversationId,
        message_id: MessageId,
        scope: DeleteScope,
    },
    #[serde(rename = "reaction.updated")]
    ReactionUpdated {
        conversation_id: ConversationId,
        message_id: MessageId,
        emoji: String,
        user_id: UserId,
        /// true: added; false: removed.
        added: bool,
    },
    /// Sent once per socket, after `connection.success`: every event of the user's log up
    /// to `seq` has been delivered (replayed for `?since=`, or already known to a new
    /// client that loads state over REST). Live events follow.
    #[serde(rename = "sync.complete")]
    SyncComplete {
        /// The newest position of the user's event log when the socket opened.
        seq: u64,
        /// How many logged events were replayed before this frame.
        replayed: u64,
    },
    #[serde(rename = "error")]
    Error {
        code: ErrorCode,
        message: String,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        temp_id: Option<String>,
    },
}

/// A server frame as it travels: the event, and for logged events (`message.new`,
/// `message.sent` of a new message, `message.read_ack` / `message.read_update` that
/// marked something) the user's event-log position `seq` beside `type` and `data`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Envelope {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub seq: Option<u64>,
    #[serde(flatten)]
    pub event: ServerEvent,
}

/// What a client keeps to resume without a gap: the highest position up to which it has
/// every event (`position`, to send as `/chat/ws?since=`). Positions seen beyond a hole
/// (frames from two instances may cross; a delivery may be lost while an instance dies)
/// are remembered until the hole fills, or until `sync.complete` vouches for them.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct SeqTracker {
    contiguous: Option<u64>,
    ahead: std::collections::BTreeSet<u64>,
}

impl SeqTracker {
    /// The `since` to resume from; `None` before the first `sync.complete`.
    pub fn position(&self) -> Option<u64> {
        self.contiguous
    }

    /// This position was delivered already (a repeat to drop). Frames without a position
    /// are never repeats by this measure.
    pub fn seen(&self, seq: u64) -> bool {
        self.contiguous.is_some_and(|c| seq <= c) || self.ahead.contains(&seq)
    }

    /// Feed every frame's envelope through this.
    pub fn observe(&mut self, env: &Envelope) {
        if let ServerEvent::SyncComplete { seq, .. } = env.event {
            let at = self.contiguous.unwrap_or(0).max(seq);
            self.contiguous = Some(at);
            self.ahead = self.ahead.split_off(&(at + 1));
            self.absorb();
        } else if let (Some(seq), Some(at)) = (env.seq, self.contiguous) {
            if seq > at {
                self.ahead.insert(seq);
                self.absorb();
            }
        }
    }

    fn absorb(&mut self) {
        let Some(mut at) = self.contiguous else {
            return;
        };
        while self.ahead.remove(&(at + 1)) {
            at += 1;
        }
        self.contiguous = Some(at);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn client_types_are_the_wire_names() {
        let conv = ConversationId::new();
        let all = [
            ClientEvent::MessageSend {
                conversation_id: conv,
                content: "x".into(),
                temp_id: None,
                reply_to_id: None,
            },
            ClientEvent::MessageRead {
                conversation_id: conv,
                up_to_message_id: None,
            },
            ClientEvent::TypingStart {
                conversation_id: conv,
            },
            ClientEvent::TypingStop {
                conversation_id: conv,
            },
            ClientEvent::Ping {},
            ClientEvent::BlockAdd {
                username: "a".into(),
            },
            ClientEvent::BlockRemove {
                username: "a".into(),
            },
            ClientEvent::MessageEdit {
                message_id: MessageId::new(),
                content: "y".into(),
            },
            ClientEvent::MessageDelete {
                message_id: MessageId::new(),
                scope: DeleteScope::Everyone,
            },
            ClientEvent::ReactionSet {
                message_id: MessageId::new(),
                emoji: "👍".into(),
                add: true,
            },
        ];
        let kinds: Vec<&str> = all.iter().map(ClientEvent::kind).collect();
        assert_eq!(kinds, ClientEvent::TYPES);
        for e in &all {
            let v = serde_json::to_value(e).expect("serialize");
            assert_eq!(v["type"], e.kind());
        }
    }

    fn env(seq: Option<u64>, event: ServerEvent) -> Envelope {
        Envelope { seq, event }
    }

    #[test]
    fn tracker_advances_over_contiguous_positions_only() {
        let mut t = SeqTracker::default();
        // Nothing is known before the first sync.complete.
        t.observe(&env(Some(4), ServerEvent::Pong {}));
        assert_eq!(t.position(), None);
        t.observe(&env(
            None,
            ServerEvent::SyncComplete {
                seq: 5,
                replayed: 0,
            },
        ));
        assert_eq!(t.position(), Some(5));
        t.observe(&env(Some(6), ServerEvent::Pong {}));
        t.observe(&env(Some(8), ServerEvent::Pong {})); // 7 not seen yet
        t.observe(&env(Some(3), ServerEvent::Pong {})); // old: ignored
        assert_eq!(t.position(), Some(6));
        assert!(t.seen(8) && t.seen(6) && !t.seen(7));
        t.observe(&env(Some(7), ServerEvent::Pong {}));
        assert_eq!(t.position(), Some(8));
        t.observe(&env(Some(10), ServerEvent::Pong {}));
        // A resume's sync.complete vouches for everything up to its seq.
        t.observe(&env(
            None,
            ServerEvent::SyncComplete {
                seq: 9,
                replayed: 1,
            },
        ));
        assert_eq!(t.position(), Some(10));
    }

    #[test]
    fn envelope_reads_seq_beside_type_and_data() {
        let raw = r#"{"seq":12,"type":"user.online","data":{"user_id":"0190c7f4-8e3a-7b7e-9a4e-1a2b3c4d5e6f"}}"#;
        let e: Envelope = serde_json::from_str(raw).unwrap();
        assert_eq!(e.seq, Some(12));
        assert!(matches!(e.event, ServerEvent::UserOnline { .. }));
        let plain: Envelope = serde_json::from_str(r#"{"type":"pong","data":{}}"#).unwrap();
        assert_eq!(plain, env(None, ServerEvent::Pong {}));
        assert_eq!(
            serde_json::to_string(&plain).unwrap(),
            r#"{"type":"pong","data":{}}"#
        );
    }

    #[test]
    fn client_frames_use_type_and_data() {
        let raw = r#"{"type":"typing.start","data":{"conversation_id":"0190c7f4-8e3a-7b7e-9a4e-1a2b3c4d5e6f"}}"#;
        let ev: ClientEvent = serde_json::from_str(raw).unwrap();
        assert!(matches!(ev, ClientEvent::TypingStart { .. }));
        // SPEC: `data` is always an object, `{}` for ping and pong too.
        let ping: ClientEvent = serde_json::from_str(r#"{"type":"ping","data":{}}"#).unwrap();
        assert_eq!(ping, ClientEvent::Ping {});
        assert_eq!(
            serde_json::to_string(&ClientEvent::Ping {}).unwrap(),
            r#"{"type":"ping","data":{}}"#
        );
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
