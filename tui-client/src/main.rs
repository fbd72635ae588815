//! `chat-tui`: terminal client for chatd. Skeleton: the interactive client and the
//! scripted `check` arrive with their own issue.

use clap::Parser;

#[derive(Debug, Parser)]
#[command(
    name = "chat-tui",
    version,
    about = "Terminal client for chatd (not implemented yet)"
)]
struct Cli {
    /// Base URL of the chatd server.
    #[arg(long, env = "CHAT_SERVER", default_value = "http://127.0.0.1:8080")]
    server: String,
    /// Bearer token (see `chatctl token issue`).
    #[arg(long, env = "CHAT_TOKEN")]
    token: Option<String>,
}

fn main() -> anyhow::Result<()> {
    let cli = Cli::parse();
    anyhow::bail!(
        "chat-tui is not implemented yet (server {}, token given: {})",
        cli.server,
        cli.token.is_some()
    )
}
