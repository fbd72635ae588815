//! Per-user rate limits, tunable at run time: governor's GCRA in-process, or the same
//! algorithm as one atomic Lua script in Redis when Redis is configured, so a user's
//! budget holds across every instance.
//!
//! The limits live in the `rate_limits` table; every instance re-reads it on a short
//! interval and rebuilds a limiter whose setting changed, so `chatctl ratelimit set`
//! applies without a restart. REST and WebSocket sends share the same bucket because
//! both go through [`RateLimiter::check`] with [`Action::SendMessage`].

use std::collections::HashMap;
use std::num::NonZeroU32;
use std::sync::{Arc, RwLock};
use std::time::Duration;

use chat_protocol::UserId;
use governor::clock::{Clock, DefaultClock};
use governor::{DefaultKeyedRateLimiter, Quota};

use crate::error::Error;
pub use crate::model::Action;
use crate::redis_breaker::{log_failure, GuardedConnection};
use crate::store::{DynStore, RateLimitSetting};

impl Action {
    /// SPEC defaults, used until the table has been read.
    pub fn default_setting(self) -> RateLimitSetting {
        let (max_requests, period_seconds) = match self {
            Action::SendMessage => (30, 60),
            Action::CreateConversation => (10, 60),
            Action::MarkRead => (60, 60),
            Action::GetConversations => (60, 60),
            Action::GetMessages => (120, 60),
            Action::Lookup => (60, 60),
            Action::Block => (30, 60),
            Action::PushSubscribe => (10, 3600),
            Action::UploadMb => (1000, 3600),
            Action::EditMessage => (30, 60),
            Action::React => (60, 60),
            Action::Search => (30, 60),
        };
        RateLimitSetting {
            max_requests,
            period_seconds,
        }
    }
}

struct Bucket {
    setting: RateLimitSetting,
    limiter: DefaultKeyedRateLimiter<UserId>,
}

fn build(setting: RateLimitSetting) -> Bucket {
    let max = NonZeroU32::new(setting.max_requests.max(1)).unwrap_or(NonZeroU32::MIN);
    let period = Duration::from_secs(u64::from(setting.period_seconds.max(1)));
    // N per period, as a burst of N refilled evenly: the N+1th request inside the period
    // is refused, and capacity returns gradually rather than all at once.
    let replenish = period / max.get();
    let quota = Quota::with_period(replenish.max(Duration::from_nanos(1)))
        .unwrap_or_else(|| Quota::per_second(max))
        .allow_burst(max);
    Bucket {
        setting,
        limiter: DefaultKeyedRateLimiter::keyed(quota),
    }
}

/// GCRA in Redis: the key holds the theoretical arrival time (µs, Redis clock).
const GCRA_LUA: &str = r#"
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000000 + tonumber(t[2])
local emission = tonumber(ARGV[1])
local tolerance = tonumber(ARGV[2])
local cost = tonumber(ARGV[3] or 1)
local tat = tonumber(redis.call('GET', KEYS[1]) or now)
if tat < now then tat = now end
local new_tat = tat + emission * cost
local allow_at = new_tat - tolerance
if allow_at > now then
  return {0, allow_at - now}
end
redis.call('SET', KEYS[1], string.format('%d', new_tat), 'PX', math.ceil((new_tat - now) / 1000) + 1)
return {1, 0}
"#;

#[derive(Clone)]
struct RedisLimiter {
    conn: GuardedConnection,
    script: Arc<redis::Script>,
    prefix: String,
}

impl RedisLimiter {
    /// `cost` units at once: `Ok(None)` allowed, `Ok(Some(wait))` refused.
    async fn check(
        &self,
        action: Action,
        user: UserId,
        setting: RateLimitSetting,
        cost: u32,
    ) -> redis::RedisResult<Option<Duration>> {
        let max = u64::from(setting.max_requests.max(1));
        let emission = u64::from(setting.period_seconds.max(1)) * 1_000_000 / max;
        let key = format!("{}ratelimit:{}:{user}", self.prefix, action.as_str());
        let mut conn = self.conn.clone();
        let (allowed, wait_us): (i64, i64) = self
            .script
            .key(key)
            .arg(emission.max(1))
            .arg(emission.max(1) * max)
            .arg(cost)
            .invoke_async(&mut conn)
            .await?;
        Ok(if allowed == 1 {
            None
        } else {
            Some(Duration::from_micros(wait_us.max(1) as u64))
        })
    }
}

