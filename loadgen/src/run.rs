//! `chat-loadgen run`: provision and pair users, ramp up the sockets, send on an open-loop
//! schedule, mix in REST reads, drain, and judge.
//!
//! Open loop: message `k` is *due* at `start + k / rate` whatever the server is doing, and
//! every latency is measured from that due time, not from when the write happened. A
//! server that stalls therefore shows its stall in the histograms instead of silently
//! slowing the generator down (no coordinated omission).

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicU64, AtomicU8, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use anyhow::{bail, Context, Result};
use chat_protocol::auth::Claims;
use chat_protocol::rest::{BlockStatus, Conversation, MarkReadRequest};
use chat_protocol::units;
use chat_protocol::ws::{ClientEvent, Envelope, SeqTracker, ServerEvent};
use chat_protocol::{ConversationId, UserId};
use clap::Args;
use futures_util::{SinkExt, StreamExt};
use hdrhistogram::Histogram;
use indicatif::{ProgressBar, ProgressStyle};
use rand::Rng;
use serde::{Deserialize, Serialize};
use tokio::sync::{mpsc, Semaphore};
use tokio_tungstenite::tungstenite::Message as WsMessage;

use crate::net;
use crate::report::{self, MetricSummary, RunResult};
use crate::selfcheck::{self, GeneratorHealth};

#[derive(Debug, Args)]
pub struct RunArgs {
    /// chatd base URL; repeat to spread users over several instances (user i → server i mod n).
    #[arg(
        long = "server",
        env = "CHAT_LOADGEN_SERVER",
        value_delimiter = ',',
        default_value = "http://127.0.0.1:8080"
    )]
    pub servers: Vec<String>,
    /// Synthetic users (paired two by two into conversations).
    #[arg(long, default_value_t = 100)]
    pub users: usize,
    /// WebSocket connections per user.
    #[arg(long, default_value_t = 1)]
    pub sockets_per_user: usize,
    /// Message send rate over WebSocket, e.g. `500/s` or `6000/min`.
    #[arg(long, default_value = "100/s", value_parser = parse_rate)]
    pub rate: f64,
    /// How long messages are sent, e.g. `60s`, `5m`.
    #[arg(long, default_value = "30s", value_parser = parse_duration)]
    pub duration: Duration,
    /// Time over which the sockets are opened (evenly spread); `0s` opens them all at once.
    #[arg(long, default_value = "5s", value_parser = parse_duration_or_zero)]
    pub ramp: Duration,
    /// How long to wait after the last send for outstanding deliveries.
    #[arg(long, default_value = "10s", value_parser = parse_duration)]
    pub drain: Duration,
    /// REST read rate (a mix of the calls in --rest-mix), e.g. `50/s`; `0/s` for none.
    #[arg(long, default_value = "20/s", value_parser = parse_rate_or_zero)]
    pub rest_rate: f64,
    /// Weights of the REST calls: conversations, messages, mark_read, block_status.
    #[arg(long, default_value = "conversations=4,messages=4,mark_read=1,block_status=1", value_parser = parse_mix)]
    pub rest_mix: RestMix,
    /// Media message uploads (multipart, over REST) mixed in, e.g. `2/s`; needs
    /// --media-file. Timed as `media_upload` (request until 201); the receiver's
    /// `message.new` for them is not counted as a text delivery.
    #[arg(long, default_value = "0/s", value_parser = parse_rate_or_zero, requires = "media_file")]
    pub media_rate: f64,
    /// The file each media upload sends (its extension picks the declared type).
    #[arg(long)]
    pub media_file: Option<String>,
    /// Bytes of text per message.
    #[arg(long, default_value_t = 64)]
    pub message_bytes: usize,
    /// HS256 secret to mint user tokens with (the server's CHAT_JWT_SECRET).
    #[arg(long, env = "CHAT_JWT_SECRET", hide_env_values = true)]
    pub jwt_secret: Option<String>,
    /// File of user tokens, one JWT per line (used instead of --jwt-secret); needs at least
    /// --users lines.
    #[arg(long, conflicts_with = "jwt_secret")]
    pub tokens: Option<String>,
    /// Username prefix for minted users (default: random per run, so runs never collide).
    #[arg(long)]
    pub prefix: Option<String>,
    /// Custom p99 target, `METRIC=MS` (repeatable), e.g. `delivery=50`.
    #[arg(long = "slo", value_parser = report::parse_slo)]
    pub slos: Vec<(String, f64)>,
    /// Write the full result as JSON to this file.
    #[arg(long)]
    pub json: Option<String>,
    /// Process id of a chatd on this machine: its resident memory is sampled before and
    /// after the sockets connect (reported as KiB per socket).
    #[arg(long)]
    pub server_pid: Vec<u32>,
    /// Requests in flight during provisioning and pairing.
    #[arg(long, default_value_t = 64)]
    pub setup_concurrency: usize,
    /// Reconnect storm: this long into the send phase every socket is dropped at once
    /// and reconnects with resume (`/chat/ws?since=`), resending what was not
    /// acknowledged. Reported: `resume` (drop until `sync.complete`, per socket; its max
    /// is the time until all are caught up) and `delivery_storm` (delivery of messages
    /// due from the drop until the last socket caught up).
    #[arg(long, value_parser = parse_duration)]
    pub storm_at: Option<Duration>,
    /// Self-check: a pacer lateness p99 (due time to frame written) above this many ms
    /// marks the run generator-limited (never PASS).
    #[arg(long, default_value_t = 1.0)]
    pub max_lateness_ms: f64,
    /// Self-check: a generator CPU average above this many cores during the send phase
    /// marks the run generator-limited (never PASS).
    #[arg(long, default_value_t = 0.9)]
    pub max_generator_cpu: f64,
    /// Run the pacer and the socket workers as ordinary threads instead of asking for
    /// real-time scheduling (see docs/decisions.md, "Load generator").
    #[arg(long)]
    pub no_realtime: bool,
    /// Hide the live progress line.
    #[arg(long)]
    pub quiet: bool,
}

