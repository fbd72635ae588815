//! The store interface, split by concern: one supertrait each, [`Store`] over them all.
//!
//! Placement: [`Store`] keeps the lifecycle (backend name, migrate, ping, close, pool
//! stats); [`UserStore`] users and presence contacts; [`ConversationStore`] conversations
//! and unread counts; [`MessageStore`] sends (including [`MessageStore::send_context`]),
//! reads, mark read, the event log and links; [`BlockStore`] blocks (including
//! [`BlockStore::blocked_among`]); [`PushStore`] push subscriptions; [`AdminStore`] what
//! operators and `chatctl` use: migration status, rate-limit settings, purge, conversation
//! deletion, erasure, the media walk and stats. Through a [`DynStore`](super::DynStore)
//! (or an `S: Store` bound) every method is callable without importing the supertraits;
//! on a concrete backend (`SqliteStore`, `PostgresStore`) `use crate::store::prelude::*`.

use async_trait::async_trait;
use chat_protocol::rest::{BlockedUser, LinkItem, MediaItem, PushKind, PushSubscription};
use chat_protocol::{ConversationId, MessageId, UserId};
use chrono::{DateTime, Utc};

use super::{
    Change, Changed, Conversation, ConversationView, ErasedUser, InsertOutcome, LoggedEvent,
    MarkReadOutcome, MessageQuery, NewMessage, PoolStats, PurgeCount, PurgeScope, PurgedBatch,
    RateLimitSetting, SearchFound, SearchScan, SendContext, Stats, StoreError, StoreResult,
    StoredPush, User,
};
use crate::model::{Cursor, SearchCursor, SearchTerms, StoredMessage};

/// Everything chatd keeps, behind one interface: every concern plus the lifecycle.
#[async_trait]
pub trait Store:
    UserStore
    + ConversationStore
    + MessageStore
    + BlockStore
    + LifecycleStore
    + PushStore
    + AdminStore
    + Send
    + Sync
    + 'static
{
    /// Short name for logs and `readyz` (`sqlite`, `postgres`).
    fn backend(&self) -> &'static str;
    async fn migrate(&self) -> StoreResult<()>;
    /// Once the schema is in place (migrated here or by `chatctl`): open what the hot path
    /// should not open itself (PostgreSQL's send connections). Nothing by default.
    async fn ready(&self) {}
    async fn ping(&self) -> StoreResult<()>;
    async fn close(&self);
    /// Connection pools right now (for `/metrics`).
    fn pool_stats(&self) -> Vec<PoolStats>;
}

/// One of a user's contacts: (whose contact, the contact, their `last_seen_at`).
pub type Contact = (UserId, UserId, Option<DateTime<Utc>>);

/// Users and the audience of their presence.
#[async_trait]
pub trait UserStore: Send + Sync {
    /// Create the user or refresh its username and `last_seen_at`. A username held by a
    /// different id is a `Conflict`.
    async fn upsert_user(
        &self,
        id: UserId,
        username: &str,
        now: DateTime<Utc>,
    ) -> StoreResult<User>;
    async fn user_by_id(&self, id: UserId) -> StoreResult<Option<User>>;
    /// The usernames of those of `ids` that exist and are not erased: provisioning's
    /// read-only check that a known identity still stands.
    async fn live_usernames(&self, ids: &[UserId]) -> StoreResult<Vec<(UserId, String)>>;
    async fn user_by_username(&self, username: &str) -> StoreResult<Option<User>>;
    async fn list_users(&self, after_username: Option<&str>, limit: u32) -> StoreResult<Vec<User>>;
    /// Record `last_seen_at` for many users in one write (never moving one back; an erased
    /// account keeps none).
    async fn touch_last_seen(&self, seen: &[(UserId, DateTime<Utc>)]) -> StoreResult<()>;
    /// Users who share a conversation with at least one message with `me`, and with no
    /// block either way: the audience of `me`'s presence (SPEC "Privacy").
    /// (id, last_seen_at)
    async fn contacts(&self, me: UserId) -> StoreResult<Vec<(UserId, Option<DateTime<Utc>>)>> {
        Ok(self
            .contacts_of(&[me])
            .await?
            .into_iter()
            .map(|(_, id, seen)| (id, seen))
            .collect())
    }
    /// [`UserStore::contacts`] of several users in one read: (whose, id, last_seen_at).
    async fn contacts_of(&self, users: &[UserId]) -> StoreResult<Vec<Contact>>;
}

