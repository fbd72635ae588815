//! Every REST call of SPEC.md, typed.

use std::time::Duration;

use chat_protocol::error::ErrorBody;
use chat_protocol::rest::{
    BlockChange, BlockRequest, BlockStatus, BlockedUser, Conversation, DeleteScope, DeletedMessage,
    EditMessageRequest, LinkItem, MarkReadRequest, MarkReadResponse, Message, MessageContext, Page,
    ReactionsResponse, SearchHit, SendMessageRequest, UnreadCount,
};
use chat_protocol::{ConversationId, MessageId};
use reqwest::{Method, RequestBuilder, Response};
use serde::de::DeserializeOwned;

use crate::{ClientError, Result};

/// One user's view of a chatd: its base URL and the user's token.
#[derive(Debug, Clone)]
pub struct Client {
    http: reqwest::Client,
    base: String,
    token: String,
}

/// `before` / `after` cursors and a page size; all optional.
#[derive(Debug, Clone, Default)]
pub struct PageQuery {
    pub before: Option<String>,
    pub after: Option<String>,
    pub limit: Option<u32>,
}

impl PageQuery {
    pub fn limit(limit: u32) -> Self {
        PageQuery {
            limit: Some(limit),
            ..Default::default()
        }
    }

    pub fn before(cursor: impl Into<String>, limit: u32) -> Self {
        PageQuery {
            before: Some(cursor.into()),
            limit: Some(limit),
            ..Default::default()
        }
    }

    fn pairs(&self) -> Vec<(&'static str, String)> {
        let mut q = Vec::new();
        if let Some(b) = &self.before {
            q.push(("before", b.clone()));
        }
        if let Some(a) = &self.after {
            q.push(("after", a.clone()));
        }
        if let Some(l) = self.limit {
            q.push(("limit", l.to_string()));
        }
        q
    }
}

/// One file of a media message.
#[derive(Debug, Clone)]
pub struct Upload {
    pub name: String,
    /// Declared type; the server decides from the bytes anyway.
    pub content_type: String,
    pub bytes: Vec<u8>,
}

impl Client {
    /// `base` like `http://127.0.0.1:8080` (no trailing `/chat`).
    pub fn new(base: &str, token: &str) -> Result<Self> {
        let http = reqwest::Client::builder()
            .timeout(Duration::from_secs(60))
            .connect_timeout(Duration::from_secs(5))
            .build()?;
        Ok(Client {
            http,
            base: base.trim_end_matches('/').to_string(),
            token: token.to_string(),
        })
    }

    /// A client on an existing connection pool (a load generator shares one pool and its
    /// tuning among thousands of users).
    pub fn with_http(http: reqwest::Client, base: &str, token: &str) -> Self {
        Client {
            http,
            base: base.trim_end_matches('/').to_string(),
            token: token.to_string(),
        }
    }

    /// The same server and connection pool, another user.
    pub fn with_token(&self, token: &str) -> Self {
        Client {
            token: token.to_string(),
            ..self.clone()
        }
    }

    pub fn base(&self) -> &str {
        &self.base
    }

    pub fn token(&self) -> &str {
        &self.token
    }

    /// An authenticated request to `/chat{path}`.
    pub fn request(&self, method: Method, path: &str) -> RequestBuilder {
        self.http
            .request(method, format!("{}/chat{path}", self.base))
            .bearer_auth(&self.token)
    }

    /// A request outside `/chat` (health, metrics, media URLs), unauthenticated.
    pub fn plain(&self, method: Method, url: &str) -> RequestBuilder {
        let full = if url.starts_with('/') {
            format!("{}{url}", self.base)
        } else {
            url.to_string()
        };
        self.http.request(method, full)
    }

    async fn call<T: DeserializeOwned>(&self, req: RequestBuilder) -> Result<T> {
        decode(req.send().await?).await
    }

    // ---- conversations ------------------------------------------------------------------

    pub async fn conversations(&self, page: &PageQuery) -> Result<Page<Conversation>> {
        self.call(
            self.request(Method::GET, "/conversations")
                .query(&page.pairs()),
        )
        .await
    }

    /// Get or create the 1:1 conversation with `username`.
    pub async fn conversation_with(&self, username: &str) -> Result<Conversation> {
        self.call(self.request(
            Method::GET,
            &format!("/conversations/with/{}", encode(username)),
        ))
        .await
    }

