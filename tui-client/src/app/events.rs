//! Server events from the socket: acks, new messages, read receipts, typing, presence, errors.

use std::time::Instant;

use chat_protocol::error::ErrorCode;
use chat_protocol::rest::{DeleteScope, Message, Reaction};
use chat_protocol::ws::{PresenceEntry, ServerEvent};
use chat_protocol::{ConversationId, MessageId, UserId};
use chrono::{DateTime, Utc};

use super::{Action, App, TYPING_SHOWN};

impl App {
    /// Apply one server event; return what the runtime must do next.
    pub(super) fn server_event(&mut self, ev: ServerEvent, now: Instant) -> Vec<Action> {
        match ev {
            ServerEvent::ConnectionSuccess {
                user_id, username, ..
            } => self.signed_in(user_id, username),
            // Positions are the socket task's business (it resumes from them); the
            // replay is over: now a snapshot of the list and counters is exact.
            ServerEvent::SyncComplete { .. } if std::mem::take(&mut self.resync) => {
                vec![Action::LoadConversations, Action::LoadUnread]
            }
            ServerEvent::SyncComplete { .. } => Vec::new(),
            ServerEvent::MessageSent { temp_id, message } => self.message_sent(temp_id, message),
            ServerEvent::MessageNew { message } => self.message_new(message),
            ServerEvent::MessageReadAck {
                conversation_id, ..
            } => self.read_acked(conversation_id),
            ServerEvent::MessageReadUpdate {
                conversation_id,
                reader_id,
                up_to_message_id,
                read_at,
            } => self.read_by(conversation_id, reader_id, up_to_message_id, read_at),
            ServerEvent::TypingStart {
                conversation_id, ..
            } => self.typing_until(conversation_id, Some(now + TYPING_SHOWN)),
            ServerEvent::TypingStop {
                conversation_id, ..
            } => self.typing_until(conversation_id, None),
            ServerEvent::UserOnline { user_id } => self.user_presence(user_id, true, None),
            ServerEvent::UserOffline {
                user_id,
                last_seen_at,
            } => self.user_presence(user_id, false, Some(last_seen_at)),
            ServerEvent::StatusBulk { users } => self.status_bulk(users),
            ServerEvent::Pong {} => Vec::new(),
            ServerEvent::BlockUpdated { username, blocked } => {
                self.block_updated(&username, blocked)
            }
            ServerEvent::MessageEdited { message } => self.message_changed(message),
            ServerEvent::MessageDeleted {
                conversation_id,
                message_id,
                scope,
            } => self.message_deleted(conversation_id, message_id, scope),
            ServerEvent::ReactionUpdated {
                conversation_id,
                message_id,
                emoji,
                user_id,
                added,
            } => self.reaction_updated(conversation_id, message_id, &emoji, user_id, added),
            ServerEvent::Error {
                code,
                message,
                temp_id,
            } => self.server_error(code, &message, temp_id),
        }
    }

    /// `connection.success`: who this client is signed in as.
    fn signed_in(&mut self, user_id: UserId, username: String) -> Vec<Action> {
        self.me = Some((user_id, username));
        Vec::new()
    }

    /// `message.sent`: my message is stored; it replaces its pending copy (once).
    fn message_sent(&mut self, temp_id: Option<String>, message: Message) -> Vec<Action> {
        if let Some(t) = temp_id {
            self.pending.retain(|p| p.temp_id != t);
        }
        let queued = self.pending.iter().any(|p| p.failed.is_none());
        if !queued
            && self
                .status
                .as_ref()
                .is_some_and(|(s, _)| s == super::commands::QUEUED_NOTICE)
        {
            self.status = None;
        }
        self.insert_message(message);
        self.sort();
        Vec::new()
    }