fn parse_rate_or_zero(s: &str) -> Result<f64, String> {
    if s.trim().starts_with("0/") {
        return Ok(0.0);
    }
    parse_rate(s)
}

fn parse_rate(s: &str) -> Result<f64, String> {
    let (n, period) = units::rate(s).map_err(|e| e.to_string())?;
    Ok(n as f64 / period as f64)
}

fn parse_duration(s: &str) -> Result<Duration, String> {
    units::duration(s).map_err(|e| e.to_string())
}

fn parse_duration_or_zero(s: &str) -> Result<Duration, String> {
    if s.trim() == "0s" || s.trim() == "0" {
        return Ok(Duration::ZERO);
    }
    parse_duration(s)
}

/// The REST calls a reader makes, with their relative weights.
#[derive(Debug, Clone, PartialEq)]
pub struct RestMix(Vec<(RestOp, u32)>);

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RestOp {
    Conversations,
    Messages,
    MarkRead,
    BlockStatus,
    /// Only through --media-rate, never in --rest-mix.
    MediaUpload,
}

impl RestOp {
    fn metric(self) -> &'static str {
        match self {
            RestOp::MediaUpload => "media_upload",
            RestOp::Conversations => "rest_conversations",
            RestOp::Messages => "rest_messages",
            RestOp::MarkRead => "rest_mark_read",
            RestOp::BlockStatus => "rest_block_status",
        }
    }
}

fn parse_mix(s: &str) -> Result<RestMix, String> {
    let mut mix = Vec::new();
    for part in s.split(',').map(str::trim).filter(|p| !p.is_empty()) {
        let (name, w) = part
            .split_once('=')
            .ok_or_else(|| format!("{part:?}: expected NAME=WEIGHT"))?;
        let op = match name.trim() {
            "conversations" => RestOp::Conversations,
            "messages" => RestOp::Messages,
            "mark_read" => RestOp::MarkRead,
            "block_status" => RestOp::BlockStatus,
            other => {
                return Err(format!(
                    "unknown REST call {other:?}: one of conversations, messages, mark_read, block_status"
                ))
            }
        };
        let w: u32 = w
            .trim()
            .parse()
            .map_err(|_| format!("{part:?}: weight must be a whole number"))?;
        if w > 0 {
            mix.push((op, w));
        }
    }
    if mix.is_empty() {
        return Err("the REST mix needs at least one call with a positive weight".into());
    }
    Ok(RestMix(mix))
}

impl RestMix {
    fn pick(&self, rng: &mut impl Rng) -> RestOp {
        let total: u32 = self.0.iter().map(|(_, w)| w).sum();
        let mut x = rng.gen_range(0..total);
        for (op, w) in &self.0 {
            if x < *w {
                return *op;
            }
            x -= w;
        }
        self.0[0].0
    }
}

/// One synthetic user.
#[derive(Debug, Clone)]
struct User {
    id: UserId,
    username: String,
    token: String,
    server: usize,
    /// Conversation with the partner, and the partner's index.
    pair: Option<(ConversationId, usize)>,
}

/// What a socket task is told to do.
enum Command {
    Send {
        k: u64,
        conversation_id: ConversationId,
    },
}

#[derive(Default)]
struct Histograms {
    connect: Option<Histogram<u64>>,
    resume: Option<Histogram<u64>>,
    send_ack: Option<Histogram<u64>>,
    delivery: Option<Histogram<u64>>,
    /// The generator's own lateness: due time to the frame being written.
    lateness: Option<Histogram<u64>>,
    rest: BTreeMap<&'static str, Histogram<u64>>,
}

/// Microseconds since `since`, within the histograms' bounds.
fn elapsed_us(since: Instant) -> u64 {
    since.elapsed().as_micros().clamp(1, 600_000_000) as u64
}

fn record(h: &mut Option<Histogram<u64>>, since: Instant) {
    h.get_or_insert_with(report::histogram)
        .saturating_record(elapsed_us(since));
}

/// State shared by every task of a run.
struct Shared {
    /// When message 0 is due, and the spacing between messages.
    send_start: Mutex<Option<Instant>>,
    period: Duration,
    run_tag: String,
    /// Filler that brings each message to --message-bytes.
    content_pad: String,
    /// Per message: deliveries at the receiver's first socket, acks, and outcome flags.
    deliveries: Vec<AtomicU8>,
    acks: Vec<AtomicU8>,
    /// Per message: delivery latency in µs (0 = not delivered), for the storm window.
    delivery_us: Vec<AtomicU64>,
    /// When the storm dropped every socket, and how many have caught up since.
    storm_started: Mutex<Option<Instant>>,
    caught_up: AtomicU64,
    /// Nanoseconds from the drop to the last socket's `sync.complete`.
    last_caught_up_ns: AtomicU64,
    /// 1 = written to the socket, 2 = refused or never written (an error was counted).
    state: Vec<AtomicU8>,
    hists: Mutex<Histograms>,
    errors: Mutex<BTreeMap<String, u64>>,
    connected: AtomicU64,
    connect_failures: AtomicU64,
    sent: AtomicU64,
    acked: AtomicU64,
    delivered: AtomicU64,
    duplicates: AtomicU64,
    refused: AtomicU64,
    rest_done: AtomicU64,
}

const WRITTEN: u8 = 1;
const REFUSED: u8 = 2;

impl Shared {
    fn error(&self, kind: impl Into<String>) {
        *self
            .errors
            .lock()
            .expect("errors lock")
            .entry(kind.into())
            .or_default() += 1;
    }

    fn error_total(&self) -> u64 {
        self.errors.lock().expect("errors lock").values().sum()
    }

    fn due(&self, k: u64) -> Option<Instant> {
        let start = (*self.send_start.lock().expect("start lock"))?;
        Some(start + self.period.mul_f64(k as f64))
    }

    fn temp_id(&self, k: u64) -> String {
        format!("lg{}-{k}", self.run_tag)
    }

