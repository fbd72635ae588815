//! Chaos: real processes, loopback only, bounded in time. `kill -9` one of two chatd
//! instances while 50 clients send; the clients on it reconnect to the survivor and resend
//! what was not acknowledged (same temp_id), resuming from their last position
//! (`/chat/ws?since=`). Afterwards every acknowledged message is stored exactly once, no
//! temp_id is stored twice, and every receiver has every message of its partner exactly
//! once by id (live, or replayed on resume; repeats are dropped by `seq`).

use std::collections::{HashMap, HashSet};
use std::time::{Duration, Instant};

use chat_client::{Client, PageQuery, Socket};
use chat_e2e::server::{TestServer, TestUser};
use chat_protocol::rest::Message;
use chat_protocol::ws::{ClientEvent, Envelope, SeqTracker, ServerEvent};
use chat_protocol::{ConversationId, MessageId};

const PAIRS: usize = 25;
const PER_CLIENT: usize = 20;
const EVERY: Duration = Duration::from_millis(150);

#[derive(Default, Debug)]
struct Outcome {
    /// temp_id -> stored id, from `message.sent`.
    acked: HashMap<String, MessageId>,
    /// `message.new` ids from the partner, live or replayed, after dropping positions
    /// already seen (repeats kept, to count them).
    delivered: Vec<MessageId>,
    /// Of those, the ones replayed on a resume.
    replayed: HashSet<MessageId>,
    /// Frames dropped because their position was seen already.
    repeats_dropped: usize,
    reconnects: usize,
    /// Messages sent again after a reconnect (their `message.new` is announced again).
    resent: usize,
}

impl Outcome {
    /// One frame: positions seen before are dropped, the partner's messages recorded.
    fn take(&mut self, tracker: &mut SeqTracker, env: Envelope, me: &TestUser, replaying: bool) {
        if env.seq.is_some_and(|s| tracker.seen(s))
            && !matches!(env.event, ServerEvent::MessageSent { .. })
        {
            self.repeats_dropped += 1;
            return;
        }
        tracker.observe(&env);
        if let ServerEvent::MessageNew { message } = env.event {
            if message.sender_id != me.id {
                self.delivered.push(message.id);
                if replaying {
                    self.replayed.insert(message.id);
                }
            }
        }
    }
}

/// One user: sends `PER_CLIENT` messages, reconnecting to the next server when its socket
/// dies and resending everything unacknowledged with the original temp_id.
async fn client(
    servers: [String; 2],
    first: usize,
    offset: Duration,
    user: TestUser,
    conv: ConversationId,
) -> Outcome {
    let mut out = Outcome::default();
    let mut pending: Vec<(String, String)> = Vec::new();
    let mut next = 0usize;
    let mut at = first;
    let deadline = Instant::now() + Duration::from_secs(40);
    let mut tracker = SeqTracker::default();
    'connect: while Instant::now() < deadline {
        // A new user has loaded no state, so even the first socket replays from 0: a
        // partner may send before this socket is up (the client has no REST catch-up).
        let since = Some(tracker.position().unwrap_or(0));
        let mut sock = match Socket::connect_since(&servers[at], &user.token, since).await {
            Ok(s) => s,
            Err(_) => {
                at = (at + 1) % 2;
                out.reconnects += 1;
                tokio::time::sleep(Duration::from_millis(100)).await;
                continue;
            }
        };
        // What went by while away is replayed before `sync.complete`.
        let mut replaying = true;
        out.resent += pending.len();
        for (temp, content) in &pending {
            let resend = ClientEvent::MessageSend {
                conversation_id: conv,
                content: content.clone(),
                temp_id: Some(temp.clone()),
                reply_to_id: None,
            };
            if sock.send(&resend).await.is_err() {
                continue 'connect;
            }
        }
        let mut tick = tokio::time::interval_at(tokio::time::Instant::now() + offset, EVERY);
        loop {
            if next == PER_CLIENT && pending.is_empty() {
                // Keep reading a little for the partner's last messages.
                let quiet = Instant::now() + Duration::from_secs(2);
                while let Ok(env) = sock
                    .next_envelope(quiet.saturating_duration_since(Instant::now()))
                    .await
                {
                    out.take(&mut tracker, env, &user, false);
                }
                return out;
            }
            tokio::select! {
                _ = tick.tick(), if next < PER_CLIENT => {
                    let temp = format!("{}-{next}", user.username);
                    let content = format!("chaos {} #{next}", user.username);
                    next += 1;
                    pending.push((temp.clone(), content.clone()));
                    let send = ClientEvent::MessageSend {
                        conversation_id: conv,
                        content,
                        temp_id: Some(temp),
                        reply_to_id: None,
                    };
                    if sock.send(&send).await.is_err() {
                        break;
                    }
                }
                env = sock.next_envelope(Duration::from_secs(5)) => match env {
                    Ok(env) => {
                        match &env.event {
                            ServerEvent::MessageSent { temp_id: Some(t), message } => {
                                pending.retain(|(p, _)| p != t);
                                out.acked.insert(t.clone(), message.id);
                            }
                            ServerEvent::SyncComplete { .. } => replaying = false,
                            _ => {}
                        }
                        out.take(&mut tracker, env, &user, replaying);
                    }
                    Err(_) => break,
                },
            }
        }
        // The socket died: the next server.
        at = (at + 1) % 2;
        out.reconnects += 1;
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    panic!("{} did not finish within 40 s: {out:?}", user.username);
}

