//! REST latency on a seeded database: 1 user with `--conversations` conversations, one of
//! which holds `--messages` messages (each with eight words of a 1,000-word vocabulary,
//! so searches have realistic hit counts). Starts chatd in-process on a loopback port, warms
//! it, then times each endpoint sequentially over one keep-alive connection and prints a
//! markdown table (p50/p90/p99/max in milliseconds).
//!
//! ```sh
//! cargo run --release -p chat-server --example rest_latency -- --backend sqlite
//! CHAT_TEST_POSTGRES_URL=postgres://postgres@127.0.0.1:5432/postgres \
//!   cargo run --release -p chat-server --example rest_latency -- --backend postgres
//! ```
//! PostgreSQL runs in a throw-away database created for the run and dropped after it.

use std::time::{Duration, Instant};

use chat_e2e::{sqlite_url, temp_dir, TestDatabase};
use chat_protocol::rest::{Message, MessageType};
use chat_protocol::{ConversationId, MessageId, UserId};
use chat_server::auth::JwtKeys;
use chat_server::model::{now, Cursor};
use chat_server::ratelimit::Action;
use chat_server::store::{self, Conversation, DynStore, NewMessage, RateLimitSetting};
use clap::{Parser, ValueEnum};
use hdrhistogram::Histogram;
use indicatif::{ProgressBar, ProgressStyle};

#[derive(Debug, Clone, Copy, ValueEnum)]
enum BackendArg {
    Sqlite,
    Postgres,
}

#[derive(Debug, Parser)]
struct Args {
    #[arg(long, value_enum, default_value_t = BackendArg::Sqlite)]
    backend: BackendArg,
    #[arg(long, default_value_t = 100_000)]
    messages: usize,
    #[arg(long, default_value_t = 1_000)]
    conversations: usize,
    /// Timed requests per endpoint (after 50 warm-up requests).
    #[arg(long, default_value_t = 1_000)]
    requests: usize,
}

fn conv(a: UserId, b: UserId, at: chrono::DateTime<chrono::Utc>) -> Conversation {
    Conversation::between(a, b, at)
}

fn text(c: &Conversation, from: UserId, at: chrono::DateTime<chrono::Utc>, i: usize) -> Message {
    Message {
        id: MessageId::new(),
        conversation_id: c.id,
        sender_id: from,
        receiver_id: c.other(from),
        kind: MessageType::Text,
        content: Some(format!("seed message {i} {}", words(i))),
        media: vec![],
        temp_id: None,
        is_read: false,
        read_at: None,
        created_at: at,
        reply_to: None,
        edited_at: None,
        deleted_at: None,
        reactions: Vec::new(),
    }
}

/// Syllables of the seeded vocabulary: 10 × 10 × 10 = 1,000 three-syllable words.
const SYLLABLES: [&str; 10] = ["ka", "lo", "mi", "ne", "su", "ta", "ri", "po", "de", "fa"];

/// Word `n` (0..1000) of the vocabulary.
fn word(n: usize) -> String {
    [n / 100 % 10, n / 10 % 10, n % 10]
        .iter()
        .map(|d| SYLLABLES[*d])
        .collect()
}

/// Eight words for message `i`, spread evenly over the vocabulary (a fixed pseudo-random
/// sequence), so any one word is in about 0.8 % of the messages.
fn words(i: usize) -> String {
    let mut x = (i as u64)
        .wrapping_mul(6_364_136_223_846_793_005)
        .wrapping_add(1);
    (0..8)
        .map(|_| {
            x = x
                .wrapping_mul(6_364_136_223_846_793_005)
                .wrapping_add(1_442_695_040_888_963_407);
            word((x >> 33) as usize % 1000)
        })
        .collect::<Vec<_>>()
        .join(" ")
}

fn bar(len: usize, what: &str) -> ProgressBar {
    let pb = ProgressBar::new(len as u64);
    pb.set_style(
        ProgressStyle::with_template("{msg:>14} [{bar:40}] {pos}/{len} {per_sec} eta {eta}")
            .unwrap_or_else(|_| ProgressStyle::default_bar()),
    );
    pb.set_message(what.to_string());
    pb
}

struct Seeded {
    owner: (UserId, String),
    peer: (UserId, String),
    big: ConversationId,
    deep_cursor: String,
}

