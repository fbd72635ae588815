//! `chat-tui check`: a scripted run of every REST call and WebSocket event in SPEC.md
//! against a live chatd, with three users, bad input of every kind and a reconnect.
//! Prints one row per call/event (pass/fail, latency) and fails if any row failed.

use std::future::Future;
use std::path::PathBuf;
use std::time::{Duration, Instant};

use anyhow::{bail, Context};
use chat_client::{mint_token, Client, ClientError, PageQuery, Socket, Upload, WsError};
use chat_protocol::error::ErrorCode;
use chat_protocol::rest::{Message, MessageType};
use chat_protocol::ws::{ClientEvent, ServerEvent};
use chat_protocol::{ConversationId, UserId};
use clap::Args;
use reqwest::Method;

/// A small real PNG (48×32), for the image upload.
const PNG: &[u8] = include_bytes!("../assets/check.png");

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

async fn script(
    r: &mut Report,
    server: &str,
    users: &[Actor],
    wait: Duration,
) -> Result<(), Abort> {
    let (alice, bob, carol) = (&users[0], &users[1], &users[2]);
    let anon = alice.api.with_token("");

    // ---- service endpoints ---------------------------------------------------------------
    for (path, want) in [
        ("/healthz", ""),
        ("/readyz", "ready"),
        ("/metrics", "chat_"),
    ] {
        r.step(&format!("GET {path}"), async {
            let resp = anon
                .plain(Method::GET, path)
                .send()
                .await
                .map_err(|e| e.to_string())?;
            let status = resp.status();
            let body = resp.text().await.map_err(|e| e.to_string())?;
            ensure(status.is_success(), || format!("HTTP {status}"))?;
            ensure(body.contains(want), || format!("body lacks {want:?}"))
        })
        .await;
    }

    // ---- users and the conversation ------------------------------------------------------
    for u in users {
        r.must(
            &format!("GET /chat/conversations ({})", short(&u.name)),
            async {
                let page = u
                    .api
                    .conversations(&PageQuery::default())
                    .await
                    .map_err(describe)?;
                ensure(page.data.is_empty(), || {
                    "a fresh user has conversations".into()
                })
            },
        )
        .await?;
    }
    let conv = r
        .must("GET /chat/conversations/with/:username", async {
            let c = alice
                .api
                .conversation_with(&bob.name)
                .await
                .map_err(describe)?;
            ensure(c.other_user.id == bob.id, || "other_user is not bob".into())?;
            let again = bob
                .api
                .conversation_with(&alice.name)
                .await
                .map_err(describe)?;
            ensure(again.id == c.id, || "the pair got two conversations".into())?;
            Ok(c.id)
        })
        .await?;
    r.step("  unknown user → 404 not_found", async {
        refused(
            alice.api.conversation_with("nobody_here_x").await,
            404,
            ErrorCode::NotFound,
        )
    })
    .await;
    r.step("  oneself → 400 self_action", async {
        refused(
            alice.api.conversation_with(&alice.name).await,
            400,
            ErrorCode::SelfAction,
        )
    })
    .await;

    // ---- sockets and presence ------------------------------------------------------------
    let mut a_ws = r
        .must("WS connect → connection.success (alice)", async {
            let (ws, id) = greeted(server, alice.api.token(), wait).await?;
            ensure(id == alice.id, || {
                "connection.success for someone else".into()
            })?;
            Ok(ws)
        })
        .await?;
    // SPEC "Privacy": presence only across a conversation with a message in it, so bob,
    // in an empty conversation with alice so far, is not in her status.bulk and his
    // user.online does not reach her (checked after messages, on his reconnect).
    r.step(
        "WS status.bulk leaves out an empty conversation's user",
        async {
            let entry = a_ws
                .wait_for(wait, |e| match e {
                    ServerEvent::StatusBulk { users } => {
                        Some(users.iter().find(|u| u.user_id == bob.id).cloned())
                    }
                    _ => None,
                })
                .await
                .map_err(ws_err)?;
            match entry {
                None => Ok(()),
                Some(_) => Err("bob's presence shown across an empty conversation".into()),
            }
        },
    )
    .await;
    let mut b_ws = r
        .must("WS connect with Authorization header (bob)", async {
            let (ws, id) = greeted(server, bob.api.token(), wait).await?;
            ensure(id == bob.id, || {
                "connection.success for someone else".into()
            })?;
            Ok(ws)
        })
        .await?;
    r.step("WS connect with a bad token → refused 401", async {
        match Socket::connect(server, "not-a-token").await {
            Err(WsError::Connect {
                status: Some(401), ..
            }) => Ok(()),
            Err(e) => Err(format!("expected 401, got {e}")),
            Ok(_) => Err("accepted a bad token".into()),
        }
    })
    .await;

    // ---- sending -------------------------------------------------------------------------
    let first = r
        .must("WS message.send → message.sent", async {
            a_ws.send(&ClientEvent::MessageSend {
                conversation_id: conv,
                content: "hello from the check".into(),
                temp_id: Some("chk-1".into()),
            })
            .await
            .map_err(ws_err)?;
            a_ws.wait_for(wait, |e| match e {
                ServerEvent::MessageSent { temp_id, message }
                    if temp_id.as_deref() == Some("chk-1") =>
                {
                    Some(message.clone())
                }
                _ => None,
            })
            .await
            .map_err(ws_err)
        })
        .await?;
    r.step("WS message.new at the receiver", async {
        let m = b_ws
            .wait_for(wait, new_message("chk-1"))
            .await
            .map_err(ws_err)?;
        ensure(m.id == first.id, || "another message id".into())
    })
    .await;
    let second = r
        .must("POST /chat/conversations/:id/messages (text)", async {
            bob.api
                .send_text(conv, "see https://example.com/chk please", Some("chk-2"))
                .await
                .map_err(describe)
        })
        .await?;
    r.step("  REST send → WS message.new", async {
        let m = a_ws
            .wait_for(wait, new_message("chk-2"))
            .await
            .map_err(ws_err)?;
        ensure(m.id == second.id, || "another message id".into())
    })
    .await;
    r.step("  same temp_id again → the same message", async {
        let again = bob
            .api
            .send_text(conv, "see https://example.com/chk please", Some("chk-2"))
            .await
            .map_err(describe)?;
        ensure(again.id == second.id, || "a duplicate was stored".into())
    })
    .await;

    // ---- reading -------------------------------------------------------------------------
    r.step(
        "GET /chat/conversations (list, last message, unread)",
        async {
            let page = alice
                .api
                .conversations(&PageQuery::default())
                .await
                .map_err(describe)?;
            let c = page
                .data
                .iter()
                .find(|c| c.id == conv)
                .ok_or("conversation missing")?;
            ensure(c.other_user.online, || "bob not shown online".into())?;
            ensure(
                c.last_message.as_ref().map(|m| m.id) == Some(second.id),
                || "wrong last message".into(),
            )?;
            ensure(c.unread_count == 1, || {
                format!("unread {} ≠ 1", c.unread_count)
            })
        },
    )
    .await;
    r.step("GET /chat/conversations/unread-count", async {
        let u = alice.api.unread_count().await.map_err(describe)?;
        ensure(u.total == 1, || format!("total {} ≠ 1", u.total))
    })
    .await;
    r.step(
        "GET /chat/conversations/:id/messages (cursor pages)",
        async {
            let p1 = alice
                .api
                .messages(conv, &PageQuery::limit(1))
                .await
                .map_err(describe)?;
            ensure(p1.data.len() == 1 && p1.data[0].id == second.id, || {
                "page 1 is not the newest".into()
            })?;
            let cursor = p1
                .next_cursor
                .filter(|_| p1.has_more)
                .ok_or("no next cursor")?;
            let p2 = alice
                .api
                .messages(conv, &PageQuery::before(cursor, 10))
                .await
                .map_err(describe)?;
            ensure(
                p2.data.iter().map(|m| m.id).collect::<Vec<_>>() == vec![first.id] && !p2.has_more,
                || "page 2 is not the older message alone".into(),
            )
        },
    )
    .await;
    r.step("GET /chat/messages/:id", async {
        let m = bob.api.message(first.id).await.map_err(describe)?;
        ensure(m.content.as_deref() == Some("hello from the check"), || {
            "content differs".into()
        })
    })
    .await;
    r.step("GET /chat/messages/:id/context", async {
        let c = bob.api.context(second.id, 5, 5).await.map_err(describe)?;
        ensure(c.target_id == second.id && c.data.len() == 2, || {
            format!("{} messages around the target", c.data.len())
        })
    })
    .await;

    // ---- read receipts -------------------------------------------------------------------
    r.step("WS message.read → message.read_ack", async {
        a_ws.send(&ClientEvent::MessageRead {
            conversation_id: conv,
            up_to_message_id: None,
        })
        .await
        .map_err(ws_err)?;
        a_ws.wait_for(wait, |e| match e {
            ServerEvent::MessageReadAck {
                conversation_id, ..
            } if *conversation_id == conv => Some(()),
            _ => None,
        })
        .await
        .map_err(ws_err)
    })
    .await;
    r.step("WS message.read_update to the other party", async {
        b_ws.wait_for(wait, |e| match e {
            ServerEvent::MessageReadUpdate { reader_id, .. } if *reader_id == alice.id => Some(()),
            _ => None,
        })
        .await
        .map_err(ws_err)
    })
    .await;
    r.step("POST /chat/conversations/:id/read", async {
        let res = bob
            .api
            .mark_read(conv, Some(first.id))
            .await
            .map_err(describe)?;
        ensure(res.marked == 1 && res.unread_count == 0, || {
            format!("marked {}, unread {}", res.marked, res.unread_count)
        })
    })
    .await;
    r.step("  REST mark read → WS message.read_update", async {
        a_ws.wait_for(wait, |e| match e {
            ServerEvent::MessageReadUpdate { reader_id, .. } if *reader_id == bob.id => Some(()),
            _ => None,
        })
        .await
        .map_err(ws_err)
    })
    .await;

    // ---- typing, ping --------------------------------------------------------------------
    for (start, name) in [
        (true, "WS typing.start relayed"),
        (false, "WS typing.stop relayed"),
    ] {
        r.step(name, async {
            let ev = if start {
                ClientEvent::TypingStart {
                    conversation_id: conv,
                }
            } else {
                ClientEvent::TypingStop {
                    conversation_id: conv,
                }
            };
            a_ws.send(&ev).await.map_err(ws_err)?;
            b_ws.wait_for(wait, |e| match e {
                ServerEvent::TypingStart { user_id, .. } if start && *user_id == alice.id => {
                    Some(())
                }
                ServerEvent::TypingStop { user_id, .. } if !start && *user_id == alice.id => {
                    Some(())
                }
                _ => None,
            })
            .await
            .map_err(ws_err)
        })
        .await;
    }
    r.step("WS ping → pong", async {
        a_ws.send(&ClientEvent::Ping {}).await.map_err(ws_err)?;
        a_ws.wait_for(wait, |e| matches!(e, ServerEvent::Pong {}).then_some(()))
            .await
            .map_err(ws_err)
    })
    .await;

    // ---- media ---------------------------------------------------------------------------
    let image = r
        .step("POST messages multipart (image)", async {
            let m = alice
                .api
                .send_media(
                    conv,
                    vec![Upload {
                        name: "check.png".into(),
                        content_type: "image/png".into(),
                        bytes: PNG.to_vec(),
                    }],
                    Some("a picture"),
                    Some("chk-img"),
                )
                .await
                .map_err(describe)?;
            ensure(m.kind == MessageType::Image, || {
                "not an image message".into()
            })?;
            let item = m.media.first().ok_or("no media item")?;
            ensure(item.width == Some(48) && item.height == Some(32), || {
                format!("size {:?}×{:?}", item.width, item.height)
            })?;
            ensure(item.thumbnail_url.is_some(), || "no thumbnail".into())?;
            Ok(m)
        })
        .await;
    r.step("  media message → WS message.new", async {
        let m = b_ws
            .wait_for(wait, new_message("chk-img"))
            .await
            .map_err(ws_err)?;
        ensure(m.kind == MessageType::Image, || "not an image".into())
    })
    .await;
    if let Some(image) = &image {
        r.step("  GET the signed media URL", async {
            let url = &image.media[0].url;
            let resp = anon
                .plain(Method::GET, url)
                .send()
                .await
                .map_err(|e| e.to_string())?;
            ensure(resp.status().is_success(), || {
                format!("HTTP {}", resp.status())
            })?;
            let nosniff = resp
                .headers()
                .get("x-content-type-options")
                .is_some_and(|v| v == "nosniff");
            // Presigned object-store URLs carry the store's headers, not chatd's.
            ensure(
                nosniff || (!url.starts_with('/') && !url.starts_with(server)),
                || "no X-Content-Type-Options: nosniff".into(),
            )?;
            let bytes = resp.bytes().await.map_err(|e| e.to_string())?;
            ensure(!bytes.is_empty(), || "empty body".into())
        })
        .await;
        r.step("  tampered media URL → 403", async {
            let url = &image.media[0].url;
            if !(url.starts_with('/') || url.starts_with(server)) {
                return Ok(()); // signed by an object store, not chatd
            }
            let bad = format!("{}0", url);
            let resp = anon
                .plain(Method::GET, &bad)
                .send()
                .await
                .map_err(|e| e.to_string())?;
            ensure(resp.status() == 403, || format!("HTTP {}", resp.status()))
        })
        .await;
    }
    r.step("GET /chat/conversations/:id/media", async {
        let p = bob
            .api
            .media(conv, &PageQuery::default())
            .await
            .map_err(describe)?;
        ensure(
            p.data
                .iter()
                .any(|m| m.temp_id.as_deref() == Some("chk-img")),
            || "the image is not in the gallery".into(),
        )
    })
    .await;
    r.step("POST messages multipart (file)", async {
        let m = alice
            .api
            .send_media(
                conv,
                vec![Upload {
                    name: "notes.txt".into(),
                    content_type: "text/plain".into(),
                    bytes: b"check notes\n".to_vec(),
                }],
                None,
                Some("chk-file"),
            )
            .await
            .map_err(describe)?;
        ensure(m.kind == MessageType::File, || "not a file message".into())
    })
    .await;
    r.step("GET /chat/conversations/:id/files", async {
        let p = bob
            .api
            .files(conv, &PageQuery::default())
            .await
            .map_err(describe)?;
        ensure(
            p.data
                .iter()
                .any(|m| m.temp_id.as_deref() == Some("chk-file")),
            || "the file is not listed".into(),
        )
    })
    .await;
    r.step("GET /chat/conversations/:id/links", async {
        let p = alice
            .api
            .links(conv, &PageQuery::default())
            .await
            .map_err(describe)?;
        ensure(
            p.data.iter().any(|l| l.url == "https://example.com/chk"),
            || "the link is not listed".into(),
        )
    })
    .await;

    // ---- bad input -----------------------------------------------------------------------
    let msgs = format!("/conversations/{conv}/messages");
    r.step("bad: malformed JSON → 400 invalid_json", async {
        refused(
            raw(&alice.api, Method::POST, &msgs, "{\"content\":").await,
            400,
            ErrorCode::InvalidJson,
        )
    })
    .await;
    r.step("bad: wrong type → 400", async {
        match raw(&alice.api, Method::POST, &msgs, "{\"content\":5}").await {
            Err(e) if e.status() == Some(400) && e.code().is_some() => Ok(()),
            other => Err(format!("expected 400 with a SPEC code, got {other:?}")),
        }
    })
    .await;
    r.step("bad: empty content → 400 validation_failed", async {
        refused(
            alice.api.send_text(conv, "   ", None).await,
            400,
            ErrorCode::ValidationFailed,
        )
    })
    .await;
    r.step("bad: 4001 characters → 400 validation_failed", async {
        refused(
            alice.api.send_text(conv, &"x".repeat(4001), None).await,
            400,
            ErrorCode::ValidationFailed,
        )
    })
    .await;
    r.step("bad: SVG upload → 415 unsupported_media_type", async {
        refused(
            alice
                .api
                .send_media(
                    conv,
                    vec![Upload {
                        name: "x.png".into(),
                        content_type: "image/png".into(),
                        bytes: br#"<svg xmlns="http://www.w3.org/2000/svg"><script>alert(1)</script></svg>"#
                            .to_vec(),
                    }],
                    None,
                    None,
                )
                .await,
            415,
            ErrorCode::UnsupportedMediaType,
        )
    })
    .await;
    r.step("bad: garbage cursor → 400 invalid_cursor", async {
        refused(
            alice
                .api
                .messages(conv, &PageQuery::before("!!!", 10))
                .await,
            400,
            ErrorCode::InvalidCursor,
        )
    })
    .await;
    r.step("bad: invalid token → 401 unauthorized", async {
        refused(
            alice
                .api
                .with_token("x.y.z")
                .conversations(&PageQuery::default())
                .await,
            401,
            ErrorCode::Unauthorized,
        )
    })
    .await;
    r.step("bad: someone else's conversation → 404", async {
        refused(
            carol.api.messages(conv, &PageQuery::default()).await,
            404,
            ErrorCode::NotFound,
        )?;
        refused(
            carol.api.send_text(conv, "hi", None).await,
            404,
            ErrorCode::NotFound,
        )?;
        refused(carol.api.message(first.id).await, 404, ErrorCode::NotFound)
    })
    .await;
    r.step(
        "bad: WS frame that is not JSON → error, socket stays",
        async {
            a_ws.send_raw("this is not json".into())
                .await
                .map_err(ws_err)?;
            a_ws.wait_for(wait, |e| {
                matches!(e, ServerEvent::Error { .. }).then_some(())
            })
            .await
            .map_err(ws_err)?;
            a_ws.send(&ClientEvent::Ping {}).await.map_err(ws_err)?;
            a_ws.wait_for(wait, |e| matches!(e, ServerEvent::Pong {}).then_some(()))
                .await
                .map_err(ws_err)
        },
    )
    .await;
    r.step("bad: WS unknown type → error unknown_type", async {
        a_ws.send_raw(r#"{"type":"message.explode","data":{}}"#.into())
            .await
            .map_err(ws_err)?;
        let code = a_ws
            .wait_for(wait, |e| match e {
                ServerEvent::Error { code, .. } => Some(*code),
                _ => None,
            })
            .await
            .map_err(ws_err)?;
        ensure(code == ErrorCode::UnknownType, || format!("code {code}"))
    })
    .await;
    r.step(
        "bad: WS send to someone else's conversation → error",
        async {
            let other = ConversationId::new();
            stranger_send(&mut a_ws, other, wait).await
        },
    )
    .await;

    // ---- blocking ------------------------------------------------------------------------
    r.step("WS block.add → block.updated", async {
        a_ws.send(&ClientEvent::BlockAdd {
            username: bob.name.clone(),
        })
        .await
        .map_err(ws_err)?;
        a_ws.wait_for(wait, |e| match e {
            ServerEvent::BlockUpdated { username, blocked } if *username == bob.name => {
                Some(*blocked)
            }
            _ => None,
        })
        .await
        .map_err(ws_err)?
        .then_some(())
        .ok_or_else(|| "blocked: false".into())
    })
    .await;
    r.step("  send while blocked → 403 blocked", async {
        refused(
            bob.api.send_text(conv, "hello?", None).await,
            403,
            ErrorCode::Blocked,
        )
    })
    .await;
    r.step("  WS send while blocked → error blocked", async {
        a_ws.send(&ClientEvent::MessageSend {
            conversation_id: conv,
            content: "no".into(),
            temp_id: Some("chk-blocked".into()),
        })
        .await
        .map_err(ws_err)?;
        let code = a_ws
            .wait_for(wait, |e| match e {
                ServerEvent::Error { code, temp_id, .. }
                    if temp_id.as_deref() == Some("chk-blocked") =>
                {
                    Some(*code)
                }
                _ => None,
            })
            .await
            .map_err(ws_err)?;
        ensure(code == ErrorCode::Blocked, || format!("code {code}"))
    })
    .await;
    r.step("GET /chat/blocks/status/:username", async {
        let s = bob.api.block_status(&alice.name).await.map_err(describe)?;
        ensure(s.blocked_me && !s.blocked_by_me, || format!("{s:?}"))
    })
    .await;
    r.step("GET /chat/blocks", async {
        let p = alice
            .api
            .blocks(&PageQuery::default())
            .await
            .map_err(describe)?;
        ensure(p.data.iter().any(|b| b.user_id == bob.id), || {
            "bob not listed".into()
        })
    })
    .await;
    r.step("WS block.remove → block.updated", async {
        a_ws.send(&ClientEvent::BlockRemove {
            username: bob.name.clone(),
        })
        .await
        .map_err(ws_err)?;
        let blocked = a_ws
            .wait_for(wait, |e| match e {
                ServerEvent::BlockUpdated { username, blocked } if *username == bob.name => {
                    Some(*blocked)
                }
                _ => None,
            })
            .await
            .map_err(ws_err)?;
        ensure(!blocked, || "blocked: true".into())
    })
    .await;
    r.step("POST /chat/blocks", async {
        let c = alice.api.block(&carol.name).await.map_err(describe)?;
        ensure(c.blocked, || "not blocked".into())
    })
    .await;
    r.step("DELETE /chat/blocks/:username", async {
        let c = alice.api.unblock(&carol.name).await.map_err(describe)?;
        ensure(!c.blocked, || "still blocked".into())?;
        let s = carol
            .api
            .block_status(&alice.name)
            .await
            .map_err(describe)?;
        ensure(!s.blocked_me, || "carol still blocked".into())
    })
    .await;

    // ---- disconnect, offline sends, reconnect --------------------------------------------
    b_ws.close().await;
    r.step("WS user.offline after the last socket closes", async {
        a_ws.wait_for(wait, |e| match e {
            ServerEvent::UserOffline { user_id, .. } if *user_id == bob.id => Some(()),
            _ => None,
        })
        .await
        .map_err(ws_err)
    })
    .await;
    let mut missed = Vec::new();
    for i in 0..2 {
        if let Some(m) = r
            .step(
                &format!("send while the receiver is offline ({})", i + 1),
                async {
                    alice
                        .api
                        .send_text(
                            conv,
                            &format!("while you were away {i}"),
                            Some(&format!("chk-away-{i}")),
                        )
                        .await
                        .map_err(describe)
                },
            )
            .await
        {
            missed.push(m.id);
        }
    }
    let mut b_ws = r
        .must("WS reconnect (bob)", async {
            let (ws, id) = greeted(server, bob.api.token(), wait).await?;
            ensure(id == bob.id, || {
                "connection.success for someone else".into()
            })?;
            Ok(ws)
        })
        .await?;
    r.step("WS user.online reaches contacts (bob reconnects)", async {
        a_ws.wait_for(wait, |e| match e {
            ServerEvent::UserOnline { user_id } if *user_id == bob.id => Some(()),
            _ => None,
        })
        .await
        .map_err(ws_err)
    })
    .await;
    r.step(
        "  catch up: what was missed is in history, in order",
        async {
            let p = bob
                .api
                .messages(conv, &PageQuery::limit(2))
                .await
                .map_err(describe)?;
            let mut got: Vec<_> = p.data.iter().map(|m| m.id).collect();
            got.reverse();
            ensure(got == missed, || {
                "missed messages not found in order".into()
            })
        },
    )
    .await;
    r.step("  the new socket sends and delivers", async {
        b_ws.send(&ClientEvent::MessageSend {
            conversation_id: conv,
            content: "back".into(),
            temp_id: Some("chk-back".into()),
        })
        .await
        .map_err(ws_err)?;
        a_ws.wait_for(wait, new_message("chk-back"))
            .await
            .map_err(ws_err)?;
        Ok(())
    })
    .await;
    a_ws.close().await;
    b_ws.close().await;
    Ok(())
}

/// A send into a conversation that is not the sender's gets an `error` event (404 code).
async fn stranger_send(ws: &mut Socket, conv: ConversationId, wait: Duration) -> Step<()> {
    ws.send(&ClientEvent::MessageSend {
        conversation_id: conv,
        content: "hi".into(),
        temp_id: Some("chk-stranger".into()),
    })
    .await
    .map_err(ws_err)?;
    let code = ws
        .wait_for(wait, |e| match e {
            ServerEvent::Error { code, temp_id, .. }
                if temp_id.as_deref() == Some("chk-stranger") =>
            {
                Some(*code)
            }
            _ => None,
        })
        .await
        .map_err(ws_err)?;
    ensure(code == ErrorCode::NotFound, || format!("code {code}"))
}

fn short(name: &str) -> &str {
    name.rsplit('_').next().unwrap_or(name)
}
