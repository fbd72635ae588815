//! End to end: the message lifecycle (SPEC "Message lifecycle") against the real binary on
//! SQLite, PostgreSQL, and two instances on PostgreSQL + Redis (each user on its own
//! instance there): edits, deletes, reactions, replies and search, their events live and
//! replayed, and every refusal in the SPEC's error format.

use std::time::Duration;

use chat_e2e::files;
use chat_e2e::server::{Backend, TestServer, TestUser};
use chat_e2e::ws::WsClient;
use reqwest::Method;
use serde_json::{json, Value};

chat_e2e::on_every_deployment!(
    an_edit_reaches_both_sides_and_replies_and_links_follow_it,
    edits_are_refused_with_the_spec_errors,
    deletes_for_me_and_for_everyone,
    reactions_are_one_emoji_and_at_most_twenty_kinds,
    websocket_frames_edit_delete_and_react,
    a_resume_replays_lifecycle_events_in_order,
    search_finds_only_what_the_caller_may_see,
);

async fn patch(s: &TestServer, u: &TestUser, id: &str, body: Value) -> chat_e2e::server::Reply {
    let path = format!("/chat/messages/{id}");
    s.request(Method::PATCH, Some(&u.token), &path, Some(&body))
        .await
}

async fn reply(s: &TestServer, from: &TestUser, conv: &str, content: &str, to: &Value) -> Value {
    s.post(
        from,
        &format!("/chat/conversations/{conv}/messages"),
        &json!({ "content": content, "reply_to_id": to }),
    )
    .await
    .expect(201)
    .clone()
}

fn id(v: &Value) -> String {
    v["id"].as_str().expect("an id").to_string()
}

/// The status of fetching a media URL (relative ones from this server).
async fn fetch(s: &TestServer, url: &str) -> u16 {
    let full = if url.starts_with('/') {
        s.url(url)
    } else {
        url.to_string()
    };
    s.http
        .get(full)
        .send()
        .await
        .expect("fetch media")
        .status()
        .as_u16()
}

fn react_path(id: &str, emoji: &str) -> String {
    let segment: String = emoji.bytes().map(|b| format!("%{b:02X}")).collect();
    format!("/chat/messages/{id}/reactions/{segment}")
}

async fn an_edit_reaches_both_sides_and_replies_and_links_follow_it(servers: &[&TestServer]) {
    let (s, other) = (servers[0], servers[servers.len() - 1]);
    let alice = s.registered_user("alice").await;
    let bob = s.registered_user("bob").await;
    let conv = s.conversation(&alice, &bob).await;
    let original = s.send(&alice, &conv, "see https://old.example").await;
    let answer = reply(other, &bob, &conv, "thanks", &original["id"]).await;
    assert_eq!(answer["reply_to"]["id"], original["id"]);
    assert_eq!(answer["reply_to"]["preview"], "see https://old.example");
    assert_eq!(answer["reply_to"]["sender_id"], alice.id.to_string());
    // A media message answers too (multipart `reply_to_id`); a bad id there is refused.
    let photo = other
        .upload(
            &bob,
            &conv,
            vec![("p.png", "image/png", files::png(4, 4))],
            &[("reply_to_id", original["id"].as_str().unwrap())],
        )
        .await;
    assert_eq!(photo.expect(201)["reply_to"]["id"], original["id"]);
    other
        .upload(
            &bob,
            &conv,
            vec![("p.png", "image/png", files::png(4, 4))],
            &[("reply_to_id", "nope")],
        )
        .await
        .expect_error(400, "invalid_id");
    let mut bob_ws = WsClient::connect(other, &bob).await;
    bob_ws.until_sync().await;

    let edited = patch(
        s,
        &alice,
        &id(&original),
        json!({"content": "see https://new.example"}),
    )
    .await
    .expect(200)
    .clone();
    assert_eq!(edited["content"], "see https://new.example");
    assert!(edited["edited_at"].is_string());
    assert_eq!(edited["created_at"], original["created_at"]);
    let ev = bob_ws.next_of("message.edited").await;
    assert_eq!(ev["data"]["message"]["content"], "see https://new.example");
    assert!(ev["seq"].as_u64().is_some(), "logged: {ev}");
    // The reply quotes the original as it is now; the links archive follows the text.
    let r = other
        .get(&bob, &format!("/chat/messages/{}", id(&answer)))
        .await;
    assert_eq!(
        r.expect(200)["reply_to"]["preview"],
        "see https://new.example"
    );
    let links = other
        .get(&bob, &format!("/chat/conversations/{conv}/links"))
        .await;
    let urls: Vec<&Value> = links.expect(200)["data"]
        .as_array()
        .unwrap()
        .iter()
        .map(|l| &l["url"])
        .collect();
    assert_eq!(urls, [&json!("https://new.example")]);
    // Unread counts never move on an edit: alice's message is still bob's one unread.
    let unread = other.get(&bob, "/chat/conversations/unread-count").await;
    assert_eq!(unread.expect(200)["total"], 1);
    // A media message's caption is its text: edited the same way, the media stay.
    let captioned = s
        .upload(
            &alice,
            &conv,
            vec![("p.png", "image/png", files::png(4, 4))],
            &[("content", "a caption")],
        )
        .await
        .expect(201)
        .clone();
    let recaptioned = patch(
        s,
        &alice,
        &id(&captioned),
        json!({"content": "a new caption"}),
    )
    .await
    .expect(200)
    .clone();
    assert_eq!(recaptioned["content"], "a new caption");
    assert_eq!(recaptioned["type"], "image");
    assert_eq!(recaptioned["media"].as_array().map(Vec::len), Some(1));
}

