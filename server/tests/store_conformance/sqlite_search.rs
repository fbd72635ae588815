//! SQLite only: the full-text index is written in the background, not by each send (not
//! a conformance question, so outside the two-backend macro).

use std::collections::BTreeSet;

use chat_server::model::SearchTerms;
use chat_server::store::SearchScan;
use sqlx::{Connection, SqliteConnection};

use super::*;

/// A SQLite harness, its database's directory, and its store.
async fn sqlite_store() -> (Harness, std::path::PathBuf, DynStore) {
    let h = Harness::sqlite().await;
    let dir = h.dir.clone().expect("sqlite dir");
    let store = h.store.clone();
    (h, dir, store)
}

/// Wait (at most 10 s) until the background indexer has emptied the queue.
async fn queue_drained(raw: &mut SqliteConnection) {
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
    loop {
        let queued: i64 = sqlx::query_scalar("SELECT count(*) FROM messages_fts_pending")
            .fetch_one(&mut *raw)
            .await
            .expect("count the queue");
        if queued == 0 {
            return;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "{queued} sends still queued for the index after 10 s"
        );
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    }
}

/// The ids `viewer` finds through the index.
async fn found(store: &DynStore, viewer: UserId, q: &str) -> BTreeSet<MessageId> {
    let q = SearchTerms::parse(q).unwrap();
    let found = store.search(viewer, &q, None, None, 50, SearchScan::Index);
    let hits = found.await.unwrap().hits;
    hits.iter().map(|r| r.message.id).collect()
}

/// Sends only queue their rowids; the background indexer moves them into the FTS5 index
/// without any search asking, and the queue empties.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sends_are_indexed_in_the_background_without_a_search() {
    let (h, dir, store) = sqlite_store().await;
    let (a, b) = (user(&store, "a").await, user(&store, "b").await);
    let ab = conversation(&store, a, b).await;
    for body in ["gamma one", "gamma two", "gamma three"] {
        send(&store, text(ab.id, a, b, body, now())).await;
    }
    let mut raw = SqliteConnection::connect(&sqlite_url(&dir))
        .await
        .expect("open the database file");
    queue_drained(&mut raw).await;
    let indexed: i64 =
        sqlx::query_scalar("SELECT count(*) FROM messages_fts WHERE messages_fts MATCH 'gamma'")
            .fetch_one(&mut raw)
            .await
            .expect("query the index");
    assert_eq!(indexed, 3);
    raw.close().await.expect("close");
    h.cleanup().await;
}

/// The triggers on both sides of the queue, driven in one transaction on a connection of
/// its own so that the background indexer cannot step in: a queued message edited or
/// deleted only changes the queue, its rowid reused by the next insert is queued again,
/// an indexed message edited or deleted changes the index; then a search (which catches
/// the index up first) sees exactly the messages as they are, and FTS5's own check finds
/// index and messages in step.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn queued_and_indexed_messages_follow_edits_deletes_and_reused_rowids() {
    let (h, dir, store) = sqlite_store().await;
    let (a, b) = (user(&store, "a").await, user(&store, "b").await);
    let ab = conversation(&store, a, b).await;
    let kept = send(&store, text(ab.id, a, b, "delta indexed kept", now())).await;
    let gone = send(&store, text(ab.id, a, b, "delta indexed gone", now())).await;
    let mut raw = SqliteConnection::connect(&sqlite_url(&dir))
        .await
        .expect("open the database file");
    queue_drained(&mut raw).await;

    let mut tx = raw.begin_with("BEGIN IMMEDIATE").await.expect("begin");
    // Messages as a send stores them, copied from `kept` (no log positions, no temp_id).
    let copy = |content: &'static str, id: MessageId| {
        sqlx::query(
            "INSERT INTO messages (id, conversation_id, sender_id, receiver_id, type, content,
                 media, temp_id, is_read, read_at, created_at, updated_at, sender_seq,
                 receiver_seq, reply_to_id)
             SELECT $1, conversation_id, sender_id, receiver_id, type, $2, media, NULL, is_read,
                 read_at, created_at, updated_at, NULL, NULL, NULL
             FROM messages WHERE id = $3",
        )
        .bind(id.to_string())
        .bind(content)
        .bind(kept.id.to_string())
    };
    let rowid = |id: MessageId| {
        sqlx::query_scalar::<_, i64>("SELECT rowid FROM messages WHERE id = $1")
            .bind(id.to_string())
    };
    let (edited, dropped, reused) = (MessageId::new(), MessageId::new(), MessageId::new());
    copy("delta queued edited", edited)
        .execute(&mut *tx)
        .await
        .unwrap();
    copy("delta queued dropped", dropped)
        .execute(&mut *tx)
        .await
        .unwrap();
    let dropped_rowid = rowid(dropped).fetch_one(&mut *tx).await.unwrap();
    let edit = |content: &'static str, id: MessageId| {
        sqlx::query("UPDATE messages SET content = $1 WHERE id = $2")
            .bind(content)
            .bind(id.to_string())
    };
    let delete =
        |id: MessageId| sqlx::query("DELETE FROM messages WHERE id = $1").bind(id.to_string());
    edit("epsilon queued", edited)
        .execute(&mut *tx)
        .await
        .unwrap();
    delete(dropped).execute(&mut *tx).await.unwrap();
    // The highest rowid was freed: the next message takes it, and is queued.
    copy("delta reused", reused)
        .execute(&mut *tx)
        .await
        .unwrap();
    assert_eq!(
        rowid(reused).fetch_one(&mut *tx).await.unwrap(),
        dropped_rowid
    );
    edit("epsilon indexed", kept.id)
        .execute(&mut *tx)
        .await
        .unwrap();
    delete(gone.id).execute(&mut *tx).await.unwrap();
    let queue: Vec<i64> = sqlx::query_scalar("SELECT rid FROM messages_fts_pending ORDER BY rid")
        .fetch_all(&mut *tx)
        .await
        .unwrap();
    let expected = vec![
        rowid(edited).fetch_one(&mut *tx).await.unwrap(),
        dropped_rowid,
    ];
    assert_eq!(
        queue, expected,
        "the two queued messages alive, nothing else"
    );
    tx.commit().await.expect("commit");

    assert_eq!(found(&store, a, "delta").await, BTreeSet::from([reused]));
    assert_eq!(
        found(&store, a, "epsilon").await,
        BTreeSet::from([edited, kept.id])
    );
    assert!(found(&store, a, "gone").await.is_empty());
    assert!(found(&store, a, "dropped").await.is_empty());
    assert_eq!(store.search_index_problem().await.unwrap(), None);
    raw.close().await.expect("close");
    h.cleanup().await;
}
