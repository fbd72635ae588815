//! `chatctl purge …`: what a purge will remove (`--dry-run`), the confirmation, and the
//! batched deletion with its progress bar.

use super::*;

/// Ask on the terminal; without one, only `--yes` may delete.
fn confirm(opts: &PurgeOpts, question: &str) -> Result<()> {
    if opts.yes {
        return Ok(());
    }
    if !std::io::stdin().is_terminal() {
        bail!("refusing to delete without confirmation (stdin is not a terminal); pass --yes");
    }
    eprint!("{question} [y/N] ");
    std::io::stderr().flush()?;
    let mut answer = String::new();
    std::io::stdin().lock().read_line(&mut answer)?;
    if !matches!(answer.trim().to_lowercase().as_str(), "y" | "yes") {
        bail!("nothing deleted");
    }
    Ok(())
}

fn progress(total: u64, what: &'static str) -> ProgressBar {
    let bar = ProgressBar::new(total);
    if let Ok(style) =
        ProgressStyle::with_template("{msg} [{bar:40}] {pos}/{len} ({per_sec}, eta {eta})")
    {
        bar.set_style(style.progress_chars("=> "));
    }
    bar.set_message(what);
    bar
}

fn describe(c: &PurgeCount) -> String {
    format!(
        "{} messages and {} media objects ({})",
        c.messages,
        c.media_objects,
        human_bytes(c.media_bytes)
    )
}

fn summary(r: &PurgeReport) {
    println!(
        "deleted {} messages, {} media objects, {} conversations, {} blocks, {} push subscriptions",
        r.messages, r.media_objects_deleted, r.conversations, r.blocks, r.push_subscriptions
    );
    if r.media_objects_failed > 0 {
        println!(
            "{} media objects could not be deleted; `chatctl purge media --orphaned` retries them",
            r.media_objects_failed
        );
    }
}

pub(crate) async fn purge(common: &CommonConfig, opts: &PurgeOpts, what: PurgeWhat) -> Result<()> {
    let store = open(common).await?;
    let mut purger = Purger::new(store.clone(), open_storage(common)?);
    purger.batch = opts.batch_size;
    let (scope, headline) = match &what {
        PurgeWhat::Messages {
            older_than,
            conversation,
        } => {
            let age = parse::duration(older_than)?;
            let age = chrono::Duration::from_std(age).context("duration too large")?;
            let conversation = match conversation {
                Some(raw) => {
                    let id = conversation_id(raw)?;
                    if store.conversation(id).await?.is_none() {
                        bail!("no conversation {id}");
                    }
                    Some(id)
                }
                None => None,
            };
            let before = now() - age;
            let place = conversation.map_or(String::new(), |c| format!(" in conversation {c}"));
            (
                PurgeScope::OlderThan {
                    before,
                    conversation,
                },
                format!(
                    "messages older than {older_than} (before {}){place}",
                    before.to_rfc3339()
                ),
            )
        }
        PurgeWhat::User { username } => {
            let name = Username::parse(username).map_err(|e| anyhow::anyhow!("{e}"))?;
            let Some(u) = store.user_by_username(name.as_str()).await? else {
                bail!("no user named {name}");
            };
            (
                PurgeScope::SentBy(u.id),
                format!(
                    "user {name} ({}): the account becomes a tombstone; their blocks and push \
                     subscriptions go too; messages",
                    u.id
                ),
            )
        }
        PurgeWhat::Conversation { id } => {
            let id = conversation_id(id)?;
            if store.conversation(id).await?.is_none() {
                bail!("no conversation {id}");
            }
            (
                PurgeScope::Conversation(id),
                format!("conversation {id} and its"),
            )
        }
        PurgeWhat::Media {
            orphaned: _,
            min_age,
        } => {
            return purge_orphans(&store, common, opts, min_age).await;
        }
    };
    let count = store.purge_count(scope).await?;
    println!("{headline}: {}", describe(&count));
    if opts.dry_run {
        println!("dry run: nothing deleted");
        return Ok(());
    }
    confirm(opts, &format!("Delete {}?", describe(&count)))?;
    let bar = progress(count.messages, "messages");
    let mut tick = |n: u64| bar.inc(n);
    let report = match scope {
        PurgeScope::SentBy(id) => purger.user(id, &mut tick).await?,
        PurgeScope::Conversation(id) => purger
            .conversation(id, &mut tick)
            .await?
            .with_context(|| format!("conversation {id} disappeared"))?,
        PurgeScope::OlderThan { .. } => purger.messages(scope, &mut tick).await?,
    };
    bar.finish_and_clear();
    summary(&report);
    Ok(())
}

async fn purge_orphans(
    store: &DynStore,
    common: &CommonConfig,
    opts: &PurgeOpts,
    min_age: &str,
) -> Result<()> {
    let min_age = parse::duration(min_age)?;
    let storage = open_storage(common)?;
    let orphans = admin::orphaned_media(store, &storage, min_age, now()).await?;
    let bytes: u64 = orphans.iter().map(|o| o.size).sum();
    println!(
        "{} orphaned media objects ({}) in the {} store, older than {}s",
        orphans.len(),
        human_bytes(bytes),
        storage.kind(),
        min_age.as_secs()
    );
    if opts.dry_run {
        for o in &orphans {
            println!("  {}  {}", o.key, human_bytes(o.size));
        }
        println!("dry run: nothing deleted");
        return Ok(());
    }
    if orphans.is_empty() {
        return Ok(());
    }
    confirm(opts, &format!("Delete {} objects?", orphans.len()))?;
    let bar = progress(orphans.len() as u64, "objects");
    let (mut deleted, mut failed) = (0u64, 0u64);
    for o in &orphans {
        match storage.delete(&o.key).await {
            Ok(()) => deleted += 1,
            Err(e) => {
                failed += 1;
                bar.println(format!("could not delete {}: {e}", o.key));
            }
        }
        bar.inc(1);
    }
    bar.finish_and_clear();
    println!(
        "deleted {deleted} orphaned media objects ({})",
        human_bytes(bytes)
    );
    if failed > 0 {
        bail!("{failed} objects could not be deleted");
    }
    Ok(())
}
