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
    /// stays prepared and planned on those few: PostgreSQL parses it, then makes a custom
    /// plan for each of its first five executions on each connection and a generic one at
    /// the sixth (~1.5 ms parse, ~1-2 ms each plan, then 0.07 ms), which on the shared
    /// pool's twenty connections made the first ~120 sends after a start slow
    /// (docs/benchmarks.md, session 17). Its connections are not closed for idleness or
    /// age, use the generic plan from the start and are readied before their first send
    /// ([`send::prepare_send_connection`], [`Store::ready`]; session 19). None with group
    /// commit off: sends use `pool`.
    send_pool: Option<PgPool>,
}

/// A send connection idle at least this long is pinged before it is handed out.
const PING_IDLE_AFTER: Duration = Duration::from_secs(5);

/// How long that ping may take before the connection is given up for a new one (a
/// connection a firewall dropped silently would otherwise hold the send until the
/// pool's acquire timeout).
const PING_TIMEOUT: Duration = Duration::from_secs(1);

fn pool_options(max_connections: u32) -> PgPoolOptions {
    PgPoolOptions::new()
        .max_connections(max_connections)
        .acquire_timeout(Duration::from_secs(5))
}

/// Options of the send pool. By default sqlx pings every connection it hands out (a round
/// trip to PostgreSQL, and a wake-up of its backend, in front of every group commit) and
/// again when it comes back. Here a send connection is pinged before use only after
/// `ping_idle_after` idle, where a connection dropped by a restart or a firewall hides;
/// one that breaks while in use fails its batch (503, as any outage; clients retry with
/// their temp_id) and is closed by sqlx's ping on its return (docs/benchmarks.md, session
/// 19). The main pool keeps sqlx's ping before every use: after a PostgreSQL restart its
/// many connections, some used seconds before, would each fail a read otherwise.
fn send_pool_options(writers: u32, ping_idle_after: Duration) -> PgPoolOptions {
    pool_options(writers)
        .test_before_acquire(false)
        .before_acquire(move |conn, meta| {
            Box::pin(async move {
                if meta.idle_for >= ping_idle_after {
                    tokio::time::timeout(PING_TIMEOUT, sqlx::Connection::ping(conn))
                        .await
                        .map_err(|_| {
                            sqlx::Error::Io(std::io::Error::new(
                                std::io::ErrorKind::TimedOut,
                                "ping of an idle send connection timed out",
                            ))
                        })??;
                }
                Ok(true)
            })
        })
        .idle_timeout(None)
        .max_lifetime(None)
        .after_connect(|conn, _| Box::pin(send::prepare_send_connection(conn)))
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
        Self::connect_with(url, max_connections, send_writers, PING_IDLE_AFTER).await
    }

    /// [`Self::connect_for_writers`], pinging send connections idle for `ping_idle_after`
    /// before use (`Duration::ZERO`: before every use; `Duration::MAX`: never).
    pub async fn connect_with(
        url: &str,
        max_connections: u32,
        send_writers: usize,
        ping_idle_after: Duration,
    ) -> StoreResult<Self> {
        let max_connections = max_connections.max(1);
        let pool = pool_options(max_connections).connect(url).await?;
        let writers = u32::try_from(send_writers).unwrap_or(u32::MAX);
        let send_pool = match writers.min(max_connections) {
            0 => None,
            n => Some(send_pool_options(n, ping_idle_after).connect_lazy(url)?),
        };
        Ok(PostgresStore { pool, send_pool })
    }

    /// Where the batched send statement runs.
    pub fn sends(&self) -> &PgPool {
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

    /// Opens the send connections now (each readies itself as it opens), rather than on
    /// the first sends. A failure is left to the first send to meet again.
    async fn ready(&self) {
        if let Some(sends) = &self.send_pool {
            let n = sends.options().get_max_connections();
            let opened = futures_util::future::join_all((0..n).map(|_| sends.acquire())).await;
            if let Some(Err(e)) = opened.into_iter().find(Result::is_err) {
                tracing::warn!(error = %e, "could not open the send connections");
            }
        }
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
