//! Acting on a message (the selected one in the message pane): reply, edit, delete,
//! react; and the search results list.

use chat_protocol::rest::{DeleteScope, Message, SearchHit};
use chat_protocol::ws::ClientEvent;
use chat_protocol::UserId;

use super::{Action, App, Compose, Focus};

/// Characters of the quoted message in the input's title while replying.
const QUOTE_CHARS: usize = 40;

impl App {
    /// "me", or the name of whoever `user` is in my conversations.
    pub fn display_name(&self, user: UserId) -> String {
        if self.me.as_ref().is_some_and(|(id, _)| *id == user) {
            return "me".into();
        }
        self.convs
            .iter()
            .find(|c| c.conv.other_user.id == user)
            .map_or_else(|| "them".into(), |c| c.conv.other_user.username.clone())
    }

    /// The message a command acts on: the selected one, else the newest of the open
    /// conversation.
    pub(super) fn target_message(&self) -> Option<&Message> {
        match self.cursor {
            Some(_) => self.selected_message(),
            None => self.open_conv()?.messages.last(),
        }
    }

    /// `r`: answer the selected message; the input line says so until sent or Esc.
    pub(super) fn start_reply(&mut self) -> Vec<Action> {
        let Some(m) = self.target_message() else {
            return Vec::new();
        };
        if m.deleted_at.is_some() {
            self.error("that message was deleted");
            return Vec::new();
        }
        let text = super::message_text(m);
        let quote = format!(
            "{}: {}",
            self.display_name(m.sender_id),
            text.chars().take(QUOTE_CHARS).collect::<String>()
        );
        self.compose = Compose::Reply { id: m.id, quote };
        self.focus = Focus::Input;
        Vec::new()
    }

    /// `e`: put one of my messages in the input line; Enter sends the new text.
    pub(super) fn start_edit(&mut self) -> Vec<Action> {
        let Some(m) = self.target_message() else {
            return Vec::new();
        };
        if !self.is_mine(m) {
            self.error("only your own messages can be edited");
            return Vec::new();
        }
        if m.deleted_at.is_some() {
            self.error("that message was deleted");
            return Vec::new();
        }
        let (id, text) = (m.id, m.content.clone().unwrap_or_default());
        self.compose = Compose::Edit { id };
        self.set_input(text);
        self.focus = Focus::Input;
        Vec::new()
    }

    /// `d` (for me) / `D` (for everyone, my own messages): delete the selected message.
    pub(super) fn delete_selected(&mut self, scope: DeleteScope) -> Vec<Action> {
        let Some(m) = self.target_message() else {
            return Vec::new();
        };
        if scope == DeleteScope::Everyone && !self.is_mine(m) {
            self.error("only your own messages can be deleted for everyone (d: for me)");
            return Vec::new();
        }
        let message_id = m.id;
        self.online_only(ClientEvent::MessageDelete { message_id, scope })
    }

    /// `+`: start a `/react ` command for the selected message.
    pub(super) fn react_prompt(&mut self) -> Vec<Action> {
        if self.target_message().is_none() {
            return Vec::new();
        }
        self.set_input("/react ".into());
        self.focus = Focus::Input;
        Vec::new()
    }

    /// `g` on a reply: show the message it answers, in its context.
    pub(super) fn jump_to_original(&mut self) -> Vec<Action> {
        let Some(r) = self.target_message().and_then(|m| m.reply_to.clone()) else {
            self.error("the selected message is not a reply");
            return Vec::new();
        };
        if r.sender_id.is_none() {
            self.error("the original message is gone");
            return Vec::new();
        }
        vec![Action::Jump(r.id)]
    }

    /// Esc in the input line also stops replying or editing.
    pub(super) fn cancel_compose(&mut self) {
        self.compose = Compose::New;
    }

    /// Search results: one line each (when, who, the snippet); Enter jumps to the message.
    pub(super) fn searched(&mut self, q: &str, hits: &[SearchHit]) -> Vec<Action> {
        if hits.is_empty() {
            self.info(format!("nothing found for {q:?}"));
            return Vec::new();
        }
        let lines = hits
            .iter()
            .map(|h| {
                format!(
                    "{}  {}: {}",
                    h.message
                        .created_at
                        .with_timezone(&chrono::Local)
                        .format("%Y-%m-%d %H:%M"),
                    self.display_name(h.message.sender_id),
                    h.snippet
                )
            })
            .collect();
        let targets = hits.iter().map(|h| Some(h.message.id)).collect();
        self.show_items(
            &format!("Search: {q} (Enter: show in the conversation)"),
            lines,
            targets,
        );
        Vec::new()
    }
}
