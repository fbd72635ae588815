//! The message lifecycle (edit, delete for me / for everyone, reactions, replies) through
//! [`chat_server::store::LifecycleStore`], on both databases, races included.

use chat_protocol::rest::{DeleteScope, MediaItem as Item, ReplyTo};
use chat_server::store::{Change, Changed, MessageQuery};

use super::*;

conformance!(
    an_edit_changes_content_and_links_and_is_logged_for_both,
    an_edit_applies_only_to_the_senders_live_message_inside_the_window,
    delete_for_everyone_leaves_a_tombstone_and_lowers_unread,
    delete_for_me_hides_only_for_the_caller,
    reactions_add_remove_idempotently_and_cap_distinct_emoji,
    a_reply_shows_its_original_as_it_is_now,
    edit_racing_delete_ends_in_one_consistent_state,
    delete_racing_mark_read_keeps_unread_exact,
    concurrent_reactions_keep_rows_and_logs_exact,
    erasure_and_purge_take_lifecycle_rows_along,
);

pub(super) fn edit<'a>(sender: UserId, content: &'a str, links: &'a [String]) -> Change<'a> {
    Change::Edit {
        sender,
        content,
        links,
        since: now() - Duration::days(1),
    }
}

fn react(user: UserId, emoji: &str, add: bool) -> Change<'_> {
    Change::React {
        user,
        emoji,
        add,
        max: 20,
    }
}

pub(super) fn everyone(sender: UserId) -> Change<'static> {
    Change::DeleteForEveryone {
        sender,
        since: now() - Duration::days(1),
    }
}

/// Apply `change` to `id` now; the positions it was logged at (panics when refused).
pub(super) async fn apply(
    store: &DynStore,
    id: MessageId,
    change: &Change<'_>,
) -> Vec<(UserId, u64)> {
    applied(store.change_message(id, change, now()).await.unwrap())
}

/// The positions a change was logged at, per user (panics when it was not applied).
fn applied(c: Changed) -> Vec<(UserId, u64)> {
    match c {
        Changed::Applied { seqs, .. } => seqs,
        other => panic!("expected the change to apply, got {other:?}"),
    }
}

fn seq_of(seqs: &[(UserId, u64)], u: UserId) -> u64 {
    seqs.iter()
        .find(|(id, _)| *id == u)
        .map(|(_, s)| *s)
        .expect("logged for user")
}

async fn an_edit_changes_content_and_links_and_is_logged_for_both(store: DynStore) {
    let a = user(&store, "a").await;
    let b = user(&store, "b").await;
    let conv = conversation(&store, a, b).await;
    let m = text(conv.id, a, b, "see https://old.example", now());
    store
        .insert_message(&NewMessage {
            message: m.clone(),
            links: vec!["https://old.example".into()],
        })
        .await
        .unwrap();
    let links = vec!["https://new.example".to_string()];
    let seqs = apply(&store, m.id, &edit(a, "see https://new.example", &links)).await;
    let after = store.message(m.id).await.unwrap().unwrap();
    assert_eq!(after.content.as_deref(), Some("see https://new.example"));
    assert!(after.edited_at.is_some());
    assert!(!after.is_read, "an edit never changes the read state");
    let c = store.conversation(conv.id).await.unwrap().unwrap();
    assert_eq!(c.unread_for(b), 1, "an edit never changes the unread count");
    let urls: Vec<String> = store
        .list_links(conv.id, b, None, 10)
        .await
        .unwrap()
        .into_iter()
        .map(|(l, _)| l.url)
        .collect();
    assert_eq!(
        urls,
        ["https://new.example"],
        "the links archive follows the text"
    );
    // Logged for both, after the message, with the message as it is now.
    for u in [a, b] {
        let head = assert_no_holes(&store, u).await;
        assert_eq!(seq_of(&seqs, u), head);
        let log = store.events(u, head - 1, head, 10).await.unwrap();
        match &log[0].kind {
            LoggedKind::Edited(m) => {
                assert_eq!(m.content.as_deref(), Some("see https://new.example"))
            }
            other => panic!("expected an edit, got {other:?}"),
        }
    }
}

