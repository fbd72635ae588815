//! The registry of this instance's sockets and the only place that writes events to
//! their outbound queues.
//!
//! Every socket has a bounded queue. Delivery never waits: when a socket's queue is full
//! the socket is closed with [`CLOSE_SLOW_CONSUMER`] instead of letting memory grow or
//! delaying other users' events.

use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};

use chat_protocol::UserId;
use tokio::sync::{mpsc, watch};
use uuid::Uuid;

use crate::domain::delivery::{ConnKey, Delivery};
use crate::metrics::METRICS;

/// Close code for a socket whose outbound queue overflowed (it did not read fast enough).
pub const CLOSE_SLOW_CONSUMER: u16 = 4008;
/// Close code sent to every socket when the server shuts down (RFC 6455 "service restart").
pub const CLOSE_RESTART: u16 = 1012;
/// Close code for abuse (sustained flooding past the frame rate limit).
pub const CLOSE_POLICY: u16 = 1008;
/// Close code when a socket was silent longer than the idle timeout.
pub const CLOSE_IDLE: u16 = 4000;

/// Why the server closes a socket.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct CloseReason {
    pub code: u16,
    pub reason: &'static str,
}

/// One frame in a socket's outbound queue.
#[derive(Debug, Clone)]
pub struct Outbound {
    /// The event-log position a resuming socket compares with what it replayed (a frame
    /// at or below it is a duplicate and is dropped); 0 for frames never dropped.
    pub seq: u64,
    pub text: Arc<str>,
}

impl Outbound {
    pub fn plain(text: Arc<str>) -> Self {
        Outbound { seq: 0, text }
    }
}

/// `{"type":…}` → `{"seq":N,"type":…}`: the event-log position travels beside `type`
/// and `data`, so a frame is serialised once and only this prefix differs per user.
pub fn with_seq(json: &str, seq: u64) -> Arc<str> {
    match json.strip_prefix('{') {
        Some(rest) => format!("{{\"seq\":{seq},{rest}").into(),
        None => json.into(),
    }
}

struct Conn {
    id: u64,
    tx: mpsc::Sender<Outbound>,
    close: watch::Sender<Option<CloseReason>>,
}

/// What a new socket gets from the hub.
pub struct Registration {
    pub key: ConnKey,
    pub tx: mpsc::Sender<Outbound>,
    pub rx: mpsc::Receiver<Outbound>,
    pub close: watch::Receiver<Option<CloseReason>>,
}

pub struct Hub {
    instance: Uuid,
    queue: usize,
    next: AtomicU64,
    sessions: AtomicUsize,
    conns: Mutex<HashMap<UserId, Vec<Conn>>>,
}

impl Hub {
    pub fn new(queue: usize) -> Self {
        Hub {
            instance: Uuid::new_v4(),
            queue: queue.max(1),
            next: AtomicU64::new(1),
            sessions: AtomicUsize::new(0),
            conns: Mutex::new(HashMap::new()),
        }
    }

    pub fn instance(&self) -> Uuid {
        self.instance
    }

    pub fn register(&self, user: UserId) -> Registration {
        let id = self.next.fetch_add(1, Ordering::Relaxed);
        let (tx, rx) = mpsc::channel(self.queue);
        let (close_tx, close_rx) = watch::channel(None);
        let mut conns = self.conns.lock().unwrap_or_else(|p| p.into_inner());
        conns.entry(user).or_default().push(Conn {
            id,
            tx: tx.clone(),
            close: close_tx,
        });
        self.sessions.fetch_add(1, Ordering::SeqCst);
        Registration {
            key: ConnKey {
                instance: self.instance,
                conn: id,
            },
            tx,
            rx,
            close: close_rx,
        }
    }

    /// Remove a socket; true if it was the user's last one on this instance.
    pub fn unregister(&self, user: UserId, key: ConnKey) -> bool {
        let mut conns = self.conns.lock().unwrap_or_else(|p| p.into_inner());
        let mut last = false;
        if let Some(list) = conns.get_mut(&user) {
            let before = list.len();
            list.retain(|c| c.id != key.conn);
            if list.len() < before {
                self.sessions.fetch_sub(1, Ordering::SeqCst);
            }
            if list.is_empty() {
                conns.remove(&user);
                last = true;
            }
        }
        last
    }

