//! One conformance suite, two databases: every test body below runs against SQLite and
//! against PostgreSQL (each test in its own database), through the `Store` trait only.

use std::sync::Arc;

use chat_e2e::{sqlite_url, temp_dir, TestDatabase};
use chat_protocol::rest::{MediaItem, Message, MessageType, PushKind};
use chat_protocol::{ConversationId, MessageId, UserId};
use chat_server::model::{now, Cursor};
use chat_server::store::{
    self, BatchSettings, Conversation, DynStore, GroupCommit, InsertOutcome, LoggedEvent,
    LoggedKind, MessageQuery, NewMessage, PurgeCount, PurgeScope, RateLimitSetting, ReadSeqs,
    SendSeqs, StoreError,
};
use chrono::{DateTime, Duration, Utc};

struct Harness {
    store: DynStore,
    pg: Option<TestDatabase>,
    dir: Option<std::path::PathBuf>,
}

impl Harness {
    async fn sqlite() -> Harness {
        let dir = temp_dir("chat-conformance");
        let store = store::connect(&sqlite_url(&dir), 4)
            .await
            .expect("open sqlite");
        store.migrate().await.expect("migrate sqlite");
        Harness {
            store,
            pg: None,
            dir: Some(dir),
        }
    }

    async fn postgres() -> Option<Harness> {
        let db = TestDatabase::create().await?;
        let store = store::connect(&db.url, 8).await.expect("open postgres");
        store.migrate().await.expect("migrate postgres");
        Some(Harness {
            store,
            pg: Some(db),
            dir: None,
        })
    }

    async fn cleanup(self) {
        self.store.close().await;
        if let Some(db) = self.pg {
            db.drop_db().await;
        }
        if let Some(dir) = self.dir {
            let _ = std::fs::remove_dir_all(dir);
        }
    }
}

macro_rules! conformance {
    ($($name:ident),* $(,)?) => {
        mod sqlite {
            $(
                #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
                async fn $name() {
                    let h = super::Harness::sqlite().await;
                    super::$name(h.store.clone()).await;
                    h.cleanup().await;
                }
            )*
        }
        mod postgres {
            $(
                #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
                async fn $name() {
                    let Some(h) = super::Harness::postgres().await else { return };
                    super::$name(h.store.clone()).await;
                    h.cleanup().await;
                }
            )*
        }
    };
}

conformance!(
    migrations_are_all_applied,
    users_are_created_then_refreshed,
    username_of_another_user_is_a_conflict,
    live_usernames_leave_out_the_unknown_and_the_erased,
    conversation_pair_is_unique_whoever_creates_it,
    send_bumps_last_message_and_receiver_unread,
    same_sender_and_temp_id_store_one_message,
    links_are_recorded_with_the_message,
    keyset_pagination_visits_every_message_once,
    equal_timestamps_are_ordered_by_id,
    gallery_filters_by_type,
    mark_read_up_to_a_message_recounts_unread,
    conversation_list_orders_by_activity_and_hides_blocked,
    blocked_among_sees_blocks_either_way,
    read_receipts_are_not_logged_across_a_block,
    empty_conversation_is_listed_only_for_its_creator,
    unread_counts_skip_conversations_hidden_by_blocks,
    blocks_are_directional_and_idempotent,
    rate_limits_have_spec_defaults_and_can_be_tuned,
    concurrent_sends_and_reads_keep_counts_exact,
    contacts_are_conversation_partners_without_blocks,
    push_subscriptions_are_per_user_and_deduplicated,
    retention_purge_goes_in_batches_and_recounts,
    purging_every_message_resets_last_message_and_activity,
    erasing_a_user_keeps_the_other_side_whole,
    deleting_a_conversation_returns_its_media,
    media_pages_visit_every_media_message,
    stats_count_what_is_stored,
    send_context_answers_participation_blocks_and_retries,
    a_send_into_a_deleted_conversation_stores_nothing,
    sends_and_reads_are_logged_per_user_in_order,
    concurrent_sends_both_ways_number_each_log_without_holes,
    purges_and_erasure_take_their_events_along,
    a_batch_gives_each_send_its_own_outcome,
    a_vanished_conversation_fails_only_its_send_in_a_batch,
    concurrent_batches_number_each_log_without_holes,
    group_commit_gathers_concurrent_sends_and_replays,
);

// ---- fixtures ---------------------------------------------------------------------------

async fn user(store: &DynStore, name: &str) -> UserId {
    let id = UserId::new();
    store
        .upsert_user(id, name, now())
        .await
        .expect("upsert user");
    id
}

async fn conversation(store: &DynStore, a: UserId, b: UserId) -> Conversation {
    store
        .create_conversation(&Conversation::between(a, b, now()))
        .await
        .expect("create conversation")
}

fn text(conv: ConversationId, from: UserId, to: UserId, body: &str, at: DateTime<Utc>) -> Message {
    Message {
        id: MessageId::new(),
        conversation_id: conv,
        sender_id: from,
        receiver_id: to,
        kind: MessageType::Text,
        content: Some(body.to_string()),
        media: vec![],
        temp_id: None,
        is_read: false,
        read_at: None,
        created_at: at,
        reply_to: None,
        edited_at: None,
        deleted_at: None,
        reactions: Vec::new(),
    }
}

async fn send(store: &DynStore, m: Message) -> Message {
    match store
        .insert_message(&NewMessage {
            message: m,
            links: vec![],
        })
        .await
        .expect("insert")
    {
        InsertOutcome::Created(m, _) => m.into_keyed(),
        InsertOutcome::Existing(_) => panic!("unexpected existing message"),
    }
}

/// `n` messages from `from`, one microsecond... one millisecond apart, oldest first.
async fn send_many(store: &DynStore, conv: &Conversation, from: UserId, n: usize) -> Vec<Message> {
    let to = conv.other(from);
    let start = now() - Duration::seconds(60);
    let mut out = Vec::new();
    for i in 0..n {
        let at = start + Duration::milliseconds(i as i64);
        out.push(send(store, text(conv.id, from, to, &format!("m{i}"), at)).await);
    }
    out
}

// ---- test bodies --------------------------------------------------------------------------

async fn migrations_are_all_applied(store: DynStore) {
    let status = store.migration_status().await.unwrap();
    assert!(!status.is_empty());
    assert!(status.iter().all(|(_, _, applied)| *applied), "{status:?}");
    // Applying again is a no-op.
    store.migrate().await.unwrap();
    store.ping().await.unwrap();
}

async fn users_are_created_then_refreshed(store: DynStore) {
    let id = UserId::new();
    let t0 = now() - Duration::seconds(10);
    let u = store.upsert_user(id, "alice", t0).await.unwrap();
    assert_eq!(u.username, "alice");
    assert_eq!(u.created_at, t0);
    let t1 = now();
    let u2 = store.upsert_user(id, "alice2", t1).await.unwrap();
    assert_eq!(u2.username, "alice2", "username follows the token");
    assert_eq!(u2.created_at, t0, "created_at never changes");
    assert_eq!(u2.last_seen_at, Some(t1));
    assert_eq!(
        store.user_by_username("alice2").await.unwrap().unwrap().id,
        id
    );
    assert!(store.user_by_username("alice").await.unwrap().is_none());
    assert_eq!(
        store.user_by_id(id).await.unwrap().unwrap().username,
        "alice2"
    );
    let listed = store.list_users(None, 10).await.unwrap();
    assert_eq!(listed.len(), 1);
}

async fn username_of_another_user_is_a_conflict(store: DynStore) {
    user(&store, "carol").await;
    let err = store
        .upsert_user(UserId::new(), "carol", now())
        .await
        .unwrap_err();
    assert!(matches!(err, StoreError::Conflict(_)), "{err:?}");
}

