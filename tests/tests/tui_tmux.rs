//! End to end: the interactive chat-tui in a real terminal (tmux), against the real
//! chatd. Keys go in with `send-keys`, the screen comes back with `capture-pane`; the other
//! side of the conversation is a second user over REST.

use std::time::{Duration, Instant};

use chat_e2e::server::{binary, Backend, TestServer, TestUser};
use chat_e2e::{files, temp_dir, tmux_available};

/// One tmux server (its own socket) hosting one chat-tui.
struct Tmux {
    socket: String,
}

impl Tmux {
    fn cmd(&self, args: &[&str]) -> std::process::Output {
        std::process::Command::new("tmux")
            .env("LANG", "C.UTF-8")
            .args(["-u", "-L", &self.socket, "-f", "/dev/null"])
            .args(args)
            .output()
            .expect("run tmux")
    }

    fn screen(&self) -> String {
        String::from_utf8_lossy(&self.cmd(&["capture-pane", "-p", "-t", "chat"]).stdout)
            .into_owned()
    }

    fn keys(&self, literal: &str) {
        self.cmd(&["send-keys", "-t", "chat", "-l", literal]);
    }

    fn key(&self, name: &str) {
        self.cmd(&["send-keys", "-t", "chat", name]);
    }

    /// Wait until the screen shows `text`.
    async fn wait_for(&self, text: &str) -> String {
        let deadline = Instant::now() + Duration::from_secs(15);
        loop {
            let screen = self.screen();
            if screen.contains(text) {
                return screen;
            }
            assert!(
                Instant::now() < deadline,
                "the terminal never showed {text:?}; it shows:\n{screen}"
            );
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }

    fn alive(&self) -> bool {
        self.cmd(&["has-session", "-t", "chat"]).status.success()
    }
}

impl Drop for Tmux {
    fn drop(&mut self) {
        let _ = self.cmd(&["kill-server"]);
    }
}

/// `user`'s unread count in conversation `conv`, as the server counts it.
async fn unread(server: &TestServer, user: &TestUser, conv: &str) -> Option<u64> {
    let list = server.get(user, "/chat/conversations").await;
    list.expect(200)["data"]
        .as_array()
        .expect("data")
        .iter()
        .find(|c| c["id"] == conv)
        .map(|c| c["unread_count"].as_u64().expect("count"))
}

#[tokio::test]
async fn chat_tui_in_a_real_terminal() {
    if !tmux_available() {
        return;
    }
    let Some(mut server) = TestServer::start(Backend::Sqlite).await else {
        return;
    };
    let alice = server.user("alice");
    let bob = server.registered_user("bob").await;
    let dir = temp_dir("chat-tui-tmux");
    let photo = dir.join("photo.png");
    std::fs::write(&photo, files::png(64, 48)).expect("write png");

    let tmux = Tmux {
        socket: format!("chat-e2e-{}", uuid::Uuid::new_v4().simple()),
    };
    // An "editor" for Alt-E: appends a line to the file it is given.
    let editor = dir.join("editor.sh");
    std::fs::write(
        &editor,
        "#!/bin/sh\nprintf ' from the editor\\nsecond line\\n' >> \"$1\"\n",
    )
    .expect("write editor");
    std::fs::set_permissions(&editor, std::os::unix::fs::PermissionsExt::from_mode(0o755))
        .expect("chmod editor");
    let editor_env = format!("VISUAL={}", editor.display());
    let bin = binary("chat-tui");
    let out = tmux.cmd(&[
        "new-session",
        "-e",
        &editor_env,
        "-d",
        "-s",
        "chat",
        "-x",
        "120",
        "-y",
        "32",
        bin.to_str().expect("utf-8 path"),
        "--server",
        &server.base,
        "--token",
        &alice.token,
        "--download-dir",
        dir.to_str().expect("utf-8 path"),
    ]);
    assert!(
        out.status.success(),
        "tmux: {}",
        String::from_utf8_lossy(&out.stderr)
    );

    tmux.wait_for("● online").await;
    tmux.wait_for("No conversation open").await;

    // Start a conversation by username and send a message.
    tmux.keys(&format!("/open {}", bob.username));
    tmux.key("Enter");
    // An empty conversation shows no presence (SPEC "Privacy"): bob is just offline, with
    // no last seen, until a message is in it.
    tmux.wait_for(&format!("{} · offline", bob.username)).await;
    tmux.keys("hello from a real terminal");
    tmux.key("Enter");
    tmux.wait_for("me: hello from a real terminal ✓").await;

    // bob got it, stored once.
    let conv = server.conversation(&bob, &alice).await;
    let page = server
        .get(&bob, &format!("/chat/conversations/{conv}/messages"))
        .await;
    let texts: Vec<&str> = page.expect(200)["data"]
        .as_array()
        .expect("data")
        .iter()
        .filter_map(|m| m["content"].as_str())
        .collect();
    assert_eq!(texts, vec!["hello from a real terminal"]);

    // bob answers and reads: the reply appears live, alice's message turns ✓✓.
    server.send(&bob, &conv, "hi alice, bob here").await;
    tmux.wait_for("hi alice, bob here").await;
    server
        .post(
            &bob,
            &format!("/chat/conversations/{conv}/read"),
            &serde_json::json!({}),
        )
        .await
        .expect(200);
    tmux.wait_for("hello from a real terminal ✓✓").await;

    // Tabs and wide characters (issue 18 bugs 1 and 2): drawn whole, the pane's right
    // border still in its place; and the day separator above today's messages.
    server
        .send(&bob, &conv, "col1\tcol2 漢字テスト😀 end")
        .await;
    let screen = tmux.wait_for("col1    col2 漢字テスト😀 end").await;
    let line = screen
        .lines()
        .find(|l| l.contains("col1"))
        .expect("the line");
    assert!(line.trim_end().ends_with('│'), "border moved: {line:?}");
    assert!(screen.contains(" Today "), "{screen}");

    // A link is drawn as its text (tmux 3.3 ignores the OSC 8 hyperlink around it; the
    // sequences themselves are checked in the render tests).
    server
        .send(
            &bob,
            &conv,
            "docs at https://example.org/chat/a/path?x=1 ok",
        )
        .await;
    tmux.wait_for("docs at https://example.org/chat/a/path?x=1 ok")
        .await;

    // Unread counts across a reconnect (issue 18 bug 4): carol writes once before the
    // server goes away and twice once it is back.
    let carol = server.registered_user("carol").await;
    let carol_conv = server.conversation(&carol, &alice).await;
    server.send(&carol, &carol_conv, "carol one").await;
    tmux.wait_for(&format!("{} (1)", carol.username)).await;

    // The server goes away: the client shows it is offline with a retry countdown, queues
    // what is typed meanwhile, and sends it once (temp_id) after reconnecting on its own.
    let restart = async {
        server.restart(Duration::from_secs(3)).await;
        server.send(&carol, &carol_conv, "carol two").await;
        server.send(&carol, &carol_conv, "carol three").await;
    };
    let offline = async {
        tmux.wait_for("○ offline").await;
        tmux.keys("typed while offline");
        tmux.key("Enter");
        tmux.wait_for("typed while offline (queued)").await;
    };
    tokio::join!(restart, offline);
    tmux.wait_for("● online").await;
    tmux.wait_for("me: typed while offline ✓").await;
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let page = server
            .get(&bob, &format!("/chat/conversations/{conv}/messages"))
            .await;
        let n = page.expect(200)["data"]
            .as_array()
            .expect("data")
            .iter()
            .filter(|m| m["content"] == "typed while offline")
            .count();
        if n == 1 {
            break;
        }
        assert!(n == 0 && Instant::now() < deadline, "stored {n} times");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }

