//! Edits, deletes and reactions on PostgreSQL ([`LifecycleStore`]).
//!
//! Locks, in the order sends and mark_read take them: the event-log counters of everyone
//! told (user-id order), then (a delete only) the conversation row, then the message row.

use super::*;
use crate::model::{SearchCursor, SearchTerms, StoredMessage};

/// Takes the counters of `$1` (user-id order) and logs one change event for each.
const LOG_CHANGE_SQL: &str = "
    WITH seq AS (
        INSERT INTO event_heads (user_id, seq)
        SELECT u, 1 FROM unnest($1::uuid[]) AS u ORDER BY u
        ON CONFLICT (user_id) DO UPDATE SET seq = event_heads.seq + 1
        RETURNING user_id, seq
    ), ev AS (
        INSERT INTO message_events (user_id, seq, kind, conversation_id, message_id, actor_id,
                                    emoji, added, created_at)
        SELECT user_id, seq, $2, $3, $4, $5, $6, $7, $8 FROM seq
    )
    SELECT user_id, seq FROM seq";

#[async_trait]
impl LifecycleStore for PostgresStore {
    /// Testing a window message runs `chat_search_vector` on its text (20-30 µs); an index
    /// match is ~3 µs (100,000 messages, session 13).
    fn search_window_row_cost(&self) -> f64 {
        10.0
    }

    async fn message_for(
        &self,
        id: MessageId,
        viewer: UserId,
    ) -> StoreResult<Option<StoredMessage>> {
        let row = sqlx::query(&format!(
            "SELECT {MESSAGE_COLS} FROM messages m WHERE m.id = $1{}",
            not_hidden(2)
        ))
        .bind(id.0)
        .bind(viewer.0)
        .fetch_optional(&self.pool)
        .await?;
        row.as_ref().map(message_from_row).transpose()
    }

    async fn search(
        &self,
        viewer: UserId,
        q: &SearchTerms,
        conversation: Option<ConversationId>,
        before: Option<SearchCursor>,
        limit: u32,
        scan: SearchScan,
    ) -> StoreResult<SearchFound> {
        const MATCHES: &str = "chat_search_vector(m.content) @@ to_tsquery('simple', $2)";
        let sql = match scan {
            SearchScan::Index => search_index_sql(MESSAGE_COLS, MATCHES, before.is_some()),
            SearchScan::Recent { .. } => search_recent_sql(MESSAGE_COLS, MATCHES, "id"),
        };
        let mut query = sqlx::query(&sql)
            .bind(viewer.0)
            .bind(q.tsquery())
            .bind(i64::from(limit))
            .bind(conversation.map(|c| c.0));
        let below = before.map_or(i64::MAX, |c| c.pos as i64);
        match (scan, before) {
            (SearchScan::Recent { window }, _) => {
                query = query.bind(below).bind(i64::from(window));
            }
            (SearchScan::Index, Some(c)) => {
                query = query.bind(below).bind(c.key.at).bind(c.key.id);
            }
            (SearchScan::Index, None) => {}
        }
        search_found(&query.fetch_all(&self.pool).await?)
    }