    /// `k` of one of this run's temp ids.
    fn k_of(&self, temp_id: Option<&str>) -> Option<u64> {
        let rest = temp_id?.strip_prefix("lg")?;
        let (tag, k) = rest.split_once('-')?;
        if tag != self.run_tag {
            return None;
        }
        k.parse().ok().filter(|k| (*k as usize) < self.acks.len())
    }

    fn refuse(&self, k: u64) {
        if self.state[k as usize].swap(REFUSED, Ordering::AcqRel) != REFUSED {
            self.refused.fetch_add(1, Ordering::Relaxed);
        }
    }
}

pub async fn run(args: RunArgs) -> Result<bool> {
    if args.users < 2 {
        bail!("--users must be at least 2 (users are paired into conversations)");
    }
    if args.sockets_per_user == 0 {
        bail!("--sockets-per-user must be at least 1");
    }
    let mut targets = report::default_targets();
    for (k, v) in &args.slos {
        targets.insert(k.clone(), *v);
    }
    let sockets_total = args.users * args.sockets_per_user;
    let nofile = net::raise_nofile((sockets_total as u64) * 2 + 1024);
    if nofile < sockets_total as u64 + 256 {
        eprintln!(
            "warning: open-file limit is {nofile}, fewer than the {sockets_total} sockets asked for"
        );
    }
    let mut servers = Vec::new();
    for s in &args.servers {
        let (addr, hostport) = net::resolve(s).await?;
        servers.push((s.trim_end_matches('/').to_string(), addr, hostport));
    }
    let http = reqwest::Client::builder()
        .timeout(Duration::from_secs(30))
        .pool_max_idle_per_host(256)
        .build()?;

    let run_tag: String = {
        let mut rng = rand::thread_rng();
        (0..6)
            .map(|_| char::from(b'a' + rng.gen_range(0..26u8)))
            .collect()
    };
    let mut users = make_users(&args, &run_tag, servers.len())?;

    let total_msgs = (args.rate * args.duration.as_secs_f64()).round() as u64;
    let shared = Arc::new(Shared {
        send_start: Mutex::new(None),
        period: if args.rate > 0.0 {
            Duration::from_secs_f64(1.0 / args.rate)
        } else {
            Duration::ZERO
        },
        run_tag: run_tag.clone(),
        content_pad: "x".repeat(args.message_bytes.saturating_sub(20).max(1)),
        deliveries: (0..total_msgs).map(|_| AtomicU8::new(0)).collect(),
        acks: (0..total_msgs).map(|_| AtomicU8::new(0)).collect(),
        delivery_us: (0..total_msgs).map(|_| AtomicU64::new(0)).collect(),
        storm_started: Mutex::new(None),
        caught_up: AtomicU64::new(0),
        last_caught_up_ns: AtomicU64::new(0),
        state: (0..total_msgs).map(|_| AtomicU8::new(0)).collect(),
        hists: Mutex::new(Histograms::default()),
        errors: Mutex::new(BTreeMap::new()),
        connected: AtomicU64::new(0),
        connect_failures: AtomicU64::new(0),
        sent: AtomicU64::new(0),
        acked: AtomicU64::new(0),
        delivered: AtomicU64::new(0),
        duplicates: AtomicU64::new(0),
        refused: AtomicU64::new(0),
        rest_done: AtomicU64::new(0),
    });

    let progress = if args.quiet {
        ProgressBar::hidden()
    } else {
        ProgressBar::new(0)
    };

    // 1. Provision every user (first request creates it), then pair them.
    progress.set_style(ProgressStyle::with_template(
        "{prefix:>10} [{bar:40}] {pos}/{len} {msg}",
    )?);
    progress.set_prefix("provision");
    progress.set_length(users.len() as u64);
    progress.set_position(0);
    let base_of = |u: &User| servers[u.server].0.clone();
    let sem = Arc::new(Semaphore::new(args.setup_concurrency.max(1)));
    let mut set = tokio::task::JoinSet::new();
    for u in &users {
        let (http, url, token) = (
            http.clone(),
            format!("{}/chat/blocks", base_of(u)),
            u.token.clone(),
        );
        let permit = sem.clone().acquire_owned().await?;
        set.spawn(async move {
            let _permit = permit;
            let r = http.get(url).bearer_auth(token).send().await;
            match r {
                Ok(r) if r.status().is_success() => Ok(()),
                Ok(r) => Err(format!(
                    "HTTP {}: {}",
                    r.status(),
                    r.text().await.unwrap_or_default()
                )),
                Err(e) => Err(e.to_string()),
            }
        });
        while let Some(done) = set.try_join_next() {
            done?.map_err(|e| anyhow::anyhow!("provisioning a user failed: {e}"))?;
            progress.inc(1);
        }
    }
    while let Some(done) = set.join_next().await {
        done?.map_err(|e| anyhow::anyhow!("provisioning a user failed: {e}"))?;
        progress.inc(1);
    }

    progress.set_prefix("pair");
    progress.set_length((users.len() / 2) as u64);
    progress.set_position(0);
    let mut pair_set = tokio::task::JoinSet::new();
    for i in (0..users.len() - 1).step_by(2) {
        let (http, url, token) = (
            http.clone(),
            format!(
                "{}/chat/conversations/with/{}",
                base_of(&users[i]),
                users[i + 1].username
            ),
            users[i].token.clone(),
        );
        let permit = sem.clone().acquire_owned().await?;
        pair_set.spawn(async move {
            let _permit = permit;
            let r = http
                .get(url)
                .bearer_auth(token)
                .send()
                .await
                .map_err(|e| e.to_string())?;
            let status = r.status();
            if !status.is_success() {
                return Err(format!(
                    "HTTP {status}: {}",
                    r.text().await.unwrap_or_default()
                ));
            }
            let c: Conversation = r.json().await.map_err(|e| e.to_string())?;
            Ok((i, c.id))
        });
    }
    while let Some(done) = pair_set.join_next().await {
        let (i, conv) = done?.map_err(|e| anyhow::anyhow!("pairing users failed: {e}"))?;
        users[i].pair = Some((conv, i + 1));
        users[i + 1].pair = Some((conv, i));
        progress.inc(1);
    }
    let users = Arc::new(users);

    // 2. Ramp up the sockets: socket j is due at j * ramp / n; connect time is measured
    //    from that due time to `connection.success`.
    let rss_before: Vec<Option<u64>> = args.server_pid.iter().map(|p| rss_kib(*p)).collect();
    progress.set_prefix("connect");
    progress.set_length(sockets_total as u64);
    progress.set_position(0);
    let mut senders: Vec<Vec<Option<mpsc::UnboundedSender<Command>>>> =
        vec![vec![None; args.sockets_per_user]; users.len()];
    let ramp_start = Instant::now() + Duration::from_millis(50);
    let mut connects = tokio::task::JoinSet::new();
    for j in 0..sockets_total {
        let (ui, si) = (j % users.len(), j / users.len());
        let due = ramp_start + args.ramp.mul_f64(j as f64 / sockets_total as f64);
        let (_, addr, hostport) = servers[users[ui].server].clone();
        let token = users[ui].token.clone();
        let source = net::source_for(addr, j);
        connects.spawn(async move {
            tokio::time::sleep_until(due.into()).await;
            let r = connect(addr, &hostport, &token, source, None).await;
            // Measured here, not when the collecting loop gets to it.
            let took_us = elapsed_us(due);
            (ui, si, took_us, r)
        });
    }
    let mut live = tokio::task::JoinSet::new();
    let (storm_tx, storm_rx) = tokio::sync::watch::channel(false);
    while let Some(done) = connects.join_next().await {
        let (ui, si, took_us, r) = done?;
        progress.inc(1);
        match r {
            Ok(ws) => {
                shared
                    .hists
                    .lock()
                    .expect("hists lock")
                    .connect
                    .get_or_insert_with(report::histogram)
                    .saturating_record(took_us);
                shared.connected.fetch_add(1, Ordering::Relaxed);
                let (tx, rx) = mpsc::unbounded_channel();
                senders[ui][si] = Some(tx);
                let me = users[ui].id;
                let (_, addr, hostport) = servers[users[ui].server].clone();
                let dial = Dial {
                    addr,
                    hostport,
                    token: users[ui].token.clone(),
                    source: net::source_for(addr, ui + si * users.len()),
                };
                live.spawn(socket_task(
                    ws,
                    dial,
                    me,
                    si,
                    rx,
                    storm_rx.clone(),
                    shared.clone(),
                ));
            }
            Err(e) => {
                shared.connect_failures.fetch_add(1, Ordering::Relaxed);
                shared.error(format!("connect: {}", short(&e)));
            }
        }
        progress.set_message(format!(
            "failed {}",
            shared.connect_failures.load(Ordering::Relaxed)
        ));
    }
    // Let the server settle the presence fan-out of the ramp before measuring memory.
    tokio::time::sleep(Duration::from_millis(500)).await;
    let rss_after: Vec<Option<u64>> = args.server_pid.iter().map(|p| rss_kib(*p)).collect();

    // Senders: every user whose own sockets and whose partner's sockets all connected.
    let fully = |i: usize| senders[i].iter().all(Option::is_some);
    let active: Vec<usize> = (0..users.len())
        .filter(|&i| users[i].pair.is_some_and(|(_, p)| fully(i) && fully(p)))
        .collect();
    if active.is_empty() && total_msgs > 0 {
        bail!("no pair of users has all its sockets connected; nothing to send");
    }

    // 3. Send phase: open-loop message schedule plus REST readers.
    progress.set_style(ProgressStyle::with_template(
        "{prefix:>10} [{elapsed_precise}] {msg}",
    )?);
    progress.set_prefix("send");
    let start = Instant::now() + Duration::from_millis(20);
    *shared.send_start.lock().expect("start lock") = Some(start);
    let end = start + args.duration;

    let rest_task = (args.rest_rate > 0.0).then(|| {
        tokio::spawn(rest_loop(
            http.clone(),
            servers.iter().map(|s| s.0.clone()).collect(),
            users.clone(),
            active.clone(),
            args.rest_mix.clone(),
            args.rest_rate,
            None,
            start,
            end,
            shared.clone(),
        ))
    });
    let media_task = match (&args.media_file, args.media_rate > 0.0) {
        (Some(path), true) => Some(tokio::spawn(rest_loop(
            http.clone(),
            servers.iter().map(|s| s.0.clone()).collect(),
            users.clone(),
            active.clone(),
            RestMix(vec![(RestOp::MediaUpload, 1)]),
            args.media_rate,
            Some(Arc::new(crate::media::UploadFile::read(path).await?)),
            start,
            end,
            shared.clone(),
        ))),
        _ => None,
    };

    let ticker = {
        let (shared, progress) = (shared.clone(), progress.clone());
        tokio::spawn(async move {
            loop {
                tokio::time::sleep(Duration::from_millis(250)).await;
                let p99 = shared
                    .hists
                    .lock()
                    .expect("hists lock")
                    .delivery
                    .as_ref()
                    .map(|h| h.value_at_quantile(0.99) as f64 / 1000.0)
                    .unwrap_or(0.0);
                progress.set_message(format!(
                    "sockets {} | sent {} acked {} delivered {} | delivery p99 {:.1} ms | rest {} | errors {}",
                    shared.connected.load(Ordering::Relaxed),
                    shared.sent.load(Ordering::Relaxed),
                    shared.acked.load(Ordering::Relaxed),
                    shared.delivered.load(Ordering::Relaxed),
                    p99,
                    shared.rest_done.load(Ordering::Relaxed),
                    shared.error_total(),
                ));
            }
        })
    };

    let storm_task = args.storm_at.map(|at| {
        let shared = shared.clone();
        tokio::spawn(async move {
            tokio::time::sleep_until((start + at).into()).await;
            *shared.storm_started.lock().expect("storm lock") = Some(Instant::now());
            let _ = storm_tx.send(true);
        })
    });
    let stopwatch = selfcheck::Stopwatch::start();
    // The pacer thread hands each message straight to its socket task: one wake-up between
    // the due time and the write, not two (a hop through this task cost ~0.2 ms each).
    let senders = Arc::new(senders);
    let dispatch = {
        let (senders, users, shared, active) = (
            senders.clone(),
            users.clone(),
            shared.clone(),
            active.clone(),
        );
        let sockets_per_user = args.sockets_per_user;
        move |k: u64| {
            let ui = active[(k as usize) % active.len()];
            let (conversation_id, _) = users[ui].pair.expect("active users are paired");
            let si = (k as usize / active.len()) % sockets_per_user;
            let tx = senders[ui][si]
                .as_ref()
                .expect("active users are connected");
            shared.sent.fetch_add(1, Ordering::Relaxed);
            if tx.send(Command::Send { k, conversation_id }).is_err() {
                shared.error("send: socket already closed");
                shared.refuse(k);
            }
        }
    };
    let (period, realtime) = (shared.period, !args.no_realtime);
    // The pacer thread's own wake-up (due time to hand-off), apart from the hop to the
    // socket task: tells an OS that kept the thread off a CPU from a busy runtime.
    let wake = tokio::task::spawn_blocking(move || {
        let mut wake = report::histogram();
        pace(start, period, total_msgs, realtime, |k| {
            wake.saturating_record(elapsed_us(start + period.mul_f64(k as f64)));
            dispatch(k);
            true
        });
        wake
    })
    .await?;
    tokio::time::sleep_until(end.into()).await;
    let (send_cpu, send_wall) = stopwatch.read();
    for t in [rest_task, media_task, storm_task].into_iter().flatten() {
        t.await?;
    }

    // 4. Drain: wait for every written message to be delivered (or the drain to run out).
    progress.set_prefix("drain");
    let drain_end = Instant::now() + args.drain;
    while Instant::now() < drain_end {
        let settled = shared.delivered.load(Ordering::Relaxed)
            + shared.refused.load(Ordering::Relaxed)
            >= total_msgs
            && shared.acked.load(Ordering::Relaxed) + shared.refused.load(Ordering::Relaxed)
                >= total_msgs
            && (args.storm_at.is_none()
                || shared.caught_up.load(Ordering::Relaxed)
                    >= shared.connected.load(Ordering::Relaxed));
        if settled {
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    ticker.abort();
    progress.finish_and_clear();
    drop(senders);
    live.abort_all();

    // 5. Verdict.
    let mut lost = 0u64;
    let mut unacked = 0u64;
    for k in 0..total_msgs as usize {
        if shared.state[k].load(Ordering::Acquire) == WRITTEN {
            if shared.deliveries[k].load(Ordering::Acquire) == 0 {
                lost += 1;
            }
            if shared.acks[k].load(Ordering::Acquire) == 0 {
                unacked += 1;
            }
        }
    }
    if unacked > 0 {
        *shared
            .errors
            .lock()
            .expect("errors lock")
            .entry("send: never acknowledged".into())
            .or_default() += unacked;
    }
    let hists = std::mem::take(&mut *shared.hists.lock().expect("hists lock"));
    let mut metrics = BTreeMap::new();
    let mut add = |name: &str, h: Option<&Histogram<u64>>| {
        if let Some(h) = h {
            metrics.insert(
                name.to_string(),
                MetricSummary::from_hist(h, targets.get(name).copied()),
            );
        }
    };
    add("connect", hists.connect.as_ref());
    add("resume", hists.resume.as_ref());
    let storm_hist = storm_window(&shared);
    add("delivery_storm", storm_hist.as_ref());
    add("send_ack", hists.send_ack.as_ref());
    add("delivery", hists.delivery.as_ref());
    for (name, h) in &hists.rest {
        add(name, Some(h));
    }
    let errors = shared.errors.lock().expect("errors lock").clone();
    let duplicates = shared.duplicates.load(Ordering::Relaxed);
    let connect_failures = shared.connect_failures.load(Ordering::Relaxed);
    let server_memory = args
        .server_pid
        .iter()
        .zip(rss_before.iter().zip(rss_after.iter()))
        .map(|(pid, (b, a))| ServerMemory::new(*pid, *b, *a, sockets_total, args.server_pid.len()))
        .collect();
    let generator = GeneratorHealth::judge(
        send_cpu,
        send_wall,
        shared.sent.load(Ordering::Relaxed),
        hists.lateness.as_ref(),
        Some(&wake),
        selfcheck::Limits {
            max_lateness_p99_ms: args.max_lateness_ms,
            max_cpu_cores: args.max_generator_cpu,
        },
    );
    let pass = metrics.values().all(|m| m.pass)
        && !generator.limited()
        && lost == 0
        && duplicates == 0
        && connect_failures == 0
        && errors.is_empty();
    let result = RunResult {
        server: args.servers.join(","),
        users: users.len(),
        sockets: sockets_total,
        rate_per_sec: args.rate,
        duration_secs: args.duration.as_secs_f64(),
        started_at: chrono::Utc::now().to_rfc3339(),
        connected: shared.connected.load(Ordering::Relaxed),
        connect_failures,
        sent: shared.sent.load(Ordering::Relaxed),
        acked: shared.acked.load(Ordering::Relaxed),
        delivered: shared.delivered.load(Ordering::Relaxed),
        lost,
        duplicates,
        errors,
        metrics,
        server_memory,
        generator: Some(generator),
        timeline: report::Second::timeline(
            shared
                .delivery_us
                .iter()
                .map(|us| us.load(Ordering::Relaxed)),
            args.rate,
        ),
        pass,
    };
    result.print_table();
    if let Some(path) = &args.json {
        std::fs::write(path, serde_json::to_vec_pretty(&result)?)
            .with_context(|| format!("cannot write {path}"))?;
    }
    Ok(pass)
}

/// Resident memory of a server process, sampled around the ramp.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct ServerMemory {
    pub pid: u32,
    pub rss_before_kib: Option<u64>,
    pub rss_after_kib: Option<u64>,
    /// (after - before) / sockets this instance holds.
    pub kib_per_socket: Option<f64>,
}

impl ServerMemory {
    fn new(pid: u32, before: Option<u64>, after: Option<u64>, sockets: usize, n: usize) -> Self {
        let per = match (before, after) {
            (Some(b), Some(a)) if sockets > 0 => {
                Some(a.saturating_sub(b) as f64 / (sockets as f64 / n.max(1) as f64))
            }
            _ => None,
        };
        ServerMemory {
            pid,
            rss_before_kib: before,
            rss_after_kib: after,
            kib_per_socket: per,
        }
    }
}

pub(crate) fn rss_kib(pid: u32) -> Option<u64> {
    proc_status_kib(pid, "VmRSS:")
}

/// A `kB` field of `/proc/PID/status` (`VmRSS:`, `VmHWM:` for the peak).
pub(crate) fn proc_status_kib(pid: u32, field: &str) -> Option<u64> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    status
        .lines()
        .find_map(|l| l.strip_prefix(field))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
}

