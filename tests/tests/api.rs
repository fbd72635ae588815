//! End to end: the real `chatd` binary over HTTP, every REST endpoint and its bad-input
//! answers, on SQLite and on PostgreSQL (same test bodies).

use chat_e2e::server::TestServer;
use reqwest::Method;
use serde_json::json;

use chat_e2e::on_both_backends;

on_both_backends!(
    health_and_readiness_answer,
    unknown_routes_and_methods_get_json_errors,
    conversation_is_created_once_and_listed_with_details,
    get_or_create_refuses_self_unknown_and_blocked,
    send_and_read_history_with_cursors,
    send_rejects_bad_content,
    send_rejects_malformed_bodies,
    temp_id_makes_send_idempotent,
    non_participants_get_404_everywhere,
    bad_ids_cursors_and_limits_are_400,
    mark_read_all_or_up_to_updates_unread_counts,
    message_by_id_and_context_window,
    links_archive_lists_urls_from_text,
    media_and_files_galleries_are_empty_for_text,
    blocks_stop_sending_both_ways_and_hide_conversation,
    block_endpoints_validate_input,
    thirty_first_send_in_a_minute_is_refused,
);

fn msgs(conv: &str) -> String {
    format!("/chat/conversations/{conv}/messages")
}

async fn health_and_readiness_answer(s: &TestServer) {
    let r = s.request(Method::GET, None, "/healthz", None).await;
    r.expect(200);
    let r = s.request(Method::GET, None, "/readyz", None).await;
    assert_eq!(r.expect(200)["database"], "ok");
    assert!(
        r.headers.contains_key("x-request-id"),
        "request id is echoed"
    );
    let metrics = s
        .http
        .get(s.url("/metrics"))
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert!(metrics.contains("chat_http_requests_total"), "{metrics}");
}

async fn unknown_routes_and_methods_get_json_errors(s: &TestServer) {
    let u = s.user("u");
    s.get(&u, "/chat/nope").await.expect_error(404, "not_found");
    s.request(Method::PUT, Some(&u.token), "/chat/conversations", None)
        .await
        .expect_error(405, "method_not_allowed");
    s.request(Method::GET, None, "/no/such/thing", None)
        .await
        .expect_error(404, "not_found");
}

async fn conversation_is_created_once_and_listed_with_details(s: &TestServer) {
    let alice = s.registered_user("alice").await;
    let bob = s.registered_user("bob").await;
    let r = s
        .get(
            &alice,
            &format!("/chat/conversations/with/{}", bob.username),
        )
        .await;
    let created = r.expect(201).clone();
    assert_eq!(created["other_user"]["username"], bob.username.as_str());
    assert_eq!(created["other_user"]["id"], bob.id.to_string());
    assert_eq!(created["unread_count"], 0);
    assert!(created["last_message"].is_null());
    // Case-insensitive, and the same conversation from either side.
    let again = s
        .get(
            &bob,
            &format!("/chat/conversations/with/{}", alice.username.to_uppercase()),
        )
        .await;
    assert_eq!(again.expect(200)["id"], created["id"]);
    let conv = created["id"].as_str().unwrap();
    let sent = s.send(&alice, conv, "first!").await;
    let list = s.get(&bob, "/chat/conversations").await;
    let list = list.expect(200);
    assert_eq!(list["has_more"], false);
    assert!(list["next_cursor"].is_null());
    let item = &list["data"][0];
    assert_eq!(item["id"], created["id"]);
    assert_eq!(item["other_user"]["username"], alice.username.as_str());
    assert_eq!(item["other_user"]["online"], false);
    assert!(item["other_user"]["last_seen_at"].is_string());
    assert_eq!(item["last_message"]["id"], sent["id"]);
    assert_eq!(item["unread_count"], 1);
    // Newest activity first, with a working cursor.
    let carol = s.registered_user("carol").await;
    let c2 = s.conversation(&carol, &bob).await;
    s.send(&carol, &c2, "later").await;
    let page1 = s.get(&bob, "/chat/conversations?limit=1").await;
    let page1 = page1.expect(200);
    assert_eq!(page1["data"][0]["id"], c2.as_str());
    assert_eq!(page1["has_more"], true);
    let cursor = page1["next_cursor"].as_str().unwrap();
    let page2 = s
        .get(
            &bob,
            &format!("/chat/conversations?limit=1&before={cursor}"),
        )
        .await;
    assert_eq!(page2.expect(200)["data"][0]["id"], created["id"]);
    let unread = s.get(&bob, "/chat/conversations/unread-count").await;
    let unread = unread.expect(200);
    assert_eq!(unread["total"], 2);
    assert_eq!(unread["conversations"].as_array().unwrap().len(), 2);
}

