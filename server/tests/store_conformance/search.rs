//! Full-text search through [`chat_server::store::LifecycleStore::search`], on both
//! databases: what is found, in which order, and that both ways of finding it (the index,
//! a window of the viewer's newest messages) agree.

use chat_server::model::{SearchCursor, SearchTerms};
use chat_server::store::{Change, SearchScan};

use super::lifecycle::{apply, edit, everyone};
use super::*;

conformance!(
    search_follows_edits_deletes_hides_and_purges,
    both_scans_agree_and_page_in_log_order,
    a_window_finds_only_the_newest_messages,
    changes_before_the_index_catches_up_are_followed,
);

/// The ids `viewer` finds through the index, after checking that a window over the
/// whole log finds the same, in the same order.
async fn both(
    store: &DynStore,
    viewer: UserId,
    q: &SearchTerms,
    conv: Option<ConversationId>,
    before: Option<SearchCursor>,
    limit: u32,
) -> Vec<MessageId> {
    let ids = |scan| async move {
        let found = store
            .search(viewer, q, conv, before, limit, scan)
            .await
            .unwrap();
        found.hits.iter().map(|r| r.message.id).collect::<Vec<_>>()
    };
    let index = ids(SearchScan::Index).await;
    let recent = ids(SearchScan::Recent { window: 100_000 }).await;
    assert_eq!(index, recent, "the two scans disagree on {q:?}");
    index
}

async fn search_follows_edits_deletes_hides_and_purges(store: DynStore) {
    let a = user(&store, "a").await;
    let b = user(&store, "b").await;
    let c = user(&store, "c").await;
    let ab = conversation(&store, a, b).await;
    let bc = conversation(&store, b, c).await;
    let old = send(
        &store,
        text(ab.id, a, b, "Crème brûlée, old", now() - Duration::days(9)),
    )
    .await;
    let edited = send(
        &store,
        text(ab.id, a, b, "plain words", now() - Duration::seconds(3)),
    )
    .await;
    let gone = send(
        &store,
        text(ab.id, a, b, "creme gone", now() - Duration::seconds(2)),
    )
    .await;
    let hidden = send(
        &store,
        text(ab.id, b, a, "CREME hidden", now() - Duration::seconds(1)),
    )
    .await;
    let theirs = send(&store, text(bc.id, b, c, "crèmes of c", now())).await;
    let find = |viewer: UserId, q: &str, conv: Option<ConversationId>| {
        let store = store.clone();
        let q = SearchTerms::parse(q).unwrap();
        async move { both(&store, viewer, &q, conv, None, 50).await }
    };
    // Word prefixes, any case and accents, newest first, only the viewer's conversations.
    assert_eq!(find(a, "creme", None).await, [hidden.id, gone.id, old.id]);
    assert_eq!(
        find(b, "CRÈME", None).await,
        [theirs.id, hidden.id, gone.id, old.id]
    );
    assert_eq!(
        find(b, "creme", Some(ab.id)).await,
        [hidden.id, gone.id, old.id]
    );
    assert_eq!(find(a, "bru old", None).await, [old.id]);
    assert!(
        find(a, "brulee missing", None).await.is_empty(),
        "every word must match"
    );
    // Edits, tombstones and hides are followed at once.
    apply(&store, edited.id, &edit(a, "now with crème", &[])).await;
    apply(&store, gone.id, &everyone(a)).await;
    apply(&store, hidden.id, &Change::Hide { user: a }).await;
    assert_eq!(find(a, "creme", None).await, [edited.id, old.id]);
    assert_eq!(
        find(b, "creme", Some(ab.id)).await,
        [hidden.id, edited.id, old.id]
    );
    assert!(
        find(a, "plain", None).await.is_empty(),
        "the old text is no longer found"
    );
    // Keyset paging visits each hit once.
    let q = SearchTerms::parse("creme").unwrap();
    let first = store
        .search(b, &q, None, None, 2, SearchScan::Index)
        .await
        .unwrap()
        .hits;
    let rest = store
        .search(b, &q, None, Some(first[1].cursor()), 10, SearchScan::Index)
        .await
        .unwrap()
        .hits;
    let mut all: Vec<MessageId> = first
        .iter()
        .chain(rest.iter())
        .map(|r| r.message.id)
        .collect();
    assert_eq!(all.len(), 4);
    all.dedup();
    assert_eq!(all.len(), 4);
    // Purged messages leave the index.
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
    assert_eq!(find(a, "creme", None).await, [edited.id]);
    // Through all of it (media without text, tombstones, edits, purges) the index stayed
    // in step with the messages; a rebuild changes no answer.
    let photo = {
        let mut m = text(ab.id, a, b, "", now());
        m.content = None;
        m.kind = MessageType::Image;
        m
    };
    send(&store, photo).await;
    assert_eq!(store.search_index_problem().await.unwrap(), None);
    store.rebuild_search_index().await.unwrap();
    assert_eq!(store.search_index_problem().await.unwrap(), None);
    assert_eq!(find(a, "creme", None).await, [edited.id]);
}