/// Conversations and their unread counts.
#[async_trait]
pub trait ConversationStore: Send + Sync {
    async fn conversation(&self, id: ConversationId) -> StoreResult<Option<Conversation>>;
    async fn conversation_between(&self, a: UserId, b: UserId)
        -> StoreResult<Option<Conversation>>;
    /// Insert; if the pair already has one (a concurrent create), return that instead.
    async fn create_conversation(&self, conv: &Conversation) -> StoreResult<Conversation>;
    /// The caller's list, newest activity first: hides conversations with users the caller
    /// blocked, and empty conversations the other side started. A last message the caller
    /// hid is left out (`last_message` None while `last_message_id` is set).
    async fn list_conversations(
        &self,
        me: UserId,
        before: Option<Cursor>,
        limit: u32,
    ) -> StoreResult<Vec<ConversationView>>;
    /// (conversation, unread) for every visible conversation with unread > 0.
    async fn unread_counts(&self, me: UserId) -> StoreResult<Vec<(ConversationId, u64)>>;
}

/// Messages: sending, reading, marking read, the event log and links.
#[async_trait]
pub trait MessageStore: Send + Sync {
    /// In one transaction: insert, bump last message and the receiver's unread count,
    /// record links. Same sender + temp_id returns the stored message untouched.
    async fn insert_message(&self, new: &NewMessage) -> StoreResult<InsertOutcome> {
        self.insert_messages(std::slice::from_ref(new))
            .await
            .pop()
            .unwrap_or_else(|| Err(StoreError::Other("empty batch result".into())))
    }
    /// Group commit: every send of `batch` as [`MessageStore::insert_message`] would store
    /// it, in one durable commit, with one outcome per send in the same order. Each send
    /// keeps its own result: a replay (same sender + temp_id, also twice inside the batch),
    /// an erased sender, a block or a vanished conversation fails or replays that send
    /// alone. Event-log positions are taken per user in batch order, without holes.
    async fn insert_messages(&self, batch: &[NewMessage]) -> Vec<StoreResult<InsertOutcome>>;
    /// What a send from `sender` into `conv` needs, in one read: `None` when `sender`
    /// takes no part in it; else the receiver, who blocks whom, and the id of a message
    /// `sender` already stored with `temp_id` (idempotent retries).
    async fn send_context(
        &self,
        sender: UserId,
        conv: ConversationId,
        temp_id: Option<&str>,
    ) -> StoreResult<Option<SendContext>>;
    async fn message(&self, id: MessageId) -> StoreResult<Option<StoredMessage>>;
    async fn message_by_temp_id(
        &self,
        sender: UserId,
        temp_id: &str,
    ) -> StoreResult<Option<StoredMessage>>;
    async fn list_messages(
        &self,
        conv: ConversationId,
        q: &MessageQuery,
    ) -> StoreResult<Vec<StoredMessage>>;
    /// Mark the reader's unread messages up to `up_to` (inclusive, all if `None`) read and
    /// recompute the reader's unread count from the messages themselves.
    async fn mark_read(
        &self,
        conv: ConversationId,
        reader: UserId,
        up_to: Option<Cursor>,
        now: DateTime<Utc>,
    ) -> StoreResult<MarkReadOutcome>;
    /// The newest position in `user`'s event log (0 when it is empty). Every event at or
    /// below it is committed, so a replay up to it has no hole.
    async fn event_head(&self, user: UserId) -> StoreResult<u64>;
    /// [`MessageStore::event_head`] of several users in one read (a reconnect storm's
    /// heads are read together); users without events are absent (their head is 0).
    async fn event_heads(&self, users: &[UserId]) -> StoreResult<Vec<(UserId, u64)>>;
    /// `user`'s events with `after < seq <= through`, oldest first, at most `limit`.
    /// Events of purged messages and deleted conversations are gone (positions are not
    /// reused, so the log has holes there).
    async fn events(
        &self,
        user: UserId,
        after: u64,
        through: u64,
        limit: u32,
    ) -> StoreResult<Vec<LoggedEvent>>;
    /// Where a stored message sits in its participants' event logs: (user, seq).
    async fn message_seqs(&self, id: MessageId) -> StoreResult<Vec<(UserId, u64)>>;
    /// Newest first, without the links of messages `viewer` hid.
    async fn list_links(
        &self,
        conv: ConversationId,
        viewer: UserId,
        before: Option<Cursor>,
        limit: u32,
    ) -> StoreResult<Vec<(LinkItem, Cursor)>>;
}

