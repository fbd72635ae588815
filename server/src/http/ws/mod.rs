//! `/chat/ws`: one task pair per socket. The reader parses client frames and calls the
//! same domain services as REST; the writer drains the socket's bounded queue, pings on
//! schedule and sends the close frame. See [`hub`] for delivery and close codes.

mod reader;
mod typing;

use std::num::NonZeroU32;
use std::sync::Arc;
use std::time::Duration;

use axum::extract::ws::rejection::WebSocketUpgradeRejection;
use axum::extract::ws::{CloseFrame, Message, WebSocket, WebSocketUpgrade};
use axum::extract::State;
use axum::http::HeaderMap;
use axum::response::{IntoResponse, Response};
use chat_protocol::ws::{ClientEvent, ServerEvent};
use chat_protocol::{ConversationId, ErrorCode, UserId};
use futures_util::{SinkExt, StreamExt};
use governor::clock::DefaultClock;
use governor::{DefaultDirectRateLimiter, Quota};
use serde::Deserialize;
use tokio::sync::{mpsc, oneshot, watch};
use tokio::time::Instant;
use tracing::Instrument;

use crate::auth::AuthUser;
use crate::domain::delivery::ConnKey;
use crate::error::Error;
use crate::http::extract::{bearer_from_headers, ApiQuery};
use crate::http::AppState;
use crate::realtime::hub::{
    self, with_seq, CloseReason, Outbound, Registration, CLOSE_IDLE, CLOSE_POLICY,
};
use reader::Reader;

/// Largest client frame we parse; larger ones get an `error` event.
pub const MAX_FRAME: usize = 64 * 1024;
/// Frames above this are a protocol error and end the socket (close 1009).
const HARD_FRAME_LIMIT: usize = 1024 * 1024;
/// Read buffer per socket; it grows for a larger frame and shrinks back.
const READ_BUFFER: usize = 4 * 1024;
/// Bytes a socket may hold unwritten before writes fail (the per-socket queue bounds
/// the rest).
const MAX_WRITE_BUFFER: usize = 2 * 1024 * 1024;
pub use typing::TYPING_TTL;
/// Client frames per second allowed per socket (burst twice that).
const FRAMES_PER_SEC: u32 = 20;
/// Rate-limit refusals tolerated on one socket before it is closed for abuse.
const MAX_VIOLATIONS: u32 = 200;

/// Timing of the socket heartbeat.
#[derive(Debug, Clone, Copy)]
pub struct WsSettings {
    pub ping: Duration,
    pub idle: Duration,
    /// Sockets one user may hold open on this instance (`CHAT_WS_MAX_SOCKETS_PER_USER`).
    pub max_sockets_per_user: usize,
}

#[derive(Debug, Default, Deserialize)]
pub struct WsQuery {
    token: Option<String>,
    /// Resume: replay the user's logged events after this position before live ones.
    since: Option<u64>,
}

/// Logged events read per replay query.
const REPLAY_PAGE: u32 = 500;
/// Close code when a resume could not be completed (the database failed): reconnect
/// later with the same `since` (RFC 6455 1013 "try again later").
pub const CLOSE_TRY_AGAIN: u16 = 1013;
/// RFC 6455: a frame larger than the server will take.
pub const CLOSE_TOO_BIG: u16 = 1009;
/// RFC 6455: the peer broke the protocol.
pub const CLOSE_PROTOCOL: u16 = 1002;

/// Authenticate (header or `?token=`), then upgrade. Auth failures are plain 401 JSON.
pub async fn upgrade(
    State(state): State<AppState>,
    headers: HeaderMap,
    ApiQuery(q): ApiQuery<WsQuery>,
    ws: Result<WebSocketUpgrade, WebSocketUpgradeRejection>,
) -> Result<Response, Error> {
    let token = bearer_from_headers(&headers)
        .map(str::to_string)
        .or(q.token)
        .ok_or_else(|| Error::Unauthorized("missing bearer token".into()))?;
    let user = state.service.authenticate(&state.keys, &token).await?;
    // Per instance: what this bounds is one process's memory and file descriptors.
    if state.hub.sockets_of(user.id) >= state.ws.max_sockets_per_user {
        crate::metrics::METRICS.refused("ws_sockets_per_user");
        return Err(Error::Capped(format!(
            "at most {} open sockets per user; close one first",
            state.ws.max_sockets_per_user
        )));
    }
    let request_id = headers
        .get("x-request-id")
        .and_then(|v| v.to_str().ok())
        .unwrap_or("-")
        .to_string();
    let ws = ws.map_err(|r| {
        Error::Validation(format!("expected a WebSocket upgrade: {}", r.body_text()))
    })?;
    Ok(ws
        .max_message_size(HARD_FRAME_LIMIT)
        .max_frame_size(HARD_FRAME_LIMIT)
        // tungstenite's defaults (128 KiB read buffer allocated up front, 128 KiB write
        // batching) cost ~145 KiB per idle socket; client frames are small, and every
        // outbound frame is written at once anyway (docs/benchmarks.md).
        .read_buffer_size(READ_BUFFER)
        .write_buffer_size(0)
        .max_write_buffer_size(MAX_WRITE_BUFFER)
        .on_upgrade(move |socket| {
            // The upgrade request's id follows the session into its logs.
            let span = tracing::info_span!("ws", user = %user.id, request_id = %request_id);
            session(state, user, q.since, socket).instrument(span)
        })
        .into_response())
}

