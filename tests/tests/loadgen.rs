//! End to end: `chat-loadgen` against a real chatd: a short run loses nothing and reports a
//! sane histogram; a target it cannot meet fails the verdict; `compare` reads the results.

use std::path::Path;
use std::process::Output;

use chat_e2e::server::{binary, Backend, TestServer};
use serde_json::Value;

async fn loadgen(server: &TestServer, extra: &[&str]) -> Output {
    let mut cmd = tokio::process::Command::new(binary("chat-loadgen"));
    cmd.arg("run")
        .args(["--server", &server.base])
        .args(["--users", "30", "--rate", "20/s", "--duration", "3s"])
        .args([
            "--ramp",
            "1s",
            "--drain",
            "5s",
            "--rest-rate",
            "20/s",
            "--quiet",
        ])
        .env("CHAT_JWT_SECRET", &server.secret)
        .args(extra);
    tokio::time::timeout(std::time::Duration::from_secs(120), cmd.output())
        .await
        .expect("chat-loadgen finished within 120 s")
        .expect("run chat-loadgen")
}

fn read_json(path: &Path) -> Value {
    serde_json::from_slice(&std::fs::read(path).expect("result file written")).expect("JSON")
}

fn check_metric(result: &Value, name: &str, count: u64) {
    let m = &result["metrics"][name];
    assert_eq!(m["count"].as_u64(), Some(count), "{name}: {m}");
    let q = |k: &str| {
        m[k].as_f64()
            .unwrap_or_else(|| panic!("{name}.{k} missing"))
    };
    assert!(q("p50_ms") > 0.0, "{name}: {m}");
    assert!(q("p50_ms") <= q("p90_ms"), "{name}: {m}");
    assert!(q("p90_ms") <= q("p99_ms"), "{name}: {m}");
    assert!(q("p99_ms") <= q("p999_ms"), "{name}: {m}");
    assert!(q("p999_ms") <= q("max_ms"), "{name}: {m}");
}

async fn short_run_loses_nothing(backend: Backend) {
    let Some(server) = TestServer::start(backend).await else {
        return;
    };
    let dir = server.data_dir.join("lg");
    std::fs::create_dir_all(&dir).unwrap();
    let a = dir.join("a.json");
    let slos = loose_slos();
    let mut args = vec!["--json", a.to_str().unwrap()];
    for slo in &slos {
        args.extend(["--slo", slo.as_str()]);
    }
    let out = loadgen(&server, &args).await;
    let stdout = chat_e2e::exited_zero(&out);
    assert!(stdout.contains("verdict: PASS"), "{stdout}");
    let r = read_json(&a);
    assert_eq!(r["connected"], 30);
    assert_eq!(r["sent"], 60);
    assert_eq!(r["acked"], 60);
    assert_eq!(r["delivered"], 60);
    assert_eq!(r["lost"], 0);
    assert_eq!(r["duplicates"], 0);
    assert_eq!(r["errors"], serde_json::json!({}));
    check_metric(&r, "connect", 30);
    check_metric(&r, "send_ack", 60);
    check_metric(&r, "delivery", 60);
    let rest: u64 = ["conversations", "messages", "mark_read", "block_status"]
        .iter()
        .filter_map(|k| r["metrics"][format!("rest_{k}")]["count"].as_u64())
        .sum();
    assert_eq!(rest, 60, "{}", r["metrics"]);

    // A target no server can meet fails the verdict with exit code 1.
    let b = dir.join("b.json");
    let out = loadgen(
        &server,
        &["--json", b.to_str().unwrap(), "--slo", "delivery=0.001"],
    )
    .await;
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert_eq!(out.status.code(), Some(1), "{stdout}");
    assert!(stdout.contains("MISSED") && stdout.contains("verdict: FAIL"));
    assert_eq!(read_json(&b)["lost"], 0);

    // compare prints a ratio per metric.
    let out = std::process::Command::new(binary("chat-loadgen"))
        .args(["compare", a.to_str().unwrap(), b.to_str().unwrap()])
        .output()
        .unwrap();
    assert!(out.status.success());
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(text.contains("delivery") && text.contains("B/A"), "{text}");
    server.stop().await;
}

#[tokio::test]
async fn short_run_loses_nothing_sqlite() {
    short_run_loses_nothing(Backend::Sqlite).await;
}

#[tokio::test]
async fn short_run_loses_nothing_postgres() {
    short_run_loses_nothing(Backend::Postgres).await;
}

/// `--media-rate` mixes multipart image uploads into the run: each is timed, stored as an
/// image message, and its `message.new` is not mistaken for a text delivery.
#[tokio::test]
async fn media_uploads_mix_into_a_run() {
    let Some(server) = TestServer::start(Backend::Sqlite).await else {
        return;
    };
    let dir = server.data_dir.join("lgm");
    std::fs::create_dir_all(&dir).unwrap();
    let png = dir.join("photo.png");
    std::fs::write(&png, chat_e2e::files::png(400, 300)).unwrap();
    let out_file = dir.join("m.json");
    let slos = loose_slos();
    let mut args = vec![
        "--json",
        out_file.to_str().unwrap(),
        "--media-rate",
        "5/s",
        "--media-file",
        png.to_str().unwrap(),
    ];
    for slo in &slos {
        args.extend(["--slo", slo.as_str()]);
    }
    let out = loadgen(&server, &args).await;
    chat_e2e::exited_zero(&out);
    let r = read_json(&out_file);
    assert_eq!(r["errors"], serde_json::json!({}));
    assert_eq!(
        (r["delivered"].as_u64(), r["duplicates"].as_u64()),
        (Some(60), Some(0))
    );
    check_metric(&r, "media_upload", 15);
    // The uploads are real image messages with thumbnails on disk.
    let stats = tokio::process::Command::new(binary("chatctl"))
        .env_clear()
        .env("CHAT_DATA_DIR", &server.data_dir)
        .env("CHAT_DATABASE_URL", &server.database_url)
        .env("CHAT_JWT_SECRET", &server.secret)
        .args(["stats", "--json"])
        .output()
        .await
        .unwrap();
    let stats: Value = serde_json::from_slice(&stats.stdout).expect("stats JSON");
    assert_eq!(stats["messages_by_type"]["image"], 15, "{stats}");
    assert_eq!(
        stats["media_objects"], 30,
        "image + thumbnail each: {stats}"
    );
    server.stop().await;
}

#[tokio::test]
async fn wrong_secret_cannot_run() {
    let Some(server) = TestServer::start(Backend::Sqlite).await else {
        return;
    };
    let mut cmd = tokio::process::Command::new(binary("chat-loadgen"));
    cmd.args(["run", "--server", &server.base, "--users", "4", "--quiet"])
        .args(["--duration", "1s", "--jwt-secret", "not-the-secret"]);
    let out = cmd.output().await.unwrap();
    assert_eq!(out.status.code(), Some(2));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("401"), "{err}");
    server.stop().await;
}

/// These tests are about loss and the shape of the report, not speed (benchmarks judge
/// speed): targets of 10 s keep a busy CI machine from failing them.
fn loose_slos() -> Vec<String> {
    [
        "connect",
        "send_ack",
        "delivery",
        "rest_conversations",
        "rest_messages",
        "rest_mark_read",
        "rest_block_status",
    ]
    .iter()
    .map(|m| format!("{m}=10000"))
    .collect()
}
