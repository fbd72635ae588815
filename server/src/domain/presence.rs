//! Who is online: the [`Presence`] rule set, in-process connection counts for the
//! embedded backend ([`LocalPresence`]) and the grace period. The Redis implementation for
//! several instances (`online:{userId}` keys with a TTL, so users of a crashed instance go
//! offline by themselves) is `crate::realtime::redis_presence`.
//!
//! A user whose last socket closes still counts as online for a grace period
//! (`CHAT_PRESENCE_GRACE_MS`, [`Departures`]): a reconnect within it is no news to their
//! contacts, so a network blip or an instance restart costs no `user.offline` /
//! `user.online` pair per user (docs/decisions.md, "Presence grace period").

use std::collections::{HashMap, HashSet};
use std::future::Future;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use async_trait::async_trait;
use chat_protocol::UserId;

/// Seconds an `online:` key lives without a refresh.
pub const ONLINE_TTL_SECS: u64 = 60;

/// Longest presence grace period: well inside [`ONLINE_TTL_SECS`], which keeps a departing
/// user's key alive until the grace is over.
pub const MAX_GRACE: Duration = Duration::from_secs(30);

#[async_trait]
pub trait Presence: Send + Sync + 'static {
    /// A socket of `user` opened; true if the user just came online (had no socket and
    /// was not within the grace period of an earlier one).
    async fn connect(&self, user: UserId) -> bool;
    /// A socket of `user` closed; true if it was the user's last one anywhere: the user is
    /// departing and still counts as online until [`Presence::settle`].
    async fn disconnect(&self, user: UserId) -> bool;
    /// The grace period of a departure is over: true if `user` still has no socket and is
    /// now offline. Of several callers for one departure, one gets true.
    async fn settle(&self, user: UserId) -> bool;
    /// Keep `user` online (called periodically while a socket lives).
    async fn refresh(&self, user: UserId);
    /// Which of `users` are online (departing users included).
    async fn online(&self, users: &[UserId]) -> HashSet<UserId>;
}

/// Departures waiting out the presence grace period. Shutdown ends the wait of every one
/// ([`Departures::flush`]): a process about to exit cannot keep timers, and its users'
/// contacts must still hear `user.offline`.
pub struct Departures {
    grace: Duration,
    flushing: tokio::sync::watch::Sender<bool>,
    pending: Arc<AtomicUsize>,
}

/// Held while a departure is pending; [`Departures::flush`] waits for all to drop.
pub struct PendingDeparture(Arc<AtomicUsize>);

impl Drop for PendingDeparture {
    fn drop(&mut self) {
        self.0.fetch_sub(1, Ordering::AcqRel);
    }
}

impl Departures {
    pub fn new(grace: Duration) -> Self {
        Departures {
            grace: grace.min(MAX_GRACE),
            flushing: tokio::sync::watch::Sender::new(false),
            pending: Arc::new(AtomicUsize::new(0)),
        }
    }

    pub fn grace(&self) -> Duration {
        self.grace
    }

    /// The wait before a departure settles, or None to settle at once (no grace period,
    /// or shutting down). Keep the returned guard until the departure is handled.
    pub fn wait(&self) -> Option<impl Future<Output = PendingDeparture> + Send + 'static> {
        if self.grace.is_zero() || *self.flushing.borrow() {
            return None;
        }
        self.pending.fetch_add(1, Ordering::AcqRel);
        let guard = PendingDeparture(self.pending.clone());
        let mut flushing = self.flushing.subscribe();
        let grace = self.grace;
        Some(async move {
            tokio::select! {
                () = tokio::time::sleep(grace) => {}
                _ = flushing.wait_for(|f| *f) => {}
            }
            guard
        })
    }

    /// Departures still waiting or being handled.
    pub fn pending(&self) -> usize {
        self.pending.load(Ordering::Acquire)
    }

    /// End every wait now and settle later departures at once; returns when all pending
    /// departures have been handled.
    pub async fn flush(&self) {
        self.flushing.send_replace(true);
        while self.pending() > 0 {
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
    }
}

