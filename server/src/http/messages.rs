//! Message routes: history, send, mark read, one message, context, galleries, links.

use axum::body::Bytes;
use axum::extract::multipart::{Field, MultipartError};
use axum::extract::rejection::BytesRejection;
use axum::extract::{FromRequest, Multipart, Request, State};
use axum::http::{header, HeaderMap, StatusCode};
use axum::Json;
use chat_protocol::rest::{
    LinkItem, MarkReadRequest, MarkReadResponse, Message, MessageContext, MessageType, Page,
    SendMessageRequest,
};
use chat_protocol::{ConversationId, ErrorBody, MessageId};
use futures_util::StreamExt;
use serde::Deserialize;

use crate::auth::AuthUser;
use crate::domain::service::Sent;
use crate::error::{Error, Result};
use crate::http::extract::{json_from_bytes, ApiPath, ApiQuery, BackwardPageQuery, PageQuery};
use crate::http::AppState;
use crate::media::{MAX_BODY, MAX_IMAGES};
use crate::model::window_size;

/// Largest JSON body accepted by the send endpoint (4000 characters of text fit easily).
pub const MAX_JSON_BODY: usize = 64 * 1024;

/// History, newest first; with only `after`, the messages right after that cursor,
/// oldest first.
#[utoipa::path(
    get,
    path = "/chat/conversations/{id}/messages",
    operation_id = "list_messages",
    tag = "messages",
    params(("id" = ConversationId, Path, description = "Conversation id"), PageQuery),
    responses(
        (status = 200, description = "One page of messages", body = Page<Message>),
        (status = 400, description = "`invalid_id`, `invalid_cursor`, `invalid_limit` or `invalid_query`", body = ErrorBody),
        (status = 404, description = "`not_found`: no such conversation, or the caller does not take part in it", body = ErrorBody),
        (status = 429, description = "`rate_limited` (get messages)", body = ErrorBody),
    ),
    security(("bearer" = []))
)]
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

