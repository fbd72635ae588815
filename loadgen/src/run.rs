//! `chat-loadgen run`: provision and pair users, ramp up the sockets, send on an open-loop
//! schedule, mix in REST reads, drain, and judge.
//!
//! Open loop: message `k` is *due* at `start + k / rate` whatever the server is doing, and
//! every latency is measured from that due time, not from when the write happened. A
//! server that stalls therefore shows its stall in the histograms instead of silently
//! slowing the generator down (no coordinated omission).

use std::collections::BTreeMap;
use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::{bail, Context, Result};
use hdrhistogram::Histogram;
use indicatif::{ProgressBar, ProgressStyle};
use rand::Rng;
use tokio::sync::{mpsc, watch};
use tokio::task::{JoinHandle, JoinSet};

use crate::args::RunArgs;
use crate::hostcpu::{self, HostCpu};
use crate::media::UploadFile;
use crate::memory::{rss_of, ServerMemory};
use crate::net;
use crate::pacer::pace;
use crate::report::{self, MetricSummary, RunResult};
use crate::rest::{self, RestMix, RestOp};
use crate::selfcheck::{self, GeneratorHealth};
use crate::setup::{self, Server, User};
use crate::shared::{elapsed_us, storm_window, Histograms, Shared, WRITTEN};
use crate::socket::{self, Command, Dial, Socket};

/// What every step of a run works with.
pub(crate) struct Ctx {
    pub(crate) servers: Vec<Server>,
    pub(crate) http: reqwest::Client,
    shared: Arc<Shared>,
    pub(crate) progress: ProgressBar,
    sockets_total: usize,
    total_msgs: u64,
}

/// A command channel per user and socket (`None`: that socket did not connect).
type Senders = Vec<Vec<Option<mpsc::UnboundedSender<Command>>>>;

/// The connected sockets: their command channels, their tasks, and the storm trigger.
struct Sockets {
    senders: Arc<Senders>,
    live: JoinSet<()>,
    storm_tx: watch::Sender<bool>,
}

/// What the send phase leaves for the drain and the verdict.
struct SendPhase {
    /// The live progress line, stopped after the drain.
    ticker: JoinHandle<()>,
    /// The pacer thread's wake-up: due time to hand-off.
    wake: Histogram<u64>,
    /// CPU used and wall time passed during the phase.
    cpu: Duration,
    wall: Duration,
    /// The `--cpu-of` processes and the host during the phase.
    host_cpu: Option<HostCpu>,
}

/// Run a load scenario end to end, each step in turn; true when the run passed.
pub(crate) async fn run(args: RunArgs) -> Result<bool> {
    let (ctx, mut users) = prepare(&args).await?;

    // 1. Provision every user (first request creates it), then pair them.
    setup::provision(&ctx, &users, args.setup_concurrency).await?;
    setup::pair(&ctx, &mut users, args.setup_concurrency).await?;
    let users = Arc::new(users);

    // 2. Ramp up the sockets, with the servers' memory sampled around it.
    let rss_before = rss_of(&args.server_pid);
    let Sockets {
        senders,
        mut live,
        storm_tx,
    } = ramp(&args, &ctx, &users).await?;
    // Let the server settle the presence fan-out of the ramp before measuring memory.
    tokio::time::sleep(Duration::from_millis(500)).await;
    let server_memory = ServerMemory::around_ramp(
        &args.server_pid,
        &rss_before,
        &rss_of(&args.server_pid),
        ctx.sockets_total,
    );
    let active = active_senders(&users, &senders);
    if active.is_empty() && ctx.total_msgs > 0 {
        bail!("no pair of users has all its sockets connected; nothing to send");
    }

    // 3. Send phase: open-loop message schedule plus REST readers.
    let sent = send_phase(&args, &ctx, &users, &active, &senders, storm_tx).await?;

    // 4. Drain: wait for every written message to be delivered (or the drain to run out).
    drain(&args, &ctx).await;
    sent.ticker.abort();
    ctx.progress.finish_and_clear();
    drop(senders);
    live.abort_all();

    // 5. Verdict.
    verdict(&args, &ctx, users.len(), server_memory, &sent)
}