/// Every message of a conversation, through the survivor.
async fn history(api: &Client, conv: ConversationId) -> Vec<Message> {
    let mut all = Vec::new();
    let mut q = PageQuery::limit(100);
    loop {
        let page = api.messages(conv, &q).await.expect("history");
        all.extend(page.data);
        match page.next_cursor.filter(|_| page.has_more) {
            Some(c) => q = PageQuery::before(c, 100),
            None => return all,
        }
    }
}

#[tokio::test]
async fn kill_9_one_of_two_instances_while_clients_send() {
    let Some((a, b, _)) = TestServer::pair().await else {
        return;
    };
    let mut users = Vec::new();
    for i in 0..PAIRS * 2 {
        users.push(a.registered_user(&format!("c{i}_")).await);
    }
    let mut convs = Vec::new();
    for p in 0..PAIRS {
        let id = a.conversation(&users[2 * p], &users[2 * p + 1]).await;
        convs.push(id.parse::<ConversationId>().expect("conversation id"));
    }
    let servers = [a.base.clone(), b.base.clone()];
    // Clients do not tick in step, so some send while others are reconnecting.
    let mut tasks = Vec::new();
    for (i, u) in users.iter().enumerate() {
        // Half start on A (the one that dies), half on B.
        let offset = Duration::from_millis((i as u64 * 37) % EVERY.as_millis() as u64);
        tasks.push(tokio::spawn(client(
            servers.clone(),
            i % 2,
            offset,
            u.clone(),
            convs[i / 2],
        )));
    }
    // Let traffic flow, then kill A without warning.
    tokio::time::sleep(EVERY * (PER_CLIENT as u32) / 3).await;
    let killed = std::process::Command::new("kill")
        .args(["-KILL", &a.pid().to_string()])
        .status()
        .expect("kill");
    assert!(killed.success());
    let mut outcomes = Vec::new();
    for t in tasks {
        outcomes.push(t.await.expect("client task"));
    }
    let reconnects: usize = outcomes.iter().map(|o| o.reconnects).sum();
    assert!(
        reconnects >= PAIRS,
        "clients on A must have reconnected ({reconnects})"
    );

    let api = Client::new(&b.base, &users[0].token).expect("client");
    let mut replayed = 0;
    for (p, conv) in convs.iter().enumerate() {
        let (x, y) = (2 * p, 2 * p + 1);
        let stored = history(&api.with_token(&users[x].token), *conv).await;
        // Stored exactly once: ids and (sender, temp_id) are unique.
        let ids: HashSet<MessageId> = stored.iter().map(|m| m.id).collect();
        assert_eq!(ids.len(), stored.len(), "a message id stored twice");
        let temps: HashSet<(String, Option<String>)> = stored
            .iter()
            .map(|m| (m.sender_id.to_string(), m.temp_id.clone()))
            .collect();
        assert_eq!(temps.len(), stored.len(), "a temp_id stored twice");
        for (me, other) in [(x, y), (y, x)] {
            let out = &outcomes[me];
            assert_eq!(out.acked.len(), PER_CLIENT, "{} acks", users[me].username);
            for id in out.acked.values() {
                assert!(ids.contains(id), "acknowledged message {id} is not stored");
            }
            // The partner received each of these exactly once by id, live or replayed
            // on resume: a resent message is announced again at its first position (its
            // first server may have died before announcing it), and positions already
            // seen are dropped, so nothing arrives twice.
            let receiver = &outcomes[other];
            let mut got = HashMap::new();
            for id in &receiver.delivered {
                *got.entry(*id).or_insert(0) += 1;
            }
            for id in out.acked.values() {
                assert_eq!(
                    got.get(id).copied().unwrap_or(0),
                    1,
                    "message {id} ({:?}) reached its receiver {} this many times (sender \
                     reconnects {}, resent {}; receiver reconnects {}, replayed {})",
                    stored
                        .iter()
                        .find(|m| m.id == *id)
                        .and_then(|m| m.content.clone()),
                    users[other].username,
                    out.reconnects,
                    out.resent,
                    receiver.reconnects,
                    receiver.replayed.len()
                );
            }
            assert_eq!(got.len(), PER_CLIENT, "only the partner's messages");
            replayed += receiver.replayed.len();
        }
        assert_eq!(stored.len(), 2 * PER_CLIENT, "conversation {p}");
    }
    let dropped: usize = outcomes.iter().map(|o| o.repeats_dropped).sum();
    eprintln!("{reconnects} reconnects; {replayed} messages replayed on resume; {dropped} repeats dropped by seq");
    b.stop().await;
    a.stop().await;
}

