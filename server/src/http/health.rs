//! Liveness, readiness and Prometheus metrics.

use std::collections::BTreeMap;
use std::sync::Mutex;
use std::time::{Duration, Instant};

use axum::extract::{MatchedPath, Request, State};
use axum::http::{header, StatusCode};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use axum::Json;
use chat_protocol::rest::Readiness;

use crate::app::AppState;

pub async fn healthz() -> impl IntoResponse {
    Json(serde_json::json!({"status": "ok"}))
}

/// 200 when the database (and Redis, if configured) answer within 2 s, else 503.
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

/// (method, route, status)
type RouteKey = (String, String, u16);

/// Request counts and latency sums by route and status, for `/metrics`.
#[derive(Default)]
pub struct HttpMetrics {
    /// key -> (count, total seconds)
    by_route: Mutex<BTreeMap<RouteKey, (u64, f64)>>,
}

impl HttpMetrics {
    fn record(&self, method: &str, route: &str, status: u16, elapsed: Duration) {
        let mut map = self.by_route.lock().unwrap_or_else(|p| p.into_inner());
        let e = map
            .entry((method.to_string(), route.to_string(), status))
            .or_insert((0, 0.0));
        e.0 += 1;
        e.1 += elapsed.as_secs_f64();
    }

    fn render(&self, out: &mut String) {
        use std::fmt::Write;
        let map = self.by_route.lock().unwrap_or_else(|p| p.into_inner());
        out.push_str("# HELP chat_http_requests_total HTTP requests by route and status.\n");
        out.push_str("# TYPE chat_http_requests_total counter\n");
        for ((m, r, s), (n, _)) in map.iter() {
            let _ = writeln!(
                out,
                "chat_http_requests_total{{method=\"{m}\",route=\"{r}\",status=\"{s}\"}} {n}"
            );
        }
        out.push_str("# HELP chat_http_request_seconds_sum Total time spent serving requests.\n");
        out.push_str("# TYPE chat_http_request_seconds_sum counter\n");
        for ((m, r, s), (_, secs)) in map.iter() {
            let _ = writeln!(out, "chat_http_request_seconds_sum{{method=\"{m}\",route=\"{r}\",status=\"{s}\"}} {secs}");
        }
    }
}

pub async fn count_requests(State(state): State<AppState>, req: Request, next: Next) -> Response {
    let start = Instant::now();
    let method = req.method().to_string();
    let route = req
        .extensions()
        .get::<MatchedPath>()
        .map(|p| p.as_str().to_string())
        .unwrap_or_else(|| "unmatched".to_string());
    let resp = next.run(req).await;
    state
        .metrics
        .record(&method, &route, resp.status().as_u16(), start.elapsed());
    resp
}

pub async fn metrics(State(state): State<AppState>) -> impl IntoResponse {
    let mut out = String::new();
    state.metrics.render(&mut out);
    out.push_str("# HELP chat_ws_sockets Live WebSocket sessions on this instance.\n");
    out.push_str("# TYPE chat_ws_sockets gauge\n");
    out.push_str(&format!("chat_ws_sockets {}\n", state.hub.sessions()));
    out.push_str("# HELP chat_ws_users Users with at least one live socket on this instance.\n");
    out.push_str("# TYPE chat_ws_users gauge\n");
    out.push_str(&format!("chat_ws_users {}\n", state.hub.users()));
    ([(header::CONTENT_TYPE, "text/plain; version=0.0.4")], out)
}
