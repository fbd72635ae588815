//! Sends in batches (group commit) on PostgreSQL: one statement for the whole batch.

use super::*;
use crate::model::StoredMessage;

/// One statement (one round trip, one durable commit) for a batch of sends: the event-log
/// positions of everyone in it, the messages, each conversation's last message, activity
/// and unread counters, and the links.
///
/// Locks: every counter of the batch first, in user-id order, then the conversations
/// (mark_read takes the same two steps). Two batches that touch one conversation share
/// its two counters, so they queue on those before either reaches the conversation row:
/// no deadlock between batches, instances or mark_read. A user's positions are taken in
/// batch order. A send that would store nothing (erased sender, block, id or temp_id stored
/// earlier or earlier in this batch) takes no positions; one that loses a race with a
/// concurrent duplicate (ON CONFLICT) leaves a hole that clients step over at their next
/// sync.complete. Instances may disagree slightly on the clock: last message only moves
/// forward.
const INSERT_BATCH_SQL: &str = "
    WITH input AS (
        SELECT t.*,
               row_number() OVER (PARTITION BY t.id ORDER BY t.ord) AS id_rank,
               row_number() OVER (PARTITION BY t.sender_id, t.temp_id ORDER BY t.ord) AS temp_rank
        FROM unnest($1::uuid[], $2::uuid[], $3::uuid[], $4::uuid[], $5::text[],
                    $6::text[], $7::text[], $8::text[], $9::timestamptz[], $13::uuid[])
            WITH ORDINALITY AS t(id, conversation_id, sender_id, receiver_id, type, content,
                                 media, temp_id, created_at, reply_to_id, ord)
    ), ok AS (
        SELECT i.*, row_number() OVER (ORDER BY i.ord) AS okn FROM input i
        WHERE i.id_rank = 1 AND (i.temp_id IS NULL OR i.temp_rank = 1)
          AND NOT EXISTS (SELECT 1 FROM users u WHERE u.id = i.sender_id AND u.deleted_at IS NOT NULL)
          AND NOT EXISTS (SELECT 1 FROM messages m WHERE m.sender_id = i.sender_id AND m.temp_id = i.temp_id)
          AND NOT EXISTS (SELECT 1 FROM messages m WHERE m.id = i.id)
          AND NOT EXISTS (SELECT 1 FROM blocks b
                          WHERE b.blocker_id = i.sender_id AND b.blocked_id = i.receiver_id)
          AND NOT EXISTS (SELECT 1 FROM blocks b
                          WHERE b.blocker_id = i.receiver_id AND b.blocked_id = i.sender_id)
    ), ev AS (
        SELECT e.*, row_number() OVER (PARTITION BY e.user_id ORDER BY e.okn) AS k,
               count(*) OVER (PARTITION BY e.user_id) AS n
        FROM (SELECT okn, sender_id AS user_id, 0 AS role FROM ok
              UNION ALL
              SELECT okn, receiver_id, 1 FROM ok) e
    ), heads AS (
        INSERT INTO event_heads (user_id, seq)
        SELECT user_id, n FROM ev WHERE k = 1 ORDER BY user_id
        ON CONFLICT (user_id) DO UPDATE SET seq = event_heads.seq + EXCLUDED.seq
        RETURNING user_id, seq
    ), head AS MATERIALIZED (
        SELECT jsonb_object_agg(user_id::text, seq) AS m FROM heads
    ), seqs AS MATERIALIZED (
        SELECT array_agg(q.seq ORDER BY q.okn) FILTER (WHERE q.role = 0) AS s,
               array_agg(q.seq ORDER BY q.okn) FILTER (WHERE q.role = 1) AS r
        FROM (SELECT e.okn, e.role, (h.m ->> e.user_id::text)::bigint - e.n + e.k AS seq
              FROM ev e CROSS JOIN head h) q
    ), ins AS (
        INSERT INTO messages (id, conversation_id, sender_id, receiver_id, type, content,
            media, temp_id, is_read, read_at, created_at, updated_at, sender_seq, receiver_seq,
            reply_to_id)
        SELECT o.id, o.conversation_id, o.sender_id, o.receiver_id, o.type, o.content,
               o.media::jsonb, o.temp_id, FALSE, NULL, o.created_at, o.created_at,
               q.s[o.okn], q.r[o.okn], o.reply_to_id
        FROM ok o CROSS JOIN seqs q
        ORDER BY o.ord
        ON CONFLICT DO NOTHING
        RETURNING id, conversation_id, sender_id, receiver_id, created_at, sender_seq, receiver_seq
    ), latest AS (
        -- Per conversation, once: its newest message and the new unread messages per side
        -- (user1 is the smaller id, conversations_ordered_pair, so a message is to user1
        -- exactly when its receiver's id is below its sender's).
        SELECT conversation_id,
               (array_agg(id ORDER BY created_at DESC, id DESC))[1] AS id,
               max(created_at) AS created_at,
               count(*) FILTER (WHERE receiver_id < sender_id) AS to_user1,
               count(*) FILTER (WHERE receiver_id > sender_id) AS to_user2
        FROM ins GROUP BY conversation_id
    ), upd AS (
        UPDATE conversations c SET
            last_message_id = CASE WHEN c.last_message_at IS NULL OR l.created_at >= c.last_message_at
                                   THEN l.id ELSE c.last_message_id END,
            last_message_at = GREATEST(COALESCE(c.last_message_at, l.created_at), l.created_at),
            activity_at = GREATEST(c.activity_at, l.created_at),
            user1_unread_count = c.user1_unread_count + l.to_user1,
            user2_unread_count = c.user2_unread_count + l.to_user2,
            updated_at = l.created_at
        FROM latest l
        WHERE c.id = l.conversation_id
        RETURNING c.id
    ), lnk AS (
        INSERT INTO message_links (id, message_id, conversation_id, sender_id, url, created_at)
        SELECT l.id, l.message_id, l.conversation_id, l.sender_id, l.url, l.created_at
        FROM unnest($10::uuid[], $11::uuid[], $12::text[], $14::uuid[], $15::uuid[],
                    $16::timestamptz[]) AS l(message_id, id, url, conversation_id, sender_id,
                                             created_at)
        WHERE l.message_id IN (SELECT id FROM ins)
    )
    SELECT i.id, i.sender_seq, i.receiver_seq, i.conversation_id IN (SELECT id FROM upd) AS updated
    FROM ins i";

