//! Persistence: the [`Store`] trait and one implementation per database.
//!
//! Row types stay private to each implementation; the trait speaks in domain values.
//! The same conformance suite (`server/tests/store_conformance.rs`) runs against both.

mod group_commit;
mod postgres;
mod sqlite;

use std::sync::Arc;

use async_trait::async_trait;
use chat_protocol::rest::{
    BlockedUser, LinkItem, MediaItem, Message, MessageType, PushKind, PushSubscription,
};
use chat_protocol::{ConversationId, MessageId, UserId};
use chrono::{DateTime, Utc};

use crate::domain::types::Cursor;

pub use group_commit::{BatchSettings, GroupCommit};
pub use postgres::PostgresStore;
pub use sqlite::SqliteStore;

#[derive(Debug, Clone, thiserror::Error)]
pub enum StoreError {
    #[error("not found")]
    NotFound,
    /// The user was erased by an operator (`chatctl purge user`); its tokens are refused.
    #[error("user erased")]
    Erased,
    #[error("conflict: {0}")]
    Conflict(String),
    /// A block between sender and receiver was stored before the send committed.
    #[error("blocked")]
    Blocked,
    #[error("database unavailable: {0}")]
    Unavailable(String),
    #[error("database error: {0}")]
    Other(String),
}

impl From<sqlx::Error> for StoreError {
    fn from(e: sqlx::Error) -> Self {
        match e {
            sqlx::Error::RowNotFound => StoreError::NotFound,
            sqlx::Error::PoolTimedOut | sqlx::Error::PoolClosed | sqlx::Error::Io(_) => {
                StoreError::Unavailable(e.to_string())
            }
            // PostgreSQL going away: connection exceptions (08…) and operator
            // intervention (57P01 admin shutdown, 57P02 crash shutdown, 57P03 starting).
            sqlx::Error::Database(ref db)
                if db
                    .code()
                    .is_some_and(|c| c.starts_with("08") || c.starts_with("57P")) =>
            {
                StoreError::Unavailable(db.message().to_string())
            }
            sqlx::Error::Database(ref db) if db.is_unique_violation() => {
                StoreError::Conflict(db.message().to_string())
            }
            // What it refers to is gone (say, a conversation purged while a send ran).
            sqlx::Error::Database(ref db) if db.is_foreign_key_violation() => StoreError::NotFound,
            other => StoreError::Other(other.to_string()),
        }
    }
}

impl From<sqlx::migrate::MigrateError> for StoreError {
    fn from(e: sqlx::migrate::MigrateError) -> Self {
        StoreError::Other(format!("migration failed: {e}"))
    }
}

pub type StoreResult<T> = Result<T, StoreError>;

#[derive(Debug, Clone, PartialEq)]
pub struct User {
    pub id: UserId,
    pub username: String,
    pub display_name: Option<String>,
    pub created_at: DateTime<Utc>,
    pub last_seen_at: Option<DateTime<Utc>>,
}

#[derive(Debug, Clone, PartialEq)]
pub struct Conversation {
    pub id: ConversationId,
    /// The smaller of the two user ids.
    pub user1_id: UserId,
    pub user2_id: UserId,
    pub created_by: UserId,
    pub last_message_id: Option<MessageId>,
    pub last_message_at: Option<DateTime<Utc>>,
    pub activity_at: DateTime<Utc>,
    pub user1_unread: u64,
    pub user2_unread: u64,
    pub created_at: DateTime<Utc>,
}

/// Two users as a conversation stores them: the smaller id first.
pub fn ordered_pair(a: UserId, b: UserId) -> (UserId, UserId) {
    if a < b {
        (a, b)
    } else {
        (b, a)
    }
}

impl Conversation {
    /// A new, empty conversation between `created_by` and `other`, created `at`.
    pub fn between(created_by: UserId, other: UserId, at: DateTime<Utc>) -> Self {
        let (user1_id, user2_id) = ordered_pair(created_by, other);
        Conversation {
            id: ConversationId::new(),
            user1_id,
            user2_id,
            created_by,
            last_message_id: None,
            last_message_at: None,
            activity_at: at,
            user1_unread: 0,
            user2_unread: 0,
            created_at: at,
        }
    }

    pub fn has_participant(&self, user: UserId) -> bool {
        self.user1_id == user || self.user2_id == user
    }

    /// The participant that is not `me`.
    pub fn other(&self, me: UserId) -> UserId {
        if self.user1_id == me {
            self.user2_id
        } else {
            self.user1_id
        }
    }

    pub fn unread_for(&self, me: UserId) -> u64 {
        if self.user1_id == me {
            self.user1_unread
        } else {
            self.user2_unread
        }
    }

