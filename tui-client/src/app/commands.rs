//! The input line's Enter: send the text, or run a `/command` (open, attach, block, browse…).

use std::path::PathBuf;
use std::time::Instant;

use chat_protocol::rest::MAX_MESSAGE_CHARS;
use chat_protocol::ws::ClientEvent;
use chat_protocol::{ConversationId, MessageId};
use chrono::Utc;

use super::{new_temp_id, Action, App, Browse, Compose, Conn, Pending};

/// The status notice of a message typed while offline (cleared once it is sent).
pub(super) const QUEUED_NOTICE: &str = "offline: message queued, it is sent on reconnect";

impl App {
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
        self.command(name, arg.trim())
    }

    /// Run `/name arg` (the argument trimmed).
    fn command(&mut self, name: &str, arg: &str) -> Vec<Action> {
        match name {
            "open" | "o" | "msg" => self.cmd_open(arg),
            "attach" | "a" => self.cmd_attach(arg),
            "block" | "unblock" | "status" => self.cmd_block(name, arg),
            "blocked" => vec![Action::Blocked],
            "media" | "files" | "links" => self.cmd_browse(name),
            "jump" | "j" => self.cmd_jump(arg),
            "react" | "r" => self.cmd_react(arg),
            "search" | "s" | "find" => self.cmd_search(arg),
            "unread" => vec![Action::LoadUnread, Action::LoadConversations],
            "retry" => self.cmd_retry(),
            "dismiss" => self.cmd_dismiss(),
            "help" | "h" => {
                self.help = true;
                self.overlay_scroll = 0;
                Vec::new()
            }
            "quit" | "q" => {
                self.quit = true;
                vec![Action::Quit]
            }
            _ => {
                self.error(format!("unknown command /{name} (press F1 for help)"));
                Vec::new()
            }
        }
    }

    /// `/retry`: send this conversation's failed messages again, with their temp_ids (a
    /// send the server did store is not stored twice).
    fn cmd_retry(&mut self) -> Vec<Action> {
        let Some(conv) = self.need_conv() else {
            return Vec::new();
        };
        let online = self.conn == Conn::Online;
        let mut actions = Vec::new();
        let mut n = 0;
        for p in self.pending.iter_mut() {
            if p.conversation_id != conv || p.failed.take().is_none() {
                continue;
            }
            n += 1;
            // Offline it is queued again: sent on reconnect like any other.
            if online {
                actions.push(p.send());
            }
        }
        match (n, online) {
            (0, _) => self.error("/retry: no message failed here"),
            (_, true) => self.info(format!("retrying {n}")),
            (_, false) => self.info(QUEUED_NOTICE),
        }
        actions
    }

    /// `/dismiss`: forget this conversation's failed messages (they were never stored).
    fn cmd_dismiss(&mut self) -> Vec<Action> {
        let Some(conv) = self.need_conv() else {
            return Vec::new();
        };
        let before = self.pending.len();
        self.pending
            .retain(|p| p.conversation_id != conv || p.failed.is_none());
        match before - self.pending.len() {
            0 => self.error("/dismiss: no message failed here"),
            n => self.info(format!("dismissed {n}")),
        }
        Vec::new()
    }

    /// The open conversation, or an error telling how to open one.
    fn need_conv(&mut self) -> Option<ConversationId> {
        if self.open.is_none() {
            self.error("open a conversation first: /open USERNAME");
        }
        self.open
    }

    /// The other user of the open conversation, for commands whose argument is optional.
    fn other(&self, arg: &str) -> Option<String> {
        if !arg.is_empty() {
            return Some(arg.to_string());
        }
        self.open_conv().map(|c| c.conv.other_user.username.clone())
    }

    /// `/open USERNAME`: a known conversation opens here, others are asked of the server.
    fn cmd_open(&mut self, arg: &str) -> Vec<Action> {
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

    /// `/attach PATH... [-- caption]`: upload files, shown as pending meanwhile.
    fn cmd_attach(&mut self, arg: &str) -> Vec<Action> {
        let Some(conv) = self.need_conv() else {
            return Vec::new();
        };
        let (paths, caption) = match attach_args(arg, std::env::var_os("HOME")) {
            Ok(parsed) => parsed,
            Err(e) => {
                self.error(format!("/attach: {e}"));
                return Vec::new();
            }
        };
        if paths.is_empty() {
            self.error("usage: /attach PATH... [-- caption]");
            return Vec::new();
        }
        let mut actions = self.back_to_present(conv);
        let temp_id = new_temp_id();
        self.pending.push(Pending {
            temp_id: temp_id.clone(),
            conversation_id: conv,
            content: uploading_label(&paths),
            created_at: Utc::now(),
            failed: None,
            reply_to_id: None,
        });
        actions.push(Action::SendMedia {
            conv,
            paths,
            caption,
            temp_id,
        });
        actions
    }

    /// `/block`, `/unblock`, `/status` [USERNAME] (default: the open conversation's user).
    fn cmd_block(&mut self, name: &str, arg: &str) -> Vec<Action> {
        match self.other(arg) {
            Some(user) => vec![match name {
                "block" => Action::Block(user),
                "unblock" => Action::Unblock(user),
                _ => Action::BlockStatus(user),
            }],
            None => {
                self.error(format!("usage: /{name} USERNAME"));
                Vec::new()
            }
        }
    }

    /// `/media`, `/files`, `/links` of the open conversation.
    fn cmd_browse(&mut self, name: &str) -> Vec<Action> {
        let Some(conv) = self.need_conv() else {
            return Vec::new();
        };
        let what = match name {
            "media" => Browse::Media,
            "files" => Browse::Files,
            _ => Browse::Links,
        };
        vec![Action::Browse { conv, what }]
    }

    /// `/jump MESSAGE_ID`: show a message in its context.
    fn cmd_jump(&mut self, arg: &str) -> Vec<Action> {
        match arg.parse::<MessageId>() {
            Ok(id) => vec![Action::Jump(id)],
            Err(_) => {
                self.error("usage: /jump MESSAGE_ID");
                Vec::new()
            }
        }
    }

    /// A text message to the open conversation: pending until acked, queued when offline.
    /// Over the server's length limit it is not sent: it goes back to the input to edit.
    fn send_text(&mut self, content: String) -> Vec<Action> {
        let Some(conv) = self.open else {
            self.error("open a conversation first: /open USERNAME");
            return Vec::new();
        };
        let n = content.chars().count();
        if n > MAX_MESSAGE_CHARS {
            self.error(format!(
                "not sent: {n} characters, the limit is {MAX_MESSAGE_CHARS}"
            ));
            self.set_input(content);
            return Vec::new();
        }
        let reply_to_id = match std::mem::take(&mut self.compose) {
            Compose::New => None,
            Compose::Reply { id, .. } => Some(id),
            Compose::Edit { id } => return self.send_edit(id, content),
        };
        let mut actions = self.back_to_present(conv);
        let temp_id = new_temp_id();
        self.pending.push(Pending {
            temp_id: temp_id.clone(),
            conversation_id: conv,
            content: content.clone(),
            created_at: Utc::now(),
            failed: None,
            reply_to_id,
        });
        // Offline: it stays pending and goes out on reconnect.
        if self.conn != Conn::Online {
            self.info(QUEUED_NOTICE);
            return actions;
        }
        actions.push(Action::Ws(ClientEvent::MessageSend {
            conversation_id: conv,
            content,
            temp_id: Some(temp_id),
            reply_to_id,
        }));
        actions
    }

    /// Enter while editing: the new text goes out; the server's `message.edited` shows it.
    fn send_edit(&mut self, id: MessageId, content: String) -> Vec<Action> {
        if self.conn != Conn::Online {
            self.error("offline: the edit was not sent");
            self.compose = Compose::Edit { id };
            self.set_input(content);
            return Vec::new();
        }
        vec![Action::Ws(ClientEvent::MessageEdit {
            message_id: id,
            content,
        })]
    }

    /// `/react EMOJI`: add my reaction to the selected message (or the newest one), or take
    /// it back when it is there already.
    fn cmd_react(&mut self, arg: &str) -> Vec<Action> {
        if arg.is_empty() {
            self.error("usage: /react EMOJI (on the selected message, else the newest)");
            return Vec::new();
        }
        let me = self.me.as_ref().map(|(id, _)| *id);
        let Some(m) = self.target_message() else {
            self.error("no message to react to");
            return Vec::new();
        };
        let mine = m
            .reactions
            .iter()
            .any(|r| r.emoji == arg && me.is_some_and(|u| r.user_ids.contains(&u)));
        let message_id = m.id;
        self.online_only(ClientEvent::ReactionSet {
            message_id,
            emoji: arg.to_string(),
            add: !mine,
        })
    }

    /// `/search WORDS`: my messages with all of them, newest first, in a list to jump from.
    fn cmd_search(&mut self, arg: &str) -> Vec<Action> {
        if arg.is_empty() {
            self.error("usage: /search WORDS");
            return Vec::new();
        }
        vec![Action::Search(arg.to_string())]
    }

    /// A frame that only makes sense now (no queue while offline).
    pub(super) fn online_only(&mut self, frame: ClientEvent) -> Vec<Action> {
        if self.conn != Conn::Online {
            self.error("offline: try again once connected");
            return Vec::new();
        }
        vec![Action::Ws(frame)]
    }
}

