//! Message lifecycle routes (SPEC "Message lifecycle"): edit, delete, reactions, search.

use axum::body::Bytes;
use axum::extract::rejection::BytesRejection;
use axum::extract::State;
use axum::Json;
use chat_protocol::rest::{
    DeleteScope, DeletedMessage, EditMessageRequest, Message, Page, ReactionsResponse, SearchHit,
};
use chat_protocol::{ConversationId, ErrorBody, MessageId};
use serde::Deserialize;

use crate::auth::AuthUser;
use crate::error::{Error, Result};
use crate::http::extract::{json_from_bytes, ApiPath, ApiQuery};
use crate::http::messages::body_bytes;
use crate::http::AppState;
use crate::model::{Limit, SearchCursor};

/// Edit one of the caller's messages (text, or a media message's caption), within
/// `CHAT_EDIT_WINDOW_SECS` of sending. Both participants receive `message.edited`.
#[utoipa::path(
    patch,
    path = "/chat/messages/{id}",
    operation_id = "edit_message",
    tag = "messages",
    params(("id" = MessageId, Path, description = "Message id")),
    request_body(content((EditMessageRequest = "application/json"))),
    responses(
        (status = 200, description = "The edited message", body = Message),
        (status = 400, description = "`validation_failed` (content), `invalid_json` or `invalid_id`", body = ErrorBody),
        (status = 403, description = "`forbidden`: not the sender, or the edit window is over; `blocked`: either user blocked the other", body = ErrorBody),
        (status = 404, description = "`not_found`: no such message, not the caller's, or hidden by the caller", body = ErrorBody),
        (status = 409, description = "`conflict`: the message was deleted", body = ErrorBody),
        (status = 413, description = "`payload_too_large`: body over 64 KiB", body = ErrorBody),
        (status = 429, description = "`rate_limited` (edit message)", body = ErrorBody),
    ),
    security(("bearer" = []))
)]
pub async fn edit(
    State(state): State<AppState>,
    me: AuthUser,
    ApiPath(id): ApiPath<MessageId>,
    body: std::result::Result<Bytes, BytesRejection>,
) -> Result<Json<Message>> {
    let req: EditMessageRequest = json_from_bytes(&body_bytes(body)?)?;
    Ok(Json(
        state.service.edit_message(&me, id, &req.content).await?,
    ))
}

#[derive(Debug, Default, Deserialize, utoipa::IntoParams)]
#[into_params(parameter_in = Query)]
#[serde(deny_unknown_fields)]
pub struct DeleteQuery {
    /// `me` (default): hidden for the caller only; `everyone`: a tombstone for both
    /// (the sender, within the edit window).
    #[param(value_type = Option<DeleteScope>)]
    #[serde(default)]
    pub scope: Option<DeleteScope>,
}

/// Delete a message for the caller, or for everyone. Deleting again answers the same.
#[utoipa::path(
    delete,
    path = "/chat/messages/{id}",
    operation_id = "delete_message",
    tag = "messages",
    params(("id" = MessageId, Path, description = "Message id"), DeleteQuery),
    responses(
        (status = 200, description = "Deleted", body = DeletedMessage),
        (status = 400, description = "`invalid_id` or `invalid_query`", body = ErrorBody),
        (status = 403, description = "`forbidden`: `everyone` by someone other than the sender, or after the edit window", body = ErrorBody),
        (status = 404, description = "`not_found`: no such message, not the caller's, or already hidden by the caller", body = ErrorBody),
        (status = 409, description = "`conflict`: the message changed meanwhile", body = ErrorBody),
        (status = 429, description = "`rate_limited` (edit message)", body = ErrorBody),
    ),
    security(("bearer" = []))
)]
pub async fn delete(
    State(state): State<AppState>,
    me: AuthUser,
    ApiPath(id): ApiPath<MessageId>,
    ApiQuery(q): ApiQuery<DeleteQuery>,
) -> Result<Json<DeletedMessage>> {
    let scope = q.scope.unwrap_or_default();
    Ok(Json(state.service.delete_message(&me, id, scope).await?))
}