    /// `message.new`: count it unread unless it is open (then mark it read) or mine.
    fn message_new(&mut self, message: Message) -> Vec<Action> {
        let conv = message.conversation_id;
        let known = self.convs.iter().any(|c| c.conv.id == conv);
        let mine = self.is_mine(&message);
        let notify = (!mine && !self.viewing(conv)).then(|| notice_for(&message, &self.convs));
        if let Some(c) = self.conv_mut(conv) {
            c.typing_until = None;
            if !mine && !c.messages.iter().any(|x| x.id == message.id) {
                c.conv.unread_count += 1;
                self.unread_total += 1;
            }
        }
        self.insert_message(message);
        self.sort();
        let mut actions: Vec<Action> = notify.into_iter().collect();
        if !known {
            actions.extend([Action::LoadConversations, Action::LoadUnread]);
            return actions;
        }
        if self.open == Some(conv) && !mine {
            if self.viewing(conv) {
                // Seen as it arrived: no "new messages" line for it.
                actions.extend(self.mark_read(conv, false));
                return actions;
            }
            if self.scroll > 0 {
                self.new_below += 1;
            }
        }
        actions
    }

    /// `message.edited`: the message as it is now, wherever it is shown.
    fn message_changed(&mut self, message: Message) -> Vec<Action> {
        if let Some(c) = self.conv_mut(message.conversation_id) {
            if let Some(m) = c.messages.iter_mut().find(|m| m.id == message.id) {
                *m = message;
            }
        }
        Vec::new()
    }

    /// `message.deleted`: gone from my view (`me`), or a tombstone for both.
    fn message_deleted(
        &mut self,
        conv: ConversationId,
        id: MessageId,
        scope: DeleteScope,
    ) -> Vec<Action> {
        let mine_unread = |m: &Message, me: Option<UserId>| !m.is_read && Some(m.receiver_id) == me;
        let me = self.me.as_ref().map(|(id, _)| *id);
        let mut was_unread = false;
        if let Some(c) = self.conv_mut(conv) {
            was_unread = c.messages.iter().any(|m| m.id == id && mine_unread(m, me));
            match scope {
                DeleteScope::Me => c.messages.retain(|m| m.id != id),
                DeleteScope::Everyone => {
                    if let Some(m) = c.messages.iter_mut().find(|m| m.id == id) {
                        m.content = None;
                        m.media.clear();
                        m.reactions.clear();
                        m.deleted_at = Some(Utc::now());
                        m.is_read = true;
                    }
                }
            }
            if was_unread && scope == DeleteScope::Everyone {
                c.conv.unread_count = c.conv.unread_count.saturating_sub(1);
            }
        }
        if was_unread && scope == DeleteScope::Everyone {
            self.unread_total = self.unread_total.saturating_sub(1);
        }
        Vec::new()
    }

    /// `reaction.updated`: one user's reaction added or removed.
    fn reaction_updated(
        &mut self,
        conv: ConversationId,
        id: MessageId,
        emoji: &str,
        user: UserId,
        added: bool,
    ) -> Vec<Action> {
        if let Some(m) = self
            .conv_mut(conv)
            .and_then(|c| c.messages.iter_mut().find(|m| m.id == id))
        {
            apply_reaction(&mut m.reactions, emoji, user, added);
        }
        Vec::new()
    }

    /// `message.read_ack`: my read of their messages, confirmed.
    fn read_acked(&mut self, conversation_id: ConversationId) -> Vec<Action> {
        if let Some(c) = self.conv_mut(conversation_id) {
            let other = c.conv.other_user.id;
            for m in &mut c.messages {
                if m.sender_id == other {
                    m.is_read = true;
                }
            }
        }
        Vec::new()
    }

    /// `message.read_update`: the other user read my messages (up to one, or all).
    fn read_by(
        &mut self,
        conversation_id: ConversationId,
        reader_id: UserId,
        up_to_message_id: Option<MessageId>,
        read_at: DateTime<Utc>,
    ) -> Vec<Action> {
        if let Some(c) = self.conv_mut(conversation_id) {
            let limit = up_to_message_id
                .and_then(|id| c.messages.iter().find(|m| m.id == id))
                .map(|m| (m.created_at, m.id));
            for m in &mut c.messages {
                let within = limit.is_none_or(|l| (m.created_at, m.id) <= l);
                if m.receiver_id == reader_id && within && !m.is_read {
                    m.is_read = true;
                    m.read_at = Some(read_at);
                }
            }
            if let Some(last) = &mut c.conv.last_message {
                if last.receiver_id == reader_id {
                    last.is_read = true;
                }
            }
        }
        Vec::new()
    }

