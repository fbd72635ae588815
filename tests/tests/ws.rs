//! End to end: `/chat/ws` events over real sockets against the real binary, on SQLite
//! and PostgreSQL (same test bodies).

use std::time::Duration;

use chat_e2e::server::{Backend, TestServer, TestUser};
use chat_e2e::ws::{Ended, WsClient};
use serde_json::json;
use tokio_tungstenite::tungstenite::Message;

use chat_e2e::on_both_backends;

on_both_backends!(
    connect_greets_then_sends_status_bulk,
    ws_send_acks_sender_and_reaches_every_other_socket,
    rest_send_emits_message_new_to_both_parties,
    read_receipts_reach_reader_and_sender,
    typing_is_relayed_and_a_send_stops_it,
    presence_goes_online_and_offline_with_last_seen,
    block_events_and_blocked_sends_over_ws,
    bad_frames_get_error_events_and_the_socket_survives,
    ws_and_rest_sends_share_one_rate_bucket,
    a_disconnect_storm_announces_everyone_offline_and_records_last_seen,
);

mod with_grace {
    use super::*;
    on_both_backends!(env = &[("CHAT_PRESENCE_GRACE_MS", "1500")];
        a_reconnect_within_the_presence_grace_is_no_news,
    );
}

fn send_frame(conv: &str, content: &str, temp_id: &str) -> serde_json::Value {
    json!({"type": "message.send", "data": {"conversation_id": conv, "content": content, "temp_id": temp_id}})
}

async fn connect_greets_then_sends_status_bulk(s: &TestServer) {
    let alice = s.registered_user("alice").await;
    let bob = s.registered_user("bob").await;
    let conv = s.conversation(&alice, &bob).await;
    s.send(&alice, &conv, "hi").await;
    let mut b = WsClient::connect(s, &bob).await;
    let mut a = WsClient::connect(s, &alice).await;
    let bulk = a.next_of("status.bulk").await;
    let users = bulk["data"]["users"].as_array().unwrap();
    assert_eq!(users.len(), 1);
    assert_eq!(users[0]["user_id"], bob.id.to_string());
    assert_eq!(users[0]["online"], true);
    // REST sees the socket too.
    let list = s.get(&alice, "/chat/conversations").await;
    assert_eq!(list.expect(200)["data"][0]["other_user"]["online"], true);
    // ?token= works; a bad token is refused at the handshake.
    let q = WsClient::connect_query(s, &bob.token).await;
    assert!(q.is_ok());
    assert_eq!(WsClient::connect_query(s, "garbage").await.err(), Some(401));
    b.send(json!({"type": "ping"})).await;
    b.next_of("pong").await;
    a.close().await;
    b.close().await;
}

async fn ws_send_acks_sender_and_reaches_every_other_socket(s: &TestServer) {
    let alice = s.registered_user("alice").await;
    let bob = s.registered_user("bob").await;
    let conv = s.conversation(&alice, &bob).await;
    let mut phone = WsClient::connect(s, &alice).await;
    let mut laptop = WsClient::connect(s, &alice).await;
    let mut b = WsClient::connect(s, &bob).await;
    phone.send(send_frame(&conv, "from my phone", "t-1")).await;
    let sent = phone.next_of("message.sent").await;
    assert_eq!(sent["data"]["temp_id"], "t-1");
    let message = &sent["data"]["message"];
    assert_eq!(message["content"], "from my phone");
    let got = b.next_of("message.new").await;
    assert_eq!(got["data"]["message"]["id"], message["id"]);
    let mirrored = laptop.next_of("message.new").await;
    assert_eq!(mirrored["data"]["message"]["id"], message["id"]);
    phone
        .assert_none("message.new", Duration::from_millis(300))
        .await;
    // Replaying the temp_id acks the same message, stores nothing, and announces the
    // same message (same id) again: the first attempt's instance may have died before
    // announcing it. Clients drop the repeat by id; the retrying socket gets no echo.
    phone.send(send_frame(&conv, "from my phone", "t-1")).await;
    let again = phone.next_of("message.sent").await;
    assert_eq!(again["data"]["message"]["id"], message["id"]);
    let repeat = b.next_of("message.new").await;
    assert_eq!(repeat["data"]["message"]["id"], message["id"]);
    phone
        .assert_none("message.new", Duration::from_millis(300))
        .await;
    // Stored once, visible over REST.
    let history = s
        .get(&bob, &format!("/chat/conversations/{conv}/messages"))
        .await;
    assert_eq!(history.expect(200)["data"].as_array().unwrap().len(), 1);
}

