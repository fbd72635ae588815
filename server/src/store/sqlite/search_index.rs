//! The full-text index off the send path. A send's trigger queues its rowid in
//! `messages_fts_pending` (a one-row insert into a small table); this indexes the queue
//! into `messages_fts` in one transaction every [`INDEX_EVERY`], and before every search
//! and index check, so a search still finds every message committed before it. Indexing
//! by trigger inside each send cost ~40 µs per send and, every thousand or so commits, an
//! FTS5 segment merge that held the single writer for 25-50 ms (docs/benchmarks.md,
//! session 20); a few segments a second instead of one per commit make merges rare and
//! small.

use std::time::Duration;

use sqlx::SqlitePool;
use tokio::sync::oneshot;

/// How often the background task indexes what sends queued.
pub(super) const INDEX_EVERY: Duration = Duration::from_millis(250);

/// Index every queued message in one transaction on the writer; returns how many. The
/// queue is looked at on a reader first, so an idle store never takes the writer.
pub(super) async fn index_pending(write: &SqlitePool, read: &SqlitePool) -> sqlx::Result<u64> {
    let queued: bool = sqlx::query_scalar("SELECT EXISTS (SELECT 1 FROM messages_fts_pending)")
        .fetch_one(read)
        .await?;
    if !queued {
        return Ok(0);
    }
    // It reads the queue before it writes: IMMEDIATE takes the write lock first, so
    // another process's write cannot make SQLite refuse the upgrade.
    let mut tx = write.begin_with("BEGIN IMMEDIATE").await?;
    let indexed = index_queue(&mut tx).await?;
    tx.commit().await?;
    Ok(indexed)
}

/// Move the queue into the index, inside the caller's write transaction.
pub(super) async fn index_queue(conn: &mut sqlx::SqliteConnection) -> sqlx::Result<u64> {
    let indexed = sqlx::query(
        "INSERT INTO messages_fts (rowid, content)
         SELECT m.rowid, m.content FROM messages_fts_pending p JOIN messages m ON m.rowid = p.rid
         ORDER BY p.rid",
    )
    .execute(&mut *conn)
    .await?
    .rows_affected();
    sqlx::query("DELETE FROM messages_fts_pending")
        .execute(&mut *conn)
        .await?;
    Ok(indexed)
}

/// Index the queue every [`INDEX_EVERY`] until `stop`, and once more then.
pub(super) async fn indexer(write: SqlitePool, read: SqlitePool, mut stop: oneshot::Receiver<()>) {
    loop {
        let stopping = tokio::select! {
            _ = &mut stop => true,
            _ = tokio::time::sleep(INDEX_EVERY) => false,
        };
        match index_pending(&write, &read).await {
            Ok(_) => {}
            // Opened before the migrations have made the queue.
            Err(sqlx::Error::Database(e)) if e.message().contains("no such table") => {}
            Err(e) => tracing::warn!(error = %e, "search indexing failed; retrying"),
        }
        if stopping {
            return;
        }
    }
}