pub(super) fn body_bytes(body: std::result::Result<Bytes, BytesRejection>) -> Result<Bytes> {
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

/// `multipart/form-data` body of a media send.
// Documentation only: the handler reads the form as a stream, field by field.
#[derive(utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
#[allow(dead_code)]
pub struct SendMediaForm {
    /// One to ten images (jpeg, png, gif, webp; 10 MB each), or one video (mp4, quicktime,
    /// webm; 100 MB), or one file (pdf, doc, docx, xls, xlsx, zip, txt; 50 MB). The type
    /// is sniffed from the bytes. `files`, `files[]`, `media` and `media[]` are accepted
    /// as field names too.
    #[schema(value_type = Vec<String>, format = Binary, min_items = 1, max_items = 10)]
    file: Vec<Vec<u8>>,
    /// Optional caption, same rules as text (`caption` is accepted as a name too).
    #[schema(max_length = 4000)]
    content: Option<String>,
    /// Idempotency key, as for text.
    #[schema(min_length = 1, max_length = 128)]
    temp_id: Option<String>,
    /// Answer this message (of the same conversation, not deleted), as for text.
    #[schema(format = Uuid)]
    reply_to_id: Option<String>,
}

/// Send a message: JSON for text, `multipart/form-data` for media. 201 with the stored
/// message; 200 with the original when this sender's `temp_id` was seen before.
#[utoipa::path(
    post,
    path = "/chat/conversations/{id}/messages",
    operation_id = "send_message",
    tag = "messages",
    params(("id" = ConversationId, Path, description = "Conversation id")),
    request_body(
        description = "Text as JSON, or media as a form",
        content(
            (SendMessageRequest = "application/json"),
            (SendMediaForm = "multipart/form-data"),
        ),
    ),
    responses(
        (status = 200, description = "Replay: the message stored earlier with this `temp_id`", body = Message),
        (status = 201, description = "The stored message", body = Message),
        (status = 400, description = "`validation_failed` (content, temp_id, form fields, too many files), `invalid_json` or `invalid_id`", body = ErrorBody),
        (status = 403, description = "`blocked`: either user blocked the other", body = ErrorBody),
        (status = 404, description = "`not_found`: no such conversation, or the caller does not take part in it", body = ErrorBody),
        (status = 409, description = "`conflict`: the `temp_id` was used for a message in another conversation", body = ErrorBody),
        (status = 413, description = "`payload_too_large`: JSON over 64 KiB, or an upload over its limit", body = ErrorBody),
        (status = 415, description = "`unsupported_media_type`: neither JSON nor multipart, or a refused file type", body = ErrorBody),
        (status = 429, description = "`rate_limited` (send message; shared with WebSocket sends)", body = ErrorBody),
    ),
    security(("bearer" = []))
)]
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
                .send_text(
                    &me,
                    conv,
                    &req.content,
                    req.temp_id.as_deref(),
                    req.reply_to_id,
                    None,
                )
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
    let declared = req
        .headers()
        .get(header::CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse::<u64>().ok());
    let _upload = match state.service.charge_upload(me, conv, declared).await {
        Ok(slot) => slot,
        Err(e) => {
            linger(req.into_body()).await;
            return Err(e);
        }
    };
    let mut form = Multipart::from_request(req, state)
        .await
        .map_err(|e| Error::Validation(e.body_text()))?;
    let mut caption: Option<String> = None;
    let mut temp_id: Option<String> = None;
    let mut reply_to: Option<MessageId> = None;
    let mut uploads = Vec::new();
    while let Some(field) = form.next_field().await.map_err(multipart_error)? {
        let name = field.name().unwrap_or("").to_string();
        match name.as_str() {
            "content" | "caption" => caption = Some(text_field(field).await?),
            "temp_id" => temp_id = Some(text_field(field).await?),
            "reply_to_id" => {
                let raw = text_field(field).await?;
                let id = raw.trim().parse::<MessageId>();
                reply_to = Some(
                    id.map_err(|_| Error::InvalidId("reply_to_id is not a message id".into()))?,
                );
            }
            "file" | "files" | "files[]" | "media" | "media[]" => {
                if uploads.len() >= MAX_IMAGES {
                    return Err(Error::Validation(format!(
                        "at most {MAX_IMAGES} images per message"
                    )));
                }
                let file_name = field.file_name().map(str::to_owned);
                let chunks = field.map(|c| c.map_err(multipart_error));
                uploads.push(media.receive(file_name.as_deref(), chunks).await?);
            }
            other => {
                return Err(Error::Validation(format!(
                    "unknown form field {other:?}; expected file, content, temp_id and reply_to_id"
                )))
            }
        }
    }
    state
        .service
        .send_media(
            me,
            conv,
            caption.as_deref(),
            temp_id.as_deref(),
            reply_to,
            uploads,
        )
        .await
}

/// Bytes of a refused upload read anyway before answering, so a client that sent a small
/// body whole gets its answer rather than a reset (the connection closes after it).
const LINGER_BYTES: usize = 64 * 1024;

/// Read and drop up to [`LINGER_BYTES`] of `body`, for at most half a second: a refusal
/// never waits for a large upload, and a small one is taken off the wire first.
async fn linger(body: axum::body::Body) {
    use futures_util::StreamExt;
    let mut stream = body.into_data_stream();
    let drain = async {
        let mut read = 0;
        while let Some(Ok(chunk)) = stream.next().await {
            read += chunk.len();
            if read >= LINGER_BYTES {
                break;
            }
        }
    };
    let _ = tokio::time::timeout(std::time::Duration::from_millis(500), drain).await;
}

