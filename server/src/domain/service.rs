//! [`ChatService`]: every use case of the REST API and the WebSocket, one file per
//! concern under `service/`: conversations, history (reading messages), send, reads
//! (unread counts, mark read), blocks, presence, push, events (the resume log) and coalesce
//! (reads connecting sockets make, batched).
//! This file holds the service itself, presenting (signing media) and provisioning.

use std::collections::HashMap;
use std::sync::Mutex;
use std::time::Duration;

use chrono::{DateTime, Utc};
use tokio::time::Instant;

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
use crate::model::{now, Cursor, PageCursor, Username};
use crate::push::Pusher;
use crate::ratelimit::{Action, RateLimiter};
use crate::store::{
    BatchSettings, Conversation, DynStore, GroupCommit, LoggedKind, MessageQuery, StoreError,
    StoredMessage, User,
};
use std::collections::HashSet;
use std::sync::Arc;

mod blocks;
mod coalesce;
mod conversations;
mod events;
mod history;
mod lifecycle;
mod presence;
mod push;
mod reads;
mod search;
mod send;
#[cfg(test)]
mod tests;
use coalesce::Coalesced;
use presence::LastSeenWriter;

/// How long a provisioned user is trusted without asking the database again.
const PROVISION_TTL: Duration = Duration::from_secs(60);
/// Bound on the provisioning cache; it is cleared when full.
const PROVISION_CACHE_MAX: usize = 100_000;

/// A contact and their `last_seen_at`.
type ContactSeen = (UserId, Option<DateTime<Utc>>);

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
    /// Event-log heads, read together by connecting sockets.
    heads: Coalesced<UserId, u64>,
    /// Live users' names, read together: provisioning's check that a known identity still
    /// stands (no write when it does).
    identities: Coalesced<UserId, String>,
    /// Presence contacts (id, last_seen_at), read together by connecting sockets.
    contacts: Arc<Coalesced<UserId, Vec<ContactSeen>>>,
    sends: GroupCommit,
    /// How long after sending a message may be edited or deleted for everyone.
    edit_window: Duration,
}

/// `CHAT_EDIT_WINDOW_SECS`'s default.
pub const DEFAULT_EDIT_WINDOW: Duration = Duration::from_secs(86_400);

fn page<T, C: PageCursor>(mut items: Vec<T>, limit: u32, cursor_of: impl Fn(&T) -> C) -> Page<T> {
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
            heads: Coalesced::on_store(&store, |store, users| async move {
                store.event_heads(&users).await
            }),
            identities: Coalesced::on_store(&store, |store, users| async move {
                store.live_usernames(&users).await
            }),
            contacts: Arc::new(Coalesced::on_store(&store, |store, users| async move {
                let mut by_user: HashMap<UserId, Vec<ContactSeen>> = HashMap::new();
                for (me, id, seen) in store.contacts_of(&users).await? {
                    by_user.entry(me).or_default().push((id, seen));
                }
                Ok(by_user.into_iter().collect())
            })),
            sends: GroupCommit::start(store.clone(), send_batching),
            edit_window: DEFAULT_EDIT_WINDOW,
        }
    }

    /// `CHAT_EDIT_WINDOW_SECS`.
    pub fn with_edit_window(mut self, window: Duration) -> Self {
        self.edit_window = window;
        self
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

    /// Make sure `id` exists as `username`. Known pairs are trusted for
    /// [`PROVISION_TTL`]; after that (or on a fresh instance) a read that many connecting
    /// sockets share checks the user still stands as it was, and only a new user, a rename
    /// or an erased account takes the upsert (which refuses the erased one).
    /// `last_seen_at` moves on each check, written in the background in batches.
    async fn provision(&self, id: UserId, username: &Username) -> Result<()> {
        {
            let seen = self.seen.lock().unwrap_or_else(|p| p.into_inner());
            if let Some((name, at)) = seen.get(&id) {
                if name == username.as_str() && at.elapsed() < PROVISION_TTL {
                    return Ok(());
                }
            }
        }
        if self.identities.get(id).await?.as_deref() == Some(username.as_str()) {
            let last_seen = self.last_seen.clone();
            tokio::spawn(async move { last_seen.record(id, now()).await });
            self.trust(id, username);
            return Ok(());
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
        self.trust(id, username);
        Ok(())
    }

    fn trust(&self, id: UserId, username: &Username) {
        let mut seen = self.seen.lock().unwrap_or_else(|p| p.into_inner());
        if seen.len() >= PROVISION_CACHE_MAX {
            seen.clear();
        }
        seen.insert(id, (username.as_str().to_string(), Instant::now()));
    }
}
