//! Message routes: history, send, mark read, one message, context, galleries, links.

use axum::body::Bytes;
use axum::extract::rejection::BytesRejection;
use axum::extract::State;
use axum::http::{header, HeaderMap, StatusCode};
use axum::Json;
use chat_protocol::rest::{
    LinkItem, MarkReadRequest, MarkReadResponse, Message, MessageContext, MessageType, Page,
    SendMessageRequest,
};
use chat_protocol::{ConversationId, MessageId};
use serde::Deserialize;

use crate::app::AppState;
use crate::auth::AuthUser;
use crate::domain::types::Limit;
use crate::error::{Error, Result};
use crate::http::extract::{json_from_bytes, ApiPath, ApiQuery, PageQuery};

/// Largest JSON body accepted by the send endpoint (4000 characters of text fit easily).
pub const MAX_JSON_BODY: usize = 64 * 1024;

pub async fn list(
    State(state): State<AppState>,
    me: AuthUser,
    ApiPath(conv): ApiPath<ConversationId>,
    ApiQuery(q): ApiQuery<PageQuery>,
) -> Result<Json<Page<Message>>> {
    let p = q.parse()?;
    Ok(Json(
        state
            .service
            .list_messages(&me, conv, p.before, p.after, p.limit)
            .await?,
    ))
}

fn body_bytes(body: std::result::Result<Bytes, BytesRejection>) -> Result<Bytes> {
    body.map_err(|rej| {
        if rej.status() == StatusCode::PAYLOAD_TOO_LARGE {
            Error::PayloadTooLarge(format!("body exceeds {MAX_JSON_BODY} bytes"))
        } else {
            Error::InvalidJson(rej.body_text())
        }
    })
}

fn content_type(headers: &HeaderMap) -> String {
    headers
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .unwrap_or("")
        .split(';')
        .next()
        .unwrap_or("")
        .trim()
        .to_ascii_lowercase()
}

/// 201 with the stored message; 200 with the original when `temp_id` was seen before.
pub async fn send(
    State(state): State<AppState>,
    me: AuthUser,
    ApiPath(conv): ApiPath<ConversationId>,
    headers: HeaderMap,
    body: std::result::Result<Bytes, BytesRejection>,
) -> Result<(StatusCode, Json<Message>)> {
    match content_type(&headers).as_str() {
        "application/json" => {}
        "multipart/form-data" => {
            return Err(Error::UnsupportedMediaType(
                "media messages are not supported by this server yet".into(),
            ))
        }
        _ => {
            return Err(Error::UnsupportedMediaType(
                "send JSON (application/json) or multipart/form-data".into(),
            ))
        }
    }
    let bytes = body_bytes(body)?;
    let req: SendMessageRequest = json_from_bytes(&bytes)?;
    let sent = state
        .service
        .send_text(&me, conv, &req.content, req.temp_id.as_deref(), None)
        .await?;
    let status = if sent.created {
        StatusCode::CREATED
    } else {
        StatusCode::OK
    };
    Ok((status, Json(sent.message)))
}

/// Body optional: empty (or `{}`) marks everything read.
pub async fn mark_read(
    State(state): State<AppState>,
    me: AuthUser,
    ApiPath(conv): ApiPath<ConversationId>,
    body: std::result::Result<Bytes, BytesRejection>,
) -> Result<Json<MarkReadResponse>> {
    let bytes = body_bytes(body)?;
    let req: MarkReadRequest = if bytes.iter().all(u8::is_ascii_whitespace) {
        MarkReadRequest::default()
    } else {
        json_from_bytes(&bytes)?
    };
    Ok(Json(
        state
            .service
            .mark_read(&me, conv, req.up_to_message_id)
            .await?,
    ))
}

pub async fn get(
    State(state): State<AppState>,
    me: AuthUser,
    ApiPath(id): ApiPath<MessageId>,
) -> Result<Json<Message>> {
    Ok(Json(state.service.message(&me, id).await?))
}

#[derive(Debug, Default, Deserialize)]
pub struct ContextQuery {
    before: Option<String>,
    after: Option<String>,
}

/// Default window on each side, and its maximum.
const CONTEXT_DEFAULT: u32 = 10;
const CONTEXT_MAX: u32 = 50;

pub async fn context(
    State(state): State<AppState>,
    me: AuthUser,
    ApiPath(id): ApiPath<MessageId>,
    ApiQuery(q): ApiQuery<ContextQuery>,
) -> Result<Json<MessageContext>> {
    let before = Limit::parse_window(q.before.as_deref(), CONTEXT_DEFAULT, CONTEXT_MAX, "before")?;
    let after = Limit::parse_window(q.after.as_deref(), CONTEXT_DEFAULT, CONTEXT_MAX, "after")?;
    Ok(Json(state.service.context(&me, id, before, after).await?))
}

pub async fn media(
    State(state): State<AppState>,
    me: AuthUser,
    ApiPath(conv): ApiPath<ConversationId>,
    ApiQuery(q): ApiQuery<PageQuery>,
) -> Result<Json<Page<Message>>> {
    let (before, limit) = q.parse_backwards()?;
    let types = vec![MessageType::Image, MessageType::Video];
    Ok(Json(
        state
            .service
            .gallery(&me, conv, types, before, limit)
            .await?,
    ))
}

pub async fn files(
    State(state): State<AppState>,
    me: AuthUser,
    ApiPath(conv): ApiPath<ConversationId>,
    ApiQuery(q): ApiQuery<PageQuery>,
) -> Result<Json<Page<Message>>> {
    let (before, limit) = q.parse_backwards()?;
    let types = vec![MessageType::File];
    Ok(Json(
        state
            .service
            .gallery(&me, conv, types, before, limit)
            .await?,
    ))
}

pub async fn links(
    State(state): State<AppState>,
    me: AuthUser,
    ApiPath(conv): ApiPath<ConversationId>,
    ApiQuery(q): ApiQuery<PageQuery>,
) -> Result<Json<Page<LinkItem>>> {
    let (before, limit) = q.parse_backwards()?;
    Ok(Json(state.service.links(&me, conv, before, limit).await?))
}
