//! Edits, deletes and reactions on SQLite ([`LifecycleStore`]): one write transaction
//! each (SQLite has one writer, so positions commit in order).

use super::*;
use crate::model::{SearchCursor, SearchTerms, StoredMessage};

#[async_trait]
impl LifecycleStore for SqliteStore {
    /// About even: an index match is a rowid lookup and a sort entry (~5 µs at 7,700
    /// matches), a window message a lookup and a probe (~3 µs); 100,000 messages, session 15.
    fn search_window_row_cost(&self) -> f64 {
        1.0
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
        .bind(id.to_string())
        .bind(viewer.to_string())
        .fetch_optional(&self.read)
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
        // Every message committed before the search is in the index when it runs.
        self.index_pending().await;
        let sql = match scan {
            SearchScan::Index => search_index_sql(
                MESSAGE_COLS,
                "m.rowid IN (SELECT rowid FROM messages_fts WHERE messages_fts MATCH $2)",
                before.is_some(),
            ),
            // FTS5 returns only the matches between the window's rowids (though it still
            // merges a prefix term's doclists whole first: docs/benchmarks.md session 13).
            SearchScan::Recent { .. } => search_recent_sql(
                MESSAGE_COLS,
                "m.rowid IN (SELECT rowid FROM messages_fts WHERE messages_fts MATCH $2
                               AND rowid >= (SELECT min(rid) FROM win)
                               AND rowid <= (SELECT max(rid) FROM win))",
                "rowid",
            ),
        };
        let mut query = sqlx::query(&sql)
            .bind(viewer.to_string())
            .bind(q.fts5())
            .bind(i64::from(limit))
            .bind(conversation.map(|c| c.to_string()));
        let below = before.map_or(i64::MAX, |c| c.pos as i64);
        match (scan, before) {
            (SearchScan::Recent { window }, _) => {
                query = query.bind(below).bind(i64::from(window));
            }
            (SearchScan::Index, Some(c)) => {
                query = query
                    .bind(below)
                    .bind(ts(c.key.at))
                    .bind(c.key.id.to_string());
            }
            (SearchScan::Index, None) => {}
        }
        search_found(&query.fetch_all(&self.read).await?)
    }

    async fn change_message(
        &self,
        id: MessageId,
        change: &Change<'_>,
        now: DateTime<Utc>,
    ) -> StoreResult<Changed> {
        // Reads before it writes: IMMEDIATE takes the write lock first, so a write by
        // another process (chatctl) between the two is waited for (busy_timeout), not a
        // "database is locked" (SQLite refuses a read snapshot's upgrade at once).
        let mut tx = self.write.begin_with("BEGIN IMMEDIATE").await?;
        let Some(row) = sqlx::query(&format!(
            "SELECT {MESSAGE_COLS} FROM messages m WHERE m.id = $1"
        ))
        .bind(id.to_string())
        .fetch_optional(&mut *tx)
        .await?
        else {
            return Ok(Changed::Refused);
        };
        let before = message_from_row(&row)?;
        let mid = id.to_string();
        let applied = match *change {
            Change::Edit {
                sender,
                content,
                links,
                since,
            } => {
                let n = sqlx::query(EDIT_SQL)
                    .bind(&mid)
                    .bind(sender.to_string())
                    .bind(content)
                    .bind(ts(now))
                    .bind(ts(since))
                    .execute(&mut *tx)
                    .await?
                    .rows_affected();
                if n == 1 {
                    replace_links(&mut tx, &before, links).await?;
                }
                n == 1
            }
            Change::DeleteForEveryone { sender, since } => {
                let n = sqlx::query(TOMBSTONE_SQL)
                    .bind(&mid)
                    .bind(sender.to_string())
                    .bind(ts(now))
                    .bind(ts(since))
                    .execute(&mut *tx)
                    .await?
                    .rows_affected();
                if n == 1 {
                    replace_links(&mut tx, &before, &[]).await?;
                    sqlx::query("DELETE FROM message_reactions WHERE message_id = $1")
                        .bind(&mid)
                        .execute(&mut *tx)
                        .await?;
                    if !before.is_read {
                        sqlx::query(
                            "UPDATE conversations SET
                                 user1_unread_count = CASE WHEN user1_id = $2 THEN n.left ELSE user1_unread_count END,
                                 user2_unread_count = CASE WHEN user2_id = $2 THEN n.left ELSE user2_unread_count END
                             FROM (SELECT COUNT(*) AS left FROM messages
                                   WHERE conversation_id = $1 AND receiver_id = $2 AND is_read = 0) n
                             WHERE id = $1",
                        )
                        .bind(before.conversation_id.to_string())
                        .bind(before.receiver_id.to_string())
                        .execute(&mut *tx)
                        .await?;
                    }
                }
                n == 1
            }
            Change::Hide { user } => {
                let n = sqlx::query(
                    "INSERT INTO hidden_messages (user_id, message_id, hidden_at) VALUES ($1, $2, $3)
                     ON CONFLICT DO NOTHING",
                )
                .bind(user.to_string())
                .bind(&mid)
                .bind(ts(now))
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
                        .bind(&mid)
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
                    .bind(&mid)
                    .bind(emoji)
                    .bind(user.to_string())
                    .bind(ts(now))
                } else {
                    sqlx::query(REMOVE_REACTION_SQL)
                        .bind(&mid)
                        .bind(emoji)
                        .bind(user.to_string())
                };
                if query.execute(&mut *tx).await?.rows_affected() == 0 {
                    return Ok(Changed::Unchanged);
                }
                true
            }
        };
        if !applied {
            return Ok(Changed::Refused);
        }
        let (kind, actor, emoji, added) = change.event();
        let told = change.told(before.sender_id, before.receiver_id);
        let mut seqs = Vec::with_capacity(told.len());
        for user in told {
            let seq = bump_seq(&mut tx, user).await?;
            sqlx::query(
                "INSERT INTO message_events (user_id, seq, kind, conversation_id, message_id,
                     actor_id, emoji, added, created_at)
                 VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9)",
            )
            .bind(user.to_string())
            .bind(seq as i64)
            .bind(kind)
            .bind(before.conversation_id.to_string())
            .bind(&mid)
            .bind(actor.to_string())
            .bind(emoji)
            .bind(added)
            .bind(ts(now))
            .execute(&mut *tx)
            .await?;
            seqs.push((user, seq));
        }
        tx.commit().await?;
        Ok(Changed::Applied {
            before: Box::new(before),
            seqs,
        })
    }
}

/// The links archive follows the text: `m`'s links become `links`.
async fn replace_links(
    tx: &mut sqlx::SqliteConnection,
    m: &StoredMessage,
    links: &[String],
) -> StoreResult<()> {
    sqlx::query("DELETE FROM message_links WHERE message_id = $1")
        .bind(m.id.to_string())
        .execute(&mut *tx)
        .await?;
    for url in links {
        sqlx::query(
            "INSERT INTO message_links (id, message_id, conversation_id, sender_id, url, created_at)
             VALUES ($1, $2, $3, $4, $5, $6)",
        )
        .bind(Uuid::now_v7().to_string())
        .bind(m.id.to_string())
        .bind(m.conversation_id.to_string())
        .bind(m.sender_id.to_string())
        .bind(url)
        .bind(ts(m.created_at))
        .execute(&mut *tx)
        .await?;
    }
    Ok(())
}