async fn seed(store: &DynStore, args: &Args) -> Seeded {
    let t0 = now() - chrono::Duration::days(30);
    let owner = store.upsert_user(UserId::new(), "owner", t0).await.unwrap();
    let pb = bar(args.conversations, "conversations");
    let mut big = None;
    let mut peer = None;
    for i in 0..args.conversations {
        let other = store
            .upsert_user(UserId::new(), &format!("peer{i}"), t0)
            .await
            .unwrap();
        let c = store
            .create_conversation(&conv(owner.id, other.id, t0))
            .await
            .unwrap();
        let at = t0 + chrono::Duration::seconds(i as i64);
        store
            .insert_message(&NewMessage {
                message: text(&c, other.id, at, i),
                links: vec![],
            })
            .await
            .unwrap();
        if i == 0 {
            big = Some(c);
            peer = Some(other);
        }
        pb.inc(1);
    }
    pb.finish();
    let big = big.expect("at least one conversation");
    let peer = peer.expect("peer");
    let pb = bar(args.messages, "messages");
    let start = t0 + chrono::Duration::hours(1);
    let mut deep = None;
    // In batches through the group-commit path (one statement per 500 sends).
    let mut batch = Vec::with_capacity(500);
    for i in 0..args.messages {
        let from = if i % 2 == 0 { owner.id } else { peer.id };
        let at = start + chrono::Duration::milliseconds(i as i64 * 10);
        let m = text(&big, from, at, i);
        if i == args.messages / 100 {
            deep = Some(Cursor::new(m.created_at, m.id.0).encode());
        }
        batch.push(NewMessage {
            message: m,
            links: if i % 10 == 0 {
                vec![format!("https://example.com/{i}")]
            } else {
                vec![]
            },
        });
        if batch.len() == 500 || i + 1 == args.messages {
            for r in store.insert_messages(&batch).await {
                r.unwrap();
            }
            batch.clear();
            pb.set_position(i as u64 + 1);
        }
    }
    pb.finish();
    for a in Action::ALL {
        store
            .set_rate_limit(
                a.as_str(),
                RateLimitSetting {
                    max_requests: 10_000_000,
                    period_seconds: 60,
                },
            )
            .await
            .unwrap();
    }
    Seeded {
        owner: (owner.id, owner.username),
        peer: (peer.id, peer.username),
        big: big.id,
        deep_cursor: deep.unwrap_or_default(),
    }
}

struct Timer {
    hist: Histogram<u64>,
}

impl Timer {
    fn new() -> Self {
        Timer {
            hist: Histogram::new_with_bounds(1, 60_000_000, 3).unwrap(),
        }
    }
    fn record(&mut self, d: Duration) {
        let _ = self.hist.record(d.as_micros().max(1) as u64);
    }
    fn row(&self, name: &str) -> String {
        let ms = |q: f64| self.hist.value_at_quantile(q) as f64 / 1000.0;
        format!(
            "| {name} | {} | {:.2} | {:.2} | {:.2} | {:.2} |",
            self.hist.len(),
            ms(0.5),
            ms(0.9),
            ms(0.99),
            self.hist.max() as f64 / 1000.0
        )
    }
}

