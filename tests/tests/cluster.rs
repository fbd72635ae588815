//! End to end: two chatd processes on one PostgreSQL and one Redis behave as one
//! service. Each test uses its own database and its own Redis key prefix, so tests run in
//! parallel on the shared Redis.

use std::time::Duration;

use chat_e2e::server::TestServer;
use chat_e2e::ws::WsClient;
use serde_json::json;

async fn pair() -> Option<(TestServer, TestServer, String)> {
    TestServer::pair().await
}

async fn stop(a: TestServer, b: TestServer) {
    b.stop().await;
    a.stop().await;
}

#[tokio::test]
async fn events_cross_instances() {
    let Some((a, b, _)) = pair().await else {
        return;
    };
    let alice = a.registered_user("alice").await;
    let bob = a.registered_user("bob").await;
    let carol = a.registered_user("carol").await;
    let conv = a.conversation(&alice, &bob).await;
    a.send(&alice, &conv, "hello").await;
    let conv_cb = b.conversation(&carol, &bob).await;
    b.send(&carol, &conv_cb, "hi bob").await;

    let mut alice_a = WsClient::connect(&a, &alice).await;
    let mut bob_b = WsClient::connect(&b, &bob).await;
    // Presence crossed on connect: bob (on B) sees alice online, set by A.
    let bulk = bob_b.next_of("status.bulk").await;
    let alice_entry = bulk["data"]["users"]
        .as_array()
        .unwrap()
        .iter()
        .find(|u| u["user_id"] == alice.id.to_string())
        .cloned()
        .unwrap();
    assert_eq!(alice_entry["online"], true);

    // WS send on A reaches bob on B.
    alice_a
        .send(json!({"type": "message.send", "data": {"conversation_id": conv, "content": "across", "temp_id": "x1"}}))
        .await;
    let sent = alice_a.next_of("message.sent").await;
    let got = bob_b.next_of("message.new").await;
    assert_eq!(got["data"]["message"]["id"], sent["data"]["message"]["id"]);
    // REST send on B reaches alice on A.
    let m = b.send(&bob, &conv, "back").await;
    assert_eq!(
        alice_a.next_of("message.new").await["data"]["message"]["id"],
        m["id"]
    );
    // Read receipts.
    bob_b
        .send(json!({"type": "message.read", "data": {"conversation_id": conv}}))
        .await;
    bob_b.next_of("message.read_ack").await;
    let upd = alice_a.next_of("message.read_update").await;
    assert_eq!(upd["data"]["reader_id"], bob.id.to_string());
    // Typing.
    alice_a
        .send(json!({"type": "typing.start", "data": {"conversation_id": conv}}))
        .await;
    assert_eq!(
        bob_b.next_of("typing.start").await["data"]["user_id"],
        alice.id.to_string()
    );
    // Presence: carol comes online on A, bob on B hears it and REST on B agrees.
    let carol_a = WsClient::connect(&a, &carol).await;
    assert_eq!(
        bob_b.next_of("user.online").await["data"]["user_id"],
        carol.id.to_string()
    );
    let list = b.get(&bob, "/chat/conversations").await;
    let list = list.expect(200)["data"].as_array().unwrap().clone();
    let carol_row = list
        .iter()
        .find(|c| c["other_user"]["id"] == carol.id.to_string())
        .unwrap();
    assert_eq!(carol_row["other_user"]["online"], true);
    carol_a.close().await;
    assert_eq!(
        bob_b.next_of("user.offline").await["data"]["user_id"],
        carol.id.to_string()
    );
    // Block events reach the blocker's sockets on both instances.
    let mut alice_b = WsClient::connect(&b, &alice).await;
    a.post(&alice, "/chat/blocks", &json!({"username": bob.username}))
        .await
        .expect(201);
    assert_eq!(
        alice_a.next_of("block.updated").await["data"]["blocked"],
        true
    );
    assert_eq!(
        alice_b.next_of("block.updated").await["data"]["blocked"],
        true
    );
    stop(a, b).await;
}

#[tokio::test]
async fn rate_limit_holds_across_instances() {
    let Some((a, b, _)) = pair().await else {
        return;
    };
    let alice = a.registered_user("alice").await;
    let bob = a.registered_user("bob").await;
    let conv = a.conversation(&alice, &bob).await;
    for i in 0..15 {
        a.send(&alice, &conv, &format!("a{i}")).await;
        b.send(&alice, &conv, &format!("b{i}")).await;
    }
    let path = format!("/chat/conversations/{conv}/messages");
    for s in [&a, &b] {
        let r = s.post(&alice, &path, &json!({"content": "31st"})).await;
        r.expect_error(429, "rate_limited");
        assert!(r.headers.contains_key("retry-after"));
    }
    // Bob's budget is his own.
    b.send(&bob, &conv, "fine").await;
    stop(a, b).await;
}

