//! PostgreSQL implementation of [`Store`]: the production backend and source of truth
//! when several chatd instances run side by side.

mod send;

use std::time::Duration;

use async_trait::async_trait;
use chat_protocol::rest::{
    BlockedUser, LinkItem, MediaItem, Message, MessageType, PushKind, PushSubscription,
};
use chat_protocol::{ConversationId, MessageId, UserId};
use chrono::{DateTime, Utc};
use sqlx::postgres::{PgPool, PgPoolOptions, PgRow};
use sqlx::types::Json;
use sqlx::Row;
use uuid::Uuid;

use super::*;

static MIGRATOR: sqlx::migrate::Migrator = sqlx::migrate!("../migrations/postgres");

pub struct PostgresStore {
    pool: PgPool,
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

fn count(v: i64) -> u64 {
    v.max(0) as u64
}

fn message_from_row(row: &PgRow) -> StoreResult<Message> {
    let kind: String = row.try_get("m_type")?;
    let Json(media): Json<Vec<MediaItem>> = row.try_get("m_media")?;
    Ok(Message {
        id: MessageId(row.try_get("m_id")?),
        conversation_id: ConversationId(row.try_get("m_conversation_id")?),
        sender_id: UserId(row.try_get("m_sender_id")?),
        receiver_id: UserId(row.try_get("m_receiver_id")?),
        kind: MessageType::parse(&kind)
            .ok_or_else(|| StoreError::Other(format!("bad message type {kind}")))?,
        content: row.try_get("m_content")?,
        media,
        temp_id: row.try_get("m_temp_id")?,
        is_read: row.try_get("m_is_read")?,
        read_at: row.try_get("m_read_at")?,
        created_at: row.try_get("m_created_at")?,
    })
}

fn conversation_from_row(row: &PgRow) -> StoreResult<Conversation> {
    Ok(Conversation {
        id: ConversationId(row.try_get("c_id")?),
        user1_id: UserId(row.try_get("c_user1_id")?),
        user2_id: UserId(row.try_get("c_user2_id")?),
        created_by: UserId(row.try_get("c_created_by")?),
        last_message_id: row
            .try_get::<Option<Uuid>, _>("c_last_message_id")?
            .map(MessageId),
        last_message_at: row.try_get("c_last_message_at")?,
        activity_at: row.try_get("c_activity_at")?,
        user1_unread: count(row.try_get("c_user1_unread_count")?),
        user2_unread: count(row.try_get("c_user2_unread_count")?),
        created_at: row.try_get("c_created_at")?,
    })
}

fn user_from_row(row: &PgRow) -> StoreResult<User> {
    Ok(User {
        id: UserId(row.try_get("u_id")?),
        username: row.try_get("u_username")?,
        display_name: row.try_get("u_display_name")?,
        created_at: row.try_get("u_created_at")?,
        last_seen_at: row.try_get("u_last_seen_at")?,
    })
}

fn type_filter(types: &Option<Vec<MessageType>>) -> String {
    match types {
        Some(t) if !t.is_empty() => {
            let list: Vec<String> = t.iter().map(|k| format!("'{}'", k.as_str())).collect();
            format!(" AND m.type IN ({})", list.join(","))
        }
        _ => String::new(),
    }
}

impl PostgresStore {
    pub async fn connect(url: &str, max_connections: u32) -> StoreResult<Self> {
        let pool = PgPoolOptions::new()
            .max_connections(max_connections.max(1))
            .acquire_timeout(Duration::from_secs(5))
            .connect(url)
            .await?;
        Ok(PostgresStore { pool })
    }

    pub fn pool(&self) -> &PgPool {
        &self.pool
    }
}

#[async_trait]
impl Store for PostgresStore {
    fn backend(&self) -> &'static str {
        "postgres"
    }

    async fn migrate(&self) -> StoreResult<()> {
        // sqlx takes an advisory lock, so instances starting together migrate once.
        MIGRATOR.run(&self.pool).await?;
        Ok(())
    }