/// Why a client frame was refused: the `error` event to answer with.
#[derive(Debug, Clone, PartialEq)]
pub struct BadFrame {
    pub code: ErrorCode,
    pub message: String,
    pub temp_id: Option<String>,
}

/// Decode one client text frame (size already checked): malformed JSON, a frame without
/// a type, an unknown type and a known type with bad fields each get their SPEC code;
/// the temp_id is echoed whenever one can be read. Pure, so it is fuzzed
/// (`fuzz/fuzz_targets/ws_frame.rs`).
pub fn decode_frame(text: &str) -> Result<ClientEvent, BadFrame> {
    let bad = |code, message: String, temp_id| BadFrame {
        code,
        message,
        temp_id,
    };
    let mut value: serde_json::Value = serde_json::from_str(text)
        .map_err(|e| bad(ErrorCode::InvalidJson, format!("malformed JSON: {e}"), None))?;
    // `data` is always an object (SPEC); a frame without one (`{"type":"ping"}`, as
    // clients before that rule sent) reads as `{}`.
    if let Some(obj) = value.as_object_mut() {
        obj.entry("data")
            .or_insert_with(|| serde_json::Value::Object(Default::default()));
    }
    let temp_id = value["data"]["temp_id"].as_str().map(str::to_string);
    let Some(kind) = value
        .get("type")
        .and_then(|t| t.as_str())
        .map(str::to_string)
    else {
        return Err(bad(
            ErrorCode::InvalidJson,
            "a frame is {\"type\": ..., \"data\": {...}}".to_string(),
            None,
        ));
    };
    if !ClientEvent::TYPES.contains(&kind.as_str()) {
        return Err(bad(
            ErrorCode::UnknownType,
            format!("unknown event type {kind:?}"),
            temp_id,
        ));
    }
    serde_json::from_value(value).map_err(|e| {
        bad(
            ErrorCode::ValidationFailed,
            format!("bad {kind} frame: {e}"),
            temp_id,
        )
    })
}

fn frame(event: &ServerEvent) -> Arc<str> {
    serde_json::to_string(event)
        .unwrap_or_else(|_| {
            r#"{"type":"error","data":{"code":"internal","message":"serialisation failed"}}"#.into()
        })
        .into()
}

fn error_event(
    code: ErrorCode,
    message: impl Into<String>,
    temp_id: Option<String>,
) -> ServerEvent {
    ServerEvent::Error {
        code,
        message: message.into(),
        temp_id,
    }
}

fn from_error(e: &Error, temp_id: Option<String>) -> ServerEvent {
    error_event(e.code(), e.public_message(), temp_id)
}

/// Queue a reply to this socket. A full queue here means the client is not reading;
/// the hub's close signal handles that, so the frame is dropped.
fn reply(tx: &mpsc::Sender<Outbound>, event: &ServerEvent) {
    let _ = tx.try_send(Outbound::plain(frame(event)));
}

/// What the replay task hands the writer before live frames may flow.
enum Replay {
    Frame(Arc<str>),
    /// Caught up: live frames at or below this position were replayed (0: none were).
    Done {
        skip_through: u64,
    },
    /// The log could not be read; the socket is closed so the client resumes again.
    Failed,
}

/// `f`'s output, or None as soon as the writer has gone (the socket closed): a replay
/// nobody will read stops at once instead of finishing its query.
async fn until_closed<T>(
    out: &mpsc::Sender<Replay>,
    f: impl std::future::Future<Output = T>,
) -> Option<T> {
    tokio::select! {
        r = f => Some(r),
        _ = out.closed() => None,
    }
}

