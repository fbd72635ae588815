//! One row decoder per type for both backends, over [`RowExt`]: how a row of each
//! database reads a UUID, a time, a count, a flag and media.
//!
//! PostgreSQL has native `uuid`, `timestamptz`, `boolean` and `jsonb`; SQLite stores ids
//! as UUID text, times as INTEGER microseconds, flags as 0/1 and media as JSON text.

use chat_protocol::rest::{MediaItem, Message, MessageType, Reaction, ReplyTo};
use chat_protocol::{ConversationId, MessageId, UserId};
use chrono::{DateTime, Utc};
use sqlx::postgres::PgRow;
use sqlx::sqlite::SqliteRow;
use sqlx::types::Json;
use sqlx::Row;
use uuid::Uuid;

use super::{
    Conversation, ConversationView, LoggedEvent, LoggedKind, SearchFound, SearchRow, StoreError,
    StoreResult, StoredMessage, User,
};

/// Reading one column of a row the way its backend stores the value.
pub(crate) trait RowExt {
    fn uuid(&self, col: &str) -> StoreResult<Uuid>;
    fn opt_uuid(&self, col: &str) -> StoreResult<Option<Uuid>>;
    fn ts(&self, col: &str) -> StoreResult<DateTime<Utc>>;
    fn opt_ts(&self, col: &str) -> StoreResult<Option<DateTime<Utc>>>;
    /// A stored count (BIGINT / INTEGER), negatives read as 0.
    fn count(&self, col: &str) -> StoreResult<u64>;
    fn text(&self, col: &str) -> StoreResult<String>;
    fn opt_text(&self, col: &str) -> StoreResult<Option<String>>;
    fn flag(&self, col: &str) -> StoreResult<bool>;
    fn opt_flag(&self, col: &str) -> StoreResult<Option<bool>>;
    /// A message's media list (JSON).
    fn media(&self, col: &str) -> StoreResult<Vec<MediaItem>>;
    /// A JSON value built by the query (`json_build_object` / `json_object`), if not NULL.
    fn opt_json<T: serde::de::DeserializeOwned>(&self, col: &str) -> StoreResult<Option<T>>;
}

impl RowExt for PgRow {
    fn uuid(&self, col: &str) -> StoreResult<Uuid> {
        Ok(self.try_get(col)?)
    }
    fn opt_uuid(&self, col: &str) -> StoreResult<Option<Uuid>> {
        Ok(self.try_get(col)?)
    }
    fn ts(&self, col: &str) -> StoreResult<DateTime<Utc>> {
        Ok(self.try_get(col)?)
    }
    fn opt_ts(&self, col: &str) -> StoreResult<Option<DateTime<Utc>>> {
        Ok(self.try_get(col)?)
    }
    fn count(&self, col: &str) -> StoreResult<u64> {
        let v: i64 = self.try_get(col)?;
        Ok(v.max(0) as u64)
    }
    fn text(&self, col: &str) -> StoreResult<String> {
        Ok(self.try_get(col)?)
    }
    fn opt_text(&self, col: &str) -> StoreResult<Option<String>> {
        Ok(self.try_get(col)?)
    }
    fn flag(&self, col: &str) -> StoreResult<bool> {
        Ok(self.try_get(col)?)
    }
    fn opt_flag(&self, col: &str) -> StoreResult<Option<bool>> {
        Ok(self.try_get(col)?)
    }
    fn media(&self, col: &str) -> StoreResult<Vec<MediaItem>> {
        let Json(media): Json<Vec<MediaItem>> = self.try_get(col)?;
        Ok(media)
    }
    fn opt_json<T: serde::de::DeserializeOwned>(&self, col: &str) -> StoreResult<Option<T>> {
        let v: Option<Json<T>> = self.try_get(col)?;
        Ok(v.map(|Json(v)| v))
    }
}