async fn live_usernames_leave_out_the_unknown_and_the_erased(store: DynStore) {
    let a = user(&store, "alice").await;
    let b = user(&store, "bob").await;
    let gone = user(&store, "carol").await;
    store.erase_user(gone, now()).await.unwrap();
    let stranger = UserId::new();
    assert!(store.live_usernames(&[]).await.unwrap().is_empty());
    let mut live = store
        .live_usernames(&[a, stranger, gone, b, a])
        .await
        .unwrap();
    live.sort_by(|x, y| x.1.cmp(&y.1));
    assert_eq!(live, vec![(a, "alice".to_string()), (b, "bob".to_string())]);
    // A rename shows at once.
    store.upsert_user(b, "bobby", now()).await.unwrap();
    assert_eq!(
        store.live_usernames(&[b]).await.unwrap(),
        vec![(b, "bobby".to_string())]
    );
}

async fn conversation_pair_is_unique_whoever_creates_it(store: DynStore) {
    let a = user(&store, "a").await;
    let b = user(&store, "b").await;
    let c1 = conversation(&store, a, b).await;
    let c2 = conversation(&store, b, a).await;
    assert_eq!(c1.id, c2.id, "second create returns the first conversation");
    assert!(c1.user1_id < c1.user2_id);
    assert_eq!(
        store.conversation_between(b, a).await.unwrap().unwrap().id,
        c1.id
    );
    assert_eq!(store.conversation(c1.id).await.unwrap().unwrap(), c1);
    assert!(store
        .conversation(ConversationId::new())
        .await
        .unwrap()
        .is_none());
}

async fn send_bumps_last_message_and_receiver_unread(store: DynStore) {
    let a = user(&store, "a").await;
    let b = user(&store, "b").await;
    let conv = conversation(&store, a, b).await;
    let m1 = send(&store, text(conv.id, a, b, "one", now())).await;
    let m2 = send(&store, text(conv.id, a, b, "two", now())).await;
    let c = store.conversation(conv.id).await.unwrap().unwrap();
    assert_eq!(c.last_message_id, Some(m2.id));
    assert_eq!(c.last_message_at, Some(m2.created_at));
    assert_eq!(c.unread_for(b), 2);
    assert_eq!(c.unread_for(a), 0);
    // An older message (another instance's clock) does not move last_message back.
    let late = text(conv.id, b, a, "late", m1.created_at - Duration::seconds(5));
    send(&store, late).await;
    let c = store.conversation(conv.id).await.unwrap().unwrap();
    assert_eq!(c.last_message_id, Some(m2.id));
    assert_eq!(c.unread_for(a), 1);
    assert_eq!(
        store.message(m1.id).await.unwrap().unwrap().into_keyed(),
        m1
    );
}

async fn same_sender_and_temp_id_store_one_message(store: DynStore) {
    let a = user(&store, "a").await;
    let b = user(&store, "b").await;
    let conv = conversation(&store, a, b).await;
    let mut m = text(conv.id, a, b, "hello", now());
    m.temp_id = Some("tmp-1".into());
    let first = send(&store, m.clone()).await;
    let mut again = text(conv.id, a, b, "hello (retry)", now());
    again.temp_id = Some("tmp-1".into());
    match store
        .insert_message(&NewMessage {
            message: again,
            links: vec!["https://example.com".into()],
        })
        .await
        .unwrap()
    {
        InsertOutcome::Existing(existing) => assert_eq!(existing.into_keyed(), first),
        other => panic!("expected existing, got {other:?}"),
    }
    let c = store.conversation(conv.id).await.unwrap().unwrap();
    assert_eq!(c.unread_for(b), 1, "the replay did not count twice");
    assert!(store
        .list_links(conv.id, b, None, 10)
        .await
        .unwrap()
        .is_empty());
    // The other party may use the same temp_id independently.
    let mut theirs = text(conv.id, b, a, "hi", now());
    theirs.temp_id = Some("tmp-1".into());
    send(&store, theirs).await;
    assert_eq!(
        store
            .message_by_temp_id(a, "tmp-1")
            .await
            .unwrap()
            .unwrap()
            .id,
        first.id
    );
}

async fn links_are_recorded_with_the_message(store: DynStore) {
    let a = user(&store, "a").await;
    let b = user(&store, "b").await;
    let conv = conversation(&store, a, b).await;
    let mut ids = Vec::new();
    for i in 0..5 {
        let m = text(conv.id, a, b, "x", now() + Duration::milliseconds(i));
        ids.push(m.id);
        store
            .insert_message(&NewMessage {
                message: m,
                links: vec![format!("https://e{i}.com"), format!("https://f{i}.com")],
            })
            .await
            .unwrap();
    }
    let page1 = store.list_links(conv.id, b, None, 4).await.unwrap();
    assert_eq!(page1.len(), 4);
    assert_eq!(page1[0].0.message_id, ids[4], "newest first");
    let page2 = store
        .list_links(conv.id, b, Some(page1[3].1), 10)
        .await
        .unwrap();
    assert_eq!(page2.len(), 6);
    let mut all: Vec<String> = page1
        .iter()
        .chain(&page2)
        .map(|(l, _)| l.url.clone())
        .collect();
    all.sort();
    all.dedup();
    assert_eq!(all.len(), 10, "every link exactly once");
}

async fn keyset_pagination_visits_every_message_once(store: DynStore) {
    let a = user(&store, "a").await;
    let b = user(&store, "b").await;
    let conv = conversation(&store, a, b).await;
    let sent = send_many(&store, &conv, a, 25).await;
    // Backwards from the newest.
    let mut seen = Vec::new();
    let mut before: Option<Cursor> = None;
    loop {
        let q = MessageQuery {
            before,
            limit: 10,
            ..Default::default()
        };
        let page = store.list_messages(conv.id, &q).await.unwrap();
        if page.is_empty() {
            break;
        }
        before = page.last().map(|m| Cursor::new(m.created_at, m.id.0));
        seen.extend(page);
    }
    let expected: Vec<MessageId> = sent.iter().rev().map(|m| m.id).collect();
    assert_eq!(seen.iter().map(|m| m.id).collect::<Vec<_>>(), expected);
    // Forwards from the 10th, oldest first.
    let pivot = &sent[9];
    let q = MessageQuery {
        after: Some(Cursor::new(pivot.created_at, pivot.id.0)),
        limit: 5,
        ascending: true,
        ..Default::default()
    };
    let fwd = store.list_messages(conv.id, &q).await.unwrap();
    assert_eq!(
        fwd.iter().map(|m| m.id).collect::<Vec<_>>(),
        sent[10..15].iter().map(|m| m.id).collect::<Vec<_>>()
    );
    // A window between two cursors.
    let q = MessageQuery {
        before: Some(Cursor::new(sent[20].created_at, sent[20].id.0)),
        after: Some(Cursor::new(sent[15].created_at, sent[15].id.0)),
        limit: 100,
        ..Default::default()
    };
    let window = store.list_messages(conv.id, &q).await.unwrap();
    assert_eq!(window.len(), 4);
    // Messages of another conversation never leak in.
    let c = user(&store, "c").await;
    let other = conversation(&store, a, c).await;
    send_many(&store, &other, a, 3).await;
    let q = MessageQuery {
        limit: 100,
        ..Default::default()
    };
    assert_eq!(store.list_messages(conv.id, &q).await.unwrap().len(), 25);
}

async fn equal_timestamps_are_ordered_by_id(store: DynStore) {
    let a = user(&store, "a").await;
    let b = user(&store, "b").await;
    let conv = conversation(&store, a, b).await;
    let at = now();
    let mut ids = Vec::new();
    for i in 0..6 {
        ids.push(
            send(&store, text(conv.id, a, b, &format!("{i}"), at))
                .await
                .id,
        );
    }
    ids.sort();
    ids.reverse();
    let mut seen = Vec::new();
    let mut before = None;
    for _ in 0..3 {
        let q = MessageQuery {
            before,
            limit: 2,
            ..Default::default()
        };
        let page = store.list_messages(conv.id, &q).await.unwrap();
        before = page.last().map(|m| Cursor::new(m.created_at, m.id.0));
        seen.extend(page.into_iter().map(|m| m.id));
    }
    assert_eq!(seen, ids);
}

