//! Prometheus metrics (`/metrics`, OpenMetrics text) on the `prometheus-client` crate.
//!
//! Counters and histograms are process-wide (one chatd per process); gauges that describe
//! live state (sockets, database pools) are read when `/metrics` is scraped.

use std::sync::LazyLock;
use std::time::Duration;

use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::histogram::{exponential_buckets, Histogram};
use prometheus_client::registry::Registry;

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct HttpLabels {
    pub method: String,
    pub route: String,
    pub status: u16,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct KindLabel {
    pub kind: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct ActionLabel {
    pub action: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct ReasonLabel {
    pub reason: String,
}

/// Every `reason` of `chat_refused_total` (standing caps and abuse defences, as opposed
/// to per-user rate limits).
pub const REFUSALS: [&str; 8] = [
    "connections_per_address",
    "header_timeout",
    "image_pixels",
    "uploads_per_user",
    "ws_sockets_per_user",
    "push_per_user",
    "push_backlog",
    "push_subscriptions_cap",
];

/// Kinds of `chat_message_changes_total`.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct ChangeLabel {
    pub change: &'static str,
}

/// Message kinds of `chat_messages_sent_total`.
pub const MESSAGE_KINDS: [&str; 4] = ["text", "image", "video", "file"];
/// Providers of `chat_push_attempts_total` / `chat_push_failures_total`.
pub const PUSH_PROVIDERS: [&str; 2] = ["webhook", "webpush"];

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct ProviderLabel {
    pub provider: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct PoolLabels {
    pub pool: String,
    pub state: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct CloseLabel {
    pub code: u16,
}

/// 0.1 ms … ~3.3 s, doubling.
fn latency_buckets() -> impl Iterator<Item = f64> {
    exponential_buckets(0.0001, 2.0, 16)
}

fn latency_histogram() -> Histogram {
    Histogram::new(latency_buckets())
}

pub struct Metrics {
    registry: Registry,
    pub http_requests: Family<HttpLabels, Counter>,
    pub http_latency: Family<HttpLabels, Histogram, fn() -> Histogram>,
    pub messages_sent: Family<KindLabel, Counter>,
    pub message_changes: Family<ChangeLabel, Counter>,
    pub messages_delivered: Counter,
    pub push_attempts: Family<ProviderLabel, Counter>,
    pub push_failures: Family<ProviderLabel, Counter>,
    pub rate_limited: Family<ActionLabel, Counter>,
    pub rate_limit_requests: Family<ActionLabel, Gauge>,
    pub rate_limit_period: Family<ActionLabel, Gauge>,
    pub refused: Family<ReasonLabel, Counter>,
    pub ws_closed: Family<CloseLabel, Counter>,
    pub bus_lag: Histogram,
    pub send_batch: Histogram,
    pub send_batch_time: Histogram,
    pub ws_sockets: Gauge,
    pub ws_users: Gauge,
    pub db_pool: Family<PoolLabels, Gauge>,
}

impl Metrics {
    fn new() -> Self {
        let mut registry = Registry::with_prefix("chat");
        let m = Metrics {
            registry: Registry::default(),
            http_requests: Family::default(),
            http_latency: Family::new_with_constructor(latency_histogram),
            messages_sent: Family::default(),
            message_changes: Family::default(),
            messages_delivered: Counter::default(),
            push_attempts: Family::default(),
            push_failures: Family::default(),
            rate_limited: Family::default(),
            rate_limit_requests: Family::default(),
            rate_limit_period: Family::default(),
            refused: Family::default(),
            ws_closed: Family::default(),
            bus_lag: latency_histogram(),
            send_batch: Histogram::new(exponential_buckets(1.0, 2.0, 10)),
            send_batch_time: latency_histogram(),
            ws_sockets: Gauge::default(),
            ws_users: Gauge::default(),
            db_pool: Family::default(),
        };
        registry.register(
            "http_requests",
            "HTTP requests by method, route and status",
            m.http_requests.clone(),
        );
        registry.register(
            "http_request_seconds",
            "HTTP request latency by method, route and status",
            m.http_latency.clone(),
        );
        registry.register(
            "messages_sent",
            "Messages stored by this instance, by type (text, image, video, file)",
            m.messages_sent.clone(),
        );
        registry.register(
            "message_changes",
            "Message lifecycle changes applied by this instance: edited, deleted (for \
             everyone), hidden (deleted for me), reaction_added, reaction_removed",
            m.message_changes.clone(),
        );
        registry.register(
            "messages_delivered",
            "message.new frames queued to live sockets of this instance",
            m.messages_delivered.clone(),
        );
        registry.register(
            "push_attempts",
            "Push notifications attempted, by provider",
            m.push_attempts.clone(),
        );
        registry.register(
            "push_failures",
            "Push notifications that failed after retries, by provider",
            m.push_failures.clone(),
        );
        registry.register(
            "rate_limited",
            "Requests and frames refused by a rate limit, by action",
            m.rate_limited.clone(),
        );
        registry.register(
            "rate_limit_requests",
            "Requests allowed per period by the limit this instance has in force, by action",
            m.rate_limit_requests.clone(),
        );
        registry.register(
            "rate_limit_period_seconds",
            "Period of the limit this instance has in force, by action",
            m.rate_limit_period.clone(),
        );
        registry.register(
            "refused",
            "Requests refused by a standing cap or abuse defence, by reason",
            m.refused.clone(),
        );
        registry.register(
            "ws_server_closes",
            "Sockets closed by the server, by close code (4000 idle, 4008 slow consumer, 1008 abuse, 1012 restart)",
            m.ws_closed.clone(),
        );
        registry.register(
            "bus_lag_seconds",
            "Redis pub/sub lag: publish on one instance to receipt on this one",
            m.bus_lag.clone(),
        );
        registry.register(
            "send_batch_size",
            "Sends written per group commit (one transaction) on this instance",
            m.send_batch.clone(),
        );
        registry.register(
            "send_batch_seconds",
            "Time to write one group commit (statement and durable commit) on this instance",
            m.send_batch_time.clone(),
        );
        registry.register(
            "ws_sockets",
            "Live WebSocket sessions on this instance",
            m.ws_sockets.clone(),
        );
        registry.register(
            "ws_users",
            "Users with at least one live socket on this instance",
            m.ws_users.clone(),
        );
        registry.register(
            "db_pool_connections",
            "Database pool connections by pool and state (idle, in_use, max)",
            m.db_pool.clone(),
        );
        // Every known label value starts at 0, so `rate()` alerts see the series from
        // the first scrape rather than from the first event.
        for kind in MESSAGE_KINDS {
            let _ = m
                .messages_sent
                .get_or_create(&KindLabel { kind: kind.into() });
        }
        let actions = crate::model::Action::ALL.map(crate::model::Action::as_str);
        for action in actions.into_iter().chain(["ws_frames"]) {
            let _ = m.rate_limited.get_or_create(&ActionLabel {
                action: action.into(),
            });
        }
        for reason in REFUSALS {
            let _ = m.refused.get_or_create(&ReasonLabel {
                reason: reason.into(),
            });
        }
        for provider in PUSH_PROVIDERS {
            let label = ProviderLabel {
                provider: provider.into(),
            };
            let _ = m.push_attempts.get_or_create(&label);
            let _ = m.push_failures.get_or_create(&label);
        }
        Metrics { registry, ..m }
    }

    /// A request refused by a standing cap or abuse defence (one of [`REFUSALS`]).
    pub fn refused(&self, reason: &'static str) {
        debug_assert!(REFUSALS.contains(&reason), "unlisted refusal {reason}");
        self.refused
            .get_or_create(&ReasonLabel {
                reason: reason.to_string(),
            })
            .inc();
    }

    pub fn http(&self, method: &str, route: &str, status: u16, elapsed: Duration) {
        let labels = HttpLabels {
            method: method.to_string(),
            route: route.to_string(),
            status,
        };
        self.http_requests.get_or_create(&labels).inc();
        self.http_latency
            .get_or_create(&labels)
            .observe(elapsed.as_secs_f64());
    }

    pub fn message_sent(&self, kind: &str) {
        self.messages_sent
            .get_or_create(&KindLabel {
                kind: kind.to_string(),
            })
            .inc();
    }

    /// One applied lifecycle change (`edited`, `deleted`, `hidden`, `reaction_added`,
    /// `reaction_removed`).
    pub fn message_changed(&self, change: &'static str) {
        self.message_changes
            .get_or_create(&ChangeLabel { change })
            .inc();
    }

    pub fn send_batch(&self, sends: usize, took: Duration) {
        self.send_batch.observe(sends as f64);
        self.send_batch_time.observe(took.as_secs_f64());
    }

    pub fn rate_limited(&self, action: &str) {
        self.rate_limited
            .get_or_create(&ActionLabel {
                action: action.to_string(),
            })
            .inc();
    }

    /// The limit in force for `action` (set at every reload, so operators and tests can
    /// see when a `chatctl ratelimit set` has reached this instance).
    pub fn rate_limit_in_force(&self, action: &str, max_requests: u32, period_seconds: u32) {
        let label = ActionLabel {
            action: action.to_string(),
        };
        self.rate_limit_requests
            .get_or_create(&label)
            .set(i64::from(max_requests));
        self.rate_limit_period
            .get_or_create(&label)
            .set(i64::from(period_seconds));
    }

    pub fn push(&self, provider: &str, ok: bool) {
        let label = ProviderLabel {
            provider: provider.to_string(),
        };
        self.push_attempts.get_or_create(&label).inc();
        if !ok {
            self.push_failures.get_or_create(&label).inc();
        }
    }

    pub fn ws_closed(&self, code: u16) {
        self.ws_closed.get_or_create(&CloseLabel { code }).inc();
    }

    pub fn db_pool(&self, pool: &str, idle: usize, in_use: usize, max: u32) {
        for (state, v) in [
            ("idle", idle as i64),
            ("in_use", in_use as i64),
            ("max", max as i64),
        ] {
            self.db_pool
                .get_or_create(&PoolLabels {
                    pool: pool.to_string(),
                    state: state.to_string(),
                })
                .set(v);
        }
    }

    /// The OpenMetrics text exposition.
    pub fn render(&self) -> String {
        let mut out = String::new();
        if let Err(e) = prometheus_client::encoding::text::encode(&mut out, &self.registry) {
            tracing::error!(error = %e, "metrics encoding failed");
        }
        out
    }
}

/// This process's metrics.
pub static METRICS: LazyLock<Metrics> = LazyLock::new(Metrics::new);

/// Content type of [`Metrics::render`].
pub const CONTENT_TYPE: &str = "application/openmetrics-text; version=1.0.0; charset=utf-8";

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn labelled_counters_start_at_zero_for_every_known_value() {
        let text = Metrics::new().render();
        for want in [
            r#"chat_messages_sent_total{kind="video"} 0"#,
            r#"chat_rate_limited_total{action="send_message"} 0"#,
            r#"chat_rate_limited_total{action="lookup"} 0"#,
            r#"chat_rate_limited_total{action="ws_frames"} 0"#,
            r#"chat_refused_total{reason="ws_sockets_per_user"} 0"#,
            r#"chat_push_failures_total{provider="webpush"} 0"#,
        ] {
            assert!(
                text.contains(want),
                "missing {want}:
{text}"
            );
        }
    }

    #[test]
    fn renders_every_family_with_the_chat_prefix() {
        let m = Metrics::new();
        m.http("GET", "/chat/conversations", 200, Duration::from_millis(3));
        m.message_sent("text");
        m.rate_limited("send_message");
        m.push("webhook", false);
        m.ws_closed(4008);
        m.db_pool("write", 1, 0, 1);
        m.bus_lag.observe(0.002);
        let text = m.render();
        for want in [
            r#"chat_http_requests_total{method="GET",route="/chat/conversations",status="200"} 1"#,
            r#"chat_http_request_seconds_bucket{le="0.0064",method="GET",route="/chat/conversations",status="200"} 1"#,
            r#"chat_messages_sent_total{kind="text"} 1"#,
            r#"chat_rate_limited_total{action="send_message"} 1"#,
            r#"chat_push_failures_total{provider="webhook"} 1"#,
            r#"chat_ws_server_closes_total{code="4008"} 1"#,
            r#"chat_db_pool_connections{pool="write",state="max"} 1"#,
            "chat_bus_lag_seconds_count 1",
            "# EOF",
        ] {
            assert!(text.contains(want), "missing {want}:\n{text}");
        }
    }
}