    pub fn cursor(&self) -> Cursor {
        Cursor::new(self.activity_at, self.id.0)
    }
}

/// A conversation as one participant sees it in their list.
#[derive(Debug, Clone, PartialEq)]
pub struct ConversationView {
    pub conversation: Conversation,
    pub other: User,
    pub last_message: Option<Message>,
}

/// What to insert when sending.
#[derive(Debug, Clone)]
pub struct NewMessage {
    pub message: Message,
    /// URLs found in the text, recorded in the same transaction.
    pub links: Vec<String>,
}

/// See [`Store::send_context`].
#[derive(Debug, Clone, PartialEq)]
pub struct SendContext {
    pub receiver: UserId,
    /// The sender blocks the receiver.
    pub sender_blocks: bool,
    /// The receiver blocks the sender.
    pub receiver_blocks: bool,
    pub existing: Option<MessageId>,
}

/// Shared by both backends (numbered parameters work in both): $1 sender, $2
/// conversation, $3 temp_id or NULL.
pub(crate) const SEND_CONTEXT_SQL: &str = "
    SELECT x.other,
           EXISTS (SELECT 1 FROM blocks b WHERE b.blocker_id = $1 AND b.blocked_id = x.other)
               AS sender_blocks,
           EXISTS (SELECT 1 FROM blocks b WHERE b.blocker_id = x.other AND b.blocked_id = $1)
               AS receiver_blocks,
           (SELECT m.id FROM messages m WHERE m.sender_id = $1 AND m.temp_id = $3) AS existing
    FROM (SELECT CASE WHEN c.user1_id = $1 THEN c.user2_id ELSE c.user1_id END AS other
          FROM conversations c
          WHERE c.id = $2 AND (c.user1_id = $1 OR c.user2_id = $1)) x";

/// Where one stored send landed in the two participants' event logs.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SendSeqs {
    pub sender: u64,
    pub receiver: u64,
}

/// Shared by both backends: $1 user, $2 after, $3 through, $4 limit. The messages of a
/// user's log: those they sent (at `sender_seq`) and received (at `receiver_seq`), each
/// side read in position order from its own index.
pub(crate) fn logged_messages_sql(message_cols: &str) -> String {
    format!(
        "SELECT * FROM (SELECT m.sender_seq AS e_seq, {message_cols} FROM messages m
                        WHERE m.sender_id = $1 AND m.sender_seq > $2 AND m.sender_seq <= $3
                        ORDER BY m.sender_seq LIMIT $4) s
         UNION ALL
         SELECT * FROM (SELECT m.receiver_seq AS e_seq, {message_cols} FROM messages m
                        WHERE m.receiver_id = $1 AND m.receiver_seq > $2 AND m.receiver_seq <= $3
                        ORDER BY m.receiver_seq LIMIT $4) r"
    )
}

/// Shared by both backends, same parameters: the read events of a user's log. Those of a
/// deleted conversation are skipped (its messages are gone with it).
pub(crate) const LOGGED_READS_SQL: &str = "
    SELECT e.seq AS e_seq, e.kind AS e_kind, e.conversation_id AS e_conversation_id,
           e.reader_id AS e_reader_id, e.up_to_message_id AS e_up_to, e.read_at AS e_read_at
    FROM read_events e
    WHERE e.user_id = $1 AND e.seq > $2 AND e.seq <= $3
      AND EXISTS (SELECT 1 FROM conversations c WHERE c.id = e.conversation_id)
    ORDER BY e.seq
    LIMIT $4";

/// The first `limit` events of two position-ordered sources, in position order.
pub(crate) fn first_events(
    mut a: Vec<LoggedEvent>,
    b: Vec<LoggedEvent>,
    limit: u32,
) -> Vec<LoggedEvent> {
    a.extend(b);
    a.sort_by_key(|e| e.seq);
    a.truncate(limit as usize);
    a
}

/// A stored event position (positive), checked.
pub(crate) fn seq_of(v: Option<i64>) -> StoreResult<u64> {
    v.filter(|s| *s > 0)
        .map(|s| s as u64)
        .ok_or_else(|| StoreError::Other("event position missing".into()))
}

/// The same error for every send of a batch that failed as a whole.
pub(crate) fn fail_all(e: &StoreError, sends: usize) -> Vec<StoreResult<InsertOutcome>> {
    (0..sends).map(|_| Err(e.clone())).collect()
}