/// A multipart error: 413 when the body limit tripped, 400 otherwise.
fn multipart_error(e: MultipartError) -> Error {
    if e.status() == StatusCode::PAYLOAD_TOO_LARGE {
        Error::PayloadTooLarge(format!("the upload exceeds {MAX_BODY} bytes"))
    } else {
        Error::Validation(format!("malformed multipart body: {}", e.body_text()))
    }
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

/// Mark the caller's messages read: all of them (empty body or `{}`), or up to one
/// message. Emits read events.
#[utoipa::path(
    post,
    path = "/chat/conversations/{id}/read",
    operation_id = "mark_read",
    tag = "messages",
    params(("id" = ConversationId, Path, description = "Conversation id")),
    request_body(
        // Optional: see `OPTIONAL_BODIES` in openapi.rs.
        description = "Optional: an empty body, or `{}`, marks everything read",
        content((MarkReadRequest = "application/json")),
    ),
    responses(
        (status = 200, description = "What was marked", body = MarkReadResponse),
        (status = 400, description = "`invalid_json` or `invalid_id`", body = ErrorBody),
        (status = 404, description = "`not_found`: no such conversation (or not the caller's), or `up_to_message_id` is not a message of it", body = ErrorBody),
        (status = 413, description = "`payload_too_large`: body over 64 KiB", body = ErrorBody),
        (status = 429, description = "`rate_limited` (mark as read)", body = ErrorBody),
    ),
    security(("bearer" = []))
)]
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

/// One message the caller sent or received.
#[utoipa::path(
    get,
    path = "/chat/messages/{id}",
    operation_id = "get_message",
    tag = "messages",
    params(("id" = MessageId, Path, description = "Message id")),
    responses(
        (status = 200, description = "The message", body = Message),
        (status = 400, description = "`invalid_id`", body = ErrorBody),
        (status = 404, description = "`not_found`: no such message, or not the caller's", body = ErrorBody),
        (status = 429, description = "`rate_limited` (get messages)", body = ErrorBody),
    ),
    security(("bearer" = []))
)]
pub async fn get(
    State(state): State<AppState>,
    me: AuthUser,
    ApiPath(id): ApiPath<MessageId>,
) -> Result<Json<Message>> {
    Ok(Json(state.service.message(&me, id).await?))
}

#[derive(Debug, Default, Deserialize, utoipa::IntoParams)]
#[into_params(parameter_in = Query)]
pub struct ContextQuery {
    /// Messages before the target, 0 to 50 (default 10).
    #[param(value_type = u32, required = false, maximum = 50)]
    before: Option<String>,
    /// Messages after the target, 0 to 50 (default 10).
    #[param(value_type = u32, required = false, maximum = 50)]
    after: Option<String>,
}

/// Default window on each side, and its maximum.
const CONTEXT_DEFAULT: u32 = 10;
const CONTEXT_MAX: u32 = 50;

/// A window of messages around one message, oldest first (jump to message).
#[utoipa::path(
    get,
    path = "/chat/messages/{id}/context",
    operation_id = "message_context",
    tag = "messages",
    params(("id" = MessageId, Path, description = "Message id"), ContextQuery),
    responses(
        (status = 200, description = "The window, with cursors to read on", body = MessageContext),
        (status = 400, description = "`invalid_id`, `invalid_limit` or `invalid_query`", body = ErrorBody),
        (status = 404, description = "`not_found`: no such message, or not the caller's", body = ErrorBody),
        (status = 429, description = "`rate_limited` (get messages)", body = ErrorBody),
    ),
    security(("bearer" = []))
)]
pub async fn context(
    State(state): State<AppState>,
    me: AuthUser,
    ApiPath(id): ApiPath<MessageId>,
    ApiQuery(q): ApiQuery<ContextQuery>,
) -> Result<Json<MessageContext>> {
    let before = window_size(q.before.as_deref(), CONTEXT_DEFAULT, CONTEXT_MAX, "before")?;
    let after = window_size(q.after.as_deref(), CONTEXT_DEFAULT, CONTEXT_MAX, "after")?;
    Ok(Json(state.service.context(&me, id, before, after).await?))
}

