//! The reading half of a socket: the frame budget, decoding, and dispatch of client
//! events to the same domain services REST uses; typing state and its expiry.

use super::*;

/// What the frame budget says about one inbound frame.
enum Budget {
    Ok,
    /// Over budget: answered with a `rate_limited` error and otherwise ignored.
    Refused,
    /// Over budget too often: the socket is closed (1008).
    Close(CloseReason),
}

/// A failed read: a frame over [`HARD_FRAME_LIMIT`] is answered with close 1009 (message
/// too big), a protocol violation with 1002; anything else (a reset) just ends the socket.
fn read_error(e: &axum::Error) -> Option<CloseReason> {
    let text = e.to_string();
    tracing::debug!(error = %text, "socket read error");
    if text.contains("Space limit exceeded") || text.contains("too long") {
        Some(CloseReason {
            code: CLOSE_TOO_BIG,
            reason: "frame too large",
        })
    } else if text.contains("protocol error") {
        Some(CloseReason {
            code: CLOSE_PROTOCOL,
            reason: "protocol error",
        })
    } else {
        None
    }
}

pub(super) struct Reader<'a> {
    pub(super) state: &'a AppState,
    pub(super) user: &'a AuthUser,
    pub(super) key: ConnKey,
    pub(super) tx: &'a mpsc::Sender<Outbound>,
    pub(super) typing: super::typing::Typing,
    pub(super) limiter: DefaultDirectRateLimiter,
    pub(super) violations: u32,
}

