//! Full-text search over the caller's messages (`GET /chat/search`).
//!
//! Results follow the caller's event log, newest first. Two ways to find them (the store
//! gives the same order either way, see [`SearchScan`]): the full-text index costs what
//! the words match, so a word found in most messages (a short prefix) made it read tens of
//! thousands of rows for a page of 50; reading the caller's newest messages and testing
//! each costs the rows read, so it wins exactly when the words are common. The search
//! first reads a small window of the newest messages, estimates from its hits how common
//! the words are, and then either reads a window large enough to fill the page or asks
//! the index, whichever should read fewer rows.

use chat_protocol::rest::SearchHit;

use super::*;
use crate::model::{SearchCursor, SearchTerms};
use crate::store::{SearchRow, SearchScan};

/// The first window of newest messages a search reads (~2.5 ms on PostgreSQL, where
/// testing a message costs ~20 µs: the cost a search for a rare word pays on top of the
/// index).
const FIRST_WINDOW: u32 = 128;
/// The largest window a search reads before it asks the index instead.
const MAX_WINDOW: u32 = 8_192;

impl ChatService {
    /// `me`'s visible messages matching every word of `q` (word prefixes, any case and
    /// accents), newest first, each with a snippet marking the matched words.
    pub async fn search(
        &self,
        me: &AuthUser,
        q: &str,
        conversation: Option<ConversationId>,
        before: Option<SearchCursor>,
        limit: u32,
    ) -> Result<Page<SearchHit>> {
        self.limits.check(Action::Search, me.id).await?;
        let terms = SearchTerms::parse(q)?;
        if let Some(conv) = conversation {
            self.participant_conversation(me.id, conv).await?;
        }
        let rows = self
            .find(me.id, &terms, conversation, before, limit + 1)
            .await?;
        let p = page(rows, limit, SearchRow::cursor);
        let mut data = Vec::with_capacity(p.data.len());
        for row in p.data {
            let snippet = terms.snippet(row.message.content.as_deref().unwrap_or(""));
            data.push(SearchHit {
                message: self.present(row.message).await,
                snippet,
            });
        }
        Ok(Page {
            data,
            next_cursor: p.next_cursor,
            has_more: p.has_more,
        })
    }

    /// The first `want` hits, from a window of newest messages when the words are common
    /// enough to fill it, else from the index.
    async fn find(
        &self,
        me: UserId,
        terms: &SearchTerms,
        conversation: Option<ConversationId>,
        before: Option<SearchCursor>,
        want: u32,
    ) -> Result<Vec<SearchRow>> {
        let search = |scan| {
            self.store
                .search(me, terms, conversation, before, want, scan)
        };
        // History from before the event log (position 0) is only in the index.
        if before.is_none_or(|c| c.pos > 0) {
            let first = search(SearchScan::Recent {
                window: FIRST_WINDOW,
            })
            .await?;
            if first.hits.len() >= want as usize {
                return Ok(first.hits);
            }
            let cost = self.store.search_window_row_cost();
            let (walked, top) = (first.walked, first.top);
            if let Some(window) = second_window(first.hits.len(), walked, top, want, cost) {
                let second = search(SearchScan::Recent { window }).await?;
                if second.hits.len() >= want as usize {
                    return Ok(second.hits);
                }
            }
        }
        Ok(search(SearchScan::Index).await?.hits)
    }
}

/// After a first window that fell short: the window that should hold `want` hits, if
/// reading it (at `row_cost` an entry, in index matches) is cheaper than the index's
/// matches (estimated from the first window's hit rate, `hits` of `walked`, over the log
/// below it, `top` entries).
fn second_window(hits: usize, walked: u32, top: u64, want: u32, row_cost: f64) -> Option<u32> {
    if hits == 0 || walked < FIRST_WINDOW {
        // Nothing matched (the words are rare: the index has few matches), or the log
        // ended inside the window (nothing more to read, history aside).
        return None;
    }
    let rate = hits as f64 / f64::from(walked);
    // Half again what the rate says, so one more window nearly always suffices.
    let window = (f64::from(want) / rate * 1.5).ceil();
    let index_matches = rate * top as f64;
    (window <= f64::from(MAX_WINDOW) && window * row_cost < index_matches).then_some(window as u32)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// PostgreSQL's and SQLite's row costs (the stores' `search_window_row_cost`).
    const PG: f64 = 10.0;
    const SQLITE: f64 = 1.0;

    #[test]
    fn the_second_window_is_read_only_when_it_beats_the_index() {
        // A word in ~15 % of 100,000 messages: 19 of 128; a window of ~520 fills 51 and
        // costs less than the index's ~15,000 matches.
        let w = second_window(19, 128, 100_000, 51, PG).expect("walks");
        assert!((480..=560).contains(&w), "{w}");
        // In ~7.7 %: on PostgreSQL a window of ~1,000 costs more than ~7,700 matches; on
        // SQLite, where a window row costs about an index match, it is read.
        assert_eq!(second_window(10, 128, 100_000, 51, PG), None);
        let w = second_window(10, 128, 100_000, 51, SQLITE).expect("walks on SQLite");
        assert!((960..=1_000).contains(&w), "{w}");
        // A word in ~2.3 % of them: ~3,300 rows to read against ~2,300 index matches.
        assert_eq!(second_window(3, 128, 100_000, 51, PG), None);
        assert_eq!(second_window(3, 128, 100_000, 51, SQLITE), None);
        // Common, but the whole log is short: the index has few matches anyway.
        assert_eq!(second_window(10, 128, 400, 51, SQLITE), None);
        // Nothing matched, or the log ended inside the first window.
        assert_eq!(second_window(0, 0, 0, 51, SQLITE), None);
        assert_eq!(second_window(10, 100, 100, 51, SQLITE), None);
        // Never more than MAX_WINDOW.
        assert_eq!(second_window(1, 128, 100_000_000, 51, SQLITE), None);
    }
}
