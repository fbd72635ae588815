//! One socket's typing state: to whom it is typing in which conversation, and until when.
//! Typing is relayed on transitions only (start, stop, expiry); a `typing.start` while
//! typing is on is a refresh that moves the expiry [`TYPING_TTL`] ahead, relayed to nobody.

use std::collections::HashMap;
use std::time::Duration;

use chat_protocol::{ConversationId, UserId};
use tokio::time::Instant;

/// Typing expires this long after the last `typing.start`.
pub const TYPING_TTL: Duration = Duration::from_secs(5);

#[derive(Debug, Default)]
pub struct Typing {
    /// conversation -> (peer, expiry)
    active: HashMap<ConversationId, (UserId, Instant)>,
}

impl Typing {
    /// A `typing.start` in `conv` at `now`: true when typing was already on there (its
    /// expiry moved; nothing to relay), false when the caller must check the peer and
    /// call [`Typing::started`].
    pub fn refresh(&mut self, conv: ConversationId, now: Instant) -> bool {
        match self.active.get_mut(&conv) {
            Some(entry) => {
                entry.1 = now + TYPING_TTL;
                true
            }
            None => false,
        }
    }

    /// Typing to `peer` in `conv` started at `now` (relay `typing.start`).
    pub fn started(&mut self, conv: ConversationId, peer: UserId, now: Instant) {
        self.active.insert(conv, (peer, now + TYPING_TTL));
    }

    /// Typing in `conv` stops (a `typing.stop` or a send): the peer to tell, if it was on.
    pub fn stop(&mut self, conv: ConversationId) -> Option<UserId> {
        self.active.remove(&conv).map(|(peer, _)| peer)
    }

    /// When the next typing expires (None: typing is off everywhere).
    pub fn next_expiry(&self) -> Option<Instant> {
        self.active.values().map(|(_, until)| *until).min()
    }

    /// Typing that expired by `now`, removed: (conversation, peer) to relay a stop to.
    pub fn expired(&mut self, now: Instant) -> Vec<(ConversationId, UserId)> {
        let gone: Vec<(ConversationId, UserId)> = self
            .active
            .iter()
            .filter(|(_, (_, until))| *until <= now)
            .map(|(c, (peer, _))| (*c, *peer))
            .collect();
        for (c, _) in &gone {
            self.active.remove(c);
        }
        gone
    }

    /// Everything still on (the socket is closing), removed.
    pub fn drain(&mut self) -> Vec<(ConversationId, UserId)> {
        self.active
            .drain()
            .map(|(c, (peer, _))| (c, peer))
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test(start_paused = true)]
    async fn typing_expires_five_seconds_after_the_last_refresh() {
        let (conv, peer) = (ConversationId::new(), UserId::new());
        let mut t = Typing::default();
        assert!(!t.refresh(conv, Instant::now()), "not typing yet");
        t.started(conv, peer, Instant::now());
        tokio::time::advance(Duration::from_secs(3)).await;
        assert!(t.refresh(conv, Instant::now()), "a refresh while typing");
        assert_eq!(
            t.next_expiry(),
            Some(Instant::now() + TYPING_TTL),
            "the socket's timer moves"
        );
        // 5 s after the start, but only 2 s after the refresh: still typing.
        tokio::time::advance(Duration::from_secs(2)).await;
        assert!(t.expired(Instant::now()).is_empty());
        tokio::time::advance(Duration::from_millis(2_999)).await;
        assert!(t.expired(Instant::now()).is_empty());
        tokio::time::advance(Duration::from_millis(1)).await;
        assert_eq!(t.expired(Instant::now()), vec![(conv, peer)]);
        assert_eq!(t.stop(conv), None, "expired typing is gone");
        assert_eq!(t.next_expiry(), None, "no timer while typing is off");
    }

    #[tokio::test(start_paused = true)]
    async fn a_stop_ends_typing_in_one_conversation_only() {
        let (c1, c2, p1, p2) = (
            ConversationId::new(),
            ConversationId::new(),
            UserId::new(),
            UserId::new(),
        );
        let mut t = Typing::default();
        t.started(c1, p1, Instant::now());
        t.started(c2, p2, Instant::now());
        assert_eq!(t.stop(c1), Some(p1));
        assert_eq!(t.stop(c1), None, "a second stop is no news");
        tokio::time::advance(TYPING_TTL).await;
        assert_eq!(t.expired(Instant::now()), vec![(c2, p2)]);
        t.started(c1, p1, Instant::now());
        assert_eq!(t.drain(), vec![(c1, p1)]);
        assert!(t.expired(Instant::now() + TYPING_TTL).is_empty());
    }
}
