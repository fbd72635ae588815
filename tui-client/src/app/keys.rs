//! Keyboard and mouse input: focus, navigation, scrolling, history paging and typing notices.

use std::time::Instant;

use chat_protocol::rest::DeleteScope;
use chat_protocol::ws::ClientEvent;
use crossterm::event::{
    KeyCode, KeyEvent, KeyEventKind, KeyModifiers, MouseButton, MouseEvent, MouseEventKind,
};

use super::{Action, App, Conn, Focus, ScreenMap, NOTICE_FOR, TYPING_IDLE, TYPING_REPEAT};
use crate::keymap::KeyAction;

impl App {
    /// Timers: typing indicators expire, `typing.stop` after an idle input.
    pub fn tick(&mut self, now: Instant) -> Vec<Action> {
        let stale = matches!(self.status, Some((_, false)))
            && self
                .status_at
                .is_some_and(|at| now.saturating_duration_since(at) >= NOTICE_FOR);
        if stale {
            self.status = None;
        }
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

    /// Forget the typing notice sent, and tell the server it stopped (when online).
    pub(super) fn stop_typing(&mut self) -> Vec<Action> {
        match self.typing_sent.take() {
            Some((conv, _)) if self.conn == Conn::Online => {
                vec![Action::Ws(ClientEvent::TypingStop {
                    conversation_id: conv,
                })]
            }
            _ => Vec::new(),
        }
    }

    /// A character was typed: send `typing.start`, at most every [`TYPING_REPEAT`].
    pub(super) fn typed(&mut self, now: Instant) -> Vec<Action> {
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

    /// The mouse wheel scrolls the message pane.
    pub(super) fn mouse(&mut self, m: MouseEvent) -> Vec<Action> {
        match m.kind {
            MouseEventKind::ScrollUp => self.scroll_up(3),
            MouseEventKind::ScrollDown => self.scroll_down(3),
            MouseEventKind::Down(MouseButton::Left) => self.click(m.column, m.row),
            _ => Vec::new(),
        }
    }

    /// A left click: on the list it opens that conversation, on the pane it selects that
    /// message (as ↑/↓ in the message pane would).
    fn click(&mut self, x: u16, y: u16) -> Vec<Action> {
        if self.help || self.overlay.is_some() {
            return Vec::new();
        }
        if let Some(row) = ScreenMap::row_in(self.screen.list, x, y) {
            // Two lines an item: the name, then the preview.
            let i = self.screen.list_offset + row / 2;
            return match self.convs.get(i).map(|c| c.conv.id) {
                Some(id) => self.select_id(id),
                None => Vec::new(),
            };
        }
        if let Some(row) = ScreenMap::row_in(self.screen.pane, x, y) {
            if let Some(Some(i)) = self.screen.pane_rows.get(row) {
                self.focus = Focus::Messages;
                self.cursor = Some(*i);
            }
        }
        Vec::new()
    }

    /// Scroll the message pane up by `n` lines, loading older history at the top.
    fn scroll_up(&mut self, n: usize) -> Vec<Action> {
        let max = self.pane_lines.saturating_sub(self.pane_height);
        self.scroll = (self.scroll + n).min(max);
        if self.scroll >= max {
            return self.load_older();
        }
        Vec::new()
    }

    /// Scroll the message pane down by `n` lines, loading newer history at the bottom.
    fn scroll_down(&mut self, n: usize) -> Vec<Action> {
        self.scroll = self.scroll.saturating_sub(n);
        let mut actions = self.maybe_load_newer();
        // Back at the bottom: what arrived meanwhile is on screen now.
        if self.scroll == 0 {
            self.new_below = 0;
            if let Some(id) = self.open.filter(|id| self.viewing(*id)) {
                actions.extend(self.mark_read(id, true));
            }
        }
        actions
    }

    /// The page before the loaded window of the open conversation.
    fn load_older(&mut self) -> Vec<Action> {
        self.load_page(true)
    }

    /// The page after the loaded window, once the pane is scrolled to the bottom.
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

    /// One key press: quit, then an open overlay, then global keys, then the focused pane.
    pub(super) fn key(&mut self, key: KeyEvent, now: Instant) -> Vec<Action> {
        if key.kind == KeyEventKind::Release {
            return Vec::new();
        }
        let ctrl = key.modifiers.contains(KeyModifiers::CONTROL);
        if (ctrl && key.code == KeyCode::Char('c')) || self.keys.is(KeyAction::Quit, &key) {
            self.quit = true;
            return vec![Action::Quit];
        }
        if self.help || self.overlay.is_some() {
            return self.key_overlay(key);
        }
        if let Some(actions) = self.key_global(key) {
            return actions;
        }
        match self.focus {
            Focus::Input => self.key_input(key, now),
            Focus::Conversations => self.key_conversations(key),
            Focus::Messages => self.key_messages(key),
        }
    }

    /// With help or an overlay shown, only its keys do anything: scrolling it (the drawing
    /// clamps the position to what there is), choosing a line of a list of messages
    /// (Enter jumps to it), and closing it.
    fn key_overlay(&mut self, key: KeyEvent) -> Vec<Action> {
        let page = self.pane_height.max(2) - 1;
        if let Some(o) = self.overlay.as_mut().filter(|o| !o.targets.is_empty()) {
            let last = o.targets.len() - 1;
            match self.keys.arrow(&key) {
                KeyCode::Up => o.selected = o.selected.saturating_sub(1),
                KeyCode::Down => o.selected = (o.selected + 1).min(last),
                KeyCode::PageUp => o.selected = o.selected.saturating_sub(page),
                KeyCode::PageDown => o.selected = (o.selected + page).min(last),
                KeyCode::Home => o.selected = 0,
                KeyCode::End => o.selected = last,
                KeyCode::Enter => {
                    let target = o.targets.get(o.selected).copied().flatten();
                    self.overlay = None;
                    return target.map(Action::Jump).into_iter().collect();
                }
                _ => {}
            }
            if !matches!(key.code, KeyCode::Esc | KeyCode::Char('q')) {
                return Vec::new();
            }
        }
        // The help key closes what it opened too, wherever it is bound.
        let closes = matches!(
            key.code,
            KeyCode::Esc | KeyCode::Char('q' | '?') | KeyCode::Enter | KeyCode::F(1)
        ) || self.keys.is(KeyAction::Help, &key);
        match key.code {
            _ if closes => {
                self.help = false;
                self.overlay = None;
                self.overlay_scroll = 0;
            }
            _ if self.keys.arrow(&key) == KeyCode::Up => {
                self.overlay_scroll = self.overlay_scroll.saturating_sub(1)
            }
            _ if self.keys.arrow(&key) == KeyCode::Down => self.overlay_scroll += 1,
            KeyCode::PageUp => self.overlay_scroll = self.overlay_scroll.saturating_sub(page),
            KeyCode::PageDown => self.overlay_scroll += page,
            KeyCode::Home => self.overlay_scroll = 0,
            KeyCode::End => self.overlay_scroll = usize::MAX / 2,
            _ => {}
        }
        Vec::new()
    }

    /// Keys that work in every pane (focus, paging, next/previous conversation), if `key` is one.
    fn key_global(&mut self, key: KeyEvent) -> Option<Vec<Action>> {
        use KeyAction::*;
        match self
            .keys
            .action(&key, &[Help, NextConversation, PreviousConversation])
        {
            Some(Help) => return Some(self.show_help()),
            Some(NextConversation) => return Some(self.move_conv(1)),
            Some(PreviousConversation) => return Some(self.move_conv(-1)),
            _ => {}
        }
        Some(match key.code {
            KeyCode::Tab => self.cycle_focus(),
            KeyCode::BackTab => self.focus_input(),
            KeyCode::PageUp => self.scroll_up(self.pane_height.max(2) - 1),
            KeyCode::PageDown => self.scroll_down(self.pane_height.max(2) - 1),
            _ => return None,
        })
    }

    /// Tab: input, conversations, messages (selecting the last message), and around.
    fn cycle_focus(&mut self) -> Vec<Action> {
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
        Vec::new()
    }

    /// Back to the input line.
    fn focus_input(&mut self) -> Vec<Action> {
        self.focus = Focus::Input;
        Vec::new()
    }

    /// Back to the input line with a `/` typed, to start a command.
    fn start_command(&mut self) -> Vec<Action> {
        self.focus = Focus::Input;
        self.set_input("/".into());
        Vec::new()
    }

    /// Show the help overlay.
    fn show_help(&mut self) -> Vec<Action> {
        self.help = true;
        self.overlay_scroll = 0;
        Vec::new()
    }

    /// Keys of the conversation list.
    fn key_conversations(&mut self, key: KeyEvent) -> Vec<Action> {
        match self.keys.arrow(&key) {
            KeyCode::Up => self.move_conv(-1),
            KeyCode::Down => self.move_conv(1),
            KeyCode::Enter | KeyCode::Esc => self.focus_input(),
            KeyCode::Char('?') => self.show_help(),
            KeyCode::Char('/') => self.start_command(),
            _ => Vec::new(),
        }
    }

    /// Open the conversation `delta` places down (negative: up) the list, clamped.
    pub(super) fn move_conv(&mut self, delta: isize) -> Vec<Action> {
        if self.convs.is_empty() {
            return Vec::new();
        }
        let n = self.convs.len() as isize;
        let i = (self.selected as isize + delta).clamp(0, n - 1) as usize;
        let id = self.convs[i].conv.id;
        self.select_id(id)
    }

    /// Keys of the message pane: move the selection, act on the selected message (reply,
    /// edit, delete, react, copy, save or open its media).
    fn key_messages(&mut self, key: KeyEvent) -> Vec<Action> {
        use KeyAction::*;
        match self.keys.message_action(&key) {
            Some(Save) => return self.save_selected(false),
            Some(Open) => return self.save_selected(true),
            Some(Copy) => return self.copy_selected(),
            Some(Info) => return self.describe_selected(),
            Some(Reply) => return self.start_reply(),
            Some(Edit) => return self.start_edit(),
            Some(DeleteForMe) => return self.delete_selected(DeleteScope::Me),
            Some(DeleteForEveryone) => return self.delete_selected(DeleteScope::Everyone),
            Some(React) => return self.react_prompt(),
            Some(JumpToOriginal) => return self.jump_to_original(),
            _ => {}
        }
        match self.keys.arrow(&key) {
            KeyCode::Up => self.cursor_up(),
            KeyCode::Down => self.cursor_down(),
            KeyCode::Char('?') => self.show_help(),
            KeyCode::Esc | KeyCode::Enter => {
                self.highlight = None;
                self.focus_input()
            }
            KeyCode::Char('/') => self.start_command(),
            _ => Vec::new(),
        }
    }

    /// Select the previous message; at the first, load older history.
    fn cursor_up(&mut self) -> Vec<Action> {
        let len = self.open_conv().map_or(0, |c| c.messages.len());
        let at = self.cursor.unwrap_or(len).saturating_sub(1);
        self.cursor = (len > 0).then_some(at);
        if at == 0 {
            return self.load_older();
        }
        Vec::new()
    }

    /// Select the next message, stopping at the last.
    fn cursor_down(&mut self) -> Vec<Action> {
        let len = self.open_conv().map_or(0, |c| c.messages.len());
        if len > 0 {
            self.cursor = Some((self.cursor.unwrap_or(0) + 1).min(len - 1));
        }
        Vec::new()
    }

    /// The message selected in the pane.
    pub(super) fn selected_message(&self) -> Option<&chat_protocol::rest::Message> {
        self.cursor
            .and_then(|i| self.open_conv().and_then(|c| c.messages.get(i)))
    }

    /// Copy the selected message's text (or its media's names) to the clipboard.
    fn copy_selected(&mut self) -> Vec<Action> {
        let Some(m) = self.selected_message() else {
            return Vec::new();
        };
        let text = super::message_text(m);
        self.info("copied to the clipboard (OSC 52)");
        vec![Action::Copy(text)]
    }

    /// Show the selected message's id and exact time (for /jump, or a bug report).
    fn describe_selected(&mut self) -> Vec<Action> {
        let Some(m) = self.selected_message() else {
            return Vec::new();
        };
        let text = format!("message {} at {}", m.id, m.created_at.to_rfc3339());
        self.info(text);
        Vec::new()
    }

    /// Download the selected message's media, every item (and `open` the first).
    fn save_selected(&mut self, open: bool) -> Vec<Action> {
        let items = self
            .cursor
            .and_then(|i| self.open_conv().and_then(|c| c.messages.get(i)))
            .map(|m| m.media.clone())
            .unwrap_or_default();
        if items.is_empty() {
            self.error("the selected message has no media");
            return Vec::new();
        }
        vec![Action::Save { items, open }]
    }
}
