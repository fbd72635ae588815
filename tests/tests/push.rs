//! End to end: push notifications through the webhook provider, received by a real
//! local HTTP server, and the subscription endpoints.

use std::collections::VecDeque;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use axum::body::Bytes;
use axum::extract::State;
use axum::http::{HeaderMap, StatusCode};
use axum::routing::post;
use chat_e2e::server::{Backend, TestServer, TestUser};
use chat_e2e::ws::WsClient;
use hmac::{Hmac, Mac};
use serde_json::{json, Value};
use sha2::Sha256;

const SECRET: &str = "webhook-test-secret";

#[derive(Clone, Default)]
struct Receiver {
    calls: Arc<Mutex<Vec<(HeaderMap, Bytes)>>>,
    /// Statuses to answer with, in order; 200 once empty.
    script: Arc<Mutex<VecDeque<u16>>>,
}

async fn hook(State(r): State<Receiver>, headers: HeaderMap, body: Bytes) -> StatusCode {
    r.calls.lock().unwrap().push((headers, body));
    let code = r.script.lock().unwrap().pop_front().unwrap_or(200);
    StatusCode::from_u16(code).unwrap()
}

/// A webhook receiver on a loopback port; returns it and its URL.
async fn receiver(script: &[u16]) -> (Receiver, String) {
    let r = Receiver::default();
    r.script.lock().unwrap().extend(script.iter().copied());
    let app = axum::Router::new()
        .route("/hook", post(hook))
        .with_state(r.clone());
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("http://{}/hook", listener.local_addr().unwrap());
    tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
    (r, url)
}