/// Shared by both backends: $1 sender, $2 receiver. Why a send stored nothing: the sender
/// was erased, or a block stands between the two.
pub(crate) const UNSTORED_SQL: &str = "
    SELECT EXISTS (SELECT 1 FROM users WHERE id = $1 AND deleted_at IS NOT NULL) AS erased,
           EXISTS (SELECT 1 FROM blocks b
                   WHERE (b.blocker_id = $1 AND b.blocked_id = $2)
                      OR (b.blocker_id = $2 AND b.blocked_id = $1)) AS blocked";

/// The outcome of a send that stored nothing, from [`UNSTORED_SQL`]'s answer: erased,
/// blocked, a replay of the message stored earlier under its temp_id, or a conflict.
pub(crate) async fn unstored_outcome<S: Store + ?Sized>(
    store: &S,
    m: &Message,
    erased: bool,
    blocked: bool,
) -> StoreResult<InsertOutcome> {
    if erased {
        return Err(StoreError::Erased);
    }
    if let Some(t) = &m.temp_id {
        if let Some(existing) = store.message_by_temp_id(m.sender_id, t).await? {
            return Ok(InsertOutcome::Existing(existing));
        }
    }
    if blocked {
        return Err(StoreError::Blocked);
    }
    Err(StoreError::Conflict("message id already exists".into()))
}

#[derive(Debug, Clone, PartialEq)]
pub enum InsertOutcome {
    Created(Message, SendSeqs),
    /// The sender already stored a message with this `temp_id`; nothing was written.
    Existing(Message),
}

/// Which slice of a conversation's messages to read.
#[derive(Debug, Clone, Default)]
pub struct MessageQuery {
    /// Only messages strictly older than this.
    pub before: Option<Cursor>,
    /// Only messages strictly newer than this.
    pub after: Option<Cursor>,
    /// Only these types (galleries); `None` = all.
    pub types: Option<Vec<MessageType>>,
    pub limit: u32,
    /// Oldest first instead of newest first.
    pub ascending: bool,
}

#[derive(Debug, Clone, PartialEq)]
pub struct MarkReadOutcome {
    pub marked: u64,
    /// Newest message among those now read, if any.
    pub up_to: Option<MessageId>,
    pub unread_left: u64,
    /// When something was marked: the reader's `read_ack` and the other side's
    /// `read_update` positions in their event logs.
    pub seqs: Option<ReadSeqs>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ReadSeqs {
    pub reader: u64,
    /// `None` when a block stands between the two (nothing is logged for the other).
    pub other: Option<u64>,
}

/// `$1` and `$2` have a block between them, either way (one boolean row, both backends).
pub(crate) const BLOCKED_EITHER_WAY_SQL: &str = "SELECT EXISTS (SELECT 1 FROM blocks
     WHERE (blocker_id = $1 AND blocked_id = $2) OR (blocker_id = $2 AND blocked_id = $1))";

impl LoggedKind {
    /// A `read_events` row (`kind` is `read_ack` or `read_update`), in both backends.
    pub(crate) fn read(
        kind: &str,
        conversation_id: ConversationId,
        reader_id: UserId,
        up_to_message_id: MessageId,
        read_at: DateTime<Utc>,
    ) -> Self {
        let up_to_message_id = Some(up_to_message_id);
        if kind == "read_ack" {
            LoggedKind::ReadAck {
                conversation_id,
                up_to_message_id,
                read_at,
            }
        } else {
            LoggedKind::ReadUpdate {
                conversation_id,
                reader_id,
                up_to_message_id,
                read_at,
            }
        }
    }
}

/// One entry of a user's event log (see `/chat/ws?since=`), as stored.
#[derive(Debug, Clone, PartialEq)]
pub struct LoggedEvent {
    pub seq: u64,
    pub kind: LoggedKind,
}

#[derive(Debug, Clone, PartialEq)]
pub enum LoggedKind {
    /// A message the user sent or received.
    Message(Message),
    /// The user read the conversation up to a message.
    ReadAck {
        conversation_id: ConversationId,
        up_to_message_id: Option<MessageId>,
        read_at: DateTime<Utc>,
    },
    /// The other side read the user's messages up to one.
    ReadUpdate {
        conversation_id: ConversationId,
        reader_id: UserId,
        up_to_message_id: Option<MessageId>,
        read_at: DateTime<Utc>,
    },
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RateLimitSetting {
    pub max_requests: u32,
    pub period_seconds: u32,
}

/// A push subscription with its Web Push keys (never sent back to clients).
#[derive(Debug, Clone, PartialEq)]
pub struct StoredPush {
    pub subscription: PushSubscription,
    pub p256dh: Option<String>,
    pub auth: Option<String>,
}

/// Which messages a purge removes.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum PurgeScope {
    /// Retention: messages created before `before`, optionally in one conversation.
    OlderThan {
        before: DateTime<Utc>,
        conversation: Option<ConversationId>,
    },
    /// Every message of one conversation.
    Conversation(ConversationId),
    /// Every message a user sent.
    SentBy(UserId),
}

