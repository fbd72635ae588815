//! Users on PostgreSQL: sign-in upsert, lookups, last seen and presence contacts.

use super::*;

#[async_trait]
impl UserStore for PostgresStore {
    async fn upsert_user(
        &self,
        id: UserId,
        username: &str,
        now: DateTime<Utc>,
    ) -> StoreResult<User> {
        let row = sqlx::query(
            "INSERT INTO users (id, username, display_name, created_at, last_seen_at)
             VALUES ($1, $2, NULL, $3, $3)
             ON CONFLICT (id) DO UPDATE SET username = excluded.username,
                 last_seen_at = excluded.last_seen_at
                 WHERE users.deleted_at IS NULL
             RETURNING id AS u_id, username AS u_username, display_name AS u_display_name,
                 created_at AS u_created_at, last_seen_at AS u_last_seen_at",
        )
        .bind(id.0)
        .bind(username)
        .bind(now)
        .fetch_optional(&self.pool)
        .await?;
        // No row: the id exists but was erased (the update's WHERE refused it).
        row.as_ref()
            .map(user_from_row)
            .transpose()?
            .ok_or(StoreError::Erased)
    }

    async fn user_by_id(&self, id: UserId) -> StoreResult<Option<User>> {
        let row = sqlx::query(&format!("SELECT {USER_COLS} FROM users u WHERE u.id = $1"))
            .bind(id.0)
            .fetch_optional(&self.pool)
            .await?;
        row.as_ref().map(user_from_row).transpose()
    }

    async fn live_usernames(&self, ids: &[UserId]) -> StoreResult<Vec<(UserId, String)>> {
        let ids: Vec<Uuid> = ids.iter().map(|u| u.0).collect();
        let rows: Vec<(Uuid, String)> = sqlx::query_as(
            "SELECT id, username FROM users WHERE id = ANY($1) AND deleted_at IS NULL",
        )
        .bind(&ids)
        .fetch_all(&self.pool)
        .await?;
        Ok(rows
            .into_iter()
            .map(|(id, name)| (UserId(id), name))
            .collect())
    }

    async fn user_by_username(&self, username: &str) -> StoreResult<Option<User>> {
        let row = sqlx::query(&format!(
            "SELECT {USER_COLS} FROM users u WHERE u.username = $1"
        ))
        .bind(username)
        .fetch_optional(&self.pool)
        .await?;
        row.as_ref().map(user_from_row).transpose()
    }

    async fn list_users(&self, after_username: Option<&str>, limit: u32) -> StoreResult<Vec<User>> {
        let rows = sqlx::query(&format!(
            "SELECT {USER_COLS} FROM users u WHERE u.username > $1 ORDER BY u.username LIMIT $2"
        ))
        .bind(after_username.unwrap_or(""))
        .bind(i64::from(limit))
        .fetch_all(&self.pool)
        .await?;
        rows.iter().map(user_from_row).collect()
    }

    async fn touch_last_seen(&self, seen: &[(UserId, DateTime<Utc>)]) -> StoreResult<()> {
        if seen.is_empty() {
            return Ok(());
        }
        let ids: Vec<Uuid> = seen.iter().map(|(id, _)| id.0).collect();
        let ats: Vec<DateTime<Utc>> = seen.iter().map(|(_, at)| *at).collect();
        // Duplicates of one id: the latest time wins (MAX per id before the join).
        sqlx::query(
            "UPDATE users u SET last_seen_at = GREATEST(COALESCE(u.last_seen_at, v.at), v.at)
             FROM (SELECT id, MAX(at) AS at FROM UNNEST($1::uuid[], $2::timestamptz[]) AS t(id, at)
                   GROUP BY id) v
             WHERE u.id = v.id AND u.deleted_at IS NULL",
        )
        .bind(&ids)
        .bind(&ats)
        .execute(&self.pool)
        .await?;
        Ok(())
    }

    async fn contacts_of(&self, users: &[UserId]) -> StoreResult<Vec<Contact>> {
        // Two index lookups (as user1, as user2) joined on users' key: a plan that does not
        // hang on statistics (an OR of both sides hash-joined a scan of all users on a
        // database never analyzed).
        let ids: Vec<Uuid> = users.iter().map(|u| u.0).collect();
        let rows = sqlx::query_as::<_, (Uuid, Uuid, Option<DateTime<Utc>>)>(
            "SELECT p.me AS me, u.id AS id, u.last_seen_at AS last_seen_at
             FROM (SELECT c.user1_id AS me, c.user2_id AS other FROM conversations c
                   WHERE c.user1_id = ANY($1) AND c.last_message_id IS NOT NULL
                   UNION ALL
                   SELECT c.user2_id, c.user1_id FROM conversations c
                   WHERE c.user2_id = ANY($1) AND c.last_message_id IS NOT NULL) p
             JOIN users u ON u.id = p.other
             WHERE NOT EXISTS (SELECT 1 FROM blocks b
                   WHERE b.blocker_id = p.me AND b.blocked_id = p.other)
               AND NOT EXISTS (SELECT 1 FROM blocks b
                   WHERE b.blocker_id = p.other AND b.blocked_id = p.me)",
        )
        .bind(&ids)
        .fetch_all(&self.pool)
        .await?;
        Ok(rows
            .into_iter()
            .map(|(me, id, at)| (UserId(me), UserId(id), at))
            .collect())
    }
}
