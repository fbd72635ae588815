//! SQLite implementation of [`Store`]: the embedded default.
//!
//! Ids are stored as UUID text and times as INTEGER microseconds (exact ordering, same
//! precision as PostgreSQL). All writes go through a single-connection pool so that
//! SQLite's one-writer rule never surfaces as `SQLITE_BUSY`; reads use a wider pool
//! (WAL mode lets them run beside the writer).

mod send;

use std::str::FromStr;
use std::time::Duration;

use async_trait::async_trait;
use chat_protocol::rest::{
    BlockedUser, LinkItem, MediaItem, Message, MessageType, PushKind, PushSubscription,
};
use chat_protocol::{ConversationId, MessageId, UserId};
use chrono::{DateTime, Utc};
use sqlx::sqlite::{
    SqliteConnectOptions, SqliteJournalMode, SqlitePool, SqlitePoolOptions, SqliteRow,
    SqliteSynchronous,
};
use sqlx::Row;
use uuid::Uuid;

use super::*;

static MIGRATOR: sqlx::migrate::Migrator = sqlx::migrate!("../migrations/sqlite");

pub struct SqliteStore {
    read: SqlitePool,
    write: SqlitePool,
    /// Stops the background checkpointer (and waits for it) on close.
    checkpointer: std::sync::Mutex<
        Option<(
            tokio::sync::oneshot::Sender<()>,
            tokio::task::JoinHandle<()>,
        )>,
    >,
}

/// How often the background checkpointer copies the WAL into the database file.
const CHECKPOINT_EVERY: Duration = Duration::from_millis(500);
/// WAL frames (4 KiB pages) past which a checkpoint also truncates the WAL file.
const WAL_TRUNCATE_FRAMES: i64 = 16_384;