fn short(e: &anyhow::Error) -> String {
    let s = format!("{e}");
    s.chars().take(60).collect()
}

fn make_users(args: &RunArgs, run_tag: &str, servers: usize) -> Result<Vec<User>> {
    let mut users = Vec::with_capacity(args.users);
    if let Some(path) = &args.tokens {
        let text = std::fs::read_to_string(path).with_context(|| format!("cannot read {path}"))?;
        let mut validation = jsonwebtoken::Validation::default();
        validation.insecure_disable_signature_validation();
        validation.validate_exp = false;
        for (n, line) in text
            .lines()
            .map(str::trim)
            .filter(|l| !l.is_empty() && !l.starts_with('#'))
            .enumerate()
            .take(args.users)
        {
            let data = jsonwebtoken::decode::<Claims>(
                line,
                &jsonwebtoken::DecodingKey::from_secret(b""),
                &validation,
            )
            .with_context(|| format!("{path}: token {} is not a JWT with sub/username", n + 1))?;
            let id: UserId = data
                .claims
                .sub
                .parse()
                .with_context(|| format!("{path}: token {}: sub is not a UUID", n + 1))?;
            users.push(User {
                id,
                username: data.claims.username,
                token: line.to_string(),
                server: n % servers,
                pair: None,
            });
        }
        if users.len() < args.users {
            bail!(
                "{path} holds {} tokens, fewer than --users {}",
                users.len(),
                args.users
            );
        }
        return Ok(users);
    }
    let Some(secret) = &args.jwt_secret else {
        bail!("give --jwt-secret (or CHAT_JWT_SECRET) to mint tokens, or --tokens FILE");
    };
    let prefix = args
        .prefix
        .clone()
        .unwrap_or_else(|| format!("lg_{run_tag}_"));
    // One `exp` for every user: the ttl is taken from it at each mint.
    let exp = chrono::Utc::now().timestamp()
        + (args.duration + args.ramp + args.drain).as_secs() as i64
        + 3600;
    for i in 0..args.users {
        let id = UserId::new();
        let username = format!("{prefix}{i}");
        let ttl = exp - chrono::Utc::now().timestamp();
        let token =
            chat_client::mint_token_for(secret, id, &username, ttl).map_err(anyhow::Error::msg)?;
        users.push(User {
            id,
            username,
            token,
            server: i % servers,
            pair: None,
        });
    }
    Ok(users)
}