    pub async fn unread_count(&self) -> Result<UnreadCount> {
        self.call(self.request(Method::GET, "/conversations/unread-count"))
            .await
    }

    // ---- messages -----------------------------------------------------------------------

    pub async fn messages(&self, conv: ConversationId, page: &PageQuery) -> Result<Page<Message>> {
        self.call(
            self.request(Method::GET, &format!("/conversations/{conv}/messages"))
                .query(&page.pairs()),
        )
        .await
    }

    pub async fn send_text(
        &self,
        conv: ConversationId,
        content: &str,
        temp_id: Option<&str>,
    ) -> Result<Message> {
        self.send_reply(conv, content, temp_id, None).await
    }

    /// A text message, answering `reply_to` when given.
    pub async fn send_reply(
        &self,
        conv: ConversationId,
        content: &str,
        temp_id: Option<&str>,
        reply_to: Option<MessageId>,
    ) -> Result<Message> {
        self.call(
            self.request(Method::POST, &format!("/conversations/{conv}/messages"))
                .json(&SendMessageRequest {
                    content: content.to_string(),
                    temp_id: temp_id.map(str::to_string),
                    reply_to_id: reply_to,
                }),
        )
        .await
    }

    /// New content for one of the caller's messages.
    pub async fn edit_message(&self, id: MessageId, content: &str) -> Result<Message> {
        self.call(
            self.request(Method::PATCH, &format!("/messages/{id}"))
                .json(&EditMessageRequest {
                    content: content.to_string(),
                }),
        )
        .await
    }

    pub async fn delete_message(
        &self,
        id: MessageId,
        scope: DeleteScope,
    ) -> Result<DeletedMessage> {
        self.call(
            self.request(Method::DELETE, &format!("/messages/{id}"))
                .query(&[("scope", scope.as_str())]),
        )
        .await
    }

    /// `GET /chat/search`: my messages with every word of `q`, newest first.
    pub async fn search(
        &self,
        q: &str,
        conversation: Option<ConversationId>,
        cursor: Option<&str>,
        limit: u32,
    ) -> Result<Page<SearchHit>> {
        let mut pairs = vec![("q", q.to_string()), ("limit", limit.to_string())];
        if let Some(c) = conversation {
            pairs.push(("conversation_id", c.to_string()));
        }
        if let Some(c) = cursor {
            pairs.push(("cursor", c.to_string()));
        }
        self.call(self.request(Method::GET, "/search").query(&pairs))
            .await
    }

    /// Add (`add`) or remove the caller's reaction `emoji`.
    pub async fn react(&self, id: MessageId, emoji: &str, add: bool) -> Result<ReactionsResponse> {
        let method = if add { Method::PUT } else { Method::DELETE };
        // Every byte escaped: the emoji is one path segment whatever it holds.
        let segment: String = emoji.bytes().map(|b| format!("%{b:02X}")).collect();
        self.call(self.request(method, &format!("/messages/{id}/reactions/{segment}")))
            .await
    }

    /// A media message: images (up to 10), one video or one file, with an optional caption.
    pub async fn send_media(
        &self,
        conv: ConversationId,
        files: Vec<Upload>,
        caption: Option<&str>,
        temp_id: Option<&str>,
    ) -> Result<Message> {
        let mut form = reqwest::multipart::Form::new();
        if let Some(c) = caption {
            form = form.text("content", c.to_string());
        }
        if let Some(t) = temp_id {
            form = form.text("temp_id", t.to_string());
        }
        for f in files {
            let part = reqwest::multipart::Part::bytes(f.bytes)
                .file_name(f.name)
                .mime_str(&f.content_type)?;
            form = form.part("file", part);
        }
        self.send_form(conv, form).await
    }

    /// A media message from a ready multipart form (`file` parts, optional `content` and
    /// `temp_id`), for callers that stream large files instead of holding them.
    pub async fn send_form(
        &self,
        conv: ConversationId,
        form: reqwest::multipart::Form,
    ) -> Result<Message> {
        self.call(
            self.request(Method::POST, &format!("/conversations/{conv}/messages"))
                .multipart(form),
        )
        .await
    }