/// Edits, deletes and reactions (SPEC "Message lifecycle"). Each applied change is one
/// transaction that takes the event-log counters of everyone it tells (in user-id order,
/// as sends and reads do), so replays see it in order.
#[async_trait]
pub trait LifecycleStore: Send + Sync {
    /// The message, unless `viewer` hid it.
    async fn message_for(
        &self,
        id: MessageId,
        viewer: UserId,
    ) -> StoreResult<Option<StoredMessage>>;
    /// `viewer`'s messages matching every term of `q` (as word prefixes), newest first in
    /// `viewer`'s log order (then by time: history from before the log comes last): only in
    /// conversations `viewer` takes part in (`conversation`: only that one), never deleted
    /// or hidden ones; strictly after `before`; at most `limit`; found as `scan` says.
    async fn search(
        &self,
        viewer: UserId,
        q: &SearchTerms,
        conversation: Option<ConversationId>,
        before: Option<SearchCursor>,
        limit: u32,
        scan: SearchScan,
    ) -> StoreResult<SearchFound>;
    /// What testing one message of a [`SearchScan::Recent`] window costs against reading
    /// one match of [`SearchScan::Index`] on this database (measured: docs/benchmarks.md,
    /// sessions 13 and 15); the search weighs its two scans with it.
    fn search_window_row_cost(&self) -> f64;
    /// Apply `change` to message `id` at `now`; logged for both participants (a hide for
    /// its user only).
    async fn change_message(
        &self,
        id: MessageId,
        change: &Change<'_>,
        now: DateTime<Utc>,
    ) -> StoreResult<Changed>;
}

/// Blocks between users.
#[async_trait]
pub trait BlockStore: Send + Sync {
    /// true if a new block was recorded, false if it already existed.
    async fn block(
        &self,
        blocker: UserId,
        blocked: UserId,
        now: DateTime<Utc>,
    ) -> StoreResult<bool>;
    /// true if a block was removed.
    async fn unblock(&self, blocker: UserId, blocked: UserId) -> StoreResult<bool>;
    /// (a blocks b, b blocks a)
    async fn block_status(&self, a: UserId, b: UserId) -> StoreResult<(bool, bool)>;
    /// Newest first.
    async fn list_blocks(
        &self,
        blocker: UserId,
        before: Option<Cursor>,
        limit: u32,
    ) -> StoreResult<Vec<(BlockedUser, Cursor)>>;
    /// Those of `others` with a block between them and `me`, either way.
    async fn blocked_among(&self, me: UserId, others: &[UserId]) -> StoreResult<Vec<UserId>>;
}

/// Push subscriptions (devices and browsers).
#[async_trait]
pub trait PushStore: Send + Sync {
    /// Register (or refresh) a device/browser for `user`; same target twice is one row.
    async fn add_push_subscription(
        &self,
        user: UserId,
        kind: PushKind,
        target: &str,
        keys: Option<(&str, &str)>,
        now: DateTime<Utc>,
    ) -> StoreResult<PushSubscription>;
    async fn push_subscriptions(&self, user: UserId) -> StoreResult<Vec<StoredPush>>;
    /// true if the subscription existed and belonged to `user`.
    async fn delete_push_subscription(&self, user: UserId, id: uuid::Uuid) -> StoreResult<bool>;
}

/// Operations (`chatctl`): migrations, rate-limit settings, purge, erasure, stats.
#[async_trait]
pub trait AdminStore: Send + Sync {
    /// (version, description, applied) of every known migration.
    async fn migration_status(&self) -> StoreResult<Vec<(i64, String, bool)>>;
    async fn rate_limits(&self) -> StoreResult<Vec<(String, RateLimitSetting)>>;
    async fn set_rate_limit(&self, action: &str, setting: RateLimitSetting) -> StoreResult<()>;
    /// How many messages `scope` covers now, and the media they reference.
    async fn purge_count(&self, scope: PurgeScope) -> StoreResult<PurgeCount>;
    /// Delete up to `limit` messages of `scope` in one transaction, and recompute the
    /// last message, activity time and both unread counts of every conversation touched.
    /// Returns an empty batch when nothing is left.
    async fn purge_messages(&self, scope: PurgeScope, limit: u32) -> StoreResult<PurgedBatch>;
    /// Delete a conversation and whatever messages it still has; the media of those
    /// messages is returned so the caller can delete the objects. `None` if it did not exist.
    async fn delete_conversation(&self, id: ConversationId) -> StoreResult<Option<PurgedBatch>>;
    /// Turn the user into a tombstone: username `deleted-{id}`, `deleted_at` set, blocks
    /// either way and push subscriptions removed, conversations whose other side is
    /// erased too deleted. The user's messages go first, with `purge_messages(SentBy)`.
    async fn erase_user(&self, id: UserId, now: DateTime<Utc>) -> StoreResult<ErasedUser>;
    /// The media of messages with media, keyset-paged by message id: (media, next cursor).
    async fn media_page(
        &self,
        after: Option<MessageId>,
        limit: u32,
    ) -> StoreResult<(Vec<MediaItem>, Option<MessageId>)>;
    async fn stats(&self, now: DateTime<Utc>) -> StoreResult<Stats>;
    /// Whether the search index matches the messages: `None` when it does, else what is
    /// wrong (for `chatctl doctor`).
    async fn search_index_problem(&self) -> StoreResult<Option<String>>;
    /// Rebuild the search index from the messages.
    async fn rebuild_search_index(&self) -> StoreResult<()>;
}
