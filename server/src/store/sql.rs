//! SQL both backends share: column lists, filters and statements (numbered parameters
//! work in both).

use chat_protocol::rest::MessageType;

use super::PurgeScope;
use crate::model::Cursor;

/// The columns [`super::rows::message_from_row`] reads (`messages m`, prefixed `m_`).
pub(crate) const MESSAGE_COLS: &str = "m.id AS m_id, m.conversation_id AS m_conversation_id, \
    m.sender_id AS m_sender_id, m.receiver_id AS m_receiver_id, m.type AS m_type, \
    m.content AS m_content, m.media AS m_media, m.temp_id AS m_temp_id, \
    m.is_read AS m_is_read, m.read_at AS m_read_at, m.created_at AS m_created_at";

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

/// `type IN (...)` from enum values (never from client text). Without text among them it
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
            format!(" AND m.type IN ({}){media_only}", list.join(","))
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