async fn get_or_create_refuses_self_unknown_and_blocked(s: &TestServer) {
    let alice = s.registered_user("alice").await;
    let bob = s.registered_user("bob").await;
    s.get(
        &alice,
        &format!("/chat/conversations/with/{}", alice.username),
    )
    .await
    .expect_error(400, "self_action");
    s.get(&alice, "/chat/conversations/with/nobody_here")
        .await
        .expect_error(404, "not_found");
    s.get(&alice, "/chat/conversations/with/bad%20name%21")
        .await
        .expect_error(404, "not_found");
    s.post(&bob, "/chat/blocks", &json!({"username": alice.username}))
        .await
        .expect(201);
    s.get(
        &alice,
        &format!("/chat/conversations/with/{}", bob.username),
    )
    .await
    .expect_error(403, "blocked");
    s.get(
        &bob,
        &format!("/chat/conversations/with/{}", alice.username),
    )
    .await
    .expect_error(403, "blocked");
}

async fn send_and_read_history_with_cursors(s: &TestServer) {
    let alice = s.registered_user("alice").await;
    let bob = s.registered_user("bob").await;
    let conv = s.conversation(&alice, &bob).await;
    let mut ids = Vec::new();
    for i in 0..7 {
        let from = if i % 2 == 0 { &alice } else { &bob };
        let m = s.send(from, &conv, &format!("message {i}")).await;
        assert_eq!(m["type"], "text");
        assert_eq!(m["conversation_id"], conv.as_str());
        assert_eq!(m["sender_id"], from.id.to_string());
        assert_eq!(m["is_read"], false);
        assert!(m["media"].as_array().unwrap().is_empty());
        assert!(
            m["created_at"].as_str().unwrap().ends_with('Z'),
            "RFC 3339 UTC"
        );
        ids.push(m["id"].as_str().unwrap().to_string());
    }
    // Newest first, 3 at a time, until the end.
    let mut seen = Vec::new();
    let mut path = format!("{}?limit=3", msgs(&conv));
    loop {
        let r = s.get(&bob, &path).await;
        let page = r.expect(200);
        for m in page["data"].as_array().unwrap() {
            seen.push(m["id"].as_str().unwrap().to_string());
        }
        match page["next_cursor"].as_str() {
            Some(c) => path = format!("{}?limit=3&before={c}", msgs(&conv)),
            None => {
                assert_eq!(page["has_more"], false);
                break;
            }
        }
    }
    let mut expected = ids.clone();
    expected.reverse();
    assert_eq!(seen, expected);
    // `after` reads forward, oldest first: take the cursor of message 2 from a page.
    let r = s.get(&bob, &format!("{}?limit=5", msgs(&conv))).await;
    let cursor = r.expect(200)["next_cursor"].as_str().unwrap().to_string(); // points at message 2
    let fwd = s
        .get(&bob, &format!("{}?after={cursor}&limit=2", msgs(&conv)))
        .await;
    let fwd = fwd.expect(200);
    let fwd_ids: Vec<&str> = fwd["data"]
        .as_array()
        .unwrap()
        .iter()
        .map(|m| m["id"].as_str().unwrap())
        .collect();
    assert_eq!(fwd_ids, vec![ids[3].as_str(), ids[4].as_str()]);
    assert_eq!(fwd["has_more"], true);
}

