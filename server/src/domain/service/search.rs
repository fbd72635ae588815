//! Full-text search over the caller's messages (`GET /chat/search`).

use chat_protocol::rest::SearchHit;

use super::*;
use crate::model::SearchTerms;

impl ChatService {
    /// `me`'s visible messages matching every word of `q` (word prefixes, any case and
    /// accents), newest first, each with a snippet marking the matched words.
    pub async fn search(
        &self,
        me: &AuthUser,
        q: &str,
        conversation: Option<ConversationId>,
        before: Option<Cursor>,
        limit: u32,
    ) -> Result<Page<SearchHit>> {
        self.limits.check(Action::Search, me.id).await?;
        let terms = SearchTerms::parse(q)?;
        if let Some(conv) = conversation {
            self.participant_conversation(me.id, conv).await?;
        }
        let rows = self
            .store
            .search(me.id, &terms, conversation, before, limit + 1)
            .await?;
        let p = page(rows, limit, StoredMessage::cursor);
        let mut data = Vec::with_capacity(p.data.len());
        for m in p.data {
            let snippet = terms.snippet(m.content.as_deref().unwrap_or(""));
            data.push(SearchHit {
                message: self.present(m).await,
                snippet,
            });
        }
        Ok(Page {
            data,
            next_cursor: p.next_cursor,
            has_more: p.has_more,
        })
    }
}
