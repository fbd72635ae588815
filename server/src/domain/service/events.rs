//! The per-user event log, read for `/chat/ws?since=` resumes.

use super::*;

impl ChatService {
    /// The newest position in `me`'s event log.
    pub async fn event_head(&self, me: UserId) -> Result<u64> {
        Ok(self.heads.get(me).await?.unwrap_or(0))
    }

    /// `me`'s events with `after < seq <= through`, oldest first, as the frames a live
    /// socket would have received (media URLs signed now).
    pub async fn events(
        &self,
        me: UserId,
        after: u64,
        through: u64,
        limit: u32,
    ) -> Result<Vec<(u64, ServerEvent)>> {
        let logged = self.store.events(me, after, through, limit).await?;
        let mut out = Vec::with_capacity(logged.len());
        for e in logged {
            let event = match e.kind {
                LoggedKind::Message(m) => ServerEvent::MessageNew {
                    message: self.present(m).await,
                },
                LoggedKind::ReadAck {
                    conversation_id,
                    up_to_message_id,
                    read_at,
                } => ServerEvent::MessageReadAck {
                    conversation_id,
                    up_to_message_id,
                    read_at,
                },
                LoggedKind::ReadUpdate {
                    conversation_id,
                    reader_id,
                    up_to_message_id,
                    read_at,
                } => ServerEvent::MessageReadUpdate {
                    conversation_id,
                    reader_id,
                    up_to_message_id,
                    read_at,
                },
                LoggedKind::Edited(m) => ServerEvent::MessageEdited {
                    message: self.present(m).await,
                },
                LoggedKind::Deleted {
                    conversation_id,
                    message_id,
                    scope,
                } => ServerEvent::MessageDeleted {
                    conversation_id,
                    message_id,
                    scope,
                },
                LoggedKind::Reaction {
                    conversation_id,
                    message_id,
                    emoji,
                    user_id,
                    added,
                } => ServerEvent::ReactionUpdated {
                    conversation_id,
                    message_id,
                    emoji,
                    user_id,
                    added,
                },
            };
            out.push((e.seq, event));
        }
        Ok(out)
    }
}
