//! `/chat/blocks…`: block, unblock, status both ways, list.

use axum::extract::State;
use axum::http::StatusCode;
use axum::Json;
use chat_protocol::rest::{BlockChange, BlockRequest, BlockStatus, BlockedUser, Page};

use crate::app::AppState;
use crate::auth::AuthUser;
use crate::error::Result;
use crate::http::extract::{ApiJson, ApiPath, ApiQuery, PageQuery};

/// 201 for a new block, 200 when it already existed.
pub async fn add(
    State(state): State<AppState>,
    me: AuthUser,
    ApiJson(req): ApiJson<BlockRequest>,
) -> Result<(StatusCode, Json<BlockChange>)> {
    let (change, created) = state.service.block(&me, &req.username).await?;
    let status = if created {
        StatusCode::CREATED
    } else {
        StatusCode::OK
    };
    Ok((status, Json(change)))
}

/// Idempotent: unblocking someone not blocked answers 200 too.
pub async fn remove(
    State(state): State<AppState>,
    me: AuthUser,
    ApiPath(username): ApiPath<String>,
) -> Result<Json<BlockChange>> {
    Ok(Json(state.service.unblock(&me, &username).await?))
}

pub async fn status(
    State(state): State<AppState>,
    me: AuthUser,
    ApiPath(username): ApiPath<String>,
) -> Result<Json<BlockStatus>> {
    Ok(Json(state.service.block_status(&me, &username).await?))
}

pub async fn list(
    State(state): State<AppState>,
    me: AuthUser,
    ApiQuery(q): ApiQuery<PageQuery>,
) -> Result<Json<Page<BlockedUser>>> {
    let (before, limit) = q.parse_backwards()?;
    Ok(Json(state.service.list_blocks(&me, before, limit).await?))
}
