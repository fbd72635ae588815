//! End to end: media on the remote object stores. S3 against a real local S3 server
//! (moto, started by `make test`); Bunny Storage against a local HTTP server that records
//! the storage API calls.

use std::sync::{Arc, Mutex};

use axum::body::Bytes;
use axum::extract::{Path, State};
use axum::http::{HeaderMap, Method, StatusCode};
use base64::Engine;
use chat_e2e::files;
use chat_e2e::server::{Backend, Reply, TestServer, TestUser};
use sha2::Digest;

async fn upload_png(s: &TestServer, user: &TestUser, conv: &str, n: usize) -> Reply {
    let parts = (0..n)
        .map(|_| ("p.png", "image/png", files::png(400, 100)))
        .collect();
    s.upload(user, conv, parts, &[]).await
}

async fn s3_keys(http: &reqwest::Client, endpoint: &str, bucket: &str) -> Vec<String> {
    let body = http
        .get(format!("{endpoint}/{bucket}?list-type=2"))
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    body.split("<Key>")
        .skip(1)
        .filter_map(|s| s.split("</Key>").next())
        .map(str::to_string)
        .collect()
}

#[tokio::test]
async fn s3_store_puts_objects_and_presigns_urls() {
    let Some(endpoint) = chat_e2e::s3_url() else {
        return;
    };
    let bucket = format!("chat-{}", &uuid::Uuid::new_v4().simple().to_string()[..12]);
    let http = reqwest::Client::new();
    let r = http
        .put(format!("{endpoint}/{bucket}"))
        .send()
        .await
        .unwrap();
    assert!(r.status().is_success(), "create bucket: {}", r.status());
    let store = format!("s3://{bucket}/media");
    let env = [
        ("CHAT_MEDIA_STORE", store.as_str()),
        ("AWS_ACCESS_KEY_ID", "test"),
        ("AWS_SECRET_ACCESS_KEY", "test"),
        ("AWS_DEFAULT_REGION", "us-east-1"),
        ("AWS_ENDPOINT", endpoint.as_str()),
        ("AWS_ALLOW_HTTP", "true"),
    ];
    let s = TestServer::start_with(Backend::Sqlite, &env).await.unwrap();
    let alice = s.registered_user("alice").await;
    let bob = s.registered_user("bob").await;
    let conv = s.conversation(&alice, &bob).await;

    let r = upload_png(&s, &alice, &conv, 1).await;
    let m = r.expect(201).clone();
    let item = &m["media"][0];
    let url = item["url"].as_str().unwrap();
    assert!(
        url.starts_with(&format!("{endpoint}/{bucket}/media/")),
        "{url}"
    );
    assert!(
        url.contains("X-Amz-Signature=") && url.contains("X-Amz-Expires="),
        "{url}"
    );
    let got = http.get(url).send().await.unwrap();
    assert_eq!(got.status(), 200);
    assert_eq!(got.headers()["content-type"], "image/png");
    let img = image::load_from_memory(&got.bytes().await.unwrap()).unwrap();
    assert_eq!((img.width(), img.height()), (400, 100));
    let thumb = http
        .get(item["thumbnail_url"].as_str().unwrap())
        .send()
        .await
        .unwrap();
    let t = image::load_from_memory(&thumb.bytes().await.unwrap()).unwrap();
    assert_eq!((t.width(), t.height()), (320, 80));
    let keys = s3_keys(&http, &endpoint, &bucket).await;
    assert_eq!(keys.len(), 2, "{keys:?}");
    assert!(keys.iter().all(|k| k.starts_with("media/")));

    // A refused upload stores nothing.
    let r = upload_png(&s, &alice, &conv, 11).await;
    assert_eq!(r.status, 400);
    assert_eq!(s3_keys(&http, &endpoint, &bucket).await.len(), 2);

    // chatctl lists the bucket and removes only what no message references.
    let orphan = format!("media/{}.png", "c".repeat(32));
    let r = http
        .put(format!("{endpoint}/{bucket}/{orphan}"))
        .body("orphan")
        .send()
        .await
        .unwrap();
    assert!(r.status().is_success());
    tokio::time::sleep(std::time::Duration::from_millis(1500)).await;
    let dry = purge_orphans(&s, &env, "--dry-run").await;
    assert!(
        dry.starts_with("1 orphaned media objects") && dry.contains("in the s3 store"),
        "{dry}"
    );
    purge_orphans(&s, &env, "--yes").await;
    let keys = s3_keys(&http, &endpoint, &bucket).await;
    assert_eq!(keys.len(), 2, "{keys:?}");
    assert!(!keys.contains(&orphan));

    // Deleted for everyone (issue 19): the image and its thumbnail leave the bucket.
    let path = format!(
        "/chat/messages/{}?scope=everyone",
        m["id"].as_str().unwrap()
    );
    s.delete(&alice, &path).await.expect(200);
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(5);
    loop {
        let keys = s3_keys(&http, &endpoint, &bucket).await;
        if keys.is_empty() {
            break;
        }
        assert!(std::time::Instant::now() < deadline, "left: {keys:?}");
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    }
    s.stop().await;
}