/// Add the caller's reaction (one emoji; at most 20 different ones per message).
#[utoipa::path(
    put,
    path = "/chat/messages/{id}/reactions/{emoji}",
    operation_id = "add_reaction",
    tag = "messages",
    params(
        ("id" = MessageId, Path, description = "Message id"),
        ("emoji" = String, Path, description = "One emoji (percent-encoded)"),
    ),
    responses(
        (status = 200, description = "The message's reactions now", body = ReactionsResponse),
        (status = 400, description = "`validation_failed`: not exactly one emoji; `invalid_id`", body = ErrorBody),
        (status = 403, description = "`blocked`: either user blocked the other", body = ErrorBody),
        (status = 404, description = "`not_found`: no such message, not the caller's, or hidden by the caller", body = ErrorBody),
        (status = 409, description = "`conflict`: the message was deleted, or has 20 different reactions", body = ErrorBody),
        (status = 429, description = "`rate_limited` (react)", body = ErrorBody),
    ),
    security(("bearer" = []))
)]
pub async fn react(
    State(state): State<AppState>,
    me: AuthUser,
    ApiPath((id, emoji)): ApiPath<(MessageId, String)>,
) -> Result<Json<ReactionsResponse>> {
    Ok(Json(state.service.react(&me, id, &emoji, true).await?))
}

/// Remove the caller's reaction; removing one that is not there answers the same.
#[utoipa::path(
    delete,
    path = "/chat/messages/{id}/reactions/{emoji}",
    operation_id = "remove_reaction",
    tag = "messages",
    params(
        ("id" = MessageId, Path, description = "Message id"),
        ("emoji" = String, Path, description = "One emoji (percent-encoded)"),
    ),
    responses(
        (status = 200, description = "The message's reactions now", body = ReactionsResponse),
        (status = 400, description = "`validation_failed`: not exactly one emoji; `invalid_id`", body = ErrorBody),
        (status = 403, description = "`blocked`: either user blocked the other", body = ErrorBody),
        (status = 404, description = "`not_found`: no such message, not the caller's, or hidden by the caller", body = ErrorBody),
        (status = 409, description = "`conflict`: the message was deleted", body = ErrorBody),
        (status = 429, description = "`rate_limited` (react)", body = ErrorBody),
    ),
    security(("bearer" = []))
)]
pub async fn unreact(
    State(state): State<AppState>,
    me: AuthUser,
    ApiPath((id, emoji)): ApiPath<(MessageId, String)>,
) -> Result<Json<ReactionsResponse>> {
    Ok(Json(state.service.react(&me, id, &emoji, false).await?))
}

#[derive(Debug, Default, Deserialize, utoipa::IntoParams)]
#[into_params(parameter_in = Query)]
pub struct SearchQuery {
    /// Words to find (all of them, each as a word prefix; case and accents do not matter):
    /// 1 to 8 words, at most 256 characters.
    #[param(value_type = String, required = true, min_length = 1, max_length = 256)]
    pub q: Option<String>,
    /// Only in this conversation.
    #[param(value_type = Option<ConversationId>, required = false)]
    pub conversation_id: Option<String>,
    /// Page size, 1 to 100 (default 50).
    #[param(value_type = u32, required = false, minimum = 1, maximum = 100)]
    pub limit: Option<String>,
    /// A `next_cursor`: hits older than it.
    #[param(value_type = String, required = false)]
    pub cursor: Option<String>,
}

/// The caller's messages that match `q`, newest first, with a snippet each: never in
/// conversations the caller is not in, never deleted or hidden messages.
#[utoipa::path(
    get,
    path = "/chat/search",
    operation_id = "search_messages",
    tag = "messages",
    params(SearchQuery),
    responses(
        (status = 200, description = "One page of hits", body = Page<SearchHit>),
        (status = 400, description = "`validation_failed` (q), `invalid_id`, `invalid_cursor`, `invalid_limit` or `invalid_query`", body = ErrorBody),
        (status = 404, description = "`not_found`: `conversation_id` is not the caller's", body = ErrorBody),
        (status = 429, description = "`rate_limited` (search)", body = ErrorBody),
    ),
    security(("bearer" = []))
)]
pub async fn search(
    State(state): State<AppState>,
    me: AuthUser,
    ApiQuery(q): ApiQuery<SearchQuery>,
) -> Result<Json<Page<SearchHit>>> {
    let text =
        q.q.as_deref()
            .ok_or_else(|| Error::Validation("q is required".into()))?;
    let conversation = match q.conversation_id.as_deref().filter(|s| !s.is_empty()) {
        Some(raw) => Some(
            raw.parse::<ConversationId>()
                .map_err(|_| Error::InvalidId("conversation_id is not a conversation id".into()))?,
        ),
        None => None,
    };
    let before = SearchCursor::decode_opt(q.cursor.as_deref().filter(|s| !s.is_empty()))?;
    let limit = Limit::parse(q.limit.as_deref())?.get();
    Ok(Json(
        state
            .service
            .search(&me, text, conversation, before, limit)
            .await?,
    ))
}
