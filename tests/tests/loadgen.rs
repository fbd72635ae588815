//! End to end: `chat-loadgen` against a real chatd: a short run loses nothing and reports a
//! sane histogram; a target it cannot meet fails the verdict; `compare` reads the results.

use std::path::Path;
use std::process::Output;

use chat_e2e::server::{binary, Backend, TestServer};
use serde_json::Value;

/// One test of this file at a time: the starvation test pins busy loops on a core, and the
/// honest-run test judges the generator's own lateness, which a neighbour would spoil.
static SERIAL: tokio::sync::Mutex<()> = tokio::sync::Mutex::const_new(());

/// `chat-loadgen run` against `server` with `args`, started through `wrapper` (say,
/// `taskset -c 0`), within 120 s.
async fn run_loadgen(wrapper: &[&str], server: &TestServer, args: &[&str]) -> Output {
    let bin = binary("chat-loadgen");
    let mut cmd = match wrapper.split_first() {
        Some((first, rest)) => {
            let mut c = tokio::process::Command::new(first);
            c.args(rest).arg(bin);
            c
        }
        None => tokio::process::Command::new(bin),
    };
    cmd.args(["run", "--server", &server.base, "--quiet"])
        .env("CHAT_JWT_SECRET", &server.secret)
        .args(args);
    tokio::time::timeout(std::time::Duration::from_secs(120), cmd.output())
        .await
        .expect("chat-loadgen finished within 120 s")
        .expect("run chat-loadgen")
}