type Ws = tokio_tungstenite::WebSocketStream<tokio::net::TcpStream>;

/// Open a socket and wait for `connection.success`.
async fn connect(
    addr: SocketAddr,
    hostport: &str,
    token: &str,
    source: Option<std::net::IpAddr>,
    since: Option<u64>,
) -> Result<Ws> {
    let fut = async {
        let mut ws = net::connect_ws(addr, hostport, token, source, since).await?;
        while let Some(msg) = ws.next().await {
            if let WsMessage::Text(t) = msg? {
                if let Ok(ServerEvent::ConnectionSuccess { .. }) =
                    serde_json::from_str::<ServerEvent>(&t)
                {
                    return Ok(ws);
                }
            }
        }
        bail!("closed before connection.success")
    };
    tokio::time::timeout(Duration::from_secs(30), fut)
        .await
        .context("no connection.success within 30 s")?
}

/// Where a socket task reconnects to.
struct Dial {
    addr: SocketAddr,
    hostport: String,
    token: String,
    source: Option<std::net::IpAddr>,
}

/// One socket: write the sends it is told to, read and account for every event. When the
/// storm comes it drops its connection, reconnects resuming from its last position, and
/// resends what was written but not acknowledged (same temp_id), as a real client does.
#[allow(clippy::too_many_arguments)]
async fn socket_task(
    ws: Ws,
    dial: Dial,
    me: UserId,
    socket_index: usize,
    mut rx: mpsc::UnboundedReceiver<Command>,
    mut storm: tokio::sync::watch::Receiver<bool>,
    shared: Arc<Shared>,
) {
    let mut tracker = SeqTracker::default();
    let mut pending: BTreeMap<u64, ConversationId> = BTreeMap::new();
    let mut resuming = false;
    // Without a storm the sender is gone and `changed()` is ready at once, forever: the
    // branch is switched off then, or every socket task would spin.
    let mut storm_open = true;
    let mut ws = Some(ws);
    let write = |k: u64, conversation_id| {
        let frame = ClientEvent::MessageSend {
            conversation_id,
            content: format!("load message {k} {}", shared.content_pad),
            temp_id: Some(shared.temp_id(k)),
        };
        WsMessage::Text(serde_json::to_string(&frame).unwrap_or_default().into())
    };
    loop {
        let Some(socket) = ws.take() else { return };
        let (mut sink, mut stream) = socket.split();
        for (&k, &conv) in &pending {
            if sink.send(write(k, conv)).await.is_err() {
                break;
            }
        }
        let dropped = loop {
            tokio::select! {
                changed = storm.changed(), if storm_open && !resuming => match changed {
                    Ok(()) if *storm.borrow() => break true, // drop without a goodbye
                    Ok(()) => {}
                    Err(_) => storm_open = false,
                },
                cmd = rx.recv() => match cmd {
                    Some(Command::Send { k, conversation_id }) => {
                        if let Some(due) = shared.due(k) {
                            record(&mut shared.hists.lock().expect("hists lock").lateness, due);
                        }
                        shared.state[k as usize].store(WRITTEN, Ordering::Release);
                        pending.insert(k, conversation_id);
                        if let Err(e) = sink.send(write(k, conversation_id)).await {
                            shared.error(format!("ws write: {e}"));
                            shared.refuse(k);
                            break false;
                        }
                    }
                    None => break false,
                },
                msg = stream.next() => match msg {
                    Some(Ok(WsMessage::Text(t))) => {
                        match on_event(&t, me, socket_index, &shared, &mut tracker) {
                            Some(Seen::Acked(k)) => {
                                pending.remove(&k);
                            }
                            Some(Seen::CaughtUp) if resuming => {
                                resuming = false;
                                caught_up(&shared);
                            }
                            _ => {}
                        }
                    }
                    Some(Ok(WsMessage::Close(frame))) => {
                        let code = frame.map(|f| u16::from(f.code)).unwrap_or(1005);
                        shared.error(format!("ws closed by server: {code}"));
                        break false;
                    }
                    Some(Ok(_)) => {}
                    Some(Err(e)) => {
                        shared.error(format!("ws read: {}", e.to_string().chars().take(60).collect::<String>()));
                        break false;
                    }
                    None => {
                        shared.error("ws closed without a close frame");
                        break false;
                    }
                },
            }
        };
        if !dropped {
            return;
        }
        drop((sink, stream));
        resuming = true;
        let deadline = Instant::now() + Duration::from_secs(60);
        while ws.is_none() && Instant::now() < deadline {
            match connect(
                dial.addr,
                &dial.hostport,
                &dial.token,
                dial.source,
                tracker.position(),
            )
            .await
            {
                Ok(s) => ws = Some(s),
                Err(_) => tokio::time::sleep(Duration::from_millis(100)).await,
            }
        }
        if ws.is_none() {
            shared.error("storm: could not reconnect within 60 s");
        }
    }
}