/// What a purge would remove (dry run) or removed.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct PurgeCount {
    pub messages: u64,
    /// Media objects (originals and thumbnails) those messages reference.
    pub media_objects: u64,
    pub media_bytes: u64,
}

/// One batch of deleted messages.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct PurgedBatch {
    pub messages: u64,
    /// The media of the deleted messages (object keys in `url` / `thumbnail_url`).
    pub media: Vec<MediaItem>,
}

/// What erasing a user removed besides their messages.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ErasedUser {
    pub blocks: u64,
    pub push_subscriptions: u64,
    /// Conversations deleted because both participants are now erased.
    pub conversations: u64,
}

/// Counters for `chatctl stats`.
#[derive(Debug, Clone, Default, PartialEq, Eq, serde::Serialize)]
pub struct Stats {
    pub users: u64,
    pub erased_users: u64,
    pub conversations: u64,
    /// By message type (`text`, `image`, `video`, `file`).
    pub messages_by_type: std::collections::BTreeMap<String, u64>,
    pub media_objects: u64,
    pub media_bytes: u64,
    pub messages_last_hour: u64,
}

pub type DynStore = Arc<dyn Store>;

/// One connection pool's state.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PoolStats {
    pub name: &'static str,
    /// Open connections (idle + in use).
    pub size: usize,
    pub idle: usize,
    pub max: u32,
}

impl PoolStats {
    pub fn of<DB: sqlx::Database>(name: &'static str, pool: &sqlx::Pool<DB>) -> Self {
        PoolStats {
            name,
            size: pool.size() as usize,
            idle: pool.num_idle(),
            max: pool.options().get_max_connections(),
        }
    }
}

