//! `/chat/push/subscriptions`: register, list and remove push targets.

use axum::extract::State;
use axum::http::StatusCode;
use axum::Json;
use chat_protocol::rest::{Page, PushSubscription, PushSubscriptionRequest, VapidPublicKey};
use chat_protocol::ErrorBody;

use crate::auth::AuthUser;
use crate::error::Result;
use crate::http::extract::{ApiJson, ApiPath};
use crate::http::AppState;

/// Register a push target: 201 with the subscription; registering the same target again
/// refreshes it.
#[utoipa::path(
    post,
    path = "/chat/push/subscriptions",
    operation_id = "add_push_subscription",
    tag = "push",
    request_body = PushSubscriptionRequest,
    responses(
        (status = 201, description = "The subscription", body = PushSubscription),
        (status = 400, description = "`invalid_json` or `validation_failed` (token, endpoint or keys)", body = ErrorBody),
        (status = 413, description = "`payload_too_large`: body over 64 KiB", body = ErrorBody),
        (status = 415, description = "`unsupported_media_type`: not `Content-Type: application/json`", body = ErrorBody),
        (status = 429, description = "`rate_limited` (push_subscribe)", body = ErrorBody),
    ),
    security(("bearer" = []))
)]
pub async fn add(
    State(state): State<AppState>,
    me: AuthUser,
    ApiJson(req): ApiJson<PushSubscriptionRequest>,
) -> Result<(StatusCode, Json<PushSubscription>)> {
    let sub = state.service.add_push_subscription(&me, req).await?;
    Ok((StatusCode::CREATED, Json(sub)))
}

/// Every subscription of the caller (a handful per user: one page, never a cursor).
#[utoipa::path(
    get,
    path = "/chat/push/subscriptions",
    operation_id = "list_push_subscriptions",
    tag = "push",
    responses(
        (status = 200, description = "All of the caller's subscriptions (at most 10)", body = Page<PushSubscription>),
        (status = 429, description = "`rate_limited` (lookup)", body = ErrorBody),
    ),
    security(("bearer" = []))
)]
pub async fn list(
    State(state): State<AppState>,
    me: AuthUser,
) -> Result<Json<Page<PushSubscription>>> {
    Ok(Json(Page {
        data: state.service.push_subscriptions(&me).await?,
        next_cursor: None,
        has_more: false,
    }))
}

/// Remove one of the caller's push subscriptions.
#[utoipa::path(
    delete,
    path = "/chat/push/subscriptions/{id}",
    operation_id = "remove_push_subscription",
    tag = "push",
    params(("id" = uuid::Uuid, Path, description = "Subscription id")),
    responses(
        (status = 204, description = "Removed"),
        (status = 400, description = "`invalid_id`", body = ErrorBody),
        (status = 404, description = "`not_found`: no such subscription of the caller", body = ErrorBody),
        (status = 429, description = "`rate_limited` (push_subscribe)", body = ErrorBody),
    ),
    security(("bearer" = []))
)]
pub async fn remove(
    State(state): State<AppState>,
    me: AuthUser,
    ApiPath(id): ApiPath<uuid::Uuid>,
) -> Result<StatusCode> {
    state.service.delete_push_subscription(&me, id).await?;
    Ok(StatusCode::NO_CONTENT)
}

/// `{"public_key": "..."}` for `pushManager.subscribe`; 404 when Web Push is not configured.
#[utoipa::path(
    get,
    path = "/chat/push/vapid-public-key",
    operation_id = "vapid_public_key",
    tag = "push",
    responses(
        (status = 200, description = "The VAPID public key", body = VapidPublicKey),
        (status = 404, description = "`not_found`: Web Push is not configured on this server", body = ErrorBody),
    ),
    security(("bearer" = []))
)]
pub async fn vapid_public_key(
    State(state): State<AppState>,
    _me: AuthUser,
) -> Result<Json<VapidPublicKey>> {
    match &state.vapid_public_key {
        Some(k) => Ok(Json(VapidPublicKey {
            public_key: k.clone(),
        })),
        None => Err(crate::error::Error::NotFound("web push configuration")),
    }
}
