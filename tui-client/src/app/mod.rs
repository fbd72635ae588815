//! The interactive client's state, and everything that changes it: keys, mouse, server
//! events and REST results go in; [`Action`]s (what to send or fetch) come out. No I/O
//! happens here, so every behaviour is unit-testable and the renderer only reads.

mod commands;
mod events;
mod input;
mod keys;
mod lifecycle;
mod results;
#[cfg(test)]
mod tests;
mod theme;

use std::collections::HashMap;
use std::path::PathBuf;
use std::time::{Duration, Instant};

use chat_protocol::rest::{
    BlockChange, BlockStatus, BlockedUser, Conversation, LinkItem, MediaItem, Message,
    MessageContext, MessageType, Page, SearchHit, UnreadCount,
};
use chat_protocol::ws::{ClientEvent, ServerEvent};
use chat_protocol::{ConversationId, MessageId, UserId};
use chrono::{DateTime, Utc};
use crossterm::event::{KeyEvent, MouseEvent};
pub use theme::Theme;

/// How often a `typing.start` is repeated while the user keeps typing (the server's relay
/// expires after 5 s), and how long after the last key a `typing.stop` follows.
pub const TYPING_REPEAT: Duration = Duration::from_secs(3);
pub const TYPING_IDLE: Duration = Duration::from_secs(3);
/// How long a notice ("copied", "dismissed 2") stays on the status line; errors stay
/// until the next command.
pub const NOTICE_FOR: Duration = Duration::from_secs(6);
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
    /// The message it answers, if it is a reply.
    pub reply_to_id: Option<MessageId>,
}

impl Pending {
    /// The frame that sends it (again): with its temp_id, so the server stores it once.
    pub fn send(&self) -> Action {
        Action::Ws(ClientEvent::MessageSend {
            conversation_id: self.conversation_id,
            content: self.content.clone(),
            temp_id: Some(self.temp_id.clone()),
            reply_to_id: self.reply_to_id,
        })
    }
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
    /// The first message that was unread when it was read here: the "new messages" line
    /// goes above it until another conversation is opened.
    pub read_marker: Option<MessageId>,
    /// Unread messages read before their page was loaded: the marker goes that many of
    /// the other person's messages from the end once it is.
    pub marker_wanted: u64,
}