async fn gallery_filters_by_type(store: DynStore) {
    let a = user(&store, "a").await;
    let b = user(&store, "b").await;
    let conv = conversation(&store, a, b).await;
    send(&store, text(conv.id, a, b, "t", now())).await;
    let mut img = text(conv.id, a, b, "pic", now());
    img.kind = MessageType::Image;
    let img = send(&store, img).await;
    let mut file = text(conv.id, b, a, "doc", now());
    file.kind = MessageType::File;
    let file = send(&store, file).await;
    let q = |types: Vec<MessageType>| MessageQuery {
        types: Some(types),
        limit: 10,
        ..Default::default()
    };
    let media = store
        .list_messages(conv.id, &q(vec![MessageType::Image, MessageType::Video]))
        .await
        .unwrap();
    assert_eq!(media.iter().map(|m| m.id).collect::<Vec<_>>(), vec![img.id]);
    let files = store
        .list_messages(conv.id, &q(vec![MessageType::File]))
        .await
        .unwrap();
    assert_eq!(
        files.iter().map(|m| m.id).collect::<Vec<_>>(),
        vec![file.id]
    );
}

async fn mark_read_up_to_a_message_recounts_unread(store: DynStore) {
    let a = user(&store, "a").await;
    let b = user(&store, "b").await;
    let conv = conversation(&store, a, b).await;
    let sent = send_many(&store, &conv, a, 5).await;
    let read_at = now();
    let out = store
        .mark_read(
            conv.id,
            b,
            Some(Cursor::new(sent[2].created_at, sent[2].id.0)),
            read_at,
        )
        .await
        .unwrap();
    assert_eq!(out.marked, 3);
    assert_eq!(out.up_to, Some(sent[2].id));
    assert_eq!(out.unread_left, 2);
    let m = store.message(sent[1].id).await.unwrap().unwrap();
    assert!(m.is_read);
    assert_eq!(m.read_at, Some(read_at));
    assert!(!store.message(sent[3].id).await.unwrap().unwrap().is_read);
    assert_eq!(
        store
            .conversation(conv.id)
            .await
            .unwrap()
            .unwrap()
            .unread_for(b),
        2
    );
    // The sender marking read changes nothing of the receiver's.
    let out = store.mark_read(conv.id, a, None, now()).await.unwrap();
    assert_eq!(out.marked, 0);
    // Mark the rest.
    let out = store.mark_read(conv.id, b, None, now()).await.unwrap();
    assert_eq!((out.marked, out.unread_left), (2, 0));
    assert_eq!(out.up_to, Some(sent[4].id));
    assert_eq!(
        store
            .conversation(conv.id)
            .await
            .unwrap()
            .unwrap()
            .unread_for(b),
        0
    );
    let err = store
        .mark_read(ConversationId::new(), b, None, now())
        .await
        .unwrap_err();
    assert!(matches!(err, StoreError::NotFound));
}

async fn conversation_list_orders_by_activity_and_hides_blocked(store: DynStore) {
    let me = user(&store, "me").await;
    let mut convs = Vec::new();
    for i in 0..5 {
        let other = user(&store, &format!("o{i}")).await;
        let c = conversation(&store, me, other).await;
        convs.push((c, other));
    }
    // Activity order: 2, 0, 4, 1, 3 (oldest to newest).
    let base = now();
    for (rank, idx) in [2usize, 0, 4, 1, 3].iter().enumerate() {
        let (c, other) = &convs[*idx];
        send(
            &store,
            text(
                c.id,
                *other,
                me,
                "hi",
                base + Duration::seconds(rank as i64),
            ),
        )
        .await;
    }
    let list = store.list_conversations(me, None, 10).await.unwrap();
    let order: Vec<ConversationId> = list.iter().map(|v| v.conversation.id).collect();
    let expected: Vec<ConversationId> = [3usize, 1, 4, 0, 2]
        .iter()
        .map(|i| convs[*i].0.id)
        .collect();
    assert_eq!(order, expected);
    assert_eq!(list[0].other.id, convs[3].1);
    assert_eq!(
        list[0].last_message.as_ref().unwrap().content.as_deref(),
        Some("hi")
    );
    assert_eq!(list[0].conversation.unread_for(me), 1);
    // Cursor pagination gives the same order.
    let p1 = store.list_conversations(me, None, 2).await.unwrap();
    let p2 = store
        .list_conversations(me, Some(p1[1].conversation.cursor()), 10)
        .await
        .unwrap();
    let paged: Vec<ConversationId> = p1.iter().chain(&p2).map(|v| v.conversation.id).collect();
    assert_eq!(paged, expected);
    // Blocking hides it from the blocker only.
    store.block(me, convs[1].1, now()).await.unwrap();
    let list = store.list_conversations(me, None, 10).await.unwrap();
    assert_eq!(list.len(), 4);
    assert!(list.iter().all(|v| v.other.id != convs[1].1));
    assert_eq!(
        store
            .list_conversations(convs[1].1, None, 10)
            .await
            .unwrap()
            .len(),
        1
    );
    store.unblock(me, convs[1].1).await.unwrap();
    assert_eq!(
        store.list_conversations(me, None, 10).await.unwrap().len(),
        5
    );
}

async fn empty_conversation_is_listed_only_for_its_creator(store: DynStore) {
    let a = user(&store, "a").await;
    let b = user(&store, "b").await;
    let conv = conversation(&store, a, b).await; // created by a
    assert_eq!(
        store.list_conversations(a, None, 10).await.unwrap().len(),
        1
    );
    assert!(store
        .list_conversations(b, None, 10)
        .await
        .unwrap()
        .is_empty());
    send(&store, text(conv.id, a, b, "hi", now())).await;
    assert_eq!(
        store.list_conversations(b, None, 10).await.unwrap().len(),
        1
    );
}

async fn unread_counts_skip_conversations_hidden_by_blocks(store: DynStore) {
    let me = user(&store, "me").await;
    let x = user(&store, "x").await;
    let y = user(&store, "y").await;
    let cx = conversation(&store, x, me).await;
    let cy = conversation(&store, y, me).await;
    send_many(&store, &cx, x, 3).await;
    send_many(&store, &cy, y, 2).await;
    let mut counts = store.unread_counts(me).await.unwrap();
    counts.sort();
    let mut expected = vec![(cx.id, 3), (cy.id, 2)];
    expected.sort();
    assert_eq!(counts, expected);
    store.block(me, y, now()).await.unwrap();
    assert_eq!(store.unread_counts(me).await.unwrap(), vec![(cx.id, 3)]);
    assert!(store.unread_counts(x).await.unwrap().is_empty());
}

async fn blocks_are_directional_and_idempotent(store: DynStore) {
    let a = user(&store, "a").await;
    let b = user(&store, "b").await;
    assert_eq!(store.block_status(a, b).await.unwrap(), (false, false));
    assert!(store.block(a, b, now()).await.unwrap());
    assert!(
        !store.block(a, b, now()).await.unwrap(),
        "second block is a no-op"
    );
    assert_eq!(store.block_status(a, b).await.unwrap(), (true, false));
    assert_eq!(store.block_status(b, a).await.unwrap(), (false, true));
    store.block(b, a, now()).await.unwrap();
    assert_eq!(store.block_status(a, b).await.unwrap(), (true, true));
    let mut blocked = Vec::new();
    for i in 0..3 {
        let u = user(&store, &format!("u{i}")).await;
        store
            .block(a, u, now() + Duration::milliseconds(i + 1))
            .await
            .unwrap();
        blocked.push(u);
    }
    let p1 = store.list_blocks(a, None, 2).await.unwrap();
    assert_eq!(p1[0].0.user_id, blocked[2], "newest first");
    let p2 = store.list_blocks(a, Some(p1[1].1), 10).await.unwrap();
    assert_eq!(p1.len() + p2.len(), 4);
    assert!(store.unblock(a, b).await.unwrap());
    assert!(!store.unblock(a, b).await.unwrap());
    assert_eq!(store.block_status(a, b).await.unwrap(), (false, true));
}

