//! `chat-loadgen`: load generator for chatd. Skeleton: the real generator arrives with
//! its own issue.

use clap::Parser;

#[derive(Debug, Parser)]
#[command(
    name = "chat-loadgen",
    version,
    about = "Load generator for chatd (not implemented yet)"
)]
struct Cli {
    /// Base URL of the chatd server.
    #[arg(long, default_value = "http://127.0.0.1:8080")]
    server: String,
}

fn main() -> anyhow::Result<()> {
    let cli = Cli::parse();
    anyhow::bail!(
        "chat-loadgen is not implemented yet (server {})",
        cli.server
    )
}