async fn an_edit_applies_only_to_the_senders_live_message_inside_the_window(store: DynStore) {
    let a = user(&store, "a").await;
    let b = user(&store, "b").await;
    let conv = conversation(&store, a, b).await;
    let m = send(
        &store,
        text(conv.id, a, b, "hi", now() - Duration::hours(2)),
    )
    .await;
    let heads = (
        store.event_head(a).await.unwrap(),
        store.event_head(b).await.unwrap(),
    );
    // Not the sender.
    let r = store
        .change_message(m.id, &edit(b, "x", &[]), now())
        .await
        .unwrap();
    assert_eq!(r, Changed::Refused);
    // Outside the window (sent before `since`).
    let late = Change::Edit {
        sender: a,
        content: "x",
        links: &[],
        since: now() - Duration::hours(1),
    };
    assert_eq!(
        store.change_message(m.id, &late, now()).await.unwrap(),
        Changed::Refused
    );
    // Unknown message.
    let r = store
        .change_message(MessageId::new(), &edit(a, "x", &[]), now())
        .await;
    assert_eq!(r.unwrap(), Changed::Refused);
    // Refusals take no positions and change nothing.
    assert_eq!(store.event_head(a).await.unwrap(), heads.0);
    assert_eq!(store.event_head(b).await.unwrap(), heads.1);
    assert_eq!(
        store
            .message(m.id)
            .await
            .unwrap()
            .unwrap()
            .content
            .as_deref(),
        Some("hi")
    );
    // A deleted message cannot be edited.
    apply(&store, m.id, &everyone(a)).await;
    let r = store
        .change_message(m.id, &edit(a, "back", &[]), now())
        .await
        .unwrap();
    assert_eq!(r, Changed::Refused);
    assert_eq!(store.message(m.id).await.unwrap().unwrap().content, None);
}

async fn delete_for_everyone_leaves_a_tombstone_and_lowers_unread(store: DynStore) {
    let a = user(&store, "a").await;
    let b = user(&store, "b").await;
    let conv = conversation(&store, a, b).await;
    let first = send(&store, text(conv.id, a, b, "one", now())).await;
    let mut photo = text(conv.id, a, b, "caption https://x.example", now());
    photo.kind = MessageType::Image;
    photo.media = vec![Item {
        kind: MessageType::Image,
        url: "img/key".into(),
        thumbnail_url: Some("img/thumb".into()),
        mime: "image/png".into(),
        size: 10,
        width: Some(1),
        height: Some(1),
        duration_ms: None,
        name: None,
    }];
    store
        .insert_message(&NewMessage {
            message: photo.clone(),
            links: vec!["https://x.example".into()],
        })
        .await
        .unwrap();
    apply(&store, photo.id, &react(b, "👍", true)).await;
    assert_eq!(
        store
            .conversation(conv.id)
            .await
            .unwrap()
            .unwrap()
            .unread_for(b),
        2
    );
    // Only the sender.
    let r = store
        .change_message(photo.id, &everyone(b), now())
        .await
        .unwrap();
    assert_eq!(r, Changed::Refused);
    let (before, seqs) = match store
        .change_message(photo.id, &everyone(a), now())
        .await
        .unwrap()
    {
        Changed::Applied { before, seqs } => (before, seqs),
        other => panic!("expected applied, got {other:?}"),
    };
    assert_eq!(
        before.media.len(),
        1,
        "the media keys come back to be removed"
    );
    assert_eq!(before.media[0].url, "img/key");
    let t = store.message(photo.id).await.unwrap().unwrap();
    assert!(t.deleted_at.is_some());
    assert_eq!(t.content, None);
    assert!(t.media.is_empty() && t.reactions.is_empty());
    assert!(store
        .list_links(conv.id, b, None, 10)
        .await
        .unwrap()
        .is_empty());
    let c = store.conversation(conv.id).await.unwrap().unwrap();
    assert_eq!(
        c.unread_for(b),
        1,
        "the deleted unread message no longer counts"
    );
    let gallery = MessageQuery {
        types: Some(vec![MessageType::Image]),
        limit: 10,
        ..Default::default()
    };
    assert!(store
        .list_messages(conv.id, &gallery)
        .await
        .unwrap()
        .is_empty());
    // Mark read still finds the one that is left, and counts it.
    let read = store.mark_read(conv.id, b, None, now()).await.unwrap();
    assert_eq!((read.marked, read.up_to), (1, Some(first.id)));
    for u in [a, b] {
        let head = assert_no_holes(&store, u).await;
        let log = store.events(u, 0, head, 100).await.unwrap();
        let deleted = log.iter().find(|e| e.seq == seq_of(&seqs, u)).unwrap();
        assert_eq!(
            deleted.kind,
            LoggedKind::Deleted {
                conversation_id: conv.id,
                message_id: photo.id,
                scope: DeleteScope::Everyone,
            }
        );
    }
    // Again: nothing left to delete.
    let r = store
        .change_message(photo.id, &everyone(a), now())
        .await
        .unwrap();
    assert_eq!(r, Changed::Refused);
}