async fn send_context_answers_participation_blocks_and_retries(store: DynStore) {
    let a = user(&store, "a").await;
    let b = user(&store, "b").await;
    let stranger = user(&store, "s").await;
    let conv = conversation(&store, a, b).await;
    let ctx = store.send_context(a, conv.id, None).await.unwrap().unwrap();
    assert_eq!(ctx.receiver, b);
    assert!(!ctx.sender_blocks && !ctx.receiver_blocks);
    assert_eq!(ctx.existing, None);
    let ctx = store
        .send_context(b, conv.id, Some("t1"))
        .await
        .unwrap()
        .unwrap();
    assert_eq!(ctx.receiver, a);
    assert_eq!(
        store.send_context(stranger, conv.id, None).await.unwrap(),
        None
    );
    assert_eq!(
        store
            .send_context(a, ConversationId::new(), None)
            .await
            .unwrap(),
        None
    );

    let mut m = text(conv.id, a, b, "hi", now());
    m.temp_id = Some("t1".into());
    let stored = send(&store, m).await;
    let ctx = store
        .send_context(a, conv.id, Some("t1"))
        .await
        .unwrap()
        .unwrap();
    assert_eq!(
        ctx.existing,
        Some(stored.id),
        "the retry finds the stored message"
    );
    let ctx = store
        .send_context(b, conv.id, Some("t1"))
        .await
        .unwrap()
        .unwrap();
    assert_eq!(ctx.existing, None, "temp ids are per sender");

    store.block(b, a, now()).await.unwrap();
    let ctx = store.send_context(a, conv.id, None).await.unwrap().unwrap();
    assert!(!ctx.sender_blocks && ctx.receiver_blocks);
    let ctx = store.send_context(b, conv.id, None).await.unwrap().unwrap();
    assert!(ctx.sender_blocks && !ctx.receiver_blocks);
}

async fn a_send_into_a_deleted_conversation_stores_nothing(store: DynStore) {
    let a = user(&store, "a").await;
    let b = user(&store, "b").await;
    let conv = conversation(&store, a, b).await;
    send(&store, text(conv.id, a, b, "first", now())).await;
    store.delete_conversation(conv.id).await.unwrap();
    let late = text(conv.id, a, b, "late", now());
    let id = late.id;
    let r = store
        .insert_message(&NewMessage {
            message: late,
            links: vec!["https://example.com".into()],
        })
        .await;
    assert!(
        matches!(r, Err(StoreError::NotFound)),
        "no message into a conversation that is gone: {r:?}"
    );
    assert_eq!(store.message(id).await.unwrap(), None);
}

async fn rate_limits_have_spec_defaults_and_can_be_tuned(store: DynStore) {
    let limits = store.rate_limits().await.unwrap();
    let get = |name: &str| limits.iter().find(|(n, _)| n == name).map(|(_, s)| *s);
    let per_min = |n| RateLimitSetting {
        max_requests: n,
        period_seconds: 60,
    };
    assert_eq!(get("send_message"), Some(per_min(30)));
    assert_eq!(get("create_conversation"), Some(per_min(10)));
    assert_eq!(get("mark_read"), Some(per_min(60)));
    assert_eq!(get("get_conversations"), Some(per_min(60)));
    assert_eq!(get("get_messages"), Some(per_min(120)));
    store
        .set_rate_limit("send_message", per_min(5))
        .await
        .unwrap();
    let limits = store.rate_limits().await.unwrap();
    assert!(limits.contains(&("send_message".to_string(), per_min(5))));
}

async fn concurrent_sends_and_reads_keep_counts_exact(store: DynStore) {
    let a = user(&store, "a").await;
    let b = user(&store, "b").await;
    let conv = Arc::new(conversation(&store, a, b).await);
    let mut tasks = Vec::new();
    for i in 0..40 {
        let store = store.clone();
        let conv = conv.clone();
        tasks.push(tokio::spawn(async move {
            let mut m = text(conv.id, a, b, &format!("c{i}"), now());
            m.temp_id = Some(format!("t{}", i % 30)); // 10 duplicates race their originals
            store
                .insert_message(&NewMessage {
                    message: m,
                    links: vec![],
                })
                .await
                .unwrap();
            if i % 7 == 0 {
                store.mark_read(conv.id, b, None, now()).await.unwrap();
            }
        }));
    }
    for t in tasks {
        t.await.unwrap();
    }
    let all = store
        .list_messages(
            conv.id,
            &MessageQuery {
                limit: 100,
                ..Default::default()
            },
        )
        .await
        .unwrap();
    assert_eq!(all.len(), 30, "one message per temp_id");
    let unread = all.iter().filter(|m| !m.is_read).count() as u64;
    let c = store.conversation(conv.id).await.unwrap().unwrap();
    assert_eq!(c.unread_for(b), unread, "counter matches the messages");
    let totals = store.unread_counts(b).await.unwrap();
    assert_eq!(totals.iter().map(|(_, n)| n).sum::<u64>(), unread);
}

async fn blocked_among_sees_blocks_either_way(store: DynStore) {
    let me = user(&store, "me").await;
    let (i_block, blocks_me, free) = (
        user(&store, "x").await,
        user(&store, "y").await,
        user(&store, "z").await,
    );
    store.block(me, i_block, now()).await.unwrap();
    store.block(blocks_me, me, now()).await.unwrap();
    // Someone else's block is none of `me`'s business.
    store.block(free, i_block, now()).await.unwrap();
    let mut got = store
        .blocked_among(me, &[i_block, blocks_me, free])
        .await
        .unwrap();
    got.sort();
    let mut want = vec![i_block, blocks_me];
    want.sort();
    assert_eq!(got, want);
    assert!(store.blocked_among(me, &[]).await.unwrap().is_empty());
    assert!(store.blocked_among(free, &[me]).await.unwrap().is_empty());
}

async fn read_receipts_are_not_logged_across_a_block(store: DynStore) {
    let (a, b) = (user(&store, "a").await, user(&store, "b").await);
    let conv = conversation(&store, a, b).await;
    send_many(&store, &conv, b, 2).await;
    send_many(&store, &conv, a, 1).await;
    store.block(b, a, now()).await.unwrap();
    let b_head = store.event_head(b).await.unwrap();
    // a reads: a's own ack is logged, nothing reaches b's log.
    let read = store.mark_read(conv.id, a, None, now()).await.unwrap();
    assert_eq!(read.marked, 2);
    let seqs = read.seqs.expect("a's ack is logged");
    assert_eq!(seqs.other, None);
    assert_eq!(store.event_head(b).await.unwrap(), b_head);
    assert_eq!(store.event_head(a).await.unwrap(), seqs.reader);
    // The other way round too (b is the blocker here).
    let read = store.mark_read(conv.id, b, None, now()).await.unwrap();
    assert_eq!(read.seqs.map(|s| s.other), Some(None));
    store.unblock(b, a).await.unwrap();
    send_many(&store, &conv, b, 1).await;
    let read = store.mark_read(conv.id, a, None, now()).await.unwrap();
    assert!(
        read.seqs.is_some_and(|s| s.other.is_some()),
        "no block: b hears of it"
    );
}

