//! End to end: running chatd as an operator would — no configuration at all, SIGTERM,
//! chatctl tokens and live rate-limit tuning against a running server.

use std::process::Stdio;
use std::time::Duration;

use chat_e2e::server::{binary, terminate, Backend, TestServer};
use chat_e2e::temp_dir;
use serde_json::json;
use tokio::io::{AsyncBufReadExt, BufReader};

/// Run chatctl with the same configuration as the server `s`.
fn chatctl(s: &TestServer, args: &[&str]) -> std::process::Output {
    s.chatctl(args)
}

#[tokio::test]
async fn chatd_with_no_configuration_serves_and_exits_cleanly_on_sigterm() {
    let cwd = temp_dir("chatd-bare");
    // Port 8080 may be taken on a developer machine; everything else is default.
    let mut child = tokio::process::Command::new(binary("chatd"))
        .current_dir(&cwd)
        .env_clear()
        .env("CHAT_LISTEN", "127.0.0.1:0")
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .kill_on_drop(true)
        .spawn()
        .unwrap();
    let mut lines = BufReader::new(child.stdout.take().unwrap()).lines();
    let line = tokio::time::timeout(Duration::from_secs(30), lines.next_line())
        .await
        .unwrap()
        .unwrap()
        .unwrap();
    assert!(
        line.starts_with("chatd listening on http://127.0.0.1:"),
        "{line}"
    );
    let base = line.rsplit(' ').next().unwrap();
    let ready: serde_json::Value = reqwest::get(format!("{base}/readyz"))
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(ready["database"], "ok");
    assert!(
        cwd.join("data/chat.db").exists(),
        "SQLite file under ./data"
    );
    assert!(
        cwd.join("data/jwt_secret").exists(),
        "secret generated once"
    );
    let status = terminate(&mut child)
        .await
        .expect("chatd exits after SIGTERM");
    assert!(status.success(), "exit status {status:?}");
    let _ = std::fs::remove_dir_all(cwd);
}

#[tokio::test]
async fn chatctl_token_is_accepted_by_chatd_on_the_same_configuration() {
    for backend in [Backend::Sqlite, Backend::Postgres] {
        let Some(s) = TestServer::start(backend).await else {
            continue;
        };
        let out = chatctl(&s, &["token", "issue", "opal", "--ttl", "1h"]);
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
        let token = String::from_utf8(out.stdout).unwrap().trim().to_string();
        let r = s
            .request(
                reqwest::Method::GET,
                Some(&token),
                "/chat/conversations",
                None,
            )
            .await;
        r.expect(200);
        // The same user on a second issue.
        let again = chatctl(&s, &["token", "issue", "opal"]);
        let shown = chatctl(&s, &["users", "show", "opal"]);
        assert!(again.status.success() && shown.status.success());
        let shown: serde_json::Value = serde_json::from_slice(&shown.stdout).unwrap();
        assert_eq!(shown["username"], "opal");
        s.stop().await;
    }
}

#[tokio::test]
async fn chatctl_refuses_bad_input_with_one_line_and_nonzero_exit() {
    let s = TestServer::start(Backend::Sqlite).await.unwrap();
    for args in [
        vec!["ratelimit", "set", "send_message", "30/hr"],
        vec!["ratelimit", "set", "send_message", "-1/min"],
        vec!["ratelimit", "set", "no_such_action", "5/min"],
        vec!["token", "issue", "opal", "--ttl", "forever"],
        vec!["users", "show", "nobody"],
    ] {
        let out = chatctl(&s, &args);
        assert!(!out.status.success(), "{args:?} succeeded");
        let err = String::from_utf8_lossy(&out.stderr);
        assert_eq!(err.trim().lines().count(), 1, "{args:?}: {err}");
        assert!(err.starts_with("chatctl: "), "{err}");
        assert!(!err.contains("panicked"), "{err}");
    }
    let out = std::process::Command::new(binary("chatctl"))
        .env_clear()
        .env("CHAT_DATABASE_URL", "postgres://nobody@127.0.0.1:1/none")
        .args(["users", "list"])
        .output()
        .unwrap();
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("cannot open database"));
    s.stop().await;
}