impl RowExt for SqliteRow {
    fn uuid(&self, col: &str) -> StoreResult<Uuid> {
        let s: String = self.try_get(col)?;
        Uuid::parse_str(&s).map_err(|e| StoreError::Other(format!("bad uuid in {col}: {e}")))
    }
    fn opt_uuid(&self, col: &str) -> StoreResult<Option<Uuid>> {
        let s: Option<String> = self.try_get(col)?;
        s.map(|s| {
            Uuid::parse_str(&s).map_err(|e| StoreError::Other(format!("bad uuid in {col}: {e}")))
        })
        .transpose()
    }
    fn ts(&self, col: &str) -> StoreResult<DateTime<Utc>> {
        micros_to_ts(self.try_get(col)?)
    }
    fn opt_ts(&self, col: &str) -> StoreResult<Option<DateTime<Utc>>> {
        let v: Option<i64> = self.try_get(col)?;
        v.map(micros_to_ts).transpose()
    }
    fn count(&self, col: &str) -> StoreResult<u64> {
        let v: i64 = self.try_get(col)?;
        Ok(v.max(0) as u64)
    }
    fn text(&self, col: &str) -> StoreResult<String> {
        Ok(self.try_get(col)?)
    }
    fn opt_text(&self, col: &str) -> StoreResult<Option<String>> {
        Ok(self.try_get(col)?)
    }
    fn flag(&self, col: &str) -> StoreResult<bool> {
        let v: i64 = self.try_get(col)?;
        Ok(v != 0)
    }
    fn opt_flag(&self, col: &str) -> StoreResult<Option<bool>> {
        let v: Option<i64> = self.try_get(col)?;
        Ok(v.map(|v| v != 0))
    }
    fn media(&self, col: &str) -> StoreResult<Vec<MediaItem>> {
        let json: String = self.try_get(col)?;
        parse_media(&json)
    }
    fn opt_json<T: serde::de::DeserializeOwned>(&self, col: &str) -> StoreResult<Option<T>> {
        let json: Option<String> = self.try_get(col)?;
        json.map(|j| {
            serde_json::from_str(&j)
                .map_err(|e| StoreError::Other(format!("bad json in {col}: {e}")))
        })
        .transpose()
    }
}

/// A time stored as INTEGER microseconds (SQLite).
pub(crate) fn micros_to_ts(v: i64) -> StoreResult<DateTime<Utc>> {
    DateTime::from_timestamp_micros(v)
        .ok_or_else(|| StoreError::Other(format!("bad timestamp {v}")))
}

/// A media list stored as JSON text (SQLite).
pub(crate) fn parse_media(json: &str) -> StoreResult<Vec<MediaItem>> {
    serde_json::from_str(json).map_err(|e| StoreError::Other(format!("bad media json: {e}")))
}

/// The original of a reply as [`super::sql`]'s `m_reply` builds it.
#[derive(serde::Deserialize)]
struct ReplyRow {
    s: Uuid,
    t: String,
    c: Option<String>,
    /// A boolean in PostgreSQL, 0/1 in SQLite.
    d: serde_json::Value,
}

/// One reaction as `m_reactions` lists it.
#[derive(serde::Deserialize)]
struct ReactionRow {
    e: String,
    u: Uuid,
}

/// Reactions grouped by emoji, in the order each emoji was first added.
fn group_reactions(rows: Vec<ReactionRow>) -> Vec<Reaction> {
    let mut out: Vec<Reaction> = Vec::new();
    for r in rows {
        match out.iter_mut().find(|g| g.emoji == r.e) {
            Some(g) => g.user_ids.push(UserId(r.u)),
            None => out.push(Reaction {
                emoji: r.e,
                user_ids: vec![UserId(r.u)],
            }),
        }
    }
    out
}

/// What a reply shows of its original: one gone from storage (`None`) reads as deleted.
fn reply_to(id: Uuid, row: Option<ReplyRow>) -> ReplyTo {
    match row {
        Some(r) => {
            let deleted = r.d.as_bool().unwrap_or_else(|| r.d.as_i64() == Some(1));
            ReplyTo {
                id: MessageId(id),
                sender_id: Some(UserId(r.s)),
                kind: MessageType::parse(&r.t),
                preview: if deleted {
                    None
                } else {
                    r.c.as_deref().map(ReplyTo::preview_of)
                },
                deleted,
            }
        }
        None => ReplyTo {
            id: MessageId(id),
            sender_id: None,
            kind: None,
            preview: None,
            deleted: true,
        },
    }
}