#[tokio::test]
async fn flushing_redis_loses_no_message_or_count() {
    let Some((a, b, prefix)) = pair().await else {
        return;
    };
    let alice = a.registered_user("alice").await;
    let bob = a.registered_user("bob").await;
    let conv = a.conversation(&alice, &bob).await;
    for i in 0..5 {
        a.send(&alice, &conv, &format!("before {i}")).await;
    }
    let mut bob_b = WsClient::connect(&b, &bob).await;
    // Wipe this deployment's Redis keys mid-run.
    let client = redis::Client::open(chat_e2e::redis_url().unwrap()).unwrap();
    let mut conn = client.get_multiplexed_async_connection().await.unwrap();
    let keys: Vec<String> = redis::cmd("KEYS")
        .arg(format!("{prefix}*"))
        .query_async(&mut conn)
        .await
        .unwrap();
    assert!(!keys.is_empty(), "the deployment keeps state in Redis");
    let _: () = redis::cmd("DEL")
        .arg(&keys)
        .query_async(&mut conn)
        .await
        .unwrap();
    for i in 0..3 {
        b.send(&alice, &conv, &format!("after {i}")).await;
    }
    // Events still cross, counts and history are exact on both instances.
    bob_b.next_of("message.new").await;
    for s in [&a, &b] {
        let unread = s.get(&bob, "/chat/conversations/unread-count").await;
        assert_eq!(unread.expect(200)["total"], 8);
        let history = s
            .get(&bob, &format!("/chat/conversations/{conv}/messages"))
            .await;
        assert_eq!(history.expect(200)["data"].as_array().unwrap().len(), 8);
        let list = s.get(&bob, "/chat/conversations").await;
        assert_eq!(
            list.expect(200)["data"][0]["last_message"]["content"],
            "after 2"
        );
    }
    tokio::time::sleep(Duration::from_millis(10)).await;
    stop(a, b).await;
}

/// `/metrics` of one instance, and the value of one series in it.
async fn scrape(s: &TestServer) -> String {
    s.http
        .get(s.url("/metrics"))
        .send()
        .await
        .expect("scrape")
        .text()
        .await
        .expect("metrics body")
}

fn value(metrics: &str, series: &str) -> f64 {
    metrics
        .lines()
        .find_map(|l| l.strip_prefix(series)?.trim().parse().ok())
        .unwrap_or_else(|| panic!("no series {series} in:\n{metrics}"))
}

/// A message sent on A to bob's socket on B shows up in both instances' metrics: sent and
/// the request on A, delivered and the pub/sub lag on B.
#[tokio::test]
async fn metrics_follow_a_message_across_instances() {
    let Some((a, b, _)) = pair().await else {
        return;
    };
    let alice = a.registered_user("alice").await;
    let bob = a.registered_user("bob").await;
    let conv = a.conversation(&alice, &bob).await;
    let mut bob_b = WsClient::connect(&b, &bob).await;
    let sent = a.send(&alice, &conv, "counted").await;
    assert_eq!(
        bob_b.next_of("message.new").await["data"]["message"]["id"],
        sent["id"]
    );
    let ma = scrape(&a).await;
    assert_eq!(value(&ma, r#"chat_messages_sent_total{kind="text"}"#), 1.0);
    let route = r#"method="POST",route="/chat/conversations/{id}/messages",status="201""#;
    assert_eq!(
        value(&ma, &format!("chat_http_requests_total{{{route}}}")),
        1.0
    );
    assert_eq!(
        value(&ma, &format!("chat_http_request_seconds_count{{{route}}}")),
        1.0
    );
    assert!(
        value(
            &ma,
            r#"chat_db_pool_connections{pool="postgres",state="max"}"#
        ) >= 1.0
    );
    let mb = scrape(&b).await;
    assert_eq!(value(&mb, "chat_ws_sockets"), 1.0);
    assert_eq!(value(&mb, "chat_messages_delivered_total"), 1.0);
    assert!(value(&mb, "chat_bus_lag_seconds_count") >= 1.0, "{mb}");
    assert!(mb.ends_with("# EOF\n"), "OpenMetrics text ends with # EOF");
    bob_b.close().await;
    stop(a, b).await;
}

/// A rolling restart's reconnect: alice's socket on A closes and she comes back on B within
/// the presence grace period; bob hears neither `user.offline` nor `user.online`. When she
/// leaves B for good, bob hears `user.offline` once, after the grace.
#[tokio::test]
async fn a_reconnect_to_the_other_instance_within_the_grace_is_no_news() {
    let Some((a, b, _)) = TestServer::pair_with(&[("CHAT_PRESENCE_GRACE_MS", "1500")]).await else {
        return;
    };
    let alice = a.registered_user("alice").await;
    let bob = a.registered_user("bob").await;
    let conv = a.conversation(&alice, &bob).await;
    a.send(&alice, &conv, "hello").await;
    let mut bob_b = WsClient::connect(&b, &bob).await;
    let alice_a = WsClient::connect(&a, &alice).await;
    bob_b.next_of("user.online").await;
    alice_a.close().await;
    let mut alice_b = WsClient::connect(&b, &alice).await;
    alice_b.next_of("status.bulk").await;
    bob_b
        .assert_none("user.offline", Duration::from_millis(2500))
        .await;
    bob_b
        .assert_none("user.online", Duration::from_millis(10))
        .await;
    alice_b.close().await;
    let started = tokio::time::Instant::now();
    assert_eq!(
        bob_b.next_of("user.offline").await["data"]["user_id"],
        alice.id.to_string()
    );
    assert!(started.elapsed() >= Duration::from_millis(1200));
    bob_b
        .assert_none("user.offline", Duration::from_millis(500))
        .await;
    stop(a, b).await;
}