async fn delete_for_me_hides_only_for_the_caller(store: DynStore) {
    let a = user(&store, "a").await;
    let b = user(&store, "b").await;
    let conv = conversation(&store, a, b).await;
    let older = send(
        &store,
        text(conv.id, a, b, "older", now() - Duration::seconds(1)),
    )
    .await;
    let m = text(conv.id, a, b, "https://hidden.example", now());
    store
        .insert_message(&NewMessage {
            message: m.clone(),
            links: vec!["https://hidden.example".into()],
        })
        .await
        .unwrap();
    let a_head = store.event_head(a).await.unwrap();
    let seqs = apply(&store, m.id, &Change::Hide { user: b }).await;
    assert_eq!(seqs.len(), 1, "logged for the caller only");
    assert_eq!(store.event_head(a).await.unwrap(), a_head);
    assert_eq!(
        store
            .change_message(m.id, &Change::Hide { user: b }, now())
            .await
            .unwrap(),
        Changed::Unchanged
    );
    assert!(store.message_for(m.id, b).await.unwrap().is_none());
    assert!(store.message_for(m.id, a).await.unwrap().is_some());
    let page = |viewer| MessageQuery {
        limit: 10,
        viewer: Some(viewer),
        ..Default::default()
    };
    let ids =
        |v: Vec<chat_server::store::StoredMessage>| v.iter().map(|m| m.id).collect::<Vec<_>>();
    assert_eq!(
        ids(store.list_messages(conv.id, &page(b)).await.unwrap()),
        [older.id]
    );
    assert_eq!(
        ids(store.list_messages(conv.id, &page(a)).await.unwrap()),
        [m.id, older.id]
    );
    assert!(store
        .list_links(conv.id, b, None, 10)
        .await
        .unwrap()
        .is_empty());
    assert_eq!(
        store.list_links(conv.id, a, None, 10).await.unwrap().len(),
        1
    );
    // In b's list the hidden last message is left out; a still sees it.
    let last = |u| {
        let store = store.clone();
        async move {
            let l = store.list_conversations(u, None, 10).await.unwrap();
            l[0].last_message.as_ref().map(|m| m.id)
        }
    };
    assert_eq!(last(b).await, None);
    assert_eq!(last(a).await, Some(m.id));
    assert_no_holes(&store, b).await;
}

