//! Logging set-up shared by chatd and chatctl.

use tracing_subscriber::EnvFilter;

use crate::config::{CommonConfig, LogFormat};

/// Install the global subscriber: `RUST_LOG` wins over `CHAT_LOG`; logs go to stderr.
pub fn init(cfg: &CommonConfig) {
    let filter = EnvFilter::try_from_default_env()
        .or_else(|_| EnvFilter::try_new(&cfg.log))
        .unwrap_or_else(|_| EnvFilter::new("info"));
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr);
    let _ = match cfg.log_format {
        LogFormat::Json => builder.json().try_init(),
        LogFormat::Text => builder.try_init(),
    };
}
