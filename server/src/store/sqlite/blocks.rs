//! Blocks on SQLite.

use super::*;

#[async_trait]
impl BlockStore for SqliteStore {
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
        let cursor_clause = keyset(before, "b.created_at, b.id", "<", 3);
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
                let at = r.ts("b_created_at")?;
                Ok((
                    BlockedUser {
                        user_id: user.id,
                        username: user.username,
                        display_name: user.display_name,
                        blocked_at: at,
                    },
                    Cursor::new(at, r.uuid("b_id")?),
                ))
            })
            .collect()
    }

    async fn blocked_among(&self, me: UserId, others: &[UserId]) -> StoreResult<Vec<UserId>> {
        if others.is_empty() {
            return Ok(Vec::new());
        }
        let ids = json_ids(others)?;
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
        rows.iter().map(|r| Ok(UserId(r.uuid("id")?))).collect()
    }
}