/// `chatctl purge media --orphaned --min-age 1s` on the server's configuration plus `env`.
/// Async, so a test's in-process fake store keeps answering meanwhile.
async fn purge_orphans(s: &TestServer, env: &[(&str, &str)], flag: &str) -> String {
    let out = tokio::process::Command::new(chat_e2e::server::binary("chatctl"))
        .env_clear()
        .envs(env.iter().copied())
        .env("CHAT_DATA_DIR", &s.data_dir)
        .env("CHAT_DATABASE_URL", &s.database_url)
        .args(["purge", "media", "--orphaned", "--min-age", "1s", flag])
        .output()
        .await
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).into_owned()
}

#[derive(Default)]
struct Recorded {
    calls: Vec<(Method, String, Option<String>, usize)>,
    objects: std::collections::HashMap<String, Vec<u8>>,
    fail_thumbnails: bool,
}

type Shared = Arc<Mutex<Recorded>>;

async fn bunny_api(
    State(rec): State<Shared>,
    method: Method,
    Path((zone, key)): Path<(String, String)>,
    headers: HeaderMap,
    body: Bytes,
) -> StatusCode {
    let mut r = rec.lock().unwrap();
    let access = headers
        .get("accesskey")
        .and_then(|v| v.to_str().ok())
        .map(str::to_string);
    r.calls
        .push((method.clone(), format!("{zone}/{key}"), access, body.len()));
    if method == Method::PUT {
        if r.fail_thumbnails && key.contains("_t.") {
            return StatusCode::INTERNAL_SERVER_ERROR;
        }
        r.objects.insert(key, body.to_vec());
        StatusCode::CREATED
    } else {
        r.objects.remove(&key);
        StatusCode::OK
    }
}

/// Bunny's directory listing: JSON objects with `ObjectName`, `Length`, `LastChanged`.
async fn bunny_list(State(rec): State<Shared>) -> axum::Json<serde_json::Value> {
    let r = rec.lock().unwrap();
    let entries: Vec<serde_json::Value> = r
        .objects
        .iter()
        .map(|(k, v)| {
            serde_json::json!({
                "ObjectName": k, "Length": v.len(), "IsDirectory": false,
                "LastChanged": "2026-01-02T03:04:05.678",
            })
        })
        .collect();
    axum::Json(serde_json::Value::Array(entries))
}

