//! Persistence: the [`Store`] trait and one implementation per database.
//!
//! The trait is split by concern (`traits`: users, conversations, messages and the
//! event log, blocks, push, admin), [`Store`] over them all ([`prelude`] brings them into
//! scope where a concrete backend is used). Each backend has one module per concern; both
//! share their SQL where it is the same (`sql`) and one row decoder per type (`rows`).
//! Rows stay private to the implementations; the traits speak in domain values.
//! The same conformance suite (`server/tests/store_conformance.rs`) runs against both.

mod group_commit;
mod postgres;
mod rows;
mod sql;
mod sqlite;
mod traits;

use std::sync::Arc;

use chat_protocol::rest::{MediaItem, Message, MessageType, PushSubscription};
use chat_protocol::{ConversationId, MessageId, UserId};
use chrono::{DateTime, Utc};

pub use crate::model::{ordered_pair, Conversation, ConversationView, StoredMessage, User};
use crate::model::{Cursor, SearchCursor};

pub use group_commit::{BatchSettings, GroupCommit};
pub use postgres::PostgresStore;
pub use sqlite::SqliteStore;
pub use traits::{
    AdminStore, BlockStore, Contact, ConversationStore, LifecycleStore, MessageStore, PushStore,
    Store, UserStore,
};

/// The store traits, for calling them on a concrete backend (a [`DynStore`] needs no import).
pub mod prelude {
    pub use super::{
        AdminStore, BlockStore, ConversationStore, LifecycleStore, MessageStore, PushStore, Store,
        UserStore,
    };
}

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

/// Whether a SQLSTATE says PostgreSQL is going away: connection exceptions (08…),
/// insufficient resources (53300 too many connections, 53100 disk full, 53200 out of
/// memory) and operator intervention (57P01 admin shutdown, 57P02 crash shutdown, 57P03
/// starting).
pub(crate) fn server_going_away(code: Option<&str>) -> bool {
    code.is_some_and(|c| c.starts_with("08") || c.starts_with("53") || c.starts_with("57P"))
}