async fn rest_send_emits_message_new_to_both_parties(s: &TestServer) {
    let alice = s.registered_user("alice").await;
    let bob = s.registered_user("bob").await;
    let conv = s.conversation(&alice, &bob).await;
    let mut a = WsClient::connect(s, &alice).await;
    let mut b = WsClient::connect(s, &bob).await;
    let m = s.send(&alice, &conv, "over REST").await;
    assert_eq!(
        b.next_of("message.new").await["data"]["message"]["id"],
        m["id"]
    );
    assert_eq!(
        a.next_of("message.new").await["data"]["message"]["id"],
        m["id"]
    );
}

async fn read_receipts_reach_reader_and_sender(s: &TestServer) {
    let alice = s.registered_user("alice").await;
    let bob = s.registered_user("bob").await;
    let conv = s.conversation(&alice, &bob).await;
    let m1 = s.send(&alice, &conv, "one").await;
    s.send(&alice, &conv, "two").await;
    let mut a = WsClient::connect(s, &alice).await;
    let mut b = WsClient::connect(s, &bob).await;
    b.send(json!({"type": "message.read", "data": {"conversation_id": conv, "up_to_message_id": m1["id"]}}))
        .await;
    let ack = b.next_of("message.read_ack").await;
    assert_eq!(ack["data"]["up_to_message_id"], m1["id"]);
    let upd = a.next_of("message.read_update").await;
    assert_eq!(upd["data"]["reader_id"], bob.id.to_string());
    assert_eq!(upd["data"]["conversation_id"], conv.as_str());
    assert_eq!(upd["data"]["up_to_message_id"], m1["id"]);
    // REST mark-read emits the same update.
    s.post(
        &bob,
        &format!("/chat/conversations/{conv}/read"),
        &json!({}),
    )
    .await
    .expect(200);
    let upd = a.next_of("message.read_update").await;
    assert!(upd["data"]["read_at"].is_string());
    let unread = s.get(&bob, "/chat/conversations/unread-count").await;
    assert_eq!(unread.expect(200)["total"], 0);
}

async fn typing_is_relayed_and_a_send_stops_it(s: &TestServer) {
    let alice = s.registered_user("alice").await;
    let bob = s.registered_user("bob").await;
    let eve = s.registered_user("eve").await;
    let conv = s.conversation(&alice, &bob).await;
    let mut a = WsClient::connect(s, &alice).await;
    let mut b = WsClient::connect(s, &bob).await;
    let mut e = WsClient::connect(s, &eve).await;
    a.send(json!({"type": "typing.start", "data": {"conversation_id": conv}}))
        .await;
    let t = b.next_of("typing.start").await;
    assert_eq!(t["data"]["user_id"], alice.id.to_string());
    // A refresh while typing is no news (relayed on transitions only).
    a.send(json!({"type": "typing.start", "data": {"conversation_id": conv}}))
        .await;
    b.assert_none("typing.start", Duration::from_millis(300))
        .await;
    a.send(json!({"type": "typing.stop", "data": {"conversation_id": conv}}))
        .await;
    b.next_of("typing.stop").await;
    // Sending a message in the conversation stops typing in it.
    a.send(json!({"type": "typing.start", "data": {"conversation_id": conv}}))
        .await;
    b.next_of("typing.start").await;
    a.send(send_frame(&conv, "done typing", "t-typing")).await;
    a.next_of("message.sent").await;
    let stop = b
        .next_of_within("typing.stop", Duration::from_secs(2))
        .await;
    let stop = stop.expect("a send stops typing at once, not after the 5 s expiry");
    assert_eq!(stop["data"]["conversation_id"], conv.as_str());
    b.next_of("message.new").await;
    // Outsiders can neither signal into nor see someone else's conversation.
    e.send(json!({"type": "typing.start", "data": {"conversation_id": conv}}))
        .await;
    assert_eq!(e.next_of("error").await["data"]["code"], "not_found");
    e.assert_none("typing.start", Duration::from_millis(200))
        .await;
}

