//! Unit tests of [`ChatService`]'s rules on a real SQLite store in a temporary directory,
//! in-process presence and the local bus (no HTTP, no sockets).

use std::sync::Arc;

use chat_protocol::{ConversationId, UserId};

use super::*;
use crate::domain::presence::LocalPresence;
use crate::model::Username;
use crate::ratelimit::RateLimiter;
use crate::realtime::bus::LocalBus;
use crate::realtime::hub::Hub;
use crate::store::{BatchSettings, TempStore};

struct World {
    service: ChatService,
    temp: TempStore,
}

impl World {
    async fn new() -> World {
        let temp = TempStore::sqlite().await;
        let service = ChatService::new(
            temp.store.clone(),
            Arc::new(LocalBus::new(Arc::new(Hub::new(16)))),
            Arc::new(LocalPresence::new()),
            RateLimiter::new(),
            BatchSettings::for_backend("sqlite"),
        );
        World { service, temp }
    }

    async fn user(&self, name: &str) -> AuthUser {
        let id = UserId::new();
        self.temp
            .store
            .upsert_user(id, name, now())
            .await
            .expect("user");
        AuthUser {
            id,
            username: Username::parse(name).expect("username"),
        }
    }

    async fn chat(&self, me: &AuthUser, other: &AuthUser) -> ConversationId {
        let (conv, _) = self
            .service
            .conversation_with(me, other.username.as_str())
            .await
            .expect("open conversation");
        conv.id
    }

    async fn send(&self, me: &AuthUser, conv: ConversationId, text: &str) -> Result<Sent> {
        self.service.send_text(me, conv, text, None, None).await
    }

    async fn unread(&self, me: &AuthUser) -> u64 {
        self.service.unread_count(me).await.expect("unread").total
    }

    async fn done(self) {
        self.temp.remove().await;
    }
}

#[tokio::test]
async fn only_participants_send_and_outsiders_learn_nothing() {
    let w = World::new().await;
    let (alice, bob, eve) = (
        w.user("alice").await,
        w.user("bob").await,
        w.user("eve").await,
    );
    let conv = w.chat(&alice, &bob).await;
    assert!(w.send(&alice, conv, "hi").await.expect("send").created);
    // Someone else's conversation and one that does not exist answer alike.
    let foreign = w.send(&eve, conv, "let me in").await;
    let unknown = w.send(&eve, ConversationId::new(), "hello?").await;
    assert!(matches!(foreign, Err(Error::NotFound(_))), "{foreign:?}");
    assert!(matches!(unknown, Err(Error::NotFound(_))), "{unknown:?}");
    assert_eq!(w.unread(&bob).await, 1);
    w.done().await;
}

/// Opening a conversation remembers its participants, so the first send skips its
/// pre-read; a block that lands after the opening must still refuse that send.
#[tokio::test]
async fn a_block_after_opening_refuses_the_first_send_both_ways() {
    let w = World::new().await;
    let (alice, bob) = (w.user("alice").await, w.user("bob").await);
    let conv = w.chat(&alice, &bob).await;
    w.service.block(&bob, "alice").await.expect("block");
    let from_blocked = w.send(&alice, conv, "hi").await;
    assert!(
        matches!(from_blocked, Err(Error::Blocked(_))),
        "{from_blocked:?}"
    );
    let from_blocker = w.send(&bob, conv, "hi").await;
    assert!(
        matches!(from_blocker, Err(Error::Blocked(_))),
        "{from_blocker:?}"
    );
    assert_eq!(w.unread(&bob).await, 0, "nothing was stored");
    w.done().await;
}

#[tokio::test]
async fn a_retried_temp_id_is_answered_with_the_stored_message_once() {
    let w = World::new().await;
    let (alice, bob) = (w.user("alice").await, w.user("bob").await);
    let conv = w.chat(&alice, &bob).await;
    let first = w
        .service
        .send_text(&alice, conv, "once", Some("t-1"), None)
        .await
        .expect("send");
    let retry = w
        .service
        .send_text(&alice, conv, "once", Some("t-1"), None)
        .await
        .expect("retry");
    assert!(first.created && !retry.created);
    assert_eq!(first.message.id, retry.message.id);
    assert_eq!(
        w.unread(&bob).await,
        1,
        "a retry is not a second unread message"
    );
    w.done().await;
}

#[tokio::test]
async fn mark_read_clears_the_readers_unread_count_only() {
    let w = World::new().await;
    let (alice, bob) = (w.user("alice").await, w.user("bob").await);
    let conv = w.chat(&alice, &bob).await;
    for text in ["one", "two", "three"] {
        w.send(&alice, conv, text).await.expect("send");
    }
    w.send(&bob, conv, "back").await.expect("send");
    assert_eq!((w.unread(&alice).await, w.unread(&bob).await), (1, 3));
    w.service
        .mark_read(&bob, conv, None)
        .await
        .expect("mark read");
    assert_eq!((w.unread(&alice).await, w.unread(&bob).await), (1, 0));
    w.done().await;
}