/// Send `since`'s missed events (or, for a new client, nothing) and `sync.complete`.
/// The hub registration came first, so every event committed after the head read here
/// reaches the live queue; events at or below the head come from the store. Frames go
/// through a small channel the writer drains before the live queue: a long replay waits
/// for the socket instead of filling memory.
async fn replay(state: AppState, user: UserId, since: Option<u64>, out: mpsc::Sender<Replay>) {
    let service = &state.service;
    let head = match until_closed(&out, service.event_head(user)).await {
        None => return, // the socket is gone
        Some(Ok(h)) => h,
        Some(Err(e)) => {
            tracing::warn!(error = %e, "event log unavailable");
            let _ = out.send(Replay::Failed).await;
            return;
        }
    };
    let mut after = head;
    if let Some(since) = since {
        if since > head {
            let event = error_event(
                ErrorCode::ValidationFailed,
                format!(
                    "since={since} is ahead of your newest event ({head}); resuming from {head}"
                ),
                None,
            );
            let _ = out.send(Replay::Frame(frame(&event))).await;
        } else {
            after = since;
        }
    }
    let mut replayed = 0u64;
    while after < head {
        let page = match until_closed(&out, service.events(user, after, head, REPLAY_PAGE)).await {
            None => return,
            Some(Ok(p)) => p,
            Some(Err(e)) => {
                tracing::warn!(error = %e, "replay failed");
                let _ = out.send(Replay::Failed).await;
                return;
            }
        };
        let Some(&(last, _)) = page.last() else { break };
        for (seq, event) in &page {
            if out
                .send(Replay::Frame(with_seq(&frame(event), *seq)))
                .await
                .is_err()
            {
                return; // the writer is gone
            }
        }
        replayed += page.len() as u64;
        after = last;
    }
    let done = ServerEvent::SyncComplete {
        seq: head,
        replayed,
    };
    let _ = out.send(Replay::Frame(frame(&done))).await;
    let skip_through = if since.is_some() { head } else { 0 };
    let _ = out.send(Replay::Done { skip_through }).await;
}

/// The frame budgets' clock, one for every socket: making one runs CPUID several times
/// (quanta's counter detection), a VM exit each on a virtual machine; it showed in a
/// reconnect storm's profile.
static FRAME_CLOCK: std::sync::LazyLock<DefaultClock> =
    std::sync::LazyLock::new(DefaultClock::default);

async fn session(state: AppState, user: AuthUser, since: Option<u64>, socket: WebSocket) {
    let hub = state.hub.clone();
    let Registration { key, tx, rx, close } = hub.register(user.id);
    let (sink, mut stream) = socket.split();
    // The writer runs first: `connection.success` goes out now, not after the presence
    // write and the contacts query below.
    let (stop_tx, stop_rx) = oneshot::channel();
    let (replay_tx, replay_rx) = mpsc::channel(64);
    let mut writer = tokio::spawn(write_loop(
        sink,
        rx,
        replay_rx,
        close,
        stop_rx,
        state.ws.ping,
    ));
    // The greeting leads the replay channel, which the writer drains before live frames.
    let hello = ServerEvent::ConnectionSuccess {
        user_id: user.id,
        username: user.username.as_str().to_string(),
        server_time: crate::model::now(),
    };
    let _ = replay_tx.try_send(Replay::Frame(frame(&hello)));
    // Not joined or aborted: a finished task's memory lives as long as any handle to it
    // (~3 KiB per socket for the whole session). The replay ends by itself once the writer
    // is gone: its queries race the channel's closing, and its sends fail.
    tokio::spawn(
        replay(state.clone(), user.id, since, replay_tx).instrument(tracing::Span::current()),
    );
    let mut known_contacts = Vec::new();
    match state.service.socket_opened(user.id).await {
        Ok(users) => {
            known_contacts = users.iter().map(|u| u.user_id).collect();
            reply(&tx, &ServerEvent::StatusBulk { users })
        }
        Err(e) => {
            tracing::warn!(error = %e, "presence update failed");
            reply(&tx, &from_error(&e, None));
        }
    }
    let mut reader = Reader {
        state: &state,
        user: &user,
        key,
        tx: &tx,
        typing: typing::Typing::default(),
        limiter: DefaultDirectRateLimiter::direct_with_clock(
            Quota::per_second(NonZeroU32::new(FRAMES_PER_SEC).unwrap_or(NonZeroU32::MIN))
                .allow_burst(NonZeroU32::new(FRAMES_PER_SEC * 2).unwrap_or(NonZeroU32::MIN)),
            FRAME_CLOCK.clone(),
        ),
        violations: 0,
    };
    tokio::select! {
        reason = reader.run(&mut stream, state.ws.idle) => {
            let server_closes = reason.is_some();
            let _ = stop_tx.send(reason);
            let _ = tokio::time::timeout(Duration::from_secs(5), &mut writer).await;
            if server_closes {
                // Closing handshake: let the client answer our close frame before the
                // TCP connection goes, so it reads the close code instead of a reset.
                let _ = tokio::time::timeout(Duration::from_secs(2), async {
                    while let Some(Ok(m)) = stream.next().await {
                        if matches!(m, Message::Close(_)) {
                            break;
                        }
                    }
                })
                .await;
            }
        }
        _ = &mut writer => {}
    }
    writer.abort();
    reader.stop_all_typing().await;
    // Presence before unregistering: shutdown waits for the session count to reach zero,
    // and this still needs the database.
    if let Err(e) = state.service.socket_closed(user.id, &known_contacts).await {
        tracing::warn!(error = %e, "presence update failed");
    }
    hub.unregister(user.id, key);
}