    // After the reconnect alice's list counts what the server counts for carol (3), not a
    // number from before; opening the conversation reads it, on the screen and the server.
    tmux.wait_for(&format!("{} (3)", carol.username)).await;
    assert_eq!(unread(&server, &alice, &carol_conv).await, Some(3));
    tmux.keys(&format!("/open {}", carol.username));
    tmux.key("Enter");
    tmux.wait_for("carol three").await;
    let deadline = Instant::now() + Duration::from_secs(10);
    while unread(&server, &alice, &carol_conv).await != Some(0) {
        assert!(Instant::now() < deadline, "opened and shown, still unread");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let badge = format!("{} (", carol.username);
    while tmux.screen().contains(&badge) {
        assert!(
            Instant::now() < deadline,
            "read, still counted: {}",
            tmux.screen()
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    tmux.keys(&format!("/open {}", bob.username));
    tmux.key("Enter");
    tmux.wait_for("me: typed while offline ✓").await;

    // A photo by path: shown as a media item with its size, stored as an image message.
    tmux.keys(&format!("/attach {} -- a photo", photo.display()));
    tmux.key("Enter");
    tmux.wait_for("[image 64x48 photo.png]").await;

    // "?" alone is a message (issue 18: it used to open help).
    tmux.keys("?");
    tmux.key("Enter");
    tmux.wait_for("me: ?").await;

    // A two-line paste (bracketed, as terminals send it) is one message with its break.
    tmux.cmd(&["set-buffer", "-b", "p", "pasted first\npasted second"]);
    tmux.cmd(&["paste-buffer", "-p", "-b", "p", "-t", "chat"]);
    tmux.key("Enter");
    let screen = tmux.wait_for("me: pasted first").await;
    assert!(screen.contains("pasted second"), "{screen}");
    assert!(
        !screen.contains("me: pasted second"),
        "one message, not two: {screen}"
    );

    // A paste over 1 KiB shows at once, not at the next key press (issue 18 bug 3).
    let big = format!("{}TAIL-OF-THE-BIG-PASTE", "x".repeat(2048));
    tmux.cmd(&["set-buffer", "-b", "big", &big]);
    tmux.cmd(&["paste-buffer", "-p", "-b", "big", "-t", "chat"]);
    tmux.wait_for("TAIL-OF-THE-BIG-PASTE").await;
    tmux.key("C-u");

    // Alt-E: the line goes to $VISUAL and comes back edited, line break and all.
    tmux.keys("draft");
    tmux.key("M-e");
    tmux.wait_for("draft from the editor↵second line").await;
    tmux.key("Enter");
    let screen = tmux.wait_for("me: draft from the editor").await;
    assert!(screen.contains("second line"), "{screen}");

    // Help overlay (F1), then quit: the process exits and tmux's session ends.
    tmux.key("F1");
    tmux.wait_for("Keys and commands").await;
    tmux.key("Escape");
    tmux.key("C-c");
    let deadline = Instant::now() + Duration::from_secs(10);
    while tmux.alive() {
        assert!(Instant::now() < deadline, "chat-tui did not exit on Ctrl-C");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let _ = std::fs::remove_dir_all(&dir);
    server.stop().await;
}
