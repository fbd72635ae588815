//! End to end: gap-free resume (`/chat/ws?since=SEQ`) against the real binary, on SQLite,
//! PostgreSQL, and two instances on PostgreSQL + Redis.
//!
//! What is checked: a resumed socket gets exactly the logged events after `since`
//! (messages both ways, read acks and read updates), oldest first, then `sync.complete`,
//! then live events; while senders keep going and the receiver keeps dropping and
//! resuming, no position is ever skipped and none at or below `since` is sent again.

use std::collections::{BTreeSet, HashMap, HashSet};
use std::time::{Duration, Instant};

use chat_e2e::server::{TestServer, TestUser};
use chat_e2e::ws::WsClient;
use serde_json::{json, Value};

chat_e2e::on_every_deployment!(
    resume_replays_what_was_missed_in_order_then_goes_live,
    senders_never_wait_and_a_flapping_receiver_misses_nothing,
);

fn seq(ev: &Value) -> u64 {
    ev["seq"]
        .as_u64()
        .unwrap_or_else(|| panic!("frame without seq: {ev}"))
}

async fn resume_replays_what_was_missed_in_order_then_goes_live(servers: &[&TestServer]) {
    let s = servers[0];
    let other = servers[servers.len() - 1];
    let alice = s.registered_user("alice").await;
    let bob = s.registered_user("bob").await;
    let conv = s.conversation(&alice, &bob).await;

    // A new client: nothing replayed, its starting position.
    let mut ws = WsClient::connect(s, &bob).await;
    let (_, sync) = ws.until_sync().await;
    assert_eq!(
        (
            sync["data"]["seq"].as_u64(),
            sync["data"]["replayed"].as_u64()
        ),
        (Some(0), Some(0))
    );
    let mine = s.send(&bob, &conv, "from bob").await;
    let live = ws.next_of("message.new").await;
    assert_eq!(
        (seq(&live), &live["data"]["message"]["id"]),
        (1, &mine["id"])
    );
    ws.close().await;

    // While bob is away: three messages to him, and alice reads his.
    let mut sent = Vec::new();
    for i in 0..3 {
        sent.push(other.send(&alice, &conv, &format!("missed {i}")).await["id"].clone());
    }
    other
        .post(
            &alice,
            &format!("/chat/conversations/{conv}/read"),
            &json!({}),
        )
        .await
        .expect(200);

    let mut ws = WsClient::connect_since(s, &bob, 1).await;
    let (replayed, sync) = ws.until_sync().await;
    let kinds: Vec<(&str, u64)> = replayed
        .iter()
        .map(|e| (e["type"].as_str().unwrap_or(""), seq(e)))
        .collect();
    assert_eq!(
        kinds,
        [
            ("message.new", 2),
            ("message.new", 3),
            ("message.new", 4),
            ("message.read_update", 5)
        ],
        "replay: {replayed:?}"
    );
    for (e, id) in replayed.iter().zip(&sent) {
        assert_eq!(&e["data"]["message"]["id"], id);
    }
    assert_eq!(replayed[3]["data"]["reader_id"], alice.id.to_string());
    assert_eq!(replayed[3]["data"]["up_to_message_id"], mine["id"]);
    assert_eq!(sync["data"]["seq"], 5);
    assert_eq!(sync["data"]["replayed"], 4);
    // Live again, numbered on.
    let next = other.send(&alice, &conv, "live").await;
    let live = ws.next_of("message.new").await;
    assert_eq!(
        (seq(&live), &live["data"]["message"]["id"]),
        (6, &next["id"])
    );
    ws.next_of("status.bulk").await; // presence still follows the replay
    ws.close().await;

    // Caught up: nothing to replay. A position from the future is refused, politely.
    let mut ws = WsClient::connect_since(s, &bob, 6).await;
    let (replayed, sync) = ws.until_sync().await;
    assert!(replayed.is_empty(), "{replayed:?}");
    assert_eq!(
        (
            sync["data"]["seq"].as_u64(),
            sync["data"]["replayed"].as_u64()
        ),
        (Some(6), Some(0))
    );
    ws.close().await;
    let mut ws = WsClient::connect_since(s, &bob, 99).await;
    let (before, sync) = ws.until_sync().await;
    assert_eq!(before.len(), 1, "{before:?}");
    assert_eq!(before[0]["type"], "error");
    assert_eq!(before[0]["data"]["code"], "validation_failed");
    assert_eq!(sync["data"]["seq"], 6);
    ws.close().await;

    // The sender's own ack carries its position too (its tracker would stall otherwise).
    let mut ws = WsClient::connect_since(s, &alice, 0).await;
    let (replayed, sync) = ws.until_sync().await;
    let head = sync["data"]["seq"].as_u64().expect("seq");
    assert_eq!(
        replayed.len() as u64,
        head,
        "alice: 5 messages + 1 read ack"
    );
    ws.send(json!({"type": "message.send", "data": {"conversation_id": conv, "content": "ws", "temp_id": "t-1"}}))
        .await;
    let ack = ws.next_of("message.sent").await;
    assert_eq!(seq(&ack), head + 1);
    ws.close().await;

    // A malformed position is a 400 before any upgrade.
    let refused = WsClient::connect_query(s, &format!("{}&since=soon", bob.token)).await;
    assert_eq!(refused.err(), Some(400));
}

