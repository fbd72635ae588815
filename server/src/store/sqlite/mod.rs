//! SQLite implementation of [`Store`]: the embedded default.
//!
//! Ids are stored as UUID text and times as INTEGER microseconds (exact ordering, same
//! precision as PostgreSQL). All writes go through a single-connection pool so that
//! SQLite's one-writer rule never surfaces as `SQLITE_BUSY`; reads use a wider pool
//! (WAL mode lets them run beside the writer).

mod admin;
mod blocks;
mod conversations;
mod lifecycle;
mod messages;
mod push;
mod search_index;
mod send;
mod users;

use std::str::FromStr;
use std::time::Duration;

use async_trait::async_trait;
use chat_protocol::rest::{BlockedUser, LinkItem, MediaItem, Message, PushKind, PushSubscription};
use chat_protocol::{ConversationId, MessageId, UserId};
use chrono::{DateTime, Utc};
use sqlx::sqlite::{
    SqliteConnectOptions, SqliteJournalMode, SqlitePool, SqlitePoolOptions, SqliteSynchronous,
};
use sqlx::Row;
use uuid::Uuid;

use super::rows::*;
use super::sql::*;
use super::*;

/// This backend's message columns (shadows nothing: `sql` has one constant per dialect).
const MESSAGE_COLS: &str = SQLITE_MESSAGE_COLS;

static MIGRATOR: sqlx::migrate::Migrator = sqlx::migrate!("../migrations/sqlite");

pub struct SqliteStore {
    read: SqlitePool,
    write: SqlitePool,
    /// Background tasks (the checkpointer, the search indexer), each stopped and waited
    /// for on close.
    background: std::sync::Mutex<
        Vec<(
            tokio::sync::oneshot::Sender<()>,
            tokio::task::JoinHandle<()>,
        )>,
    >,
}

/// How often the background checkpointer copies the WAL into the database file.
const CHECKPOINT_EVERY: Duration = Duration::from_millis(500);
/// WAL frames (4 KiB pages) past which the checkpointer also restarts the log.
const WAL_RESTART_FRAMES: i64 = 4_096;
/// How long a RESTART may wait for readers to leave the log, holding the writer off
/// meanwhile; past it the restart is left to the next pass.
const RESTART_WAIT: Duration = Duration::from_millis(20);
/// Bytes the WAL file is cut back to when the writer restarts the log
/// (`journal_size_limit`).
const WAL_SIZE_LIMIT: &str = "67108864";

/// WAL checkpoints off the write path. SQLite's automatic checkpoint runs inside the
/// commit that crosses 1,000 WAL pages: that one send then pays for copying pages and
/// fsyncing the database file (10-20 ms on this machine's disk, the p99 of light load).
/// With the writer's auto-checkpoint off, this task checkpoints on its own connection
/// every [`CHECKPOINT_EVERY`]; a PASSIVE checkpoint never blocks the writer.
///
/// Under a steady stream of sends a PASSIVE checkpoint never catches the log's end (the
/// writer appends while it copies), so the writer never starts the log over and the
/// file only grows. Past [`WAL_RESTART_FRAMES`] the checkpointer follows its PASSIVE pass
/// with a RESTART: it copies the few frames appended since, waits for readers to leave
/// the log (at most [`RESTART_WAIT`]: a long read must not hold every send), and the next
/// commit writes from the log's start again. That holds the writer for a moment; the
/// TRUNCATE used before (at 64 MiB) also freed the file's blocks and
/// held it 25-100 ms, seven times in a 20 s run at 500 msg/s (docs/benchmarks.md,
/// session 20).
async fn checkpointer(opts: SqliteConnectOptions, mut stop: tokio::sync::oneshot::Receiver<()>) {
    use sqlx::Connection;
    let opts = opts.busy_timeout(RESTART_WAIT);
    let mut conn = match sqlx::SqliteConnection::connect_with(&opts).await {
        Ok(c) => c,
        Err(e) => {
            tracing::warn!(error = %e, "sqlite checkpointer cannot connect; WAL grows until restart");
            return;
        }
    };
    loop {
        let stopping = tokio::select! {
            _ = &mut stop => true,
            _ = tokio::time::sleep(CHECKPOINT_EVERY) => false,
        };
        if stopping {
            // On shutdown, wait for the last readers as the writer does.
            let _ = sqlx::query("PRAGMA busy_timeout = 10000")
                .execute(&mut conn)
                .await;
        }
        let mode = if stopping { "TRUNCATE" } else { "PASSIVE" };
        match sqlx::query_as::<_, (i64, i64, i64)>(&format!("PRAGMA wal_checkpoint({mode})"))
            .fetch_one(&mut conn)
            .await
        {
            Ok((_, log, _)) if log > WAL_RESTART_FRAMES && !stopping => {
                if let Err(e) = sqlx::query("PRAGMA wal_checkpoint(RESTART)")
                    .execute(&mut conn)
                    .await
                {
                    tracing::debug!(error = %e, "WAL restart skipped");
                }
            }
            Ok(_) => {}
            Err(e) => tracing::debug!(error = %e, "WAL checkpoint skipped"),
        }
        if stopping {
            let _ = conn.close().await;
            return;
        }
    }
}