async fn send_rejects_bad_content(s: &TestServer) {
    let alice = s.registered_user("alice").await;
    let bob = s.registered_user("bob").await;
    let conv = s.conversation(&alice, &bob).await;
    for content in [
        json!(""),
        json!("   \n\t "),
        json!("a".repeat(4001)),
        json!("bell\u{7}"),
        json!("nul\u{0}byte"),
        json!("esc\u{1b}[2J"),
    ] {
        s.post(&alice, &msgs(&conv), &json!({ "content": content }))
            .await
            .expect_error(400, "validation_failed");
    }
    // Exactly at the limit (after trimming) is fine, multi-byte characters count once.
    let ok = format!("  {}  ", "é".repeat(4000));
    let m = s
        .post(&alice, &msgs(&conv), &json!({ "content": ok }))
        .await;
    assert_eq!(
        m.expect(201)["content"].as_str().unwrap().chars().count(),
        4000
    );
    // HTML is stored as sent, unescaped.
    let html = "<b>bold</b> & <script>x</script>";
    let m = s.send(&alice, &conv, html).await;
    assert_eq!(m["content"], html);
    // Nothing invalid was stored.
    let list = s.get(&alice, &msgs(&conv)).await;
    assert_eq!(list.expect(200)["data"].as_array().unwrap().len(), 2);
    let bad_temp = s
        .post(
            &alice,
            &msgs(&conv),
            &json!({"content": "x", "temp_id": ""}),
        )
        .await;
    bad_temp.expect_error(400, "validation_failed");
}

async fn send_rejects_malformed_bodies(s: &TestServer) {
    let alice = s.registered_user("alice").await;
    let bob = s.registered_user("bob").await;
    let conv = s.conversation(&alice, &bob).await;
    let url = s.url(&msgs(&conv));
    let send_raw = |ct: &'static str, body: Vec<u8>| {
        s.http
            .post(&url)
            .bearer_auth(&alice.token)
            .header("content-type", ct)
            .body(body)
            .send()
    };
    let r = TestServer::reply(
        send_raw("application/json", b"{\"content\": ".to_vec())
            .await
            .unwrap(),
    )
    .await;
    r.expect_error(400, "invalid_json");
    let r = TestServer::reply(
        send_raw("application/json", b"{\"content\": 42}".to_vec())
            .await
            .unwrap(),
    )
    .await;
    r.expect_error(400, "invalid_json");
    let r = TestServer::reply(send_raw("application/json", b"{}".to_vec()).await.unwrap()).await;
    r.expect_error(400, "invalid_json");
    let r = TestServer::reply(
        send_raw("application/json", b"[1,2]".to_vec())
            .await
            .unwrap(),
    )
    .await;
    r.expect_error(400, "invalid_json");
    let r = TestServer::reply(
        send_raw("application/json", vec![0xff, 0xfe, 0x00])
            .await
            .unwrap(),
    )
    .await;
    r.expect_error(400, "invalid_json");
    let r = TestServer::reply(send_raw("text/plain", b"hello".to_vec()).await.unwrap()).await;
    r.expect_error(415, "unsupported_media_type");
    let r = TestServer::reply(
        send_raw("multipart/form-data; boundary=x", b"--x--".to_vec())
            .await
            .unwrap(),
    )
    .await;
    // A multipart body without any file.
    r.expect_error(400, "validation_failed");
    let r = TestServer::reply(
        send_raw(
            "multipart/form-data; boundary=x",
            b"garbage without parts".to_vec(),
        )
        .await
        .unwrap(),
    )
    .await;
    r.expect_error(400, "validation_failed");
    let huge = format!("{{\"content\": \"{}\"}}", "a".repeat(200_000));
    let r = TestServer::reply(
        send_raw("application/json", huge.into_bytes())
            .await
            .unwrap(),
    )
    .await;
    r.expect_error(413, "payload_too_large");
    let list = s.get(&alice, &msgs(&conv)).await;
    assert!(
        list.expect(200)["data"].as_array().unwrap().is_empty(),
        "nothing stored"
    );
}