/// The expiry's wiring into a live socket, once (the rule itself, refreshes included, is
/// unit-tested with explicit instants in the server: `ws::typing`).
#[tokio::test]
async fn typing_expires_after_five_seconds_without_a_refresh() {
    let s = TestServer::start(Backend::Sqlite)
        .await
        .expect("start chatd");
    let alice = s.registered_user("alice").await;
    let bob = s.registered_user("bob").await;
    let conv = s.conversation(&alice, &bob).await;
    let mut a = WsClient::connect(&s, &alice).await;
    let mut b = WsClient::connect(&s, &bob).await;
    a.send(json!({"type": "typing.start", "data": {"conversation_id": conv}}))
        .await;
    b.next_of("typing.start").await;
    let started = tokio::time::Instant::now();
    let stop = b.next_of("typing.stop").await;
    let waited = started.elapsed();
    assert!(waited >= Duration::from_secs(4), "stopped after {waited:?}");
    assert_eq!(stop["data"]["conversation_id"], conv.as_str());
    s.stop().await;
}

/// Alice and bob with a message between them (so presence crosses), bob's socket, and
/// alice's first socket, whose `user.online` bob has just heard.
async fn bob_watching_alice(s: &TestServer) -> (TestUser, TestUser, WsClient, WsClient) {
    let alice = s.registered_user("alice").await;
    let bob = s.registered_user("bob").await;
    let conv = s.conversation(&alice, &bob).await;
    s.send(&alice, &conv, "hi").await;
    let mut b = WsClient::connect(s, &bob).await;
    let a1 = WsClient::connect(s, &alice).await;
    let online = b.next_of("user.online").await;
    assert_eq!(online["data"]["user_id"], alice.id.to_string());
    (alice, bob, b, a1)
}

async fn presence_goes_online_and_offline_with_last_seen(s: &TestServer) {
    let (alice, bob, mut b, a1) = bob_watching_alice(s).await;
    // A second socket does not announce again; closing one of two does not go offline.
    let a2 = WsClient::connect(s, &alice).await;
    a1.close().await;
    b.assert_none("user.offline", Duration::from_millis(400))
        .await;
    b.assert_none("user.online", Duration::from_millis(10))
        .await;
    a2.close().await;
    let offline = b.next_of("user.offline").await;
    assert_eq!(offline["data"]["user_id"], alice.id.to_string());
    assert!(offline["data"]["last_seen_at"].is_string());
    let list = s.get(&bob, "/chat/conversations").await;
    let other = &list.expect(200)["data"][0]["other_user"];
    assert_eq!(other["online"], false);
}

/// With a grace period, a socket that comes back within it announces nothing (no
/// `user.offline` / `user.online` pair); one that stays away goes offline once the grace is
/// over, with `last_seen_at` the time it closed.
async fn a_reconnect_within_the_presence_grace_is_no_news(s: &TestServer) {
    let (alice, bob, mut b, a1) = bob_watching_alice(s).await;
    a1.close().await;
    let mut a2 = WsClient::connect(s, &alice).await;
    a2.next_of("status.bulk").await;
    b.assert_none("user.offline", Duration::from_millis(2500))
        .await;
    b.assert_none("user.online", Duration::from_millis(10))
        .await;
    let list = s.get(&bob, "/chat/conversations").await;
    assert_eq!(list.expect(200)["data"][0]["other_user"]["online"], true);
    // Gone for good: offline after the grace, last seen when the socket closed.
    let closed = chrono::Utc::now();
    a2.close().await;
    let started = tokio::time::Instant::now();
    let offline = b.next_of("user.offline").await;
    let waited = started.elapsed();
    assert!(
        waited >= Duration::from_millis(1200),
        "offline after {waited:?}"
    );
    let seen: chrono::DateTime<chrono::Utc> = offline["data"]["last_seen_at"]
        .as_str()
        .expect("last_seen_at")
        .parse()
        .expect("timestamp");
    let slack = chrono::Duration::milliseconds(500);
    assert!(
        seen >= closed - slack && seen <= closed + slack,
        "last seen {seen}, closed {closed}"
    );
    let list = s.get(&bob, "/chat/conversations").await;
    assert_eq!(list.expect(200)["data"][0]["other_user"]["online"], false);
    // Back after that: online is news again.
    let _a3 = WsClient::connect(s, &alice).await;
    b.next_of("user.online").await;
}