async fn edits_are_refused_with_the_spec_errors(servers: &[&TestServer]) {
    let s = servers[0];
    let alice = s.registered_user("alice").await;
    let bob = s.registered_user("bob").await;
    let carol = s.registered_user("carol").await;
    let conv = s.conversation(&alice, &bob).await;
    let m = s.send(&alice, &conv, "mine").await;
    let mid = id(&m);
    patch(s, &bob, &mid, json!({"content": "his"}))
        .await
        .expect_error(403, "forbidden");
    patch(s, &carol, &mid, json!({"content": "x"}))
        .await
        .expect_error(404, "not_found");
    patch(
        s,
        &alice,
        &uuid::Uuid::new_v4().to_string(),
        json!({"content": "x"}),
    )
    .await
    .expect_error(404, "not_found");
    patch(s, &alice, "not-an-id", json!({"content": "x"}))
        .await
        .expect_error(400, "invalid_id");
    patch(s, &alice, &mid, json!({"content": "   "}))
        .await
        .expect_error(400, "validation_failed");
    patch(s, &alice, &mid, json!({"content": "x".repeat(4001)}))
        .await
        .expect_error(400, "validation_failed");
    patch(s, &alice, &mid, json!({"content": 7}))
        .await
        .expect_error(400, "invalid_json");
    let raw = s
        .http
        .patch(s.url(&format!("/chat/messages/{mid}")))
        .bearer_auth(&alice.token)
        .header("content-type", "application/json")
        .body("{not json")
        .send()
        .await
        .unwrap();
    TestServer::reply(raw)
        .await
        .expect_error(400, "invalid_json");
    s.request(
        Method::PATCH,
        None,
        &format!("/chat/messages/{mid}"),
        Some(&json!({"content": "x"})),
    )
    .await
    .expect_error(401, "unauthorized");
    // A block either way refuses edits (and reactions).
    s.post(&bob, "/chat/blocks", &json!({"username": alice.username}))
        .await
        .expect(201);
    patch(s, &alice, &mid, json!({"content": "x"}))
        .await
        .expect_error(403, "blocked");
    s.request(
        Method::PUT,
        Some(&alice.token),
        &react_path(&mid, "👍"),
        None,
    )
    .await
    .expect_error(403, "blocked");
    s.delete(&bob, &format!("/chat/blocks/{}", alice.username))
        .await
        .expect(200);
    // Nothing stored was changed by any of it.
    let now = s.get(&alice, &format!("/chat/messages/{mid}")).await;
    assert_eq!(now.expect(200)["content"], "mine");
    assert!(now.body["edited_at"].is_null());
}