async fn contacts_are_conversation_partners_without_blocks(store: DynStore) {
    let me = user(&store, "me").await;
    let a = user(&store, "a").await;
    let b = user(&store, "b").await;
    let stranger = user(&store, "stranger").await;
    let silent = user(&store, "silent").await;
    let ma = conversation(&store, me, a).await;
    send_many(&store, &ma, me, 1).await;
    let bm = conversation(&store, b, me).await;
    send_many(&store, &bm, b, 1).await;
    let ast = conversation(&store, a, stranger).await;
    send_many(&store, &ast, a, 1).await;
    // An empty conversation is no window on presence (SPEC "Privacy").
    conversation(&store, silent, me).await;
    let mut ids: Vec<UserId> = store
        .contacts(me)
        .await
        .unwrap()
        .into_iter()
        .map(|(id, _)| id)
        .collect();
    ids.sort();
    let mut expected = vec![a, b];
    expected.sort();
    assert_eq!(ids, expected);
    store.block(b, me, now()).await.unwrap();
    let ids: Vec<UserId> = store
        .contacts(me)
        .await
        .unwrap()
        .into_iter()
        .map(|(id, _)| id)
        .collect();
    assert_eq!(ids, vec![a], "a block either way hides presence");
    let seen = now() + Duration::seconds(5);
    store.touch_last_seen(&[(a, seen)]).await.unwrap();
    store
        .touch_last_seen(&[(a, seen - Duration::seconds(60))])
        .await
        .unwrap();
    let contacts = store.contacts(me).await.unwrap();
    assert_eq!(
        contacts,
        vec![(a, Some(seen))],
        "last_seen_at never goes back"
    );
    // A batch: many users in one write, a repeated id keeps its latest time, unknown ids
    // are ignored, an empty batch is a no-op.
    let later = seen + Duration::seconds(30);
    store
        .touch_last_seen(&[
            (a, later - Duration::seconds(10)),
            (a, later),
            (me, later),
            (UserId::new(), later),
        ])
        .await
        .unwrap();
    store.touch_last_seen(&[]).await.unwrap();
    assert_eq!(store.contacts(me).await.unwrap(), vec![(a, Some(later))]);
    let of_me = store.user_by_id(me).await.unwrap().unwrap();
    assert_eq!(of_me.last_seen_at, Some(later));

    // Several users' contacts in one read (a reconnect storm's), each row saying whose:
    // partners on either side of a conversation, both ends of one inside the batch.
    let mut pairs: Vec<(UserId, UserId)> = store
        .contacts_of(&[me, a, b, stranger, silent, UserId::new()])
        .await
        .unwrap()
        .into_iter()
        .map(|(whose, id, _)| (whose, id))
        .collect();
    pairs.sort();
    let mut expected = vec![(me, a), (a, me), (a, stranger), (stranger, a)];
    expected.sort();
    assert_eq!(
        pairs, expected,
        "b's block hides both ways, silent has none"
    );
    assert!(store.contacts_of(&[]).await.unwrap().is_empty());
}

async fn push_subscriptions_are_per_user_and_deduplicated(store: DynStore) {
    let a = user(&store, "a").await;
    let b = user(&store, "b").await;
    let s1 = store
        .add_push_subscription(a, PushKind::Fcm, "tok-1", None, now())
        .await
        .unwrap();
    let again = store
        .add_push_subscription(a, PushKind::Fcm, "tok-1", None, now())
        .await
        .unwrap();
    assert_eq!(again.id, s1.id, "same target, same subscription");
    store
        .add_push_subscription(
            a,
            PushKind::Webpush,
            "https://push.example/x",
            Some(("pk", "au")),
            now(),
        )
        .await
        .unwrap();
    store
        .add_push_subscription(b, PushKind::Fcm, "tok-1", None, now())
        .await
        .unwrap();
    let subs = store.push_subscriptions(a).await.unwrap();
    assert_eq!(subs.len(), 2);
    let web = subs
        .iter()
        .find(|s| s.subscription.kind == PushKind::Webpush)
        .unwrap();
    assert_eq!(
        (web.p256dh.as_deref(), web.auth.as_deref()),
        (Some("pk"), Some("au"))
    );
    assert!(
        !store.delete_push_subscription(b, s1.id).await.unwrap(),
        "not b's to delete"
    );
    assert!(store.delete_push_subscription(a, s1.id).await.unwrap());
    assert_eq!(store.push_subscriptions(a).await.unwrap().len(), 1);
    assert_eq!(store.push_subscriptions(b).await.unwrap().len(), 1);
}

// ---- operations (chatctl) ------------------------------------------------------------------

/// An image message whose object key (and thumbnail key) derive from `tag`.
fn image(conv: ConversationId, from: UserId, to: UserId, tag: &str, at: DateTime<Utc>) -> Message {
    let mut m = text(conv, from, to, "", at);
    m.kind = MessageType::Image;
    m.content = None;
    m.media = vec![MediaItem {
        kind: MessageType::Image,
        url: format!("{tag}.png"),
        thumbnail_url: Some(format!("{tag}_t.jpg")),
        mime: "image/png".into(),
        size: 1000,
        width: Some(10),
        height: Some(10),
        duration_ms: None,
        name: Some("p.png".into()),
    }];
    m
}

async fn drain(store: &DynStore, scope: PurgeScope, batch: u32) -> (u64, Vec<String>, usize) {
    let (mut n, mut keys, mut rounds) = (0, Vec::new(), 0);
    loop {
        let b = store.purge_messages(scope, batch).await.expect("purge");
        if b.messages == 0 {
            return (n, keys, rounds);
        }
        assert!(
            b.messages <= u64::from(batch),
            "a batch never exceeds its limit"
        );
        n += b.messages;
        keys.extend(store::media_keys(&b.media).map(str::to_string));
        rounds += 1;
    }
}

async fn retention_purge_goes_in_batches_and_recounts(store: DynStore) {
    let a = user(&store, "a").await;
    let b = user(&store, "b").await;
    let c = user(&store, "c").await;
    let ab = conversation(&store, a, b).await;
    let ac = conversation(&store, a, c).await;
    let old = now() - Duration::days(10);
    for i in 0..5 {
        let at = old + Duration::seconds(i);
        send(&store, text(ab.id, a, b, &format!("old{i}"), at)).await;
    }
    send(&store, image(ab.id, b, a, "aa", old + Duration::seconds(6))).await;
    send(&store, image(ab.id, b, a, "bb", old + Duration::seconds(7))).await;
    send(&store, text(ac.id, a, c, "old in ac", old)).await;
    let mut fresh = Vec::new();
    for i in 0..3 {
        let at = now() - Duration::seconds(3 - i);
        fresh.push(send(&store, text(ab.id, a, b, &format!("new{i}"), at)).await);
    }
    let cutoff = now() - Duration::days(1);
    let only_ab = PurgeScope::OlderThan {
        before: cutoff,
        conversation: Some(ab.id),
    };
    assert_eq!(
        store.purge_count(only_ab).await.unwrap(),
        PurgeCount {
            messages: 7,
            media_objects: 4,
            media_bytes: 2000
        }
    );
    let (n, mut keys, rounds) = drain(&store, only_ab, 3).await;
    assert_eq!((n, rounds), (7, 3), "7 messages in batches of 3");
    keys.sort();
    assert_eq!(keys, vec!["aa.png", "aa_t.jpg", "bb.png", "bb_t.jpg"]);
    assert_eq!(store.purge_count(only_ab).await.unwrap().messages, 0);

    let left = store
        .list_messages(
            ab.id,
            &MessageQuery {
                limit: 50,
                ..Default::default()
            },
        )
        .await
        .unwrap();
    assert_eq!(left.len(), 3, "only the fresh messages stay");
    let conv = store.conversation(ab.id).await.unwrap().unwrap();
    assert_eq!(conv.last_message_id, Some(fresh[2].id));
    assert_eq!(
        conv.unread_for(b),
        3,
        "b still has the fresh messages unread"
    );
    assert_eq!(
        conv.unread_for(a),
        0,
        "b's images to a are gone, so is a's unread"
    );
    assert_eq!(store.unread_counts(a).await.unwrap(), vec![]);
    // The other conversation was out of scope.
    assert_eq!(
        store
            .conversation(ac.id)
            .await
            .unwrap()
            .unwrap()
            .unread_for(c),
        1
    );

    // Without a conversation, the retention purge reaches it too.
    let everywhere = PurgeScope::OlderThan {
        before: cutoff,
        conversation: None,
    };
    assert_eq!(drain(&store, everywhere, 100).await.0, 1);
    assert_eq!(
        store
            .conversation(ac.id)
            .await
            .unwrap()
            .unwrap()
            .unread_for(c),
        0
    );
}