    async fn migration_status(&self) -> StoreResult<Vec<(i64, String, bool)>> {
        let applied: Vec<i64> =
            match sqlx::query_scalar("SELECT version FROM _sqlx_migrations WHERE success")
                .fetch_all(&self.pool)
                .await
            {
                Ok(v) => v,
                Err(sqlx::Error::Database(_)) => Vec::new(),
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
        sqlx::query("SELECT 1").execute(&self.pool).await?;
        Ok(())
    }

    async fn close(&self) {
        self.pool.close().await;
    }

    fn pool_stats(&self) -> Vec<PoolStats> {
        vec![PoolStats::of("postgres", &self.pool)]
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
             ON CONFLICT (id) DO UPDATE SET username = excluded.username,
                 last_seen_at = excluded.last_seen_at
                 WHERE users.deleted_at IS NULL
             RETURNING id AS u_id, username AS u_username, display_name AS u_display_name,
                 created_at AS u_created_at, last_seen_at AS u_last_seen_at",
        )
        .bind(id.0)
        .bind(username)
        .bind(now)
        .fetch_optional(&self.pool)
        .await?;
        // No row: the id exists but was erased (the update's WHERE refused it).
        row.as_ref()
            .map(user_from_row)
            .transpose()?
            .ok_or(StoreError::Erased)
    }

    async fn user_by_id(&self, id: UserId) -> StoreResult<Option<User>> {
        let row = sqlx::query(&format!("SELECT {USER_COLS} FROM users u WHERE u.id = $1"))
            .bind(id.0)
            .fetch_optional(&self.pool)
            .await?;
        row.as_ref().map(user_from_row).transpose()
    }

    async fn user_by_username(&self, username: &str) -> StoreResult<Option<User>> {
        let row = sqlx::query(&format!(
            "SELECT {USER_COLS} FROM users u WHERE u.username = $1"
        ))
        .bind(username)
        .fetch_optional(&self.pool)
        .await?;
        row.as_ref().map(user_from_row).transpose()
    }

    async fn list_users(&self, after_username: Option<&str>, limit: u32) -> StoreResult<Vec<User>> {
        let rows = sqlx::query(&format!(
            "SELECT {USER_COLS} FROM users u WHERE u.username > $1 ORDER BY u.username LIMIT $2"
        ))
        .bind(after_username.unwrap_or(""))
        .bind(i64::from(limit))
        .fetch_all(&self.pool)
        .await?;
        rows.iter().map(user_from_row).collect()
    }

    async fn touch_last_seen(&self, seen: &[(UserId, DateTime<Utc>)]) -> StoreResult<()> {
        if seen.is_empty() {
            return Ok(());
        }
        let ids: Vec<Uuid> = seen.iter().map(|(id, _)| id.0).collect();
        let ats: Vec<DateTime<Utc>> = seen.iter().map(|(_, at)| *at).collect();
        // Duplicates of one id: the latest time wins (MAX per id before the join).
        sqlx::query(
            "UPDATE users u SET last_seen_at = GREATEST(COALESCE(u.last_seen_at, v.at), v.at)
             FROM (SELECT id, MAX(at) AS at FROM UNNEST($1::uuid[], $2::timestamptz[]) AS t(id, at)
                   GROUP BY id) v
             WHERE u.id = v.id",
        )
        .bind(&ids)
        .bind(&ats)
        .execute(&self.pool)
        .await?;
        Ok(())
    }

    async fn contacts(&self, me: UserId) -> StoreResult<Vec<(UserId, Option<DateTime<Utc>>)>> {
        let rows = sqlx::query_as::<_, (Uuid, Option<DateTime<Utc>>)>(
            "SELECT u.id AS id, u.last_seen_at AS last_seen_at
             FROM conversations c
             JOIN users u ON u.id = CASE WHEN c.user1_id = $1 THEN c.user2_id ELSE c.user1_id END
             WHERE (c.user1_id = $1 OR c.user2_id = $1)
               AND c.last_message_id IS NOT NULL
               AND NOT EXISTS (SELECT 1 FROM blocks b
                   WHERE (b.blocker_id = $1 AND b.blocked_id = u.id)
                      OR (b.blocker_id = u.id AND b.blocked_id = $1))",
        )
        .bind(me.0)
        .fetch_all(&self.pool)
        .await?;
        Ok(rows.into_iter().map(|(id, at)| (UserId(id), at)).collect())
    }

    async fn blocked_among(&self, me: UserId, others: &[UserId]) -> StoreResult<Vec<UserId>> {
        if others.is_empty() {
            return Ok(Vec::new());
        }
        let ids: Vec<Uuid> = others.iter().map(|u| u.0).collect();
        let rows: Vec<Uuid> = sqlx::query_scalar(
            "SELECT blocked_id FROM blocks WHERE blocker_id = $1 AND blocked_id = ANY($2)
             UNION
             SELECT blocker_id FROM blocks WHERE blocked_id = $1 AND blocker_id = ANY($2)",
        )
        .bind(me.0)
        .bind(&ids)
        .fetch_all(&self.pool)
        .await?;
        Ok(rows.into_iter().map(UserId).collect())
    }

