//! `chat-tui`: terminal client for chatd (ratatui). `chat-tui check` runs the scripted
//! end-to-end check of every call and event against a live server.

mod app;
mod check;
mod interactive;
mod notify;
mod ui;

use std::path::PathBuf;

use anyhow::Context;
use clap::{Parser, Subcommand};

#[derive(Debug, Parser)]
#[command(name = "chat-tui", version, about = "Terminal client for chatd")]
struct Cli {
    #[command(subcommand)]
    command: Option<Command>,
    /// Base URL of the chatd server.
    #[arg(long, env = "CHAT_SERVER", default_value = "http://127.0.0.1:8080")]
    server: String,
    /// Bearer token (see `chatctl token issue`).
    #[arg(
        long,
        env = "CHAT_TOKEN",
        hide_env_values = true,
        conflicts_with = "user"
    )]
    token: Option<String>,
    /// For local use: sign in as this username with a token minted from --jwt-secret
    /// (the same username always gets the same user id).
    #[arg(long, requires = "jwt_secret")]
    user: Option<String>,
    /// The server's HS256 secret (`CHAT_JWT_SECRET`), used with --user.
    #[arg(long, env = "CHAT_JWT_SECRET", hide_env_values = true)]
    jwt_secret: Option<String>,
    /// Where `s` (save) puts downloaded media.
    #[arg(long, default_value = ".")]
    download_dir: PathBuf,
    /// Ring the terminal bell when a message arrives in a conversation you are not
    /// looking at.
    #[arg(long, env = "CHAT_TUI_BELL", default_value_t = true, action = clap::ArgAction::Set)]
    bell: bool,
    /// Desktop notifications through the terminal: `osc777` (urxvt, foot, kitty, wezterm,
    /// VTE terminals), `osc9` (iTerm2, Windows Terminal, kitty), or `off`.
    #[arg(long, env = "CHAT_TUI_NOTIFY", default_value = "off")]
    notify: notify::Desktop,
    /// Show the unread total in the terminal window's title.
    #[arg(long, env = "CHAT_TUI_TITLE", default_value_t = true, action = clap::ArgAction::Set)]
    title: bool,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Drive three users through every REST call and WebSocket event (bad input and a
    /// reconnect included); print a pass/fail table; exit 1 if anything failed.
    Check(check::CheckArgs),
}

/// A stable user id for a username, so `--user alice` is the same user every time.
fn user_id_for(username: &str) -> chat_protocol::UserId {
    const NAMESPACE: uuid::Uuid = uuid::Uuid::from_u128(0x6c1f_0a52_3c1e_4f7b_9d0e_5a7c_2b1d_4e60);
    uuid::Uuid::new_v5(&NAMESPACE, username.as_bytes()).into()
}

fn main() -> anyhow::Result<()> {
    let cli = Cli::parse();
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()?;
    match cli.command {
        Some(Command::Check(args)) => {
            if !runtime.block_on(check::run(args))? {
                std::process::exit(1);
            }
            Ok(())
        }
        None => {
            let token = match (cli.token, cli.user, cli.jwt_secret) {
                (Some(t), _, _) => t,
                (None, Some(user), Some(secret)) => {
                    chat_client::mint_token_for(&secret, user_id_for(&user), &user, 30 * 24 * 3600)
                        .map_err(anyhow::Error::msg)?
                }
                _ => anyhow::bail!("give --token TOKEN, or --user NAME with --jwt-secret SECRET"),
            };
            let client = chat_client::Client::new(&cli.server, &token).context("client")?;
            let notices = notify::Notices {
                bell: cli.bell,
                desktop: cli.notify,
                title: cli.title,
            };
            runtime.block_on(interactive::run(client, cli.download_dir, notices))
        }
    }
}