fn caught_up(shared: &Shared) {
    shared.caught_up.fetch_add(1, Ordering::Relaxed);
    let Some(t0) = *shared.storm_started.lock().expect("storm lock") else {
        return;
    };
    record(&mut shared.hists.lock().expect("hists lock").resume, t0);
    shared
        .last_caught_up_ns
        .fetch_max(t0.elapsed().as_nanos() as u64, Ordering::Relaxed);
}

/// Delivery of the messages due from the storm's drop until the last socket caught up.
fn storm_window(shared: &Shared) -> Option<Histogram<u64>> {
    let t0 = (*shared.storm_started.lock().expect("storm lock"))?;
    let t1 = t0 + Duration::from_nanos(shared.last_caught_up_ns.load(Ordering::Relaxed));
    let mut h = report::histogram();
    for k in 0..shared.delivery_us.len() as u64 {
        let us = shared.delivery_us[k as usize].load(Ordering::Relaxed);
        if us > 0 && shared.due(k).is_some_and(|d| d >= t0 && d <= t1) {
            h.saturating_record(us);
        }
    }
    (!h.is_empty()).then_some(h)
}

/// What a frame meant to its socket task.
enum Seen {
    Acked(u64),
    CaughtUp,
}

fn on_event(
    text: &str,
    me: UserId,
    socket_index: usize,
    shared: &Shared,
    tracker: &mut SeqTracker,
) -> Option<Seen> {
    let env = match serde_json::from_str::<Envelope>(text) {
        Ok(e) => e,
        Err(_) => {
            shared.error("ws: unparseable server event");
            return None;
        }
    };
    // A position seen already (live beyond a hole, then replayed): a client drops it.
    if env.seq.is_some_and(|s| tracker.seen(s))
        && !matches!(env.event, ServerEvent::MessageSent { .. })
    {
        return None;
    }
    tracker.observe(&env);
    match env.event {
        ServerEvent::SyncComplete { .. } => return Some(Seen::CaughtUp),
        ServerEvent::MessageSent { temp_id, .. } => {
            let k = shared.k_of(temp_id.as_deref())?;
            if shared.acks[k as usize].fetch_add(1, Ordering::AcqRel) == 0 {
                shared.acked.fetch_add(1, Ordering::Relaxed);
                if let Some(due) = shared.due(k) {
                    record(&mut shared.hists.lock().expect("hists lock").send_ack, due);
                }
            }
            return Some(Seen::Acked(k));
        }
        ServerEvent::MessageNew { message } => {
            if message.sender_id == me || socket_index != 0 {
                return None; // another device of the sender, or a receiver's second socket
            }
            let k = shared.k_of(message.temp_id.as_deref())?;
            if shared.deliveries[k as usize].fetch_add(1, Ordering::AcqRel) == 0 {
                shared.delivered.fetch_add(1, Ordering::Relaxed);
                if let Some(due) = shared.due(k) {
                    shared.delivery_us[k as usize].store(elapsed_us(due), Ordering::Relaxed);
                    record(&mut shared.hists.lock().expect("hists lock").delivery, due);
                }
            } else {
                shared.duplicates.fetch_add(1, Ordering::Relaxed);
            }
        }
        ServerEvent::Error { code, temp_id, .. } => {
            shared.error(format!("ws error: {}", code.as_str()));
            if let Some(k) = shared.k_of(temp_id.as_deref()) {
                shared.refuse(k);
            }
        }
        _ => {}
    }
    None
}

