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
use crate::store::{BatchSettings, RateLimitSetting, TempStore};

struct World {
    service: ChatService,
    hub: Arc<Hub>,
    limits: RateLimiter,
    temp: TempStore,
}

impl World {
    async fn new() -> World {
        World::batching(BatchSettings::for_backend("sqlite")).await
    }

    async fn batching(settings: BatchSettings) -> World {
        let temp = TempStore::sqlite().await;
        let hub = Arc::new(Hub::new(16));
        let limits = RateLimiter::new();
        let service = ChatService::new(
            temp.store.clone(),
            Arc::new(LocalBus::new(hub.clone())),
            Arc::new(LocalPresence::new()),
            limits.clone(),
            settings,
        );
        World {
            service,
            hub,
            limits,
            temp,
        }
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
        self.service
            .send_text(me, conv, text, None, None, None)
            .await
    }

    async fn unread(&self, me: &AuthUser) -> u64 {
        self.service.unread_count(me).await.expect("unread").total
    }

    async fn texts(&self, me: &AuthUser, conv: ConversationId, n: usize) -> Vec<MessageId> {
        let mut ids = Vec::with_capacity(n);
        for i in 0..n {
            ids.push(
                self.send(me, conv, &format!("m{i}"))
                    .await
                    .expect("send")
                    .message
                    .id,
            );
        }
        ids
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
        .send_text(&alice, conv, "once", Some("t-1"), None, None)
        .await
        .expect("send");
    let retry = w
        .service
        .send_text(&alice, conv, "once", Some("t-1"), None, None)
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

/// A service that stores media on local disk under the world's temporary directory.
fn with_local_media(w: World) -> (World, Arc<Media>) {
    let dir = w.temp.dir().join("media");
    let local = Arc::new(
        crate::media::storage::LocalStorage::new(dir.clone(), "http://chat.test", b"k")
            .expect("local storage"),
    );
    let media = Arc::new(
        Media::new(
            local.clone(),
            Some(local),
            dir.join("spool"),
            Duration::from_secs(600),
            1,
        )
        .expect("media"),
    );
    let service = w.service.with_media(media.clone());
    (World { service, ..w }, media)
}

/// Issue 17: stored object keys and signed URLs are two types, so every way a message
/// leaves the service is signed. Checked here on each of them: the send's answer, the
/// page, the single message, the context window, the gallery, the conversation list's
/// last message and the replayed event log.
#[tokio::test]
async fn every_message_that_leaves_the_service_carries_signed_urls_not_keys() {
    let (w, media) = with_local_media(World::new().await);
    let (alice, bob) = (w.user("alice").await, w.user("bob").await);
    let conv = w.chat(&alice, &bob).await;
    let pdf = futures_util::stream::iter([Ok(bytes::Bytes::from_static(b"%PDF-1.7\n%%EOF\n"))]);
    let upload = media.receive(Some("a.pdf"), pdf).await.expect("receive");
    let sent = w
        .service
        .send_media(&alice, conv, Some("the doc"), None, None, vec![upload])
        .await
        .expect("send media");
    let key = {
        let stored = w.temp.store.message(sent.message.id).await.expect("read");
        stored.expect("stored").media[0].url.clone()
    };
    assert!(!key.contains('/'), "stored as a bare object key: {key}");
    let signed = |m: &Message, via: &str| {
        assert_eq!(m.media.len(), 1, "{via}");
        let url = &m.media[0].url;
        assert!(
            url.starts_with("http://chat.test/media/") && url.contains('?') && url != &key,
            "{via} gave {url:?} for key {key:?}"
        );
    };
    signed(&sent.message, "send");
    let page = w
        .service
        .list_messages(&bob, conv, None, None, 10)
        .await
        .expect("page");
    signed(&page.data[0], "list_messages");
    let one = w.service.message(&bob, sent.message.id).await.expect("one");
    signed(&one, "message");
    let ctx = w
        .service
        .context(&bob, sent.message.id, 5, 5)
        .await
        .expect("context");
    signed(&ctx.data[0], "context");
    let files = w
        .service
        .gallery(&bob, conv, vec![MessageType::File], None, 10)
        .await
        .expect("gallery");
    signed(&files.data[0], "gallery");
    let list = w
        .service
        .list_conversations(&bob, None, 10)
        .await
        .expect("list");
    signed(
        list.data[0].last_message.as_ref().expect("last message"),
        "list_conversations",
    );
    let head = w.service.event_head(bob.id).await.expect("head");
    let events = w.service.events(bob.id, 0, head, 10).await.expect("events");
    let replayed = events
        .iter()
        .find_map(|(_, e)| match e {
            ServerEvent::MessageNew { message } => Some(message),
            _ => None,
        })
        .expect("the message in bob's log");
    signed(replayed, "events");
    w.done().await;
}

/// The frames waiting in a registered socket's queue, as JSON.
fn drain(reg: &mut crate::realtime::hub::Registration) -> Vec<serde_json::Value> {
    let mut out = Vec::new();
    while let Ok(frame) = reg.rx.try_recv() {
        out.push(serde_json::from_str(&frame.text).expect("frame JSON"));
    }
    out
}

#[tokio::test]
async fn a_send_reaches_every_socket_of_both_but_its_origin_each_with_its_own_position() {
    let w = World::new().await;
    let (alice, bob) = (w.user("alice").await, w.user("bob").await);
    let conv = w.chat(&alice, &bob).await;
    let (mut origin, mut alice_other, mut bob_socket) = (
        w.hub.register(alice.id),
        w.hub.register(alice.id),
        w.hub.register(bob.id),
    );
    let sent = w
        .service
        .send_text(&alice, conv, "hello", None, None, Some(origin.key))
        .await
        .expect("send");
    assert!(
        drain(&mut origin).is_empty(),
        "the sending socket has its answer"
    );
    let (a, b) = (drain(&mut alice_other), drain(&mut bob_socket));
    assert_eq!((a.len(), b.len()), (1, 1), "{a:?} {b:?}");
    for f in [&a[0], &b[0]] {
        assert_eq!(f["type"], "message.new");
        assert_eq!(f["data"]["message"]["id"], sent.message.id.to_string());
    }
    assert_eq!(
        a[0]["seq"].as_u64(),
        sent.seq,
        "the sender's own log position"
    );
    let bob_head = w.service.event_head(bob.id).await.expect("head");
    assert_eq!(
        b[0]["seq"].as_u64(),
        Some(bob_head),
        "the receiver's log position"
    );
    w.done().await;
}

#[tokio::test]
async fn history_pages_walk_every_message_once_newest_first() {
    let w = World::new().await;
    let (alice, bob) = (w.user("alice").await, w.user("bob").await);
    let conv = w.chat(&alice, &bob).await;
    let mut sent = w.texts(&alice, conv, 7).await;
    sent.reverse();
    let (mut seen, mut before) = (Vec::new(), None);
    loop {
        let page = w
            .service
            .list_messages(&bob, conv, before, None, 3)
            .await
            .expect("page");
        seen.extend(page.data.iter().map(|m| m.id));
        match page.next_cursor {
            Some(c) => {
                assert!(page.has_more);
                before = Some(Cursor::decode(&c).expect("cursor"));
            }
            None => {
                assert!(!page.has_more);
                break;
            }
        }
    }
    assert_eq!(seen, sent);
    w.done().await;
}

#[tokio::test]
async fn the_context_window_centres_on_the_message_and_says_what_lies_beyond() {
    let w = World::new().await;
    let (alice, bob) = (w.user("alice").await, w.user("bob").await);
    let conv = w.chat(&alice, &bob).await;
    let sent = w.texts(&alice, conv, 9).await;
    let ctx = w
        .service
        .context(&bob, sent[4], 2, 2)
        .await
        .expect("context");
    let ids: Vec<MessageId> = ctx.data.iter().map(|m| m.id).collect();
    assert_eq!(ids, sent[2..7].to_vec(), "oldest first, two on each side");
    assert_eq!(ctx.target_id, sent[4]);
    assert!(ctx.has_more_before && ctx.has_more_after);
    let edge = w.service.context(&bob, sent[0], 3, 0).await.expect("edge");
    assert_eq!(edge.data.len(), 1);
    assert!(!edge.has_more_before && edge.has_more_after);
    let eve = w.user("eve").await;
    let foreign = w.service.context(&eve, sent[4], 2, 2).await;
    assert!(matches!(foreign, Err(Error::NotFound(_))), "{foreign:?}");
    w.done().await;
}

#[tokio::test]
async fn a_block_refuses_sends_both_ways_until_it_is_lifted() {
    let w = World::new().await;
    let (alice, bob) = (w.user("alice").await, w.user("bob").await);
    let conv = w.chat(&alice, &bob).await;
    w.send(&alice, conv, "hi").await.expect("send");
    w.service.block(&bob, "alice").await.expect("block");
    for (who, text) in [(&alice, "still there?"), (&bob, "I blocked you")] {
        let refused = w.send(who, conv, text).await;
        assert!(matches!(refused, Err(Error::Blocked(_))), "{refused:?}");
    }
    let status = w.service.block_status(&alice, "bob").await.expect("status");
    assert!(status.blocked_me && !status.blocked_by_me, "{status:?}");
    w.service.unblock(&bob, "alice").await.expect("unblock");
    w.send(&alice, conv, "back again")
        .await
        .expect("send after unblock");
    let page = w
        .service
        .list_messages(&bob, conv, None, None, 10)
        .await
        .expect("page");
    assert_eq!(page.data.len(), 2, "nothing refused was stored");
    w.done().await;
}

#[tokio::test]
async fn the_event_log_replays_sends_and_reads_in_order_for_each_side() {
    let w = World::new().await;
    let (alice, bob) = (w.user("alice").await, w.user("bob").await);
    let conv = w.chat(&alice, &bob).await;
    let sent = w.texts(&alice, conv, 2).await;
    w.service
        .mark_read(&bob, conv, None)
        .await
        .expect("mark read");
    let kinds = |events: Vec<(u64, ServerEvent)>| -> Vec<String> {
        let mut last = 0;
        events
            .into_iter()
            .map(|(seq, e)| {
                assert!(seq > last, "positions increase");
                last = seq;
                match e {
                    ServerEvent::MessageNew { message } => {
                        let n = sent.iter().position(|id| *id == message.id);
                        format!("new {}", n.expect("a sent message"))
                    }
                    ServerEvent::MessageReadAck { .. } => "read_ack".into(),
                    ServerEvent::MessageReadUpdate { .. } => "read_update".into(),
                    other => format!("{other:?}"),
                }
            })
            .collect()
    };
    let alice_head = w.service.event_head(alice.id).await.expect("head");
    let bob_head = w.service.event_head(bob.id).await.expect("head");
    let alice_log = w
        .service
        .events(alice.id, 0, alice_head, 10)
        .await
        .expect("log");
    let bob_log = w
        .service
        .events(bob.id, 0, bob_head, 10)
        .await
        .expect("log");
    assert_eq!(kinds(alice_log), ["new 0", "new 1", "read_update"]);
    assert_eq!(kinds(bob_log), ["new 0", "new 1", "read_ack"]);
    // A resume from the middle starts after it.
    let tail = w
        .service
        .events(bob.id, 2, bob_head, 10)
        .await
        .expect("tail");
    assert_eq!(tail.len(), 1);
    w.done().await;
}

#[tokio::test]
async fn concurrent_sends_through_several_writers_keep_every_log_gap_free_and_counts_exact() {
    // Three writers, small batches: conversations are spread over the writers, and every
    // user is in two conversations, so batches in flight at once share users.
    let w = World::batching(BatchSettings {
        max_batch: 4,
        writers: 3,
    })
    .await;
    let users = [
        w.user("ann").await,
        w.user("ben").await,
        w.user("cat").await,
        w.user("dan").await,
    ];
    let pairs = [(0, 1), (0, 2), (1, 3), (2, 3)];
    let mut convs = Vec::new();
    for (a, b) in pairs {
        convs.push((a, b, w.chat(&users[a], &users[b]).await));
    }
    const EACH: usize = 12;
    let sends = convs.iter().flat_map(|&(a, b, conv)| {
        (0..EACH).map(move |i| (if i % 2 == 0 { a } else { b }, conv, i))
    });
    let sends: Vec<_> = sends
        .map(|(from, conv, i)| {
            let w = &w;
            let me = &users[from];
            let text = format!("{from}:{i}");
            async move { (conv, text.clone(), w.send(me, conv, &text).await) }
        })
        .collect();
    for (conv, text, r) in futures_util::future::join_all(sends).await {
        // Each caller gets its own send back, not a batch mate's.
        let sent = r.expect("every send is stored");
        assert_eq!(sent.message.conversation_id, conv);
        assert_eq!(sent.message.content.as_deref(), Some(text.as_str()));
    }
    for (n, u) in users.iter().enumerate() {
        // Two conversations each, every message a position for both sides.
        let head = w.service.event_head(u.id).await.expect("head");
        assert_eq!(head, 2 * EACH as u64, "user {n}: one position per message");
        let log = w.service.events(u.id, 0, head, 100).await.expect("log");
        let seqs: Vec<u64> = log.iter().map(|(seq, _)| *seq).collect();
        assert_eq!(seqs, (1..=head).collect::<Vec<_>>(), "user {n}: no hole");
        // Half of each conversation's messages came from the other side.
        assert_eq!(w.unread(u).await, EACH as u64, "user {n}: unread");
    }
    w.done().await;
}

/// The rate-limit table test: every non-send use case and the budget it spends.
#[path = "tests_limits.rs"]
mod limits;

/// Provisioning: a known identity is rechecked by a read, not written again.
#[path = "tests_provision.rs"]
mod provision;
