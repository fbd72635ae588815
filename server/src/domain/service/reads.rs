//! Reading: unread counts and marking messages read, with the receipts both sides hear.

use chat_protocol::rest::{ConversationUnread, MarkReadResponse, UnreadCount};
use chat_protocol::ws::ServerEvent;
use chat_protocol::{ConversationId, MessageId};

use super::ChatService;
use crate::auth::AuthUser;
use crate::domain::delivery::Delivery;
use crate::error::{Error, Result};
use crate::model::now;
use crate::ratelimit::Action;

impl ChatService {
    pub async fn unread_count(&self, me: &AuthUser) -> Result<UnreadCount> {
        self.limits.check(Action::GetConversations, me.id).await?;
        let rows = self.store.unread_counts(me.id).await?;
        Ok(UnreadCount {
            total: rows.iter().map(|(_, n)| n).sum(),
            conversations: rows
                .into_iter()
                .map(|(conversation_id, unread)| ConversationUnread {
                    conversation_id,
                    unread,
                })
                .collect(),
        })
    }

    /// Mark the caller's messages in `conv` read, all or up to one message.
    pub async fn mark_read(
        &self,
        me: &AuthUser,
        conv: ConversationId,
        up_to: Option<MessageId>,
    ) -> Result<MarkReadResponse> {
        // Before the lookup: a foreign or unknown id costs the same as one's own.
        self.limits.check(Action::MarkRead, me.id).await?;
        let conversation = self.participant_conversation(me.id, conv).await?;
        let up_to_cursor = match up_to {
            Some(id) => match self.store.message(id).await? {
                Some(m) if m.conversation_id == conv => Some(m.cursor()),
                _ => return Err(Error::NotFound("message")),
            },
            None => None,
        };
        let read_at = now();
        let out = self
            .store
            .mark_read(conv, me.id, up_to_cursor, read_at)
            .await?;
        let up_to_message_id = out.up_to.or(up_to);
        // Both are in the event logs when something was marked (`out.seqs`); an ack of
        // nothing new is live only.
        self.bus
            .publish(
                Delivery::to(
                    vec![me.id],
                    ServerEvent::MessageReadAck {
                        conversation_id: conv,
                        up_to_message_id,
                        read_at,
                    },
                )
                .with_seqs(out.seqs.map(|s| vec![s.reader]).unwrap_or_default()),
            )
            .await;
        // Nothing logged for the other side means a block stands between them: the
        // receipt does not cross it (SPEC "Privacy").
        if let Some(other_seq) = out.seqs.and_then(|s| s.other) {
            self.bus
                .publish(
                    Delivery::to(
                        vec![conversation.other(me.id)],
                        ServerEvent::MessageReadUpdate {
                            conversation_id: conv,
                            reader_id: me.id,
                            up_to_message_id,
                            read_at,
                        },
                    )
                    .with_seqs(vec![other_seq]),
                )
                .await;
        }
        Ok(MarkReadResponse {
            conversation_id: conv,
            marked: out.marked,
            up_to_message_id,
            read_at,
            unread_count: out.unread_left,
        })
    }
}
