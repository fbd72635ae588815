//! SQLite only: the full-text index is written in the background, not by each send (not
//! a conformance question, so outside the two-backend macro).

use sqlx::Connection;

use super::*;

/// Sends only queue their rowids; the background indexer moves them into the FTS5 index
/// without any search asking, and the queue empties.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sends_are_indexed_in_the_background_without_a_search() {
    let h = Harness::sqlite().await;
    let dir = h.dir.clone().expect("sqlite dir");
    let store = h.store.clone();
    let a = user(&store, "a").await;
    let b = user(&store, "b").await;
    let ab = conversation(&store, a, b).await;
    for body in ["gamma one", "gamma two", "gamma three"] {
        send(&store, text(ab.id, a, b, body, now())).await;
    }
    let mut raw = sqlx::SqliteConnection::connect(&sqlite_url(&dir))
        .await
        .expect("open the database file");
    let count = |sql: &'static str| sqlx::query_scalar::<_, i64>(sql);
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
    loop {
        let queued = count("SELECT count(*) FROM messages_fts_pending")
            .fetch_one(&mut raw)
            .await
            .expect("count the queue");
        if queued == 0 {
            break;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "{queued} sends still queued for the index after 10 s"
        );
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    }
    let indexed = count("SELECT count(*) FROM messages_fts WHERE messages_fts MATCH 'gamma'")
        .fetch_one(&mut raw)
        .await
        .expect("query the index");
    assert_eq!(indexed, 3);
    raw.close().await.expect("close");
    h.cleanup().await;
}
