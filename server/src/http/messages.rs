//! Message routes: history, send, mark read, one message, context, galleries, links.

use axum::body::Bytes;
use axum::extract::multipart::Field;
use axum::extract::rejection::BytesRejection;
use axum::extract::{FromRequest, Multipart, Request, State};
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
use crate::domain::service::Sent;
use crate::domain::types::Limit;
use crate::error::{Error, Result};
use crate::http::extract::{json_from_bytes, ApiPath, ApiQuery, PageQuery};
use crate::media::{multipart_error, MAX_IMAGES};

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
/// JSON for text; multipart/form-data for media (`file` fields, `content`, `temp_id`).
pub async fn send(
    State(state): State<AppState>,
    me: AuthUser,
    ApiPath(conv): ApiPath<ConversationId>,
    req: Request,
) -> Result<(StatusCode, Json<Message>)> {
    let sent = match content_type(req.headers()).as_str() {
        "application/json" => {
            let bytes = axum::body::to_bytes(req.into_body(), MAX_JSON_BODY)
                .await
                .map_err(|_| {
                    Error::PayloadTooLarge(format!("body exceeds {MAX_JSON_BODY} bytes"))
                })?;
            let req: SendMessageRequest = json_from_bytes(&bytes)?;
            state
                .service
                .send_text(&me, conv, &req.content, req.temp_id.as_deref(), None)
                .await?
        }
        "multipart/form-data" => send_multipart(&state, &me, conv, req).await?,
        _ => {
            return Err(Error::UnsupportedMediaType(
                "send JSON (application/json) or multipart/form-data".into(),
            ))
        }
    };
    let status = if sent.created {
        StatusCode::CREATED
    } else {
        StatusCode::OK
    };
    Ok((status, Json(sent.message)))
}

/// Largest caption / temp_id field read from a multipart body.
const MAX_TEXT_FIELD: usize = 64 * 1024;

async fn send_multipart(
    state: &AppState,
    me: &AuthUser,
    conv: ConversationId,
    req: Request,
) -> Result<Sent> {
    let media = state
        .service
        .media()
        .cloned()
        .ok_or_else(|| Error::UnsupportedMediaType("media is not enabled".into()))?;
    // Refuse before a single byte of the upload is read.
    state.service.sendable(me, conv).await?;
    let mut form = Multipart::from_request(req, state)
        .await
        .map_err(|e| Error::Validation(e.body_text()))?;
    let mut caption: Option<String> = None;
    let mut temp_id: Option<String> = None;
    let mut uploads = Vec::new();
    while let Some(field) = form.next_field().await.map_err(multipart_error)? {
        let name = field.name().unwrap_or("").to_string();
        match name.as_str() {
            "content" | "caption" => caption = Some(text_field(field).await?),
            "temp_id" => temp_id = Some(text_field(field).await?),
            "file" | "files" | "files[]" | "media" | "media[]" => {
                if uploads.len() >= MAX_IMAGES {
                    return Err(Error::Validation(format!(
                        "at most {MAX_IMAGES} images per message"
                    )));
                }
                uploads.push(media.receive(field).await?);
            }
            other => {
                return Err(Error::Validation(format!(
                    "unknown form field {other:?}; expected file, content and temp_id"
                )))
            }
        }
    }
    state
        .service
        .send_media(me, conv, caption.as_deref(), temp_id.as_deref(), uploads)
        .await
}

async fn text_field(mut field: Field<'_>) -> Result<String> {
    let mut buf = Vec::new();
    while let Some(chunk) = field.chunk().await.map_err(multipart_error)? {
        buf.extend_from_slice(&chunk);
        if buf.len() > MAX_TEXT_FIELD {
            return Err(Error::PayloadTooLarge(format!(
                "form field {:?} exceeds {MAX_TEXT_FIELD} bytes",
                field.name().unwrap_or("")
            )));
        }
    }
    String::from_utf8(buf).map_err(|_| Error::Validation("form fields must be UTF-8 text".into()))
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