/// The short standard run: 30 users, 20 msg/s and 20 REST calls/s for 3 s.
async fn loadgen(server: &TestServer, extra: &[&str]) -> Output {
    let mut args = vec!["--users", "30", "--rate", "20/s", "--duration", "3s"];
    args.extend(["--ramp", "1s", "--drain", "5s", "--rest-rate", "20/s"]);
    args.extend(extra);
    run_loadgen(&[], server, &args).await
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

chat_e2e::on_both_backends!(short_run_loses_nothing);

async fn short_run_loses_nothing(server: &TestServer) {
    let _serial = SERIAL.lock().await;
    let dir = server.data_dir.join("lg");
    std::fs::create_dir_all(&dir).unwrap();
    let a = dir.join("a.json");
    let slos = loose_slos();
    let mut args = vec!["--json", a.to_str().unwrap()];
    for slo in &slos {
        args.extend(["--slo", slo.as_str()]);
    }
    args.extend(LOOSE_SELF_CHECK);
    let out = loadgen(server, &args).await;
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
        server,
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
}

/// `--media-rate` mixes multipart image uploads into the run: each is timed, stored as an
/// image message, and its `message.new` is not mistaken for a text delivery.
#[tokio::test]
async fn media_uploads_mix_into_a_run() {
    let _serial = SERIAL.lock().await;
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
    args.extend(LOOSE_SELF_CHECK);
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
    let stats = server.chatctl(&["stats", "--json"]);
    let stats: Value = serde_json::from_slice(&stats.stdout).expect("stats JSON");
    assert_eq!(stats["messages_by_type"]["image"], 15, "{stats}");
    assert_eq!(
        stats["media_objects"], 30,
        "image + thumbnail each: {stats}"
    );
    server.stop().await;
}

/// The message lifecycle in the REST mix: edits, reactions, deletes and searches are made,
/// timed as their own metrics, and leave their marks in the database.
#[tokio::test]
async fn lifecycle_calls_mix_into_a_run() {
    let _serial = SERIAL.lock().await;
    let Some(server) = TestServer::start(Backend::Sqlite).await else {
        return;
    };
    let out_file = server.data_dir.join("lc.json");
    let slos = loose_slos();
    let mut args = vec![
        "--json",
        out_file.to_str().unwrap(),
        "--rest-mix",
        "messages=1,edit=2,react=2,delete=1,search=2",
    ];
    for slo in &slos {
        args.extend(["--slo", slo.as_str()]);
    }
    args.extend(LOOSE_SELF_CHECK);
    let out = loadgen(&server, &args).await;
    chat_e2e::exited_zero(&out);
    let r = read_json(&out_file);
    assert_eq!(r["errors"], serde_json::json!({}));
    assert_eq!(
        (r["delivered"].as_u64(), r["duplicates"].as_u64()),
        (Some(60), Some(0))
    );
    for metric in ["rest_edit", "rest_react", "rest_delete", "rest_search"] {
        let n = r["metrics"][metric]["count"].as_u64().unwrap_or(0);
        assert!(n > 0, "{metric}: {}", r["metrics"]);
    }
    let stats = server.chatctl(&["stats", "--json"]);
    let stats: Value = serde_json::from_slice(&stats.stdout).expect("stats JSON");
    // (Reactions may all have gone with deleted messages: not counted here.)
    for counter in ["edited_messages", "deleted_messages"] {
        assert!(
            stats[counter].as_u64().unwrap_or(0) > 0,
            "{counter}: {stats}"
        );
    }
    server.stop().await;
}

/// `chat-loadgen media`: every upload is stored as an image message, and the report says so.
#[tokio::test]
async fn the_media_benchmark_uploads_every_file() {
    let _serial = SERIAL.lock().await;
    let Some(server) = TestServer::start(Backend::Sqlite).await else {
        return;
    };
    let png = server.data_dir.join("bench.png");
    std::fs::write(&png, chat_e2e::files::png(200, 100)).unwrap();
    let out = tokio::process::Command::new(binary("chat-loadgen"))
        .args([
            "media",
            "--server",
            &server.base,
            "--jwt-secret",
            &server.secret,
        ])
        .args([
            "--file",
            png.to_str().unwrap(),
            "--count",
            "4",
            "--concurrency",
            "2",
        ])
        .output()
        .await
        .unwrap();
    chat_e2e::exited_zero(&out);
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(stdout.contains("4 accepted, 0 failed"), "{stdout}");
    let stats = server.chatctl(&["stats", "--json"]);
    let stats: Value = serde_json::from_slice(&stats.stdout).expect("stats JSON");
    assert_eq!(stats["messages_by_type"]["image"], 4, "{stats}");
    server.stop().await;
}

#[tokio::test]
async fn wrong_secret_cannot_run() {
    // Serialized like the others: its server and generator beside a timed run would
    // make that run's generator late.
    let _serial = SERIAL.lock().await;
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

/// A generator that gets a few percent of one core (ordinary threads pinned with three
/// busy loops, at a lower priority) reports itself as the limit and never prints PASS, even with targets
/// no server misses.
#[tokio::test]
async fn a_starved_generator_says_so_and_never_passes() {
    let _serial = SERIAL.lock().await;
    let Some(server) = TestServer::start(Backend::Sqlite).await else {
        return;
    };
    let mut burners: Vec<tokio::process::Child> = (0..3)
        .map(|_| {
            tokio::process::Command::new("taskset")
                .args(["-c", "0", "sh", "-c", "while :; do :; done"])
                .kill_on_drop(true)
                .spawn()
                .expect("taskset (util-linux) runs a busy loop")
        })
        .collect();
    let file = server.data_dir.join("starved.json");
    let slos = loose_slos();
    let mut args = vec!["--users", "20", "--rate", "300/s", "--duration", "2s"];
    args.extend(["--ramp", "0s", "--drain", "10s", "--rest-rate", "0/s"]);
    // Real-time threads would not starve behind the busy loops: ordinary ones do.
    args.push("--no-realtime");
    args.extend(["--json", file.to_str().unwrap()]);
    args.extend(slos.iter().flat_map(|s| ["--slo", s.as_str()]));
    let out = run_loadgen(&["taskset", "-c", "0", "nice", "-n", "10"], &server, &args).await;
    // Killed and reaped before the next test takes the lock: a burner still spinning
    // would starve that test's generator.
    for b in &mut burners {
        let _ = b.kill().await;
    }
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert_eq!(out.status.code(), Some(1), "{stdout}");
    assert!(stdout.contains("GENERATOR-LIMITED"), "{stdout}");
    assert!(
        stdout.contains("verdict: FAIL (generator-limited)"),
        "{stdout}"
    );
    assert!(!stdout.contains("PASS"), "{stdout}");
    let r = read_json(&file);
    let g = &r["generator"];
    assert!(!g["limited_by"].as_array().unwrap().is_empty(), "{g}");
    assert!(g["lateness"]["p99_ms"].as_f64().unwrap() > 1.0, "{g}");
    assert_eq!(r["pass"], false);
    server.stop().await;
}

/// With the default self-check limits, a light run on an otherwise idle generator is not
/// flagged: it reports its CPU per 1,000 messages and a sub-millisecond lateness.
///
/// A shared 2-core CI guest is not always idle: its own timer wake-ups can run 1-2 ms late
/// at p99 for a few seconds (CI once saw the generator's real-time pacer thread wake
/// 1.77 ms late at p99 while a probe run seconds later measured 0.30 ms). So up to three
/// attempts; an attempt that is flagged must name its cause, may not be flagged for CPU,
/// and the best one must show that the generator itself added at most 1 ms at p99 to what
/// the host did to its pacer thread in that same run (`lateness` minus `pacer_wake`, both
/// from the run's own report). A generator that got heavier per message (the regression
/// issue 15 names: ~6x) fails that on every attempt.
#[tokio::test]
async fn an_honest_run_is_not_flagged() {
    let _serial = SERIAL.lock().await;
    let Some(server) = TestServer::start(Backend::Sqlite).await else {
        return;
    };
    let file = server.data_dir.join("honest.json");
    let mut flagged = Vec::new();
    let mut best_added = f64::MAX;
    for _ in 0..3 {
        // 300 messages, so that p99 is not simply the one slowest.
        let _ = std::fs::remove_file(&file);
        let slos = loose_slos();
        let mut args = vec!["--users", "30", "--rate", "100/s", "--duration", "3s"];
        args.extend(["--ramp", "1s", "--drain", "5s", "--rest-rate", "0/s"]);
        args.extend(["--json", file.to_str().unwrap()]);
        args.extend(slos.iter().flat_map(|s| ["--slo", s.as_str()]));
        let out = run_loadgen(&[], &server, &args).await;
        assert!(file.exists(), "{}", String::from_utf8_lossy(&out.stderr));
        let r = read_json(&file);
        let g = &r["generator"];
        assert!(g["cpu_ms_per_1000_messages"].as_f64().unwrap() > 0.0, "{g}");
        let reasons = g["limited_by"].as_array().unwrap();
        if reasons.is_empty() {
            let stdout = chat_e2e::exited_zero(&out);
            assert!(stdout.contains("verdict: PASS"), "{stdout}");
            assert!(stdout.contains("generator: CPU"), "{stdout}");
            assert!(g["lateness"]["p99_ms"].as_f64().unwrap() <= 1.0, "{g}");
            server.stop().await;
            return;
        }
        // Flagged: never PASS, and for lateness only (0.1 core is no CPU limit).
        assert_eq!(r["pass"], false, "{g}");
        for reason in reasons {
            let reason = reason.as_str().unwrap();
            assert!(
                reason.starts_with("pacer lateness p99") && reason.contains('>'),
                "{g}"
            );
        }
        let late = g["lateness"]["p99_ms"].as_f64().unwrap();
        let wake = g["pacer_wake"]["p99_ms"].as_f64().unwrap();
        best_added = best_added.min(late - wake);
        flagged.push(g.to_string());
    }
    assert!(
        best_added <= 1.0,
        "an idle light run was flagged three times, and in its best attempt the generator \
         added {best_added:.2} ms at p99 to its pacer's own wake-up lateness: {flagged:?}"
    );
    eprintln!(
        "this host woke the pacer late: flagged three times, honestly; the generator itself \
         added {best_added:.2} ms at p99 in its best attempt: {flagged:?}"
    );
    server.stop().await;
}

/// These tests are about loss and the shape of the report, not speed (benchmarks judge
/// speed): targets of 10 s keep a busy CI machine from failing them, and so does the
/// generator self-check set as loose (its own tests above use the real limits).
const LOOSE_SELF_CHECK: [&str; 4] = ["--max-lateness-ms", "10000", "--max-generator-cpu", "64"];

fn loose_slos() -> Vec<String> {
    [
        "connect",
        "send_ack",
        "delivery",
        "rest_conversations",
        "rest_messages",
        "rest_mark_read",
        "rest_block_status",
        "rest_edit",
        "rest_react",
        "rest_delete",
        "rest_search",
    ]
    .iter()
    .map(|m| format!("{m}=10000"))
    .collect()
}