/// Tick `i` (for `i` in `0..count`) at `start + i * period`, from an OS thread.
///
/// tokio's timer wheel has 1 ms granularity and rounds up, so `sleep_until(due)` wakes
/// 0–2 ms late, and every open-loop latency is measured from the due time: the generator's
/// own lateness would read as server latency (at light load it was most of it). A thread
/// in `nanosleep` wakes within tens of microseconds. Late ticks queue up and are fired at
/// once, still measured from their due time.
fn pacer(
    start: Instant,
    period: Duration,
    count: u64,
    realtime: bool,
) -> mpsc::UnboundedReceiver<u64> {
    let (tx, rx) = mpsc::unbounded_channel();
    std::thread::spawn(move || pace(start, period, count, realtime, |i| tx.send(i).is_ok()));
    rx
}

/// Call `tick(i)` at `start + i * period` for `i` in `0..count`, on this (OS) thread,
/// until it returns false.
///
/// The thread asks for real-time scheduling (SCHED_FIFO) first: it sleeps nearly all the
/// time, but on a host whose cores the server keeps busy an ordinary thread waits
/// milliseconds for a CPU after its sleep ends (p99 2.2 ms at 700 msg/s, measured), and
/// that wait is lateness. Without the privilege it stays an ordinary thread.
fn pace(
    start: Instant,
    period: Duration,
    count: u64,
    realtime: bool,
    mut tick: impl FnMut(u64) -> bool,
) {
    if realtime {
        net::realtime_thread(net::PACER_PRIORITY);
    }
    for i in 0..count {
        let due = start + period.mul_f64(i as f64);
        let now = Instant::now();
        if due > now {
            std::thread::sleep(due - now);
        }
        if !tick(i) {
            return;
        }
    }
}

