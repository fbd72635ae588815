//! Conversations on SQLite: lookup, create, the list and unread counts.

use super::*;

#[async_trait]
impl ConversationStore for SqliteStore {
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
        let cursor_clause = keyset(before, "c.activity_at, c.id", "<", 3);
        let sql = format!(
            "SELECT {CONVERSATION_COLS}, {USER_COLS}, {MESSAGE_COLS}
             FROM conversations c
             JOIN users u ON u.id = CASE WHEN c.user1_id = $1 THEN c.user2_id ELSE c.user1_id END
             LEFT JOIN messages m ON m.id = c.last_message_id
                 AND NOT EXISTS (SELECT 1 FROM hidden_messages h
                                 WHERE h.user_id = $1 AND h.message_id = m.id)
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
        rows.iter().map(conversation_view_from_row).collect()
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
            .map(|r| Ok((ConversationId(r.uuid("id")?), r.count("unread")?)))
            .collect()
    }
}
