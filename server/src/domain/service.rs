//! [`ChatService`]: every use case of the REST API and the WebSocket.

use std::collections::HashMap;
use std::sync::Mutex;
use std::time::{Duration, Instant};

use chat_protocol::rest::{
    self, LinkItem, Message, MessageContext, MessageType, Page, UserSummary,
};
use chat_protocol::ws::ServerEvent;
use chat_protocol::{ConversationId, MessageId, UserId};

use crate::auth::{identity, AuthUser, JwtKeys};
use crate::domain::delivery::DynBus;
use crate::domain::participants::{self, Participants};
use crate::domain::presence::{Departures, Presence};
use crate::error::{Error, Result};
use crate::media::Media;
use crate::model::{now, Cursor, Username};
use crate::push::Pusher;
use crate::ratelimit::{Action, RateLimiter};
use crate::store::{
    BatchSettings, Conversation, DynStore, GroupCommit, LoggedKind, MessageQuery, StoreError,
    StoredMessage, User,
};
use std::collections::HashSet;
use std::sync::Arc;

/// How long a provisioned user is trusted without touching the database again.
mod blocks;
mod heads;
mod presence;
mod push;
mod reads;
mod send;
#[cfg(test)]
mod tests;
use heads::HeadReader;
use presence::LastSeenWriter;

const PROVISION_TTL: Duration = Duration::from_secs(60);
/// Bound on the provisioning cache; it is cleared when full.
const PROVISION_CACHE_MAX: usize = 100_000;

/// Result of a send: the message and whether this call stored it (false = idempotent replay).
#[derive(Debug, Clone)]
pub struct Sent {
    pub message: Message,
    pub created: bool,
    /// The sender's event-log position of this send (a retry's is the position it got
    /// when it was first stored).
    pub seq: Option<u64>,
}

pub struct ChatService {
    store: DynStore,
    pusher: Pusher,
    bus: DynBus,
    limits: RateLimiter,
    presence: Arc<dyn Presence>,
    seen: Mutex<HashMap<UserId, (String, Instant)>>,
    media: Option<Arc<Media>>,
    last_seen: LastSeenWriter,
    departures: Departures,
    participants: Participants,
    heads: HeadReader,
    sends: GroupCommit,
}

fn page<T>(mut items: Vec<T>, limit: u32, cursor_of: impl Fn(&T) -> Cursor) -> Page<T> {
    let has_more = items.len() > limit as usize;
    items.truncate(limit as usize);
    let next_cursor = if has_more {
        items.last().map(|i| cursor_of(i).encode())
    } else {
        None
    };
    Page {
        data: items,
        next_cursor,
        has_more,
    }
}

impl ChatService {
    pub fn new(
        store: DynStore,
        bus: DynBus,
        presence: Arc<dyn Presence>,
        limits: RateLimiter,
        send_batching: BatchSettings,
    ) -> Self {
        ChatService {
            store: store.clone(),
            pusher: Pusher::disabled(),
            bus,
            limits,
            presence,
            seen: Mutex::new(HashMap::new()),
            media: None,
            last_seen: LastSeenWriter::start(store.clone()),
            departures: Departures::new(std::time::Duration::ZERO),
            participants: Participants::new(participants::DEFAULT_CAPACITY),
            heads: HeadReader::start(store.clone()),
            sends: GroupCommit::start(store.clone(), send_batching),
        }
    }

    /// How long a user whose last socket closed still counts as online
    /// (`CHAT_PRESENCE_GRACE_MS`; none by default here, capped at
    /// [`crate::domain::presence::MAX_GRACE`]).
    pub fn with_presence_grace(mut self, grace: std::time::Duration) -> Self {
        self.departures = Departures::new(grace);
        self
    }

    pub fn with_media(mut self, media: Arc<Media>) -> Self {
        self.media = Some(media);
        self
    }

    pub fn media(&self) -> Option<&Arc<Media>> {
        self.media.as_ref()
    }

    /// A message as clients see it: media keys replaced by signed, expiring URLs.
    async fn present(&self, m: StoredMessage) -> Message {
        match &self.media {
            Some(media) if !m.media.is_empty() => media.present(m).await,
            // Without media storage there is nothing to sign (and nothing stored to leak).
            _ => m.into_keyed(),
        }
    }

    async fn present_opt(&self, m: Option<StoredMessage>) -> Option<Message> {
        match m {
            Some(m) => Some(self.present(m).await),
            None => None,
        }
    }

    async fn present_all(&self, messages: Vec<StoredMessage>) -> Vec<Message> {
        let mut out = Vec::with_capacity(messages.len());
        for m in messages {
            out.push(self.present(m).await);
        }
        out
    }

    async fn present_page(&self, p: Page<StoredMessage>) -> Page<Message> {
        Page {
            data: self.present_all(p.data).await,
            next_cursor: p.next_cursor,
            has_more: p.has_more,
        }
    }

