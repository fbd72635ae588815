//! `/chat/blocks…`: block, unblock, status both ways, list.

use axum::extract::State;
use axum::http::StatusCode;
use axum::Json;
use chat_protocol::rest::{BlockChange, BlockRequest, BlockStatus, BlockedUser, Page};
use chat_protocol::ErrorBody;

use crate::auth::AuthUser;
use crate::error::Result;
use crate::http::extract::{ApiJson, ApiPath, ApiQuery, BackwardPageQuery, PageQuery};
use crate::http::AppState;

/// Block a user: 201 for a new block, 200 when it already existed. Either direction of a
/// block stops sending, and the conversation disappears from the blocker's list.
#[utoipa::path(
    post,
    path = "/chat/blocks",
    operation_id = "block_user",
    tag = "blocks",
    request_body = BlockRequest,
    responses(
        (status = 200, description = "Already blocked", body = BlockChange),
        (status = 201, description = "Blocked by this call", body = BlockChange),
        (status = 400, description = "`invalid_json` or `self_action` (blocking yourself)", body = ErrorBody),
        (status = 404, description = "`not_found`: no such user", body = ErrorBody),
        (status = 413, description = "`payload_too_large`: body over 64 KiB", body = ErrorBody),
        (status = 415, description = "`unsupported_media_type`: not `Content-Type: application/json`", body = ErrorBody),
        (status = 429, description = "`rate_limited` (block)", body = ErrorBody),
    ),
    security(("bearer" = []))
)]
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

/// Unblock a user. Idempotent: unblocking someone not blocked answers 200 too.
#[utoipa::path(
    delete,
    path = "/chat/blocks/{username}",
    operation_id = "unblock_user",
    tag = "blocks",
    params(("username" = String, Path, description = "The blocked user's username")),
    responses(
        (status = 200, description = "Not blocked (any more)", body = BlockChange),
        (status = 400, description = "`invalid_id` (undecodable path)", body = ErrorBody),
        (status = 404, description = "`not_found`: no such user", body = ErrorBody),
        (status = 429, description = "`rate_limited` (block)", body = ErrorBody),
    ),
    security(("bearer" = []))
)]
pub async fn remove(
    State(state): State<AppState>,
    me: AuthUser,
    ApiPath(username): ApiPath<String>,
) -> Result<Json<BlockChange>> {
    Ok(Json(state.service.unblock(&me, &username).await?))
}

/// Block status between the caller and a user, both directions.
#[utoipa::path(
    get,
    path = "/chat/blocks/status/{username}",
    operation_id = "block_status",
    tag = "blocks",
    params(("username" = String, Path, description = "The other user's username")),
    responses(
        (status = 200, description = "Both directions", body = BlockStatus),
        (status = 400, description = "`invalid_id` (undecodable path)", body = ErrorBody),
        (status = 404, description = "`not_found`: no such user", body = ErrorBody),
        (status = 429, description = "`rate_limited` (lookup; counted before the name is looked up)", body = ErrorBody),
    ),
    security(("bearer" = []))
)]
pub async fn status(
    State(state): State<AppState>,
    me: AuthUser,
    ApiPath(username): ApiPath<String>,
) -> Result<Json<BlockStatus>> {
    Ok(Json(state.service.block_status(&me, &username).await?))
}

/// Users the caller blocked, newest block first.
#[utoipa::path(
    get,
    path = "/chat/blocks",
    operation_id = "list_blocks",
    tag = "blocks",
    params(BackwardPageQuery),
    responses(
        (status = 200, description = "One page of blocked users", body = Page<BlockedUser>),
        (status = 400, description = "`invalid_cursor`, `invalid_limit` or `invalid_query` (`after` is not accepted here)", body = ErrorBody),
        (status = 429, description = "`rate_limited` (lookup)", body = ErrorBody),
    ),
    security(("bearer" = []))
)]
pub async fn list(
    State(state): State<AppState>,
    me: AuthUser,
    ApiQuery(q): ApiQuery<PageQuery>,
) -> Result<Json<Page<BlockedUser>>> {
    let (before, limit) = q.parse_backwards()?;
    Ok(Json(state.service.list_blocks(&me, before, limit).await?))
}
