//! `/chat/push/subscriptions`: register, list and remove push targets.

use axum::extract::State;
use axum::http::StatusCode;
use axum::Json;
use chat_protocol::rest::{Page, PushSubscription, PushSubscriptionRequest};

use crate::app::AppState;
use crate::auth::AuthUser;
use crate::error::Result;
use crate::http::extract::{ApiJson, ApiPath};

/// 201 with the subscription; registering the same target again refreshes it.
pub async fn add(
    State(state): State<AppState>,
    me: AuthUser,
    ApiJson(req): ApiJson<PushSubscriptionRequest>,
) -> Result<(StatusCode, Json<PushSubscription>)> {
    let sub = state.service.add_push_subscription(&me, req).await?;
    Ok((StatusCode::CREATED, Json(sub)))
}

/// Every subscription of the caller (a handful per user: one page, never a cursor).
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

pub async fn remove(
    State(state): State<AppState>,
    me: AuthUser,
    ApiPath(id): ApiPath<uuid::Uuid>,
) -> Result<StatusCode> {
    state.service.delete_push_subscription(&me, id).await?;
    Ok(StatusCode::NO_CONTENT)
}

/// `{"public_key": "..."}` for `pushManager.subscribe`; 404 when Web Push is not configured.
pub async fn vapid_public_key(
    State(state): State<AppState>,
    _me: AuthUser,
) -> Result<Json<serde_json::Value>> {
    match &state.vapid_public_key {
        Some(k) => Ok(Json(serde_json::json!({ "public_key": k }))),
        None => Err(crate::error::Error::NotFound("web push configuration")),
    }
}
