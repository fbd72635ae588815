//! A WebSocket test client for `/chat/ws` (tokio-tungstenite over a real socket).

use std::time::Duration;

use futures_util::{SinkExt, StreamExt};
use serde_json::Value;
use tokio::net::TcpStream;
use tokio_tungstenite::tungstenite::client::IntoClientRequest;
use tokio_tungstenite::tungstenite::protocol::frame::coding::CloseCode;
use tokio_tungstenite::tungstenite::Message;
use tokio_tungstenite::{MaybeTlsStream, WebSocketStream};

use crate::server::{TestServer, TestUser};

pub struct WsClient {
    stream: WebSocketStream<MaybeTlsStream<TcpStream>>,
    /// Events read while waiting for another type, kept in arrival order.
    backlog: Vec<Value>,
}

/// How the socket ended, as seen by the client.
#[derive(Debug, PartialEq, Eq)]
pub enum Ended {
    Closed(u16),
    ClosedWithoutFrame,
}

impl WsClient {
    fn ws_url(server: &TestServer) -> String {
        format!("{}/chat/ws", server.base.replacen("http://", "ws://", 1))
    }

    /// Upgrade `url` with the user's token in the Authorization header.
    async fn open(url: String, user: &TestUser) -> WsClient {
        let mut req = url.into_client_request().unwrap();
        req.headers_mut().insert(
            "authorization",
            format!("Bearer {}", user.token).parse().unwrap(),
        );
        let (stream, _) = tokio_tungstenite::connect_async(req)
            .await
            .expect("websocket connect");
        WsClient {
            stream,
            backlog: Vec::new(),
        }
    }

    /// Connect with the token in the Authorization header; read `connection.success` and
    /// wait for `status.bulk`.
    pub async fn connect(server: &TestServer, user: &TestUser) -> WsClient {
        let mut c = Self::open(Self::ws_url(server), user).await;
        let hello = c.next_of("connection.success").await;
        assert_eq!(hello["data"]["user_id"], user.id.to_string());
        // `status.bulk` follows once the socket's presence is recorded and announced, so
        // after it this user's `user.online` has gone out; it stays queued for tests that
        // look at it.
        let bulk = c.next_of("status.bulk").await;
        c.backlog.insert(0, bulk);
        c
    }

    /// Connect resuming after `since` (`/chat/ws?since=`); read `connection.success` and
    /// return the socket with nothing else read yet (the replay comes next).
    pub async fn connect_since(server: &TestServer, user: &TestUser, since: u64) -> WsClient {
        let url = format!("{}?since={since}", Self::ws_url(server));
        let mut c = Self::open(url, user).await;
        let hello = c
            .read_event(Duration::from_secs(10))
            .await
            .expect("greeting");
        assert_eq!(hello["type"], "connection.success", "first frame: {hello}");
        c
    }

    /// Every frame up to `sync.complete`, in order (the replay), and that frame.
    pub async fn until_sync(&mut self) -> (Vec<Value>, Value) {
        let mut before = Vec::new();
        if let Some(i) = self
            .backlog
            .iter()
            .position(|e| e["type"] == "sync.complete")
        {
            let sync = self.backlog.remove(i);
            before = self.backlog.drain(..i).collect();
            return (before, sync);
        }
        loop {
            let ev = self
                .read_event(Duration::from_secs(10))
                .await
                .unwrap_or_else(|| panic!("no sync.complete; saw {before:?}"));
            if ev["type"] == "sync.complete" {
                return (before, ev);
            }
            before.push(ev);
        }
    }

    /// Connect with `?token=` instead of the header.
    pub async fn connect_query(server: &TestServer, token: &str) -> Result<WsClient, u16> {
        let url = format!("{}?token={token}", Self::ws_url(server));
        match tokio_tungstenite::connect_async(url).await {
            Ok((stream, _)) => Ok(WsClient {
                stream,
                backlog: Vec::new(),
            }),
            Err(tokio_tungstenite::tungstenite::Error::Http(resp)) => Err(resp.status().as_u16()),
            Err(e) => panic!("unexpected connect error: {e}"),
        }
    }

    pub async fn send(&mut self, frame: Value) {
        self.stream
            .send(Message::Text(frame.to_string().into()))
            .await
            .expect("send frame");
    }

    pub async fn send_raw(&mut self, msg: Message) {
        self.stream.send(msg).await.expect("send raw frame");
    }

    /// Send a frame that the server may refuse by closing the connection.
    pub async fn try_send_raw(
        &mut self,
        msg: Message,
    ) -> Result<(), tokio_tungstenite::tungstenite::Error> {
        self.stream.send(msg).await
    }

    /// The next JSON event, any type; panics after `timeout`.
    async fn read_event(&mut self, timeout: Duration) -> Option<Value> {
        let deadline = tokio::time::Instant::now() + timeout;
        loop {
            let msg = tokio::time::timeout_at(deadline, self.stream.next())
                .await
                .ok()??;
            match msg.ok()? {
                Message::Text(t) => {
                    return Some(serde_json::from_str(t.as_str()).expect("server frames are JSON"))
                }
                Message::Close(_) => return None,
                _ => continue,
            }
        }
    }

    /// Wait (up to 10 s) for an event of type `kind`, keeping the others for later.
    pub async fn next_of(&mut self, kind: &str) -> Value {
        self.next_of_within(kind, Duration::from_secs(10))
            .await
            .unwrap_or_else(|| {
                panic!(
                    "no {kind} event within the time limit; saw {:?}",
                    self.backlog
                )
            })
    }

    pub async fn next_of_within(&mut self, kind: &str, timeout: Duration) -> Option<Value> {
        if let Some(i) = self.backlog.iter().position(|e| e["type"] == kind) {
            return Some(self.backlog.remove(i));
        }
        let deadline = tokio::time::Instant::now() + timeout;
        loop {
            let left = deadline.saturating_duration_since(tokio::time::Instant::now());
            let ev = self.read_event(left).await?;
            if ev["type"] == kind {
                return Some(ev);
            }
            self.backlog.push(ev);
        }
    }

    /// Assert no event of `kind` arrives within `wait`.
    pub async fn assert_none(&mut self, kind: &str, wait: Duration) {
        if let Some(ev) = self.next_of_within(kind, wait).await {
            panic!("unexpected {kind}: {ev}");
        }
    }

    /// Read until the server closes; report the close code.
    pub async fn ended(&mut self, timeout: Duration) -> Ended {
        let deadline = tokio::time::Instant::now() + timeout;
        loop {
            match tokio::time::timeout_at(deadline, self.stream.next()).await {
                Err(_) => panic!("socket still open after {timeout:?}"),
                Ok(None) | Ok(Some(Err(_))) => return Ended::ClosedWithoutFrame,
                Ok(Some(Ok(Message::Close(Some(f))))) => return Ended::Closed(u16::from(f.code)),
                Ok(Some(Ok(Message::Close(None)))) => {
                    return Ended::Closed(u16::from(CloseCode::Status))
                }
                Ok(Some(Ok(_))) => continue,
            }
        }
    }

    pub async fn close(mut self) {
        let _ = self.stream.close(None).await;
    }
}
