//! End to end: `chatctl purge`, `stats` and `doctor` against a running chatd, on both
//! backends — dry runs change nothing, real purges keep the other side's view exact, media
//! objects go with their messages, and a live server keeps serving meanwhile.

use std::path::Path;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;

use chat_e2e::files;
use chat_e2e::server::{binary, Backend, TestServer, TestUser};
use reqwest::Method;
use serde_json::Value;

fn chatctl_cmd(s: &TestServer, args: &[&str]) -> tokio::process::Command {
    let mut cmd = tokio::process::Command::new(binary("chatctl"));
    cmd.env_clear()
        .env("CHAT_DATA_DIR", &s.data_dir)
        .env("CHAT_DATABASE_URL", &s.database_url)
        .env("CHAT_JWT_SECRET", &s.secret)
        .env("CHAT_PUBLIC_URL", &s.base)
        .args(args)
        .stdin(std::process::Stdio::null());
    cmd
}

/// Run chatctl on the server's configuration; (success, stdout, stderr).
async fn chatctl(s: &TestServer, args: &[&str]) -> (bool, String, String) {
    let out = chatctl_cmd(s, args).output().await.expect("run chatctl");
    (
        out.status.success(),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

async fn ok(s: &TestServer, args: &[&str]) -> String {
    let (success, out, err) = chatctl(s, args).await;
    assert!(success, "chatctl {args:?} failed: {err}\n{out}");
    out
}

/// Media objects on local disk (originals and thumbnails).
fn objects(data_dir: &Path) -> usize {
    let Ok(shards) = std::fs::read_dir(data_dir.join("media/objects")) else {
        return 0;
    };
    shards
        .flatten()
        .filter_map(|d| std::fs::read_dir(d.path()).ok())
        .map(|files| files.count())
        .sum()
}

async fn messages(s: &TestServer, u: &TestUser, conv: &str) -> Vec<Value> {
    let r = s
        .get(u, &format!("/chat/conversations/{conv}/messages?limit=100"))
        .await;
    r.expect(200)["data"].as_array().expect("messages").clone()
}

async fn listed(s: &TestServer, u: &TestUser, conv: &str) -> Value {
    let r = s.get(u, "/chat/conversations?limit=100").await;
    r.expect(200)["data"]
        .as_array()
        .expect("conversations")
        .iter()
        .find(|c| c["id"] == conv)
        .cloned()
        .unwrap_or(Value::Null)
}

/// Let tests send as fast as they like (once chatd has the limits in force).
async fn unlimited(s: &TestServer) {
    for action in ["send_message", "get_conversations", "get_messages"] {
        s.set_rate_limit(action, "100000/min").await;
    }
}

#[tokio::test]
async fn retention_purge_dry_run_confirmation_and_media() {
    for backend in [Backend::Sqlite, Backend::Postgres] {
        let Some(s) = TestServer::start(backend).await else {
            continue;
        };
        let alice = s.registered_user("alice").await;
        let bob = s.registered_user("bob").await;
        let conv = s.conversation(&alice, &bob).await;
        let mut old = Vec::new();
        for i in 0..3 {
            old.push(s.send(&alice, &conv, &format!("old {i}")).await);
        }
        // A reaction on an old message: it goes with it (issue 19).
        let path = format!(
            "/chat/messages/{}/reactions/%F0%9F%91%8D",
            old[0]["id"].as_str().unwrap()
        );
        s.request(Method::PUT, Some(&bob.token), &path, None)
            .await
            .expect(200);
        s.upload(
            &alice,
            &conv,
            vec![("p.png", "image/png", files::png(64, 48))],
            &[],
        )
        .await
        .expect(201);
        let stored = objects(&s.data_dir);
        assert_eq!(stored, 2, "an image and its thumbnail");
        tokio::time::sleep(Duration::from_secs(3)).await;
        let fresh = s.send(&alice, &conv, "fresh").await;

        let out = ok(
            &s,
            &["purge", "messages", "--older-than", "2s", "--dry-run"],
        )
        .await;
        assert!(
            out.contains("4 messages and 2 media objects"),
            "dry run names what would go: {out}"
        );
        assert!(out.contains("dry run: nothing deleted"), "{out}");
        assert_eq!(messages(&s, &bob, &conv).await.len(), 5);

        // No terminal to confirm on and no --yes: refused, nothing gone.
        let (success, _, err) = chatctl(&s, &["purge", "messages", "--older-than", "2s"]).await;
        assert!(!success && err.contains("--yes"), "{err}");
        assert_eq!(messages(&s, &bob, &conv).await.len(), 5);

        let out = ok(&s, &["purge", "messages", "--older-than", "2s", "--yes"]).await;
        assert!(out.contains("deleted 4 messages, 2 media objects"), "{out}");
        let left = messages(&s, &bob, &conv).await;
        assert_eq!(left.len(), 1);
        assert_eq!(left[0]["id"], fresh["id"]);
        assert_eq!(
            objects(&s.data_dir),
            0,
            "media objects went with their messages"
        );
        let c = listed(&s, &bob, &conv).await;
        assert_eq!(c["unread_count"], 1, "unread recounted: {c}");
        assert_eq!(c["last_message"]["id"], fresh["id"]);
        // Nor are they found by search, and their reactions are gone (issue 19).
        let found = s.get(&bob, "/chat/search?q=old").await;
        assert_eq!(
            found.expect(200)["data"],
            serde_json::json!([]),
            "{}",
            found.body
        );
        let found = s.get(&bob, "/chat/search?q=fresh").await;
        assert_eq!(found.expect(200)["data"].as_array().map(Vec::len), Some(1));
        let stats: Value = serde_json::from_str(&ok(&s, &["stats", "--json"]).await).unwrap();
        assert_eq!(stats["reactions"], 0, "{stats}");

        // Bad input: one line, non-zero, nothing panics.
        for args in [
            vec!["purge", "messages", "--older-than", "soon", "--yes"],
            vec!["purge", "conversation", "not-a-uuid", "--yes"],
            vec![
                "purge",
                "conversation",
                "00000000-0000-0000-0000-000000000000",
                "--yes",
            ],
            vec!["purge", "user", "nobody-at-all", "--yes"],
        ] {
            let (success, _, err) = chatctl(&s, &args).await;
            assert!(!success, "{args:?} succeeded");
            assert_eq!(err.trim().lines().count(), 1, "{args:?}: {err}");
            assert!(
                err.starts_with("chatctl: ") && !err.contains("panicked"),
                "{err}"
            );
        }
        s.stop().await;
    }
}

#[tokio::test]
async fn erasing_a_user_while_chatd_serves_traffic() {
    for backend in [Backend::Sqlite, Backend::Postgres] {
        let Some(s) = TestServer::start_with(backend, &[("CHAT_RATELIMIT_RELOAD_SECS", "1")]).await
        else {
            continue;
        };
        unlimited(&s).await;
        let s = Arc::new(s);
        let alice = s.registered_user("alice").await;
        let bob = s.registered_user("bob").await;
        let carol = s.registered_user("carol").await;
        let ab = s.conversation(&alice, &bob).await;
        let bc = s.conversation(&bob, &carol).await;
        for i in 0..120 {
            s.send(&alice, &ab, &format!("a{i}")).await;
        }
        s.upload(
            &alice,
            &ab,
            vec![("p.png", "image/png", files::png(32, 32))],
            &[],
        )
        .await
        .expect(201);
        let mut last_from_bob = Value::Null;
        for i in 0..3 {
            last_from_bob = s.send(&bob, &ab, &format!("b{i}")).await;
        }
        s.post(
            &alice,
            "/chat/blocks",
            &serde_json::json!({"username": carol.username}),
        )
        .await
        .expect(201);

        // Traffic between bob and carol for as long as the purge runs.
        let stop = Arc::new(AtomicBool::new(false));
        let sent = Arc::new(AtomicU64::new(0));
        let failures = Arc::new(AtomicU64::new(0));
        let traffic = {
            let (s, stop, sent, failures) =
                (s.clone(), stop.clone(), sent.clone(), failures.clone());
            let (bob, bc) = (bob.clone(), bc.clone());
            tokio::spawn(async move {
                while !stop.load(Ordering::Relaxed) {
                    let r = s
                        .post(
                            &bob,
                            &format!("/chat/conversations/{bc}/messages"),
                            &serde_json::json!({"content": "live"}),
                        )
                        .await;
                    let listed = s.get(&bob, "/chat/conversations").await;
                    if r.status.as_u16() == 201 && listed.status.is_success() {
                        sent.fetch_add(1, Ordering::Relaxed);
                    } else {
                        failures.fetch_add(1, Ordering::Relaxed);
                    }
                }
            })
        };
        tokio::time::sleep(Duration::from_millis(200)).await;
        let username = alice.username.clone();
        let out = ok(
            &s,
            &["purge", "user", &username, "--yes", "--batch-size", "25"],
        )
        .await;
        stop.store(true, Ordering::Relaxed);
        traffic.await.unwrap();
        assert!(
            out.contains("deleted 121 messages, 2 media objects"),
            "{out}"
        );
        assert!(out.contains("1 blocks"), "{out}");
        assert_eq!(failures.load(Ordering::Relaxed), 0, "chatd kept serving");
        let live = sent.load(Ordering::Relaxed);
        assert!(live > 0);

        // Bob's side stays whole and exact.
        let left = messages(&s, &bob, &ab).await;
        assert_eq!(left.len(), 3, "only bob's own messages stay");
        let c = listed(&s, &bob, &ab).await;
        assert_eq!(
            c["unread_count"], 0,
            "alice's unread messages are gone: {c}"
        );
        assert_eq!(c["last_message"]["id"], last_from_bob["id"]);
        let other = c["other_user"]["username"].as_str().unwrap_or_default();
        assert!(other.starts_with("deleted-"), "{c}");
        // Nothing the live traffic sent was lost.
        let bc_view = listed(&s, &carol, &bc).await;
        assert_eq!(bc_view["unread_count"], live, "{bc_view}");
        assert_eq!(objects(&s.data_dir), 0);

        // The erased account can send nothing, whatever its token says.
        s.post(
            &alice,
            &format!("/chat/conversations/{ab}/messages"),
            &serde_json::json!({"content": "back from the dead"}),
        )
        .await
        .expect_error(401, "unauthorized");
        // The name is free again, and stats count the tombstone.
        let stats: Value = serde_json::from_str(&ok(&s, &["stats", "--json"]).await).unwrap();
        assert_eq!(stats["erased_users"], 1, "{stats}");
        assert_eq!(stats["users"], 2, "{stats}");

        // Purging the conversation removes it for bob too.
        let out = ok(&s, &["purge", "conversation", &ab, "--yes"]).await;
        assert!(out.contains("deleted 3 messages"), "{out}");
        assert_eq!(listed(&s, &bob, &ab).await, Value::Null);
        s.get(&bob, &format!("/chat/conversations/{ab}/messages"))
            .await
            .expect_error(404, "not_found");
        // chatd knew the conversation (bob sent in it): a send still finds it gone.
        s.post(
            &bob,
            &format!("/chat/conversations/{ab}/messages"),
            &serde_json::json!({"content": "still there?", "temp_id": "after-purge"}),
        )
        .await
        .expect_error(404, "not_found");
        Arc::into_inner(s).expect("one owner").stop().await;
    }
}

#[tokio::test]
async fn orphaned_media_purge_spares_referenced_and_young_objects() {
    let s = TestServer::start(Backend::Sqlite).await.unwrap();
    let alice = s.registered_user("alice").await;
    let bob = s.registered_user("bob").await;
    let conv = s.conversation(&alice, &bob).await;
    s.upload(
        &alice,
        &conv,
        vec![("p.png", "image/png", files::png(64, 48))],
        &[],
    )
    .await
    .expect(201);
    // An object no message references, as a crash between store and insert leaves.
    let shard = s.data_dir.join("media/objects/ab");
    std::fs::create_dir_all(&shard).unwrap();
    let orphan = shard.join(format!("ab{}.png", "0".repeat(30)));
    std::fs::write(&orphan, b"orphan").unwrap();
    assert_eq!(objects(&s.data_dir), 3);

    // Young objects are spared by default (an upload may be about to get its message).
    let out = ok(&s, &["purge", "media", "--orphaned", "--dry-run"]).await;
    assert!(out.starts_with("0 orphaned media objects"), "{out}");
    tokio::time::sleep(Duration::from_millis(1500)).await;
    let out = ok(
        &s,
        &[
            "purge",
            "media",
            "--orphaned",
            "--min-age",
            "1s",
            "--dry-run",
        ],
    )
    .await;
    assert!(out.starts_with("1 orphaned media objects"), "{out}");
    assert!(out.contains(&format!("ab{}.png", "0".repeat(30))), "{out}");
    assert!(orphan.exists(), "dry run deleted nothing");
    let out = ok(
        &s,
        &["purge", "media", "--orphaned", "--min-age", "1s", "--yes"],
    )
    .await;
    assert!(out.contains("deleted 1 orphaned media objects"), "{out}");
    assert!(!orphan.exists());
    assert_eq!(
        objects(&s.data_dir),
        2,
        "the message's image and thumbnail stay"
    );
    let (success, _, err) = chatctl(&s, &["purge", "media"]).await;
    assert!(!success && err.contains("--orphaned"), "{err}");
    s.stop().await;
}

#[tokio::test]
async fn stats_and_doctor_report_on_a_live_server() {
    for backend in [Backend::Sqlite, Backend::Postgres] {
        let Some(s) = TestServer::start(backend).await else {
            continue;
        };
        let alice = s.registered_user("alice").await;
        let bob = s.registered_user("bob").await;
        let conv = s.conversation(&alice, &bob).await;
        let hello = s.send(&alice, &conv, "hello").await;
        s.upload(
            &bob,
            &conv,
            vec![("p.png", "image/png", files::png(64, 48))],
            &[],
        )
        .await
        .expect(201);
        // The message lifecycle counts (issue 19): one edit, one delete, two reactions.
        let hello_id = hello["id"].as_str().unwrap();
        let edit = serde_json::json!({"content": "hello again"});
        let path = format!("/chat/messages/{hello_id}");
        s.request(Method::PATCH, Some(&alice.token), &path, Some(&edit))
            .await
            .expect(200);
        for (who, emoji) in [(&alice, "👍"), (&bob, "🎉")] {
            let segment: String = emoji.bytes().map(|b| format!("%{b:02X}")).collect();
            let path = format!("/chat/messages/{hello_id}/reactions/{segment}");
            s.request(Method::PUT, Some(&who.token), &path, None)
                .await
                .expect(200);
        }
        let gone = s.send(&bob, &conv, "soon gone").await;
        let path = format!(
            "/chat/messages/{}?scope=everyone",
            gone["id"].as_str().unwrap()
        );
        s.delete(&bob, &path).await.expect(200);
        let ws = chat_e2e::ws::WsClient::connect(&s, &alice).await;
        tokio::time::sleep(Duration::from_millis(200)).await;

        let stats: Value = serde_json::from_str(&ok(&s, &["stats", "--json"]).await).unwrap();
        assert_eq!(stats["users"], 2, "{stats}");
        assert_eq!(stats["conversations"], 1, "{stats}");
        assert_eq!(stats["messages_by_type"]["text"], 2, "{stats}");
        assert_eq!(stats["messages_by_type"]["image"], 1, "{stats}");
        assert_eq!(stats["media_objects"], 2, "{stats}");
        assert_eq!(stats["messages_last_hour"], 3, "{stats}");
        assert_eq!(stats["edited_messages"], 1, "{stats}");
        assert_eq!(stats["deleted_messages"], 1, "{stats}");
        assert_eq!(stats["reactions"], 2, "{stats}");
        assert_eq!(stats["online_users"], 1, "{stats}");
        let table = ok(&s, &["stats"]).await;
        assert!(table.contains("online now          1"), "{table}");
        drop(ws);

        let out = ok(&s, &["doctor"]).await;
        for name in ["database", "migrations", "redis", "jwt", "media"] {
            assert!(
                out.lines().any(|l| l.starts_with("ok") && l.contains(name)),
                "{name} not ok: {out}"
            );
        }
        assert!(out.contains("all checks passed"), "{out}");
        s.stop().await;
    }
    // A dead database and an unreadable public key fail with a verdict per item.
    let dir = chat_e2e::temp_dir("doctor-bad");
    let out = std::process::Command::new(binary("chatctl"))
        .env_clear()
        .env("CHAT_DATA_DIR", &dir)
        .env("CHAT_DATABASE_URL", "postgres://nobody@127.0.0.1:1/none")
        .env("CHAT_JWT_SECRET", "short")
        .env("CHAT_JWT_PUBLIC_KEY", dir.join("missing.pem"))
        .arg("doctor")
        .output()
        .unwrap();
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(!out.status.success());
    assert!(
        text.lines()
            .any(|l| l.starts_with("FAIL") && l.contains("database")),
        "{text}"
    );
    assert!(
        text.lines()
            .any(|l| l.starts_with("FAIL") && l.contains("jwt")),
        "{text}"
    );
    assert!(
        text.lines()
            .any(|l| l.starts_with("ok") && l.contains("media")),
        "{text}"
    );
    assert!(String::from_utf8_lossy(&out.stderr).contains("checks failed"));
    let _ = std::fs::remove_dir_all(dir);
}

/// `chatctl doctor` compares the search index with the messages; `--rebuild-search` mends
/// it (SQLite: an external-content FTS5 index that a VACUUM could leave behind). On
/// PostgreSQL the search is an expression index over the text: the check is that index.
#[tokio::test]
async fn doctor_finds_and_rebuilds_a_broken_search_index() {
    let s = TestServer::start(Backend::Sqlite)
        .await
        .expect("sqlite server");
    let alice = s.registered_user("alice").await;
    let bob = s.registered_user("bob").await;
    let conv = s.conversation(&alice, &bob).await;
    let needle = s.send(&alice, &conv, "find the needle").await;
    s.send(&alice, &conv, "and some hay").await;
    async fn found(s: &TestServer, u: &TestUser) -> usize {
        let r = s.get(u, "/chat/search?q=needle").await;
        r.expect(200)["data"].as_array().unwrap().len()
    }
    assert_eq!(found(&s, &bob).await, 1);
    let out = ok(&s, &["doctor"]).await;
    assert!(
        out.lines()
            .any(|l| l.starts_with("ok") && l.contains("search")),
        "{out}"
    );
    // What a renumbering VACUUM does to an external-content index: entries that no longer
    // match their rows. Here one message's entry is dropped behind chatd's back.
    let pool = sqlx::SqlitePool::connect(&s.database_url).await.unwrap();
    sqlx::query(
        "INSERT INTO messages_fts (messages_fts, rowid, content)
         SELECT 'delete', rowid, content FROM messages WHERE id = $1",
    )
    .bind(needle["id"].as_str().unwrap())
    .execute(&pool)
    .await
    .unwrap();
    pool.close().await;
    assert_eq!(found(&s, &bob).await, 0, "the index lost the message");
    let (success, out, _) = chatctl(&s, &["doctor"]).await;
    assert!(!success);
    assert!(
        out.lines().any(|l| l.starts_with("FAIL")
            && l.contains("search")
            && l.contains("--rebuild-search")),
        "{out}"
    );
    let out = ok(&s, &["doctor", "--rebuild-search"]).await;
    assert!(out.contains("search index rebuilt"), "{out}");
    assert!(out.contains("all checks passed"), "{out}");
    assert_eq!(found(&s, &bob).await, 1);
    s.stop().await;

    let Some(pg) = TestServer::start(Backend::Postgres).await else {
        return;
    };
    let out = ok(&pg, &["doctor", "--rebuild-search"]).await;
    assert!(
        out.lines()
            .any(|l| l.starts_with("ok") && l.contains("search")),
        "{out}"
    );
    pg.stop().await;
}