    async fn conversation(&self, id: ConversationId) -> StoreResult<Option<Conversation>> {
        let row = sqlx::query(&format!(
            "SELECT {CONVERSATION_COLS} FROM conversations c WHERE c.id = $1"
        ))
        .bind(id.0)
        .fetch_optional(&self.pool)
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
        .bind(u1.0)
        .bind(u2.0)
        .fetch_optional(&self.pool)
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
        .bind(conv.id.0)
        .bind(conv.user1_id.0)
        .bind(conv.user2_id.0)
        .bind(conv.created_by.0)
        .bind(conv.created_at)
        .execute(&self.pool)
        .await?;
        self.conversation_between(conv.user1_id, conv.user2_id)
            .await?
            .ok_or(StoreError::NotFound)
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
        let mut q = sqlx::query(&sql).bind(me.0).bind(i64::from(limit));
        if let Some(c) = before {
            q = q.bind(c.at).bind(c.id);
        }
        let rows = q.fetch_all(&self.pool).await?;
        rows.iter()
            .map(|row| {
                let has_msg: Option<Uuid> = row.try_get("m_id")?;
                Ok(ConversationView {
                    conversation: conversation_from_row(row)?,
                    other: user_from_row(row)?,
                    last_message: has_msg.map(|_| message_from_row(row)).transpose()?,
                })
            })
            .collect()
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
        .bind(me.0)
        .fetch_all(&self.pool)
        .await?;
        rows.iter()
            .map(|r| {
                Ok((
                    ConversationId(r.try_get("id")?),
                    count(r.try_get("unread")?),
                ))
            })
            .collect()
    }

    async fn insert_messages(&self, batch: &[NewMessage]) -> Vec<StoreResult<InsertOutcome>> {
        self.store_batch(batch).await
    }

    async fn message(&self, id: MessageId) -> StoreResult<Option<Message>> {
        let row = sqlx::query(&format!(
            "SELECT {MESSAGE_COLS} FROM messages m WHERE m.id = $1"
        ))
        .bind(id.0)
        .fetch_optional(&self.pool)
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
        .bind(sender.0)
        .bind(temp_id)
        .fetch_optional(&self.pool)
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
        let mut n = 2;
        if q.before.is_some() {
            sql.push_str(&format!(
                " AND (m.created_at, m.id) < (${}, ${})",
                n + 1,
                n + 2
            ));
            n += 2;
        }
        if q.after.is_some() {
            sql.push_str(&format!(
                " AND (m.created_at, m.id) > (${}, ${})",
                n + 1,
                n + 2
            ));
        }
        sql.push_str(if q.ascending {
            " ORDER BY m.created_at ASC, m.id ASC LIMIT $2"
        } else {
            " ORDER BY m.created_at DESC, m.id DESC LIMIT $2"
        });
        let mut query = sqlx::query(&sql).bind(conv.0).bind(i64::from(q.limit));
        for c in [q.before, q.after].into_iter().flatten() {
            query = query.bind(c.at).bind(c.id);
        }
        let rows = query.fetch_all(&self.pool).await?;
        rows.iter().map(message_from_row).collect()
    }