impl Reader<'_> {
    /// Read until the client leaves (None) or the server must close (Some(reason)).
    pub(super) async fn run(
        &mut self,
        stream: &mut futures_util::stream::SplitStream<WebSocket>,
        idle: Duration,
    ) -> Option<CloseReason> {
        let mut last_inbound = Instant::now();
        // Well inside the 60 s presence TTL, so a live socket never looks offline.
        let mut presence_tick = tokio::time::interval(Duration::from_secs(20));
        presence_tick.tick().await;
        loop {
            let typing_until = self.typing.next_expiry();
            tokio::select! {
                msg = stream.next() => {
                    last_inbound = Instant::now();
                    // Every inbound frame spends the budget: text, binary, ping and pong.
                    if matches!(msg, Some(Ok(Message::Text(_) | Message::Binary(_) | Message::Ping(_) | Message::Pong(_)))) {
                        match self.spend_frame() {
                            Budget::Ok => {}
                            Budget::Refused => continue,
                            Budget::Close(reason) => return Some(reason),
                        }
                    }
                    match msg {
                        Some(Ok(Message::Text(t))) => self.on_text(t.as_str()).await,
                        Some(Ok(Message::Binary(_))) => reply(
                            self.tx,
                            &error_event(ErrorCode::InvalidJson, "binary frames are not supported; send JSON text", None),
                        ),
                        Some(Ok(Message::Ping(_) | Message::Pong(_))) => {}
                        Some(Ok(Message::Close(_))) | None => return None,
                        Some(Err(e)) => return read_error(&e),
                    }
                }
                _ = tokio::time::sleep_until(last_inbound + idle) => {
                    return Some(CloseReason { code: CLOSE_IDLE, reason: "idle timeout" });
                }
                // A timer only while typing is on: an idle socket has no periodic wake-up
                // but the presence refresh (and the writer's ping).
                _ = tokio::time::sleep_until(typing_until.unwrap_or(last_inbound + idle)), if typing_until.is_some() => {
                    self.expire_typing().await
                }
                _ = presence_tick.tick() => self.state.service.presence().refresh(self.user.id).await,
            }
        }
    }

    /// Charge one inbound frame to the socket's budget.
    fn spend_frame(&mut self) -> Budget {
        if self.limiter.check().is_ok() {
            return Budget::Ok;
        }
        crate::metrics::METRICS.rate_limited("ws_frames");
        self.violations += 1;
        if self.violations > MAX_VIOLATIONS {
            return Budget::Close(CloseReason {
                code: CLOSE_POLICY,
                reason: "too many frames",
            });
        }
        reply(
            self.tx,
            &error_event(ErrorCode::RateLimited, "too many frames; slow down", None),
        );
        Budget::Refused
    }

    async fn on_text(&mut self, text: &str) {
        if text.len() > MAX_FRAME {
            reply(
                self.tx,
                &error_event(
                    ErrorCode::PayloadTooLarge,
                    format!("frames are limited to {MAX_FRAME} bytes"),
                    None,
                ),
            );
            return;
        }
        match decode_frame(text) {
            // Boxed: `dispatch` holds every service call's future, ~5 KiB that would
            // otherwise sit in every socket's task for its whole life.
            Ok(event) => Box::pin(self.dispatch(event)).await,
            Err(bad) => reply(self.tx, &error_event(bad.code, bad.message, bad.temp_id)),
        }
    }

    async fn dispatch(&mut self, event: ClientEvent) {
        let service = &self.state.service;
        match event {
            ClientEvent::Ping {} => reply(self.tx, &ServerEvent::Pong {}),
            ClientEvent::MessageSend {
                conversation_id,
                content,
                temp_id,
                reply_to_id,
            } => {
                match service
                    .send_text(
                        self.user,
                        conversation_id,
                        &content,
                        temp_id.as_deref(),
                        reply_to_id,
                        Some(self.key),
                    )
                    .await
                {
                    Ok(sent) => {
                        self.stop_typing(conversation_id).await;
                        let text = frame(&ServerEvent::MessageSent {
                            temp_id,
                            message: sent.message,
                        });
                        // The sender's position rides along for its tracker, but the
                        // frame is never dropped as a replay duplicate: the ack is the
                        // answer to this socket's own send.
                        let text = match sent.seq {
                            Some(seq) => with_seq(&text, seq),
                            None => text,
                        };
                        let _ = self.tx.try_send(Outbound::plain(text));
                    }
                    Err(e) => reply(self.tx, &from_error(&e, temp_id)),
                }
            }
            ClientEvent::MessageRead {
                conversation_id,
                up_to_message_id,
            } => {
                // The service sends read_ack to every socket of the reader, this one included.
                if let Err(e) = service
                    .mark_read(self.user, conversation_id, up_to_message_id)
                    .await
                {
                    reply(self.tx, &from_error(&e, None));
                }
            }
            ClientEvent::TypingStart { conversation_id } => {
                if self.typing.refresh(conversation_id, Instant::now()) {
                    return;
                }
                match service.typing_peer(self.user.id, conversation_id).await {
                    Ok(peer) => {
                        self.typing.started(conversation_id, peer, Instant::now());
                        service
                            .relay_typing(self.user.id, peer, conversation_id, true)
                            .await;
                    }
                    Err(e) => reply(self.tx, &from_error(&e, None)),
                }
            }
            ClientEvent::TypingStop { conversation_id } => self.stop_typing(conversation_id).await,
            ClientEvent::BlockAdd { username } => {
                if let Err(e) = service.block(self.user, &username).await {
                    reply(self.tx, &from_error(&e, None));
                }
            }
            ClientEvent::BlockRemove { username } => {
                if let Err(e) = service.unblock(self.user, &username).await {
                    reply(self.tx, &from_error(&e, None));
                }
            }
            // Answered by the event each change sends to every socket of the user (this
            // one included); a refusal is an `error` frame.
            ClientEvent::MessageEdit {
                message_id,
                content,
            } => {
                if let Err(e) = service.edit_message(self.user, message_id, &content).await {
                    reply(self.tx, &from_error(&e, None));
                }
            }
            ClientEvent::MessageDelete { message_id, scope } => {
                if let Err(e) = service.delete_message(self.user, message_id, scope).await {
                    reply(self.tx, &from_error(&e, None));
                }
            }
            ClientEvent::ReactionSet {
                message_id,
                emoji,
                add,
            } => {
                if let Err(e) = service.react(self.user, message_id, &emoji, add).await {
                    reply(self.tx, &from_error(&e, None));
                }
            }
        }
    }

    async fn stop_typing(&mut self, conv: ConversationId) {
        if let Some(peer) = self.typing.stop(conv) {
            self.relay_stop(conv, peer).await;
        }
    }

    async fn relay_stop(&self, conv: ConversationId, peer: UserId) {
        self.state
            .service
            .relay_typing(self.user.id, peer, conv, false)
            .await;
    }

    async fn expire_typing(&mut self) {
        for (conv, peer) in self.typing.expired(Instant::now()) {
            self.relay_stop(conv, peer).await;
        }
    }

    pub(super) async fn stop_all_typing(&mut self) {
        for (conv, peer) in self.typing.drain() {
            self.relay_stop(conv, peer).await;
        }
    }
}
