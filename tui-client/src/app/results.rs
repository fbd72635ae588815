//! What the runtime feeds back besides keys and server events: socket state and REST results.

use std::time::{Duration, Instant};

use chat_protocol::rest::{
    BlockChange, BlockStatus, BlockedUser, Conversation, LinkItem, Message, MessageContext, Page,
    UnreadCount,
};
use chat_protocol::{ConversationId, MessageId};

use super::{media_label, Action, App, Browse, Conn, ConvState, Focus};

impl App {
    /// The socket is (re)connecting.
    pub(super) fn connecting(&mut self, attempt: u32) -> Vec<Action> {
        self.conn = Conn::Connecting { attempt };
        Vec::new()
    }

    /// The socket is down; a retry may be scheduled `retry_in` from `now`.
    pub(super) fn disconnected(
        &mut self,
        reason: String,
        retry_in: Option<Duration>,
        attempt: u32,
        now: Instant,
    ) -> Vec<Action> {
        self.conn = Conn::Offline {
            reason,
            retry_at: retry_in.map(|d| now + d),
            attempt,
        };
        self.typing_sent = None;
        // Presence is unknown while away: no green dot we cannot vouch for. The socket's
        // `status.bulk` on reconnect brings the truth back.
        self.presence.clear();
        for c in &mut self.convs {
            c.conv.other_user.online = false;
            c.typing_until = None;
        }
        Vec::new()
    }

    /// The socket is (back) up: resend everything not yet confirmed, with its temp_id,
    /// so the server's idempotency turns retries of stored messages into no-ops.
    pub fn connected(&mut self, resumed: bool) -> Vec<Action> {
        self.conn = Conn::Online;
        let mut actions: Vec<Action> = self
            .pending
            .iter()
            .filter(|p| p.failed.is_none())
            .map(super::Pending::send)
            .collect();
        // Whatever happened while away: refresh the list and counters. When the socket
        // replays what was missed, only after the replay (`sync.complete`): a snapshot
        // taken now already counts the replayed messages, and a replayed message.new that
        // came after it would count them again (the tmux test saw 5 for 3 unread).
        // Only this socket's own replay counts: one that dropped before its sync.complete
        // leaves no reload owed to the next.
        self.resync = resumed;
        if !resumed {
            actions.push(Action::LoadConversations);
            actions.push(Action::LoadUnread);
        }
        // The open conversation's history is reloaded unless the socket replays what was
        // missed; but one whose first page never came (opened while offline) loads now.
        if let Some(conv) = self.open {
            let never_loaded = self.conv_mut(conv).is_some_and(|c| {
                let first = !c.loaded;
                if first {
                    c.loading = true;
                }
                first
            });
            if !resumed || never_loaded {
                actions.push(Action::LoadHistory {
                    conv,
                    before: None,
                    after: None,
                });
            }
        }
        actions
    }

    /// The conversation list: merged with what is known (and presence seen meanwhile).
    pub(super) fn set_conversations(&mut self, list: Vec<Conversation>) -> Vec<Action> {
        for conv in list {
            match self.conv_mut(conv.id) {
                Some(c) => c.conv = conv,
                None => self.convs.push(ConvState::new(conv)),
            }
        }
        for c in &mut self.convs {
            if let Some((online, seen)) = self.presence.get(&c.conv.other_user.id) {
                c.conv.other_user.online = *online;
                if seen.is_some() {
                    c.conv.other_user.last_seen_at = *seen;
                }
            }
        }
        self.sort();
        if self.open.is_none() && !self.convs.is_empty() {
            let id = self.convs[self.selected.min(self.convs.len() - 1)].conv.id;
            return self.select_id(id);
        }
        self.read_what_is_seen()
    }

    /// A snapshot from the server (list or counters) may predate a read sent since, or
    /// show messages the user is looking at: the conversation in view is read, so mark it
    /// (again: idempotent) instead of showing a count that is not true for the user.
    fn read_what_is_seen(&mut self) -> Vec<Action> {
        match self.open {
            Some(id) if self.viewing(id) => self.mark_read(id, false),
            _ => Vec::new(),
        }
    }

