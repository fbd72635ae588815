//! PostgreSQL only: the send statement's own connections (not a conformance question, so
//! outside the two-backend macro).

use chat_server::store::{PostgresStore, Store};
use std::time::Duration;

use sqlx::{Connection, Row};

use super::*;

/// How often the send statement was planned on the send pool's one connection:
/// (generic plans, custom plans), from that connection's own `pg_prepared_statements`
/// (the pattern is split so that this query does not match itself).
async fn send_plans(store: &PostgresStore) -> Vec<(i64, i64)> {
    sqlx::query(
        "SELECT generic_plans, custom_plans FROM pg_prepared_statements
         WHERE strpos(statement, 'INSERT INTO ' || 'event_heads') > 0",
    )
    .fetch_all(store.sends())
    .await
    .expect("read pg_prepared_statements")
    .iter()
    .map(|r| (r.get(0), r.get(1)))
    .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn send_connections_plan_the_statement_once_before_the_first_send() {
    let Some(db) = TestDatabase::create().await else {
        return;
    };
    let pg = PostgresStore::connect_for_writers(&db.url, 4, 1)
        .await
        .expect("open postgres");
    pg.migrate().await.expect("migrate");
    pg.ready().await;
    // Opened by the start, with the statement prepared and planned on an empty batch.
    assert_eq!(pg.sends().size(), 1);
    assert_eq!(send_plans(&pg).await, vec![(1, 0)]);
    let mode = |pool| async move {
        sqlx::query_scalar::<_, String>("SHOW plan_cache_mode")
            .fetch_one(pool)
            .await
            .expect("show plan_cache_mode")
    };
    assert_eq!(mode(pg.sends()).await, "force_generic_plan");
    assert_eq!(mode(pg.pool()).await, "auto", "other queries plan as usual");

    // PostgreSQL's default would make custom plans for five of these (~1-2 ms each).
    let pg = Arc::new(pg);
    let store: DynStore = pg.clone();
    let a = user(&store, "a").await;
    let b = user(&store, "b").await;
    let conv = conversation(&store, a, b).await;
    send_many(&store, &conv, a, 7).await; // each one stored (Created), or it panics
    assert_eq!(send_plans(&pg).await, vec![(8, 0)]);
    store.close().await;
    db.drop_db().await;
}

/// A send connection is pinged before use only after it sat idle (`PING_IDLE_AFTER`,
/// 5 s in chatd); here the two ends of that rule, with every connection of the store
/// terminated by the server after use. Pinged before use, a dead send connection is
/// replaced unseen; never pinged, it fails the one batch it is handed (503
/// `service_unavailable` upstream), is closed by sqlx's ping on its return, and the next
/// batch gets a new connection. Reads (the main pool, pinged before every use) never fail.
/// Nothing stored before is lost.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_dropped_send_connection_pinged_before_use_is_replaced_unseen() {
    dropped_connections_are_replaced(Duration::ZERO, 0).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_dropped_send_connection_not_pinged_fails_one_batch() {
    dropped_connections_are_replaced(Duration::MAX, 1).await;
}

/// The other client connections of the current database (the store's), seen from an
/// admin connection to it.
const OTHER_CLIENTS: &str = "datname = current_database() AND pid <> pg_backend_pid()
    AND backend_type = 'client backend'";

/// The store pings send connections idle for `ping_idle_after`; after every connection is
/// terminated, the next send fails exactly `failed_sends` times before one is stored, and
/// the next read not at all.
async fn dropped_connections_are_replaced(ping_idle_after: Duration, failed_sends: usize) {
    let Some(db) = TestDatabase::create().await else {
        return;
    };
    // One connection per pool, so each is surely the one that was terminated.
    let pg = Arc::new(
        PostgresStore::connect_with(&db.url, 1, 1, ping_idle_after)
            .await
            .expect("open postgres"),
    );
    pg.migrate().await.expect("migrate");
    pg.ready().await;
    let store: DynStore = pg.clone();
    let a = user(&store, "a").await;
    let b = user(&store, "b").await;
    let conv = conversation(&store, a, b).await;
    let before = send_many(&store, &conv, a, 3).await;

    // Both connections back in their pools (sqlx's ping on return done), so neither
    // learns of its end before it is next handed out.
    for pool in [pg.pool(), pg.sends()] {
        for _ in 0..500 {
            if pool.num_idle() == pool.size() as usize {
                break;
            }
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
        assert_eq!(
            pool.num_idle(),
            pool.size() as usize,
            "a connection still out"
        );
    }
    let mut admin = sqlx::PgConnection::connect(&db.url).await.expect("connect");
    let killed: i64 = sqlx::query_scalar(&format!(
        "SELECT count(pg_terminate_backend(pid)) FROM pg_stat_activity WHERE {OTHER_CLIENTS}"
    ))
    .fetch_one(&mut admin)
    .await
    .expect("terminate");
    assert_eq!(killed, 2, "the store's two connections");
    // pg_terminate_backend only signals: wait until both have exited, or a query sent
    // meanwhile could still be served before the backend notices.
    let count = format!("SELECT count(*) FROM pg_stat_activity WHERE {OTHER_CLIENTS}");
    let mut left = killed;
    for _ in 0..500 {
        left = sqlx::query_scalar(&count)
            .fetch_one(&mut admin)
            .await
            .expect("count backends");
        if left == 0 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    assert_eq!(left, 0, "terminated backends still there after 5 s");
    admin.close().await.expect("close");

    let mut failures = 0;
    let stored = loop {
        let m = text(conv.id, a, b, "after", now());
        let sent = NewMessage {
            message: m.clone(),
            links: vec![],
        };
        match store.insert_message(&sent).await {
            Ok(InsertOutcome::Created(_, _)) => break m,
            Ok(other) => panic!("unexpected {other:?}"),
            Err(e) => {
                assert!(matches!(e, StoreError::Unavailable(_)), "{e:?}");
                failures += 1;
                assert!(failures <= failed_sends, "send failed again: {e:?}");
            }
        }
    };
    assert_eq!(failures, failed_sends);
    let read = store
        .conversation(conv.id)
        .await
        .expect("a read on a replaced connection")
        .expect("conversation");
    assert_eq!(read.last_message_id, Some(stored.id));
    let n: i64 = sqlx::query_scalar("SELECT count(*) FROM messages")
        .fetch_one(pg.pool())
        .await
        .expect("count");
    assert_eq!(n as usize, before.len() + 1);
    store.close().await;
    db.drop_db().await;
}