/// A Redis of this test's own (the shared one serves other tests), killed and restarted.
struct PrivateRedis {
    port: u16,
    child: Option<std::process::Child>,
}

impl PrivateRedis {
    fn start_on(port: u16) -> std::process::Child {
        std::process::Command::new("redis-server")
            .args(["--bind", "127.0.0.1", "--port", &port.to_string()])
            .args(["--save", "", "--appendonly", "no"])
            .stdout(std::process::Stdio::null())
            .spawn()
            .expect("redis-server (installed with Redis)")
    }

    async fn start() -> PrivateRedis {
        let port = std::net::TcpListener::bind("127.0.0.1:0")
            .and_then(|l| l.local_addr())
            .expect("free port")
            .port();
        let r = PrivateRedis {
            port,
            child: Some(Self::start_on(port)),
        };
        r.wait_up().await;
        r
    }

    async fn wait_up(&self) {
        let deadline = Instant::now() + Duration::from_secs(10);
        while tokio::net::TcpStream::connect(("127.0.0.1", self.port))
            .await
            .is_err()
        {
            assert!(Instant::now() < deadline, "redis-server did not start");
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }

    fn url(&self) -> String {
        format!("redis://127.0.0.1:{}", self.port)
    }

    fn kill(&mut self) {
        if let Some(mut c) = self.child.take() {
            let _ = c.kill();
            let _ = c.wait();
        }
    }

    async fn restart(&mut self) {
        self.kill();
        self.child = Some(Self::start_on(self.port));
        self.wait_up().await;
    }
}

impl Drop for PrivateRedis {
    fn drop(&mut self) {
        self.kill();
    }
}

/// Send `n` messages over the socket and wait for each `message.sent`; returns the ids.
async fn send_acked(ws: &mut Socket, conv: ConversationId, tag: &str, n: usize) -> Vec<MessageId> {
    let mut ids = Vec::new();
    for k in 0..n {
        let temp = format!("{tag}-{k}");
        ws.send(&ClientEvent::MessageSend {
            conversation_id: conv,
            content: format!("{tag} {k}"),
            temp_id: Some(temp.clone()),
            reply_to_id: None,
        })
        .await
        .expect("send");
        let id = ws
            .wait_for(Duration::from_secs(10), |e| match e {
                ServerEvent::MessageSent {
                    temp_id: Some(t),
                    message,
                } if *t == temp => Some(message.id),
                ServerEvent::Error { code, message, .. } => {
                    panic!("send {temp} refused: {code:?} {message}")
                }
                _ => None,
            })
            .await
            .expect("message.sent");
        ids.push(id);
    }
    ids
}

/// Redis dies (kill -9) and comes back empty while two instances serve a conversation
/// across them. Sends keep succeeding throughout (rate limits fall back to in-process,
/// the event reaches only the sender's instance while Redis is down); after the restart
/// the bus resubscribes on its own and cross-instance delivery resumes; nothing acked is
/// lost and the unread count is exact, because PostgreSQL is the only source of truth.
#[tokio::test]
async fn redis_killed_and_restarted_mid_conversation() {
    if chat_e2e::redis_url().is_none() {
        return;
    }
    let mut redis = PrivateRedis::start().await;
    let url = redis.url();
    let env = [("CHAT_REDIS_URL", url.as_str())];
    let Some(a) = TestServer::start_with(chat_e2e::server::Backend::Postgres, &env).await else {
        return;
    };
    let b = a.sibling(&env).await;
    let alice = a.registered_user("alice").await;
    let bob = a.registered_user("bob").await;
    let conv: ConversationId = a
        .conversation(&alice, &bob)
        .await
        .parse()
        .expect("conversation id");
    let mut alice_a = Socket::connect(&a.base, &alice.token)
        .await
        .expect("alice on A");
    let mut bob_b = Socket::connect(&b.base, &bob.token)
        .await
        .expect("bob on B");
    bob_b
        .wait_for(Duration::from_secs(5), |e| {
            matches!(e, ServerEvent::StatusBulk { .. }).then_some(())
        })
        .await
        .expect("status.bulk");

    // 1. Healthy: across instances, live.
    let before = send_acked(&mut alice_a, conv, "before", 5).await;
    for id in &before {
        bob_b
            .wait_for(Duration::from_secs(5), |e| match e {
                ServerEvent::MessageNew { message } if message.id == *id => Some(()),
                _ => None,
            })
            .await
            .expect("live before the outage");
    }

    // 2. Redis gone: sends still succeed and are stored.
    redis.kill();
    let t = Instant::now();
    let during = send_acked(&mut alice_a, conv, "during", 5).await;
    // Fast fallback, not a wait on reconnect attempts per send.
    assert!(
        t.elapsed() < Duration::from_secs(5),
        "5 sends with Redis down took {:?}",
        t.elapsed()
    );

    // 3. Redis back (empty): cross-instance delivery resumes without a restart of chatd.
    redis.restart().await;
    let deadline = Instant::now() + Duration::from_secs(15);
    let mut after = Vec::new();
    loop {
        let ids = send_acked(&mut alice_a, conv, &format!("after{}", after.len()), 1).await;
        let got = bob_b
            .wait_for(Duration::from_millis(500), |e| match e {
                ServerEvent::MessageNew { message } if message.id == ids[0] => Some(()),
                _ => None,
            })
            .await;
        after.extend(ids);
        if got.is_ok() {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "cross-instance delivery did not resume within 15 s of Redis coming back"
        );
    }
    eprintln!(
        "cross-instance delivery back {:?} after the restart",
        t.elapsed()
    );

    // Nothing acked is lost, nothing is doubled, and bob's unread count is exact.
    let api = Client::new(&b.base, &bob.token).expect("client");
    let stored = history(&api, conv).await;
    let stored_ids: HashSet<MessageId> = stored.iter().map(|m| m.id).collect();
    assert_eq!(stored_ids.len(), stored.len());
    let acked: Vec<MessageId> = before
        .iter()
        .chain(&during)
        .chain(&after)
        .copied()
        .collect();
    assert_eq!(stored.len(), acked.len());
    for id in &acked {
        assert!(stored_ids.contains(id), "acked {id} lost");
    }
    let unread = api.unread_count().await.expect("unread");
    assert_eq!(unread.total, acked.len() as u64);
    alice_a.close().await;
    bob_b.close().await;
    b.stop().await;
    a.stop().await;
}

/// A PostgreSQL cluster of this test's own, on a free port, stopped and started at will
/// (the shared server serves every other test).
struct PrivatePostgres {
    dir: std::path::PathBuf,
    port: u16,
    bin: std::path::PathBuf,
}

impl PrivatePostgres {
    /// The newest installed server binaries (Debian layout), or `None`.
    fn bin_dir() -> Option<std::path::PathBuf> {
        let mut versions: Vec<std::path::PathBuf> = std::fs::read_dir("/usr/lib/postgresql")
            .ok()?
            .filter_map(|e| e.ok().map(|e| e.path().join("bin")))
            .filter(|p| p.join("pg_ctl").exists())
            .collect();
        versions.sort();
        versions.pop()
    }