/// Ids as a JSON array, for `IN (SELECT value FROM json_each(?))`.
fn json_ids(ids: &[UserId]) -> StoreResult<String> {
    serde_json::to_string(&ids.iter().map(|u| u.to_string()).collect::<Vec<_>>())
        .map_err(|e| StoreError::Other(e.to_string()))
}

fn ts(t: DateTime<Utc>) -> i64 {
    t.timestamp_micros()
}

/// Next position in `user`'s event log (inside the caller's write transaction).
async fn bump_seq(tx: &mut sqlx::SqliteConnection, user: UserId) -> StoreResult<u64> {
    let seq: i64 = sqlx::query_scalar(
        "INSERT INTO event_heads (user_id, seq) VALUES ($1, 1)
         ON CONFLICT (user_id) DO UPDATE SET seq = seq + 1
         RETURNING seq",
    )
    .bind(user.to_string())
    .fetch_one(tx)
    .await?;
    seq_of(Some(seq))
}

/// Connect the FTS5 table on a new writer connection, outside any transaction.
/// Otherwise the first write transaction to touch `messages` connects it while
/// preparing its first statement, inside the (deferred) transaction: FTS5 reads its
/// config there, the transaction holds a read snapshot before it asks for the write
/// lock, and SQLite refuses that upgrade at once with "database is locked" (it never
/// waits `busy_timeout`, to avoid deadlock) whenever another process writes:
/// `chatctl purge` beside a busy chatd failed on its first batch. Before the migrations
/// have created the table there is nothing to connect.
async fn connect_search_index(conn: &mut sqlx::SqliteConnection) -> Result<(), sqlx::Error> {
    match sqlx::query("SELECT 1 FROM messages_fts WHERE rowid = 0")
        .fetch_optional(conn)
        .await
    {
        Err(e) if no_such_table(&e) => Ok(()),
        other => other.map(|_| ()),
    }
}

/// A table the migrations have not made yet (a store opened before `migrate`).
fn no_such_table(e: &sqlx::Error) -> bool {
    matches!(e, sqlx::Error::Database(d) if d.message().contains("no such table"))
}

impl SqliteStore {
    /// Index what sends queued, before a search reads the index (see `search_index`). A
    /// failure is logged and the search answers from the index as it is: it may miss the
    /// last quarter second's messages, rather than fail.
    pub(super) async fn index_pending(&self) {
        if let Err(e) = search_index::index_pending(&self.write, &self.read).await {
            tracing::warn!(error = %e, "search index not caught up before a search");
        }
    }

    /// Open with durable commits ([`SqliteSync::Full`]).
    pub async fn connect(url: &str, max_connections: u32) -> StoreResult<Self> {
        Self::connect_with(url, max_connections, SqliteSync::Full).await
    }