/// The pending placeholder of an upload: `[uploading a.png, b.png]`.
fn uploading_label(paths: &[PathBuf]) -> String {
    format!(
        "[uploading {}]",
        paths
            .iter()
            .map(|p| p.file_name().map_or_else(
                || p.display().to_string(),
                |n| n.to_string_lossy().into_owned()
            ))
            .collect::<Vec<_>>()
            .join(", ")
    )
}

/// `/attach`'s arguments: paths as a shell would split them (quotes `'…'` and `"…"`,
/// backslash escapes, so `"my photo.jpg"` or `my\ photo.jpg` is one path; a leading `~`
/// is `home`), then an optional caption after a separate `--`, taken as typed.
pub(super) fn attach_args(
    arg: &str,
    home: Option<std::ffi::OsString>,
) -> Result<(Vec<PathBuf>, Option<String>), String> {
    let mut paths = Vec::new();
    let mut chars = arg.char_indices().peekable();
    loop {
        while chars.next_if(|(_, c)| c.is_whitespace()).is_some() {}
        let Some(&(start, _)) = chars.peek() else {
            return Ok((paths, None));
        };
        let (mut word, mut quoted) = (String::new(), false);
        while let Some(&(_, c)) = chars.peek() {
            if c.is_whitespace() {
                break;
            }
            chars.next();
            match c {
                '\'' | '"' => {
                    quoted = true;
                    loop {
                        match chars.next() {
                            Some((_, q)) if q == c => break,
                            Some((_, '\\')) if c == '"' => {
                                if let Some((_, e)) = chars.next() {
                                    word.push(e);
                                }
                            }
                            Some((_, other)) => word.push(other),
                            None => return Err(format!("unclosed {c} in {arg:?}")),
                        }
                    }
                }
                '\\' => {
                    if let Some((_, e)) = chars.next() {
                        word.push(e);
                    }
                }
                other => word.push(other),
            }
        }
        if word == "--" && !quoted {
            let rest = arg[start + 2..].trim();
            return Ok((paths, (!rest.is_empty()).then(|| rest.to_string())));
        }
        // Inside quotes `~` is a name, as in a shell.
        paths.push(if quoted {
            PathBuf::from(word)
        } else {
            crate::config::expand_home(&word, home.as_deref())
        });
    }
}
