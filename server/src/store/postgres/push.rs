//! Push subscriptions on PostgreSQL.

use super::*;

#[async_trait]
impl PushStore for PostgresStore {
    async fn add_push_subscription(
        &self,
        user: UserId,
        kind: PushKind,
        target: &str,
        keys: Option<(&str, &str)>,
        now: DateTime<Utc>,
    ) -> StoreResult<PushSubscription> {
        let (id, created_at): (Uuid, DateTime<Utc>) = sqlx::query_as(
            "INSERT INTO push_subscriptions (id, user_id, kind, target, p256dh, auth, created_at)
             VALUES ($1, $2, $3, $4, $5, $6, $7)
             ON CONFLICT (user_id, target) DO UPDATE SET kind = excluded.kind,
                 p256dh = excluded.p256dh, auth = excluded.auth
             RETURNING id, created_at",
        )
        .bind(Uuid::now_v7())
        .bind(user.0)
        .bind(kind.as_str())
        .bind(target)
        .bind(keys.map(|k| k.0))
        .bind(keys.map(|k| k.1))
        .bind(now)
        .fetch_one(&self.pool)
        .await?;
        Ok(PushSubscription {
            id,
            kind,
            target: target.to_string(),
            created_at,
        })
    }

    async fn push_subscriptions(&self, user: UserId) -> StoreResult<Vec<StoredPush>> {
        type Row = (
            Uuid,
            String,
            String,
            Option<String>,
            Option<String>,
            DateTime<Utc>,
        );
        let rows: Vec<Row> = sqlx::query_as(
            "SELECT id, kind, target, p256dh, auth, created_at FROM push_subscriptions
             WHERE user_id = $1 ORDER BY created_at, id",
        )
        .bind(user.0)
        .fetch_all(&self.pool)
        .await?;
        rows.into_iter()
            .map(|(id, kind, target, p256dh, auth, created_at)| {
                Ok(StoredPush {
                    subscription: PushSubscription {
                        id,
                        kind: PushKind::parse(&kind)
                            .ok_or_else(|| StoreError::Other(format!("bad push kind {kind}")))?,
                        target,
                        created_at,
                    },
                    p256dh,
                    auth,
                })
            })
            .collect()
    }

    async fn delete_push_subscription(&self, user: UserId, id: Uuid) -> StoreResult<bool> {
        let n = sqlx::query("DELETE FROM push_subscriptions WHERE id = $1 AND user_id = $2")
            .bind(id)
            .bind(user.0)
            .execute(&self.pool)
            .await?
            .rows_affected();
        Ok(n > 0)
    }
}
