//! SQL both backends share: column lists, filters and statements (numbered parameters
//! work in both).

use chat_protocol::rest::MessageType;

use super::PurgeScope;
use crate::model::Cursor;

/// The columns [`super::rows::message_from_row`] reads (`messages m`, prefixed `m_`), in a
/// backend's JSON dialect: `$object` builds an object, `$array` aggregates rows into an
/// array. Beside the message's own columns: the original of a reply (`m_reply`, NULL when
/// it is not a reply or the original is gone) and the reactions (`m_reactions`, oldest
/// first), each one indexed subquery.
/// The original's text is cut to 100 characters there already
/// (`chat_protocol::rest::REPLY_PREVIEW_CHARS`, which `concat!` cannot name).
macro_rules! message_cols {
    ($object:literal, $array:literal) => {
        concat!(
            "m.id AS m_id, m.conversation_id AS m_conversation_id, ",
            "m.sender_id AS m_sender_id, m.receiver_id AS m_receiver_id, m.type AS m_type, ",
            "m.content AS m_content, m.media AS m_media, m.temp_id AS m_temp_id, ",
            "m.is_read AS m_is_read, m.read_at AS m_read_at, m.created_at AS m_created_at, ",
            "m.edited_at AS m_edited_at, m.deleted_at AS m_deleted_at, ",
            "m.reply_to_id AS m_reply_to_id, ",
            "(SELECT ",
            $object,
            "('s', r.sender_id, 't', r.type, ",
            "'c', substr(r.content, 1, 100), 'd', r.deleted_at IS NOT NULL) ",
            "FROM messages r WHERE r.id = m.reply_to_id) AS m_reply, ",
            "(SELECT ",
            $array,
            "(",
            $object,
            "('e', x.emoji, 'u', x.user_id) ",
            "ORDER BY x.created_at, x.user_id) ",
            "FROM message_reactions x WHERE x.message_id = m.id) AS m_reactions"
        )
    };
}

/// [`message_cols!`] for PostgreSQL.
pub(crate) const PG_MESSAGE_COLS: &str = message_cols!("json_build_object", "json_agg");
/// [`message_cols!`] for SQLite.
pub(crate) const SQLITE_MESSAGE_COLS: &str = message_cols!("json_object", "json_group_array");

/// ` AND NOT EXISTS (…)`: the message `m` is not hidden (deleted for me) by the user
/// bound at `$n`.
pub(crate) fn not_hidden(n: usize) -> String {
    format!(
        " AND NOT EXISTS (SELECT 1 FROM hidden_messages h WHERE h.user_id = ${n} AND h.message_id = m.id)"
    )
}

/// The columns [`super::rows::conversation_from_row`] reads (`conversations c`, prefixed `c_`).
pub(crate) const CONVERSATION_COLS: &str = "c.id AS c_id, c.user1_id AS c_user1_id, \
    c.user2_id AS c_user2_id, c.created_by AS c_created_by, \
    c.last_message_id AS c_last_message_id, c.last_message_at AS c_last_message_at, \
    c.activity_at AS c_activity_at, c.user1_unread_count AS c_user1_unread_count, \
    c.user2_unread_count AS c_user2_unread_count, c.created_at AS c_created_at";

/// The columns [`super::rows::user_from_row`] reads (`users u`, prefixed `u_`).
pub(crate) const USER_COLS: &str = "u.id AS u_id, u.username AS u_username, \
    u.display_name AS u_display_name, u.created_at AS u_created_at, \
    u.last_seen_at AS u_last_seen_at";

/// ` AND (time, id) < ($n, $n+1)` (or `>`, `<=`) when there is a cursor, else nothing:
/// the keyset condition of every `(time, id)`-ordered listing. `cols` names the two
/// columns (`"m.created_at, m.id"`); the cursor's time and id bind at `$n` and `$n+1`.
pub(crate) fn keyset(cursor: Option<Cursor>, cols: &str, op: &str, n: usize) -> String {
    match cursor {
        Some(_) => format!(" AND ({cols}) {op} (${n}, ${})", n + 1),
        None => String::new(),
    }
}