#[tokio::test]
async fn rate_limit_change_applies_to_a_running_server_without_restart() {
    let s = TestServer::start_with(Backend::Sqlite, &[("CHAT_RATELIMIT_RELOAD_SECS", "1")])
        .await
        .unwrap();
    // Returns once chatd reports the new limit in force (no restart in between).
    s.set_rate_limit("send_message", "3/min").await;
    let alice = s.registered_user("alice").await;
    let bob = s.registered_user("bob").await;
    let conv = s.conversation(&alice, &bob).await;
    for i in 0..3 {
        s.send(&alice, &conv, &format!("m{i}")).await;
    }
    s.post(
        &alice,
        &format!("/chat/conversations/{conv}/messages"),
        &json!({"content": "fourth"}),
    )
    .await
    .expect_error(429, "rate_limited");
    let listed = chatctl(&s, &["ratelimit", "list"]);
    let listed = String::from_utf8_lossy(&listed.stdout);
    // Every rate, the ones issue 16 added included, and the standing per-user caps.
    for want in [
        "send_message",
        "lookup",
        "block",
        "push_subscribe",
        "upload_mb",
        "ws_sockets",
        "uploads_in_progress",
        "push_subscriptions",
        "push_in_flight",
    ] {
        assert!(listed.contains(want), "{want} not listed:\n{listed}");
    }
    let reset = chatctl(&s, &["ratelimit", "reset", "send_message"]);
    assert!(reset.status.success());
    s.stop().await;
}

#[tokio::test]
async fn operators_migrate_with_chatctl_and_chatd_can_skip_it() {
    for postgres in [false, true] {
        let dir = temp_dir("chatctl-migrate");
        let db = if postgres {
            match chat_e2e::TestDatabase::create().await {
                Some(db) => Some(db),
                None => continue,
            }
        } else {
            None
        };
        let url = db
            .as_ref()
            .map_or_else(|| chat_e2e::sqlite_url(&dir), |d| d.url.clone());
        let chatctl = |args: &[&str]| {
            let out = std::process::Command::new(binary("chatctl"))
                .env_clear()
                .env("CHAT_DATA_DIR", &dir)
                .env("CHAT_DATABASE_URL", &url)
                .args(args)
                .output()
                .unwrap();
            assert!(
                out.status.success(),
                "{args:?}: {}",
                String::from_utf8_lossy(&out.stderr)
            );
            String::from_utf8_lossy(&out.stdout).into_owned()
        };
        let status = |text: &str, word: &str| {
            let lines: Vec<&str> = text.lines().collect();
            !lines.is_empty() && lines.iter().all(|l| l.contains(word))
        };

        // chatd told not to migrate leaves a fresh database alone.
        let mut child = tokio::process::Command::new(binary("chatd"))
            .env_clear()
            .env("CHAT_LISTEN", "127.0.0.1:0")
            .env("CHAT_DATA_DIR", &dir)
            .env("CHAT_DATABASE_URL", &url)
            .env("CHAT_SKIP_MIGRATIONS", "true")
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .kill_on_drop(true)
            .spawn()
            .unwrap();
        let mut lines = BufReader::new(child.stdout.take().unwrap()).lines();
        tokio::time::timeout(Duration::from_secs(30), lines.next_line())
            .await
            .expect("chatd starts")
            .unwrap();
        let before = chatctl(&["migrate", "status"]);
        assert!(status(&before, "pending"), "{before}");

        let applied = chatctl(&["migrate", "up"]);
        assert!(applied.contains("migrations applied"), "{applied}");
        let after = chatctl(&["migrate", "status"]);
        assert!(status(&after, "applied"), "{after}");
        assert_eq!(before.lines().count(), after.lines().count());
        // Twice is a no-op.
        chatctl(&["migrate", "up"]);
        terminate(&mut child).await;
        if let Some(db) = db {
            db.drop_db().await;
        }
        let _ = std::fs::remove_dir_all(dir);
    }
}