    /// `typing.start` / `typing.stop`: show the indicator until `until` (or hide it).
    fn typing_until(
        &mut self,
        conversation_id: ConversationId,
        until: Option<Instant>,
    ) -> Vec<Action> {
        if let Some(c) = self.conv_mut(conversation_id) {
            c.typing_until = until;
        }
        Vec::new()
    }

    /// `user.online` / `user.offline`: one user's presence changed.
    fn user_presence(
        &mut self,
        user: UserId,
        online: bool,
        seen: Option<DateTime<Utc>>,
    ) -> Vec<Action> {
        self.presence_of(user, online, seen);
        Vec::new()
    }

    /// `status.bulk`: the presence of many users at once.
    fn status_bulk(&mut self, users: Vec<PresenceEntry>) -> Vec<Action> {
        for PresenceEntry {
            user_id,
            online,
            last_seen_at,
        } in users
        {
            self.presence_of(user_id, online, last_seen_at);
        }
        Vec::new()
    }

    /// Remember a user's presence (for conversations loaded later) and show it now.
    fn presence_of(&mut self, user: UserId, online: bool, seen: Option<DateTime<Utc>>) {
        self.presence.insert(user, (online, seen));
        for c in &mut self.convs {
            if c.conv.other_user.id == user {
                c.conv.other_user.online = online;
                if seen.is_some() {
                    c.conv.other_user.last_seen_at = seen;
                }
            }
        }
    }

    /// `block.updated`: a block changed from another of my sessions.
    fn block_updated(&mut self, username: &str, blocked: bool) -> Vec<Action> {
        self.info(format!(
            "{username} {}",
            if blocked { "blocked" } else { "unblocked" }
        ));
        self.apply_block(username, blocked)
    }

    /// `error`: shown; a refused send marks its pending message failed.
    fn server_error(
        &mut self,
        code: ErrorCode,
        message: &str,
        temp_id: Option<String>,
    ) -> Vec<Action> {
        if let Some(t) = &temp_id {
            if let Some(p) = self.pending.iter_mut().find(|p| &p.temp_id == t) {
                p.failed = Some(format!("{}: {message}", code.as_str()));
            }
        }
        self.error(format!("{}: {message}", code.as_str()));
        Vec::new()
    }
}

/// The notification of a message: who (the sender's name when the conversation is known)
/// and a one-line preview.
fn notice_for(m: &Message, convs: &[super::ConvState]) -> Action {
    let from = convs
        .iter()
        .find(|c| c.conv.id == m.conversation_id)
        .map_or_else(
            || "new conversation".into(),
            |c| c.conv.other_user.username.clone(),
        );
    let body = match (&m.content, m.media.first()) {
        (_, Some(item)) => super::media_label(item),
        (Some(text), None) => text.clone(),
        (None, None) => String::new(),
    };
    Action::Notify {
        title: format!("chat: {from}"),
        body,
    }
}

/// One reaction change applied to a message's list (idempotent: a repeat changes nothing).
pub(super) fn apply_reaction(list: &mut Vec<Reaction>, emoji: &str, user: UserId, added: bool) {
    match list.iter_mut().position(|r| r.emoji == emoji) {
        Some(i) => {
            let r = &mut list[i];
            r.user_ids.retain(|u| *u != user);
            if added {
                r.user_ids.push(user);
            } else if r.user_ids.is_empty() {
                list.remove(i);
            }
        }
        None if added => list.push(Reaction {
            emoji: emoji.to_string(),
            user_ids: vec![user],
        }),
        None => {}
    }
}