type Sink = futures_util::stream::SplitSink<WebSocket, Message>;

async fn send_close(sink: &mut Sink, reason: CloseReason) {
    crate::metrics::METRICS.ws_closed(reason.code);
    let _ = sink
        .send(Message::Close(Some(CloseFrame {
            code: reason.code,
            reason: reason.reason.into(),
        })))
        .await;
}

async fn write_loop(
    mut sink: Sink,
    mut rx: mpsc::Receiver<Outbound>,
    replay: mpsc::Receiver<Replay>,
    mut close: watch::Receiver<Option<CloseReason>>,
    mut stop: oneshot::Receiver<Option<CloseReason>>,
    ping: Duration,
) {
    let mut tick = tokio::time::interval_at(Instant::now() + ping, ping);
    // Replay first; live frames wait in their queue until it is done. The replay channel
    // is dropped then, so an idle socket does not keep its buffer.
    let mut replay = Some(replay);
    let mut skip_through = 0u64;
    loop {
        tokio::select! {
            biased;
            r = async { replay.as_mut()?.recv().await }, if replay.is_some() => match r {
                Some(Replay::Frame(f)) => {
                    if sink.send(Message::Text(f.as_ref().into())).await.is_err() {
                        return;
                    }
                }
                Some(Replay::Done { skip_through: s }) => {
                    skip_through = s;
                    replay = None;
                }
                Some(Replay::Failed) | None => {
                    let event = error_event(
                        ErrorCode::ServiceUnavailable,
                        "could not read your event log; reconnect with the same since",
                        None,
                    );
                    let _ = sink.send(Message::Text(frame(&event).as_ref().into())).await;
                    send_close(&mut sink, CloseReason { code: CLOSE_TRY_AGAIN, reason: "resume failed" }).await;
                    return;
                }
            },
            changed = close.changed() => {
                let reason = if changed.is_ok() { *close.borrow() } else { None };
                if let Some(reason) = reason {
                    if reason.code != hub::CLOSE_SLOW_CONSUMER {
                        // Finish what was already queued (shutdown), bounded in time.
                        let drain = async {
                            while let Ok(f) = rx.try_recv() {
                                if sink.send(Message::Text(f.text.as_ref().into())).await.is_err() {
                                    break;
                                }
                            }
                        };
                        let _ = tokio::time::timeout(Duration::from_secs(2), drain).await;
                    }
                    send_close(&mut sink, reason).await;
                }
                return;
            }
            r = &mut stop => {
                if let Ok(Some(reason)) = r {
                    send_close(&mut sink, reason).await;
                }
                return;
            }
            f = rx.recv(), if replay.is_none() => match f {
                // Already replayed (it committed before the head was read).
                Some(f) if f.seq != 0 && f.seq <= skip_through => {}
                Some(f) => {
                    if sink.send(Message::Text(f.text.as_ref().into())).await.is_err() {
                        return;
                    }
                }
                None => return,
            },
            _ = tick.tick() => {
                if sink.send(Message::Ping(Default::default())).await.is_err() {
                    return;
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn code(text: &str) -> (ErrorCode, Option<String>) {
        let bad = decode_frame(text).expect_err("refused");
        (bad.code, bad.temp_id)
    }

    #[test]
    fn every_kind_of_bad_frame_gets_its_code_and_keeps_the_temp_id() {
        assert_eq!(code("not json").0, ErrorCode::InvalidJson);
        assert_eq!(code(r#"{"data":{}}"#).0, ErrorCode::InvalidJson);
        assert_eq!(code(r#"{"type":7}"#).0, ErrorCode::InvalidJson);
        assert_eq!(
            code(r#"{"type":"message.forward","data":{"temp_id":"t1"}}"#),
            (ErrorCode::UnknownType, Some("t1".into()))
        );
        assert_eq!(
            code(
                r#"{"type":"message.send","data":{"conversation_id":"nope","content":"x","temp_id":"t2"}}"#
            ),
            (ErrorCode::ValidationFailed, Some("t2".into()))
        );
        assert_eq!(decode_frame(r#"{"type":"ping"}"#), Ok(ClientEvent::Ping {}));
        assert_eq!(
            decode_frame(r#"{"type":"ping","data":{}}"#),
            Ok(ClientEvent::Ping {})
        );
        assert_eq!(
            code(r#"{"type":"ping","data":5}"#).0,
            ErrorCode::ValidationFailed
        );
    }
}
