//! Presence and typing, used by the WebSocket sessions: who hears that a user came online
//! or went offline (SPEC "Privacy": contacts only), and typing relays.

use std::sync::Arc;
use std::time::Duration;

use chrono::{DateTime, Utc};

use chat_protocol::ws::{PresenceEntry, ServerEvent};
use chat_protocol::{ConversationId, UserId};

use super::{ChatService, Coalesced, ContactSeen};
use crate::domain::delivery::{Delivery, DynBus};
use crate::domain::presence::Presence;
use crate::error::Result;
use crate::model::now;
use crate::store::DynStore;

impl ChatService {
    pub fn bus(&self) -> &DynBus {
        &self.bus
    }

    /// A socket of `me` opened: announce `user.online` to contacts if it is the first, and
    /// return everyone `me` talks with, online or not, with last seen (`status.bulk`).
    pub async fn socket_opened(&self, me: UserId) -> Result<Vec<PresenceEntry>> {
        let first = self.presence.connect(me).await;
        // One contacts query serves both the `user.online` audience and `status.bulk`.
        let contacts = self.contacts.get(me).await?.unwrap_or_default();
        let ids: Vec<UserId> = contacts.iter().map(|(id, _)| *id).collect();
        if first {
            self.bus
                .publish(Delivery::to(
                    ids.clone(),
                    ServerEvent::UserOnline { user_id: me },
                ))
                .await;
        }
        let online = self.presence.online(&ids).await;
        Ok(contacts
            .into_iter()
            .map(|(user_id, last_seen_at)| PresenceEntry {
                user_id,
                online: online.contains(&user_id),
                last_seen_at,
            })
            .collect())
    }

    /// A socket of `me` closed. On the last one anywhere the user departs: once the
    /// presence grace period is over and no socket came back, `last_seen_at` (the close
    /// time) is recorded and contacts hear `user.offline`. With no grace period (or during
    /// shutdown) that happens before this returns; otherwise in a spawned task.
    ///
    /// `known`: the contacts this socket was told about at connect, the audience used when
    /// the database cannot answer within a second (a disconnect storm, an outage): contacts
    /// must not go on seeing this user online.
    pub async fn socket_closed(&self, me: UserId, known: &[UserId]) -> Result<()> {
        if !self.presence.disconnect(me).await {
            return Ok(());
        }
        let departure = Departure {
            contacts: self.contacts.clone(),
            bus: self.bus.clone(),
            presence: self.presence.clone(),
            last_seen: self.last_seen.clone(),
            user: me,
            at: now(),
            known: known.to_vec(),
        };
        match self.departures.wait() {
            None => departure.settle().await,
            Some(wait) => {
                tokio::spawn(async move {
                    let _pending = wait.await;
                    departure.settle().await;
                });
            }
        }
        Ok(())
    }

    /// Settle every departure still in its grace period now (shutdown: this process cannot
    /// keep the timers) and wait until they are handled.
    pub async fn flush_departures(&self) {
        self.departures.flush().await;
    }

    /// Check `me` may signal typing in `conv`; returns the other participant.
    pub async fn typing_peer(&self, me: UserId, conv: ConversationId) -> Result<UserId> {
        let c = self.participant_conversation(me, conv).await?;
        let other = c.other(me);
        self.ensure_not_blocked(me, other).await?;
        Ok(other)
    }

    pub async fn relay_typing(&self, me: UserId, peer: UserId, conv: ConversationId, typing: bool) {
        let event = if typing {
            ServerEvent::TypingStart {
                conversation_id: conv,
                user_id: me,
            }
        } else {
            ServerEvent::TypingStop {
                conversation_id: conv,
                user_id: me,
            }
        };
        self.bus.publish(Delivery::to(vec![peer], event)).await;
    }
}

/// A user whose last socket closed at `at`, waiting out the grace period.
struct Departure {
    /// The service's batched contacts reader: a disconnect storm's departures settle
    /// together, and one statement per batch keeps them inside the 1 s bound below.
    contacts: Arc<Coalesced<UserId, Vec<ContactSeen>>>,
    bus: DynBus,
    presence: Arc<dyn Presence>,
    last_seen: LastSeenWriter,
    user: UserId,
    at: DateTime<Utc>,
    known: Vec<UserId>,
}

impl Departure {
    async fn settle(self) {
        if !self.presence.settle(self.user).await {
            return; // back within the grace period (or settled elsewhere)
        }
        // A failed write (logged) does not stop the announcement either.
        self.last_seen.record(self.user, self.at).await;
        let users = match tokio::time::timeout(Duration::from_secs(1), self.contacts.get(self.user))
            .await
        {
            Ok(Ok(contacts)) => contacts
                .unwrap_or_default()
                .into_iter()
                .map(|(id, _)| id)
                .collect(),
            Ok(Err(e)) => {
                tracing::debug!(error = %e, "contacts unavailable; announcing to those known at connect");
                self.known
            }
            Err(_) => self.known,
        };
        self.bus
            .publish(Delivery::to(
                users,
                ServerEvent::UserOffline {
                    user_id: self.user,
                    last_seen_at: self.at,
                },
            ))
            .await;
    }
}

/// One user's `last_seen_at`, and who waits for it to be written.
type SeenEntry = (UserId, DateTime<Utc>, tokio::sync::oneshot::Sender<bool>);

/// Coalesces `last_seen_at` writes. Each closing socket waits for its own write, but the
/// writes of everyone who disconnects while one is in flight go out together as one
/// statement: a disconnect storm (an instance restarting, a network blip) costs a few
/// writes instead of one per user competing for the pool.
#[derive(Clone)]
pub(super) struct LastSeenWriter {
    tx: tokio::sync::mpsc::UnboundedSender<SeenEntry>,
}

impl LastSeenWriter {
    pub(super) fn start(store: DynStore) -> Self {
        let (tx, mut rx) = tokio::sync::mpsc::unbounded_channel::<SeenEntry>();
        tokio::spawn(async move {
            let mut batch = Vec::new();
            while rx.recv_many(&mut batch, 10_000).await > 0 {
                let seen: Vec<(UserId, DateTime<Utc>)> =
                    batch.iter().map(|(id, at, _)| (*id, *at)).collect();
                let ok = match store.touch_last_seen(&seen).await {
                    Ok(()) => true,
                    Err(e) => {
                        tracing::warn!(error = %e, users = seen.len(), "last_seen_at not recorded");
                        false
                    }
                };
                for (_, _, done) in batch.drain(..) {
                    let _ = done.send(ok);
                }
            }
        });
        LastSeenWriter { tx }
    }

    /// Write (batched with concurrent callers); false when the write failed.
    pub(super) async fn record(&self, user: UserId, at: DateTime<Utc>) -> bool {
        let (done, wait) = tokio::sync::oneshot::channel();
        if self.tx.send((user, at, done)).is_err() {
            return false;
        }
        wait.await.unwrap_or(false)
    }
}