/// Open-loop REST readers: call `i` is due at `start + i / rate`.
#[allow(clippy::too_many_arguments)]
async fn rest_loop(
    http: reqwest::Client,
    servers: Vec<String>,
    users: Arc<Vec<User>>,
    active: Vec<usize>,
    mix: RestMix,
    rate: f64,
    upload: Option<Arc<crate::media::UploadFile>>,
    start: Instant,
    end: Instant,
    shared: Arc<Shared>,
) {
    let period = Duration::from_secs_f64(1.0 / rate);
    let inflight = Arc::new(Semaphore::new(4096));
    let mut tasks = tokio::task::JoinSet::new();
    let calls = ((end - start).as_secs_f64() * rate).ceil() as u64;
    // REST lateness is not judged: an ordinary thread does.
    let mut ticks = pacer(start, period, calls, false);
    while let Some(i) = ticks.recv().await {
        let due = start + period.mul_f64(i as f64);
        if due >= end {
            break;
        }
        let (op, ui) = {
            let mut rng = rand::thread_rng();
            (mix.pick(&mut rng), active[rng.gen_range(0..active.len())])
        };
        let Ok(permit) = inflight.clone().try_acquire_owned() else {
            shared.error("rest: 4096 calls in flight, call skipped");
            continue;
        };
        let (http, shared, users) = (http.clone(), shared.clone(), users.clone());
        let base = servers[users[ui].server].clone();
        let upload = upload.clone();
        tasks.spawn(async move {
            let _permit = permit;
            let u = &users[ui];
            let (conv, partner) = u.pair.expect("active users are paired");
            let req = match op {
                RestOp::Conversations => http.get(format!("{base}/chat/conversations?limit=20")),
                RestOp::Messages => http.get(format!(
                    "{base}/chat/conversations/{conv}/messages?limit=50"
                )),
                RestOp::MarkRead => http
                    .post(format!("{base}/chat/conversations/{conv}/read"))
                    .json(&MarkReadRequest::default()),
                RestOp::BlockStatus => http.get(format!(
                    "{base}/chat/blocks/status/{}",
                    users[partner].username
                )),
                RestOp::MediaUpload => {
                    let form = match upload.as_deref().map(|f| f.form(&format!("md-{i}"))) {
                        Some(Ok(form)) => form,
                        _ => {
                            shared.error("media_upload: no usable --media-file");
                            return;
                        }
                    };
                    http.post(format!("{base}/chat/conversations/{conv}/messages"))
                        .multipart(form)
                }
            };
            let outcome = async {
                let r = req.bearer_auth(&u.token).send().await?;
                let status = r.status();
                let bytes = r.bytes().await?;
                Ok::<_, reqwest::Error>((status, bytes))
            }
            .await;
            shared.rest_done.fetch_add(1, Ordering::Relaxed);
            match outcome {
                Ok((status, body)) if status.is_success() => {
                    if op == RestOp::BlockStatus
                        && serde_json::from_slice::<BlockStatus>(&body).is_err()
                    {
                        shared.error("rest: block status body unreadable");
                    }
                    let mut h = shared.hists.lock().expect("hists lock");
                    h.rest
                        .entry(op.metric())
                        .or_insert_with(report::histogram)
                        .saturating_record(elapsed_us(due));
                }
                Ok((status, _)) => {
                    shared.error(format!("{}: HTTP {}", op.metric(), status.as_u16()))
                }
                Err(e) => shared.error(format!(
                    "{}: {}",
                    op.metric(),
                    if e.is_timeout() {
                        "timeout"
                    } else {
                        "transport error"
                    }
                )),
            }
        });
        while tasks.try_join_next().is_some() {}
    }
    while tasks.join_next().await.is_some() {}
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rest_mix_parses_and_picks_by_weight() {
        let mix = parse_mix("conversations=1,messages=0,block_status=3").unwrap();
        assert_eq!(
            mix,
            RestMix(vec![(RestOp::Conversations, 1), (RestOp::BlockStatus, 3)])
        );
        let mut rng = rand::thread_rng();
        let picks: Vec<RestOp> = (0..2000).map(|_| mix.pick(&mut rng)).collect();
        let status = picks.iter().filter(|o| **o == RestOp::BlockStatus).count();
        assert!((1300..1700).contains(&status), "{status} of 2000");
        assert!(parse_mix("bogus=1").is_err());
        assert!(parse_mix("messages=0").is_err());
    }

    #[test]
    fn rates_and_durations() {
        assert_eq!(parse_rate("500/s").unwrap(), 500.0);
        assert_eq!(parse_rate("60/min").unwrap(), 1.0);
        assert_eq!(parse_rate_or_zero("0/s").unwrap(), 0.0);
        assert!(parse_rate("0/s").is_err());
        assert_eq!(parse_duration_or_zero("0s").unwrap(), Duration::ZERO);
        assert_eq!(parse_duration("10s").unwrap(), Duration::from_secs(10));
    }
}
