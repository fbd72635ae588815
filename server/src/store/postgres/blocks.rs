//! Blocks on PostgreSQL.

use super::*;

#[async_trait]
impl BlockStore for PostgresStore {
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
        let cursor_clause = keyset(before, "b.created_at, b.id", "<", 3);
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
}
