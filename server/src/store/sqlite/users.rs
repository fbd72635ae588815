//! Users on SQLite: sign-in upsert, lookups, last seen and presence contacts.

use super::*;

#[async_trait]
impl UserStore for SqliteStore {
    async fn upsert_user(
        &self,
        id: UserId,
        username: &str,
        now: DateTime<Utc>,
    ) -> StoreResult<User> {
        let row = sqlx::query(
            "INSERT INTO users (id, username, display_name, created_at, last_seen_at)
             VALUES ($1, $2, NULL, $3, $3)
             ON CONFLICT(id) DO UPDATE SET username = excluded.username,
                 last_seen_at = excluded.last_seen_at
                 WHERE users.deleted_at IS NULL
             RETURNING id AS u_id, username AS u_username, display_name AS u_display_name,
                 created_at AS u_created_at, last_seen_at AS u_last_seen_at",
        )
        .bind(id.to_string())
        .bind(username)
        .bind(ts(now))
        .fetch_optional(&self.write)
        .await?;
        // No row: the id exists but was erased (the update's WHERE refused it).
        row.as_ref()
            .map(user_from_row)
            .transpose()?
            .ok_or(StoreError::Erased)
    }

    async fn user_by_id(&self, id: UserId) -> StoreResult<Option<User>> {
        let row = sqlx::query(&format!("SELECT {USER_COLS} FROM users u WHERE u.id = $1"))
            .bind(id.to_string())
            .fetch_optional(&self.read)
            .await?;
        row.as_ref().map(user_from_row).transpose()
    }

    async fn live_usernames(&self, ids: &[UserId]) -> StoreResult<Vec<(UserId, String)>> {
        if ids.is_empty() {
            return Ok(Vec::new());
        }
        let rows = sqlx::query(
            "SELECT id, username FROM users
             WHERE id IN (SELECT value FROM json_each($1)) AND deleted_at IS NULL",
        )
        .bind(json_ids(ids)?)
        .fetch_all(&self.read)
        .await?;
        rows.iter()
            .map(|r| Ok((UserId(r.uuid("id")?), r.try_get("username")?)))
            .collect()
    }

    async fn user_by_username(&self, username: &str) -> StoreResult<Option<User>> {
        let row = sqlx::query(&format!(
            "SELECT {USER_COLS} FROM users u WHERE u.username = $1"
        ))
        .bind(username)
        .fetch_optional(&self.read)
        .await?;
        row.as_ref().map(user_from_row).transpose()
    }

    async fn list_users(&self, after_username: Option<&str>, limit: u32) -> StoreResult<Vec<User>> {
        let rows = sqlx::query(&format!(
            "SELECT {USER_COLS} FROM users u WHERE u.username > $1 ORDER BY u.username LIMIT $2"
        ))
        .bind(after_username.unwrap_or(""))
        .bind(i64::from(limit))
        .fetch_all(&self.read)
        .await?;
        rows.iter().map(user_from_row).collect()
    }

    async fn touch_last_seen(&self, seen: &[(UserId, DateTime<Utc>)]) -> StoreResult<()> {
        if seen.is_empty() {
            return Ok(());
        }
        // One transaction, one commit, however many users.
        let mut tx = self.write.begin().await?;
        for (id, at) in seen {
            sqlx::query(
                "UPDATE users SET last_seen_at = MAX(COALESCE(last_seen_at, 0), $2)
                 WHERE id = $1 AND deleted_at IS NULL",
            )
            .bind(id.to_string())
            .bind(ts(*at))
            .execute(&mut *tx)
            .await?;
        }
        tx.commit().await?;
        Ok(())
    }

    async fn contacts_of(&self, users: &[UserId]) -> StoreResult<Vec<Contact>> {
        if users.is_empty() {
            return Ok(Vec::new());
        }
        let rows = sqlx::query(
            "SELECT p.me AS me, u.id AS id, u.last_seen_at AS last_seen_at
             FROM (SELECT c.user1_id AS me, c.user2_id AS other FROM conversations c
                   WHERE c.user1_id IN (SELECT value FROM json_each($1)) AND c.last_message_id IS NOT NULL
                   UNION ALL
                   SELECT c.user2_id, c.user1_id FROM conversations c
                   WHERE c.user2_id IN (SELECT value FROM json_each($1)) AND c.last_message_id IS NOT NULL) p
             JOIN users u ON u.id = p.other
             WHERE NOT EXISTS (SELECT 1 FROM blocks b
                   WHERE b.blocker_id = p.me AND b.blocked_id = p.other)
               AND NOT EXISTS (SELECT 1 FROM blocks b
                   WHERE b.blocker_id = p.other AND b.blocked_id = p.me)",
        )
        .bind(json_ids(users)?)
        .fetch_all(&self.read)
        .await?;
        rows.iter()
            .map(|r| {
                Ok((
                    UserId(r.uuid("me")?),
                    UserId(r.uuid("id")?),
                    r.opt_ts("last_seen_at")?,
                ))
            })
            .collect()
    }
}
