//! Users of a run: their servers, their tokens, provisioning, and pairing into conversations.

use std::net::SocketAddr;
use std::sync::Arc;

use anyhow::{bail, Context, Result};
use chat_client::PageQuery;
use chat_protocol::auth::Claims;
use chat_protocol::{ConversationId, UserId};
use indicatif::ProgressStyle;
use tokio::sync::Semaphore;

use crate::args::RunArgs;
use crate::net;
use crate::run::Ctx;

/// One chatd instance: its base URL, and the address and `host:port` its sockets dial.
pub(crate) struct Server {
    pub(crate) base: String,
    pub(crate) addr: SocketAddr,
    pub(crate) hostport: String,
}

impl Server {
    /// Resolve a `--server` URL.
    pub(crate) async fn resolve(url: &str) -> Result<Self> {
        let (addr, hostport) = net::resolve(url).await?;
        Ok(Server {
            base: url.trim_end_matches('/').to_string(),
            addr,
            hostport,
        })
    }
}

/// One synthetic user.
#[derive(Debug, Clone)]
pub(crate) struct User {
    pub(crate) id: UserId,
    pub(crate) username: String,
    pub(crate) token: String,
    pub(crate) server: usize,
    /// Conversation with the partner, and the partner's index.
    pub(crate) pair: Option<(ConversationId, usize)>,
}

/// The run's users: read from --tokens, or minted with --jwt-secret (user i on server
/// i mod `servers`).
pub(crate) fn make_users(args: &RunArgs, run_tag: &str, servers: usize) -> Result<Vec<User>> {
    let mut users = Vec::with_capacity(args.users);
    if let Some(path) = &args.tokens {
        let text = std::fs::read_to_string(path).with_context(|| format!("cannot read {path}"))?;
        let mut validation = jsonwebtoken::Validation::default();
        validation.insecure_disable_signature_validation();
        validation.validate_exp = false;
        for (n, line) in text
            .lines()
            .map(str::trim)
            .filter(|l| !l.is_empty() && !l.starts_with('#'))
            .enumerate()
            .take(args.users)
        {
            let data = jsonwebtoken::decode::<Claims>(
                line,
                &jsonwebtoken::DecodingKey::from_secret(b""),
                &validation,
            )
            .with_context(|| format!("{path}: token {} is not a JWT with sub/username", n + 1))?;
            let id: UserId = data
                .claims
                .sub
                .parse()
                .with_context(|| format!("{path}: token {}: sub is not a UUID", n + 1))?;
            users.push(User {
                id,
                username: data.claims.username,
                token: line.to_string(),
                server: n % servers,
                pair: None,
            });
        }
        if users.len() < args.users {
            bail!(
                "{path} holds {} tokens, fewer than --users {}",
                users.len(),
                args.users
            );
        }
        return Ok(users);
    }
    let Some(secret) = &args.jwt_secret else {
        bail!("give --jwt-secret (or CHAT_JWT_SECRET) to mint tokens, or --tokens FILE");
    };
    let prefix = args
        .prefix
        .clone()
        .unwrap_or_else(|| format!("lg_{run_tag}_"));
    // One `exp` for every user: the ttl is taken from it at each mint.
    let exp = chrono::Utc::now().timestamp()
        + (args.duration + args.ramp + args.drain).as_secs() as i64
        + 3600;
    for i in 0..args.users {
        let id = UserId::new();
        let username = format!("{prefix}{i}");
        let ttl = exp - chrono::Utc::now().timestamp();
        let token =
            chat_client::mint_token_for(secret, id, &username, ttl).map_err(anyhow::Error::msg)?;
        users.push(User {
            id,
            username,
            token,
            server: i % servers,
            pair: None,
        });
    }
    Ok(users)
}

/// Provision every user: its first authenticated request (`GET /chat/blocks`) creates it.
pub(crate) async fn provision(ctx: &Ctx, users: &[User], concurrency: usize) -> Result<()> {
    let progress = &ctx.progress;
    progress.set_style(ProgressStyle::with_template(
        "{prefix:>10} [{bar:40}] {pos}/{len} {msg}",
    )?);
    progress.set_prefix("provision");
    progress.set_length(users.len() as u64);
    progress.set_position(0);
    let base_of = |u: &User| ctx.servers[u.server].base.clone();
    let sem = Arc::new(Semaphore::new(concurrency.max(1)));
    let mut set = tokio::task::JoinSet::new();
    for u in users {
        let api = chat_client::Client::with_http(ctx.http.clone(), &base_of(u), &u.token);
        let permit = sem.clone().acquire_owned().await?;
        set.spawn(async move {
            let _permit = permit;
            api.blocks(&PageQuery::limit(1))
                .await
                .map(drop)
                .map_err(|e| e.to_string())
        });
        while let Some(done) = set.try_join_next() {
            done?.map_err(|e| anyhow::anyhow!("provisioning a user failed: {e}"))?;
            progress.inc(1);
        }
    }
    while let Some(done) = set.join_next().await {
        done?.map_err(|e| anyhow::anyhow!("provisioning a user failed: {e}"))?;
        progress.inc(1);
    }
    Ok(())
}

/// Pair the users two by two (0 with 1, 2 with 3, ...) into direct conversations.
pub(crate) async fn pair(ctx: &Ctx, users: &mut [User], concurrency: usize) -> Result<()> {
    let progress = &ctx.progress;
    progress.set_prefix("pair");
    progress.set_length((users.len() / 2) as u64);
    progress.set_position(0);
    let base_of = |u: &User| ctx.servers[u.server].base.clone();
    let sem = Arc::new(Semaphore::new(concurrency.max(1)));
    let mut pair_set = tokio::task::JoinSet::new();
    for i in (0..users.len() - 1).step_by(2) {
        let api =
            chat_client::Client::with_http(ctx.http.clone(), &base_of(&users[i]), &users[i].token);
        let other = users[i + 1].username.clone();
        let permit = sem.clone().acquire_owned().await?;
        pair_set.spawn(async move {
            let _permit = permit;
            let c = api
                .conversation_with(&other)
                .await
                .map_err(|e| e.to_string())?;
            Ok::<_, String>((i, c.id))
        });
    }
    while let Some(done) = pair_set.join_next().await {
        let (i, conv) = done?.map_err(|e| anyhow::anyhow!("pairing users failed: {e}"))?;
        users[i].pair = Some((conv, i + 1));
        users[i + 1].pair = Some((conv, i));
        progress.inc(1);
    }
    Ok(())
}