async fn temp_id_makes_send_idempotent(s: &TestServer) {
    let alice = s.registered_user("alice").await;
    let bob = s.registered_user("bob").await;
    let conv = s.conversation(&alice, &bob).await;
    let body = json!({"content": "only once", "temp_id": "client-42"});
    let first = s.post(&alice, &msgs(&conv), &body).await;
    let first = first.expect(201).clone();
    assert_eq!(first["temp_id"], "client-42");
    let second = s.post(&alice, &msgs(&conv), &body).await;
    assert_eq!(second.expect(200)["id"], first["id"]);
    let list = s.get(&bob, &msgs(&conv)).await;
    assert_eq!(list.expect(200)["data"].as_array().unwrap().len(), 1);
    let unread = s.get(&bob, "/chat/conversations/unread-count").await;
    assert_eq!(unread.expect(200)["total"], 1);
    // Reusing the temp_id in another conversation is a conflict, not a silent mix-up.
    let carol = s.registered_user("carol").await;
    let conv2 = s.conversation(&alice, &carol).await;
    s.post(&alice, &msgs(&conv2), &body)
        .await
        .expect_error(409, "conflict");
}

async fn non_participants_get_404_everywhere(s: &TestServer) {
    let alice = s.registered_user("alice").await;
    let bob = s.registered_user("bob").await;
    let eve = s.registered_user("eve").await;
    let conv = s.conversation(&alice, &bob).await;
    let m = s.send(&alice, &conv, "private").await;
    let mid = m["id"].as_str().unwrap();
    for path in [
        msgs(&conv),
        format!("/chat/conversations/{conv}/media"),
        format!("/chat/conversations/{conv}/links"),
        format!("/chat/conversations/{conv}/files"),
        format!("/chat/messages/{mid}"),
        format!("/chat/messages/{mid}/context"),
    ] {
        s.get(&eve, &path).await.expect_error(404, "not_found");
    }
    s.post(&eve, &msgs(&conv), &json!({"content": "hi"}))
        .await
        .expect_error(404, "not_found");
    s.post(
        &eve,
        &format!("/chat/conversations/{conv}/read"),
        &json!({}),
    )
    .await
    .expect_error(404, "not_found");
    // Same answer as for ids that do not exist at all.
    let ghost = uuid::Uuid::now_v7();
    s.get(&eve, &msgs(&ghost.to_string()))
        .await
        .expect_error(404, "not_found");
    s.get(&eve, &format!("/chat/messages/{ghost}"))
        .await
        .expect_error(404, "not_found");
    // Bob cannot mark read up to a message from another conversation.
    let other = s.conversation(&alice, &eve).await;
    let foreign = s.send(&eve, &other, "x").await;
    s.post(
        &bob,
        &format!("/chat/conversations/{conv}/read"),
        &json!({"up_to_message_id": foreign["id"]}),
    )
    .await
    .expect_error(404, "not_found");
    // Nothing changed for the participants.
    let list = s.get(&bob, &msgs(&conv)).await;
    assert_eq!(list.expect(200)["data"][0]["is_read"], false);
}

async fn bad_ids_cursors_and_limits_are_400(s: &TestServer) {
    let alice = s.registered_user("alice").await;
    let bob = s.registered_user("bob").await;
    let conv = s.conversation(&alice, &bob).await;
    s.get(&alice, "/chat/conversations/not-a-uuid/messages")
        .await
        .expect_error(400, "invalid_id");
    s.get(&alice, "/chat/messages/123")
        .await
        .expect_error(400, "invalid_id");
    for q in ["before=zzz", "after=%25%25", "before=djE6MTox"] {
        s.get(&alice, &format!("{}?{q}", msgs(&conv)))
            .await
            .expect_error(400, "invalid_cursor");
    }
    for q in ["limit=0", "limit=101", "limit=-5", "limit=ten"] {
        s.get(&alice, &format!("{}?{q}", msgs(&conv)))
            .await
            .expect_error(400, "invalid_limit");
    }
    s.get(&alice, "/chat/conversations?limit=1000")
        .await
        .expect_error(400, "invalid_limit");
    s.get(&alice, "/chat/conversations?before=garbage")
        .await
        .expect_error(400, "invalid_cursor");
    s.get(&alice, "/chat/blocks?limit=0")
        .await
        .expect_error(400, "invalid_limit");
    let m = s.send(&alice, &conv, "x").await;
    s.get(
        &alice,
        &format!(
            "/chat/messages/{}/context?before=51",
            m["id"].as_str().unwrap()
        ),
    )
    .await
    .expect_error(400, "invalid_limit");
    s.get(&alice, &format!("{}?limit=100", msgs(&conv)))
        .await
        .expect(200);
}