async fn deletes_for_me_and_for_everyone(servers: &[&TestServer]) {
    let (s, other) = (servers[0], servers[servers.len() - 1]);
    let alice = s.registered_user("alice").await;
    let bob = s.registered_user("bob").await;
    let conv = s.conversation(&alice, &bob).await;
    let keep = s.send(&alice, &conv, "keep").await;
    let gone = s.send(&alice, &conv, "gone https://gone.example").await;
    let photo = s
        .upload(
            &alice,
            &conv,
            vec![("p.png", "image/png", files::png(400, 100))],
            &[],
        )
        .await
        .expect(201)
        .clone();
    let photo_url = photo["media"][0]["url"].as_str().unwrap().to_string();
    let thumb_url = photo["media"][0]["thumbnail_url"]
        .as_str()
        .expect("a 400x100 image has a thumbnail")
        .to_string();
    let total = |r: &chat_e2e::server::Reply| r.body["total"].as_u64();
    let r = other.get(&bob, "/chat/conversations/unread-count").await;
    r.expect(200);
    assert_eq!(total(&r), Some(3));
    let mut bob_ws = WsClient::connect(other, &bob).await;
    bob_ws.until_sync().await;
    let mut alice_ws = WsClient::connect(s, &alice).await;
    alice_ws.until_sync().await;

    // Only the sender deletes for everyone; a bad scope is a bad query.
    let path = |m: &Value, scope: &str| format!("/chat/messages/{}?scope={scope}", id(m));
    other
        .delete(&bob, &path(&gone, "everyone"))
        .await
        .expect_error(403, "forbidden");
    s.delete(&alice, &path(&gone, "nobody"))
        .await
        .expect_error(400, "invalid_query");
    let answer = reply(other, &bob, &conv, "about that", &gone["id"]).await;
    let r = s.delete(&alice, &path(&gone, "everyone")).await;
    assert_eq!(r.expect(200)["scope"], "everyone");
    // A reply to it says the original was deleted, and quotes nothing of it.
    let r = other
        .get(&bob, &format!("/chat/messages/{}", id(&answer)))
        .await;
    let quoted = &r.expect(200)["reply_to"];
    assert_eq!(quoted["id"], gone["id"]);
    assert_eq!(quoted["deleted"], true, "{quoted}");
    assert!(
        !quoted["preview"].as_str().unwrap_or("").contains("gone"),
        "{quoted}"
    );
    let ev = bob_ws.next_of("message.deleted").await;
    assert_eq!(ev["data"]["message_id"], gone["id"]);
    assert_eq!(ev["data"]["scope"], "everyone");
    s.delete(&alice, &path(&gone, "everyone")).await.expect(200);
    let t = other
        .get(&bob, &format!("/chat/messages/{}", id(&gone)))
        .await;
    assert!(t.expect(200)["deleted_at"].is_string());
    assert!(t.body["content"].is_null());
    let r = other.get(&bob, "/chat/conversations/unread-count").await;
    assert_eq!(
        total(&r),
        Some(2),
        "a deleted unread message no longer counts"
    );
    let links = other
        .get(&bob, &format!("/chat/conversations/{conv}/links"))
        .await;
    assert!(links.expect(200)["data"].as_array().unwrap().is_empty());

    // The photo: its objects are removed from storage.
    assert_eq!(fetch(s, &photo_url).await, 200);
    assert_eq!(fetch(s, &thumb_url).await, 200);
    s.delete(&alice, &path(&photo, "everyone"))
        .await
        .expect(200);
    assert_eq!(
        bob_ws.next_of("message.deleted").await["data"]["message_id"],
        photo["id"]
    );
    let media = other
        .get(&bob, &format!("/chat/conversations/{conv}/media"))
        .await;
    assert!(media.expect(200)["data"].as_array().unwrap().is_empty());
    assert_eq!(
        fetch(s, &photo_url).await,
        404,
        "the deleted image is gone from storage"
    );
    assert_eq!(fetch(s, &thumb_url).await, 404, "and its thumbnail");

    // For me: bob no longer sees it anywhere; alice still does, and hears nothing.
    let r = other
        .delete(&bob, &format!("/chat/messages/{}", id(&keep)))
        .await;
    assert_eq!(r.expect(200)["scope"], "me");
    assert_eq!(
        bob_ws.next_of("message.deleted").await["data"]["scope"],
        "me"
    );
    alice_ws.next_of("message.deleted").await; // gone, for everyone
    alice_ws.next_of("message.deleted").await; // photo, for everyone
    alice_ws
        .assert_none("message.deleted", Duration::from_millis(300))
        .await;
    other
        .get(&bob, &format!("/chat/messages/{}", id(&keep)))
        .await
        .expect_error(404, "not_found");
    s.get(&alice, &format!("/chat/messages/{}", id(&keep)))
        .await
        .expect(200);
    let history = other
        .get(&bob, &format!("/chat/conversations/{conv}/messages"))
        .await;
    let ids: Vec<&Value> = history.expect(200)["data"]
        .as_array()
        .unwrap()
        .iter()
        .map(|m| &m["id"])
        .collect();
    assert!(!ids.contains(&&keep["id"]), "{ids:?}");
    // Someone else's message id is a 404, like any message they are not part of.
    let carol = s.registered_user("carol").await;
    s.delete(&carol, &path(&keep, "me"))
        .await
        .expect_error(404, "not_found");
}