async fn both_scans_agree_and_page_in_log_order(store: DynStore) {
    let a = user(&store, "a").await;
    let b = user(&store, "b").await;
    let c = user(&store, "c").await;
    let ab = conversation(&store, a, b).await;
    let ac = conversation(&store, a, c).await;
    let mut sent = Vec::new();
    for i in 0..60 {
        let (conv, from, to) = match i % 3 {
            0 => (ab.id, a, b),
            1 => (ab.id, b, a),
            _ => (ac.id, c, a),
        };
        let words = if i % 10 == 0 { "common rare" } else { "common" };
        let at = now() - Duration::seconds(600 - i);
        sent.push(send(&store, text(conv, from, to, &format!("{words} {i}"), at)).await);
    }
    let newest_first: Vec<MessageId> = sent.iter().rev().map(|m| m.id).collect();
    for (q, conv) in [
        ("common", None),
        ("rare", None),
        ("comm", Some(ab.id)),
        ("rare", Some(ac.id)),
    ] {
        let q = SearchTerms::parse(q).unwrap();
        let all = both(&store, a, &q, conv, None, 100).await;
        let expected: Vec<MessageId> = newest_first
            .iter()
            .copied()
            .filter(|id| {
                let m = sent.iter().find(|m| m.id == *id).unwrap();
                let content = m.content.as_deref().unwrap_or("");
                conv.is_none_or(|c| c == m.conversation_id)
                    && q.terms().iter().all(|t| content.contains(t.as_str()))
            })
            .collect();
        assert_eq!(all, expected, "{q:?} in {conv:?}");
        // Page by page (7 at a time), through either scan, each hit once, in order.
        for scan in [SearchScan::Index, SearchScan::Recent { window: 100_000 }] {
            let mut paged = Vec::new();
            let mut cursor = None;
            loop {
                let page = store
                    .search(a, &q, conv, cursor, 7, scan)
                    .await
                    .unwrap()
                    .hits;
                paged.extend(page.iter().map(|r| r.message.id));
                match page.last() {
                    Some(last) if page.len() == 7 => cursor = Some(last.cursor()),
                    _ => break,
                }
            }
            assert_eq!(paged, expected, "{q:?} in {conv:?} paged with {scan:?}");
        }
    }
    // c sees only the conversation with a.
    let q = SearchTerms::parse("common").unwrap();
    assert_eq!(both(&store, c, &q, None, None, 100).await.len(), 20);
}

async fn a_window_finds_only_the_newest_messages(store: DynStore) {
    let a = user(&store, "a").await;
    let b = user(&store, "b").await;
    let ab = conversation(&store, a, b).await;
    let mut sent = Vec::new();
    for i in 0..12 {
        let (from, to) = if i % 2 == 0 { (a, b) } else { (b, a) };
        let words = if i % 4 == 0 { "even four" } else { "other" };
        let at = now() - Duration::seconds(100 - i);
        sent.push(send(&store, text(ab.id, from, to, words, at)).await);
    }
    let q = SearchTerms::parse("four").unwrap();
    // The newest 5 messages of a's log are 7..=11: only 8 says "four".
    let found = store
        .search(a, &q, None, None, 50, SearchScan::Recent { window: 5 })
        .await
        .unwrap();
    let ids: Vec<MessageId> = found.hits.iter().map(|r| r.message.id).collect();
    assert_eq!(ids, [sent[8].id]);
    assert_eq!(found.walked, 5);
    let top = store
        .search(
            a,
            &SearchTerms::parse("other").unwrap(),
            None,
            None,
            1,
            SearchScan::Recent { window: 1 },
        )
        .await
        .unwrap();
    assert_eq!(top.hits.len(), 1);
    assert_eq!(top.hits[0].message.id, sent[11].id);
    assert_eq!(
        found.top, top.hits[0].pos,
        "top is the newest position read"
    );
    // Below a cursor the window starts there; a window longer than the log reads it all.
    let below = store
        .search(
            a,
            &q,
            None,
            Some(found.hits[0].cursor()),
            50,
            SearchScan::Recent { window: 100 },
        )
        .await
        .unwrap();
    let ids: Vec<MessageId> = below.hits.iter().map(|r| r.message.id).collect();
    assert_eq!(ids, [sent[4].id, sent[0].id]);
    assert_eq!(below.walked, 8, "the 8 messages below the cursor");
    // Nothing matched: nothing to report.
    let none = store
        .search(
            a,
            &SearchTerms::parse("absent").unwrap(),
            None,
            None,
            50,
            SearchScan::Recent { window: 100 },
        )
        .await
        .unwrap();
    assert_eq!(none, Default::default());
}

/// Edits, deletes and purges of messages sent a moment before, while SQLite's background
/// indexer has most likely not reached them yet (it runs every 250 ms; a search catches
/// it up first): found as they are now, and the index stays whole.
async fn changes_before_the_index_catches_up_are_followed(store: DynStore) {
    let a = user(&store, "a").await;
    let b = user(&store, "b").await;
    let ab = conversation(&store, a, b).await;
    let old = text(ab.id, a, b, "alpha old", now() - Duration::days(9));
    send(&store, old).await;
    let edited = send(&store, text(ab.id, a, b, "alpha edited", now())).await;
    let gone = send(&store, text(ab.id, a, b, "alpha gone", now())).await;
    let kept = send(&store, text(ab.id, b, a, "alpha kept", now())).await;
    apply(&store, edited.id, &edit(a, "beta now", &[])).await;
    apply(&store, gone.id, &everyone(a)).await;
    let older = PurgeScope::OlderThan {
        before: now() - Duration::days(1),
        conversation: None,
    };
    store.purge_messages(older, 100).await.unwrap();
    let q = |s: &str| SearchTerms::parse(s).unwrap();
    assert_eq!(
        both(&store, a, &q("alpha"), None, None, 50).await,
        [kept.id]
    );
    assert_eq!(
        both(&store, b, &q("beta"), None, None, 50).await,
        [edited.id]
    );
    assert!(both(&store, a, &q("edited"), None, None, 50)
        .await
        .is_empty());
    assert_eq!(store.search_index_problem().await.unwrap(), None);
}