async fn reactions_add_remove_idempotently_and_cap_distinct_emoji(store: DynStore) {
    let a = user(&store, "a").await;
    let b = user(&store, "b").await;
    let conv = conversation(&store, a, b).await;
    let m = send(&store, text(conv.id, a, b, "react", now())).await;
    apply(&store, m.id, &react(b, "👍", true)).await;
    let again = store
        .change_message(m.id, &react(b, "👍", true), now())
        .await
        .unwrap();
    assert_eq!(again, Changed::Unchanged);
    apply(&store, m.id, &react(a, "👍", true)).await;
    apply(&store, m.id, &react(a, "🎉", true)).await;
    let r = store
        .message(m.id)
        .await
        .unwrap()
        .unwrap()
        .reactions
        .clone();
    assert_eq!(r.len(), 2);
    assert_eq!(
        (r[0].emoji.as_str(), r[0].user_ids.clone()),
        ("👍", vec![b, a])
    );
    assert_eq!(
        (r[1].emoji.as_str(), r[1].user_ids.clone()),
        ("🎉", vec![a])
    );
    // The cap counts distinct emoji: a known one is still fine, a new one is not.
    let capped = |user, emoji| Change::React {
        user,
        emoji,
        add: true,
        max: 2,
    };
    let c = store
        .change_message(m.id, &capped(b, "🎉"), now())
        .await
        .unwrap();
    assert!(matches!(c, Changed::Applied { .. }));
    let c = store
        .change_message(m.id, &capped(b, "🔥"), now())
        .await
        .unwrap();
    assert_eq!(c, Changed::TooManyReactions);
    // Removing.
    apply(&store, m.id, &react(b, "👍", false)).await;
    let gone = store
        .change_message(m.id, &react(b, "👍", false), now())
        .await
        .unwrap();
    assert_eq!(gone, Changed::Unchanged);
    let r = store
        .message(m.id)
        .await
        .unwrap()
        .unwrap()
        .reactions
        .clone();
    assert_eq!(r[0].user_ids, [a]);
    // Each applied change is one position in both logs.
    for u in [a, b] {
        let head = assert_no_holes(&store, u).await;
        let log = store.events(u, 0, head, 100).await.unwrap();
        let reactions = log
            .iter()
            .filter(|e| matches!(e.kind, LoggedKind::Reaction { .. }))
            .count();
        assert_eq!(reactions, 5, "{u}");
    }
    // A tombstone takes no reactions.
    apply(&store, m.id, &everyone(a)).await;
    let r = store
        .change_message(m.id, &react(b, "👍", true), now())
        .await
        .unwrap();
    assert_eq!(r, Changed::Refused);
}

async fn a_reply_shows_its_original_as_it_is_now(store: DynStore) {
    let a = user(&store, "a").await;
    let b = user(&store, "b").await;
    let conv = conversation(&store, a, b).await;
    let original = send(
        &store,
        text(conv.id, a, b, "question?", now() - Duration::days(3)),
    )
    .await;
    let mut reply = text(conv.id, b, a, "answer", now());
    reply.reply_to = Some(ReplyTo {
        id: original.id,
        sender_id: Some(a),
        kind: Some(MessageType::Text),
        preview: Some("question?".into()),
        deleted: false,
    });
    let stored = send(&store, reply.clone()).await;
    assert_eq!(stored.reply_to, reply.reply_to);
    let read = || {
        let store = store.clone();
        async move {
            store
                .message(reply.id)
                .await
                .unwrap()
                .unwrap()
                .reply_to
                .clone()
                .unwrap()
        }
    };
    assert_eq!(read().await.preview.as_deref(), Some("question?"));
    let long = "long ".repeat(50);
    let in_window = Change::Edit {
        sender: a,
        content: &long,
        links: &[],
        since: now() - Duration::days(4),
    };
    apply(&store, original.id, &in_window).await;
    let r = read().await;
    assert_eq!(
        r.preview.as_ref().map(|p| p.chars().count()),
        Some(100),
        "previews are cut"
    );
    applied(
        store
            .change_message(
                original.id,
                &Change::DeleteForEveryone {
                    sender: a,
                    since: now() - Duration::days(4),
                },
                now(),
            )
            .await
            .unwrap(),
    );
    let r = read().await;
    assert!(r.deleted && r.preview.is_none());
    assert_eq!(r.sender_id, Some(a));
    // Purged by retention: the reply stays and says its original is gone.
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
    let r = read().await;
    assert_eq!(
        r,
        ReplyTo {
            id: original.id,
            sender_id: None,
            kind: None,
            preview: None,
            deleted: true,
        }
    );
}