/// `type IN (...)` from enum values (never from client text), tombstones left out. Without
/// text among them it
/// also says `type <> 'text'`: the predicate of the partial type keyset index
/// (`messages_media_type_keyset`), spelled out so SQLite, which only uses a partial index
/// whose predicate the query states, uses it too.
pub(crate) fn type_filter(types: &Option<Vec<MessageType>>) -> String {
    match types {
        Some(t) if !t.is_empty() => {
            let list: Vec<String> = t.iter().map(|k| format!("'{}'", k.as_str())).collect();
            let media_only = if t.contains(&MessageType::Text) {
                ""
            } else {
                " AND m.type <> 'text'"
            };
            // Galleries list what is there: a tombstone has no media left.
            format!(
                " AND m.type IN ({}){media_only} AND m.deleted_at IS NULL",
                list.join(",")
            )
        }
        _ => String::new(),
    }
}

/// Shared by both backends (numbered parameters work in both): $1 sender, $2
/// conversation, $3 temp_id or NULL.
pub(crate) const SEND_CONTEXT_SQL: &str = "
    SELECT x.other,
           EXISTS (SELECT 1 FROM blocks b WHERE b.blocker_id = $1 AND b.blocked_id = x.other)
               AS sender_blocks,
           EXISTS (SELECT 1 FROM blocks b WHERE b.blocker_id = x.other AND b.blocked_id = $1)
               AS receiver_blocks,
           (SELECT m.id FROM messages m WHERE m.sender_id = $1 AND m.temp_id = $3) AS existing
    FROM (SELECT CASE WHEN c.user1_id = $1 THEN c.user2_id ELSE c.user1_id END AS other
          FROM conversations c
          WHERE c.id = $2 AND (c.user1_id = $1 OR c.user2_id = $1)) x";

/// Shared by both backends: $1 user, $2 after, $3 through, $4 limit. The messages of a
/// user's log: those they sent (at `sender_seq`) and received (at `receiver_seq`), each
/// side read in position order from its own index.
pub(crate) fn logged_messages_sql(message_cols: &str) -> String {
    format!(
        "SELECT * FROM (SELECT m.sender_seq AS e_seq, {message_cols} FROM messages m
                        WHERE m.sender_id = $1 AND m.sender_seq > $2 AND m.sender_seq <= $3
                        ORDER BY m.sender_seq LIMIT $4) s
         UNION ALL
         SELECT * FROM (SELECT m.receiver_seq AS e_seq, {message_cols} FROM messages m
                        WHERE m.receiver_id = $1 AND m.receiver_seq > $2 AND m.receiver_seq <= $3
                        ORDER BY m.receiver_seq LIMIT $4) r"
    )
}

/// Shared by both backends (`message_cols` is the backend's), same parameters: the
/// lifecycle events of a user's log (edits, deletes, reactions), each with its message as
/// it is now.
pub(crate) fn logged_changes_sql(message_cols: &str) -> String {
    format!(
        "SELECT e.seq AS e_seq, e.kind AS e_kind, e.conversation_id AS e_conversation_id,
                e.message_id AS e_message_id, e.actor_id AS e_actor_id, e.emoji AS e_emoji,
                e.added AS e_added, {message_cols}
         FROM message_events e JOIN messages m ON m.id = e.message_id
         WHERE e.user_id = $1 AND e.seq > $2 AND e.seq <= $3
         ORDER BY e.seq
         LIMIT $4"
    )
}

/// Shared by both backends: $1 message. Who takes part in a message's conversation.
pub(crate) const MESSAGE_PARTIES_SQL: &str =
    "SELECT conversation_id, sender_id, receiver_id FROM messages WHERE id = $1";

