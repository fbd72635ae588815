//! Assembly: build the shared state from a [`Config`] and serve on a bound listener
//! until the shutdown future resolves.

use std::future::Future;
use std::sync::Arc;
use std::time::Duration;

use tokio::net::TcpListener;

use crate::auth::{JwtKeys, KeyError};
use crate::config::{Config, SqliteSynchronous};
use crate::domain::delivery::DynBus;
use crate::domain::presence::{LocalPresence, Presence};
use crate::domain::ChatService;
use crate::http::ws::WsSettings;
use crate::http::{self, AppState};
use crate::media::Media;
use crate::push::{PushError, PushProvider, Pusher, WebPushProvider, WebhookProvider};
use crate::ratelimit::RateLimiter;
use crate::realtime::bus::{LocalBus, RedisBus};
use crate::realtime::hub::{CloseReason, Hub, CLOSE_RESTART};
use crate::realtime::redis_presence::RedisPresence;
use crate::redis_breaker::{Breaker, GuardedConnection};
use crate::store::{self, DynStore, StoreError};

#[derive(Debug, thiserror::Error)]
pub enum StartError {
    #[error("database: {0}")]
    Store(#[from] StoreError),
    #[error("JWT keys: {0}")]
    Keys(#[from] KeyError),
    #[error("redis: {0}")]
    Redis(#[from] redis::RedisError),
    #[error("data dir {path}: {source}")]
    DataDir {
        path: String,
        source: std::io::Error,
    },
    #[error("push: {0}")]
    Push(#[from] PushError),
    #[error("{0}")]
    Media(#[from] crate::media::storage::StorageError),
    #[error("server: {0}")]
    Io(#[from] std::io::Error),
}

/// Open the store named by the configuration and apply migrations unless told not to.
pub async fn open_store(config: &Config) -> Result<DynStore, StartError> {
    let url = config.common.effective_database_url();
    let options = store::OpenOptions {
        send_writers: config.send_writers,
        sqlite_sync: match config.sqlite_synchronous {
            SqliteSynchronous::Full => store::SqliteSync::Full,
            SqliteSynchronous::Normal => store::SqliteSync::Normal,
        },
    };
    let store = store::connect_with(&url, config.common.db_max_connections, options).await?;
    if config.skip_migrations {
        tracing::info!("skipping migrations (CHAT_SKIP_MIGRATIONS)");
    } else {
        store.migrate().await?;
    }
    store.ready().await;
    Ok(store)
}

/// Build the state: store, keys, limiter (with its reload task), optional Redis.
pub async fn build_state(
    config: &Config,
) -> Result<(AppState, Vec<tokio::task::JoinHandle<()>>), StartError> {
    std::fs::create_dir_all(&config.common.data_dir).map_err(|source| StartError::DataDir {
        path: config.common.data_dir.display().to_string(),
        source,
    })?;
    let keys = JwtKeys::load(&config.common)?;
    let store = open_store(config).await?;
    let mut limits = RateLimiter::new();
    let hub = Arc::new(Hub::new(config.ws_queue));
    let mut tasks = Vec::new();
    let prefix = config.common.redis_prefix.as_str();
    let (bus, presence, redis): (DynBus, Arc<dyn Presence>, _) = match &config.common.redis_url {
        Some(url) => {
            let client = redis::Client::open(url.as_str())?;
            // Bounded waits: with Redis down, a send must fall back (local rate limit,
            // local delivery) in well under a second, never hang on reconnect attempts.
            let cfg = redis::aio::ConnectionManagerConfig::new()
                .set_connection_timeout(Duration::from_millis(500))
                .set_response_timeout(Duration::from_millis(500))
                .set_number_of_retries(1)
                .set_max_delay(200);
            let conn = redis::aio::ConnectionManager::new_with_config(client.clone(), cfg).await?;
            // Bus, rate limits and presence share one breaker; readiness uses the bare
            // connection so it reports what Redis says right now.
            let guarded = GuardedConnection::new(conn.clone(), Breaker::default());
            let (bus, subscriber) =
                RedisBus::start(client, guarded.clone(), prefix, hub.clone()).await?;
            tasks.push(subscriber);
            limits = limits.with_redis(guarded.clone(), prefix);
            (
                bus,
                Arc::new(RedisPresence::new(guarded, prefix)),
                Some(conn),
            )
        }
        None => (
            Arc::new(LocalBus::new(hub.clone())),
            Arc::new(LocalPresence::new()),
            None,
        ),
    };
    limits.reload_from(&store).await;
    tasks.push(limits.spawn_reloader(store.clone(), config.ratelimit_reload()));
    let mut providers: Vec<Arc<dyn PushProvider>> = Vec::new();
    if let Some(url) = &config.push_webhook_url {
        providers.push(Arc::new(WebhookProvider::new(
            url.clone(),
            config.push_webhook_secret.clone(),
        )));
    }
    let mut vapid_public_key = None;
    if let Some(key) = &config.vapid_private_key {
        let web =
            WebPushProvider::new(key, config.vapid_subject.clone(), config.push_allow_private)?;
        vapid_public_key = Some(web.public_key());
        providers.push(Arc::new(web));
    }
    let pusher = Pusher::new(providers)
        .with_store(store.clone())
        .with_caps(&config.common.caps);
    let mut send_batching = store::BatchSettings::for_backend(store.backend());
    send_batching.max_batch = config.send_batch_max.max(1);
    if let Some(w) = config.send_writers {
        send_batching.writers = w;
    }
    let media = Arc::new(Media::from_config(&config.common, keys.media_key())?);
    let state = AppState {
        service: Arc::new(
            ChatService::new(store, bus, presence, limits, send_batching)
                .with_pusher(pusher)
                .with_media(media)
                .with_presence_grace(Duration::from_millis(config.presence_grace_ms))
                .with_edit_window(Duration::from_secs(config.edit_window_secs)),
        ),
        hub,
        ws: WsSettings {
            ping: Duration::from_secs(config.ws_ping_secs.max(1)),
            idle: Duration::from_secs(config.ws_idle_secs.max(1)),
            max_sockets_per_user: config.common.caps.ws_max_sockets_per_user.max(1),
        },
        keys: Arc::new(keys),
        vapid_public_key,
        redis,
    };
    Ok((state, tasks))
}

/// Serve chatd on `listener` until `shutdown` resolves, then drain in-flight requests
/// for at most the configured grace period.
/// Pending connections the kernel may queue for `accept` (capped by
/// `net.core.somaxconn`). tokio's `TcpListener::bind` asks for 1,024; in a reconnect
/// storm (every client of a restarted instance or a network blip at once) the overflow
/// is dropped SYNs, which clients retry only after 1 s, then 3 s, 7 s
/// (docs/benchmarks.md, "Reconnect storm").
pub const LISTEN_BACKLOG: u32 = 8192;

/// Bind the listening socket with [`LISTEN_BACKLOG`].
pub fn listen(addr: std::net::SocketAddr) -> std::io::Result<TcpListener> {
    let socket = if addr.is_ipv4() {
        tokio::net::TcpSocket::new_v4()?
    } else {
        tokio::net::TcpSocket::new_v6()?
    };
    // As std and tokio do on unix: a restarted chatd can bind while old connections of
    // the previous process sit in TIME_WAIT.
    #[cfg(unix)]
    socket.set_reuseaddr(true)?;
    socket.bind(addr)?;
    let somaxconn = std::fs::read_to_string("/proc/sys/net/core/somaxconn").ok();
    if let Some(warning) = backlog_warning(somaxconn.as_deref()) {
        tracing::warn!("{warning}");
    }
    socket.listen(LISTEN_BACKLOG)
}

/// What to tell the operator when the kernel caps the accept queue below
/// [`LISTEN_BACKLOG`] (`somaxconn`: `/proc/sys/net/core/somaxconn`, None where unknown).
/// Measured: 5,000 sockets reconnecting at once under the common default of 4,096 overflowed
/// the queue ~900 times and their resume p99 was 1.31 s; with 8,192, none and 0.95-0.99 s
/// (docs/benchmarks.md, session 20).
pub fn backlog_warning(somaxconn: Option<&str>) -> Option<String> {
    let cap: u32 = somaxconn?.trim().parse().ok()?;
    (cap < LISTEN_BACKLOG).then(|| {
        format!(
            "net.core.somaxconn is {cap}: the accept queue holds {cap} connections, not \
             {LISTEN_BACKLOG}; in a reconnect storm of more sockets the rest retry after 1 s \
             (raise it: sysctl -w net.core.somaxconn={LISTEN_BACKLOG})"
        )
    })
}

pub async fn serve(
    config: Config,
    listener: TcpListener,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> Result<(), StartError> {
    let (ready, _) = tokio::sync::oneshot::channel();
    serve_with_ready(config, listener, shutdown, ready).await
}

/// [`serve`], signalling `ready` once the state is built and requests are accepted.
pub async fn serve_with_ready(
    config: Config,
    listener: TcpListener,
    shutdown: impl Future<Output = ()> + Send + 'static,
    ready: tokio::sync::oneshot::Sender<()>,
) -> Result<(), StartError> {
    let (state, tasks) = build_state(&config).await?;
    tracing::info!(
        backend = state.service.store().backend(),
        redis = config.common.redis_url.is_some(),
        "chatd ready"
    );
    let _ = ready.send(());
    let store = state.service.store().clone();
    let hub = state.hub.clone();
    let service = state.service.clone();
    let app = http::router(state);
    let grace = Duration::from_secs(config.shutdown_grace_secs);

    let (stop_tx, stop_rx) = tokio::sync::watch::channel(false);
    let ws_hub = hub.clone();
    let limits = http::serve::ConnLimits {
        per_address: config.max_connections_per_address,
        header_read: Duration::from_secs(config.http_header_timeout_secs.max(1)),
    };
    let server = http::serve::serve(listener, app, limits, async move {
        shutdown.await;
        let _ = stop_tx.send(true);
        // Upgraded sockets are not HTTP requests: close them ourselves, then wait for
        // their sessions to finish writing.
        ws_hub.close_all(CloseReason {
            code: CLOSE_RESTART,
            reason: "server shutting down",
        });
        let deadline = tokio::time::Instant::now() + grace;
        while ws_hub.sessions() > 0 && tokio::time::Instant::now() < deadline {
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        // Users still in their presence grace period go offline now: their contacts must
        // hear it before this process is gone.
        let _ = tokio::time::timeout_at(deadline, service.flush_departures()).await;
    });
    let mut stop_rx2 = stop_rx.clone();
    tokio::select! {
        () = server => {}
        _ = async {
            // Once shutdown starts, give in-flight requests `grace` to finish.
            let _ = stop_rx2.wait_for(|v| *v).await;
            tokio::time::sleep(grace).await;
        } => tracing::warn!("grace period over; closing remaining connections"),
    }
    drop(stop_rx);
    for t in tasks {
        t.abort();
    }
    store.close().await;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_kernel_cap_below_the_backlog_is_reported_with_the_fix() {
        let warning = backlog_warning(Some("4096\n")).expect("4096 < backlog");
        assert!(warning.contains("somaxconn is 4096"), "{warning}");
        assert!(warning.contains(&format!("net.core.somaxconn={LISTEN_BACKLOG}")));
        assert_eq!(backlog_warning(Some(&LISTEN_BACKLOG.to_string())), None);
        assert_eq!(backlog_warning(Some("65535")), None);
        assert_eq!(backlog_warning(None), None, "not Linux: nothing to say");
        assert_eq!(backlog_warning(Some("garbage")), None);
    }
}