async fn wait_calls(r: &Receiver, n: usize, within: Duration) -> Vec<(HeaderMap, Bytes)> {
    let deadline = tokio::time::Instant::now() + within;
    loop {
        let calls = r.calls.lock().unwrap().clone();
        if calls.len() >= n || tokio::time::Instant::now() >= deadline {
            return calls;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// A browser's key pair and auth secret (as pushManager.subscribe makes them), subscribed
/// for `user` at each endpoint.
async fn subscribe_browser(
    s: &TestServer,
    user: &TestUser,
    endpoints: &[&str],
) -> (ece::EcKeyComponents, Vec<u8>) {
    let (browser, auth) = keypair();
    let keys = json!({"p256dh": b64(&browser.pub_as_raw().unwrap()), "auth": b64(&auth)});
    for endpoint in endpoints {
        s.post(
            user,
            "/chat/push/subscriptions",
            &json!({"kind": "webpush", "endpoint": endpoint, "keys": keys}),
        )
        .await
        .expect(201);
    }
    (browser.raw_components().unwrap(), auth.to_vec())
}

fn verify(headers: &HeaderMap, body: &[u8]) {
    let ts = headers["x-chat-timestamp"].to_str().unwrap();
    let mut mac = <Hmac<Sha256> as Mac>::new_from_slice(SECRET.as_bytes()).unwrap();
    mac.update(format!("{ts}.").as_bytes());
    mac.update(body);
    let expected: String = mac
        .finalize()
        .into_bytes()
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect();
    assert_eq!(
        headers["x-chat-signature"].to_str().unwrap(),
        format!("sha256={expected}")
    );
}

async fn server_with_hook(url: &str) -> TestServer {
    TestServer::start_with(
        Backend::Sqlite,
        &[
            ("CHAT_PUSH_WEBHOOK_URL", url),
            ("CHAT_PUSH_WEBHOOK_SECRET", SECRET),
        ],
    )
    .await
    .unwrap()
}

#[tokio::test]
async fn offline_receiver_gets_a_signed_webhook_and_online_one_does_not() {
    let (r, url) = receiver(&[]).await;
    let s = server_with_hook(&url).await;
    let alice = s.registered_user("alice").await;
    let bob = s.registered_user("bob").await;
    let conv = s.conversation(&alice, &bob).await;
    s.post(
        &bob,
        "/chat/push/subscriptions",
        &json!({"kind": "fcm", "token": "device-token-1"}),
    )
    .await
    .expect(201);
    let m = s.send(&alice, &conv, "are you there?").await;
    let calls = wait_calls(&r, 1, Duration::from_secs(5)).await;
    assert_eq!(calls.len(), 1);
    let (headers, body) = &calls[0];
    verify(headers, body);
    let n: Value = serde_json::from_slice(body).unwrap();
    assert_eq!(n["event"], "message.new");
    assert_eq!(n["user_id"], bob.id.to_string());
    assert_eq!(n["sender_username"], alice.username.as_str());
    assert_eq!(n["message_id"], m["id"]);
    assert_eq!(n["preview"], "are you there?");
    assert_eq!(n["subscriptions"][0]["target"], "device-token-1");
    assert_eq!(n["subscriptions"][0]["kind"], "fcm");
    // With a live socket there is no push.
    let _b = WsClient::connect(&s, &bob).await;
    s.send(&alice, &conv, "now you are online").await;
    tokio::time::sleep(Duration::from_millis(500)).await;
    assert_eq!(
        r.calls.lock().unwrap().len(),
        1,
        "no push to an online user"
    );
    s.stop().await;
}

#[tokio::test]
async fn transient_webhook_failures_are_retried() {
    let (r, url) = receiver(&[500, 503]).await;
    let s = server_with_hook(&url).await;
    let alice = s.registered_user("alice").await;
    let bob = s.registered_user("bob").await;
    let conv = s.conversation(&alice, &bob).await;
    s.send(&alice, &conv, "retry me").await;
    let calls = wait_calls(&r, 3, Duration::from_secs(10)).await;
    assert_eq!(calls.len(), 3, "two failures then a success");
    assert_eq!(calls[0].1, calls[2].1, "the same notification each time");
    // A permanent refusal (400) is not retried.
    r.script.lock().unwrap().push_back(400);
    s.send(&alice, &conv, "bad request").await;
    let calls = wait_calls(&r, 5, Duration::from_secs(3)).await;
    assert_eq!(calls.len(), 4);
    s.stop().await;
}

#[tokio::test]
async fn push_subscriptions_are_registered_listed_and_removed() {
    let s = TestServer::start(Backend::Sqlite).await.unwrap();
    let bob = s.registered_user("bob").await;
    let eve = s.registered_user("eve").await;
    let web = json!({"kind": "webpush", "endpoint": "https://push.example.com/abc",
                     "keys": {"p256dh": "BNcRdreALRFXTkOOUHK1EtK2wtaz5Ry4YfYCA_0QTpQtUbVlUls0VJXg7A8u-Ts1XbjhazAkj7I99e8QcYP7DkM", "auth": "tBHItJI5svbpez7KI4CCXg"}});
    let created = s.post(&bob, "/chat/push/subscriptions", &web).await;
    let created = created.expect(201).clone();
    assert_eq!(created["kind"], "webpush");
    // Same endpoint again: the same subscription, not a second one.
    let again = s.post(&bob, "/chat/push/subscriptions", &web).await;
    assert_eq!(again.expect(201)["id"], created["id"]);
    s.post(
        &bob,
        "/chat/push/subscriptions",
        &json!({"kind": "apns", "token": "apns-1"}),
    )
    .await
    .expect(201);
    let list = s.get(&bob, "/chat/push/subscriptions").await;
    assert_eq!(list.expect(200)["data"].as_array().unwrap().len(), 2);
    // Bad input.
    for bad in [
        json!({"kind": "fcm"}),
        json!({"kind": "fcm", "token": ""}),
        json!({"kind": "webpush", "endpoint": "http://insecure.example.com", "keys": {"p256dh": "a", "auth": "b"}}),
        json!({"kind": "webpush", "endpoint": "https://push.example.com/x"}),
    ] {
        s.post(&bob, "/chat/push/subscriptions", &bad)
            .await
            .expect_error(400, "validation_failed");
    }
    s.post(
        &bob,
        "/chat/push/subscriptions",
        &json!({"kind": "carrier-pigeon", "token": "x"}),
    )
    .await
    .expect_error(400, "invalid_json");
    // Someone else cannot remove it; the owner can, once.
    let id = created["id"].as_str().unwrap();
    s.delete(&eve, &format!("/chat/push/subscriptions/{id}"))
        .await
        .expect_error(404, "not_found");
    let r = s
        .delete(&bob, &format!("/chat/push/subscriptions/{id}"))
        .await;
    assert_eq!(r.status.as_u16(), 204);
    s.delete(&bob, &format!("/chat/push/subscriptions/{id}"))
        .await
        .expect_error(404, "not_found");
    let list = s.get(&bob, "/chat/push/subscriptions").await;
    assert_eq!(list.expect(200)["data"].as_array().unwrap().len(), 1);
    s.stop().await;
}

fn b64(bytes: &[u8]) -> String {
    use base64::Engine;
    base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(bytes)
}

/// A P-256 key pair and auth secret whose private scalar is a full 32 bytes. The ece crate
/// hands the scalar over without its leading zero bytes (about 1 key in 128 has one, here or
/// in the browser's pair): a 31-byte VAPID key is refused by chatd, and a 31-byte browser key
/// cannot decrypt. Test keys are drawn again instead.
fn keypair() -> (Box<dyn ece::LocalKeyPair>, [u8; 16]) {
    loop {
        let (pair, auth) = ece::generate_keypair_and_auth_secret().unwrap();
        if pair.raw_components().unwrap().private_key().len() == 32 {
            return (pair, auth);
        }
    }
}

fn unb64(s: &str) -> Vec<u8> {
    use base64::Engine;
    base64::engine::general_purpose::URL_SAFE_NO_PAD
        .decode(s)
        .unwrap()
}

/// chatd on SQLite with Web Push on (a fresh VAPID key), and that key's public point;
/// `allow_private` lets it deliver to the loopback receivers.
async fn web_push_server(allow_private: bool) -> (TestServer, Vec<u8>) {
    let (vapid, _) = keypair();
    let vapid_private = b64(vapid.raw_components().unwrap().private_key());
    let mut env = vec![("CHAT_VAPID_PRIVATE_KEY", vapid_private.as_str())];
    if allow_private {
        env.push(("CHAT_PUSH_ALLOW_PRIVATE", "true"));
    }
    let s = TestServer::start_with(Backend::Sqlite, &env).await.unwrap();
    (s, vapid.pub_as_raw().unwrap())
}

#[tokio::test]
async fn web_push_is_encrypted_for_the_browser_and_vapid_signed() {
    let (r, url) = receiver(&[]).await;
    let (gone_r, gone_url) = receiver(&[410]).await;
    // The receivers are on loopback.
    let (s, vapid_public) = web_push_server(true).await;
    let alice = s.registered_user("alice").await;
    let bob = s.registered_user("bob").await;
    let conv = s.conversation(&alice, &bob).await;
    let public = s.get(&bob, "/chat/push/vapid-public-key").await;
    let public = public.expect(200)["public_key"]
        .as_str()
        .unwrap()
        .to_string();
    assert_eq!(unb64(&public), vapid_public);

    // Bob's browser: its own key pair and auth secret, as pushManager.subscribe makes them.
    let (browser, auth) = subscribe_browser(&s, &bob, &[&url, &gone_url]).await;
    s.send(&alice, &conv, "secret hello").await;
    let calls = wait_calls(&r, 1, Duration::from_secs(5)).await;
    assert_eq!(calls.len(), 1);
    let (headers, body) = &calls[0];
    assert_eq!(headers["content-encoding"], "aes128gcm");
    assert!(headers.contains_key("ttl"));
    // The body decrypts with the browser's private key and auth secret only.
    let plain = ece::decrypt(&browser, &auth, body).unwrap();
    let n: Value = serde_json::from_slice(&plain).unwrap();
    assert_eq!(n["preview"], "secret hello");
    assert_eq!(n["sender_username"], alice.username.as_str());
    // VAPID: `vapid t=<ES256 JWT>, k=<our public key>`, audience = the push service origin.
    let authz = headers["authorization"].to_str().unwrap();
    let (t, k) = authz
        .strip_prefix("vapid t=")
        .and_then(|rest| rest.split_once(", k="))
        .expect("vapid authorization header");
    assert_eq!(k, public);
    let point = unb64(k);
    let key =
        jsonwebtoken::DecodingKey::from_ec_components(&b64(&point[1..33]), &b64(&point[33..65]))
            .unwrap();
    let mut validation = jsonwebtoken::Validation::new(jsonwebtoken::Algorithm::ES256);
    let origin = url.trim_end_matches("/hook").to_string();
    validation.set_audience(&[origin.as_str()]);
    let claims = jsonwebtoken::decode::<Value>(t, &key, &validation).expect("valid VAPID JWT");
    assert_eq!(claims.claims["sub"], "mailto:admin@localhost");
    // The push service said 410 for the other subscription: it is forgotten.
    wait_calls(&gone_r, 1, Duration::from_secs(5)).await;
    let deadline = tokio::time::Instant::now() + Duration::from_secs(5);
    loop {
        let list = s.get(&bob, "/chat/push/subscriptions").await;
        let n = list.expect(200)["data"].as_array().unwrap().len();
        if n == 1 {
            break;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "gone subscription not removed"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    s.stop().await;
}

/// Web Push endpoints are user input: by default chatd never sends to a loopback, private
/// or link-local address (an IP literal or a name resolving to one), so a subscription
/// cannot make the server POST into its own network.
#[tokio::test]
async fn web_push_never_reaches_private_addresses_by_default() {
    let (literal, literal_url) = receiver(&[]).await;
    let (named, named_url) = receiver(&[]).await;
    let (s, _) = web_push_server(false).await;
    let alice = s.registered_user("alice").await;
    let bob = s.registered_user("bob").await;
    let conv = s.conversation(&alice, &bob).await;
    // 127.0.0.1 as a literal, and the same receiver by the name "localhost".
    let by_name = named_url.replace("127.0.0.1", "localhost");
    subscribe_browser(&s, &bob, &[&literal_url, &by_name]).await;
    s.send(&alice, &conv, "must not leave").await;
    // The attempt is over (refused before any request) once the provider counted it.
    s.wait_metric(r#"chat_push_attempts_total{provider="webpush"}"#, |v| {
        v >= 1.0
    })
    .await;
    assert!(wait_calls(&literal, 0, Duration::from_millis(10))
        .await
        .is_empty());
    assert!(wait_calls(&named, 0, Duration::from_millis(10))
        .await
        .is_empty());
    s.stop().await;
}

/// A loopback port that accepts connections and never answers (a hung push service).
async fn black_hole() -> String {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("http://{}", listener.local_addr().unwrap());
    tokio::spawn(async move {
        let mut held = Vec::new();
        while let Ok((sock, _)) = listener.accept().await {
            held.push(sock);
        }
    });
    url
}

/// One user whose push endpoints hang cannot starve anyone else's notifications (issue
/// 16: 3 hanging endpoints and 66 messages took every delivery slot for ~90 s).
#[tokio::test]
async fn a_receiver_whose_endpoints_hang_cannot_starve_anyone_elses_push() {
    let (r, url) = receiver(&[]).await;
    let hole = black_hole().await;
    let (s, _) = web_push_server(true).await;
    let victim = s.registered_user("victim").await;
    let hog = s.registered_user("hog").await;
    let holes: Vec<String> = (0..3).map(|i| format!("{hole}/sub{i}")).collect();
    let holes: Vec<&str> = holes.iter().map(String::as_str).collect();
    subscribe_browser(&s, &hog, &holes).await;
    subscribe_browser(&s, &victim, &[&url]).await;
    // 66 messages to the hog from three senders (each within the send limit).
    let mut senders = Vec::new();
    for i in 0..3 {
        let sender = s.registered_user(&format!("spam{i}")).await;
        let conv = s.conversation(&sender, &hog).await;
        senders.push((sender, conv));
    }
    for round in 0..22 {
        for (sender, conv) in &senders {
            s.send(sender, conv, &format!("flood {round}")).await;
        }
    }
    // Then five messages to someone else: every one is pushed, promptly.
    let friend = s.registered_user("friend").await;
    let conv = s.conversation(&friend, &victim).await;
    for i in 0..5 {
        s.send(&friend, &conv, &format!("for you {i}")).await;
    }
    let calls = wait_calls(&r, 5, Duration::from_secs(5)).await;
    assert_eq!(calls.len(), 5, "the other receiver's pushes were starved");
    s.stop().await;
}

/// At most 10 subscriptions per user (the oldest makes room), registration is rate
/// limited (`push_subscribe`, 10/hour), and the list stays small.
#[tokio::test]
async fn push_subscriptions_are_capped_and_their_registration_limited() {
    let s = TestServer::start_with(Backend::Sqlite, &[("CHAT_RATELIMIT_RELOAD_SECS", "1")])
        .await
        .unwrap();
    let bob = s.registered_user("bob").await;
    let add = |i: usize| json!({"kind": "fcm", "token": format!("device-{i}")});
    for i in 0..10 {
        s.post(&bob, "/chat/push/subscriptions", &add(i))
            .await
            .expect(201);
    }
    s.post(&bob, "/chat/push/subscriptions", &add(10))
        .await
        .expect_error(429, "rate_limited");
    // With the limit lifted, two more replace the two oldest.
    s.set_rate_limit("push_subscribe", "100/min").await;
    for i in 10..12 {
        s.post(&bob, "/chat/push/subscriptions", &add(i))
            .await
            .expect(201);
    }
    let list = s.get(&bob, "/chat/push/subscriptions").await;
    let targets: Vec<String> = list.expect(200)["data"]
        .as_array()
        .unwrap()
        .iter()
        .map(|s| s["target"].as_str().unwrap().to_string())
        .collect();
    assert_eq!(targets.len(), 10, "{targets:?}");
    assert!(!targets.contains(&"device-0".to_string()), "{targets:?}");
    assert!(!targets.contains(&"device-1".to_string()), "{targets:?}");
    assert!(targets.contains(&"device-11".to_string()), "{targets:?}");
    s.stop().await;
}
