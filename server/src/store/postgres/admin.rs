//! Operations on PostgreSQL: migration status, rate limits, purge, erasure, media walk, stats.

use super::*;

#[async_trait]
impl AdminStore for PostgresStore {
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
        for sql in ERASE_LIFECYCLE_SQL {
            sqlx::query(sql).bind(id.0).execute(&mut *tx).await?;
        }
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
        let (edited, deleted, reactions): (i64, i64, i64) = sqlx::query_as(LIFECYCLE_STATS_SQL)
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
            edited_messages: count(edited),
            deleted_messages: count(deleted),
            reactions: count(reactions),
        })
    }

    async fn search_index_problem(&self) -> StoreResult<Option<String>> {
        self.search_problem().await
    }

    async fn rebuild_search_index(&self) -> StoreResult<()> {
        self.rebuild_search().await
    }
}

impl PostgresStore {
    /// [`AdminStore::search_index_problem`]: the index is over an expression of the text
    /// (always in step with it), so it can only be missing, or left invalid by an
    /// interrupted build.
    pub(super) async fn search_problem(&self) -> StoreResult<Option<String>> {
        let valid: Option<bool> = sqlx::query_scalar(
            "SELECT i.indisvalid FROM pg_index i
             WHERE i.indexrelid = to_regclass('messages_search')",
        )
        .fetch_optional(&self.pool)
        .await?;
        Ok(match valid {
            Some(true) => None,
            Some(false) => Some("index messages_search is invalid".into()),
            None => Some("index messages_search is missing".into()),
        })
    }

    /// [`AdminStore::rebuild_search_index`]: rebuilt without blocking sends.
    pub(super) async fn rebuild_search(&self) -> StoreResult<()> {
        sqlx::query("DROP INDEX CONCURRENTLY IF EXISTS messages_search")
            .execute(&self.pool)
            .await?;
        sqlx::query(
            "CREATE INDEX CONCURRENTLY messages_search ON messages
             USING gin (chat_search_vector(content)) WITH (fastupdate = off)",
        )
        .execute(&self.pool)
        .await?;
        Ok(())
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