/// Shared by both backends: $1 message, $2 editor, $3 content, $4 now, $5 oldest
/// editable send time. Only the sender's own message, not deleted, inside the window.
pub(crate) const EDIT_SQL: &str = "
    UPDATE messages SET content = $3, edited_at = $4, updated_at = $4
    WHERE id = $1 AND sender_id = $2 AND deleted_at IS NULL AND created_at >= $5";

/// Shared by both backends: $1 message, $2 sender, $3 now, $4 oldest deletable send
/// time. The tombstone: content and media gone; it counts as read (no longer unread).
pub(crate) const TOMBSTONE_SQL: &str = "
    UPDATE messages SET content = NULL, media = '[]', deleted_at = $3, updated_at = $3,
                        is_read = TRUE
    WHERE id = $1 AND sender_id = $2 AND deleted_at IS NULL AND created_at >= $4";

/// Shared by both backends: $1 message. How many distinct emoji it has, and whether
/// `$2` is among them.
pub(crate) const REACTION_COUNT_SQL: &str = "
    SELECT COUNT(DISTINCT emoji) AS n,
           EXISTS (SELECT 1 FROM message_reactions WHERE message_id = $1 AND emoji = $2) AS known
    FROM message_reactions WHERE message_id = $1";

/// Shared by both backends: $1 message, $2 emoji, $3 user.
pub(crate) const REMOVE_REACTION_SQL: &str =
    "DELETE FROM message_reactions WHERE message_id = $1 AND emoji = $2 AND user_id = $3";

/// Shared by both backends, same parameters: the read events of a user's log. Those of a
/// deleted conversation are skipped (its messages are gone with it).
pub(crate) const LOGGED_READS_SQL: &str = "
    SELECT e.seq AS e_seq, e.kind AS e_kind, e.conversation_id AS e_conversation_id,
           e.reader_id AS e_reader_id, e.up_to_message_id AS e_up_to, e.read_at AS e_read_at
    FROM read_events e
    WHERE e.user_id = $1 AND e.seq > $2 AND e.seq <= $3
      AND EXISTS (SELECT 1 FROM conversations c WHERE c.id = e.conversation_id)
    ORDER BY e.seq
    LIMIT $4";

/// Shared by both backends: $1 sender, $2 receiver. Why a send stored nothing: the sender
/// was erased, or a block stands between the two.
pub(crate) const UNSTORED_SQL: &str = "
    SELECT EXISTS (SELECT 1 FROM users WHERE id = $1 AND deleted_at IS NOT NULL) AS erased,
           EXISTS (SELECT 1 FROM blocks b
                   WHERE (b.blocker_id = $1 AND b.blocked_id = $2)
                      OR (b.blocker_id = $2 AND b.blocked_id = $1)) AS blocked";

/// `$1` and `$2` have a block between them, either way (one boolean row, both backends).
pub(crate) const BLOCKED_EITHER_WAY_SQL: &str = "SELECT EXISTS (SELECT 1 FROM blocks
     WHERE (blocker_id = $1 AND blocked_id = $2) OR (blocker_id = $2 AND blocked_id = $1))";

/// The WHERE clause (over `messages m`) that selects a purge scope; parameters from $1,
/// bound by each backend in the order the clause names them.
pub(crate) fn scope_clause(scope: PurgeScope) -> &'static str {
    match scope {
        PurgeScope::OlderThan {
            conversation: None, ..
        } => "m.created_at < $1",
        PurgeScope::OlderThan {
            conversation: Some(_),
            ..
        } => "m.created_at < $1 AND m.conversation_id = $2",
        PurgeScope::Conversation(_) => "m.conversation_id = $1",
        PurgeScope::SentBy(_) => "m.sender_id = $1",
    }
}

/// Shared by both backends: what `chatctl stats` counts of the message lifecycle
/// (edited messages, tombstones, reactions).
pub(crate) const LIFECYCLE_STATS_SQL: &str = "
    SELECT (SELECT count(*) FROM messages WHERE edited_at IS NOT NULL),
           (SELECT count(*) FROM messages WHERE deleted_at IS NOT NULL),
           (SELECT count(*) FROM message_reactions)";

