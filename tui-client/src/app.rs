//! The interactive client's state, and everything that changes it: keys, mouse, server
//! events and REST results go in; [`Action`]s (what to send or fetch) come out. No I/O
//! happens here, so every behaviour is unit-testable and the renderer only reads.

use std::collections::HashMap;
use std::path::PathBuf;
use std::time::{Duration, Instant};

use chat_protocol::rest::{
    BlockChange, BlockStatus, BlockedUser, Conversation, LinkItem, MediaItem, Message,
    MessageContext, MessageType, Page, UnreadCount,
};
use chat_protocol::ws::{ClientEvent, PresenceEntry, ServerEvent};
use chat_protocol::{ConversationId, MessageId, UserId};
use chrono::{DateTime, Utc};
use crossterm::event::{KeyCode, KeyEvent, KeyEventKind, KeyModifiers, MouseEvent, MouseEventKind};

/// How often a `typing.start` is repeated while the user keeps typing (the server's relay
/// expires after 5 s), and how long after the last key a `typing.stop` follows.
pub const TYPING_REPEAT: Duration = Duration::from_secs(3);
pub const TYPING_IDLE: Duration = Duration::from_secs(3);
/// The other user's typing indicator disappears this long after their last `typing.start`.
pub const TYPING_SHOWN: Duration = Duration::from_secs(5);
/// Page size for history.
pub const PAGE: u32 = 50;

/// The socket's state, shown in the status bar.
#[derive(Debug, Clone, PartialEq)]
pub enum Conn {
    Connecting {
        attempt: u32,
    },
    Online,
    Offline {
        reason: String,
        retry_at: Option<Instant>,
        attempt: u32,
    },
}

/// Which pane the arrow keys drive.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Focus {
    Input,
    Conversations,
    Messages,
}

/// A message typed here and not yet confirmed by `message.sent`.
#[derive(Debug, Clone, PartialEq)]
pub struct Pending {
    pub temp_id: String,
    pub conversation_id: ConversationId,
    pub content: String,
    pub created_at: DateTime<Utc>,
    pub failed: Option<String>,
}

/// One conversation as this client knows it.
#[derive(Debug, Clone)]
pub struct ConvState {
    pub conv: Conversation,
    /// Oldest first.
    pub messages: Vec<Message>,
    pub older: Option<String>,
    /// Set after a jump: newer messages exist past the loaded window.
    pub newer: Option<String>,
    pub loaded: bool,
    pub loading: bool,
    pub typing_until: Option<Instant>,
}

/// A read-only list shown over the message pane (media, files, links, blocked users,
/// block status, help).
#[derive(Debug, Clone, PartialEq)]
pub struct Overlay {
    pub title: String,
    pub lines: Vec<String>,
}

/// What the runtime must do.
#[derive(Debug, Clone, PartialEq)]
pub enum Action {
    /// A frame for the socket (dropped when offline: pending messages are resent on
    /// reconnect by [`App::connected`]).
    Ws(ClientEvent),
    LoadConversations,
    LoadUnread,
    LoadHistory {
        conv: ConversationId,
        before: Option<String>,
        after: Option<String>,
    },
    OpenWith(String),
    SendMedia {
        conv: ConversationId,
        paths: Vec<PathBuf>,
        caption: Option<String>,
        temp_id: String,
    },
    Block(String),
    Unblock(String),
    BlockStatus(String),
    Blocked,
    Browse {
        conv: ConversationId,
        what: Browse,
    },
    Jump(MessageId),
    /// Download a media item; `open` also hands it to the desktop's opener.
    Save {
        item: MediaItem,
        open: bool,
    },
    Quit,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Browse {
    Media,
    Files,
    Links,
}

/// Results and events fed back into the app.
#[derive(Debug)]
pub enum Update {
    Key(KeyEvent),
    Mouse(MouseEvent),
    Resize,
    Connecting {
        attempt: u32,
    },
    /// The socket is up; `resumed` when it resumed from the last position (`?since=`):
    /// what happened while away is replayed on the socket, so history is not reloaded.
    Connected {
        resumed: bool,
    },
    Disconnected {
        reason: String,
        retry_in: Option<Duration>,
        attempt: u32,
    },
    Server(ServerEvent),
    Conversations(Vec<Conversation>),
    Unread(UnreadCount),
    History {
        conv: ConversationId,
        page: Page<Message>,
        older: bool,
    },
    Opened(Conversation),
    Context(MessageContext),
    MediaSent {
        temp_id: String,
        result: Result<Message, String>,
    },
    Browsed {
        what: Browse,
        messages: Vec<Message>,
        links: Vec<LinkItem>,
    },
    Blocked(Vec<BlockedUser>),
    BlockChanged(BlockChange),
    BlockStatus {
        username: String,
        status: BlockStatus,
    },
    Info(String),
    Error(String),
}

pub struct App {
    pub me: Option<(UserId, String)>,
    pub conn: Conn,
    pub convs: Vec<ConvState>,
    pub selected: usize,
    /// The conversation shown in the message pane.
    pub open: Option<ConversationId>,
    pub pending: Vec<Pending>,
    pub input: String,
    pub focus: Focus,
    /// Lines scrolled up from the bottom of the message pane.
    pub scroll: usize,
    /// Selected message (index into the open conversation's messages) in Messages focus.
    pub cursor: Option<usize>,
    /// Jump target to highlight.
    pub highlight: Option<MessageId>,
    pub overlay: Option<Overlay>,
    pub help: bool,
    pub status: Option<(String, bool)>,
    pub unread_total: u64,
    pub quit: bool,
    presence: HashMap<UserId, (bool, Option<DateTime<Utc>>)>,
    typing_sent: Option<(ConversationId, Instant)>,
    last_key: Option<Instant>,
    /// Set by the renderer: the message pane's height, for paging and "load older when the
    /// top is reached".
    pub pane_height: usize,
    /// Set by the renderer: total wrapped lines of the open conversation.
    pub pane_lines: usize,
}

impl Default for App {
    fn default() -> Self {
        Self::new()
    }
}

impl App {
    pub fn new() -> Self {
        App {
            me: None,
            conn: Conn::Connecting { attempt: 0 },
            convs: Vec::new(),
            selected: 0,
            open: None,
            pending: Vec::new(),
            input: String::new(),
            focus: Focus::Input,
            scroll: 0,
            cursor: None,
            highlight: None,
            overlay: None,
            help: false,
            status: None,
            unread_total: 0,
            quit: false,
            presence: HashMap::new(),
            typing_sent: None,
            last_key: None,
            pane_height: 10,
            pane_lines: 0,
        }
    }