impl From<sqlx::Error> for StoreError {
    fn from(e: sqlx::Error) -> Self {
        match e {
            sqlx::Error::RowNotFound => StoreError::NotFound,
            sqlx::Error::PoolTimedOut | sqlx::Error::PoolClosed | sqlx::Error::Io(_) => {
                StoreError::Unavailable(e.to_string())
            }
            sqlx::Error::Database(ref db) if server_going_away(db.code().as_deref()) => {
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

/// What to insert when sending.
#[derive(Debug, Clone)]
pub struct NewMessage {
    pub message: Message,
    /// URLs found in the text, recorded in the same transaction.
    pub links: Vec<String>,
}

/// See [`MessageStore::send_context`].
#[derive(Debug, Clone, PartialEq)]
pub struct SendContext {
    pub receiver: UserId,
    /// The sender blocks the receiver.
    pub sender_blocks: bool,
    /// The receiver blocks the sender.
    pub receiver_blocks: bool,
    pub existing: Option<MessageId>,
}

/// Where one stored send landed in the two participants' event logs.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SendSeqs {
    pub sender: u64,
    pub receiver: u64,
}

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

/// The outcome of a send that stored nothing, from [`sql::UNSTORED_SQL`]'s answer: erased,
/// blocked, a replay of the message stored earlier under its temp_id, or a conflict.
pub(crate) async fn unstored_outcome<S: MessageStore + ?Sized>(
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
    Created(StoredMessage, SendSeqs),
    /// The sender already stored a message with this `temp_id`; nothing was written.
    Existing(StoredMessage),
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
    /// Leave out the messages this user hid (deleted for me).
    pub viewer: Option<UserId>,
}

/// A change to a stored message (SPEC "Message lifecycle"), as the store applies it. The
/// rules (who may, blocks, validation) are checked above the store; the store applies a
/// change only to a message still in the state they were checked against.
#[derive(Debug, Clone, PartialEq)]
pub enum Change<'a> {
    /// New content for the sender's message, not deleted, sent at or after `since`.
    Edit {
        sender: UserId,
        content: &'a str,
        links: &'a [String],
        since: DateTime<Utc>,
    },
    /// The sender's message (not deleted, sent at or after `since`) becomes a tombstone
    /// for both: content, media, links and reactions gone, no longer unread.
    DeleteForEveryone {
        sender: UserId,
        since: DateTime<Utc>,
    },
    /// Hidden for `user` only.
    Hide { user: UserId },
    /// `user` adds (or removes) one reaction; at most `max` distinct emoji per message.
    React {
        user: UserId,
        emoji: &'a str,
        add: bool,
        max: usize,
    },
}

impl Change<'_> {
    /// How the change is logged: (`message_events.kind`, actor, emoji, added).
    pub(crate) fn event(&self) -> (&'static str, UserId, Option<&str>, Option<bool>) {
        match *self {
            Change::Edit { sender, .. } => ("edited", sender, None, None),
            Change::DeleteForEveryone { sender, .. } => ("deleted", sender, None, None),
            Change::Hide { user } => ("deleted_me", user, None, None),
            Change::React {
                user, emoji, add, ..
            } => ("reaction", user, Some(emoji), Some(add)),
        }
    }

    /// Whose event logs the change goes into, in user-id order (the order their counters
    /// are taken in): the hider alone, or both participants of the message.
    pub(crate) fn told(&self, sender: UserId, receiver: UserId) -> Vec<UserId> {
        match *self {
            Change::Hide { user } => vec![user],
            _ => {
                let mut both = vec![sender, receiver];
                both.sort_by_key(|u| u.0);
                both
            }
        }
    }
}

/// What [`LifecycleStore::change_message`] did.
#[derive(Debug, Clone, PartialEq)]
pub enum Changed {
    /// Applied, and logged at these (user, position) pairs. `before` is the message as it
    /// was (a delete returns its media keys there, for the objects to be removed).
    Applied {
        before: Box<StoredMessage>,
        seqs: Vec<(UserId, u64)>,
    },
    /// Nothing to do: already hidden, reaction already there (or not there to remove).
    Unchanged,
    /// The message is not (or no longer) in a state the change applies to: deleted,
    /// not the sender's, outside the window, or gone.
    Refused,
    /// A reaction would be one distinct emoji too many.
    TooManyReactions,
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

impl LoggedKind {
    /// A `message_events` row (`kind`: `edited`, `deleted`, `deleted_me`, `reaction`),
    /// with its message as it is now; both backends.
    pub(crate) fn change(
        kind: &str,
        message: StoredMessage,
        actor: UserId,
        emoji: Option<String>,
        added: Option<bool>,
    ) -> StoreResult<Self> {
        use chat_protocol::rest::DeleteScope;
        let (conversation_id, message_id) = (message.conversation_id, message.id);
        Ok(match (kind, emoji) {
            ("edited", _) => LoggedKind::Edited(message),
            ("deleted", _) => LoggedKind::Deleted {
                conversation_id,
                message_id,
                scope: DeleteScope::Everyone,
            },
            ("deleted_me", _) => LoggedKind::Deleted {
                conversation_id,
                message_id,
                scope: DeleteScope::Me,
            },
            ("reaction", Some(emoji)) => LoggedKind::Reaction {
                conversation_id,
                message_id,
                emoji,
                user_id: actor,
                added: added.unwrap_or(true),
            },
            (other, _) => return Err(StoreError::Other(format!("bad event kind {other}"))),
        })
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
    Message(StoredMessage),
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
    /// A message of the user's was edited (the message as it is now).
    Edited(StoredMessage),
    Deleted {
        conversation_id: ConversationId,
        message_id: MessageId,
        scope: chat_protocol::rest::DeleteScope,
    },
    Reaction {
        conversation_id: ConversationId,
        message_id: MessageId,
        emoji: String,
        user_id: UserId,
        added: bool,
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

/// How a search finds its hits (the service chooses; both give the same order).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SearchScan {
    /// The full-text index: every match, then the newest. Costs what the term matches.
    Index,
    /// The viewer's newest `window` log entries below the cursor, each tested against the
    /// terms. Costs the window, however common the term: the way to search for a term that
    /// matches most messages. Finds only what lies in the window.
    Recent { window: u32 },
}

/// A search hit and the viewer's position of it (0: history from before the event log).
#[derive(Debug, Clone, PartialEq)]
pub struct SearchRow {
    pub message: StoredMessage,
    pub pos: u64,
}

impl SearchRow {
    pub fn cursor(&self) -> SearchCursor {
        SearchCursor {
            pos: self.pos,
            key: self.message.cursor(),
        }
    }
}

/// What a search found, newest first (the viewer's log order, then time).
#[derive(Debug, Clone, Default, PartialEq)]
pub struct SearchFound {
    pub hits: Vec<SearchRow>,
    /// [`SearchScan::Recent`]: log entries examined (fewer than the window where the log
    /// ends), and the newest position among them; both 0 when nothing matched.
    pub walked: u32,
    pub top: u64,
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
    /// Messages edited at least once.
    pub edited_messages: u64,
    /// Messages deleted for everyone (tombstones).
    pub deleted_messages: u64,
    pub reactions: u64,
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

/// A migrated SQLite store in a fresh temporary directory, for unit tests above the store;
/// [`TempStore::remove`] closes it and deletes the directory.
#[cfg(test)]
pub(crate) struct TempStore {
    pub store: DynStore,
    dir: std::path::PathBuf,
}

#[cfg(test)]
impl TempStore {
    pub async fn sqlite() -> TempStore {
        let dir = std::env::temp_dir().join(format!("chat-unit-{}", uuid::Uuid::new_v4().simple()));
        let url = format!("sqlite://{}", dir.join("chat.db").display());
        let store = connect(&url, 2).await.expect("open sqlite");
        store.migrate().await.expect("migrate");
        TempStore { store, dir }
    }

    /// The temporary directory (removed with the store), for other test files.
    pub fn dir(&self) -> &std::path::Path {
        &self.dir
    }

    pub async fn remove(self) {
        self.store.close().await;
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

/// When a SQLite commit is durable (`CHAT_SQLITE_SYNCHRONOUS`). In WAL mode `Full` syncs
/// the log at every commit, so a send acknowledged with `message.sent` survives an OS
/// crash or power loss (one `fdatasync` per group commit); `Normal` syncs only at
/// checkpoints: a chatd crash loses nothing, an OS crash or power loss may lose the last
/// commits (the database stays consistent). docs/decisions.md, "Durable commits on SQLite".
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum SqliteSync {
    #[default]
    Full,
    Normal,
}

/// How to open a store, beyond its URL and pool size.
#[derive(Debug, Clone, Copy, Default)]
pub struct OpenOptions {
    /// Group-commit writers (None: the backend's default); on PostgreSQL the batched sends
    /// get a pool of that many connections of their own.
    pub send_writers: Option<usize>,
    /// SQLite only: when a commit is durable.
    pub sqlite_sync: SqliteSync,
}

/// Open the store the URL names (`postgres://`, `postgresql://`, `sqlite:`), with the
/// default [`OpenOptions`].
pub async fn connect(url: &str, max_connections: u32) -> StoreResult<DynStore> {
    connect_with(url, max_connections, OpenOptions::default()).await
}

/// [`connect`] with `options`.
pub async fn connect_with(
    url: &str,
    max_connections: u32,
    options: OpenOptions,
) -> StoreResult<DynStore> {
    if url.starts_with("postgres://") || url.starts_with("postgresql://") {
        let writers = options
            .send_writers
            .unwrap_or_else(|| BatchSettings::for_backend("postgres").writers);
        Ok(Arc::new(
            PostgresStore::connect_for_writers(url, max_connections, writers).await?,
        ))
    } else if url.starts_with("sqlite:") {
        Ok(Arc::new(
            SqliteStore::connect_with(url, max_connections, options.sqlite_sync).await?,
        ))
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
