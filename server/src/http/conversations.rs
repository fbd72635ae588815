//! `/chat/conversations…`: list, get-or-create, unread counts.

use axum::extract::State;
use axum::http::StatusCode;
use axum::Json;
use chat_protocol::rest::{Conversation, Page, UnreadCount};
use chat_protocol::ErrorBody;

use crate::auth::AuthUser;
use crate::error::Result;
use crate::http::extract::{ApiPath, ApiQuery, BackwardPageQuery, PageQuery};
use crate::http::AppState;

/// The caller's conversations, newest activity first, each with the other user, the last
/// message and the unread count. Conversations with a user the caller blocked are hidden.
#[utoipa::path(
    get,
    path = "/chat/conversations",
    operation_id = "list_conversations",
    tag = "conversations",
    params(BackwardPageQuery),
    responses(
        (status = 200, description = "One page of conversations", body = Page<Conversation>),
        (status = 400, description = "`invalid_cursor`, `invalid_limit` or `invalid_query` (`after` is not accepted here)", body = ErrorBody),
        (status = 429, description = "`rate_limited` (get conversations)", body = ErrorBody),
    ),
    security(("bearer" = []))
)]
pub async fn list(
    State(state): State<AppState>,
    me: AuthUser,
    ApiQuery(q): ApiQuery<PageQuery>,
) -> Result<Json<Page<Conversation>>> {
    let (before, limit) = q.parse_backwards()?;
    Ok(Json(
        state.service.list_conversations(&me, before, limit).await?,
    ))
}

/// Get-or-create the 1:1 conversation with `username`: 201 when this call created it,
/// 200 when it existed.
#[utoipa::path(
    get,
    path = "/chat/conversations/with/{username}",
    operation_id = "conversation_with",
    tag = "conversations",
    params(("username" = String, Path, description = "The other user's username (case-insensitive)")),
    responses(
        (status = 200, description = "The existing conversation", body = Conversation),
        (status = 201, description = "The conversation, created by this call", body = Conversation),
        (status = 400, description = "`self_action` (a conversation with yourself) or `invalid_id` (undecodable path)", body = ErrorBody),
        (status = 403, description = "`blocked`: either user blocked the other", body = ErrorBody),
        (status = 404, description = "`not_found`: no such user", body = ErrorBody),
        (status = 429, description = "`rate_limited` (lookup, counted before the name is looked up; and create conversation, for a new one)", body = ErrorBody),
    ),
    security(("bearer" = []))
)]
pub async fn with_user(
    State(state): State<AppState>,
    me: AuthUser,
    ApiPath(username): ApiPath<String>,
) -> Result<(StatusCode, Json<Conversation>)> {
    let (conv, created) = state.service.conversation_with(&me, &username).await?;
    let status = if created {
        StatusCode::CREATED
    } else {
        StatusCode::OK
    };
    Ok((status, Json(conv)))
}

/// Unread messages of the caller: the total and per conversation.
#[utoipa::path(
    get,
    path = "/chat/conversations/unread-count",
    operation_id = "unread_count",
    tag = "conversations",
    responses(
        (status = 200, description = "Unread counts", body = UnreadCount),
        (status = 429, description = "`rate_limited` (get conversations)", body = ErrorBody),
    ),
    security(("bearer" = []))
)]
pub async fn unread_count(
    State(state): State<AppState>,
    me: AuthUser,
) -> Result<Json<UnreadCount>> {
    Ok(Json(state.service.unread_count(&me).await?))
}
