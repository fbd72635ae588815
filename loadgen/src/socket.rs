//! One WebSocket of a run: connecting, the per-socket task, and what each server frame means.

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::{bail, Context, Result};
use chat_protocol::ws::{ClientEvent, Envelope, SeqTracker, ServerEvent};
use chat_protocol::{ConversationId, UserId};
use futures_util::{SinkExt, StreamExt};
use tokio::sync::mpsc;
use tokio_tungstenite::tungstenite::Message as WsMessage;

use crate::net;
use crate::shared::{elapsed_us, record, Shared, WRITTEN};

/// What a socket task is told to do.
pub(crate) enum Command {
    Send {
        k: u64,
        conversation_id: ConversationId,
    },
}

type Ws = tokio_tungstenite::WebSocketStream<tokio::net::TcpStream>;

/// Open a socket and wait for `connection.success`.
pub(crate) async fn connect(
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
pub(crate) struct Dial {
    pub(crate) addr: SocketAddr,
    pub(crate) hostport: String,
    pub(crate) token: String,
    pub(crate) source: Option<std::net::IpAddr>,
}

/// Who a socket task is: its user, which of the user's sockets, and where it reconnects to.
pub(crate) struct Socket {
    pub(crate) me: UserId,
    pub(crate) index: usize,
    pub(crate) dial: Dial,
}

/// One socket: write the sends it is told to, read and account for every event. When the
/// storm comes it drops its connection, reconnects resuming from its last position, and
/// resends what was written but not acknowledged (same temp_id), as a real client does.
pub(crate) async fn socket_task(
    ws: Ws,
    socket: Socket,
    mut rx: mpsc::UnboundedReceiver<Command>,
    mut storm: tokio::sync::watch::Receiver<bool>,
    shared: Arc<Shared>,
) {
    let Socket {
        me,
        index: socket_index,
        dial,
    } = socket;
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
            reply_to_id: None,
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
        ServerEvent::MessageSent { temp_id, message } => {
            let k = shared.k_of(temp_id.as_deref())?;
            shared.max_acked.fetch_max(k, Ordering::Relaxed);
            if let Some(recent) = &shared.recent {
                recent.lock().expect("recent lock").insert(me, message.id);
            }
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
