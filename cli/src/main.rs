//! `chatctl`: the operators' tool. Same configuration as chatd (flags and `CHAT_*`
//! environment variables), same storage code (the chat-server library), never its own SQL.

use std::io::{BufRead, IsTerminal, Write};
use std::time::Duration;

use anyhow::{bail, Context, Result};
use chat_protocol::{units as parse, ConversationId, UserId};
use chat_server::admin::{self, PurgeReport, Purger, Verdict};
use chat_server::auth::JwtKeys;
use chat_server::media::{self, storage::DynStorage};
use chat_server::model::{now, Username};
use chat_server::ratelimit::Action;
use chat_server::store::{self, DynStore, PurgeCount, PurgeScope, RateLimitSetting};
use chat_server::CommonConfig;
use clap::{Parser, Subcommand};
use indicatif::{ProgressBar, ProgressStyle};

mod purge;
use chat_protocol::units::human_bytes;
use purge::purge;

#[derive(Debug, Parser)]
#[command(
    name = "chatctl",
    version,
    about = "Operate a chatd deployment: migrations, users, tokens, rate limits, purges, stats"
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
    /// Delete data: old messages, a user, a conversation, orphaned media. Safe on a live
    /// server (small batches); `--dry-run` first shows what would go.
    Purge {
        #[command(flatten)]
        opts: PurgeOpts,
        #[command(subcommand)]
        what: PurgeWhat,
    },
    /// Counts: users, conversations, messages by type, media, online users, last hour.
    Stats {
        /// Print JSON instead of a table.
        #[arg(long)]
        json: bool,
        /// chatd to ask for online users when Redis is not configured (embedded mode).
        #[arg(long, env = "CHAT_PUBLIC_URL", default_value = "http://127.0.0.1:8080")]
        server: String,
    },
    /// Check database, migrations, the search index, Redis, media storage and JWT
    /// configuration.
    Doctor {
        /// Rebuild the search index from the messages first (after a failed `search`
        /// check, or after a `VACUUM` of a SQLite database).
        #[arg(long)]
        rebuild_search: bool,
    },
}

#[derive(Debug, clap::Args)]
struct PurgeOpts {
    /// Show what would be removed and change nothing.
    #[arg(long, global = true)]
    dry_run: bool,
    /// Do not ask for confirmation.
    #[arg(long, short = 'y', global = true)]
    yes: bool,
    /// Messages per transaction.
    #[arg(long, global = true, default_value_t = 500, value_parser = clap::value_parser!(u32).range(1..=10_000))]
    batch_size: u32,
}

