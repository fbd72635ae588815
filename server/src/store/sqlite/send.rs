//! Sends in batches (group commit) on SQLite: one transaction, a savepoint per send.

use super::*;
use crate::model::StoredMessage;

impl SqliteStore {
    /// [`MessageStore::insert_messages`] on this backend.
    pub(super) async fn store_batch(
        &self,
        batch: &[NewMessage],
    ) -> Vec<StoreResult<InsertOutcome>> {
        let stored = match self.insert_batch(batch).await {
            Ok(stored) => stored,
            // Nothing of the batch was committed.
            Err(e) => return fail_all(&e, batch.len()),
        };
        let mut out = Vec::with_capacity(batch.len());
        for (n, r) in batch.iter().zip(stored) {
            let m = &n.message;
            out.push(match r {
                Ok(Some(seqs)) => Ok(InsertOutcome::Created(StoredMessage::new(m.clone()), seqs)),
                Ok(None) => self.unstored(m).await,
                Err(e) => Err(e),
            });
        }
        out
    }

    /// One transaction (one commit on the single writer) for a batch of sends, each
    /// inside its own savepoint: a send that stores nothing (erased sender, block, a
    /// temp_id stored earlier or earlier in this batch) or fails is rolled back alone,
    /// positions included, so positions stay gap-free. `Ok(None)`: stored nothing.
    async fn insert_batch(
        &self,
        batch: &[NewMessage],
    ) -> StoreResult<Vec<StoreResult<Option<SendSeqs>>>> {
        let mut tx = self.write.begin().await?;
        let mut out = Vec::with_capacity(batch.len());
        for n in batch {
            sqlx::query("SAVEPOINT send").execute(&mut *tx).await?;
            let r = insert_one(&mut tx, n).await;
            if !matches!(r, Ok(Some(_))) {
                sqlx::query("ROLLBACK TO send").execute(&mut *tx).await?;
            }
            sqlx::query("RELEASE send").execute(&mut *tx).await?;
            out.push(r);
        }
        tx.commit().await?;
        Ok(out)
    }

    /// Why `m` stored nothing (after the batch committed).
    async fn unstored(&self, m: &Message) -> StoreResult<InsertOutcome> {
        let row = sqlx::query(UNSTORED_SQL)
            .bind(m.sender_id.to_string())
            .bind(m.receiver_id.to_string())
            .fetch_one(&self.read)
            .await?;
        let erased: bool = row.try_get("erased")?;
        let blocked: bool = row.try_get("blocked")?;
        unstored_outcome(self, m, erased, blocked).await
    }
}

/// One send inside the batch transaction: positions, the message, the conversation, the
/// links. `None` when nothing may be stored (the caller rolls back to its savepoint).
async fn insert_one(
    tx: &mut sqlx::SqliteConnection,
    new: &NewMessage,
) -> StoreResult<Option<SendSeqs>> {
    let m = &new.message;
    let media = serde_json::to_string(&m.media).map_err(|e| StoreError::Other(e.to_string()))?;
    // Positions first (one writer: they commit in order).
    let sender = bump_seq(&mut *tx, m.sender_id).await?;
    let receiver = bump_seq(&mut *tx, m.receiver_id).await?;
    let inserted = sqlx::query(
        "INSERT INTO messages (id, conversation_id, sender_id, receiver_id, type, content,
             media, temp_id, is_read, read_at, created_at, updated_at, sender_seq, receiver_seq,
             reply_to_id)
         SELECT $1, $2, $3, $4, $5, $6, $7, $8, 0, NULL, $9, $9, $10, $11, $12
         WHERE NOT EXISTS (SELECT 1 FROM users WHERE id = $3 AND deleted_at IS NOT NULL)
           AND NOT EXISTS (SELECT 1 FROM blocks b
                           WHERE (b.blocker_id = $3 AND b.blocked_id = $4)
                              OR (b.blocker_id = $4 AND b.blocked_id = $3))
         ON CONFLICT DO NOTHING",
    )
    .bind(m.id.to_string())
    .bind(m.conversation_id.to_string())
    .bind(m.sender_id.to_string())
    .bind(m.receiver_id.to_string())
    .bind(m.kind.as_str())
    .bind(m.content.as_deref())
    .bind(media)
    .bind(m.temp_id.as_deref())
    .bind(ts(m.created_at))
    .bind(sender as i64)
    .bind(receiver as i64)
    .bind(m.reply_to.as_ref().map(|r| r.id.to_string()))
    .execute(&mut *tx)
    .await?
    .rows_affected();
    if inserted == 0 {
        return Ok(None);
    }
    let updated = sqlx::query(
        "UPDATE conversations SET
             last_message_id = CASE WHEN last_message_at IS NULL OR $2 >= last_message_at
                                    THEN $1 ELSE last_message_id END,
             last_message_at = MAX(COALESCE(last_message_at, $2), $2),
             activity_at = MAX(activity_at, $2),
             user1_unread_count = user1_unread_count + (CASE WHEN user1_id = $3 THEN 1 ELSE 0 END),
             user2_unread_count = user2_unread_count + (CASE WHEN user2_id = $3 THEN 1 ELSE 0 END),
             updated_at = $2
         WHERE id = $4",
    )
    .bind(m.id.to_string())
    .bind(ts(m.created_at))
    .bind(m.receiver_id.to_string())
    .bind(m.conversation_id.to_string())
    .execute(&mut *tx)
    .await?
    .rows_affected();
    if updated != 1 {
        return Err(StoreError::NotFound);
    }
    for url in &new.links {
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
    Ok(Some(SendSeqs { sender, receiver }))
}