    /// Run a server binary as the `postgres` user when we are root (PostgreSQL refuses
    /// to run as root), as ourselves otherwise.
    fn run(&self, tool: &str, args: &[&str]) -> std::process::Output {
        let exe = self.bin.join(tool);
        let root = std::process::Command::new("id")
            .arg("-u")
            .output()
            .is_ok_and(|o| o.stdout.starts_with(b"0"));
        let mut cmd = if root {
            let mut c = std::process::Command::new("runuser");
            c.args(["-u", "postgres", "--"]).arg(&exe);
            c
        } else {
            std::process::Command::new(&exe)
        };
        cmd.args(args).output().expect("run a PostgreSQL tool")
    }

    fn start() -> Option<PrivatePostgres> {
        let bin = Self::bin_dir()?;
        let port = std::net::TcpListener::bind("127.0.0.1:0")
            .and_then(|l| l.local_addr())
            .expect("free port")
            .port();
        let dir = chat_e2e::temp_dir("chat-pg");
        let _ = std::process::Command::new("chown")
            .args(["-R", "postgres"])
            .arg(&dir)
            .status();
        let pg = PrivatePostgres { dir, port, bin };
        let data = pg.dir.join("data");
        let out = pg.run(
            "initdb",
            &[
                "-D",
                data.to_str()?,
                "-A",
                "trust",
                "-U",
                "postgres",
                "--no-sync",
            ],
        );
        assert!(
            out.status.success(),
            "initdb: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        pg.pg_ctl_start();
        Some(pg)
    }

    fn pg_ctl_start(&self) {
        let data = self.dir.join("data");
        let opts = format!(
            "-p {} -k {} -c listen_addresses=127.0.0.1 -c fsync=off",
            self.port,
            self.dir.display()
        );
        let log = self.dir.join("pg.log");
        let out = self.run(
            "pg_ctl",
            &[
                "-D",
                data.to_str().expect("utf-8"),
                "-o",
                &opts,
                "-l",
                log.to_str().expect("utf-8"),
                "-w",
                "start",
            ],
        );
        assert!(
            out.status.success(),
            "pg_ctl start: {}",
            String::from_utf8_lossy(&out.stderr)
        );
    }

    /// Stop at once, like a crash (no checkpoint, connections cut).
    fn stop(&self) {
        let data = self.dir.join("data");
        let _ = self.run(
            "pg_ctl",
            &[
                "-D",
                data.to_str().expect("utf-8"),
                "-m",
                "immediate",
                "-w",
                "stop",
            ],
        );
    }

    fn url(&self) -> String {
        format!("postgres://postgres@127.0.0.1:{}/postgres", self.port)
    }
}

impl Drop for PrivatePostgres {
    fn drop(&mut self) {
        self.stop();
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

/// PostgreSQL stops (immediate shutdown) under a live conversation: sends fail with a
/// clear `service_unavailable` (WS `error` event with the temp_id, REST 503), never with a
/// `message.sent` for something not stored; `/readyz` says so; when PostgreSQL is back,
/// the same chatd serves again without a restart and the retried temp_id is stored once.
#[tokio::test]
async fn postgres_stopped_and_started_under_traffic() {
    if chat_e2e::postgres_admin_url().is_none() {
        return;
    }
    let Some(pg) = PrivatePostgres::start() else {
        assert!(
            std::env::var("CI").as_deref() != Ok("true"),
            "PostgreSQL server binaries are needed under CI"
        );
        return;
    };
    let s = TestServer::start_on_database(&pg.url(), &[]).await;
    let alice = s.registered_user("alice").await;
    let bob = s.registered_user("bob").await;
    let conv: ConversationId = s
        .conversation(&alice, &bob)
        .await
        .parse()
        .expect("conversation id");
    let mut ws = Socket::connect(&s.base, &alice.token)
        .await
        .expect("socket");
    let before = send_acked(&mut ws, conv, "before", 3).await;

    pg.stop();
    let frame = |temp: &str| ClientEvent::MessageSend {
        conversation_id: conv,
        content: "while the database is down".into(),
        temp_id: Some(temp.to_string()),
        reply_to_id: None,
    };
    ws.send(&frame("down-0")).await.expect("send");
    let outcome = ws
        .wait_for(Duration::from_secs(20), |e| match e {
            ServerEvent::MessageSent { temp_id, .. } if temp_id.as_deref() == Some("down-0") => {
                Some(Err("message.sent while PostgreSQL is down".to_string()))
            }
            ServerEvent::Error { code, temp_id, .. } if temp_id.as_deref() == Some("down-0") => {
                Some(Ok(*code))
            }
            _ => None,
        })
        .await
        .expect("an answer to the send");
    assert_eq!(
        outcome,
        Ok(chat_protocol::ErrorCode::ServiceUnavailable),
        "WS send while the database is down"
    );
    let api = Client::new(&s.base, &alice.token).expect("client");
    let rest = api
        .send_text(conv, "rest while down", Some("down-rest"))
        .await;
    assert_eq!(
        rest.as_ref().err().and_then(|e| e.status()),
        Some(503),
        "{rest:?}"
    );
    assert_eq!(
        rest.as_ref().err().and_then(|e| e.code()),
        Some(chat_protocol::ErrorCode::ServiceUnavailable)
    );
    let ready = reqwest::get(s.url("/readyz")).await.expect("readyz");
    assert_eq!(ready.status().as_u16(), 503);

    // Back: the same process serves again; the retried temp_id is stored once.
    pg.pg_ctl_start();
    let deadline = Instant::now() + Duration::from_secs(30);
    let stored_id = loop {
        ws.send(&frame("down-0")).await.expect("send");
        let answer = ws
            .wait_for(Duration::from_secs(10), |e| match e {
                ServerEvent::MessageSent {
                    temp_id: Some(t),
                    message,
                } if t == "down-0" => Some(Some(message.id)),
                ServerEvent::Error { temp_id, .. } if temp_id.as_deref() == Some("down-0") => {
                    Some(None)
                }
                _ => None,
            })
            .await
            .expect("an answer to the retry");
        if let Some(id) = answer {
            break id;
        }
        assert!(
            Instant::now() < deadline,
            "chatd did not recover within 30 s"
        );
        tokio::time::sleep(Duration::from_millis(500)).await;
    };
    let stored = history(&api, conv).await;
    let ids: Vec<MessageId> = stored.iter().map(|m| m.id).collect();
    assert_eq!(stored.len(), before.len() + 1, "{stored:?}");
    assert!(before.iter().all(|id| ids.contains(id)));
    assert!(ids.contains(&stored_id));
    ws.close().await;
    s.stop().await;
}
