//! The two participants of conversations this instance has sent in, remembered: they never
//! change after creation, so a send in a known conversation needs no read before its
//! batched insert. Blocks, erasure, idempotency and a purged conversation are still
//! checked where the send is stored (the batch statement, then `unstored`), so the cache
//! can only save work, never let a send through that the database would refuse.

use std::collections::HashMap;
use std::sync::Mutex;

use chat_protocol::{ConversationId, UserId};

/// Conversations remembered at most; past that the map starts over (a cold entry costs
/// one read, as before).
pub const DEFAULT_CAPACITY: usize = 100_000;

pub struct Participants {
    known: Mutex<HashMap<ConversationId, (UserId, UserId)>>,
    capacity: usize,
}

impl Participants {
    pub fn new(capacity: usize) -> Self {
        Participants {
            known: Mutex::new(HashMap::new()),
            capacity: capacity.max(1),
        }
    }

    /// The other participant of `conv` if it is known and `me` takes part in it; None
    /// means "ask the database" (unknown, or `me` is not a participant).
    pub fn other(&self, conv: ConversationId, me: UserId) -> Option<UserId> {
        let known = self.known.lock().unwrap_or_else(|p| p.into_inner());
        match known.get(&conv) {
            Some(&(a, b)) if a == me => Some(b),
            Some(&(a, b)) if b == me => Some(a),
            _ => None,
        }
    }

    /// `a` and `b` are the participants of `conv` (the database said so).
    pub fn remember(&self, conv: ConversationId, a: UserId, b: UserId) {
        let mut known = self.known.lock().unwrap_or_else(|p| p.into_inner());
        if known.len() >= self.capacity && !known.contains_key(&conv) {
            known.clear();
        }
        known.insert(conv, (a, b));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn knows_the_other_participant_and_nobody_else() {
        let p = Participants::new(10);
        let (conv, a, b, c) = (
            ConversationId::new(),
            UserId::new(),
            UserId::new(),
            UserId::new(),
        );
        assert_eq!(p.other(conv, a), None, "unknown until remembered");
        p.remember(conv, a, b);
        assert_eq!(p.other(conv, a), Some(b));
        assert_eq!(p.other(conv, b), Some(a));
        assert_eq!(
            p.other(conv, c),
            None,
            "an outsider is sent to the database"
        );
    }

    #[test]
    fn stays_within_its_capacity() {
        let p = Participants::new(2);
        let (a, b) = (UserId::new(), UserId::new());
        let convs: Vec<ConversationId> = (0..3).map(|_| ConversationId::new()).collect();
        for c in &convs {
            p.remember(*c, a, b);
        }
        assert_eq!(p.other(convs[2], a), Some(b));
        assert_eq!(p.other(convs[0], a), None, "the map started over");
        assert!(p.known.lock().unwrap().len() <= 2);
    }
}
