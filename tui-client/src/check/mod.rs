//! `chat-tui check`: a scripted run of every REST call and WebSocket event in SPEC.md
//! (the message lifecycle included) against a live chatd, with three users, bad input of
//! every kind and a reconnect.
//! Prints one row per call/event (pass/fail, latency) and fails if any row failed.

use std::future::Future;
use std::path::PathBuf;
use std::time::{Duration, Instant};

use anyhow::{bail, Context};
use chat_client::{mint_token, Client, ClientError, Socket, WsError};
use chat_protocol::error::ErrorCode;
use chat_protocol::rest::Message;
use chat_protocol::ws::ServerEvent;
use chat_protocol::{ConversationId, UserId};
use clap::Args;
use reqwest::Method;

mod steps_bad_input;
mod steps_blocks;
mod steps_lifecycle;
mod steps_media;
mod steps_messaging;
mod steps_resume;
mod steps_setup;

#[derive(Debug, Args)]
pub struct CheckArgs {
    /// Base URL of the chatd under test.
    #[arg(long, env = "CHAT_SERVER", default_value = "http://127.0.0.1:8080")]
    pub server: String,
    /// The server's HS256 secret: three fresh users are minted with it.
    #[arg(long, env = "CHAT_JWT_SECRET", hide_env_values = true)]
    pub jwt_secret: Option<String>,
    /// Instead of --jwt-secret: a file with three tokens (one per line) of three distinct
    /// users who share no conversation yet.
    #[arg(long, conflicts_with = "jwt_secret")]
    pub tokens: Option<PathBuf>,
    /// How long to wait for each expected event.
    #[arg(long, default_value = "5", value_name = "SECONDS")]
    pub event_timeout: u64,
}

/// One row of the report.
struct Row {
    name: String,
    ok: bool,
    ms: f64,
    detail: String,
}

#[derive(Default)]
struct Report {
    rows: Vec<Row>,
}

/// A step whose failure makes the rest of the script meaningless.
struct Abort;

type Step<T> = Result<T, String>;

impl Report {
    /// Run one step, time it and record the outcome.
    async fn step<T>(&mut self, name: &str, fut: impl Future<Output = Step<T>>) -> Option<T> {
        let t = Instant::now();
        let out = fut.await;
        let ms = t.elapsed().as_secs_f64() * 1000.0;
        let (ok, detail, value) = match out {
            Ok(v) => (true, String::new(), Some(v)),
            Err(e) => (false, e, None),
        };
        println!(
            "{:<58} {:<4} {:>8.1} ms  {}",
            name,
            if ok { "ok" } else { "FAIL" },
            ms,
            detail
        );
        self.rows.push(Row {
            name: name.to_string(),
            ok,
            ms,
            detail,
        });
        value
    }

    /// A step the rest depends on.
    async fn must<T>(
        &mut self,
        name: &str,
        fut: impl Future<Output = Step<T>>,
    ) -> Result<T, Abort> {
        self.step(name, fut).await.ok_or(Abort)
    }

    fn failed(&self) -> usize {
        self.rows.iter().filter(|r| !r.ok).count()
    }
}

/// One of the scripted users.
struct Actor {
    name: String,
    id: UserId,
    api: Client,
}

fn describe(e: ClientError) -> String {
    e.to_string()
}

fn ws_err(e: WsError) -> String {
    e.to_string()
}

/// The call must fail with this status and SPEC error code.
fn refused<T: std::fmt::Debug>(
    r: Result<T, ClientError>,
    status: u16,
    code: ErrorCode,
) -> Step<()> {
    match r {
        Err(e) if e.status() == Some(status) && e.code() == Some(code) => Ok(()),
        Err(e) => Err(format!("expected {status} {code}, got {e}")),
        Ok(v) => Err(format!("expected {status} {code}, got success: {v:?}")),
    }
}

/// Open a socket and wait for `connection.success`; the user id it names.
async fn greeted(server: &str, token: &str, wait: Duration) -> Step<(Socket, UserId)> {
    let mut ws = Socket::connect(server, token).await.map_err(ws_err)?;
    let id = ws
        .wait_for(wait, |e| match e {
            ServerEvent::ConnectionSuccess { user_id, .. } => Some(*user_id),
            _ => None,
        })
        .await
        .map_err(ws_err)?;
    Ok((ws, id))
}

fn ensure(cond: bool, why: impl FnOnce() -> String) -> Step<()> {
    if cond {
        Ok(())
    } else {
        Err(why())
    }
}

async fn raw(
    api: &Client,
    method: Method,
    path: &str,
    body: &'static str,
) -> Result<serde_json::Value, ClientError> {
    let resp = api
        .request(method, path)
        .header("content-type", "application/json")
        .body(body)
        .send()
        .await?;
    if !resp.status().is_success() {
        return Err(chat_client::api_error(resp).await);
    }
    Ok(resp.json().await?)
}

fn claims_of(token: &str) -> anyhow::Result<(UserId, String)> {
    use base64::Engine;
    let payload = token.split('.').nth(1).context("not a JWT")?;
    let bytes = base64::engine::general_purpose::URL_SAFE_NO_PAD
        .decode(payload.trim_end_matches('='))
        .context("JWT payload is not base64url")?;
    let v: serde_json::Value = serde_json::from_slice(&bytes).context("JWT payload")?;
    let id = v["sub"]
        .as_str()
        .context("no sub claim")?
        .parse()
        .map_err(|_| anyhow::anyhow!("sub is not a UUID"))?;
    let name = v["username"].as_str().context("no username claim")?;
    Ok((id, name.to_string()))
}