async fn reactions_are_one_emoji_and_at_most_twenty_kinds(servers: &[&TestServer]) {
    let (s, other) = (servers[0], servers[servers.len() - 1]);
    let alice = s.registered_user("alice").await;
    let bob = s.registered_user("bob").await;
    let conv = s.conversation(&alice, &bob).await;
    let m = s.send(&alice, &conv, "react to me").await;
    let mid = id(&m);
    let mut alice_ws = WsClient::connect(s, &alice).await;
    alice_ws.until_sync().await;
    let put = |u: &TestUser, e: &str| {
        let (token, path) = (u.token.clone(), react_path(&mid, e));
        async move { other.request(Method::PUT, Some(&token), &path, None).await }
    };
    let r = put(&bob, "👍").await;
    assert_eq!(
        r.expect(200)["reactions"],
        json!([{"emoji": "👍", "user_ids": [bob.id.to_string()]}])
    );
    let ev = alice_ws.next_of("reaction.updated").await;
    assert_eq!(
        (ev["data"]["emoji"].as_str(), ev["data"]["added"].as_bool()),
        (Some("👍"), Some(true))
    );
    // Twice is once; `❤` and `❤️` are one reaction.
    put(&bob, "👍").await.expect(200);
    put(&bob, "\u{2764}").await.expect(200);
    let r = put(&bob, "❤️").await;
    assert_eq!(r.expect(200)["reactions"].as_array().unwrap().len(), 2);
    for bad in ["a", "👍👍", ":)", " ", "\u{200d}", "<b>"] {
        put(&bob, bad).await.expect_error(400, "validation_failed");
    }
    let r = other
        .request(
            Method::DELETE,
            Some(&bob.token),
            &react_path(&mid, "👍"),
            None,
        )
        .await;
    assert_eq!(r.expect(200)["reactions"].as_array().unwrap().len(), 1);
    // 20 kinds at most.
    let kinds = emojis_list(19);
    for e in &kinds {
        put(&alice, e).await.expect(200);
    }
    put(&alice, "🦀").await.expect_error(409, "conflict");
    put(&alice, "❤️").await.expect(200);
    // A tombstone takes none.
    s.delete(&alice, &format!("/chat/messages/{mid}?scope=everyone"))
        .await
        .expect(200);
    put(&bob, "👍").await.expect_error(409, "conflict");
}

/// `n` distinct emoji none of the tests above use.
fn emojis_list(n: usize) -> Vec<String> {
    [
        "😀", "😃", "😄", "😁", "😆", "😅", "🤣", "😂", "🙂", "🙃", "😉", "😊", "😇", "🥰", "😍",
        "🤩", "😘", "😗", "😚", "😙",
    ]
    .iter()
    .take(n)
    .map(|s| s.to_string())
    .collect()
}

