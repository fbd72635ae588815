//! The full-text index off the send path. A send's trigger queues its rowid in
//! `messages_fts_pending` (a one-row insert into a small table); this indexes the queue
//! into `messages_fts` every [`INDEX_EVERY`], and before every search and index check, so
//! a search still finds every message committed before it. Indexing by trigger inside each
//! send wrote an FTS5 segment per commit, merged level by level: ~40 µs more per commit,
//! and now and then a merge of several milliseconds (up to 30 ms in
//! `scripts/fts5-merge-tail.py`) inside some send's transaction; a few segments a second
//! make merges rare and small (docs/benchmarks.md, session 20). A process that writes
//! messages without this task (an older chatd after a rollback) leaves its sends queued:
//! the next store that opens indexes them.

use std::time::Duration;

use sqlx::SqlitePool;
use tokio::sync::oneshot;

/// How often the background task indexes what sends queued.
pub(super) const INDEX_EVERY: Duration = Duration::from_millis(250);

/// Index every queued message on the writer, in transactions of at most [`QUEUE_CHUNK`];
/// returns how many. The
/// queue is looked at on a reader first, so an idle store never takes the writer.
pub(super) async fn index_pending(write: &SqlitePool, read: &SqlitePool) -> sqlx::Result<u64> {
    let queued: bool = sqlx::query_scalar("SELECT EXISTS (SELECT 1 FROM messages_fts_pending)")
        .fetch_one(read)
        .await?;
    if !queued {
        return Ok(0);
    }
    let mut indexed = 0;
    loop {
        // It reads the queue before it writes: IMMEDIATE takes the write lock first, so
        // another process's write cannot make SQLite refuse the upgrade.
        let mut tx = write.begin_with("BEGIN IMMEDIATE").await?;
        let n = index_queue(&mut tx).await?;
        tx.commit().await?;
        indexed += n;
        if n < QUEUE_CHUNK {
            return Ok(indexed);
        }
    }
}

/// Move the whole queue into the index inside the caller's write transaction (for a check
/// that must see the index complete).
pub(super) async fn index_queue_all(conn: &mut sqlx::SqliteConnection) -> sqlx::Result<()> {
    while index_queue(conn).await? == QUEUE_CHUNK {}
    Ok(())
}

/// Queued messages indexed in one transaction at most, so that a long queue (left by a
/// process without the indexer) never holds the writer for all of it at once.
const QUEUE_CHUNK: u64 = 5_000;

/// Move up to [`QUEUE_CHUNK`] of the queue, oldest first, into the index, inside the
/// caller's write transaction; returns how many left the queue.
pub(super) async fn index_queue(conn: &mut sqlx::SqliteConnection) -> sqlx::Result<u64> {
    let chunk = format!("SELECT rid FROM messages_fts_pending ORDER BY rid LIMIT {QUEUE_CHUNK}");
    sqlx::query(&format!(
        "INSERT INTO messages_fts (rowid, content)
         SELECT m.rowid, m.content FROM messages m WHERE m.rowid IN ({chunk}) ORDER BY m.rowid"
    ))
    .execute(&mut *conn)
    .await?;
    let taken = sqlx::query(&format!(
        "DELETE FROM messages_fts_pending WHERE rid IN ({chunk})"
    ))
    .execute(&mut *conn)
    .await?
    .rows_affected();
    Ok(taken)
}

/// Index the queue every [`INDEX_EVERY`] until `stop`, and once more then. A failure is
/// logged once, and its end.
pub(super) async fn indexer(write: SqlitePool, read: SqlitePool, mut stop: oneshot::Receiver<()>) {
    let mut failing = false;
    loop {
        let stopping = tokio::select! {
            _ = &mut stop => true,
            _ = tokio::time::sleep(INDEX_EVERY) => false,
        };
        match index_pending(&write, &read).await {
            Ok(_) if failing => {
                failing = false;
                tracing::info!("search indexing works again");
            }
            Ok(_) => {}
            // Opened before the migrations have made the queue.
            Err(e) if super::no_such_table(&e) => {}
            Err(e) if !failing => {
                failing = true;
                tracing::warn!(error = %e, "search indexing failed; retrying every 250 ms");
            }
            Err(_) => {}
        }
        if stopping {
            return;
        }
    }
}