/// All per-user limiters of this instance.
#[derive(Clone)]
pub struct RateLimiter {
    buckets: Arc<RwLock<HashMap<Action, Arc<Bucket>>>>,
    clock: DefaultClock,
    redis: Option<RedisLimiter>,
}

impl Default for RateLimiter {
    fn default() -> Self {
        Self::new()
    }
}

impl RateLimiter {
    pub fn new() -> Self {
        let buckets = Action::ALL
            .into_iter()
            .map(|a| (a, Arc::new(build(a.default_setting()))))
            .collect();
        RateLimiter {
            buckets: Arc::new(RwLock::new(buckets)),
            clock: DefaultClock::default(),
            redis: None,
        }
    }

    /// Enforce limits in Redis (shared by all instances); the in-process limiter stays
    /// as the fallback while Redis is unreachable.
    pub fn with_redis(mut self, conn: GuardedConnection, prefix: &str) -> Self {
        self.redis = Some(RedisLimiter {
            conn,
            script: Arc::new(redis::Script::new(GCRA_LUA)),
            prefix: prefix.to_string(),
        });
        self
    }

    fn bucket(&self, action: Action) -> Arc<Bucket> {
        let map = self.buckets.read().unwrap_or_else(|p| p.into_inner());
        match map.get(&action) {
            Some(b) => b.clone(),
            None => Arc::new(build(action.default_setting())),
        }
    }

    /// Take one unit for `user`, or say how long to wait.
    pub async fn check(&self, action: Action, user: UserId) -> Result<(), Error> {
        self.check_n(action, user, 1).await
    }

    /// Take `cost` units at once (e.g. megabytes of an upload). A cost above the whole
    /// burst can never pass: refused with the full period as the wait.
    pub async fn check_n(&self, action: Action, user: UserId, cost: u32) -> Result<(), Error> {
        let cost = cost.max(1);
        let result = self.check_any(action, user, cost).await;
        if result.is_err() {
            crate::metrics::METRICS.rate_limited(action.as_str());
        }
        result
    }

    async fn check_any(&self, action: Action, user: UserId, cost: u32) -> Result<(), Error> {
        let setting = self.setting(action);
        if cost > setting.max_requests.max(1) {
            return Err(Error::RateLimited {
                retry_after: Duration::from_secs(u64::from(setting.period_seconds.max(1))),
            });
        }
        if let Some(redis) = &self.redis {
            match redis.check(action, user, setting, cost).await {
                Ok(None) => return Ok(()),
                Ok(Some(retry_after)) => return Err(Error::RateLimited { retry_after }),
                Err(e) => log_failure(&e, "redis rate limit unavailable; limiting locally"),
            }
        }
        self.check_local(action, user, cost)
    }

    fn check_local(&self, action: Action, user: UserId, cost: u32) -> Result<(), Error> {
        let bucket = self.bucket(action);
        let n = NonZeroU32::new(cost).unwrap_or(NonZeroU32::MIN);
        match bucket.limiter.check_key_n(&user, n) {
            Ok(Ok(())) => Ok(()),
            Ok(Err(not_until)) => Err(Error::RateLimited {
                retry_after: not_until.wait_time_from(self.clock.now()),
            }),
            // More than the burst: checked above, kept for a setting changed in between.
            Err(_) => Err(Error::RateLimited {
                retry_after: Duration::from_secs(u64::from(bucket.setting.period_seconds.max(1))),
            }),
        }
    }

    pub fn setting(&self, action: Action) -> RateLimitSetting {
        self.bucket(action).setting
    }

    /// Apply settings read from the table; only changed actions are rebuilt (which
    /// resets their counters). Returns the actions that changed.
    pub fn apply(&self, settings: &[(String, RateLimitSetting)]) -> Vec<Action> {
        let mut changed = Vec::new();
        let mut map = self.buckets.write().unwrap_or_else(|p| p.into_inner());
        for (name, setting) in settings {
            let Some(action) = Action::parse(name) else {
                continue;
            };
            if map.get(&action).map(|b| b.setting) != Some(*setting) {
                map.insert(action, Arc::new(build(*setting)));
                changed.push(action);
            }
        }
        changed
    }