/// Shutdown does not wait out the grace period, nor forget the users in it: their
/// `last_seen_at` is recorded before the process exits.
#[tokio::test]
async fn shutdown_settles_departures_still_in_their_grace() {
    let mut s = TestServer::start_with(Backend::Sqlite, &[("CHAT_PRESENCE_GRACE_MS", "20000")])
        .await
        .unwrap();
    let alice = s.registered_user("alice").await;
    let bob = s.registered_user("bob").await;
    let conv = s.conversation(&alice, &bob).await;
    s.send(&alice, &conv, "hi").await;
    let a = WsClient::connect(&s, &alice).await;
    let closed = chrono::Utc::now() - chrono::Duration::milliseconds(5);
    a.close().await;
    let started = tokio::time::Instant::now();
    s.restart(Duration::ZERO).await;
    assert!(
        started.elapsed() < Duration::from_secs(8),
        "restart took {:?}",
        started.elapsed()
    );
    let list = s.get(&bob, "/chat/conversations").await;
    let other = &list.expect(200)["data"][0]["other_user"];
    let seen: chrono::DateTime<chrono::Utc> = other["last_seen_at"]
        .as_str()
        .unwrap_or_else(|| panic!("last_seen_at not recorded: {other}"))
        .parse()
        .expect("timestamp");
    assert!(seen >= closed, "last seen {seen}, closed {closed}");
    s.stop().await;
}

async fn block_events_and_blocked_sends_over_ws(s: &TestServer) {
    let alice = s.registered_user("alice").await;
    let bob = s.registered_user("bob").await;
    let conv = s.conversation(&alice, &bob).await;
    let mut a = WsClient::connect(s, &alice).await;
    let mut b = WsClient::connect(s, &bob).await;
    a.send(json!({"type": "block.add", "data": {"username": bob.username}}))
        .await;
    let upd = a.next_of("block.updated").await;
    assert_eq!(
        upd["data"],
        json!({"username": bob.username, "blocked": true})
    );
    b.send(send_frame(&conv, "let me in", "tb-1")).await;
    let err = b.next_of("error").await;
    assert_eq!(err["data"]["code"], "blocked");
    assert_eq!(err["data"]["temp_id"], "tb-1");
    a.assert_none("message.new", Duration::from_millis(200))
        .await;
    let status = s
        .get(&alice, &format!("/chat/blocks/status/{}", bob.username))
        .await;
    assert_eq!(status.expect(200)["blocked_by_me"], true);
    a.send(json!({"type": "block.remove", "data": {"username": bob.username}}))
        .await;
    assert_eq!(a.next_of("block.updated").await["data"]["blocked"], false);
    b.send(send_frame(&conv, "thanks", "tb-2")).await;
    b.next_of("message.sent").await;
    a.send(json!({"type": "block.add", "data": {"username": "nobody_at_all"}}))
        .await;
    assert_eq!(a.next_of("error").await["data"]["code"], "not_found");
}

