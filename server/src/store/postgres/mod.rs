//! PostgreSQL implementation of [`Store`]: the production backend and source of truth
//! when several chatd instances run side by side.

mod admin;
mod blocks;
mod conversations;
mod lifecycle;
mod messages;
mod push;
mod send;
mod users;

use std::time::Duration;

use async_trait::async_trait;
use chat_protocol::rest::{BlockedUser, LinkItem, MediaItem, Message, PushKind, PushSubscription};
use chat_protocol::{ConversationId, MessageId, UserId};
use chrono::{DateTime, Utc};
use sqlx::postgres::{PgPool, PgPoolOptions};
use sqlx::types::Json;
use sqlx::Row;
use uuid::Uuid;

use super::rows::*;
use super::sql::*;
use super::*;

/// This backend's message columns (shadows nothing: `sql` has one constant per dialect).
const MESSAGE_COLS: &str = PG_MESSAGE_COLS;

static MIGRATOR: sqlx::migrate::Migrator = sqlx::migrate!("../migrations/postgres");

pub struct PostgresStore {
    pool: PgPool,
    /// Only the batched send statement runs here, one connection per send writer, so it
    /// stays prepared and planned on those few: PostgreSQL parses it, then plans it afresh
    /// for its first six executions on each connection (~1.5 ms parse, ~1-2 ms each plan,
    /// then 0.07 ms), which on the shared pool's twenty connections made the first ~120
    /// sends after a start slow (docs/benchmarks.md, session 17). Its connections are not
    /// closed for idleness or age. None with group commit off: sends use `pool`.
    send_pool: Option<PgPool>,
}

fn count(v: i64) -> u64 {
    v.max(0) as u64
}

impl PostgresStore {
    /// A pool of `max_connections`, plus one connection per send writer (at most
    /// `max_connections`) for the batched sends.
    pub async fn connect_for_writers(
        url: &str,
        max_connections: u32,
        send_writers: usize,
    ) -> StoreResult<Self> {
        let max_connections = max_connections.max(1);
        let pool = PgPoolOptions::new()
            .max_connections(max_connections)
            .acquire_timeout(Duration::from_secs(5))
            .connect(url)
            .await?;
        let writers = u32::try_from(send_writers).unwrap_or(u32::MAX);
        let send_pool = match writers.min(max_connections) {
            0 => None,
            n => Some(
                PgPoolOptions::new()
                    .max_connections(n)
                    .acquire_timeout(Duration::from_secs(5))
                    .idle_timeout(None)
                    .max_lifetime(None)
                    .connect_lazy(url)?,
            ),
        };
        Ok(PostgresStore { pool, send_pool })
    }

    /// Where the batched send statement runs.
    pub(super) fn sends(&self) -> &PgPool {
        self.send_pool.as_ref().unwrap_or(&self.pool)
    }

    pub fn pool(&self) -> &PgPool {
        &self.pool
    }
}

#[async_trait]
impl Store for PostgresStore {
    fn backend(&self) -> &'static str {
        "postgres"
    }

    async fn migrate(&self) -> StoreResult<()> {
        // sqlx takes an advisory lock, so instances starting together migrate once.
        MIGRATOR.run(&self.pool).await?;
        Ok(())
    }

    async fn ping(&self) -> StoreResult<()> {
        sqlx::query("SELECT 1").execute(&self.pool).await?;
        // Readiness covers the sends' own connections too (PostgreSQL may refuse more).
        if let Some(sends) = &self.send_pool {
            sqlx::query("SELECT 1").execute(sends).await?;
        }
        Ok(())
    }

    async fn close(&self) {
        if let Some(sends) = &self.send_pool {
            sends.close().await;
        }
        self.pool.close().await;
    }

    fn pool_stats(&self) -> Vec<PoolStats> {
        let mut stats = vec![PoolStats::of("postgres", &self.pool)];
        stats.extend(
            self.send_pool
                .iter()
                .map(|p| PoolStats::of("postgres_send", p)),
        );
        stats
    }
}
