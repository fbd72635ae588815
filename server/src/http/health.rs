//! Liveness, readiness and Prometheus metrics.

use std::time::{Duration, Instant};

use axum::extract::{MatchedPath, Request, State};
use axum::http::{header, StatusCode};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use axum::Json;
use chat_protocol::rest::{Health, Readiness};

use crate::http::AppState;
use crate::metrics::{CONTENT_TYPE, METRICS};

/// Liveness: the process is up and serving.
#[utoipa::path(
    get,
    path = "/healthz",
    operation_id = "healthz",
    tag = "operations",
    responses(
        (status = 200, description = "Always `{\"status\":\"ok\"}`", body = Health),
    )
)]
pub async fn healthz() -> Json<Health> {
    Json(Health {
        status: "ok".to_string(),
    })
}

/// Readiness: 200 when the database (and Redis, if configured) answer within 2 s, else 503.
#[utoipa::path(
    get,
    path = "/readyz",
    operation_id = "readyz",
    tag = "operations",
    responses(
        (status = 200, description = "Ready", body = Readiness),
        (status = 503, description = "A dependency did not answer; the body says which", body = Readiness),
    )
)]
pub async fn readyz(State(state): State<AppState>) -> impl IntoResponse {
    let timeout = Duration::from_secs(2);
    let database = match tokio::time::timeout(timeout, state.service.store().ping()).await {
        Ok(Ok(())) => "ok".to_string(),
        Ok(Err(e)) => format!("error: {e}"),
        Err(_) => "error: timeout".to_string(),
    };
    let redis = match &state.redis {
        None => "not configured".to_string(),
        Some(conn) => {
            let mut conn = conn.clone();
            let cmd = redis::cmd("PING");
            let ping = cmd.query_async::<String>(&mut conn);
            match tokio::time::timeout(timeout, ping).await {
                Ok(Ok(_)) => "ok".to_string(),
                Ok(Err(e)) => format!("error: {e}"),
                Err(_) => "error: timeout".to_string(),
            }
        }
    };
    let ready = database == "ok" && (redis == "ok" || redis == "not configured");
    let status = if ready {
        StatusCode::OK
    } else {
        StatusCode::SERVICE_UNAVAILABLE
    };
    (
        status,
        Json(Readiness {
            ready,
            database,
            redis,
        }),
    )
}

pub async fn count_requests(req: Request, next: Next) -> Response {
    let start = Instant::now();
    let method = req.method().to_string();
    let route = req
        .extensions()
        .get::<MatchedPath>()
        .map(|p| p.as_str().to_string())
        .unwrap_or_else(|| "unmatched".to_string());
    let resp = next.run(req).await;
    METRICS.http(&method, &route, resp.status().as_u16(), start.elapsed());
    resp
}

/// Prometheus / OpenMetrics text exposition of this instance's metrics.
#[utoipa::path(
    get,
    path = "/metrics",
    operation_id = "metrics",
    tag = "operations",
    responses(
        (status = 200, description = "OpenMetrics text", body = String, content_type = "application/openmetrics-text"),
    )
)]
pub async fn metrics(State(state): State<AppState>) -> impl IntoResponse {
    METRICS.ws_sockets.set(state.hub.sessions() as i64);
    METRICS.ws_users.set(state.hub.users() as i64);
    for p in state.service.store().pool_stats() {
        METRICS.db_pool(p.name, p.idle, p.size.saturating_sub(p.idle), p.max);
    }
    ([(header::CONTENT_TYPE, CONTENT_TYPE)], METRICS.render())
}
