//! Configuration: one clap struct, read from flags and the same-named `CHAT_*`
//! environment variables. `chatctl` flattens [`CommonConfig`] so both tools always
//! agree on where the data lives and which JWT secret is in force.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::Duration;

use clap::{Args, Parser, ValueEnum};

/// Settings shared by `chatd` and `chatctl`.
#[derive(Debug, Clone, Args)]
pub struct CommonConfig {
    /// `postgres://…` or `sqlite://…`. Absent: a SQLite file `chat.db` in the data dir.
    #[arg(long, env = "CHAT_DATABASE_URL")]
    pub database_url: Option<String>,

    /// `redis://…`. Absent: presence, pub/sub and rate limits stay in-process.
    #[arg(long, env = "CHAT_REDIS_URL")]
    pub redis_url: Option<String>,

    /// Prefix for every Redis key and channel (to share one Redis between deployments).
    #[arg(long, env = "CHAT_REDIS_PREFIX", default_value = "")]
    pub redis_prefix: String,

    /// Directory for the SQLite file, the generated JWT secret and local media.
    #[arg(long, env = "CHAT_DATA_DIR", default_value = "./data")]
    pub data_dir: PathBuf,

    /// HS256 secret for JWTs. Absent: generated once and kept in `<data dir>/jwt_secret`.
    #[arg(long, env = "CHAT_JWT_SECRET", hide_env_values = true)]
    pub jwt_secret: Option<String>,

    /// PEM file with an RS256 (RSA) or EdDSA (Ed25519) public key; tokens signed with the
    /// matching private key are accepted in addition to HS256 ones.
    #[arg(long, env = "CHAT_JWT_PUBLIC_KEY")]
    pub jwt_public_key: Option<PathBuf>,

    /// Longest token lifetime accepted (`exp - iat`), e.g. `3600`, `90m`, `24h`, `7d`.
    /// Absent: any lifetime. When set, tokens must carry `iat`.
    #[arg(long, env = "CHAT_JWT_MAX_LIFETIME", value_parser = parse_duration)]
    pub jwt_max_lifetime: Option<Duration>,

    /// Where media objects go: `local`, `s3://bucket/prefix` or `bunny://zone`.
    #[arg(long, env = "CHAT_MEDIA_STORE", default_value = "local")]
    pub media_store: String,

    /// Directory for local media. Absent: `<data dir>/media`.
    #[arg(long, env = "CHAT_MEDIA_DIR")]
    pub media_dir: Option<PathBuf>,

    /// Public base URL of this server (e.g. `https://chat.example.com`), used in local
    /// media links. Absent: links are relative (`/media/…`).
    #[arg(long, env = "CHAT_PUBLIC_URL")]
    pub public_url: Option<String>,

    /// Seconds a signed media URL stays valid.
    #[arg(long, env = "CHAT_MEDIA_URL_TTL_SECS", default_value_t = 3600)]
    pub media_url_ttl_secs: u64,

    /// Image decodes running at once (each may use up to 512 MiB).
    #[arg(long, env = "CHAT_MEDIA_WORKERS", default_value_t = 2)]
    pub media_workers: usize,

    /// Longest side of a stored image; larger originals are downscaled to it (a GIF that
    /// large is refused: GIFs are kept as uploaded).
    #[arg(long, env = "CHAT_IMAGE_MAX_SIDE", default_value_t = 4096)]
    pub image_max_side: u32,

    /// Megapixels the images of one message may decode to, together; checked from their
    /// headers before any is decoded.
    #[arg(long, env = "CHAT_IMAGE_MEGAPIXELS_PER_MESSAGE", default_value_t = 150)]
    pub image_megapixels_per_message: u64,

