//! Who is online: in-process connection counts. The WebSocket hub registers sockets
//! here; the Redis-backed variant for several instances arrives with the real-time work.

use std::collections::HashMap;
use std::sync::Mutex;

use chat_protocol::UserId;

#[derive(Default)]
pub struct Presence {
    sockets: Mutex<HashMap<UserId, u32>>,
}

impl Presence {
    pub fn new() -> Self {
        Self::default()
    }

    /// A socket of `user` opened; true if the user just came online.
    pub fn connect(&self, user: UserId) -> bool {
        let mut map = self.sockets.lock().unwrap_or_else(|p| p.into_inner());
        let n = map.entry(user).or_insert(0);
        *n += 1;
        *n == 1
    }

    /// A socket of `user` closed; true if it was the last one.
    pub fn disconnect(&self, user: UserId) -> bool {
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

    pub fn is_online(&self, user: UserId) -> bool {
        let map = self.sockets.lock().unwrap_or_else(|p| p.into_inner());
        map.contains_key(&user)
    }

    pub fn online_count(&self) -> usize {
        self.sockets.lock().unwrap_or_else(|p| p.into_inner()).len()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn online_until_the_last_socket_closes() {
        let p = Presence::new();
        let u = UserId::new();
        assert!(p.connect(u));
        assert!(!p.connect(u));
        assert!(p.is_online(u));
        assert!(!p.disconnect(u));
        assert!(p.is_online(u));
        assert!(p.disconnect(u));
        assert!(!p.is_online(u));
        assert!(!p.disconnect(u));
    }
}