#[tokio::test]
async fn bunny_store_uses_the_storage_api_and_token_urls() {
    let rec: Shared = Arc::default();
    let app = axum::Router::new()
        .route(
            "/{zone}/{key}",
            axum::routing::put(bunny_api).delete(bunny_api),
        )
        .route("/{zone}/", axum::routing::get(bunny_list))
        .with_state(rec.clone());
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let api = format!("http://{}", listener.local_addr().unwrap());
    tokio::spawn(async move { axum::serve(listener, app).await });
    let env = [
        ("CHAT_MEDIA_STORE", "bunny://myzone"),
        ("CHAT_BUNNY_STORAGE_ENDPOINT", api.as_str()),
        ("CHAT_BUNNY_ACCESS_KEY", "zone-password"),
        ("CHAT_BUNNY_CDN_URL", "https://cdn.example.test"),
        ("CHAT_BUNNY_TOKEN_KEY", "token-key"),
    ];
    let s = TestServer::start_with(Backend::Sqlite, &env).await.unwrap();
    let alice = s.registered_user("alice").await;
    let bob = s.registered_user("bob").await;
    let conv = s.conversation(&alice, &bob).await;

    let r = upload_png(&s, &alice, &conv, 1).await;
    let m = r.expect(201).clone();
    let url = m["media"][0]["url"].as_str().unwrap().to_string();
    {
        let r = rec.lock().unwrap();
        assert_eq!(r.calls.len(), 2, "{:?}", r.calls);
        for (method, path, access, _) in &r.calls {
            assert_eq!(method, Method::PUT);
            assert!(path.starts_with("myzone/"));
            assert_eq!(access.as_deref(), Some("zone-password"));
        }
        let key = r.calls[0].1.trim_start_matches("myzone/").to_string();
        let stored = image::load_from_memory(&r.objects[&key]).unwrap();
        assert_eq!((stored.width(), stored.height()), (400, 100));
        assert!(url.starts_with(&format!("https://cdn.example.test/{key}?token=")));
    }
    // The token is Bunny's: base64url(sha256(key + path + expires)), no padding.
    let (path, query) = url
        .trim_start_matches("https://cdn.example.test")
        .split_once('?')
        .unwrap();
    let params: std::collections::HashMap<_, _> = query
        .split('&')
        .filter_map(|kv| kv.split_once('='))
        .collect();
    let expected = base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(sha2::Sha256::digest(
        format!("token-key{path}{}", params["expires"]).as_bytes(),
    ));
    assert_eq!(params["token"], expected);

    // The thumbnail cannot be stored: the send fails and the main object is deleted again.
    rec.lock().unwrap().fail_thumbnails = true;
    let r = upload_png(&s, &alice, &conv, 1).await;
    assert_eq!(r.status, 503, "{}", r.body);
    assert_eq!(r.body["error"]["code"], "service_unavailable");
    {
        let r = rec.lock().unwrap();
        let last = r.calls.last().unwrap();
        assert_eq!(last.0, Method::DELETE, "{:?}", r.calls);
        assert_eq!(
            r.objects.len(),
            2,
            "only the first message's objects remain"
        );
    }
    let msgs = s
        .get(&alice, &format!("/chat/conversations/{conv}/messages"))
        .await;
    assert_eq!(msgs.expect(200)["data"].as_array().unwrap().len(), 1);

    // chatctl lists the zone and removes only what no message references.
    let orphan = format!("{}.png", "d".repeat(32));
    rec.lock()
        .unwrap()
        .objects
        .insert(orphan.clone(), b"x".to_vec());
    let dry = purge_orphans(&s, &env, "--dry-run").await;
    assert!(
        dry.starts_with("1 orphaned media objects") && dry.contains(&orphan),
        "{dry}"
    );
    purge_orphans(&s, &env, "--yes").await;
    let objects = rec.lock().unwrap().objects.len();
    assert_eq!(objects, 2, "the message's image and thumbnail stay");

    // Deleted for everyone (issue 19): both objects are deleted from the zone.
    let path = format!(
        "/chat/messages/{}?scope=everyone",
        m["id"].as_str().unwrap()
    );
    s.delete(&alice, &path).await.expect(200);
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(5);
    while !rec.lock().unwrap().objects.is_empty() {
        assert!(
            std::time::Instant::now() < deadline,
            "objects left in the zone"
        );
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    }
    s.stop().await;
}