/// A message from [`super::sql::PG_MESSAGE_COLS`] / [`super::sql::SQLITE_MESSAGE_COLS`].
pub(crate) fn message_from_row<R: RowExt>(row: &R) -> StoreResult<StoredMessage> {
    let kind = row.text("m_type")?;
    let media = row.media("m_media")?;
    Ok(StoredMessage::new(Message {
        id: MessageId(row.uuid("m_id")?),
        conversation_id: ConversationId(row.uuid("m_conversation_id")?),
        sender_id: UserId(row.uuid("m_sender_id")?),
        receiver_id: UserId(row.uuid("m_receiver_id")?),
        kind: MessageType::parse(&kind)
            .ok_or_else(|| StoreError::Other(format!("bad message type {kind}")))?,
        content: row.opt_text("m_content")?,
        media,
        temp_id: row.opt_text("m_temp_id")?,
        is_read: row.flag("m_is_read")?,
        read_at: row.opt_ts("m_read_at")?,
        created_at: row.ts("m_created_at")?,
        reply_to: match row.opt_uuid("m_reply_to_id")? {
            Some(id) => Some(reply_to(id, row.opt_json("m_reply")?)),
            None => None,
        },
        edited_at: row.opt_ts("m_edited_at")?,
        deleted_at: row.opt_ts("m_deleted_at")?,
        reactions: group_reactions(row.opt_json("m_reactions")?.unwrap_or_default()),
    }))
}

/// A lifecycle event of a user's log, from [`super::sql::logged_changes_sql`].
pub(crate) fn change_from_row<R: RowExt>(row: &R) -> StoreResult<LoggedEvent> {
    let kind = LoggedKind::change(
        &row.text("e_kind")?,
        message_from_row(row)?,
        UserId(row.uuid("e_actor_id")?),
        row.opt_text("e_emoji")?,
        row.opt_flag("e_added")?,
    )?;
    Ok(LoggedEvent {
        seq: row.count("e_seq")?,
        kind,
    })
}

/// A conversation from [`super::sql::CONVERSATION_COLS`].
pub(crate) fn conversation_from_row<R: RowExt>(row: &R) -> StoreResult<Conversation> {
    Ok(Conversation {
        id: ConversationId(row.uuid("c_id")?),
        user1_id: UserId(row.uuid("c_user1_id")?),
        user2_id: UserId(row.uuid("c_user2_id")?),
        created_by: UserId(row.uuid("c_created_by")?),
        last_message_id: row.opt_uuid("c_last_message_id")?.map(MessageId),
        last_message_at: row.opt_ts("c_last_message_at")?,
        activity_at: row.ts("c_activity_at")?,
        user1_unread: row.count("c_user1_unread_count")?,
        user2_unread: row.count("c_user2_unread_count")?,
        created_at: row.ts("c_created_at")?,
    })
}

/// A user from [`super::sql::USER_COLS`].
pub(crate) fn user_from_row<R: RowExt>(row: &R) -> StoreResult<User> {
    Ok(User {
        id: UserId(row.uuid("u_id")?),
        username: row.text("u_username")?,
        display_name: row.opt_text("u_display_name")?,
        created_at: row.ts("u_created_at")?,
        last_seen_at: row.opt_ts("u_last_seen_at")?,
    })
}

/// A conversation list entry: conversation, user and message columns of one row, the
/// message absent (`m_id` NULL) when the conversation has none.
pub(crate) fn conversation_view_from_row<R: RowExt>(row: &R) -> StoreResult<ConversationView> {
    let has_msg = row.opt_uuid("m_id")?.is_some();
    Ok(ConversationView {
        conversation: conversation_from_row(row)?,
        other: user_from_row(row)?,
        last_message: has_msg.then(|| message_from_row(row)).transpose()?,
    })
}

/// The rows of [`super::sql::search_index_sql`] / [`super::sql::search_recent_sql`].
pub(crate) fn search_found<R: RowExt>(rows: &[R]) -> StoreResult<SearchFound> {
    let mut found = SearchFound::default();
    for row in rows {
        found.walked = u32::try_from(row.count("search_walked")?).unwrap_or(u32::MAX);
        found.top = row.count("search_top")?;
        found.hits.push(SearchRow {
            message: message_from_row(row)?,
            pos: row.count("search_pos")?,
        });
    }
    Ok(found)
}
