//! What a rate limit counts: the actions of SPEC "Rate limits", by their stored names.

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Action {
    SendMessage,
    CreateConversation,
    MarkRead,
    GetConversations,
    GetMessages,
    /// Reading about one user or one's own lists: block status, get-or-create a
    /// conversation by username, the block list, push subscriptions.
    Lookup,
    /// Blocking and unblocking.
    Block,
    /// Adding and removing push subscriptions.
    PushSubscribe,
    /// Megabytes uploaded (charged by the declared size before the upload is read).
    UploadMb,
    /// Editing and deleting messages (one budget).
    EditMessage,
    /// Adding and removing reactions.
    React,
    Search,
}

impl Action {
    pub const ALL: [Action; 12] = [
        Action::SendMessage,
        Action::CreateConversation,
        Action::MarkRead,
        Action::GetConversations,
        Action::GetMessages,
        Action::Lookup,
        Action::Block,
        Action::PushSubscribe,
        Action::UploadMb,
        Action::EditMessage,
        Action::React,
        Action::Search,
    ];

    /// Name in the `rate_limits` table and in `chatctl`.
    pub fn as_str(self) -> &'static str {
        match self {
            Action::SendMessage => "send_message",
            Action::CreateConversation => "create_conversation",
            Action::MarkRead => "mark_read",
            Action::GetConversations => "get_conversations",
            Action::GetMessages => "get_messages",
            Action::Lookup => "lookup",
            Action::Block => "block",
            Action::PushSubscribe => "push_subscribe",
            Action::UploadMb => "upload_mb",
            Action::EditMessage => "edit_message",
            Action::React => "react",
            Action::Search => "search",
        }
    }

    pub fn parse(s: &str) -> Option<Action> {
        Action::ALL.into_iter().find(|a| a.as_str() == s)
    }
}