    /// Open, committing as `sync` says.
    pub async fn connect_with(
        url: &str,
        max_connections: u32,
        sync: SqliteSync,
    ) -> StoreResult<Self> {
        let opts = SqliteConnectOptions::from_str(url)
            .map_err(|e| StoreError::Other(format!("bad sqlite url: {e}")))?
            .create_if_missing(true)
            .journal_mode(SqliteJournalMode::Wal)
            .synchronous(match sync {
                SqliteSync::Full => SqliteSynchronous::Full,
                SqliteSync::Normal => SqliteSynchronous::Normal,
            })
            .foreign_keys(true)
            .busy_timeout(Duration::from_secs(10));
        let filename = opts.get_filename().to_path_buf();
        let in_memory = url.contains(":memory:") || url.contains("mode=memory");
        if !in_memory {
            if let Some(parent) = filename.parent() {
                if !parent.as_os_str().is_empty() {
                    std::fs::create_dir_all(parent).map_err(|e| {
                        StoreError::Unavailable(format!("cannot create {}: {e}", parent.display()))
                    })?;
                }
            }
        }
        let write = SqlitePoolOptions::new()
            .max_connections(1)
            .acquire_timeout(Duration::from_secs(10))
            .after_connect(|conn, _| Box::pin(connect_search_index(conn)))
            .connect_with(if in_memory {
                opts.clone()
            } else {
                opts.clone()
                    .pragma("wal_autocheckpoint", "0")
                    .pragma("journal_size_limit", WAL_SIZE_LIMIT)
            })
            .await?;
        // An in-memory database exists once per connection: readers must share the writer.
        let read = if in_memory {
            write.clone()
        } else {
            SqlitePoolOptions::new()
                .max_connections(max_connections.max(1))
                .acquire_timeout(Duration::from_secs(10))
                .connect_with(opts.clone())
                .await?
        };
        let mut background = Vec::new();
        let (tx, rx) = tokio::sync::oneshot::channel();
        let indexer = search_index::indexer(write.clone(), read.clone(), rx);
        background.push((tx, tokio::spawn(indexer)));
        if !in_memory {
            let (tx, rx) = tokio::sync::oneshot::channel();
            background.push((tx, tokio::spawn(checkpointer(opts, rx))));
        }
        Ok(SqliteStore {
            read,
            write,
            background: std::sync::Mutex::new(background),
        })
    }
}