    /// Bunny Storage API endpoint (regional endpoints differ).
    #[arg(
        long,
        env = "CHAT_BUNNY_STORAGE_ENDPOINT",
        default_value = "https://storage.bunnycdn.com"
    )]
    pub bunny_storage_endpoint: String,

    /// Bunny Storage zone password (the `AccessKey` header).
    #[arg(
        long,
        env = "CHAT_BUNNY_ACCESS_KEY",
        hide_env_values = true,
        default_value = ""
    )]
    pub bunny_access_key: String,

    /// Base URL of the Bunny pull zone that serves the storage zone.
    #[arg(long, env = "CHAT_BUNNY_CDN_URL", default_value = "")]
    pub bunny_cdn_url: String,

    /// Bunny pull zone URL token authentication key.
    #[arg(
        long,
        env = "CHAT_BUNNY_TOKEN_KEY",
        hide_env_values = true,
        default_value = ""
    )]
    pub bunny_token_key: String,

    /// Largest database connection pool per process.
    #[arg(long, env = "CHAT_DB_MAX_CONNECTIONS", default_value_t = 20)]
    pub db_max_connections: u32,

    /// Log output: `text` for people, `json` for log shippers.
    #[arg(long, env = "CHAT_LOG_FORMAT", value_enum, default_value_t = LogFormat::Text)]
    pub log_format: LogFormat,

    /// Log filter in `tracing` syntax (e.g. `info`, `chat_server=debug`).
    #[arg(long, env = "CHAT_LOG", default_value = "info")]
    pub log: String,

    #[command(flatten)]
    pub caps: UserCaps,
}

/// Standing caps per user (as opposed to rates, which live in the `rate_limits` table):
/// shared so `chatctl ratelimit list` shows the ones in force beside the rates.
#[derive(Debug, Clone, Copy, Args)]
pub struct UserCaps {
    /// Most WebSockets one user may hold open on one instance; one more is refused with
    /// 429 `rate_limited`.
    #[arg(long, env = "CHAT_WS_MAX_SOCKETS_PER_USER", default_value_t = 16)]
    pub ws_max_sockets_per_user: usize,

    /// Media uploads one user may have in progress at once; one more is refused (429)
    /// before its body is read. Keep it below `CHAT_MEDIA_WORKERS` so one user's images
    /// cannot occupy every decode worker.
    #[arg(long, env = "CHAT_UPLOADS_PER_USER", default_value_t = 1)]
    pub uploads_per_user: usize,

    /// Push subscriptions kept per user; registering one more replaces the oldest.
    #[arg(long, env = "CHAT_PUSH_MAX_SUBSCRIPTIONS", default_value_t = 10)]
    pub push_max_subscriptions: usize,

    /// Push deliveries one receiver may have in flight (of the instance's 64); more are
    /// dropped, never anyone else's.
    #[arg(long, env = "CHAT_PUSH_IN_FLIGHT_PER_USER", default_value_t = 4)]
    pub push_in_flight_per_user: usize,
}

impl UserCaps {
    /// (name, value, variable) for each cap, as `chatctl ratelimit list` prints them.
    pub fn rows(&self) -> [(&'static str, usize, &'static str); 4] {
        [
            (
                "ws_sockets",
                self.ws_max_sockets_per_user,
                "CHAT_WS_MAX_SOCKETS_PER_USER",
            ),
            (
                "uploads_in_progress",
                self.uploads_per_user,
                "CHAT_UPLOADS_PER_USER",
            ),
            (
                "push_subscriptions",
                self.push_max_subscriptions,
                "CHAT_PUSH_MAX_SUBSCRIPTIONS",
            ),
            (
                "push_in_flight",
                self.push_in_flight_per_user,
                "CHAT_PUSH_IN_FLIGHT_PER_USER",
            ),
        ]
    }
}

/// Seconds, or a number with one unit: `s`, `m`, `h`, `d`.
pub fn parse_duration(s: &str) -> Result<Duration, String> {
    let s = s.trim();
    let (num, unit) = match s.find(|c: char| !c.is_ascii_digit()) {
        Some(i) => s.split_at(i),
        None => (s, "s"),
    };
    let n: u64 = num
        .parse()
        .map_err(|_| format!("{s:?} is not a duration (e.g. 3600, 90m, 24h, 7d)"))?;
    let unit_secs = match unit {
        "s" => 1,
        "m" => 60,
        "h" => 3600,
        "d" => 86_400,
        _ => return Err(format!("unknown unit {unit:?} in {s:?}; use s, m, h or d")),
    };
    n.checked_mul(unit_secs)
        .filter(|&secs| secs > 0)
        .map(Duration::from_secs)
        .ok_or_else(|| format!("{s:?} must be a positive duration"))
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum LogFormat {
    Text,
    Json,
}

/// `CHAT_SQLITE_SYNCHRONOUS`: when a SQLite commit is durable (the store's `SqliteSync`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum SqliteSynchronous {
    Full,
    Normal,
}