fn actors(args: &CheckArgs) -> anyhow::Result<Vec<Actor>> {
    let tokens: Vec<(UserId, String, String)> = match (&args.jwt_secret, &args.tokens) {
        (_, Some(path)) => {
            let text = std::fs::read_to_string(path)
                .with_context(|| format!("cannot read {}", path.display()))?;
            let lines: Vec<&str> = text
                .lines()
                .map(str::trim)
                .filter(|l| !l.is_empty())
                .collect();
            if lines.len() < 3 {
                bail!(
                    "{} holds {} tokens; the check needs 3",
                    path.display(),
                    lines.len()
                );
            }
            lines[..3]
                .iter()
                .map(|t| claims_of(t).map(|(id, name)| (id, name, t.to_string())))
                .collect::<anyhow::Result<_>>()?
        }
        (Some(secret), None) => {
            let tag = &uuid_tag();
            ["alice", "bob", "carol"]
                .iter()
                .map(|who| {
                    let name = format!("chk{tag}_{who}");
                    mint_token(secret, &name, 3600)
                        .map(|(id, t)| (id, name, t))
                        .map_err(|e| anyhow::anyhow!("cannot mint a token: {e}"))
                })
                .collect::<anyhow::Result<_>>()?
        }
        (None, None) => bail!("give --jwt-secret (or CHAT_JWT_SECRET) or --tokens FILE"),
    };
    let base = Client::new(&args.server, "")?;
    Ok(tokens
        .into_iter()
        .map(|(id, name, token)| Actor {
            name,
            id,
            api: base.with_token(&token),
        })
        .collect())
}

fn uuid_tag() -> String {
    UserId::new().to_string().replace('-', "")[20..28].to_string()
}

/// Run the check; `Ok(true)` when every row passed.
pub async fn run(args: CheckArgs) -> anyhow::Result<bool> {
    let users = actors(&args)?;
    let wait = Duration::from_secs(args.event_timeout.max(1));
    println!("chat-tui check against {}", args.server);
    println!("{:<58} {:<4} {:>11}  detail", "call / event", "", "latency");
    let mut report = Report::default();
    let outcome = script(&mut report, &args.server, &users, wait).await;
    let failed = report.failed();
    let total = report.rows.len();
    let slowest = report
        .rows
        .iter()
        .max_by(|a, b| a.ms.total_cmp(&b.ms))
        .map(|r| format!("; slowest: {} ({:.1} ms)", r.name, r.ms))
        .unwrap_or_default();
    if outcome.is_err() {
        println!("stopped early: a step the rest depends on failed");
    }
    println!(
        "{} checks, {} passed, {failed} failed{slowest}",
        total,
        total - failed
    );
    for r in report.rows.iter().filter(|r| !r.ok) {
        println!("FAILED: {}: {}", r.name, r.detail);
    }
    Ok(failed == 0 && outcome.is_ok())
}

fn new_message(temp: &str) -> impl Fn(&ServerEvent) -> Option<Message> + '_ {
    move |e| match e {
        ServerEvent::MessageNew { message } if message.temp_id.as_deref() == Some(temp) => {
            Some(message.clone())
        }
        _ => None,
    }
}

/// What every step shares: the report it records into, the server, the users, the wait.
struct Check<'a> {
    r: &'a mut Report,
    server: &'a str,
    alice: &'a Actor,
    bob: &'a Actor,
    carol: &'a Actor,
    /// A client with no token, for the public endpoints and signed media URLs.
    anon: Client,
    wait: Duration,
}

/// The alice–bob conversation and both users' sockets.
struct Chat {
    conv: ConversationId,
    a_ws: Socket,
    b_ws: Socket,
}

/// The first two messages: alice's over WS, then bob's over REST.
struct Sent {
    first: Message,
    second: Message,
}

/// The whole script, step by step; `Err(Abort)` when a step the rest depends on failed.
async fn script(
    r: &mut Report,
    server: &str,
    users: &[Actor],
    wait: Duration,
) -> Result<(), Abort> {
    let (alice, bob, carol) = (&users[0], &users[1], &users[2]);
    let mut c = Check {
        r,
        server,
        alice,
        bob,
        carol,
        anon: alice.api.with_token(""),
        wait,
    };
    steps_setup::service_endpoints(&mut c).await;
    let conv = steps_setup::open_conversation(&mut c).await?;
    let (a_ws, b_ws) = steps_setup::connect_sockets(&mut c).await?;
    let mut chat = Chat { conv, a_ws, b_ws };
    let sent = steps_messaging::send_messages(&mut c, &mut chat).await?;
    steps_messaging::read_history(&mut c, &chat, &sent).await;
    steps_messaging::read_receipts(&mut c, &mut chat, &sent).await;
    steps_messaging::typing_and_ping(&mut c, &mut chat).await;
    steps_media::media(&mut c, &mut chat).await;
    steps_lifecycle::lifecycle(&mut c, &mut chat).await;
    steps_bad_input::bad_input(&mut c, &mut chat, &sent).await;
    steps_blocks::blocking(&mut c, &mut chat).await;
    steps_resume::reconnect(&mut c, chat).await
}

fn short(name: &str) -> &str {
    name.rsplit('_').next().unwrap_or(name)
}
