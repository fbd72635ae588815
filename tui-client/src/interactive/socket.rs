//! The socket task of the interactive client: keeps one WebSocket up, forwards frames both
//! ways, pings, and reconnects with backoff, resuming from the last position it has.

use std::time::Duration;

use chat_client::{Client, Socket, WsError};
use chat_protocol::ws::{ClientEvent, Envelope, SeqTracker, ServerEvent};
use futures_util::{SinkExt, StreamExt};
use tokio::sync::mpsc;
use tokio_tungstenite::tungstenite::Message as Frame;

use crate::app::Update;

/// Backoff between reconnect attempts: 0.5 s doubling to 30 s, with full jitter over the
/// upper half so a server restart is not met by every client at the same instant.
pub fn backoff(attempt: u32) -> Duration {
    let cap = Duration::from_millis(500)
        .saturating_mul(1u32 << attempt.min(6))
        .min(Duration::from_secs(30));
    let half = cap / 2;
    half + half.mul_f64(rand::random::<f64>())
}

/// How often the client pings the server (the server drops sockets silent for 60 s).
const PING_EVERY: Duration = Duration::from_secs(25);

/// A refusal of the upgrade that retrying cannot cure: a client error other than a
/// timeout (408) or a rate limit (429).
pub(super) fn refusal_is_final(status: u16) -> bool {
    (400..500).contains(&status) && status != 408 && status != 429
}

/// What to tell the user when the server refuses the socket for good, and what to do.
pub(super) fn final_refusal(status: u16, message: &str) -> String {
    let hint = match status {
        401 => "restart with a valid token",
        409 => {
            "this username belongs to another account (one made by `chatctl` or another \
             identity provider): get its token with `chatctl token issue USER` and pass --token"
        }
        _ => "not retrying; restart once it is fixed",
    };
    format!("refused ({status}: {message}); {hint}")
}

/// Keeps one socket up: connects, forwards frames both ways, pings, and on any failure
/// waits [`backoff`] and tries again, resuming from the last position it has without a
/// hole (`?since=`), so the server replays what went by. A refusal that cannot change
/// (401 token, 409 username taken, any client error but 408/429) stops it for good.
pub(super) async fn socket_task(
    client: Client,
    mut outbound: mpsc::UnboundedReceiver<ClientEvent>,
    up: mpsc::UnboundedSender<Update>,
) {
    let mut attempt = 0u32;
    let mut tracker = SeqTracker::default();
    loop {
        let _ = up.send(Update::Connecting { attempt });
        let since = tracker.position();
        let reason = match Socket::connect_since(client.base(), client.token(), since).await {
            Ok(sock) => {
                attempt = 0;
                let _ = up.send(Update::Connected {
                    resumed: since.is_some(),
                });
                match pump(sock, &mut outbound, &up, &mut tracker).await {
                    Some(reason) => reason,
                    None => return, // the app is gone
                }
            }
            Err(WsError::Connect {
                status: Some(status),
                message,
            }) if refusal_is_final(status) => {
                let _ = up.send(Update::Disconnected {
                    reason: final_refusal(status, &message),
                    retry_in: None,
                    attempt,
                });
                return;
            }
            Err(e) => e.to_string(),
        };
        let wait = backoff(attempt);
        attempt = attempt.saturating_add(1);
        let _ = up.send(Update::Disconnected {
            reason,
            retry_in: Some(wait),
            attempt,
        });
        // Frames queued while away are dropped: pending messages are resent by the app
        // (with their temp_id) once the socket is back.
        let sleep = tokio::time::sleep(wait);
        tokio::pin!(sleep);
        loop {
            tokio::select! {
                _ = &mut sleep => break,
                ev = outbound.recv() => if ev.is_none() { return },
            }
        }
    }
}

/// Forward frames until the socket fails (the reason) or the app closes (`None`).
async fn pump(
    sock: Socket,
    outbound: &mut mpsc::UnboundedReceiver<ClientEvent>,
    up: &mpsc::UnboundedSender<Update>,
    tracker: &mut SeqTracker,
) -> Option<String> {
    let (mut sink, mut stream) = sock.into_inner().split();
    let mut ping = tokio::time::interval(PING_EVERY);
    ping.tick().await;
    loop {
        tokio::select! {
            ev = outbound.recv() => {
                let Some(ev) = ev else {
                    let _ = sink.close().await;
                    return None;
                };
                let Ok(text) = serde_json::to_string(&ev) else { continue };
                if let Err(e) = sink.send(Frame::Text(text.into())).await {
                    return Some(e.to_string());
                }
            }
            _ = ping.tick() => {
                let text = serde_json::to_string(&ClientEvent::Ping {}).unwrap_or_default();
                if let Err(e) = sink.send(Frame::Text(text.into())).await {
                    return Some(e.to_string());
                }
            }
            frame = stream.next() => match frame {
                Some(Ok(Frame::Text(t))) => match serde_json::from_str::<Envelope>(t.as_str()) {
                    // Delivered already (seen beyond a hole, then replayed): drop it. An
                    // ack always goes through: it settles this client's own send.
                    Ok(env)
                        if env.seq.is_some_and(|s| tracker.seen(s))
                            && !matches!(env.event, ServerEvent::MessageSent { .. }) => {}
                    Ok(env) => {
                        tracker.observe(&env);
                        if up.send(Update::Server(env.event)).is_err() {
                            return None;
                        }
                    }
                    Err(e) => {
                        let _ = up.send(Update::Error(format!("undecodable server frame: {e}")));
                    }
                },
                Some(Ok(Frame::Close(f))) => {
                    return Some(f.map_or_else(
                        || "closed by server".into(),
                        |f| format!("closed by server ({}: {})", u16::from(f.code), f.reason),
                    ));
                }
                Some(Ok(_)) => {}
                Some(Err(e)) => return Some(e.to_string()),
                None => return Some("connection ended".into()),
            }
        }
    }
}
