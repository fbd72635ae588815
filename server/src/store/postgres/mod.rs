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
    /// Only the batched send statement runs here, so it stays prepared and planned on the
    /// few connections the send writers use (one per writer at a time): PostgreSQL parses
    /// it, then plans it afresh for its first six executions on each connection (~1.5 ms
    /// parse, ~1-2 ms each plan, then 0.07 ms), which on the shared pool's twenty
    /// connections made the first ~120 sends after a start slow (docs/benchmarks.md,
    /// session 17). Opened lazily, never closed for idleness.
    send_pool: PgPool,
}

fn count(v: i64) -> u64 {
    v.max(0) as u64
}

impl PostgresStore {
    pub async fn connect(url: &str, max_connections: u32) -> StoreResult<Self> {
        let pool = PgPoolOptions::new()
            .max_connections(max_connections.max(1))
            .acquire_timeout(Duration::from_secs(5))
            .connect(url)
            .await?;
        let send_pool = PgPoolOptions::new()
            .max_connections(max_connections.max(1))
            .acquire_timeout(Duration::from_secs(5))
            .idle_timeout(None)
            .connect_lazy(url)?;
        Ok(PostgresStore { pool, send_pool })
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
        Ok(())
    }

    async fn close(&self) {
        self.send_pool.close().await;
        self.pool.close().await;
    }

    fn pool_stats(&self) -> Vec<PoolStats> {
        vec![
            PoolStats::of("postgres", &self.pool),
            PoolStats::of("postgres_send", &self.send_pool),
        ]
    }
}