/// Check the arguments, raise the open-file limit, resolve the servers, make the users
/// and the run's shared state.
async fn prepare(args: &RunArgs) -> Result<(Ctx, Vec<User>)> {
    if args.users < 2 {
        bail!("--users must be at least 2 (users are paired into conversations)");
    }
    if args.sockets_per_user == 0 {
        bail!("--sockets-per-user must be at least 1");
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
        servers.push(Server::resolve(s).await?);
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
    let users = setup::make_users(args, &run_tag, servers.len())?;

    let total_msgs = (args.rate * args.duration.as_secs_f64()).round() as u64;
    let mut shared = Shared::new(run_tag, args.rate, args.message_bytes, total_msgs);
    if args.rest_rate > 0.0 && args.rest_mix.needs_recent() {
        shared = shared.tracking_recent();
    }
    let shared = Arc::new(shared);

    let progress = if args.quiet {
        ProgressBar::hidden()
    } else {
        ProgressBar::new(0)
    };
    let ctx = Ctx {
        servers,
        http,
        shared,
        progress,
        sockets_total,
        total_msgs,
    };
    Ok((ctx, users))
}

/// Open every socket, socket j due at j * ramp / n; connect time is measured from that due
/// time to `connection.success`. Each socket that connects gets its task.
async fn ramp(args: &RunArgs, ctx: &Ctx, users: &[User]) -> Result<Sockets> {
    let (shared, progress, sockets_total) = (&ctx.shared, &ctx.progress, ctx.sockets_total);
    progress.set_prefix("connect");
    progress.set_length(sockets_total as u64);
    progress.set_position(0);
    let mut senders: Senders = vec![vec![None; args.sockets_per_user]; users.len()];
    let ramp_start = Instant::now() + Duration::from_millis(50);
    let mut connects = JoinSet::new();
    for j in 0..sockets_total {
        let (ui, si) = (j % users.len(), j / users.len());
        let due = ramp_start + args.ramp.mul_f64(j as f64 / sockets_total as f64);
        let server = &ctx.servers[users[ui].server];
        let (addr, hostport) = (server.addr, server.hostport.clone());
        let token = users[ui].token.clone();
        let source = net::source_for(addr, j);
        connects.spawn(async move {
            tokio::time::sleep_until(due.into()).await;
            let r = socket::connect(addr, &hostport, &token, source, None).await;
            // Measured here, not when the collecting loop gets to it.
            let took_us = elapsed_us(due);
            (ui, si, took_us, r)
        });
    }
    let mut live = JoinSet::new();
    let (storm_tx, storm_rx) = watch::channel(false);
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
                let server = &ctx.servers[users[ui].server];
                let addr = server.addr;
                let dial = Dial {
                    addr,
                    hostport: server.hostport.clone(),
                    token: users[ui].token.clone(),
                    source: net::source_for(addr, ui + si * users.len()),
                };
                let me = users[ui].id;
                live.spawn(socket::socket_task(
                    ws,
                    Socket {
                        me,
                        index: si,
                        dial,
                    },
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
    Ok(Sockets {
        senders: Arc::new(senders),
        live,
        storm_tx,
    })
}

/// The users that send: every user whose own sockets and whose partner's sockets all
/// connected.
fn active_senders(users: &[User], senders: &Senders) -> Vec<usize> {
    let fully = |i: usize| senders[i].iter().all(Option::is_some);
    (0..users.len())
        .filter(|&i| users[i].pair.is_some_and(|(_, p)| fully(i) && fully(p)))
        .collect()
}

/// Send for --duration: REST readers, media uploads, the progress ticker and the storm
/// run beside the pacer thread, which hands every message to its socket task when due.
async fn send_phase(
    args: &RunArgs,
    ctx: &Ctx,
    users: &Arc<Vec<User>>,
    active: &[usize],
    senders: &Arc<Senders>,
    storm_tx: watch::Sender<bool>,
) -> Result<SendPhase> {
    let (shared, progress) = (&ctx.shared, &ctx.progress);
    progress.set_style(ProgressStyle::with_template(
        "{prefix:>10} [{elapsed_precise}] {msg}",
    )?);
    progress.set_prefix("send");
    // Read /proc (every process) before the schedule starts.
    let host_before = hostcpu::snapshot_blocking(&args.cpu_of).await?;
    let start = Instant::now() + Duration::from_millis(20);
    *shared.send_start.lock().expect("start lock") = Some(start);
    let end = start + args.duration;

    let [rest_task, media_task] = spawn_readers(args, ctx, users, active, start, end).await?;
    let ticker = spawn_ticker(shared.clone(), progress.clone());
    let storm_task = spawn_storm(args.storm_at, start, shared.clone(), storm_tx);
    let stopwatch = selfcheck::Stopwatch::start();
    // The pacer thread hands each message straight to its socket task: one wake-up between
    // the due time and the write, not two (a hop through this task cost ~0.2 ms each).
    let dispatch = dispatcher(
        senders.clone(),
        users.clone(),
        shared.clone(),
        active.to_vec(),
        args.sockets_per_user,
    );
    let (period, realtime) = (shared.period, !args.no_realtime);
    let total_msgs = ctx.total_msgs;
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
    let (cpu, wall) = stopwatch.read();
    let host_cpu = hostcpu::between(
        &args.cpu_of,
        &host_before,
        &hostcpu::snapshot_blocking(&args.cpu_of).await?,
        wall,
        shared.sent.load(Ordering::Relaxed),
    );
    for t in [rest_task, media_task, storm_task].into_iter().flatten() {
        t.await?;
    }
    Ok(SendPhase {
        ticker,
        wake,
        cpu,
        wall,
        host_cpu,
    })
}

/// Start the REST readers (--rest-rate) and the media uploads (--media-rate), open loop
/// from `start` to `end`.
async fn spawn_readers(
    args: &RunArgs,
    ctx: &Ctx,
    users: &Arc<Vec<User>>,
    active: &[usize],
    start: Instant,
    end: Instant,
) -> Result<[Option<JoinHandle<()>>; 2]> {
    let readers = rest::Readers {
        http: ctx.http.clone(),
        servers: ctx.servers.iter().map(|s| s.base.clone()).collect(),
        users: users.clone(),
        active: active.to_vec(),
        start,
        end,
        shared: ctx.shared.clone(),
    };
    let rest_task = (args.rest_rate > 0.0).then(|| {
        tokio::spawn(rest::rest_loop(
            readers.clone(),
            args.rest_mix.clone(),
            args.rest_rate,
            None,
        ))
    });
    let media_task = match (&args.media_file, args.media_rate > 0.0) {
        (Some(path), true) => Some(tokio::spawn(rest::rest_loop(
            readers,
            RestMix::only(RestOp::MediaUpload),
            args.media_rate,
            Some(Arc::new(UploadFile::read(path).await?)),
        ))),
        _ => None,
    };
    Ok([rest_task, media_task])
}

/// Refresh the live progress line every 250 ms until aborted.
fn spawn_ticker(shared: Arc<Shared>, progress: ProgressBar) -> JoinHandle<()> {
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
}

/// With --storm-at, drop every socket that long after `start`. Without, `storm_tx` is
/// dropped here, which tells the socket tasks no storm comes.
fn spawn_storm(
    at: Option<Duration>,
    start: Instant,
    shared: Arc<Shared>,
    storm_tx: watch::Sender<bool>,
) -> Option<JoinHandle<()>> {
    let at = at?;
    Some(tokio::spawn(async move {
        tokio::time::sleep_until((start + at).into()).await;
        *shared.storm_started.lock().expect("storm lock") = Some(Instant::now());
        let _ = storm_tx.send(true);
    }))
}

/// What the pacer calls for message `k`: pick its sender (round robin over `active`, then
/// over the sender's sockets) and hand the message to that socket's task.
fn dispatcher(
    senders: Arc<Senders>,
    users: Arc<Vec<User>>,
    shared: Arc<Shared>,
    active: Vec<usize>,
    sockets_per_user: usize,
) -> impl Fn(u64) + Send + 'static {
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
}

/// Wait until every written message is delivered and acknowledged (and, after a storm,
/// every socket caught up), or until --drain runs out.
async fn drain(args: &RunArgs, ctx: &Ctx) {
    let (shared, total_msgs) = (&ctx.shared, ctx.total_msgs);
    ctx.progress.set_prefix("drain");
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
}

/// Count what was lost, judge every metric and the generator itself, print the table and
/// write the JSON; true when the run passed.
fn verdict(
    args: &RunArgs,
    ctx: &Ctx,
    users: usize,
    server_memory: Vec<ServerMemory>,
    sent: &SendPhase,
) -> Result<bool> {
    let shared = &ctx.shared;
    let lost = count_lost(shared, ctx.total_msgs);
    let hists = std::mem::take(&mut *shared.hists.lock().expect("hists lock"));
    let metrics = summarize(shared, &hists, &args.slos);
    let errors = shared.errors.lock().expect("errors lock").clone();
    let duplicates = shared.duplicates.load(Ordering::Relaxed);
    let connect_failures = shared.connect_failures.load(Ordering::Relaxed);
    let generator = GeneratorHealth::judge(
        sent.cpu,
        sent.wall,
        shared.sent.load(Ordering::Relaxed),
        hists.lateness.as_ref(),
        Some(&sent.wake),
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
        users,
        sockets: ctx.sockets_total,
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
        host_cpu: sent.host_cpu.clone(),
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

/// Written messages never delivered; those never acknowledged are counted as errors.
fn count_lost(shared: &Shared, total_msgs: u64) -> u64 {
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
    lost
}

/// One summary per recorded metric, judged against its p99 target (the defaults, then
/// --slo).
fn summarize(
    shared: &Shared,
    hists: &Histograms,
    slos: &[(String, f64)],
) -> BTreeMap<String, MetricSummary> {
    let mut targets = report::default_targets();
    for (k, v) in slos {
        targets.insert(k.clone(), *v);
    }
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
    let storm_hist = storm_window(shared);
    add("delivery_storm", storm_hist.as_ref());
    add("send_ack", hists.send_ack.as_ref());
    add("delivery", hists.delivery.as_ref());
    for (name, h) in &hists.rest {
        add(name, Some(h));
    }
    metrics
}

/// The first 60 characters of an error, to keep error kinds few.
fn short(e: &anyhow::Error) -> String {
    let s = format!("{e}");
    s.chars().take(60).collect()
}
