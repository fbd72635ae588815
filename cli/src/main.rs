//! `chatctl`: the operators' tool. Same configuration as chatd (flags and `CHAT_*`
//! environment variables), same storage code (the chat-server library), never its own SQL.

use anyhow::{bail, Context, Result};
use chat_protocol::{units as parse, UserId};
use chat_server::auth::JwtKeys;
use chat_server::domain::types::{now, Username};
use chat_server::ratelimit::Action;
use chat_server::store::{self, DynStore, RateLimitSetting};
use chat_server::CommonConfig;
use clap::{Parser, Subcommand};

#[derive(Debug, Parser)]
#[command(
    name = "chatctl",
    version,
    about = "Operate a chatd deployment: migrations, users, tokens, rate limits"
)]
struct Cli {
    #[command(flatten)]
    common: CommonConfig,
    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Apply or list database migrations.
    Migrate {
        #[command(subcommand)]
        action: Option<MigrateAction>,
    },
    /// Mint JWTs that chatd accepts.
    Token {
        #[command(subcommand)]
        action: TokenAction,
    },
    /// List, add and inspect users.
    Users {
        #[command(subcommand)]
        action: UsersAction,
    },
    /// Show and tune per-user rate limits; running servers pick changes up within seconds.
    Ratelimit {
        #[command(subcommand)]
        action: RatelimitAction,
    },
}

#[derive(Debug, Subcommand)]
enum MigrateAction {
    /// Apply every pending migration (the default).
    Up,
    /// List migrations and whether each is applied.
    Status,
}

#[derive(Debug, Subcommand)]
enum TokenAction {
    /// Print a token for USERNAME (the user is created if it does not exist yet).
    Issue {
        username: String,
        /// Lifetime, e.g. `30m`, `24h`, `7d`.
        #[arg(long, default_value = "24h", allow_hyphen_values = true)]
        ttl: String,
    },
}

#[derive(Debug, Subcommand)]
enum UsersAction {
    /// List users alphabetically.
    List {
        #[arg(long, default_value_t = 100)]
        limit: u32,
        /// Start after this username.
        #[arg(long)]
        after: Option<String>,
    },
    /// Create a user (prints its id).
    Add { username: String },
    /// Show one user.
    Show { username: String },
}

#[derive(Debug, Subcommand)]
enum RatelimitAction {
    /// Show the limits in force.
    List,
    /// Set ACTION to N/PERIOD, e.g. `send_message 30/min` (periods: s, min, h, day).
    Set {
        action: String,
        #[arg(allow_hyphen_values = true)]
        rate: String,
    },
    /// Restore the SPEC default for ACTION, or for every action.
    Reset { action: Option<String> },
}

#[tokio::main]
async fn main() {
    let cli = Cli::parse();
    if let Err(e) = run(cli).await {
        eprintln!("chatctl: {e:#}");
        std::process::exit(1);
    }
}

async fn open(common: &CommonConfig) -> Result<DynStore> {
    let url = common.effective_database_url();
    store::connect(&url, 2)
        .await
        .with_context(|| format!("cannot open database {}", redact(&url)))
}

/// Hide a password in a URL before printing it.
fn redact(url: &str) -> String {
    match (url.find("://"), url.rfind('@')) {
        (Some(s), Some(at)) if at > s => format!("{}://***@{}", &url[..s], &url[at + 1..]),
        _ => url.to_string(),
    }
}

async fn run(cli: Cli) -> Result<()> {
    match cli.command {
        Command::Migrate { action } => {
            let store = open(&cli.common).await?;
            match action.unwrap_or(MigrateAction::Up) {
                MigrateAction::Up => {
                    store.migrate().await?;
                    println!("migrations applied ({})", store.backend());
                }
                MigrateAction::Status => {
                    for (version, description, applied) in store.migration_status().await? {
                        let mark = if applied { "applied" } else { "pending" };
                        println!("{version}  {mark:8}  {description}");
                    }
                }
            }
        }
        Command::Token {
            action: TokenAction::Issue { username, ttl },
        } => {
            let ttl = parse::duration(&ttl)?;
            let keys = JwtKeys::load(&cli.common)?;
            let store = open(&cli.common).await?;
            store.migrate().await?;
            let name = Username::parse(&username).map_err(|e| anyhow::anyhow!("{e}"))?;
            let user = match store.user_by_username(name.as_str()).await? {
                Some(u) => u,
                None => {
                    let u = store
                        .upsert_user(UserId::new(), name.as_str(), now())
                        .await?;
                    eprintln!("created user {} ({})", u.username, u.id);
                    u
                }
            };
            let ttl = chrono::Duration::from_std(ttl).context("ttl too large")?;
            println!("{}", keys.issue(user.id, &user.username, ttl)?);
        }
        Command::Users { action } => {
            let store = open(&cli.common).await?;
            match action {
                UsersAction::List { limit, after } => {
                    for u in store.list_users(after.as_deref(), limit).await? {
                        println!(
                            "{}  {}  created {}",
                            u.id,
                            u.username,
                            u.created_at.to_rfc3339()
                        );
                    }
                }
                UsersAction::Add { username } => {
                    store.migrate().await?;
                    let name = Username::parse(&username).map_err(|e| anyhow::anyhow!("{e}"))?;
                    if store.user_by_username(name.as_str()).await?.is_some() {
                        bail!("user {name} already exists");
                    }
                    let u = store
                        .upsert_user(UserId::new(), name.as_str(), now())
                        .await?;
                    println!("{}  {}", u.id, u.username);
                }
                UsersAction::Show { username } => {
                    let name = Username::parse(&username).map_err(|e| anyhow::anyhow!("{e}"))?;
                    let Some(u) = store.user_by_username(name.as_str()).await? else {
                        bail!("no user named {name}");
                    };
                    let json = serde_json::json!({
                        "id": u.id, "username": u.username, "display_name": u.display_name,
                        "created_at": u.created_at, "last_seen_at": u.last_seen_at,
                    });
                    println!("{}", serde_json::to_string_pretty(&json)?);
                }
            }
        }
        Command::Ratelimit { action } => {
            let store = open(&cli.common).await?;
            match action {
                RatelimitAction::List => {
                    for (name, s) in store.rate_limits().await? {
                        println!("{name:22} {}/{}s", s.max_requests, s.period_seconds);
                    }
                }
                RatelimitAction::Set { action, rate } => {
                    let a = Action::parse(&action).with_context(|| {
                        format!("unknown action {action:?}; one of: {}", action_names())
                    })?;
                    let (max_requests, period_seconds) = parse::rate(&rate)?;
                    store
                        .set_rate_limit(
                            a.as_str(),
                            RateLimitSetting {
                                max_requests,
                                period_seconds,
                            },
                        )
                        .await?;
                    println!("{} = {max_requests}/{period_seconds}s", a.as_str());
                }
                RatelimitAction::Reset { action } => {
                    let actions: Vec<Action> = match action {
                        Some(name) => vec![Action::parse(&name).with_context(|| {
                            format!("unknown action {name:?}; one of: {}", action_names())
                        })?],
                        None => Action::ALL.to_vec(),
                    };
                    for a in actions {
                        let d = a.default_setting();
                        store.set_rate_limit(a.as_str(), d).await?;
                        println!("{} = {}/{}s", a.as_str(), d.max_requests, d.period_seconds);
                    }
                }
            }
        }
    }
    Ok(())
}

fn action_names() -> String {
    Action::ALL
        .iter()
        .map(|a| a.as_str())
        .collect::<Vec<_>>()
        .join(", ")
}