async fn purging_every_message_resets_last_message_and_activity(store: DynStore) {
    let a = user(&store, "a").await;
    let b = user(&store, "b").await;
    let conv = conversation(&store, a, b).await;
    send_many(&store, &conv, a, 4).await;
    let (n, _, _) = drain(&store, PurgeScope::Conversation(conv.id), 500).await;
    assert_eq!(n, 4);
    let after = store.conversation(conv.id).await.unwrap().unwrap();
    assert_eq!(after.last_message_id, None);
    assert_eq!(after.last_message_at, None);
    assert_eq!(after.activity_at, after.created_at);
    assert_eq!((after.user1_unread, after.user2_unread), (0, 0));
    // The list shows it without a last message, and nothing breaks.
    let list = store.list_conversations(a, None, 10).await.unwrap();
    assert_eq!(list.len(), 1);
    assert_eq!(list[0].last_message, None);
}

async fn erasing_a_user_keeps_the_other_side_whole(store: DynStore) {
    let a = user(&store, "alice").await;
    let b = user(&store, "bob").await;
    let c = user(&store, "carol").await;
    let ab = conversation(&store, a, b).await;
    conversation(&store, a, c).await;
    send_many(&store, &ab, a, 3).await;
    let from_b = send_many(&store, &ab, b, 2).await;
    store.block(a, c, now()).await.unwrap();
    store.block(c, a, now()).await.unwrap();
    store
        .add_push_subscription(a, PushKind::Fcm, "device-a", None, now())
        .await
        .unwrap();

    assert_eq!(drain(&store, PurgeScope::SentBy(a), 2).await.0, 3);
    let erased = store.erase_user(a, now()).await.unwrap();
    assert_eq!(erased.blocks, 2);
    assert_eq!(erased.push_subscriptions, 1);
    assert_eq!(erased.conversations, 0, "bob and carol are still here");

    // A late last-seen write (a socket or an authentication that raced the erasure)
    // leaves the tombstone without one.
    store.touch_last_seen(&[(a, now())]).await.unwrap();
    let tomb = store.user_by_id(a).await.unwrap().unwrap();
    assert!(tomb.username.starts_with("deleted-"), "{}", tomb.username);
    assert_eq!(
        tomb.last_seen_at, None,
        "an erased account keeps no last seen"
    );
    assert_eq!(store.user_by_username("alice").await.unwrap(), None);
    assert!(matches!(
        store.upsert_user(a, "alice", now()).await,
        Err(StoreError::Erased)
    ));
    // The tombstone sends nothing more (a session that outlived the erasure).
    let late = store
        .insert_message(&NewMessage {
            message: text(ab.id, a, b, "still here?", now()),
            links: vec![],
        })
        .await;
    assert!(matches!(late, Err(StoreError::Erased)), "{late:?}");
    // The name is free for someone else.
    user(&store, "alice").await;
    assert_eq!(store.block_status(a, c).await.unwrap(), (false, false));
    assert!(store.push_subscriptions(a).await.unwrap().is_empty());

    // Bob keeps the conversation and his own messages; counts match what is left.
    let conv = store.conversation(ab.id).await.unwrap().unwrap();
    assert_eq!(conv.unread_for(b), 0, "alice's messages to bob are gone");
    assert_eq!(conv.unread_for(a), 2);
    assert_eq!(conv.last_message_id, Some(from_b[1].id));
    let left = store
        .list_messages(
            ab.id,
            &MessageQuery {
                limit: 50,
                ..Default::default()
            },
        )
        .await
        .unwrap();
    assert!(left.iter().all(|m| m.sender_id == b) && left.len() == 2);

    // Once both sides are erased, the conversation goes.
    drain(&store, PurgeScope::SentBy(b), 100).await;
    let erased_b = store.erase_user(b, now()).await.unwrap();
    assert_eq!(erased_b.conversations, 1);
    assert_eq!(store.conversation(ab.id).await.unwrap(), None);
    assert!(matches!(
        store.erase_user(UserId::new(), now()).await,
        Err(StoreError::NotFound)
    ));
}

async fn deleting_a_conversation_returns_its_media(store: DynStore) {
    let a = user(&store, "a").await;
    let b = user(&store, "b").await;
    let conv = conversation(&store, a, b).await;
    send(&store, image(conv.id, a, b, "k1", now())).await;
    send(&store, text(conv.id, b, a, "hi", now())).await;
    let batch = store.delete_conversation(conv.id).await.unwrap().unwrap();
    assert_eq!(batch.messages, 2);
    let keys: Vec<&str> = store::media_keys(&batch.media).collect();
    assert_eq!(keys, vec!["k1.png", "k1_t.jpg"]);
    assert_eq!(store.conversation(conv.id).await.unwrap(), None);
    assert_eq!(store.delete_conversation(conv.id).await.unwrap(), None);
    assert!(store
        .list_conversations(a, None, 10)
        .await
        .unwrap()
        .is_empty());
}

async fn media_pages_visit_every_media_message(store: DynStore) {
    let a = user(&store, "a").await;
    let b = user(&store, "b").await;
    let conv = conversation(&store, a, b).await;
    for i in 0..5 {
        send(&store, image(conv.id, a, b, &format!("m{i}"), now())).await;
        send(&store, text(conv.id, a, b, "t", now())).await;
    }
    let (mut after, mut keys, mut pages) = (None, Vec::new(), 0);
    loop {
        let (media, next) = store.media_page(after, 2).await.unwrap();
        keys.extend(media.iter().map(|m| m.url.clone()));
        pages += 1;
        match next {
            Some(n) => after = Some(n),
            None => break,
        }
        assert!(pages < 10, "paging terminates");
    }
    keys.sort();
    assert_eq!(keys, vec!["m0.png", "m1.png", "m2.png", "m3.png", "m4.png"]);
}

async fn stats_count_what_is_stored(store: DynStore) {
    let a = user(&store, "a").await;
    let b = user(&store, "b").await;
    let conv = conversation(&store, a, b).await;
    send_many(&store, &conv, a, 3).await;
    send(&store, image(conv.id, b, a, "s1", now())).await;
    send(
        &store,
        text(conv.id, b, a, "ancient", now() - Duration::days(2)),
    )
    .await;
    store.erase_user(b, now()).await.unwrap();
    let s = store.stats(now()).await.unwrap();
    assert_eq!((s.users, s.erased_users, s.conversations), (1, 1, 1));
    assert_eq!(s.messages_by_type.get("text"), Some(&4));
    assert_eq!(s.messages_by_type.get("image"), Some(&1));
    assert_eq!((s.media_objects, s.media_bytes), (2, 1000));
    assert_eq!(
        s.messages_last_hour, 4,
        "send_many is a minute old; one is two days old"
    );
}

// ---- event log (gap-free resume) ------------------------------------------------------------

fn logged_message(e: &LoggedEvent) -> MessageId {
    match &e.kind {
        LoggedKind::Message(m) => m.id,
        other => panic!("expected a message event, got {other:?}"),
    }
}

