//! Messages on PostgreSQL: send context, reads, mark read, the event log and links.

use super::*;

#[async_trait]
impl MessageStore for PostgresStore {
    async fn insert_messages(&self, batch: &[NewMessage]) -> Vec<StoreResult<InsertOutcome>> {
        self.store_batch(batch).await
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

    async fn message(&self, id: MessageId) -> StoreResult<Option<StoredMessage>> {
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
    ) -> StoreResult<Option<StoredMessage>> {
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
    ) -> StoreResult<Vec<StoredMessage>> {
        let mut sql = format!("SELECT {MESSAGE_COLS} FROM messages m WHERE m.conversation_id = $1");
        sql.push_str(&type_filter(&q.types));
        let mut n = 2;
        sql.push_str(&keyset(q.before, "m.created_at, m.id", "<", n + 1));
        if q.before.is_some() {
            n += 2;
        }
        sql.push_str(&keyset(q.after, "m.created_at, m.id", ">", n + 1));
        if q.after.is_some() {
            n += 2;
        }
        if q.viewer.is_some() {
            sql.push_str(&not_hidden(n + 1));
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
        if let Some(v) = q.viewer {
            query = query.bind(v.0);
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
        // can never overwrite an increment it did not see. The counters are locked the way
        // the send statement locks them, an upsert in user-id order: a `SELECT … FOR
        // UPDATE` cannot lock a row that does not exist yet, and making the missing one
        // apart from locking the others breaks the order (CI hit both deadlocks, session
        // 20). A row made here holds 0, which reads as "no events" as a missing row does.
        sqlx::query(
            "INSERT INTO event_heads (user_id, seq)
             SELECT u, 0 FROM unnest($1::uuid[]) AS u ORDER BY u
             ON CONFLICT (user_id) DO UPDATE SET seq = event_heads.seq",
        )
        .bind([reader.0, other])
        .execute(&mut *tx)
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
        sql.push_str(&keyset(up_to, "created_at, id", "<=", 4));
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
        let rows: Vec<(Uuid, i64)> = sqlx::query_as(
            "SELECT user_id, seq FROM event_heads WHERE user_id = ANY($1) AND seq > 0",
        )
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
        let changes = sqlx::query(&logged_changes_sql(MESSAGE_COLS))
            .bind(user.0)
            .bind(bounds.0)
            .bind(bounds.1)
            .bind(bounds.2)
            .fetch_all(&self.pool)
            .await?
            .iter()
            .map(change_from_row)
            .collect::<StoreResult<Vec<_>>>()?;
        let mut messages = messages;
        messages.extend(changes);
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
        viewer: UserId,
        before: Option<Cursor>,
        limit: u32,
    ) -> StoreResult<Vec<(LinkItem, Cursor)>> {
        let cursor_clause = keyset(before, "l.created_at, l.id", "<", 4);
        let sql = format!(
            "SELECT l.id, l.url, l.message_id, l.sender_id, l.created_at FROM message_links l
             WHERE l.conversation_id = $1 {cursor_clause}
               AND NOT EXISTS (SELECT 1 FROM hidden_messages h
                               WHERE h.user_id = $3 AND h.message_id = l.message_id)
             ORDER BY l.created_at DESC, l.id DESC LIMIT $2"
        );
        let mut q = sqlx::query_as::<_, (Uuid, String, Uuid, Uuid, DateTime<Utc>)>(&sql)
            .bind(conv.0)
            .bind(i64::from(limit))
            .bind(viewer.0);
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
}
