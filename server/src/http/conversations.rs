//! `/chat/conversations…`: list, get-or-create, unread counts.

use axum::extract::State;
use axum::http::StatusCode;
use axum::Json;
use chat_protocol::rest::{Conversation, Page, UnreadCount};

use crate::app::AppState;
use crate::auth::AuthUser;
use crate::error::Result;
use crate::http::extract::{ApiPath, ApiQuery, PageQuery};

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

/// 201 when the conversation was created by this call, 200 when it existed.
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

pub async fn unread_count(
    State(state): State<AppState>,
    me: AuthUser,
) -> Result<Json<UnreadCount>> {
    Ok(Json(state.service.unread_count(&me).await?))
}