impl PostgresStore {
    /// [`MessageStore::insert_messages`] on this backend.
    pub(super) async fn store_batch(
        &self,
        batch: &[NewMessage],
    ) -> Vec<StoreResult<InsertOutcome>> {
        match self.insert_batch(batch).await {
            Ok(out) => out,
            // The database is away: every send fails now, none is retried (each retry
            // would wait out the pool's acquire timeout again).
            Err(e @ StoreError::Unavailable(_)) => fail_all(&e, batch.len()),
            // One send can fail the statement for all (a conversation purged meanwhile: a
            // foreign key): each send is retried alone, so only that one fails.
            Err(_) if batch.len() > 1 => {
                let mut out = Vec::with_capacity(batch.len());
                for one in batch {
                    out.push(match self.insert_batch(std::slice::from_ref(one)).await {
                        Ok(mut r) => r.pop().unwrap_or(Err(StoreError::NotFound)),
                        Err(e) => Err(e),
                    });
                }
                out
            }
            Err(e) => vec![Err(e)],
        }
    }

    /// [`INSERT_BATCH_SQL`], then the outcome of each send; an error fails the batch.
    async fn insert_batch(
        &self,
        batch: &[NewMessage],
    ) -> StoreResult<Vec<StoreResult<InsertOutcome>>> {
        let msgs = || batch.iter().map(|n| &n.message);
        let mut media = Vec::with_capacity(batch.len());
        for m in msgs() {
            media.push(
                serde_json::to_string(&m.media).map_err(|e| StoreError::Other(e.to_string()))?,
            );
        }
        let rows = run_batch(self.sends(), batch, &media).await?;
        let mut stored = std::collections::HashMap::with_capacity(rows.len());
        for row in &rows {
            let id: Uuid = row.try_get("id")?;
            if !row.try_get::<bool, _>("updated")? {
                // Unreachable while the foreign key holds; never report a half-applied send.
                return Err(StoreError::Other(
                    "message stored without its conversation".into(),
                ));
            }
            let seqs = SendSeqs {
                sender: seq_of(row.try_get("sender_seq")?)?,
                receiver: seq_of(row.try_get("receiver_seq")?)?,
            };
            stored.insert(id, seqs);
        }
        let mut out = Vec::with_capacity(batch.len());
        for m in msgs() {
            out.push(match stored.get(&m.id.0) {
                Some(seqs) => Ok(InsertOutcome::Created(StoredMessage::new(m.clone()), *seqs)),
                None => self.unstored(m).await,
            });
        }
        Ok(out)
    }