    /// Unread counters, in total and per conversation.
    pub(super) fn unread(&mut self, u: UnreadCount) -> Vec<Action> {
        self.unread_total = u.total;
        for c in &u.conversations {
            if let Some(conv) = self.conv_mut(c.conversation_id) {
                conv.conv.unread_count = c.unread;
            }
        }
        self.read_what_is_seen()
    }

    /// A history page did not come: say so, and let the next attempt ask again.
    pub(super) fn history_failed(&mut self, conv: ConversationId, error: String) -> Vec<Action> {
        if let Some(c) = self.conv_mut(conv) {
            c.loading = false;
        }
        self.error(format!("history not loaded: {error}"));
        Vec::new()
    }

    /// A history page, merged before (`older`) or after the loaded window.
    pub(super) fn history(
        &mut self,
        conv: ConversationId,
        page: Page<Message>,
        older: bool,
    ) -> Vec<Action> {
        if let Some(c) = self.conv_mut(conv) {
            c.loading = false;
            c.loaded = true;
            // Pages come newest first.
            let mut fresh: Vec<Message> = page
                .data
                .into_iter()
                .filter(|m| !c.messages.iter().any(|x| x.id == m.id))
                .collect();
            fresh.sort_by_key(|m| (m.created_at, m.id));
            if older {
                c.older = if page.has_more {
                    page.next_cursor
                } else {
                    None
                };
                fresh.append(&mut c.messages);
                c.messages = fresh;
            } else {
                c.newer = if page.has_more {
                    page.next_cursor
                } else {
                    None
                };
                c.messages.append(&mut fresh);
                c.messages.sort_by_key(|m| (m.created_at, m.id));
            }
        }
        self.place_marker(conv);
        Vec::new()
    }

    /// A conversation opened with `/open`: added if new, then shown.
    pub(super) fn opened(&mut self, conv: Conversation) -> Vec<Action> {
        let id = conv.id;
        if self.conv_mut(id).is_none() {
            self.convs.push(ConvState::new(conv));
            self.sort();
        }
        self.select_id(id)
    }

    /// A jump target with the messages around it: shown, selected and highlighted.
    pub(super) fn context(&mut self, ctx: MessageContext) -> Vec<Action> {
        let Some(conv) = ctx.data.first().map(|m| m.conversation_id) else {
            self.error("message not found");
            return Vec::new();
        };
        let mut actions = Vec::new();
        if self.open != Some(conv) {
            if self.convs.iter().all(|c| c.conv.id != conv) {
                actions.push(Action::LoadConversations);
            }
            self.open = Some(conv);
        }
        if let Some(c) = self.conv_mut(conv) {
            c.messages = ctx.data.clone();
            c.messages.sort_by_key(|m| (m.created_at, m.id));
            c.older = ctx.before_cursor.clone().filter(|_| ctx.has_more_before);
            c.newer = ctx.after_cursor.clone().filter(|_| ctx.has_more_after);
            c.loaded = true;
        }
        if let Some(i) = self.convs.iter().position(|c| c.conv.id == conv) {
            self.selected = i;
        }
        self.highlight = Some(ctx.target_id);
        self.cursor = ctx.data.iter().position(|m| m.id == ctx.target_id);
        self.focus = Focus::Messages;
        self.overlay = None;
        actions
    }

    /// An upload finished: its pending placeholder gives way to the message (or an error).
    pub(super) fn media_sent(
        &mut self,
        temp_id: String,
        result: Result<Message, String>,
    ) -> Vec<Action> {
        self.pending.retain(|p| p.temp_id != temp_id);
        match result {
            Ok(m) => self.insert_message(m),
            Err(e) => self.error(format!("upload failed: {e}")),
        }
        Vec::new()
    }

