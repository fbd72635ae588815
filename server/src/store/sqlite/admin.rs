//! Operations on SQLite: migration status, rate limits, purge, erasure, media walk, stats.

use super::*;

#[async_trait]
impl AdminStore for SqliteStore {
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
        for sql in ERASE_LIFECYCLE_SQL {
            sqlx::query(sql)
                .bind(id.to_string())
                .execute(&mut *tx)
                .await?;
        }
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
        let (edited, deleted, reactions): (i64, i64, i64) = sqlx::query_as(LIFECYCLE_STATS_SQL)
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
            edited_messages: n(edited),
            deleted_messages: n(deleted),
            reactions: n(reactions),
        })
    }

    async fn search_index_problem(&self) -> StoreResult<Option<String>> {
        // Queue and check in one write transaction: a send queued in between would
        // otherwise read as a message missing from the index.
        let mut tx = self.write.begin_with("BEGIN IMMEDIATE").await?;
        search_index::index_queue_all(&mut tx).await?;
        // With rank 1, FTS5 also compares an external-content index with its table.
        let check = sqlx::query(
            "INSERT INTO messages_fts (messages_fts, rank) VALUES ('integrity-check', 1)",
        )
        .execute(&mut *tx)
        .await;
        match check {
            Ok(_) => {
                tx.commit().await?;
                Ok(None)
            }
            Err(sqlx::Error::Database(e)) => Ok(Some(format!(
                "the index does not match the messages ({})",
                e.message()
            ))),
            Err(e) => Err(e.into()),
        }
    }

    async fn rebuild_search_index(&self) -> StoreResult<()> {
        // The rebuild indexes every message, the queued ones too.
        let mut tx = self.write.begin_with("BEGIN IMMEDIATE").await?;
        sqlx::query("INSERT INTO messages_fts (messages_fts) VALUES ('rebuild')")
            .execute(&mut *tx)
            .await?;
        sqlx::query("DELETE FROM messages_fts_pending")
            .execute(&mut *tx)
            .await?;
        tx.commit().await?;
        Ok(())
    }
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
