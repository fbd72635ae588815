//! The WebSocket `/chat/ws`, typed: send [`ClientEvent`]s, receive [`ServerEvent`]s.

use std::time::Duration;

use chat_protocol::ws::{ClientEvent, Envelope, ServerEvent};
use futures_util::{SinkExt, StreamExt};
use tokio::net::TcpStream;
use tokio_tungstenite::tungstenite::client::IntoClientRequest;
use tokio_tungstenite::tungstenite::http::HeaderValue;
use tokio_tungstenite::tungstenite::Message;
use tokio_tungstenite::{MaybeTlsStream, WebSocketStream};

#[derive(Debug, thiserror::Error)]
pub enum WsError {
    /// The upgrade was refused (with the HTTP status when there was one) or the TCP
    /// connection failed.
    #[error("connect failed: {message}")]
    Connect {
        status: Option<u16>,
        message: String,
    },
    /// The server closed the socket (code and reason), or the connection dropped.
    #[error("socket closed ({code:?}: {reason})")]
    Closed { code: Option<u16>, reason: String },
    #[error("no event within {0:?}")]
    Timeout(Duration),
    #[error("undecodable server frame: {0}")]
    Decode(String),
}

/// One live socket of one user.
pub struct Socket {
    inner: WebSocketStream<MaybeTlsStream<TcpStream>>,
}

/// `http://host:port` → `ws://host:port/chat/ws` (and https → wss).
pub fn ws_url(base: &str) -> String {
    let base = base.trim_end_matches('/');
    let rest = base
        .strip_prefix("https://")
        .map(|r| format!("wss://{r}"))
        .or_else(|| base.strip_prefix("http://").map(|r| format!("ws://{r}")))
        .unwrap_or_else(|| base.to_string());
    format!("{rest}/chat/ws")
}

impl Socket {
    /// Connect with the token in the `Authorization` header (never in the URL, so it
    /// stays out of access logs).
    pub async fn connect(base: &str, token: &str) -> Result<Socket, WsError> {
        Self::connect_since(base, token, None).await
    }

    /// Connect and resume: the server replays the user's logged events after `since`
    /// (see [`chat_protocol::ws::SeqTracker`]), then sends `sync.complete`, then live events.
    pub async fn connect_since(
        base: &str,
        token: &str,
        since: Option<u64>,
    ) -> Result<Socket, WsError> {
        let connect_err =
            |status: Option<u16>, message: String| WsError::Connect { status, message };
        let mut url = ws_url(base);
        if let Some(since) = since {
            url.push_str(&format!("?since={since}"));
        }
        // Without the address "Connection refused" does not say which server refused.
        let at = ws_url(base);
        let mut req = url
            .into_client_request()
            .map_err(|e| connect_err(None, e.to_string()))?;
        let auth = HeaderValue::from_str(&format!("Bearer {token}"))
            .map_err(|e| connect_err(None, e.to_string()))?;
        req.headers_mut().insert("authorization", auth);
        let (inner, _) = tokio_tungstenite::connect_async(req)
            .await
            .map_err(|e| match e {
                tokio_tungstenite::tungstenite::Error::Http(resp) => connect_err(
                    Some(resp.status().as_u16()),
                    format!("HTTP {}", resp.status()),
                ),
                other => connect_err(None, format!("{at}: {other}")),
            })?;
        Ok(Socket { inner })
    }

    pub async fn send(&mut self, event: &ClientEvent) -> Result<(), WsError> {
        let text = serde_json::to_string(event).map_err(|e| WsError::Decode(e.to_string()))?;
        self.send_raw(text).await
    }

    /// Any text frame, well-formed or not (for bad-input checks).
    pub async fn send_raw(&mut self, text: String) -> Result<(), WsError> {
        self.inner
            .send(Message::Text(text.into()))
            .await
            .map_err(|e| WsError::Closed {
                code: None,
                reason: e.to_string(),
            })
    }

    /// The next server event; protocol pings are answered underneath.
    pub async fn next(&mut self, timeout: Duration) -> Result<ServerEvent, WsError> {
        Ok(self.next_envelope(timeout).await?.event)
    }

    /// The next server event with its event-log position, if it has one.
    pub async fn next_envelope(&mut self, timeout: Duration) -> Result<Envelope, WsError> {
        let deadline = tokio::time::Instant::now() + timeout;
        loop {
            let frame = tokio::time::timeout_at(deadline, self.inner.next())
                .await
                .map_err(|_| WsError::Timeout(timeout))?;
            match frame {
                Some(Ok(Message::Text(t))) => {
                    return serde_json::from_str(t.as_str())
                        .map_err(|e| WsError::Decode(format!("{e}: {}", t.as_str())))
                }
                Some(Ok(Message::Close(frame))) => {
                    return Err(WsError::Closed {
                        code: frame.as_ref().map(|f| u16::from(f.code)),
                        reason: frame.map(|f| f.reason.to_string()).unwrap_or_default(),
                    })
                }
                Some(Ok(_)) => continue,
                Some(Err(e)) => {
                    return Err(WsError::Closed {
                        code: None,
                        reason: e.to_string(),
                    })
                }
                None => {
                    return Err(WsError::Closed {
                        code: None,
                        reason: "connection ended".into(),
                    })
                }
            }
        }
    }

    /// Skip events until `pick` accepts one (or `timeout` passes).
    pub async fn wait_for<T>(
        &mut self,
        timeout: Duration,
        mut pick: impl FnMut(&ServerEvent) -> Option<T>,
    ) -> Result<T, WsError> {
        let deadline = tokio::time::Instant::now() + timeout;
        loop {
            let left = deadline.saturating_duration_since(tokio::time::Instant::now());
            let event = self.next(left).await.map_err(|e| match e {
                WsError::Timeout(_) => WsError::Timeout(timeout),
                e => e,
            })?;
            if let Some(t) = pick(&event) {
                return Ok(t);
            }
        }
    }

    /// Close politely (1000).
    pub async fn close(mut self) {
        let _ = self.inner.close(None).await;
    }

    /// The underlying stream, for callers that split reading and writing.
    pub fn into_inner(self) -> WebSocketStream<MaybeTlsStream<TcpStream>> {
        self.inner
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ws_urls_follow_the_scheme() {
        assert_eq!(
            ws_url("http://127.0.0.1:8080/"),
            "ws://127.0.0.1:8080/chat/ws"
        );
        assert_eq!(ws_url("https://chat.example"), "wss://chat.example/chat/ws");
    }

    /// Issue 18 bug 16: a socket that cannot connect names the server it tried.
    #[tokio::test]
    async fn a_refused_socket_names_the_server() {
        let port = crate::refused_port();
        let err = Socket::connect(&format!("http://127.0.0.1:{port}"), "t")
            .await
            .err()
            .expect("nothing listens there");
        let text = err.to_string();
        assert!(
            text.contains(&format!("ws://127.0.0.1:{port}/chat/ws")),
            "{text}"
        );
        assert!(text.contains("refused"), "{text}");
    }
}
