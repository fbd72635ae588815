//! Operations behind `chatctl`: purges, orphaned-media scans and the doctor's checks.
//! They live in the library so the CLI stays a thin shell and tests can drive them too.

use std::collections::HashSet;
use std::time::{Duration, Instant};

use chat_protocol::{ConversationId, UserId};
use chrono::{DateTime, Utc};

use crate::media::storage::{is_valid_key, new_key, DynStorage, ObjectInfo};
use crate::store::{media_keys, DynStore, ErasedUser, PurgeScope, PurgedBatch, StoreError};

#[derive(Debug, thiserror::Error)]
pub enum AdminError {
    #[error(transparent)]
    Store(#[from] StoreError),
    #[error(transparent)]
    Storage(#[from] crate::media::storage::StorageError),
}

pub type AdminResult<T> = Result<T, AdminError>;

/// What a purge removed.
#[derive(Debug, Clone, Default, PartialEq, Eq, serde::Serialize)]
pub struct PurgeReport {
    pub messages: u64,
    pub media_objects_deleted: u64,
    /// Objects whose deletion failed (left for `purge media --orphaned`).
    pub media_objects_failed: u64,
    pub conversations: u64,
    pub blocks: u64,
    pub push_subscriptions: u64,
}

/// Deletes in small transactions with a pause between them, so a live chatd keeps
/// writing (SQLite has one writer; PostgreSQL row locks stay short).
pub struct Purger {
    store: DynStore,
    storage: DynStorage,
    pub batch: u32,
    pub pause: Duration,
}

impl Purger {
    pub fn new(store: DynStore, storage: DynStorage) -> Self {
        Purger {
            store,
            storage,
            batch: 500,
            pause: Duration::from_millis(10),
        }
    }

    /// Delete every message of `scope`, batch by batch, then their media objects.
    /// `progress` gets the number of messages each batch removed.
    pub async fn messages(
        &self,
        scope: PurgeScope,
        progress: &mut (dyn FnMut(u64) + Send),
    ) -> AdminResult<PurgeReport> {
        let mut report = PurgeReport::default();
        loop {
            let batch = self.store.purge_messages(scope, self.batch).await?;
            if batch.messages == 0 {
                break;
            }
            report.messages += batch.messages;
            self.delete_media(&batch, &mut report).await;
            progress(batch.messages);
            tokio::time::sleep(self.pause).await;
        }
        Ok(report)
    }

    /// Delete a conversation: its messages in batches, then the row itself.
    /// `Ok(None)` if no such conversation exists.
    pub async fn conversation(
        &self,
        id: ConversationId,
        progress: &mut (dyn FnMut(u64) + Send),
    ) -> AdminResult<Option<PurgeReport>> {
        if self.store.conversation(id).await?.is_none() {
            return Ok(None);
        }
        let mut report = self
            .messages(PurgeScope::Conversation(id), progress)
            .await?;
        // Messages sent between the last batch and now go with the row.
        if let Some(rest) = self.store.delete_conversation(id).await? {
            report.messages += rest.messages;
            report.conversations = 1;
            self.delete_media(&rest, &mut report).await;
            progress(rest.messages);
        }
        Ok(Some(report))
    }

    /// Erase a user: their messages and media, then the tombstone (blocks, push
    /// subscriptions, conversations whose other side is erased too).
    pub async fn user(
        &self,
        id: UserId,
        progress: &mut (dyn FnMut(u64) + Send),
    ) -> AdminResult<PurgeReport> {
        let mut report = self.messages(PurgeScope::SentBy(id), progress).await?;
        let ErasedUser {
            blocks,
            push_subscriptions,
            conversations,
        } = self.store.erase_user(id, Utc::now()).await?;
        report.blocks = blocks;
        report.push_subscriptions = push_subscriptions;
        report.conversations = conversations;
        // A session still open during the first pass may have sent more; the tombstone
        // refuses new ones, so one more pass leaves nothing behind.
        let late = self.messages(PurgeScope::SentBy(id), progress).await?;
        report.messages += late.messages;
        report.media_objects_deleted += late.media_objects_deleted;
        report.media_objects_failed += late.media_objects_failed;
        Ok(report)
    }

    async fn delete_media(&self, batch: &PurgedBatch, report: &mut PurgeReport) {
        for key in media_keys(&batch.media).filter(|k| is_valid_key(k)) {
            match self.storage.delete(key).await {
                Ok(()) => report.media_objects_deleted += 1,
                Err(e) => {
                    tracing::warn!(key, error = %e, "could not delete a media object");
                    report.media_objects_failed += 1;
                }
            }
        }
    }
}

/// Objects in the store that no message references and that are older than `min_age`
/// (younger ones may belong to an upload whose message is being written right now).
pub async fn orphaned_media(
    store: &DynStore,
    storage: &DynStorage,
    min_age: Duration,
    now: DateTime<Utc>,
) -> AdminResult<Vec<ObjectInfo>> {
    // List first: an object uploaded after the listing cannot be wrongly judged.
    let objects = storage.list().await?;
    let mut referenced: HashSet<String> = HashSet::new();
    let mut after = None;
    loop {
        let (media, next) = store.media_page(after, 1000).await?;
        referenced.extend(media_keys(&media).map(str::to_string));
        match next {
            Some(n) => after = Some(n),
            None => break,
        }
    }
    let cutoff = now - chrono::Duration::from_std(min_age).unwrap_or(chrono::Duration::MAX);
    Ok(objects
        .into_iter()
        .filter(|o| is_valid_key(&o.key) && !referenced.contains(&o.key))
        .filter(|o| o.modified.is_none_or(|m| m < cutoff))
        .collect())
}

/// The verdict of one doctor check.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Verdict {
    Ok,
    Warn,
    Fail,
}

#[derive(Debug, Clone, serde::Serialize)]
pub struct Check {
    pub name: &'static str,
    pub verdict: Verdict,
    pub detail: String,
}

impl Check {
    fn new(name: &'static str, verdict: Verdict, detail: impl Into<String>) -> Self {
        Check {
            name,
            verdict,
            detail: detail.into(),
        }
    }
}

/// Everything `chatctl doctor` looks at, in order: database, migrations, Redis, media
/// storage, JWT configuration. Nothing is changed except one probe object written to and
/// deleted from the media store, and, on SQLite, the search index's queue indexed before
/// the index is compared with the messages (what chatd does every 250 ms anyway).
pub async fn doctor(cfg: &crate::CommonConfig) -> Vec<Check> {
    let mut checks = Vec::new();
    let url = cfg.effective_database_url();
    let started = Instant::now();
    let store =
        match tokio::time::timeout(Duration::from_secs(5), crate::store::connect(&url, 1)).await {
            Ok(Ok(s)) => match s.ping().await {
                Ok(()) => {
                    checks.push(Check::new(
                        "database",
                        Verdict::Ok,
                        format!(
                            "{} answers ({} ms)",
                            s.backend(),
                            started.elapsed().as_millis()
                        ),
                    ));
                    Some(s)
                }
                Err(e) => {
                    checks.push(Check::new("database", Verdict::Fail, e.to_string()));
                    None
                }
            },
            Ok(Err(e)) => {
                checks.push(Check::new("database", Verdict::Fail, e.to_string()));
                None
            }
            Err(_) => {
                checks.push(Check::new(
                    "database",
                    Verdict::Fail,
                    "no answer within 5 s",
                ));
                None
            }
        };
    checks.push(match &store {
        None => Check::new("migrations", Verdict::Fail, "database unreachable"),
        Some(s) => match s.migration_status().await {
            Err(e) => Check::new("migrations", Verdict::Fail, e.to_string()),
            Ok(list) => {
                let pending: Vec<String> = list
                    .iter()
                    .filter(|(_, _, applied)| !applied)
                    .map(|(v, d, _)| format!("{v} {d}"))
                    .collect();
                if pending.is_empty() {
                    Check::new(
                        "migrations",
                        Verdict::Ok,
                        format!("all {} applied", list.len()),
                    )
                } else {
                    Check::new(
                        "migrations",
                        Verdict::Warn,
                        format!(
                            "{} pending ({}); run `chatctl migrate up` (chatd also migrates \
                             on start unless CHAT_SKIP_MIGRATIONS is set)",
                            pending.len(),
                            pending.join(", ")
                        ),
                    )
                }
            }
        },
    });
    checks.push(match &store {
        None => Check::new("search", Verdict::Fail, "database unreachable"),
        Some(s) => match s.search_index_problem().await {
            Ok(None) => Check::new("search", Verdict::Ok, "the index matches the messages"),
            Ok(Some(problem)) => Check::new(
                "search",
                Verdict::Fail,
                format!("{problem}; run `chatctl doctor --rebuild-search`"),
            ),
            // Before the search migration the table is not there yet.
            Err(e) => Check::new("search", Verdict::Warn, e.to_string()),
        },
    });
    if let Some(s) = store {
        s.close().await;
    }
    checks.push(redis_check(cfg).await);
    checks.push(jwt_check(cfg));
    checks.push(media_check(cfg).await);
    checks
}

async fn redis_check(cfg: &crate::CommonConfig) -> Check {
    let Some(url) = cfg.redis_url.as_deref().filter(|u| !u.is_empty()) else {
        return Check::new(
            "redis",
            Verdict::Ok,
            "not configured: presence, fan-out and rate limits stay in process (one instance)",
        );
    };
    let probe = async {
        let client = redis::Client::open(url)?;
        let mut conn = client.get_multiplexed_async_connection().await?;
        let started = Instant::now();
        let _: String = redis::cmd("PING").query_async(&mut conn).await?;
        Ok::<_, redis::RedisError>(started.elapsed())
    };
    match tokio::time::timeout(Duration::from_secs(5), probe).await {
        Ok(Ok(rtt)) => Check::new(
            "redis",
            Verdict::Ok,
            format!("PING answered in {} µs", rtt.as_micros()),
        ),
        Ok(Err(e)) => Check::new("redis", Verdict::Fail, e.to_string()),
        Err(_) => Check::new("redis", Verdict::Fail, "no answer within 5 s"),
    }
}

fn jwt_check(cfg: &crate::CommonConfig) -> Check {
    let file = cfg.data_dir.join("jwt_secret");
    if cfg.jwt_secret.is_none() && !file.exists() {
        return Check::new(
            "jwt",
            Verdict::Warn,
            format!(
                "no CHAT_JWT_SECRET and no {}: chatd will generate a secret on first start \
                 (set CHAT_JWT_SECRET when tokens come from elsewhere or several instances run)",
                file.display()
            ),
        );
    }
    match crate::auth::JwtKeys::load(cfg) {
        Err(e) => Check::new("jwt", Verdict::Fail, e.to_string()),
        Ok(_) => {
            let len = match &cfg.jwt_secret {
                Some(s) => s.len(),
                None => std::fs::read(&file).map_or(0, |b| b.len()),
            };
            let source = if cfg.jwt_secret.is_some() {
                "CHAT_JWT_SECRET".to_string()
            } else {
                file.display().to_string()
            };
            let public = cfg
                .jwt_public_key
                .as_ref()
                .map(|p| format!("; public key {} accepted", p.display()))
                .unwrap_or_default();
            if len < 32 {
                Check::new(
                    "jwt",
                    Verdict::Warn,
                    format!("secret from {source} is {len} bytes; use at least 32{public}"),
                )
            } else if cfg.jwt_secret.is_none() && cfg.redis_url.is_some() {
                Check::new(
                    "jwt",
                    Verdict::Warn,
                    format!(
                        "secret from {source}: with Redis (several instances) every instance \
                         needs the same CHAT_JWT_SECRET{public}"
                    ),
                )
            } else {
                Check::new(
                    "jwt",
                    Verdict::Ok,
                    format!("HS256 secret from {source} ({len} bytes){public}"),
                )
            }
        }
    }
}

async fn media_check(cfg: &crate::CommonConfig) -> Check {
    // The signing key only matters for URLs; a placeholder is fine for a round trip.
    let storage = match crate::media::open_storage(cfg, b"doctor") {
        Ok((s, _)) => s,
        Err(e) => return Check::new("media", Verdict::Fail, e.to_string()),
    };
    let probe = async {
        let dir = cfg.effective_media_dir();
        tokio::fs::create_dir_all(&dir).await?;
        let key = new_key("txt");
        let file = dir.join(format!("doctor-{key}"));
        tokio::fs::write(&file, b"chatctl doctor probe\n").await?;
        let put = storage.put(&key, &file, "text/plain").await;
        let _ = tokio::fs::remove_file(&file).await;
        put?;
        storage.delete(&key).await?;
        Ok::<_, crate::media::storage::StorageError>(())
    };
    match tokio::time::timeout(Duration::from_secs(20), probe).await {
        Ok(Ok(())) => Check::new(
            "media",
            Verdict::Ok,
            format!("{} store: wrote and deleted a probe object", storage.kind()),
        ),
        Ok(Err(e)) => Check::new(
            "media",
            Verdict::Fail,
            format!("{} store: {e}", storage.kind()),
        ),
        Err(_) => Check::new(
            "media",
            Verdict::Fail,
            format!("{} store: no answer within 20 s", storage.kind()),
        ),
    }
}

/// Users online across every instance, from the Redis presence keys.
pub async fn online_users_redis(url: &str, prefix: &str) -> redis::RedisResult<u64> {
    let client = redis::Client::open(url)?;
    let mut conn = client.get_multiplexed_async_connection().await?;
    let pattern = crate::realtime::redis_presence::online_key(prefix, "*");
    let mut cursor: u64 = 0;
    // SCAN may return a key twice while Redis rehashes: count distinct keys.
    let mut seen: HashSet<String> = HashSet::new();
    loop {
        let (next, keys): (u64, Vec<String>) = redis::cmd("SCAN")
            .arg(cursor)
            .arg("MATCH")
            .arg(&pattern)
            .arg("COUNT")
            .arg(1000)
            .query_async(&mut conn)
            .await?;
        seen.extend(keys);
        if next == 0 {
            return Ok(seen.len() as u64);
        }
        cursor = next;
    }
}
