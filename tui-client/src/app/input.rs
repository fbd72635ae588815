//! The input line: a cursor that moves by character and word, deletion both ways, kill to
//! either end, a history of what was sent, pastes and line breaks.

use std::time::Instant;

use crossterm::event::{KeyCode, KeyEvent, KeyModifiers};

use super::{Action, App, Focus};

/// Lines kept in the input history.
const HISTORY_MAX: usize = 100;

impl App {
    /// Byte offset of the cursor in the input (always on a character boundary; `input_back`
    /// counts from the end, so text set from outside leaves the cursor at its end).
    pub fn input_cursor(&self) -> usize {
        let at = self.input.len().saturating_sub(self.input_back);
        if self.input.is_char_boundary(at) {
            at
        } else {
            self.input.len()
        }
    }

    fn set_input_cursor(&mut self, at: usize) {
        self.input_back = self.input.len() - at.min(self.input.len());
    }

    fn insert_text(&mut self, text: &str) {
        let at = self.input_cursor();
        self.input.insert_str(at, text);
        self.set_input_cursor(at + text.len());
    }

    /// Replace the whole line (history, a restored message), cursor at its end.
    pub(super) fn set_input(&mut self, text: String) {
        self.input = text;
        self.input_back = 0;
    }

    fn prev_boundary(&self, at: usize) -> usize {
        self.input[..at].char_indices().last().map_or(0, |(i, _)| i)
    }

    fn next_boundary(&self, at: usize) -> usize {
        self.input[at..]
            .chars()
            .next()
            .map_or(at, |c| at + c.len_utf8())
    }

    /// Start of the word before `at` (skipping the spaces before it), as Ctrl-W sees it.
    fn word_start(&self, at: usize) -> usize {
        let before = &self.input[..at];
        let trimmed = before.trim_end_matches(char::is_whitespace);
        trimmed
            .char_indices()
            .rev()
            .find(|(_, c)| c.is_whitespace())
            .map_or(0, |(i, c)| i + c.len_utf8())
    }

    /// End of the word after `at` (skipping the spaces before it).
    fn word_end(&self, at: usize) -> usize {
        let after = &self.input[at..];
        let skipped = after.len() - after.trim_start_matches(char::is_whitespace).len();
        let rest = &after[skipped..];
        let word = rest.find(char::is_whitespace).unwrap_or(rest.len());
        at + skipped + word
    }

    fn delete_range(&mut self, from: usize, to: usize) {
        let at = self.input_cursor();
        self.input.replace_range(from..to, "");
        let at = if at >= to {
            at - (to - from)
        } else {
            at.min(from)
        };
        self.set_input_cursor(at);
    }

    /// Up the history (`older`) or back down towards the line being written.
    fn browse_history(&mut self, older: bool) {
        let next = match (self.history_at, older) {
            (None, true) if !self.history.is_empty() => {
                self.history_draft = std::mem::take(&mut self.input);
                Some(self.history.len() - 1)
            }
            (Some(i), true) => Some(i.saturating_sub(1)),
            (Some(i), false) if i + 1 < self.history.len() => Some(i + 1),
            (Some(_), false) => {
                self.history_at = None;
                let draft = std::mem::take(&mut self.history_draft);
                self.set_input(draft);
                return;
            }
            (None, _) => return,
        };
        self.history_at = next;
        if let Some(line) = next.and_then(|i| self.history.get(i)).cloned() {
            self.set_input(line);
        }
    }

    fn remember(&mut self, line: &str) {
        self.history_at = None;
        self.history_draft.clear();
        if line.is_empty() || self.history.last().is_some_and(|l| l == line) {
            return;
        }
        if self.history.len() == HISTORY_MAX {
            self.history.remove(0);
        }
        self.history.push(line.to_string());
    }

    /// Pasted text goes into the input line at the cursor as it is (line breaks too: a
    /// multi-line paste is one message), with `\r\n` and `\r` as `\n`.
    pub(super) fn paste(&mut self, text: &str, now: Instant) -> Vec<Action> {
        if self.help || self.overlay.is_some() {
            return Vec::new();
        }
        self.focus = Focus::Input;
        self.insert_text(&text.replace("\r\n", "\n").replace('\r', "\n"));
        self.typed(now)
    }

    /// Keys of the input line. Every printable character is text (`?` too: help is F1);
    /// Alt+letter types nothing. Editing as in a shell: ← → Home End (Ctrl-A, Ctrl-E),
    /// Ctrl/Alt-← → (Alt-B, Alt-F) by word, Backspace, Delete, Ctrl-W (word before),
    /// Ctrl-U / Ctrl-K (to the start / end); Alt-↑ ↓ (Ctrl-↑ ↓) walk the history of
    /// what was sent; ↑ ↓ switch conversations; Alt-Enter breaks the line; Alt-E edits the
    /// line in `$VISUAL` / `$EDITOR`; Enter submits.
    pub(super) fn key_input(&mut self, key: KeyEvent, now: Instant) -> Vec<Action> {
        let ctrl = key.modifiers.contains(KeyModifiers::CONTROL);
        let alt = key.modifiers.contains(KeyModifiers::ALT);
        let at = self.input_cursor();
        match key.code {
            KeyCode::Enter if alt => {
                self.insert_text("\n");
                return self.typed(now);
            }
            KeyCode::Enter => {
                // A new command or message: what the status line said is about the last.
                self.status = None;
                let line = std::mem::take(&mut self.input);
                self.input_back = 0;
                self.remember(line.trim());
                let mut actions = self.stop_typing();
                actions.extend(self.submit(line.trim(), now));
                return actions;
            }
            KeyCode::Esc => {
                self.set_input(String::new());
                self.cancel_compose();
                self.history_at = None;
                self.status = None;
                return self.stop_typing();
            }
            KeyCode::Char('e') if alt => return vec![Action::Edit(self.input.clone())],
            KeyCode::Up if alt || ctrl => self.browse_history(true),
            KeyCode::Down if alt || ctrl => self.browse_history(false),
            KeyCode::Up => return self.move_conv(-1),
            KeyCode::Down => return self.move_conv(1),
            KeyCode::Left if ctrl || alt => self.set_input_cursor(self.word_start(at)),
            KeyCode::Right if ctrl || alt => self.set_input_cursor(self.word_end(at)),
            KeyCode::Char('b') if alt => self.set_input_cursor(self.word_start(at)),
            KeyCode::Char('f') if alt => self.set_input_cursor(self.word_end(at)),
            KeyCode::Left => self.set_input_cursor(self.prev_boundary(at)),
            KeyCode::Right => self.set_input_cursor(self.next_boundary(at)),
            KeyCode::Home => self.set_input_cursor(0),
            KeyCode::End => self.set_input_cursor(self.input.len()),
            KeyCode::Char('a') if ctrl => self.set_input_cursor(0),
            KeyCode::Char('e') if ctrl => self.set_input_cursor(self.input.len()),
            KeyCode::Char('w') if ctrl => self.delete_range(self.word_start(at), at),
            KeyCode::Char('u') if ctrl => self.delete_range(0, at),
            KeyCode::Char('k') if ctrl => self.delete_range(at, self.input.len()),
            KeyCode::Backspace => self.delete_range(self.prev_boundary(at), at),
            KeyCode::Delete => self.delete_range(at, self.next_boundary(at)),
            KeyCode::Char(ch) if !ctrl && !alt => {
                let mut buf = [0u8; 4];
                self.insert_text(ch.encode_utf8(&mut buf));
                return self.typed(now);
            }
            _ => {}
        }
        if self.input.is_empty() {
            return self.stop_typing();
        }
        Vec::new()
    }
}
