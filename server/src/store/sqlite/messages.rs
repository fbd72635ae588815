//! Messages on SQLite: send context, reads, mark read, the event log and links.

use super::*;

#[async_trait]
impl MessageStore for SqliteStore {
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
            .bind(sender.to_string())
            .bind(conv.to_string())
            .bind(temp_id)
            .fetch_optional(&self.read)
            .await?;
        row.map(|r| -> StoreResult<SendContext> {
            Ok(SendContext {
                receiver: UserId(r.uuid("other")?),
                sender_blocks: r.try_get("sender_blocks")?,
                receiver_blocks: r.try_get("receiver_blocks")?,
                existing: r.opt_uuid("existing")?.map(MessageId),
            })
        })
        .transpose()
    }

    async fn message(&self, id: MessageId) -> StoreResult<Option<StoredMessage>> {
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
    ) -> StoreResult<Option<StoredMessage>> {
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
    ) -> StoreResult<Vec<StoredMessage>> {
        let mut sql = format!("SELECT {MESSAGE_COLS} FROM messages m WHERE m.conversation_id = $1");
        sql.push_str(&type_filter(&q.types));
        sql.push_str(&keyset(q.before, "m.created_at, m.id", "<", 3));
        sql.push_str(&keyset(q.after, "m.created_at, m.id", ">", 5));
        if q.viewer.is_some() {
            sql.push_str(&not_hidden(7));
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
            .bind(q.viewer.map(|v| v.to_string()))
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
        // Reads before it writes: IMMEDIATE takes the write lock first, so a write by
        // another process (chatctl) between the two is waited for (busy_timeout), not a
        // "database is locked" (SQLite refuses a read snapshot's upgrade at once).
        let mut tx = self.write.begin_with("BEGIN IMMEDIATE").await?;
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
        sql.push_str(&keyset(up_to, "created_at, id", "<=", 4));
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
        let ids = json_ids(users)?;
        let rows = sqlx::query(
            "SELECT user_id, seq FROM event_heads WHERE user_id IN (SELECT value FROM json_each($1))",
        )
        .bind(ids)
        .fetch_all(&self.read)
        .await?;
        rows.iter()
            .map(|r| {
                let seq: i64 = r.try_get("seq")?;
                Ok((UserId(r.uuid("user_id")?), seq.max(0) as u64))
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
                    micros_to_ts(r.try_get("e_read_at")?)?,
                );
                Ok(LoggedEvent {
                    seq: seq_of(r.try_get("e_seq")?)?,
                    kind,
                })
            })
            .collect::<StoreResult<Vec<_>>>()?;
        let changes = sqlx::query(&logged_changes_sql(MESSAGE_COLS))
            .bind(user.to_string())
            .bind(bounds.0)
            .bind(bounds.1)
            .bind(bounds.2)
            .fetch_all(&self.read)
            .await?
            .iter()
            .map(change_from_row)
            .collect::<StoreResult<Vec<_>>>()?;
        let mut messages = messages;
        messages.extend(changes);
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
        viewer: UserId,
        before: Option<Cursor>,
        limit: u32,
    ) -> StoreResult<Vec<(LinkItem, Cursor)>> {
        let cursor_clause = keyset(before, "l.created_at, l.id", "<", 4);
        let (b_at, b_id) = before.map(|c| (ts(c.at), c.id.to_string())).unzip();
        let rows = sqlx::query(&format!(
            "SELECT l.id, l.url, l.message_id, l.sender_id, l.created_at FROM message_links l
             WHERE l.conversation_id = $1 {cursor_clause}
               AND NOT EXISTS (SELECT 1 FROM hidden_messages h
                               WHERE h.user_id = $3 AND h.message_id = l.message_id)
             ORDER BY l.created_at DESC, l.id DESC LIMIT $2"
        ))
        .bind(conv.to_string())
        .bind(i64::from(limit))
        .bind(viewer.to_string())
        .bind(b_at)
        .bind(b_id)
        .fetch_all(&self.read)
        .await?;
        rows.iter()
            .map(|r| {
                let created_at = r.ts("created_at")?;
                Ok((
                    LinkItem {
                        url: r.try_get("url")?,
                        message_id: MessageId(r.uuid("message_id")?),
                        sender_id: UserId(r.uuid("sender_id")?),
                        created_at,
                    },
                    Cursor::new(created_at, r.uuid("id")?),
                ))
            })
            .collect()
    }
}