/// Single-instance presence: live sockets per user; 0 = departing.
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
        match map.get_mut(&user) {
            Some(n) => {
                *n += 1;
                false
            }
            None => {
                map.insert(user, 1);
                true
            }
        }
    }

    async fn disconnect(&self, user: UserId) -> bool {
        let mut map = self.sockets.lock().unwrap_or_else(|p| p.into_inner());
        match map.get_mut(&user) {
            Some(n) if *n > 1 => {
                *n -= 1;
                false
            }
            Some(n) if *n == 1 => {
                *n = 0;
                true
            }
            _ => false,
        }
    }

    async fn settle(&self, user: UserId) -> bool {
        let mut map = self.sockets.lock().unwrap_or_else(|p| p.into_inner());
        if map.get(&user) == Some(&0) {
            map.remove(&user);
            true
        } else {
            false
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

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn online_until_the_last_socket_closes_and_the_departure_settles() {
        let p = LocalPresence::new();
        let u = UserId::new();
        assert!(p.connect(u).await);
        assert!(!p.connect(u).await);
        assert!(p.online(&[u]).await.contains(&u));
        assert!(!p.disconnect(u).await);
        assert!(!p.settle(u).await, "a socket is still open");
        assert!(p.online(&[u]).await.contains(&u));
        assert!(p.disconnect(u).await);
        assert!(p.online(&[u]).await.contains(&u), "departing still counts");
        assert!(!p.disconnect(u).await);
        assert!(p.settle(u).await);
        assert!(!p.settle(u).await, "one settle wins");
        assert!(p.online(&[u]).await.is_empty());
        assert!(!p.disconnect(u).await);
    }

    #[tokio::test]
    async fn a_reconnect_within_the_grace_is_no_news() {
        let p = LocalPresence::new();
        let u = UserId::new();
        assert!(p.connect(u).await);
        assert!(p.disconnect(u).await);
        assert!(
            !p.connect(u).await,
            "back within the grace: not a new arrival"
        );
        assert!(!p.settle(u).await, "back: the departure does not settle");
        assert!(p.online(&[u]).await.contains(&u));
        assert!(p.disconnect(u).await);
        assert!(p.settle(u).await);
        assert!(
            p.connect(u).await,
            "after the departure settled: online is news again"
        );
    }

    #[tokio::test(start_paused = true)]
    async fn departures_wait_out_the_grace() {
        let d = Departures::new(Duration::from_secs(5));
        let start = tokio::time::Instant::now();
        let wait = d.wait().expect("a grace period");
        assert_eq!(d.pending(), 1);
        let guard = wait.await;
        assert_eq!(start.elapsed(), Duration::from_secs(5));
        assert_eq!(d.pending(), 1, "pending until the guard drops");
        drop(guard);
        assert_eq!(d.pending(), 0);
    }

    #[tokio::test(start_paused = true)]
    async fn flush_ends_every_wait_and_later_departures_settle_at_once() {
        let d = Arc::new(Departures::new(Duration::from_secs(5)));
        let start = tokio::time::Instant::now();
        let handled = Arc::new(AtomicUsize::new(0));
        for _ in 0..3 {
            let wait = d.wait().expect("a grace period");
            let handled = handled.clone();
            tokio::spawn(async move {
                let _guard = wait.await;
                handled.fetch_add(1, Ordering::AcqRel);
            });
        }
        tokio::time::sleep(Duration::from_secs(1)).await;
        assert_eq!(handled.load(Ordering::Acquire), 0);
        d.flush().await;
        assert_eq!(handled.load(Ordering::Acquire), 3);
        assert!(
            start.elapsed() < Duration::from_secs(2),
            "{:?}",
            start.elapsed()
        );
        assert!(
            d.wait().is_none(),
            "after a flush, departures settle at once"
        );
    }

    #[test]
    fn no_grace_settles_at_once_and_the_grace_is_capped() {
        assert!(Departures::new(Duration::ZERO).wait().is_none());
        assert_eq!(Departures::new(Duration::from_secs(600)).grace(), MAX_GRACE);
    }
}
