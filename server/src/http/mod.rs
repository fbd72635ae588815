//! HTTP surface: the router, one file per resource, and the layers every request
//! passes through (request id, tracing, panic catching, JSON errors).

pub mod blocks;
pub mod conversations;
pub mod error;
pub mod extract;
pub mod health;
pub mod lifecycle;
pub mod media;
pub mod messages;
pub mod openapi;
pub mod push;
pub mod serve;
pub mod state;
pub mod ws;

use axum::body::Body;
use axum::extract::{DefaultBodyLimit, MatchedPath, Request};
use axum::http::{header, HeaderName, HeaderValue, Response, StatusCode};
use axum::middleware::{self, Next};
use axum::response::IntoResponse;
use axum::routing::{delete, get, post, put};
use axum::Router;
use chat_protocol::{ErrorBody, ErrorCode};
use tower_http::catch_panic::CatchPanicLayer;
use tower_http::request_id::{MakeRequestUuid, PropagateRequestIdLayer, SetRequestIdLayer};
use tower_http::trace::TraceLayer;

use crate::error::Error;
pub use state::AppState;

const REQUEST_ID: HeaderName = HeaderName::from_static("x-request-id");

/// Every route of chatd. Each one is documented in [`openapi::ApiDoc`] (a test fails
/// when a route here has no `#[utoipa::path]` listed there).
pub fn router(state: AppState) -> Router {
    let chat = Router::new()
        .route("/conversations", get(conversations::list))
        .route(
            "/conversations/unread-count",
            get(conversations::unread_count),
        )
        .route(
            "/conversations/with/{username}",
            get(conversations::with_user),
        )
        .route(
            "/conversations/{id}/messages",
            get(messages::list)
                .post(messages::send)
                // Multipart uploads stream far beyond the JSON limit; JSON sends keep
                // their own 64 KiB limit inside the handler.
                .layer(DefaultBodyLimit::max(crate::media::MAX_BODY)),
        )
        .route("/conversations/{id}/read", post(messages::mark_read))
        .route("/conversations/{id}/media", get(messages::media))
        .route("/conversations/{id}/links", get(messages::links))
        .route("/conversations/{id}/files", get(messages::files))
        .route(
            "/messages/{id}",
            get(messages::get)
                .patch(lifecycle::edit)
                .delete(lifecycle::delete),
        )
        .route(
            "/messages/{id}/reactions/{emoji}",
            put(lifecycle::react).delete(lifecycle::unreact),
        )
        .route("/messages/{id}/context", get(messages::context))
        .route("/search", get(lifecycle::search))
        .route("/blocks", post(blocks::add).get(blocks::list))
        .route("/blocks/{username}", delete(blocks::remove))
        .route("/blocks/status/{username}", get(blocks::status))
        .route("/ws", get(ws::upgrade))
        .route("/push/subscriptions", post(push::add).get(push::list))
        .route("/push/subscriptions/{id}", delete(push::remove))
        .route("/push/vapid-public-key", get(push::vapid_public_key))
        .layer(DefaultBodyLimit::max(messages::MAX_JSON_BODY));

    Router::new()
        .nest("/chat", chat)
        .route("/media/{key}", get(media::serve))
        .route("/healthz", get(health::healthz))
        .route("/readyz", get(health::readyz))
        .route("/metrics", get(health::metrics))
        .route("/openapi.json", get(openapi::serve))
        .fallback(not_found)
        .layer(middleware::from_fn(health::count_requests))
        .layer(middleware::from_fn(json_errors))
        .layer(CatchPanicLayer::custom(panic_response))
        .layer(PropagateRequestIdLayer::new(REQUEST_ID))
        .layer(
            TraceLayer::new_for_http().make_span_with(|req: &Request| {
                let id = req
                    .headers()
                    .get(&REQUEST_ID)
                    .and_then(|v| v.to_str().ok())
                    .unwrap_or("-");
                let route = req
                    .extensions()
                    .get::<MatchedPath>()
                    .map(|p| p.as_str())
                    .unwrap_or("");
                tracing::info_span!("http", method = %req.method(), uri = %req.uri().path(), route, request_id = %id)
            }),
        )
        .layer(SetRequestIdLayer::new(REQUEST_ID, MakeRequestUuid))
        .with_state(state)
}

async fn not_found() -> Error {
    Error::NotFound("route")
}

fn panic_response(_: Box<dyn std::any::Any + Send + 'static>) -> Response<Body> {
    tracing::error!("handler panicked");
    Error::Internal("handler panicked".into()).into_response()
}

/// Any error response that is not already JSON (axum's own 405, a body-limit 413, …)
/// is rewritten into the SPEC error body, so clients only ever parse one shape.
async fn json_errors(req: Request, next: Next) -> Response<Body> {
    let has_body = req.headers().contains_key(header::TRANSFER_ENCODING)
        || req
            .headers()
            .get(header::CONTENT_LENGTH)
            .is_some_and(|v| v.as_bytes() != b"0");
    let mut resp = next.run(req).await;
    let status = resp.status();
    if !(status.is_client_error() || status.is_server_error()) {
        return resp;
    }
    if status == StatusCode::PAYLOAD_TOO_LARGE || has_body {
        // A refusal may come before the body was read (an oversize body, an upload
        // refused by its limits before its first byte), so this connection cannot be
        // trusted to carry another request: say so, or a keep-alive client will reuse it
        // and see a broken reply.
        resp.headers_mut()
            .insert(header::CONNECTION, HeaderValue::from_static("close"));
    }
    let is_json = resp
        .headers()
        .get(header::CONTENT_TYPE)
        .is_some_and(|v| v.as_bytes().starts_with(b"application/json"));
    if is_json {
        return resp;
    }
    let code = match status {
        StatusCode::METHOD_NOT_ALLOWED => ErrorCode::MethodNotAllowed,
        StatusCode::NOT_FOUND => ErrorCode::NotFound,
        StatusCode::PAYLOAD_TOO_LARGE => ErrorCode::PayloadTooLarge,
        StatusCode::UNSUPPORTED_MEDIA_TYPE => ErrorCode::UnsupportedMediaType,
        StatusCode::UNAUTHORIZED => ErrorCode::Unauthorized,
        StatusCode::TOO_MANY_REQUESTS => ErrorCode::RateLimited,
        StatusCode::SERVICE_UNAVAILABLE => ErrorCode::ServiceUnavailable,
        s if s.is_client_error() => ErrorCode::InvalidQuery,
        _ => ErrorCode::Internal,
    };
    let message = status
        .canonical_reason()
        .unwrap_or("error")
        .to_ascii_lowercase();
    let (mut parts, _) = resp.into_parts();
    let body = serde_json::to_vec(&ErrorBody::new(code, message)).unwrap_or_default();
    parts.headers.insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("application/json"),
    );
    parts.headers.remove(header::CONTENT_LENGTH);
    Response::from_parts(parts, Body::from(body))
}
