//! `chat-tui`: terminal client for chatd (ratatui). `chat-tui check` runs the scripted
//! end-to-end check of every call and event against a live server.

mod app;
mod check;
mod config;
mod interactive;
mod keymap;
mod notify;
mod ui;

use std::path::PathBuf;

use anyhow::Context;
use clap::parser::ValueSource;
use clap::{CommandFactory, FromArgMatches, Parser, Subcommand};

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
    #[arg(long)]
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
    /// Settings file (TOML) with defaults for these options; by default
    /// `$XDG_CONFIG_HOME/chat-tui/config.toml` (or `~/.config/chat-tui/config.toml`), used
    /// when it exists. Flags and environment variables win over it.
    #[arg(long, env = "CHAT_TUI_CONFIG")]
    config: Option<PathBuf>,
    /// Show the unread total in the terminal window's title.
    #[arg(long, env = "CHAT_TUI_TITLE", default_value_t = true, action = clap::ArgAction::Set)]
    title: bool,
    /// Colours, from the settings file's `[colours]` table.
    #[arg(skip)]
    theme: app::Theme,
    /// Key bindings, from the settings file's `[keys]` table.
    #[arg(skip)]
    keys: keymap::Keymap,
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

/// The command line, with the settings file filling in what neither a flag nor its
/// environment variable gave.
fn parse_cli() -> anyhow::Result<Cli> {
    let matches = Cli::command().get_matches();
    let cli = Cli::from_arg_matches(&matches)?;
    let home = std::env::var("HOME").ok();
    let (path, required) = match &cli.config {
        Some(p) => (Some(p.clone()), true),
        None => (
            config::default_path(
                std::env::var("XDG_CONFIG_HOME").ok().as_deref(),
                home.as_deref(),
            ),
            false,
        ),
    };
    let file = match path {
        Some(path) => config::load(&path, required)?,
        None => config::FileConfig::default(),
    };
    with_file(cli, &matches, &file, home.as_deref())
}

/// `cli` with `file`'s values where the option was not given on the command line or in
/// its environment variable.
fn with_file(
    mut cli: Cli,
    matches: &clap::ArgMatches,
    file: &config::FileConfig,
    home: Option<&str>,
) -> anyhow::Result<Cli> {
    let given = |id: &str| {
        matches!(
            matches.value_source(id),
            Some(ValueSource::CommandLine | ValueSource::EnvVariable)
        )
    };
    if !given("server") {
        if let Some(s) = &file.server {
            cli.server = s.clone();
        }
    }
    if cli.token.is_none() && cli.user.is_none() {
        cli.token = file.token.clone();
        if cli.token.is_none() {
            cli.user = file.user.clone();
        }
    }
    if cli.jwt_secret.is_none() {
        cli.jwt_secret = file.jwt_secret.clone();
    }
    if !given("download_dir") {
        if let Some(d) = &file.download_dir {
            cli.download_dir = config::expand_home(d, home.map(std::ffi::OsStr::new));
        }
    }
    if !given("bell") {
        cli.bell = file.bell.unwrap_or(cli.bell);
    }
    if !given("title") {
        cli.title = file.title.unwrap_or(cli.title);
    }
    if !given("notify") {
        cli.notify = file.desktop()?.unwrap_or(cli.notify);
    }
    cli.theme = config::theme(file)?;
    if let Some(table) = &file.keys {
        cli.keys = keymap::Keymap::from_table(table).map_err(|e| anyhow::anyhow!("config: {e}"))?;
    }
    Ok(cli)
}

fn main() -> anyhow::Result<()> {
    let cli = parse_cli()?;
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
            runtime.block_on(interactive::run(
                client,
                cli.download_dir,
                notices,
                cli.theme,
                cli.keys,
            ))
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn cli_with(args: &[&str], file: &str) -> Cli {
        let matches = Cli::command()
            .try_get_matches_from(std::iter::once("chat-tui").chain(args.iter().copied()))
            .expect("arguments");
        let cli = Cli::from_arg_matches(&matches).expect("cli");
        let file = config::parse(file).expect("config");
        with_file(cli, &matches, &file, Some("/home/a")).expect("merged")
    }

    /// Issue 18: the settings file fills in; a flag wins over it.
    #[test]
    fn flags_win_over_the_file_and_the_file_over_defaults() {
        let file = r#"
            server = "https://chat.example.org"
            user = "alice"
            jwt_secret = "s"
            download_dir = "~/Downloads"
            bell = false
            notify = "osc9"
        "#;
        let c = cli_with(&[], file);
        assert_eq!(c.server, "https://chat.example.org");
        assert_eq!(c.user.as_deref(), Some("alice"));
        assert_eq!(c.download_dir, PathBuf::from("/home/a/Downloads"));
        assert!(!c.bell);
        assert_eq!(c.notify, notify::Desktop::Osc9);
        assert!(c.title, "not in the file: the default");
        let c = cli_with(
            &[
                "--server",
                "http://127.0.0.1:9",
                "--bell",
                "true",
                "--token",
                "t",
            ],
            file,
        );
        assert_eq!(c.server, "http://127.0.0.1:9");
        assert!(c.bell);
        assert_eq!(
            (c.token.as_deref(), c.user.as_deref()),
            (Some("t"), None),
            "a token given wins over the file's user"
        );
    }

    /// Issue 18: `[keys]` and `hyperlinks` come from the file; a bad key table stops the
    /// start with the reason.
    #[test]
    fn keys_and_hyperlinks_come_from_the_file() {
        let c = cli_with(&[], "hyperlinks = false\n[keys]\nreply = \"R\"\n");
        assert!(!c.theme.hyperlinks);
        assert_eq!(c.keys.label(keymap::KeyAction::Reply), "R");
        let c = cli_with(&[], "");
        assert!(c.theme.hyperlinks, "on by default");
        assert_eq!(c.keys, keymap::Keymap::default());
        let matches = Cli::command()
            .try_get_matches_from(["chat-tui"])
            .expect("arguments");
        let cli = Cli::from_arg_matches(&matches).expect("cli");
        let file = config::parse("[keys]\nhelp = \"h\"\n").expect("config");
        let e = with_file(cli, &matches, &file, None)
            .unwrap_err()
            .to_string();
        assert!(e.contains("keys.help"), "{e}");
    }
}