/// `chatd` settings.
#[derive(Debug, Clone, Parser)]
#[command(
    name = "chatd",
    version,
    about = "Real-time 1:1 chat server (REST + WebSocket)"
)]
pub struct Config {
    /// Address to listen on.
    #[arg(long, env = "CHAT_LISTEN", default_value = "127.0.0.1:8080")]
    pub listen: SocketAddr,

    #[command(flatten)]
    pub common: CommonConfig,

    /// Do not apply database migrations on start (run `chatctl migrate up` in deploys).
    #[arg(long, env = "CHAT_SKIP_MIGRATIONS", default_value_t = false)]
    pub skip_migrations: bool,

    /// How often (seconds) the rate limits are re-read from the database.
    #[arg(long, env = "CHAT_RATELIMIT_RELOAD_SECS", default_value_t = 5)]
    pub ratelimit_reload_secs: u64,

    /// Seconds between server pings on each WebSocket.
    #[arg(long, env = "CHAT_WS_PING_SECS", default_value_t = 54)]
    pub ws_ping_secs: u64,

    /// A WebSocket silent (no frame, no pong) this many seconds is dropped.
    #[arg(long, env = "CHAT_WS_IDLE_SECS", default_value_t = 60)]
    pub ws_idle_secs: u64,

    /// Milliseconds a user whose last socket closed still counts as online: a reconnect
    /// within it (a network blip, an instance restart) announces neither `user.offline` nor
    /// `user.online`. 0 announces at once; capped at 30,000 (presence keys live 60 s).
    #[arg(long, env = "CHAT_PRESENCE_GRACE_MS", default_value_t = 5000)]
    pub presence_grace_ms: u64,

    /// Seconds after sending during which the sender may edit a message or delete it for
    /// everyone (SPEC "Message lifecycle").
    #[arg(long, env = "CHAT_EDIT_WINDOW_SECS", default_value_t = 86400)]
    pub edit_window_secs: u64,

    /// Group commit: most sends written in one transaction.
    #[arg(long, env = "CHAT_SEND_BATCH_MAX", default_value_t = 256)]
    pub send_batch_max: usize,

    /// Group commit: batches of sends in flight at once (default: 1 on SQLite, 2 on
    /// PostgreSQL); 0 turns group commit off (each send its own transaction).
    #[arg(long, env = "CHAT_SEND_WRITERS")]
    pub send_writers: Option<usize>,

    /// SQLite: `full` syncs the write-ahead log at every commit (an acknowledged send
    /// survives power loss); `normal` only at checkpoints (survives a chatd crash, may
    /// lose the last commits to an OS crash or power loss).
    #[arg(long, env = "CHAT_SQLITE_SYNCHRONOUS", value_enum, default_value_t = SqliteSynchronous::Full)]
    pub sqlite_synchronous: SqliteSynchronous,

    /// Seconds a client has to send a request's headers; a keep-alive connection idle
    /// this long is closed too.
    #[arg(long, env = "CHAT_HTTP_HEADER_TIMEOUT_SECS", default_value_t = 10)]
    pub http_header_timeout_secs: u64,

    /// Open connections (WebSockets included) one source address may hold; one more is
    /// closed at accept. 0: no cap (behind a reverse proxy, which arrives from one
    /// address, set its capacity or 0 and let the proxy limit clients).
    #[arg(long, env = "CHAT_MAX_CONNECTIONS_PER_ADDRESS", default_value_t = 1024)]
    pub max_connections_per_address: usize,

    /// Outbound frames queued per socket before it counts as a slow consumer and is closed.
    #[arg(long, env = "CHAT_WS_QUEUE", default_value_t = 256)]
    pub ws_queue: usize,