/// WAL checkpoints off the write path. SQLite's automatic checkpoint runs inside the
/// commit that crosses 1,000 WAL pages: that one send then pays for copying pages and
/// fsyncing the database file (10-20 ms on this machine's disk, the p99 of light load).
/// With the writer's auto-checkpoint off, this task checkpoints on its own connection
/// every [`CHECKPOINT_EVERY`]; a PASSIVE checkpoint never blocks the writer.
async fn checkpointer(opts: SqliteConnectOptions, mut stop: tokio::sync::oneshot::Receiver<()>) {
    use sqlx::Connection;
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
        let mode = if stopping { "TRUNCATE" } else { "PASSIVE" };
        match sqlx::query_as::<_, (i64, i64, i64)>(&format!("PRAGMA wal_checkpoint({mode})"))
            .fetch_one(&mut conn)
            .await
        {
            Ok((_, log, _)) if log > WAL_TRUNCATE_FRAMES && !stopping => {
                if let Err(e) = sqlx::query("PRAGMA wal_checkpoint(TRUNCATE)")
                    .execute(&mut conn)
                    .await
                {
                    tracing::debug!(error = %e, "WAL truncate skipped");
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

fn ts(t: DateTime<Utc>) -> i64 {
    t.timestamp_micros()
}

fn to_ts(v: i64) -> StoreResult<DateTime<Utc>> {
    DateTime::from_timestamp_micros(v)
        .ok_or_else(|| StoreError::Other(format!("bad timestamp {v}")))
}

fn get_uuid(row: &SqliteRow, col: &str) -> StoreResult<Uuid> {
    let s: String = row.try_get(col)?;
    Uuid::parse_str(&s).map_err(|e| StoreError::Other(format!("bad uuid in {col}: {e}")))
}

fn get_opt_uuid(row: &SqliteRow, col: &str) -> StoreResult<Option<Uuid>> {
    let s: Option<String> = row.try_get(col)?;
    s.map(|s| Uuid::parse_str(&s).map_err(|e| StoreError::Other(format!("bad uuid in {col}: {e}"))))
        .transpose()
}

fn get_ts(row: &SqliteRow, col: &str) -> StoreResult<DateTime<Utc>> {
    to_ts(row.try_get(col)?)
}

fn get_opt_ts(row: &SqliteRow, col: &str) -> StoreResult<Option<DateTime<Utc>>> {
    let v: Option<i64> = row.try_get(col)?;
    v.map(to_ts).transpose()
}

fn get_count(row: &SqliteRow, col: &str) -> StoreResult<u64> {
    let v: i64 = row.try_get(col)?;
    Ok(v.max(0) as u64)
}

const MESSAGE_COLS: &str = "m.id AS m_id, m.conversation_id AS m_conversation_id, \
    m.sender_id AS m_sender_id, m.receiver_id AS m_receiver_id, m.type AS m_type, \
    m.content AS m_content, m.media AS m_media, m.temp_id AS m_temp_id, \
    m.is_read AS m_is_read, m.read_at AS m_read_at, m.created_at AS m_created_at";

const CONVERSATION_COLS: &str = "c.id AS c_id, c.user1_id AS c_user1_id, \
    c.user2_id AS c_user2_id, c.created_by AS c_created_by, \
    c.last_message_id AS c_last_message_id, c.last_message_at AS c_last_message_at, \
    c.activity_at AS c_activity_at, c.user1_unread_count AS c_user1_unread_count, \
    c.user2_unread_count AS c_user2_unread_count, c.created_at AS c_created_at";

const USER_COLS: &str = "u.id AS u_id, u.username AS u_username, \
    u.display_name AS u_display_name, u.created_at AS u_created_at, \
    u.last_seen_at AS u_last_seen_at";

fn message_from_row(row: &SqliteRow) -> StoreResult<Message> {
    let kind: String = row.try_get("m_type")?;
    let media: String = row.try_get("m_media")?;
    let media = parse_media(&media)?;
    let is_read: i64 = row.try_get("m_is_read")?;
    Ok(Message {
        id: MessageId(get_uuid(row, "m_id")?),
        conversation_id: ConversationId(get_uuid(row, "m_conversation_id")?),
        sender_id: UserId(get_uuid(row, "m_sender_id")?),
        receiver_id: UserId(get_uuid(row, "m_receiver_id")?),
        kind: MessageType::parse(&kind)
            .ok_or_else(|| StoreError::Other(format!("bad message type {kind}")))?,
        content: row.try_get("m_content")?,
        media,
        temp_id: row.try_get("m_temp_id")?,
        is_read: is_read != 0,
        read_at: get_opt_ts(row, "m_read_at")?,
        created_at: get_ts(row, "m_created_at")?,
    })
}

fn conversation_from_row(row: &SqliteRow) -> StoreResult<Conversation> {
    Ok(Conversation {
        id: ConversationId(get_uuid(row, "c_id")?),
        user1_id: UserId(get_uuid(row, "c_user1_id")?),
        user2_id: UserId(get_uuid(row, "c_user2_id")?),
        created_by: UserId(get_uuid(row, "c_created_by")?),
        last_message_id: get_opt_uuid(row, "c_last_message_id")?.map(MessageId),
        last_message_at: get_opt_ts(row, "c_last_message_at")?,
        activity_at: get_ts(row, "c_activity_at")?,
        user1_unread: get_count(row, "c_user1_unread_count")?,
        user2_unread: get_count(row, "c_user2_unread_count")?,
        created_at: get_ts(row, "c_created_at")?,
    })
}

fn user_from_row(row: &SqliteRow) -> StoreResult<User> {
    Ok(User {
        id: UserId(get_uuid(row, "u_id")?),
        username: row.try_get("u_username")?,
        display_name: row.try_get("u_display_name")?,
        created_at: get_ts(row, "u_created_at")?,
        last_seen_at: get_opt_ts(row, "u_last_seen_at")?,
    })
}

/// `type IN (...)` from enum values (never from client text).
fn type_filter(types: &Option<Vec<MessageType>>) -> String {
    match types {
        Some(t) if !t.is_empty() => {
            let list: Vec<String> = t.iter().map(|k| format!("'{}'", k.as_str())).collect();
            format!(" AND m.type IN ({})", list.join(","))
        }
        _ => String::new(),
    }
}

impl SqliteStore {
    pub async fn connect(url: &str, max_connections: u32) -> StoreResult<Self> {
        let opts = SqliteConnectOptions::from_str(url)
            .map_err(|e| StoreError::Other(format!("bad sqlite url: {e}")))?
            .create_if_missing(true)
            .journal_mode(SqliteJournalMode::Wal)
            .synchronous(SqliteSynchronous::Normal)
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
            .connect_with(if in_memory {
                opts.clone()
            } else {
                opts.clone().pragma("wal_autocheckpoint", "0")
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
        let checkpointer = (!in_memory).then(|| {
            let (tx, rx) = tokio::sync::oneshot::channel();
            (tx, tokio::spawn(checkpointer(opts, rx)))
        });
        Ok(SqliteStore {
            read,
            write,
            checkpointer: std::sync::Mutex::new(checkpointer),
        })
    }

    fn conversation_row_view(row: &SqliteRow) -> StoreResult<ConversationView> {
        let conversation = conversation_from_row(row)?;
        let other = user_from_row(row)?;
        let has_msg: Option<String> = row.try_get("m_id")?;
        let last_message = match has_msg {
            Some(_) => Some(message_from_row(row)?),
            None => None,
        };
        Ok(ConversationView {
            conversation,
            other,
            last_message,
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

    async fn migration_status(&self) -> StoreResult<Vec<(i64, String, bool)>> {
        let applied: Vec<i64> =
            match sqlx::query_scalar("SELECT version FROM _sqlx_migrations WHERE success = 1")
                .fetch_all(&self.read)
                .await
            {
                Ok(v) => v,
                Err(sqlx::Error::Database(_)) => Vec::new(), // table not created yet
                Err(e) => return Err(e.into()),
            };
        Ok(MIGRATOR
            .iter()
            .map(|m| {
                (
                    m.version,
                    m.description.to_string(),
                    applied.contains(&m.version),
                )
            })
            .collect())
    }

    async fn ping(&self) -> StoreResult<()> {
        sqlx::query("SELECT 1").execute(&self.read).await?;
        Ok(())
    }

    fn pool_stats(&self) -> Vec<PoolStats> {
        vec![
            PoolStats::of("write", &self.write),
            PoolStats::of("read", &self.read),
        ]
    }

    async fn close(&self) {
        let task = self.checkpointer.lock().ok().and_then(|mut c| c.take());
        if let Some((stop, handle)) = task {
            let _ = stop.send(());
            let _ = handle.await;
        }
        self.write.close().await;
        self.read.close().await;
    }

    async fn upsert_user(
        &self,
        id: UserId,
        username: &str,
        now: DateTime<Utc>,
    ) -> StoreResult<User> {
        let row = sqlx::query(
            "INSERT INTO users (id, username, display_name, created_at, last_seen_at)
             VALUES ($1, $2, NULL, $3, $3)
             ON CONFLICT(id) DO UPDATE SET username = excluded.username,
                 last_seen_at = excluded.last_seen_at
                 WHERE users.deleted_at IS NULL
             RETURNING id AS u_id, username AS u_username, display_name AS u_display_name,
                 created_at AS u_created_at, last_seen_at AS u_last_seen_at",
        )
        .bind(id.to_string())
        .bind(username)
        .bind(ts(now))
        .fetch_optional(&self.write)
        .await?;
        // No row: the id exists but was erased (the update's WHERE refused it).
        row.as_ref()
            .map(user_from_row)
            .transpose()?
            .ok_or(StoreError::Erased)
    }

    async fn user_by_id(&self, id: UserId) -> StoreResult<Option<User>> {
        let row = sqlx::query(&format!("SELECT {USER_COLS} FROM users u WHERE u.id = $1"))
            .bind(id.to_string())
            .fetch_optional(&self.read)
            .await?;
        row.as_ref().map(user_from_row).transpose()
    }

    async fn user_by_username(&self, username: &str) -> StoreResult<Option<User>> {
        let row = sqlx::query(&format!(
            "SELECT {USER_COLS} FROM users u WHERE u.username = $1"
        ))
        .bind(username)
        .fetch_optional(&self.read)
        .await?;
        row.as_ref().map(user_from_row).transpose()
    }

    async fn list_users(&self, after_username: Option<&str>, limit: u32) -> StoreResult<Vec<User>> {
        let rows = sqlx::query(&format!(
            "SELECT {USER_COLS} FROM users u WHERE u.username > $1 ORDER BY u.username LIMIT $2"
        ))
        .bind(after_username.unwrap_or(""))
        .bind(i64::from(limit))
        .fetch_all(&self.read)
        .await?;
        rows.iter().map(user_from_row).collect()
    }

    async fn touch_last_seen(&self, seen: &[(UserId, DateTime<Utc>)]) -> StoreResult<()> {
        if seen.is_empty() {
            return Ok(());
        }
        // One transaction, one commit, however many users.
        let mut tx = self.write.begin().await?;
        for (id, at) in seen {
            sqlx::query(
                "UPDATE users SET last_seen_at = MAX(COALESCE(last_seen_at, 0), $2) WHERE id = $1",
            )
            .bind(id.to_string())
            .bind(ts(*at))
            .execute(&mut *tx)
            .await?;
        }
        tx.commit().await?;
        Ok(())
    }

    async fn contacts(&self, me: UserId) -> StoreResult<Vec<(UserId, Option<DateTime<Utc>>)>> {
        let rows = sqlx::query(
            "SELECT u.id AS id, u.last_seen_at AS last_seen_at
             FROM conversations c
             JOIN users u ON u.id = CASE WHEN c.user1_id = $1 THEN c.user2_id ELSE c.user1_id END
             WHERE (c.user1_id = $1 OR c.user2_id = $1)
               AND c.last_message_id IS NOT NULL
               AND NOT EXISTS (SELECT 1 FROM blocks b
                   WHERE (b.blocker_id = $1 AND b.blocked_id = u.id)
                      OR (b.blocker_id = u.id AND b.blocked_id = $1))",
        )
        .bind(me.to_string())
        .fetch_all(&self.read)
        .await?;
        rows.iter()
            .map(|r| Ok((UserId(get_uuid(r, "id")?), get_opt_ts(r, "last_seen_at")?)))
            .collect()
    }

    async fn blocked_among(&self, me: UserId, others: &[UserId]) -> StoreResult<Vec<UserId>> {
        if others.is_empty() {
            return Ok(Vec::new());
        }
        let ids = serde_json::to_string(&others.iter().map(|u| u.to_string()).collect::<Vec<_>>())
            .map_err(|e| StoreError::Other(e.to_string()))?;
        let rows = sqlx::query(
            "SELECT blocked_id AS id FROM blocks
             WHERE blocker_id = $1 AND blocked_id IN (SELECT value FROM json_each($2))
             UNION
             SELECT blocker_id FROM blocks
             WHERE blocked_id = $1 AND blocker_id IN (SELECT value FROM json_each($2))",
        )
        .bind(me.to_string())
        .bind(ids)
        .fetch_all(&self.read)
        .await?;
        rows.iter()
            .map(|r| Ok(UserId(get_uuid(r, "id")?)))
            .collect()
    }

    async fn conversation(&self, id: ConversationId) -> StoreResult<Option<Conversation>> {
        let row = sqlx::query(&format!(
            "SELECT {CONVERSATION_COLS} FROM conversations c WHERE c.id = $1"
        ))
        .bind(id.to_string())
        .fetch_optional(&self.read)
        .await?;
        row.as_ref().map(conversation_from_row).transpose()
    }

    async fn conversation_between(
        &self,
        a: UserId,
        b: UserId,
    ) -> StoreResult<Option<Conversation>> {
        let (u1, u2) = ordered_pair(a, b);
        let row = sqlx::query(&format!(
            "SELECT {CONVERSATION_COLS} FROM conversations c WHERE c.user1_id = $1 AND c.user2_id = $2"
        ))
        .bind(u1.to_string())
        .bind(u2.to_string())
        .fetch_optional(&self.read)
        .await?;
        row.as_ref().map(conversation_from_row).transpose()
    }

    async fn create_conversation(&self, conv: &Conversation) -> StoreResult<Conversation> {
        sqlx::query(
            "INSERT INTO conversations (id, user1_id, user2_id, created_by, activity_at,
                 created_at, updated_at)
             VALUES ($1, $2, $3, $4, $5, $5, $5)
             ON CONFLICT (user1_id, user2_id) DO NOTHING",
        )
        .bind(conv.id.to_string())
        .bind(conv.user1_id.to_string())
        .bind(conv.user2_id.to_string())
        .bind(conv.created_by.to_string())
        .bind(ts(conv.created_at))
        .execute(&self.write)
        .await?;
        // Read through the writer: it is the connection that just wrote.
        let row = sqlx::query(&format!(
            "SELECT {CONVERSATION_COLS} FROM conversations c WHERE c.user1_id = $1 AND c.user2_id = $2"
        ))
        .bind(conv.user1_id.to_string())
        .bind(conv.user2_id.to_string())
        .fetch_one(&self.write)
        .await?;
        conversation_from_row(&row)
    }

    async fn list_conversations(
        &self,
        me: UserId,
        before: Option<Cursor>,
        limit: u32,
    ) -> StoreResult<Vec<ConversationView>> {
        let cursor_clause = if before.is_some() {
            " AND (c.activity_at, c.id) < ($3, $4)"
        } else {
            ""
        };
        let sql = format!(
            "SELECT {CONVERSATION_COLS}, {USER_COLS}, {MESSAGE_COLS}
             FROM conversations c
             JOIN users u ON u.id = CASE WHEN c.user1_id = $1 THEN c.user2_id ELSE c.user1_id END
             LEFT JOIN messages m ON m.id = c.last_message_id
             WHERE (c.user1_id = $1 OR c.user2_id = $1)
               AND (c.last_message_id IS NOT NULL OR c.created_by = $1)
               AND NOT EXISTS (SELECT 1 FROM blocks b WHERE b.blocker_id = $1 AND b.blocked_id = u.id)
               {cursor_clause}
             ORDER BY c.activity_at DESC, c.id DESC
             LIMIT $2"
        );
        let mut q = sqlx::query(&sql)
            .bind(me.to_string())
            .bind(i64::from(limit));
        if let Some(c) = before {
            q = q.bind(ts(c.at)).bind(c.id.to_string());
        }
        let rows = q.fetch_all(&self.read).await?;
        rows.iter().map(Self::conversation_row_view).collect()
    }

    async fn unread_counts(&self, me: UserId) -> StoreResult<Vec<(ConversationId, u64)>> {
        let rows = sqlx::query(
            "SELECT c.id AS id,
                    CASE WHEN c.user1_id = $1 THEN c.user1_unread_count ELSE c.user2_unread_count END AS unread
             FROM conversations c
             WHERE (c.user1_id = $1 OR c.user2_id = $1)
               AND (CASE WHEN c.user1_id = $1 THEN c.user1_unread_count ELSE c.user2_unread_count END) > 0
               AND NOT EXISTS (SELECT 1 FROM blocks b WHERE b.blocker_id = $1
                   AND b.blocked_id = CASE WHEN c.user1_id = $1 THEN c.user2_id ELSE c.user1_id END)
             ORDER BY c.activity_at DESC, c.id DESC",
        )
        .bind(me.to_string())
        .fetch_all(&self.read)
        .await?;
        rows.iter()
            .map(|r| Ok((ConversationId(get_uuid(r, "id")?), get_count(r, "unread")?)))
            .collect()
    }

    async fn insert_messages(&self, batch: &[NewMessage]) -> Vec<StoreResult<InsertOutcome>> {
        self.store_batch(batch).await
    }

    async fn message(&self, id: MessageId) -> StoreResult<Option<Message>> {
        let row = sqlx::query(&format!(
            "SELECT {MESSAGE_COLS} FROM messages m WHERE m.id = $1"
        ))
        .bind(id.to_string())
        .fetch_optional(&self.read)
        .await?;
        row.as_ref().map(message_from_row).transpose()
    }

    async fn message_by_temp_id(
        &self,
        sender: UserId,
        temp_id: &str,
    ) -> StoreResult<Option<Message>> {
        let row = sqlx::query(&format!(
            "SELECT {MESSAGE_COLS} FROM messages m WHERE m.sender_id = $1 AND m.temp_id = $2"
        ))
        .bind(sender.to_string())
        .bind(temp_id)
        .fetch_optional(&self.write)
        .await?;
        row.as_ref().map(message_from_row).transpose()
    }

    async fn list_messages(
        &self,
        conv: ConversationId,
        q: &MessageQuery,
    ) -> StoreResult<Vec<Message>> {
        let mut sql = format!("SELECT {MESSAGE_COLS} FROM messages m WHERE m.conversation_id = $1");
        sql.push_str(&type_filter(&q.types));
        if q.before.is_some() {
            sql.push_str(" AND (m.created_at, m.id) < ($3, $4)");
        }
        if q.after.is_some() {
            sql.push_str(" AND (m.created_at, m.id) > ($5, $6)");
        }
        sql.push_str(if q.ascending {
            " ORDER BY m.created_at ASC, m.id ASC LIMIT $2"
        } else {
            " ORDER BY m.created_at DESC, m.id DESC LIMIT $2"
        });
        let (b_at, b_id) = q.before.map(|c| (ts(c.at), c.id.to_string())).unzip();
        let (a_at, a_id) = q.after.map(|c| (ts(c.at), c.id.to_string())).unzip();
        let rows = sqlx::query(&sql)
            .bind(conv.to_string())
            .bind(i64::from(q.limit))
            .bind(b_at)
            .bind(b_id)
            .bind(a_at)
            .bind(a_id)
            .fetch_all(&self.read)
            .await?;
        rows.iter().map(message_from_row).collect()
    }

    async fn mark_read(
        &self,
        conv: ConversationId,
        reader: UserId,
        up_to: Option<Cursor>,
        now: DateTime<Utc>,
    ) -> StoreResult<MarkReadOutcome> {
        let mut tx = self.write.begin().await?;
        let (user1, user2): (String, String) =
            sqlx::query_as("SELECT user1_id, user2_id FROM conversations WHERE id = $1")
                .bind(conv.to_string())
                .fetch_optional(&mut *tx)
                .await?
                .ok_or(StoreError::NotFound)?;
        let mut sql = String::from(
            "UPDATE messages SET is_read = 1, read_at = $3, updated_at = $3
             WHERE conversation_id = $1 AND receiver_id = $2 AND is_read = 0",
        );
        if up_to.is_some() {
            sql.push_str(" AND (created_at, id) <= ($4, $5)");
        }
        sql.push_str(" RETURNING id, created_at");
        let (u_at, u_id) = up_to.map(|c| (ts(c.at), c.id.to_string())).unzip();
        let rows = sqlx::query(&sql)
            .bind(conv.to_string())
            .bind(reader.to_string())
            .bind(ts(now))
            .bind(u_at)
            .bind(u_id)
            .fetch_all(&mut *tx)
            .await?;
        let mut newest: Option<(i64, String)> = None;
        for r in &rows {
            let key: (i64, String) = (r.try_get("created_at")?, r.try_get("id")?);
            if newest.as_ref().is_none_or(|n| key > *n) {
                newest = Some(key);
            }
        }
        let left: i64 = sqlx::query_scalar(
            "SELECT COUNT(*) FROM messages WHERE conversation_id = $1 AND receiver_id = $2 AND is_read = 0",
        )
        .bind(conv.to_string())
        .bind(reader.to_string())
        .fetch_one(&mut *tx)
        .await?;
        let column = if user1 == reader.to_string() {
            "user1_unread_count"
        } else {
            "user2_unread_count"
        };
        sqlx::query(&format!(
            "UPDATE conversations SET {column} = $1 WHERE id = $2"
        ))
        .bind(left)
        .bind(conv.to_string())
        .execute(&mut *tx)
        .await?;
        let up_to = newest
            .map(|(_, id)| Uuid::parse_str(&id).map(MessageId))
            .transpose()
            .map_err(|e| StoreError::Other(e.to_string()))?;
        let mut seqs = None;
        if let Some(up_to) = up_to {
            let other = if user1 == reader.to_string() {
                user2
            } else {
                user1
            };
            let other =
                UserId(Uuid::parse_str(&other).map_err(|e| StoreError::Other(e.to_string()))?);
            // Read receipts never cross a block (SPEC "Privacy"): then only the reader's
            // own ack is logged.
            let blocked: bool = sqlx::query_scalar(BLOCKED_EITHER_WAY_SQL)
                .bind(reader.to_string())
                .bind(other.to_string())
                .fetch_one(&mut *tx)
                .await?;
            let reader_seq = bump_seq(&mut tx, reader).await?;
            let other_seq = if blocked {
                None
            } else {
                Some(bump_seq(&mut tx, other).await?)
            };
            let logged = std::iter::once((reader, reader_seq, "read_ack"))
                .chain(other_seq.map(|seq| (other, seq, "read_update")));
            for (user, seq, kind) in logged {
                sqlx::query(
                    "INSERT INTO read_events (user_id, seq, kind, conversation_id, reader_id,
                         up_to_message_id, read_at)
                     VALUES ($1, $2, $3, $4, $5, $6, $7)",
                )
                .bind(user.to_string())
                .bind(seq as i64)
                .bind(kind)
                .bind(conv.to_string())
                .bind(reader.to_string())
                .bind(up_to.to_string())
                .bind(ts(now))
                .execute(&mut *tx)
                .await?;
            }
            seqs = Some(ReadSeqs {
                reader: reader_seq,
                other: other_seq,
            });
        }
        tx.commit().await?;
        Ok(MarkReadOutcome {
            marked: rows.len() as u64,
            up_to,
            unread_left: left.max(0) as u64,
            seqs,
        })
    }

    async fn event_head(&self, user: UserId) -> StoreResult<u64> {
        let seq: Option<i64> = sqlx::query_scalar("SELECT seq FROM event_heads WHERE user_id = $1")
            .bind(user.to_string())
            .fetch_optional(&self.read)
            .await?;
        Ok(seq.unwrap_or(0).max(0) as u64)
    }

    async fn event_heads(&self, users: &[UserId]) -> StoreResult<Vec<(UserId, u64)>> {
        if users.is_empty() {
            return Ok(Vec::new());
        }
        let ids = serde_json::to_string(&users.iter().map(|u| u.to_string()).collect::<Vec<_>>())
            .map_err(|e| StoreError::Other(e.to_string()))?;
        let rows = sqlx::query(
            "SELECT user_id, seq FROM event_heads WHERE user_id IN (SELECT value FROM json_each($1))",
        )
        .bind(ids)
        .fetch_all(&self.read)
        .await?;
        rows.iter()
            .map(|r| {
                let seq: i64 = r.try_get("seq")?;
                Ok((UserId(get_uuid(r, "user_id")?), seq.max(0) as u64))
            })
            .collect()
    }

    async fn events(
        &self,
        user: UserId,
        after: u64,
        through: u64,
        limit: u32,
    ) -> StoreResult<Vec<LoggedEvent>> {
        let bounds = (
            i64::try_from(after).unwrap_or(i64::MAX),
            i64::try_from(through).unwrap_or(i64::MAX),
            i64::from(limit),
        );
        let messages = sqlx::query(&logged_messages_sql(MESSAGE_COLS))
            .bind(user.to_string())
            .bind(bounds.0)
            .bind(bounds.1)
            .bind(bounds.2)
            .fetch_all(&self.read)
            .await?
            .iter()
            .map(|r| {
                Ok(LoggedEvent {
                    seq: seq_of(r.try_get("e_seq")?)?,
                    kind: LoggedKind::Message(message_from_row(r)?),
                })
            })
            .collect::<StoreResult<Vec<_>>>()?;
        let uuid = |s: String| -> StoreResult<Uuid> {
            Uuid::parse_str(&s)
                .map_err(|e| StoreError::Other(format!("bad id in read_events: {e}")))
        };
        let reads = sqlx::query(LOGGED_READS_SQL)
            .bind(user.to_string())
            .bind(bounds.0)
            .bind(bounds.1)
            .bind(bounds.2)
            .fetch_all(&self.read)
            .await?
            .iter()
            .map(|r| {
                let kind: String = r.try_get("e_kind")?;
                let kind = LoggedKind::read(
                    &kind,
                    ConversationId(uuid(r.try_get("e_conversation_id")?)?),
                    UserId(uuid(r.try_get("e_reader_id")?)?),
                    MessageId(uuid(r.try_get("e_up_to")?)?),
                    to_ts(r.try_get("e_read_at")?)?,
                );
                Ok(LoggedEvent {
                    seq: seq_of(r.try_get("e_seq")?)?,
                    kind,
                })
            })
            .collect::<StoreResult<Vec<_>>>()?;
        Ok(first_events(messages, reads, limit))
    }

    async fn message_seqs(&self, id: MessageId) -> StoreResult<Vec<(UserId, u64)>> {
        let row: Option<(String, Option<i64>, String, Option<i64>)> = sqlx::query_as(
            "SELECT sender_id, sender_seq, receiver_id, receiver_seq FROM messages WHERE id = $1",
        )
        .bind(id.to_string())
        .fetch_optional(&self.read)
        .await?;
        let Some((s, ss, r, rs)) = row else {
            return Ok(Vec::new());
        };
        let mut out = Vec::new();
        for (u, seq) in [(s, ss), (r, rs)] {
            if let Some(seq) = seq {
                let u = Uuid::parse_str(&u).map_err(|e| StoreError::Other(e.to_string()))?;
                out.push((UserId(u), seq.max(0) as u64));
            }
        }
        Ok(out)
    }

    async fn list_links(
        &self,
        conv: ConversationId,
        before: Option<Cursor>,
        limit: u32,
    ) -> StoreResult<Vec<(LinkItem, Cursor)>> {
        let cursor_clause = if before.is_some() {
            " AND (l.created_at, l.id) < ($3, $4)"
        } else {
            ""
        };
        let (b_at, b_id) = before.map(|c| (ts(c.at), c.id.to_string())).unzip();
        let rows = sqlx::query(&format!(
            "SELECT l.id, l.url, l.message_id, l.sender_id, l.created_at FROM message_links l
             WHERE l.conversation_id = $1 {cursor_clause}
             ORDER BY l.created_at DESC, l.id DESC LIMIT $2"
        ))
        .bind(conv.to_string())
        .bind(i64::from(limit))
        .bind(b_at)
        .bind(b_id)
        .fetch_all(&self.read)
        .await?;
        rows.iter()
            .map(|r| {
                let created_at = get_ts(r, "created_at")?;
                Ok((
                    LinkItem {
                        url: r.try_get("url")?,
                        message_id: MessageId(get_uuid(r, "message_id")?),
                        sender_id: UserId(get_uuid(r, "sender_id")?),
                        created_at,
                    },
                    Cursor::new(created_at, get_uuid(r, "id")?),
                ))
            })
            .collect()
    }

    async fn block(
        &self,
        blocker: UserId,
        blocked: UserId,
        now: DateTime<Utc>,
    ) -> StoreResult<bool> {
        let n = sqlx::query(
            "INSERT INTO blocks (id, blocker_id, blocked_id, created_at) VALUES ($1, $2, $3, $4)
             ON CONFLICT (blocker_id, blocked_id) DO NOTHING",
        )
        .bind(Uuid::now_v7().to_string())
        .bind(blocker.to_string())
        .bind(blocked.to_string())
        .bind(ts(now))
        .execute(&self.write)
        .await?
        .rows_affected();
        Ok(n == 1)
    }

    async fn unblock(&self, blocker: UserId, blocked: UserId) -> StoreResult<bool> {
        let n = sqlx::query("DELETE FROM blocks WHERE blocker_id = $1 AND blocked_id = $2")
            .bind(blocker.to_string())
            .bind(blocked.to_string())
            .execute(&self.write)
            .await?
            .rows_affected();
        Ok(n > 0)
    }

    async fn send_context(
        &self,
        sender: UserId,
        conv: ConversationId,
        temp_id: Option<&str>,
    ) -> StoreResult<Option<SendContext>> {
        let row = sqlx::query(SEND_CONTEXT_SQL)
            .bind(sender.to_string())
            .bind(conv.to_string())
            .bind(temp_id)
            .fetch_optional(&self.read)
            .await?;
        row.map(|r| -> StoreResult<SendContext> {
            Ok(SendContext {
                receiver: UserId(get_uuid(&r, "other")?),
                sender_blocks: r.try_get("sender_blocks")?,
                receiver_blocks: r.try_get("receiver_blocks")?,
                existing: get_opt_uuid(&r, "existing")?.map(MessageId),
            })
        })
        .transpose()
    }

    async fn block_status(&self, a: UserId, b: UserId) -> StoreResult<(bool, bool)> {
        let rows: Vec<String> = sqlx::query_scalar(
            "SELECT blocker_id FROM blocks
             WHERE (blocker_id = $1 AND blocked_id = $2) OR (blocker_id = $2 AND blocked_id = $1)",
        )
        .bind(a.to_string())
        .bind(b.to_string())
        .fetch_all(&self.read)
        .await?;
        let a_s = a.to_string();
        let b_s = b.to_string();
        Ok((rows.contains(&a_s), rows.contains(&b_s)))
    }

    async fn list_blocks(
        &self,
        blocker: UserId,
        before: Option<Cursor>,
        limit: u32,
    ) -> StoreResult<Vec<(BlockedUser, Cursor)>> {
        let cursor_clause = if before.is_some() {
            " AND (b.created_at, b.id) < ($3, $4)"
        } else {
            ""
        };
        let (b_at, b_id) = before.map(|c| (ts(c.at), c.id.to_string())).unzip();
        let rows = sqlx::query(&format!(
            "SELECT b.id AS b_id, b.created_at AS b_created_at, {USER_COLS}
             FROM blocks b JOIN users u ON u.id = b.blocked_id
             WHERE b.blocker_id = $1 {cursor_clause}
             ORDER BY b.created_at DESC, b.id DESC LIMIT $2"
        ))
        .bind(blocker.to_string())
        .bind(i64::from(limit))
        .bind(b_at)
        .bind(b_id)
        .fetch_all(&self.read)
        .await?;
        rows.iter()
            .map(|r| {
                let user = user_from_row(r)?;
                let at = get_ts(r, "b_created_at")?;
                Ok((
                    BlockedUser {
                        user_id: user.id,
                        username: user.username,
                        display_name: user.display_name,
                        blocked_at: at,
                    },
                    Cursor::new(at, get_uuid(r, "b_id")?),
                ))
            })
            .collect()
    }

    async fn add_push_subscription(
        &self,
        user: UserId,
        kind: PushKind,
        target: &str,
        keys: Option<(&str, &str)>,
        now: DateTime<Utc>,
    ) -> StoreResult<PushSubscription> {
        let row = sqlx::query(
            "INSERT INTO push_subscriptions (id, user_id, kind, target, p256dh, auth, created_at)
             VALUES ($1, $2, $3, $4, $5, $6, $7)
             ON CONFLICT (user_id, target) DO UPDATE SET kind = excluded.kind,
                 p256dh = excluded.p256dh, auth = excluded.auth
             RETURNING id, created_at",
        )
        .bind(Uuid::now_v7().to_string())
        .bind(user.to_string())
        .bind(kind.as_str())
        .bind(target)
        .bind(keys.map(|k| k.0))
        .bind(keys.map(|k| k.1))
        .bind(ts(now))
        .fetch_one(&self.write)
        .await?;
        Ok(PushSubscription {
            id: get_uuid(&row, "id")?,
            kind,
            target: target.to_string(),
            created_at: get_ts(&row, "created_at")?,
        })
    }

    async fn push_subscriptions(&self, user: UserId) -> StoreResult<Vec<StoredPush>> {
        let rows = sqlx::query(
            "SELECT id, kind, target, p256dh, auth, created_at FROM push_subscriptions
             WHERE user_id = $1 ORDER BY created_at, id",
        )
        .bind(user.to_string())
        .fetch_all(&self.read)
        .await?;
        rows.iter()
            .map(|r| {
                let kind: String = r.try_get("kind")?;
                Ok(StoredPush {
                    subscription: PushSubscription {
                        id: get_uuid(r, "id")?,
                        kind: PushKind::parse(&kind)
                            .ok_or_else(|| StoreError::Other(format!("bad push kind {kind}")))?,
                        target: r.try_get("target")?,
                        created_at: get_ts(r, "created_at")?,
                    },
                    p256dh: r.try_get("p256dh")?,
                    auth: r.try_get("auth")?,
                })
            })
            .collect()
    }

    async fn delete_push_subscription(&self, user: UserId, id: Uuid) -> StoreResult<bool> {
        let n = sqlx::query("DELETE FROM push_subscriptions WHERE id = $1 AND user_id = $2")
            .bind(id.to_string())
            .bind(user.to_string())
            .execute(&self.write)
            .await?
            .rows_affected();
        Ok(n > 0)
    }

    async fn rate_limits(&self) -> StoreResult<Vec<(String, RateLimitSetting)>> {
        let rows = sqlx::query(
            "SELECT action, max_requests, period_seconds FROM rate_limits ORDER BY action",
        )
        .fetch_all(&self.read)
        .await?;
        rows.iter()
            .map(|r| {
                let max: i64 = r.try_get("max_requests")?;
                let period: i64 = r.try_get("period_seconds")?;
                Ok((
                    r.try_get("action")?,
                    RateLimitSetting {
                        max_requests: max.clamp(1, i64::from(u32::MAX)) as u32,
                        period_seconds: period.clamp(1, i64::from(u32::MAX)) as u32,
                    },
                ))
            })
            .collect()
    }

    async fn set_rate_limit(&self, action: &str, setting: RateLimitSetting) -> StoreResult<()> {
        sqlx::query(
            "INSERT INTO rate_limits (action, max_requests, period_seconds, updated_at)
             VALUES ($1, $2, $3, $4)
             ON CONFLICT (action) DO UPDATE SET max_requests = excluded.max_requests,
                 period_seconds = excluded.period_seconds, updated_at = excluded.updated_at",
        )
        .bind(action)
        .bind(i64::from(setting.max_requests))
        .bind(i64::from(setting.period_seconds))
        .bind(ts(Utc::now()))
        .execute(&self.write)
        .await?;
        Ok(())
    }

    async fn purge_count(&self, scope: PurgeScope) -> StoreResult<PurgeCount> {
        let q = format!(
            "SELECT count(*) FROM messages m WHERE {}",
            scope_clause(scope)
        );
        let (messages,): (i64,) = bind_scope(sqlx::query_as(&q), scope)
            .fetch_one(&self.read)
            .await?;
        let q = format!("{MEDIA_FOOTPRINT} WHERE {}", scope_clause(scope));
        let (objects, bytes): (i64, i64) = bind_scope(sqlx::query_as(&q), scope)
            .fetch_one(&self.read)
            .await?;
        Ok(PurgeCount {
            messages: messages.max(0) as u64,
            media_objects: objects.max(0) as u64,
            media_bytes: bytes.max(0) as u64,
        })
    }

    async fn purge_messages(&self, scope: PurgeScope, limit: u32) -> StoreResult<PurgedBatch> {
        // The DELETE comes first, so the transaction takes SQLite's write lock at once.
        let mut tx = self.write.begin().await?;
        let q = format!(
            "DELETE FROM messages WHERE id IN (
                 SELECT m.id FROM messages m WHERE {} ORDER BY m.id LIMIT {}
             ) RETURNING conversation_id, media",
            scope_clause(scope),
            limit.max(1)
        );
        let rows: Vec<(String, String)> = bind_scope(sqlx::query_as(&q), scope)
            .fetch_all(&mut *tx)
            .await?;
        let mut batch = PurgedBatch {
            messages: rows.len() as u64,
            media: Vec::new(),
        };
        let mut conversations: Vec<String> = Vec::new();
        for (conv, json) in rows {
            conversations.push(conv);
            batch.media.extend(parse_media(&json)?);
        }
        conversations.sort_unstable();
        conversations.dedup();
        if let PurgeScope::OlderThan { .. } = scope {
            // Retention covers the read events of the event log too (message events are
            // the messages).
            let q = format!(
                "DELETE FROM read_events WHERE {} RETURNING 1",
                scope_clause(scope)
                    .replace("m.created_at", "read_at")
                    .replace("m.", "")
            );
            let _: Vec<(i64,)> = bind_scope(sqlx::query_as(&q), scope)
                .fetch_all(&mut *tx)
                .await?;
        }
        for conv in &conversations {
            sqlx::query(RECOMPUTE_CONVERSATION)
                .bind(conv)
                .bind(ts(Utc::now()))
                .execute(&mut *tx)
                .await?;
        }
        tx.commit().await?;
        Ok(batch)
    }

    async fn delete_conversation(&self, id: ConversationId) -> StoreResult<Option<PurgedBatch>> {
        let mut tx = self.write.begin().await?;
        let media: Vec<(String,)> =
            sqlx::query_as("DELETE FROM messages WHERE conversation_id = $1 RETURNING media")
                .bind(id.to_string())
                .fetch_all(&mut *tx)
                .await?;
        let deleted = sqlx::query("DELETE FROM conversations WHERE id = $1")
            .bind(id.to_string())
            .execute(&mut *tx)
            .await?
            .rows_affected();
        tx.commit().await?;
        if deleted == 0 {
            return Ok(None);
        }
        let mut batch = PurgedBatch {
            messages: media.len() as u64,
            media: Vec::new(),
        };
        for (json,) in &media {
            batch.media.extend(parse_media(json)?);
        }
        Ok(Some(batch))
    }

    async fn erase_user(&self, id: UserId, now: DateTime<Utc>) -> StoreResult<ErasedUser> {
        let mut tx = self.write.begin().await?;
        let found = sqlx::query(
            "UPDATE users SET username = 'deleted-' || replace(id, '-', ''),
                 display_name = NULL, last_seen_at = NULL,
                 deleted_at = COALESCE(deleted_at, $2)
             WHERE id = $1",
        )
        .bind(id.to_string())
        .bind(ts(now))
        .execute(&mut *tx)
        .await?
        .rows_affected();
        if found == 0 {
            return Err(StoreError::NotFound);
        }
        let blocks = sqlx::query("DELETE FROM blocks WHERE blocker_id = $1 OR blocked_id = $1")
            .bind(id.to_string())
            .execute(&mut *tx)
            .await?
            .rows_affected();
        sqlx::query("DELETE FROM read_events WHERE user_id = $1")
            .bind(id.to_string())
            .execute(&mut *tx)
            .await?;
        let push_subscriptions = sqlx::query("DELETE FROM push_subscriptions WHERE user_id = $1")
            .bind(id.to_string())
            .execute(&mut *tx)
            .await?
            .rows_affected();
        let conversations = sqlx::query(
            "DELETE FROM conversations
             WHERE (user1_id = $1 OR user2_id = $1)
               AND EXISTS (SELECT 1 FROM users u
                           WHERE u.id = CASE WHEN conversations.user1_id = $1
                                             THEN conversations.user2_id
                                             ELSE conversations.user1_id END
                             AND u.deleted_at IS NOT NULL)",
        )
        .bind(id.to_string())
        .execute(&mut *tx)
        .await?
        .rows_affected();
        tx.commit().await?;
        Ok(ErasedUser {
            blocks,
            push_subscriptions,
            conversations,
        })
    }

    async fn media_page(
        &self,
        after: Option<MessageId>,
        limit: u32,
    ) -> StoreResult<(Vec<MediaItem>, Option<MessageId>)> {
        let rows: Vec<(String, String)> = sqlx::query_as(
            "SELECT id, media FROM messages
             WHERE media <> '[]' AND ($1 IS NULL OR id > $1)
             ORDER BY id LIMIT $2",
        )
        .bind(after.map(|m| m.to_string()))
        .bind(i64::from(limit.max(1)))
        .fetch_all(&self.read)
        .await?;
        let next = match rows.last() {
            Some((id, _)) => {
                Some(MessageId(Uuid::parse_str(id).map_err(|e| {
                    StoreError::Other(format!("bad message id {id}: {e}"))
                })?))
            }
            None => None,
        };
        let mut media = Vec::new();
        for (_, json) in &rows {
            media.extend(parse_media(json)?);
        }
        Ok((media, next))
    }

    async fn stats(&self, now: DateTime<Utc>) -> StoreResult<Stats> {
        let (users, erased_users, conversations, last_hour): (i64, i64, i64, i64) = sqlx::query_as(
            "SELECT (SELECT count(*) FROM users WHERE deleted_at IS NULL),
                        (SELECT count(*) FROM users WHERE deleted_at IS NOT NULL),
                        (SELECT count(*) FROM conversations),
                        (SELECT count(*) FROM messages WHERE created_at >= $1)",
        )
        .bind(ts(now - chrono::Duration::hours(1)))
        .fetch_one(&self.read)
        .await?;
        let by_type: Vec<(String, i64)> =
            sqlx::query_as("SELECT type, count(*) FROM messages GROUP BY type ORDER BY type")
                .fetch_all(&self.read)
                .await?;
        let (objects, bytes): (i64, i64) = sqlx::query_as(MEDIA_FOOTPRINT)
            .fetch_one(&self.read)
            .await?;
        let n = |v: i64| v.max(0) as u64;
        Ok(Stats {
            users: n(users),
            erased_users: n(erased_users),
            conversations: n(conversations),
            messages_by_type: by_type.into_iter().map(|(t, c)| (t, n(c))).collect(),
            media_objects: n(objects),
            media_bytes: n(bytes),
            messages_last_hour: n(last_hour),
        })
    }
}

fn parse_media(json: &str) -> StoreResult<Vec<MediaItem>> {
    serde_json::from_str(json).map_err(|e| StoreError::Other(format!("bad media json: {e}")))
}

/// (objects, bytes) of the media of `messages m`: each item plus its thumbnail when it has
/// one; bytes count originals (thumbnail sizes are not recorded). Append a WHERE to narrow.
const MEDIA_FOOTPRINT: &str = "SELECT count(*) + count(json_extract(i.value, '$.thumbnail_url')),
        COALESCE(sum(json_extract(i.value, '$.size')), 0)
    FROM messages m, json_each(m.media) i";

/// Recompute what a purge may have changed in conversation $1, from the messages left.
const RECOMPUTE_CONVERSATION: &str = "UPDATE conversations SET
    last_message_id = (SELECT m.id FROM messages m WHERE m.conversation_id = conversations.id
                       ORDER BY m.created_at DESC, m.id DESC LIMIT 1),
    last_message_at = (SELECT max(m.created_at) FROM messages m
                       WHERE m.conversation_id = conversations.id),
    activity_at = COALESCE((SELECT max(m.created_at) FROM messages m
                            WHERE m.conversation_id = conversations.id), created_at),
    user1_unread_count = (SELECT count(*) FROM messages m
                          WHERE m.conversation_id = conversations.id
                            AND m.receiver_id = conversations.user1_id AND m.is_read = 0),
    user2_unread_count = (SELECT count(*) FROM messages m
                          WHERE m.conversation_id = conversations.id
                            AND m.receiver_id = conversations.user2_id AND m.is_read = 0),
    updated_at = $2
    WHERE id = $1";

type SqliteQueryAs<'q, T> =
    sqlx::query::QueryAs<'q, sqlx::Sqlite, T, sqlx::sqlite::SqliteArguments<'q>>;

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

fn bind_scope<T>(q: SqliteQueryAs<'_, T>, scope: PurgeScope) -> SqliteQueryAs<'_, T> {
    match scope {
        PurgeScope::OlderThan {
            before,
            conversation,
        } => match conversation {
            Some(c) => q.bind(ts(before)).bind(c.to_string()),
            None => q.bind(ts(before)),
        },
        PurgeScope::Conversation(c) => q.bind(c.to_string()),
        PurgeScope::SentBy(u) => q.bind(u.to_string()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

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
}