#[derive(Debug, Subcommand)]
enum PurgeWhat {
    /// Retention: delete messages older than a duration, with their media.
    Messages {
        /// e.g. `365d`, `90d`, `12h`.
        #[arg(long, allow_hyphen_values = true)]
        older_than: String,
        /// Only in this conversation.
        #[arg(long)]
        conversation: Option<String>,
    },
    /// Erase a user: their messages and media, blocks, push subscriptions; the account
    /// becomes a tombstone (`deleted-…`) whose tokens are refused. The other side keeps
    /// the conversation and their own messages.
    User { username: String },
    /// Delete a conversation with all its messages and media.
    Conversation { id: String },
    /// Delete media objects that no message references.
    Media {
        /// Required: the only media purge there is (say it explicitly).
        #[arg(long, required = true)]
        orphaned: bool,
        /// Leave objects younger than this (an upload may be about to get its message).
        #[arg(long, default_value = "1h", allow_hyphen_values = true)]
        min_age: String,
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
        Command::Purge { opts, what } => purge(&cli.common, &opts, what).await?,
        Command::Stats { json, server } => stats(&cli.common, json, &server).await?,
        Command::Doctor { rebuild_search } => {
            if rebuild_search {
                rebuild_search_index(&cli.common).await?;
            }
            doctor(&cli.common).await?
        }
        Command::Ratelimit { action } => {
            let store = open(&cli.common).await?;
            match action {
                RatelimitAction::List => {
                    for (name, s) in store.rate_limits().await? {
                        println!("{name:22} {}/{}s", s.max_requests, s.period_seconds);
                    }
                    // Caps are configuration, not table rows: these are the values this
                    // environment gives chatd (the same variables).
                    println!("\nstanding caps per user (chatd's environment):");
                    for (name, value, var) in cli.common.caps.rows() {
                        println!("{name:22} {value:<10} {var}");
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

fn conversation_id(raw: &str) -> Result<ConversationId> {
    uuid::Uuid::parse_str(raw.trim())
        .map(ConversationId)
        .map_err(|_| anyhow::anyhow!("{raw:?} is not a conversation id (a UUID)"))
}

fn open_storage(common: &CommonConfig) -> Result<DynStorage> {
    // Purges never make URLs, so the URL-signing key does not matter here.
    let (storage, _) = media::open_storage(common, b"chatctl")?;
    Ok(storage)
}

async fn stats(common: &CommonConfig, json: bool, server: &str) -> Result<()> {
    let store = open(common).await?;
    let s = store.stats(now()).await?;
    let (online, source) = match common.redis_url.as_deref().filter(|u| !u.is_empty()) {
        Some(url) => match admin::online_users_redis(url, &common.redis_prefix).await {
            Ok(n) => (Some(n), "redis".to_string()),
            Err(e) => (None, format!("redis unavailable: {e}")),
        },
        None => match online_from_server(server).await {
            Ok(n) => (Some(n), format!("chatd at {server}")),
            Err(e) => (None, format!("chatd at {server} unavailable: {e:#}")),
        },
    };
    if json {
        let mut v = serde_json::to_value(&s)?;
        v["online_users"] = serde_json::json!(online);
        v["online_source"] = serde_json::json!(source);
        println!("{}", serde_json::to_string_pretty(&v)?);
        return Ok(());
    }
    let total: u64 = s.messages_by_type.values().sum();
    println!(
        "users               {} (+{} erased)",
        s.users, s.erased_users
    );
    println!("conversations       {}", s.conversations);
    println!("messages            {total}");
    for (kind, n) in &s.messages_by_type {
        println!("  {kind:17} {n}");
    }
    println!("messages last hour  {}", s.messages_last_hour);
    println!(
        "changes             {} edited, {} deleted for everyone, {} reactions",
        s.edited_messages, s.deleted_messages, s.reactions
    );
    println!(
        "media               {} objects, {}",
        s.media_objects,
        human_bytes(s.media_bytes)
    );
    match online {
        Some(n) => println!("online now          {n} ({source})"),
        None => println!("online now          unknown ({source})"),
    }
    Ok(())
}

/// Embedded mode keeps presence in chatd's memory: read its `/metrics`.
async fn online_from_server(server: &str) -> Result<u64> {
    let url = format!("{}/metrics", server.trim_end_matches('/'));
    let body = reqwest::Client::builder()
        .timeout(Duration::from_secs(3))
        .build()?
        .get(&url)
        .send()
        .await?
        .error_for_status()?
        .text()
        .await?;
    body.lines()
        .find_map(|l| l.strip_prefix("chat_ws_users "))
        .and_then(|v| v.trim().parse().ok())
        .context("no chat_ws_users in /metrics")
}

async fn rebuild_search_index(common: &CommonConfig) -> Result<()> {
    let store = open(common).await?;
    let spinner = indicatif::ProgressBar::new_spinner()
        .with_message("rebuilding the search index from the messages");
    spinner.enable_steady_tick(Duration::from_millis(120));
    let started = std::time::Instant::now();
    let result = store.rebuild_search_index().await;
    spinner.finish_and_clear();
    store.close().await;
    result?;
    println!(
        "search index rebuilt in {:.1} s",
        started.elapsed().as_secs_f64()
    );
    Ok(())
}

async fn doctor(common: &CommonConfig) -> Result<()> {
    let checks = admin::doctor(common).await;
    let mut failed = 0;
    for c in &checks {
        let mark = match c.verdict {
            Verdict::Ok => "ok  ",
            Verdict::Warn => "WARN",
            Verdict::Fail => {
                failed += 1;
                "FAIL"
            }
        };
        println!("{mark}  {:11} {}", c.name, c.detail);
    }
    if failed > 0 {
        bail!("{failed} of {} checks failed", checks.len());
    }
    println!("all checks passed");
    Ok(())
}