#[tokio::main]
async fn main() {
    let args = Args::parse();
    let data_dir = temp_dir("chat-bench");
    let (url, pg) = match args.backend {
        BackendArg::Sqlite => (sqlite_url(&data_dir), None),
        BackendArg::Postgres => {
            let db = TestDatabase::create()
                .await
                .expect("set CHAT_TEST_POSTGRES_URL to an admin URL");
            (db.url.clone(), Some(db))
        }
    };
    // Seed without waiting for every commit to reach the disk (seeding only).
    let seed_url = match args.backend {
        BackendArg::Postgres => format!("{url}?options=-c%20synchronous_commit%3Doff"),
        BackendArg::Sqlite => url.clone(),
    };
    let store = store::connect(&seed_url, 8).await.unwrap();
    store.migrate().await.unwrap();
    let seeded = seed(&store, &args).await;
    store.close().await;

    let secret = "bench-secret-bench-secret-bench-secret";
    let mut config = chat_server::Config::for_data_dir(&data_dir);
    config.common.database_url = Some(url.clone());
    config.common.jwt_secret = Some(secret.to_string());
    config.common.log = "warn".into();
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let base = format!("http://{}", listener.local_addr().unwrap());
    let (stop_tx, stop_rx) = tokio::sync::oneshot::channel::<()>();
    let server = tokio::spawn(chat_server::serve(config, listener, async {
        let _ = stop_rx.await;
    }));
    let keys = JwtKeys::from_secret(secret.as_bytes()).unwrap();
    let owner_token = keys
        .issue(seeded.owner.0, &seeded.owner.1, chrono::Duration::hours(1))
        .unwrap();
    let peer_token = keys
        .issue(seeded.peer.0, &seeded.peer.1, chrono::Duration::hours(1))
        .unwrap();
    let http = reqwest::Client::new();
    for _ in 0..100 {
        if http.get(format!("{base}/readyz")).send().await.is_ok() {
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }

    let big = seeded.big;
    let gets: Vec<(&str, String, &str)> = vec![
        (
            "get conversations (1k)",
            format!("{base}/chat/conversations"),
            &owner_token,
        ),
        (
            "get messages, first page",
            format!("{base}/chat/conversations/{big}/messages"),
            &owner_token,
        ),
        (
            "get messages, deep cursor (99% back)",
            format!(
                "{base}/chat/conversations/{big}/messages?before={}",
                seeded.deep_cursor
            ),
            &owner_token,
        ),
        (
            "unread count",
            format!("{base}/chat/conversations/unread-count"),
            &owner_token,
        ),
        (
            "block status",
            format!("{base}/chat/blocks/status/{}", seeded.peer.1),
            &owner_token,
        ),
        (
            "links, first page",
            format!("{base}/chat/conversations/{big}/links"),
            &owner_token,
        ),
        // Search over the owner's 100k messages (SPEC: p99 < 50 ms).
        (
            "search: one word (~0.8 % of messages)",
            format!("{base}/chat/search?q={}", word(417)),
            &owner_token,
        ),
        (
            "search: two words (a few hits)",
            format!("{base}/chat/search?q={}%20{}", word(417), word(58)),
            &owner_token,
        ),
        (
            "search: a 2-letter prefix (~57 % of messages)",
            format!("{base}/chat/search?q=ka"),
            &owner_token,
        ),
        (
            "search: a 4-letter prefix (~7.7 % of messages)",
            format!("{base}/chat/search?q=kalo"),
            &owner_token,
        ),
        (
            "search: a word in every message",
            format!("{base}/chat/search?q=seed"),
            &owner_token,
        ),
        (
            "search: no hit",
            format!("{base}/chat/search?q=zzzz"),
            &owner_token,
        ),
    ];
    // Clear the seeded unread backlog once, so mark-read below measures the steady state.
    let read_url = format!("{base}/chat/conversations/{big}/read");
    let r = http
        .post(&read_url)
        .bearer_auth(&peer_token)
        .send()
        .await
        .unwrap();
    assert!(r.status().is_success(), "initial mark read: {}", r.status());

    let mut rows = Vec::new();
    for (name, url, token) in &gets {
        let mut t = Timer::new();
        for i in 0..(50 + args.requests) {
            let start = Instant::now();
            let r = http.get(url).bearer_auth(token).send().await.unwrap();
            let status = r.status();
            let _ = r.bytes().await.unwrap();
            assert!(status.is_success(), "{name}: {status}");
            if i >= 50 {
                t.record(start.elapsed());
            }
        }
        rows.push(t.row(name));
    }
    // What chat-tui does at start (issue 18: "sees the list in < 200 ms"): every page of
    // the conversation list (100 a page, following next_cursor), then the unread counts.
    let mut startup = Timer::new();
    for i in 0..(5 + args.requests / 10) {
        let start = Instant::now();
        let mut cursor: Option<String> = None;
        let mut listed = 0;
        loop {
            let mut url = format!("{base}/chat/conversations?limit=100");
            if let Some(c) = &cursor {
                url.push_str(&format!("&before={c}"));
            }
            let page: serde_json::Value = http
                .get(&url)
                .bearer_auth(&owner_token)
                .send()
                .await
                .unwrap()
                .json()
                .await
                .unwrap();
            listed += page["data"].as_array().map_or(0, Vec::len);
            match page["next_cursor"].as_str() {
                Some(c) => cursor = Some(c.to_string()),
                None => break,
            }
        }
        let r = http
            .get(format!("{base}/chat/conversations/unread-count"))
            .bearer_auth(&owner_token)
            .send()
            .await
            .unwrap();
        assert!(r.status().is_success());
        let _ = r.bytes().await;
        assert_eq!(listed, args.conversations, "every conversation listed");
        if i >= 5 {
            startup.record(start.elapsed());
        }
    }
    rows.push(startup.row("chat-tui start: whole list + unread"));

    let send_url = format!("{base}/chat/conversations/{big}/messages");
    let mut send_t = Timer::new();
    let mut read_t = Timer::new();
    for i in 0..(50 + args.requests) {
        let start = Instant::now();
        let r = http
            .post(&send_url)
            .bearer_auth(&owner_token)
            .json(&serde_json::json!({"content": format!("bench {i} https://example.org/{i}")}))
            .send()
            .await
            .unwrap();
        assert_eq!(r.status().as_u16(), 201);
        let _ = r.bytes().await;
        if i >= 50 {
            send_t.record(start.elapsed());
        }
        let start = Instant::now();
        let r = http
            .post(&read_url)
            .bearer_auth(&peer_token)
            .send()
            .await
            .unwrap();
        assert!(r.status().is_success());
        let _ = r.bytes().await;
        if i >= 50 {
            read_t.record(start.elapsed());
        }
    }
    rows.push(send_t.row("send (into the 100k conversation)"));
    rows.push(read_t.row("mark read (1 new message)"));

    println!(
        "\n{:?}: {} messages in one conversation, {} conversations for one user, {} timed requests each\n",
        args.backend, args.messages, args.conversations, args.requests
    );
    println!("| endpoint | n | p50 ms | p90 ms | p99 ms | max ms |");
    println!("|---|---|---|---|---|---|");
    for r in rows {
        println!("{r}");
    }
    let _ = stop_tx.send(());
    let _ = server.await;
    if let Some(db) = pg {
        db.drop_db().await;
    }
    let _ = std::fs::remove_dir_all(data_dir);
}