async fn mark_read_all_or_up_to_updates_unread_counts(s: &TestServer) {
    let alice = s.registered_user("alice").await;
    let bob = s.registered_user("bob").await;
    let conv = s.conversation(&alice, &bob).await;
    let mut sent = Vec::new();
    for i in 0..4 {
        sent.push(s.send(&alice, &conv, &format!("m{i}")).await);
    }
    let read = format!("/chat/conversations/{conv}/read");
    let r = s
        .post(&bob, &read, &json!({"up_to_message_id": sent[1]["id"]}))
        .await;
    let r = r.expect(200);
    assert_eq!(r["marked"], 2);
    assert_eq!(r["unread_count"], 2);
    assert_eq!(r["up_to_message_id"], sent[1]["id"]);
    let unread = s.get(&bob, "/chat/conversations/unread-count").await;
    assert_eq!(unread.expect(200)["total"], 2);
    let one = s
        .get(
            &bob,
            &format!("/chat/messages/{}", sent[0]["id"].as_str().unwrap()),
        )
        .await;
    let one = one.expect(200);
    assert_eq!(one["is_read"], true);
    assert!(one["read_at"].is_string());
    // Empty body: everything.
    let r = s.request(Method::POST, Some(&bob.token), &read, None).await;
    assert_eq!(r.expect(200)["unread_count"], 0);
    let unread = s.get(&bob, "/chat/conversations/unread-count").await;
    let unread = unread.expect(200);
    assert_eq!(unread["total"], 0);
    assert!(unread["conversations"].as_array().unwrap().is_empty());
    // Bad bodies.
    s.post(&bob, &read, &json!({"up_to_message_id": "nope"}))
        .await
        .expect_error(400, "invalid_json");
    s.post(
        &bob,
        &read,
        &json!({"up_to_message_id": uuid::Uuid::now_v7()}),
    )
    .await
    .expect_error(404, "not_found");
}

async fn message_by_id_and_context_window(s: &TestServer) {
    let alice = s.registered_user("alice").await;
    let bob = s.registered_user("bob").await;
    let conv = s.conversation(&alice, &bob).await;
    let mut ids = Vec::new();
    for i in 0..9 {
        ids.push(
            s.send(&alice, &conv, &format!("m{i}")).await["id"]
                .as_str()
                .unwrap()
                .to_string(),
        );
    }
    let one = s.get(&bob, &format!("/chat/messages/{}", ids[4])).await;
    assert_eq!(one.expect(200)["content"], "m4");
    let ctx = s
        .get(
            &bob,
            &format!("/chat/messages/{}/context?before=2&after=3", ids[4]),
        )
        .await;
    let ctx = ctx.expect(200);
    let got: Vec<&str> = ctx["data"]
        .as_array()
        .unwrap()
        .iter()
        .map(|m| m["id"].as_str().unwrap())
        .collect();
    assert_eq!(
        got,
        ids[2..8].iter().map(String::as_str).collect::<Vec<_>>()
    );
    assert_eq!(ctx["target_id"], ids[4].as_str());
    assert_eq!(ctx["has_more_before"], true);
    assert_eq!(ctx["has_more_after"], true);
    // The cursors continue the window through the history endpoint.
    let before = ctx["before_cursor"].as_str().unwrap();
    let older = s
        .get(&bob, &format!("{}?before={before}", msgs(&conv)))
        .await;
    let older: Vec<String> = older.expect(200)["data"]
        .as_array()
        .unwrap()
        .iter()
        .map(|m| m["id"].as_str().unwrap().to_string())
        .collect();
    assert_eq!(older, vec![ids[1].clone(), ids[0].clone()]);
    let edge = s
        .get(
            &bob,
            &format!("/chat/messages/{}/context?before=5&after=0", ids[1]),
        )
        .await;
    let edge = edge.expect(200);
    assert_eq!(edge["data"].as_array().unwrap().len(), 2);
    assert_eq!(edge["has_more_before"], false);
}