/// A read-only list shown over the message pane (media, files, links, blocked users,
/// block status, help).
#[derive(Debug, Clone, PartialEq)]
pub struct Overlay {
    pub title: String,
    pub lines: Vec<String>,
    /// The message each line is about (galleries, links): ↑/↓ select a line and Enter
    /// jumps to its message. Empty: a plain list that ↑/↓ scroll.
    pub targets: Vec<Option<MessageId>>,
    pub selected: usize,
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
    /// `GET /chat/search` over all my conversations.
    Search(String),
    /// Download every media item of a message (never over an existing file); `open` also
    /// hands the first to the desktop's opener.
    Save {
        items: Vec<MediaItem>,
        open: bool,
    },
    /// Edit the input line in `$VISUAL` / `$EDITOR` (the main loop hands it the terminal).
    Edit(String),
    /// Put text on the terminal's clipboard (OSC 52).
    Copy(String),
    /// A message arrived where the user is not looking: ring / notify (as configured).
    Notify {
        title: String,
        body: String,
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
    /// What the external editor left (or why it failed).
    Edited(Result<String, String>),
    /// The terminal gained (true) or lost (false) focus, where it reports that.
    Focus(bool),
    /// Text pasted into the terminal (bracketed paste): one update, newlines kept.
    Paste(String),
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
    /// A history page could not be loaded (say, the server is unreachable): the
    /// conversation is no longer "loading", and the next chance (reconnect, scroll) retries.
    HistoryFailed {
        conv: ConversationId,
        error: String,
    },
    Opened(Conversation),
    Context(MessageContext),
    /// Search results for the query.
    Searched {
        q: String,
        hits: Vec<SearchHit>,
    },
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
    /// Bytes of `input` after the cursor (0: at the end).
    pub input_back: usize,
    /// Lines sent, oldest first (Alt-↑ / Alt-↓), the one shown, and the line being
    /// written when browsing began.
    history: Vec<String>,
    history_at: Option<usize>,
    history_draft: String,
    pub focus: Focus,
    /// Lines scrolled up from the bottom of the message pane.
    pub scroll: usize,
    /// Selected message (index into the open conversation's messages) in Messages focus.
    pub cursor: Option<usize>,
    /// Jump target to highlight.
    pub highlight: Option<MessageId>,
    pub overlay: Option<Overlay>,
    /// First line shown of the help or list overlay (↑/↓, PgUp/PgDn, Home/End scroll it).
    pub overlay_scroll: usize,
    pub help: bool,
    pub status: Option<(String, bool)>,
    /// When the status notice was set: a notice (not an error) goes after [`NOTICE_FOR`].
    pub status_at: Option<Instant>,
    pub unread_total: u64,
    /// Someone is at the terminal: a key, paste or mouse event since start, and the
    /// terminal has not reported losing focus since. Read receipts wait for it.
    pub engaged: bool,
    /// A resumed socket is replaying what was missed: the list and counters are loaded
    /// once it says `sync.complete`.
    pub resync: bool,
    /// Key bindings (the settings file's `[keys]` over the defaults).
    pub keys: crate::keymap::Keymap,
    /// Messages that arrived in the open conversation while it was scrolled up (shown as
    /// "↓ N new"; read once the pane is back at the bottom).
    pub new_below: usize,
    pub quit: bool,
    presence: HashMap<UserId, (bool, Option<DateTime<Utc>>)>,
    typing_sent: Option<(ConversationId, Instant)>,
    last_key: Option<Instant>,
    /// Set by the renderer: the message pane's height, for paging and "load older when the
    /// top is reached".
    pub pane_height: usize,
    /// Set by the renderer: total wrapped lines of the open conversation.
    pub pane_lines: usize,
    /// Set by the renderer: where the list and the pane are, for mouse clicks.
    pub screen: ScreenMap,
    pub theme: Theme,
    /// What Enter does with the input line: a new message, a reply, or an edit.
    pub compose: Compose,
}

/// What the input line is being written as.
#[derive(Debug, Clone, Default, PartialEq)]
pub enum Compose {
    #[default]
    New,
    /// A reply to this message (`quote`: who and what, as the input's title shows it).
    Reply { id: MessageId, quote: String },
    /// New text for one of my messages.
    Edit { id: MessageId },
}

/// Where the renderer put what, so a click can be turned into a conversation or message.
#[derive(Debug, Clone, Default)]
pub struct ScreenMap {
    /// The conversation list (with its border), and the index of its first shown item.
    pub list: ratatui::layout::Rect,
    pub list_offset: usize,
    /// The message pane (with its border), and which message each inner row shows.
    pub pane: ratatui::layout::Rect,
    pub pane_rows: Vec<Option<usize>>,
}

impl ScreenMap {
    /// The inner row of `area` (inside its border) at `(x, y)`, if the point is inside.
    pub fn row_in(area: ratatui::layout::Rect, x: u16, y: u16) -> Option<usize> {
        let inside =
            x > area.x && x + 1 < area.x + area.width && y > area.y && y + 1 < area.y + area.height;
        inside.then(|| usize::from(y - area.y - 1))
    }
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
            input_back: 0,
            history: Vec::new(),
            history_at: None,
            history_draft: String::new(),
            focus: Focus::Input,
            scroll: 0,
            cursor: None,
            highlight: None,
            overlay: None,
            overlay_scroll: 0,
            help: false,
            status: None,
            unread_total: 0,
            engaged: false,
            resync: false,
            status_at: None,
            keys: crate::keymap::Keymap::default(),
            new_below: 0,
            quit: false,
            presence: HashMap::new(),
            typing_sent: None,
            last_key: None,
            pane_height: 10,
            pane_lines: 0,
            screen: ScreenMap::default(),
            theme: Theme::default(),
            compose: Compose::New,
        }
    }

    /// What to fetch at start.
    pub fn start(&self) -> Vec<Action> {
        vec![Action::LoadConversations, Action::LoadUnread]
    }

    /// The conversation shown in the message pane.
    pub fn open_conv(&self) -> Option<&ConvState> {
        let id = self.open?;
        self.convs.iter().find(|c| c.conv.id == id)
    }

    /// A known conversation, by id.
    fn conv_mut(&mut self, id: ConversationId) -> Option<&mut ConvState> {
        self.convs.iter_mut().find(|c| c.conv.id == id)
    }

    /// Pending messages of one conversation, oldest first.
    pub fn pending_in(&self, conv: ConversationId) -> impl Iterator<Item = &Pending> {
        self.pending
            .iter()
            .filter(move |p| p.conversation_id == conv)
    }

    /// Whether I sent `m`.
    pub fn is_mine(&self, m: &Message) -> bool {
        self.me.as_ref().is_some_and(|(id, _)| *id == m.sender_id)
    }

    /// Whether the other user of `conv` is shown typing at `now`.
    pub fn typing(&self, conv: &ConvState, now: Instant) -> bool {
        conv.typing_until.is_some_and(|t| t > now)
    }

    /// A status-bar notice.
    fn info(&mut self, s: impl Into<String>) {
        self.status = Some((s.into(), false));
        self.status_at = Some(Instant::now());
    }

    /// A status-bar error.
    fn error(&mut self, s: impl Into<String>) {
        self.status = Some((s.into(), true));
    }

    /// Apply one update; return what the runtime must do next.
    pub fn update(&mut self, update: Update, now: Instant) -> Vec<Action> {
        match update {
            Update::Key(key) => {
                let mut actions = self.engage();
                actions.extend(self.key(key, now));
                actions
            }
            Update::Paste(text) => {
                let mut actions = self.engage();
                actions.extend(self.paste(&text, now));
                actions
            }
            Update::Mouse(m) => {
                let mut actions = self.engage();
                actions.extend(self.mouse(m));
                actions
            }
            Update::Edited(Ok(text)) => {
                self.focus = Focus::Input;
                self.set_input(text.trim_end_matches(['\n', '\r']).to_string());
                Vec::new()
            }
            Update::Edited(Err(e)) => {
                self.error(format!("editor: {e}"));
                Vec::new()
            }
            Update::Focus(true) => self.engage(),
            Update::Focus(false) => {
                self.engaged = false;
                Vec::new()
            }
            Update::Resize => Vec::new(),
            Update::Connecting { attempt } => self.connecting(attempt),
            Update::Connected { resumed } => self.connected(resumed),
            Update::Disconnected {
                reason,
                retry_in,
                attempt,
            } => self.disconnected(reason, retry_in, attempt, now),
            Update::Server(ev) => self.server_event(ev, now),
            Update::Conversations(list) => self.set_conversations(list),
            Update::Unread(u) => self.unread(u),
            Update::History { conv, page, older } => self.history(conv, page, older),
            Update::HistoryFailed { conv, error } => self.history_failed(conv, error),
            Update::Opened(conv) => self.opened(conv),
            Update::Context(ctx) => self.context(ctx),
            Update::Searched { q, hits } => self.searched(&q, &hits),
            Update::MediaSent { temp_id, result } => self.media_sent(temp_id, result),
            Update::Browsed {
                what,
                messages,
                links,
            } => self.browsed(what, &messages, &links),
            Update::Blocked(list) => self.blocked(&list),
            Update::BlockChanged(c) => self.block_changed(c),
            Update::BlockStatus { username, status } => self.block_status(&username, status),
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

    /// Show a read-only list over the message pane.
    pub(crate) fn show(&mut self, title: &str, lines: Vec<String>) {
        self.show_items(title, lines, Vec::new());
    }

    /// Show a list whose lines lead to messages (`targets`, one per line).
    pub(crate) fn show_items(
        &mut self,
        title: &str,
        mut lines: Vec<String>,
        mut targets: Vec<Option<MessageId>>,
    ) {
        if lines.is_empty() {
            lines.push("(nothing yet)".into());
            targets.clear();
        }
        self.overlay = Some(Overlay {
            title: title.into(),
            lines,
            targets,
            selected: 0,
        });
        self.overlay_scroll = 0;
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
            // What was new in the conversation left is read now: its marker goes.
            if let Some(c) = self.open.and_then(|o| self.conv_mut(o)) {
                c.read_marker = None;
                c.marker_wanted = 0;
            }
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
        self.new_below = 0;
        if self.engaged {
            actions.extend(self.mark_read(id, true));
        }
        actions
    }

    /// Whether the user sees the newest messages of `id` right now: it is open, scrolled to
    /// the bottom, and someone is at the terminal. Only then is anything marked read.
    pub(super) fn viewing(&self, id: ConversationId) -> bool {
        self.open == Some(id) && self.scroll == 0 && self.engaged
    }

    /// Someone is at the terminal: what the open conversation shows at its bottom is read.
    fn engage(&mut self) -> Vec<Action> {
        if self.engaged {
            return Vec::new();
        }
        self.engaged = true;
        match self.open {
            Some(id) if self.scroll == 0 => self.mark_read(id, true),
            _ => Vec::new(),
        }
    }

    /// Zero a conversation's unread count and tell the server (when there was any).
    /// `marker`: the messages read now were not seen arriving, so the "new messages" line
    /// goes above them (not for one that arrived on screen, or a stale count).
    fn mark_read(&mut self, id: ConversationId, marker: bool) -> Vec<Action> {
        let Some(c) = self.conv_mut(id) else {
            return Vec::new();
        };
        let unread = std::mem::take(&mut c.conv.unread_count);
        if unread == 0 {
            return Vec::new();
        }
        if marker && c.read_marker.is_none() {
            c.marker_wanted = unread;
        }
        self.place_marker(id);
        self.unread_total = self.unread_total.saturating_sub(unread);
        vec![Action::Ws(ClientEvent::MessageRead {
            conversation_id: id,
            up_to_message_id: None,
        })]
    }

    /// Put the read marker of `id` above the first of the `marker_wanted` newest messages
    /// of the other person, once they are loaded (the oldest loaded one when the unread
    /// messages go further back than the page).
    pub(super) fn place_marker(&mut self, id: ConversationId) {
        let me = self.me.as_ref().map(|(u, _)| *u);
        let Some(c) = self.conv_mut(id) else {
            return;
        };
        if c.marker_wanted == 0 || c.read_marker.is_some() {
            return;
        }
        let theirs = c.messages.iter().rev().filter(|m| Some(m.sender_id) != me);
        let Some(first) = theirs.take(c.marker_wanted as usize).last() else {
            return;
        };
        c.read_marker = Some(first.id);
        c.marker_wanted = 0;
    }

    /// Before sending into `conv`: if its loaded window stops short of the present (after
    /// `/jump`), drop the window and load the newest page, so the message shows where it
    /// lands instead of past the end of what is loaded.
    pub(super) fn back_to_present(&mut self, conv: ConversationId) -> Vec<Action> {
        let Some(c) = self.conv_mut(conv) else {
            return Vec::new();
        };
        if c.newer.is_none() {
            return Vec::new();
        }
        c.messages.clear();
        c.older = None;
        c.newer = None;
        c.loaded = false;
        c.loading = true;
        self.scroll = 0;
        self.cursor = None;
        self.highlight = None;
        vec![Action::LoadHistory {
            conv,
            before: None,
            after: None,
        }]
    }

    /// Add a stored message once, in order, and bump its conversation's last message.
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
            read_marker: None,
            marker_wanted: 0,
        }
    }

    fn activity(&self) -> DateTime<Utc> {
        self.conv.last_message_at.unwrap_or(self.conv.created_at)
    }
}

/// A client-chosen id for idempotent sends (max 64 chars per SPEC).
pub fn new_temp_id() -> String {
    format!("tui-{}", uuid::Uuid::new_v4().simple())
}

/// `[image 1024x768 photo.jpg]`, `[video 0:12 640x360 clip.mp4]`, `[file 12.0 KiB notes.pdf]`.
/// A message as one line of text: its text, or its media's labels when it has none.
pub fn message_text(m: &Message) -> String {
    m.content.clone().unwrap_or_else(|| {
        m.media
            .iter()
            .map(media_label)
            .collect::<Vec<_>>()
            .join(" ")
    })
}

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
        parts.push(chat_protocol::units::human_bytes(item.size));
    }
    if let Some(name) = &item.name {
        parts.push(name.clone());
    }
    format!("[{}]", parts.join(" "))
}