    /// What to fetch at start.
    pub fn start(&self) -> Vec<Action> {
        vec![Action::LoadConversations, Action::LoadUnread]
    }

    pub fn open_conv(&self) -> Option<&ConvState> {
        let id = self.open?;
        self.convs.iter().find(|c| c.conv.id == id)
    }

    fn conv_mut(&mut self, id: ConversationId) -> Option<&mut ConvState> {
        self.convs.iter_mut().find(|c| c.conv.id == id)
    }

    /// Pending messages of one conversation, oldest first.
    pub fn pending_in(&self, conv: ConversationId) -> impl Iterator<Item = &Pending> {
        self.pending
            .iter()
            .filter(move |p| p.conversation_id == conv)
    }

    pub fn is_mine(&self, m: &Message) -> bool {
        self.me.as_ref().is_some_and(|(id, _)| *id == m.sender_id)
    }

    pub fn typing(&self, conv: &ConvState, now: Instant) -> bool {
        conv.typing_until.is_some_and(|t| t > now)
    }

    fn info(&mut self, s: impl Into<String>) {
        self.status = Some((s.into(), false));
    }

    fn error(&mut self, s: impl Into<String>) {
        self.status = Some((s.into(), true));
    }

    /// Apply one update; return what the runtime must do next.
    pub fn update(&mut self, update: Update, now: Instant) -> Vec<Action> {
        match update {
            Update::Key(key) => self.key(key, now),
            Update::Mouse(m) => self.mouse(m),
            Update::Resize => Vec::new(),
            Update::Connecting { attempt } => {
                self.conn = Conn::Connecting { attempt };
                Vec::new()
            }
            Update::Connected { resumed } => self.connected(resumed),
            Update::Disconnected {
                reason,
                retry_in,
                attempt,
            } => {
                self.conn = Conn::Offline {
                    reason,
                    retry_at: retry_in.map(|d| now + d),
                    attempt,
                };
                self.typing_sent = None;
                Vec::new()
            }
            Update::Server(ev) => self.server_event(ev, now),
            Update::Conversations(list) => self.set_conversations(list),
            Update::Unread(u) => {
                self.unread_total = u.total;
                for c in &u.conversations {
                    if let Some(conv) = self.conv_mut(c.conversation_id) {
                        conv.conv.unread_count = c.unread;
                    }
                }
                Vec::new()
            }
            Update::History { conv, page, older } => {
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
                Vec::new()
            }
            Update::Opened(conv) => {
                let id = conv.id;
                if self.conv_mut(id).is_none() {
                    self.convs.push(ConvState::new(conv));
                    self.sort();
                }
                self.select_id(id)
            }
            Update::Context(ctx) => {
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
            Update::MediaSent { temp_id, result } => {
                self.pending.retain(|p| p.temp_id != temp_id);
                match result {
                    Ok(m) => {
                        self.insert_message(m);
                        Vec::new()
                    }
                    Err(e) => {
                        self.error(format!("upload failed: {e}"));
                        Vec::new()
                    }
                }
            }
            Update::Browsed {
                what,
                messages,
                links,
            } => {
                let (title, lines) = match what {
                    Browse::Links => (
                        "Links",
                        links
                            .iter()
                            .map(|l| {
                                format!("{}  {}", l.created_at.format("%Y-%m-%d %H:%M"), l.url)
                            })
                            .collect(),
                    ),
                    Browse::Media | Browse::Files => (
                        if what == Browse::Media {
                            "Media"
                        } else {
                            "Files"
                        },
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
                            .collect(),
                    ),
                };
                self.show(title, lines);
                Vec::new()
            }
            Update::Blocked(list) => {
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
            Update::BlockChanged(c) => {
                self.info(format!(
                    "{} {}",
                    c.username,
                    if c.blocked { "blocked" } else { "unblocked" }
                ));
                Vec::new()
            }
            Update::BlockStatus { username, status } => {
                self.info(format!(
                    "{username}: blocked by me: {}, blocked me: {}",
                    yes(status.blocked_by_me),
                    yes(status.blocked_me)
                ));
                Vec::new()
            }
            Update::Info(s) => {
                self.info(s);
                Vec::new()
            }
            Update::Error(s) => {
                self.error(s);
                Vec::new()
            }
        }
    }

    fn show(&mut self, title: &str, mut lines: Vec<String>) {
        if lines.is_empty() {
            lines.push("(nothing yet)".into());
        }
        self.overlay = Some(Overlay {
            title: title.into(),
            lines,
        });
    }

    /// The socket is (back) up: resend everything not yet confirmed, with its temp_id,
    /// so the server's idempotency turns retries of stored messages into no-ops.
    pub fn connected(&mut self, resumed: bool) -> Vec<Action> {
        self.conn = Conn::Online;
        let mut actions: Vec<Action> = self
            .pending
            .iter()
            .filter(|p| p.failed.is_none())
            .map(|p| {
                Action::Ws(ClientEvent::MessageSend {
                    conversation_id: p.conversation_id,
                    content: p.content.clone(),
                    temp_id: Some(p.temp_id.clone()),
                })
            })
            .collect();
        // Whatever happened while away: refresh the list and counters, and the open
        // conversation unless the socket replays what was missed.
        actions.push(Action::LoadConversations);
        actions.push(Action::LoadUnread);
        if let (Some(conv), false) = (self.open, resumed) {
            actions.push(Action::LoadHistory {
                conv,
                before: None,
                after: None,
            });
        }
        actions
    }

    fn set_conversations(&mut self, list: Vec<Conversation>) -> Vec<Action> {
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
        Vec::new()
    }

    /// Most recent activity first; the selection follows the open conversation.
    fn sort(&mut self) {
        self.convs.sort_by_key(|c| std::cmp::Reverse(c.activity()));
        self.selected = self
            .open
            .and_then(|id| self.convs.iter().position(|c| c.conv.id == id))
            .unwrap_or(0);
    }

    /// Open a conversation: load its history on first view and mark it read.
    fn select_id(&mut self, id: ConversationId) -> Vec<Action> {
        let mut actions = Vec::new();
        if self.open != Some(id) {
            actions.extend(self.stop_typing());
        }
        self.open = Some(id);
        self.scroll = 0;
        self.cursor = None;
        self.highlight = None;
        self.overlay = None;
        if let Some(i) = self.convs.iter().position(|c| c.conv.id == id) {
            self.selected = i;
        }
        let Some(c) = self.conv_mut(id) else {
            return actions;
        };
        if !c.loaded && !c.loading {
            c.loading = true;
            actions.push(Action::LoadHistory {
                conv: id,
                before: None,
                after: None,
            });
        }
        actions.extend(self.mark_read(id));
        actions
    }

    fn mark_read(&mut self, id: ConversationId) -> Vec<Action> {
        let Some(c) = self.conv_mut(id) else {
            return Vec::new();
        };
        let unread = std::mem::take(&mut c.conv.unread_count);
        if unread == 0 {
            return Vec::new();
        }
        self.unread_total = self.unread_total.saturating_sub(unread);
        vec![Action::Ws(ClientEvent::MessageRead {
            conversation_id: id,
            up_to_message_id: None,
        })]
    }

    fn insert_message(&mut self, m: Message) {
        let Some(c) = self.conv_mut(m.conversation_id) else {
            return;
        };
        if c.messages.iter().any(|x| x.id == m.id) {
            return;
        }
        if c.newer.is_none() {
            // Only append when the loaded window reaches the present.
            let at = c
                .messages
                .partition_point(|x| (x.created_at, x.id) <= (m.created_at, m.id));
            c.messages.insert(at, m.clone());
        }
        if c.conv.last_message_at.is_none_or(|t| t <= m.created_at) {
            c.conv.last_message_at = Some(m.created_at);
            c.conv.last_message = Some(m);
        }
    }

    fn server_event(&mut self, ev: ServerEvent, now: Instant) -> Vec<Action> {
        match ev {
            ServerEvent::ConnectionSuccess {
                user_id, username, ..
            } => {
                self.me = Some((user_id, username));
                Vec::new()
            }
            // Positions are the socket task's business (it resumes from them).
            ServerEvent::SyncComplete { .. } => Vec::new(),
            ServerEvent::MessageSent { temp_id, message } => {
                if let Some(t) = temp_id {
                    self.pending.retain(|p| p.temp_id != t);
                }
                self.insert_message(message);
                self.sort();
                Vec::new()
            }
            ServerEvent::MessageNew { message } => {
                let conv = message.conversation_id;
                let known = self.convs.iter().any(|c| c.conv.id == conv);
                let mine = self.is_mine(&message);
                if let Some(c) = self.conv_mut(conv) {
                    c.typing_until = None;
                    if !mine && !c.messages.iter().any(|x| x.id == message.id) {
                        c.conv.unread_count += 1;
                        self.unread_total += 1;
                    }
                }
                self.insert_message(message);
                self.sort();
                if !known {
                    return vec![Action::LoadConversations, Action::LoadUnread];
                }
                if self.open == Some(conv) && !mine {
                    return self.mark_read(conv);
                }
                Vec::new()
            }
            ServerEvent::MessageReadAck {
                conversation_id, ..
            } => {
                // My read of their messages, confirmed.
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
            ServerEvent::MessageReadUpdate {
                conversation_id,
                reader_id,
                up_to_message_id,
                read_at,
            } => {
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
            ServerEvent::TypingStart {
                conversation_id, ..
            } => {
                if let Some(c) = self.conv_mut(conversation_id) {
                    c.typing_until = Some(now + TYPING_SHOWN);
                }
                Vec::new()
            }
            ServerEvent::TypingStop {
                conversation_id, ..
            } => {
                if let Some(c) = self.conv_mut(conversation_id) {
                    c.typing_until = None;
                }
                Vec::new()
            }
            ServerEvent::UserOnline { user_id } => {
                self.presence_of(user_id, true, None);
                Vec::new()
            }
            ServerEvent::UserOffline {
                user_id,
                last_seen_at,
            } => {
                self.presence_of(user_id, false, Some(last_seen_at));
                Vec::new()
            }
            ServerEvent::StatusBulk { users } => {
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
            ServerEvent::Pong {} => Vec::new(),
            ServerEvent::BlockUpdated { username, blocked } => {
                self.info(format!(
                    "{username} {}",
                    if blocked { "blocked" } else { "unblocked" }
                ));
                Vec::new()
            }
            ServerEvent::Error {
                code,
                message,
                temp_id,
            } => {
                if let Some(t) = &temp_id {
                    if let Some(p) = self.pending.iter_mut().find(|p| &p.temp_id == t) {
                        p.failed = Some(code.as_str().to_string());
                    }
                }
                self.error(format!("{}: {message}", code.as_str()));
                Vec::new()
            }
        }
    }

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

    /// Timers: typing indicators expire, `typing.stop` after an idle input.
    pub fn tick(&mut self, now: Instant) -> Vec<Action> {
        for c in &mut self.convs {
            if c.typing_until.is_some_and(|t| t <= now) {
                c.typing_until = None;
            }
        }
        if self
            .last_key
            .is_some_and(|k| now.duration_since(k) >= TYPING_IDLE)
        {
            return self.stop_typing();
        }
        Vec::new()
    }

    fn stop_typing(&mut self) -> Vec<Action> {
        match self.typing_sent.take() {
            Some((conv, _)) if self.conn == Conn::Online => {
                vec![Action::Ws(ClientEvent::TypingStop {
                    conversation_id: conv,
                })]
            }
            _ => Vec::new(),
        }
    }

    fn typed(&mut self, now: Instant) -> Vec<Action> {
        self.last_key = Some(now);
        let Some(conv) = self.open else {
            return Vec::new();
        };
        if self.conn != Conn::Online || self.input.starts_with('/') {
            return Vec::new();
        }
        match self.typing_sent {
            Some((c, at)) if c == conv && now.duration_since(at) < TYPING_REPEAT => Vec::new(),
            _ => {
                self.typing_sent = Some((conv, now));
                vec![Action::Ws(ClientEvent::TypingStart {
                    conversation_id: conv,
                })]
            }
        }
    }

    fn mouse(&mut self, m: MouseEvent) -> Vec<Action> {
        match m.kind {
            MouseEventKind::ScrollUp => self.scroll_up(3),
            MouseEventKind::ScrollDown => {
                self.scroll = self.scroll.saturating_sub(3);
                self.maybe_load_newer()
            }
            _ => Vec::new(),
        }
    }

    fn scroll_up(&mut self, n: usize) -> Vec<Action> {
        let max = self.pane_lines.saturating_sub(self.pane_height);
        self.scroll = (self.scroll + n).min(max);
        if self.scroll >= max {
            return self.load_older();
        }
        Vec::new()
    }

    fn load_older(&mut self) -> Vec<Action> {
        self.load_page(true)
    }

    fn maybe_load_newer(&mut self) -> Vec<Action> {
        if self.scroll > 0 {
            return Vec::new();
        }
        self.load_page(false)
    }

    /// The next page of the open conversation past its `older` (or `newer`) cursor, unless
    /// there is none or one is already loading.
    fn load_page(&mut self, older: bool) -> Vec<Action> {
        let Some(id) = self.open else {
            return Vec::new();
        };
        let Some(c) = self.conv_mut(id) else {
            return Vec::new();
        };
        let cursor = if older { &c.older } else { &c.newer };
        match cursor.clone() {
            Some(cursor) if !c.loading => {
                c.loading = true;
                let (before, after) = if older {
                    (Some(cursor), None)
                } else {
                    (None, Some(cursor))
                };
                vec![Action::LoadHistory {
                    conv: id,
                    before,
                    after,
                }]
            }
            _ => Vec::new(),
        }
    }

    fn key(&mut self, key: KeyEvent, now: Instant) -> Vec<Action> {
        if key.kind == KeyEventKind::Release {
            return Vec::new();
        }
        let ctrl = key.modifiers.contains(KeyModifiers::CONTROL);
        if ctrl && matches!(key.code, KeyCode::Char('c') | KeyCode::Char('q')) {
            self.quit = true;
            return vec![Action::Quit];
        }
        if self.help || self.overlay.is_some() {
            if matches!(
                key.code,
                KeyCode::Esc | KeyCode::Char('q') | KeyCode::Char('?') | KeyCode::Enter
            ) {
                self.help = false;
                self.overlay = None;
            }
            return Vec::new();
        }
        match key.code {
            KeyCode::Tab => {
                self.focus = match self.focus {
                    Focus::Input => Focus::Conversations,
                    Focus::Conversations => Focus::Messages,
                    Focus::Messages => Focus::Input,
                };
                if self.focus == Focus::Messages && self.cursor.is_none() {
                    self.cursor = self
                        .open_conv()
                        .and_then(|c| c.messages.len().checked_sub(1));
                }
                return Vec::new();
            }
            KeyCode::BackTab => {
                self.focus = Focus::Input;
                return Vec::new();
            }
            KeyCode::PageUp => return self.scroll_up(self.pane_height.max(2) - 1),
            KeyCode::PageDown => {
                self.scroll = self.scroll.saturating_sub(self.pane_height.max(2) - 1);
                return self.maybe_load_newer();
            }
            KeyCode::Char('n') if ctrl => return self.move_conv(1),
            KeyCode::Char('p') if ctrl => return self.move_conv(-1),
            _ => {}
        }
        match self.focus {
            Focus::Input => self.key_input(key, now),
            Focus::Conversations => match key.code {
                KeyCode::Up | KeyCode::Char('k') => self.move_conv(-1),
                KeyCode::Down | KeyCode::Char('j') => self.move_conv(1),
                KeyCode::Enter => {
                    self.focus = Focus::Input;
                    Vec::new()
                }
                KeyCode::Char('?') => {
                    self.help = true;
                    Vec::new()
                }
                KeyCode::Char('/') => {
                    self.focus = Focus::Input;
                    self.input = "/".into();
                    Vec::new()
                }
                KeyCode::Esc => {
                    self.focus = Focus::Input;
                    Vec::new()
                }
                _ => Vec::new(),
            },
            Focus::Messages => self.key_messages(key),
        }
    }

    fn move_conv(&mut self, delta: isize) -> Vec<Action> {
        if self.convs.is_empty() {
            return Vec::new();
        }
        let n = self.convs.len() as isize;
        let i = (self.selected as isize + delta).clamp(0, n - 1) as usize;
        let id = self.convs[i].conv.id;
        self.select_id(id)
    }

    fn key_messages(&mut self, key: KeyEvent) -> Vec<Action> {
        let len = self.open_conv().map_or(0, |c| c.messages.len());
        match key.code {
            KeyCode::Up | KeyCode::Char('k') => {
                let at = self.cursor.unwrap_or(len).saturating_sub(1);
                self.cursor = (len > 0).then_some(at);
                if at == 0 {
                    return self.load_older();
                }
                Vec::new()
            }
            KeyCode::Down | KeyCode::Char('j') => {
                if len > 0 {
                    self.cursor = Some((self.cursor.unwrap_or(0) + 1).min(len - 1));
                }
                Vec::new()
            }
            KeyCode::Char('s') | KeyCode::Char('o') => {
                let open = key.code == KeyCode::Char('o');
                let item = self
                    .cursor
                    .and_then(|i| self.open_conv().and_then(|c| c.messages.get(i)))
                    .and_then(|m| m.media.first().cloned());
                match item {
                    Some(item) => vec![Action::Save { item, open }],
                    None => {
                        self.error("the selected message has no media");
                        Vec::new()
                    }
                }
            }
            KeyCode::Char('?') => {
                self.help = true;
                Vec::new()
            }
            KeyCode::Esc | KeyCode::Enter => {
                self.focus = Focus::Input;
                self.highlight = None;
                Vec::new()
            }
            KeyCode::Char('/') => {
                self.focus = Focus::Input;
                self.input = "/".into();
                Vec::new()
            }
            _ => Vec::new(),
        }
    }

    fn key_input(&mut self, key: KeyEvent, now: Instant) -> Vec<Action> {
        let ctrl = key.modifiers.contains(KeyModifiers::CONTROL);
        match key.code {
            KeyCode::Char('u') if ctrl => {
                self.input.clear();
                Vec::new()
            }
            KeyCode::Char('?') if self.input.is_empty() => {
                self.help = true;
                Vec::new()
            }
            KeyCode::Char(ch) if !ctrl => {
                self.input.push(ch);
                self.typed(now)
            }
            KeyCode::Backspace => {
                self.input.pop();
                if self.input.is_empty() {
                    self.stop_typing()
                } else {
                    Vec::new()
                }
            }
            KeyCode::Up => self.move_conv(-1),
            KeyCode::Down => self.move_conv(1),
            KeyCode::Esc => {
                self.input.clear();
                self.status = None;
                self.stop_typing()
            }
            KeyCode::Enter => {
                let line = std::mem::take(&mut self.input);
                let mut actions = self.stop_typing();
                actions.extend(self.submit(line.trim(), now));
                actions
            }
            _ => Vec::new(),
        }
    }

    /// The other user of the open conversation, for commands whose argument is optional.
    fn other(&self, arg: &str) -> Option<String> {
        if !arg.is_empty() {
            return Some(arg.to_string());
        }
        self.open_conv().map(|c| c.conv.other_user.username.clone())
    }

    /// Send the line, or run it when it is a `/command`.
    pub fn submit(&mut self, line: &str, _now: Instant) -> Vec<Action> {
        if line.is_empty() {
            return Vec::new();
        }
        self.scroll = 0;
        let Some(cmd) = line.strip_prefix('/') else {
            return self.send_text(line.to_string());
        };
        let (name, arg) = cmd.split_once(' ').unwrap_or((cmd, ""));
        let arg = arg.trim();
        let need_conv = |app: &mut App| -> Option<ConversationId> {
            if app.open.is_none() {
                app.error("open a conversation first: /open USERNAME");
            }
            app.open
        };
        match name {
            "open" | "o" | "msg" => {
                if arg.is_empty() {
                    self.error("usage: /open USERNAME");
                    return Vec::new();
                }
                if let Some(c) = self
                    .convs
                    .iter()
                    .find(|c| c.conv.other_user.username == arg)
                {
                    let id = c.conv.id;
                    return self.select_id(id);
                }
                vec![Action::OpenWith(arg.to_string())]
            }
            "attach" | "a" => {
                let Some(conv) = need_conv(self) else {
                    return Vec::new();
                };
                let (paths, caption) = match arg.split_once(" -- ") {
                    Some((p, c)) => (p, Some(c.trim().to_string()).filter(|c| !c.is_empty())),
                    None => (arg, None),
                };
                let paths: Vec<PathBuf> = paths.split_whitespace().map(PathBuf::from).collect();
                if paths.is_empty() {
                    self.error("usage: /attach PATH... [-- caption]");
                    return Vec::new();
                }
                let temp_id = new_temp_id();
                self.pending.push(Pending {
                    temp_id: temp_id.clone(),
                    conversation_id: conv,
                    content: format!(
                        "[uploading {}]",
                        paths
                            .iter()
                            .map(|p| p.file_name().map_or_else(
                                || p.display().to_string(),
                                |n| n.to_string_lossy().into_owned()
                            ))
                            .collect::<Vec<_>>()
                            .join(", ")
                    ),
                    created_at: Utc::now(),
                    failed: None,
                });
                vec![Action::SendMedia {
                    conv,
                    paths,
                    caption,
                    temp_id,
                }]
            }
            "block" | "unblock" | "status" => match self.other(arg) {
                Some(user) => vec![match name {
                    "block" => Action::Block(user),
                    "unblock" => Action::Unblock(user),
                    _ => Action::BlockStatus(user),
                }],
                None => {
                    self.error(format!("usage: /{name} USERNAME"));
                    Vec::new()
                }
            },
            "blocked" => vec![Action::Blocked],
            "media" | "files" | "links" => {
                let Some(conv) = need_conv(self) else {
                    return Vec::new();
                };
                let what = match name {
                    "media" => Browse::Media,
                    "files" => Browse::Files,
                    _ => Browse::Links,
                };
                vec![Action::Browse { conv, what }]
            }
            "jump" | "j" => match arg.parse::<MessageId>() {
                Ok(id) => vec![Action::Jump(id)],
                Err(_) => {
                    self.error("usage: /jump MESSAGE_ID");
                    Vec::new()
                }
            },
            "unread" => vec![Action::LoadUnread, Action::LoadConversations],
            "help" | "h" => {
                self.help = true;
                Vec::new()
            }
            "quit" | "q" => {
                self.quit = true;
                vec![Action::Quit]
            }
            _ => {
                self.error(format!("unknown command /{name} (press ? for help)"));
                Vec::new()
            }
        }
    }

    fn send_text(&mut self, content: String) -> Vec<Action> {
        let Some(conv) = self.open else {
            self.error("open a conversation first: /open USERNAME");
            return Vec::new();
        };
        let temp_id = new_temp_id();
        self.pending.push(Pending {
            temp_id: temp_id.clone(),
            conversation_id: conv,
            content: content.clone(),
            created_at: Utc::now(),
            failed: None,
        });
        // Offline: it stays pending and goes out on reconnect.
        if self.conn != Conn::Online {
            self.info("offline: message queued, it is sent on reconnect");
            return Vec::new();
        }
        vec![Action::Ws(ClientEvent::MessageSend {
            conversation_id: conv,
            content,
            temp_id: Some(temp_id),
        })]
    }
}

impl ConvState {
    pub fn new(conv: Conversation) -> Self {
        ConvState {
            conv,
            messages: Vec::new(),
            older: None,
            newer: None,
            loaded: false,
            loading: false,
            typing_until: None,
        }
    }

    fn activity(&self) -> DateTime<Utc> {
        self.conv.last_message_at.unwrap_or(self.conv.created_at)
    }
}

fn yes(b: bool) -> &'static str {
    if b {
        "yes"
    } else {
        "no"
    }
}

/// A client-chosen id for idempotent sends (max 64 chars per SPEC).
pub fn new_temp_id() -> String {
    format!("tui-{}", uuid::Uuid::new_v4().simple())
}

/// `[image 1024x768 photo.jpg]`, `[video 0:12 640x360 clip.mp4]`, `[file 12 KB notes.pdf]`.
pub fn media_label(item: &MediaItem) -> String {
    let mut parts = vec![match item.kind {
        MessageType::Image => "image".to_string(),
        MessageType::Video => "video".to_string(),
        MessageType::File => "file".to_string(),
        MessageType::Text => "text".to_string(),
    }];
    if let Some(ms) = item.duration_ms {
        let s = ms / 1000;
        parts.push(format!("{}:{:02}", s / 60, s % 60));
    }
    if let (Some(w), Some(h)) = (item.width, item.height) {
        parts.push(format!("{w}x{h}"));
    }
    if item.kind == MessageType::File {
        parts.push(human_size(item.size));
    }
    if let Some(name) = &item.name {
        parts.push(name.clone());
    }
    format!("[{}]", parts.join(" "))
}

pub fn human_size(n: u64) -> String {
    const UNITS: [&str; 4] = ["B", "KB", "MB", "GB"];
    let mut v = n as f64;
    let mut u = 0;
    while v >= 1024.0 && u < UNITS.len() - 1 {
        v /= 1024.0;
        u += 1;
    }
    if u == 0 {
        format!("{n} B")
    } else {
        format!("{v:.1} {}", UNITS[u])
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::ui::tests::{msg, sample};
    use chat_protocol::error::ErrorCode;

    fn key(code: KeyCode) -> Update {
        Update::Key(KeyEvent::new(code, KeyModifiers::NONE))
    }

    fn type_line(app: &mut App, s: &str, now: Instant) -> Vec<Action> {
        let mut out = Vec::new();
        for ch in s.chars() {
            out.extend(app.update(key(KeyCode::Char(ch)), now));
        }
        out.extend(app.update(key(KeyCode::Enter), now));
        out
    }

    #[test]
    fn a_sent_message_is_optimistic_then_reconciled_once() {
        let (mut app, me, bob) = sample();
        let now = Instant::now();
        let actions = type_line(&mut app, "hi", now);
        let temp = app.pending[0].temp_id.clone();
        assert!(actions.contains(&Action::Ws(ClientEvent::MessageSend {
            conversation_id: bob.id,
            content: "hi".into(),
            temp_id: Some(temp.clone()),
        })));
        let mut stored = msg(&bob, me, bob.other_user.id, "hi");
        stored.temp_id = Some(temp.clone());
        let before = app.open_conv().map(|c| c.messages.len()).unwrap_or(0);
        for _ in 0..2 {
            // A replayed ack (after a resend) changes nothing.
            app.update(
                Update::Server(ServerEvent::MessageSent {
                    temp_id: Some(temp.clone()),
                    message: stored.clone(),
                }),
                now,
            );
        }
        assert!(app.pending.is_empty());
        assert_eq!(app.open_conv().map(|c| c.messages.len()), Some(before + 1));
    }

    #[test]
    fn typing_starts_once_repeats_after_3s_and_stops_when_idle() {
        let (mut app, _, bob) = sample();
        let t0 = Instant::now();
        let start = Action::Ws(ClientEvent::TypingStart {
            conversation_id: bob.id,
        });
        assert_eq!(app.update(key(KeyCode::Char('a')), t0), vec![start.clone()]);
        assert!(app
            .update(key(KeyCode::Char('b')), t0 + Duration::from_secs(1))
            .is_empty());
        assert_eq!(
            app.update(key(KeyCode::Char('c')), t0 + Duration::from_secs(4)),
            vec![start]
        );
        assert!(app.tick(t0 + Duration::from_secs(5)).is_empty());
        assert_eq!(
            app.tick(t0 + Duration::from_secs(8)),
            vec![Action::Ws(ClientEvent::TypingStop {
                conversation_id: bob.id
            })]
        );
        // Commands are not "typing".
        app.input.clear();
        assert!(app
            .update(key(KeyCode::Char('/')), t0 + Duration::from_secs(20))
            .is_empty());
    }

    #[test]
    fn incoming_messages_mark_the_open_conversation_read_and_count_the_others() {
        let (mut app, me, bob) = sample();
        let now = Instant::now();
        let m = msg(&bob, bob.other_user.id, me, "yo");
        let actions = app.update(Update::Server(ServerEvent::MessageNew { message: m }), now);
        assert!(actions.contains(&Action::Ws(ClientEvent::MessageRead {
            conversation_id: bob.id,
            up_to_message_id: None,
        })));
        let carol = app
            .convs
            .iter()
            .find(|c| c.conv.other_user.username == "carol")
            .map(|c| c.conv.clone())
            .expect("carol");
        let total = app.unread_total;
        let m = msg(&carol, carol.other_user.id, me, "psst");
        let actions = app.update(Update::Server(ServerEvent::MessageNew { message: m }), now);
        assert!(actions.is_empty(), "{actions:?}");
        assert_eq!(app.unread_total, total + 1);
        // carol now has the latest activity: first in the list.
        assert_eq!(app.convs[0].conv.id, carol.id);
        // Selecting it marks it read.
        let actions = app.update(
            Update::Key(KeyEvent::new(KeyCode::Up, KeyModifiers::NONE)),
            now,
        );
        assert_eq!(app.open, Some(carol.id));
        assert!(actions.contains(&Action::Ws(ClientEvent::MessageRead {
            conversation_id: carol.id,
            up_to_message_id: None,
        })));
    }

    #[test]
    fn read_updates_turn_my_messages_read_and_presence_follows_events() {
        let (mut app, me, bob) = sample();
        let now = Instant::now();
        let m = msg(&bob, me, bob.other_user.id, "unread one");
        let id = m.id;
        app.update(
            Update::Server(ServerEvent::MessageSent {
                temp_id: None,
                message: m,
            }),
            now,
        );
        let read = |app: &App| {
            app.open_conv()
                .and_then(|c| c.messages.iter().find(|m| m.id == id))
                .map(|m| m.is_read)
        };
        assert_eq!(read(&app), Some(false));
        app.update(
            Update::Server(ServerEvent::MessageReadUpdate {
                conversation_id: bob.id,
                reader_id: bob.other_user.id,
                up_to_message_id: Some(id),
                read_at: Utc::now(),
            }),
            now,
        );
        assert_eq!(read(&app), Some(true));
        let seen = Utc::now();
        app.update(
            Update::Server(ServerEvent::UserOffline {
                user_id: bob.other_user.id,
                last_seen_at: seen,
            }),
            now,
        );
        let u = &app.open_conv().expect("open").conv.other_user;
        assert!(!u.online);
        assert_eq!(u.last_seen_at, Some(seen));
        app.update(
            Update::Server(ServerEvent::TypingStart {
                conversation_id: bob.id,
                user_id: bob.other_user.id,
            }),
            now,
        );
        assert!(app.typing(app.open_conv().expect("open"), now));
        app.tick(now + TYPING_SHOWN + Duration::from_millis(1));
        assert!(!app.typing(app.open_conv().expect("open"), now));
    }

    #[test]
    fn commands_map_to_actions() {
        let (mut app, _, bob) = sample();
        let now = Instant::now();
        assert_eq!(
            app.submit("/open dave", now),
            vec![Action::OpenWith("dave".into())]
        );
        // A known user is opened locally.
        assert!(app
            .submit("/open bob", now)
            .iter()
            .all(|a| !matches!(a, Action::OpenWith(_))));
        let a = app.submit("/attach a.png b.png -- two photos", now);
        assert!(
            matches!(&a[..], [Action::SendMedia { conv, paths, caption: Some(c), .. }]
            if *conv == bob.id && paths.len() == 2 && c == "two photos")
        );
        assert_eq!(app.submit("/block", now), vec![Action::Block("bob".into())]);
        assert_eq!(
            app.submit("/unblock carol", now),
            vec![Action::Unblock("carol".into())]
        );
        assert_eq!(
            app.submit("/status", now),
            vec![Action::BlockStatus("bob".into())]
        );
        assert_eq!(app.submit("/blocked", now), vec![Action::Blocked]);
        assert_eq!(
            app.submit("/links", now),
            vec![Action::Browse {
                conv: bob.id,
                what: Browse::Links
            }]
        );
        assert!(app.submit("/jump nope", now).is_empty());
        assert_eq!(app.status.as_ref().map(|s| s.1), Some(true));
        let id = MessageId::new();
        assert_eq!(
            app.submit(&format!("/jump {id}"), now),
            vec![Action::Jump(id)]
        );
        assert!(app.submit("/frobnicate", now).is_empty());
        assert!(app
            .status
            .as_ref()
            .is_some_and(|s| s.0.contains("unknown command")));
        assert_eq!(app.submit("/quit", now), vec![Action::Quit]);
        assert!(app.quit);
    }

    #[test]
    fn a_refused_send_marks_its_pending_message_failed() {
        let (mut app, _, _) = sample();
        let now = Instant::now();
        type_line(&mut app, "to a blocker", now);
        let temp = app.pending[0].temp_id.clone();
        app.update(
            Update::Server(ServerEvent::Error {
                code: ErrorCode::Forbidden,
                message: "blocked".into(),
                temp_id: Some(temp),
            }),
            now,
        );
        assert!(app.pending[0].failed.is_some());
        // Failed messages are not resent on reconnect.
        let resend = app
            .update(Update::Connected { resumed: false }, now)
            .into_iter()
            .filter(|a| matches!(a, Action::Ws(ClientEvent::MessageSend { .. })))
            .count();
        assert_eq!(resend, 0);
    }

    #[test]
    fn history_pages_load_once_in_either_direction() {
        let (mut app, _, bob) = sample();
        let now = Instant::now();
        let c = app.conv_mut(bob.id).expect("open");
        c.older = Some("old-cursor".into());
        c.newer = Some("new-cursor".into());
        c.loading = false; // the first page has arrived
        let older = Action::LoadHistory {
            conv: bob.id,
            before: Some("old-cursor".into()),
            after: None,
        };
        assert_eq!(app.update(key(KeyCode::PageUp), now), vec![older]);
        // Already loading: no second request.
        assert!(app.update(key(KeyCode::PageUp), now).is_empty());
        app.conv_mut(bob.id).expect("open").loading = false;
        app.scroll = 0;
        let newer = Action::LoadHistory {
            conv: bob.id,
            before: None,
            after: Some("new-cursor".into()),
        };
        assert_eq!(app.update(key(KeyCode::PageDown), now), vec![newer]);
    }

    #[test]
    fn media_labels() {
        let mut item = MediaItem {
            kind: MessageType::Video,
            url: String::new(),
            thumbnail_url: None,
            mime: "video/mp4".into(),
            size: 10,
            width: Some(640),
            height: Some(360),
            duration_ms: Some(72_000),
            name: Some("clip.mp4".into()),
        };
        assert_eq!(media_label(&item), "[video 1:12 640x360 clip.mp4]");
        item.kind = MessageType::File;
        item.duration_ms = None;
        item.width = None;
        item.height = None;
        item.size = 12 * 1024;
        item.name = Some("notes.pdf".into());
        assert_eq!(media_label(&item), "[file 12.0 KB notes.pdf]");
    }
}