    async fn mark_read(
        &self,
        conv: ConversationId,
        reader: UserId,
        up_to: Option<Cursor>,
        now: DateTime<Utc>,
    ) -> StoreResult<MarkReadOutcome> {
        let mut tx = self.pool.begin().await?;
        let (user1, user2): (Uuid, Uuid) =
            sqlx::query_as("SELECT user1_id, user2_id FROM conversations WHERE id = $1")
                .bind(conv.0)
                .fetch_optional(&mut *tx)
                .await?
                .ok_or(StoreError::NotFound)?;
        let other = if user1 == reader.0 { user2 } else { user1 };
        // The order a send takes its locks: both event-log counters (user-id order), then
        // the conversation row. A concurrent send updates the row too, so the recount below
        // can never overwrite an increment it did not see.
        sqlx::query(
            "SELECT user_id FROM event_heads WHERE user_id = ANY($1) ORDER BY user_id FOR NO KEY UPDATE",
        )
        .bind([reader.0, other])
        .fetch_all(&mut *tx)
        .await?;
        sqlx::query("SELECT 1 FROM conversations WHERE id = $1 FOR NO KEY UPDATE")
            .bind(conv.0)
            .fetch_optional(&mut *tx)
            .await?
            .ok_or(StoreError::NotFound)?;
        let mut sql = String::from(
            "UPDATE messages SET is_read = TRUE, read_at = $3, updated_at = $3
             WHERE conversation_id = $1 AND receiver_id = $2 AND NOT is_read",
        );
        if up_to.is_some() {
            sql.push_str(" AND (created_at, id) <= ($4, $5)");
        }
        sql.push_str(" RETURNING id, created_at");
        let mut query = sqlx::query(&sql).bind(conv.0).bind(reader.0).bind(now);
        if let Some(c) = up_to {
            query = query.bind(c.at).bind(c.id);
        }
        let rows = query.fetch_all(&mut *tx).await?;
        let mut newest: Option<(DateTime<Utc>, Uuid)> = None;
        for r in &rows {
            let key: (DateTime<Utc>, Uuid) = (r.try_get("created_at")?, r.try_get("id")?);
            if newest.is_none_or(|n| key > n) {
                newest = Some(key);
            }
        }
        let left: i64 = sqlx::query_scalar(
            "SELECT COUNT(*) FROM messages WHERE conversation_id = $1 AND receiver_id = $2 AND NOT is_read",
        )
        .bind(conv.0)
        .bind(reader.0)
        .fetch_one(&mut *tx)
        .await?;
        let column = if user1 == reader.0 {
            "user1_unread_count"
        } else {
            "user2_unread_count"
        };
        sqlx::query(&format!(
            "UPDATE conversations SET {column} = $1 WHERE id = $2"
        ))
        .bind(left)
        .bind(conv.0)
        .execute(&mut *tx)
        .await?;
        let mut seqs = None;
        if let Some((_, up_to_id)) = newest {
            // Read receipts never cross a block (SPEC "Privacy"): then only the reader's
            // own ack is logged.
            let blocked: bool = sqlx::query_scalar(BLOCKED_EITHER_WAY_SQL)
                .bind(reader.0)
                .bind(other)
                .fetch_one(&mut *tx)
                .await?;
            let told: Vec<Uuid> = if blocked {
                vec![reader.0]
            } else {
                vec![reader.0, other]
            };
            // Counters already locked above; a reader of received messages and their
            // sender both have one.
            let heads: Vec<(Uuid, i64)> = sqlx::query_as(
                "WITH seq AS (
                     INSERT INTO event_heads (user_id, seq)
                     SELECT u, 1 FROM unnest($2::uuid[]) AS u ORDER BY u
                     ON CONFLICT (user_id) DO UPDATE SET seq = event_heads.seq + 1
                     RETURNING user_id, seq
                 ), ev AS (
                     INSERT INTO read_events (user_id, seq, kind, conversation_id, reader_id,
                         up_to_message_id, read_at)
                     SELECT user_id, seq,
                            CASE WHEN user_id = $1 THEN 'read_ack' ELSE 'read_update' END,
                            $3, $1, $4, $5
                     FROM seq
                 )
                 SELECT user_id, seq FROM seq",
            )
            .bind(reader.0)
            .bind(&told)
            .bind(conv.0)
            .bind(up_to_id)
            .bind(now)
            .fetch_all(&mut *tx)
            .await?;
            let of = |u: Uuid| heads.iter().find(|(id, _)| *id == u).map(|(_, s)| *s);
            seqs = Some(ReadSeqs {
                reader: seq_of(of(reader.0))?,
                other: if blocked {
                    None
                } else {
                    Some(seq_of(of(other))?)
                },
            });
        }
        tx.commit().await?;
        Ok(MarkReadOutcome {
            marked: rows.len() as u64,
            up_to: newest.map(|(_, id)| MessageId(id)),
            unread_left: count(left),
            seqs,
        })
    }

    async fn event_head(&self, user: UserId) -> StoreResult<u64> {
        let seq: Option<i64> = sqlx::query_scalar("SELECT seq FROM event_heads WHERE user_id = $1")
            .bind(user.0)
            .fetch_optional(&self.pool)
            .await?;
        Ok(count(seq.unwrap_or(0)))
    }

    async fn event_heads(&self, users: &[UserId]) -> StoreResult<Vec<(UserId, u64)>> {
        let ids: Vec<Uuid> = users.iter().map(|u| u.0).collect();
        let rows: Vec<(Uuid, i64)> =
            sqlx::query_as("SELECT user_id, seq FROM event_heads WHERE user_id = ANY($1)")
                .bind(&ids)
                .fetch_all(&self.pool)
                .await?;
        Ok(rows
            .into_iter()
            .map(|(id, seq)| (UserId(id), count(seq)))
            .collect())
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
            .bind(user.0)
            .bind(bounds.0)
            .bind(bounds.1)
            .bind(bounds.2)
            .fetch_all(&self.pool)
            .await?
            .iter()
            .map(|r| {
                Ok(LoggedEvent {
                    seq: seq_of(r.try_get("e_seq")?)?,
                    kind: LoggedKind::Message(message_from_row(r)?),
                })
            })
            .collect::<StoreResult<Vec<_>>>()?;
        let reads = sqlx::query(LOGGED_READS_SQL)
            .bind(user.0)
            .bind(bounds.0)
            .bind(bounds.1)
            .bind(bounds.2)
            .fetch_all(&self.pool)
            .await?
            .iter()
            .map(|r| {
                let kind: String = r.try_get("e_kind")?;
                let kind = LoggedKind::read(
                    &kind,
                    ConversationId(r.try_get("e_conversation_id")?),
                    UserId(r.try_get("e_reader_id")?),
                    MessageId(r.try_get("e_up_to")?),
                    r.try_get("e_read_at")?,
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
        let row: Option<(Uuid, Option<i64>, Uuid, Option<i64>)> = sqlx::query_as(
            "SELECT sender_id, sender_seq, receiver_id, receiver_seq FROM messages WHERE id = $1",
        )
        .bind(id.0)
        .fetch_optional(&self.pool)
        .await?;
        Ok(row
            .map(|(s, ss, r, rs)| {
                [(s, ss), (r, rs)]
                    .into_iter()
                    .filter_map(|(u, seq)| seq.map(|q| (UserId(u), count(q))))
                    .collect()
            })
            .unwrap_or_default())
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
        let sql = format!(
            "SELECT l.id, l.url, l.message_id, l.sender_id, l.created_at FROM message_links l
             WHERE l.conversation_id = $1 {cursor_clause}
             ORDER BY l.created_at DESC, l.id DESC LIMIT $2"
        );
        let mut q = sqlx::query_as::<_, (Uuid, String, Uuid, Uuid, DateTime<Utc>)>(&sql)
            .bind(conv.0)
            .bind(i64::from(limit));
        if let Some(c) = before {
            q = q.bind(c.at).bind(c.id);
        }
        let rows = q.fetch_all(&self.pool).await?;
        Ok(rows
            .into_iter()
            .map(|(id, url, message_id, sender_id, created_at)| {
                (
                    LinkItem {
                        url,
                        message_id: MessageId(message_id),
                        sender_id: UserId(sender_id),
                        created_at,
                    },
                    Cursor::new(created_at, id),
                )
            })
            .collect())
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
        .bind(Uuid::now_v7())
        .bind(blocker.0)
        .bind(blocked.0)
        .bind(now)
        .execute(&self.pool)
        .await?
        .rows_affected();
        Ok(n == 1)
    }

    async fn unblock(&self, blocker: UserId, blocked: UserId) -> StoreResult<bool> {
        let n = sqlx::query("DELETE FROM blocks WHERE blocker_id = $1 AND blocked_id = $2")
            .bind(blocker.0)
            .bind(blocked.0)
            .execute(&self.pool)
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
            .bind(sender.0)
            .bind(conv.0)
            .bind(temp_id)
            .fetch_optional(&self.pool)
            .await?;
        row.map(|r| -> StoreResult<SendContext> {
            Ok(SendContext {
                receiver: UserId(r.try_get("other")?),
                sender_blocks: r.try_get("sender_blocks")?,
                receiver_blocks: r.try_get("receiver_blocks")?,
                existing: r.try_get::<Option<Uuid>, _>("existing")?.map(MessageId),
            })
        })
        .transpose()
    }

    async fn block_status(&self, a: UserId, b: UserId) -> StoreResult<(bool, bool)> {
        let rows: Vec<Uuid> = sqlx::query_scalar(
            "SELECT blocker_id FROM blocks
             WHERE (blocker_id = $1 AND blocked_id = $2) OR (blocker_id = $2 AND blocked_id = $1)",
        )
        .bind(a.0)
        .bind(b.0)
        .fetch_all(&self.pool)
        .await?;
        Ok((rows.contains(&a.0), rows.contains(&b.0)))
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
        let sql = format!(
            "SELECT b.id AS b_id, b.created_at AS b_created_at, {USER_COLS}
             FROM blocks b JOIN users u ON u.id = b.blocked_id
             WHERE b.blocker_id = $1 {cursor_clause}
             ORDER BY b.created_at DESC, b.id DESC LIMIT $2"
        );
        let mut q = sqlx::query(&sql).bind(blocker.0).bind(i64::from(limit));
        if let Some(c) = before {
            q = q.bind(c.at).bind(c.id);
        }
        let rows = q.fetch_all(&self.pool).await?;
        rows.iter()
            .map(|r| {
                let user = user_from_row(r)?;
                let at: DateTime<Utc> = r.try_get("b_created_at")?;
                Ok((
                    BlockedUser {
                        user_id: user.id,
                        username: user.username,
                        display_name: user.display_name,
                        blocked_at: at,
                    },
                    Cursor::new(at, r.try_get("b_id")?),
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
        let (id, created_at): (Uuid, DateTime<Utc>) = sqlx::query_as(
            "INSERT INTO push_subscriptions (id, user_id, kind, target, p256dh, auth, created_at)
             VALUES ($1, $2, $3, $4, $5, $6, $7)
             ON CONFLICT (user_id, target) DO UPDATE SET kind = excluded.kind,
                 p256dh = excluded.p256dh, auth = excluded.auth
             RETURNING id, created_at",
        )
        .bind(Uuid::now_v7())
        .bind(user.0)
        .bind(kind.as_str())
        .bind(target)
        .bind(keys.map(|k| k.0))
        .bind(keys.map(|k| k.1))
        .bind(now)
        .fetch_one(&self.pool)
        .await?;
        Ok(PushSubscription {
            id,
            kind,
            target: target.to_string(),
            created_at,
        })
    }

    async fn push_subscriptions(&self, user: UserId) -> StoreResult<Vec<StoredPush>> {
        type Row = (
            Uuid,
            String,
            String,
            Option<String>,
            Option<String>,
            DateTime<Utc>,
        );
        let rows: Vec<Row> = sqlx::query_as(
            "SELECT id, kind, target, p256dh, auth, created_at FROM push_subscriptions
             WHERE user_id = $1 ORDER BY created_at, id",
        )
        .bind(user.0)
        .fetch_all(&self.pool)
        .await?;
        rows.into_iter()
            .map(|(id, kind, target, p256dh, auth, created_at)| {
                Ok(StoredPush {
                    subscription: PushSubscription {
                        id,
                        kind: PushKind::parse(&kind)
                            .ok_or_else(|| StoreError::Other(format!("bad push kind {kind}")))?,
                        target,
                        created_at,
                    },
                    p256dh,
                    auth,
                })
            })
            .collect()
    }

    async fn delete_push_subscription(&self, user: UserId, id: Uuid) -> StoreResult<bool> {
        let n = sqlx::query("DELETE FROM push_subscriptions WHERE id = $1 AND user_id = $2")
            .bind(id)
            .bind(user.0)
            .execute(&self.pool)
            .await?
            .rows_affected();
        Ok(n > 0)
    }

    async fn rate_limits(&self) -> StoreResult<Vec<(String, RateLimitSetting)>> {
        let rows = sqlx::query_as::<_, (String, i32, i32)>(
            "SELECT action, max_requests, period_seconds FROM rate_limits ORDER BY action",
        )
        .fetch_all(&self.pool)
        .await?;
        Ok(rows
            .into_iter()
            .map(|(action, max, period)| {
                (
                    action,
                    RateLimitSetting {
                        max_requests: max.max(1) as u32,
                        period_seconds: period.max(1) as u32,
                    },
                )
            })
            .collect())
    }

    async fn set_rate_limit(&self, action: &str, setting: RateLimitSetting) -> StoreResult<()> {
        let max = i32::try_from(setting.max_requests)
            .map_err(|_| StoreError::Conflict("max_requests too large".into()))?;
        let period = i32::try_from(setting.period_seconds)
            .map_err(|_| StoreError::Conflict("period too large".into()))?;
        sqlx::query(
            "INSERT INTO rate_limits (action, max_requests, period_seconds, updated_at)
             VALUES ($1, $2, $3, now())
             ON CONFLICT (action) DO UPDATE SET max_requests = excluded.max_requests,
                 period_seconds = excluded.period_seconds, updated_at = now()",
        )
        .bind(action)
        .bind(max)
        .bind(period)
        .execute(&self.pool)
        .await?;
        Ok(())
    }

    async fn purge_count(&self, scope: PurgeScope) -> StoreResult<PurgeCount> {
        let q = format!(
            "SELECT count(*) FROM messages m WHERE {}",
            scope_clause(scope)
        );
        let (messages,): (i64,) = bind_scope(sqlx::query_as(&q), scope)
            .fetch_one(&self.pool)
            .await?;
        let q = format!("{MEDIA_FOOTPRINT} WHERE {}", scope_clause(scope));
        let (objects, bytes): (i64, i64) = bind_scope(sqlx::query_as(&q), scope)
            .fetch_one(&self.pool)
            .await?;
        Ok(PurgeCount {
            messages: count(messages),
            media_objects: count(objects),
            media_bytes: count(bytes),
        })
    }

    async fn purge_messages(&self, scope: PurgeScope, limit: u32) -> StoreResult<PurgedBatch> {
        let mut tx = self.pool.begin().await?;
        let q = format!(
            "DELETE FROM messages WHERE id IN (
                 SELECT m.id FROM messages m WHERE {} ORDER BY m.id LIMIT {}
             ) RETURNING conversation_id, media",
            scope_clause(scope),
            limit.max(1)
        );
        let rows: Vec<(Uuid, Json<Vec<MediaItem>>)> = bind_scope(sqlx::query_as(&q), scope)
            .fetch_all(&mut *tx)
            .await?;
        let mut batch = PurgedBatch {
            messages: rows.len() as u64,
            media: Vec::new(),
        };
        let mut conversations: Vec<Uuid> = Vec::new();
        for (conv, Json(items)) in rows {
            conversations.push(conv);
            batch.media.extend(items);
        }
        conversations.sort_unstable();
        conversations.dedup();
        if let PurgeScope::OlderThan { .. } = scope {
            // Retention covers the read events of the event log too (message events are
            // the messages).
            let q = format!(
                "WITH d AS (DELETE FROM read_events m WHERE {} RETURNING 1)
                 SELECT count(*) FROM d",
                scope_clause(scope).replace("m.created_at", "m.read_at")
            );
            let _: (i64,) = bind_scope(sqlx::query_as(&q), scope)
                .fetch_one(&mut *tx)
                .await?;
        }
        if !conversations.is_empty() {
            // Lock first, then recompute in a new statement (a new snapshot): a message
            // inserted concurrently either committed before the lock (and is counted) or
            // waits and increments the recomputed values.
            sqlx::query("SELECT id FROM conversations WHERE id = ANY($1) ORDER BY id FOR UPDATE")
                .bind(&conversations)
                .fetch_all(&mut *tx)
                .await?;
            sqlx::query(RECOMPUTE_CONVERSATIONS)
                .bind(&conversations)
                .execute(&mut *tx)
                .await?;
        }
        tx.commit().await?;
        Ok(batch)
    }

    async fn delete_conversation(&self, id: ConversationId) -> StoreResult<Option<PurgedBatch>> {
        let mut tx = self.pool.begin().await?;
        let media: Vec<Json<Vec<MediaItem>>> =
            sqlx::query_scalar("DELETE FROM messages WHERE conversation_id = $1 RETURNING media")
                .bind(id.0)
                .fetch_all(&mut *tx)
                .await?;
        let deleted = sqlx::query("DELETE FROM conversations WHERE id = $1")
            .bind(id.0)
            .execute(&mut *tx)
            .await?
            .rows_affected();
        tx.commit().await?;
        Ok((deleted > 0).then(|| PurgedBatch {
            messages: media.len() as u64,
            media: media.into_iter().flat_map(|Json(items)| items).collect(),
        }))
    }

    async fn erase_user(&self, id: UserId, now: DateTime<Utc>) -> StoreResult<ErasedUser> {
        let mut tx = self.pool.begin().await?;
        let found = sqlx::query(
            "UPDATE users SET username = 'deleted-' || replace(id::text, '-', ''),
                 display_name = NULL, last_seen_at = NULL,
                 deleted_at = COALESCE(deleted_at, $2)
             WHERE id = $1",
        )
        .bind(id.0)
        .bind(now)
        .execute(&mut *tx)
        .await?
        .rows_affected();
        if found == 0 {
            return Err(StoreError::NotFound);
        }
        let blocks = sqlx::query("DELETE FROM blocks WHERE blocker_id = $1 OR blocked_id = $1")
            .bind(id.0)
            .execute(&mut *tx)
            .await?
            .rows_affected();
        sqlx::query("DELETE FROM read_events WHERE user_id = $1")
            .bind(id.0)
            .execute(&mut *tx)
            .await?;
        let push_subscriptions = sqlx::query("DELETE FROM push_subscriptions WHERE user_id = $1")
            .bind(id.0)
            .execute(&mut *tx)
            .await?
            .rows_affected();
        let conversations = sqlx::query(
            "DELETE FROM conversations c
             WHERE (c.user1_id = $1 OR c.user2_id = $1)
               AND EXISTS (SELECT 1 FROM users u
                           WHERE u.id = CASE WHEN c.user1_id = $1 THEN c.user2_id ELSE c.user1_id END
                             AND u.deleted_at IS NOT NULL)",
        )
        .bind(id.0)
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
        let rows: Vec<(Uuid, Json<Vec<MediaItem>>)> = sqlx::query_as(
            "SELECT id, media FROM messages
             WHERE media <> '[]'::jsonb AND ($1::uuid IS NULL OR id > $1)
             ORDER BY id LIMIT $2",
        )
        .bind(after.map(|m| m.0))
        .bind(i64::from(limit.max(1)))
        .fetch_all(&self.pool)
        .await?;
        let next = rows.last().map(|(id, _)| MessageId(*id));
        Ok((rows.into_iter().flat_map(|(_, Json(m))| m).collect(), next))
    }

    async fn stats(&self, now: DateTime<Utc>) -> StoreResult<Stats> {
        let (users, erased_users, conversations, last_hour): (i64, i64, i64, i64) = sqlx::query_as(
            "SELECT (SELECT count(*) FROM users WHERE deleted_at IS NULL),
                        (SELECT count(*) FROM users WHERE deleted_at IS NOT NULL),
                        (SELECT count(*) FROM conversations),
                        (SELECT count(*) FROM messages WHERE created_at >= $1)",
        )
        .bind(now - chrono::Duration::hours(1))
        .fetch_one(&self.pool)
        .await?;
        let by_type: Vec<(String, i64)> =
            sqlx::query_as("SELECT type, count(*) FROM messages GROUP BY type ORDER BY type")
                .fetch_all(&self.pool)
                .await?;
        let (objects, bytes): (i64, i64) = sqlx::query_as(MEDIA_FOOTPRINT)
            .fetch_one(&self.pool)
            .await?;
        Ok(Stats {
            users: count(users),
            erased_users: count(erased_users),
            conversations: count(conversations),
            messages_by_type: by_type.into_iter().map(|(t, n)| (t, count(n))).collect(),
            media_objects: count(objects),
            media_bytes: count(bytes),
            messages_last_hour: count(last_hour),
        })
    }
}

/// (objects, bytes) of the media of `messages m`: each item plus its thumbnail when it has
/// one; bytes count originals (thumbnail sizes are not recorded). Append a WHERE to narrow.
const MEDIA_FOOTPRINT: &str = "SELECT count(*) + count(i->>'thumbnail_url'),
        COALESCE(sum((i->>'size')::bigint), 0)::bigint
    FROM messages m CROSS JOIN LATERAL jsonb_array_elements(m.media) i";

/// Recompute what a purge may have changed, from the messages that are left.
const RECOMPUTE_CONVERSATIONS: &str = "UPDATE conversations c SET
    last_message_id = (SELECT m.id FROM messages m WHERE m.conversation_id = c.id
                       ORDER BY m.created_at DESC, m.id DESC LIMIT 1),
    last_message_at = (SELECT max(m.created_at) FROM messages m WHERE m.conversation_id = c.id),
    activity_at = COALESCE((SELECT max(m.created_at) FROM messages m
                            WHERE m.conversation_id = c.id), c.created_at),
    user1_unread_count = (SELECT count(*) FROM messages m WHERE m.conversation_id = c.id
                          AND m.receiver_id = c.user1_id AND NOT m.is_read),
    user2_unread_count = (SELECT count(*) FROM messages m WHERE m.conversation_id = c.id
                          AND m.receiver_id = c.user2_id AND NOT m.is_read),
    updated_at = now()
    WHERE c.id = ANY($1)";

type PgQueryAs<'q, T> = sqlx::query::QueryAs<'q, sqlx::Postgres, T, sqlx::postgres::PgArguments>;

fn bind_scope<T>(q: PgQueryAs<'_, T>, scope: PurgeScope) -> PgQueryAs<'_, T> {
    match scope {
        PurgeScope::OlderThan {
            before,
            conversation,
        } => match conversation {
            Some(c) => q.bind(before).bind(c.0),
            None => q.bind(before),
        },
        PurgeScope::Conversation(c) => q.bind(c.0),
        PurgeScope::SentBy(u) => q.bind(u.0),
    }
}
