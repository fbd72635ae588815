//! Search input and snippets (`GET /chat/search`), the same for both databases: the query
//! becomes folded word prefixes (lower case, accents removed), and the snippet marks the
//! words of a message that those prefixes match.

use unicode_normalization::char::is_combining_mark;
use unicode_normalization::UnicodeNormalization;

use super::InvalidInput;

/// Most words a query may have.
pub const MAX_TERMS: usize = 8;
/// Longest query accepted (characters).
pub const MAX_QUERY_CHARS: usize = 256;
/// Characters of a snippet, about (whole words are kept).
const SNIPPET_CHARS: usize = 120;

/// A search query: 1 to [`MAX_TERMS`] folded words, each matched as a word prefix; all must
/// match. Terms hold only letters and digits, so they are safe in both databases' query
/// syntax.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SearchTerms(Vec<String>);

impl SearchTerms {
    pub fn parse(raw: &str) -> Result<Self, InvalidInput> {
        if raw.chars().count() > MAX_QUERY_CHARS {
            return Err(InvalidInput::Field(format!(
                "q must be at most {MAX_QUERY_CHARS} characters"
            )));
        }
        let mut terms: Vec<String> = Vec::new();
        for w in words(raw) {
            let f = fold(w);
            if !f.is_empty() && !terms.contains(&f) {
                terms.push(f);
            }
        }
        if terms.is_empty() {
            return Err(InvalidInput::Field(
                "q must contain at least one word (letters or digits)".into(),
            ));
        }
        if terms.len() > MAX_TERMS {
            return Err(InvalidInput::Field(format!(
                "q may have at most {MAX_TERMS} words"
            )));
        }
        Ok(SearchTerms(terms))
    }

    pub fn terms(&self) -> &[String] {
        &self.0
    }

    /// PostgreSQL `to_tsquery('simple', …)`: every term as a prefix, all required.
    pub fn tsquery(&self) -> String {
        let parts: Vec<String> = self.0.iter().map(|t| format!("{t}:*")).collect();
        parts.join(" & ")
    }

    /// SQLite FTS5 `MATCH`: every term quoted (never an operator) as a prefix, all required.
    pub fn fts5(&self) -> String {
        let parts: Vec<String> = self.0.iter().map(|t| format!("\"{t}\"*")).collect();
        parts.join(" AND ")
    }

    /// Whether a word of a message matches one of the terms.
    fn matches(&self, word: &str) -> bool {
        let f = fold(word);
        self.0.iter().any(|t| f.starts_with(t.as_str()))
    }

    /// A piece of `content` around its first match, matched words between `[` and `]`,
    /// `…` where text was left out.
    pub fn snippet(&self, content: &str) -> String {
        let spans: Vec<(usize, usize)> = word_spans(content)
            .filter(|(s, e)| self.matches(&content[*s..*e]))
            .collect();
        let first = spans.first().map(|(s, _)| *s).unwrap_or(0);
        // Start a few words before the first match, on a word boundary.
        let lead = SNIPPET_CHARS / 4;
        let mut start = 0;
        for (s, _) in word_spans(content) {
            if s > first {
                break;
            }
            if content[s..first].chars().count() <= lead {
                start = s;
                break;
            }
        }
        let mut end = content.len();
        let mut taken = 0;
        for (i, c) in content[start..].char_indices() {
            taken += 1;
            if taken > SNIPPET_CHARS && !c.is_alphanumeric() {
                end = start + i;
                break;
            }
        }
        let mut out = String::new();
        if start > 0 {
            out.push('…');
        }
        let mut at = start;
        for (s, e) in spans.into_iter().filter(|(s, e)| *s >= start && *e <= end) {
            out.push_str(&content[at..s]);
            out.push('[');
            out.push_str(&content[s..e]);
            out.push(']');
            at = e;
        }
        out.push_str(&content[at..end]);
        if end < content.len() {
            out.push('…');
        }
        // One line: newlines and tabs become spaces.
        out.chars()
            .map(|c| if c.is_whitespace() { ' ' } else { c })
            .collect()
    }
}

/// Lower case, accents removed (canonical decomposition without combining marks), as the
/// databases' indexes fold text (`unaccent` + `simple`, FTS5 `remove_diacritics 2`).
pub fn fold(word: &str) -> String {
    word.nfd()
        .filter(|c| !is_combining_mark(*c))
        .flat_map(char::to_lowercase)
        .collect()
}

/// Runs of letters and digits.
fn words(s: &str) -> impl Iterator<Item = &str> {
    word_spans(s).map(move |(a, b)| &s[a..b])
}

/// Byte ranges of the runs of letters and digits (combining marks stay with their word).
fn word_spans(s: &str) -> impl Iterator<Item = (usize, usize)> + '_ {
    let mut chars = s.char_indices().peekable();
    std::iter::from_fn(move || {
        let is_word = |c: char| c.is_alphanumeric() || is_combining_mark(c);
        let (start, _) = loop {
            let (i, c) = chars.next()?;
            if c.is_alphanumeric() {
                break (i, c);
            }
        };
        let mut end = s.len();
        while let Some(&(i, c)) = chars.peek() {
            if !is_word(c) {
                end = i;
                break;
            }
            chars.next();
        }
        Some((start, end))
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn queries_fold_case_and_accents_and_refuse_what_has_no_word() {
        let t = SearchTerms::parse("  Crème   BRÛLÉE crème ").unwrap();
        assert_eq!(t.terms(), ["creme", "brulee"]);
        assert_eq!(t.tsquery(), "creme:* & brulee:*");
        assert_eq!(t.fts5(), "\"creme\"* AND \"brulee\"*");
        // Operators and quotes of either syntax are separators, never syntax.
        let t = SearchTerms::parse("a' OR 1=1; --\" NEAR(x) *:&|!").unwrap();
        assert_eq!(t.terms(), ["a", "or", "1", "near", "x"]);
        assert!(t.fts5().split(" AND ").all(|p| p.starts_with('"')));
        for bad in ["", "   ", "!!! ??", "\"*\""] {
            assert!(SearchTerms::parse(bad).is_err(), "{bad:?}");
        }
        assert!(
            SearchTerms::parse(&"w ".repeat(9)).is_ok(),
            "repeats count once"
        );
        let nine: Vec<String> = (0..9).map(|i| format!("w{i}")).collect();
        assert!(SearchTerms::parse(&nine.join(" ")).is_err());
        assert!(SearchTerms::parse(&"x".repeat(257)).is_err());
    }

    #[test]
    fn snippets_mark_matching_words_around_the_first_match() {
        let t = SearchTerms::parse("cafe bru").unwrap();
        assert_eq!(
            t.snippet("Meet at the Café for crème brûlée?"),
            "Meet at the [Café] for crème [brûlée]?"
        );
        let long = format!("{} needle {}", "word ".repeat(60), "tail ".repeat(60));
        let s = SearchTerms::parse("needle").unwrap().snippet(&long);
        assert!(s.starts_with('…') && s.ends_with('…'), "{s}");
        assert!(s.contains("[needle]"));
        assert!(s.chars().count() < 170, "{}", s.chars().count());
        // Multi-line text is one line; wide characters are never cut in half.
        let s = SearchTerms::parse("漢字")
            .unwrap()
            .snippet("一行目\n漢字テスト");
        assert_eq!(s, "一行目 [漢字テスト]");
    }
}
