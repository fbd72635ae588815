//! Bounded shares: at most `max` held at once per key (a receiver's push deliveries, a
//! source address's connections). A [`Slot`] gives its share back when dropped.

use std::collections::HashMap;
use std::hash::Hash;
use std::sync::{Arc, Mutex};

pub struct Slots<K> {
    held: Mutex<HashMap<K, usize>>,
    max: usize,
}

/// One unit of a key's share, returned on drop.
pub struct Slot<K: Hash + Eq + Copy> {
    slots: Arc<Slots<K>>,
    key: K,
}

impl<K: Hash + Eq + Copy> Slots<K> {
    /// At most `max` per key (0: no limit).
    pub fn new(max: usize) -> Arc<Self> {
        Arc::new(Slots {
            held: Mutex::new(HashMap::new()),
            max,
        })
    }

    /// One unit of `key`'s share, or `None` when it already holds `max`.
    pub fn take(self: &Arc<Self>, key: K) -> Option<Slot<K>> {
        let mut held = self.held.lock().unwrap_or_else(|p| p.into_inner());
        let n = held.entry(key).or_insert(0);
        if self.max != 0 && *n >= self.max {
            return None;
        }
        *n += 1;
        Some(Slot {
            slots: self.clone(),
            key,
        })
    }

    /// Units `key` holds now.
    pub fn held(&self, key: K) -> usize {
        let held = self.held.lock().unwrap_or_else(|p| p.into_inner());
        held.get(&key).copied().unwrap_or(0)
    }
}

impl<K: Hash + Eq + Copy> Drop for Slot<K> {
    fn drop(&mut self) {
        let mut held = self.slots.held.lock().unwrap_or_else(|p| p.into_inner());
        if let Some(n) = held.get_mut(&self.key) {
            *n -= 1;
            if *n == 0 {
                held.remove(&self.key);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_key_holds_at_most_its_share_and_gets_it_back_on_drop() {
        let slots = Slots::new(2);
        let a = slots.take("a").expect("first");
        let a2 = slots.take("a").expect("second");
        assert!(slots.take("a").is_none(), "over the share");
        assert!(slots.take("b").is_some(), "another key is unaffected");
        assert_eq!(slots.held("a"), 2);
        drop(a);
        assert!(slots.take("a").is_some());
        drop(a2);
        assert_eq!(slots.held("b"), 0, "dropped slots leave no entry");
        let unlimited = Slots::new(0);
        let many: Vec<_> = (0..1000)
            .map(|_| unlimited.take(1u8).expect("no cap"))
            .collect();
        assert_eq!(unlimited.held(1), many.len());
    }
}