async fn websocket_frames_edit_delete_and_react(servers: &[&TestServer]) {
    let (s, other) = (servers[0], servers[servers.len() - 1]);
    let alice = s.registered_user("alice").await;
    let bob = s.registered_user("bob").await;
    let conv = s.conversation(&alice, &bob).await;
    let m = s.send(&alice, &conv, "v1").await;
    let mut alice_ws = WsClient::connect(s, &alice).await;
    alice_ws.until_sync().await;
    let mut bob_ws = WsClient::connect(other, &bob).await;
    bob_ws.until_sync().await;
    alice_ws
        .send(json!({"type": "message.edit", "data": {"message_id": m["id"], "content": "v2"}}))
        .await;
    // The asking socket hears the change like every other.
    assert_eq!(
        alice_ws.next_of("message.edited").await["data"]["message"]["content"],
        "v2"
    );
    assert_eq!(
        bob_ws.next_of("message.edited").await["data"]["message"]["content"],
        "v2"
    );
    bob_ws
        .send(json!({"type": "reaction.set", "data": {"message_id": m["id"], "emoji": "🎉", "add": true}}))
        .await;
    assert_eq!(
        alice_ws.next_of("reaction.updated").await["data"]["emoji"],
        "🎉"
    );
    bob_ws
        .send(json!({"type": "reaction.set", "data": {"message_id": m["id"], "emoji": "nope", "add": true}}))
        .await;
    assert_eq!(
        bob_ws.next_of("error").await["data"]["code"],
        "validation_failed"
    );
    bob_ws
        .send(
            json!({"type": "message.edit", "data": {"message_id": m["id"], "content": "mine now"}}),
        )
        .await;
    assert_eq!(bob_ws.next_of("error").await["data"]["code"], "forbidden");
    alice_ws
        .send(
            json!({"type": "message.delete", "data": {"message_id": m["id"], "scope": "everyone"}}),
        )
        .await;
    assert_eq!(
        bob_ws.next_of("message.deleted").await["data"]["scope"],
        "everyone"
    );
    // The socket stays open after every refusal.
    bob_ws.send(json!({"type": "ping", "data": {}})).await;
    bob_ws.next_of("pong").await;
}

async fn a_resume_replays_lifecycle_events_in_order(servers: &[&TestServer]) {
    let (s, other) = (servers[0], servers[servers.len() - 1]);
    let alice = s.registered_user("alice").await;
    let bob = s.registered_user("bob").await;
    let conv = s.conversation(&alice, &bob).await;
    let m = s.send(&alice, &conv, "first").await;
    let mine = s.send(&alice, &conv, "hidden later").await;
    let mut ws = WsClient::connect(other, &bob).await;
    let (_, sync) = ws.until_sync().await;
    let since = sync["data"]["seq"].as_u64().unwrap();
    ws.close().await;
    // While bob is away.
    patch(s, &alice, &id(&m), json!({"content": "second"}))
        .await
        .expect(200);
    s.request(
        Method::PUT,
        Some(&alice.token),
        &react_path(&id(&m), "🔥"),
        None,
    )
    .await
    .expect(200);
    s.delete(&alice, &format!("/chat/messages/{}?scope=everyone", id(&m)))
        .await
        .expect(200);
    // And bob, from another device, hides one for himself only.
    other
        .delete(&bob, &format!("/chat/messages/{}?scope=me", id(&mine)))
        .await
        .expect(200);
    let mut ws = WsClient::connect_since(other, &bob, since).await;
    let (replayed, sync) = ws.until_sync().await;
    let kinds: Vec<&str> = replayed
        .iter()
        .map(|e| e["type"].as_str().unwrap())
        .collect();
    assert_eq!(
        kinds,
        [
            "message.edited",
            "reaction.updated",
            "message.deleted",
            "message.deleted"
        ],
        "{replayed:?}"
    );
    assert_eq!(replayed[2]["data"]["scope"], "everyone");
    assert_eq!(replayed[3]["data"]["scope"], "me");
    assert_eq!(replayed[3]["data"]["message_id"], mine["id"]);
    let seqs: Vec<u64> = replayed
        .iter()
        .map(|e| e["seq"].as_u64().unwrap())
        .collect();
    assert_eq!(seqs, [since + 1, since + 2, since + 3, since + 4]);
    assert_eq!(sync["data"]["seq"].as_u64(), Some(since + 4));
    // The edit replays the message as it is now: deleted.
    assert!(replayed[0]["data"]["message"]["deleted_at"].is_string());
}