#[async_trait]
impl Store for SqliteStore {
    fn backend(&self) -> &'static str {
        "sqlite"
    }

    async fn migrate(&self) -> StoreResult<()> {
        MIGRATOR.run(&self.write).await?;
        Ok(())
    }

    async fn ping(&self) -> StoreResult<()> {
        sqlx::query("SELECT 1").execute(&self.read).await?;
        Ok(())
    }

    async fn close(&self) {
        let tasks = self
            .background
            .lock()
            .map(|mut b| std::mem::take(&mut *b))
            .unwrap_or_default();
        for (stop, handle) in tasks {
            let _ = stop.send(());
            let _ = handle.await;
        }
        self.write.close().await;
        self.read.close().await;
    }

    fn pool_stats(&self) -> Vec<PoolStats> {
        vec![
            PoolStats::of("write", &self.write),
            PoolStats::of("read", &self.read),
        ]
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A send is acknowledged only after its commit: by default that commit syncs the
    /// WAL (`synchronous = FULL`, 2), so it survives power loss; `normal` (1) is asked for.
    #[tokio::test]
    async fn commits_sync_the_log_unless_told_normal() {
        for (sync, want) in [(SqliteSync::Full, 2), (SqliteSync::Normal, 1)] {
            let dir = std::env::temp_dir().join(format!("chat-sync-{}", Uuid::new_v4().simple()));
            let url = format!("sqlite://{}", dir.join("chat.db").display());
            let store = SqliteStore::connect_with(&url, 2, sync)
                .await
                .expect("open");
            for pool in [&store.write, &store.read] {
                let level: i64 = sqlx::query_scalar("PRAGMA synchronous")
                    .fetch_one(pool)
                    .await
                    .expect("pragma");
                assert_eq!(level, want, "{sync:?}");
            }
            store.close().await;
            let _ = std::fs::remove_dir_all(&dir);
        }
        assert_eq!(SqliteSync::default(), SqliteSync::Full);
    }

    /// The writer never checkpoints (wal_autocheckpoint=0): pages reach the database file
    /// only through the background checkpointer. Without it the file would stay at its
    /// initial size while the WAL grows without bound.
    #[tokio::test]
    async fn the_background_checkpointer_moves_the_wal_into_the_database_file() {
        let dir = std::env::temp_dir().join(format!("chat-ckpt-{}", uuid::Uuid::new_v4().simple()));
        let db = dir.join("chat.db");
        let store = SqliteStore::connect(&format!("sqlite://{}", db.display()), 2)
            .await
            .expect("open");
        sqlx::query("CREATE TABLE blob_test (b BLOB)")
            .execute(&store.write)
            .await
            .expect("create");
        let before = std::fs::metadata(&db).map(|m| m.len()).unwrap_or(0);
        for _ in 0..64 {
            sqlx::query("INSERT INTO blob_test VALUES (zeroblob(16384))")
                .execute(&store.write)
                .await
                .expect("insert");
        }
        let deadline = std::time::Instant::now() + Duration::from_secs(10);
        loop {
            let size = std::fs::metadata(&db).map(|m| m.len()).unwrap_or(0);
            if size >= before + 1_000_000 {
                break;
            }
            assert!(
                std::time::Instant::now() < deadline,
                "database file stayed at {size} bytes: no checkpoint ran"
            );
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        store.close().await;
        let _ = std::fs::remove_dir_all(&dir);
    }

    /// Another process's writer holding the write lock for 300 ms (returns once it holds
    /// it; the task commits at the end).
    async fn hold_write_lock(url: &str) -> tokio::task::JoinHandle<()> {
        use sqlx::Connection;
        let mut other = sqlx::SqliteConnection::connect(url).await.expect("connect");
        sqlx::query("BEGIN IMMEDIATE")
            .execute(&mut other)
            .await
            .expect("lock");
        sqlx::query("DELETE FROM rate_limits WHERE action = 'none'")
            .execute(&mut other)
            .await
            .expect("write");
        tokio::spawn(async move {
            tokio::time::sleep(Duration::from_millis(300)).await;
            sqlx::query("COMMIT")
                .execute(&mut other)
                .await
                .expect("commit");
        })
    }

    /// A second process (chatctl beside chatd) whose first write transaction meets the
    /// other's write lock waits for it (busy_timeout) instead of failing at once: its
    /// connection must not hold a read snapshot when the write begins (see
    /// `connect_search_index`). Likewise chatd's transactions that read before they write.
    #[tokio::test]
    async fn writers_wait_for_another_process_instead_of_failing() {
        let dir = std::env::temp_dir().join(format!("chat-busy-{}", uuid::Uuid::new_v4().simple()));
        let url = format!("sqlite://{}", dir.join("chat.db").display());
        let chatd = SqliteStore::connect(&url, 2).await.expect("open");
        chatd.migrate().await.expect("migrate");
        let t = Utc::now();
        let (a, b) = (UserId::new(), UserId::new());
        chatd.upsert_user(a, "a", t).await.expect("user");
        chatd.upsert_user(b, "b", t).await.expect("user");
        let conv = chatd
            .create_conversation(&Conversation::between(a, b, t))
            .await
            .expect("conversation");
        let message = Message {
            id: MessageId::new(),
            conversation_id: conv.id,
            sender_id: a,
            receiver_id: b,
            kind: chat_protocol::rest::MessageType::Text,
            content: Some("hello".into()),
            media: vec![],
            temp_id: None,
            is_read: false,
            read_at: None,
            created_at: t,
            reply_to: None,
            edited_at: None,
            deleted_at: None,
            reactions: vec![],
        };
        chatd
            .insert_message(&NewMessage {
                message: message.clone(),
                links: vec![],
            })
            .await
            .expect("send");

        // chatctl's first transaction on a fresh connection.
        let release = hold_write_lock(&url).await;
        let chatctl = SqliteStore::connect(&url, 2).await.expect("open");
        let scope = PurgeScope::OlderThan {
            before: t - chrono::Duration::days(1),
            conversation: None,
        };
        let purged = chatctl.purge_messages(scope, 10).await;
        assert!(
            purged.is_ok(),
            "purge failed instead of waiting: {purged:?}"
        );
        release.await.expect("release");
        chatctl.close().await;

        // chatd's mark read and lifecycle change (each reads first).
        let release = hold_write_lock(&url).await;
        let read = chatd.mark_read(conv.id, b, None, Utc::now()).await;
        assert!(
            read.is_ok(),
            "mark read failed instead of waiting: {read:?}"
        );
        release.await.expect("release");
        let release = hold_write_lock(&url).await;
        let change = Change::React {
            user: b,
            emoji: "👍",
            add: true,
            max: 20,
        };
        let changed = chatd.change_message(message.id, &change, Utc::now()).await;
        assert!(
            matches!(changed, Ok(Changed::Applied { .. })),
            "reaction failed instead of waiting: {changed:?}"
        );
        release.await.expect("release");
        chatd.close().await;
        let _ = std::fs::remove_dir_all(&dir);
    }
}