    pub fn with_pusher(mut self, pusher: Pusher) -> Self {
        self.pusher = pusher;
        self
    }

    pub fn store(&self) -> &DynStore {
        &self.store
    }

    pub fn limits(&self) -> &RateLimiter {
        &self.limits
    }

    pub fn presence(&self) -> &Arc<dyn Presence> {
        &self.presence
    }

    /// Verify a token and make sure its user exists (created on first sight).
    pub async fn authenticate(&self, keys: &JwtKeys, token: &str) -> Result<AuthUser> {
        let claims = keys.verify(token)?;
        let (id, username) = identity(&claims)?;
        self.provision(id, &username).await?;
        Ok(AuthUser { id, username })
    }

    async fn provision(&self, id: UserId, username: &Username) -> Result<()> {
        {
            let seen = self.seen.lock().unwrap_or_else(|p| p.into_inner());
            if let Some((name, at)) = seen.get(&id) {
                if name == username.as_str() && at.elapsed() < PROVISION_TTL {
                    return Ok(());
                }
            }
        }
        match self.store.upsert_user(id, username.as_str(), now()).await {
            Ok(_) => {}
            Err(StoreError::Conflict(_)) => {
                return Err(Error::Conflict(format!(
                    "username {username} belongs to another user"
                )))
            }
            Err(e) => return Err(e.into()),
        }
        let mut seen = self.seen.lock().unwrap_or_else(|p| p.into_inner());
        if seen.len() >= PROVISION_CACHE_MAX {
            seen.clear();
        }
        seen.insert(id, (username.as_str().to_string(), Instant::now()));
        Ok(())
    }

    fn summary(u: &User, online: &HashSet<UserId>) -> UserSummary {
        UserSummary {
            id: u.id,
            username: u.username.clone(),
            display_name: u.display_name.clone(),
            online: online.contains(&u.id),
            last_seen_at: u.last_seen_at,
        }
    }

    /// The conversation as `me` sees it, its last message already presented.
    fn view(
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

    async fn user_named(&self, raw: &str) -> Result<User> {
        let name = Username::parse(raw).map_err(|_| Error::NotFound("user"))?;
        self.store
            .user_by_username(name.as_str())
            .await?
            .ok_or(Error::NotFound("user"))
    }

    async fn ensure_not_blocked(&self, me: UserId, other: UserId) -> Result<()> {
        let (i_block, they_block) = self.store.block_status(me, other).await?;
        if i_block {
            return Err(Error::Blocked("you have blocked this user".into()));
        }
        if they_block {
            return Err(Error::Blocked("this user has blocked you".into()));
        }
        Ok(())
    }

    // ---- conversations ----------------------------------------------------------------

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
            let last_message = self.present_opt(v.last_message).await;
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
            Some(id) => self.present_opt(self.store.message(id).await?).await,
            None => None,
        };
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

    // ---- messages ---------------------------------------------------------------------

    /// History, newest first; with only `after`, the messages right after it, oldest first.
    pub async fn list_messages(
        &self,
        me: &AuthUser,
        conv: ConversationId,
        before: Option<Cursor>,
        after: Option<Cursor>,
        limit: u32,
    ) -> Result<Page<Message>> {
        self.limits.check(Action::GetMessages, me.id).await?;
        self.participant_conversation(me.id, conv).await?;
        let q = MessageQuery {
            before,
            after,
            types: None,
            limit: limit + 1,
            ascending: after.is_some() && before.is_none(),
        };
        let rows = self.store.list_messages(conv, &q).await?;
        Ok(self
            .present_page(page(rows, limit, StoredMessage::cursor))
            .await)
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
        self.limits.check(Action::GetMessages, me.id).await?;
        self.participant_conversation(me.id, conv).await?;
        let q = MessageQuery {
            before,
            after: None,
            types: Some(types),
            limit: limit + 1,
            ascending: false,
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
        let rows = self.store.list_links(conv, before, limit + 1).await?;
        let p = page(rows, limit, |(_, c)| *c);
        Ok(Page {
            data: p.data.into_iter().map(|(l, _)| l).collect(),
            next_cursor: p.next_cursor,
            has_more: p.has_more,
        })
    }

    /// The newest position in `me`'s event log.
    pub async fn event_head(&self, me: UserId) -> Result<u64> {
        Ok(self.heads.head(me).await?)
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
            };
            out.push((e.seq, event));
        }
        Ok(out)
    }

    pub async fn message(&self, me: &AuthUser, id: MessageId) -> Result<Message> {
        let m = self.visible_message(me, id).await?;
        Ok(self.present(m).await)
    }

    async fn visible_message(&self, me: &AuthUser, id: MessageId) -> Result<StoredMessage> {
        self.limits.check(Action::GetMessages, me.id).await?;
        match self.store.message(id).await? {
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
