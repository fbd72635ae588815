//! [`Presence`] shared by every instance through Redis.

use std::collections::HashSet;

use async_trait::async_trait;
use chat_protocol::UserId;

use crate::domain::presence::{Presence, ONLINE_TTL_SECS};
use crate::redis_breaker::{log_failure, GuardedConnection};

/// The Redis key that says `user` is online (`*` as `user` gives the pattern of them all).
pub fn online_key(prefix: &str, user: impl std::fmt::Display) -> String {
    format!("{prefix}online:{user}")
}

/// Presence shared by every instance through Redis.
///
/// `online:{id}` holds the unix time of the last refresh; `sockets:{id}` counts live
/// sockets across instances. Both expire after [`ONLINE_TTL_SECS`] without a refresh, so
/// the sockets of a crashed instance stop counting on their own.
pub struct RedisPresence {
    conn: GuardedConnection,
    prefix: String,
    settle: redis::Script,
}

/// KEYS: sockets, online. Offline only if no instance holds a socket and the key is still
/// there (so of several settles for one departure, one returns 1).
const SETTLE_LUA: &str = r"
local n = tonumber(redis.call('GET', KEYS[1]) or '0')
if n > 0 then return 0 end
redis.call('DEL', KEYS[1])
return redis.call('DEL', KEYS[2])
";

impl RedisPresence {
    pub fn new(conn: GuardedConnection, prefix: &str) -> Self {
        RedisPresence {
            conn,
            prefix: prefix.to_string(),
            settle: redis::Script::new(SETTLE_LUA),
        }
    }

    fn online_key(&self, u: UserId) -> String {
        online_key(&self.prefix, u)
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
        // Online already (another socket, or departing within the grace period): no news.
        let res: redis::RedisResult<(bool,)> = redis::pipe()
            .atomic()
            .exists(self.online_key(user))
            .incr(self.sockets_key(user), 1)
            .ignore()
            .expire(self.sockets_key(user), ONLINE_TTL_SECS as i64)
            .ignore()
            .set_ex(self.online_key(user), unix_now(), ONLINE_TTL_SECS)
            .ignore()
            .query_async(&mut conn)
            .await;
        match res {
            Ok((was_online,)) => !was_online,
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
        // At 0 the user departs; the keys stay (the online one with its TTL) until
        // `settle`.
        match left {
            Ok(n) => n <= 0,
            Err(e) => {
                log_failure(&e, "redis presence disconnect failed");
                false
            }
        }
    }

    async fn settle(&self, user: UserId) -> bool {
        let mut conn = self.conn.clone();
        let res: redis::RedisResult<i64> = self
            .settle
            .key(self.sockets_key(user))
            .key(self.online_key(user))
            .invoke_async(&mut conn)
            .await;
        match res {
            Ok(n) => n == 1,
            Err(e) => {
                log_failure(&e, "redis presence settle failed");
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
