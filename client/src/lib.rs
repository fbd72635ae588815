//! A typed client for chatd: one method per REST call and a WebSocket wrapper, all on the
//! shared wire types of `chat-protocol`, so a client can never drift from the server.
//!
//! Used by `chat-tui` (the interactive client and its scripted `check`); errors carry the
//! server's `{"error": {code, message}}` body when there is one.

mod rest;
mod ws;

pub use rest::{api_error, Client, PageQuery, Upload};
pub use ws::{ws_url, Socket, WsError};

use chat_protocol::auth::Claims;
use chat_protocol::error::ErrorCode;
use chat_protocol::UserId;

/// What a REST call can fail with.
#[derive(Debug, thiserror::Error)]
pub enum ClientError {
    /// The server answered with an error status and (normally) the SPEC error body.
    #[error("HTTP {status}: {}: {message}", .code.map_or("-", ErrorCode::as_str))]
    Api {
        status: u16,
        /// `None` when the body was not the SPEC error format.
        code: Option<ErrorCode>,
        message: String,
    },
    /// No HTTP answer: the server is unreachable, refused the connection, or timed out.
    #[error("{}", transport_message(.0))]
    Transport(#[from] reqwest::Error),
    #[error("unexpected response body: {0}")]
    Decode(String),
}

impl ClientError {
    pub fn status(&self) -> Option<u16> {
        match self {
            ClientError::Api { status, .. } => Some(*status),
            _ => None,
        }
    }

    pub fn code(&self) -> Option<ErrorCode> {
        match self {
            ClientError::Api { code, .. } => *code,
            _ => None,
        }
    }
}

pub type Result<T, E = ClientError> = std::result::Result<T, E>;

/// A transport failure in words a user can act on: what failed, where, and the innermost
/// cause (`cannot connect to http://127.0.0.1:8080: Connection refused (os error 111)`)
/// rather than reqwest's "error sending request for url".
fn transport_message(e: &reqwest::Error) -> String {
    let at = e
        .url()
        .map(|u| u.origin().ascii_serialization())
        .unwrap_or_else(|| "the server".into());
    let mut cause: &dyn std::error::Error = e;
    while let Some(inner) = cause.source() {
        cause = inner;
    }
    if e.is_timeout() {
        format!("no answer from {at} in time")
    } else if e.is_connect() {
        format!("cannot connect to {at}: {cause}")
    } else if e.is_decode() || e.is_body() {
        format!("bad response from {at}: {cause}")
    } else {
        format!("request to {at} failed: {cause}")
    }
}

/// A fresh user id and an HS256 token for it, signed with the server's secret (for local
/// use, tests and load generation; production tokens come from the identity provider).
pub fn mint_token(secret: &str, username: &str, ttl_secs: i64) -> Result<(UserId, String), String> {
    let id = UserId::new();
    Ok((id, mint_token_for(secret, id, username, ttl_secs)?))
}

/// An HS256 token for a given user id.
pub fn mint_token_for(
    secret: &str,
    id: UserId,
    username: &str,
    ttl_secs: i64,
) -> Result<String, String> {
    let exp = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_err(|e| e.to_string())?
        .as_secs() as i64
        + ttl_secs;
    jsonwebtoken::encode(
        &jsonwebtoken::Header::default(),
        &Claims {
            sub: id.to_string(),
            username: username.to_string(),
            exp,
            iat: None,
        },
        &jsonwebtoken::EncodingKey::from_secret(secret.as_bytes()),
    )
    .map_err(|e| e.to_string())
}

/// A loopback port nothing listens on: bound, noted, closed (for refused-connection tests).
#[cfg(test)]
pub(crate) fn refused_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .expect("a free port")
        .port()
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Issue 18 bug 16: an unreachable server is named, with the reason.
    #[tokio::test]
    async fn a_refused_connection_says_where_and_why() {
        let base = format!("http://127.0.0.1:{}", refused_port());
        let err = Client::new(&base, "t")
            .expect("client")
            .unread_count()
            .await
            .expect_err("nothing listens there");
        let text = err.to_string();
        assert!(
            text.starts_with(&format!("cannot connect to {base}")),
            "{text}"
        );
        assert!(text.to_lowercase().contains("refused"), "{text}");
    }
}
