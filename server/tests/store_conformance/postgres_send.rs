//! PostgreSQL only: the send statement's own connections (not a conformance question, so
//! outside the two-backend macro).

use chat_server::store::{PostgresStore, Store};
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

/// Connections are not pinged before every use (only after 5 s idle): one that PostgreSQL
/// dropped fails the query it is handed to, is closed by sqlx's ping on its return, and
/// the next query gets a new connection. A reader and a sender recover after every
/// connection of chatd is terminated, each at the cost of at most one failed call per
/// connection, and nothing stored before is lost.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn connections_dropped_by_the_server_are_replaced() {
    let Some(db) = TestDatabase::create().await else {
        return;
    };
    let pg = Arc::new(
        PostgresStore::connect_for_writers(&db.url, 2, 1)
            .await
            .expect("open postgres"),
    );
    pg.migrate().await.expect("migrate");
    let store: DynStore = pg.clone();
    let a = user(&store, "a").await;
    let b = user(&store, "b").await;
    let conv = conversation(&store, a, b).await;
    let before = send_many(&store, &conv, a, 3).await;
    // Every connection of the store (some of both pools, used just now) is dropped.
    let mut admin = sqlx::PgConnection::connect(&db.url).await.expect("connect");
    let killed: i64 = sqlx::query_scalar(
        "SELECT count(pg_terminate_backend(pid)) FROM pg_stat_activity
         WHERE datname = current_database() AND pid <> pg_backend_pid()",
    )
    .fetch_one(&mut admin)
    .await
    .expect("terminate");
    assert!(killed >= 2, "terminated {killed}");
    admin.close().await.expect("close");

    let mut failures = 0;
    let stored = loop {
        let m = text(conv.id, a, b, "after", now());
        match store
            .insert_message(&NewMessage {
                message: m.clone(),
                links: vec![],
            })
            .await
        {
            Ok(InsertOutcome::Created(_, _)) => break m,
            Ok(other) => panic!("unexpected {other:?}"),
            Err(e) => {
                assert!(matches!(e, StoreError::Unavailable(_)), "{e:?}");
                failures += 1;
                assert!(failures <= 3, "still failing: {e:?}");
            }
        }
    };
    let mut read_failures = 0;
    let page = loop {
        match store.conversation(conv.id).await {
            Ok(c) => break c,
            Err(e) => {
                read_failures += 1;
                assert!(read_failures <= 2, "reads still failing: {e:?}");
            }
        }
    };
    assert_eq!(page.expect("conversation").last_message_id, Some(stored.id));
    let n: i64 = sqlx::query_scalar("SELECT count(*) FROM messages")
        .fetch_one(pg.pool())
        .await
        .expect("count");
    assert_eq!(n as usize, before.len() + 1);
    store.close().await;
    db.drop_db().await;
}
