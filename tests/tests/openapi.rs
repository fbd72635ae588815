//! End to end: the real `chatd` serves its OpenAPI 3.1 document at `/openapi.json`
//! without a token, the document lists every route of the SPEC, and a plain request to
//! each documented operation reaches a handler and answers a status the document lists.
//! (The thorough conformance run is `make schemathesis`.)

use chat_e2e::server::{Backend, TestServer};
use reqwest::Method;
use serde_json::Value;

/// The REST routes of SPEC.md, plus the ones outside `/chat` (OpenAPI path syntax).
const SPEC_ROUTES: [(&str, &str); 26] = [
    ("get", "/chat/conversations"),
    ("get", "/chat/conversations/with/{username}"),
    ("get", "/chat/conversations/unread-count"),
    ("get", "/chat/conversations/{id}/messages"),
    ("post", "/chat/conversations/{id}/messages"),
    ("post", "/chat/conversations/{id}/read"),
    ("get", "/chat/messages/{id}"),
    ("get", "/chat/messages/{id}/context"),
    ("patch", "/chat/messages/{id}"),
    ("delete", "/chat/messages/{id}"),
    ("put", "/chat/messages/{id}/reactions/{emoji}"),
    ("delete", "/chat/messages/{id}/reactions/{emoji}"),
    ("get", "/chat/search"),
    ("get", "/chat/conversations/{id}/media"),
    ("get", "/chat/conversations/{id}/links"),
    ("get", "/chat/conversations/{id}/files"),
    ("post", "/chat/blocks"),
    ("delete", "/chat/blocks/{username}"),
    ("get", "/chat/blocks/status/{username}"),
    ("get", "/chat/blocks"),
    ("get", "/chat/ws"),
    ("get", "/healthz"),
    ("get", "/readyz"),
    ("get", "/metrics"),
    ("get", "/openapi.json"),
    ("get", "/media/{key}"),
];

#[tokio::test]
async fn openapi_document_is_served_and_matches_the_server() {
    let s = TestServer::start(Backend::Sqlite)
        .await
        .expect("sqlite server");

    let resp = s
        .http
        .get(s.url("/openapi.json"))
        .send()
        .await
        .expect("GET /openapi.json");
    assert_eq!(resp.status(), 200);
    let ct = resp.headers()["content-type"].to_str().unwrap().to_string();
    assert!(ct.starts_with("application/json"), "content type {ct}");
    let doc: Value = resp.json().await.expect("a JSON document");
    assert_eq!(doc["openapi"], "3.1.0");
    let paths = doc["paths"].as_object().expect("paths");
    for (method, path) in SPEC_ROUTES {
        assert!(
            paths.get(path).and_then(|p| p.get(method)).is_some(),
            "{method} {path} is not documented"
        );
    }

    // Each documented operation, called plainly with a valid token, reaches its handler
    // (not the fallback's 404, not 405) and answers one of its documented statuses.
    let me = s.registered_user("oa").await;
    let other = s.registered_user("ob").await;
    let conv = s.conversation(&me, &other).await;
    let msg = s.send(&me, &conv, "hello").await["id"]
        .as_str()
        .unwrap()
        .to_string();
    for (path, item) in paths {
        for (method, op) in item.as_object().unwrap() {
            let url = path
                .replace("{username}", &other.username)
                .replace("{key}", "0000")
                .replace(
                    "{id}",
                    if path.starts_with("/chat/messages/") {
                        &msg
                    } else {
                        &conv
                    },
                );
            let m = Method::from_bytes(method.to_uppercase().as_bytes()).unwrap();
            let mut req = s.http.request(m, s.url(&url)).bearer_auth(&me.token);
            if method == "post" {
                let body = match path.as_str() {
                    "/chat/blocks" => serde_json::json!({ "username": "nobody-here" }),
                    "/chat/push/subscriptions" => {
                        serde_json::json!({ "kind": "fcm", "token": "t" })
                    }
                    "/chat/conversations/{id}/messages" => serde_json::json!({ "content": "x" }),
                    _ => serde_json::json!({}),
                };
                req = req.json(&body);
            }
            let r = TestServer::reply(req.send().await.expect("request")).await;
            let status = r.status.as_u16();
            assert_ne!(status, 405, "{method} {url}: {}", r.body);
            assert!(
                !(status == 404 && r.body["error"]["message"] == "route not found"),
                "{method} {url} is documented but not routed"
            );
            assert!(
                op["responses"].get(status.to_string()).is_some(),
                "{method} {url} answered {status}, which the document does not list: {}",
                r.body
            );
        }
    }
    s.stop().await;
}
