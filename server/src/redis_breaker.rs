//! Fail fast while Redis is down. The connection manager reconnects on its own, but each
//! call made while Redis is unreachable would wait for a connect timeout first; with the
//! breaker open, calls fail at once and their callers fall back (in-process rate limits,
//! local-only delivery, presence unknown) until the next probe a second later.

use std::future::Future;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use redis::aio::{ConnectionLike, ConnectionManager};
use redis::{Cmd, Pipeline, RedisFuture, Value};

/// How long Redis is considered down after a connection-level failure.
const OPEN_FOR: Duration = Duration::from_secs(1);

const SKIPPED: &str = "redis unreachable a moment ago; not retrying yet";

/// Log a failed Redis call: a warning when Redis was actually tried, a debug line when
/// the breaker skipped it (an outage would otherwise log every send, several times).
pub fn log_failure(e: &redis::RedisError, what: &str) {
    if is_skipped(e) {
        tracing::debug!(error = %e, "{what}");
    } else {
        tracing::warn!(error = %e, "{what}");
    }
}

/// Whether this error is the breaker refusing a call (Redis not even tried).
pub fn is_skipped(e: &redis::RedisError) -> bool {
    e.detail().is_none() && e.to_string().contains(SKIPPED)
}

/// Shared by every user of one Redis: until when (Unix ms) calls fail without trying.
#[derive(Clone, Default)]
pub struct Breaker(Arc<AtomicU64>);

fn now_ms() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_millis() as u64)
}

impl Breaker {
    /// Whether calls are being refused right now.
    pub fn is_open(&self) -> bool {
        now_ms() < self.0.load(Ordering::Relaxed)
    }

    /// Run one Redis call unless the breaker is open; a connection-level failure (I/O,
    /// timeout, refused, dropped) opens it for [`OPEN_FOR`].
    pub async fn call<T>(
        &self,
        f: impl Future<Output = redis::RedisResult<T>>,
    ) -> redis::RedisResult<T> {
        if self.is_open() {
            return Err(redis::RedisError::from((
                redis::ErrorKind::IoError,
                SKIPPED,
            )));
        }
        let result = f.await;
        if let Err(e) = &result {
            if e.is_io_error()
                || e.is_timeout()
                || e.is_connection_dropped()
                || e.is_connection_refusal()
            {
                self.0
                    .store(now_ms() + OPEN_FOR.as_millis() as u64, Ordering::Relaxed);
            }
        }
        result
    }
}

/// A Redis connection behind a [`Breaker`]: every command, pipeline and script sent
/// through it is refused at once while the breaker is open, and a connection-level failure
/// opens it. Callers use it like the connection manager it wraps.
#[derive(Clone)]
pub struct GuardedConnection {
    conn: ConnectionManager,
    breaker: Breaker,
}

impl GuardedConnection {
    pub fn new(conn: ConnectionManager, breaker: Breaker) -> Self {
        GuardedConnection { conn, breaker }
    }
}

impl ConnectionLike for GuardedConnection {
    fn req_packed_command<'a>(&'a mut self, cmd: &'a Cmd) -> RedisFuture<'a, Value> {
        let GuardedConnection { conn, breaker } = self;
        Box::pin(breaker.call(conn.req_packed_command(cmd)))
    }

    fn req_packed_commands<'a>(
        &'a mut self,
        cmd: &'a Pipeline,
        offset: usize,
        count: usize,
    ) -> RedisFuture<'a, Vec<Value>> {
        let GuardedConnection { conn, breaker } = self;
        Box::pin(breaker.call(conn.req_packed_commands(cmd, offset, count)))
    }

    fn get_db(&self) -> i64 {
        self.conn.get_db()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn a_connection_failure_opens_it_and_calls_then_fail_without_running() {
        let b = Breaker::default();
        let ok: redis::RedisResult<i32> = b.call(async { Ok(1) }).await;
        assert_eq!(ok.ok(), Some(1));
        let refused: redis::RedisResult<i32> = b
            .call(async {
                Err(redis::RedisError::from(std::io::Error::new(
                    std::io::ErrorKind::ConnectionRefused,
                    "refused",
                )))
            })
            .await;
        assert!(refused.is_err());
        assert!(b.is_open());
        let ran = std::sync::atomic::AtomicBool::new(false);
        let r: redis::RedisResult<i32> = b
            .call(async {
                ran.store(true, Ordering::Relaxed);
                Ok(2)
            })
            .await;
        assert!(
            r.is_err() && !ran.load(Ordering::Relaxed),
            "open: not even tried"
        );
        // A logical error (a script error, say) does not open it.
        let fresh = Breaker::default();
        let _: redis::RedisResult<i32> = fresh
            .call(async { Err(redis::RedisError::from((redis::ErrorKind::TypeError, "x"))) })
            .await;
        assert!(!fresh.is_open());
    }
}