async fn search_finds_only_what_the_caller_may_see(servers: &[&TestServer]) {
    let (s, other) = (servers[0], servers[servers.len() - 1]);
    let alice = s.registered_user("alice").await;
    let bob = s.registered_user("bob").await;
    let carol = s.registered_user("carol").await;
    let ab = s.conversation(&alice, &bob).await;
    let bc = s.conversation(&bob, &carol).await;
    let hit = s
        .send(&alice, &ab, "Meet at the Café for crème brûlée")
        .await;
    s.send(&alice, &ab, "nothing to see").await;
    let deleted = s.send(&alice, &ab, "cafe secret").await;
    let hidden = other.send(&bob, &ab, "café hidden from bob").await;
    other.send(&bob, &bc, "cafe with carol").await;
    s.delete(
        &alice,
        &format!("/chat/messages/{}?scope=everyone", id(&deleted)),
    )
    .await
    .expect(200);
    other
        .delete(&bob, &format!("/chat/messages/{}", id(&hidden)))
        .await
        .expect(200);
    let search = |u: &TestUser, q: &str| {
        let token = u.token.clone();
        let path = format!("/chat/search?{}", serde_urlencoded(q));
        async move { other.request(Method::GET, Some(&token), &path, None).await }
    };
    // Case, accents and prefixes; newest first; only bob's conversations; never deleted or hidden.
    let r = search(&bob, "q=CAFE").await;
    let found: Vec<&str> = r.expect(200)["data"]
        .as_array()
        .unwrap()
        .iter()
        .map(|h| h["message"]["content"].as_str().unwrap())
        .collect();
    assert_eq!(
        found,
        ["cafe with carol", "Meet at the Café for crème brûlée"]
    );
    let r = search(&bob, "q=cre bru").await;
    let hits = r.expect(200)["data"].as_array().unwrap().clone();
    assert_eq!(hits.len(), 1);
    assert_eq!(hits[0]["message"]["id"], hit["id"]);
    assert_eq!(hits[0]["snippet"], "Meet at the Café for [crème] [brûlée]");
    // Alice does not see bob's conversation with carol; she still sees what bob hid.
    let r = search(&alice, "q=cafe").await;
    assert_eq!(r.expect(200)["data"].as_array().unwrap().len(), 2);
    // One conversation; paging.
    let r = search(&bob, &format!("q=cafe&conversation_id={ab}")).await;
    assert_eq!(r.expect(200)["data"].as_array().unwrap().len(), 1);
    let r = search(&bob, "q=cafe&limit=1").await;
    let cursor = r.expect(200)["next_cursor"].as_str().unwrap().to_string();
    assert_eq!(r.body["has_more"], true);
    let r = search(&bob, &format!("q=cafe&limit=1&cursor={cursor}")).await;
    assert_eq!(r.expect(200)["data"][0]["message"]["id"], hit["id"]);
    assert_eq!(r.body["has_more"], false);
    // Refusals.
    search(&alice, &format!("q=cafe&conversation_id={bc}"))
        .await
        .expect_error(404, "not_found");
    search(&alice, "q=")
        .await
        .expect_error(400, "validation_failed");
    search(&alice, "q=%21%21%21")
        .await
        .expect_error(400, "validation_failed");
    search(&alice, "")
        .await
        .expect_error(400, "validation_failed");
    search(&alice, "q=x&conversation_id=nope")
        .await
        .expect_error(400, "invalid_id");
    search(&alice, "q=x&cursor=nope")
        .await
        .expect_error(400, "invalid_cursor");
    search(&alice, "q=x&limit=0")
        .await
        .expect_error(400, "invalid_limit");
    // Query syntax of either database is just text.
    let r = search(&alice, "q=%22cafe%22%20OR%20*%20NEAR(x)%3A*%20%26%20%7C").await;
    r.expect(200);
}

/// `a=b c&d=e` with spaces escaped (the test queries hold no other reserved characters).
fn serde_urlencoded(q: &str) -> String {
    q.replace(' ', "%20")
}

/// The edit window ends: edits and deletes for everyone are refused; deletes for me are not.
#[tokio::test]
async fn the_edit_window_closes() {
    for backend in [Backend::Sqlite, Backend::Postgres] {
        let window = [("CHAT_EDIT_WINDOW_SECS", "0")];
        let Some(s) = TestServer::start_with(backend, &window).await else {
            continue;
        };
        edit_window_closed(s).await;
    }
}

async fn edit_window_closed(s: TestServer) {
    let alice = s.registered_user("alice").await;
    let bob = s.registered_user("bob").await;
    let conv = s.conversation(&alice, &bob).await;
    let m = s.send(&alice, &conv, "too late").await;
    let mid = id(&m);
    patch(&s, &alice, &mid, json!({"content": "x"}))
        .await
        .expect_error(403, "forbidden");
    s.delete(&alice, &format!("/chat/messages/{mid}?scope=everyone"))
        .await
        .expect_error(403, "forbidden");
    s.delete(&alice, &format!("/chat/messages/{mid}?scope=me"))
        .await
        .expect(200);
    s.stop().await;
}