async fn edit_racing_delete_ends_in_one_consistent_state(store: DynStore) {
    let a = user(&store, "a").await;
    let b = user(&store, "b").await;
    let conv = conversation(&store, a, b).await;
    for round in 0..10 {
        let m = send(&store, text(conv.id, a, b, "v1", now())).await;
        let (s1, s2) = (store.clone(), store.clone());
        let editing = tokio::spawn(async move {
            s1.change_message(m.id, &edit(a, "v2", &[]), now())
                .await
                .unwrap()
        });
        let deleting =
            tokio::spawn(
                async move { s2.change_message(m.id, &everyone(a), now()).await.unwrap() },
            );
        let (e, d) = (editing.await.unwrap(), deleting.await.unwrap());
        assert!(
            matches!(d, Changed::Applied { .. }),
            "round {round}: the delete always applies"
        );
        let after = store.message(m.id).await.unwrap().unwrap();
        assert!(
            after.deleted_at.is_some() && after.content.is_none(),
            "round {round}"
        );
        // The edit applied only if it came first; then its event precedes the delete.
        let log = store.events(b, 0, u64::MAX, 10_000).await.unwrap();
        let kinds: Vec<&str> = log
            .iter()
            .filter_map(|ev| match &ev.kind {
                LoggedKind::Edited(x) if x.id == m.id => Some("edited"),
                LoggedKind::Deleted { message_id, .. } if *message_id == m.id => Some("deleted"),
                _ => None,
            })
            .collect();
        let expected: &[&str] = match e {
            Changed::Applied { .. } => &["edited", "deleted"],
            Changed::Refused => &["deleted"],
            other => panic!("round {round}: {other:?}"),
        };
        assert_eq!(kinds, expected, "round {round}");
    }
    assert_no_holes(&store, a).await;
    assert_no_holes(&store, b).await;
}

async fn delete_racing_mark_read_keeps_unread_exact(store: DynStore) {
    let a = user(&store, "a").await;
    let b = user(&store, "b").await;
    let conv = conversation(&store, a, b).await;
    for round in 0..10 {
        let msgs = send_many(&store, &conv, a, 3).await;
        let victim = msgs[round % 3].id;
        let (s1, s2) = (store.clone(), store.clone());
        let deleting =
            tokio::spawn(async move { s1.change_message(victim, &everyone(a), now()).await });
        let reading = tokio::spawn(async move { s2.mark_read(conv.id, b, None, now()).await });
        deleting.await.unwrap().unwrap();
        reading.await.unwrap().unwrap();
        let c = store.conversation(conv.id).await.unwrap().unwrap();
        assert_eq!(c.unread_for(b), 0, "round {round}");
        // A message that arrives afterwards counts from zero again.
        send(&store, text(conv.id, a, b, "next", now())).await;
        let c = store.conversation(conv.id).await.unwrap().unwrap();
        assert_eq!(c.unread_for(b), 1, "round {round}");
        store.mark_read(conv.id, b, None, now()).await.unwrap();
    }
    assert_no_holes(&store, a).await;
    assert_no_holes(&store, b).await;
}