/// Everything chatd keeps, behind one interface.
#[async_trait]
pub trait Store: Send + Sync + 'static {
    /// Short name for logs and `readyz` (`sqlite`, `postgres`).
    fn backend(&self) -> &'static str;
    async fn migrate(&self) -> StoreResult<()>;
    /// (version, description, applied) of every known migration.
    async fn migration_status(&self) -> StoreResult<Vec<(i64, String, bool)>>;
    async fn ping(&self) -> StoreResult<()>;
    async fn close(&self);
    /// Connection pools right now (for `/metrics`).
    fn pool_stats(&self) -> Vec<PoolStats>;

    // users
    /// Create the user or refresh its username and `last_seen_at`. A username held by a
    /// different id is a `Conflict`.
    async fn upsert_user(
        &self,
        id: UserId,
        username: &str,
        now: DateTime<Utc>,
    ) -> StoreResult<User>;
    async fn user_by_id(&self, id: UserId) -> StoreResult<Option<User>>;
    async fn user_by_username(&self, username: &str) -> StoreResult<Option<User>>;
    async fn list_users(&self, after_username: Option<&str>, limit: u32) -> StoreResult<Vec<User>>;
    /// Record `last_seen_at` for many users in one write (never moving one back).
    async fn touch_last_seen(&self, seen: &[(UserId, DateTime<Utc>)]) -> StoreResult<()>;
    /// Users who share a conversation with at least one message with `me`, and with no
    /// block either way: the audience of `me`'s presence (SPEC "Privacy").
    /// (id, last_seen_at)
    async fn contacts(&self, me: UserId) -> StoreResult<Vec<(UserId, Option<DateTime<Utc>>)>>;
    /// Those of `others` with a block between them and `me`, either way.
    async fn blocked_among(&self, me: UserId, others: &[UserId]) -> StoreResult<Vec<UserId>>;

    // conversations
    async fn conversation(&self, id: ConversationId) -> StoreResult<Option<Conversation>>;
    async fn conversation_between(&self, a: UserId, b: UserId)
        -> StoreResult<Option<Conversation>>;
    /// Insert; if the pair already has one (a concurrent create), return that instead.
    async fn create_conversation(&self, conv: &Conversation) -> StoreResult<Conversation>;
    /// The caller's list, newest activity first: hides conversations with users the caller
    /// blocked, and empty conversations the other side started.
    async fn list_conversations(
        &self,
        me: UserId,
        before: Option<Cursor>,
        limit: u32,
    ) -> StoreResult<Vec<ConversationView>>;
    /// (conversation, unread) for every visible conversation with unread > 0.
    async fn unread_counts(&self, me: UserId) -> StoreResult<Vec<(ConversationId, u64)>>;

    // messages
    /// In one transaction: insert, bump last message and the receiver's unread count,
    /// record links. Same sender + temp_id returns the stored message untouched.
    async fn insert_message(&self, new: &NewMessage) -> StoreResult<InsertOutcome> {
        self.insert_messages(std::slice::from_ref(new))
            .await
            .pop()
            .unwrap_or_else(|| Err(StoreError::Other("empty batch result".into())))
    }
    /// Group commit: every send of `batch` as [`Store::insert_message`] would store it,
    /// in one durable commit, with one outcome per send in the same order. Each send keeps
    /// its own result: a replay (same sender + temp_id, also twice inside the batch), an
    /// erased sender, a block or a vanished conversation fails or replays that send alone.
    /// Event-log positions are taken per user in batch order, without holes.
    async fn insert_messages(&self, batch: &[NewMessage]) -> Vec<StoreResult<InsertOutcome>>;
    async fn message(&self, id: MessageId) -> StoreResult<Option<Message>>;
    async fn message_by_temp_id(
        &self,
        sender: UserId,
        temp_id: &str,
    ) -> StoreResult<Option<Message>>;
    async fn list_messages(
        &self,
        conv: ConversationId,
        q: &MessageQuery,
    ) -> StoreResult<Vec<Message>>;
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
    /// [`Store::event_head`] of several users in one read (a reconnect storm's heads are
    /// read together); users without events are absent (their head is 0).
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
    /// Newest first.
    async fn list_links(
        &self,
        conv: ConversationId,
        before: Option<Cursor>,
        limit: u32,
    ) -> StoreResult<Vec<(LinkItem, Cursor)>>;

    // blocks
    /// true if a new block was recorded, false if it already existed.
    async fn block(
        &self,
        blocker: UserId,
        blocked: UserId,
        now: DateTime<Utc>,
    ) -> StoreResult<bool>;
    /// true if a block was removed.
    async fn unblock(&self, blocker: UserId, blocked: UserId) -> StoreResult<bool>;
    /// What a send from `sender` into `conv` needs, in one read: `None` when `sender`
    /// takes no part in it; else the receiver, who blocks whom, and the id of a message
    /// `sender` already stored with `temp_id` (idempotent retries).
    async fn send_context(
        &self,
        sender: UserId,
        conv: ConversationId,
        temp_id: Option<&str>,
    ) -> StoreResult<Option<SendContext>>;
    /// (a blocks b, b blocks a)
    async fn block_status(&self, a: UserId, b: UserId) -> StoreResult<(bool, bool)>;
    /// Newest first.
    async fn list_blocks(
        &self,
        blocker: UserId,
        before: Option<Cursor>,
        limit: u32,
    ) -> StoreResult<Vec<(BlockedUser, Cursor)>>;

    // push subscriptions
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

    // rate limits
    async fn rate_limits(&self) -> StoreResult<Vec<(String, RateLimitSetting)>>;
    async fn set_rate_limit(&self, action: &str, setting: RateLimitSetting) -> StoreResult<()>;

    // operations (chatctl)
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
}

/// Open the store the URL names (`postgres://`, `postgresql://`, `sqlite:`).
pub async fn connect(url: &str, max_connections: u32) -> StoreResult<DynStore> {
    if url.starts_with("postgres://") || url.starts_with("postgresql://") {
        Ok(Arc::new(
            PostgresStore::connect(url, max_connections).await?,
        ))
    } else if url.starts_with("sqlite:") {
        Ok(Arc::new(SqliteStore::connect(url, max_connections).await?))
    } else {
        Err(StoreError::Other(
            "database URL must start with postgres://, postgresql:// or sqlite:".into(),
        ))
    }
}

/// The object keys a media item holds, as stored (before URLs are signed).
pub fn media_keys(items: &[MediaItem]) -> impl Iterator<Item = &str> {
    items
        .iter()
        .flat_map(|i| std::iter::once(i.url.as_str()).chain(i.thumbnail_url.as_deref()))
}

/// The WHERE clause (over `messages m`) that selects a purge scope; parameters from $1,
/// bound by each backend in the order the clause names them.
fn scope_clause(scope: PurgeScope) -> &'static str {
    match scope {
        PurgeScope::OlderThan {
            conversation: None, ..
        } => "m.created_at < $1",
        PurgeScope::OlderThan {
            conversation: Some(_),
            ..
        } => "m.created_at < $1 AND m.conversation_id = $2",
        PurgeScope::Conversation(_) => "m.conversation_id = $1",
        PurgeScope::SentBy(_) => "m.sender_id = $1",
    }
}
