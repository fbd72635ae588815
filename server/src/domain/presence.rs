//! Who is online. In-process connection counts for the embedded backend; Redis keys
//! (`online:{userId}` = unix time, TTL 60 s, refreshed while a socket lives) when several
//! instances share a Redis, so users of a crashed instance go offline by themselves.

use std::collections::{HashMap, HashSet};
use std::sync::Mutex;

use crate::redis_breaker::{log_failure, GuardedConnection};
use async_trait::async_trait;
use chat_protocol::UserId;

/// Seconds an `online:` key lives without a refresh.
pub const ONLINE_TTL_SECS: u64 = 60;

#[async_trait]
pub trait Presence: Send + Sync + 'static {
    /// A socket of `user` opened; true if the user just came online.
    async fn connect(&self, user: UserId) -> bool;
    /// A socket of `user` closed; true if it was the user's last one anywhere.
    async fn disconnect(&self, user: UserId) -> bool;
    /// Keep `user` online (called periodically while a socket lives).
    async fn refresh(&self, user: UserId);
    /// Which of `users` are online.
    async fn online(&self, users: &[UserId]) -> HashSet<UserId>;
}

/// Single-instance presence.
#[derive(Default)]
pub struct LocalPresence {
    sockets: Mutex<HashMap<UserId, u32>>,
}

impl LocalPresence {
    pub fn new() -> Self {
        Self::default()
    }
}

#[async_trait]
impl Presence for LocalPresence {
    async fn connect(&self, user: UserId) -> bool {
        let mut map = self.sockets.lock().unwrap_or_else(|p| p.into_inner());
        let n = map.entry(user).or_insert(0);
        *n += 1;
        *n == 1
    }

    async fn disconnect(&self, user: UserId) -> bool {
        let mut map = self.sockets.lock().unwrap_or_else(|p| p.into_inner());
        match map.get_mut(&user) {
            Some(n) if *n > 1 => {
                *n -= 1;
                false
            }
            Some(_) => {
                map.remove(&user);
                true
            }
            None => false,
        }
    }

    async fn refresh(&self, _user: UserId) {}

    async fn online(&self, users: &[UserId]) -> HashSet<UserId> {
        let map = self.sockets.lock().unwrap_or_else(|p| p.into_inner());
        users
            .iter()
            .copied()
            .filter(|u| map.contains_key(u))
            .collect()
    }
}

/// Presence shared by every instance through Redis.
///
/// `online:{id}` holds the unix time of the last refresh; `sockets:{id}` counts live
/// sockets across instances. Both expire after [`ONLINE_TTL_SECS`] without a refresh, so
/// the sockets of a crashed instance stop counting on their own.
pub struct RedisPresence {
    conn: GuardedConnection,
    prefix: String,
}

impl RedisPresence {
    pub fn new(conn: GuardedConnection, prefix: &str) -> Self {
        RedisPresence {
            conn,
            prefix: prefix.to_string(),
        }
    }

    fn online_key(&self, u: UserId) -> String {
        format!("{}online:{u}", self.prefix)
    }

    fn sockets_key(&self, u: UserId) -> String {
        format!("{}sockets:{u}", self.prefix)
    }
}

fn unix_now() -> i64 {
    chrono::Utc::now().timestamp()
}

#[async_trait]
impl Presence for RedisPresence {
    async fn connect(&self, user: UserId) -> bool {
        let mut conn = self.conn.clone();
        let res: redis::RedisResult<(i64,)> = redis::pipe()
            .atomic()
            .incr(self.sockets_key(user), 1)
            .expire(self.sockets_key(user), ONLINE_TTL_SECS as i64)
            .ignore()
            .set_ex(self.online_key(user), unix_now(), ONLINE_TTL_SECS)
            .ignore()
            .query_async(&mut conn)
            .await;
        match res {
            Ok((n,)) => n == 1,
            Err(e) => {
                log_failure(&e, "redis presence connect failed");
                false
            }
        }
    }

    async fn disconnect(&self, user: UserId) -> bool {
        let mut conn = self.conn.clone();
        let left: redis::RedisResult<i64> = redis::cmd("DECR")
            .arg(self.sockets_key(user))
            .query_async(&mut conn)
            .await;
        match left {
            Ok(n) if n <= 0 => {
                let _: redis::RedisResult<()> = redis::pipe()
                    .del(self.sockets_key(user))
                    .ignore()
                    .del(self.online_key(user))
                    .ignore()
                    .query_async(&mut conn)
                    .await;
                true
            }
            Ok(_) => false,
            Err(e) => {
                log_failure(&e, "redis presence disconnect failed");
                false
            }
        }
    }

    async fn refresh(&self, user: UserId) {
        let mut conn = self.conn.clone();
        let res: redis::RedisResult<()> = redis::pipe()
            .set_ex(self.online_key(user), unix_now(), ONLINE_TTL_SECS)
            .ignore()
            .expire(self.sockets_key(user), ONLINE_TTL_SECS as i64)
            .ignore()
            .query_async(&mut conn)
            .await;
        if let Err(e) = res {
            log_failure(&e, "redis presence refresh failed");
        }
    }

    async fn online(&self, users: &[UserId]) -> HashSet<UserId> {
        if users.is_empty() {
            return HashSet::new();
        }
        let keys: Vec<String> = users.iter().map(|u| self.online_key(*u)).collect();
        let mut conn = self.conn.clone();
        let res: redis::RedisResult<Vec<Option<i64>>> =
            redis::cmd("MGET").arg(&keys).query_async(&mut conn).await;
        match res {
            Ok(values) => users
                .iter()
                .zip(values)
                .filter(|(_, v)| v.is_some())
                .map(|(u, _)| *u)
                .collect(),
            Err(e) => {
                log_failure(&e, "redis presence lookup failed");
                HashSet::new()
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn online_until_the_last_socket_closes() {
        let p = LocalPresence::new();
        let u = UserId::new();
        assert!(p.connect(u).await);
        assert!(!p.connect(u).await);
        assert!(p.online(&[u]).await.contains(&u));
        assert!(!p.disconnect(u).await);
        assert!(p.online(&[u]).await.contains(&u));
        assert!(p.disconnect(u).await);
        assert!(p.online(&[u]).await.is_empty());
        assert!(!p.disconnect(u).await);
    }
}