/// Friends each send a burst to bob, who drops his socket every few frames and resumes
/// from the last position he has without a hole (on the other instance, when there are
/// two). Every message reaches him; no frame at or below `since` is ever sent again.
async fn senders_never_wait_and_a_flapping_receiver_misses_nothing(servers: &[&TestServer]) {
    const FRIENDS: usize = 6;
    const EACH: usize = 25; // under the 30/min send limit per user
    let s = servers[0];
    let bob = s.registered_user("bob").await;
    let mut friends: Vec<(TestUser, String)> = Vec::new();
    for i in 0..FRIENDS {
        let f = s.registered_user(&format!("f{i}_")).await;
        let conv = s.conversation(&f, &bob).await;
        friends.push((f, conv));
    }
    let mut ws = WsClient::connect(s, &bob).await;
    let (_, sync) = ws.until_sync().await;
    let mut tracker = chat_protocol::ws::SeqTracker::default();
    observe(&mut tracker, &sync);
    ws.close().await;

    let urls: Vec<String> = servers.iter().map(|s| s.base.clone()).collect();
    let mut senders = Vec::new();
    for (i, (f, conv)) in friends.into_iter().enumerate() {
        let base = urls[i % urls.len()].clone();
        senders.push(tokio::spawn(async move {
            let http = reqwest::Client::new();
            let mut ids = Vec::new();
            for n in 0..EACH {
                let r = http
                    .post(format!("{base}/chat/conversations/{conv}/messages"))
                    .bearer_auth(&f.token)
                    .json(&json!({"content": format!("{} #{n}", f.username)}))
                    .send()
                    .await
                    .expect("send");
                assert_eq!(r.status(), 201, "send {n} of {}", f.username);
                let m: Value = r.json().await.expect("json");
                ids.push(m["id"].as_str().expect("id").to_string());
                tokio::time::sleep(Duration::from_millis(7 * (i as u64 + 1))).await;
            }
            ids
        }));
    }

    let total = (FRIENDS * EACH) as u64;
    let mut received: HashMap<u64, String> = HashMap::new();
    let mut repeats_dropped = 0usize;
    let mut sockets = 0usize;
    let deadline = Instant::now() + Duration::from_secs(60);
    while tracker.position() < Some(total) {
        assert!(
            Instant::now() < deadline,
            "stuck at {:?} of {total}",
            tracker.position()
        );
        let since = tracker.position().expect("position");
        let server = servers[sockets % servers.len()];
        sockets += 1;
        let mut ws = WsClient::connect_since(server, &bob, since).await;
        let (replayed, sync) = ws.until_sync().await;
        // The replay: exactly the positions after `since` up to the head, in order.
        let head = sync["data"]["seq"].as_u64().expect("seq");
        let order: Vec<u64> = replayed
            .iter()
            .filter(|e| e["type"] == "message.new")
            .map(seq)
            .collect();
        assert_eq!(
            order,
            (since + 1..=head).collect::<Vec<_>>(),
            "socket {sockets}"
        );
        let mut this_socket = BTreeSet::new();
        let mut take = |ev: &Value, tracker: &mut chat_protocol::ws::SeqTracker| {
            let n = seq(ev);
            assert!(
                n > since,
                "position {n} at or below since={since} sent again"
            );
            assert!(this_socket.insert(n), "position {n} twice on one socket");
            if tracker.seen(n) {
                // Seen live beyond a hole before the drop: the client drops it by seq.
                repeats_dropped += 1;
            } else {
                let id = ev["data"]["message"]["id"]
                    .as_str()
                    .expect("id")
                    .to_string();
                assert!(received.insert(n, id).is_none());
            }
            observe(tracker, ev);
        };
        for ev in &replayed {
            take(ev, &mut tracker);
        }
        observe(&mut tracker, &sync);
        // A few live frames, then drop the socket mid-stream.
        let keep = 1 + sockets % 5;
        for _ in 0..keep {
            match ws
                .next_of_within("message.new", Duration::from_millis(400))
                .await
            {
                Some(ev) => {
                    assert!(
                        seq(&ev) > head,
                        "live frame {} was replayed already",
                        seq(&ev)
                    );
                    take(&ev, &mut tracker);
                }
                None => break,
            }
        }
        ws.close().await;
    }
    let mut sent = HashSet::new();
    for t in senders {
        sent.extend(t.await.expect("sender"));
    }
    let got: HashSet<String> = received.values().cloned().collect();
    assert_eq!(received.len() as u64, total, "one delivery per position");
    assert_eq!(got, sent, "every message reached bob exactly once");
    eprintln!("{sockets} sockets; {repeats_dropped} repeats beyond a hole dropped by seq");
}

fn observe(tracker: &mut chat_protocol::ws::SeqTracker, ev: &Value) {
    let env: chat_protocol::ws::Envelope =
        serde_json::from_value(ev.clone()).expect("frame decodes as an envelope");
    tracker.observe(&env);
}