async fn bad_frames_get_error_events_and_the_socket_survives(s: &TestServer) {
    let alice = s.registered_user("alice").await;
    let bob = s.registered_user("bob").await;
    let conv = s.conversation(&alice, &bob).await;
    let mut a = WsClient::connect(s, &alice).await;
    let cases: Vec<(Message, &str)> = vec![
        (Message::Text("this is not json".into()), "invalid_json"),
        (Message::Text("[1,2,3]".into()), "invalid_json"),
        (
            Message::Text(r#"{"type":"message.explode","data":{}}"#.into()),
            "unknown_type",
        ),
        (
            Message::Text(r#"{"type":"message.send","data":{"content":"x"}}"#.into()),
            "validation_failed",
        ),
        (
            Message::Text(
                r#"{"type":"message.send","data":{"conversation_id":5,"content":"x"}}"#.into(),
            ),
            "validation_failed",
        ),
        (
            Message::Text(
                r#"{"type":"typing.start","data":{"conversation_id":"not-a-uuid"}}"#.into(),
            ),
            "validation_failed",
        ),
        (Message::Binary(vec![1u8, 2, 3].into()), "invalid_json"),
        (
            Message::Text(
                send_frame(&conv, &"x".repeat(70 * 1024), "big")
                    .to_string()
                    .into(),
            ),
            "payload_too_large",
        ),
        (
            Message::Text(send_frame(&conv, "", "empty").to_string().into()),
            "validation_failed",
        ),
        (
            Message::Text(
                send_frame(&uuid::Uuid::now_v7().to_string(), "hi", "ghost")
                    .to_string()
                    .into(),
            ),
            "not_found",
        ),
    ];
    for (frame, code) in cases {
        a.send_raw(frame).await;
        let err = a.next_of("error").await;
        assert_eq!(err["data"]["code"], code, "{err}");
        assert!(err["data"]["message"]
            .as_str()
            .is_some_and(|m| !m.is_empty()));
    }
    a.send(json!({"type": "ping"})).await;
    a.next_of("pong").await;
    a.send(send_frame(&conv, "still here", "ok-1")).await;
    a.next_of("message.sent").await;
    // Flooding: far past 20 frames/s gets rate_limited errors, and the socket stays.
    for _ in 0..80 {
        a.send(json!({"type": "ping"})).await;
    }
    let err = a.next_of("error").await;
    assert_eq!(err["data"]["code"], "rate_limited");
    // The budget refills: pings are answered again (polled at 5/s, within the budget).
    let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
    loop {
        a.send(json!({"type": "ping"})).await;
        if a.next_of_within("pong", Duration::from_millis(200))
            .await
            .is_some()
        {
            break;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "no pong 10 s after a flood"
        );
    }
}

async fn ws_and_rest_sends_share_one_rate_bucket(s: &TestServer) {
    let alice = s.registered_user("alice").await;
    let bob = s.registered_user("bob").await;
    let conv = s.conversation(&alice, &bob).await;
    for i in 0..30 {
        s.send(&alice, &conv, &format!("rest {i}")).await;
    }
    let mut a = WsClient::connect(s, &alice).await;
    a.send(send_frame(&conv, "one more over ws", "rl-1")).await;
    let err = a.next_of("error").await;
    assert_eq!(err["data"]["code"], "rate_limited");
    assert_eq!(err["data"]["temp_id"], "rl-1");
}

#[tokio::test]
async fn shutdown_closes_sockets_with_1012_and_exits_zero() {
    let s = TestServer::start(Backend::Sqlite).await.unwrap();
    let alice = s.registered_user("alice").await;
    let mut a = WsClient::connect(&s, &alice).await;
    let ender = tokio::spawn(async move { a.ended(Duration::from_secs(15)).await });
    let status = s.stop().await.expect("chatd exited");
    assert!(status.success(), "{status:?}");
    assert_eq!(ender.await.unwrap(), Ended::Closed(1012));
}

#[tokio::test]
async fn silent_socket_is_dropped_and_answering_one_is_kept() {
    let s = TestServer::start_with(
        Backend::Sqlite,
        &[("CHAT_WS_PING_SECS", "1"), ("CHAT_WS_IDLE_SECS", "3")],
    )
    .await
    .unwrap();
    let alice = s.registered_user("alice").await;
    let bob = s.registered_user("bob").await;
    // Bob reads (so his client answers pings); Alice does not read at all.
    let mut a = WsClient::connect(&s, &alice).await;
    let mut b = WsClient::connect(&s, &bob).await;
    // Reading lets Bob's client answer the server's pings; Alice's socket sits unread.
    // Bob outlives the 3 s idle limit. Alice starts reading at ~4 s: after the server's
    // idle close (~3 s) and inside its 2 s wait for the closing handshake (reading later
    // would answer the queued pings into a socket the server has dropped, and the reset
    // would discard the close frame still unread).
    b.assert_none("nothing", Duration::from_secs(4)).await;
    assert_eq!(a.ended(Duration::from_secs(5)).await, Ended::Closed(4000));
    b.send(json!({"type": "ping"})).await;
    b.next_of("pong").await;
    s.stop().await;
}

#[tokio::test]
async fn a_slow_consumer_is_closed_with_4008_and_others_keep_receiving() {
    let s = TestServer::start_with(
        Backend::Sqlite,
        &[("CHAT_WS_QUEUE", "8"), ("CHAT_RATELIMIT_RELOAD_SECS", "1")],
    )
    .await
    .unwrap();
    // Lift the send limit for this run (an operator would do the same with chatctl).
    s.set_rate_limit("send_message", "100000/min").await;
    let alice = s.registered_user("alice").await;
    let bob = s.registered_user("bob").await;
    let conv = s.conversation(&alice, &bob).await;
    // Alice connects and then never reads; Bob reads everything as it comes.
    let mut slow = WsClient::connect(&s, &alice).await;
    let mut fast = WsClient::connect(&s, &bob).await;
    let reader = tokio::spawn(async move {
        let mut got = 0usize;
        while fast
            .next_of_within("message.new", Duration::from_secs(5))
            .await
            .is_some()
        {
            got += 1;
        }
        got
    });
    let big = "x".repeat(3900);
    let mut sent = 0usize;
    for _ in 0..3000 {
        s.send(&bob, &conv, &big).await;
        sent += 1;
    }
    // Every message reached the reading socket; the silent one was cut off, not buffered.
    assert_eq!(reader.await.unwrap(), sent);
    assert_eq!(
        slow.ended(Duration::from_secs(30)).await,
        Ended::Closed(4008)
    );
    s.stop().await;
}

/// 150 contacts of one watcher drop their sockets at the same moment: the watcher hears
/// `user.offline` for every one of them, and every `last_seen_at` is recorded (the writes
/// of a storm are batched instead of queueing one per user for the database pool).
async fn a_disconnect_storm_announces_everyone_offline_and_records_last_seen(s: &TestServer) {
    const N: usize = 150;
    let watcher = s.registered_user("watch").await;
    let mut sockets = Vec::with_capacity(N);
    let mut ids = std::collections::HashSet::new();
    for i in 0..N {
        let u = s.registered_user(&format!("st{i}_")).await;
        let conv = s.conversation(&u, &watcher).await;
        // One message, so the conversation is in the watcher's list.
        s.send(&u, &conv, "hi").await;
        ids.insert(u.id.to_string());
        sockets.push(WsClient::connect(s, &u).await);
    }
    let mut w = WsClient::connect(s, &watcher).await;
    let before = chrono::Utc::now() - chrono::Duration::seconds(1);
    // Everyone goes at once.
    futures_util::future::join_all(sockets.into_iter().map(|c| c.close())).await;
    let mut offline = std::collections::HashSet::new();
    while offline.len() < N {
        let e = w
            .next_of_within("user.offline", Duration::from_secs(15))
            .await
            .unwrap_or_else(|| panic!("only {} of {N} user.offline events", offline.len()));
        offline.insert(
            e["data"]["user_id"]
                .as_str()
                .unwrap_or_default()
                .to_string(),
        );
    }
    assert_eq!(offline, ids);
    let list = s.get(&watcher, "/chat/conversations?limit=100").await;
    let mut seen = 0;
    let mut page = list.expect(200).clone();
    loop {
        for c in page["data"].as_array().expect("data") {
            let at = c["other_user"]["last_seen_at"]
                .as_str()
                .expect("last_seen_at");
            let at: chrono::DateTime<chrono::Utc> = at.parse().expect("timestamp");
            assert!(at >= before, "last_seen_at {at} not recorded at disconnect");
            assert_eq!(c["other_user"]["online"], false);
            seen += 1;
        }
        match page["next_cursor"].as_str() {
            Some(cur) if page["has_more"] == true => {
                page = s
                    .get(
                        &watcher,
                        &format!("/chat/conversations?limit=100&before={cur}"),
                    )
                    .await
                    .expect(200)
                    .clone();
            }
            _ => break,
        }
    }
    assert_eq!(seen, N);
    w.close().await;
}