    /// Why `m` stored nothing (after the batch committed).
    async fn unstored(&self, m: &Message) -> StoreResult<InsertOutcome> {
        let row = sqlx::query(UNSTORED_SQL)
            .bind(m.sender_id.0)
            .bind(m.receiver_id.0)
            .fetch_one(&self.pool)
            .await?;
        unstored_outcome(self, m, row.try_get("erased")?, row.try_get("blocked")?).await
    }
}

/// Runs [`INSERT_BATCH_SQL`] for `batch` (`media`: each message's media as JSON, in order).
async fn run_batch<'e, E: sqlx::PgExecutor<'e>>(
    exec: E,
    batch: &[NewMessage],
    media: &[String],
) -> sqlx::Result<Vec<sqlx::postgres::PgRow>> {
    let msgs = || batch.iter().map(|n| &n.message);
    let (mut link_msg, mut link_id, mut link_url) = (Vec::new(), Vec::new(), Vec::new());
    let (mut link_conv, mut link_sender, mut link_at) = (Vec::new(), Vec::new(), Vec::new());
    for n in batch {
        for url in &n.links {
            link_msg.push(n.message.id.0);
            link_id.push(Uuid::now_v7());
            link_url.push(url.as_str());
            link_conv.push(n.message.conversation_id.0);
            link_sender.push(n.message.sender_id.0);
            link_at.push(n.message.created_at);
        }
    }
    sqlx::query(INSERT_BATCH_SQL)
        .bind(msgs().map(|m| m.id.0).collect::<Vec<_>>())
        .bind(msgs().map(|m| m.conversation_id.0).collect::<Vec<_>>())
        .bind(msgs().map(|m| m.sender_id.0).collect::<Vec<_>>())
        .bind(msgs().map(|m| m.receiver_id.0).collect::<Vec<_>>())
        .bind(msgs().map(|m| m.kind.as_str()).collect::<Vec<_>>())
        .bind(msgs().map(|m| m.content.as_deref()).collect::<Vec<_>>())
        .bind(media)
        .bind(msgs().map(|m| m.temp_id.as_deref()).collect::<Vec<_>>())
        .bind(msgs().map(|m| m.created_at).collect::<Vec<_>>())
        .bind(&link_msg)
        .bind(&link_id)
        .bind(&link_url)
        .bind(
            msgs()
                .map(|m| m.reply_to.as_ref().map(|r| r.id.0))
                .collect::<Vec<_>>(),
        )
        .bind(&link_conv)
        .bind(&link_sender)
        .bind(&link_at)
        .fetch_all(exec)
        .await
}

/// Readies a new connection of the send pool: sets `plan_cache_mode = force_generic_plan`
/// and runs the send statement on an empty batch (it stores nothing), so the statement is
/// parsed and planned before the first send waits on it. PostgreSQL would otherwise make
/// a custom plan for each of its first five executions on the connection (~1-2 ms each,
/// the statement is big) before settling on the generic plan, as it does for this one
/// (docs/benchmarks.md, session 19). A database error here (a schema not migrated yet, a
/// server without that setting) is logged and the connection used as it is: the first
/// send meets the same error with its own message, instead of every send waiting out the
/// pool's acquire timeout while sqlx reopens connections. An error that ends the
/// connection (PostgreSQL going away: [`server_going_away`]) fails it, so sqlx opens
/// another.
pub(super) async fn prepare_send_connection(conn: &mut sqlx::PgConnection) -> sqlx::Result<()> {
    match ready_send_connection(conn).await {
        Err(sqlx::Error::Database(e)) if !server_going_away(e.code().as_deref()) => {
            tracing::warn!(error = %e, "could not ready a send connection");
            Ok(())
        }
        other => other,
    }
}

async fn ready_send_connection(conn: &mut sqlx::PgConnection) -> sqlx::Result<()> {
    // A plain string runs as a simple query: nothing prepared or cached for it.
    sqlx::Executor::execute(&mut *conn, "SET plan_cache_mode = force_generic_plan").await?;
    run_batch(conn, &[], &[]).await.map(drop)
}
