//! Reading messages: pages, galleries, links, one message and its context window.

use super::*;

impl ChatService {
    /// History, newest first; with only `after`, the messages right after it, oldest first.
    pub async fn list_messages(
        &self,
        me: &AuthUser,
        conv: ConversationId,
        before: Option<Cursor>,
        after: Option<Cursor>,
        limit: u32,
    ) -> Result<Page<Message>> {
        let q = MessageQuery {
            before,
            after,
            types: None,
            limit,
            ascending: after.is_some() && before.is_none(),
            viewer: Some(me.id),
        };
        self.message_page(me, conv, q).await
    }

    /// Image/video (`media`) or file (`files`) messages, newest first.
    pub async fn gallery(
        &self,
        me: &AuthUser,
        conv: ConversationId,
        types: Vec<MessageType>,
        before: Option<Cursor>,
        limit: u32,
    ) -> Result<Page<Message>> {
        let q = MessageQuery {
            before,
            after: None,
            types: Some(types),
            limit,
            ascending: false,
            viewer: Some(me.id),
        };
        self.message_page(me, conv, q).await
    }

    /// One page of `conv`'s messages for a participant: `q.limit` of them, presented,
    /// with a cursor when there are more.
    async fn message_page(
        &self,
        me: &AuthUser,
        conv: ConversationId,
        q: MessageQuery,
    ) -> Result<Page<Message>> {
        self.limits.check(Action::GetMessages, me.id).await?;
        self.participant_conversation(me.id, conv).await?;
        let limit = q.limit;
        let q = MessageQuery {
            limit: limit + 1,
            ..q
        };
        let rows = self.store.list_messages(conv, &q).await?;
        Ok(self
            .present_page(page(rows, limit, StoredMessage::cursor))
            .await)
    }

    pub async fn links(
        &self,
        me: &AuthUser,
        conv: ConversationId,
        before: Option<Cursor>,
        limit: u32,
    ) -> Result<Page<LinkItem>> {
        self.limits.check(Action::GetMessages, me.id).await?;
        self.participant_conversation(me.id, conv).await?;
        let rows = self
            .store
            .list_links(conv, me.id, before, limit + 1)
            .await?;
        let p = page(rows, limit, |(_, c)| *c);
        Ok(Page {
            data: p.data.into_iter().map(|(l, _)| l).collect(),
            next_cursor: p.next_cursor,
            has_more: p.has_more,
        })
    }

    pub async fn message(&self, me: &AuthUser, id: MessageId) -> Result<Message> {
        let m = self.visible_message(me, id).await?;
        Ok(self.present(m).await)
    }

    pub(super) async fn visible_message(
        &self,
        me: &AuthUser,
        id: MessageId,
    ) -> Result<StoredMessage> {
        self.limits.check(Action::GetMessages, me.id).await?;
        self.seen_message(me, id).await
    }

    /// A message `me` takes part in and has not hidden (else 404), with no rate charged.
    pub(super) async fn seen_message(&self, me: &AuthUser, id: MessageId) -> Result<StoredMessage> {
        match self.store.message_for(id, me.id).await? {
            Some(m) if m.sender_id == me.id || m.receiver_id == me.id => Ok(m),
            _ => Err(Error::NotFound("message")),
        }
    }

    /// `before`/`after` messages around `id`, oldest first.
    pub async fn context(
        &self,
        me: &AuthUser,
        id: MessageId,
        before: u32,
        after: u32,
    ) -> Result<MessageContext> {
        let target = self.visible_message(me, id).await?;
        let at = target.cursor();
        let conv = target.conversation_id;
        let mut older = self
            .store
            .list_messages(
                conv,
                &MessageQuery {
                    before: Some(at),
                    limit: before + 1,
                    viewer: Some(me.id),
                    ..Default::default()
                },
            )
            .await?;
        let mut newer = self
            .store
            .list_messages(
                conv,
                &MessageQuery {
                    after: Some(at),
                    limit: after + 1,
                    ascending: true,
                    viewer: Some(me.id),
                    ..Default::default()
                },
            )
            .await?;
        let has_more_before = older.len() > before as usize;
        let has_more_after = newer.len() > after as usize;
        older.truncate(before as usize);
        newer.truncate(after as usize);
        older.reverse();
        let mut data = older;
        data.push(target);
        data.extend(newer);
        let before_cursor = data.first().map(|m| m.cursor().encode());
        let after_cursor = data.last().map(|m| m.cursor().encode());
        let data = self.present_all(data).await;
        Ok(MessageContext {
            target_id: id,
            data,
            has_more_before,
            has_more_after,
            before_cursor,
            after_cursor,
        })
    }
}