async fn links_archive_lists_urls_from_text(s: &TestServer) {
    let alice = s.registered_user("alice").await;
    let bob = s.registered_user("bob").await;
    let conv = s.conversation(&alice, &bob).await;
    let m1 = s
        .send(
            &alice,
            &conv,
            "docs at https://docs.rs/axum and https://tokio.rs.",
        )
        .await;
    s.send(&bob, &conv, "no links here, just bob@example.com")
        .await;
    let m3 = s
        .send(&bob, &conv, "(see http://example.org/a?b=c#d)")
        .await;
    let r = s
        .get(&alice, &format!("/chat/conversations/{conv}/links?limit=2"))
        .await;
    let page = r.expect(200);
    let data = page["data"].as_array().unwrap();
    assert_eq!(data.len(), 2);
    assert_eq!(data[0]["url"], "http://example.org/a?b=c#d");
    assert_eq!(data[0]["message_id"], m3["id"]);
    assert_eq!(data[0]["sender_id"], bob.id.to_string());
    let cursor = page["next_cursor"].as_str().unwrap();
    let r = s
        .get(
            &alice,
            &format!("/chat/conversations/{conv}/links?before={cursor}"),
        )
        .await;
    let rest = r.expect(200);
    let rest = rest["data"].as_array().unwrap();
    assert_eq!(rest.len(), 1);
    assert_eq!(rest[0]["message_id"], m1["id"]);
    let mut urls: Vec<&str> = data
        .iter()
        .chain(rest)
        .map(|l| l["url"].as_str().unwrap())
        .collect();
    urls.sort();
    assert_eq!(
        urls,
        vec![
            "http://example.org/a?b=c#d",
            "https://docs.rs/axum",
            "https://tokio.rs"
        ]
    );
}

async fn media_and_files_galleries_are_empty_for_text(s: &TestServer) {
    let alice = s.registered_user("alice").await;
    let bob = s.registered_user("bob").await;
    let conv = s.conversation(&alice, &bob).await;
    s.send(&alice, &conv, "just text").await;
    for kind in ["media", "files"] {
        let r = s
            .get(&bob, &format!("/chat/conversations/{conv}/{kind}"))
            .await;
        let page = r.expect(200);
        assert!(page["data"].as_array().unwrap().is_empty());
        assert_eq!(page["has_more"], false);
    }
}