/// Image and video messages, newest first.
#[utoipa::path(
    get,
    path = "/chat/conversations/{id}/media",
    operation_id = "media_gallery",
    tag = "messages",
    params(("id" = ConversationId, Path, description = "Conversation id"), BackwardPageQuery),
    responses(
        (status = 200, description = "One page", body = Page<Message>),
        (status = 400, description = "`invalid_id`, `invalid_cursor`, `invalid_limit` or `invalid_query` (`after` is not accepted here)", body = ErrorBody),
        (status = 404, description = "`not_found`: no such conversation, or the caller does not take part in it", body = ErrorBody),
        (status = 429, description = "`rate_limited` (get messages)", body = ErrorBody),
    ),
    security(("bearer" = []))
)]
pub async fn media(
    State(state): State<AppState>,
    me: AuthUser,
    ApiPath(conv): ApiPath<ConversationId>,
    ApiQuery(q): ApiQuery<PageQuery>,
) -> Result<Json<Page<Message>>> {
    gallery(
        &state,
        &me,
        conv,
        &q,
        vec![MessageType::Image, MessageType::Video],
    )
    .await
}

/// File (document) messages, newest first.
#[utoipa::path(
    get,
    path = "/chat/conversations/{id}/files",
    operation_id = "file_gallery",
    tag = "messages",
    params(("id" = ConversationId, Path, description = "Conversation id"), BackwardPageQuery),
    responses(
        (status = 200, description = "One page", body = Page<Message>),
        (status = 400, description = "`invalid_id`, `invalid_cursor`, `invalid_limit` or `invalid_query` (`after` is not accepted here)", body = ErrorBody),
        (status = 404, description = "`not_found`: no such conversation, or the caller does not take part in it", body = ErrorBody),
        (status = 429, description = "`rate_limited` (get messages)", body = ErrorBody),
    ),
    security(("bearer" = []))
)]
pub async fn files(
    State(state): State<AppState>,
    me: AuthUser,
    ApiPath(conv): ApiPath<ConversationId>,
    ApiQuery(q): ApiQuery<PageQuery>,
) -> Result<Json<Page<Message>>> {
    gallery(&state, &me, conv, &q, vec![MessageType::File]).await
}

/// The messages of `types` in `conv`, newest first (`media` and `files`).
async fn gallery(
    state: &AppState,
    me: &AuthUser,
    conv: ConversationId,
    q: &PageQuery,
    types: Vec<MessageType>,
) -> Result<Json<Page<Message>>> {
    let (before, limit) = q.parse_backwards()?;
    Ok(Json(
        state
            .service
            .gallery(me, conv, types, before, limit)
            .await?,
    ))
}

/// URLs found in text messages and captions, newest first.
#[utoipa::path(
    get,
    path = "/chat/conversations/{id}/links",
    operation_id = "list_links",
    tag = "messages",
    params(("id" = ConversationId, Path, description = "Conversation id"), BackwardPageQuery),
    responses(
        (status = 200, description = "One page", body = Page<LinkItem>),
        (status = 400, description = "`invalid_id`, `invalid_cursor`, `invalid_limit` or `invalid_query` (`after` is not accepted here)", body = ErrorBody),
        (status = 404, description = "`not_found`: no such conversation, or the caller does not take part in it", body = ErrorBody),
        (status = 429, description = "`rate_limited` (get messages)", body = ErrorBody),
    ),
    security(("bearer" = []))
)]
pub async fn links(
    State(state): State<AppState>,
    me: AuthUser,
    ApiPath(conv): ApiPath<ConversationId>,
    ApiQuery(q): ApiQuery<PageQuery>,
) -> Result<Json<Page<LinkItem>>> {
    let (before, limit) = q.parse_backwards()?;
    Ok(Json(state.service.links(&me, conv, before, limit).await?))
}