    /// Forget users whose buckets are full again, so memory tracks active users only.
    pub fn shrink(&self) {
        let map = self.buckets.read().unwrap_or_else(|p| p.into_inner());
        for b in map.values() {
            b.limiter.retain_recent();
            b.limiter.shrink_to_fit();
        }
    }

    /// Read the table once now, then every `every`, until the task is dropped.
    pub async fn reload_from(&self, store: &DynStore) {
        match store.rate_limits().await {
            Ok(settings) => {
                for action in self.apply(&settings) {
                    let s = self.setting(action);
                    tracing::info!(
                        action = action.as_str(),
                        max = s.max_requests,
                        period_s = s.period_seconds,
                        "rate limit in force"
                    );
                }
                for action in Action::ALL {
                    let s = self.setting(action);
                    crate::metrics::METRICS.rate_limit_in_force(
                        action.as_str(),
                        s.max_requests,
                        s.period_seconds,
                    );
                }
            }
            Err(e) => {
                tracing::warn!(error = %e, "could not read rate limits; keeping current ones")
            }
        }
    }

    pub fn spawn_reloader(&self, store: DynStore, every: Duration) -> tokio::task::JoinHandle<()> {
        let this = self.clone();
        tokio::spawn(async move {
            let mut tick = tokio::time::interval(every);
            tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
            loop {
                tick.tick().await;
                this.reload_from(&store).await;
                this.shrink();
            }
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn thirty_first_send_in_a_minute_is_refused() {
        let rl = RateLimiter::new();
        let alice = UserId::new();
        for i in 0..30 {
            assert!(
                rl.check(Action::SendMessage, alice).await.is_ok(),
                "send {i} refused"
            );
        }
        match rl.check(Action::SendMessage, alice).await {
            Err(Error::RateLimited { retry_after }) => {
                assert!(retry_after > Duration::ZERO && retry_after <= Duration::from_secs(2));
            }
            other => panic!("expected rate limit, got {other:?}"),
        }
        // Another user and another action are unaffected.
        assert!(rl.check(Action::SendMessage, UserId::new()).await.is_ok());
        assert!(rl.check(Action::GetMessages, alice).await.is_ok());
    }

    #[tokio::test]
    async fn a_cost_takes_that_many_units_at_once() {
        let rl = RateLimiter::new();
        rl.apply(&[(
            "upload_mb".into(),
            RateLimitSetting {
                max_requests: 5,
                period_seconds: 3600,
            },
        )]);
        let u = UserId::new();
        assert!(rl.check_n(Action::UploadMb, u, 3).await.is_ok());
        assert!(rl.check_n(Action::UploadMb, u, 3).await.is_err(), "6 of 5");
        assert!(rl.check_n(Action::UploadMb, u, 2).await.is_ok(), "5 of 5");
        // More than the whole budget can never pass: the wait is the period.
        match rl.check_n(Action::UploadMb, UserId::new(), 6).await {
            Err(Error::RateLimited { retry_after }) => {
                assert_eq!(retry_after, Duration::from_secs(3600))
            }
            other => panic!("expected a refusal, got {other:?}"),
        }
    }

    #[tokio::test]
    async fn apply_changes_only_what_differs() {
        let rl = RateLimiter::new();
        let changed = rl.apply(&[
            (
                "send_message".into(),
                RateLimitSetting {
                    max_requests: 2,
                    period_seconds: 60,
                },
            ),
            ("mark_read".into(), Action::MarkRead.default_setting()),
            (
                "unknown_action".into(),
                RateLimitSetting {
                    max_requests: 1,
                    period_seconds: 1,
                },
            ),
        ]);
        assert_eq!(changed, vec![Action::SendMessage]);
        let u = UserId::new();
        assert!(rl.check(Action::SendMessage, u).await.is_ok());
        assert!(rl.check(Action::SendMessage, u).await.is_ok());
        assert!(rl.check(Action::SendMessage, u).await.is_err());
    }
}