/// Shared by both backends, $1 the user: what an erased user leaves of the message
/// lifecycle on other people's messages (their reactions, what they hid, their log).
pub(crate) const ERASE_LIFECYCLE_SQL: [&str; 3] = [
    "DELETE FROM message_reactions WHERE user_id = $1",
    "DELETE FROM hidden_messages WHERE user_id = $1",
    "DELETE FROM message_events WHERE user_id = $1",
];

/// `viewer`'s ($1) position of `messages m` in their event log; 0 for history stored
/// before the log existed (no positions).
const VIEWER_POS: &str =
    "COALESCE(CASE WHEN m.sender_id = $1 THEN m.sender_seq ELSE m.receiver_seq END, 0)";

/// A search through the full-text index, shared by both backends (`message_cols` and the
/// match condition on `messages m` are the backend's): $1 viewer, $2 query, $3 limit,
/// $4 one conversation or NULL, $5/$6/$7 the cursor (position, time, id) when `after`.
pub(crate) fn search_index_sql(message_cols: &str, matches: &str, after: bool) -> String {
    let cursor = if after {
        format!(" AND ({VIEWER_POS}, m.created_at, m.id) < ($5, $6, $7)")
    } else {
        String::new()
    };
    format!(
        "SELECT {message_cols}, {VIEWER_POS} AS search_pos,
                CAST(0 AS BIGINT) AS search_walked, CAST(0 AS BIGINT) AS search_top
         FROM messages m
         WHERE {matches}
           AND m.conversation_id IN (SELECT c.id FROM conversations c
                                     WHERE c.user1_id = $1 OR c.user2_id = $1)
           AND m.conversation_id = COALESCE($4, m.conversation_id)
           AND m.deleted_at IS NULL{hidden}{cursor}
         ORDER BY search_pos DESC, m.created_at DESC, m.id DESC
         LIMIT $3",
        hidden = not_hidden(1),
    )
}

/// A search through the viewer's newest log entries (`win`: `rid`, `pos`), shared by both
/// backends: the viewer's sent and received messages, newest position first, read
/// backwards from the two position indexes and merged, at most $6 of them below
/// position $5; each is then tested with `matches` (which may use `win`). `rid` is the
/// column that joins `win` back to `messages` (`id`, or SQLite's `rowid`). $1 viewer,
/// $2 query, $3 limit, $4 one conversation or NULL.
pub(crate) fn search_recent_sql(message_cols: &str, matches: &str, rid: &str) -> String {
    format!(
        "WITH win AS (
             SELECT rid, pos FROM (
                 SELECT * FROM (SELECT m.{rid} AS rid, m.sender_seq AS pos FROM messages m
                                WHERE m.sender_id = $1 AND m.sender_seq < $5
                                ORDER BY m.sender_seq DESC LIMIT $6) s
                 UNION ALL
                 SELECT * FROM (SELECT m.{rid} AS rid, m.receiver_seq AS pos FROM messages m
                                WHERE m.receiver_id = $1 AND m.receiver_seq < $5
                                ORDER BY m.receiver_seq DESC LIMIT $6) r
             ) u ORDER BY pos DESC LIMIT $6
         ), meta AS (SELECT count(*) AS walked, COALESCE(max(pos), 0) AS top FROM win)
         SELECT {message_cols}, win.pos AS search_pos,
                meta.walked AS search_walked, meta.top AS search_top
         FROM win JOIN messages m ON m.{rid} = win.rid CROSS JOIN meta
         WHERE {matches}
           AND m.conversation_id = COALESCE($4, m.conversation_id)
           AND m.deleted_at IS NULL{hidden}
         ORDER BY win.pos DESC
         LIMIT $3",
        hidden = not_hidden(1),
    )
}