    /// Media, files or links of a conversation, shown as an overlay.
    pub(super) fn browsed(
        &mut self,
        what: Browse,
        messages: &[Message],
        links: &[LinkItem],
    ) -> Vec<Action> {
        let (title, lines, targets) = match what {
            Browse::Links => (
                "Links",
                link_lines(links),
                links.iter().map(|l| Some(l.message_id)).collect(),
            ),
            Browse::Media => ("Media", media_lines(messages), media_targets(messages)),
            Browse::Files => ("Files", media_lines(messages), media_targets(messages)),
        };
        self.show_items(
            &format!("{title} (Enter: show in the conversation)"),
            lines,
            targets,
        );
        Vec::new()
    }

    /// The users I block, shown as an overlay.
    pub(super) fn blocked(&mut self, list: &[BlockedUser]) -> Vec<Action> {
        let lines = list
            .iter()
            .map(|b| {
                format!(
                    "{}  since {}",
                    b.username,
                    b.blocked_at.format("%Y-%m-%d %H:%M")
                )
            })
            .collect();
        self.show("Blocked users", lines);
        Vec::new()
    }

    /// A block or unblock went through.
    pub(super) fn block_changed(&mut self, c: BlockChange) -> Vec<Action> {
        self.info(format!(
            "{} {}",
            c.username,
            if c.blocked { "blocked" } else { "unblocked" }
        ));
        self.apply_block(&c.username, c.blocked)
    }

    /// What a block I made (here or on another device) changes on screen, as the server
    /// changes it (SPEC "Blocking"): the conversation leaves my list, and its presence is
    /// no longer known; unblocking brings it back with fresh counts.
    pub(super) fn apply_block(&mut self, username: &str, blocked: bool) -> Vec<Action> {
        if !blocked {
            return vec![Action::LoadConversations, Action::LoadUnread];
        }
        let Some(i) = self
            .convs
            .iter()
            .position(|c| c.conv.other_user.username == username)
        else {
            return Vec::new();
        };
        let gone = self.convs.remove(i);
        self.presence.remove(&gone.conv.other_user.id);
        self.unread_total = self.unread_total.saturating_sub(gone.conv.unread_count);
        let mut actions = Vec::new();
        if self.open == Some(gone.conv.id) {
            actions.extend(self.stop_typing());
            self.open = None;
            self.cursor = None;
            self.highlight = None;
            self.scroll = 0;
        }
        self.selected = self.selected.min(self.convs.len().saturating_sub(1));
        actions
    }

    /// Whether I block a user and whether they block me.
    pub(super) fn block_status(&mut self, username: &str, status: BlockStatus) -> Vec<Action> {
        self.info(format!(
            "{username}: blocked by me: {}, blocked me: {}",
            yes(status.blocked_by_me),
            yes(status.blocked_me)
        ));
        Vec::new()
    }
}

/// One line per link: `2024-05-01 12:00  https://…`.
fn link_lines(links: &[LinkItem]) -> Vec<String> {
    links
        .iter()
        .map(|l| format!("{}  {}", l.created_at.format("%Y-%m-%d %H:%M"), l.url))
        .collect()
}

/// One line per media item of the messages: date, label and message id.
/// The message of each line of [`media_lines`].
fn media_targets(messages: &[Message]) -> Vec<Option<MessageId>> {
    messages
        .iter()
        .flat_map(|m| m.media.iter().map(move |_| Some(m.id)))
        .collect()
}

fn media_lines(messages: &[Message]) -> Vec<String> {
    messages
        .iter()
        .flat_map(|m| {
            m.media.iter().map(move |i| {
                format!(
                    "{}  {}  ({})",
                    m.created_at.format("%Y-%m-%d %H:%M"),
                    media_label(i),
                    m.id
                )
            })
        })
        .collect()
}

/// `yes` or `no`.
fn yes(b: bool) -> &'static str {
    if b {
        "yes"
    } else {
        "no"
    }
}
