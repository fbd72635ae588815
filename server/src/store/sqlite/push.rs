//! Push subscriptions on SQLite.

use super::*;

#[async_trait]
impl PushStore for SqliteStore {
    async fn add_push_subscription(
        &self,
        user: UserId,
        kind: PushKind,
        target: &str,
        keys: Option<(&str, &str)>,
        now: DateTime<Utc>,
    ) -> StoreResult<PushSubscription> {
        let row = sqlx::query(
            "INSERT INTO push_subscriptions (id, user_id, kind, target, p256dh, auth, created_at)
             VALUES ($1, $2, $3, $4, $5, $6, $7)
             ON CONFLICT (user_id, target) DO UPDATE SET kind = excluded.kind,
                 p256dh = excluded.p256dh, auth = excluded.auth
             RETURNING id, created_at",
        )
        .bind(Uuid::now_v7().to_string())
        .bind(user.to_string())
        .bind(kind.as_str())
        .bind(target)
        .bind(keys.map(|k| k.0))
        .bind(keys.map(|k| k.1))
        .bind(ts(now))
        .fetch_one(&self.write)
        .await?;
        Ok(PushSubscription {
            id: row.uuid("id")?,
            kind,
            target: target.to_string(),
            created_at: row.ts("created_at")?,
        })
    }

    async fn push_subscriptions(&self, user: UserId) -> StoreResult<Vec<StoredPush>> {
        let rows = sqlx::query(
            "SELECT id, kind, target, p256dh, auth, created_at FROM push_subscriptions
             WHERE user_id = $1 ORDER BY created_at, id",
        )
        .bind(user.to_string())
        .fetch_all(&self.read)
        .await?;
        rows.iter()
            .map(|r| {
                let kind: String = r.try_get("kind")?;
                Ok(StoredPush {
                    subscription: PushSubscription {
                        id: r.uuid("id")?,
                        kind: PushKind::parse(&kind)
                            .ok_or_else(|| StoreError::Other(format!("bad push kind {kind}")))?,
                        target: r.try_get("target")?,
                        created_at: r.ts("created_at")?,
                    },
                    p256dh: r.try_get("p256dh")?,
                    auth: r.try_get("auth")?,
                })
            })
            .collect()
    }

    async fn delete_push_subscription(&self, user: UserId, id: Uuid) -> StoreResult<bool> {
        let n = sqlx::query("DELETE FROM push_subscriptions WHERE id = $1 AND user_id = $2")
            .bind(id.to_string())
            .bind(user.to_string())
            .execute(&self.write)
            .await?
            .rows_affected();
        Ok(n > 0)
    }
}