async fn sends_and_reads_are_logged_per_user_in_order(store: DynStore) {
    let a = user(&store, "a").await;
    let b = user(&store, "b").await;
    let c = user(&store, "c").await;
    assert_eq!(store.event_head(a).await.unwrap(), 0);
    let ab = conversation(&store, a, b).await;
    let ac = conversation(&store, a, c).await;
    let m1 = send(&store, text(ab.id, a, b, "1", now())).await;
    let m2 = send(&store, text(ac.id, c, a, "2", now())).await;
    let m3 = match store
        .insert_message(&NewMessage {
            message: text(ab.id, b, a, "3", now()),
            links: vec![],
        })
        .await
        .unwrap()
    {
        InsertOutcome::Created(m, seqs) => {
            // a: 1 (m1), 2 (m2), 3 (this); b: 1 (m1), 2 (this)
            assert_eq!(
                seqs,
                SendSeqs {
                    sender: 2,
                    receiver: 3
                }
            );
            m
        }
        other => panic!("{other:?}"),
    };
    // b reads what a... a reads b's message: a's ack and b's update are logged.
    let read = store.mark_read(ab.id, a, None, now()).await.unwrap();
    assert_eq!(read.marked, 1);
    assert_eq!(
        read.seqs,
        Some(ReadSeqs {
            reader: 4,
            other: Some(3)
        })
    );
    // Reading nothing new logs nothing.
    let again = store.mark_read(ab.id, a, None, now()).await.unwrap();
    assert_eq!((again.marked, again.seqs), (0, None));

    assert_eq!(store.event_head(a).await.unwrap(), 4);
    assert_eq!(store.event_head(b).await.unwrap(), 3);
    assert_eq!(store.event_head(c).await.unwrap(), 1);
    // Several heads in one read: the same positions; users without events are absent.
    let nobody = UserId::new();
    let mut heads = store.event_heads(&[a, b, c, nobody]).await.unwrap();
    heads.sort_by_key(|(_, seq)| *seq);
    assert_eq!(heads, [(c, 1), (b, 3), (a, 4)]);
    assert!(store.event_heads(&[]).await.unwrap().is_empty());
    let log = store.events(a, 0, 4, 100).await.unwrap();
    assert_eq!(log.iter().map(|e| e.seq).collect::<Vec<_>>(), [1, 2, 3, 4]);
    assert_eq!(logged_message(&log[0]), m1.id);
    assert_eq!(logged_message(&log[1]), m2.id);
    assert_eq!(logged_message(&log[2]), m3.id);
    assert!(matches!(
        log[3].kind,
        LoggedKind::ReadAck { conversation_id, up_to_message_id: Some(up), .. }
            if conversation_id == ab.id && up == m3.id
    ));
    let blog = store.events(b, 1, 3, 100).await.unwrap();
    assert_eq!(blog.iter().map(|e| e.seq).collect::<Vec<_>>(), [2, 3]);
    assert!(matches!(
        blog[1].kind,
        LoggedKind::ReadUpdate { reader_id, up_to_message_id: Some(up), .. }
            if reader_id == a && up == m3.id
    ));
    // Windows and limits: (after, through], oldest first.
    let mid = store.events(a, 1, 3, 1).await.unwrap();
    assert_eq!(mid.iter().map(|e| e.seq).collect::<Vec<_>>(), [2]);
    assert!(store.events(a, 4, 4, 10).await.unwrap().is_empty());
    // A retry finds where the message sits in both logs.
    let mut at = store.message_seqs(m3.id).await.unwrap();
    at.sort();
    let mut want = vec![(a, 3), (b, 2)];
    want.sort();
    assert_eq!(at, want);
}

async fn concurrent_sends_both_ways_number_each_log_without_holes(store: DynStore) {
    let a = user(&store, "a").await;
    let b = user(&store, "b").await;
    let c = user(&store, "c").await;
    let ab = Arc::new(conversation(&store, a, b).await);
    let bc = Arc::new(conversation(&store, b, c).await);
    let mut tasks = Vec::new();
    // b is in every send (both directions, two conversations) and reads in between: the
    // counters must hand out each number once, and lock order must never deadlock.
    for i in 0..60 {
        let store = store.clone();
        let (ab, bc) = (ab.clone(), bc.clone());
        tasks.push(tokio::spawn(async move {
            let (conv, from, to) = match i % 4 {
                0 => (&ab, a, b),
                1 => (&ab, b, a),
                2 => (&bc, c, b),
                _ => (&bc, b, c),
            };
            store
                .insert_message(&NewMessage {
                    message: text(conv.id, from, to, &format!("m{i}"), now()),
                    links: vec![],
                })
                .await
                .unwrap();
            if i % 5 == 0 {
                store.mark_read(ab.id, b, None, now()).await.unwrap();
                store.mark_read(bc.id, c, None, now()).await.unwrap();
            }
        }));
    }
    for t in tasks {
        t.await.unwrap();
    }
    for u in [a, b, c] {
        let head = store.event_head(u).await.unwrap();
        let log = store.events(u, 0, head, 1000).await.unwrap();
        let seqs: Vec<u64> = log.iter().map(|e| e.seq).collect();
        assert_eq!(seqs, (1..=head).collect::<Vec<_>>(), "log of {u} has holes");
    }
    assert_eq!(
        store
            .events(b, 0, u64::MAX, 1000)
            .await
            .unwrap()
            .iter()
            .filter(|e| matches!(e.kind, LoggedKind::Message(_)))
            .count(),
        60,
        "b took part in every send"
    );
}

async fn purges_and_erasure_take_their_events_along(store: DynStore) {
    let a = user(&store, "a").await;
    let b = user(&store, "b").await;
    let conv = conversation(&store, a, b).await;
    let old = now() - Duration::days(10);
    let m1 = send(&store, text(conv.id, a, b, "old", old)).await;
    let m2 = send(&store, text(conv.id, a, b, "new", now())).await;
    store.mark_read(conv.id, b, None, now()).await.unwrap();
    // Retention: the old message's events go; the counter never moves back.
    store
        .purge_messages(
            PurgeScope::OlderThan {
                before: now() - Duration::days(1),
                conversation: None,
            },
            100,
        )
        .await
        .unwrap();
    let blog = store.events(b, 0, 10, 100).await.unwrap();
    assert_eq!(blog.iter().map(|e| e.seq).collect::<Vec<_>>(), [2, 3]);
    assert_eq!(logged_message(&blog[0]), m2.id);
    assert_eq!(store.event_head(b).await.unwrap(), 3);
    assert!(store.message_seqs(m1.id).await.unwrap().is_empty());
    // Erasing b removes its read events; what it received stays with the other side's
    // messages (its tokens are refused, so nobody reads that log again).
    store.erase_user(b, now()).await.unwrap();
    let blog = store.events(b, 0, 10, 100).await.unwrap();
    assert_eq!(blog.iter().map(|e| e.seq).collect::<Vec<_>>(), [2]);
    let alog = store.events(a, 0, 10, 100).await.unwrap();
    assert_eq!(alog.iter().map(|e| e.seq).collect::<Vec<_>>(), [2, 3]);
    // Deleting the conversation leaves nothing to replay for a.
    store.delete_conversation(conv.id).await.unwrap();
    assert!(store.events(a, 0, 10, 100).await.unwrap().is_empty());
}

// ---- group commit ----------------------------------------------------------------------

fn with_temp(mut m: Message, temp_id: &str) -> Message {
    m.temp_id = Some(temp_id.to_string());
    m
}

fn plain(m: Message) -> NewMessage {
    NewMessage {
        message: m,
        links: vec![],
    }
}

fn created(r: &Result<InsertOutcome, StoreError>) -> (MessageId, SendSeqs) {
    match r {
        Ok(InsertOutcome::Created(m, seqs)) => (m.id, *seqs),
        other => panic!("expected a stored send, got {other:?}"),
    }
}

/// Every position of `u`'s log from 1 to its head is taken exactly once.
async fn assert_no_holes(store: &DynStore, u: UserId) -> u64 {
    let head = store.event_head(u).await.unwrap();
    let log = store.events(u, 0, head, 10_000).await.unwrap();
    let seqs: Vec<u64> = log.iter().map(|e| e.seq).collect();
    assert_eq!(seqs, (1..=head).collect::<Vec<_>>(), "log of {u} has holes");
    head
}