    /// URL that receives a signed JSON POST for each message to a user with no live socket.
    #[arg(long, env = "CHAT_PUSH_WEBHOOK_URL")]
    pub push_webhook_url: Option<String>,

    /// HMAC-SHA256 key for the webhook's `X-Chat-Signature` header.
    #[arg(long, env = "CHAT_PUSH_WEBHOOK_SECRET", hide_env_values = true)]
    pub push_webhook_secret: Option<String>,

    /// Deliver Web Push to endpoints on loopback/private/link-local addresses too.
    /// Development and tests only: endpoints are user input (SSRF otherwise).
    #[arg(long, env = "CHAT_PUSH_ALLOW_PRIVATE", default_value_t = false)]
    pub push_allow_private: bool,

    /// VAPID private key (base64url of the raw 32-byte P-256 key) enabling Web Push.
    #[arg(long, env = "CHAT_VAPID_PRIVATE_KEY", hide_env_values = true)]
    pub vapid_private_key: Option<String>,

    /// Contact sent to push services with Web Push (`mailto:` or `https:`).
    #[arg(
        long,
        env = "CHAT_VAPID_SUBJECT",
        default_value = "mailto:admin@localhost"
    )]
    pub vapid_subject: String,

    /// Seconds to wait for in-flight requests after SIGTERM before exiting.
    #[arg(long, env = "CHAT_SHUTDOWN_GRACE_SECS", default_value_t = 10)]
    pub shutdown_grace_secs: u64,
}

impl CommonConfig {
    /// The database URL in force: the configured one or the embedded SQLite file.
    pub fn effective_database_url(&self) -> String {
        match &self.database_url {
            Some(url) => url.clone(),
            None => format!("sqlite://{}", self.data_dir.join("chat.db").display()),
        }
    }

    pub fn effective_media_dir(&self) -> PathBuf {
        self.media_dir
            .clone()
            .unwrap_or_else(|| self.data_dir.join("media"))
    }
}

impl Config {
    pub fn ratelimit_reload(&self) -> Duration {
        Duration::from_secs(self.ratelimit_reload_secs.max(1))
    }

    /// A configuration for tests and embedding: every default, the given data dir.
    pub fn for_data_dir(data_dir: impl Into<PathBuf>) -> Self {
        let mut cfg = Config::parse_from(["chatd"]);
        cfg.common.data_dir = data_dir.into();
        cfg
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn defaults_need_no_configuration() {
        let cfg = Config::try_parse_from(["chatd"]).unwrap();
        assert_eq!(cfg.listen.to_string(), "127.0.0.1:8080");
        assert!(cfg.common.effective_database_url().starts_with("sqlite://"));
        assert_eq!(cfg.common.media_store, "local");
        assert_eq!(cfg.sqlite_synchronous, SqliteSynchronous::Full);
    }

    #[test]
    fn sqlite_commits_can_be_made_non_durable_and_nothing_else() {
        let cfg = Config::try_parse_from(["chatd", "--sqlite-synchronous", "normal"]).unwrap();
        assert_eq!(cfg.sqlite_synchronous, SqliteSynchronous::Normal);
        assert!(Config::try_parse_from(["chatd", "--sqlite-synchronous", "off"]).is_err());
    }

    #[test]
    fn durations_take_one_unit() {
        assert_eq!(parse_duration("3600"), Ok(Duration::from_secs(3600)));
        assert_eq!(parse_duration("90m"), Ok(Duration::from_secs(5400)));
        assert_eq!(parse_duration("24h"), Ok(Duration::from_secs(86_400)));
        assert_eq!(parse_duration("7d"), Ok(Duration::from_secs(604_800)));
        for bad in ["", "0", "h", "1w", "-5", "1.5h", "99999999999999999999d"] {
            assert!(parse_duration(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn flags_override() {
        let cfg = Config::try_parse_from([
            "chatd",
            "--listen",
            "0.0.0.0:9000",
            "--database-url",
            "postgres://x/y",
        ])
        .unwrap();
        assert_eq!(cfg.listen.port(), 9000);
        assert_eq!(cfg.common.effective_database_url(), "postgres://x/y");
    }
}