async fn blocks_stop_sending_both_ways_and_hide_conversation(s: &TestServer) {
    let alice = s.registered_user("alice").await;
    let bob = s.registered_user("bob").await;
    let conv = s.conversation(&alice, &bob).await;
    s.send(&alice, &conv, "before the block").await;
    s.send(&bob, &conv, "reply").await;
    let r = s
        .post(&alice, "/chat/blocks", &json!({"username": bob.username}))
        .await;
    let r = r.expect(201);
    assert_eq!(r["blocked"], true);
    s.post(&alice, "/chat/blocks", &json!({"username": bob.username}))
        .await
        .expect(200);
    s.post(&bob, &msgs(&conv), &json!({"content": "hello?"}))
        .await
        .expect_error(403, "blocked");
    s.post(&alice, &msgs(&conv), &json!({"content": "hello?"}))
        .await
        .expect_error(403, "blocked");
    let status = s
        .get(&alice, &format!("/chat/blocks/status/{}", bob.username))
        .await;
    assert_eq!(
        *status.expect(200),
        json!({"blocked_by_me": true, "blocked_me": false})
    );
    let status = s
        .get(&bob, &format!("/chat/blocks/status/{}", alice.username))
        .await;
    assert_eq!(
        *status.expect(200),
        json!({"blocked_by_me": false, "blocked_me": true})
    );
    let list = s.get(&alice, "/chat/conversations").await;
    assert!(
        list.expect(200)["data"].as_array().unwrap().is_empty(),
        "hidden from blocker"
    );
    let list = s.get(&bob, "/chat/conversations").await;
    assert_eq!(
        list.expect(200)["data"].as_array().unwrap().len(),
        1,
        "still visible to the blocked"
    );
    let blocked = s.get(&alice, "/chat/blocks").await;
    let blocked = blocked.expect(200);
    assert_eq!(blocked["data"][0]["username"], bob.username.as_str());
    assert!(blocked["data"][0]["blocked_at"].is_string());
    // History survives and unblocking restores everything.
    let r = s
        .delete(&alice, &format!("/chat/blocks/{}", bob.username))
        .await;
    assert_eq!(r.expect(200)["blocked"], false);
    s.delete(&alice, &format!("/chat/blocks/{}", bob.username))
        .await
        .expect(200);
    let list = s.get(&alice, "/chat/conversations").await;
    assert_eq!(list.expect(200)["data"].as_array().unwrap().len(), 1);
    s.send(&bob, &conv, "back again").await;
    let history = s.get(&alice, &msgs(&conv)).await;
    assert_eq!(history.expect(200)["data"].as_array().unwrap().len(), 3);
}

async fn block_endpoints_validate_input(s: &TestServer) {
    let alice = s.registered_user("alice").await;
    s.post(&alice, "/chat/blocks", &json!({"username": alice.username}))
        .await
        .expect_error(400, "self_action");
    s.post(&alice, "/chat/blocks", &json!({"username": "ghost_user"}))
        .await
        .expect_error(404, "not_found");
    s.post(&alice, "/chat/blocks", &json!({"user": "x"}))
        .await
        .expect_error(400, "invalid_json");
    s.post(&alice, "/chat/blocks", &json!({"username": 7}))
        .await
        .expect_error(400, "invalid_json");
    let r = s
        .http
        .post(s.url("/chat/blocks"))
        .bearer_auth(&alice.token)
        .body("username=bob")
        .send()
        .await
        .unwrap();
    TestServer::reply(r)
        .await
        .expect_error(415, "unsupported_media_type");
    s.delete(&alice, "/chat/blocks/ghost_user")
        .await
        .expect_error(404, "not_found");
    s.get(&alice, "/chat/blocks/status/ghost_user")
        .await
        .expect_error(404, "not_found");
    let empty = s.get(&alice, "/chat/blocks").await;
    assert!(empty.expect(200)["data"].as_array().unwrap().is_empty());
}

async fn thirty_first_send_in_a_minute_is_refused(s: &TestServer) {
    let alice = s.registered_user("alice").await;
    let bob = s.registered_user("bob").await;
    let carol = s.registered_user("carol").await;
    let conv = s.conversation(&alice, &bob).await;
    for i in 0..30 {
        s.send(&alice, &conv, &format!("spam {i}")).await;
    }
    let r = s
        .post(&alice, &msgs(&conv), &json!({"content": "one too many"}))
        .await;
    r.expect_error(429, "rate_limited");
    let retry: u64 = r.headers["retry-after"].to_str().unwrap().parse().unwrap();
    assert!((1..=60).contains(&retry), "Retry-After {retry}");
    // Bob and Carol still send; Alice can still read.
    s.send(&bob, &conv, "not limited").await;
    let conv2 = s.conversation(&carol, &bob).await;
    s.send(&carol, &conv2, "me neither").await;
    s.get(&alice, &msgs(&conv)).await.expect(200);
    let history = s.get(&bob, &format!("{}?limit=100", msgs(&conv))).await;
    assert_eq!(history.expect(200)["data"].as_array().unwrap().len(), 31);
}
