//! End to end: `chat-tui check` drives three users through every REST call and WebSocket
//! event against the real binary, on both backends, and passes; with unusable tokens it
//! fails loudly.

use chat_e2e::server::{binary, Backend, TestServer};

async fn check(server: &TestServer, extra: &[&str]) -> std::process::Output {
    let mut cmd = tokio::process::Command::new(binary("chat-tui"));
    cmd.arg("check")
        .args(["--server", &server.base])
        .env_remove("CHAT_JWT_SECRET")
        .args(extra);
    tokio::time::timeout(std::time::Duration::from_secs(120), cmd.output())
        .await
        .expect("chat-tui check finished within 120 s")
        .expect("run chat-tui")
}

chat_e2e::on_both_backends!(every_call_and_event_passes);

async fn every_call_and_event_passes(server: &TestServer) {
    let out = check(server, &["--jwt-secret", &server.secret]).await;
    let stdout = chat_e2e::exited_zero(&out);
    assert!(stdout.contains(" passed, 0 failed"), "{stdout}");
    // The table names every event of SPEC.md.
    for event in [
        "connection.success",
        "status.bulk",
        "user.online",
        "user.offline",
        "message.sent",
        "message.new",
        "message.read_ack",
        "message.read_update",
        "typing.start",
        "typing.stop",
        "pong",
        "block.updated",
        "unknown_type",
        "message.edited",
        "message.deleted",
        "reaction.updated",
        "PATCH /chat/messages/:id",
        "GET /chat/search",
        "reply_to",
        "sync.complete",
        "?since=",
    ] {
        assert!(stdout.contains(event), "{event} not checked:\n{stdout}");
    }
    let rows = stdout.lines().filter(|l| l.contains(" ok ")).count();
    assert!(rows >= 50, "only {rows} passing rows:\n{stdout}");
}

/// Tokens signed with another secret: the first call fails, the run stops early and the
/// exit code says so.
#[tokio::test]
async fn check_fails_against_the_wrong_secret() {
    let Some(server) = TestServer::start(Backend::Sqlite).await else {
        return;
    };
    let out = check(&server, &["--jwt-secret", "not-the-secret"]).await;
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert_eq!(out.status.code(), Some(1), "{stdout}");
    assert!(
        stdout.contains("FAIL") && stdout.contains("stopped early"),
        "{stdout}"
    );
    server.stop().await;
}
