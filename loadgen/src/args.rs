//! The `run` subcommand's arguments, and the parsers for their rates and durations.

use std::time::Duration;

use chat_protocol::units;
use clap::Args;

use crate::report;
use crate::rest::{parse_mix, RestMix};

#[derive(Debug, Args)]
pub(crate) struct RunArgs {
    /// chatd base URL; repeat to spread users over several instances (user i → server i mod n).
    #[arg(
        long = "server",
        env = "CHAT_LOADGEN_SERVER",
        value_delimiter = ',',
        default_value = "http://127.0.0.1:8080"
    )]
    pub(crate) servers: Vec<String>,
    /// Synthetic users (paired two by two into conversations).
    #[arg(long, default_value_t = 100)]
    pub(crate) users: usize,
    /// WebSocket connections per user.
    #[arg(long, default_value_t = 1)]
    pub(crate) sockets_per_user: usize,
    /// Message send rate over WebSocket, e.g. `500/s` or `6000/min`.
    #[arg(long, default_value = "100/s", value_parser = parse_rate)]
    pub(crate) rate: f64,
    /// How long messages are sent, e.g. `60s`, `5m`.
    #[arg(long, default_value = "30s", value_parser = parse_duration)]
    pub(crate) duration: Duration,
    /// Time over which the sockets are opened (evenly spread); `0s` opens them all at once.
    #[arg(long, default_value = "5s", value_parser = parse_duration_or_zero)]
    pub(crate) ramp: Duration,
    /// How long to wait after the last send for outstanding deliveries.
    #[arg(long, default_value = "10s", value_parser = parse_duration)]
    pub(crate) drain: Duration,
    /// REST read rate (a mix of the calls in --rest-mix), e.g. `50/s`; `0/s` for none.
    #[arg(long, default_value = "20/s", value_parser = parse_rate_or_zero)]
    pub(crate) rest_rate: f64,
    /// Weights of the REST calls: conversations, messages, mark_read, block_status.
    #[arg(long, default_value = "conversations=4,messages=4,mark_read=1,block_status=1", value_parser = parse_mix)]
    pub(crate) rest_mix: RestMix,
    /// Media message uploads (multipart, over REST) mixed in, e.g. `2/s`; needs
    /// --media-file. Timed as `media_upload` (request until 201); the receiver's
    /// `message.new` for them is not counted as a text delivery.
    #[arg(long, default_value = "0/s", value_parser = parse_rate_or_zero, requires = "media_file")]
    pub(crate) media_rate: f64,
    /// The file each media upload sends (its extension picks the declared type).
    #[arg(long)]
    pub(crate) media_file: Option<String>,
    /// Bytes of text per message.
    #[arg(long, default_value_t = 64)]
    pub(crate) message_bytes: usize,
    /// HS256 secret to mint user tokens with (the server's CHAT_JWT_SECRET).
    #[arg(long, env = "CHAT_JWT_SECRET", hide_env_values = true)]
    pub(crate) jwt_secret: Option<String>,
    /// File of user tokens, one JWT per line (used instead of --jwt-secret); needs at least
    /// --users lines.
    #[arg(long, conflicts_with = "jwt_secret")]
    pub(crate) tokens: Option<String>,
    /// Username prefix for minted users (default: random per run, so runs never collide).
    #[arg(long)]
    pub(crate) prefix: Option<String>,
    /// Custom p99 target, `METRIC=MS` (repeatable), e.g. `delivery=50`.
    #[arg(long = "slo", value_parser = report::parse_slo)]
    pub(crate) slos: Vec<(String, f64)>,
    /// Write the full result as JSON to this file.
    #[arg(long)]
    pub(crate) json: Option<String>,
    /// Process id of a chatd on this machine: its resident memory is sampled before and
    /// after the sockets connect (reported as KiB per socket).
    #[arg(long)]
    pub(crate) server_pid: Vec<u32>,
    /// Command name of a process on this machine (e.g. chatd, postgres, redis-server) whose
    /// CPU during the send phase is reported per message, beside the host's idle and steal
    /// time (all processes of that name together). Repeatable.
    #[arg(long = "cpu-of")]
    pub(crate) cpu_of: Vec<String>,
    /// Requests in flight during provisioning and pairing.
    #[arg(long, default_value_t = 64)]
    pub(crate) setup_concurrency: usize,
    /// Reconnect storm: this long into the send phase every socket is dropped at once
    /// and reconnects with resume (`/chat/ws?since=`), resending what was not
    /// acknowledged. Reported: `resume` (drop until `sync.complete`, per socket; its max
    /// is the time until all are caught up) and `delivery_storm` (delivery of messages
    /// due from the drop until the last socket caught up).
    #[arg(long, value_parser = parse_duration)]
    pub(crate) storm_at: Option<Duration>,
    /// Self-check: a pacer lateness p99 (due time to frame written) above this many ms
    /// marks the run generator-limited (never PASS).
    #[arg(long, default_value_t = 1.0)]
    pub(crate) max_lateness_ms: f64,
    /// Self-check: a generator CPU average above this many cores during the send phase
    /// marks the run generator-limited (never PASS).
    #[arg(long, default_value_t = 0.9)]
    pub(crate) max_generator_cpu: f64,
    /// Run the pacer and the socket workers as ordinary threads instead of asking for
    /// real-time scheduling (see docs/decisions.md, "Load generator").
    #[arg(long)]
    pub(crate) no_realtime: bool,
    /// Hide the live progress line.
    #[arg(long)]
    pub(crate) quiet: bool,
}

fn parse_rate_or_zero(s: &str) -> Result<f64, String> {
    if s.trim().starts_with("0/") {
        return Ok(0.0);
    }
    parse_rate(s)
}

fn parse_rate(s: &str) -> Result<f64, String> {
    let (n, period) = units::rate(s).map_err(|e| e.to_string())?;
    Ok(n as f64 / period as f64)
}

fn parse_duration(s: &str) -> Result<Duration, String> {
    units::duration(s).map_err(|e| e.to_string())
}

fn parse_duration_or_zero(s: &str) -> Result<Duration, String> {
    if s.trim() == "0s" || s.trim() == "0" {
        return Ok(Duration::ZERO);
    }
    parse_duration(s)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rates_and_durations() {
        assert_eq!(parse_rate("500/s").unwrap(), 500.0);
        assert_eq!(parse_rate("60/min").unwrap(), 1.0);
        assert_eq!(parse_rate_or_zero("0/s").unwrap(), 0.0);
        assert!(parse_rate("0/s").is_err());
        assert_eq!(parse_duration_or_zero("0s").unwrap(), Duration::ZERO);
        assert_eq!(parse_duration("10s").unwrap(), Duration::from_secs(10));
    }
}