    /// Mark read: everything, or up to (and including) one message.
    pub async fn mark_read(
        &self,
        conv: ConversationId,
        up_to: Option<MessageId>,
    ) -> Result<MarkReadResponse> {
        self.call(
            self.request(Method::POST, &format!("/conversations/{conv}/read"))
                .json(&MarkReadRequest {
                    up_to_message_id: up_to,
                }),
        )
        .await
    }

    pub async fn message(&self, id: MessageId) -> Result<Message> {
        self.call(self.request(Method::GET, &format!("/messages/{id}")))
            .await
    }

    /// Up to `before` messages before and `after` after `id`, for jump-to-message.
    pub async fn context(&self, id: MessageId, before: u32, after: u32) -> Result<MessageContext> {
        self.call(
            self.request(Method::GET, &format!("/messages/{id}/context"))
                .query(&[("before", before), ("after", after)]),
        )
        .await
    }

    /// Image and video messages.
    pub async fn media(&self, conv: ConversationId, page: &PageQuery) -> Result<Page<Message>> {
        self.call(
            self.request(Method::GET, &format!("/conversations/{conv}/media"))
                .query(&page.pairs()),
        )
        .await
    }

    /// File (document) messages.
    pub async fn files(&self, conv: ConversationId, page: &PageQuery) -> Result<Page<Message>> {
        self.call(
            self.request(Method::GET, &format!("/conversations/{conv}/files"))
                .query(&page.pairs()),
        )
        .await
    }

    pub async fn links(&self, conv: ConversationId, page: &PageQuery) -> Result<Page<LinkItem>> {
        self.call(
            self.request(Method::GET, &format!("/conversations/{conv}/links"))
                .query(&page.pairs()),
        )
        .await
    }

    // ---- blocks -------------------------------------------------------------------------

    pub async fn block(&self, username: &str) -> Result<BlockChange> {
        self.call(self.request(Method::POST, "/blocks").json(&BlockRequest {
            username: username.to_string(),
        }))
        .await
    }

    pub async fn unblock(&self, username: &str) -> Result<BlockChange> {
        self.call(self.request(Method::DELETE, &format!("/blocks/{}", encode(username))))
            .await
    }

    pub async fn block_status(&self, username: &str) -> Result<BlockStatus> {
        self.call(self.request(Method::GET, &format!("/blocks/status/{}", encode(username))))
            .await
    }

    pub async fn blocks(&self, page: &PageQuery) -> Result<Page<BlockedUser>> {
        self.call(self.request(Method::GET, "/blocks").query(&page.pairs()))
            .await
    }

    /// Download a media URL from a message (signed; no token needed).
    pub async fn download(&self, url: &str) -> Result<Vec<u8>> {
        let resp = self.plain(Method::GET, url).send().await?;
        if !resp.status().is_success() {
            return Err(api_error(resp).await);
        }
        Ok(resp.bytes().await?.to_vec())
    }
}

/// A path segment, percent-encoded.
fn encode(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for b in s.bytes() {
        if b.is_ascii_alphanumeric() || b"-._~".contains(&b) {
            out.push(b as char);
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    out
}

async fn decode<T: DeserializeOwned>(resp: Response) -> Result<T> {
    if !resp.status().is_success() {
        return Err(api_error(resp).await);
    }
    let bytes = resp.bytes().await?;
    serde_json::from_slice(&bytes).map_err(|e| ClientError::Decode(e.to_string()))
}

/// The SPEC error body of a failed response (or what there was instead).
pub async fn api_error(resp: Response) -> ClientError {
    let status = resp.status().as_u16();
    let body = resp.bytes().await.unwrap_or_default();
    match serde_json::from_slice::<ErrorBody>(&body) {
        Ok(e) => ClientError::Api {
            status,
            code: Some(e.error.code),
            message: e.error.message,
        },
        Err(_) => ClientError::Api {
            status,
            code: None,
            message: String::from_utf8_lossy(&body).chars().take(200).collect(),
        },
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn path_segments_are_encoded() {
        assert_eq!(encode("alice_01"), "alice_01");
        assert_eq!(encode("a/../b c"), "a%2F..%2Fb%20c");
    }

    #[test]
    fn page_query_only_sends_what_is_set() {
        assert!(PageQuery::default().pairs().is_empty());
        let q = PageQuery::before("abc", 20).pairs();
        assert_eq!(
            q,
            vec![("before", "abc".to_string()), ("limit", "20".to_string())]
        );
    }
}
