//! Conversations: the list, get-or-create by username, and who may see one.

use super::*;

impl ChatService {
    pub(super) fn summary(u: &User, online: &HashSet<UserId>) -> UserSummary {
        UserSummary {
            id: u.id,
            username: u.username.clone(),
            display_name: u.display_name.clone(),
            online: online.contains(&u.id),
            last_seen_at: u.last_seen_at,
        }
    }

    /// The conversation as `me` sees it, its last message already presented.
    pub(super) fn view(
        me: UserId,
        conversation: &Conversation,
        other: &User,
        last_message: Option<Message>,
        online: &HashSet<UserId>,
    ) -> rest::Conversation {
        rest::Conversation {
            id: conversation.id,
            unread_count: conversation.unread_for(me),
            last_message_at: conversation.last_message_at,
            created_at: conversation.created_at,
            other_user: Self::summary(other, online),
            last_message,
        }
    }

    /// The conversation, if `me` takes part in it; otherwise NotFound (no existence leak).
    pub async fn participant_conversation(
        &self,
        me: UserId,
        id: ConversationId,
    ) -> Result<Conversation> {
        match self.store.conversation(id).await? {
            Some(c) if c.has_participant(me) => Ok(c),
            _ => Err(Error::NotFound("conversation")),
        }
    }

    pub(super) async fn user_named(&self, raw: &str) -> Result<User> {
        let name = Username::parse(raw).map_err(|_| Error::NotFound("user"))?;
        self.store
            .user_by_username(name.as_str())
            .await?
            .ok_or(Error::NotFound("user"))
    }

    pub(super) async fn ensure_not_blocked(&self, me: UserId, other: UserId) -> Result<()> {
        let (i_block, they_block) = self.store.block_status(me, other).await?;
        if i_block {
            return Err(Error::Blocked("you have blocked this user".into()));
        }
        if they_block {
            return Err(Error::Blocked("this user has blocked you".into()));
        }
        Ok(())
    }

    pub async fn list_conversations(
        &self,
        me: &AuthUser,
        before: Option<Cursor>,
        limit: u32,
    ) -> Result<Page<rest::Conversation>> {
        self.limits.check(Action::GetConversations, me.id).await?;
        let rows = self
            .store
            .list_conversations(me.id, before, limit + 1)
            .await?;
        for v in &rows {
            let c = &v.conversation;
            self.participants.remember(c.id, c.user1_id, c.user2_id);
        }
        let p = page(rows, limit, |v| v.conversation.cursor());
        // SPEC "Privacy": presence only across a conversation with a message in it and
        // no block either way.
        let others: Vec<UserId> = p
            .data
            .iter()
            .filter(|v| v.conversation.last_message_id.is_some())
            .map(|v| v.other.id)
            .collect();
        let blocked: HashSet<UserId> = self
            .store
            .blocked_among(me.id, &others)
            .await?
            .into_iter()
            .collect();
        let visible: Vec<UserId> = others
            .into_iter()
            .filter(|u| !blocked.contains(u))
            .collect();
        let online = self.presence.online(&visible).await;
        let mut data = Vec::with_capacity(p.data.len());
        for mut v in p.data {
            if !visible.contains(&v.other.id) {
                v.other.last_seen_at = None;
            }
            let last = match v.last_message {
                // The caller hid the last message: the newest one they still see.
                None if v.conversation.last_message_id.is_some() => {
                    self.newest_visible(v.conversation.id, me.id).await?
                }
                m => m,
            };
            let last_message = self.present_opt(last).await;
            data.push(Self::view(
                me.id,
                &v.conversation,
                &v.other,
                last_message,
                &online,
            ));
        }
        Ok(Page {
            data,
            next_cursor: p.next_cursor,
            has_more: p.has_more,
        })
    }

    /// Get-or-create the 1:1 conversation with `username`. `true` when created now.
    pub async fn conversation_with(
        &self,
        me: &AuthUser,
        username: &str,
    ) -> Result<(rest::Conversation, bool)> {
        // Counted before the lookup: probing unknown names costs the same as known ones.
        self.limits.check(Action::Lookup, me.id).await?;
        let other = self.user_named(username).await?;
        if other.id == me.id {
            return Err(Error::SelfAction(
                "you cannot start a conversation with yourself".into(),
            ));
        }
        self.ensure_not_blocked(me.id, other.id).await?;
        let (conv, created) = match self.store.conversation_between(me.id, other.id).await? {
            Some(c) => (c, false),
            None => {
                // Only creating counts against the limit; reopening a chat is free.
                self.limits.check(Action::CreateConversation, me.id).await?;
                let fresh = Conversation::between(me.id, other.id, now());
                let stored = self.store.create_conversation(&fresh).await?;
                let created = stored.id == fresh.id;
                (stored, created)
            }
        };
        // The first send in it needs no read of its own (participants never change).
        self.participants
            .remember(conv.id, conv.user1_id, conv.user2_id);
        let last_message = match conv.last_message_id {
            Some(id) => match self.store.message_for(id, me.id).await? {
                Some(m) => Some(m),
                None => self.newest_visible(conv.id, me.id).await?,
            },
            None => None,
        };
        let last_message = self.present_opt(last_message).await;
        // SPEC "Privacy": opening an empty conversation must not let anyone watch the
        // other's presence (blocks were refused above).
        let mut other = other;
        let online = if conv.last_message_id.is_some() {
            self.presence.online(&[other.id]).await
        } else {
            other.last_seen_at = None;
            HashSet::new()
        };
        Ok((
            Self::view(me.id, &conv, &other, last_message, &online),
            created,
        ))
    }

    /// The newest message of `conv` that `viewer` has not hidden.
    async fn newest_visible(
        &self,
        conv: ConversationId,
        viewer: UserId,
    ) -> Result<Option<StoredMessage>> {
        let q = MessageQuery {
            limit: 1,
            viewer: Some(viewer),
            ..Default::default()
        };
        Ok(self.store.list_messages(conv, &q).await?.pop())
    }
}