    async fn change_message(
        &self,
        id: MessageId,
        change: &Change<'_>,
        now: DateTime<Utc>,
    ) -> StoreResult<Changed> {
        let mut tx = self.pool.begin().await?;
        let Some((conv, sender, receiver)) =
            sqlx::query_as::<_, (Uuid, Uuid, Uuid)>(MESSAGE_PARTIES_SQL)
                .bind(id.0)
                .fetch_optional(&mut *tx)
                .await?
        else {
            return Ok(Changed::Refused);
        };
        let (kind, actor, emoji, added) = change.event();
        let told: Vec<Uuid> = change
            .told(UserId(sender), UserId(receiver))
            .into_iter()
            .map(|u| u.0)
            .collect();
        let heads: Vec<(Uuid, i64)> = sqlx::query_as(LOG_CHANGE_SQL)
            .bind(&told)
            .bind(kind)
            .bind(conv)
            .bind(id.0)
            .bind(actor.0)
            .bind(emoji)
            .bind(added)
            .bind(now)
            .fetch_all(&mut *tx)
            .await?;
        if let Change::DeleteForEveryone { .. } = change {
            sqlx::query("SELECT 1 FROM conversations WHERE id = $1 FOR NO KEY UPDATE")
                .bind(conv)
                .fetch_optional(&mut *tx)
                .await?;
        }
        let Some(row) = sqlx::query(&format!(
            "SELECT {MESSAGE_COLS} FROM messages m WHERE m.id = $1 FOR NO KEY UPDATE OF m"
        ))
        .bind(id.0)
        .fetch_optional(&mut *tx)
        .await?
        else {
            return Ok(Changed::Refused);
        };
        let before = message_from_row(&row)?;
        let applied = match *change {
            Change::Edit {
                sender,
                content,
                links,
                since,
            } => {
                let n = sqlx::query(EDIT_SQL)
                    .bind(id.0)
                    .bind(sender.0)
                    .bind(content)
                    .bind(now)
                    .bind(since)
                    .execute(&mut *tx)
                    .await?
                    .rows_affected();
                if n == 1 {
                    self.replace_links(&mut tx, &before, links).await?;
                }
                n == 1
            }
            Change::DeleteForEveryone { sender, since } => {
                let n = sqlx::query(TOMBSTONE_SQL)
                    .bind(id.0)
                    .bind(sender.0)
                    .bind(now)
                    .bind(since)
                    .execute(&mut *tx)
                    .await?
                    .rows_affected();
                if n == 1 {
                    self.replace_links(&mut tx, &before, &[]).await?;
                    sqlx::query("DELETE FROM message_reactions WHERE message_id = $1")
                        .bind(id.0)
                        .execute(&mut *tx)
                        .await?;
                    if !before.is_read {
                        recount_unread(&mut tx, conv, before.receiver_id.0).await?;
                    }
                }
                n == 1
            }
            Change::Hide { user } => {
                let n = sqlx::query(
                    "INSERT INTO hidden_messages (user_id, message_id, hidden_at) VALUES ($1, $2, $3)
                     ON CONFLICT DO NOTHING",
                )
                .bind(user.0)
                .bind(id.0)
                .bind(now)
                .execute(&mut *tx)
                .await?
                .rows_affected();
                if n == 0 {
                    return Ok(Changed::Unchanged);
                }
                true
            }
            Change::React {
                user,
                emoji,
                add,
                max,
            } => {
                if before.deleted_at.is_some() {
                    return Ok(Changed::Refused);
                }
                if add {
                    let (n, known): (i64, bool) = sqlx::query_as(REACTION_COUNT_SQL)
                        .bind(id.0)
                        .bind(emoji)
                        .fetch_one(&mut *tx)
                        .await?;
                    if !known && n >= max as i64 {
                        return Ok(Changed::TooManyReactions);
                    }
                }
                let query = if add {
                    sqlx::query(
                        "INSERT INTO message_reactions (message_id, emoji, user_id, created_at)
                         VALUES ($1, $2, $3, $4) ON CONFLICT DO NOTHING",
                    )
                    .bind(id.0)
                    .bind(emoji)
                    .bind(user.0)
                    .bind(now)
                } else {
                    sqlx::query(REMOVE_REACTION_SQL)
                        .bind(id.0)
                        .bind(emoji)
                        .bind(user.0)
                };
                let n = query.execute(&mut *tx).await?.rows_affected();
                if n == 0 {
                    return Ok(Changed::Unchanged);
                }
                true
            }
        };
        if !applied {
            // Dropping the transaction rolls back the positions taken above.
            return Ok(Changed::Refused);
        }
        tx.commit().await?;
        let seqs = heads
            .into_iter()
            .map(|(u, s)| Ok((UserId(u), seq_of(Some(s))?)))
            .collect::<StoreResult<Vec<_>>>()?;
        Ok(Changed::Applied {
            before: Box::new(before),
            seqs,
        })
    }
}

impl PostgresStore {
    /// The links archive follows the text: `m`'s links become `links`.
    async fn replace_links(
        &self,
        tx: &mut sqlx::PgConnection,
        m: &StoredMessage,
        links: &[String],
    ) -> StoreResult<()> {
        sqlx::query("DELETE FROM message_links WHERE message_id = $1")
            .bind(m.id.0)
            .execute(&mut *tx)
            .await?;
        if links.is_empty() {
            return Ok(());
        }
        let ids: Vec<Uuid> = links.iter().map(|_| Uuid::now_v7()).collect();
        sqlx::query(
            "INSERT INTO message_links (id, message_id, conversation_id, sender_id, url, created_at)
             SELECT l.id, $2, $3, $4, l.url, $5 FROM unnest($1::uuid[], $6::text[]) AS l(id, url)",
        )
        .bind(&ids)
        .bind(m.id.0)
        .bind(m.conversation_id.0)
        .bind(m.sender_id.0)
        .bind(m.created_at)
        .bind(links)
        .execute(&mut *tx)
        .await?;
        Ok(())
    }
}

/// Recount `receiver`'s unread messages in `conv` from the messages themselves (the
/// conversation row is locked).
async fn recount_unread(
    tx: &mut sqlx::PgConnection,
    conv: Uuid,
    receiver: Uuid,
) -> StoreResult<()> {
    sqlx::query(
        "UPDATE conversations c SET
             user1_unread_count = CASE WHEN c.user1_id = $2 THEN n.left ELSE c.user1_unread_count END,
             user2_unread_count = CASE WHEN c.user2_id = $2 THEN n.left ELSE c.user2_unread_count END
         FROM (SELECT COUNT(*) AS left FROM messages
               WHERE conversation_id = $1 AND receiver_id = $2 AND NOT is_read) n
         WHERE c.id = $1",
    )
    .bind(conv)
    .bind(receiver)
    .execute(&mut *tx)
    .await?;
    Ok(())
}