    /// Write the event to the local sockets it is for. Never blocks.
    pub fn deliver(&self, d: &Delivery) {
        let frame: Arc<str> = match serde_json::to_string(&d.event) {
            Ok(s) => s.into(),
            Err(e) => {
                tracing::error!(error = %e, "cannot serialise event");
                return;
            }
        };
        let skip = d
            .except
            .filter(|k| k.instance == self.instance)
            .map(|k| k.conn);
        let is_message = matches!(d.event, chat_protocol::ws::ServerEvent::MessageNew { .. });
        let conns = self.conns.lock().unwrap_or_else(|p| p.into_inner());
        for (i, user) in d.users.iter().enumerate() {
            let Some(list) = conns.get(user) else {
                continue;
            };
            let out = match d.seqs.get(i) {
                Some(&seq) => Outbound {
                    seq,
                    text: with_seq(&frame, seq),
                },
                None => Outbound::plain(frame.clone()),
            };
            for c in list {
                if Some(c.id) == skip {
                    continue;
                }
                let sent = c.tx.try_send(out.clone());
                if is_message && sent.is_ok() {
                    METRICS.messages_delivered.inc();
                }
                if let Err(mpsc::error::TrySendError::Full(_)) = sent {
                    tracing::warn!(user = %user, conn = c.id, "slow consumer; closing socket");
                    let _ = c.close.send(Some(CloseReason {
                        code: CLOSE_SLOW_CONSUMER,
                        reason: "slow consumer: outbound queue full",
                    }));
                }
            }
        }
    }

    /// Ask every socket to close (shutdown).
    pub fn close_all(&self, reason: CloseReason) {
        let conns = self.conns.lock().unwrap_or_else(|p| p.into_inner());
        for c in conns.values().flatten() {
            let _ = c.close.send(Some(reason));
        }
    }

    /// Sockets currently open on this instance.
    pub fn sessions(&self) -> usize {
        self.sessions.load(Ordering::SeqCst)
    }

    /// Distinct users with at least one socket on this instance.
    pub fn users(&self) -> usize {
        self.conns.lock().unwrap_or_else(|p| p.into_inner()).len()
    }

    /// Sockets `user` holds open on this instance.
    pub fn sockets_of(&self, user: UserId) -> usize {
        let conns = self.conns.lock().unwrap_or_else(|p| p.into_inner());
        conns.get(&user).map_or(0, Vec::len)
    }

    pub fn is_connected_here(&self, user: UserId) -> bool {
        let conns = self.conns.lock().unwrap_or_else(|p| p.into_inner());
        conns.contains_key(&user)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use chat_protocol::ws::ServerEvent;

    #[tokio::test]
    async fn delivers_to_every_socket_but_the_origin() {
        let hub = Hub::new(8);
        let u = UserId::new();
        let mut a = hub.register(u);
        let mut b = hub.register(u);
        hub.deliver(&Delivery::to(vec![u], ServerEvent::Pong {}).except(Some(a.key)));
        assert!(a.rx.try_recv().is_err());
        assert_eq!(
            &*b.rx.try_recv().unwrap().text,
            r#"{"type":"pong","data":{}}"#
        );
        assert!(!hub.unregister(u, a.key));
        assert!(hub.unregister(u, b.key));
        assert_eq!(hub.sessions(), 0);
    }

    #[tokio::test]
    async fn each_user_gets_its_own_position() {
        let hub = Hub::new(8);
        let (a, b) = (UserId::new(), UserId::new());
        let mut ra = hub.register(a);
        let mut rb = hub.register(b);
        hub.deliver(&Delivery::to(vec![a, b], ServerEvent::Pong {}).with_seqs(vec![7, 3]));
        let fa = ra.rx.try_recv().unwrap();
        let fb = rb.rx.try_recv().unwrap();
        assert_eq!(
            (fa.seq, &*fa.text),
            (7, r#"{"seq":7,"type":"pong","data":{}}"#)
        );
        assert_eq!(
            (fb.seq, &*fb.text),
            (3, r#"{"seq":3,"type":"pong","data":{}}"#)
        );
        let env: chat_protocol::ws::Envelope = serde_json::from_str(&fb.text).unwrap();
        assert_eq!((env.seq, env.event), (Some(3), ServerEvent::Pong {}));
    }

    #[tokio::test]
    async fn a_full_queue_closes_that_socket_only() {
        let hub = Hub::new(2);
        let slow = UserId::new();
        let fast = UserId::new();
        let s = hub.register(slow);
        let mut f = hub.register(fast);
        for _ in 0..3 {
            hub.deliver(&Delivery::to(vec![slow, fast], ServerEvent::Pong {}));
            let _ = f.rx.try_recv();
        }
        assert_eq!(s.close.borrow().map(|r| r.code), Some(CLOSE_SLOW_CONSUMER));
        assert_eq!(*f.close.borrow(), None);
    }
}