async fn a_batch_gives_each_send_its_own_outcome(store: DynStore) {
    let a = user(&store, "a").await;
    let b = user(&store, "b").await;
    let c = user(&store, "c").await;
    let d = user(&store, "d").await;
    let e = user(&store, "e").await;
    let ab = conversation(&store, a, b).await;
    let ac = conversation(&store, a, c).await;
    let de = conversation(&store, d, e).await;
    let t0 = now() - Duration::seconds(10);
    let at = |ms: i64| t0 + Duration::milliseconds(ms);
    let earlier = send(&store, with_temp(text(ab.id, a, b, "earlier", at(0)), "t0")).await;
    store.block(c, a, now()).await.unwrap();
    store.erase_user(e, now()).await.unwrap();

    let mut clash = text(ab.id, a, b, "same id", at(6));
    clash.id = earlier.id;
    let batch = vec![
        NewMessage {
            message: with_temp(text(ab.id, a, b, "x1 https://example.com/1", at(1)), "t1"),
            links: vec!["https://example.com/1".into()],
        },
        plain(text(ab.id, b, a, "x2", at(2))),
        plain(with_temp(
            text(ab.id, a, b, "retry of earlier", at(3)),
            "t0",
        )),
        plain(with_temp(
            text(ab.id, a, b, "retry inside the batch", at(4)),
            "t1",
        )),
        plain(text(ac.id, a, c, "to someone who blocked me", at(5))),
        plain(text(de.id, e, d, "from an erased user", at(5))),
        plain(clash),
        plain(text(ab.id, a, b, "x3", at(7))),
    ];
    let out = store.insert_messages(&batch).await;
    assert_eq!(out.len(), batch.len());
    let (x1, s1) = created(&out[0]);
    let (x2, s2) = created(&out[1]);
    let (x3, s3) = created(&out[7]);
    // a and b each had position 1 (the earlier send); the batch continues both in order.
    assert_eq!(
        s1,
        SendSeqs {
            sender: 2,
            receiver: 2
        }
    );
    assert_eq!(
        s2,
        SendSeqs {
            sender: 3,
            receiver: 3
        }
    );
    assert_eq!(
        s3,
        SendSeqs {
            sender: 4,
            receiver: 4
        }
    );
    assert!(
        matches!(&out[2], Ok(InsertOutcome::Existing(m)) if m.id == earlier.id),
        "{:?}",
        out[2]
    );
    assert!(
        matches!(&out[3], Ok(InsertOutcome::Existing(m)) if m.id == x1),
        "{:?}",
        out[3]
    );
    assert!(matches!(out[4], Err(StoreError::Blocked)), "{:?}", out[4]);
    assert!(matches!(out[5], Err(StoreError::Erased)), "{:?}", out[5]);
    assert!(
        matches!(out[6], Err(StoreError::Conflict(_))),
        "{:?}",
        out[6]
    );

    // Nothing refused took a position or left a row behind.
    assert_eq!(assert_no_holes(&store, a).await, 4);
    assert_eq!(assert_no_holes(&store, b).await, 4);
    assert_eq!(store.event_head(c).await.unwrap(), 0);
    assert_eq!(store.event_head(d).await.unwrap(), 0);
    assert_eq!(
        store
            .message(earlier.id)
            .await
            .unwrap()
            .unwrap()
            .content
            .as_deref(),
        Some("earlier")
    );
    let conv = store.conversation(ab.id).await.unwrap().unwrap();
    assert_eq!(conv.last_message_id, Some(x3));
    assert_eq!(conv.unread_for(b), 3, "earlier, x1, x3");
    assert_eq!(conv.unread_for(a), 1, "x2");
    assert_eq!(store.message(x2).await.unwrap().unwrap().receiver_id, a);
    let links = store.list_links(ab.id, b, None, 10).await.unwrap();
    assert_eq!(links.len(), 1);
    assert_eq!(links[0].0.url, "https://example.com/1");
    let ac_now = store.conversation(ac.id).await.unwrap().unwrap();
    assert_eq!((ac_now.last_message_id, ac_now.unread_for(c)), (None, 0));
}

async fn a_vanished_conversation_fails_only_its_send_in_a_batch(store: DynStore) {
    let a = user(&store, "a").await;
    let b = user(&store, "b").await;
    let x = user(&store, "x").await;
    let ab = conversation(&store, a, b).await;
    let ax = conversation(&store, a, x).await;
    store.delete_conversation(ax.id).await.unwrap();
    let batch = vec![
        plain(text(ab.id, a, b, "1", now())),
        NewMessage {
            message: text(ax.id, a, x, "into the void https://example.com", now()),
            links: vec!["https://example.com".into()],
        },
        plain(text(ab.id, b, a, "2", now())),
    ];
    let out = store.insert_messages(&batch).await;
    created(&out[0]);
    created(&out[2]);
    assert!(matches!(out[1], Err(StoreError::NotFound)), "{:?}", out[1]);
    assert_eq!(store.message(batch[1].message.id).await.unwrap(), None);
    assert_eq!(assert_no_holes(&store, a).await, 2);
    assert_eq!(store.event_head(x).await.unwrap(), 0);
}

async fn concurrent_batches_number_each_log_without_holes(store: DynStore) {
    let users = [
        user(&store, "a").await,
        user(&store, "b").await,
        user(&store, "c").await,
        user(&store, "d").await,
    ];
    let mut convs = Vec::new();
    for (i, j) in [(0, 1), (1, 2), (2, 3), (0, 3), (1, 3)] {
        convs.push(conversation(&store, users[i], users[j]).await);
    }
    let convs = Arc::new(convs);
    let mut tasks = Vec::new();
    // Eight batches at once, each touching every conversation in both directions, with
    // reads in between: positions handed out once each, no deadlock, exact unread.
    for t in 0..8 {
        let (store, convs) = (store.clone(), convs.clone());
        tasks.push(tokio::spawn(async move {
            let batch: Vec<NewMessage> = (0..20)
                .map(|i| {
                    let c = &convs[(t + i) % convs.len()];
                    let (from, to) = if (t + i) % 2 == 0 {
                        (c.user1_id, c.user2_id)
                    } else {
                        (c.user2_id, c.user1_id)
                    };
                    plain(text(c.id, from, to, &format!("{t}-{i}"), now()))
                })
                .collect();
            for r in store.insert_messages(&batch).await {
                created(&r);
            }
            let c = &convs[t % convs.len()];
            store
                .mark_read(c.id, c.user1_id, None, now())
                .await
                .unwrap();
        }));
    }
    for t in tasks {
        t.await.unwrap();
    }
    let mut total = 0;
    for u in users {
        let head = assert_no_holes(&store, u).await;
        total += store
            .events(u, 0, head, 10_000)
            .await
            .unwrap()
            .iter()
            .filter(|e| matches!(e.kind, LoggedKind::Message(_)))
            .count();
    }
    assert_eq!(total, 2 * 160, "each send is in two logs");
    for c in convs.iter() {
        let conv = store.conversation(c.id).await.unwrap().unwrap();
        for u in [c.user1_id, c.user2_id] {
            let q = MessageQuery {
                limit: 1000,
                ..Default::default()
            };
            let unread = store
                .list_messages(c.id, &q)
                .await
                .unwrap()
                .iter()
                .filter(|m| m.receiver_id == u && !m.is_read)
                .count() as u64;
            assert_eq!(conv.unread_for(u), unread, "unread of {u} in {}", c.id);
        }
    }
}

async fn group_commit_gathers_concurrent_sends_and_replays(store: DynStore) {
    let a = user(&store, "a").await;
    let b = user(&store, "b").await;
    let ab = Arc::new(conversation(&store, a, b).await);
    let sends = GroupCommit::start(
        store.clone(),
        BatchSettings {
            max_batch: 16,
            writers: 2,
        },
    );
    let mut tasks = Vec::new();
    // 100 sends at once, each sent twice with its temp_id (a client's retry): one stored
    // message per temp_id, the retry answered with it.
    for i in 0..100 {
        let (sends, ab) = (sends.clone(), ab.clone());
        tasks.push(tokio::spawn(async move {
            let (from, to) = if i % 2 == 0 { (a, b) } else { (b, a) };
            let m = with_temp(
                text(ab.id, from, to, &format!("m{i}"), now()),
                &format!("g{i}"),
            );
            let first = sends.insert(plain(m.clone())).await.unwrap();
            let mut again = m;
            again.id = MessageId::new();
            let second = sends.insert(plain(again)).await.unwrap();
            match (first, second) {
                (InsertOutcome::Created(m, _), InsertOutcome::Existing(e)) => {
                    assert_eq!(m.id, e.id)
                }
                other => panic!("{other:?}"),
            }
        }));
    }
    for t in tasks {
        t.await.unwrap();
    }
    assert_eq!(assert_no_holes(&store, a).await, 100);
    assert_eq!(assert_no_holes(&store, b).await, 100);
    let conv = store.conversation(ab.id).await.unwrap().unwrap();
    assert_eq!((conv.unread_for(a), conv.unread_for(b)), (50, 50));
}

mod lifecycle;
mod postgres_send;
mod search;
mod sqlite_search;