async fn concurrent_reactions_keep_rows_and_logs_exact(store: DynStore) {
    let a = user(&store, "a").await;
    let b = user(&store, "b").await;
    let conv = conversation(&store, a, b).await;
    let m = send(&store, text(conv.id, a, b, "popular", now())).await;
    let emoji = ["👍", "🎉", "🔥", "❤️", "😂"];
    let mut tasks = Vec::new();
    for i in 0..40 {
        let store = store.clone();
        let who = if i % 2 == 0 { a } else { b };
        let e = emoji[i % emoji.len()];
        // Every (user, emoji) pair is added four times and removed twice, interleaved.
        let add = i % 3 != 2;
        tasks.push(tokio::spawn(async move {
            store
                .change_message(m.id, &react(who, e, add), now())
                .await
                .unwrap()
        }));
    }
    let mut applied_changes = 0;
    for t in tasks {
        if matches!(t.await.unwrap(), Changed::Applied { .. }) {
            applied_changes += 1;
        }
    }
    // Replaying the applied changes from the log gives the stored reactions exactly.
    let head = assert_no_holes(&store, b).await;
    assert_eq!(assert_no_holes(&store, a).await, head);
    let log = store.events(b, 0, head, 10_000).await.unwrap();
    let mut replayed: Vec<(String, UserId)> = Vec::new();
    let mut seen = 0;
    for e in &log {
        if let LoggedKind::Reaction {
            emoji,
            user_id,
            added,
            ..
        } = &e.kind
        {
            seen += 1;
            replayed.retain(|(x, u)| !(x == emoji && u == user_id));
            if *added {
                replayed.push((emoji.clone(), *user_id));
            }
        }
    }
    assert_eq!(seen, applied_changes);
    let stored = store
        .message(m.id)
        .await
        .unwrap()
        .unwrap()
        .reactions
        .clone();
    let mut stored_pairs: Vec<(String, UserId)> = stored
        .iter()
        .flat_map(|r| r.user_ids.iter().map(|u| (r.emoji.clone(), *u)))
        .collect();
    stored_pairs.sort_by(|x, y| (x.0.as_str(), x.1 .0).cmp(&(y.0.as_str(), y.1 .0)));
    replayed.sort_by(|x, y| (x.0.as_str(), x.1 .0).cmp(&(y.0.as_str(), y.1 .0)));
    assert_eq!(stored_pairs, replayed);
}

async fn erasure_and_purge_take_lifecycle_rows_along(store: DynStore) {
    let a = user(&store, "a").await;
    let b = user(&store, "b").await;
    let conv = conversation(&store, a, b).await;
    let m1 = send(&store, text(conv.id, a, b, "one", now())).await;
    let m2 = send(&store, text(conv.id, b, a, "two", now())).await;
    apply(&store, m1.id, &react(b, "👍", true)).await;
    apply(&store, m1.id, &edit(a, "one!", &[])).await;
    apply(&store, m2.id, &everyone(b)).await;
    apply(&store, m1.id, &Change::Hide { user: b }).await;
    let stats = store.stats(now()).await.unwrap();
    assert_eq!(
        (
            stats.edited_messages,
            stats.deleted_messages,
            stats.reactions
        ),
        (1, 1, 1)
    );
    // Erasing b: its reaction and what it hid are gone, a's message stays for a.
    store
        .purge_messages(PurgeScope::SentBy(b), 100)
        .await
        .unwrap();
    store.erase_user(b, now()).await.unwrap();
    let m = store.message(m1.id).await.unwrap().unwrap();
    assert!(m.reactions.is_empty());
    assert_eq!(m.content.as_deref(), Some("one!"));
    let stats = store.stats(now()).await.unwrap();
    assert_eq!(
        (
            stats.edited_messages,
            stats.deleted_messages,
            stats.reactions
        ),
        (1, 0, 0)
    );
    // Purging the conversation removes the rest; a's log has nothing left to replay.
    store
        .purge_messages(PurgeScope::Conversation(conv.id), 100)
        .await
        .unwrap();
    assert!(store.events(a, 0, u64::MAX, 100).await.unwrap().is_empty());
}
